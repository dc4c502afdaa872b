"""MinHash signatures and LSH banding: the pure core of near-duplicate removal.

Parameters are datasketch-compatible: ``num_perm`` permutations
``h -> ((a * h + b) mod (2**61 - 1)) & (2**32 - 1)`` with ``(a, b)`` drawn by
``numpy.random.RandomState(seed)`` in datasketch's order, values start at
``2**32 - 1``, and LSH bands/rows come from the same optimisation as
datasketch's ``MinHashLSH`` (minimise the weighted false-positive and
false-negative areas under the S-curve). With ``hash="sha1"`` each shingle is
hashed as datasketch's default ``sha1_hash32`` of its UTF-8 bytes, and a
signature equals datasketch's ``MinHash`` for the same shingles and seed
(tests/test_near_dedup.py checks it).

Speed comes from doing everything per batch of documents:

* shingling (``hash="fast"``, the default): word hashes come from one
  prefix sum over the document's bytes (:func:`word_hashes`), word n-gram
  hashes are combined from them with vectorised numpy, and character n-grams
  from code points the same way: no Python loop per word or shingle;
* the permutation minimum runs in one compiled loop (numba) over all the
  batch's shingles, with the Mersenne-prime reduction instead of a 64-bit
  division; a numpy version of the same arithmetic is the fallback and the
  reference the tests compare against.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import struct
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "MinHashConfig",
    "MERSENNE_PRIME",
    "MAX_HASH",
    "permutations",
    "normalize_words",
    "shingle_strings",
    "Shingler",
    "signatures",
    "optimal_lsh_params",
    "band_keys",
    "band_keys_batch",
    "estimated_jaccard",
]

MERSENNE_PRIME = (1 << 61) - 1
MAX_HASH = (1 << 32) - 1


@dataclasses.dataclass(frozen=True)
class MinHashConfig:
    num_perm: int = 128
    seed: int = 1  # datasketch's default seed
    ngram: int = 5  # words per shingle
    char_ngram: int = 0  # > 0: shingles of this many characters instead of words
    hash: str = "fast"  # "fast" (vectorised) or "sha1" (datasketch's sha1_hash32)
    threshold: float = 0.8
    fp_weight: float = 0.5  # datasketch's weights for the band/row choice
    fn_weight: float = 0.5
    bands: int = 0  # 0: chosen from the threshold and weights
    rows: int = 0

    def __post_init__(self):
        if self.num_perm < 2:
            raise ValueError(f"num_perm must be at least 2, got {self.num_perm}")
        if self.ngram < 1 or self.char_ngram < 0:
            raise ValueError("ngram must be >= 1 and char_ngram >= 0")
        if self.hash not in ("fast", "sha1"):
            raise ValueError(f"hash must be 'fast' or 'sha1', got {self.hash!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if (self.bands == 0) != (self.rows == 0):
            raise ValueError("give both bands and rows, or neither")
        if self.bands and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}")

    def lsh_params(self) -> Tuple[int, int]:
        if self.bands:
            return self.bands, self.rows
        return optimal_lsh_params(self.threshold, self.num_perm, self.fp_weight, self.fn_weight)


def permutations(num_perm: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(a, b) as datasketch draws them: a in [1, p), b in [0, p), alternating."""
    gen = np.random.RandomState(seed)
    pairs = [(gen.randint(1, MERSENNE_PRIME, dtype=np.uint64),
              gen.randint(0, MERSENNE_PRIME, dtype=np.uint64)) for _ in range(num_perm)]
    arr = np.array(pairs, dtype=np.uint64).T
    return np.ascontiguousarray(arr[0]), np.ascontiguousarray(arr[1])


# ---------------------------------------------------------------------------
# Shingling

_NON_WORD = re.compile(r"[^\w\s]+")
_NON_ASCII_NON_WORD = re.compile(r"[^\w\x00-\x7f]+")
# bytes.translate table: every ASCII byte that is not a word character
# ([A-Za-z0-9_]) becomes a space; bytes >= 0x80 (UTF-8 of other characters) stay.
_ASCII_TABLE = bytes(
    b if (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b == 95 or b >= 128) else 32
    for b in range(256))


def normalize_words(text: str) -> List[str]:
    """Lower-cased words with punctuation removed (the text shingles are made of)."""
    return _NON_WORD.sub(" ", text.lower()).split()


def normalized_bytes(text: str) -> bytes:
    """UTF-8 of the same words as :func:`normalize_words`, separated by runs of spaces.

    Built with bytes-level translation instead of a regex over every
    character: ASCII punctuation and whitespace become spaces through a
    256-entry table, and only non-ASCII characters that are not word
    characters need the (rarely matching) regex.
    """
    lowered = text.lower()
    if not lowered.isascii():
        lowered = _NON_ASCII_NON_WORD.sub(" ", lowered)
    return lowered.encode("utf-8", "surrogatepass").translate(_ASCII_TABLE)


def shingle_strings(text: str, ngram: int = 5, char_ngram: int = 0) -> List[str]:
    """Shingles as strings: word n-grams joined by a space, or character n-grams.

    A document shorter than one n-gram is one shingle of everything it has.
    """
    if char_ngram:
        norm = " ".join(normalize_words(text))
        if len(norm) <= char_ngram:
            return [norm] if norm else []
        return [norm[i:i + char_ngram] for i in range(len(norm) - char_ngram + 1)]
    words = normalize_words(text)
    if len(words) <= ngram:
        return [" ".join(words)] if words else []
    return [" ".join(words[i:i + ngram]) for i in range(len(words) - ngram + 1)]


def _sha1_hash32(data: bytes) -> int:
    return struct.unpack("<I", hashlib.sha1(data).digest()[:4])[0]


# Odd 64-bit multipliers, one per position in an n-gram.
_POSITION_MULT = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
     0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
     0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5, 0x61C8864680B583EB, 0x8CB92BA72F3D8DD7],
    dtype=np.uint64)


def _finalize32(x: np.ndarray) -> np.ndarray:
    """A 64-bit mix (splitmix64's finaliser) folded to 32 bits."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(32)) ^ (x & np.uint64(MAX_HASH))


def _combine(values: np.ndarray, n: int) -> np.ndarray:
    """Order-sensitive hashes of every window of ``n`` consecutive values."""
    m = len(values)
    if m == 0:
        return np.zeros(0, dtype=np.uint64)
    if m <= n:
        windows, n = 1, m
    else:
        windows = m - n + 1
    acc = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            acc += values[k:k + windows] * _POSITION_MULT[k % len(_POSITION_MULT)]
        acc += np.uint64(n)  # different lengths of a short document differ
    return _finalize32(acc)


_WORD_P = np.uint64(0x100000001B3)  # odd: invertible modulo 2**64
_WORD_P_INV = np.uint64(pow(0x100000001B3, -1, 1 << 64))


class _Powers:
    """P**i and P**-i modulo 2**64 for i < n, grown on demand."""

    def __init__(self):
        self.pow = np.ones(0, dtype=np.uint64)
        self.inv = np.ones(0, dtype=np.uint64)

    def get(self, n: int) -> Tuple[np.ndarray, np.ndarray]:
        if len(self.pow) < n:
            size = max(n, 2 * len(self.pow), 4096)
            with np.errstate(over="ignore"):
                self.pow = np.cumprod(np.full(size, _WORD_P, dtype=np.uint64)) * _WORD_P_INV
                self.inv = np.cumprod(np.full(size, _WORD_P_INV, dtype=np.uint64)) * _WORD_P
        return self.pow[:n], self.inv[:n]


_POWERS = _Powers()


def word_hashes(normalized: bytes) -> np.ndarray:
    """64-bit hashes of the space-separated words of ``normalized`` (UTF-8), vectorised.

    A word's hash is the polynomial sum of its (byte + 1) values with powers
    of an odd constant, taken from one prefix sum over the whole text and
    shifted back to the word's start by the inverse power: no Python loop per
    word.
    """
    data = np.frombuffer(normalized, dtype=np.uint8)
    n = len(data)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    pw, inv = _POWERS.get(n)
    space = data == 32
    with np.errstate(over="ignore"):
        terms = (data.astype(np.uint64) + np.uint64(1)) * pw
        terms[space] = 0
        prefix = np.cumsum(terms, dtype=np.uint64)
        word = ~space
        starts = np.flatnonzero(word & np.concatenate(([True], space[:-1])))
        ends = np.flatnonzero(word & np.concatenate((space[1:], [True])))
        before = np.where(starts > 0, prefix[starts - 1], np.uint64(0))
        return (prefix[ends] - before) * inv[starts]


# Character n-grams for a text in a script written without spaces, where the
# whitespace "words" are whole sentences: 5 characters (about two or three
# Chinese or Japanese words), as word shingles are 5 words.
NO_SPACE_CHAR_NGRAM = 5


def uses_characters(text: str, language: Optional[str] = None) -> bool:
    """Whether ``text`` is shingled by characters: its language (the lang step's label) is
    written without spaces, or, with no label, most of its letters are in such scripts."""
    from transforms.text.lang import NO_SPACE_LANGUAGES, UNKNOWN, no_space_script_share

    if language and language != UNKNOWN:
        return language in NO_SPACE_LANGUAGES
    return not text.isascii() and no_space_script_share(text) > 0.5


class Shingler:
    """Turns documents into shingle hashes (32-bit values in uint64 arrays).

    Word n-grams (``ngram``) unless ``char_ngram`` is set; a text in a script
    written without spaces (:func:`uses_characters`) gets character n-grams of
    :data:`NO_SPACE_CHAR_NGRAM` (or ``char_ngram``) whatever the config says.
    """

    def __init__(self, config: MinHashConfig):
        self.config = config

    def hashes(self, text: str, language: Optional[str] = None) -> np.ndarray:
        c = self.config
        char_ngram = c.char_ngram
        if not char_ngram and not text.isascii() and uses_characters(text, language):
            char_ngram = NO_SPACE_CHAR_NGRAM
        if c.hash == "sha1":
            return np.array([_sha1_hash32(s.encode("utf-8", "surrogatepass"))
                             for s in shingle_strings(text, c.ngram, char_ngram)], dtype=np.uint64)
        if char_ngram:
            norm = " ".join(normalize_words(text))
            if not norm:
                return np.zeros(0, dtype=np.uint64)
            points = np.frombuffer(norm.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            return _combine(points.astype(np.uint64), char_ngram)
        return _combine(word_hashes(normalized_bytes(text)), c.ngram)

    def _word_docs(self, text: str, language: Optional[str]) -> bool:
        """Whether ``text`` gets the default shingles: word n-grams of the polynomial hashes."""
        c = self.config
        return (c.hash != "sha1" and not c.char_ngram
                and (text.isascii() or not uses_characters(text, language)))

    def batch(self, texts: Sequence[str],
              languages: Optional[Sequence[Optional[str]]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """All shingle hashes of ``texts`` concatenated, and the offsets of each document.

        Word shingles of the default hash are made for the whole batch in one
        compiled loop (:func:`_word_shingle_kernel`), equal to :meth:`hashes`
        document by document; the other kinds go through :meth:`hashes`.
        """
        if languages is None:
            languages = [None] * len(texts)
        kernel = _word_shingle_kernel() if texts else False
        if kernel:
            word = [self._word_docs(t, lang) for t, lang in zip(texts, languages)]
            data = [t.lower().encode("utf-32-le", "surrogatepass") for t, w in zip(texts, word) if w]
            starts = np.zeros(len(data) + 1, dtype=np.int64)
            np.cumsum([len(d) // 4 for d in data], out=starts[1:])
            points = np.frombuffer(b"".join(data), dtype=np.uint32)
            flat = np.empty(len(points) // 2 + len(data), dtype=np.uint64)
            ends = np.zeros(len(data) + 1, dtype=np.int64)
            kernel(points, starts, self.config.ngram, _POSITION_MULT, _word_table(), flat, ends)
            if len(data) == len(texts):
                return flat[:ends[-1]].copy(), ends
            words = iter(range(len(data)))
            parts = []
            for t, lang, w in zip(texts, languages, word):
                if w:
                    d = next(words)
                    parts.append(flat[ends[d]:ends[d + 1]])
                else:
                    parts.append(self.hashes(t, lang))
        else:
            parts = [self.hashes(t, lang) for t, lang in zip(texts, languages)]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
        return flat.astype(np.uint64, copy=False), offsets


_SHINGLE_KERNEL = None
_WORD_TABLE = None


def _word_table() -> np.ndarray:
    """1 for each code point that is a word character (``\\w``), else 0."""
    global _WORD_TABLE
    if _WORD_TABLE is None:
        from transforms.text.filter_kernel import WORD, class_table

        _WORD_TABLE = (class_table() >= WORD).astype(np.uint8)
    return _WORD_TABLE


def _word_shingle_kernel():
    """The word shingles of many documents in one compiled loop (False without numba).

    Per document (the code points of its lower-cased text; a word is a run
    of word characters, ``word``, whose UTF-8 bytes are hashed, which is what
    :func:`normalized_bytes` leaves between its spaces): each word's
    polynomial hash, sum of ``(byte + 1) * P**i`` modulo 2**64 as
    :func:`word_hashes` computes it with prefix sums, then the windows of
    ``n`` words combined and finalised as :func:`_combine` does.
    """
    global _SHINGLE_KERNEL
    if _SHINGLE_KERNEL is None:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is a dependency
            _SHINGLE_KERNEL = False
            return _SHINGLE_KERNEL

        @numba.njit(cache=True, nogil=True)
        def kernel(points, starts, n, mult, word, out, offsets):  # pragma: no cover - compiled
            p = np.uint64(0x100000001B3)
            one = np.uint64(1)
            n_mult = mult.shape[0]
            words = np.empty(points.shape[0] // 2 + 1, np.uint64)
            utf8 = np.empty(4, np.uint64)
            o = 0
            for d in range(starts.shape[0] - 1):
                m = 0
                i = starts[d]
                end = starts[d + 1]
                while i < end:
                    if word[points[i]] == 0:
                        i += 1
                        continue
                    h = np.uint64(0)
                    pw = one
                    while i < end and word[points[i]] != 0:
                        c = np.int64(points[i])
                        if c < 0x80:
                            utf8[0] = c
                            k = 1
                        elif c < 0x800:
                            utf8[0] = 0xC0 | (c >> 6)
                            utf8[1] = 0x80 | (c & 0x3F)
                            k = 2
                        elif c < 0x10000:
                            utf8[0] = 0xE0 | (c >> 12)
                            utf8[1] = 0x80 | ((c >> 6) & 0x3F)
                            utf8[2] = 0x80 | (c & 0x3F)
                            k = 3
                        else:
                            utf8[0] = 0xF0 | (c >> 18)
                            utf8[1] = 0x80 | ((c >> 12) & 0x3F)
                            utf8[2] = 0x80 | ((c >> 6) & 0x3F)
                            utf8[3] = 0x80 | (c & 0x3F)
                            k = 4
                        for q in range(k):
                            h += (utf8[q] + one) * pw
                            pw *= p
                        i += 1
                    words[m] = h
                    m += 1
                if m > 0:
                    w = n
                    windows = m - n + 1
                    if m <= n:
                        windows = 1
                        w = m
                    for j in range(windows):
                        acc = np.uint64(0)
                        for k in range(w):
                            acc += words[j + k] * mult[k % n_mult]
                        x = acc + np.uint64(w)
                        x = x ^ (x >> np.uint64(30))
                        x = x * np.uint64(0xBF58476D1CE4E5B9)
                        x = x ^ (x >> np.uint64(27))
                        x = x * np.uint64(0x94D049BB133111EB)
                        x = x ^ (x >> np.uint64(31))
                        out[o] = (x >> np.uint64(32)) ^ (x & np.uint64(0xFFFFFFFF))
                        o += 1
                offsets[d + 1] = o

        _SHINGLE_KERNEL = kernel
    return _SHINGLE_KERNEL


# ---------------------------------------------------------------------------
# Signatures


def _signatures_numpy(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray,
                      b: np.ndarray) -> np.ndarray:
    """Reference implementation: the same arithmetic with numpy arrays."""
    n_docs = len(offsets) - 1
    out = np.full((n_docs, len(a)), MAX_HASH, dtype=np.uint64)
    p = np.uint64(MERSENNE_PRIME)
    for d in range(n_docs):
        h = hashes[offsets[d]:offsets[d + 1]]
        if len(h) == 0:
            continue
        with np.errstate(over="ignore"):
            x = a[:, None] * h[None, :] + b[:, None]  # wraps modulo 2**64, as datasketch's does
        x = (x & p) + (x >> np.uint64(61))  # x mod (2**61 - 1), exactly
        x = np.where(x >= p, x - p, x)
        out[d] = np.minimum(out[d], (x & np.uint64(MAX_HASH)).min(axis=1))
    return out.astype(np.uint32)


_KERNEL = None


def _numba_kernel():
    global _KERNEL
    if _KERNEL is None:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is a dependency; numpy still works
            _KERNEL = False
            return _KERNEL

        @numba.njit(cache=True, nogil=True)
        def kernel(hashes, offsets, a, b, out):  # pragma: no cover - compiled
            p = np.uint64(MERSENNE_PRIME)
            mask = np.uint64(MAX_HASH)
            s61 = np.uint64(61)
            n_perm = a.shape[0]
            for d in range(offsets.shape[0] - 1):
                row = out[d]
                for j in range(n_perm):
                    row[j] = mask
                for s in range(offsets[d], offsets[d + 1]):
                    h = hashes[s]
                    for j in range(n_perm):
                        x = a[j] * h + b[j]
                        x = (x & p) + (x >> s61)
                        if x >= p:
                            x -= p
                        x &= mask
                        if x < row[j]:
                            row[j] = x

        _KERNEL = kernel
    return _KERNEL


def signatures(hashes: np.ndarray, offsets: np.ndarray, perms: Tuple[np.ndarray, np.ndarray],
               use_numba: bool = True) -> np.ndarray:
    """[n_docs, num_perm] uint32 MinHash signatures of the shingle-hash batch."""
    a, b = perms
    kernel = _numba_kernel() if use_numba else False
    if not kernel:
        return _signatures_numpy(hashes, offsets, a, b)
    out = np.empty((len(offsets) - 1, len(a)), dtype=np.uint64)
    kernel(np.ascontiguousarray(hashes, dtype=np.uint64), np.ascontiguousarray(offsets, dtype=np.int64),
           a, b, out)
    return out.astype(np.uint32)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.count_nonzero(sig_a == sig_b)) / len(sig_a)


# ---------------------------------------------------------------------------
# LSH


def _false_positive_area(threshold: float, b: int, r: int) -> float:
    from scipy.integrate import quad

    return quad(lambda s: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)[0]


def _false_negative_area(threshold: float, b: int, r: int) -> float:
    from scipy.integrate import quad

    return quad(lambda s: 1 - (1 - (1 - s ** float(r)) ** float(b)), threshold, 1.0)[0]


def _search_pairs(num_perm: int) -> List[Tuple[int, int]]:
    """Every ``(b, r)`` with ``b * r <= num_perm``, in the order datasketch searches them."""
    return [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]


def _areas_exact(threshold: float, num_perm: int, fp_weight: float,
                 fn_weight: float) -> Tuple[List[Tuple[int, int]], np.ndarray]:
    """Every ``(b, r)`` of :func:`optimal_lsh_params`' search, in its order, and its weighted
    error, the areas integrated by Gauss-Legendre quadrature.

    The S-curve is a polynomial of degree ``b * r <= num_perm``, which ``num_perm // 2 + 2``
    nodes integrate exactly (to rounding): all areas in one numpy expression, without scipy.
    """
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 2)

    def scaled(lo: float, hi: float):
        half = (hi - lo) / 2
        return half * nodes + (hi + lo) / 2, half * weights

    pairs = _search_pairs(num_perm)
    bands = np.array([b for b, _ in pairs], dtype=np.float64)[:, None]
    rows = np.array([r for _, r in pairs], dtype=np.float64)[:, None]
    x_fp, w_fp = scaled(0.0, threshold)
    x_fn, w_fn = scaled(threshold, 1.0)
    fp = ((1 - (1 - x_fp ** rows) ** bands) * w_fp).sum(axis=1)
    fn = (((1 - x_fn ** rows) ** bands) * w_fn).sum(axis=1)
    return pairs, fp_weight * fp + fn_weight * fn


# Pairs whose exact errors are this close to the smallest are compared as datasketch
# compares them (scipy's quad, whose error on these polynomials is far below this).
_NEAR_TIE = 1e-6


def optimal_lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5,
                       fn_weight: float = 0.5) -> Tuple[int, int]:
    """(bands, rows) minimising fp_weight * FP area + fn_weight * FN area, b * r <= num_perm.

    The S-curve ``1 - (1 - s**r)**b`` is the probability that two documents of
    Jaccard ``s`` share a band; the search is the one datasketch's
    ``MinHashLSH`` makes. The areas are exact (:func:`_areas_exact`): a run's
    launcher no longer imports scipy to integrate the two areas of about 700
    pairs (0.9-1.5 s); where another pair's error is within ``1e-6`` of the best, those
    pairs are compared by scipy's ``quad`` as datasketch compares them, so the
    choice is datasketch's.
    """
    pairs, errors = _areas_exact(threshold, num_perm, fp_weight, fn_weight)
    close = [pairs[i] for i in np.flatnonzero(errors <= errors.min() + _NEAR_TIE)]
    if len(close) == 1:
        return close[0]
    return _first_smallest_by_quad(close, threshold, fp_weight, fn_weight)


def _first_smallest_by_quad(pairs, threshold: float, fp_weight: float,
                            fn_weight: float) -> Tuple[int, int]:
    """The first of ``pairs`` (in the search's order) with the smallest weighted error by
    scipy's ``quad``: datasketch's comparison."""
    best, best_err = pairs[0], float("inf")
    for b, r in pairs:
        err = (fp_weight * _false_positive_area(threshold, b, r)
               + fn_weight * _false_negative_area(threshold, b, r))
        if err < best_err:
            best, best_err = (b, r), err
    return best


def _optimal_lsh_params_by_quad(threshold: float, num_perm: int, fp_weight: float = 0.5,
                                fn_weight: float = 0.5) -> Tuple[int, int]:
    """The search as datasketch makes it, every area by scipy's ``quad`` (the reference
    the tests hold :func:`optimal_lsh_params` to)."""
    pairs = _search_pairs(num_perm)
    return _first_smallest_by_quad(pairs, threshold, fp_weight, fn_weight)


# The band-key hash: two 64-bit multiply-xorshift hashes of a band's values, seeded
# with the band index, each finished with SplitMix64's mixer.
_KEY_SEEDS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))
_KEY_PRIMES = (np.uint64(0x100000001B3), np.uint64(0xFF51AFD7ED558CCD))
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_KEY_DTYPE = np.dtype([("band", "<u2"), ("h1", "<u8"), ("h2", "<u2")])  # 12 bytes, packed


def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _MIX[0]
    z = (z ^ (z >> np.uint64(27))) * _MIX[1]
    return z ^ (z >> np.uint64(31))


def band_keys_batch(signatures: np.ndarray, bands: int, rows: int) -> List[List[bytes]]:
    """One 12-byte key per band of every row of ``signatures`` (one signature per row).

    A key is the band's index (2 bytes) and an 80-bit hash of the band's ``rows``
    values (two 64-bit multiply-xorshift hashes, vectorised over the whole batch):
    two documents meet in a bucket when a whole band agrees. A collision of
    different bands would only add a candidate pair, which is still verified.
    About 4.6 microseconds per document of 18 bands of 7 rows in batches of 256 (BLAKE2b
    per band took about 10.5).
    """
    sigs = np.asarray(signatures)
    if sigs.ndim != 2 or sigs.shape[1] < bands * rows:
        raise ValueError(f"signatures of shape {sigs.shape}: need {bands} bands of {rows} rows")
    n = sigs.shape[0]
    values = sigs[:, :bands * rows].astype(np.uint64).reshape(n, bands, rows)
    index = np.arange(bands, dtype=np.uint64)[None, :]
    keys = np.empty((n, bands), dtype=_KEY_DTYPE)
    keys["band"] = np.arange(bands, dtype=np.uint16)[None, :]
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as meant
        for field, seed, prime in (("h1", _KEY_SEEDS[0], _KEY_PRIMES[0]),
                                   ("h2", _KEY_SEEDS[1], _KEY_PRIMES[1])):
            h = np.broadcast_to(seed ^ (index * prime), (n, bands)).copy()
            for r in range(rows):
                h ^= values[:, :, r]
                h *= prime
                h ^= h >> np.uint64(29)
            h = _mix64(h)
            keys[field] = h if field == "h1" else (h & np.uint64(0xFFFF)).astype(np.uint16)
    raw = keys.tobytes()
    width = bands * 12
    return [[raw[o:o + 12] for o in range(base, base + width, 12)]
            for base in range(0, n * width, width)]


def band_keys(signature: np.ndarray, bands: int, rows: int) -> List[bytes]:
    """The band keys of one signature (:func:`band_keys_batch` of one row)."""
    return band_keys_batch(np.asarray(signature)[None, :], bands, rows)[0]
