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
   be mojibake), and on other text only when ftfy's own badness detector, a
   single compiled regex, flags it or C1 controls are present.
2. ANSI terminal escapes removed; every line-break convention becomes ``\\n``.
3. Control characters (C0 but tab and newline, DEL, C1), NULs, byte-order
   marks, non-characters and lone surrogates removed.
4. Whitespace: runs of horizontal whitespace (any Unicode space, NBSP
   included) become one space; spaces around newlines go; three or more
   newlines become two (paragraphs survive); the ends are stripped.
5. NFC normalization.

Because a later step can create input for an earlier one (removing a NUL can
expose mojibake, NFC can compose a character ftfy flags), non-ASCII text runs
the steps to a fixed point (at most four rounds, almost always one). ASCII
text is untouched by steps 1 and 5, so one round is its fixed point.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Optional

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


_C1 = re.compile("[\x80-\x9f]")
_ANSI = re.compile("\x1b(?:\\[[0-?]*[ -/]*[@-~]|[@-Z\\\\-_])")
_LINEBREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufeff\ufffe\uffff\ud800-\udfff]")
_HSPACE = re.compile(r"[^\S\n]+")
_SPACE_NL = re.compile(r" ?\n ?")
_MANY_NL = re.compile(r"\n{3,}")


def _needs_ftfy(text: str) -> bool:
    if _C1.search(text) or "\x1b" in text:
        return True
    from ftfy.badness import is_bad

    return is_bad(text)


def _one_round(text: str, fix_unicode: bool) -> str:
    ascii_only = text.isascii()
    if fix_unicode and not ascii_only and _needs_ftfy(text):
        import ftfy

        text = ftfy.fix_text(text, _ftfy_config())
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    text = _LINEBREAKS.sub("\n", text)
    text = _CONTROLS.sub("", text)
    text = _HSPACE.sub(" ", text)
    text = _SPACE_NL.sub("\n", text)
    text = _MANY_NL.sub("\n\n", text).strip()
    if not ascii_only and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text


def clean_text(text: str, fix_unicode: bool = True) -> str:
    """Normalize text; idempotent. See the module docstring for the steps."""
    cleaned = _one_round(text, fix_unicode)
    if cleaned.isascii():
        return cleaned
    for _ in range(3):
        again = _one_round(cleaned, fix_unicode)
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
        out, reason = self._cleaner(record)
        if reason is not None:
            self.count(FILTERED, reason)
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
