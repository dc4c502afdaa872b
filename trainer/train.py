"""Train a decoder-only language model from scratch on beamtrain shards.

    python -m trainer.train --data_dir DIR --model_dir M --steps N --batch_size GLOBAL \\
        [--seq_len 512 --layers 4 --width 256 --heads 4] [--batching bucket|pack|pad|tf_bucket] \\
        [--cpu_replicas K] [--checkpoint_every 100]

* The model is built and compiled inside ``MirroredStrategy.scope()``: every
  GPU of the machine, or ``--cpu_replicas K`` logical CPU devices (so the
  distributed path runs, and is tested, without GPUs), or the one CPU.
* Each replica gets its own input pipeline (``distribute_datasets_from_function``
  with one pipeline per replica), reading a distinct part of the files;
  ``--batch_size`` is global.
* Mixed precision on GPUs: bfloat16 where the GPU supports it (compute
  capability 8.0+), float16 with loss scaling before that; float32 on CPUs.
* Console progress bar with loss, tokens/s and step time; the same in
  TensorBoard (``M/logs``); validation perplexity at the end.
* Checkpoints every ``--checkpoint_every`` steps (``M/checkpoints``: weights
  with the optimizer state, and the step reached); a restarted run resumes
  from the latest and stops at the same total step count.
* ``M/metrics.json``: steps, final train loss, validation loss and perplexity,
  tokens/s, step time, replicas, devices, precision; ``M/model.keras``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import time
from typing import Dict, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

__all__ = ["parse_args", "make_strategy", "train", "main"]

CHECKPOINT_DIR = "checkpoints"
WEIGHTS = "latest.weights.h5"
STATE = "state.json"
# Test hook: the process SIGKILLs itself after this many optimizer steps, to
# simulate a run killed mid-way (tests/test_trainer.py uses it).
KILL_AT_STEP_ENV = "BEAMTRAIN_KILL_AT_STEP"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a decoder-only LM on beamtrain shards.")
    p.add_argument("--data_dir", required=True, help="a beamtrain output directory")
    p.add_argument("--model_dir", required=True, help="checkpoints, logs, metrics.json, model.keras")
    p.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    p.add_argument("--batch_size", type=int, default=32, help="global batch size (rows)")
    p.add_argument("--seq_len", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--mlp_ratio", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--warmup_steps", type=int, default=None, help="default: 5%% of --steps")
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--batching", default="bucket", choices=["bucket", "tf_bucket", "pack", "pad"],
                   help="bucket: length-bucketed dynamic padding; pack: several documents per "
                        "row with segment ids (causal LM); pad: pad to the batch's longest")
    p.add_argument("--shuffle_buffer", type=int, default=10_000)
    p.add_argument("--cycle_length", type=int, default=4)
    p.add_argument("--deterministic", action="store_true", help="deterministic input order")
    p.add_argument("--cache", action="store_true", help="cache the parsed records in memory")
    p.add_argument("--checkpoint_every", type=int, default=100)
    p.add_argument("--eval_batches", type=int, default=50, help="validation batches (0 = whole split)")
    p.add_argument("--cpu_replicas", type=int, default=0,
                   help="split the CPU into K logical devices and mirror over them")
    p.add_argument("--precision", default="auto",
                   choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true",
                   help="train on a data folder without COMPLETED (an unfinished or failed run)")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="1: progress bar, 2: one line per checkpoint interval")
    p.add_argument("--input_check_steps", type=int, default=0,
                   help="after training, time this many steps on one cached batch and compare: "
                        "tells whether the input pipeline kept up")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "seq_len", "checkpoint_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be positive")
    if args.cpu_replicas < 0:
        p.error("--cpu_replicas must be >= 0")
    return args


def make_strategy(cpu_replicas: int = 0):
    """MirroredStrategy over the GPUs, K logical CPUs, or the CPU."""
    if cpu_replicas:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        except RuntimeError:
            pass  # already initialised (several runs in one process): keep what is there
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:cpu_replicas]
        if len(devices) < cpu_replicas:
            raise RuntimeError(f"wanted {cpu_replicas} CPU replicas, TensorFlow already has "
                               f"{len(devices)} CPU devices")
        return tf.distribute.MirroredStrategy(devices), devices
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        devices = [d.name for d in gpus]
        return tf.distribute.MirroredStrategy(devices), devices
    return tf.distribute.MirroredStrategy(["/cpu:0"]), ["/cpu:0"]


def _choose_precision(requested: str, devices: List[str]) -> str:
    if requested != "auto":
        return requested
    if not any("GPU" in d for d in devices):
        return "float32"
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    major = (details.get("compute_capability") or (0, 0))[0]
    return "mixed_bfloat16" if major >= 8 else "mixed_float16"


def _vocab_size(data_dir: str) -> int:
    import sentencepiece as spm

    path = os.path.join(data_dir, "tokenizer", "spm.model")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: the trainer needs tokenized shards "
                                "(run the text pipeline with the tokenize step)")
    with tf.io.gfile.GFile(path, "rb") as f:
        return spm.SentencePieceProcessor(model_proto=f.read()).get_piece_size()


def _callbacks(args, total_steps: int, checkpoint_dir: str, throughput: dict):
    import keras

    class Throughput(keras.callbacks.Callback):
        """tokens/s and step time into the logs (progress bar, TensorBoard)."""

        def on_epoch_begin(self, epoch, logs=None):
            self._tokens = 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if logs is None:
                return
            elapsed = time.perf_counter() - self._start
            tokens = float(logs.get("tokens", 0.0))
            step_tokens = max(0.0, tokens - self._tokens)
            self._tokens = tokens
            logs["tokens_per_s"] = step_tokens / max(elapsed, 1e-9)
            logs["step_ms"] = elapsed * 1000.0
            record_step(throughput, logs, elapsed, tokens=step_tokens)

    return training_callbacks(args, total_steps, checkpoint_dir, Throughput())


def record_step(throughput: dict, logs: dict, elapsed: float, **amounts) -> None:
    """Add one step to the run's throughput totals (the first steps trace and compile)."""
    throughput["steps"] += 1
    if throughput["steps"] > 2:
        for name, value in amounts.items():
            throughput[name] += value
        throughput["seconds"] += elapsed
    throughput["last_loss"] = float(logs.get("loss", float("nan")))
    throughput.setdefault("first_loss", throughput["last_loss"])


def training_callbacks(args, total_steps: int, checkpoint_dir: str, throughput_callback):
    """What every beamtrain trainer runs with: stop at the step count, throughput
    logging, TensorBoard, checkpoints every interval, and the kill test hook."""
    import keras

    class StopAtStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) >= total_steps:
                self.model.stop_training = True

    class Checkpoint(keras.callbacks.Callback):
        """Weights (with the optimizer state) and the step reached, each written atomically."""

        def on_epoch_end(self, epoch, logs=None):
            tf.io.gfile.makedirs(checkpoint_dir)
            tmp = os.path.join(checkpoint_dir, "tmp-" + WEIGHTS)
            self.model.save_weights(tmp, overwrite=True)
            tf.io.gfile.rename(tmp, os.path.join(checkpoint_dir, WEIGHTS), overwrite=True)
            state = {"epoch": epoch + 1, "step": int(self.model.optimizer.iterations.numpy())}
            with tf.io.gfile.GFile(os.path.join(checkpoint_dir, STATE + ".tmp"), "w") as f:
                f.write(json.dumps(state))
            tf.io.gfile.rename(os.path.join(checkpoint_dir, STATE + ".tmp"),
                               os.path.join(checkpoint_dir, STATE), overwrite=True)

    class KillAt(keras.callbacks.Callback):
        def __init__(self, step: int):
            super().__init__()
            self._step = step

        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) >= self._step:
                os.kill(os.getpid(), signal.SIGKILL)

    callbacks = [StopAtStep(), throughput_callback,
                 keras.callbacks.TensorBoard(os.path.join(args.model_dir, "logs"),
                                             update_freq=max(1, min(50, args.checkpoint_every))),
                 Checkpoint()]
    if os.environ.get(KILL_AT_STEP_ENV):
        callbacks.append(KillAt(int(os.environ[KILL_AT_STEP_ENV])))
    return callbacks


def train(args: argparse.Namespace) -> Dict:
    from trainer import input_pipeline as ip

    if not args.force:
        try:
            ip.check_dataset(args.data_dir)
        except ip.DatasetNotReady as e:
            raise SystemExit(f"error: {e}")
    strategy, devices = make_strategy(args.cpu_replicas)
    import keras

    from trainer import input_pipeline as ip
    from trainer.model import MaskedNLL, ModelConfig, TokenCount, build_model

    replicas = strategy.num_replicas_in_sync
    if args.batch_size % replicas:
        raise SystemExit(f"--batch_size {args.batch_size} must be divisible by the "
                         f"{replicas} replicas")
    precision = _choose_precision(args.precision, devices)
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(args.seed)

    checkpoint_dir = os.path.join(args.model_dir, CHECKPOINT_DIR)
    tf.io.gfile.makedirs(args.model_dir)
    state = {"epoch": 0, "step": 0}
    if tf.io.gfile.exists(os.path.join(checkpoint_dir, STATE)):
        with tf.io.gfile.GFile(os.path.join(checkpoint_dir, STATE)) as f:
            state = json.load(f)

    interval = min(args.checkpoint_every, args.steps)
    epochs = math.ceil(args.steps / interval)
    model_config = ModelConfig(
        vocab_size=_vocab_size(args.data_dir), seq_len=args.seq_len, layers=args.layers,
        width=args.width, heads=args.heads, mlp_ratio=args.mlp_ratio, dropout=args.dropout)
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, args.steps // 20)
    with strategy.scope():
        model = build_model(model_config)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0, decay_steps=max(1, args.steps - warmup), alpha=0.1,
            warmup_target=args.learning_rate, warmup_steps=warmup)
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay,
                                             clipnorm=1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"),
            weighted_metrics=[TokenCount(), MaskedNLL()])
        model.optimizer.build(model.trainable_variables)
    if state["step"]:
        model.load_weights(os.path.join(checkpoint_dir, WEIGHTS))
        logging.info("resumed from step %d (checkpoint interval %d)", state["step"], state["epoch"])
        print(f"resuming from step {state['step']}")

    stats = ip.load_stats(args.data_dir)
    input_config = ip.InputConfig(
        seq_len=args.seq_len, batch_size=args.batch_size, mode=args.batching,
        shuffle_buffer=args.shuffle_buffer, cycle_length=args.cycle_length,
        deterministic=args.deterministic, cache=args.cache,
        seed=args.seed + state["epoch"])  # a resumed run reshuffles instead of replaying
    train_files = ip.shard_files(args.data_dir, "train")
    throughput = {"steps": 0, "tokens": 0.0, "seconds": 0.0, "last_loss": float("nan")}
    if state["step"] < args.steps:
        dataset = ip.distributed_dataset(strategy, train_files, input_config, args.batch_size,
                                         training=True, stats=stats)
        history = model.fit(
            dataset, epochs=epochs, steps_per_epoch=interval, initial_epoch=state["epoch"],
            callbacks=_callbacks(args, args.steps, checkpoint_dir, throughput),
            verbose=args.verbose)
        losses = [float(x) for x in history.history.get("loss", [])]
        if losses:
            throughput["last_loss"] = losses[-1]
            throughput["interval_losses"] = losses

    metrics = {
        "steps": int(model.optimizer.iterations.numpy()),
        "final_train_loss": throughput["last_loss"],
        "first_train_loss": throughput.get("first_loss"),
        # mean training loss of each checkpoint interval run in this process
        "interval_losses": throughput.get("interval_losses", []),
        "tokens_per_s": (throughput["tokens"] / throughput["seconds"]) if throughput["seconds"] else None,
        "step_time_ms": (1000.0 * throughput["seconds"] / max(1, throughput["steps"] - 2))
        if throughput["seconds"] else None,
        "replicas": replicas,
        "devices": devices,
        "precision": precision,
        "global_batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "batching": args.batching,
        "model": {"layers": args.layers, "width": args.width, "heads": args.heads,
                  "vocab_size": model_config.vocab_size, "parameters": int(model.count_params())},
    }
    metrics.update(_evaluate(model, args, input_config, stats))
    if args.input_check_steps:
        metrics.update(_input_check(model, strategy, train_files, input_config, args, stats,
                                    metrics["step_time_ms"]))
    model.save(os.path.join(args.model_dir, "model.keras"))
    with tf.io.gfile.GFile(os.path.join(args.model_dir, "metrics.json"), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def _evaluate(model, args, input_config, stats) -> Dict:
    import dataclasses

    from trainer import input_pipeline as ip

    try:
        files = ip.shard_files(args.data_dir, "validation")
    except FileNotFoundError:
        return {"validation_loss": None, "validation_perplexity": None}
    cfg = dataclasses.replace(input_config, mode="bucket" if args.batching == "tf_bucket"
                              else args.batching, deterministic=True)
    ds = ip.make_dataset(files, cfg, training=False, stats=stats)
    if args.eval_batches:
        ds = ds.take(args.eval_batches)
    if not any(True for _ in ds.take(1)):
        return {"validation_loss": None, "validation_perplexity": None}
    import warnings

    with warnings.catch_warnings():
        # Keras calls the normal end of a finite dataset "ran out of data".
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        results = model.evaluate(ds, verbose=0, return_dict=True)
    nll = float(results["nll"])
    return {"validation_loss": nll, "validation_perplexity": math.exp(min(nll, 700.0)),
            "validation_tokens": float(results["tokens"])}


def _input_check(model, strategy, files, input_config, args, stats, real_step_ms) -> Dict:
    """Step time on one batch held in memory vs on the real input: did the input keep up?"""
    from trainer import input_pipeline as ip

    def one_batch_fn(ctx):
        import dataclasses

        cfg = dataclasses.replace(input_config, batch_size=ctx.get_per_replica_batch_size(args.batch_size))
        return ip.make_dataset(files, cfg, ctx, training=True, stats=stats).take(1).cache().repeat()

    options = tf.distribute.InputOptions(
        experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA,
        experimental_fetch_to_device=False)
    dataset = strategy.distribute_datasets_from_function(one_batch_fn, options)
    times: List[float] = []

    import keras

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self._t)

    model.fit(dataset, epochs=1, steps_per_epoch=args.input_check_steps, callbacks=[Timer()], verbose=0)
    synthetic_ms = 1000.0 * sum(times[2:]) / max(1, len(times) - 2)
    return {"input_check": {
        "step_time_ms_real_input": real_step_ms,
        "step_time_ms_cached_batch": synthetic_ms,
        "input_kept_up": bool(real_step_ms is not None and real_step_ms <= 1.1 * synthetic_ms),
    }}


def main(argv: Optional[List[str]] = None) -> Dict:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    metrics = train(args)
    print(f"model:   {os.path.join(args.model_dir, 'model.keras')}")
    print(f"metrics: {os.path.join(args.model_dir, 'metrics.json')}")
    ppl = metrics.get("validation_perplexity")
    print(f"steps {metrics['steps']}, train loss {metrics['final_train_loss']:.3f}, "
          f"validation perplexity {ppl if ppl is None else round(ppl, 2)}, "
          f"{metrics['replicas']} replica(s), "
          f"{(metrics['tokens_per_s'] or 0):.0f} tokens/s")
    return metrics


if __name__ == "__main__":
    main()
