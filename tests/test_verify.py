"""python -m beam_pipelines.verify: a good output passes, every kind of damage is named."""

import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys

import pytest

from beam_pipelines import verify as verify_mod
from beam_pipelines.verify import check_shard, verify
from conftest import ROOT, run_text
from corpora import prose_sentences, small_corpus
from transforms.write import shards as writers

DUP_ID = "r3"  # a second input record carries this id: it is written as r3#dup1
_BUILT = {}


def build_good_run(tmp_path_factory):
    """One pipeline run per session, shared with test_verify_safety.py (never modified)."""
    if "out" not in _BUILT:
        root = tmp_path_factory.mktemp("verify")
        inp = small_corpus(root, n=60)
        rng = random.Random(1000)
        text = "Document 1000 follows.\n" + "\n\n".join(
            "\n".join(rng.sample(prose_sentences(), 3)) for _ in range(3))
        (inp / "c.jsonl").write_text(json.dumps({"id": DUP_ID, "text": text}) + "\n")
        out = root / "out"
        stats = run_text([str(inp / "*.jsonl")], out, "--vocab_size", "400", "--num_shards", "3",
                         "--validation_fraction", "0.2")
        assert stats["records_out_by_split"]["train"] > 0
        _BUILT["out"] = out
    return _BUILT["out"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    return build_good_run(tmp_path_factory)


@pytest.fixture
def copy(good_run, tmp_path):
    """A fresh copy of the good output, to damage."""
    out = tmp_path / "out"
    shutil.copytree(good_run, out, symlinks=True)
    return out


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def _write_json(path, obj):
    path.write_bytes(writers.json_dumps(obj))


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


def _ids(path):
    """The id of every record of a shard, in order (verify's own parser)."""
    data = path.read_bytes()
    return [verify_mod.example_id(data[s + 12:s + 12 + struct.unpack("<Q", data[s:s + 8])[0]])
            for s in _record_starts(path)]


def _only_about(problems, *paths):
    """Every problem names one of ``paths``."""
    assert problems
    for p in problems:
        assert any(p.startswith(path + ":") for path in paths), (p, problems)


def _reseal(out):
    """Rewrite every derived field so it describes what is on disk now, as a careless tool
    that "fixes up" an edited output would: the manifest's shard sizes, digests and counts,
    content_sha256, config_sha256, records_out, stats.json's totals, dataset_info.json and
    COMPLETED. What verify still finds after this, only its own re-derivation can find."""
    manifest = _manifest(out)
    for s in manifest["shards"]:
        s["split"] = s["path"][len("data/"):].split("-")[0]
        data = (out / s["path"]).read_bytes() if (out / s["path"]).is_file() else b""
        s["bytes"], s["sha256"] = len(data), hashlib.sha256(data).hexdigest()
        s["records"] = len(_record_starts(out / s["path"])) if data else 0
    content = hashlib.sha256()
    for s in manifest["shards"]:
        content.update(f"{s['path']}:{s['sha256']}\n".encode())
    if manifest.get("tokenizer"):
        content.update(manifest["tokenizer"]["sha256"].encode())
    manifest["content_sha256"] = content.hexdigest()
    manifest["records_out"] = sum(s["records"] for s in manifest["shards"])
    if "config_sha256" in manifest:
        manifest["config_sha256"] = hashlib.sha256(writers.json_dumps(manifest["config"])).hexdigest()
    _write_json(out / "manifest.json", manifest)

    stats = json.loads((out / "stats.json").read_text())
    lost = stats["records_in"] - stats["records_out"]
    by_split = {}
    for s in manifest["shards"]:
        by_split[s["split"]] = by_split.get(s["split"], 0) + s["records"]
    stats["records_out"] = manifest["records_out"]
    stats["records_out_by_split"] = {k: v for k, v in sorted(by_split.items()) if v}
    stats["records_in"] = stats["records_out"] + lost
    _write_json(out / "stats.json", stats)

    info = json.loads((out / "dataset_info.json").read_text())
    template = info["splits"][0]
    splits = []
    for split in sorted(by_split):
        shards = sorted((s for s in manifest["shards"] if s["split"] == split),
                        key=lambda s: s["path"])
        if sum(s["records"] for s in shards):
            splits.append(dict(template, name=split,
                               shardLengths=[str(s["records"]) for s in shards],
                               numBytes=str(sum(s["bytes"] for s in shards))))
    info["splits"] = splits
    _write_json(out / "dataset_info.json", info)

    marker = json.loads((out / "COMPLETED").read_text())
    marker["dataset_version"] = manifest["dataset_version"]
    for key in ("content_sha256", "config_sha256"):
        if key in marker and key in manifest:
            marker[key] = manifest[key]
    (out / "COMPLETED").write_text(json.dumps(marker) + "\n")


def _swap_files(out, a, b):
    """Exchange two shard files on disk; the manifest entries follow their files."""
    pa, pb = out / a, out / b
    tmp = pa.with_suffix(".swap")
    pa.rename(tmp)
    pb.rename(pa)
    tmp.rename(pb)
    manifest = _manifest(out)
    for s in manifest["shards"]:
        s["path"] = {a: b, b: a}.get(s["path"], s["path"])
    _write_json(out / "manifest.json", manifest)


# ------------------------------------------------------------------ success


def test_good_output_verifies(good_run, capsys):
    warnings = []
    assert verify(str(good_run), warnings) == []
    assert warnings == []  # this beamtrain writes the config digest
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


# ------------------------------------------------------------------ honest checks
# Each damage below is "resealed" (every digest, count and metadata file rewritten to match),
# so only verify's own re-derivation from the records and file names can find it.


def _shards_of(out, split, nonempty=True):
    return [s["path"] for s in _manifest(out)["shards"]
            if s["split"] == split and (s["records"] or not nonempty)]


def test_reseal_alone_changes_nothing(copy):
    _reseal(copy)
    assert verify(str(copy)) == []


def test_renamed_duplicate_is_placed_by_its_input_id(good_run):
    """r3 twice in the input: the second is written as r3#dup1 in r3's shard, and verify
    strips the suffix before hashing (the suffix alone would hash elsewhere)."""
    manifest = _manifest(good_run)
    frac = manifest["config"]["writer"]["validation_fraction"]
    where = {}
    for s in manifest["shards"]:
        for rid in _ids(good_run / s["path"]):
            where[rid] = s["path"]
    dup = DUP_ID + "#dup1"
    assert where[dup] == where[DUP_ID]
    assert (writers.split_of(dup, frac), writers.shard_of(dup, 3)) != \
        (writers.split_of(DUP_ID, frac), writers.shard_of(DUP_ID, 3))
    assert verify(str(good_run)) == []


@pytest.mark.parametrize("name", ["dataset_info.json", "features.json"])
def test_tfds_metadata_missing(copy, name):
    (copy / name).unlink()
    what = "metadata" if name == "dataset_info.json" else "features"
    assert verify(str(copy)) == [f"{name}: missing (the TFDS {what} beside the shards)"]


def test_swapped_shards(copy):
    a, b = _shards_of(copy, "train")[:2]
    n_a, n_b = (len(_record_starts(copy / p)) for p in (a, b))
    _swap_files(copy, a, b)
    _reseal(copy)
    assert sorted(verify(str(copy))) == sorted([
        f"{a}: {n_b} of {n_b} records do not hash to this shard (swapped or renamed shard? "
        f"first: record 0 at byte 0 belongs in {b})",
        f"{b}: {n_a} of {n_a} records do not hash to this shard (swapped or renamed shard? "
        f"first: record 0 at byte 0 belongs in {a})",
    ])


def test_swapped_train_and_validation(copy):
    a, b = _shards_of(copy, "train")[0], _shards_of(copy, "validation")[0]
    _swap_files(copy, a, b)
    _reseal(copy)
    problems = verify(str(copy))
    assert len(problems) == 2, problems
    _only_about(problems, a, b)
    assert f"belongs in {a})" in next(p for p in problems if p.startswith(b))
    assert f"belongs in {b})" in next(p for p in problems if p.startswith(a))


def test_manifest_split_disagrees_with_file_name(copy):
    manifest = _manifest(copy)
    entry = next(s for s in manifest["shards"] if s["split"] == "train")
    entry["split"] = "validation"
    _write_json(copy / "manifest.json", manifest)
    assert (f"{entry['path']}: manifest.json says split 'validation', the file name says "
            "'train'") in verify(str(copy))


def test_record_without_id(copy):
    rel = _shards_of(copy, "train")[0]
    good = (copy / rel).read_bytes()
    (copy / rel).write_bytes(good + writers.tfrecord_frame(writers.encode_example({"text": "x"})))
    _reseal(copy)
    n = len(_record_starts(copy / rel))
    assert verify(str(copy)) == [
        f"{rel}: 1 of {n} records have no readable id (first: record {n - 1} at byte "
        f"{len(good)}: no id feature)"]


@pytest.mark.parametrize("keep_file", [False, True])
def test_missing_member_of_a_shard_set(copy, keep_file):
    rel = "data/train-00001-of-00003.tfrecord"
    manifest = _manifest(copy)
    manifest["shards"] = [s for s in manifest["shards"] if s["path"] != rel]
    _write_json(copy / "manifest.json", manifest)
    if not keep_file:
        (copy / rel).unlink()
    _reseal(copy)
    want = [f"{rel}: missing from manifest.json (split 'train' lists 2 of its 3 shards)"]
    if keep_file:
        want.append(f"{rel}: extra file in data/, not listed in manifest.json")
    assert verify(str(copy)) == want


def _rename_shard(copy, old, new):
    """Rename a shard on disk and in the manifest, reseal every digest; verify's problems."""
    (copy / old).rename(copy / new)
    manifest = _manifest(copy)
    next(s for s in manifest["shards"] if s["path"] == old)["path"] = new
    _write_json(copy / "manifest.json", manifest)
    _reseal(copy)
    return verify(str(copy))


def test_two_shard_counts_in_one_split(copy):
    old, new = "data/train-00002-of-00003.tfrecord", "data/train-00002-of-00004.tfrecord"
    problems = _rename_shard(copy, old, new)
    assert "data/train-*.tfrecord: split 'train' mixes shard sets -of-00003, -of-00004" in problems
    assert f"{old}: missing from manifest.json (split 'train' lists 2 of its 3 shards)" in problems
    for i in (0, 1, 3):
        assert (f"data/train-{i:05d}-of-00004.tfrecord: missing from manifest.json "
                "(split 'train' lists 1 of its 4 shards)") in problems


def test_a_whole_split_dropped(copy):
    manifest = _manifest(copy)
    for s in manifest["shards"]:
        if s["split"] == "validation":
            (copy / s["path"]).unlink()
    manifest["shards"] = [s for s in manifest["shards"] if s["split"] != "validation"]
    _write_json(copy / "manifest.json", manifest)
    _reseal(copy)
    assert verify(str(copy)) == [
        "data/validation-*.tfrecord: split 'validation' has no shards in manifest.json "
        "(validation_fraction 0.2)"]


def test_not_a_shard_name(copy):
    old, new = "data/train-00000-of-00003.tfrecord", "data/train-0-of-3.tfrecord"
    problems = _rename_shard(copy, old, new)
    assert f"{new}: not a shard name (data/SPLIT-NNNNN-of-NNNNN.tfrecord)" in problems
    assert f"{old}: missing from manifest.json (split 'train' lists 2 of its 3 shards)" in problems


# ------------------------------------------------------------------ config and COMPLETED digests


def _digest(config):
    return hashlib.sha256(writers.json_dumps(config)).hexdigest()


def _completed(out):
    return json.loads((out / "COMPLETED").read_text())


def test_run_writes_both_digests(good_run):
    """The contract verify checks: config_sha256 in manifest.json and COMPLETED."""
    manifest, marker = _manifest(good_run), _completed(good_run)
    assert manifest["config_sha256"] == marker["config_sha256"] == _digest(manifest["config"])
    assert marker["content_sha256"] == manifest["content_sha256"]
    assert marker["dataset_version"] == manifest["dataset_version"]


def test_config_edited(copy):
    manifest = _manifest(copy)
    before = manifest["config_sha256"]
    manifest["config"]["filter"]["min_words"] += 1
    _write_json(copy / "manifest.json", manifest)
    after = _digest(manifest["config"])
    assert verify(str(copy)) == [
        f"manifest.json: config_sha256 {before} is not the digest of its config ({after}): "
        "config edited?",
        f"COMPLETED: config_sha256 {before}, the manifest's config digests to {after} "
        "(config edited after the run?)",
    ]
    # a tool that also rewrites the manifest's digest is still caught by COMPLETED's
    _reseal(copy)
    marker = _completed(copy)
    marker["config_sha256"] = before
    (copy / "COMPLETED").write_text(json.dumps(marker) + "\n")
    assert verify(str(copy)) == [
        f"COMPLETED: config_sha256 {before}, the manifest's config digests to {after} "
        "(config edited after the run?)"]


def test_completed_content_digest_differs(copy):
    marker = _completed(copy)
    marker["content_sha256"] = "0" * 64
    (copy / "COMPLETED").write_text(json.dumps(marker) + "\n")
    assert verify(str(copy)) == [
        f"COMPLETED: content_sha256 {'0' * 64}, manifest.json says "
        f"{_manifest(copy)['content_sha256']}"]


def test_one_config_digest_removed(copy):
    marker = _completed(copy)
    del marker["config_sha256"]
    (copy / "COMPLETED").write_text(json.dumps(marker) + "\n")
    assert verify(str(copy)) == ["COMPLETED: config_sha256 missing (manifest.json has one)"]
    manifest = _manifest(copy)
    marker["config_sha256"] = manifest.pop("config_sha256")
    (copy / "COMPLETED").write_text(json.dumps(marker) + "\n")
    _write_json(copy / "manifest.json", manifest)
    assert verify(str(copy)) == ["manifest.json: config_sha256 missing (COMPLETED has one)"]


def test_older_beamtrain_without_digests_warns(copy, capsys):
    """Written before config digests: a warning, not a failure; the CLI still exits 0."""
    manifest = _manifest(copy)
    del manifest["config_sha256"]
    _write_json(copy / "manifest.json", manifest)
    (copy / "COMPLETED").write_text(json.dumps({"dataset_version": manifest["dataset_version"]}))
    warnings = []
    assert verify(str(copy), warnings) == []
    assert warnings == ["manifest.json: no config digest (written by an older beamtrain)"]
    assert verify_mod.main([str(copy)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "WARN manifest.json: no config digest (written by an older beamtrain)\n"
    assert captured.out.startswith("OK: 6 shards, ")


# ------------------------------------------------------------------ example_id


def test_example_id_text_and_image():
    assert verify_mod.example_id(writers.encode_example(
        {"id": "doc-1", "input_ids": list(range(40)), "source": "a.jsonl"})) == "doc-1"
    image = writers.encode_example({"image/encoded": b"\xff\xd8" * 500, "image/format": b"jpeg",
                                    "image/height": [3], "image/width": [4], "image/id": "im-7",
                                    "caption/text": "a cat", "caption/input_ids": [1, 2]})
    assert verify_mod.example_id(image) == "im-7"
    assert verify_mod.example_id(writers.encode_example({"id": "caf\u00e9#dup2"})) == "caf\u00e9#dup2"


@pytest.mark.parametrize("data, why", [
    (writers.encode_example({"text": "no id"}), "no id feature"),
    (writers.encode_example({"id": [1, 2]}), "id is not a bytes feature"),
    (writers.encode_example({"id": [b"a", b"b"]}), "id has 2 values, not 1"),
    (writers.encode_example({"id": b"\xff"}), "id is not UTF-8"),
    (writers.encode_example({"id": "x"})[:-1], "truncated field"),
    (b"\x0f", "unsupported wire type 7"),
])
def test_example_id_rejects(data, why):
    with pytest.raises(ValueError, match=why):
        verify_mod.example_id(data)


def test_example_id_never_raises_anything_but_valueerror():
    rng = random.Random(7)
    seed = writers.encode_example({"id": "doc", "text": "hello", "source": "s"})
    for _ in range(2000):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            verify_mod.example_id(bytes(data[:rng.randint(0, len(data))]))
        except ValueError:
            pass
