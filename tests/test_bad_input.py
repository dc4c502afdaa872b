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
