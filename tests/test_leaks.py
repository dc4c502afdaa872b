"""No artefact shows what the pii step would scrub (DESIGN.md): excerpts, dead letter, report.

* Sample and report excerpts (``common.scrubbed_excerpt``) are scrubbed as the whole
  text would be, then cut: a finding that runs past the cut (a private key whose END
  line is far away, a key with no END line, an email or a token cut in two) shows as
  its tag, never as a visible prefix.
* Dead-letter entries keep a raw excerpt cut where no finding is split, and
  ``common.scrub_dead_letter_entry`` scrubs ``raw_excerpt`` and ``detail`` (tags like
  ``<EMAIL>``); source, position, unit, reason and id are left as they are (ids are
  keys and are never scrubbed).
* A whole run: the dead letter is scrubbed by default; with --dead_letter_raw it keeps
  the raw input, and report.html and samples.jsonl still show none of it.
"""

import json

import pytest
from hypothesis import given, settings, strategies as st

from conftest import run_text
from transforms.accounting import EXCERPT_CHARS, dead_letter_entry
from transforms.write.sidecars import SAMPLE_CHARS, scrub_dead_letter_entry, scrubbed_excerpt
from transforms.text.pii import find_pii, safe_cut, scrub_prefix

# 20 lines of 64 base64 characters: a key far longer than any excerpt
KEY_LINES = [("MIIEowIBAAKCAQEA%02d" % i + "q7J3bG9vZHMgYW5kIGZpZWxkcyBvZiB0aGUgdmFsbGV5IGFuZ")[:64]
             for i in range(20)]
KEY_BLOCK = ("-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(KEY_LINES)
             + "\n-----END RSA PRIVATE KEY-----")
PROSE = "The deploy notes follow; the key below must never be shown.\n"
# the END line lies beyond 400 characters (the old excerpt scrubbed only those)
KEY_END_PAST_THE_CUT = PROSE + KEY_BLOCK + "\nMore notes after the key."
# a key with no END line at all (pasted in part)
KEY_UNTERMINATED = PROSE + "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(KEY_LINES)
# a key starting before the cut, in JSON-escaped form (one line, \n escapes)
KEY_ESCAPED_AT_THE_CUT = ("x" * (SAMPLE_CHARS - 200) + ' "key": "' + KEY_BLOCK.replace("\n", "\\n") + '"')
# long whitespace-free findings that start before the cut and end far beyond the window
LONG_JWT = ("eyJhbGciOiJSUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0" * 20
            + ".c2lnbmF0dXJlX29mX3RoZV90b2tlbl9pc19sb25n" * 10)
JWT_AT_THE_CUT = "y" * (SAMPLE_CHARS - 120) + " session " + LONG_JWT + " end"
EMAIL = "jane.roe.private@example.org"
EMAIL_AT_THE_CUT = "z" * (SAMPLE_CHARS - 9) + " " + EMAIL + " is the contact."

KEY_CASES = [KEY_END_PAST_THE_CUT, KEY_UNTERMINATED, KEY_ESCAPED_AT_THE_CUT]
# (text, a piece of a finding that must not show)
EXCERPT_LEAKS = [(text, line[:24]) for text in KEY_CASES for line in KEY_LINES]
EXCERPT_LEAKS += [(JWT_AT_THE_CUT, "eyJhbGciOiJSUzI1NiJ9"), (EMAIL_AT_THE_CUT, "jane.ro"),
                  (EMAIL_AT_THE_CUT, "jane")]


@pytest.mark.parametrize("text,piece", EXCERPT_LEAKS, ids=range(len(EXCERPT_LEAKS)))
def test_excerpt_never_shows_part_of_a_finding(text, piece):
    assert piece not in scrubbed_excerpt(text)


# What the excerpt does show: the text before the finding, then the finding's tag
EXCERPT_SHOWN = [
    (KEY_END_PAST_THE_CUT, PROSE + "<SECRET>"),
    (KEY_UNTERMINATED, PROSE + "<SECRET>"),
    (EMAIL_AT_THE_CUT, "z" * (SAMPLE_CHARS - 9) + " <EMAIL>"),
    ("Short and clean.", "Short and clean."),
]


@pytest.mark.parametrize("text,expected", EXCERPT_SHOWN, ids=range(len(EXCERPT_SHOWN)))
def test_excerpt_shows_the_text_and_the_tag(text, expected):
    assert scrubbed_excerpt(text).startswith(expected)


# Property: whatever the text and the cut, the prefix is scrubbed exactly as the whole
# text would be (the reference replaces the whole text's findings), and a safe cut
# leaves every finding before it whole and findable.
PIECES = ["alpha", "beta42", "x", "12:30", EMAIL, "+44 20 7946 0958", "4111 1111 1111 1111",
          'password = "correct horse battery staple"', LONG_JWT, KEY_BLOCK, KEY_BLOCK.replace("\n", "\\n"),
          "-----BEGIN EC PRIVATE KEY-----\n" + "\n".join(KEY_LINES[:5]), "2a00:1450:4001:82a::200e",
          "https://bob:pa55word@example.com/x", "x" * 600,
          # a blank line inside the block: only its END line says where it stops
          "-----BEGIN PRIVATE KEY-----\n" + "\n".join(KEY_LINES[:3]) + "\n\n" + "\n".join(KEY_LINES[3:])
          + "\n-----END PRIVATE KEY-----"]
SEPARATORS = [" ", "\n", "", ", ", "\n\n"]
documents = st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(SEPARATORS)), max_size=30).map(
    lambda parts: "".join(p + sep for p, sep in parts))


def _reference_prefix(text, limit):
    out, last = [], 0
    for span in find_pii(text):
        if span.start >= limit:
            break
        out.append(text[last:span.start] + f"<{span.kind}>")
        last = span.end
    return "".join(out) + (text[last:limit] if last < limit else "")


@settings(max_examples=150, deadline=None)
@given(documents, st.integers(min_value=0, max_value=4000))
def test_prefix_is_scrubbed_as_the_whole_text(text, limit):
    assert scrub_prefix(text, limit) == _reference_prefix(text, limit)


@settings(max_examples=150, deadline=None)
@given(documents, st.integers(min_value=0, max_value=4000))
def test_safe_cut_keeps_each_finding_whole_and_findable(text, limit):
    cut = safe_cut(text, limit)
    found = find_pii(text[:cut])
    assert all(s.end <= cut and any(f.start <= s.start and s.end <= f.end for f in found)
               for s in find_pii(text) if s.start < cut)


LONG_CLEAN = "word " * 400


def test_excerpt_is_cut_to_sample_chars():
    assert scrubbed_excerpt(LONG_CLEAN) == LONG_CLEAN[:SAMPLE_CHARS]


# ------------------------------------------------------------------ dead letter

CARD = "4111 1111 1111 1111"
SSN = "123-45-6789"
TOKEN = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
RAW_LINE = ('{"id": "r1", "text": "write to ' + EMAIL + ", ssn " + SSN + ", card " + CARD
            + ", token " + TOKEN + '"').encode("utf-8")  # no closing brace: malformed
DETAIL = f"Expecting ',' delimiter near {EMAIL} (char 74)"
ENTRY = dead_letter_entry("in/a.jsonl", 1234, "malformed_json", DETAIL, RAW_LINE,
                          record_id=EMAIL)
SCRUBBED = scrub_dead_letter_entry(ENTRY)

DEAD_LEAKS = [("raw_excerpt", EMAIL), ("raw_excerpt", SSN), ("raw_excerpt", CARD),
              ("raw_excerpt", TOKEN), ("detail", EMAIL)]


@pytest.mark.parametrize("field,value", DEAD_LEAKS)
def test_dead_letter_entry_is_scrubbed(field, value):
    assert value not in SCRUBBED[field]


DEAD_TAGS = [("raw_excerpt", "<EMAIL>"), ("raw_excerpt", "<US_SSN>"), ("raw_excerpt", "<CREDIT_CARD>"),
             ("raw_excerpt", "<SECRET>"), ("detail", "<EMAIL>")]


@pytest.mark.parametrize("field,tag", DEAD_TAGS)
def test_dead_letter_entry_shows_tags(field, tag):
    assert tag in SCRUBBED[field]


UNTOUCHED = {"source": "in/a.jsonl", "position": 1234, "unit": "byte", "reason": "malformed_json",
             "id": EMAIL}  # ids are keys: never scrubbed


@pytest.mark.parametrize("field", sorted(UNTOUCHED))
def test_dead_letter_locators_and_id_are_untouched(field):
    assert SCRUBBED[field] == UNTOUCHED[field]


def test_scrubbing_a_dead_letter_entry_leaves_the_entry_as_it_was():
    assert EMAIL in ENTRY["raw_excerpt"]


# A raw excerpt is cut where no finding is split, so the scrub sees each one whole
EMAIL_ACROSS_THE_EXCERPT_CUT = ("w" * (EXCERPT_CHARS - 8) + " " + EMAIL + " trailing").encode("utf-8")
KEY_ACROSS_THE_EXCERPT_CUT = ("v" * (EXCERPT_CHARS - 60) + "\n" + KEY_BLOCK + "\nbye").encode("utf-8")
CUT_LEAKS = [(EMAIL_ACROSS_THE_EXCERPT_CUT, "jane")]
CUT_LEAKS += [(KEY_ACROSS_THE_EXCERPT_CUT, line[:24]) for line in KEY_LINES]


@pytest.mark.parametrize("raw,piece", CUT_LEAKS, ids=range(len(CUT_LEAKS)))
def test_dead_letter_cut_splits_no_finding(raw, piece):
    entry = scrub_dead_letter_entry(dead_letter_entry("in/b.jsonl", 0, "malformed_json", "", raw))
    assert piece not in entry["raw_excerpt"]


def test_dead_letter_excerpt_stays_short_without_findings():
    assert len(dead_letter_entry("s", 0, "r", "", b"q" * 10_000)["raw_excerpt"]) <= EXCERPT_CHARS + 2


# ------------------------------------------------------------------ a whole run

BROKEN_LINE = '{"id": "bad", "text": "mail ' + EMAIL + " now, " + KEY_BLOCK.replace("\n", "\\n")


@pytest.fixture(scope="module")
def raw_dead_letter_run(tmp_path_factory):
    from corpora import small_corpus

    tmp = tmp_path_factory.mktemp("leaks")
    inp = small_corpus(tmp, n=30)
    path = inp / "a.jsonl"
    lines = path.read_text().splitlines()
    doc = json.loads(lines[2])
    doc["text"] = doc["text"].replace(" follows.\n", f" follows. Write to {EMAIL}.\n", 1)
    lines[2] = json.dumps(doc)
    lines.append(BROKEN_LINE)
    path.write_text("\n".join(lines) + "\n")
    out = tmp / "out"
    run_text([str(inp / "*.jsonl")], out, "--steps", "clean,filter,dedup,pii", "--dead_letter_raw",
             "--validation_fraction", "0")
    return out


def _artefact(out, pattern):
    return "".join(p.read_text(encoding="utf-8") for p in sorted(out.glob(pattern)))


RUN_LEAKS = [("report.html", EMAIL), ("samples*.jsonl", EMAIL)]
RUN_LEAKS += [("report.html", line[:24]) for line in KEY_LINES]


@pytest.mark.parametrize("pattern,piece", RUN_LEAKS, ids=range(len(RUN_LEAKS)))
def test_raw_dead_letter_does_not_reach_the_report(raw_dead_letter_run, pattern, piece):
    assert piece not in _artefact(raw_dead_letter_run, pattern)


def test_raw_dead_letter_keeps_the_raw_input(raw_dead_letter_run):
    assert EMAIL in _artefact(raw_dead_letter_run, "dead_letter/*.jsonl")


def test_report_shows_the_scrubbed_dead_letter(raw_dead_letter_run):
    assert "&lt;EMAIL&gt;" in _artefact(raw_dead_letter_run, "report.html")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leaks_default")
    inp = tmp / "in"
    inp.mkdir()
    (inp / "a.jsonl").write_text(json.dumps({"id": "ok", "text": "A clean sentence for the shard."})
                                 + "\n" + BROKEN_LINE + "\n")
    out = tmp / "out"
    run_text([str(inp / "*.jsonl")], out, "--steps", "clean,pii", "--validation_fraction", "0",
             "--max_dead_letter_fraction", "1.0")
    return out


DEFAULT_LEAKS = [EMAIL] + [line[:24] for line in KEY_LINES]


@pytest.mark.parametrize("piece", DEFAULT_LEAKS, ids=range(len(DEFAULT_LEAKS)))
def test_dead_letter_is_scrubbed_by_default(default_run, piece):
    assert piece not in _artefact(default_run, "dead_letter/*.jsonl")


def test_default_dead_letter_keeps_the_scrubbed_excerpt(default_run):
    assert "mail <EMAIL> now, <SECRET>" in _artefact(default_run, "dead_letter/*.jsonl")
