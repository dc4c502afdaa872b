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

    # the old mask layer, kept so older saved models load
    mask = SegmentCausalMask()(tf.constant([[1, 1, 2, 2, 0]])).numpy()[0]
    assert mask.tolist() == [
        [True, False, False, False, False],
        [True, True, False, False, False],
        [False, False, True, False, False],
        [False, False, True, True, False],
        [False, False, False, False, True]]

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(vocab_size=50, seq_len=16, layers=2, width=32, heads=4,
                                    packed=True))
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
    # a later token of the same segment does see the earlier ones
    assert not np.allclose(out[0, 6], run(tf.constant([[5, 6, 7, 8, 49, 10, 11, 0]]))[0, 6])


def _reference_attention(x, segments, layer, packed):
    """Attention written out in NumPy with an explicit [T, T] mask per row."""
    w_qkv, b_qkv = (v.numpy() for v in layer.qkv.weights)
    w_out, b_out = (v.numpy() for v in layer.out.weights)
    qkv = np.einsum("btd,dce->btce", x, w_qkv) + b_qkv
    B, T, _ = x.shape
    n, h = layer.heads, layer.head_dim
    q, k, v = (qkv[:, :, i].reshape(B, T, n, h) for i in range(3))
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(h)
    allowed = np.tril(np.ones((T, T), bool))[None]
    if packed:
        allowed = allowed & (segments[:, :, None] == segments[:, None, :])
    logits = np.where(allowed[:, None], logits, -1e30)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("btnh,nhd->btd", np.einsum("bnts,bsnh->btnh", p, v), w_out) + b_out


@pytest.mark.parametrize("packed", [False, True])
def test_fused_attention_equals_explicitly_masked_attention(packed):
    import keras

    from trainer.model import CausalSelfAttention

    keras.utils.set_random_seed(1)
    layer = CausalSelfAttention(heads=4, head_dim=8, packed=packed)
    x = np.random.default_rng(0).normal(size=(3, 10, 32)).astype("float32")
    segments = np.array([[1] * 4 + [2] * 6, [1] * 7 + [0] * 3, [1, 2, 2, 3, 3, 3, 4, 4, 0, 0]],
                        dtype="int32")
    got = layer(x, segments).numpy()
    want = _reference_attention(x, segments, layer, packed)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    if not packed:  # one document per row: real tokens never see the padding after them
        row = 1
        x2 = x.copy()
        x2[row, 7:] += 5.0
        np.testing.assert_allclose(layer(x2, segments).numpy()[row, :7], got[row, :7],
                                   rtol=1e-5, atol=1e-5)


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


def _batch_log(prefix, replicas=2):
    """{pipeline: {batch index: ids}} from a run's --batch_log files (a torn last line,
    from a killed run, is skipped)."""
    out = {}
    for k in range(replicas):
        out[k] = {}
        with open(f"{prefix}.{k}") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                out[k][row["batch"]] = row["ids"]
    return out


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint_on_the_same_batches(lm_data, tmp_path):
    steps = 30
    whole = _train(lm_data, tmp_path / "whole", "--steps", steps, "--batch_log", tmp_path / "whole.log")
    assert whole.returncode == 0, whole.stderr[-3000:]

    model_dir = tmp_path / "m"
    step = kill_after_checkpoint(_command(lm_data, model_dir, "--steps", steps, "--batch_log",
                                          tmp_path / "killed.log"), model_dir, 10)
    assert step in (10, 20) and not (model_dir / "metrics.json").exists()
    proc = _train(lm_data, model_dir, "--steps", steps, "--batch_log", tmp_path / "resumed.log")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming from step {step}" in proc.stdout
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["steps"] == steps and metrics["exact_resume"]
    # only the remaining intervals ran
    assert len(metrics["interval_losses"]) == (steps - step) // 10, metrics["interval_losses"]

    # Exact resume: the killed run's first `step` batches, then the resumed run's,
    # are the batches an uninterrupted run trained on: same records, same order.
    want, killed, resumed = (_batch_log(tmp_path / f"{n}.log") for n in ("whole", "killed", "resumed"))
    for k in (0, 1):
        assert min(resumed[k]) == step  # the resumed stream starts where training stopped
        got = [killed[k][i] for i in range(step)] + [resumed[k][i] for i in range(step, steps)]
        assert got == [want[k][i] for i in range(steps)], f"replica {k}"
        assert killed[k][0] != killed[k][1]  # the log really holds batches

    # a finished run started again trains no further
    proc = _train(lm_data, model_dir, "--steps", steps)
    assert proc.returncode == 0 and json.loads((model_dir / "metrics.json").read_text())["steps"] == steps


@pytest.mark.slow
def test_untokenized_data_is_a_clear_error(tmp_path):
    write_shards(tmp_path / "d", random_docs(10), 1)
    proc = _train(tmp_path / "d", tmp_path / "m", "--steps", "2", "--force")  # synthetic shards
    assert proc.returncode != 0 and "needs tokenized shards" in proc.stderr


# ---------------------------------------------------------------- balance, spread, resume


def test_pipeline_segments_split_records_evenly_and_exactly():
    counts = {f"f{i}": n for i, n in enumerate([5, 100, 7, 30, 30, 30, 30, 30, 3])}
    files = sorted(counts)
    for n_pipelines in (1, 2, 3, 8, 9, 16):
        seen, sizes = [], []
        for k in range(n_pipelines):
            segments = ip.pipeline_segments(files, counts, n_pipelines, k)
            sizes.append(sum(take for _, _, take in segments))
            seen += [(f, skip + j) for f, skip, take in segments for j in range(take)]
        assert max(sizes) - min(sizes) <= 1, (n_pipelines, sizes)
        # every record of every file exactly once
        assert sorted(seen) == sorted((f, j) for f in files for j in range(counts[f]))


def _uneven_shards(tmp_path, sizes):
    docs, files, counts = {}, [], []
    data = tmp_path / "data"
    data.mkdir(parents=True)
    rng = random.Random(3)
    for k, n in enumerate(sizes):
        path = data / f"train-{k:05d}-of-{len(sizes):05d}.tfrecord"
        frames = []
        for j in range(n):
            rid = f"s{k}-{j:04d}"
            docs[rid] = [rng.randrange(4, 400) for _ in range(rng.randint(5, 60))]
            frames.append(tfrecord_frame(encode_example({"id": rid, "input_ids": docs[rid]})))
        path.write_bytes(b"".join(frames))
        files.append(str(path))
        counts.append((str(path), n))
    return docs, files, tuple(counts)


@pytest.mark.parametrize("n_pipelines", [8, 2])
@pytest.mark.parametrize("with_counts", [True, False])
def test_replicas_see_equal_records_whatever_the_file_count(tmp_path, n_pipelines, with_counts):
    # 9 files of uneven sizes: whole files per replica would give one replica far more
    docs, files, counts = _uneven_shards(tmp_path, [40, 13, 25, 40, 7, 40, 31, 40, 22])
    batch = 4
    per_pipeline = []
    for k in range(n_pipelines):
        cfg = ip.InputConfig(seq_len=64, batch_size=batch, mode="pad", with_ids=True,
                             deterministic=True, record_counts=counts if with_counts else None)
        ctx = tf.distribute.InputContext(num_input_pipelines=n_pipelines, input_pipeline_id=k,
                                         num_replicas_in_sync=n_pipelines)
        per_pipeline.append(_ids_of(ip.make_dataset(files, cfg, ctx, training=False)))
    sizes = [len(ids) for ids in per_pipeline]
    assert max(sizes) - min(sizes) <= batch, sizes
    everything = [rid for ids in per_pipeline for rid in ids]
    assert sorted(everything) == sorted(docs)  # no record twice, none left out


def test_pipeline_with_counts_reads_its_share_in_training(tmp_path):
    docs, files, counts = _uneven_shards(tmp_path, [40, 13, 25, 40, 7])
    seen = []
    for k in range(2):
        cfg = ip.InputConfig(seq_len=64, batch_size=4, mode="pad", with_ids=True,
                             deterministic=True, record_counts=counts, piece_shuffle=0)
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=k,
                                         num_replicas_in_sync=2)
        ids = _ids_of(ip.make_dataset(files, cfg, ctx, training=True).take(250 // 8))
        seen.append(set(ids))
    assert not seen[0] & seen[1]  # each replica keeps to its own half, epoch after epoch
    assert abs(len(seen[0]) - len(seen[1])) <= 1 and len(seen[0] | seen[1]) == len(docs)


def _long_document_corpus(tmp_path):
    rng = random.Random(5)
    docs = {f"short{i:04d}": [rng.randrange(4, 400) for _ in range(rng.randint(20, 120))]
            for i in range(600)}
    docs["long"] = [rng.randrange(4, 400) for _ in range(30_000)]
    return write_shards(tmp_path / "d", docs, 3)


def _max_share_of_long(ds, batches):
    worst = 0.0
    for features, _, weights in ds.take(batches):
        ids = [i.decode() for i in features["id"].numpy()]
        worst = max(worst, ids.count("long") / len(ids))
    return worst


@pytest.mark.parametrize("piece_shuffle, bounded", [(-1, True), (0, False)])
def test_long_document_spreads_over_batches(tmp_path, piece_shuffle, bounded):
    files = _long_document_corpus(tmp_path)
    cfg = ip.InputConfig(seq_len=128, batch_size=16, mode="bucket", with_ids=True,
                         deterministic=True, shuffle_buffer=1000, bucket_window=16,
                         piece_shuffle=piece_shuffle)
    share = _max_share_of_long(ip.make_dataset(files, cfg, training=True), 120)
    # 30,000 tokens are 233 pieces of 129: about a quarter of all pieces
    if bounded:
        assert share <= 0.5, share
    else:  # windows of the record-shuffled stream alone are mostly the long document
        assert share > 0.5, share


def test_fixed_widths_bound_the_batch_shapes(tmp_path):
    files = write_shards(tmp_path / "d", random_docs(300, lo=2, hi=200, seed=4), 2)
    ladder = ip.width_ladder(128)
    assert ladder[-1] == 129 and len(ladder) <= 9 and list(ladder) == sorted(set(ladder))
    cfg = ip.InputConfig(seq_len=128, batch_size=8, mode="bucket", deterministic=True,
                         pad_widths=ladder)
    widths = set()
    for features, targets, weights in ip.make_dataset(files, cfg, training=True).take(60):
        widths.add(int(features["tokens"].shape[1]) + 1)  # rows hold seq_len + 1 before the shift
        real = weights.numpy().sum(1)
        assert (real <= features["tokens"].shape[1]).all()
    assert widths <= set(ladder) and len(widths) >= 2, widths


@pytest.mark.parametrize("mode", ["bucket", "pack"])
def test_skipping_continues_the_same_stream(tmp_path, mode):
    files = write_shards(tmp_path / "d", random_docs(200, seed=7), 3)
    cfg = ip.InputConfig(seq_len=64, batch_size=4, mode=mode, deterministic=True, seed=11)

    def tokens(config, n):
        return [f[0]["tokens"].numpy().tolist() for f in ip.make_dataset(files, config).take(n)]

    whole = tokens(cfg, 30)
    import dataclasses

    resumed = tokens(dataclasses.replace(cfg, skip_batches=18), 12)
    assert whole[18:] == resumed
    assert tokens(cfg, 30) == whole  # the order is a function of the seed alone


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_on_localhost_train_together_each_on_its_own_records(lm_data, tmp_path):
    # MultiWorkerMirroredStrategy from TF_CONFIG: two processes, one CPU replica each
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in (0, 1):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                     "task": {"type": "worker", "index": index}}))
        cmd = _command(lm_data, tmp_path / "m", "--steps", 20, "--multi_worker",
                       "--batch_log", tmp_path / "batches.log")
        at = cmd.index("--cpu_replicas")
        del cmd[at:at + 2]  # one replica per worker
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for index, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"worker {index}:\n{out[-3000:]}"
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["workers"] == 2 and metrics["replicas"] == 2
    losses = metrics["interval_losses"]
    assert len(losses) == 2 and losses[1] < losses[0]
    # only the chief's results stay; the other worker's copies are removed
    assert sorted(os.listdir(tmp_path / "m")) == ["checkpoints", "logs", "metrics.json",
                                                  "model.keras"]
    # each worker read its own half of the records
    logs = _batch_log(tmp_path / "batches.log")
    seen = [{rid for ids in logs[k].values() for rid in ids} for k in (0, 1)]
    assert seen[0] and seen[1] and not seen[0] & seen[1]


@pytest.mark.slow
def test_xla_and_several_steps_per_host_call(lm_data, tmp_path):
    # one CPU replica: XLA needs every replica's variables on its own device, which
    # logical CPU devices do not give (GPUs do)
    cmd = _command(lm_data, tmp_path / "m", "--steps", 20, "--batching", "pack",
                   "--jit_compile", "on", "--steps_per_execution", 5)
    at = cmd.index("--cpu_replicas")
    del cmd[at:at + 2]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["jit_compile"] is True
    assert metrics["steps_per_execution"] == 5
    losses = metrics["interval_losses"]
    assert len(losses) == 2 and losses[1] < losses[0]


@pytest.mark.slow
def test_steps_per_execution_must_fit_the_intervals(lm_data, tmp_path):
    proc = _train(lm_data, tmp_path / "m", "--steps", 20, "--steps_per_execution", 3)
    assert proc.returncode == 2 and "must divide --steps" in proc.stderr


@pytest.mark.slow
def test_jax_backend_trains_the_same_model_data_parallel(lm_data, tmp_path):
    pytest.importorskip("jax")
    proc = _train(lm_data, tmp_path / "m", "--steps", 20, "--backend", "jax", "--batching", "pack",
                  "--jit_compile", "on", "--steps_per_execution", 5)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["backend"] == "jax" and metrics["devices"] == ["cpu:0", "cpu:1"]
    assert metrics["replicas"] == 2 and metrics["steps"] == 20
    assert metrics["steps_per_execution"] == 5 and metrics["jit_compile"] is True
    losses = metrics["interval_losses"]
    assert len(losses) == 2 and losses[1] < losses[0] - 0.1, losses
    assert metrics["validation_perplexity"] < np.exp(losses[0])
    # the saved model loads back under TensorFlow's Keras, the same architecture
    import keras

    import trainer.model  # noqa: F401  (registers the custom layers)

    model = keras.saving.load_model(tmp_path / "m" / "model.keras")
    assert model.count_params() == metrics["model"]["parameters"]
