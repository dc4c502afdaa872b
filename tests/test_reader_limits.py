"""Bounded resources per input file: byte cap, decompression-ratio guard, a cap on
broken records, and progress by bytes read. Hostile files are generated here, small
enough to be fast; what a limit cuts off is one dead-letter record, and every record
read is counted (records_in == out + filtered + dead letters)."""

import collections
import gzip
import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from apache_beam import pvalue

from transforms import accounting
from transforms.read import corpus as readers
from transforms.read.corpus import read_task
from transforms.read.plan import ReaderConfig, plan_reads


def _events(path, config=ReaderConfig(), on_bytes=None):
    out = []
    for task in plan_reads(str(path), path.stat().st_size, path.name, config):
        if isinstance(task, dict):
            out.append(("dead", task))
        else:
            out.extend(read_task(task, config, on_bytes))
    return out


def _dead(events):
    return [v for k, v in events if k == "dead"]


def _records(events):
    return [v for k, v in events if k == "record"]


def _through_dofns(path, config):
    """Plan and read one file with the reader's DoFns (no pipeline): outputs and tallies."""
    plan, read = readers._PlanReads(config), readers._ReadTasks(config)
    read.setup()
    plan.start_bundle()
    read.start_bundle()
    records, dead, tasks = [], [], []
    info = {"path": str(path), "size": path.stat().st_size, "rel": path.name}
    for item in plan.process(info):
        (dead.append(item.value) if isinstance(item, pvalue.TaggedOutput) else tasks.append(item))
    for task in tasks:
        for item in read.process(task):
            (dead.append(item.value) if isinstance(item, pvalue.TaggedOutput) else records.append(item))
    counts = collections.Counter()
    for fn in (plan, read):
        for out in fn.finish_bundle():
            key, n = out.value.value
            counts[key] += n
    return records, dead, counts


def _assert_accounted(records, dead, counts):
    by_kind = collections.Counter()
    for (kind, _), n in counts.items():
        by_kind[kind] += n
    assert by_kind[accounting.DEAD_LETTER] == len(dead)
    assert by_kind[accounting.IN] == len(records) + by_kind[accounting.FILTERED] + by_kind[accounting.DEAD_LETTER]


def test_config_defaults_and_validation():
    c = ReaderConfig()
    assert (c.max_file_bytes, c.max_decompression_ratio, c.max_dead_per_file, c.max_broken_share) == (
        64 << 30, 100, 1000, 0.5)
    for bad in ({"max_file_bytes": 0}, {"max_file_bytes": 1.5}, {"max_dead_per_file": -1},
                {"max_decompression_ratio": 0.5}, {"max_decompression_ratio": "100"},
                {"max_broken_share": 1.5}, {"max_broken_share": -0.1}, {"chunk_bytes": 0}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=name):
            ReaderConfig(**bad)


def test_millions_of_broken_lines_stop_at_the_cap(tmp_path):
    # 200k lines of "{" (the 4M-line file of a crawl gone wrong, made smaller): ~1 KB gzip
    n = 200_000
    path = tmp_path / "braces.jsonl.gz"
    path.write_bytes(gzip.compress(b"{\n" * n))
    events = _events(path)
    assert len(events) == 1001
    assert [d["reason"] for d in _dead(events)[:1000]] == ["malformed_json"] * 1000
    last = _dead(events)[-1]
    assert last["reason"] == "too_many_broken_records"
    assert last["position"] == 2 * 1000  # the first line not read
    assert "max_dead_per_file=1000" in last["detail"]
    # the same through the DoFns: every record counted is accounted for
    records, dead, counts = _through_dofns(path, ReaderConfig())
    _assert_accounted(records, dead, counts)
    assert counts[(accounting.IN, "records")] == 1001
    assert counts[(accounting.DEAD_LETTER, "too_many_broken_records")] == 1


def test_broken_share_at_or_below_the_threshold_reads_everything(tmp_path):
    lines = []
    for i in range(3000):  # every other line broken: a share of exactly 0.5
        lines.append(b"{" if i % 2 else json.dumps({"id": f"g{i}", "text": "fine"}).encode())
    path = tmp_path / "half.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    events = _events(path, ReaderConfig(max_dead_per_file=10))
    assert len(_records(events)) == 1500 and len(_dead(events)) == 1500
    assert "too_many_broken_records" not in {d["reason"] for d in _dead(events)}
    # a stricter share stops it, and the good records before the stop are kept
    events = _events(path, ReaderConfig(max_dead_per_file=10, max_broken_share=0.4))
    assert len(_records(events)) == 10 and len(_dead(events)) == 11
    assert _dead(events)[-1]["reason"] == "too_many_broken_records"


def _blank_line_bomb(path, members=128):
    """``members`` x 8 MiB of newlines (1 GiB by default) as ~1 MB of gzip, then one record."""
    member = gzip.compress(b"\n" * (8 << 20), compresslevel=9)
    path.write_bytes(member * members + gzip.compress(b'{"id": "after", "text": "x"}\n'))
    return path


def test_decompression_bomb_stops_at_the_ratio_guard(tmp_path):
    path = _blank_line_bomb(tmp_path / "blank.jsonl.gz")
    assert path.stat().st_size < 2 << 20
    seen = []
    events = _events(path, on_bytes=seen.append)
    assert _records(events) == []
    [dead] = _dead(events)
    assert dead["reason"] == "decompression_bomb"
    assert "max_decompression_ratio=100" in dead["detail"]
    assert 16 << 20 <= sum(seen) < 64 << 20  # stopped soon after the 16 MiB floor, not at 1 GiB
    # the guard is a setting: a high enough ratio lets such a file through to its record
    path = _blank_line_bomb(tmp_path / "smaller.jsonl.gz", members=3)
    events = _events(path, ReaderConfig(max_decompression_ratio=1e9))
    assert [r["id"] for r in _records(events)] == ["after"] and _dead(events) == []


def test_zstd_bomb_is_stopped_with_bounded_reads(tmp_path):
    path = tmp_path / "zeros.txt.zst"
    cctx = zstandard.ZstdCompressor(level=3)
    path.write_bytes(cctx.compress(b" " * (256 << 20)))
    assert path.stat().st_size < 64 << 10
    sizes = []
    config = ReaderConfig(max_doc_bytes=64 << 20)
    events = _events(path, config, on_bytes=sizes.append)
    assert [d["reason"] for d in _dead(events)] == ["decompression_bomb"]
    assert max(sizes) <= 4 << 20  # no single read inflated to gigabytes


def test_max_file_bytes_on_a_plain_file(tmp_path):
    line = json.dumps({"text": "x" * 80}).encode() + b"\n"  # 93 bytes
    path = tmp_path / "plain.jsonl"
    path.write_bytes(line * 10)
    events = _events(path, ReaderConfig(max_file_bytes=450))
    assert [r["position"] for r in _records(events)] == [0, 93, 186, 279]  # lines ending within 450
    [dead] = _dead(events)
    assert (dead["reason"], dead["position"]) == ("file_too_large", 372)
    assert "max_file_bytes=450" in dead["detail"]
    records, dead, counts = _through_dofns(path, ReaderConfig(max_file_bytes=450))
    _assert_accounted(records, dead, counts)
    assert len(records) == 4 and counts[(accounting.IN, "records")] == 5
    # compressed: the same lines are read, the same remainder is cut off
    gz = tmp_path / "plain.jsonl.gz"
    gz.write_bytes(gzip.compress(line * 10))
    events = _events(gz, ReaderConfig(max_file_bytes=450))
    assert [r["position"] for r in _records(events)] == [0, 93, 186, 279]
    assert [(d["reason"], d["position"]) for d in _dead(events)] == [("file_too_large", 372)]
    # a file within the cap is not touched
    assert len(_records(_events(path, ReaderConfig(max_file_bytes=930)))) == 10


def test_max_file_bytes_on_text_warc_and_parquet(tmp_path):
    (tmp_path / "a.txt").write_text("word " * 200)
    events = _events(tmp_path / "a.txt", ReaderConfig(max_file_bytes=100))
    assert [(d["reason"], d["unit"]) for d in _dead(events)] == [("file_too_large", "file")]
    from test_readers import _warc_plain

    warc = _warc_plain(10)
    (tmp_path / "b.warc").write_bytes(warc)
    events = _events(tmp_path / "b.warc", ReaderConfig(max_file_bytes=len(warc) // 2))
    assert 0 < len(_records(events)) < 10
    assert [d["reason"] for d in _dead(events)] == ["file_too_large"]
    assert len(events) == len(_records(events)) + 1
    table = pa.table({"text": [f"row {i} " + "y" * 200 for i in range(300)]})
    pq.write_table(table, tmp_path / "c.parquet", row_group_size=100, compression="none")
    events = _events(tmp_path / "c.parquet", ReaderConfig(max_file_bytes=40_000))
    assert [r["position"] for r in _records(events)] == list(range(100))
    assert [(d["reason"], d["position"], d["unit"]) for d in _dead(events)] == [
        ("file_too_large", 100, "row")]


def test_progress_counts_bytes_not_kept_text(tmp_path, caplog):
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n" * 300_000 + b'{"text": "one"}\n')
    progress = readers._Progress(every=0.0)
    with caplog.at_level(logging.WARNING, logger="beamtrain.progress"):
        for kind, _ in _events(path, on_bytes=progress.bytes_read):
            if kind == "record":
                progress.record()
        progress.bytes_read(0)
    lines = [r.getMessage() for r in caplog.records if r.name == "beamtrain.progress"]
    assert len(lines) >= 4  # one per read, while no record had come out
    assert lines[0].startswith("read 0 records, 0.1 MB")
    assert lines[-1].startswith("read 1 records, 0.3 MB")
