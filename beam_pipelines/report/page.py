"""The whole page: sections and figures in order, inline CSS, and a Content-Security-Policy.

The page is self-contained: every plot is a data URI, the CSS and the one
script are inline and allowed by their hashes, and nothing is fetched.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any, Dict, Optional

from beam_pipelines.report.charts import HISTOGRAMS, bar_chart, histogram_chart, timing_chart, waterfall_chart
from beam_pipelines.report.load import Samples
from beam_pipelines.report.markup import esc, figure_html, table
from beam_pipelines.report.sections import (audio_section, kept_by_language, languages_section,
                                            manifest_section, other_section, outputs_section,
                                            samples_section, summary_section)
from beam_pipelines.report.stats import counts, identity_ok, pct, secs

__all__ = ["render"]

# The page's only script: counts the images the browser could decode, so a
# headless browser's --dump-dom shows whether every plot loaded.
_SCRIPT = (
    "window.addEventListener('load', function () {"
    " var imgs = document.images, ok = 0;"
    " for (var i = 0; i < imgs.length; i++) {"
    " if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; } }"
    " document.body.dataset.imagesLoaded = String(ok);"
    " document.body.dataset.imagesTotal = String(imgs.length); });"
)

_CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --bg: #f5f7fa; --card: #fff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
header { background: #243b53; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .sub { color: #bcccdc; font-size: 13px; word-break: break-all; }
main { max-width: 1280px; margin: 0 auto; padding: 16px 32px 48px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 20px; margin: 16px 0; }
h2 { margin: 0 0 12px; font-size: 18px; }
h3 { margin: 16px 0 8px; font-size: 15px; }
h4 { margin: 12px 0 6px; font-size: 14px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: #fff; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 24px; font-weight: bold; }
.card .pct { color: var(--muted); font-size: 12px; }
.card.in { border-top: 4px solid #4c78a8; } .card.out { border-top: 4px solid #2f9e44; }
.card.filtered { border-top: 4px solid #f59f00; } .card.duplicates { border-top: 4px solid #7048e8; }
.card.dead_letter { border-top: 4px solid #e03131; }
.ok { color: #2b8a3e; font-weight: bold; } .bad { color: #c92a2a; font-weight: bold; }
.identity { font-family: "DejaVu Sans Mono", monospace; background: var(--bg); padding: 8px 12px;
  border-radius: 6px; margin: 12px 0 0; overflow-x: auto; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 12px; text-align: center; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.mono, .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all; }
.note { color: var(--muted); font-style: italic; }
pre.excerpt { white-space: pre-wrap; word-break: break-word; margin: 0; max-height: 9em; overflow: auto;
  font: 12px/1.4 "DejaVu Sans Mono", monospace; background: var(--bg); padding: 6px 8px; border-radius: 4px; }
.reason { border-left: 4px solid var(--line); padding: 2px 0 2px 12px; margin: 10px 0 14px; }
.reason.kept { border-color: #2f9e44; } .reason.filtered { border-color: #f59f00; }
.reason.duplicates { border-color: #7048e8; } .reason.dead_letter { border-color: #e03131; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; }
.thumb { width: 150px; font-size: 11px; color: var(--muted); overflow-wrap: anywhere; }
.thumb img { width: 150px; height: 150px; object-fit: contain; background: var(--bg);
  border: 1px solid var(--line); border-radius: 4px; display: block; }
.kv td:first-child { width: 220px; color: var(--muted); }
.tag { display: inline-block; padding: 0 6px; border-radius: 4px; background: var(--bg);
  font-size: 12px; color: var(--muted); }
table.dead, table.samples, table.missing { table-layout: fixed; }
table.dead td, table.samples td, table.missing td { overflow-wrap: anywhere; }
table.dead th:nth-child(1) { width: 17%; } table.dead th:nth-child(2) { width: 22%; }
table.dead th:nth-child(3) { width: 21%; }
table.samples th:nth-child(1) { width: 16%; } table.samples th:nth-child(2) { width: 22%; }
table.missing th:nth-child(1) { width: 50%; } table.missing th:nth-child(2) { width: 15%; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
"""


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def render(directory: str, stats: Dict[str, Any], manifest: Optional[Dict[str, Any]],
           samples: Samples, have_samples_file: bool, dead: Samples) -> str:
    """The report's HTML for already-loaded inputs."""
    have_manifest = manifest is not None
    manifest = manifest or {}
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    info = counts(stats, "info")
    is_images = any(k.startswith("format.") for k in info) or any(
        k.startswith("image_") for k in (stats.get("histograms") or {}))
    kind = str(config.get("kind") or ("images" if is_images else "text"))

    sections = [summary_section(stats, manifest)]
    waterfall = waterfall_chart(stats)
    if waterfall:
        sections.append('<section id="waterfall"><h2>Where the records went</h2>'
                        + figure_html(waterfall, "waterfall from records in to records out",
                                      "Each bar removes the records of one reason; orange: filter "
                                      "rules, purple: duplicates, red: dead letter.")
                        + kept_by_language(stats) + "</section>")
    sections.append(outputs_section(stats, manifest))
    sections.append(languages_section(stats))
    sections.append(audio_section(stats))

    figures = []
    hists = stats.get("histograms") if isinstance(stats.get("histograms"), dict) else {}
    order = [n for n in HISTOGRAMS if n in hists] + sorted(n for n in hists if n not in HISTOGRAMS)
    for name in order:
        made = histogram_chart(name, hists[name]) if isinstance(hists[name], dict) else None
        if made:
            figures.append(figure_html(made[0], f"histogram of {name}", made[1]))
    if figures:
        sections.append('<section id="histograms"><h2>Distributions</h2>'
                        f'<div class="grid2">{"".join(figures)}</div></section>')

    more = []
    pii = counts(stats, "pii")
    if pii:
        docs = info.get("pii.documents_with_findings")
        caption = f"{sum(pii.values()):,} findings" + (f" in {docs:,} documents" if docs else "") + \
            "; each is replaced in the output"
        more.append(figure_html(bar_chart("PII findings by kind", sorted(pii.items(), key=lambda kv: -kv[1]),
                                          "findings", "#d6336c"), "PII findings by kind", caption))
    elif kind != "images":
        more.append('<div><h3>PII findings by kind</h3><p class="note">no PII found '
                    '(or the pii step did not run)</p></div>')
    formats = sorted(((k[len("format."):], v) for k, v in info.items() if k.startswith("format.")),
                     key=lambda kv: -kv[1])
    if formats:
        more.append(figure_html(bar_chart("Image formats (inputs identified)", formats, "images", "#1098ad"),
                                "image formats", f"{sum(v for _, v in formats):,} images identified"))
    timing = timing_chart(stats)
    if timing:
        png, rows = timing
        total = sum(r[1] for r in rows)
        more.append("<div>" + figure_html(
            png, "time share per stage",
            f"{secs(total)} s measured over {len(rows)} stages (summed over workers)")
            + table(["stage", "seconds", "calls", "share"],
                    [(esc(stage), secs(sec), f"{calls:,}", pct(sec, total)) for stage, sec, calls in rows],
                    numeric=(1, 2, 3)) + "</div>")
    else:
        more.append('<div><h3>Time per stage</h3><p class="note">no timing recorded in stats.json</p></div>')
    sections.append('<section id="breakdowns"><h2>PII, formats and time</h2>'
                    f'<div class="grid2">{"".join(more)}</div></section>')

    sections.append(samples_section(stats, samples, dead, have_samples_file))
    sections.append(manifest_section(manifest, have_manifest))
    other = other_section(stats)
    if other:
        sections.append(other)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    version = manifest.get("dataset_version", "–")
    css = _CSS
    csp = ("default-src 'none'; img-src data:; "
           f"style-src 'sha256-{_sha256_b64(css)}'; script-src 'sha256-{_sha256_b64(_SCRIPT)}'; "
           "base-uri 'none'; form-action 'none'")
    title = f"beamtrain report: {kind} dataset {version}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{css}</style>"
        f"<script>{_SCRIPT}</script></head>"
        '<body data-images-loaded="pending">'
        f'<header><h1>{esc(title)}</h1><div class="sub">{esc(directory)} · generated {esc(now)}'
        f' · <span class="tag">{"identity holds" if identity_ok(stats) else "IDENTITY BROKEN"}</span>'
        "</div></header><main>"
        + "".join(sections)
        + '<footer>Written by <span class="mono">python -m beam_pipelines.report</span>; '
          "self-contained: no network access needed.</footer></main></body></html>\n"
    )
