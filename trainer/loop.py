"""The training loop every beamtrain trainer runs; a trainer supplies a :class:`Task`.

:mod:`trainer.train` (language model) and :mod:`trainer.train_images` (image
classifier) differ in their data, model and task metrics only. The rest is
here, once:

1. refuse a data folder without ``COMPLETED`` unless ``--force``
   (:func:`trainer.input_pipeline.check_dataset`);
2. the strategy (:func:`make_strategy`): ``MirroredStrategy`` over every GPU,
   or ``--cpu_replicas K`` logical CPU devices (so the distributed path runs,
   and is tested, without GPUs), or the one CPU; ``--batch_size`` is global
   and must divide over the replicas;
3. the task reads what its model needs from the data (:meth:`Task.prepare`);
4. precision (:func:`choose_precision`): bfloat16 on GPUs of compute
   capability 8.0+, float16 with loss scaling before, float32 on CPUs;
5. the model built and compiled inside ``strategy.scope()``: AdamW with
   linear warmup and cosine decay, gradient clipping (:func:`make_optimizer`),
   the task's loss and metrics;
6. resume: ``M/checkpoints`` holds the weights with the optimizer state
   (``latest.weights.h5``) and the step and checkpoint interval reached
   (``state.json``), each written atomically, the state last; a restarted run
   loads them, reshuffles its input with a new seed and stops at the same
   total step count;
7. ``fit`` in intervals of ``--checkpoint_every`` steps (one Keras epoch each)
   with a checkpoint after each, throughput (the task's unit per second and
   step time) in the logs, the progress bar and TensorBoard (``M/logs``);
8. the task's evaluation and extra metrics, then ``M/model.keras`` and
   ``M/metrics.json``.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import json
import logging
import math
import os
import time
from typing import Dict, List, Optional, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

__all__ = ["CHECKPOINT_DIR", "WEIGHTS", "STATE", "PRECISIONS", "add_loop_args", "check_loop_args",
           "LoopConfig", "Task", "make_strategy", "choose_precision", "make_optimizer",
           "read_state", "record_step", "training_callbacks", "train"]

CHECKPOINT_DIR = "checkpoints"
WEIGHTS = "latest.weights.h5"
STATE = "state.json"
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


# --------------------------------------------------------------------------
# Command line


def add_loop_args(p: argparse.ArgumentParser, *, learning_rate: float, weight_decay: float) -> None:
    """The loop's flags (model directory, steps, checkpoints, devices, optimizer, run control).

    The data, batch and model flags are the trainer's own; the defaults that
    differ between trainers are arguments.
    """
    p.add_argument("--model_dir", required=True, help="checkpoints, logs, metrics.json, model.keras")
    p.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    p.add_argument("--learning_rate", type=float, default=learning_rate)
    p.add_argument("--warmup_steps", type=int, default=None, help="default: 5%% of --steps")
    p.add_argument("--weight_decay", type=float, default=weight_decay)
    p.add_argument("--checkpoint_every", type=int, default=100)
    p.add_argument("--cpu_replicas", type=int, default=0,
                   help="split the CPU into K logical devices and mirror over them")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true",
                   help="train on a data folder without COMPLETED (an unfinished or failed run)")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="1: progress bar, 2: one line per checkpoint interval")


def check_loop_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``p.error`` on a loop flag out of range (``--batch_size`` is checked here too)."""
    for name in ("steps", "batch_size", "checkpoint_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be positive")
    if args.cpu_replicas < 0:
        p.error("--cpu_replicas must be >= 0")


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """What the loop needs of a trainer's command line (:meth:`from_args`)."""

    data_dir: str
    model_dir: str
    steps: int  # total optimizer steps, over every restart
    batch_size: int  # global
    checkpoint_every: int = 100
    learning_rate: float = 1e-3
    warmup_steps: Optional[int] = None  # None: 5% of steps
    weight_decay: float = 0.01
    cpu_replicas: int = 0
    precision: str = "auto"
    seed: int = 0
    force: bool = False
    verbose: int = 1

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "LoopConfig":
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    @property
    def interval(self) -> int:
        """Steps per checkpoint interval (one Keras epoch)."""
        return min(self.checkpoint_every, self.steps)

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else max(1, self.steps // 20)


# --------------------------------------------------------------------------
# What a trainer supplies


class Task(abc.ABC):
    """A trainer's data, model and metrics. :func:`train` calls, in order:

    ``prepare`` (once the strategy is known), ``build_model`` and
    ``compile_args`` (inside ``strategy.scope()``), ``train_dataset`` (unless
    the run has already finished), ``processed`` after every step, then
    ``describe``, ``evaluate`` and ``extra_metrics`` for metrics.json.
    ``epoch`` is the checkpoint interval the run starts from (0 when fresh):
    the input pipeline seeds with it, so a resumed run reshuffles instead of
    replaying.
    """

    #: what throughput counts: logged as ``{unit}_per_s``, metrics.json too
    unit: str = "examples"

    def prepare(self, strategy: tf.distribute.Strategy) -> None:
        """Check the data and read what the model needs (vocabulary, classes)."""

    @abc.abstractmethod
    def build_model(self):
        """The Keras model, uncompiled."""

    @abc.abstractmethod
    def compile_args(self) -> Dict:
        """``model.compile`` arguments but the optimizer: loss, metrics."""

    @abc.abstractmethod
    def train_dataset(self, strategy: tf.distribute.Strategy, epoch: int):
        """The distributed, repeating training input, batches sized globally."""

    @abc.abstractmethod
    def processed(self, batch: int, logs: Dict) -> float:
        """Units (tokens, images) processed so far in this interval, after step ``batch``."""

    @abc.abstractmethod
    def describe(self, model) -> Dict:
        """The task's entries of metrics.json: input and model shape."""

    @abc.abstractmethod
    def evaluate(self, model, epoch: int) -> Dict:
        """Validation metrics (None values when there is no validation split)."""

    def extra_metrics(self, model, strategy: tf.distribute.Strategy, epoch: int,
                      metrics: Dict) -> Dict:
        """More metrics, after evaluation (default none)."""
        return {}


# --------------------------------------------------------------------------
# Devices, precision, optimizer


def make_strategy(cpu_replicas: int = 0) -> Tuple[tf.distribute.Strategy, List[str]]:
    """MirroredStrategy over the GPUs, K logical CPUs, or the CPU; and its device names."""
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


def choose_precision(requested: str, devices: List[str]) -> str:
    """``requested`` unless "auto": float32 on CPUs, mixed bfloat16 on GPUs of compute
    capability 8.0+, mixed float16 (Keras adds loss scaling) before."""
    if requested != "auto":
        return requested
    if not any("GPU" in d for d in devices):
        return "float32"
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    major = (details.get("compute_capability") or (0, 0))[0]
    return "mixed_bfloat16" if major >= 8 else "mixed_float16"


def make_optimizer(config: LoopConfig):
    """AdamW, linear warmup to the learning rate then cosine decay to a tenth; clipnorm 1."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(1, config.steps - config.warmup), alpha=0.1,
        warmup_target=config.learning_rate, warmup_steps=config.warmup)
    return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, clipnorm=1.0)


# --------------------------------------------------------------------------
# Checkpoints and callbacks


def read_state(checkpoint_dir: str) -> Dict:
    """The checkpoint state: ``{"epoch": intervals done, "step": optimizer steps}``."""
    path = os.path.join(checkpoint_dir, STATE)
    if not tf.io.gfile.exists(path):
        return {"epoch": 0, "step": 0}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def record_step(throughput: dict, logs: dict, elapsed: float, **amounts) -> None:
    """Add one step to the run's throughput totals (the first steps trace and compile)."""
    throughput["steps"] += 1
    if throughput["steps"] > 2:
        for name, value in amounts.items():
            throughput[name] += value
        throughput["seconds"] += elapsed
    throughput["last_loss"] = float(logs.get("loss", float("nan")))
    throughput.setdefault("first_loss", throughput["last_loss"])


def _throughput_callback(task: Task, throughput: dict):
    import keras

    class Throughput(keras.callbacks.Callback):
        """The task's units per second and the step time into the logs (progress bar,
        TensorBoard) and the run's totals."""

        def on_epoch_begin(self, epoch, logs=None):
            self._done = 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if logs is None:
                return
            elapsed = time.perf_counter() - self._start
            done = float(task.processed(batch, logs))
            step = max(0.0, done - self._done)
            self._done = done
            logs[f"{task.unit}_per_s"] = step / max(elapsed, 1e-9)
            logs["step_ms"] = elapsed * 1000.0
            record_step(throughput, logs, elapsed, **{task.unit: step})

    return Throughput()


def training_callbacks(config: LoopConfig, throughput_callback) -> list:
    """Stop at the total step count, throughput logging, TensorBoard, and a
    checkpoint at the end of every interval."""
    import keras

    checkpoint_dir = os.path.join(config.model_dir, CHECKPOINT_DIR)

    class StopAtStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) >= config.steps:
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

    return [StopAtStep(), throughput_callback,
            keras.callbacks.TensorBoard(os.path.join(config.model_dir, "logs"),
                                        update_freq=max(1, min(50, config.checkpoint_every))),
            Checkpoint()]


# --------------------------------------------------------------------------
# The loop


def train(config: LoopConfig, task: Task) -> Dict:
    """Train ``task``'s model to ``config.steps`` (resuming from a checkpoint), evaluate,
    write ``model.keras`` and ``metrics.json`` in ``config.model_dir``; returns the metrics."""
    from trainer import input_pipeline as ip

    if not config.force:
        try:
            ip.check_dataset(config.data_dir)
        except ip.DatasetNotReady as e:
            raise SystemExit(f"error: {e}")
    strategy, devices = make_strategy(config.cpu_replicas)
    import keras

    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise SystemExit(f"--batch_size {config.batch_size} must be divisible by the "
                         f"{replicas} replicas")
    task.prepare(strategy)

    precision = choose_precision(config.precision, devices)
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(config.seed)

    checkpoint_dir = os.path.join(config.model_dir, CHECKPOINT_DIR)
    tf.io.gfile.makedirs(config.model_dir)
    state = read_state(checkpoint_dir)
    with strategy.scope():
        model = task.build_model()
        model.compile(optimizer=make_optimizer(config), **task.compile_args())
        model.optimizer.build(model.trainable_variables)
    if state["step"]:
        model.load_weights(os.path.join(checkpoint_dir, WEIGHTS))
        logging.info("resumed from step %d (checkpoint interval %d)", state["step"], state["epoch"])
        print(f"resuming from step {state['step']}")

    throughput = {"steps": 0, task.unit: 0.0, "seconds": 0.0, "last_loss": float("nan")}
    if state["step"] < config.steps:
        history = model.fit(
            task.train_dataset(strategy, state["epoch"]),
            epochs=math.ceil(config.steps / config.interval), steps_per_epoch=config.interval,
            initial_epoch=state["epoch"],
            callbacks=training_callbacks(config, _throughput_callback(task, throughput)),
            verbose=config.verbose, shuffle=False)  # the input pipeline shuffles
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
        f"{task.unit}_per_s": (throughput[task.unit] / throughput["seconds"])
        if throughput["seconds"] else None,
        "step_time_ms": (1000.0 * throughput["seconds"] / max(1, throughput["steps"] - 2))
        if throughput["seconds"] else None,
        "replicas": replicas,
        "devices": devices,
        "precision": precision,
        "global_batch_size": config.batch_size,
    }
    metrics.update(task.describe(model))
    metrics.update(task.evaluate(model, state["epoch"]))
    metrics.update(task.extra_metrics(model, strategy, state["epoch"], metrics))
    model.save(os.path.join(config.model_dir, "model.keras"))
    with tf.io.gfile.GFile(os.path.join(config.model_dir, "metrics.json"), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
