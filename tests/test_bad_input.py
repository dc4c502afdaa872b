"""Every kind of bad input in DESIGN.md: the run finishes, each broken record is in
the dead letter with its source, position and reason, partly readable files keep
what was read, the accounting identity holds, and nothing is ever unpickled."""

import gzip
import io
import json
import os
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import assert_accounting, read_dead_letter, read_shards, run_text


class _Exploit:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _good(i, prefix="good"):
    return {"id": f"{prefix}{i:03d}",
            "text": f"Good document {prefix} {i}. It talks about the weather in town number {i}."}


def _warc_response(i, length=None):
    """A WARC response record; ``length`` overrides (lies about) its Content-Length.

    No target URI: Examples then hold the same keys as the JSONL ones beside them.
    """
    block = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
             + f"WARC page {i} has a few plain words about the harbour of town number {i}.".encode())
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:warc{i}>\r\n"
            f"Content-Length: {len(block) if length is None else length}\r\n\r\n").encode()
    return head + block + b"\r\n\r\n"


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("broken")
    marker = str(d / "UNPICKLED")
    inp = d / "in"
    inp.mkdir()
    good = [json.dumps(_good(i)).encode() for i in range(6)]
    lines = [
        good[0],
        b'{"id": "m1", "text": "missing brace"',                       # malformed JSON
        json.dumps({"id": "t1", "text": ["not", "a", "string"]}).encode(),  # wrong type
        json.dumps({"id": 3.5, "text": "float id"}).encode(),           # wrong id type
        b'{"id": "u1", "text": "caf\xe9 in latin-1"}',                  # invalid UTF-8
        b'{"id": "s1", "text": "lone \\udc80 surrogate"}',              # lone surrogate
        json.dumps({"id": "nul", "text": "Has a NUL\u0000 and bell\u0007 chars."}).encode(),
        json.dumps({"id": "big", "text": "y" * 5000}).encode(),          # over the size cap
        b"[" * 3000 + b"]" * 3000,                                       # deeply nested
        b'"just a string"',                                              # not an object
        good[1],
    ]
    (inp / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    # truncated gzip: the first lines survive
    gz = gzip.compress(b"\n".join(json.dumps(_good(i, "gz")).encode() for i in range(40)) + b"\n")
    (inp / "truncated.jsonl.gz").write_bytes(gz[: int(len(gz) * 0.6)])
    # truncated zstd: big enough for several zstd blocks, so whole blocks survive the cut
    noise = [os.urandom(40).hex() for _ in range(3000)]
    zs = zstandard.ZstdCompressor().compress(b"\n".join(
        json.dumps(dict(_good(i, "zs"), noise=noise[i])).encode() for i in range(3000)) + b"\n")
    (inp / "truncated.jsonl.zst").write_bytes(zs[: int(len(zs) * 0.6)])
    # mislabelled gzip: really plain text
    (inp / "plain.jsonl.gz").write_bytes(json.dumps(_good(0, "mis")).encode() + b"\n")
    # gzip labelled as plain JSONL
    (inp / "secretly_gzip.jsonl").write_bytes(gzip.compress(json.dumps(_good(0, "sg")).encode()))
    # truncated Parquet
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [f"pq{i}" for i in range(100)], "text": ["x"] * 100}), buf)
    (inp / "truncated.parquet").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    # binary file with a text extension
    (inp / "binary.txt").write_bytes(bytes((i * 37) % 256 for i in range(4096)))
    # unknown format
    (inp / "data.xyz").write_bytes(b"\x00\x01 some proprietary format")
    # pickles, under names that invite unpickling
    payload = pickle.dumps(_Exploit(marker))
    (inp / "model.pkl").write_bytes(payload)
    (inp / "pickled.jsonl").write_bytes(payload + b"\n")
    (inp / "pickled.txt").write_bytes(payload)
    (inp / "pickled.parquet").write_bytes(payload)
    # a crawl gone wrong: 200k broken lines in a ~1 KB gzip (stops at max_dead_per_file)
    (inp / "braces.jsonl.gz").write_bytes(gzip.compress(b"{\n" * 200_000))
    # a decompression bomb: 1 GiB of blank lines in ~1 MB of gzip (stops at the ratio guard)
    member = gzip.compress(b"\n" * (8 << 20), compresslevel=9)
    (inp / "bomb.jsonl.gz").write_bytes(member * 128 + gzip.compress(json.dumps(_good(0, "bomb")).encode()))
    # a WARC record whose Content-Length lies, between good ones
    (inp / "lying.warc.gz").write_bytes(b"".join(
        gzip.compress(_warc_response(i, 10 ** 15 if i == 2 else None)) for i in range(5)))
    # a UTF-8 byte-order mark before the first line
    (inp / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(_good(0, "bom")).encode() + b"\n")
    (inp / "bom.jsonl.gz").write_bytes(gzip.compress(
        b"\xef\xbb\xbf" + json.dumps(_good(0, "bomgz")).encode() + b"\n"))
    out = d / "out"
    stats = run_text([str(inp / "*")], out, "--steps", "clean,dedup",
                     "--max_doc_bytes", "2000", "--max_dead_letter_fraction", "1.0")
    return {"stats": stats, "out": out, "inp": inp, "marker": marker}


def _dead_by(entries, source_name):
    return sorted((e["reason"], e["position"]) for e in entries
                  if os.path.basename(e["source"]) == source_name)


def test_run_finishes_and_accounts_for_everything(broken_run):
    assert os.path.exists(broken_run["out"] / "COMPLETED")
    assert_accounting(broken_run["stats"], broken_run["out"])


def test_each_broken_jsonl_line_has_source_position_and_reason(broken_run):
    dead = read_dead_letter(broken_run["out"])
    reasons = [r for r, _ in _dead_by(dead, "mixed.jsonl")]
    assert sorted(reasons) == sorted([
        "malformed_json", "wrong_type", "wrong_type", "invalid_utf8", "lone_surrogate",
        "too_large", "json_too_deep", "not_an_object"])
    raw = (broken_run["inp"] / "mixed.jsonl").read_bytes()
    line_starts = {0} | {i + 1 for i, b in enumerate(raw) if b == 10}
    for entry in dead:
        if entry["source"].endswith("mixed.jsonl"):
            assert entry["position"] in line_starts
            assert entry["unit"] == "byte" and entry["raw_excerpt"]


def test_control_characters_are_cleaned_not_dropped(broken_run):
    rows = {r["id"][0].decode(): r for r in read_shards(broken_run["out"])}
    assert rows["nul"]["text"][0].decode() == "Has a NUL and bell chars."


def test_partly_readable_files_keep_what_was_read(broken_run):
    ids = {r["id"][0].decode() for r in read_shards(broken_run["out"])}
    gz = sorted(i for i in ids if i.startswith("gz"))
    zs = sorted(i for i in ids if i.startswith("zs"))
    assert 5 < len(gz) < 40 and gz == [f"gz{i:03d}" for i in range(len(gz))]
    zs_numbers = sorted(int(i[2:]) for i in zs)
    assert 5 < len(zs) < 3000 and zs_numbers == list(range(len(zs)))
    dead = read_dead_letter(broken_run["out"])
    assert [r for r, _ in _dead_by(dead, "truncated.jsonl.gz")] == ["truncated_or_corrupt_stream"]
    assert [r for r, _ in _dead_by(dead, "truncated.jsonl.zst")] == ["truncated_or_corrupt_stream"]


def test_mislabelled_compression_is_read(broken_run):
    ids = {r["id"][0].decode() for r in read_shards(broken_run["out"])}
    assert {"mis000", "sg000"} <= ids
    assert broken_run["stats"]["info"]["mislabelled_compression"] == 2


def test_whole_file_failures(broken_run):
    dead = read_dead_letter(broken_run["out"])
    assert _dead_by(dead, "truncated.parquet") == [("unreadable_parquet", 0)]
    assert _dead_by(dead, "binary.txt") == [("binary_file", 0)]
    assert _dead_by(dead, "data.xyz") == [("unknown_format", 0)]


def test_nothing_is_ever_unpickled(broken_run):
    assert not os.path.exists(broken_run["marker"])
    dead = read_dead_letter(broken_run["out"])
    assert _dead_by(dead, "model.pkl") == [("unknown_format", 0)]
    assert _dead_by(dead, "pickled.parquet") == [("unreadable_parquet", 0)]
    assert [r for r, _ in _dead_by(dead, "pickled.jsonl")] in (["malformed_json"], ["invalid_utf8"])
    assert [r for r, _ in _dead_by(dead, "pickled.txt")] in (["binary_file"], ["invalid_utf8"])


def test_too_many_broken_records_fail_loudly_without_completed(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "bad.jsonl").write_bytes(b"\n".join([b"{broken"] * 8 + [json.dumps(_good(1)).encode()]))
    out = tmp_path / "out"
    with pytest.raises(Exception, match="max_dead_letter_fraction"):
        run_text([str(inp / "*")], out, "--steps", "clean", "--max_dead_letter_fraction", "0.5")
    assert not (out / "COMPLETED").exists()
    stats = json.loads((out / "stats.json").read_text())  # written for the post-mortem
    assert stats["dead_letter"] == {"malformed_json": 8}


def test_hostile_files_are_bounded_and_counted(broken_run):
    dead = read_dead_letter(broken_run["out"])
    braces = _dead_by(dead, "braces.jsonl.gz")
    assert len(braces) == 1001  # not 200k: the rest of the file is one record
    assert [r for r, _ in braces].count("too_many_broken_records") == 1
    assert ("too_many_broken_records", 2000) in braces
    assert [r for r, _ in _dead_by(dead, "bomb.jsonl.gz")] == ["decompression_bomb"]
    stats = broken_run["stats"]
    assert stats["dead_letter"]["too_many_broken_records"] == 1
    assert stats["dead_letter"]["decompression_bomb"] == 1


def test_lying_warc_record_is_one_dead_letter_and_later_records_are_read(broken_run):
    dead = read_dead_letter(broken_run["out"])
    assert [r for r, _ in _dead_by(dead, "lying.warc.gz")] == ["too_large"]
    ids = {r["id"][0].decode() for r in read_shards(broken_run["out"])}
    assert {f"<urn:uuid:warc{i}>" for i in (0, 1, 3, 4)} <= ids
    assert "<urn:uuid:warc2>" not in ids


def test_byte_order_mark_does_not_break_the_first_record(broken_run):
    ids = {r["id"][0].decode() for r in read_shards(broken_run["out"])}
    assert {"bom000", "bomgz000"} <= ids
    dead = read_dead_letter(broken_run["out"])
    assert _dead_by(dead, "bom.jsonl") == [] and _dead_by(dead, "bom.jsonl.gz") == []
