"""Licence allowlist and word blocklist of the filter step."""

import json

import pytest

from conftest import assert_accounting, read_shards, run_text
from transforms.text.content import (Blocklist, BlocklistConfig, LicenseConfig, LicenseFilter,
                                normalize_license)


@pytest.mark.parametrize("raw,family", [
    ("CC BY-SA 4.0", "cc-by-sa"), ("cc-by-sa-3.0", "cc-by-sa"),
    ("Creative Commons Attribution-ShareAlike 4.0 International", "cc-by-sa"),
    ("CC-BY-NC-4.0", "cc-by-nc"), ("CC BY 4.0", "cc-by"), ("CC0 1.0 Universal", "cc0"),
    ("Public Domain", "public-domain"), ("MIT License", "mit"), ("Apache-2.0", "apache"),
    ("Licensed under the Apache License, Version 2.0", "apache"), ("BSD-3-Clause", "bsd"),
    ("GPL-3.0-or-later", "gpl"), ("All rights reserved", "all-rights-reserved"),
])
def test_licence_families(raw, family):
    assert normalize_license(raw) == family


def test_licence_allowlist_and_missing_policy():
    keep = LicenseFilter()
    assert keep("CC BY-SA 4.0") == (True, "cc-by-sa")
    assert keep("CC BY-NC 4.0") == (False, "license_not_allowed")
    assert keep("All rights reserved") == (False, "license_not_allowed")
    assert keep(None) == (True, "missing") and keep("  ") == (True, "missing")
    strict = LicenseFilter(LicenseConfig(allow=("MIT",), missing="drop"))
    assert strict(None) == (False, "license_missing")
    assert strict("mit") == (True, "mit") and strict("Apache-2.0")[0] is False
    with pytest.raises(ValueError):
        LicenseConfig(missing="maybe")


def test_blocklist_whole_words_and_share_threshold():
    bl = Blocklist(BlocklistConfig(words=("bad", "very bad thing"), threshold=0.05, min_hits=2))
    assert bl.matches("bad badge abad bad. Bad!") == 3  # badge and abad are not the word
    assert bl.matches("a very bad thing here") == 1  # the phrase, counted once
    long_clean = "word " * 200 + "bad bad"
    assert bl(long_clean) == (None, 2)  # 1% of the words: under the threshold
    assert bl("bad bad bad and some words") == ("content_blocklist", 3)
    assert bl("just one bad word") == (None, 1)  # one hit never drops a page


def _reference_matches(words, text: str) -> int:
    """The blocklist's rule by brute force: every occurrence of every word, by end
    (the longest first), counted when whole and past the last one counted."""
    low = text.lower()
    found = sorted({(i + len(w), -len(w)) for w in {" ".join(w.lower().split()) for w in words} if w
                    for i in range(len(low)) if low.startswith(w, i)})
    count, last_end = 0, -1
    for stop, neg in found:
        start = stop + neg
        if start <= last_end:
            continue
        if (start == 0 or not low[start - 1].isalnum()) and (stop >= len(low) or not low[stop].isalnum()):
            count, last_end = count + 1, stop - 1
    return count


def test_blocklist_counts_as_the_brute_force_rule():
    from hypothesis import given, settings, strategies as st

    words = ("ab", "abc", "bc", "b c", "ab c", "cab", "é", "ça va", "x\U0001F600")
    bl = Blocklist(BlocklistConfig(words=words))
    alphabet = st.sampled_from(list("abcABC é.ÇçVv,x") + ["ab", "ab c", " ", "\U0001F600", "\udcff", "ça va", "İ"])

    @settings(max_examples=400, deadline=None)
    @given(st.lists(alphabet, max_size=40).map("".join))
    def check(text):
        assert bl.matches(text) == _reference_matches(words, text)

    check()
    assert bl.matches("cabc") == 0  # no whole word: "cab"+"c", "abc" inside
    assert bl.matches("ab c") == 1  # "ab", then "ab c" overlaps it: counted once
    assert bl.matches("\udcffab\udcff bc") == 2  # lone surrogates are word boundaries
    assert Blocklist(BlocklistConfig(words=("  ", ""))).matches("anything") == 0


def test_default_blocklist_drops_a_spam_page_and_keeps_a_news_page():
    bl = Blocklist()
    spam = "Hot porn videos, free xxx sex videos and nudes. Horny camgirls waiting. " * 5
    news = ("The court ruled on the pornography law on Tuesday, after a long debate in "
            "parliament about online safety, age checks and the duties of platforms. The new "
            "rules take effect next year, and companies that fail to comply face fines of up to "
            "ten percent of their turnover. Critics said the checks would not stop determined "
            "users, while parents' groups welcomed the decision as overdue. The minister said "
            "the government would review the law after two years.")
    assert bl(spam)[0] == "content_blocklist"
    assert bl(news)[0] is None


def test_filter_step_applies_licence_and_blocklist(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    from corpora import prose_sentences

    pool = prose_sentences()

    def good(k):
        return "\n".join(pool[k * 12:(k + 1) * 12])

    spam = " ".join(f"Free porn xxx sex video number {i} and nudes here." for i in range(10))
    rows = [
        {"id": "ok", "text": good(0), "license": "CC-BY-4.0"},
        {"id": "nc", "text": good(1), "license": "CC BY-NC 4.0"},
        {"id": "none", "text": good(2)},
        {"id": "spam", "text": spam + "\n" + good(3), "license": "MIT"},
    ]
    (inp / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    stats = run_text([str(inp / "a.jsonl")], out, "--steps", "clean,filter",
                     "--license_missing", "drop", "--validation_fraction", "0")
    assert_accounting(stats, out)
    assert {r["id"][0].decode() for r in read_shards(out)} == {"ok"}
    assert stats["filtered"] == {"license_not_allowed": 1, "license_missing": 1, "content_blocklist": 1}
    assert stats["license"] == {"cc-by": 1, "mit": 1}  # what the licence rule let through
