"""The training loop every beamtrain trainer runs; a trainer supplies a :class:`Task`.

:mod:`trainer.train` (language model) and :mod:`trainer.train_images` (image
classifier) differ in their data, model and task metrics only. The rest is
here, once:

1. refuse a data folder without ``COMPLETED`` unless ``--force``
   (:func:`trainer.input_pipeline.check_dataset`);
2. the strategy (:func:`make_strategy`): ``MirroredStrategy`` over every GPU,
   or ``--cpu_replicas K`` logical CPU devices (so the distributed path runs,
   and is tested, without GPUs), or the one CPU; ``--multi_worker``:
   ``MultiWorkerMirroredStrategy`` over the hosts named in ``TF_CONFIG``
   (each worker reads its own shards; the chief, worker 0, writes the
   checkpoints and results). Under ``--backend jax`` (Keras 3's JAX backend)
   there is no ``tf.distribute``: ``keras.distribution.DataParallel`` over
   the JAX devices, fed by the same tf.data pipeline. ``--batch_size`` is
   global and must divide over the replicas;
3. the task reads what its model needs from the data (:meth:`Task.prepare`);
4. precision (:func:`choose_precision`): bfloat16 on GPUs of compute
   capability 8.0+, float16 with loss scaling before, float32 on CPUs;
5. the model built and compiled inside ``strategy.scope()``: AdamW with
   linear warmup and cosine decay, gradient clipping (:func:`make_optimizer`),
   the task's loss and metrics; XLA (``--jit_compile``, on by default on GPUs
   when the task's batches take a bounded set of shapes) and
   ``--steps_per_execution N`` (the host dispatches N steps at once and syncs
   once per N: metrics, progress and the stop test are updated every N
   steps, never forcing a device sync in between);
6. resume: ``M/checkpoints`` holds the weights with the optimizer state
   (``latest.weights.h5``) and the step and checkpoint interval reached
   (``state.json``), each written atomically, the state last. A restarted run
   loads them and continues the *same* input stream: the input order is
   deterministic (seeded, ``deterministic`` tf.data) and every replica's
   pipeline skips the batches already trained on, so the resumed run trains
   on exactly the batches an uninterrupted run would have
   (``--nondeterministic`` trades this for a little input speed: a resumed
   run then reshuffles with a new seed); it stops at the same total step count;
7. ``fit`` in intervals of ``--checkpoint_every`` steps (one Keras epoch each)
   with a checkpoint after each, throughput (the task's unit per second and
   step time) in the logs, the progress bar and TensorBoard (``M/logs``);
   batches are prefetched onto each accelerator (``fetch_to_device``);
8. the task's evaluation and extra metrics, then ``M/model.keras`` and
   ``M/metrics.json``.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from typing import Dict, List, Optional, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

__all__ = ["select_backend", "CHECKPOINT_DIR", "WEIGHTS", "STATE", "PRECISIONS", "JIT_CHOICES", "BACKENDS",
           "add_loop_args", "check_loop_args", "LoopConfig", "Task", "make_strategy",
           "on_accelerators", "choose_precision", "choose_jit", "choose_steps_per_execution",
           "make_optimizer", "read_state", "record_step", "training_callbacks", "train"]

CHECKPOINT_DIR = "checkpoints"
WEIGHTS = "latest.weights.h5"
STATE = "state.json"
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
JIT_CHOICES = ("auto", "on", "off")
BACKENDS = ("tensorflow", "jax")


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
    p.add_argument("--jit_compile", default="auto", choices=list(JIT_CHOICES),
                   help="XLA-compile the train step; auto: on GPUs when the batches take a "
                        "bounded set of shapes (pack batching, or bucket with fixed widths)")
    p.add_argument("--steps_per_execution", type=int, default=0,
                   help="steps dispatched per host call (the host syncs once per N steps); "
                        "0: auto (1 on CPUs; on accelerators up to 32, dividing "
                        "--checkpoint_every and --steps)")
    p.add_argument("--nondeterministic", action="store_true",
                   help="let tf.data reorder elements for speed; a resumed run then reshuffles "
                        "instead of continuing the same input stream")
    p.add_argument("--multi_worker", action="store_true",
                   help="MultiWorkerMirroredStrategy over the workers in TF_CONFIG")
    p.add_argument("--backend", default="tensorflow", choices=list(BACKENDS),
                   help="Keras backend: tensorflow (tf.distribute) or jax "
                        "(keras.distribution.DataParallel); the input is tf.data either way")
    p.add_argument("--batch_log", default=None,
                   help="audit: append every training batch's record ids to this file "
                        "(one file per replica pipeline: PATH.K), with the batch's index")


def select_backend(args: argparse.Namespace) -> None:
    """Under ``--backend jax`` TensorFlow (tf.data only) keeps off the GPUs. (Keras's
    backend itself is chosen before TensorFlow is imported: :mod:`trainer.backend`.)"""
    if args.backend == "jax":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass  # TensorFlow already initialised its devices


def check_loop_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``p.error`` on a loop flag out of range (``--batch_size`` is checked here too)."""
    for name in ("steps", "batch_size", "checkpoint_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be positive")
    if args.cpu_replicas < 0:
        p.error("--cpu_replicas must be >= 0")
    if args.steps_per_execution < 0:
        p.error("--steps_per_execution must be >= 0")
    n = args.steps_per_execution
    if n > 1 and (args.steps % n or min(args.checkpoint_every, args.steps) % n):
        p.error(f"--steps_per_execution {n} must divide --steps ({args.steps}) and "
                f"--checkpoint_every ({args.checkpoint_every})")
    if args.multi_worker and args.backend != "tensorflow":
        p.error("--multi_worker is for the tensorflow backend (JAX: jax.distributed)")
    if args.multi_worker and args.cpu_replicas:
        p.error("--multi_worker and --cpu_replicas do not mix: one replica per worker's device")


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
    jit_compile: str = "auto"
    steps_per_execution: int = 0  # 0: auto
    nondeterministic: bool = False
    multi_worker: bool = False
    backend: str = "tensorflow"
    batch_log: Optional[str] = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "LoopConfig":
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                      if hasattr(args, f.name)})

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
    ``epoch`` is the checkpoint interval the run starts from (0 when fresh)
    and ``skip`` the batches each replica's input has already given (the
    optimizer steps done): with a deterministic input the task skips them and
    continues the same stream (exact resume); with ``--nondeterministic``
    ``skip`` is 0 and the task seeds with ``epoch`` instead, so a resumed run
    reshuffles. Under ``--backend jax`` ``strategy`` is None: one input
    pipeline per process, batches sized globally.
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
    def train_dataset(self, strategy: Optional[tf.distribute.Strategy], epoch: int, skip: int = 0):
        """The distributed, repeating training input, batches sized globally."""

    def bounded_shapes(self) -> bool:
        """Whether the training batches take a small fixed set of shapes (XLA compiles
        each shape once): ``--jit_compile auto`` turns XLA on for them on GPUs."""
        return True

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


def make_strategy(cpu_replicas: int = 0, multi_worker: bool = False
                  ) -> Tuple[tf.distribute.Strategy, List[str]]:
    """MirroredStrategy over the GPUs, K logical CPUs, or the CPU (or, with
    ``multi_worker``, MultiWorkerMirroredStrategy from ``TF_CONFIG``); and its
    device names (this worker's)."""
    if multi_worker:
        if not os.environ.get("TF_CONFIG"):
            raise SystemExit("error: --multi_worker needs TF_CONFIG (the cluster's workers and "
                             "this worker's index)")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return strategy, list(strategy.extended.worker_devices)
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


def on_accelerators(devices: List[str]) -> bool:
    """Whether ``devices`` (TensorFlow or JAX device names) are GPUs or TPUs."""
    return any(("GPU" in d.upper() or "TPU" in d.upper() or "CUDA" in d.upper()) for d in devices)


def jax_devices() -> List[str]:
    """The JAX devices' names, ``gpu:0``..., as metrics.json lists them."""
    import jax

    return [f"{d.platform}:{d.id}" for d in jax.devices()]


def choose_precision(requested: str, devices: List[str]) -> str:
    """``requested`` unless "auto": float32 on CPUs, mixed bfloat16 on GPUs of compute
    capability 8.0+ (and TPUs), mixed float16 (Keras adds loss scaling) before."""
    if requested != "auto":
        return requested
    if not on_accelerators(devices):
        return "float32"
    if not any("GPU" in d.upper() for d in devices):  # JAX's "cuda:0", "tpu:0"
        if any("CUDA" in d.upper() for d in devices):
            import jax

            major = int(str(getattr(jax.devices()[0], "compute_capability", "8.0")).split(".")[0])
            return "mixed_bfloat16" if major >= 8 else "mixed_float16"
        return "mixed_bfloat16"
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    major = (details.get("compute_capability") or (0, 0))[0]
    return "mixed_bfloat16" if major >= 8 else "mixed_float16"


def choose_jit(requested: str, devices: List[str], bounded_shapes: bool) -> bool:
    """``--jit_compile``: on/off as asked; auto is on for accelerators with bounded shapes."""
    if requested != "auto":
        return requested == "on"
    return on_accelerators(devices) and bounded_shapes


def choose_steps_per_execution(requested: int, devices: List[str], interval: int,
                               remaining: int) -> int:
    """``--steps_per_execution``, or auto: 1 on CPUs; on accelerators the largest N <= 32
    dividing both the checkpoint interval and the steps left, so every interval ends on
    an execution boundary."""
    if requested:
        return requested
    if not on_accelerators(devices):
        return 1
    return max(n for n in range(1, 33) if interval % n == 0 and remaining % n == 0)


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


def record_step(throughput: dict, logs: dict, elapsed: float, steps: int = 1, **amounts) -> None:
    """Add one host call (``steps`` optimizer steps) to the run's throughput totals; the
    first two calls trace and compile and are left out of the rates."""
    throughput["calls"] = throughput.get("calls", 0) + 1
    throughput["steps"] += steps
    if throughput["calls"] > 2:
        for name, value in amounts.items():
            throughput[name] += value
        throughput["seconds"] += elapsed
        throughput["timed_steps"] = throughput.get("timed_steps", 0) + steps
    throughput["last_loss"] = float(logs.get("loss", float("nan")))
    throughput.setdefault("first_loss", throughput["last_loss"])


def _throughput_callback(task: Task, throughput: dict):
    import keras

    class Throughput(keras.callbacks.Callback):
        """The task's units per second and the step time into the logs (progress bar,
        TensorBoard) and the run's totals.

        Keras calls it once per host call (``steps_per_execution`` steps): the
        one device sync it causes (reading the logs) comes once per N steps.
        """

        def on_epoch_begin(self, epoch, logs=None):
            self._done = 0.0
            self._last_batch = -1

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if logs is None:
                return
            elapsed = time.perf_counter() - self._start
            steps = max(1, batch - self._last_batch)  # batch: the call's last step index
            self._last_batch = batch
            done = float(task.processed(batch, logs))
            amount = max(0.0, done - self._done)
            self._done = done
            logs[f"{task.unit}_per_s"] = amount / max(elapsed, 1e-9)
            logs["step_ms"] = elapsed * 1000.0 / steps
            record_step(throughput, logs, elapsed, steps=steps, **{task.unit: amount})

    return Throughput()


def training_callbacks(config: LoopConfig, throughput_callback, checkpoint_dir: str = "",
                       log_dir: str = "") -> list:
    """Stop at the total step count, throughput logging, TensorBoard, and a
    checkpoint at the end of every interval.

    The step count is kept on the host (each Keras epoch is one interval of
    ``config.interval`` steps), so stopping never reads a device variable.
    """
    import keras

    checkpoint_dir = checkpoint_dir or os.path.join(config.model_dir, CHECKPOINT_DIR)
    interval = config.interval

    class StopAtStep(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self._epoch * interval + batch + 1 >= config.steps:
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
            keras.callbacks.TensorBoard(log_dir or os.path.join(config.model_dir, "logs"),
                                        update_freq=max(1, min(50, config.checkpoint_every))),
            Checkpoint()]


# --------------------------------------------------------------------------
# The loop


def _build_from_spec(model, strategy, dataset) -> None:
    """Build the compiled model's metrics and loss from the input's element spec.

    Keras 3's ``fit`` does this by averaging a first batch over the replicas,
    which fails when the replicas' batches differ in shape (dynamic padding:
    each replica pads to its own longest) and, under
    MultiWorkerMirroredStrategy, for any dict of features (the collective
    reduce takes one tensor); shapes and dtypes are all it needs, and the
    distributed dataset's spec has them.
    """
    def local(spec):
        specs = getattr(spec, "_value_specs", None)
        return specs[0] if specs else spec

    batch = tf.nest.map_structure(local, dataset.element_spec)
    with strategy.scope():
        model._symbolic_build(data_batch=batch)  # noqa: SLF001
    model._maybe_symbolic_build = lambda *args, **kwargs: None  # noqa: SLF001


def _patch_scalar_log_reduce() -> None:
    """Keras 3 averages each step's logs over the workers with ``axis=0``, which fails
    for scalar logs (loss, metrics) under MultiWorkerMirroredStrategy; average them
    with ``axis=None`` there instead (every other case goes to Keras unchanged)."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "_beamtrain", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if (reduction in ("auto", "mean")
                and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)):
            def mean(v):
                if isinstance(v, tf.distribute.DistributedValues):
                    return strategy.reduce("MEAN", v, axis=None)
                return v
            return tf.nest.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica._beamtrain = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def _worker(config: LoopConfig, strategy) -> Tuple[int, bool]:
    """This process's worker index and whether it is the chief (writes the results)."""
    if not config.multi_worker:
        return 0, True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    chief = task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                              and "chief" not in resolver.cluster_spec().as_dict())
    return int(task_id or 0), bool(chief)


def train(config: LoopConfig, task: Task) -> Dict:
    """Train ``task``'s model to ``config.steps`` (resuming from a checkpoint), evaluate,
    write ``model.keras`` and ``metrics.json`` in ``config.model_dir``; returns the metrics."""
    from trainer import input_pipeline as ip

    if not config.force:
        try:
            ip.check_dataset(config.data_dir)
        except ip.DatasetNotReady as e:
            raise SystemExit(f"error: {e}")
    if config.backend == "jax":
        strategy, devices = None, jax_devices()
        if config.cpu_replicas and len(devices) < config.cpu_replicas:
            raise SystemExit(f"error: wanted {config.cpu_replicas} CPU replicas, JAX has "
                             f"{len(devices)} devices (XLA_FLAGS is read when JAX starts)")
    else:
        strategy, devices = make_strategy(config.cpu_replicas, config.multi_worker)
    import keras

    if keras.backend.backend() != config.backend:
        raise SystemExit(f"error: --backend {config.backend}, but Keras runs on "
                         f"{keras.backend.backend()} (set KERAS_BACKEND before Keras is imported; "
                         "python -m trainer.train does it)")
    replicas = strategy.num_replicas_in_sync if strategy is not None else len(devices)
    if config.batch_size % replicas:
        raise SystemExit(f"--batch_size {config.batch_size} must be divisible by the "
                         f"{replicas} replicas")
    worker, chief = _worker(config, strategy)
    task.prepare(strategy)
    state = read_state(os.path.join(config.model_dir, CHECKPOINT_DIR))
    jit = choose_jit(config.jit_compile, devices, task.bounded_shapes())
    task.jit_compile = jit  # bucket batching pads to fixed widths under XLA

    precision = choose_precision(config.precision, devices)
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(config.seed)
    if strategy is None and len(devices) > 1:
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=keras.distribution.list_devices()))

    # Workers other than the chief write their checkpoints and logs aside (every
    # worker must save: saving may run collective ops), and drop them at the end.
    checkpoint_dir = os.path.join(config.model_dir, CHECKPOINT_DIR)
    own_dir = config.model_dir if chief else os.path.join(config.model_dir, f".worker-{worker}")
    tf.io.gfile.makedirs(own_dir)
    spe = choose_steps_per_execution(config.steps_per_execution, devices, config.interval,
                                     max(1, config.steps - state["step"]))
    if spe > 1 and strategy is not None and replicas > 1:
        # Keras 3's multi-step loop fails under tf.distribute with several replicas
        # ("You must feed a value for placeholder tensor", keras-team/keras#19246).
        print(f"note: --steps_per_execution {spe} runs as 1 under MirroredStrategy with "
              f"{replicas} replicas (Keras issue 19246); the JAX backend takes it")
        spe = 1
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = task.build_model()
        model.compile(optimizer=make_optimizer(config), jit_compile=jit, steps_per_execution=spe,
                      **task.compile_args())
        model.optimizer.build(model.trainable_variables)
    if state["step"]:
        model.load_weights(os.path.join(checkpoint_dir, WEIGHTS))
        logging.info("resumed from step %d (checkpoint interval %d)", state["step"], state["epoch"])
        print(f"resuming from step {state['step']}")

    throughput = {"steps": 0, task.unit: 0.0, "seconds": 0.0, "last_loss": float("nan")}
    if state["step"] < config.steps:
        # exact resume: continue the same input stream past the batches trained on
        skip = 0 if config.nondeterministic else state["step"]
        dataset = task.train_dataset(strategy, state["epoch"], skip)
        if strategy is not None and replicas > 1:
            _build_from_spec(model, strategy, dataset)
        if config.multi_worker:
            _patch_scalar_log_reduce()
        history = model.fit(
            dataset,
            epochs=math.ceil(config.steps / config.interval), steps_per_epoch=config.interval,
            initial_epoch=state["epoch"],
            callbacks=training_callbacks(
                config, _throughput_callback(task, throughput),
                checkpoint_dir=os.path.join(own_dir, CHECKPOINT_DIR),
                log_dir=os.path.join(own_dir, "logs")),
            verbose=config.verbose if chief else 0, shuffle=False)  # the input pipeline shuffles
        losses = [float(x) for x in history.history.get("loss", [])]
        if losses:
            throughput["last_loss"] = losses[-1]
            throughput["interval_losses"] = losses

    timed = throughput.get("timed_steps", 0)
    metrics = {
        "steps": int(model.optimizer.iterations.numpy()),
        "final_train_loss": throughput["last_loss"],
        "first_train_loss": throughput.get("first_loss"),
        # mean training loss of each checkpoint interval run in this process
        "interval_losses": throughput.get("interval_losses", []),
        f"{task.unit}_per_s": (throughput[task.unit] / throughput["seconds"])
        if throughput["seconds"] else None,
        "step_time_ms": (1000.0 * throughput["seconds"] / timed) if timed else None,
        "replicas": replicas,
        "devices": devices,
        "precision": precision,
        "global_batch_size": config.batch_size,
        "backend": config.backend,
        "jit_compile": jit,
        "steps_per_execution": spe,
        "workers": strategy.extended._num_workers if config.multi_worker else 1,  # noqa: SLF001
        "exact_resume": not config.nondeterministic,
    }
    metrics.update(task.describe(model))
    metrics.update(task.evaluate(model, state["epoch"]))
    metrics.update(task.extra_metrics(model, strategy, state["epoch"], metrics))
    model.save(os.path.join(own_dir, "model.keras"))
    with tf.io.gfile.GFile(os.path.join(own_dir, "metrics.json"), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    if not chief:
        tf.io.gfile.rmtree(own_dir)
    return metrics
