"""The tf.data input pipeline, the model's attention masking, and the trainer end to end."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import kill_after_checkpoint
from transforms.write.shards import encode_example, tfrecord_frame
from trainer import input_pipeline as ip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_shards(out_dir, docs, n_files, split="train"):
    """docs: {id: [token ids]} -> n_files TFRecord shards in the output contract's layout."""
    data = os.path.join(str(out_dir), "data")
    os.makedirs(data, exist_ok=True)
    files = [[] for _ in range(n_files)]
    for i, (rid, ids) in enumerate(sorted(docs.items())):
        files[i % n_files].append(tfrecord_frame(encode_example({"id": rid, "input_ids": ids})))
    for k, frames in enumerate(files):
        with open(os.path.join(data, f"{split}-{k:05d}-of-{n_files:05d}.tfrecord"), "wb") as f:
            f.write(b"".join(frames))
    return ip.shard_files(str(out_dir), split)


def random_docs(n, lo=2, hi=300, seed=0, vocab=500):
    rng = random.Random(seed)
    return {f"doc{i:04d}": [rng.randrange(4, vocab) for _ in range(rng.randint(lo, hi))] for i in range(n)}


def _ids_of(ds):
    seen = []
    for features, _, weights in ds:
        for rid, w in zip(features["id"].numpy(), weights.numpy()):
            seen.append(rid.decode())
    return seen


@pytest.mark.parametrize("n_files", [4, 1])  # more files than pipelines, and fewer
@pytest.mark.parametrize("mode", ["bucket", "tf_bucket", "pad"])
def test_each_pipeline_reads_distinct_records_none_skipped(tmp_path, n_files, mode):
    docs = random_docs(200, hi=100)
    files = write_shards(tmp_path, docs, n_files)
    cfg = ip.InputConfig(seq_len=128, batch_size=8, mode=mode, with_ids=True)
    per_pipeline = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid,
                                         num_replicas_in_sync=2)
        per_pipeline.append(_ids_of(ip.make_dataset(files, cfg, ctx, training=False)))
    a, b = per_pipeline
    assert len(a) == len(set(a)) and len(b) == len(set(b))  # no record twice
    assert not set(a) & set(b)  # distinct per replica
    assert set(a) | set(b) == set(docs)  # none skipped
    assert abs(len(a) - len(b)) <= 60  # both do real work


def test_packing_pipelines_cover_every_token_once(tmp_path):
    docs = random_docs(150, hi=90, seed=3)
    files = write_shards(tmp_path, docs, 3)
    cfg = ip.InputConfig(seq_len=64, batch_size=4, mode="pack")
    total = 0
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid)
        for features, targets, weights in ip.make_dataset(files, cfg, ctx, training=False):
            total += int(tf.reduce_sum(tf.cast(features["segment_ids"] > 0, tf.int32)))
    # every token is an input once, except each row's last token, which is only a target
    all_tokens = sum(len(v) for v in docs.values())
    assert all_tokens - total == pytest.approx(total / 64, abs=all_tokens * 0.02 + 5)


def test_pieces_keep_every_token():
    ids = tf.ragged.constant([[1, 2, 3, 4, 5, 6, 7], [8], [9, 10, 11]])
    pieces, rids = ip._cut_pieces(ids, tf.constant([b"a", b"b", b"c"]), 3)
    assert pieces.to_list() == [[1, 2, 3], [4, 5, 6], [7], [8], [9, 10, 11]]
    assert rids.numpy().tolist() == [b"a", b"a", b"a", b"b", b"c"]


def test_bucketing_batches_only_similar_lengths(tmp_path):
    docs = random_docs(2000, lo=2, hi=400, seed=1)
    files = write_shards(tmp_path, docs, 2)
    from collections import Counter

    from transforms.write.shards import histogram_bucket

    hist = Counter(histogram_bucket(len(v)) for v in docs.values())  # as stats.json has it
    stats = {"histograms": {"tokens_per_doc": {"bucket_lower_bounds": sorted(hist),
                                               "counts": [hist[b] for b in sorted(hist)]}}}
    efficiency, median_spread = {}, {}
    for mode in ("pad", "bucket", "tf_bucket"):
        cfg = ip.InputConfig(seq_len=512, batch_size=16, mode=mode, bucket_window=16)
        ds = ip.make_dataset(files, cfg, training=True, stats=stats).take(60)
        real = padded = 0
        spreads = []
        for features, _, weights in ds:
            lengths = tf.reduce_sum(tf.cast(features["segment_ids"] > 0, tf.int32), axis=1).numpy() + 1
            spreads.append(lengths.max() / lengths.min())
            real += float(tf.reduce_sum(weights))
            padded += int(tf.size(weights))
            if mode == "tf_bucket":
                bounds = [0] + ip.bucket_boundaries(stats, 512) + [10**9]
                bucket = np.searchsorted(bounds, lengths, side="right")
                assert len(set(bucket.tolist())) == 1, lengths  # one bucket per batch
        efficiency[mode] = real / padded
        median_spread[mode] = np.median(spreads)
    # longest / shortest sequence of a batch: close to 1 when bucketed, large when not
    assert median_spread["bucket"] < 1.3 and median_spread["tf_bucket"] < 1.3
    assert median_spread["pad"] > 5
    assert efficiency["bucket"] > 0.9 and efficiency["tf_bucket"] > 0.9
    assert efficiency["pad"] < 0.75  # the baseline really is worse on this data


def test_bucket_boundaries_follow_the_histogram():
    geometric = ip.bucket_boundaries(None, 512)
    assert geometric[-1] == 513 and all(b / a <= 1.15 for a, b in zip(geometric, geometric[1:]) if a > 20)
    # all documents about 100 tokens long: empty buckets are merged away
    stats = {"histograms": {"tokens_per_doc": {"bucket_lower_bounds": [96, 104], "counts": [500, 500]}}}
    fitted = ip.bucket_boundaries(stats, 512)
    assert len(fitted) < len(geometric) and fitted[-1] == 513
    assert any(96 <= b <= 120 for b in fitted)


def test_packed_rows_have_segments_positions_and_boundary_weights():
    pieces = tf.ragged.constant([[5, 6, 7], [8, 9], [10, 11, 12, 13]], dtype=tf.int32)
    tokens, segments, positions = ip._pack(pieces, 6)
    assert tokens.numpy().tolist() == [[5, 6, 7, 8, 9, 10], [11, 12, 13, 0, 0, 0]]
    assert segments.numpy().tolist() == [[1, 1, 1, 2, 2, 3], [1, 1, 1, 0, 0, 0]]
    assert positions.numpy().tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 0, 0, 0]]
    features, targets, weights = ip._lm_example(tokens, segments, positions)
    # no target across a segment boundary (7 -> 8, 9 -> 10) nor into padding
    assert weights.numpy().tolist() == [[1, 1, 0, 1, 0], [1, 1, 0, 0, 0]]
    assert targets.numpy().tolist()[0] == [6, 7, 8, 9, 10]


def test_attention_never_crosses_packed_segments():
    import keras

    from trainer.model import ModelConfig, SegmentCausalMask, build_model

    mask = SegmentCausalMask()(tf.constant([[1, 1, 2, 2, 0]])).numpy()[0]
    assert mask.tolist() == [
        [True, False, False, False, False],
        [True, True, False, False, False],
        [False, False, True, False, False],
        [False, False, True, True, False],
        [False, False, False, False, True]]

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(vocab_size=50, seq_len=16, layers=2, width=32, heads=4))
    segments = tf.constant([[1, 1, 1, 2, 2, 2, 2, 0]])
    positions = tf.constant([[0, 1, 2, 0, 1, 2, 3, 0]])
    base = tf.constant([[5, 6, 7, 8, 9, 10, 11, 0]])
    changed_first = tf.constant([[40, 41, 42, 8, 9, 10, 11, 0]])
    changed_second = tf.constant([[5, 6, 7, 30, 31, 32, 33, 0]])
    run = lambda t: model({"tokens": t, "segment_ids": segments, "positions": positions}).numpy()
    out, out_first, out_second = run(base), run(changed_first), run(changed_second)
    np.testing.assert_allclose(out[0, 3:7], out_first[0, 3:7], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[0, :3], out_second[0, :3], rtol=1e-5, atol=1e-5)
    assert not np.allclose(out[0, :3], out_first[0, :3])  # the mask does not hide everything


# ---------------------------------------------------------------- trainer, in a subprocess
# (--cpu_replicas configures TensorFlow's devices, which must happen before TF starts)


@pytest.fixture(scope="module")
def lm_data(tmp_path_factory):
    from beam_pipelines import demo
    from conftest import run_text

    out = tmp_path_factory.mktemp("lm") / "data"
    run_text(demo.sample_inputs(), out, "--vocab_size", "1000")
    return out


def _command(data_dir, model_dir, *extra):
    return [sys.executable, "-m", "trainer.train", "--data_dir", str(data_dir), "--model_dir",
            str(model_dir), "--batch_size", "16", "--seq_len", "64", "--layers", "2", "--width", "64",
            "--heads", "2", "--cpu_replicas", "2", "--checkpoint_every", "10", "--verbose", "2",
            "--learning_rate", "3e-3", *map(str, extra)]


def _train(data_dir, model_dir, *extra):
    return subprocess.run(_command(data_dir, model_dir, *extra), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)




@pytest.mark.slow
def test_two_cpu_replicas_train_and_loss_goes_down(lm_data, tmp_path):
    proc = _train(lm_data, tmp_path / "m", "--steps", "40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["steps"] == 40 and metrics["replicas"] == 2
    assert metrics["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    losses = metrics["interval_losses"]
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.5, losses
    assert metrics["validation_perplexity"] and metrics["validation_perplexity"] < np.exp(losses[0])
    assert metrics["tokens_per_s"] > 0
    assert (tmp_path / "m" / "model.keras").exists()
    assert os.listdir(tmp_path / "m" / "logs" / "train")  # TensorBoard events


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint(lm_data, tmp_path):
    model_dir = tmp_path / "m"
    step = kill_after_checkpoint(_command(lm_data, model_dir, "--steps", "30"), model_dir, 10)
    assert step in (10, 20) and not (model_dir / "metrics.json").exists()
    proc = _train(lm_data, model_dir, "--steps", "30")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming from step {step}" in proc.stdout
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["steps"] == 30
    # only the remaining intervals ran
    assert len(metrics["interval_losses"]) == (30 - step) // 10, metrics["interval_losses"]
    # a finished run started again trains no further
    proc = _train(lm_data, model_dir, "--steps", "30")
    assert proc.returncode == 0 and json.loads((model_dir / "metrics.json").read_text())["steps"] == 30


@pytest.mark.slow
def test_untokenized_data_is_a_clear_error(tmp_path):
    write_shards(tmp_path / "d", random_docs(10), 1)
    proc = _train(tmp_path / "d", tmp_path / "m", "--steps", "2", "--force")  # synthetic shards
    assert proc.returncode != 0 and "needs tokenized shards" in proc.stderr
