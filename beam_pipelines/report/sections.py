"""The page's sections: accounting, outputs per split, manifest, samples per reason, counters.

Every input-derived string shown here goes through
:mod:`beam_pipelines.report.scrub` first.
"""

from __future__ import annotations

import collections
import datetime
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from beam_pipelines.report.load import Samples
from beam_pipelines.report.markup import esc, kv_table, table
from beam_pipelines.report.scrub import scrub, scrub_field, shorten, thumbnail, visible
from beam_pipelines.report.stats import KIND_TITLES, counts, human_bytes, n_records, num, pct, removals_by_reason

__all__ = ["summary_section", "outputs_section", "manifest_section", "samples_section", "other_section"]

DEAD_EXCERPT_CHARS = 160
SAMPLE_EXCERPT_CHARS = 320
MAX_INPUT_ROWS = 100


def summary_section(stats: Dict[str, Any], manifest: Dict[str, Any]) -> str:
    records_in = int(num(stats.get("records_in")))
    records_out = int(num(stats.get("records_out")))
    parts = {k: sum(counts(stats, k).values()) for k in ("filtered", "duplicates", "dead_letter")}
    total = records_out + sum(parts.values())
    holds = records_in == total
    recorded = (stats.get("accounting") or {}).get("holds")
    cards = [("in", "records in", records_in), ("out", "records out", records_out),
             ("filtered", "filtered", parts["filtered"]), ("duplicates", "duplicates", parts["duplicates"]),
             ("dead_letter", "dead letter", parts["dead_letter"])]
    html_cards = "".join(
        f'<div class="card {cls}"><div class="label">{esc(label)}</div>'
        f'<div class="value">{n:,}</div>'
        f'<div class="pct">{"" if cls == "in" else pct(n, records_in) + " of records in"}</div></div>'
        for cls, label, n in cards)
    verdict = ('<span class="ok">✔ holds</span>' if holds
               else f'<span class="bad">✘ broken: {records_in - total:+,} records unaccounted</span>')
    equation = (f"records_in {records_in:,} = records_out {records_out:,} + filtered "
                f"{parts['filtered']:,} + duplicates {parts['duplicates']:,} + dead_letter "
                f"{parts['dead_letter']:,} = {total:,}")
    rows = [
        ("records in", f"{records_in:,}", ""),
        ("records out (written to shards)", f"{records_out:,}", pct(records_out, records_in)),
        ("filtered (sum of the rules)", f"{parts['filtered']:,}", pct(parts["filtered"], records_in)),
        ("duplicates (exact + near)", f"{parts['duplicates']:,}", pct(parts["duplicates"], records_in)),
        ("dead letter (broken inputs)", f"{parts['dead_letter']:,}", pct(parts["dead_letter"], records_in)),
        ("records out + filtered + duplicates + dead letter", f"{total:,}", pct(total, records_in)),
    ]
    extra = []
    if recorded is not None and bool(recorded) != holds:
        extra.append(f'<p class="bad">stats.json records holds={esc(recorded)}, but its numbers say '
                     f'{"it holds" if holds else "it does not"}.</p>')
    threshold = (manifest.get("config") or {}).get("max_dead_letter_fraction")
    if threshold is not None and records_in:
        share = parts["dead_letter"] / records_in
        ok = share <= num(threshold)
        extra.append(f'<p>Dead-letter share {share:.1%} '
                     f'{"≤" if ok else "&gt;"} max_dead_letter_fraction {num(threshold):.1%}: '
                     f'<span class="{"ok" if ok else "bad"}">{"within" if ok else "over"} the limit</span></p>')
    return (
        '<section id="summary"><h2>Accounting</h2>'
        f'<div class="cards">{html_cards}</div>'
        f'<p class="identity">{esc(equation)} &nbsp; {verdict}</p>'
        + table(["", "records", "share of records in"],
                [(esc(a), b, c) for a, b, c in rows], numeric=(1, 2))
        + "".join(extra)
        + f'<p class="note">Identity: {esc((stats.get("accounting") or {}).get("identity", ""))}</p>'
        "</section>"
    )


def outputs_section(stats: Dict[str, Any], manifest: Dict[str, Any]) -> str:
    splits = stats.get("splits") if isinstance(stats.get("splits"), dict) else {}
    by_split = counts(stats, "records_out_by_split")
    names = sorted(set(splits) | set(by_split))
    info = counts(stats, "info")
    shard_bytes: Dict[str, int] = collections.Counter()
    for s in manifest.get("shards") or []:
        if isinstance(s, dict):
            shard_bytes[str(s.get("split"))] += int(num(s.get("bytes")))
    rows = []
    for name in names:
        entry = splits.get(name) if isinstance(splits.get(name), dict) else {}
        records = int(num(entry.get("records", by_split.get(name, 0))))
        tokens = int(num(entry.get("tokens", info.get(f"tokens.{name}", 0))))
        rows.append([esc(name), records, int(num(entry.get("shards"))), tokens, shard_bytes.get(name, 0)])
    with_tokens = any(r[3] for r in rows)
    headers = ["split", "records", "shards"] + (["tokens", "tokens / record"] if with_tokens else []) + ["bytes"]

    def cells(name, records, shards, tokens, size, bold=False):
        row = [name, f"{records:,}", f"{shards:,}" if shards else ""]
        if with_tokens:
            row += [f"{tokens:,}", f"{tokens / records:,.1f}" if records and tokens else "–"]
        row.append(human_bytes(size))
        return [f"<b>{c}</b>" if bold and c else c for c in row]

    table_rows = [cells(*r) for r in rows]
    if len(rows) > 1:
        table_rows.append(cells("total", sum(r[1] for r in rows), sum(r[2] for r in rows),
                                sum(r[3] for r in rows), sum(r[4] for r in rows), bold=True))
    body = (table(headers, table_rows, numeric=range(1, len(headers))) if rows
            else '<p class="note">no splits recorded</p>')
    shards = [s for s in manifest.get("shards") or [] if isinstance(s, dict)]
    if shards:
        shown = shards[:MAX_INPUT_ROWS]
        body += "<h3>Shards</h3>" + table(
            ["path", "split", "records", "bytes", "sha256"],
            [(f'<span class="mono">{esc(s.get("path"))}</span>', esc(s.get("split")),
              f"{int(num(s.get('records'))):,}", human_bytes(s.get("bytes")),
              f'<span class="mono">{esc(str(s.get("sha256", ""))[:16])}…</span>') for s in shown],
            numeric=(2, 3))
        if len(shards) > len(shown):
            body += f'<p class="note">… and {len(shards) - len(shown):,} more shards</p>'
    return f'<section id="outputs"><h2>Records per split</h2>{body}</section>'


def manifest_section(manifest: Dict[str, Any], have_manifest: bool) -> str:
    if not have_manifest:
        return ('<section id="manifest"><h2>Manifest</h2>'
                '<p class="note">no manifest.json in this directory</p></section>')
    code = manifest.get("code_version") if isinstance(manifest.get("code_version"), dict) else {}
    tokenizer = manifest.get("tokenizer") if isinstance(manifest.get("tokenizer"), dict) else None
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    kv = [("dataset version", f'<b class="mono">{esc(manifest.get("dataset_version", "–"))}</b>'),
          ("content sha256", f'<span class="mono">{esc(manifest.get("content_sha256", "–"))}</span>')]
    kv += [(f"code: {k}", f'<span class="mono">{esc(v)}</span>') for k, v in sorted(code.items())]
    if tokenizer:
        kv.append(("tokenizer", f'<span class="mono">{esc(tokenizer.get("path"))} '
                                f'(sha256 {esc(str(tokenizer.get("sha256", ""))[:16])}…)</span>'))
    if config.get("steps"):
        kv.append(("steps", esc(", ".join(map(str, config["steps"])))))
    if config.get("inputs"):
        kv.append(("input globs", "<br>".join(f'<span class="mono">{esc(g)}</span>' for g in config["inputs"])))
    inputs = [i for i in manifest.get("inputs") or [] if isinstance(i, dict)]
    body = kv_table(kv)
    body += f"<h3>Inputs ({len(inputs):,} files, {human_bytes(sum(num(i.get('size')) for i in inputs))})</h3>"
    if inputs:
        def mtime(v):
            try:
                return datetime.datetime.fromtimestamp(float(v), datetime.timezone.utc).strftime(
                    "%Y-%m-%d %H:%M UTC")
            except (TypeError, ValueError, OverflowError, OSError):
                return "–"

        shown = inputs[:MAX_INPUT_ROWS]
        body += table(["path", "size", "modified"],
                      [(f'<span class="mono">{esc(i.get("path"))}</span>', human_bytes(i.get("size")),
                        esc(mtime(i.get("mtime")))) for i in shown], numeric=(1,))
        if len(inputs) > len(shown):
            body += f'<p class="note">… and {len(inputs) - len(shown):,} more inputs</p>'
    if config:
        body += ("<details><summary>Full configuration</summary><pre class=\"excerpt\">"
                 + esc(visible(json.dumps(config, indent=2, sort_keys=True, default=str)))
                 + "</pre></details>")
    return f'<section id="manifest"><h2>Manifest</h2>{body}</section>'


def _excerpt_cell(text: str, limit: int) -> str:
    if not text.strip():
        return '<span class="note">(empty)</span>'
    return f'<pre class="excerpt">{esc(visible(shorten(text, limit)))}</pre>'


def _sample_block(kind: str, reason: str, count: Optional[int], samples: Samples) -> str:
    """The samples.jsonl rows of one (kind, reason): excerpts, or thumbnails for images."""
    key = (kind, reason)
    title = f"{KIND_TITLES[kind]}: {reason}" if reason else KIND_TITLES[kind]
    if count is not None:
        title += f" — {n_records(count)}"
    rows = samples.rows[key]
    thumbs = [(r, thumbnail(r.get("thumbnail"))) for r in rows]
    if any(uri for _, uri in thumbs):
        cells = []
        for r, uri in thumbs:
            rid = scrub_field(r, "id")
            img = (f'<img src="{uri}" alt="thumbnail of {esc(rid)}">' if uri
                   else '<div class="note">no thumbnail</div>')
            text = shorten(scrub_field(r, "excerpt"), 120)
            source = scrub_field(r, "source").rstrip("/").rsplit("/", 1)[-1]
            cells.append(f'<div class="thumb">{img}<div class="mono">{esc(visible(rid))}</div>'
                         f'<div>{esc(visible(shorten(source, 60)))}</div>'
                         f'<div>{esc(visible(text))}</div></div>')
        body = f'<div class="thumbs">{"".join(cells)}</div>'
    else:
        body = table(["id", "source", "excerpt (PII-scrubbed)"], [
            (f'<span class="mono">{esc(visible(scrub_field(r, "id")))}</span>',
             f'<span class="mono">{esc(visible(scrub_field(r, "source")))}</span>',
             _excerpt_cell(scrub_field(r, "excerpt"), SAMPLE_EXCERPT_CHARS))
            for r in rows], cls="samples")
    shown = f"{len(rows)} of {samples.seen[key]:,} recorded sample" + ("" if samples.seen[key] == 1 else "s")
    return (f'<div class="reason {kind}"><h4>{esc(title)} <span class="tag">{esc(shown)}</span></h4>'
            f"{body}</div>")


def _dead_letter_table(reasons: Sequence[Tuple[str, int]], dead: Samples) -> str:
    """Dead-letter reasons without samples: the dead letter's own entries, one table."""
    rows = []
    for reason, n in reasons:
        entries = dead.rows[("dead_letter", reason)]
        for i, r in enumerate(entries):
            # raw when the run kept them raw (--dead_letter_raw): scrubbed here, then shortened
            excerpt = scrub_field(r, "raw_excerpt")
            detail = scrub_field(r, "detail")
            rid = scrub_field(r, "id")
            label = (f'<b>{esc(reason)}</b><br><span class="note">{esc(n_records(n))}, '
                     f'{len(entries)} shown</span>') if i == 0 else ""
            rows.append((
                label,
                f'<span class="mono">{esc(visible(scrub_field(r, "source")))}</span><br>'
                f'<span class="note">{esc(r.get("unit", ""))} {int(num(r.get("position"))):,}</span>'
                + (f'<br><span class="mono">id {esc(visible(rid))}</span>' if rid else ""),
                esc(visible(shorten(detail, 200))),
                _excerpt_cell(excerpt, DEAD_EXCERPT_CHARS)))
    return table(["reason", "source", "detail", "raw excerpt (broken input, shortened)"], rows,
                 cls="dead")


def samples_section(stats: Dict[str, Any], samples: Samples, dead: Samples, have_file: bool) -> str:
    by_kind: Dict[str, List[Tuple[str, Optional[int]]]] = collections.OrderedDict(
        (k, []) for k in KIND_TITLES)
    kept_keys = sorted(k[1] for k in samples.rows if k[0] == "kept")
    records_out = int(num(stats.get("records_out")))
    by_kind["kept"] = [(r, None) for r in kept_keys] or [("", records_out)]
    listed = set()
    for kind, reason, n in removals_by_reason(stats):
        listed.add((kind, reason))
        by_kind[kind].append((reason, n))
    for kind, reason in sorted(k for k in samples.rows if k[0] != "kept" and k not in listed):
        by_kind[kind].append((reason, None))

    parts = []
    for kind, reasons in by_kind.items():
        if not reasons:
            continue
        total = records_out if kind == "kept" else sum(counts(stats, kind).values())
        blocks, fallback, missing = [], [], []
        for reason, n in reasons:
            if samples.rows.get((kind, reason)):
                blocks.append(_sample_block(kind, reason, n, samples))
            elif kind == "dead_letter" and dead.rows.get((kind, reason)):
                fallback.append((reason, n or 0))
            else:
                missing.append((reason, n))
        html_parts = blocks
        if fallback:
            html_parts.append(f'<div class="reason {kind}"><p class="note">From the dead letter '
                              "(no samples recorded for these reasons): raw excerpts of the broken "
                              "inputs, shortened, PII-scrubbed and escaped.</p>"
                              + _dead_letter_table(fallback, dead) + "</div>")
        if missing:
            html_parts.append(f'<div class="reason {kind}">' + table(
                ["reason", "records", "samples"],
                [(esc(reason or KIND_TITLES[kind].lower()), "" if n is None else f"{n:,}",
                  '<span class="note">no samples recorded</span>') for reason, n in missing],
                numeric=(1,), cls="missing") + "</div>")
        parts.append(f"<h3>{esc(KIND_TITLES[kind])} <span class=\"tag\">{esc(n_records(total))}</span></h3>"
                     + "".join(html_parts))
    intro = ("Excerpts come from samples.jsonl, PII-scrubbed by the pipeline."
             if have_file else
             "This run recorded no samples.jsonl: dead-letter reasons show the dead letter's "
             "raw excerpts (shortened, scrubbed, escaped); other reasons have no samples.")
    return (f'<section id="samples"><h2>Sample records per reason</h2><p class="note">{esc(intro)}</p>'
            + "".join(parts) + "</section>")


def kept_by_language(stats: Dict[str, Any], top: int = 12) -> str:
    """One line under the waterfall: the share of each language's documents written."""
    languages = stats.get("languages")
    if not isinstance(languages, dict) or not languages:
        return ""
    ranked = sorted(languages.items(), key=lambda kv: (-int(kv[1].get("records_in", 0)), kv[0]))
    parts = [f'<span class="mono">{esc(visible(name))}</span> '
             f"{pct(int(row.get('records_out', 0)), int(row.get('records_in', 0)))}"
             for name, row in ranked[:top]]
    more = f" (and {len(ranked) - top} more languages)" if len(ranked) > top else ""
    return "<p>Kept per language (written / identified): " + ", ".join(parts) + more + ".</p>"


def languages_section(stats: Dict[str, Any]) -> str:
    """Documents per language (the lang step's labels): identified, written, kept share, tokens."""
    languages = stats.get("languages")
    if not isinstance(languages, dict) or not languages:
        return ""
    rows = []
    for name, row in sorted(languages.items(),
                            key=lambda kv: (-int(kv[1].get("records_in", 0)), kv[0])):
        rows.append((f'<span class="mono">{esc(visible(name))}</span>',
                     f"{int(row.get('records_in', 0)):,}", f"{int(row.get('records_out', 0)):,}",
                     pct(int(row.get("records_out", 0)), int(row.get("records_in", 0))),
                     f"{int(row.get('tokens', 0)):,}"))
    return ('<section id="languages"><h2>Languages</h2><p>Documents per language as the '
            "lang step labelled them (lid.176), the share of each written to the shards, "
            "and their tokens.</p>"
            + table(["language", "documents", "written", "kept share", "tokens"], rows,
                    numeric=(1, 2, 3, 4)) + "</section>")


def audio_section(stats: Dict[str, Any]) -> str:
    """Hours of audio decoded and written, and the codecs and containers read."""
    audio = stats.get("audio")
    if not isinstance(audio, dict):
        return ""
    rows = [("hours decoded (files that decoded)", f"{float(audio.get('hours_in', 0)):.3f}"),
            ("hours written", f"{float(audio.get('hours_out', 0)):.3f}"),
            ("files split at silences", f"{int(audio.get('split_files', 0)):,}"),
            ("transcripts dropped by a split", f"{int(audio.get('transcripts_dropped_split', 0)):,}")]
    for key, label in (("codecs", "codec"), ("containers", "container")):
        for name, n in (audio.get(key) or {}).items():
            rows.append((f'{label} <span class="mono">{esc(visible(str(name)))}</span>', f"{int(n):,}"))
    return ('<section id="audio"><h2>Audio</h2>'
            + table(["", "value"], rows, numeric=(1,)) + "</section>")


def other_section(stats: Dict[str, Any]) -> str:
    parts = []
    for key, title in (("lines_removed", "Lines removed by line-level rules"),
                       ("license", "Licences seen"), ("info", "Other counters")):
        values = counts(stats, key)
        if values:
            # licence names come from the input records: scrubbed like any input text
            parts.append(f"<div><h3>{esc(title)}</h3>" + table(
                ["name", "count"], [(f'<span class="mono">{esc(visible(scrub(k)))}</span>', f"{v:,}")
                                    for k, v in sorted(values.items())], numeric=(1,)) + "</div>")
    nd = stats.get("near_dedup")
    if isinstance(nd, dict) and nd:
        rows = [(f'<span class="mono">{esc(k)}</span>',
                 esc(v if not isinstance(v, list) else ", ".join(map(str, v)))) for k, v in sorted(nd.items())]
        parts.append("<div><h3>Near-duplicate detection</h3>" + table(["name", "value"], rows, numeric=())
                     + "</div>")
    if not parts:
        return ""
    return f'<section id="other"><h2>Other counters</h2><div class="grid2">{"".join(parts)}</div></section>'
