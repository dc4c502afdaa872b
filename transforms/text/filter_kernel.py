"""The Gopher word rules' numbers in one compiled pass (numba): tokens, n-gram repetition, word statistics.

:class:`transforms.text.filters.TextFilter` spends most of its time on the
words of a page: the regex tokenisation, the n-gram identities of the
repetition rules (2..10-grams), the word list of the quality rules. This
module computes the same numbers in one compiled loop over the page's code
points, for the default kind of words (the ``_PATTERNS["token"]`` regex of
:mod:`transforms.text.filters`), and the filter applies its rules, in its
order, to them:

* the tokens are the regex's matches: a run of word characters (``\\w``),
  joined across one ``'``, ``’`` or ``.`` between word characters, or a run of
  other characters that are neither word characters nor whitespace (nor the
  separators ``\\x1c``-``\\x1f``);
* an n-gram is identified by the first position where the same n tokens
  occur (tokens compared by their characters, n-grams by their (n-1)-gram
  prefix and last token), exactly as the pure-Python rules do;
* per ``n`` of the top n-gram rules: the characters of the most frequent
  n-gram (the first one to occur among equally frequent ones) joined with
  spaces, times its count, or ``-1`` when the page has fewer than ``n``
  tokens; per ``n`` of the duplicate n-gram rules: the characters of the
  tokens covered by a repeated occurrence (every occurrence after the first);
* the word tokens (first character a word character), their characters, the
  word tokens with a letter (a word character that is neither a decimal digit
  nor ``_``), and how many distinct stop words occur as tokens.

Character classes come from one table (:func:`class_table`) built from
``str.isalnum``, ``str.isdecimal`` and ``str.isspace``, which is how Python's
``re`` defines ``\\w``, ``\\d`` and ``\\s`` for ``str`` patterns;
``tests/test_filter_kernel.py`` checks the table against the regexes over every
code point and the decisions against the pure-Python rules on corpora and random
pages. Without numba the filter keeps its pure-Python rules.
"""

from __future__ import annotations

import numpy as np

__all__ = ["available", "class_table", "page_stats"]

# character classes (uint8)
SKIP, SYMBOL, JOINER, LETTER, DIGIT, UNDERSCORE = 0, 1, 2, 3, 4, 5
WORD = LETTER  # a class >= WORD is a word character (\w)
JOINERS = "'’."

_TABLES: dict = {}
_KERNEL = None


def _classify(c: str) -> int:
    if c == "_":
        return UNDERSCORE
    if c.isalnum():
        return DIGIT if c.isdecimal() else LETTER
    if c.isspace() or "\x1c" <= c <= "\x1f":
        return SKIP
    return JOINER if c in JOINERS else SYMBOL


def _classes_by_regex(size: int) -> np.ndarray:
    """:func:`_classify` of the first ``size`` code points, from the runs of ``re``'s classes.

    One pass of C per class over a string of every code point, instead of a Python
    call per code point (about 0.1 s against 0.5-2 s, once per worker process);
    ``tests/test_filter_kernel.py`` checks it against :func:`_classify`.
    """
    import re

    # every code point once, lone surrogates included
    text = np.arange(size, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    table = np.full(size, SYMBOL, dtype=np.uint8)
    # in _classify's order, the later marks winning: space, then word, digit, underscore
    for pattern, cls in ((r"[\s\x1c-\x1f]+", SKIP), (r"\w+", LETTER), (r"\d+", DIGIT)):
        for m in re.finditer(pattern, text):
            table[m.start():m.end()] = cls
    if size > ord("_"):
        table[ord("_")] = UNDERSCORE
    for c in JOINERS:
        if ord(c) < size and table[ord(c)] == SYMBOL:
            table[ord(c)] = JOINER
    return table


def class_table(ascii_only: bool = False) -> np.ndarray:
    """The class of every code point (256 entries for ASCII pages, else all of Unicode)."""
    key = "ascii" if ascii_only else "unicode"
    table = _TABLES.get(key)
    if table is None:
        table = _classes_by_regex(256 if ascii_only else 0x110000)
        if ascii_only:
            table[128:] = SYMBOL  # never looked up: an ASCII page has no such byte
        _TABLES[key] = table
    return table


def _build_kernel():
    import numba

    @numba.njit(cache=True, nogil=True)
    def kernel(cps, cls, top_ns, dup_ns, stop_cps, stop_off, out_top, out_dup):  # pragma: no cover - compiled
        n = cps.shape[0]
        starts = np.empty(n, np.int64)
        ends = np.empty(n, np.int64)
        nt = 0
        i = 0
        while i < n:
            c = cls[cps[i]]
            if c >= 3:  # a word: \w+ (['’.] \w+)*
                j = i + 1
                while j < n and cls[cps[j]] >= 3:
                    j += 1
                while j + 1 < n and cls[cps[j]] == 2 and cls[cps[j + 1]] >= 3:
                    j += 2
                    while j < n and cls[cps[j]] >= 3:
                        j += 1
            elif c != 0:  # a run of symbols
                j = i + 1
                while j < n and (cls[cps[j]] == 1 or cls[cps[j]] == 2):
                    j += 1
            else:
                i += 1
                continue
            starts[nt] = i
            ends[nt] = j
            nt += 1
            i = j

        # prefix[t]: characters of the tokens before token t
        prefix = np.zeros(nt + 1, np.int64)
        for t in range(nt):
            prefix[t + 1] = prefix[t] + ends[t] - starts[t]

        # ids1[t]: the first token equal to token t (open addressing on a hash of its characters)
        size = 4
        while size < 2 * nt:
            size *= 2
        mask = size - 1
        slots = np.full(size, -1, np.int64)
        hashes = np.empty(nt, np.int64)
        ids1 = np.empty(nt, np.int64)
        distinct = 0
        for t in range(nt):
            h = np.int64(1469598103934665603)
            for k in range(starts[t], ends[t]):
                h = (h ^ np.int64(cps[k])) * np.int64(1099511628211)
            hashes[t] = h
            s = h & mask
            while True:
                f = slots[s]
                if f == -1:
                    slots[s] = t
                    ids1[t] = t
                    distinct += 1
                    break
                if hashes[f] == h and ends[f] - starts[f] == ends[t] - starts[t]:
                    same = True
                    o = starts[t] - starts[f]
                    for k in range(starts[f], ends[f]):
                        if cps[k] != cps[k + o]:
                            same = False
                            break
                    if same:
                        ids1[t] = f
                        break
                s = (s + 1) & mask

        # n-grams: unique ones give the defaults (the first n-gram, once; no coverage)
        for a in range(top_ns.shape[0]):
            m = top_ns[a]
            out_top[a] = -1 if nt < m else prefix[m] - prefix[0] + m - 1
        for a in range(dup_ns.shape[0]):
            out_dup[a] = 0
        max_n = 1
        for a in range(top_ns.shape[0]):
            max_n = max(max_n, top_ns[a])
        for a in range(dup_ns.shape[0]):
            max_n = max(max_n, dup_ns[a])
        prev = ids1
        has_dups = distinct < nt
        level = 1
        while level < max_n and has_dups and nt > level:
            level += 1
            size_l = nt - level + 1
            tsize = 4
            while tsize < 2 * size_l:
                tsize *= 2
            tmask = tsize - 1
            tslots = np.full(tsize, -1, np.int64)
            ids = np.empty(size_l, np.int64)
            seen = 0
            for j in range(size_l):
                x = prev[j]
                y = ids1[j + level - 1]
                s = (x * np.int64(-7046029254386353131) + y * np.int64(1442695040888963407)) & tmask
                while True:
                    f = tslots[s]
                    if f == -1:
                        tslots[s] = j
                        ids[j] = j
                        seen += 1
                        break
                    if prev[f] == x and ids1[f + level - 1] == y:
                        ids[j] = f
                        break
                    s = (s + 1) & tmask
            has_dups = seen < size_l
            prev = ids
            if not has_dups:
                break
            for a in range(top_ns.shape[0]):
                if top_ns[a] == level:
                    counts = np.zeros(size_l, np.int64)
                    for j in range(size_l):
                        counts[ids[j]] += 1
                    pos = 0
                    best = counts[0]
                    for p in range(1, size_l):
                        if counts[p] > best:
                            best = counts[p]
                            pos = p
                    out_top[a] = (prefix[pos + level] - prefix[pos] + level - 1) * best
            for a in range(dup_ns.shape[0]):
                if dup_ns[a] == level:
                    covered = 0
                    end = 0
                    for j in range(size_l):
                        if ids[j] != j:
                            covered += prefix[j + level] - prefix[j if j > end else end]
                            end = j + level
                    out_dup[a] = covered

        # words: first character a word character; with a letter; stop words among the tokens
        n_words = 0
        word_chars = 0
        alpha = 0
        n_stop = stop_off.shape[0] - 1
        found = np.zeros(max(n_stop, 1), np.bool_)
        for t in range(nt):
            st = starts[t]
            ln = ends[t] - st
            if cls[cps[st]] >= 3:
                n_words += 1
                word_chars += ln
                for k in range(st, ends[t]):
                    if cls[cps[k]] == 3:
                        alpha += 1
                        break
            if ids1[t] == t:
                for w in range(n_stop):
                    if not found[w] and stop_off[w + 1] - stop_off[w] == ln:
                        same = True
                        for k in range(ln):
                            if stop_cps[stop_off[w] + k] != cps[st + k]:
                                same = False
                                break
                        if same:
                            found[w] = True
        n_found = 0
        for w in range(n_stop):
            if found[w]:
                n_found += 1
        return nt, n_words, word_chars, alpha, n_found

    return kernel


def available() -> bool:
    """True when the compiled kernel can be used (numba imports)."""
    global _KERNEL
    if _KERNEL is None:
        try:
            _KERNEL = _build_kernel()
        except ImportError:  # pragma: no cover - numba is a dependency
            _KERNEL = False
    return _KERNEL is not False


def stop_word_arrays(stop_words) -> tuple[np.ndarray, np.ndarray]:
    """Stop words as one code-point array and offsets (the kernel's form)."""
    words = sorted(set(stop_words))
    cps = np.array([ord(c) for w in words for c in w], dtype=np.uint32)
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum([len(w) for w in words], out=offsets[1:])
    return cps, offsets


def page_stats(text: str, top_ns: np.ndarray, dup_ns: np.ndarray, stops: tuple[np.ndarray, np.ndarray]):
    """``(n_tokens, top_chars, dup_covered, n_words, word_chars, alpha_words, stop_words_present)``.

    ``top_chars`` and ``dup_covered`` are lists in the order of ``top_ns`` and
    ``dup_ns``. Returns None when numba is missing: the caller uses the
    pure-Python rules.
    """
    if not available():
        return None
    if text.isascii():
        cps = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        cls = class_table(ascii_only=True)
    else:
        # a lone surrogate (text read with errors="surrogateescape") is a code point too
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        cls = class_table()
    out_top = np.empty(len(top_ns), dtype=np.int64)
    out_dup = np.empty(len(dup_ns), dtype=np.int64)
    n_tok, n_words, word_chars, alpha, n_stop = _KERNEL(cps, cls, top_ns, dup_ns, stops[0], stops[1],
                                                        out_top, out_dup)
    return n_tok, out_top.tolist(), out_dup.tolist(), n_words, word_chars, alpha, n_stop
