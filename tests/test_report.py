"""DIR/report.html: one self-contained file whose plots really load in a browser.

The text and image pipelines run on small corpora, the report is built from
their outputs, and then:

* the file is checked to be self-contained: no attribute points at http(s)
  or a protocol-relative URL, every <img> is a data: URI, no external
  script, stylesheet or frame;
* headless Chromium renders it: the page's inline script stores the number
  of images the browser decoded (naturalWidth > 0) on <body>, which
  ``--dump-dom`` shows, and every image must have loaded; a screenshot must
  show the waterfall's colours, not a blank page.

The Chromium part is skipped only where /usr/bin/chromium is absent.
"""

import base64
import html.parser
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import run_text
from corpora import small_corpus

from beam_pipelines import report

CHROMIUM = "/usr/bin/chromium"
EMAIL = "jane.roe@example.org"
PHONE = "+1 415 555 0132"


# ---------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_text")
    inp = small_corpus(tmp, n=60)
    # PII in a kept document, and a broken line whose raw excerpt holds markup and an email
    path = inp / "a.jsonl"
    lines = path.read_text().splitlines()
    doc = json.loads(lines[1])
    doc["text"] = doc["text"].replace(
        " follows.\n", f" follows. Write to {EMAIL} or call {PHONE} for a copy.\n", 1)
    lines[1] = json.dumps(doc)
    lines.append('{"id": "broken", "text": "<img src=x onerror=alert(1)> write to bob@example.com')
    path.write_text("\n".join(lines) + "\n")
    out = tmp / "out"
    stats = run_text([str(inp / "*.jsonl")], out, "--vocab_size", "400")
    assert stats["accounting"]["holds"] and stats["dead_letter"]
    return stats, out


def _pattern(seed, w=160, h=120):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BICUBIC)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_images")
    inp = root / "in"
    for cls in ("cats", "dogs"):
        (inp / cls).mkdir(parents=True)
        for i in range(3):
            _pattern(100 * len(cls) + i).save(inp / cls / f"{cls}{i}.jpg", "JPEG", quality=90)
    _pattern(7, 200, 150).save(inp / "dogs" / "wide.png")
    shutil.copy(inp / "cats" / "cats0.jpg", inp / "dogs" / "copy_of_cats0.jpg")
    _pattern(8, 20, 20).save(inp / "cats" / "tiny.png")
    (inp / "cats" / "not_an_image.jpg").write_bytes(b"plain text <b>not</b> a JPEG\n")
    out = root / "out"
    from beam_pipelines import images

    stats = images.run(["--input", str(inp / "*" / "*"), "--output_dir", str(out),
                        "--image_size", "32", "--max_dead_letter_fraction", "1"])
    assert stats["accounting"]["holds"] and stats["dead_letter"] and stats["filtered"]
    return stats, out


# ---------------------------------------------------------------- checks


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.style = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style.append(data)


def assert_self_contained(page: str) -> _Tags:
    """No network reference anywhere a browser would follow one; returns the parsed tags."""
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", page, re.I)
    parsed = _Tags()
    parsed.feed(page)
    for tag, attrs in parsed.tags:
        assert tag not in ("link", "iframe", "object", "embed", "base", "frame"), tag
        if tag == "script":
            assert "src" not in attrs
        for name, value in attrs.items():
            value = (value or "").strip().lower()
            if name in ("src", "href", "srcset", "action", "poster", "data", "background"):
                assert value.startswith("data:"), (tag, name, value[:80])
            assert not value.startswith(("http://", "https://", "//")), (tag, name, value[:80])
    css = "".join(parsed.style).lower()
    assert "@import" not in css and "url(" not in css
    imgs = [attrs for tag, attrs in parsed.tags if tag == "img"]
    assert imgs and all(a.get("src", "").startswith("data:image/") for a in imgs)
    for a in imgs:  # each is valid base64 of a PNG or JPEG
        head = base64.b64decode(a["src"].split(",", 1)[1])[:4]
        assert head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8")
    csp = [a for tag, a in parsed.tags if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    return parsed


def _alts(parsed: _Tags):
    return [a.get("alt", "") for tag, a in parsed.tags if tag == "img"]


def _chromium(tmp_path, name, *args):
    profile = tmp_path / f"chromium-{name}"
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, HOME=str(tmp_path)))


def assert_renders(path, tmp_path, n_images):
    """Chromium loads every image of the page, and the screenshot shows the plots."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); "
                    "the browser rendering check needs it")
    url = "file://" + os.path.abspath(str(path))
    dom = _chromium(tmp_path, "dom", "--dump-dom", url)
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, (dom.returncode, dom.stderr[-2000:])
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group())
    total = re.search(r'data-images-total="(\d+)"', body.group())
    assert loaded and total, f"the page's load script did not run: {body.group()}"
    assert int(total.group(1)) == n_images
    assert int(loaded.group(1)) == n_images, body.group()

    shot = tmp_path / "screenshot.png"
    result = _chromium(tmp_path, "shot", "--hide-scrollbars", "--window-size=1280,2200",
                       f"--screenshot={shot}", url)
    assert shot.exists(), result.stderr[-2000:]
    assert shot.stat().st_size > 30_000
    im = Image.open(shot).convert("RGB")
    pixels = np.asarray(im).reshape(-1, 3).astype(int)
    assert (pixels.min(axis=1) < 240).mean() > 0.05, "the screenshot is (nearly) blank"
    # the waterfall's 'records in' and 'records out' bars are on screen
    for colour in (report.COLOURS["in"], report.COLOURS["out"]):
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - rgb).sum(axis=1) < 30).sum() > 300, colour


# ---------------------------------------------------------------- tests


def test_text_report_is_self_contained_and_loads(text_run, tmp_path):
    stats, out = text_run
    path = report.build_report(str(out))
    assert path == os.path.join(str(out), "report.html")
    page = open(path, encoding="utf-8").read()
    parsed = assert_self_contained(page)
    alts = _alts(parsed)
    assert "waterfall from records in to records out" in alts
    assert {"histogram of chars_per_doc", "histogram of tokens_per_doc"} <= set(alts)
    assert "PII findings by kind" in alts
    # the numbers of the identity and the manifest's versions
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset_version"] in page
    assert "✔ holds" in page
    assert f"records_in {stats['records_in']:,} = records_out {stats['records_out']:,}" in page
    for split, info in stats["splits"].items():
        assert f"<td>{split}</td>" in page and f"{info['tokens']:,}" in page
    for entry in manifest["inputs"]:
        assert entry["path"] in page
    # no raw PII, no live markup from the broken input: only escaped, scrubbed excerpts
    assert EMAIL not in page and PHONE not in page and "bob@example.com" not in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    if not (out / "samples.jsonl").exists():
        assert "no samples recorded" in page
    assert_renders(path, tmp_path, len(alts))


def test_image_report_is_self_contained_and_loads(image_run, tmp_path):
    stats, out = image_run
    path = report.build_report(str(out))
    page = open(path, encoding="utf-8").read()
    parsed = assert_self_contained(page)
    alts = _alts(parsed)
    assert {"waterfall from records in to records out", "image formats",
            "histogram of image_long_side", "histogram of image_aspect_ratio_x100"} <= set(alts)
    for reason in list(stats["filtered"]) + list(stats["dead_letter"]):
        assert reason in page
    assert "plain text &lt;b&gt;not&lt;/b&gt; a JPEG" in page  # the dead letter's excerpt, escaped
    assert_renders(path, tmp_path, len(alts))


def _jpeg_b64(seed):
    buf = io.BytesIO()
    _pattern(seed, 64, 64).save(buf, "JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_samples_and_timing_are_shown(image_run, text_run, tmp_path):
    """samples.jsonl (thumbnails, excerpts) and stats.json's timing, when a run records them."""
    _, image_out = image_run
    out = tmp_path / "run"
    shutil.copytree(image_out, out)
    stats = json.loads((out / "stats.json").read_text())
    stats["timing"] = {"Read": {"seconds": 1.5, "calls": 40}, "Images": {"seconds": 6.25, "calls": 40},
                       "WriteShards": {"seconds": 0.75, "calls": 2}}
    (out / "stats.json").write_text(json.dumps(stats))
    reason = sorted(stats["filtered"])[0]
    rows = [
        {"kind": "kept", "reason": "train", "id": "k1", "excerpt": "", "source": "in/cats/cats1.jpg",
         "thumbnail": _jpeg_b64(1)},
        {"kind": "kept", "reason": "train", "id": "k2", "excerpt": "", "source": "in/cats/cats2.jpg",
         "thumbnail": _jpeg_b64(2)},
        {"kind": "filtered", "reason": reason, "id": "f1", "excerpt": "", "source": "in/cats/tiny.png",
         "thumbnail": _jpeg_b64(3)},
        # a hostile thumbnail is dropped, never pasted into an attribute
        {"kind": "duplicates", "reason": "exact", "id": "d1", "excerpt": "", "source": "x",
         "thumbnail": 'AAAA" onerror="alert(1)'},
    ]
    rows += [{"kind": "kept", "reason": "train", "id": f"extra{i}", "excerpt": "", "source": "s",
              "thumbnail": _jpeg_b64(10 + i)} for i in range(5)]  # more than shown per reason
    with open(out / "samples.jsonl", "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    path = report.build_report(str(out))
    page = open(path, encoding="utf-8").read()
    parsed = assert_self_contained(page)
    alts = _alts(parsed)
    assert "time share per stage" in alts
    assert "thumbnail of k1" in alts and "thumbnail of f1" in alts and "thumbnail of d1" not in alts
    assert sum(a.startswith("thumbnail of ") for a in alts) == 1 + report.SAMPLES_PER_REASON
    assert 'onerror="alert' not in page and ">d1<" in page
    assert "3 of 7 recorded samples" in page
    assert "<td>Images</td>" in page and "73.5%" in page  # the timing table beside the plot
    assert_renders(path, tmp_path, len(alts))

    # text samples: escaped excerpts, and dead-letter reasons without samples fall back
    _, text_out = text_run
    out = tmp_path / "text"
    shutil.copytree(text_out, out)
    stats = json.loads((out / "stats.json").read_text())
    rule = sorted(stats["filtered"])[0]
    with open(out / "samples.jsonl", "w") as f:
        f.write(json.dumps({"kind": "filtered", "reason": rule, "id": "doc-7",
                            "excerpt": "<script>alert(1)</script> see https://example.com/x <EMAIL>",
                            "source": "in/a.jsonl"}) + "\n")
    page = open(report.build_report(str(out)), encoding="utf-8").read()
    assert_self_contained(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; see https://example.com/x &lt;EMAIL&gt;" in page
    assert "<script>alert" not in page
    assert "From the dead letter" in page and "no samples recorded" in page
    if "timing" not in stats:
        assert "no timing recorded" in page


def test_main_writes_the_report_and_fails_cleanly_without_stats(image_run, tmp_path, capsys):
    _, out = image_run
    target = tmp_path / "elsewhere.html"
    assert report.main([str(out), "--output", str(target)]) == 0
    assert target.exists() and str(target) in capsys.readouterr().out
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "no readable stats.json" in capsys.readouterr().err


def test_languages_are_shown_with_their_kept_share(text_run, tmp_path):
    _, text_out = text_run
    out = tmp_path / "run"
    shutil.copytree(text_out, out)
    stats = json.loads((out / "stats.json").read_text())
    stats["languages"] = {"en": {"records_in": 200, "records_out": 150, "kept_share": 0.75,
                                 "tokens": 91234},
                          "de": {"records_in": 40, "records_out": 10, "kept_share": 0.25,
                                 "tokens": 4321}}
    (out / "stats.json").write_text(json.dumps(stats))
    page = open(report.build_report(str(out)), encoding="utf-8").read()
    assert '<section id="languages">' in page and "91,234" in page
    assert "Kept per language (written / identified)" in page
    assert re.search(r'>en</span> 75\.0%.*>de</span> 25\.0%', page)


def test_broken_identity_is_reported(image_run, tmp_path):
    _, image_out = image_run
    out = tmp_path / "run"
    shutil.copytree(image_out, out)
    stats = json.loads((out / "stats.json").read_text())
    stats["records_in"] += 3
    (out / "stats.json").write_text(json.dumps(stats))
    page = open(report.build_report(str(out)), encoding="utf-8").read()
    assert "✘ broken: +3 records unaccounted" in page and "IDENTITY BROKEN" in page


# ---------------------------------------------------------------- privacy

# A run written with --dead_letter_raw (or by an older version), and samples.jsonl rows
# holding raw text: the report scrubs every input-derived string it shows.
LEAK_EMAIL = "mary.major@example.net"
LEAK_SSN = "219-09-9999"
LEAK_KEY_LINES = ["MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
                  "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK"]
LEAK_KEY = ("-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(LEAK_KEY_LINES)
            + "\n-----END RSA PRIVATE KEY-----")
RAW_DEAD_LETTER = [
    {"source": "in/a.jsonl", "position": 10, "unit": "byte", "reason": "malformed_json",
     "detail": f"Expecting value near {LEAK_EMAIL}", "raw_excerpt": f'{{"text": "mail {LEAK_EMAIL}, {LEAK_KEY}',
     "id": LEAK_EMAIL},
    {"source": "in/a.jsonl", "position": 99, "unit": "byte", "reason": "wrong_type",
     "detail": f"ssn {LEAK_SSN}", "raw_excerpt": f"-----BEGIN PRIVATE KEY-----\n{LEAK_KEY_LINES[1]}"},
]
RAW_SAMPLES = [{"kind": "filtered", "reason": "too_short", "id": LEAK_EMAIL, "source": "in/a.jsonl",
                "excerpt": f"call {LEAK_SSN} or write {LEAK_EMAIL}"}]


@pytest.fixture(scope="module")
def raw_inputs_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report_raw")
    stats = {"records_in": 3, "records_out": 0, "filtered": {"too_short": 1},
             "dead_letter": {"malformed_json": 1, "wrong_type": 1}, "license": {LEAK_EMAIL: 1}}
    (out / "stats.json").write_text(json.dumps(stats))
    (out / "dead_letter").mkdir()
    (out / "dead_letter" / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RAW_DEAD_LETTER))
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RAW_SAMPLES))
    return open(report.build_report(str(out)), encoding="utf-8").read()


REPORT_LEAKS = [LEAK_EMAIL, LEAK_SSN] + [line[:24] for line in LEAK_KEY_LINES]


@pytest.mark.parametrize("piece", REPORT_LEAKS)
def test_report_scrubs_raw_dead_letter_and_samples(raw_inputs_page, piece):
    assert piece not in raw_inputs_page


REPORT_TAGS = ["&lt;EMAIL&gt;", "&lt;SECRET&gt;", "&lt;US_SSN&gt;"]


@pytest.mark.parametrize("tag", REPORT_TAGS)
def test_report_shows_the_scrubbed_text(raw_inputs_page, tag):
    assert tag in raw_inputs_page
