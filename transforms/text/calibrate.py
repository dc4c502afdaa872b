"""Per-language scales for the filter's word rules, measured on translated text.

    python -m transforms.text.calibrate [--corpus installation-guide] [--root DIR]
                                        [--out transforms/text/language_scales.json]

Two of Gopher's quality rules measure a language as much as a page's
quality, because their thresholds were set on English:

* **alphabetic words** (at least 80% of the tokens contain a letter): every
  punctuation mark is a token, and languages punctuate differently for the
  same content. German puts a comma before every subordinate clause; Russian
  and Polish too; Chinese text is mostly character words, so nearly every
  token has a letter.
* **mean word length** (3 to 10 characters): German, Finnish and Turkish
  write compounds and agglutinated forms as one word; Vietnamese writes one
  syllable per word.

The scale of a language is measured on a translated manual, section by
section, so that the content is held fixed and only the language changes: for
each section in language L and its English original, the filter's own words
for each language (its tokenisation, on the text after C4's line rules, as
the rule sees it) give the share of tokens without a letter and the mean word
length; the scale is the median over the sections of L's value over
English's. The filter then holds a document in L to the English threshold
carried over: the allowed share of tokens without a letter
(``1 - max_non_alpha_words_ratio``) times L's scale, and the mean-word-length
bounds times L's scale (:meth:`transforms.text.filters.FilterConfig` field
``scale_by_language``). FineWeb-2 (Penedo et al. 2025) tunes each filter's
thresholds per language too (its ``configs/{lang}_{script}.yml``); here they
follow from one measurement on parallel text, which holds the content fixed,
so every rule keeps English's meaning in each language. FineWeb-2's German and French
alphabetic-word thresholds are 0.774 and 0.812 (their own tokenizers); the
ones carried over here from the Debian installation guide are 0.753 and 0.798.

The default corpus is the Debian installation guide (Debian's
``installation-guide-amd64`` package, GPL-2+, 20 languages); the Debian
Administrator's Handbook (``debian-handbook``, GPL-2+ or CC-BY-SA-3.0, 26
languages) and the Debian Reference (``debian-reference-*``) are read the
same way. ``benchmarks.languages`` measures kept shares on the other two, so
the scales are never fitted to the text they are judged on.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import html
import json
import os
import re
import statistics
import sys
from typing import Dict, List, Optional, Tuple

SCALES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "language_scales.json")
_OPENING = 40
MIN_SECTIONS = 30  # languages with fewer translated sections get no scale (too noisy)

_SECTION = re.compile(r"<h[1-6][\s>]", re.I)
_PARAGRAPH = re.compile(r'<p>(.*?)</p>|<div class="para">(.*?)</div>', re.S | re.I)
_TAG = re.compile(r"<[^>]+>")

# corpus name -> where its Debian package puts it
CORPORA = {
    "installation-guide": "/usr/share/doc/installation-guide-amd64",
    "handbook": "/usr/share/doc/debian-handbook/html",
    "reference": "/usr/share/debian-reference",
}


def _label(name: str) -> Optional[str]:
    """A folder's or file's language name ("de", "pt-BR", "zh_CN", "zh-cn") -> lid.176 label."""
    base = name.replace("_", "-").lower()
    if base in ("zh-tw", "zh-hk"):
        return None  # Traditional Chinese: zh-cn is the one Chinese of each corpus
    lang = base.split("-")[0]
    return lang if lang.isalpha() and 2 <= len(lang) <= 3 else None


def corpus_files(corpus: str, root: str) -> Dict[str, Dict[str, str]]:
    """{language: {file key: path}}: one key per chapter file, the same key in every language."""
    out: Dict[str, Dict[str, str]] = {}
    if corpus == "reference":  # ch01.de.html, ch01.zh-cn.html
        for path in sorted(glob.glob(os.path.join(root, "ch*.*.html"))):
            name = os.path.basename(path)
            stem, suffix = name.split(".")[0], name.split(".")[1]
            lang = _label(suffix)
            if lang:
                out.setdefault(lang, {})[stem] = path
        return out
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; one of {', '.join(CORPORA)}")
    for folder in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        lang = _label(folder)
        files = sorted(glob.glob(os.path.join(root, folder, "*.html")))
        if lang and files and lang not in out:
            out[lang] = {os.path.basename(p): p for p in files}
    return out


def html_sections(path: str) -> List[List[str]]:
    """The paragraphs (``<p>`` or DocBook's ``<div class="para">``) of each heading's section."""
    with open(path, encoding="utf-8", errors="replace") as f:
        page = f.read()
    out = []
    for section in _SECTION.split(page):
        paragraphs = []
        for a, b in _PARAGRAPH.findall(section):
            text = " ".join(html.unescape(_TAG.sub("", a or b)).split())
            if text:
                paragraphs.append(text)
        out.append(paragraphs)
    return out


def parallel_sections(files: Dict[str, Dict[str, str]], min_chars: int = 400,
                      ) -> Dict[str, List[Tuple[str, str]]]:
    """{language: [(section, its English original), ...]}, English included (paired with itself).

    Sections are matched by chapter file and position; a chapter whose
    translation has another number of sections is left out, and so is a
    translated section with any paragraph found in the English text, whole or
    by its first 40 characters (not wholly translated, or translated from an
    older edition whose paragraph is still in English). Both texts have at least ``min_chars`` characters.
    """
    english_files = files.get("en", {})
    english = {key: html_sections(path) for key, path in english_files.items()}
    english_paragraphs = {p for sections in english.values() for s in sections for p in s}
    # an outdated translation keeps the English paragraph of an older edition:
    # its opening words still match
    english_openings = {p[:_OPENING] for p in english_paragraphs if len(p) >= _OPENING}
    out: Dict[str, List[Tuple[str, str]]] = {}
    for lang, chapters in sorted(files.items()):
        pairs = []
        for key, path in sorted(chapters.items()):
            if key not in english:
                continue
            sections = english[key] if lang == "en" else html_sections(path)
            if len(sections) != len(english[key]):
                continue
            for own, original in zip(sections, english[key]):
                if lang != "en" and any(p in english_paragraphs or p[:_OPENING] in english_openings
                                        for p in own):
                    continue
                text, text_en = "\n\n".join(own), "\n\n".join(original)
                if len(text) >= min_chars and len(text_en) >= min_chars:
                    pairs.append((text, text_en))
        if pairs:
            out[lang] = pairs
    return out


def measure(text_filter, language: str, text: str) -> Optional[Tuple[float, float]]:
    """(share of tokens without a letter, mean word length) of ``text`` as the filter's
    rules for ``language`` see it (cleaned, after C4's line rules), or None without words."""
    from transforms.text.clean import clean_text
    from transforms.text.filters import _UNICODE_RES, alpha_word_count

    text = clean_text(text)
    variant = text_filter._variant(language, text)
    if variant.config.c4:
        text, _ = variant._c4_lines(text, None)
    tokens = (variant._words or _UNICODE_RES)["token"].findall(text)
    words = [t for t in tokens if t[0].isalnum() or t[0] == "_"]
    if not words:
        return None
    return 1.0 - alpha_word_count(words) / len(tokens), sum(map(len, words)) / len(words)


def scales(pairs: Dict[str, List[Tuple[str, str]]], min_sections: int = MIN_SECTIONS) -> Dict[str, dict]:
    """{language: {"non_alpha_share": x, "mean_word_length": y, "sections": n}} (English: 1.0).

    Each scale is the median over a language's sections of its value over
    the English original's; languages with fewer than ``min_sections``
    measured sections are left out.
    """
    from transforms.text.filters import FilterConfig, TextFilter

    text_filter = TextFilter(FilterConfig(scale_by_language=False))
    out: Dict[str, dict] = {}
    for lang, lang_pairs in sorted(pairs.items()):
        non_alpha, word_length = [], []
        for text, original in lang_pairs:
            own, english = measure(text_filter, lang, text), measure(text_filter, "en", original)
            if own is None or english is None:
                continue
            if english[0] > 0:
                non_alpha.append(own[0] / english[0])
            word_length.append(own[1] / english[1])
        if len(word_length) < min_sections:
            continue
        out[lang] = {"non_alpha_share": round(statistics.median(non_alpha), 3),
                     "mean_word_length": round(statistics.median(word_length), 3),
                     "sections": len(word_length)}
    return out


def load_scales(path: str = SCALES_PATH) -> Dict[str, dict]:
    """The shipped scales ({language: {...}}); empty when the file is absent."""
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    languages = data.get("languages", {})
    for lang, row in languages.items():
        for key in ("non_alpha_share", "mean_word_length"):
            value = row.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 10:
                raise ValueError(f"{path}: {lang}.{key} must be a number in (0, 10), got {value!r}")
    return languages


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="installation-guide", choices=sorted(CORPORA))
    parser.add_argument("--root", help="the corpus folder (default: where its Debian package puts it)")
    parser.add_argument("--min_chars", type=int, default=400)
    parser.add_argument("--min_sections", type=int, default=MIN_SECTIONS)
    parser.add_argument("--out", default=SCALES_PATH, help="JSON file to write ('-': print)")
    args = parser.parse_args(argv)
    root = args.root or CORPORA[args.corpus]
    files = corpus_files(args.corpus, root)
    if "en" not in files:
        print(f"calibrate: no English chapters under {root} (install Debian's package for "
              f"{args.corpus!r} or give --root)", file=sys.stderr)
        return 2
    measured = scales(parallel_sections(files, args.min_chars), args.min_sections)
    data = {
        "source": f"{args.corpus} ({root}), sections of {args.min_chars}+ characters paired "
                  "with their English original",
        "method": "median over sections of the language's value over English's, with the "
                  "filter's own words (python -m transforms.text.calibrate)",
        "measured": datetime.date.today().isoformat(),
        "languages": measured,
    }
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"calibrate: {len(measured)} languages -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
