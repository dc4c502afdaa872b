"""Cleaning: HTML to text, mojibake repair, Unicode and whitespace normalization.

Two pure functions and a thin DoFn:

* :func:`html_to_text` -- main-content extraction with boilerplate removal
  (navigation, sidebars, footers) by Resiliparse, a maintained C++ extractor.
  Its HTML parser takes time growing with the square of the nesting depth
  (a megabyte of ``<div>`` takes minutes), so a page nested deeper than
  :data:`MAX_HTML_DEPTH` elements (Blink stops nesting at 512; real pages
  stay far below) gets a linear visible-text extraction instead
  (:func:`visible_text`), counted under ``info.html_main_content_fallback``.
* :func:`clean_text` -- idempotent text normalization:
  ``clean_text(clean_text(x)) == clean_text(x)``.

``clean_text`` in order:

1. ftfy repairs mojibake ("cafÃ©" -> "café"), C1 controls and terminal
   escapes. ftfy is the slowest stage of the pipeline (about 1.7 MB/s), so it
   runs only where it can change something: never on ASCII text (ASCII cannot
   be mojibake), and on other text only when ftfy's own badness detector
   flags the neighbourhood of a non-ASCII character (see
   :func:`suspicious_windows`) or C1 controls are present.
2. ANSI terminal escapes removed; every line-break convention becomes ``\\n``.
3. Control characters (C0 but tab and newline, DEL, C1), NULs, byte-order
   marks, non-characters and lone surrogates removed.
4. Whitespace: runs of horizontal whitespace (any Unicode space, NBSP
   included) become one space; spaces around newlines go; three or more
   newlines become two (paragraphs survive); the ends are stripped.
5. NFC normalization.

C0 controls are removed before the mojibake check, since a NUL can hide
mojibake. The whitespace and control rewrites reach their fixed point in one
pass; ftfy and NFC can expose work for each other (NFC can compose a character
ftfy flags), so a document they changed runs the steps again until nothing
changes (at most four rounds). ASCII text is untouched by both.

Layout (as for every text stage; the rule is in :mod:`transforms.text.pii_step`):
the pure core first, which never uses Beam, and its thin Beam wrapper last,
under ``# Beam``.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import itertools
import re
import time
import unicodedata
from typing import Optional, Tuple

import apache_beam as beam

from transforms import accounting
from transforms.accounting import FILTERED, INFO

__all__ = ["CleanConfig", "html_to_text", "html_depth_bound", "visible_text", "clean_text",
           "Cleaner", "Clean", "MAX_HTML_DEPTH", "HTML_FALLBACK"]

_FTFY_CONFIG = None


def _ftfy_config():
    global _FTFY_CONFIG
    if _FTFY_CONFIG is None:
        import ftfy

        _FTFY_CONFIG = ftfy.TextFixerConfig(
            unescape_html=False,  # entities in extracted text are content (e.g. docs about HTML)
            remove_terminal_escapes=True,
            fix_encoding=True,  # the point: undo mojibake
            restore_byte_a0=True,
            replace_lossy_sequences=True,
            decode_inconsistent_utf8=True,
            fix_c1_controls=True,
            fix_latin_ligatures=True,  # "ﬁ" -> "fi": ligatures are typesetting, not text
            fix_character_width=False,  # keep full-width CJK punctuation as written
            uncurl_quotes=False,  # curly quotes are legitimate text
            fix_line_breaks=True,
            fix_surrogates=True,
            remove_control_chars=True,
            normalization=None,  # NFC is applied below, once, for every document
        )
    return _FTFY_CONFIG


# C1 controls and Latin ligatures: ftfy fixes them even where nothing looks like mojibake.
_C1 = re.compile("[\x80-\x9f\ufb00-\ufb06]")
_ANSI = re.compile("\x1b(?:\\[[0-?]*[ -/]*[@-~]|[@-Z\\\\-_])")
_LINEBREAKS = re.compile("[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_C0_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f\ufeff\ufffe\uffff\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufeff\ufffe\uffff\ud800-\udfff]")
# Horizontal whitespace that needs rewriting: anything but a lone ' '.
# (a class alone: an alternation with "  " makes the engine try both at every
# character, about three times slower; the double space is a substring test)
_HSPACE_ANY = re.compile(
    "[\t\x0b\x0c\r\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_HSPACE_RUN = re.compile(r"(?: [^\S\n]|[^\S\n ])[^\S\n]*")
_SPACE_NL = re.compile(r" \n ?|\n ")
_MANY_NL = re.compile(r"\n{3,}")


# Every character one of the rewrites below looks for (line breaks but "\n", C0
# and C1 controls, escapes, horizontal whitespace other than a space,
# ligatures): one scan of a character class (and a substring test for a
# double space) that finds none of them lets a document skip the five scans
# that would each find nothing; most documents need none of those rewrites.
_SPECIAL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    "\ufb00-\ufb06\ufeff\ufffe\uffff\ud800-\udfff]")

_NON_ASCII = re.compile("[^\x00-\x7f]+")
_CONTEXT = 3


def suspicious_windows(text: str) -> str:
    """The non-ASCII runs of ``text`` with a few characters of context each.

    Every mojibake pattern ftfy's badness detector looks for involves a
    non-ASCII character within a couple of positions, so testing these
    windows finds what testing the whole text finds, at a fraction of the
    cost on mostly-ASCII text (the detector is one large regex, ~6 MB/s).
    """
    parts = []
    for m in _NON_ASCII.finditer(text):
        start, end = m.span()
        parts.append(text[max(0, start - _CONTEXT):end + _CONTEXT])
    return "\n".join(parts)


def _needs_ftfy(text: str) -> bool:
    if _C1.search(text) or "\x1b" in text:
        return True
    return _is_bad(text)


def _is_bad(text: str) -> bool:
    """ftfy's mojibake detector, on the non-ASCII windows of ``text``."""
    from ftfy.badness import is_bad

    return is_bad(suspicious_windows(text))


def _fix_flagged_lines(text: str) -> str:
    """ftfy on the lines that need it (ftfy itself fixes text line by line)."""
    import ftfy

    config = _ftfy_config()
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.isascii() and _needs_ftfy(line):
            lines[i] = ftfy.fix_text(line, config)
    return "\n".join(lines)


def _whitespace(text: str) -> str:
    if "  " in text or _HSPACE_ANY.search(text):
        text = _HSPACE_RUN.sub(" ", text)
    if " \n" in text or "\n " in text:
        text = _SPACE_NL.sub("\n", text)
    if "\n\n\n" in text:
        text = _MANY_NL.sub("\n\n", text)
    return text.strip()


def _one_round(text: str, fix_unicode: bool) -> Tuple[str, bool]:
    """One pass of the steps; also says whether ftfy, C1 removal or NFC changed anything.

    Each rewrite is guarded by a cheap search: most documents need few of them.
    """
    ascii_only = text.isascii()
    if "  " not in text and _SPECIAL.search(text) is None:
        return _plain_round(text, ascii_only, fix_unicode)
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if _LINEBREAKS.search(text):
        text = _LINEBREAKS.sub("\n", text)
    # C0 controls and whitespace go before the mojibake check, which must see
    # the text as it will end up (a NUL inside "Ã\x00©" hides mojibake; an
    # ideographic space next to "Â" becomes one). C1 controls stay for ftfy,
    # which reads them as cp1252 bytes.
    if _C0_CONTROLS.search(text):
        text = _C0_CONTROLS.sub("", text)
    text = _whitespace(text)
    if ascii_only:
        return text, False
    return _deep_fixes(text, fix_unicode and _needs_ftfy(text), controls_possible=True)


def _deep_fixes(text: str, flagged: bool, controls_possible: bool) -> Tuple[str, bool]:
    """ftfy on the flagged lines, C1 controls out, NFC; and whether any of it changed the text.

    ``controls_possible=False``: the text had no control character, so only
    what ftfy wrote needs the search.
    """
    deep_change = False
    if flagged:
        fixed = _fix_flagged_lines(text)
        deep_change = fixed != text
        text = fixed
    if (controls_possible or deep_change) and _CONTROLS.search(text):
        text = _CONTROLS.sub("", text)
        deep_change = True
    if deep_change:
        text = _whitespace(_LINEBREAKS.sub("\n", text))
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
        deep_change = True
    return text, deep_change


def _plain_round(text: str, ascii_only: bool, fix_unicode: bool) -> Tuple[str, bool]:
    """:func:`_one_round` for a text without any character of :data:`_SPECIAL`.

    The same steps, less the searches that cannot match: no escape, carriage
    return, line break or control to remove, no horizontal whitespace to
    rewrite, no C1 control or ligature for ftfy to fix outside mojibake.
    """
    if " \n" in text or "\n " in text:
        text = _SPACE_NL.sub("\n", text)
    if "\n\n\n" in text:
        text = _MANY_NL.sub("\n\n", text)
    text = text.strip()
    if ascii_only:
        return text, False
    return _deep_fixes(text, fix_unicode and _is_bad(text), controls_possible=False)


def clean_text(text: str, fix_unicode: bool = True) -> str:
    """Normalize text; idempotent. See the module docstring for the steps."""
    cleaned, deep_change = _one_round(text, fix_unicode)
    # Whitespace and control rewrites are a fixed point after one pass; ftfy
    # and NFC can expose work for each other, so they repeat until stable.
    for _ in range(3):
        if not deep_change:
            break
        again, deep_change = _one_round(cleaned, fix_unicode)
        if again == cleaned:
            break
        cleaned = again
    return cleaned


# Pages nested deeper than this (an upper bound, see html_depth_bound) skip the
# DOM extractor, whose parser is quadratic in the depth: at 1000 it takes about
# 20 ms, at 8000 over a second, at 200000 (1 MB of <div>) many minutes.
MAX_HTML_DEPTH = 1000
HTML_FALLBACK = "html_main_content_fallback"

# Start and end tags of elements that nest: not void elements, and not those
# whose end tag may be left out (an unclosed <p> or <li> does not deepen a page).
_NESTING_TAG = re.compile(
    r"<(/?)(?!(?:area|base|br|col|embed|hr|img|input|keygen|link|meta|param|source|track|wbr"
    r"|p|li|dt|dd|tr|td|th|option|optgroup|rb|rt|rtc|rp|tbody|thead|tfoot|colgroup|caption"
    r"|html|head|body)[\s/>])[a-zA-Z]", re.I)
_STEP = {"": 1, "/": -1}


def html_depth_bound(html: str) -> int:
    """An upper bound on how deeply the elements of ``html`` nest.

    Start tags count +1 and end tags -1 (void and optional-end elements
    aside); the bound is the highest running total less the lowest (so stray
    end tags cannot hide depth). Regex and C-level sums: linear, no DOM.
    """
    brackets = html.count("<")
    if brackets <= MAX_HTML_DEPTH:
        return brackets  # cannot nest deeper than it has tags
    totals = list(itertools.accumulate(map(_STEP.__getitem__, _NESTING_TAG.findall(html))))
    if not totals:
        return 0
    return max(totals) - min(0, min(totals))


# Raw-text and hidden elements whose content is not visible text.
_HIDDEN = ("script", "style", "noscript", "template", "title", "svg", "math", "iframe", "object")
_HIDDEN_START = re.compile(r"<!--|<(" + "|".join(_HIDDEN) + r")(?=[\s/>])", re.I)
_HIDDEN_END = {name: re.compile(r"</" + name + r"(?=[\s/>])", re.I) for name in _HIDDEN}
_BLOCK_TAG = re.compile(
    r"</?(?:address|article|aside|blockquote|br|dd|details|div|dl|dt|fieldset|figcaption|figure"
    r"|footer|form|h[1-6]|header|hr|li|main|nav|ol|p|pre|section|summary|table|td|th|tr|ul)"
    r"(?=[\s/>])[^<>]*>", re.I)
# A tag is "<" then a letter, "/", "!" or "?", up to the next ">" without
# crossing another "<" (so a stray "<" costs no rescan of the rest).
_ANY_TAG = re.compile(r"<[a-zA-Z/!?][^<>]*>")


def visible_text(html: str) -> str:
    """The visible text of an HTML page without a DOM: linear in its size.

    Comments and the content of script, style, title and similar elements go
    (an unclosed one hides the rest of the page, as in a browser); block
    tags become line breaks, other tags go; entities are decoded. The
    fallback for pages too deeply nested for :func:`html_to_text`.
    """
    parts = []
    pos = 0
    while True:
        m = _HIDDEN_START.search(html, pos)
        if m is None:
            parts.append(html[pos:])
            break
        parts.append(html[pos:m.start()])
        if m.group(1) is None:  # a comment
            end = html.find("-->", m.end())
            pos = len(html) if end == -1 else end + 3
            continue
        close = _HIDDEN_END[m.group(1).lower()].search(html, m.end())
        if close is None:
            break
        gt = html.find(">", close.end())
        pos = len(html) if gt == -1 else gt + 1
    text = _ANY_TAG.sub("", _BLOCK_TAG.sub("\n", "".join(parts)))
    return html_lib.unescape(text)


def html_to_text(html: str, main_content: bool = True) -> str:
    """Visible text of an HTML page; with ``main_content`` boilerplate is removed.

    Pages nested deeper than :data:`MAX_HTML_DEPTH` get :func:`visible_text`
    instead (see :func:`html_to_text_checked` to know when).
    """
    return html_to_text_checked(html, main_content)[0]


def html_to_text_checked(html: str, main_content: bool = True) -> Tuple[str, bool]:
    """(:func:`html_to_text` of ``html``, whether it fell back to :func:`visible_text`)."""
    if html_depth_bound(html) > MAX_HTML_DEPTH:
        return visible_text(html), True
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(
        html,
        main_content=main_content,
        alt_texts=False,
        links=False,
        form_fields=False,
        noscript=False,
        preserve_formatting=True,
    ), False


@dataclasses.dataclass(frozen=True)
class CleanConfig:
    """``html``: 'auto' (a record's content type, else sniffing), 'always' or 'never'."""

    html: str = "auto"
    main_content: bool = True
    fix_unicode: bool = True

    def __post_init__(self):
        if self.html not in ("auto", "always", "never"):
            raise ValueError(f"html must be 'auto', 'always' or 'never', got {self.html!r}")


class Cleaner:
    """The pure core of the clean step: record -> cleaned record or a drop reason.

    ``last_info`` names what the last call noted without dropping the record
    (:data:`HTML_FALLBACK`), or is None.
    """

    def __init__(self, config: CleanConfig = CleanConfig()):
        self.config = config
        self.last_info: Optional[str] = None

    def is_html(self, record: dict) -> bool:
        if self.config.html == "always":
            return True
        if self.config.html == "never":
            return False
        return bool(record.get("meta", {}).get("html"))

    def __call__(self, record: dict) -> tuple[Optional[dict], Optional[str]]:
        text = record["text"]
        self.last_info = None
        if self.is_html(record):
            text, fell_back = html_to_text_checked(text, self.config.main_content)
            if fell_back:
                self.last_info = HTML_FALLBACK
        text = clean_text(text, self.config.fix_unicode)
        if not text:
            return None, "empty_after_clean"
        out = dict(record)
        out["text"] = text
        return out, None


# ---------------------------------------------------------------------------
# Beam


class _CleanDoFn(accounting.CountingDoFn):
    def __init__(self, config: CleanConfig):
        super().__init__()
        self._config = config
        self._cleaner = None

    def setup(self):
        self._cleaner = Cleaner(self._config)

    def process(self, record: dict):
        start = time.perf_counter()
        out, reason = self._cleaner(record)
        self.time("clean", time.perf_counter() - start)
        if self._cleaner.last_info is not None:
            self.count(INFO, self._cleaner.last_info)
        if reason is not None:
            self.count(FILTERED, reason)
            self.sample(FILTERED, reason, record)
            return
        yield out


class Clean(beam.PTransform):
    """Records -> cleaned records; drops go to the ``counts`` output."""

    def __init__(self, config: CleanConfig = CleanConfig()):
        super().__init__()
        self._config = config

    def expand(self, records):
        return records | "CleanText" >> beam.ParDo(_CleanDoFn(self._config)).with_outputs(
            accounting.COUNTS, accounting.SAMPLES, main="records")
