"""Cleaning: HTML to text, mojibake repair, Unicode and whitespace normalization.

Two pure functions and a thin DoFn:

* :func:`html_to_text` -- main-content extraction with boilerplate removal
  (navigation, sidebars, footers) by Resiliparse, a maintained C++ extractor.
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
"""

from __future__ import annotations

import dataclasses
import re
import time
import unicodedata
from typing import Optional, Tuple

import apache_beam as beam

from transforms import common
from transforms.common import FILTERED

__all__ = ["CleanConfig", "html_to_text", "clean_text", "Cleaner", "Clean"]

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
_HSPACE_ANY = re.compile(
    "[\t\x0b\x0c\r\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|  ")
_HSPACE_RUN = re.compile(r"(?: [^\S\n]|[^\S\n ])[^\S\n]*")
_SPACE_NL = re.compile(r" \n ?|\n ")
_MANY_NL = re.compile(r"\n{3,}")


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
    if _HSPACE_ANY.search(text):
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
    deep_change = False
    if not ascii_only:
        if fix_unicode and _needs_ftfy(text):
            fixed = _fix_flagged_lines(text)
            deep_change = fixed != text
            text = fixed
        if _CONTROLS.search(text):
            text = _CONTROLS.sub("", text)
            deep_change = True
        if deep_change:
            text = _whitespace(_LINEBREAKS.sub("\n", text))
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
            deep_change = True
    return text, deep_change


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


def html_to_text(html: str, main_content: bool = True) -> str:
    """Visible text of an HTML page; with ``main_content`` boilerplate is removed."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(
        html,
        main_content=main_content,
        alt_texts=False,
        links=False,
        form_fields=False,
        noscript=False,
        preserve_formatting=True,
    )


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
    """The pure core of the clean step: record -> cleaned record or a drop reason."""

    def __init__(self, config: CleanConfig = CleanConfig()):
        self.config = config

    def is_html(self, record: dict) -> bool:
        if self.config.html == "always":
            return True
        if self.config.html == "never":
            return False
        return bool(record.get("meta", {}).get("html"))

    def __call__(self, record: dict) -> tuple[Optional[dict], Optional[str]]:
        text = record["text"]
        if self.is_html(record):
            text = html_to_text(text, self.config.main_content)
        text = clean_text(text, self.config.fix_unicode)
        if not text:
            return None, "empty_after_clean"
        out = dict(record)
        out["text"] = text
        return out, None


class _CleanDoFn(common.CountingDoFn):
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
            common.COUNTS, main="records")
