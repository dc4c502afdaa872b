"""--output_format parquet|jsonl|webdataset: the same records as the TFRecord shards, in the same
order and files, loadable by Hugging Face datasets and the webdataset library (offline), and
covered by the manifest, verify and the accounting identity."""

import base64
import io
import json
import os
import tarfile

import pytest

from corpora import small_corpus

from beam_pipelines import verify
from transforms.write import formats
from transforms.write.tfds_meta import example_keys
from trainer.loaders import read_tfrecords

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample")
TEXT_ARGS = ["--steps", "clean,lang,filter,dedup,tokenize", "--vocab_size", "300",
             "--num_shards", "3", "--validation_fraction", "0.2"]


@pytest.fixture(autouse=True)
def offline_hf(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


def accounted(stats, out):
    """The identity holds and the manifest's shards hold records_out (any format)."""
    lost = sum(sum(stats[k].values()) for k in ("filtered", "duplicates", "dead_letter"))
    assert stats["records_in"] == stats["records_out"] + lost
    assert stats["accounting"]["holds"] is True
    assert sum(s["records"] for s in manifest(out)["shards"]) == stats["records_out"]


def run_text(inp, out, *extra):
    from beam_pipelines import text

    return text.run(["--input", str(inp / "*.jsonl"), "--output_dir", str(out)] + TEXT_ARGS
                    + list(extra))


@pytest.fixture(scope="module")
def text_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    inp = small_corpus(root, n=60)
    runs = {}
    for fmt in ("tfrecord",) + formats.FORMATS[1:]:
        out = root / fmt
        runs[fmt] = (run_text(inp, out, "--output_format", fmt), out)
    return runs


def tfrecord_rows(out, columns):
    """{shard name without extension: [rows]} of a TFRecord output, as formats.example_row."""
    rows = {}
    for name in sorted(os.listdir(out / "data")):
        stem = name.rsplit(".", 1)[0]
        rows[stem] = [formats.example_row(r, columns)
                      for r in read_tfrecords(str(out / "data" / name))]
    return rows


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


def columns_of(out):
    return formats.columns_for(manifest(out)["config"])


def jsonl_rows(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    for row in rows:
        for media in ("image", "audio"):
            if row.get(media):
                row[media]["bytes"] = base64.b64decode(row[media]["bytes"])
    return rows


def tar_samples(path):
    """[(key, {ext: bytes})] of a WebDataset tar, in order."""
    samples = []
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            key, _, ext = m.name.partition(".")
            if not samples or samples[-1][0] != key:
                samples.append((key, {}))
            samples[-1][1][ext] = tar.extractfile(m).read()
    return samples


def test_every_format_writes_the_tfrecord_records_in_the_same_files_and_order(text_runs):
    stats0, out0 = text_runs["tfrecord"]
    columns = columns_of(out0)
    assert columns == ["id", "source", "url", "license", "language", "language_score", "input_ids"]
    expected = tfrecord_rows(out0, columns)
    assert sum(len(v) for v in expected.values()) == stats0["records_out"] > 20
    for fmt, ext in (("parquet", "parquet"), ("jsonl", "jsonl"), ("webdataset", "tar")):
        stats, out = text_runs[fmt]
        accounted(stats, out)
        assert {k: stats[k] for k in ("records_in", "records_out", "filtered", "duplicates")} == \
            {k: stats0[k] for k in ("records_in", "records_out", "filtered", "duplicates")}
        names = sorted(os.listdir(out / "data"))
        assert names == [f"{stem}.{ext}" for stem in expected], fmt
        assert not (out / "dataset_info.json").exists()  # TFDS metadata is TFRecord's
        for stem, rows in expected.items():
            path = out / "data" / f"{stem}.{ext}"
            if fmt == "parquet":
                import pyarrow.parquet as pq

                got = pq.read_table(path).to_pylist()
            elif fmt == "jsonl":
                got = jsonl_rows(path)
            else:
                got = []
                for _, members in tar_samples(path):
                    meta = json.loads(members["json"])
                    got.append({c: meta.get(c) for c in columns})
            for row in got:  # float32 from Parquet, shortest decimal from JSON
                if row["language_score"] is not None:
                    row["language_score"] = pytest.approx(row["language_score"], abs=1e-6)
            assert got == rows, (fmt, stem)


def test_verify_passes_and_the_manifest_lists_each_format_file(text_runs):
    for fmt in formats.FORMATS:
        stats, out = text_runs[fmt]
        assert verify.verify(str(out)) == [], fmt
        m = manifest(out)
        assert m["config"]["writer"]["output_format"] == fmt
        listed = sorted(s["path"] for s in m["shards"])
        assert listed == sorted(f"data/{n}" for n in os.listdir(out / "data"))
        assert set(listed) <= set(m["files"])
        assert sum(s["records"] for s in m["shards"]) == stats["records_out"]


def test_every_shard_set_is_complete_and_empty_shards_are_valid_files(tmp_path):
    import pyarrow.parquet as pq

    inp = small_corpus(tmp_path, n=6)
    for fmt in ("parquet", "webdataset", "jsonl"):
        out = tmp_path / fmt
        run_text(inp, out, "--output_format", fmt, "--num_shards", "8")
        assert verify.verify(str(out)) == []
        m = manifest(out)
        empty = [s for s in m["shards"] if s["records"] == 0]
        assert sum(s["split"] == "train" for s in m["shards"]) == 8 and empty
        for s in empty:
            path = out / s["path"]
            if fmt == "parquet":
                assert pq.read_table(path).num_rows == 0
                assert pq.read_schema(path).names == columns_of(out)
            elif fmt == "webdataset":
                with tarfile.open(path) as tar:
                    assert tar.getmembers() == []
            else:
                assert path.read_bytes() == b""


def test_the_same_input_gives_the_same_bytes_in_every_format(text_runs, tmp_path):
    from beam_pipelines import text

    for fmt in ("webdataset", "parquet", "jsonl"):
        first = manifest(text_runs[fmt][1])
        text.run(["--input", first["config"]["inputs"][0], "--output_dir", str(tmp_path / fmt),
                  "--output_format", fmt] + TEXT_ARGS)
        second = manifest(tmp_path / fmt)
        assert [(s["path"], s["sha256"]) for s in first["shards"]] == \
            [(s["path"], s["sha256"]) for s in second["shards"]], fmt


def test_hugging_face_datasets_loads_the_parquet_and_jsonl_shards(text_runs):
    import datasets

    _, out0 = text_runs["tfrecord"]
    expected = tfrecord_rows(out0, columns_of(out0))
    want = {split: [r["input_ids"] for stem, rows in expected.items() if stem.startswith(split)
                    for r in rows] for split in ("train", "validation")}
    assert want["train"] and want["validation"]
    for fmt, builder in (("parquet", "parquet"), ("jsonl", "json")):
        _, out = text_runs[fmt]
        files = {split: sorted(str(p) for p in (out / "data").glob(f"{split}-*"))
                 for split in want}
        ds = datasets.load_dataset(builder, data_files=files, cache_dir=str(out.parent / "hf"))
        for split in want:
            assert ds[split]["input_ids"] == want[split], (fmt, split)
        streamed = datasets.load_dataset(builder, data_files=files, split="train", streaming=True)
        assert [r["input_ids"] for r in streamed] == want["train"]
    # the folder itself: datasets finds the splits from the shard names
    ds = datasets.load_dataset(str(text_runs["parquet"][1]), cache_dir=str(out0.parent / "hf2"))
    assert sorted(ds) == ["train", "validation"]
    assert ds["train"].features["input_ids"].feature.dtype == "int32"


def test_verify_catches_a_tampered_moved_or_extra_file(text_runs, tmp_path):
    import shutil

    for fmt in ("parquet", "jsonl", "webdataset"):
        out = tmp_path / fmt
        shutil.copytree(text_runs[fmt][1], out)
        m = manifest(out)
        shard = next(s for s in m["shards"] if s["records"] > 1 and s["split"] == "train")
        path = out / shard["path"]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        problems = verify.verify(str(out))
        assert any(shard["path"] in p and "sha256 mismatch" in p for p in problems), (fmt, problems)
        (out / "data" / "notes.txt").write_text("x")
        assert any("notes.txt: extra file" in p for p in verify.verify(str(out)))

    # a record moved to the wrong shard (its id hashes elsewhere), digests made to match
    out = tmp_path / "moved"
    shutil.copytree(text_runs["jsonl"][1], out)
    m = manifest(out)
    train = [s for s in m["shards"] if s["split"] == "train" and s["records"]]
    a, b = out / train[0]["path"], out / train[1]["path"]
    lines_a, lines_b = a.read_bytes().splitlines(True), b.read_bytes().splitlines(True)
    a.write_bytes(b"".join(lines_a + lines_b[:1]))
    problems = verify.verify(str(out))
    assert any(train[0]["path"] in p and "do not hash to this shard" in p for p in problems)
    assert any("record count mismatch" in p for p in problems)

    # a tar sample without its json (no id)
    out = tmp_path / "noid"
    shutil.copytree(text_runs["webdataset"][1], out)
    shard = next(s for s in manifest(out)["shards"] if s["records"])
    path = out / shard["path"]
    buf = io.BytesIO()
    with tarfile.open(path) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        info = tarfile.TarInfo("99999_00000000.txt")
        info.size = 2
        dst.addfile(info, io.BytesIO(b"hi"))
        for mem in src.getmembers():
            dst.addfile(mem, src.extractfile(mem))
    path.write_bytes(buf.getvalue())
    problems = verify.verify(str(out))
    assert any("no .json with a string id" in p for p in problems), problems


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory):
    from beam_pipelines import images, multimodal

    root = tmp_path_factory.mktemp("image_formats")
    runs = {}
    for fmt in ("tfrecord", "parquet", "webdataset"):
        runs["images", fmt] = images.run([
            "--input", os.path.join(SAMPLE, "images", "train", "*", "*"),
            "--output_dir", str(root / f"images_{fmt}"), "--image_size", "32",
            "--max_dead_letter_fraction", "0.3", "--output_format", fmt]), root / f"images_{fmt}"
    mm = os.path.join(SAMPLE, "multimodal")
    runs["pairs", "webdataset"] = multimodal.run([
        "--input", os.path.join(mm, "coco", "captions.json"),
        "--input", os.path.join(mm, "laion", "pairs.tsv"),
        "--output_dir", str(root / "pairs_wds"), "--image_size", "32",
        "--caption_vocab_size", "300", "--max_dead_letter_fraction", "0.5",
        "--output_format", "webdataset"]), root / "pairs_wds"
    return runs


def test_images_load_as_pil_images_from_parquet_and_webdataset(image_runs):
    import datasets
    import webdataset as wds
    from PIL import Image

    stats0, out0 = image_runs["images", "tfrecord"]
    expected = tfrecord_rows(out0, columns_of(out0))
    assert columns_of(out0) == ["id", "image", "height", "width", "label"]
    train = [r for stem, rows in expected.items() if stem.startswith("train") for r in rows]
    assert len(train) > 10

    stats, out = image_runs["images", "parquet"]
    accounted(stats, out)
    assert verify.verify(str(out)) == []
    ds = datasets.load_dataset("parquet", data_files=sorted(
        str(p) for p in (out / "data").glob("train-*.parquet")), split="train",
        cache_dir=str(out / ".." / "hf_images"))
    assert isinstance(ds.features["image"], datasets.Image)
    first = ds[0]
    assert isinstance(first["image"], Image.Image)
    assert first["image"].size == (first["width"], first["height"]) == (32, 32)
    assert ds["id"] == [r["id"] for r in train] and ds["label"] == [r["label"] for r in train]

    stats, out = image_runs["images", "webdataset"]
    assert verify.verify(str(out)) == []
    urls = sorted(str(p) for p in (out / "data").glob("train-*.tar"))
    got = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pil"))
    assert [s["json"]["id"] for s in got] == [r["id"] for r in train]
    assert all(isinstance(s["jpg"], Image.Image) and s["jpg"].size == (32, 32) for s in got)
    assert [int(s["cls"]) for s in got] == [r["label"] for r in train]
    assert {s["__key__"] for s in got} == {k for u in urls for k, _ in tar_samples(u)}


def test_pairs_webdataset_has_caption_text_and_image_per_sample(image_runs):
    import webdataset as wds

    stats, out = image_runs["pairs", "webdataset"]
    accounted(stats, out)
    assert verify.verify(str(out)) == []
    assert stats["records_out"] > 5
    urls = sorted(str(p) for p in (out / "data").glob("*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert len(samples) == stats["records_out"]
    for s in samples:
        assert s["jpg"][:3] == b"\xff\xd8\xff"
        caption = s["txt"].decode("utf-8")
        meta = json.loads(s["json"])
        assert caption.strip() and meta["caption_input_ids"] and "caption" not in meta
        assert set(meta) == {"id", "height", "width", "caption_input_ids"}


def test_audio_clips_go_to_webdataset_and_parquet_with_transcripts(tmp_path):
    pytest.importorskip("av")
    import datasets
    import pyarrow.parquet as pq
    import webdataset as wds
    from beam_pipelines import audio

    inputs = ["--input", os.path.join(SAMPLE, "audio", "librispeech", "*", "*", "*.trans.txt")]
    outs = {}
    for fmt in ("webdataset", "parquet"):
        outs[fmt] = tmp_path / fmt
        stats = audio.run(inputs + ["--output_dir", str(outs[fmt]), "--output_format", fmt,
                                    "--max_dead_letter_fraction", "0.5"])
        accounted(stats, outs[fmt])
        assert verify.verify(str(outs[fmt])) == []
    samples = list(wds.WebDataset(sorted(str(p) for p in (outs["webdataset"] / "data").glob(
        "*.tar")), shardshuffle=False, empty_check=False))
    assert samples and all(s["flac"][:4] == b"fLaC" for s in samples)
    assert all(s["txt"].decode().strip() for s in samples)
    assert all(json.loads(s["json"])["sample_rate"] == 16000 for s in samples)

    files = sorted(str(p) for p in (outs["parquet"] / "data").glob("*.parquet"))
    schema = pq.read_schema(files[0])
    assert json.loads(schema.metadata[b"huggingface"])["info"]["features"] == {
        "audio": {"_type": "Audio"}}
    ds = datasets.load_dataset("parquet", data_files=files, split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["audio"], datasets.Audio)
    raw = ds.cast_column("audio", datasets.Audio(decode=False))
    assert sorted(r["audio"]["bytes"][:4] for r in raw) == [b"fLaC"] * len(samples)
    assert sorted(raw["transcript"]) == sorted(s["txt"].decode() for s in samples)


def test_a_bad_output_format_is_a_one_line_error(tmp_path, capsys):
    from beam_pipelines import text

    inp = small_corpus(tmp_path, n=8)
    with pytest.raises(SystemExit) as e:
        text.run(["--input", str(inp / "*.jsonl"), "--output_dir", str(tmp_path / "o"),
                  "--output_format", "csv"])
    assert e.value.code == 2
    assert "output_format" in capsys.readouterr().err


def test_example_row_refuses_a_key_outside_the_schema():
    from transforms.write.shards import encode_example

    example = encode_example({"id": "a", "source": "s", "text": "t", "surprise": "x"})
    with pytest.raises(ValueError, match="surprise"):
        formats.example_row(example, ["id", "source", "text"])
    assert example_keys(encode_example({"input_ids": list(range(0, 70000, 7))}))[
        "input_ids"][1] == list(range(0, 70000, 7))


def test_the_tfrecord_readers_say_which_format_they_found(text_runs):
    from trainer import input_pipeline, loaders

    _, out = text_runs["parquet"]
    with pytest.raises(FileNotFoundError, match="parquet shards, not TFRecord"):
        input_pipeline.shard_files(str(out), "train")
    with pytest.raises(FileNotFoundError, match="parquet shards"):
        loaders.shard_files(str(out), "train")


def test_parquet_row_groups_close_at_their_byte_budget(tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    from transforms.write.shards import encode_example

    monkeypatch.setattr(formats, "ROW_GROUP_BYTES", 2000)
    columns = ["id", "source", "text"]
    examples = [encode_example({"id": f"r{i:03d}", "source": "s", "text": "word " * (20 + i)})
                for i in range(60)]
    path = tmp_path / "x.parquet"
    with open(path, "wb") as f:
        shard = formats.open_shard("parquet", f, columns)
        for e in examples:
            shard.add(e)
        shard.close()
    pf = pq.ParquetFile(path)
    assert pf.num_row_groups > 5
    assert pf.read().to_pylist() == [formats.example_row(e, columns) for e in examples]
    assert shard.size == path.stat().st_size
    import hashlib
    assert shard.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # each group holds about the budget: none is more than one record over it
    sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    assert sum(sizes) == 60 and max(sizes) < 20


def test_media_names_stay_distinct_and_verify_reads_a_line_at_a_time(tmp_path, monkeypatch):
    from transforms.write.shards import encode_example

    columns = ["id", "image", "height", "width"]
    names = {formats.example_row(encode_example({
        "image/id": rid, "image/encoded": b"\xff\xd8", "image/format": b"jpeg",
        "image/height": [1], "image/width": [1]}), columns)["image"]["path"]
        for rid in ("a/b", "a_b", "../a b", "x" * 300, "x" * 299 + "y", "plain-id")}
    assert len(names) == 6 and "plain-id.jpg" in names
    assert all("/" not in n and not n.startswith(".") and len(n) < 110 for n in names)
    # a JSON Lines shard without newlines is a problem once past the cap, not a read of it all
    monkeypatch.setattr(formats, "MAX_RECORD_BYTES", 1 << 20)
    data = io.BytesIO(b"x" * (3 << 20))
    with pytest.raises(ValueError, match="longer than"):
        list(formats.read_shard_ids("jsonl", data.read))
    assert data.tell() <= (2 << 20) + (1 << 20)
