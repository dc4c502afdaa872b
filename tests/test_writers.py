import hashlib

import pytest
import tensorflow as tf

from transforms.write import shards as writers
from transforms.write.shards import encode_example, histogram_bucket, split_of, tfrecord_frame


def test_example_encoding_parses_with_tensorflow():
    data = encode_example({"id": "doc-1", "input_ids": [0, 5, 300, 2**40, 1], "text": "héllo",
                           "scores": [0.5, 1.25], "tags": [b"a", b"bc"], "empty": []})
    ex = tf.train.Example.FromString(data)
    f = ex.features.feature
    assert f["id"].bytes_list.value == [b"doc-1"]
    assert list(f["input_ids"].int64_list.value) == [0, 5, 300, 2**40, 1]
    assert f["text"].bytes_list.value == ["héllo".encode()]
    assert list(f["scores"].float_list.value) == [0.5, 1.25]
    assert list(f["tags"].bytes_list.value) == [b"a", b"bc"]
    assert list(f["empty"].int64_list.value) == []
    # byte-for-byte what TensorFlow's own serializer gives for the same features
    ref = tf.train.Example(features=tf.train.Features(feature={
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"doc-1"])),
        "input_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[7, 8])),
    }))
    assert encode_example({"id": "doc-1", "input_ids": [7, 8]}) == ref.SerializeToString(
        deterministic=True)


def test_negative_int64_roundtrip():
    ex = tf.train.Example.FromString(encode_example({"x": [-1, -(2**63)]}))
    assert list(ex.features.feature["x"].int64_list.value) == [-1, -(2**63)]


def test_tfrecord_framing_reads_back(tmp_path):
    path = tmp_path / "x.tfrecord"
    payloads = [b"", b"a", b"hello world" * 100]
    path.write_bytes(b"".join(tfrecord_frame(p) for p in payloads))
    got = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    assert got == payloads


def test_split_is_stable_and_close_to_fraction():
    ids = [f"id{i}" for i in range(20000)]
    splits = [split_of(i, 0.1) for i in ids]
    assert splits == [split_of(i, 0.1) for i in ids]
    share = splits.count("validation") / len(ids)
    assert 0.09 < share < 0.11
    assert all(split_of(i, 0.0) == "train" for i in ids[:100])


def test_histogram_buckets_are_monotone_and_tight():
    assert [histogram_bucket(v) for v in range(16)] == list(range(16))
    for v in [16, 17, 100, 1000, 123456]:
        b = histogram_bucket(v)
        assert b <= v < b * 1.125 + 1
    bounds = [histogram_bucket(v) for v in range(1, 5000)]
    assert bounds == sorted(bounds)


def test_num_shards_for_data_size():
    cfg = writers.WriterConfig(target_shard_bytes=1000)
    assert writers.num_shards_for(10_500, 1000, cfg) == 11
    assert writers.num_shards_for(10_500, 3, cfg) == 3  # never more shards than records
    assert writers.num_shards_for(0, 0, cfg) == 1
    assert writers.num_shards_for(10_500, 1000, writers.WriterConfig(num_shards=4)) == 4
    with pytest.raises(ValueError):
        writers.WriterConfig(validation_fraction=1.5)


def test_empty_shards_complete_every_split(tmp_path):
    out = str(tmp_path)
    (tmp_path / "data").mkdir()
    written = [{"split": "train", "index": 1, "num_shards": 3, "path": "x", "records": 5,
                "bytes": 10, "sha256": "s"}]
    created = writers.write_empty_shards(out, written, ["train", "validation"])
    names = sorted(c["path"].rsplit("/", 1)[1] for c in created)
    assert names == ["train-00000-of-00003.tfrecord", "train-00002-of-00003.tfrecord",
                     "validation-00000-of-00001.tfrecord"]
    assert all(c["records"] == 0 and c["sha256"] == hashlib.sha256(b"").hexdigest() for c in created)
    assert list(tf.data.TFRecordDataset(str(tmp_path / "data" / "validation-00000-of-00001.tfrecord"))) == []


def test_packed_varints_match_the_scalar_encoding():
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=40))
    def check(values):
        expected = b"".join(writers._varint(v) for v in values)
        assert writers._packed_varints(values) == expected
        ex = tf.train.Example.FromString(encode_example({"v": values}))
        assert list(ex.features.feature["v"].int64_list.value) == values

    check()
    # token ids: small non-negative values take the compiled path (below 2**32) or the tables',
    # up to and past their ends
    check_small = given(st.lists(st.one_of(st.integers(0, 300), st.integers(2**14 - 3, 2**14 + 3),
                                           st.integers(2**17 - 3, 2**17 + 3),
                                           st.integers(-2, 2**21), st.integers(2**31 - 2, 2**31 + 2),
                                           st.integers(2**32 - 3, 2**32 + 3)), min_size=8, max_size=60))(
        settings(max_examples=300, deadline=None)(check.hypothesis.inner_test))
    check_small()
