"""TFDS metadata: tfds.builder_from_directory(DIR) reads what the pipelines wrote."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from conftest import read_shards, run_text
from corpora import small_corpus
from transforms.write import tfds_meta
from transforms.write import shards as writers


def _builder(out):
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(str(out))


def _as_numpy(builder, split, **kw):
    import tensorflow_datasets as tfds

    return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False, **kw)))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds_text")
    inp = small_corpus(root, n=60)
    out = root / "out"
    stats = run_text([str(inp / "*.jsonl")], out, "--vocab_size", "400", "--num_shards", "3",
                     "--validation_fraction", "0.2")
    return stats, out


def _synthetic_images(folder, n_per_class=4):
    from PIL import Image

    for c, cls in enumerate(("cats", "dogs")):
        (folder / cls).mkdir(parents=True)
        for i in range(n_per_class):
            rng = np.random.default_rng(100 * c + i)
            small = rng.integers(0, 255, (8, 10, 3), dtype=np.uint8)
            Image.fromarray(small).resize((100, 80), Image.BICUBIC).save(
                folder / cls / f"{cls}{i}.jpg", "JPEG", quality=90)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from beam_pipelines import images

    root = tmp_path_factory.mktemp("tfds_images")
    _synthetic_images(root / "in")
    out = root / "out"
    stats = images.run(["--input", str(root / "in" / "*" / "*"), "--output_dir", str(out),
                        "--image_size", "32", "--validation_fraction", "0.4",
                        "--num_shards", "2", "--near_dup_hamming", "-1"])
    return stats, out


# ------------------------------------------------------------------ text


def test_text_metadata_files(text_run):
    _, out = text_run
    info = json.loads((out / "dataset_info.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert info["name"] == "beamtrain_text" and info["version"] == "1.0.0"
    assert info["fileFormat"] == "tfrecord"
    assert manifest["dataset_version"] in info["releaseNotes"]["1.0.0"]
    assert manifest["dataset_version"] in info["description"]
    for split in info["splits"]:
        assert split["filepathTemplate"] == "data/{SPLIT}-{SHARD_X_OF_Y}.tfrecord"
        shards = sorted((s for s in manifest["shards"] if s["split"] == split["name"]),
                        key=lambda s: s["path"])
        assert [int(n) for n in split["shardLengths"]] == [s["records"] for s in shards]
        assert int(split["numBytes"]) == sum(s["bytes"] for s in shards)
    assert {s["name"] for s in info["splits"]} == {"train", "validation"}
    assert (out / "features.json").exists()


def test_text_splits_load_with_tfds(text_run):
    import tensorflow as tf

    stats, out = text_run
    builder = _builder(out)
    assert builder.name == "beamtrain_text" and str(builder.version) == "1.0.0"
    spec = builder.as_dataset(split="train").element_spec
    assert spec["id"] == tf.TensorSpec((), tf.string)
    assert spec["input_ids"] == tf.TensorSpec((None,), tf.int64)
    for split in ("train", "validation"):
        assert builder.info.splits[split].num_examples == stats["records_out_by_split"][split]
        got = sorted((ex["id"], tuple(ex["input_ids"].tolist())) for ex in _as_numpy(builder, split))
        want = sorted((r["id"][0], tuple(r["input_ids"])) for r in read_shards(out, split))
        assert got == want and len(got) == stats["records_out_by_split"][split] > 0


def test_untokenized_text_loads_as_text(tmp_path):
    import tensorflow as tf

    inp = small_corpus(tmp_path, n=20)
    out = tmp_path / "out"
    run_text([str(inp / "*.jsonl")], out, "--steps", "clean,dedup", "--validation_fraction", "0.3")
    builder = _builder(out)
    assert builder.as_dataset(split="train").element_spec == {
        "id": tf.TensorSpec((), tf.string), "source": tf.TensorSpec((), tf.string),
        "text": tf.TensorSpec((), tf.string)}
    for split in ("train", "validation"):
        got = sorted((ex["id"], ex["text"]) for ex in _as_numpy(builder, split))
        want = sorted((r["id"][0], r["text"][0]) for r in read_shards(out, split))
        assert got == want and got


# ------------------------------------------------------------------ images


def test_image_splits_load_with_tfds(image_run):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    stats, out = image_run
    builder = _builder(out)
    assert builder.name == "beamtrain_images"
    label = builder.info.features["image"]["class"]["label"]
    assert label.names == (out / "labels.txt").read_text().split() == ["cats", "dogs"]
    spec = builder.as_dataset(split="train").element_spec["image"]
    assert spec["encoded"] == tf.TensorSpec((32, 32, 3), tf.uint8)
    assert spec["class"]["label"] == tf.TensorSpec((), tf.int64)
    assert spec["height"] == tf.TensorSpec((), tf.int64)
    total = 0
    for split in ("train", "validation"):
        assert builder.info.splits[split].num_examples == stats["records_out_by_split"].get(split, 0)
        raw = _as_numpy(builder, split, decoders={"image": {"encoded": tfds.decode.SkipDecoding()}})
        got = sorted((ex["image"]["id"], ex["image"]["encoded"], int(ex["image"]["class"]["label"]),
                      int(ex["image"]["height"]), int(ex["image"]["width"]), ex["image"]["format"])
                     for ex in raw)
        want = sorted((r["image/id"][0], r["image/encoded"][0], r["image/class/label"][0],
                       r["image/height"][0], r["image/width"][0], r["image/format"][0])
                      for r in read_shards(out, split))
        assert got == want
        total += len(got)
        # decoded: the pixels TensorFlow gets from the same bytes
        for ex, r in zip(sorted(_as_numpy(builder, split), key=lambda e: e["image"]["id"]),
                         sorted(read_shards(out, split), key=lambda r: r["image/id"][0])):
            assert ex["image"]["encoded"].shape == (32, 32, 3)
            np.testing.assert_array_equal(
                ex["image"]["encoded"], tf.io.decode_jpeg(r["image/encoded"][0], channels=3).numpy())
    assert total == stats["records_out"] == 8
    assert stats["records_out_by_split"]["train"] > 0 and stats["records_out_by_split"]["validation"] > 0


def test_caption_features():
    """Image-caption pairs: caption/text as Text, caption/input_ids as a 1-D int64 tensor."""
    import tensorflow_datasets as tfds

    keys = tfds_meta.expected_keys({"kind": "pairs", "labels_from_dirs": False,
                                    "image": {"resize": "none", "size": 64}})
    assert "image/class/label" not in keys
    features = tfds_meta.build_features(keys, (None, None, 3))
    example = writers.encode_example({
        "image/encoded": b"\xff\xd8", "image/format": b"jpeg", "image/height": [64],
        "image/width": [80], "image/id": "p1", "caption/text": "A cat.", "caption/input_ids": [5, 6, 3]})
    parsed = features.deserialize_example(example, decoders={"image": {"encoded": tfds.decode.SkipDecoding()}})
    assert parsed["caption"]["text"].numpy() == b"A cat."
    assert parsed["caption"]["input_ids"].numpy().tolist() == [5, 6, 3]
    assert parsed["image"]["width"].numpy() == 80
    assert features["image"]["encoded"].shape == (None, None, 3)


# ------------------------------------------------------------------ pieces and failures


def test_example_keys_reads_the_wire_format():
    data = writers.encode_example({"id": "x", "input_ids": [1, 300, -2], "w": [0.5], "b": [b"a", b"b"]})
    assert tfds_meta.example_keys(data) == {
        "id": ("bytes", [b"x"]), "input_ids": ("int64", [1, 300, -2]), "w": ("float", [0.5]),
        "b": ("bytes", [b"a", b"b"])}


def test_failures_raise_with_the_cause(text_run, tmp_path):
    _, good = text_run
    out = tmp_path / "out"
    shutil.copytree(good, out)
    manifest = json.loads((out / "manifest.json").read_text())
    renamed = json.loads(json.dumps(manifest))
    renamed["shards"][0]["path"] = "data/renamed.tfrecord"
    with pytest.raises(tfds_meta.TfdsMetadataError, match="filepathTemplate"):
        tfds_meta.write_tfds_metadata(str(out), renamed)
    unknown = json.loads(json.dumps(manifest))
    unknown["config"] = {"something": 1}
    with pytest.raises(tfds_meta.TfdsMetadataError, match="cannot tell the output kind"):
        tfds_meta.write_tfds_metadata(str(out), unknown)
    wrong = json.loads(json.dumps(manifest))
    wrong["config"] = dict(manifest["config"], kind="images")  # text shards, image config
    with pytest.raises(tfds_meta.TfdsMetadataError, match="outside the images contract"):
        tfds_meta.write_tfds_metadata(str(out), wrong)


def test_labels_txt_missing_is_an_error(image_run, tmp_path):
    _, good = image_run
    out = tmp_path / "out"
    shutil.copytree(good, out)
    (out / "labels.txt").unlink()
    manifest = json.loads((out / "manifest.json").read_text())
    with pytest.raises(tfds_meta.TfdsMetadataError, match="labels.txt: missing"):
        tfds_meta.write_tfds_metadata(str(out), manifest)


def test_finalize_fails_loudly_when_metadata_cannot_be_written(tmp_path, monkeypatch):
    """A TFDS failure stops the run before COMPLETED, with the cause in the error."""
    inp = small_corpus(tmp_path, n=12)
    out = tmp_path / "out"

    def broken(*_):
        raise tfds_meta.TfdsMetadataError("TFDS metadata for x: disk full")

    monkeypatch.setattr(tfds_meta, "write_tfds_metadata", broken)
    with pytest.raises(Exception, match="disk full"):
        run_text([str(inp / "*.jsonl")], out, "--steps", "clean,dedup")
    assert (out / "manifest.json").exists() and not (out / "COMPLETED").exists()


def test_empty_shards_and_empty_splits(text_run, tmp_path):
    """Empty shards read as nothing; a split without records is left out (TFDS can't read it)."""
    from beam_pipelines.verify import verify

    _, good = text_run
    out = tmp_path / "out"
    shutil.copytree(good, out)
    manifest = json.loads((out / "manifest.json").read_text())
    emptied = [s for s in manifest["shards"] if s["split"] == "validation"]
    emptied.append(next(s for s in manifest["shards"] if s["split"] == "train" and s["records"]))
    for s in emptied:
        (out / s["path"]).write_bytes(b"")
        s.update(records=0, bytes=0, sha256=hashlib.sha256(b"").hexdigest())
    (out / "manifest.json").write_text(json.dumps(manifest))
    tfds_meta.write_tfds_metadata(str(out), manifest)
    info = json.loads((out / "dataset_info.json").read_text())
    assert [s["name"] for s in info["splits"]] == ["train"]
    assert "0" in info["splits"][0]["shardLengths"]
    builder = _builder(out)
    assert list(builder.info.splits) == ["train"]
    want = sum(s["records"] for s in manifest["shards"])
    assert len(_as_numpy(builder, "train")) == want > 0
    with pytest.raises(ValueError, match="Unknown split"):
        builder.as_dataset(split="validation")
    # verify compares dataset_info.json against manifest.json the same way (it does find
    # the rest: records no longer add up to stats.json's, content_sha256 is stale)
    problems = verify(str(out))
    assert problems
    assert not any(p.startswith("dataset_info.json") for p in problems), problems
