"""Many languages: lid.176 labels, per-language rules, character shingles, the lang step end to end.

The multilingual sample (data/sample/multilingual/docs.jsonl) is real prose:
the same pages of the Debian Installation Guide in 14 languages.
"""

import collections
import json
import os

import pytest

from conftest import assert_accounting, read_shards, run_text
from transforms.text.clean import clean_text
from transforms.text.filters import FilterConfig, TextFilter, stop_words_for
from transforms.text.lang import UNKNOWN, LanguageIdentifier, no_space_script_share

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample", "multilingual", "docs.jsonl")
TARGETS = ("en", "de", "fr", "es", "it", "pt", "id", "ja", "zh")


@pytest.fixture(scope="module")
def docs():
    with open(SAMPLE, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def identify():
    return LanguageIdentifier()


def test_the_model_ships_in_the_wheel_and_labels_each_target_language(docs, identify):
    right, total = collections.Counter(), collections.Counter()
    for row in docs:
        if row["language"] in TARGETS and len(row["text"]) >= 400:
            language, score = identify(clean_text(row["text"]))
            total[row["language"]] += 1
            right[row["language"]] += language == row["language"]
            assert 0.0 <= score <= 1.0
    assert set(total) == set(TARGETS)
    for lang in TARGETS:
        assert right[lang] / total[lang] >= 0.97, (lang, right[lang], total[lang])


def test_text_without_letters_is_unknown_and_long_text_is_read_in_windows(identify):
    assert identify("12345 67 -- !!! 3.14") == (UNKNOWN, 0.0)
    assert identify("") == (UNKNOWN, 0.0)
    german = ("Der Installer fragt nach der Sprache, dem Land und der Tastatur. " * 80).strip()
    english = "This page was translated from the English original by volunteers. " * 5
    language, score = identify(english + "\n" + german)  # 5 kB: start, middle and end windows
    assert language == "de" and score >= 0.65


def test_every_language_keeps_at_least_four_fifths_of_englishs_share(docs, identify):
    text_filter = TextFilter()
    kept, total = collections.Counter(), collections.Counter()
    for row in docs:
        text = clean_text(row["text"])
        language, score = identify(text)
        _, reason = text_filter(text, language=language)
        total[row["language"]] += 1
        kept[row["language"]] += reason is None and score >= 0.65
    english = kept["en"] / total["en"]
    assert english >= 0.9
    for lang in total:
        assert kept[lang] / total[lang] >= 0.8 * english, (lang, kept[lang], total[lang])


def test_without_labels_the_english_rules_drop_other_languages(docs):
    """What the lang step fixes: German and French prose fail Gopher's English stop words."""
    text_filter = TextFilter()
    reasons = collections.Counter()
    for row in docs:
        if row["language"] in ("de", "fr", "es", "it"):
            reasons[text_filter(clean_text(row["text"]))[1]] += 1
    assert reasons["gopher_stop_words"] >= 20


def test_stop_word_lists_per_language_and_the_rule_skipped_without_one(docs):
    assert stop_words_for("en") == ("the", "be", "to", "of", "and", "that", "have", "with")
    assert "und" in stop_words_for("de") and "的" in stop_words_for("zh")
    assert stop_words_for("th") is None and stop_words_for("../en") is None
    listed = [name[:-4] for name in os.listdir(os.path.join(ROOT, "transforms", "text", "stopwords"))
              if name.endswith(".txt")]
    assert len(listed) >= 20
    text_filter = TextFilter()
    german = [t for t in (clean_text(r["text"]) for r in docs if r["language"] == "de")
              if text_filter(t, language="de")[1] is None]
    assert len(german) >= 10
    text = german[0]
    assert text_filter(text)[1] == "gopher_stop_words"  # English's list on German prose
    # a language without a list: the rule is skipped
    assert text_filter(text, language="gd")[1] is None
    # the user's list for one language replaces the built-in one
    config = FilterConfig.from_dict({"by_language": {"de": {"stop_words": ["und", "die", "der"]}}})
    assert TextFilter(config)(text, language="de")[1] is None
    config = FilterConfig.from_dict({"by_language": {"de": {"stop_words": ["zeppelin", "xylophon"]}}})
    assert TextFilter(config)(text, language="de")[1] == "gopher_stop_words"


def test_per_language_overrides_apply_to_that_language_only(docs):
    text = next(clean_text(r["text"]) for r in docs if r["language"] == "en")
    assert TextFilter()(text, language="en")[1] is None
    config = FilterConfig.from_dict({"by_language": {"en": {"min_words": 100000}}})
    assert TextFilter(config)(text, language="en")[1] == "gopher_min_words"
    assert TextFilter(config)(text, language="gd")[1] is None  # another label: its own rules
    assert TextFilter(config)(text)[1] is None  # no label: the top-level rules
    again = FilterConfig.from_dict(config.to_dict())
    assert again == config and again.to_dict()["by_language"] == {"en": {"min_words": 100000}}
    with pytest.raises(ValueError, match="unknown FilterConfig key.*'min_wordz'"):
        FilterConfig.from_dict({"by_language": {"de": {"min_wordz": 3}}})
    with pytest.raises(ValueError, match="not a language label"):
        FilterConfig.from_dict({"by_language": {"German": {"min_words": 3}}})
    with pytest.raises(TypeError, match="min_words"):
        FilterConfig.from_dict({"by_language": {"de": {"min_words": "many"}}})


def test_scripts_without_spaces_count_characters_as_words(docs):
    chinese = next(clean_text(r["text"]) for r in docs if r["language"] == "zh")
    japanese = next(clean_text(r["text"]) for r in docs if r["language"] == "ja")
    assert no_space_script_share(chinese) > 0.5 and no_space_script_share("plain English") == 0.0
    text_filter = TextFilter()
    for text, lang in ((chinese, "zh"), (japanese, "ja")):
        assert text_filter(text, language=lang)[1] is None
        assert text_filter(text)[1] is None  # no label: the script says how to cut words
    # one line of 60 Chinese characters: 60 words, several sentences ending in 。
    line = "安装程序会询问语言。然后它加载模块。系统会检测硬件。最后安装软件包。这需要一些时间。"
    kept, reason = TextFilter(FilterConfig(gopher_quality=False, gopher_repetition=False))(
        line, language="zh")
    assert reason is None and kept == line
    # the same text cut at whitespace would be one long word of two sentences or none
    assert TextFilter(FilterConfig(gopher_quality=False, gopher_repetition=False,
                                   c4_min_words_per_line=3))(line, language="en")[1] is not None


def test_unicode_sentence_ends_count_as_terminal_punctuation():
    text_filter = TextFilter(FilterConfig(gopher_quality=False, gopher_repetition=False,
                                          c4_min_sentences=1))
    for line in ("यह एक वाक्य है जो हिंदी में लिखा गया है।", "هل هذا سؤال مكتوب باللغة العربية؟",
                 "Er sagte: „Das ist ein ganzer Satz.“"):
        assert text_filter(line)[0] == line


def test_chinese_near_duplicates_are_found_by_character_shingles():
    import numpy as np

    from transforms.dedup import minhash

    config = minhash.MinHashConfig(num_perm=128, threshold=0.7)
    shingler = minhash.Shingler(config)
    a = "安装程序会询问您的语言和国家然后加载所需的内核模块并检测您的硬件配置最后安装基本系统和软件包"
    b = a.replace("检测", "识别")
    assert len(shingler.hashes(a, "zh")) > 30  # whitespace words would give one shingle
    assert len(shingler.hashes(a)) == len(shingler.hashes(a, "zh"))  # unlabelled: by the script
    flat, offsets = shingler.batch([a, b], ["zh", "zh"])
    sigs = minhash.signatures(flat, offsets, minhash.permutations(128, config.seed))
    assert float(np.mean(sigs[0] == sigs[1])) > 0.7


def test_tokenizer_coverage_follows_the_language_mix():
    from transforms.text.tokenize import coverage_for

    assert coverage_for(["The installer asks for the language."] * 10) == 1.0
    assert coverage_for(["安装程序会询问您的语言。"] * 10 + ["The installer asks."] * 10) == 0.9995


def test_the_lang_step_labels_keeps_and_counts(tmp_path, docs):
    stats = run_text([SAMPLE], tmp_path / "all", "--vocab_size", "1000", "--num_shards", "1")
    assert_accounting(stats, tmp_path / "all")
    languages = stats["languages"]
    assert set(TARGETS) <= set(languages)
    assert sum(v["records_in"] for v in languages.values()) == len(docs)
    assert all(v["tokens"] > 0 for k, v in languages.items() if v["records_out"])
    records = read_shards(tmp_path / "all")
    by_id = {r["id"][0].decode(): r for r in records}
    de = next(r for i, r in by_id.items() if i.startswith("de-"))
    assert de["language"][0] == b"de" and 0.65 <= float(de["language_score"][0]) <= 1.0
    with open(tmp_path / "all" / "samples.jsonl", encoding="utf-8") as f:
        assert any("language" in json.loads(line) for line in f)

    only = run_text([SAMPLE], tmp_path / "en", "--vocab_size", "600", "--num_shards", "1",
                    "--languages", "en")
    assert_accounting(only, tmp_path / "en")
    written = {r["language"][0] for r in read_shards(tmp_path / "en")}
    assert written == {b"en"}
    others = sum(v["records_in"] for k, v in only["languages"].items() if k != "en")
    assert only["filtered"]["language"] == others > 150


def test_bad_language_flags_exit_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_text([SAMPLE], tmp_path / "x", "--languages", "English")
    assert e.value.code == 2 and "--languages" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_text([SAMPLE], tmp_path / "y", "--language_threshold", "1.5")


def test_a_sure_middle_window_decides_alone_else_three_windows_are_read():
    from transforms.text.lang import CASCADE, WINDOW_CHARS, LanguageIdentifier

    identify = LanguageIdentifier()
    calls = []
    real = identify._one
    identify._one = lambda line: (calls.append(line), real(line))[1]
    path = os.path.join(os.path.dirname(__file__), "..", "data", "sample", "multilingual", "docs.jsonl")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    english = max((r["text"] for r in rows if r.get("language") == "en"), key=len)
    assert len(english) > 3 * WINDOW_CHARS
    first_width, first_sure = CASCADE[0]
    language, score = identify(english)
    assert language == "en"
    # the first window: from the middle, at most its width, cut at spaces (no half words)
    assert len(calls[0]) <= first_width and calls[0].replace("\n", " ") in english.replace("\n", " ")
    assert not calls[0].startswith(" ") and not calls[0].endswith(" ")
    if score >= first_sure and len(calls) == 1:  # decided by the small middle window alone
        pass
    else:
        assert len(calls) >= 2
    calls.clear()
    # a middle of digits and symbols is not sure of anything: every window, then the three
    mixed = english[:1000] + " ".join(["0x1F 0x2A == 42 && || ;;"] * 60) + english[-1000:]
    assert identify(mixed)[0] == "en"
    assert [len(c) <= w for c, (w, _) in zip(calls, CASCADE)] == [True] * len(CASCADE)
    assert len(calls) == len(CASCADE) + 1 and len(calls[-1]) > WINDOW_CHARS
    calls.clear()
    assert identify("Short English text, read whole.")[0] == "en" and len(calls) == 1
