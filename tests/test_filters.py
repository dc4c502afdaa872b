"""Tests for transforms.text.filters (pure Python, offline, fast)."""
from __future__ import annotations

import itertools
import json
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from transforms.text.filters import LINE_REASONS, REASONS, FilterConfig, TextFilter

# A realistic English document: paragraphs of several lines, each line a full
# sentence or two.  It passes every rule with the default configuration.
GOOD_PARAGRAPHS = [
    "The old mill stood at the bend of the river for almost two hundred years.\n"
    "Farmers from the surrounding valleys brought their grain to it every autumn.\n"
    "In a good season the wheel turned from dawn until long after the lamps were lit.\n"
    "When the railway arrived, most of that trade moved to the larger towns downstream.",
    "Nobody is quite sure who built the first wooden bridge across the water.\n"
    "Parish records mention a toll collected there as early as 1742, but the keeper's name is lost.\n"
    "The stone bridge that replaced it was paid for by a subscription among local merchants.",
    "Life in the village followed the rhythm of the seasons rather than the clock.\n"
    "Spring meant lambing and ploughing, while summer brought haymaking and the annual fair.\n"
    "Children were expected to help with the harvest, and the school closed for several weeks.\n"
    "Winter evenings were spent mending tools, telling stories and planning the next year.",
    "A flood in 1873 changed the course of the river and left the mill race dry.\n"
    "The owner tried to dig a new channel, but the cost ruined him within a decade.\n"
    "His daughter sold the building to a brewer, who used it as a storehouse for barley.",
    "Today the ruins are a popular stop for walkers following the valley path.\n"
    "A small museum in the former schoolhouse displays millstones, ledgers and photographs.\n"
    "Volunteers have restored part of the wheel, and on open days it turns again for visitors.",
    "Historians argue that places like this tell us more about ordinary lives than any palace.\n"
    "They show how people worked, what they ate, and how they coped with sudden change.\n"
    "Perhaps that is why so many visitors stay longer than they had planned!",
]
GOOD = "\n\n".join(GOOD_PARAGRAPHS)
GOOD_LINES = [line for p in GOOD_PARAGRAPHS for line in p.split("\n")]

# A line with several of the Gopher stop words; appended to synthetic documents.
STOP_LINE = "The rest of that story can be told to the children and that is fine with them."

_SYLLABLES = ["ba", "de", "fi", "go", "ku", "la", "me", "ni", "po", "ru", "sa", "te", "vi", "zo"]
_WORDS = ["".join(p) for p in itertools.product(_SYLLABLES, repeat=3)]  # 2744 distinct 6-letter words
random.Random(1234).shuffle(_WORDS)


def fresh_words(n: int, start: int = 0) -> list[str]:
    """n distinct pseudo-words (no stop words, no punctuation)."""
    assert start + n <= len(_WORDS)
    return _WORDS[start : start + n]


def sentence(words: list[str], end: str = ".") -> str:
    text = " ".join(words)
    return text[:1].upper() + text[1:] + end


def check(text: str, **overrides) -> str | None:
    return TextFilter(FilterConfig(**overrides))(text)[1]


# ---------------------------------------------------------------- documents
def _doc_top_gram(phrase: list[str], per_line_after: int, lines: int = 40) -> str:
    """Lines "<w> <phrase> <w>...<w>." -- only the phrase (and its sub-grams) repeat."""
    words = iter(fresh_words(lines * (1 + per_line_after)))
    out = []
    for _ in range(lines):
        first = next(words)
        rest = [next(words) for _ in range(per_line_after)]
        out.append(" ".join([first.capitalize(), *phrase, *rest]) + ".")
    return "\n".join(out + [STOP_LINE])


def _doc_dup_gram(n: int, lines: int = 30) -> str:
    """Lines "<w> <w> <n-word phrase> <w> <w>." -- the phrase is the only repeated n-gram."""
    phrase = fresh_words(n, start=2000)
    words = iter(fresh_words(lines * 4))
    out = []
    for _ in range(lines):
        a, b, c, d = (next(words) for _ in range(4))
        out.append(" ".join([a.capitalize(), b, *phrase, c, d]) + ".")
    return "\n".join(out + [STOP_LINE])


def _lines_of(words: list[str], per_line: int, end: str = ".", prefix: str = "") -> list[str]:
    return [prefix + sentence(words[i : i + per_line], end) for i in range(0, len(words), per_line)]


def _doc_short_words() -> str:
    vocab = "a an as at by do go he if in is it me my no of on or so to up us we be the".split()
    rng = random.Random(7)
    lines = [" ".join(rng.choice(vocab) for _ in range(9)).capitalize() + "." for _ in range(14)]
    return "\n".join(lines + ["The end of the day came."])


def _doc_long_words() -> str:
    rng = random.Random(11)
    long_words = ["".join(rng.choice(_SYLLABLES) for _ in range(6)) for _ in range(150)]
    return "\n".join(_lines_of(long_words, 10) + [STOP_LINE])


def _doc_hashtags() -> str:
    words = iter(fresh_words(15 * 17))
    lines = []
    for _ in range(15):
        w = [next(words) for _ in range(17)]
        lines.append(" ".join([w[0].capitalize(), *w[1:14], "#" + w[14], "#" + w[15], "#" + w[16]]) + ".")
    return "\n".join(lines + [STOP_LINE])


def _doc_mid_ellipsis() -> str:
    words = iter(fresh_words(15 * 14))
    lines = []
    for _ in range(15):
        w = [next(words) for _ in range(14)]
        lines.append(" ".join([w[0].capitalize(), *w[1:5], "...", *w[5:10], "...", *w[10:]]) + ".")
    return "\n".join(lines + [STOP_LINE])


def _doc_bullets() -> str:
    lines = _lines_of(fresh_words(120), 10, prefix="- ")
    lines.append("- " + STOP_LINE)
    return "\n".join(lines)


def _doc_end_ellipsis() -> str:
    lines = _lines_of(fresh_words(120), 12)
    for i in (0, 3, 6, 9):  # 4 of 11 lines end with "..."
        lines[i] = lines[i][:-1] + "..."
    return "\n".join(lines + [STOP_LINE])


def _doc_numbers() -> str:
    words = iter(fresh_words(12 * 6))
    rng = random.Random(3)
    lines = []
    for _ in range(12):
        w = [next(words) for _ in range(6)]
        nums = [str(rng.randint(10, 999)) for _ in range(3)]
        lines.append(" ".join([w[0].capitalize(), w[1], nums[0], w[2], nums[1], w[3], nums[2], w[4], w[5]]) + ".")
    return "\n".join(lines + [STOP_LINE])


FOUR_SENTENCES = "\n".join(GOOD_LINES[i] for i in (0, 1, 2, 4))
SHORT_DOC = "\n".join(
    [
        "The cat sat on the mat.",
        "It was warm and dry there.",
        "A dog came to see it.",
        "They looked at each other.",
        "Then both went to sleep.",
    ]
)

# (reason, document, base overrides, overrides that disable/relax just that rule)
# Under `base` the document fails with exactly `reason`; under base + disable it
# passes every rule, so no other rule is tripped by it.
CASES = [
    ("c4_lorem_ipsum", GOOD + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.", {},
     {"c4_filter_lorem_ipsum": False}),
    ("c4_curly_bracket", GOOD + "\nThe old ledger used { to open every price.", {},
     {"c4_filter_curly_bracket": False}),
    ("c4_min_sentences", FOUR_SENTENCES, {}, {"c4_min_sentences": 0}),
    ("c4_bad_words", GOOD + "\nThe miller would never frobnicate the flour, they said.",
     {"bad_words": ("frobnicate",)}, {"bad_words": ()}),
    # repeated paragraphs only exist without the C4 line rules (they drop blank lines)
    ("gopher_dup_para_frac", GOOD + "\n\nYes, we agree.\n\nYes, we agree.\n\nYes, we agree.\n\nYes, we agree."
     "\n\nYes, we agree.", {"c4": False}, {"dup_para_frac": None}),
    # a repeated paragraph also repeats its lines and n-grams: those rules are off here
    ("gopher_dup_para_char_frac", GOOD + "\n\n" + GOOD_PARAGRAPHS[0] + "\n\n" + GOOD_PARAGRAPHS[2],
     {"c4": False, "dup_line_char_frac": None, "dup_n_grams": ()}, {"dup_para_char_frac": None}),
    ("gopher_dup_line_frac", GOOD + "\nYes we agree." * 14, {}, {"dup_line_frac": None}),
    ("gopher_dup_line_char_frac", GOOD + ("\n" + GOOD_LINES[6]) * 6, {"dup_n_grams": ()},
     {"dup_line_char_frac": None}),
    ("gopher_top_2_gram", _doc_top_gram(["alpha", "beta"], 2), {},
     {"top_n_grams": ((3, 0.18), (4, 0.16))}),
    ("gopher_top_3_gram", _doc_top_gram(["alpha", "beta", "gamma"], 4), {},
     {"top_n_grams": ((2, 0.20), (4, 0.16))}),
    ("gopher_top_4_gram", _doc_top_gram(["alpha", "beta", "gamma", "delta"], 11), {},
     {"top_n_grams": ((2, 0.20), (3, 0.18))}),
    *[
        (f"gopher_dup_{n}_gram", _doc_dup_gram(n), {"top_n_grams": (), "dup_n_grams": ((n, thr),)},
         {"dup_n_grams": ()})
        for n, thr in FilterConfig().dup_n_grams
    ],
    ("gopher_min_words", SHORT_DOC, {}, {"min_words": None}),
    ("gopher_max_words", GOOD, {"max_words": 100}, {"max_words": 100_000}),
    ("gopher_mean_word_length", _doc_short_words(), {}, {"min_mean_word_length": None}),
    ("gopher_mean_word_length", _doc_long_words(), {}, {"max_mean_word_length": None}),
    ("gopher_symbol_word_ratio", _doc_hashtags(), {}, {"max_symbol_word_ratio": None}),
    ("gopher_symbol_word_ratio", _doc_mid_ellipsis(), {}, {"max_symbol_word_ratio": None}),
    ("gopher_bullet_lines", _doc_bullets(), {}, {"max_bullet_lines_ratio": None}),
    # C4 drops lines ending in "...", so this rule can only fire without it
    ("gopher_ellipsis_lines", _doc_end_ellipsis(), {"c4_terminal_punctuation": False},
     {"max_ellipsis_lines_ratio": None}),
    ("gopher_alpha_words", _doc_numbers(), {}, {"max_non_alpha_words_ratio": None}),
    ("gopher_stop_words", "\n".join(_lines_of(fresh_words(120), 10)), {}, {"min_stop_words": None}),
    ("too_short", GOOD, {"min_chars": 100_000}, {"min_chars": 0}),
    ("too_long", GOOD, {"max_chars": 100}, {"max_chars": 0}),
]
CASE_IDS = [f"{i}-{c[0]}" for i, c in enumerate(CASES)]


def test_reasons_are_distinct_and_complete():
    assert len(set(REASONS)) == len(REASONS)
    assert len(set(LINE_REASONS)) == len(LINE_REASONS)
    assert not set(REASONS) & set(LINE_REASONS)
    expected = {
        "gopher_min_words", "gopher_max_words", "gopher_mean_word_length", "gopher_symbol_word_ratio",
        "gopher_bullet_lines", "gopher_ellipsis_lines", "gopher_alpha_words", "gopher_stop_words",
        "gopher_dup_line_frac", "gopher_dup_para_frac", "gopher_dup_line_char_frac",
        "gopher_dup_para_char_frac", "gopher_top_2_gram", "gopher_top_3_gram", "gopher_top_4_gram",
        *(f"gopher_dup_{n}_gram" for n in range(5, 11)),
        "c4_lorem_ipsum", "c4_curly_bracket", "c4_min_sentences", "c4_bad_words", "c4_empty",
        "too_short", "too_long",
    }
    assert set(REASONS) == expected
    assert set(LINE_REASONS) == {
        "c4_line_no_terminal_punct", "c4_line_too_few_words", "c4_line_javascript",
        "c4_line_policy", "c4_line_long_word",
    }
    # every page reason has a dedicated failing case (c4_empty has its own test)
    assert {c[0] for c in CASES} | {"c4_empty"} == set(REASONS)


def test_good_document_passes_all_rules():
    counts: dict = {}
    text, reason = TextFilter()(GOOD, counts)
    assert reason is None
    assert text == GOOD  # C4 keeps every line and the paragraph breaks
    assert sum(counts.values()) == 0
    # C4's own behaviour drops the blank lines, counted as unpunctuated
    counts = {}
    text, reason = TextFilter(FilterConfig(c4_keep_paragraph_breaks=False))(GOOD, counts)
    assert reason is None and text == "\n".join(GOOD_LINES)
    assert counts["c4_line_no_terminal_punct"] == len(GOOD_PARAGRAPHS) - 1  # the blank lines
    # and without C4 the text is untouched
    assert TextFilter(FilterConfig(c4=False))(GOOD) == (GOOD, None)


@pytest.mark.parametrize("reason,doc,base,disable", CASES, ids=CASE_IDS)
def test_rule_fails_with_exactly_its_reason(reason, doc, base, disable):
    assert reason in REASONS
    assert check(doc, **base) == reason
    assert check(doc, **{**base, **disable}) is None


@pytest.mark.parametrize("reason,doc,base,disable", CASES, ids=CASE_IDS)
def test_disabling_a_group_disables_its_reasons(reason, doc, base, disable):
    groups = {
        "c4": {r for r in REASONS if r.startswith("c4_")},
        "gopher_repetition": {r for r in REASONS if r.startswith("gopher_dup") or r.startswith("gopher_top")},
        "gopher_quality": {r for r in REASONS if r.startswith("gopher_")}
        - {r for r in REASONS if r.startswith("gopher_dup") or r.startswith("gopher_top")},
    }
    for group, reasons in groups.items():
        if reason in reasons:
            got = check(doc, **{**base, group: False})
            assert got is None or got not in reasons, (group, got)


def test_c4_empty():
    doc = "no terminal punctuation here\nnor on this line either\n\n"
    assert check(doc) == "c4_min_sentences"  # min sentences comes first
    assert check(doc, c4_min_sentences=0) == "c4_empty"
    assert TextFilter(FilterConfig(c4_min_sentences=0))(doc)[0] == ""
    assert check(doc, c4_min_sentences=0, c4_drop_empty=False) == "gopher_min_words"
    assert check(doc, c4=False, gopher_repetition=False) == "gopher_min_words"


# ------------------------------------------------------------ near misses
def test_near_misses_pass():
    # "lorem ipsum" / "{" only matter on lines that the line rules keep
    assert check(GOOD + "\nlorem ipsum dolor sit amet") is None
    assert check(GOOD + "\nthe code was {x} here") is None
    # a closing bracket alone is fine
    assert check(GOOD + "\nThe old ledger used } to close every price.") is None
    # only "lorem" without "ipsum"
    assert check(GOOD + "\nLorem is a word we do not use much.") is None
    # bad words match whole words only, any case
    bw = {"bad_words": ("frobnicate",)}
    assert check(GOOD + "\nThey would frobnicated everything, it seems.", **bw) is None
    assert check(GOOD + "\nThey would FROBNICATE everything, it seems.", **bw) == "c4_bad_words"
    # five one-line sentences are enough
    assert check("\n".join(GOOD_LINES[:5])) is None
    # four lines, but one holds two sentences: five in all
    assert check(FOUR_SENTENCES.replace("every autumn.", "every autumn. It was hard work.")) is None
    # ... but an ellipsis or an abbreviation inside a line ends no sentence
    assert check(FOUR_SENTENCES.replace("every autumn.", "every autumn... it was hard work.")) == \
        "c4_min_sentences"
    assert check(FOUR_SENTENCES.replace("Farmers", "Mr. Smith and other farmers")) == "c4_min_sentences"
    # 9 bullet lines out of 10 is exactly the 0.9 limit
    w = fresh_words(98)
    bullets = _lines_of([w[0], "the", "of", *w[1:]], 10, prefix="- ")
    assert check("\n".join(bullets)) == "gopher_bullet_lines"
    bullets[4] = bullets[4][2:]
    assert check("\n".join(bullets)) is None
    # GOOD has 20 lines: 10 of 31 lines duplicated is > 0.3, 9 of 30 is exactly 0.3
    assert len(GOOD_LINES) == 20
    assert check(GOOD + "\nYes we agree." * 11) == "gopher_dup_line_frac"
    assert check(GOOD + "\nYes we agree." * 10) is None
    # exactly 50 words passes, 49 fails
    w = fresh_words(120)
    fifty = "\n".join(_lines_of([w[0], "the", "of", *w[1:48]], 10))
    assert check(fifty) is None
    assert check("\n".join(_lines_of([w[0], "the", "of", *w[1:47]], 10))) == "gopher_min_words"
    # one stop word is not enough, two are
    assert check("\n".join(_lines_of([w[0], "the", *w[1:]], 10))) == "gopher_stop_words"
    assert check("\n".join(_lines_of([w[0], "the", "with", *w[1:]], 10))) is None
    # stop words are case-sensitive, as in datatrove
    assert check("\n".join(_lines_of([w[0], "The", "With", *w[1:]], 10))) == "gopher_stop_words"


def test_top_gram_threshold_is_exclusive():
    # the rule drops when the fraction is *greater than* the threshold
    tf = TextFilter(FilterConfig(c4=False, gopher_quality=False, dup_n_grams=(), top_n_grams=((2, 0.2),)))
    text = "ab cd " + "x" * 8 + " ab cd " + "y" * 29  # "ab cd" (5 chars) x 2 = 10 of 50
    assert len(text) == 50
    assert tf(text)[1] is None
    assert tf(text[:-1])[1] == "gopher_top_2_gram"  # 10 of 49


# ----------------------------------------------------------- C4 line rules
def test_c4_line_removal_keeps_only_good_lines_and_counts_them():
    bad = {
        "c4_line_no_terminal_punct": [
            "A heading without punctuation",
            "It trails off like this...",
            "",
            "   ",
        ],
        "c4_line_too_few_words": ["Too short.", "Really?"],
        "c4_line_javascript": ["Please enable JavaScript to view this page properly."],
        "c4_line_policy": [
            "By using this site you accept our Terms of Use and everything else.",
            "Read the privacy policy before you continue.",
            "This website uses cookies to improve your experience.",
            "See our cookie policy for the details.",
        ],
        "c4_line_long_word": ["This line has a " + "x" * 1001 + " very long word."],
    }
    lines = []
    bad_iter = itertools.cycle(line for group in bad.values() for line in group)
    for good in GOOD_LINES:
        lines.append(good)
        lines.append(next(bad_iter))
    lines += [line for group in bad.values() for line in group]
    doc = "\n".join(lines)
    counts = {"c4_line_policy": 1}  # counts are added to what is there
    # C4's own semantics: blank lines are removed lines too
    text, reason = TextFilter(FilterConfig(c4_keep_paragraph_breaks=False))(doc, counts)
    assert reason is None
    assert text == "\n".join(GOOD_LINES)
    n_bad = Counter()
    for group, group_lines in bad.items():
        for line in lines:
            if line in group_lines:
                n_bad[group] += 1
    assert set(counts) == set(LINE_REASONS)
    for key in LINE_REASONS:
        assert counts[key] == n_bad[key] + (1 if key == "c4_line_policy" else 0), key

    # each line rule can be switched off or tuned
    assert "enable JavaScript" in TextFilter(FilterConfig(c4_filter_javascript=False))(doc)[0]
    assert "privacy policy" in TextFilter(FilterConfig(c4_filter_policy=False))(doc)[0]
    assert "Too short." in TextFilter(FilterConfig(c4_min_words_per_line=2))(doc)[0]
    assert "Too short." not in TextFilter(FilterConfig(c4_min_words_per_line=3))(doc)[0]
    assert "Really?" in TextFilter(FilterConfig(c4_min_words_per_line=0))(doc)[0]
    assert "x" * 1001 in TextFilter(FilterConfig(c4_max_word_length=2000))(doc)[0]
    assert "x" * 1001 in TextFilter(FilterConfig(c4_max_word_length=0))(doc)[0]
    relaxed = TextFilter(FilterConfig(c4_terminal_punctuation=False))(doc)[0]
    assert "A heading without punctuation" in relaxed and "It trails off like this..." in relaxed


@pytest.mark.parametrize(
    "phrase",
    ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"],
)
def test_c4_each_policy_phrase_removes_its_line(phrase):
    line = f"Please note that we {phrase.upper()} here."
    counts: dict = {}
    text, reason = TextFilter()(GOOD + "\n" + line, counts)
    assert reason is None and text == GOOD
    assert counts["c4_line_policy"] == 1
    assert line in TextFilter(FilterConfig(c4_filter_policy=False))(GOOD + "\n" + line)[0]


def test_c4_paper_min_words_per_line():
    line = "Four words are here."
    assert line in TextFilter(FilterConfig(c4_min_words_per_line=3))(GOOD + "\n" + line)[0]
    assert line not in TextFilter(FilterConfig(c4_min_words_per_line=5))(GOOD + "\n" + line)[0]


def test_c4_citations():
    doc = GOOD + "\nThe bridge was rebuilt in 1820.[1]\nThe toll[citation needed] was a penny a cart.[edit]"
    text, reason = TextFilter()(doc)
    assert reason is None
    assert text.endswith("\nThe bridge was rebuilt in 1820.\nThe toll was a penny a cart.")
    # without citation removal both lines end with "]" and are dropped
    text, reason = TextFilter(FilterConfig(c4_remove_citations=False))(doc)
    assert reason is None and text == GOOD
    # removing a marker can join a phrase that a rule looks for
    assert check(GOOD + "\nLorem[1] ipsum dolor sit amet, they wrote.") == "c4_lorem_ipsum"
    text, _ = TextFilter()(GOOD + "\nYou need Java[2]Script enabled here.")
    assert text == GOOD
    # nested markers are removed completely
    text, _ = TextFilter()(GOOD + "\nIt was rebuilt once more.[[2]]")
    assert text.endswith("\nIt was rebuilt once more.")


def test_c4_page_rules_first_kept_line_decides():
    lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit."
    curly = "The old ledger used {curly marks} around every price."
    assert check(GOOD + "\n" + lorem + "\n" + curly) == "c4_lorem_ipsum"
    assert check(GOOD + "\n" + curly + "\n" + lorem) == "c4_curly_bracket"
    # a page rule returns the input text unchanged
    doc = GOOD + "\n" + curly
    assert TextFilter()(doc) == (doc, "c4_curly_bracket")
    # a line removed for "javascript" is not looked at for "{"
    assert check(GOOD + "\nJavaScript code uses {braces} a lot.") is None


def test_c4_blank_kept_lines_are_not_sentences():
    cfg = dict(c4_terminal_punctuation=False, c4_min_words_per_line=0, gopher_quality=False,
               gopher_repetition=False, c4_min_sentences=3)
    doc = "Alpha beta gamma.\n\n\n\nDelta epsilon zeta."
    text, reason = TextFilter(FilterConfig(**cfg))(doc)
    assert (text, reason) == ("Alpha beta gamma.\n\nDelta epsilon zeta.", "c4_min_sentences")
    assert check(doc + "\nEta theta.", **cfg) is None


def test_non_ascii_words_are_words():
    # accented letters are letters: the document passes like its ASCII twin
    accented = "\n".join(_lines_of([w[:-1] + "é" for w in fresh_words(120)], 10) + [STOP_LINE])
    plain = "\n".join(_lines_of(fresh_words(120), 10) + [STOP_LINE])
    assert check(plain) is None
    assert check(accented) is None
    assert check("\n".join(_lines_of(["12" + w[2:] + "3" for w in fresh_words(120)], 10))) is not None
    # same decisions with a non-ASCII character elsewhere in an ASCII document
    assert check(_doc_numbers() + "\nCafé") == check(_doc_numbers()) == "gopher_alpha_words"


def test_c4_group_off_keeps_text_untouched():
    doc = GOOD + "\nno punctuation\nPlease enable JavaScript to continue."
    counts: dict = {}
    assert TextFilter(FilterConfig(c4=False))(doc, counts) == (doc, None)
    assert counts == {}


# --------------------------------------------------------------- config
def test_config_round_trip():
    default = FilterConfig()
    assert FilterConfig.from_dict(default.to_dict()) == default
    custom = FilterConfig(
        c4=False, min_chars=10, max_chars=10_000, min_words=20, stop_words=("a", "b"),
        top_n_grams=((2, 0.5),), dup_n_grams=((5, 0.3), (10, 0.2)), bad_words=("foo", "bar baz"),
        max_symbol_word_ratio=None,
    )
    d = custom.to_dict()
    again = FilterConfig.from_dict(json.loads(json.dumps(d)))
    assert again == custom
    assert again.top_n_grams == ((2, 0.5),) and isinstance(again.stop_words, tuple)
    assert hash(again) == hash(custom)
    assert d["stop_words"] == ["a", "b"] and d["dup_n_grams"] == [[5, 0.3], [10, 0.2]]


def test_config_defaults_are_the_published_ones():
    c = FilterConfig()
    assert (c.min_words, c.max_words, c.min_mean_word_length, c.max_mean_word_length) == (50, 100_000, 3, 10)
    assert (c.max_symbol_word_ratio, c.max_bullet_lines_ratio, c.max_ellipsis_lines_ratio) == (0.1, 0.9, 0.3)
    assert (c.max_non_alpha_words_ratio, c.min_stop_words) == (0.8, 2)
    assert c.stop_words == ("the", "be", "to", "of", "and", "that", "have", "with")
    assert (c.dup_line_frac, c.dup_para_frac, c.dup_line_char_frac, c.dup_para_char_frac) == (0.3, 0.3, 0.2, 0.2)
    assert c.top_n_grams == ((2, 0.2), (3, 0.18), (4, 0.16))
    assert c.dup_n_grams == ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.1))
    assert (c.c4_min_words_per_line, c.c4_max_word_length, c.c4_min_sentences) == (3, 1000, 5)
    assert c.bad_words == () and (c.min_chars, c.max_chars) == (0, 0)


def test_config_unknown_key_and_bad_values():
    with pytest.raises(ValueError, match="min_wordz"):
        FilterConfig.from_dict({"min_words": 10, "min_wordz": 3})
    with pytest.raises(ValueError, match="n must be one of"):
        FilterConfig.from_dict({"dup_n_grams": [[11, 0.1]]})
    with pytest.raises(ValueError, match="increasing"):
        FilterConfig(top_n_grams=((3, 0.1), (2, 0.1)))
    with pytest.raises(TypeError):
        FilterConfig.from_dict({"min_words": "50"})
    with pytest.raises(TypeError):
        FilterConfig.from_dict({"c4": "yes"})
    with pytest.raises(TypeError):
        FilterConfig(stop_words="the")
    lists = FilterConfig.from_dict({"stop_words": ["x", "y"], "top_n_grams": [[2, 0.3]]})
    assert lists.stop_words == ("x", "y") and lists.top_n_grams == ((2, 0.3),)


# ------------------------------------------------ n-gram rules vs reference
def _ref_top_frac(tokens: list[str], n: int, n_chars: int) -> float:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    gram, count = Counter(grams).most_common(1)[0]
    return len(" ".join(gram)) * count / n_chars


def _ref_dup_frac(tokens: list[str], n: int, n_chars: int) -> float:
    seen, covered = set(), [False] * len(tokens)
    for i in range(len(tokens) - n + 1):
        gram = tuple(tokens[i : i + n])
        if gram in seen:
            covered[i : i + n] = [True] * n
        seen.add(gram)
    return sum(len(t) for t, c in zip(tokens, covered) if c) / n_chars


def _ref_reason(tokens: list[str], text: str) -> str | None:
    cfg = FilterConfig()
    for n, thr in cfg.top_n_grams:
        if _ref_top_frac(tokens, n, len(text)) > thr:
            return f"gopher_top_{n}_gram"
    for n, thr in cfg.dup_n_grams:
        if _ref_dup_frac(tokens, n, len(text)) > thr:
            return f"gopher_dup_{n}_gram"
    return None


_NGRAM_ONLY = dict(c4=False, gopher_quality=False, dup_line_frac=None, dup_para_frac=None,
                   dup_line_char_frac=None, dup_para_char_frac=None)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "bb", "ccc", "dddd", "e", "ff", "the", "of"]), min_size=1, max_size=80),
    st.integers(min_value=1, max_value=4),
)
def test_ngram_fractions_match_reference(tokens, repeat):
    tokens = tokens * repeat if repeat > 1 and len(tokens) < 20 else tokens
    text = " ".join(tokens)
    # all default n-gram rules together: same first failing rule as the reference
    assert check(text, **_NGRAM_ONLY) == _ref_reason(tokens, text)
    # each rule alone, with the threshold just below / at the reference fraction
    for n in (2, 3, 4):
        frac = _ref_top_frac(tokens, n, len(text))
        if frac > 0:
            assert check(text, **_NGRAM_ONLY, dup_n_grams=(), top_n_grams=((n, frac),)) is None
            assert check(text, **_NGRAM_ONLY, dup_n_grams=(), top_n_grams=((n, frac * 0.999),)) == \
                f"gopher_top_{n}_gram"
    for n in range(5, 11):
        frac = _ref_dup_frac(tokens, n, len(text))
        if frac > 0:
            assert check(text, **_NGRAM_ONLY, top_n_grams=(), dup_n_grams=((n, frac),)) is None
            assert check(text, **_NGRAM_ONLY, top_n_grams=(), dup_n_grams=((n, frac * 0.999),)) == \
                f"gopher_dup_{n}_gram"


def test_long_dup_ngram_rules_are_not_skipped_wrongly():
    # One 12-word phrase repeated once among distinct words: the duplicate
    # n-gram coverage is the same for n = 5..10, so as the document grows it
    # crosses the thresholds 0.15 ... 0.10 one at a time, and each of the six
    # rules in turn must be the one that reports it.
    phrase = fresh_words(12, start=2500)
    seen = set()
    for filler in range(0, 120):
        words = fresh_words(filler + 10)
        tokens = words[:5] + phrase + words[5:10] + phrase + words[10:]
        text = " ".join(tokens)
        expected = _ref_reason(tokens, text)
        assert check(text, **_NGRAM_ONLY) == expected, filler
        seen.add(expected)
    assert {f"gopher_dup_{n}_gram" for n in range(5, 11)} <= seen


# ------------------------------------------------------------- idempotence
_TOKENS = [
    "the", "of", "and", "with", "river", "mill", "Water", "old", "bridge", "1873", "a", "to",
    "Lorem", "ipsum", "javascript", "cookies", "use", "privacy", "policy", "{", "}", "#", "...",
    "…", "-", "•", "[1]", "[edit]", "[", "]", "citation", "needed]", "[citation", "don't", "U.S.",
    ",", ".", "!", "?", '"', "'", "x" * 30, "Lorem[1]", "java[edit]script", "{[2]",
]
_PLAIN = ["the", "of", "and", "with", "river", "mill", "Water", "old", "bridge", "a", "to", "stood", "town"]
_line = st.tuples(
    st.lists(st.sampled_from(_TOKENS + _PLAIN * 4), max_size=14).map(" ".join),
    st.sampled_from(["", ".", "!", "?", "...", '"', " ", "[2]", "."]),
    st.sampled_from(["", " ", "  ", "\t"]),
).map(lambda t: t[2] + t[0] + t[1])
_doc = st.lists(st.tuples(_line, st.sampled_from(["\n", "\n\n", "\r\n", "\n \n"])), max_size=25).map(
    lambda parts: "".join(line + sep for line, sep in parts)
)
# Relaxed enough that many of the small generated documents are kept.
_RELAXED = FilterConfig(
    min_words=3, c4_min_sentences=1, c4_min_words_per_line=2, c4_max_word_length=20, min_stop_words=1,
    max_non_alpha_words_ratio=0.3, max_symbol_word_ratio=0.5,
    top_n_grams=((2, 0.6), (3, 0.6), (4, 0.6)), dup_n_grams=((5, 0.6), (10, 0.5)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_doc)
def test_idempotent_on_own_output(doc):
    for name, tf in (("default", TextFilter()), ("relaxed", TextFilter(_RELAXED))):
        text, reason = tf(doc)
        event(f"{name}: {'kept' if reason is None else 'dropped'}")
        assert tf(text) == (text, reason)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_idempotent_on_arbitrary_text(doc):
    for tf in (TextFilter(), TextFilter(_RELAXED), TextFilter(FilterConfig(c4_terminal_punctuation=False))):
        text, reason = tf(doc)
        assert tf(text) == (text, reason)
        assert reason is None or reason in REASONS


def test_idempotent_on_random_documents_many_kept():
    # deterministic complement of the property tests: similar documents, and
    # a check that the relaxed configuration keeps a fair share of them
    rng = random.Random(5)
    words = [t for t in _TOKENS if t not in ("Lorem", "{", "}")]
    tf = TextFilter(_RELAXED)
    kept = 0
    for _ in range(300):
        lines = []
        for _ in range(rng.randint(1, 12)):
            line = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
            lines.append(line + rng.choice([".", "!", "", "...", "[1]"]))
        doc = rng.choice(["\n", "\n\n"]).join(lines)
        text, reason = tf(doc)
        assert tf(text) == (text, reason)
        kept += reason is None
    assert kept >= 60, kept
    assert tf("The mill and the river.\nThe old bridge of the town!\n") == (
        "The mill and the river.\nThe old bridge of the town!", None)


def test_c4_keeps_one_blank_line_per_paragraph_break():
    doc = ("Menu Home About\n\n\n" + GOOD_PARAGRAPHS[0] + "\n \nShare this\n\n\n"
           + GOOD_PARAGRAPHS[1] + "\n\nFooter links\n")
    text, reason = TextFilter(FilterConfig(gopher_quality=False, gopher_repetition=False,
                                           c4_min_sentences=0))(doc)
    assert reason is None
    assert text == GOOD_PARAGRAPHS[0] + "\n\n" + GOOD_PARAGRAPHS[1]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(list("ab Z9_'’.²½é-#…\u0301\n") + ["x1", "3.5", "don't"]),
                max_size=40).map("".join))
def test_word_and_alpha_counts_match_their_regex_definitions(text):
    from transforms.text import filters

    res = filters._UNICODE_RES
    tokens = res["token"].findall(text)
    words = [t for t in tokens if t[0].isalnum() or t[0] == "_"]
    assert words == res["word"].findall(text)
    # the production count, against the regex that defines it
    assert filters.alpha_word_count(words) == len(res["alpha"].findall(text))


@pytest.mark.parametrize("line, kept", [
    ("The sentence ends here.", True),
    ("(See the manual for the whole list.)", True),
    ('He said "stop here."', True),
    ("[Is it finished?]", True),
    ("Das ist alles.«", True),
    ("それで終わりです。」", True),
    ("(see the manual for the whole list)", False),
    ("and then it trails off...)", False),
    ("the list goes on:", False),
])
def test_c4_terminal_mark_inside_closing_brackets_ends_a_line(line, kept):
    # Unicode's sentence rules (UAX #29): a terminator followed by closing
    # brackets or quotes ends the sentence; a bracket alone does not.
    doc = "\n".join([line] + ["This is one more full sentence of plain words."] * 5)
    counts: dict = {}
    out, _ = TextFilter(FilterConfig(gopher_quality=False, gopher_repetition=False,
                                     c4_min_words_per_line=0))(doc, counts)
    assert (line in out.splitlines()) is kept
    assert counts["c4_line_no_terminal_punct"] == (0 if kept else 1)


def test_line_and_paragraph_splits_match_the_regular_expressions():
    """The duplicate line/paragraph rules split with str.split: the same pieces as the regexes."""
    from transforms.text.filters import _LINES_SPLIT_RE, _PARAGRAPH_SPLIT_RE, _lines, _paragraphs

    rng = random.Random(7)
    for _ in range(20000):
        text = "".join(rng.choice(["\n", "\n", "a", "b", " "]) for _ in range(rng.randint(0, 14)))
        assert _lines(text) == _LINES_SPLIT_RE.split(text), repr(text)
        assert _paragraphs(text) == _PARAGRAPH_SPLIT_RE.split(text), repr(text)
