"""The filter's per-language scales: measured on translated sections, carried over to each language."""

import json
import os

import pytest

from transforms.text import calibrate, filters
from transforms.text.filters import FilterConfig, TextFilter, scaled_thresholds


def _page(*sections):
    """An HTML chapter: each section a heading and its paragraphs."""
    body = "".join(f"<h2>Section {i}</h2>" + "".join(f"<p>{p}</p>" for p in paragraphs)
                   for i, paragraphs in enumerate(sections))
    return f"<html><body><h1>Chapter</h1>{body}</body></html>"


def _write(root, folder, name, *sections):
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    with open(os.path.join(root, folder, name), "w", encoding="utf-8") as f:
        f.write(_page(*sections))


EN = ["The cat sat on the mat. The dog ran in the park.",
      "A long paragraph that nobody translated, it stays in English for now.",
      "Another paragraph whose translation was made from an older edition of it."]
DE = "Thethe catcat, satsat onon thethe matmat. Thethe dogdog, ranran inin thethe parkpark."


def test_sections_are_paired_with_their_english_original_and_untranslated_ones_left_out(tmp_path):
    root = str(tmp_path)
    _write(root, "en", "ch1.html", [EN[0]], [EN[1]], [EN[2]])
    _write(root, "en", "ch2.html", [EN[0]])
    # de: one translated section, one still English, one from an older edition
    _write(root, "de", "ch1.html", [DE], ["Ein Absatz.", EN[1]], [EN[2][:45] + " (old) text."])
    _write(root, "fr", "ch1.html", [DE], [DE])  # another number of sections: left out
    _write(root, "zh_CN", "ch2.html", [DE])
    _write(root, "zh_TW", "ch2.html", [EN[0] + " tw"])  # Traditional Chinese: not zh
    _write(root, "pt-BR", "ch9.html", [DE])  # no English chapter of that name
    files = calibrate.corpus_files("installation-guide", root)
    assert sorted(files) == ["de", "en", "fr", "pt", "zh"]
    pairs = calibrate.parallel_sections(files, min_chars=20)
    assert pairs["de"] == [(DE, EN[0])]
    assert pairs["zh"] == [(DE, EN[0])]
    assert "fr" not in pairs and "pt" not in pairs
    assert len(pairs["en"]) == 4 and all(a == b for a, b in pairs["en"])
    # sections shorter than min_chars on either side are left out
    assert "de" not in calibrate.parallel_sections(files, min_chars=len(DE) + 1)


def test_debian_reference_files_and_handbook_paragraphs_are_read(tmp_path):
    root = str(tmp_path)
    for suffix in ("en", "de", "zh-cn"):
        with open(os.path.join(root, f"ch01.{suffix}.html"), "w", encoding="utf-8") as f:
            f.write(_page([EN[0] if suffix == "en" else DE]))
    assert sorted(calibrate.corpus_files("reference", root)) == ["de", "en", "zh"]
    path = os.path.join(root, "book.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write('<h2>T</h2><div class="para">\n  One &amp; <code>two</code>.\n</div><p>Three.</p>')
    assert calibrate.html_sections(path) == [[], ["One & two.", "Three."]]
    with pytest.raises(ValueError, match="unknown corpus"):
        calibrate.corpus_files("nope", root)


def test_scales_are_the_median_ratio_to_english_of_the_same_content():
    english = " ".join([EN[0]] * 3)
    german = " ".join([DE] * 3)
    pairs = {"en": [(english, english)] * 3, "de": [(german, english)] * 3,
             "fr": [(german, english)]}
    measured = calibrate.scales(pairs, min_sections=2)
    assert measured["en"] == {"non_alpha_share": 1.0, "mean_word_length": 1.0, "sections": 3}
    # 2 full stops in 14 tokens against 2 stops and 2 commas in 16; words twice as long
    assert measured["de"]["non_alpha_share"] == round((4 / 16) / (2 / 14), 3)
    assert measured["de"]["mean_word_length"] == 2.0
    assert "fr" not in measured  # fewer sections than min_sections


def test_thresholds_are_carried_over_to_each_language(monkeypatch):
    monkeypatch.setattr(filters, "language_scales", lambda: {
        "de": {"non_alpha_share": 1.25, "mean_word_length": 1.3},
        "zh": {"non_alpha_share": 0.8, "mean_word_length": 0.3}})
    assert scaled_thresholds(FilterConfig(), "de") == {
        "max_non_alpha_words_ratio": 0.75, "min_mean_word_length": 3.9, "max_mean_word_length": 13.0}
    # scripts without spaces skip the mean-word-length rule: only the alphabetic share
    assert scaled_thresholds(FilterConfig(), "zh", no_space=True) == {"max_non_alpha_words_ratio": 0.84}
    for language in ("en", None, "xx"):
        assert scaled_thresholds(FilterConfig(), language) == {}
    assert scaled_thresholds(FilterConfig(scale_by_language=False), "de") == {}
    # the user's own threshold is carried over; a rule that is off stays off
    assert scaled_thresholds(FilterConfig(max_non_alpha_words_ratio=0.9), "de")[
        "max_non_alpha_words_ratio"] == 0.875
    assert "max_non_alpha_words_ratio" not in scaled_thresholds(
        FilterConfig(max_non_alpha_words_ratio=None), "de")

    # through the filter: by_language values are taken as they are, the rest scaled
    text_filter = TextFilter(FilterConfig(by_language={"de": {"max_non_alpha_words_ratio": 0.7}}))
    german = text_filter._variant("de", "Text").config
    assert german.max_non_alpha_words_ratio == 0.7 and german.max_mean_word_length == 13.0
    assert text_filter._variant("en", "Text").config.max_non_alpha_words_ratio == 0.8
    assert TextFilter()._variant("zh", "中文").config.max_non_alpha_words_ratio == 0.84


GERMAN = (
    "Wenn Sie das System aktualisieren, sollten Sie, bevor Sie beginnen, eine Sicherung anlegen. "
    "Die Paketverwaltung, die Debian verwendet, prüft dabei, ob alle Abhängigkeiten erfüllt sind. "
    "Falls ein Paket fehlt, meldet sie das, und Sie können es, sofern es verfügbar ist, nachinstallieren. "
    "Danach startet man den Rechner neu, damit der neue Kern, den man installiert hat, geladen wird. "
    "Zum Schluss prüft man, ob die Dienste, die vorher liefen, wieder laufen, und ob Fehler auftreten. "
    "Wer unsicher ist, fragt in der Mailingliste nach, denn dort helfen viele, die sich auskennen."
)


def test_a_german_page_with_the_commas_german_needs_is_kept():
    """German's commas (before every subordinate clause) are tokens without a letter:
    English's 80% drops this page, German's carried-over threshold keeps it."""
    english_rules = TextFilter(FilterConfig(scale_by_language=False))
    share, _ = calibrate.measure(english_rules, "de", GERMAN)
    threshold = TextFilter()._variant("de", GERMAN).config.max_non_alpha_words_ratio
    assert threshold < 1 - share < 0.8  # the premise: between German's threshold and English's
    assert english_rules(GERMAN, language="de")[1] == "gopher_alpha_words"
    assert TextFilter()(GERMAN, language="de")[1] is None
    assert TextFilter()(GERMAN)[1] is not None  # unlabelled text gets English's rules


def test_the_shipped_scales_name_their_source_and_are_checked(tmp_path):
    shipped = calibrate.load_scales()
    assert shipped["en"]["non_alpha_share"] == 1.0 and shipped["en"]["mean_word_length"] == 1.0
    assert len(shipped) >= 15
    assert shipped["de"]["non_alpha_share"] > 1.1  # German punctuates more than English
    assert shipped["de"]["mean_word_length"] > 1.2  # and writes compounds as one word
    assert shipped["zh"]["mean_word_length"] < 0.5  # a Chinese character is a word
    with open(calibrate.SCALES_PATH, encoding="utf-8") as f:
        data = json.load(f)
    assert "installation-guide" in data["source"] and data["method"]
    bad = tmp_path / "scales.json"
    bad.write_text(json.dumps({"languages": {"de": {"non_alpha_share": -1, "mean_word_length": 1}}}))
    with pytest.raises(ValueError, match="de.non_alpha_share"):
        calibrate.load_scales(str(bad))
    assert calibrate.load_scales(str(tmp_path / "absent.json")) == {}


def test_the_command_writes_scales_the_filter_can_load(tmp_path, capsys):
    root = str(tmp_path / "guide")
    for k in range(3):
        _write(root, "en", f"ch{k}.html", [EN[0] + f" Part {k}."])
        _write(root, "de", f"ch{k}.html", [DE + f" Teil {k}."])
    out = str(tmp_path / "scales.json")
    assert calibrate.main(["--root", root, "--min_chars", "20", "--min_sections", "3",
                           "--out", out]) == 0
    loaded = calibrate.load_scales(out)
    assert sorted(loaded) == ["de", "en"] and loaded["de"]["sections"] == 3
    assert loaded["de"]["mean_word_length"] > 1.5
    assert calibrate.main(["--root", str(tmp_path / "none"), "--out", out]) == 2
    assert "no English chapters" in capsys.readouterr().err


ENGLISH = (
    "When you upgrade the system, you should make a backup before you begin. "
    "The package manager that Debian uses checks whether all dependencies are met. "
    "If a package is missing, it reports that, and you can install it later if it is available. "
    "Then you restart the computer so that the new kernel you installed is loaded. "
    "Finally you check whether the services that ran before are running again and whether errors occur. "
    "Whoever is unsure asks on the mailing list, because many people there who know the system help."
)


def test_the_benchmark_pairs_each_section_with_its_english_original(tmp_path, capsys):
    from benchmarks import languages

    root = str(tmp_path / "guide")
    _write(root, "en", "ch1.html", [ENGLISH], [ENGLISH.replace("backup", "copy")])
    _write(root, "de", "ch1.html", [GERMAN], [GERMAN.replace("Sicherung", "Kopie")])
    argv = ["--corpus", "installation-guide", "--root", root, "--pipeline_copies", "0"]
    assert languages.main(argv) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.split() and line.split()[0] in ("en", "de")}
    assert rows["de"][1] == "2" and rows["de"][2] == "1.000"  # documents, lid accuracy
    assert rows["de"][6:8] == ["2/2", "1.000"]  # both German sections kept, as their originals
    assert languages.main(argv + ["--scale_by_language", "false"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.split() and line.split()[0] == "de"}
    assert rows["de"][6:8] == ["0/2", "0.000"]  # English's thresholds drop German's commas
