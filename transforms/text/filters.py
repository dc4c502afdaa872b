"""Document quality filters: C4 line/page rules, Gopher repetition, Gopher quality.

Pure Python (no Apache Beam import); the Beam transform wraps :class:`TextFilter`.

The rules and their published thresholds come from

* C4 -- Raffel et al. 2019, "Exploring the Limits of Transfer Learning ...",
  section 2.2, as implemented by the C4 reference code (tfds ``c4_utils``) and by
  datatrove's ``C4QualityFilter``;
* Gopher -- Rae et al. 2021, "Scaling Language Models: Methods, Analysis &
  Insights from Training Gopher", Appendix A (quality filters) and Table A1
  (repetition filters), with datatrove 0.10.1's defaults
  (``GopherQualityFilter``, ``GopherRepetitionFilter``).

Order of evaluation
-------------------
``TextFilter(text)`` returns ``(text_after_line_rules, reason)``; ``reason`` is
``None`` when the document is kept, otherwise the *first* failing rule in this
order (the order of :data:`REASONS`):

1. **C4** (``FilterConfig.c4``), one pass over the lines (``str.splitlines``),
   like the C4 reference code (small deviations listed below).  Each line is
   stripped, then

   a. Wikipedia citation markers (``[1]``, ``[edit]``, ``[citation needed]``)
      are deleted (``c4_remove_citations``)
   b. a word longer than ``c4_max_word_length``  -> line removed (``c4_line_long_word``)
   c. no terminal punctuation (``. ? ! " '``) or ending in ``...`` -> line
      removed (``c4_line_no_terminal_punct``; blank lines land here too unless
      ``c4_keep_paragraph_breaks``, the default, keeps one blank line per break)
   d. fewer than ``c4_min_words_per_line`` whitespace words -> line removed
      (``c4_line_too_few_words``)
   e. "lorem ipsum" (any case) -> **page dropped** (``c4_lorem_ipsum``)
   f. "javascript" (any case) -> line removed (``c4_line_javascript``)
   g. a curly bracket ``{`` -> **page dropped** (``c4_curly_bracket``)
   h. a cookie / terms-of-use / privacy-policy phrase -> line removed
      (``c4_line_policy``)

   As in C4 and datatrove, the page rules (e) and (g) only look at lines that
   survived the line rules listed before them, and the first such line (in
   line order) decides which of the two is reported.  When a page rule fires,
   the *input* text is returned unchanged with the reason.  Then, on the kept
   lines joined with ``"\\n"``: fewer than ``c4_min_sentences`` sentences (``c4_min_sentences``),
   nothing left (``c4_empty``), a word of ``bad_words`` (``c4_bad_words``).
2. **Gopher repetition** (``gopher_repetition``) on the C4 output, in
   datatrove's order: duplicate paragraph fraction, duplicate paragraph
   character fraction, duplicate line fraction, duplicate line character
   fraction, top 2/3/4-gram character fraction, duplicate 5..10-gram character
   fraction.
3. **Gopher quality** (``gopher_quality``), in datatrove's order: word count
   (min, max), mean word length, ``#`` / ellipsis to word ratio, bullet lines,
   ellipsis lines, alphabetic words, stop words.
4. **Length bounds** on the final text: ``min_chars`` (``too_short``),
   ``max_chars`` (``too_long``).

No rule is reordered for speed: the reported reason is always the first
failing rule of this list.  The word rules' numbers (tokens, n-gram
repetition, word counts, stop words) come from one compiled pass over the
page (:mod:`transforms.text.filter_kernel`, numba) for the default kind of
words, about 3.5x faster than the pure-Python rules below, which stay for the
other kinds of words, for ``TextFilter(kernel=False)`` and without numba, and
give the same decisions (``tests/test_filter_kernel.py``).  In pure Python,
speed comes from doing the work once (one lower-
casing per page instead of per line, one tokenisation shared by every
word-level rule, n-gram identities derived incrementally from (n-1)-gram
identities with C-level ``map``/``zip``/``dict.setdefault``) and from exact
shortcuts (a rule whose trigger substring is absent is skipped; duplicate
n-gram coverage never grows with n, so the longer n-gram rules are skipped
once the coverage is under all of their thresholds).

Languages
---------
``TextFilter(text, language=...)`` takes the ``lang`` step's label and
applies that language's rules (:meth:`TextFilter.__call__`): the language's
stop-word list (``stopwords/<language>.txt``; the rule is skipped without
one), ``by_language`` overrides, words cut as the script needs (a character
of Chinese, Thai, Lao, Khmer, Burmese or Tibetan is a word; a run of kanji,
hiragana or katakana is a Japanese word; hyphenated compounds are one word in
de, nl, sv, da, no, fi, id and ms), with the mean-word-length and C4
long-word rules skipped for scripts without spaces, and the alphabetic-words
and mean-word-length thresholds carried over from English by the language's
measured scales (:func:`scaled_thresholds`, :mod:`transforms.text.calibrate`;
``scale_by_language``). C4's terminal marks and
sentence count know the sentence ends of other scripts (。！？ ؟ । ...). Without a
label the English rules apply, except that a text mostly in a script without
spaces gets its character words and no stop-word rule.

Words
-----
One regex tokenisation per document (``_TOKEN_RE``), standing in for
datatrove's spaCy word tokenizer: runs of word characters (joined across
``'``, ``’`` and ``.`` between word characters: ``don't``, ``U.S``, ``3.5``)
and runs of other non-space characters (punctuation / symbol tokens).  As in
datatrove, the n-gram rules and the alphabetic-word / symbol ratios count
every token; word count and mean word length count only non-symbol tokens.

Deviations from datatrove 0.10.1
--------------------------------
* Tokenisation: the regex above instead of spaCy (``don't`` is one token, not
  ``do`` + ``n't``; a punctuation run such as ``."`` is one token, not two).
* C4 sentence count: a regex that counts sentence ends inside a line (``. ! ?``
  followed by whitespace, not part of ``...`` nor of a few common
  abbreviations) plus one per non-empty kept line, instead of spaCy's
  sentencizer; it is only consulted when fewer kept lines than
  ``c4_min_sentences`` remain.
* C4 terminal punctuation: besides C4's marks and closing quotes, the sentence
  ends of other scripts (。！？ ؟ । ...), and a mark followed by closing
  brackets (``(See below.)``), as Unicode's sentence rules (UAX #29) read it.
* C4 citations are removed first, until none is left, and the line is
  stripped again; the long-word and words-per-line checks then look at that
  line (datatrove removes citations after the long-word check, once, and counts
  words before removing them).  This makes the filter idempotent on its own
  output: ``TextFilter(kept_text)`` returns the same text and decision.
* Duplicate n-gram character fraction: characters of the tokens covered by any
  *repeated* occurrence of an n-gram (every occurrence after the first), the
  union of those spans, over ``len(text)``.  datatrove scans greedily and skips
  n tokens after each hit, which can count slightly less.
* Empty text after C4 is dropped as ``c4_empty`` (with C4 on); the Gopher
  repetition rules skip an empty text (datatrove drops it as "empty") and the
  ratio rules skip a text without tokens or lines (datatrove divides by zero).
* ``#`` and ellipsis ratios share one reason, ``gopher_symbol_word_ratio``;
  minimum and maximum mean word length share ``gopher_mean_word_length``.
* ``bad_words`` (C4's page rule, off by default) matches whole words or
  phrases, case-insensitively, on the text kept by the C4 line rules.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections import Counter
from itertools import accumulate, compress, filterfalse
from operator import itemgetter, ne
from typing import Any

from transforms.text.lang import NO_SPACE_CHARS, NO_SPACE_LANGUAGES, UNKNOWN, no_space_script_share

__all__ = ["FilterConfig", "TextFilter", "REASONS", "LINE_REASONS", "stop_words_for"]

# n of the Gopher n-gram rules; the reasons are fixed, so only these n are allowed.
_TOP_NS = (2, 3, 4)
_DUP_NS = (5, 6, 7, 8, 9, 10)

REASONS: tuple[str, ...] = (
    "c4_lorem_ipsum",
    "c4_curly_bracket",
    "c4_min_sentences",
    "c4_empty",
    "c4_bad_words",
    "gopher_dup_para_frac",
    "gopher_dup_para_char_frac",
    "gopher_dup_line_frac",
    "gopher_dup_line_char_frac",
    *(f"gopher_top_{n}_gram" for n in _TOP_NS),
    *(f"gopher_dup_{n}_gram" for n in _DUP_NS),
    "gopher_min_words",
    "gopher_max_words",
    "gopher_mean_word_length",
    "gopher_symbol_word_ratio",
    "gopher_bullet_lines",
    "gopher_ellipsis_lines",
    "gopher_alpha_words",
    "gopher_stop_words",
    "too_short",
    "too_long",
)

LINE_REASONS: tuple[str, ...] = (
    "c4_line_no_terminal_punct",
    "c4_line_too_few_words",
    "c4_line_javascript",
    "c4_line_policy",
    "c4_line_long_word",
)

# Gopher: "the, be, to, of, and, that, have, with" (case-sensitive, as datatrove).
STOP_WORDS: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")

# C4 reference code / datatrove.
C4_POLICY_SUBSTRINGS: tuple[str, ...] = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
# C4's terminal marks, then other scripts' sentence ends (CJK full stops and
# marks, Arabic and Urdu, Devanagari danda, Armenian, Ethiopic, Burmese) and
# closing quotes, as a line may end with a quoted sentence in any language.
_END_PUNCTUATION = (".", "?", "!", '"', "'",
                    "。", "！", "？", "｡", "．", "؟", "۔", "।", "॥", "։", "።", "፧", "။",
                    "”", "’", "“", "‘", "»", "«", "」", "』", "）")
# Closing brackets and quotes that may follow a sentence's mark (Unicode's
# sentence rules, UAX #29: a terminator, then Close characters): "(See below.)"
# ends a sentence, "(see below)" does not.
_CLOSERS = ")]}\"'”’»«」』）］"
_TERMINATORS = tuple(m for m in _END_PUNCTUATION if m not in _CLOSERS + "“‘")
# A sentence end inside a line in scripts that put no space after it (。！？).
_CJK_SENTENCE_END_RE = re.compile(r"[。！？｡][」』”’）)]*(?=\S)")
# Tokens of text in a script written without spaces: each character of such a
# script (with the combining marks after it) is a word; other runs as _WORD.
_NS = NO_SPACE_CHARS
_MARKS = "[\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ecd\u17b4-\u17d3" \
         "\u102b-\u103e\u0f71-\u0f84\u3099\u309a]"
_NS_WORD = rf"{_NS}{_MARKS}*|(?:(?!{_NS})\w)+(?:['’.](?:(?!{_NS})\w)+)*"
# Japanese mixes three scripts: a run of kanji (a compound), of hiragana
# (particles, endings) or of katakana (a loanword) is one word, which is how
# simple segmenters (TinySegmenter's character classes) start.
_KANJI, _HIRAGANA = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff", "\u3040-\u309f"
_KATAKANA = "\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_JA_WORD = (rf"[{_KANJI}]+|[{_HIRAGANA}]+|[{_KATAKANA}]+|"
            rf"(?:(?!{_NS})\w)+(?:['’.](?:(?!{_NS})\w)+)*")
_WORD_KINDS = {
    "chars": {"token": re.compile(_NS_WORD + r"|[^\w\s\x1c-\x1f]+"), "word": re.compile(_NS_WORD)},
    "ja": {"token": re.compile(_JA_WORD + r"|[^\w\s\x1c-\x1f]+"), "word": re.compile(_JA_WORD)},
}
_KANA = re.compile(f"[{_HIRAGANA}{_KATAKANA}]")
# Languages that write compounds with a hyphen between letters
# ("Debian-Installer"): one word, as spaCy's German tokenizer keeps it; and
# Indonesian and Malay, whose plural repeats the word with a hyphen
# ("paket-paket"), one word.
_HYPHEN_COMPOUNDS = frozenset({"de", "nl", "sv", "da", "no", "fi", "id", "ms"})
_HYPHEN_WORD = r"\w+(?:['’.\-]\w+)*"
_WORD_KINDS["hyphen"] = {"token": re.compile(_HYPHEN_WORD + r"|[^\w\s\x1c-\x1f]+"),
                         "word": re.compile(_HYPHEN_WORD)}
_STOP_WORD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stopwords")


@functools.lru_cache(maxsize=None)
def stop_words_for(language: str) -> tuple[str, ...] | None:
    """The stop-word list of ``language`` (``stopwords/<language>.txt``), or None without one."""
    if not (language.isascii() and language.isalpha() and language.islower()):
        return None
    path = os.path.join(_STOP_WORD_DIR, f"{language}.txt")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return tuple(w.strip() for w in f if w.strip() and not w.startswith("#"))


@functools.lru_cache(maxsize=1)
def language_scales() -> dict:
    """The shipped per-language scales ({language: {"non_alpha_share", "mean_word_length"}})."""
    from transforms.text.calibrate import load_scales

    return load_scales()


def scaled_thresholds(config: "FilterConfig", language: str | None, *,
                      no_space: bool = False) -> dict[str, Any]:
    """The alphabetic-words and mean-word-length thresholds of ``config`` carried over to ``language``.

    The allowed share of tokens without a letter (``1 - max_non_alpha_words_ratio``)
    is multiplied by the language's ``non_alpha_share`` scale and the mean-word-length
    bounds by its ``mean_word_length`` scale (none for scripts without spaces, whose
    rule is skipped). Empty for English, unlabelled text, a language without scales,
    or ``scale_by_language=False``; a rule that is off stays off.
    """
    if not config.scale_by_language or not language or language == "en":
        return {}
    row = language_scales().get(language)
    if not row:
        return {}
    out: dict[str, Any] = {}
    if config.max_non_alpha_words_ratio:
        allowed = (1.0 - config.max_non_alpha_words_ratio) * row["non_alpha_share"]
        out["max_non_alpha_words_ratio"] = round(min(max(1.0 - allowed, 0.001), 1.0), 4)
    if not no_space:
        for name in ("min_mean_word_length", "max_mean_word_length"):
            if getattr(config, name):
                out[name] = round(getattr(config, name) * row["mean_word_length"], 3)
    return out


_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")

# Tokenisation shared by every word-level rule (see module docstring).
# _ALPHA_WORD_RE counts each word token that contains a letter exactly once: a
# match starts at the first letter of the token and runs to the end of it.
# Each pattern is compiled twice: for any text, and (re.ASCII, about twice as
# fast) for pure-ASCII text, where both give the same tokens (the explicit
# \x1c-\x1f keeps ASCII \s equal to Unicode \s on ASCII characters).
_WORD = r"\w+(?:['’.]\w+)*"
_PATTERNS = {
    "token": _WORD + r"|[^\w\s\x1c-\x1f]+",
    "word": _WORD,
    "alpha": r"[^\W\d_]\w*(?:['’.]\w+)*",
}
_UNICODE_RES = {k: re.compile(v) for k, v in _PATTERNS.items()}
_ASCII_RES = {k: re.compile(v, re.ASCII) for k, v in _PATTERNS.items()}
_TOKEN_RE = _UNICODE_RES["token"]
_NO_LETTER_RE = re.compile(r"[\d_'’.]+")


def alpha_word_count(words) -> int:
    r"""Word tokens with a letter (``[^\W\d_]``), as Gopher's alphabetic-words rule counts them.

    All-letter tokens, and the rest unless made only of decimal digits, "_" and
    the joiners; equal to the number of ``_PATTERNS["alpha"]`` matches.
    """
    if not isinstance(words, (list, tuple)):
        words = list(words)
    letters = sum(map(str.isalpha, words))  # most words: counted in C
    return letters + sum(1 for t in filterfalse(str.isalpha, words)
                         if not (t.isdecimal() or _NO_LETTER_RE.fullmatch(t)))

# A sentence end inside a line: terminal mark (not part of "..."), optional
# closing quotes/brackets, whitespace, then more text.  Not after a few common
# abbreviations or a single capital initial.
_SENTENCE_END_RE = re.compile(
    r"(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)(?<!\bvs)(?<!\be\.g)(?<!\bi\.e)"
    r"(?<!\b[A-Z])(?<!\.\.)[.!?](?!\.)[\"'”’)\]]*[^\S\n]+(?=\S)"
)
_PARAGRAPH_SPLIT_RE = re.compile(r"\n{2,}")


def _ends_sentence(line: str) -> bool:
    """C4's terminal-punctuation test, with a mark inside closing brackets counted.

    True for a line ending in one of :data:`_END_PUNCTUATION` (not "..."), or in
    a sentence mark followed only by closing brackets and quotes (``.)``,
    ``?"]``, ``。」``).
    """
    if line.endswith(_END_PUNCTUATION):
        return not line.endswith("...")
    if not line.endswith(tuple(_CLOSERS)):
        return False
    inner = line.rstrip(_CLOSERS)
    return inner.endswith(_TERMINATORS) and not inner.endswith("...")
_LINES_SPLIT_RE = re.compile(r"\n+")


def _paragraphs(text: str) -> list:
    """``_PARAGRAPH_SPLIT_RE.split(text)``; a plain split where no run is longer than two."""
    return text.split("\n\n") if "\n\n\n" not in text else _PARAGRAPH_SPLIT_RE.split(text)


def _lines(text: str) -> list:
    """``_LINES_SPLIT_RE.split(text)``, by ``str.split``: the empty lines between two
    others go, an empty first or last piece stays (a page's leading and trailing
    line breaks)."""
    pieces = text.split("\n")
    if "\n\n" not in text:
        return pieces
    inner = [p for p in pieces[1:-1] if p]
    return [pieces[0], *inner, pieces[-1]] if len(pieces) > 1 else pieces


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Every rule of :class:`TextFilter`, each switchable or tunable.

    A Gopher threshold of ``None`` or ``0`` disables its rule (as in
    datatrove); a C4 count of ``0`` or less disables its rule.
    """

    # group switches
    gopher_quality: bool = True
    gopher_repetition: bool = True
    c4: bool = True
    # length bounds on the final (post-line-filter) text, in characters; 0 = off
    min_chars: int = 0
    max_chars: int = 0

    # --- Gopher quality (Rae et al. 2021, Appendix A; datatrove defaults) ---
    min_words: int | None = 50  # non-symbol words
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3
    max_mean_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1  # "#" and "..."/"…" per token
    max_bullet_lines_ratio: float | None = 0.9  # lines starting with "•" or "-"
    max_ellipsis_lines_ratio: float | None = 0.3  # lines ending with "..." or "…"
    # Named as in datatrove, but it is a minimum: at least 80% of the tokens
    # must contain an alphabetic character.
    max_non_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: tuple[str, ...] = STOP_WORDS

    # --- Gopher repetition (Rae et al. 2021, Table A1) ---
    dup_line_frac: float | None = 0.30
    dup_para_frac: float | None = 0.30
    dup_line_char_frac: float | None = 0.20
    dup_para_char_frac: float | None = 0.20
    # (n, max fraction of characters in the most frequent n-gram); n in 2..4
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.20), (3, 0.18), (4, 0.16))
    # (n, max fraction of characters in duplicated n-grams); n in 5..10
    dup_n_grams: tuple[tuple[int, float], ...] = (
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    )

    # --- C4 (Raffel et al. 2019, section 2.2; datatrove C4QualityFilter) ---
    # The paper keeps lines with at least 5 words; datatrove's default (and the
    # one used here) is 3.
    c4_min_words_per_line: int = 3
    c4_max_word_length: int = 1000
    c4_min_sentences: int = 5  # per page, after line removal
    c4_remove_citations: bool = True
    c4_filter_javascript: bool = True
    c4_filter_curly_bracket: bool = True
    c4_filter_lorem_ipsum: bool = True
    c4_filter_policy: bool = True
    c4_terminal_punctuation: bool = True
    c4_drop_empty: bool = True  # drop a page with no line left
    # Keep one blank line where the input had blank lines, so paragraphs survive
    # the line rules (C4 and datatrove drop blank lines; training text is better
    # with its paragraph structure, and the Gopher paragraph rules need it).
    c4_keep_paragraph_breaks: bool = True
    # C4's bad-word page rule (the "List of Dirty, Naughty, Obscene or Otherwise
    # Bad Words"); off unless words are given.  Whole words, case-insensitive.
    bad_words: tuple[str, ...] = ()
    # Hold a labelled document to the English thresholds carried over to its
    # language: the alphabetic-words and mean-word-length rules scaled by the
    # language's measured scales (language_scales.json; transforms.text.calibrate).
    # by_language values are taken as they are.
    scale_by_language: bool = True
    # Per-language overrides of the fields above, for documents the lang step
    # labelled: {"de": {"min_words": 80}, ...}; stored as sorted (language,
    # ((field, value), ...)) pairs.
    by_language: tuple = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "by_language":
                self._set_by_language(value)
            elif f.name in ("stop_words", "bad_words"):
                if isinstance(value, str) or not isinstance(value, (list, tuple)):
                    raise TypeError(f"{f.name} must be a sequence of strings, got {value!r}")
                value = tuple(value)
                if not all(isinstance(w, str) and w for w in value):
                    raise TypeError(f"{f.name} must contain non-empty strings, got {value!r}")
                object.__setattr__(self, f.name, value)
            elif f.name in ("top_n_grams", "dup_n_grams"):
                self._set_n_grams(f.name, value)
            elif f.default is True or f.default is False:
                if not isinstance(value, bool):
                    raise TypeError(f"{f.name} must be a bool, got {value!r}")
            else:
                ok = value is None or (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
                )
                if f.name.startswith("c4_") or f.name in ("min_chars", "max_chars"):
                    ok = isinstance(value, int) and not isinstance(value, bool)
                if not ok:
                    raise TypeError(f"{f.name} must be a non-negative number or None, got {value!r}")

    def _set_by_language(self, value: Any) -> None:
        if isinstance(value, dict):
            value = list(value.items())
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"by_language must map languages to field overrides, got {value!r}")
        names = {f.name for f in dataclasses.fields(self)} - {"by_language"}
        pairs = []
        for item in value:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise TypeError(f"by_language: expected (language, overrides) pairs, got {item!r}")
            language, overrides = item
            if not (isinstance(language, str) and 2 <= len(language) <= 3 and language.isascii()
                    and language.isalpha() and language.islower()):
                raise ValueError(f"by_language: {language!r} is not a language label (e.g. 'de')")
            overrides = dict(overrides)
            unknown = sorted(set(overrides) - names)
            if unknown:
                raise ValueError(f"by_language[{language!r}]: unknown FilterConfig key(s): "
                                 f"{', '.join(map(repr, unknown))}")
            checked = dataclasses.replace(self, by_language=(), **overrides)  # validates them
            pairs.append((language, tuple(sorted((k, getattr(checked, k)) for k in overrides))))
        languages = [lang for lang, _ in pairs]
        if len(set(languages)) != len(languages):
            raise ValueError(f"by_language: a language is listed twice in {languages}")
        object.__setattr__(self, "by_language", tuple(sorted(pairs)))

    def overrides_for(self, language: str) -> dict[str, Any]:
        """The fields ``by_language`` sets for ``language`` (empty when none)."""
        for lang, overrides in self.by_language:
            if lang == language:
                return dict(overrides)
        return {}

    def _set_n_grams(self, name: str, value: Any) -> None:
        allowed = _TOP_NS if name == "top_n_grams" else _DUP_NS
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a sequence of (n, fraction) pairs, got {value!r}")
        pairs = []
        for item in value:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise TypeError(f"{name}: expected (n, fraction) pairs, got {item!r}")
            n, frac = item
            if n not in allowed or isinstance(n, bool):
                raise ValueError(f"{name}: n must be one of {allowed}, got {n!r}")
            if frac is not None and (isinstance(frac, bool) or not isinstance(frac, (int, float))):
                raise TypeError(f"{name}: fraction must be a number or None, got {frac!r}")
            pairs.append((n, frac))
        ns = [n for n, _ in pairs]
        if ns != sorted(set(ns)):
            raise ValueError(f"{name}: n must be strictly increasing, got {ns}")
        object.__setattr__(self, name, tuple(pairs))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FilterConfig":
        """Build a config from a (JSON) dict; lists become tuples.

        Unknown keys raise ``ValueError`` naming the key.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in d if k not in names)
        if unknown:
            raise ValueError(f"unknown FilterConfig key(s): {', '.join(map(repr, unknown))}")
        return cls(**dict(d))  # __post_init__ turns lists into tuples

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples as lists); ``from_dict`` inverts it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("top_n_grams", "dup_n_grams"):
                value = [[n, frac] for n, frac in value]
            elif f.name == "by_language":
                value = {lang: {k: FilterConfig(**{k: v}).to_dict()[k] for k, v in overrides}
                         for lang, overrides in value}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def _duplicate_pieces(pieces: list, n_chars: int, max_frac, max_char_frac, kind: str) -> str | None:
    """Gopher's duplicate ``kind`` (paragraph or line) rules: the share of pieces that
    repeat an earlier one, then the share of characters in them."""
    uniq = set(pieces)
    if max_frac and (len(pieces) - len(uniq)) / len(pieces) > max_frac:
        return f"gopher_dup_{kind}_frac"
    if max_char_frac:
        dup_chars = sum(map(len, pieces)) - sum(map(len, uniq))
        if dup_chars / n_chars > max_char_frac:
            return f"gopher_dup_{kind}_char_frac"
    return None


def _remove_citations(text: str) -> str:
    """Delete citation markers until none is left: "[[1]]" -> "[]" -> ""."""
    while True:
        new = _CITATION_RE.sub("", text)
        if new == text:
            return text
        text = new


def _on(x: float | int | None) -> float | int | None:
    """Normalise a Gopher threshold: None/0 -> None (rule off)."""
    return x if x else None


class TextFilter:
    """Callable quality filter; build once, call per document (thread-safe)."""

    def __init__(self, config: FilterConfig = FilterConfig(), *, language: str | None = None,
                 words: str | None = None, stop_words_given: bool = False, kernel: bool = True):
        """``language``, ``words`` (how words are cut: ``"chars"`` or ``"ja"`` for scripts
        written without spaces, ``"hyphen"`` for hyphenated compounds; default: the
        regex of the module docstring) and ``stop_words_given`` (the config's
        ``stop_words`` are that language's own) make the variant for one language
        (see :meth:`__call__`). ``kernel=False`` keeps the word rules in pure
        Python (the compiled :mod:`transforms.text.filter_kernel` gives the same
        decisions; it serves the default kind of words)."""
        if not isinstance(config, FilterConfig):
            raise TypeError(f"config must be a FilterConfig, got {type(config).__name__}")
        c = self.config = config
        self._words = _WORD_KINDS[words] if words else None
        self._no_space = words in ("chars", "ja")
        self._variants: dict = {}
        self._c4 = c.c4
        self._rep = c.gopher_repetition
        self._qual = c.gopher_quality

        # C4
        self._max_word_len = c.c4_max_word_length if c.c4_max_word_length > 0 else 0
        self._min_words_line = c.c4_min_words_per_line if c.c4_min_words_per_line > 0 else 0
        self._min_sentences = c.c4_min_sentences if c.c4_min_sentences > 0 else 0
        self._bad_re = None
        if c.bad_words:
            alts = "|".join(re.escape(w.lower()) for w in sorted(set(c.bad_words), key=len, reverse=True))
            self._bad_re = re.compile(r"(?:\W|^)(?:%s)(?:\W|$)" % alts)

        # Gopher repetition
        self._dup_para = _on(c.dup_para_frac)
        self._dup_para_char = _on(c.dup_para_char_frac)
        self._dup_line = _on(c.dup_line_frac)
        self._dup_line_char = _on(c.dup_line_char_frac)
        self._top = tuple((n, f, f"gopher_top_{n}_gram") for n, f in c.top_n_grams if f)
        dup = [(n, f, f"gopher_dup_{n}_gram") for n, f in c.dup_n_grams if f]
        # smallest threshold among the rules after each one: coverage can only
        # shrink as n grows, so once it is under all of them they all pass.
        rest = [min((f for _, f, _ in dup[i + 1 :]), default=-1.0) for i in range(len(dup))]
        self._dup = tuple((n, f, r, m) for (n, f, r), m in zip(dup, rest))

        # Gopher quality
        self._min_words = _on(c.min_words)
        self._max_words = _on(c.max_words)
        self._min_mean = _on(c.min_mean_word_length)
        self._max_mean = _on(c.max_mean_word_length)
        self._max_symbol = _on(c.max_symbol_word_ratio)
        self._max_bullet = _on(c.max_bullet_lines_ratio)
        self._max_ellipsis = _on(c.max_ellipsis_lines_ratio)
        self._min_alpha = _on(c.max_non_alpha_words_ratio)
        self._min_stop = _on(c.min_stop_words)
        self._stop = frozenset(c.stop_words)
        if language is None and self._no_space:
            self._min_stop = None  # no label, no list: English words never occur in these scripts
        elif language is not None and language != "en" and not stop_words_given:
            own = stop_words_for(language)
            if own is None:
                self._min_stop = None  # no list for this language: the rule is skipped
            else:
                self._stop = frozenset(own)
        if self._no_space:  # a character "word" is one character long: mean length says nothing
            self._min_mean = self._max_mean = None
            self._max_word_len = 0

        self._min_chars = c.min_chars if c.min_chars > 0 else 0
        self._max_chars = c.max_chars if c.max_chars > 0 else 0

        # the compiled word rules (default words only); built on first use
        self._use_kernel = kernel and words is None
        self._kernel_args = None

    # ------------------------------------------------------------------ C4
    def _c4_lines(self, text: str, line_counts: dict | None) -> tuple[str, str | None]:
        c = self.config
        chk_cite = c.c4_remove_citations and "[" in text
        # Page-wide presence tests: a per-line test can only fire if its
        # substring occurs somewhere in the page (after citation removal,
        # which can join "lorem[1] ipsum"; citations never span lines).
        low = (_remove_citations(text) if chk_cite else text).lower()
        chk_lorem = c.c4_filter_lorem_ipsum and "lorem ipsum" in low
        chk_js = c.c4_filter_javascript and "javascript" in low
        chk_curly = c.c4_filter_curly_bracket and "{" in text
        # every policy phrase contains one of these three (a cheaper superset test)
        chk_policy = c.c4_filter_policy and (
            "cookie" in low or "terms of use" in low or "privacy policy" in low
        )
        chk_lower = chk_lorem or chk_js or chk_policy
        chk_content = chk_lower or chk_curly
        terminal = c.c4_terminal_punctuation
        max_wl = self._max_word_len
        min_wl = self._min_words_line

        kept: list[str] = []
        n_long = n_punct = n_few = n_js = n_policy = 0
        reason = None
        keep_breaks = c.c4_keep_paragraph_breaks
        for line in text.splitlines():
            line = line.strip()
            if chk_cite and "[" in line:
                line = _remove_citations(line).strip()
            if not line and keep_breaks:
                if kept and kept[-1]:
                    kept.append("")
                continue
            if max_wl and len(line) > max_wl and max(map(len, line.split())) > max_wl:
                n_long += 1
                continue
            if terminal and not _ends_sentence(line):
                n_punct += 1
                continue
            if min_wl and (len(self._words["word"].findall(line)) if self._no_space
                           else len(line.split(None, min_wl - 1))) < min_wl:
                n_few += 1
                continue
            if chk_content:
                if chk_lower:
                    ll = line.lower()
                    if chk_lorem and "lorem ipsum" in ll:
                        reason = "c4_lorem_ipsum"
                        break
                    if chk_js and "javascript" in ll:
                        n_js += 1
                        continue
                if chk_curly and "{" in line:
                    reason = "c4_curly_bracket"
                    break
                if chk_policy and any(p in ll for p in C4_POLICY_SUBSTRINGS):
                    n_policy += 1
                    continue
            kept.append(line)

        if line_counts is not None:
            for key, v in (
                ("c4_line_no_terminal_punct", n_punct),
                ("c4_line_too_few_words", n_few),
                ("c4_line_javascript", n_js),
                ("c4_line_policy", n_policy),
                ("c4_line_long_word", n_long),
            ):
                line_counts[key] = line_counts.get(key, 0) + v
        if reason is not None:
            return text, reason

        out = "\n".join(kept).strip()
        if self._min_sentences:
            n_lines = len(kept) - kept.count("")
            if n_lines < self._min_sentences:
                ends = len(_SENTENCE_END_RE.findall(out))
                if not out.isascii():
                    ends += len(_CJK_SENTENCE_END_RE.findall(out))
                if n_lines + ends < self._min_sentences:
                    return out, "c4_min_sentences"
        if not out and c.c4_drop_empty:
            return out, "c4_empty"
        if self._bad_re is not None and self._bad_re.search(out.lower()) is not None:
            return out, "c4_bad_words"
        return out, None

    # ------------------------------------------------------------ languages
    def _variant(self, language: str | None, text: str) -> "TextFilter":
        """The filter for ``language``: its overrides, its stop words, its kind of words."""
        if language is None or language == UNKNOWN:
            # no label: a text mostly in a script written without spaces still
            # gets character words
            if text.isascii() or no_space_script_share(text) <= 0.5:
                return self
            key: tuple = (None, "ja" if _KANA.search(text) else "chars")
        else:
            key = (language, "ja" if language == "ja" else
                   "chars" if language in NO_SPACE_LANGUAGES else
                   "hyphen" if language in _HYPHEN_COMPOUNDS else None)
        variant = self._variants.get(key)
        if variant is None:
            overrides = self.config.overrides_for(language) if language else {}
            scaled = scaled_thresholds(self.config, language, no_space=key[1] in ("chars", "ja"))
            config = dataclasses.replace(self.config, by_language=(), **{**scaled, **overrides})
            variant = self._variants.setdefault(key, TextFilter(
                config, language=language, words=key[1],
                stop_words_given="stop_words" in overrides, kernel=self._use_kernel))
        return variant

    # ------------------------------------------------------------ filtering
    def __call__(self, text: str, line_counts: dict | None = None,
                 language: str | None = None) -> tuple[str, str | None]:
        """Return ``(text_after_line_rules, reason)``; ``reason`` is None to keep.

        ``line_counts`` (optional) receives, per :data:`LINE_REASONS` key, the
        number of lines the C4 line rules removed (lines examined before a
        page-dropping rule fired included).

        ``language`` (the lang step's label) selects the rules for that
        language: ``by_language`` overrides, the language's stop-word list
        (the rule is skipped for a language without one; English keeps
        ``stop_words``), and, for scripts written without spaces, character
        words (:data:`transforms.text.lang.NO_SPACE_LANGUAGES`): every
        word-based rule counts each character of those scripts as a word, the
        mean-word-length rule and C4's long-word rule are skipped, and C4's
        words-per-line rule counts those words. Without a label, a text mostly
        in such a script gets the same character words.
        """
        if language is not None or not text.isascii():
            variant = self._variant(language, text)
            if variant is not self:
                return variant._apply(text, line_counts)
        return self._apply(text, line_counts)

    def _apply(self, text: str, line_counts: dict | None) -> tuple[str, str | None]:
        if self._c4:
            text, reason = self._c4_lines(text, line_counts)
            if reason is not None:
                return text, reason

        n_chars = len(text)
        ngrams = bool(self._rep and n_chars and (self._top or self._dup))
        if self._rep and n_chars:
            reason = self._line_rules(text, n_chars)
            if reason is not None:
                return text, reason

        stats = self._kernel_stats(text) if (ngrams or self._qual) and self._use_kernel else None
        if stats is not None:
            n_tok, top_chars, dup_covered, n_words, word_chars, alpha, n_stop = stats
            if ngrams:
                reason = self._ngram_decision(top_chars, dup_covered, n_chars)
                if reason is not None:
                    return text, reason
            if self._qual:
                reason = self._quality_rules(text, n_tok, n_words, lambda: word_chars,
                                             lambda: alpha, lambda: n_stop)
                if reason is not None:
                    return text, reason
        else:
            res = self._words or (_ASCII_RES if text.isascii() else _UNICODE_RES)
            tokens = None
            first_seen = None  # token -> index of first occurrence
            if ngrams:
                tokens = res["token"].findall(text)
                first_seen = {}
                reason = self._ngram_rules(tokens, first_seen, n_chars)
                if reason is not None:
                    return text, reason
            if self._qual:
                reason = self._quality(text, res, tokens, first_seen)
                if reason is not None:
                    return text, reason

        if self._min_chars and n_chars < self._min_chars:
            return text, "too_short"
        if self._max_chars and n_chars > self._max_chars:
            return text, "too_long"
        return text, None

    def _line_rules(self, text: str, n_chars: int) -> str | None:
        """Gopher's duplicate paragraph and line fractions."""
        if (self._dup_para or self._dup_para_char) and "\n\n" in text:
            reason = _duplicate_pieces(_paragraphs(text.strip()), n_chars,
                                       self._dup_para, self._dup_para_char, "para")
            if reason is not None:
                return reason
        if self._dup_line or self._dup_line_char:
            lines = _lines(text)
            return _duplicate_pieces(lines, n_chars, self._dup_line, self._dup_line_char, "line")
        return None

    def _kernel_stats(self, text: str):
        """The compiled kernel's numbers for ``text`` (None: use the pure-Python rules)."""
        args = self._kernel_args
        if args is None:
            import numpy as np

            from transforms.text import filter_kernel

            if not filter_kernel.available():
                self._use_kernel = False
                return None
            args = self._kernel_args = (
                np.array([n for n, _, _ in self._top], dtype=np.int64),
                np.array([n for n, _, _, _ in self._dup], dtype=np.int64),
                filter_kernel.stop_word_arrays(self._stop),
                filter_kernel.page_stats,
            )
        return args[3](text, args[0], args[1], args[2])

    def _ngram_decision(self, top_chars: list, dup_covered: list, n_chars: int) -> str | None:
        """:meth:`_ngram_rules`' decision from the kernel's numbers, in the same order."""
        for (_, max_frac, reason), chars in zip(self._top, top_chars):
            if chars >= 0 and chars / n_chars > max_frac:
                return reason
        for (_, max_frac, reason, rest_min), covered in zip(self._dup, dup_covered):
            frac = covered / n_chars
            if frac > max_frac:
                return reason
            if frac <= rest_min:
                return None
        return None

    def _ngram_rules(self, tokens: list[str], first_seen: dict, n_chars: int) -> str | None:
        """Top n-gram and duplicate n-gram character fractions.

        ``ids[n][j]`` is the index of the first occurrence of the n-gram that
        starts at token j; it identifies that n-gram, so the n-gram identity
        is the pair ``(ids[n-1][j], ids[1][j+n-1])`` -- computed for all j by
        one C-level ``map(dict.setdefault, zip(...), range(...))``.
        """
        n_tok = len(tokens)
        # prefix[j] = characters in tokens[:j]
        prefix = list(accumulate(map(len, tokens), initial=0))
        ids1 = list(map(first_seen.setdefault, tokens, range(n_tok)))
        level_ids = ids1
        level = 1
        has_dups = len(first_seen) < n_tok  # repeated n-grams exist at this level

        def advance(n: int) -> None:
            nonlocal level_ids, level, has_dups
            while level < n and has_dups:
                level += 1
                seen: dict = {}
                size = n_tok - level + 1
                level_ids = list(map(seen.setdefault, zip(level_ids, ids1[level - 1 :]), range(size)))
                has_dups = len(seen) < size

        for n, max_frac, reason in self._top:
            if n_tok < n:
                continue  # no n-gram at all
            advance(n)
            if level == n and has_dups:
                pos, count = max(Counter(level_ids).items(), key=itemgetter(1))
            else:  # every n-gram is unique: the first one is the "top" one
                pos, count = 0, 1
            top_chars = (prefix[pos + n] - prefix[pos] + n - 1) * count  # joined with spaces
            if top_chars / n_chars > max_frac:
                return reason

        for n, max_frac, reason, rest_min in self._dup:
            advance(n)
            if not (level == n and has_dups):
                return None  # no repeated n-gram, hence none for larger n
            # starts of every non-first occurrence of an n-gram
            starts = compress(range(len(level_ids)), map(ne, level_ids, range(len(level_ids))))
            covered = 0
            end = 0  # union of [j, j + n) spans, in token indexes
            for j in starts:
                covered += prefix[j + n] - prefix[j if j > end else end]
                end = j + n
            frac = covered / n_chars
            if frac > max_frac:
                return reason
            if frac <= rest_min:
                return None
        return None

    def _quality(
        self, text: str, res: dict, tokens: list[str] | None, first_seen: dict | None
    ) -> str | None:
        if tokens is None:
            tokens = res["token"].findall(text)
        n_tok = len(tokens)
        # Non-symbol tokens: a token is a word exactly when its first character
        # is a word character (\w is str.isalnum() or "_"), so no second regex pass.
        words = [t for t in tokens if t[0].isalnum() or t[0] == "_"]
        return self._quality_rules(
            text, n_tok, len(words), lambda: sum(map(len, words)), lambda: alpha_word_count(words),
            lambda: len(self._stop.intersection(first_seen if first_seen is not None else tokens)))

    def _quality_rules(self, text: str, n_tok: int, n_words: int, word_chars, alpha_words,
                       stop_words_present) -> str | None:
        """Gopher's quality rules in order; the last three arguments are called when needed."""
        if self._min_words and n_words < self._min_words:
            return "gopher_min_words"
        if self._max_words and n_words > self._max_words:
            return "gopher_max_words"
        if n_words and (self._min_mean or self._max_mean):
            mean = word_chars() / n_words
            if (self._min_mean and mean < self._min_mean) or (self._max_mean and mean > self._max_mean):
                return "gopher_mean_word_length"
        if self._max_symbol and n_tok:
            if (
                text.count("#") / n_tok > self._max_symbol
                or (text.count("...") + text.count("…")) / n_tok > self._max_symbol
            ):
                return "gopher_symbol_word_ratio"

        lines = None
        if self._max_bullet and ("-" in text or "•" in text):
            lines = text.splitlines()
            if lines:
                n_bullet = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
                if n_bullet / len(lines) > self._max_bullet:
                    return "gopher_bullet_lines"
        if self._max_ellipsis and ("..." in text or "…" in text):
            if lines is None:
                lines = text.splitlines()
            if lines:
                n_ell = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
                if n_ell / len(lines) > self._max_ellipsis:
                    return "gopher_ellipsis_lines"

        if self._min_alpha and n_tok:
            if alpha_words() / n_tok < self._min_alpha:
                return "gopher_alpha_words"
        if self._min_stop:
            if stop_words_present() < self._min_stop:
                return "gopher_stop_words"
        return None
