"""python -m beam_pipelines.verify: a good output passes, every kind of damage is named."""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

from beam_pipelines import verify as verify_mod
from beam_pipelines.verify import check_shard, verify
from conftest import ROOT, run_text
from test_text_pipeline import _small_corpus
from transforms import writers


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    inp = _small_corpus(root, n=60)
    out = root / "out"
    stats = run_text([str(inp / "*.jsonl")], out, "--vocab_size", "400", "--num_shards", "3",
                     "--validation_fraction", "0.2")
    assert stats["records_out_by_split"]["train"] > 0
    return out


@pytest.fixture
def copy(good_run, tmp_path):
    """A fresh copy of the good output, to damage."""
    out = tmp_path / "out"
    shutil.copytree(good_run, out)
    return out


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def _nonempty_shard(out):
    shard = next(s for s in _manifest(out)["shards"] if s["records"] >= 2)
    return shard["path"], out / shard["path"]


def _record_starts(path):
    """Byte offset of every TFRecord in ``path`` (by its length fields)."""
    data = path.read_bytes()
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        pos += 12 + length + 4
    assert pos == len(data)
    return starts


def _only_about(problems, *paths):
    """Every problem names one of ``paths``."""
    assert problems
    for p in problems:
        assert any(p.startswith(path + ":") for path in paths), (p, problems)


# ------------------------------------------------------------------ success


def test_good_output_verifies(good_run, capsys):
    assert verify(str(good_run)) == []
    assert verify(str(good_run) + "/") == []  # a trailing slash changes nothing
    assert verify_mod.main([str(good_run)]) == 0
    manifest = _manifest(good_run)
    records = sum(s["records"] for s in manifest["shards"])
    assert capsys.readouterr().out.strip() == (
        f"OK: {len(manifest['shards'])} shards, {records} records, "
        f"version {manifest['dataset_version']}")
    assert len(manifest["shards"]) == 6  # 3 train + 3 validation


def test_relative_path_verifies(good_run, monkeypatch):
    monkeypatch.chdir(good_run.parent)
    assert verify(good_run.name) == []


def test_cli_exit_status_and_messages(copy):
    """The command line, once through a real process: 0 and OK, then 1 and the problem."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    ok = subprocess.run([sys.executable, "-m", "beam_pipelines.verify", str(copy)], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: 6 shards, ")
    rel, path = _nonempty_shard(copy)
    last = _record_starts(path)[-1]
    path.write_bytes(path.read_bytes()[:-3])
    bad = subprocess.run([sys.executable, "-m", "beam_pipelines.verify", str(copy)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert f"{rel}: truncated record at byte {last}" in bad.stderr
    assert "FAILED: 3 problems" in bad.stderr  # truncation, size, sha256
    assert "OK:" not in bad.stdout


# ------------------------------------------------------------------ damage


def test_truncated_shard(copy):
    rel, path = _nonempty_shard(copy)
    starts = _record_starts(path)
    # cut inside the second record's data
    path.write_bytes(path.read_bytes()[:starts[1] + 20])
    problems = verify(str(copy))
    _only_about(problems, rel)
    assert f"{rel}: truncated record at byte {starts[1]}" in problems[0]
    assert any("size mismatch" in p for p in problems)
    assert any("sha256 mismatch" in p for p in problems)


def test_truncated_header(copy):
    rel, path = _nonempty_shard(copy)
    starts = _record_starts(path)
    path.write_bytes(path.read_bytes()[:starts[1] + 5])
    problems = verify(str(copy))
    assert any(p.startswith(f"{rel}: truncated record at byte {starts[1]}") for p in problems), problems


def test_flipped_data_byte(copy):
    rel, path = _nonempty_shard(copy)
    data = bytearray(path.read_bytes())
    starts = _record_starts(path)
    data[starts[1] + 12 + 3] ^= 0x01  # inside the second record's data
    path.write_bytes(bytes(data))
    problems = verify(str(copy))
    _only_about(problems, rel)
    assert f"{rel}: corrupt record data at byte {starts[1]} (record 1: data CRC mismatch)" in problems
    assert any(p.startswith(f"{rel}: sha256 mismatch") for p in problems)
    assert not any("size mismatch" in p for p in problems)  # same size, different bytes


def test_flipped_length_byte(copy):
    rel, path = _nonempty_shard(copy)
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    problems = verify(str(copy))
    _only_about(problems, rel)
    assert f"{rel}: corrupt record length at byte 0 (record 0: length CRC mismatch)" in problems


def test_deleted_shard(copy):
    rel, path = _nonempty_shard(copy)
    path.unlink()
    assert verify(str(copy)) == [f"{rel}: missing"]


def test_extra_shard(copy):
    rel, path = _nonempty_shard(copy)
    extra = copy / "data" / "train-00003-of-00004.tfrecord"
    shutil.copy(path, extra)
    problems = verify(str(copy))
    assert problems == ["data/train-00003-of-00004.tfrecord: extra file in data/, "
                        "not listed in manifest.json"]


def test_stats_identity_broken(copy):
    stats = json.loads((copy / "stats.json").read_text())
    stats["records_in"] += 1
    (copy / "stats.json").write_text(json.dumps(stats))
    problems = verify(str(copy))
    assert len(problems) == 1
    assert problems[0].startswith("stats.json: accounting identity broken: records_in "
                                  f"{stats['records_in']} != records_out {stats['records_out']}")


def test_records_out_disagrees_with_shards(copy):
    """The identity still holds, but stats.json claims records the shards lack."""
    stats = json.loads((copy / "stats.json").read_text())
    stats["records_out"] += 2
    stats["records_in"] += 2
    (copy / "stats.json").write_text(json.dumps(stats))
    problems = verify(str(copy))
    assert len(problems) == 1 and problems[0].startswith("records: the manifest's shards hold ")
    assert f"stats.json records_out is {stats['records_out']}" in problems[0]


def test_manifest_record_count_wrong(copy):
    manifest = _manifest(copy)
    shard = next(s for s in manifest["shards"] if s["records"])
    shard["records"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    problems = verify(str(copy))
    assert (f"{shard['path']}: record count mismatch: {shard['records'] - 1} records, "
            f"manifest says {shard['records']}") in problems
    assert not any("sha256" in p for p in problems)


def test_completed_missing(copy):
    (copy / "COMPLETED").unlink()
    assert verify(str(copy)) == ["COMPLETED: missing (the run did not finish, or failed)"]


def test_tokenizer_changed(copy):
    model = copy / "tokenizer" / "spm.model"
    model.write_bytes(model.read_bytes() + b"\0")
    problems = verify(str(copy))
    assert len(problems) == 1
    assert problems[0].startswith("tokenizer/spm.model: tokenizer sha256 mismatch")


def test_manifest_missing(copy):
    (copy / "manifest.json").unlink()
    assert verify(str(copy)) == ["manifest.json: missing"]


def test_stale_tfds_metadata(copy):
    info = json.loads((copy / "dataset_info.json").read_text())
    info["splits"][0]["shardLengths"][0] = str(int(info["splits"][0]["shardLengths"][0]) + 1)
    (copy / "dataset_info.json").write_text(json.dumps(info))
    problems = verify(str(copy))
    assert len(problems) == 1 and problems[0].startswith("dataset_info.json: split ")


# ------------------------------------------------------------------ check_shard


def test_check_shard_counts_frames(tmp_path):
    frames = [writers.tfrecord_frame(writers.encode_example({"id": f"r{i}", "input_ids": [i, 2]}))
              for i in range(3)]
    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"".join(frames))
    data = path.read_bytes()
    assert check_shard(str(path)) == (3, len(data), hashlib.sha256(data).hexdigest(), [])
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    assert check_shard(str(empty)) == (0, 0, hashlib.sha256(b"").hexdigest(), [])
    # a huge length with a valid CRC: truncation, found without reading past the end
    length = struct.pack("<Q", 1 << 40)
    crc = struct.pack("<I", writers._masked_crc(length))
    path.write_bytes(frames[0] + length + crc + b"abc")
    records, _, _, problems = check_shard(str(path), size=len(frames[0]) + 15)
    assert records is None
    assert problems[0].startswith(f"truncated record at byte {len(frames[0])} (record 1")
