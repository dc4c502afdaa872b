"""The compiled word rules (transforms.text.filter_kernel) against an independent reference and the pure-Python filter."""
from __future__ import annotations

import glob
import json
import os
import random
import re
from collections import Counter

import numpy as np
import pytest

from transforms.text import filter_kernel as fk
from transforms.text.filters import STOP_WORDS, FilterConfig, TextFilter
from test_filters import _ref_dup_frac, _ref_top_frac

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN_RE = re.compile(r"\w+(?:['’.]\w+)*|[^\w\s\x1c-\x1f]+")
TOP_NS, DUP_NS = (2, 3, 4), (5, 6, 7, 8, 9, 10)

pytestmark = pytest.mark.skipif(not fk.available(), reason="numba missing: the filter runs in pure Python")


def reference(text: str, stop_words=STOP_WORDS):
    """The kernel's numbers, by brute force over the regex's tokens (the n-gram
    references of test_filters, in characters: ``n_chars`` 1)."""
    tokens = TOKEN_RE.findall(text)
    top = [round(_ref_top_frac(tokens, n, 1)) if len(tokens) >= n else -1 for n in TOP_NS]
    dup = [round(_ref_dup_frac(tokens, n, 1)) for n in DUP_NS]
    words = [t for t in tokens if re.match(r"\w", t)]
    alpha = sum(1 for w in words if re.search(r"[^\W\d_]", w))
    present = len(set(stop_words) & set(tokens))
    return len(tokens), top, dup, len(words), sum(map(len, words)), alpha, present


def kernel(text: str, stop_words=STOP_WORDS):
    return fk.page_stats(text, np.array(TOP_NS), np.array(DUP_NS), fk.stop_word_arrays(stop_words))


def random_page(rng: random.Random) -> str:
    vocab = ["the", "of", "and", "cat", "sat", "U.S", "don't", "l’eau", "3.5", "_x", "ß", "café",
             "naïve", "東京", "٣٤", "x²", "e\u0301", "#", "...", "…", "--", "(a)", "“q”", "🙂", "a_b"]
    glue = [" ", " ", " ", "\n", "\n\n", "\t", "\x1c", "\u00a0", "", ".", "'", "’", ". "]
    out = []
    for _ in range(rng.randint(0, 120)):
        out.append(rng.choice(vocab) if rng.random() < 0.8 else chr(rng.randint(0, 0x2FFF)))
        out.append(rng.choice(glue))
    return "".join(out)


def test_character_classes_are_the_regexes_classes():
    """\\w, \\d and \\s (plus \\x1c-\\x1f) of Python's re, over every code point."""
    table = fk.class_table()
    for i in range(0x110000):
        c = chr(i)
        word = re.match(r"\w", c) is not None
        assert (table[i] >= fk.WORD) == word, hex(i)
        if word:
            assert (table[i] == fk.DIGIT) == (re.match(r"\d", c) is not None), hex(i)
            assert (table[i] == fk.UNDERSCORE) == (c == "_"), hex(i)
        else:
            assert (table[i] == fk.SKIP) == (re.match(r"[\s\x1c-\x1f]", c) is not None), hex(i)
    assert np.array_equal(fk.class_table(ascii_only=True)[:128], table[:128])


def test_character_table_is_the_str_methods_classes():
    """The table (built from re's runs) is _classify's: str.isalnum, isdecimal, isspace."""
    table = fk.class_table()
    expected = np.fromiter((fk._classify(chr(i)) for i in range(0x110000)), dtype=np.uint8,
                           count=0x110000)
    assert np.array_equal(table, expected), np.flatnonzero(table != expected)[:10]
    ascii_table = fk.class_table(ascii_only=True)
    assert np.array_equal(ascii_table[:128], expected[:128])
    assert (ascii_table[128:] == fk.SYMBOL).all()


@pytest.mark.parametrize("text", [
    "", "   \n\t", "#", "the cat the cat the cat", "U.S. don't 3.5 a.b.c. 'quoted' x..y",
    "a b c d e a b c d e a b c d e f", "l’eau d’ici l’eau d’ici", "x\x1cy\x1dz",
    "Ünïcödé wörds ünd 東京 東京 🙂🙂 e\u0301 x² ٣٤", "__init__ a_b _ 12_34",
])
def test_kernel_numbers_equal_the_reference_on_edge_cases(text):
    assert kernel(text) == reference(text)


def test_kernel_numbers_equal_the_reference_on_random_pages():
    rng = random.Random(1234)
    stops = ("the", "of", "and", "l’eau", "東京", "#")
    for _ in range(400):
        page = random_page(rng)
        assert kernel(page, stops) == reference(page, stops), repr(page)


def _sample_pages():
    pages = []
    for path in sorted(glob.glob(os.path.join(ROOT, "data", "sample", "**", "*.jsonl"), recursive=True)):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    text = json.loads(line).get("text")
                except (ValueError, AttributeError, RecursionError):
                    continue
                if isinstance(text, str):
                    pages.append(text)
    for path in sorted(glob.glob(os.path.join(ROOT, "data", "sample", "text", "**", "*.txt"), recursive=True)):
        with open(path, encoding="utf-8", errors="replace") as f:
            pages.append(f.read())
    return pages


def test_sample_pages_numbers_equal_the_reference():
    pages = _sample_pages()
    assert len(pages) > 50
    for page in pages:
        assert kernel(page) == reference(page)


@pytest.mark.parametrize("config", [
    FilterConfig(),
    # tight thresholds: every n-gram and quality rule fires on some page
    FilterConfig(top_n_grams=((2, 0.05), (3, 0.04), (4, 0.03)),
                 dup_n_grams=((5, 0.05), (6, 0.04), (7, 0.03), (8, 0.03), (9, 0.02), (10, 0.02)),
                 min_stop_words=4, max_non_alpha_words_ratio=0.95, min_mean_word_length=4),
    FilterConfig(c4=False, gopher_quality=False),
    FilterConfig(c4=False, gopher_repetition=False),
])
def test_filter_decisions_equal_the_pure_python_rules(config):
    pages = _sample_pages()
    rng = random.Random(7)
    pages += [random_page(rng) for _ in range(200)]
    fast, slow = TextFilter(config), TextFilter(config, kernel=False)
    reasons = Counter()
    for page in pages:
        for language in (None, "en", "fr", "de", "zh"):
            got = fast(page, language=language)
            assert got == slow(page, language=language), (language, page[:200])
            reasons[got[1]] += 1
    if config.top_n_grams[0][1] == 0.05:  # the tight config exercises the n-gram rules
        assert any(r and r.startswith("gopher_top_") for r in reasons)
        assert any(r and r.startswith("gopher_dup_") for r in reasons)


def test_kernel_is_not_used_for_other_kinds_of_words():
    """Hyphenated compounds (de) and character words (zh) keep their own regexes."""
    f = TextFilter()
    f("Das ist ein Debian-Installer Test.", language="de")
    f("这是一个测试。", language="zh")
    assert all(not v._use_kernel for v in f._variants.values())
    assert f._use_kernel and not TextFilter(kernel=False)._use_kernel


def test_a_page_with_a_lone_surrogate():
    page = "the cat sat on the mat \udcff and the dog \ud800."
    assert kernel(page) == reference(page)
    assert TextFilter()(page) == TextFilter(kernel=False)(page)
