"""Image readers under hostile input: confinement of referenced paths, WebDataset identity, bounded memory."""

import gzip
import io
import json
import os
import signal
import tarfile
import tracemalloc

import pytest

from transforms import accounting
from transforms.read import images as image_readers
from transforms.read.images import LoadImages, read_coco, read_pair_table, read_webdataset

MARKER = b"SECRET-KEY-MATERIAL-7f3a"
JPEG = b"\xff\xd8\xff\xe0 a tiny stand-in for image bytes \xff\xd9"


def split(items):
    records = [v for k, v in items if k == "record"]
    dead = [v for k, v in items if k == "dead"]
    return records, dead


def load(records, image_root=None):
    """Run LoadImages' process on each record: (loaded records, dead-letter entries)."""
    fn = LoadImages(1 << 20, image_root=image_root)
    loaded, dead = [], []
    for record in records:
        for out in fn.process(record):
            if getattr(out, "tag", None) == accounting.DEAD:
                dead.append(out.value)
            else:
                loaded.append(out)
    return loaded, dead


def first_bytes(path, n=16):
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def leaked(entry):
    """Whether a dead-letter entry carries any bytes of a file it must not have read."""
    text = json.dumps(entry)
    secrets = [MARKER, first_bytes("/etc/passwd"), first_bytes("/proc/self/environ")]
    return entry.get("raw_excerpt") or any(s and s.decode("latin-1") in text for s in secrets)


# ---------------------------------------------------------------- confinement

@pytest.fixture
def layout(tmp_path):
    """tables/ holds the table and images/; private/ beside it holds a secret and is reachable by links."""
    private = tmp_path / "private"
    private.mkdir()
    (private / "id_rsa").write_bytes(MARKER + b" and more")
    table = tmp_path / "tables"
    (table / "images" / "sub").mkdir(parents=True)
    (table / "images" / "sub" / "ok.jpg").write_bytes(JPEG)
    os.symlink(private / "id_rsa", table / "images" / "link.jpg")
    os.symlink(private, table / "images" / "dirlink")
    os.symlink(table / "images" / "sub" / "ok.jpg", table / "images" / "inner_link.jpg")
    return tmp_path, table, private


HOSTILE = {
    "absolute_outside": lambda t, p: str(p / "id_rsa"),
    "etc_passwd": lambda t, p: "/etc/passwd",
    "proc_environ": lambda t, p: "/proc/self/environ",
    "dotdot": lambda t, p: "../private/id_rsa",
    "dotdot_inside_path": lambda t, p: "images/../../private/id_rsa",
    "file_symlink": lambda t, p: "images/link.jpg",
    "dir_symlink": lambda t, p: "images/dirlink/id_rsa",
    "other_scheme": lambda t, p: "gs://bucket/private/id_rsa",
    "file_scheme": lambda t, p: "file:///etc/passwd",
}
LEGIT = {
    "subfolder": lambda t, p: "images/sub/ok.jpg",
    "absolute_inside": lambda t, p: str(t / "images" / "sub" / "ok.jpg"),
    "symlink_inside": lambda t, p: "images/inner_link.jpg",
    "dotdot_staying_inside": lambda t, p: "images/sub/../sub/ok.jpg",
}


def write_table(fmt, table, refs):
    if fmt == "tsv":
        path = table / "pairs.tsv"
        path.write_text("image\tcaption\n" + "".join(f"{r}\tcaption {i}\n" for i, r in enumerate(refs)))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = table / "pairs.parquet"
        pq.write_table(pa.table({"image": refs, "caption": [f"caption {i}" for i in range(len(refs))]}),
                       path)
    else:
        path = table / "captions.json"
        images = [{"id": i, "file_name": r} for i, r in enumerate(refs)]
        annotations = [{"id": 100 + i, "image_id": i, "caption": f"caption {i}"} for i in range(len(refs))]
        path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return str(path)


def read_table(fmt, path, image_root=None):
    reader = read_coco if fmt == "coco" else read_pair_table
    return split(list(reader(path, os.path.basename(path), image_root)))


@pytest.mark.parametrize("fmt", ["tsv", "parquet", "coco"])
def test_references_outside_the_table_folder_are_dead_lettered_unread(layout, fmt):
    tmp, table, private = layout
    refs = [make(table, private) for make in HOSTILE.values()]
    refs += [make(table, private) for make in LEGIT.values()]
    refs.append("https://example.com/remote.jpg")
    path = write_table(fmt, table, refs)
    records, dead = read_table(fmt, path)
    by_row = {d["position"]: d for d in dead}
    for i, kind in enumerate(HOSTILE):
        entry = by_row.get(i)
        assert entry is not None, f"{kind} ({refs[i]}) was not refused"
        assert entry["reason"] == "path_outside_root", kind
        assert refs[i][:40] in entry["detail"]
        assert not leaked(entry), kind
    assert by_row[len(refs) - 1]["reason"] == "remote_image_not_fetched"
    assert len(dead) == len(HOSTILE) + 1
    assert sorted(r["position"] for r in records) == list(range(len(HOSTILE), len(HOSTILE) + len(LEGIT)))
    for r in records:
        assert r["key"] == accounting.record_key(path, r["position"])
    loaded, load_dead = load(records)
    assert load_dead == [] and [r["image_bytes"] for r in loaded] == [JPEG] * len(LEGIT)
    assert len({r["key"] for r in records}) == len(records)


def test_load_images_checks_again_before_opening(layout):
    """A file swapped for a symlink after the table was read, or a forged path, is never opened."""
    tmp, table, private = layout
    path = write_table("tsv", table, ["images/sub/ok.jpg", "images/sub/ok.jpg"])
    records, _ = read_table("tsv", path)
    (table / "images" / "sub" / "ok.jpg").unlink()
    os.symlink(private / "id_rsa", table / "images" / "sub" / "ok.jpg")
    forged = dict(records[1], image_path=["/etc/passwd", str(private / "id_rsa")])
    loaded, dead = load([records[0], forged])
    assert loaded == []
    assert [d["reason"] for d in dead] == ["path_outside_root", "path_outside_root"]
    assert not any(leaked(d) for d in dead)


def test_load_images_never_blocks_on_a_fifo(layout):
    tmp, table, _ = layout
    os.mkfifo(table / "images" / "pipe.jpg")
    records, _ = read_table("tsv", write_table("tsv", table, ["images/pipe.jpg"]))

    def hung(signum, frame):
        raise TimeoutError("LoadImages blocked on a FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        loaded, dead = load(records)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert loaded == [] and [d["reason"] for d in dead] == ["missing_image"]


def test_image_root_confines_and_resolves_relative_references(layout):
    tmp, table, private = layout
    root = tmp / "imgroot"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "a.jpg").write_bytes(JPEG + b"a")
    (root / "cats" / "b.jpg").write_bytes(JPEG + b"b")
    (table / "beside_table.jpg").write_bytes(MARKER)
    refs = ["cats/a.jpg", str(root / "cats" / "b.jpg"), "../private/id_rsa", str(private / "id_rsa"),
            str(table / "beside_table.jpg"), "beside_table.jpg"]
    path = write_table("tsv", table, refs)
    records, dead = read_table("tsv", path, image_root=str(root))
    assert sorted((d["position"], d["reason"]) for d in dead) == [
        (2, "path_outside_root"), (3, "path_outside_root"), (4, "path_outside_root")]
    loaded, load_dead = load(records, image_root=str(root))
    assert [r["image_bytes"] for r in loaded] == [JPEG + b"a", JPEG + b"b"]
    # the table's own folder is not the root any more: its file is never read
    assert [(d["position"], d["reason"]) for d in load_dead] == [(5, "missing_image")]
    assert not any(leaked(d) for d in dead + load_dead)


def test_image_root_on_a_beam_filesystem_is_normalised(layout):
    tmp, table, _ = layout
    refs = ["cats/a.jpg", "gs://bucket/images/dogs/b.jpg", "gs://bucket/images/../secrets/key",
            "../secrets/key", "gs://bucket/images-evil/x.jpg", "gs://other/images/x.jpg",
            "/etc/passwd", "GS://bucket/images/upper.jpg"]
    path = write_table("tsv", table, refs)
    records, dead = read_table("tsv", path, image_root="gs://bucket/images")
    assert {r["position"]: r["image_path"] for r in records} == {
        0: ["gs://bucket/images/cats/a.jpg"], 1: ["gs://bucket/images/dogs/b.jpg"],
        7: ["gs://bucket/images/upper.jpg"]}
    assert sorted(d["position"] for d in dead) == [2, 3, 4, 5, 6]
    assert {d["reason"] for d in dead} == {"path_outside_root"}


def test_read_images_and_load_images_carry_image_root(layout, local_runner):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    tmp, table, private = layout
    root = tmp / "imgroot"
    root.mkdir()
    (root / "a.jpg").write_bytes(JPEG)
    write_table("tsv", table, ["a.jpg", "../private/id_rsa", "images/sub/ok.jpg"])
    with TestPipeline(runner=local_runner) as p:
        read = p | image_readers.ReadImages([str(table / "*.tsv")], "pairs", image_root=str(root))
        loaded = read["records"] | beam.ParDo(LoadImages(image_root=str(root))).with_outputs(
            accounting.DEAD, accounting.COUNTS, main="records")
        assert_that(loaded.records | beam.Map(lambda r: (r["position"], r["image_bytes"])),
                    equal_to([(0, JPEG)]), label="loaded")
        dead = (read["dead"], loaded[accounting.DEAD]) | beam.Flatten()
        assert_that(dead | beam.Map(lambda d: (d["position"], d["reason"])),
                    equal_to([(1, "path_outside_root"), (2, "missing_image")]), label="dead")


def test_folder_records_carry_a_key(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "x.jpg").write_bytes(JPEG)
    path = str(tmp_path / "cats" / "x.jpg")
    (record,), _ = split(list(image_readers.read_image_file(path, "cats/x.jpg", True, 1 << 20)))
    assert record["key"] == accounting.record_key(path, 0) and record["label"] == "cats"


# ---------------------------------------------------------------- WebDataset identity

def write_tar(path, members, mode="w"):
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_webdataset_ids_are_unique_and_every_member_is_accounted_for(tmp_path):
    members = [
        ("a/b.jpg", b"img a/b"), ("a/b.txt", b"caption a/b"),
        ("a_b.jpg", b"img a_b"), ("a_b.txt", b"caption a_b"),
        ("x.jpg", b"img x lower"), ("x.JPG", b"img x upper"), ("x.txt", b"caption x"),
        ("y.jpg", b"img y first"), ("y.jpg", b"img y again"),
        ("z.png", b"img z png"), ("z.jpg", b"img z jpg"), ("z.cls", b"3"), ("z.Cls", b"4"),
        ("w.txt", b"caption without an image"),
        ("a/b.json", b'{"caption": "late member of an emitted sample"}'),
    ]
    path = write_tar(tmp_path / "shard.tar", members)
    records, dead = split(list(read_webdataset(path, "shard.tar", 1 << 20)))
    got = {r["image_bytes"]: r for r in records}
    assert set(got) == {b"img a/b", b"img a_b", b"img x lower", b"img y first", b"img z png"}
    assert got[b"img a/b"]["text"] == "caption a/b" and got[b"img x lower"]["text"] == "caption x"
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    assert got[b"img a/b"]["id"] != got[b"img a_b"]["id"]
    assert got[b"img a/b"]["id"].endswith("-a/b") and got[b"img a_b"]["id"].endswith("-a_b")
    names = [m[0] for m in members]
    for r in records:
        name = members[r["position"] - 1][0]
        assert r["key"] == accounting.record_key(path, r["position"], name)
    dups = sorted(names[d["position"] - 1] for d in dead if d["reason"] == "duplicate_member")
    assert dups == sorted(["x.JPG", "y.jpg", "z.jpg", "z.Cls", "a/b.json"])
    assert [d["reason"] for d in dead if d["reason"] != "duplicate_member"] == ["missing_image"]
    assert all(not d["raw_excerpt"] for d in dead)
    # members in records + members dead-lettered alone == every member of the tar
    in_records = {"a/b": 2, "a_b": 2, "x": 2, "y": 1, "z": 2}
    assert sum(in_records.values()) + 1 + len(dups) == len(members)


def test_webdataset_too_large_members_and_samples(tmp_path):
    members = [("s.jpg", b"i" * 100), ("s.txt", b"t" * 100), ("s.json", b"j" * 100),
               ("s.cls", b"c" * 1000),  # unused: never held, never counted against the sample
               ("big.jpg", b"b" * 5000), ("big.txt", b"a caption")]
    path = write_tar(tmp_path / "shard.tar", members)
    records, dead = split(list(read_webdataset(path, "shard.tar", 2000, max_sample_bytes=250)))
    assert [(r["image_bytes"][:1], r["text"]) for r in records] == [(b"i", "t" * 100)]
    assert [(members[d["position"] - 1][0], d["reason"]) for d in dead] == [
        ("s.json", "too_large"), ("big.jpg", "too_large"), ("big.txt", "missing_image")]


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_webdataset_reads_each_compression(tmp_path, mode):
    path = write_tar(tmp_path / "shard.tar", [("a.jpg", b"A"), ("a.txt", b"cap a"), ("b.jpg", b"B")], mode)
    records, dead = split(list(read_webdataset(path, "shard.tar", 1 << 20)))
    assert [(r["image_bytes"], r["text"]) for r in records] == [(b"A", "cap a"), (b"B", "")] and dead == []


TWO_SAMPLES = [("a.jpg", b"A" * 600), ("a.txt", b"cap"), ("b.jpg", b"B" * 600), ("b.txt", b"cap b")]
# headers at 0, 1536, 2560 and 4096; b.jpg's data at 3072; the end-of-archive blocks at 5120


@pytest.mark.parametrize("damage,reads", [
    (lambda d: d[:5120], ["cap", "cap b"]),  # no end-of-archive blocks: nothing lost
    (lambda d: d[:3072 + 300], ["cap"]),  # cut inside b.jpg's data
    (lambda d: d[:2560 + 100], ["cap"]),  # cut inside b.jpg's header
    (lambda d: d[:2560] + b"\xff" * 100 + d[2660:], ["cap"]),  # garbled header
    (lambda d: b"", []),  # empty file
], ids=["no-end-marker", "cut-data", "cut-header", "garbled-header", "empty"])
def test_webdataset_keeps_what_was_read_and_reports_the_rest(tmp_path, damage, reads):
    data = open(write_tar(tmp_path / "shard.tar", TWO_SAMPLES), "rb").read()
    assert len(data) >= 5120 + 1024 and data[5120:] == bytes(len(data) - 5120)
    (tmp_path / "cut.tar").write_bytes(damage(data))
    records, dead = split(list(read_webdataset(str(tmp_path / "cut.tar"), "cut.tar", 1 << 20)))
    assert [r["text"] for r in records] == reads
    assert [d["reason"] for d in dead] == ([] if len(reads) == 2 else ["corrupt_tar"])


def test_webdataset_is_streamed_with_bounded_memory(tmp_path):
    member, samples = 1 << 20, 48
    path = tmp_path / "zeros.tar.gz"
    with gzip.open(path, "wb", compresslevel=1) as gz:
        with tarfile.open(fileobj=gz, mode="w|") as tar:
            for i in range(samples):
                for ext, size in ((".jpg", member), (".txt", 64)):
                    info = tarfile.TarInfo(f"s{i:04d}{ext}")
                    info.size = size
                    tar.addfile(info, io.BytesIO(b"\0" * size))
    total = samples * (member + 64)
    assert os.path.getsize(path) < total // 100
    count, dead = 0, []
    tracemalloc.start()
    try:
        for kind, value in read_webdataset(str(path), "zeros.tar.gz", 4 << 20):
            if kind == "record":
                assert len(value["image_bytes"]) == member
                count += 1
            else:
                dead.append(value)
            del value
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == samples and dead == []
    # one sample at a time (a member, and its copy while it is read), not the tar
    assert peak < 4 * member < total // 8, f"peak {peak} bytes for {total} bytes of members"
