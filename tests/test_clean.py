import unicodedata
from unittest import mock

import pytest
from hypothesis import given, settings, strategies as st

from transforms.text import clean
from transforms.text.clean import Cleaner, CleanConfig, clean_text, html_to_text

PAGE = """<!doctype html><html><head><title>Classes</title><script>var x = 1;</script></head>
<body><div class="nav"><ul><li><a href="/">Home</a></li><li><a href="/next">Next topic</a></li></ul></div>
<div class="body" role="main"><h1>9. Classes</h1>
<p>Classes provide a means of bundling data and functionality together. Creating a new class
creates a new type of object, allowing new instances of that type to be made.</p>
<p>Each class instance can have attributes attached to it for maintaining its state. Class
instances can also have methods for modifying its state.</p></div>
<div class="footer">&copy; Copyright 2001-2024, Python Software Foundation. Last updated on Jan 01.</div>
</body></html>"""


def test_html_main_content_without_boilerplate():
    text = html_to_text(PAGE)
    assert "Classes provide a means of bundling data" in text
    assert "var x = 1" not in text
    assert "Copyright 2001-2024" not in text
    assert "Next topic" not in text


def test_mojibake_repaired():
    assert clean_text("The cafÃ© served crÃ¨me brÃ»lÃ©e â€” delicious.") == \
        "The café served crème brûlée — delicious."


def test_controls_nul_and_whitespace():
    raw = "  Hello\x00 world\x07!\r\n\r\n\r\n\r\nNext\u00a0\u00a0para\tgraph \u2028end\ufeff  "
    assert clean_text(raw) == "Hello world!\n\nNext para graph\nend"


def test_nfc_normalization():
    decomposed = "Cafe\u0301 and re\u0301sume\u0301"
    out = clean_text(decomposed)
    assert out == unicodedata.normalize("NFC", decomposed)
    assert unicodedata.is_normalized("NFC", out)


def test_ansi_escapes_removed():
    assert clean_text("\x1b[31mred\x1b[0m text") == "red text"


def test_ascii_fast_path_never_calls_ftfy(monkeypatch):
    import ftfy

    def boom(*a, **k):
        raise AssertionError("ftfy called on ASCII text")

    monkeypatch.setattr(ftfy, "fix_text", boom)
    assert clean_text("Plain   ASCII\x00 text.") == "Plain ASCII text."
    # Clean non-ASCII text that is not mojibake takes the fast path too.
    assert clean_text("naïve café — “quoted”") == "naïve café — “quoted”"


def test_cleaner_drops_empty_documents():
    rec = {"id": "a", "text": "<html><body><script>x()</script></body></html>", "meta": {"html": True}}
    out, reason = Cleaner()(rec)
    assert out is None and reason == "empty_after_clean"


def test_cleaner_respects_html_mode():
    rec = {"id": "a", "text": "<p>a &lt; b</p>", "meta": {"html": False}}
    out, _ = Cleaner(CleanConfig(html="never"))(rec)
    assert out["text"] == "<p>a &lt; b</p>"
    out, _ = Cleaner(CleanConfig(html="always"))(rec)
    assert out["text"] == "a < b"
    with pytest.raises(ValueError):
        CleanConfig(html="sometimes")


def test_html_then_text_is_stable():
    text = clean_text(html_to_text(PAGE))
    assert clean_text(text) == text


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_clean_text_idempotent_on_any_text(text):
    once = clean_text(text)
    assert clean_text(once) == once


MOJIBAKE_SOURCE = st.text(alphabet="abcdeéèàçüöñ’“”—– .,\n", max_size=80)


@settings(max_examples=200, deadline=None)
@given(MOJIBAKE_SOURCE)
def test_clean_text_idempotent_on_mojibake(text):
    damaged = text.encode("utf-8").decode("cp1252", errors="replace")
    once = clean_text(damaged)
    assert clean_text(once) == once


TRICKY = st.text(
    alphabet=list("aeAE ,.\n\r\t\x00\x07\x1b[31m\x85\x9c\x80\xa0\u2000\u3000\u0301\u0303Ã©â€™Â¶\ufb01\ufeff\u2028"),
    max_size=60)


@settings(max_examples=1500, deadline=None)
@given(TRICKY)
def test_clean_text_idempotent_on_tricky_characters(text):
    once = clean_text(text)
    assert clean_text(once) == once
    assert "\x00" not in once and "\r" not in once and "  " not in once


NESTED = "<html><body>" + "<div>" * 200_000 + "<p>Deep words &amp; more survive.</p></body></html>"


def test_deeply_nested_html_falls_back_to_linear_visible_text():
    # ~1 MB of nested <div>: the DOM extractor is quadratic in the depth (minutes)
    assert len(NESTED) > 1_000_000
    assert clean.html_depth_bound(NESTED) > clean.MAX_HTML_DEPTH
    text, fell_back = clean.html_to_text_checked(NESTED)
    assert fell_back and clean_text(text) == "Deep words & more survive."
    cleaner = Cleaner(CleanConfig(main_content=False))
    out, reason = cleaner({"id": "n", "text": NESTED, "meta": {"html": True}})
    assert reason is None and out["text"] == "Deep words & more survive."
    assert cleaner.last_info == clean.HTML_FALLBACK


def test_normal_pages_keep_main_content_extraction():
    text, fell_back = clean.html_to_text_checked(PAGE)
    assert not fell_back and "Next topic" not in text
    # closed nesting, unclosed <p>/<li> and stray end tags do not count as depth
    page = ("<div>" * 50 + "x" + "</div>" * 50) * 100 + "<ul>" + "<li>item<p>para" * 2000 + "</ul>"
    assert clean.html_depth_bound(page) < 60
    # stray end tags cannot hide depth
    hidden = "</div>" * 5000 + "<div>" * 5000 + "text"
    assert clean.html_depth_bound(hidden) >= 5000


def test_visible_text_drops_hidden_content_and_stays_linear_on_stray_brackets():
    html = ("<head><title>T</title><style>p{}</style></head><p>a &lt; b</p><!-- note -->"
            "<script>if (a<b) x()</script><div>tail</div><script>never closed <p>gone")
    assert clean_text(clean.visible_text(html)) == "a < b\n\ntail"
    # a megabyte of "<" with no ">" is text, not a tag to search to the end for
    assert clean.visible_text("<a" * 300_000).count("<a") == 300_000


def test_clean_dofn_counts_the_fallback_under_info():
    fn = clean._CleanDoFn(CleanConfig())
    fn.setup()
    fn.start_bundle()
    outs = list(fn.process({"id": "n", "text": NESTED, "meta": {"html": True}}))
    outs += list(fn.process({"id": "p", "text": PAGE, "meta": {"html": True}}))
    assert [o["text"] for o in outs][0] == "Deep words & more survive."
    counts = dict(o.value.value for o in fn.finish_bundle())
    assert counts[("info", clean.HTML_FALLBACK)] == 1


PLAIN = st.text(alphabet=list("aeAE ,.\n\u00e9\u00e8\u2019\u201c\u0301\u0303\u00c3\u00a9\u00e2\u20ac\u2122\u00c2\u00b6"
                              "\u4e2d\u0627\U0001f600"), max_size=80)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(PLAIN, TRICKY, MOJIBAKE_SOURCE.map(
    lambda t: t.encode("utf-8").decode("cp1252", errors="replace"))))
def test_plain_text_shortcut_matches_the_full_round(text):
    """A text without any character the rewrites look for skips their scans (_plain_round):
    it must come out exactly as it does when every scan runs."""
    fast = clean_text(text)
    with mock.patch.object(clean, "_SPECIAL", clean.re.compile("")):  # matches: the full round
        full = clean_text(text)
    assert fast == full
