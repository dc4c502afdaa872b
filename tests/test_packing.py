"""Packed transport of records and band entries: lossless, smaller, and the same candidate pairs."""

import itertools
import random

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.dedup import components
from transforms.packing import pack, unpack


def test_pack_round_trips_records_batches_and_bytes():
    record = {"id": "doc-1", "text": "Ünïcode prose, repeated. " * 40, "position": 7, "key": "ab" * 16,
              "score": 0.5, "tags": ["a", "b"], "raw": b"\x00\xff", "none": None}
    for value in (record, [record, dict(record, id="doc-2")], b"", b"x" * 1000, ("node", (1, 2)), []):
        assert unpack(pack(value)) == value
        assert unpack(pack(value, compress=False)) == value


def test_prose_is_compressed_and_random_bytes_are_not():
    text = " ".join(random.Random(0).choice(["the", "river", "lamp", "of", "and", "violin"]) for _ in range(2000))
    packed = pack({"text": text})
    assert packed[:1] == b"\x02" and len(packed) < len(text) / 2
    noise = random.Random(1).randbytes(4000)
    assert pack(noise)[:1] == b"\x00"  # compression would not save a tenth


def test_unpack_refuses_what_pack_did_not_write():
    with pytest.raises(ValueError, match="not a packed value"):
        unpack(b"\x07abc")


def test_band_partitions_are_stable_and_spread():
    keys = [bytes([i % 256, i // 256]) + b"0123456789" for i in range(20000)]
    parts = [components.band_partition(k, 64) for k in keys]
    assert parts == [components.band_partition(k, 64) for k in keys]  # no per-process hash seed
    assert set(parts) == set(range(64))
    assert max(parts.count(p) for p in range(64)) < 2 * 20000 / 64
    assert components.band_partition((3, 0xBEEF), 64) == components.band_partition((3, 0xBEEF), 64)


def _reference_pairs(bands, max_bucket):
    buckets = {}
    for key, node in bands:
        buckets.setdefault(key, []).append(components.node_handle(node))
    return sorted({pair for ids in buckets.values() if len(set(ids)) > 1
                   for pair in components.bucket_pairs(ids, max_bucket)})


@pytest.mark.parametrize("partitions", [1, 7, 4096])
def test_packed_band_entries_give_the_same_candidate_pairs_of_handles(partitions):
    rng = random.Random(partitions)
    nodes = [f"d{i:04d}\x1f{i:032x}" for i in range(300)]
    # 6 bands; keys shared by small random groups, some buckets larger than max_bucket
    bands = []
    for band in range(6):
        for node in nodes:
            bucket = rng.randrange(120) if rng.random() < 0.5 else rng.randrange(10**6)
            bands.append((bytes([band]) + bucket.to_bytes(4, "little"), node))
    bands += [(b"\xffbig", node) for node in nodes[:80]]  # one bucket of 80 > max_bucket
    expected = _reference_pairs(bands, max_bucket=16)
    assert len(expected) > 500
    with TestPipeline() as p:
        got = (p | beam.Create(bands)
               | components.CandidatePairs(max_bucket=16, partitions=partitions))
        assert_that(got["pairs"], equal_to(expected))


def test_entries_are_flushed_in_packs_of_at_most_64():
    fn = components._PackBandsFn(partitions=2, flush_at=64)
    fn.start_bundle()
    entries = [(bytes([i % 7]) + b"k", f"n{i}") for i in range(1000)]
    emitted = list(itertools.chain.from_iterable(fn.process(e) for e in entries))
    emitted += [wv.value for wv in fn.finish_bundle()]
    sizes = [len(unpack(blob)) for _, blob in emitted]
    assert max(sizes) == 64 and sum(sizes) == 1000
    assert sorted(e for _, blob in emitted for e in unpack(blob)) == sorted(
        (key, components.node_handle(node)) for key, node in entries)
    assert {part for part, _ in emitted} <= {0, 1}


def test_handles_are_12_bytes_stable_and_distinct():
    nodes = [f"https://example.com/page/{i}\x1f{i:032x}" for i in range(50000)]
    handles = [components.node_handle(n) for n in nodes]
    assert all(len(h) == 12 for h in handles)
    assert len(set(handles)) == len(nodes)
    assert components.node_handle(nodes[0]) == handles[0]
    assert components.node_handle("\udcff lone surrogate") != components.node_handle("x")


def test_pairs_of_handles_come_back_as_edges_between_nodes_and_a_shared_handle_only_adds_candidates(monkeypatch):
    def accept(a, b):
        return abs(a - b) <= 1

    # "a" and "b" share a handle: the bucket pair of "c" with it reaches both, and the predicate decides
    fake = {"a": b"H" * 12, "b": b"H" * 12, "c": b"K" * 12}
    monkeypatch.setattr(components, "node_handle", fake.__getitem__)
    with TestPipeline() as p:
        pairs = p | "Pairs" >> beam.Create([(b"K" * 12, b"H" * 12)])
        payloads = p | "Payloads" >> beam.Create([("a", 1), ("b", 5), ("c", 2)])
        out = {"pairs": pairs, "payloads": payloads} | components.VerifyPairs(accept)
        assert_that(out["edges"], equal_to([("c", "a")]))


# ---------------------------------------------------------------- spilling to disk

from transforms import packing  # noqa: E402


@pytest.fixture
def spill_dir(tmp_path, monkeypatch):
    directory = tmp_path / "spill"
    directory.mkdir()
    monkeypatch.setenv(packing.SPILL_ENV, str(directory))
    yield directory
    packing.release(str(directory))


def _prose(i, words=300):
    rng = random.Random(i)
    return {"id": f"doc-{i}", "text": " ".join(rng.choice(["the", "river", "lamp", "of", "violin"])
                                              for _ in range(words))}


def test_spilled_values_travel_as_references_and_read_back_equal(spill_dir):
    values = [_prose(i) for i in range(50)]
    refs = [pack(v, spill=True) for v in values]
    assert all(r[:1] == b"\x03" and len(r) == 21 for r in refs)
    assert [unpack(r) for r in refs] == values
    files = list(spill_dir.iterdir())
    assert len(files) == 1 and files[0].suffix == ".spill"
    assert files[0].stat().st_mode & 0o777 == 0o600
    # the file holds exactly the packed bytes, back to back
    assert files[0].stat().st_size == sum(len(pack(v)) for v in values)


def test_small_values_and_unrequested_spills_stay_inline(spill_dir):
    small = {"id": "a", "text": "short"}
    assert pack(small, spill=True) == pack(small)
    big = _prose(1)
    assert pack(big)[:1] == b"\x02"  # spill=False: never a reference
    assert not list(spill_dir.iterdir())


def test_without_a_spill_directory_nothing_is_spilled_and_a_reference_is_refused(spill_dir, monkeypatch):
    ref = pack(_prose(2), spill=True)
    monkeypatch.delenv(packing.SPILL_ENV)
    assert pack(_prose(2), spill=True)[:1] == b"\x02"
    with pytest.raises(ValueError, match="no spill directory"):
        unpack(ref)


def test_a_truncated_spill_file_is_a_clear_error(spill_dir):
    ref = pack(_prose(3), spill=True)
    packing.release(str(spill_dir))
    (path,) = spill_dir.iterdir()
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(OSError, match="ends before byte"):
        unpack(ref)


def test_threads_writing_at_once_get_their_own_bytes_back(spill_dir):
    from concurrent.futures import ThreadPoolExecutor

    values = [_prose(i, words=100 + i % 50) for i in range(400)]
    with ThreadPoolExecutor(8) as pool:
        refs = list(pool.map(lambda v: pack(v, spill=True), values))
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(unpack, refs)) == values


def _pack_in_child(values):
    return [pack(v, spill=True) for v in values]


def test_a_reference_written_by_another_process_reads_back(spill_dir):
    import multiprocessing

    values = [_prose(i) for i in range(20)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:  # children inherit the variable
        refs = sum(pool.map(_pack_in_child, [values[:10], values[10:]]), [])
    assert [unpack(r) for r in refs] == values
    assert len(list(spill_dir.iterdir())) == 2  # one file per writing process
    mine = pack(values[0], spill=True)
    assert unpack(mine) == values[0] and len(list(spill_dir.iterdir())) == 3


def test_per_record_band_entries_pack_like_one_entry_per_band():
    """(node, [keys]) per record gives the packs that (key, node) per band gives, in order."""
    rng = random.Random(5)
    records = [(f"n{i}", [bytes([b]) + rng.randrange(50).to_bytes(2, "little") for b in range(18)])
               for i in range(300)]

    def run(fn, elements):
        fn.start_bundle()
        out = list(itertools.chain.from_iterable(fn.process(e) for e in elements))
        return [(part, unpack(blob)) for part, blob in out + [wv.value for wv in fn.finish_bundle()]]

    per_band = run(components._PackBandsFn(partitions=3),
                   [(key, node) for node, keys in records for key in keys])
    per_record = run(components._PackBandsFn(partitions=3, per_record=True), records)
    assert per_record == per_band and sum(len(e) for _, e in per_record) == 300 * 18


def test_candidate_pairs_from_per_record_bands():
    rng = random.Random(11)
    records = [(f"n{i:03d}", [bytes([b]) + rng.randrange(40).to_bytes(2, "little") for b in range(6)])
               for i in range(200)]
    expected = _reference_pairs([(key, node) for node, keys in records for key in keys], max_bucket=16)
    assert len(expected) > 100
    with TestPipeline() as p:
        got = (p | beam.Create(records)
               | components.CandidatePairs(max_bucket=16, partitions=7, per_record=True))
        assert_that(got["pairs"], equal_to(expected))


def test_a_record_read_back_from_a_spill_is_not_written_again(spill_dir):
    values = [_prose(i) for i in range(30)]
    refs = [pack(v, spill=True) for v in values]
    (path,) = spill_dir.iterdir()
    size = path.stat().st_size
    back = [unpack(r) for r in refs]
    # the same objects, unchanged, packed again: their references, nothing written
    assert [pack(v, spill=True) for v in back] == refs
    assert path.stat().st_size == size
    # a changed copy (Beam's rule: a step copies a record to change it) is written anew
    changed = dict(unpack(refs[0]), text=_prose(99)["text"])
    ref = pack(changed, spill=True)
    assert ref != refs[0] and unpack(ref) == changed and path.stat().st_size > size
    # an equal but distinct object, or one not asked to spill, is packed as ever
    assert pack(dict(values[1]), spill=True) != refs[1]
    again = unpack(refs[2])
    assert pack(again)[:1] == b"\x02" and pack(again, spill=True) == refs[2]


def test_what_is_remembered_is_bounded_and_tied_to_its_run(spill_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(packing, "_REMEMBERED", 10)
    refs = [pack(_prose(i), spill=True) for i in range(25)]
    back = [unpack(r) for r in refs]
    table = packing._remembered()
    assert len(table) == 10 and all(table[id(v)][0] is v for v in back[-10:])
    assert pack(back[0], spill=True) != refs[0]  # forgotten: written again, still equal
    assert unpack(pack(back[0], spill=True)) == back[0]
    encoded = len(pack(_prose(0), compress=False)) - 1  # without the tag byte
    monkeypatch.setattr(packing, "_REMEMBERED_BYTES", 3 * encoded)
    for r in refs[:5]:
        unpack(r)
    assert 2 <= len(table) <= 3 and table.size <= packing._REMEMBERED_BYTES
    # a record that compressed well is counted at what it holds, not what it took on disk
    monkeypatch.setattr(packing, "_REMEMBERED_BYTES", 16 << 20)
    monkeypatch.setenv(packing.SPILL_COMPRESS_ENV, "1")
    big = {"id": "big", "text": (_prose(1)["text"] + "\n") * 2500}  # 4.5 MB of repeats
    ref = pack(big, spill=True)
    assert ref[:1] == b"\x03" and packing._REF_TAIL.unpack(ref[1:])[2] < (4 << 20) // 10
    for _ in range(5):
        unpack(ref)
    held = (16 << 20) // (len(pack(big, compress=False)) - 1)
    assert held < 5 and table.size <= 16 << 20
    assert sum(1 for e in table.values() if e[0] == big) == held
    # another run's directory: a remembered record is written to the new one
    last = unpack(refs[-1])
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv(packing.SPILL_ENV, str(other))
    ref = pack(last, spill=True)
    assert ref != refs[-1] and unpack(ref) == last and list(other.iterdir())
    packing.release(str(other))
    packing.release(str(spill_dir))
    assert not any(entry[2] == str(spill_dir) for entry in table.values())


def test_spills_are_compressed_only_where_asked(spill_dir, monkeypatch):
    value = _prose(7)
    monkeypatch.setenv(packing.SPILL_COMPRESS_ENV, "0")
    raw = pack(value, spill=True)
    monkeypatch.setenv(packing.SPILL_COMPRESS_ENV, "1")
    small = pack(value, spill=True)
    monkeypatch.delenv(packing.SPILL_COMPRESS_ENV)
    default = pack(value, spill=True)
    lengths = [packing._REF_TAIL.unpack(r[1:])[2] for r in (raw, small, default)]
    assert lengths[0] == len(pack(value, compress=False)) > lengths[1] == lengths[2]
    assert unpack(raw) == unpack(small) == unpack(default) == value
    monkeypatch.setenv(packing.SPILL_COMPRESS_ENV, "0")
    assert pack(value)[:1] == b"\x02"  # values that travel inline are still compressed


def test_a_process_that_finds_the_disk_short_compresses_from_then_on(spill_dir, monkeypatch):
    monkeypatch.setenv(packing.SPILL_COMPRESS_ENV, "0")
    monkeypatch.setattr(packing, "DISK_CHECK_BYTES", 4096)
    free = {"bytes": 100 << 30}

    class Stat:
        f_frsize = 1

        @property
        def f_bavail(self):
            return free["bytes"]

    looked = []
    monkeypatch.setattr(packing.os, "statvfs", lambda path: looked.append(path) or Stat())
    length = lambda ref: packing._REF_TAIL.unpack(ref[1:])[2]  # noqa: E731
    value = _prose(5)
    raw = len(pack(value, compress=False))
    refs = [pack(_prose(i), spill=True) for i in range(20)]
    assert looked and all(length(r) >= raw * 0.9 for r in refs)  # room: written as encoded
    free["bytes"] = 900 << 20  # under 1 GiB left
    refs += [pack(_prose(i), spill=True) for i in range(20, 40)]
    after = pack(value, spill=True)
    assert length(after) < raw * 0.8 and unpack(after) == value
    assert [unpack(r) for r in refs] == [_prose(i) for i in range(40)]
    free["bytes"] = 100 << 30
    assert not packing._disk_short(str(spill_dir), 10 << 30)
    assert packing._disk_short(str(spill_dir), 60 << 30)  # less than twice the spill left
