"""The TensorFlow-free NumPy loader: its TFRecord and Example readers, sharding over processes
and workers, batches equal to tf.data's, exact resume."""

import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf

from transforms.write.shards import encode_example, tfrecord_frame
from trainer import loaders


def _data_dir(tmp_path, n_docs=300, n_files=3, manifest=True, seed=0):
    rng = random.Random(seed)
    docs = {f"doc{i:04d}": [rng.randrange(4, 500) for _ in range(rng.randint(0, 300))]
            for i in range(n_docs)}
    data = tmp_path / "data"
    data.mkdir(parents=True)
    frames = [[] for _ in range(n_files)]
    for i, (rid, ids) in enumerate(sorted(docs.items())):
        frames[i % n_files].append(tfrecord_frame(encode_example({"id": rid, "input_ids": ids})))
    shards = []
    for k, fr in enumerate(frames):
        name = f"train-{k:05d}-of-{n_files:05d}.tfrecord"
        (data / name).write_bytes(b"".join(fr))
        shards.append({"path": f"data/{name}", "split": "train", "records": len(fr)})
    if manifest:
        (tmp_path / "manifest.json").write_text(json.dumps({"shards": shards}))
    return docs


def test_records_and_examples_read_without_tensorflow_match_tensorflow(tmp_path):
    _data_dir(tmp_path)
    path = str(tmp_path / "data" / "train-00000-of-00003.tfrecord")
    ours = list(loaders.read_tfrecords(path))
    theirs = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    assert ours == theirs and len(ours) == 100
    extra = encode_example({"id": "x", "text": "héllo", "input_ids": [1, 2, 2 ** 40],
                            "language_score": [0.25, -1.5], "empty": []})
    parsed = loaders.parse_example(extra)
    ex = tf.train.Example.FromString(extra).features.feature
    assert parsed["id"] == [b"x"] and parsed["text"] == ["héllo".encode()]
    assert parsed["input_ids"] == list(ex["input_ids"].int64_list.value) == [1, 2, 2 ** 40]
    assert parsed["language_score"] == pytest.approx([0.25, -1.5])
    assert parsed["empty"] == []


def test_a_damaged_record_is_a_clear_error(tmp_path):
    _data_dir(tmp_path, n_files=1)
    path = tmp_path / "data" / "train-00000-of-00001.tfrecord"
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(bytes(data))
    with pytest.raises(loaders.CorruptRecord, match="CRC mismatch"):
        list(loaders.read_tfrecords(str(bad)))
    bad.write_bytes(bytes(path.read_bytes()[:-3]))
    with pytest.raises(loaders.CorruptRecord, match="cut short"):
        list(loaders.read_tfrecords(str(bad)))


@pytest.mark.parametrize("manifest", [True, False])
def test_processes_times_workers_see_every_record_once_per_epoch(tmp_path, manifest):
    docs = _data_dir(tmp_path, n_docs=301, manifest=manifest)
    seen = []
    for process in range(2):
        for worker in range(3):
            index, count = loaders.reader_index(process, 2, worker, 3)
            loader = loaders.LMBatches(str(tmp_path), 64, 4, index=index, count=count, seed=5)
            seen.append([rid for rid, _ in loader.records(epoch=0)])
    everything = [rid for ids in seen for rid in ids]
    assert sorted(everything) == sorted(docs)  # no overlap, no gap
    sizes = [len(s) for s in seen]
    assert max(sizes) - min(sizes) <= 1
    # a new epoch reshuffles, the same epoch repeats
    loader = loaders.LMBatches(str(tmp_path), 64, 4, index=0, count=6, seed=5)
    assert [r for r, _ in loader.records(0)] == seen[0]
    assert [r for r, _ in loader.records(1)] != seen[0]


def test_packed_batches_equal_tf_data_for_the_same_records(tmp_path):
    from trainer import input_pipeline as ip

    _data_dir(tmp_path, n_docs=400, n_files=1)
    files = ip.shard_files(str(tmp_path), "train")
    cfg = ip.InputConfig(seq_len=64, batch_size=8, mode="pack", deterministic=True)
    want = [tuple(np.asarray(x) for x in (f["tokens"], f["segment_ids"], f["positions"], t, w))
            for f, t, w in ip.make_dataset(files, cfg, training=False)]
    loader = loaders.LMBatches(str(tmp_path), 64, 8, mode="pack", shuffle_buffer=0)
    got = [(f["tokens"], f["segment_ids"], f["positions"], t, w) for f, t, w in loader]
    assert len(got) == len(want) > 10
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_array_equal(a, b)


def test_bucketed_batches_are_padded_per_batch_and_keep_every_token(tmp_path):
    docs = _data_dir(tmp_path, n_docs=200, n_files=2)
    loader = loaders.LMBatches(str(tmp_path), 64, 8, mode="bucket", bucket_window=4,
                               with_ids=True, shuffle_buffer=50)
    tokens = 0
    for features, targets, weights in loader:
        x = features["tokens"]
        lengths = (features["segment_ids"] > 0).sum(1) + 1
        assert x.shape[1] + 1 == lengths.max()  # padded to the batch's own longest piece
        tokens += int(weights.sum()) + len(x)
    # every token of every piece of 2+ tokens is an input or the last target
    want = sum(len(ids[i:i + 65]) for ids in docs.values() for i in range(0, len(ids), 65)
               if len(ids[i:i + 65]) >= 2)
    assert tokens <= want and tokens > 0.9 * want  # only the window's short tail is dropped


def test_exact_resume_from_a_state_dict(tmp_path):
    _data_dir(tmp_path, n_docs=300, n_files=3)
    make = lambda: loaders.LMBatches(str(tmp_path), 32, 4, mode="pack", seed=3,  # noqa: E731
                                     shuffle_buffer=64, repeat=True)
    whole, it = [], iter(make())
    for _ in range(60):
        whole.append(next(it)[0]["tokens"])
    first = make()
    it = iter(first)
    for _ in range(23):
        next(it)
    state = first.state_dict()
    second = make()
    second.load_state_dict(state)
    it2 = iter(second)
    rest = [next(it2)[0]["tokens"] for _ in range(37)]
    for a, b in zip(rest, whole[23:]):
        np.testing.assert_array_equal(a, b)
