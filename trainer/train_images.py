"""Train a small CNN image classifier from scratch on beamtrain image shards.

    python -m trainer.train_images --data_dir DIR --model_dir M --steps N --batch_size GLOBAL \\
        [--image_size 64] [--width 32 --blocks 3] [--cpu_replicas K] [--checkpoint_every 100]

* The shards follow the image output contract (:mod:`trainer.image_input`):
  JPEG ``image/encoded`` and an int64 ``image/class/label``. The number of
  classes is the line count of ``DIR/labels.txt``, or the largest label in
  the shards plus one when there is no labels.txt.
* The model (conv blocks of two 3x3 conv + group norm + ReLU, max pooling
  between blocks, global average pooling, a float32 dense output) is built
  and compiled inside ``MirroredStrategy.scope()`` (``make_strategy`` of
  :mod:`trainer.train`): every GPU, or ``--cpu_replicas K`` logical CPU
  devices, or the one CPU.
* One input pipeline per replica (``distribute_datasets_from_function``);
  ``--batch_size`` is global. Training images get a random resized crop,
  flip and small rotation; validation images a centre crop.
* Mixed precision on GPUs as in :mod:`trainer.train` (bfloat16 on compute
  capability 8.0+, float16 with loss scaling before); float32 on CPUs.
* AdamW with warmup and cosine decay; console progress with loss, accuracy,
  images/s and step time; the same in TensorBoard (``M/logs``).
* Checkpoints every ``--checkpoint_every`` steps (``M/checkpoints``, the same
  layout as :mod:`trainer.train`: weights with the optimizer state, and the
  step reached); a restarted run resumes from the latest and stops at the
  same total step count.
* ``M/metrics.json``: steps, first/final/per-interval train loss, validation
  loss and accuracy, images/s, step time, replicas, devices, precision;
  ``M/model.keras``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import time
from typing import Dict, List, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from trainer.train import (CHECKPOINT_DIR, STATE, WEIGHTS, _choose_precision,  # noqa: E402
                           make_strategy, record_step, training_callbacks)

__all__ = ["parse_args", "CNNConfig", "build_cnn", "read_labels", "num_classes", "train", "main"]

LABELS_FILE = "labels.txt"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a small CNN classifier on beamtrain image shards.")
    p.add_argument("--data_dir", required=True, help="a beamtrain image output directory")
    p.add_argument("--model_dir", required=True, help="checkpoints, logs, metrics.json, model.keras")
    p.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    p.add_argument("--batch_size", type=int, default=64, help="global batch size (images)")
    p.add_argument("--image_size", type=int, default=64, help="training and evaluation image side")
    p.add_argument("--width", type=int, default=32, help="filters of the first block (doubling)")
    p.add_argument("--blocks", type=int, default=3, help="conv blocks")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--learning_rate", type=float, default=3e-3)
    p.add_argument("--warmup_steps", type=int, default=None, help="default: 5%% of --steps")
    p.add_argument("--weight_decay", type=float, default=1e-4)
    p.add_argument("--shuffle_buffer", type=int, default=4096)
    p.add_argument("--cycle_length", type=int, default=4)
    p.add_argument("--max_rotation", type=float, default=10.0, help="degrees; 0 = off")
    p.add_argument("--no_flip", action="store_true", help="no random horizontal flip")
    p.add_argument("--min_crop_scale", type=float, default=0.08,
                   help="smallest random crop, as a fraction of the image area")
    p.add_argument("--deterministic", action="store_true", help="deterministic input order")
    p.add_argument("--cache", action="store_true", help="cache the serialized records in memory")
    p.add_argument("--checkpoint_every", type=int, default=100)
    p.add_argument("--eval_batches", type=int, default=0, help="validation batches (0 = whole split)")
    p.add_argument("--cpu_replicas", type=int, default=0,
                   help="split the CPU into K logical devices and mirror over them")
    p.add_argument("--precision", default="auto",
                   choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true",
                   help="train on a data folder without COMPLETED (an unfinished or failed run)")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="1: progress bar, 2: one line per checkpoint interval")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "image_size", "width", "blocks", "checkpoint_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be positive")
    if args.cpu_replicas < 0:
        p.error("--cpu_replicas must be >= 0")
    if not 0.0 < args.min_crop_scale <= 1.0:
        p.error("--min_crop_scale must be in (0, 1]")
    return args


# --------------------------------------------------------------------------
# Classes


def read_labels(data_dir: str) -> Optional[List[str]]:
    """The class names of ``DIR/labels.txt`` in index order, or None without the file."""
    path = os.path.join(data_dir, LABELS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        names = [line.strip() for line in f.read().splitlines()]
    while names and not names[-1]:
        names.pop()  # trailing blank lines
    if not names:
        raise ValueError(f"{path} lists no class")
    return names


def _first_example(files: Sequence[str]) -> Optional[tf.train.Example]:
    for raw in tf.data.TFRecordDataset(list(files)).take(1):
        return tf.train.Example.FromString(raw.numpy())
    return None


def check_classification_shards(files: Sequence[str]) -> None:
    """A clear error when the shards are not labelled images (e.g. captions only)."""
    example = _first_example(files)
    if example is None:
        raise ValueError(f"the training shards hold no record: {list(files)[:3]}")
    names = set(example.features.feature)
    if "image/encoded" not in names:
        raise ValueError("the shards hold no image/encoded feature: are they image shards?")
    if "image/class/label" not in names:
        hint = " (they hold captions)" if "caption/input_ids" in names else ""
        raise ValueError(f"train_images trains a classifier and needs image/class/label; "
                         f"the shards have none{hint}")


def max_label(files: Sequence[str]) -> int:
    """The largest ``image/class/label`` in the shards (-1 when there is none)."""
    spec = {"image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
    ds = tf.data.TFRecordDataset(list(files), num_parallel_reads=4).batch(1024)
    ds = ds.map(lambda s: tf.reduce_max(tf.io.parse_example(s, spec)["image/class/label"]),
                num_parallel_calls=tf.data.AUTOTUNE)
    return int(ds.reduce(tf.constant(-1, tf.int64), tf.maximum).numpy())


def num_classes(data_dir: str, files: Sequence[str]) -> int:
    """From labels.txt, else the largest label of the shards plus one."""
    names = read_labels(data_dir)
    if names is not None:
        return len(names)
    top = max_label(files)
    if top < 0:
        raise ValueError(f"no labels.txt in {data_dir} and no image/class/label in the shards")
    return top + 1


# --------------------------------------------------------------------------
# Model


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    num_classes: int
    image_size: int = 64
    width: int = 32  # filters of the first block; doubled per block
    blocks: int = 3
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("num_classes", "image_size", "width", "blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def build_cnn(config: CNNConfig):
    """Conv blocks (2 x [3x3 conv, group norm, ReLU], max pool between), GAP, dense logits.

    Group norm rather than batch norm: it behaves the same in training and
    evaluation and does not depend on the per-replica batch, which is small
    when a global batch is split over many replicas. (Batch norm's moving
    statistics lagged far enough behind on short runs to cost whole classes
    at evaluation.)
    """
    import keras
    from keras import layers

    image = keras.Input(shape=(config.image_size, config.image_size, 3), name="image")
    x = image
    for b in range(config.blocks):
        filters = config.width * (2 ** b)
        if b:
            x = layers.MaxPooling2D(2, padding="same", name=f"block{b}_pool")(x)
        for c in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{b}_conv{c}")(x)
            x = layers.GroupNormalization(min(8, filters), name=f"block{b}_norm{c}")(x)
            x = layers.ReLU(name=f"block{b}_relu{c}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    logits = layers.Dense(config.num_classes, dtype="float32", name="logits")(x)
    return keras.Model(image, logits, name="small_cnn")


# --------------------------------------------------------------------------
# Training


def _callbacks(args, checkpoint_dir: str, throughput: dict):
    import keras

    class Throughput(keras.callbacks.Callback):
        """images/s and step time into the logs (progress bar, TensorBoard)."""

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if logs is None:
                return
            elapsed = time.perf_counter() - self._start
            logs["images_per_s"] = args.batch_size / max(elapsed, 1e-9)
            logs["step_ms"] = elapsed * 1000.0
            record_step(throughput, logs, elapsed, images=args.batch_size)

    return training_callbacks(args, args.steps, checkpoint_dir, Throughput())


def _input_config(args, epoch: int):
    from trainer import image_input as ii

    return ii.ImageInputConfig(
        image_size=args.image_size, batch_size=args.batch_size, training=True,
        seed=args.seed + epoch,  # a resumed run reshuffles instead of replaying
        deterministic=args.deterministic, cache=args.cache, cycle_length=args.cycle_length,
        shuffle_buffer=args.shuffle_buffer, crop_scale=(args.min_crop_scale, 1.0),
        flip=not args.no_flip, max_rotation=args.max_rotation)


def train(args: argparse.Namespace) -> Dict:
    from trainer import input_pipeline as ip

    if not args.force:
        try:
            ip.check_dataset(args.data_dir)
        except ip.DatasetNotReady as e:
            raise SystemExit(f"error: {e}")
    strategy, devices = make_strategy(args.cpu_replicas)
    import keras

    from trainer import image_input as ii
    from trainer import input_pipeline as ip

    replicas = strategy.num_replicas_in_sync
    if args.batch_size % replicas:
        raise SystemExit(f"--batch_size {args.batch_size} must be divisible by the "
                         f"{replicas} replicas")
    try:
        train_files = ip.shard_files(args.data_dir, "train")
        check_classification_shards(train_files)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    classes = num_classes(args.data_dir, train_files)

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
    model_config = CNNConfig(num_classes=classes, image_size=args.image_size, width=args.width,
                             blocks=args.blocks, dropout=args.dropout)
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, args.steps // 20)
    with strategy.scope():
        model = build_cnn(model_config)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0, decay_steps=max(1, args.steps - warmup), alpha=0.1,
            warmup_target=args.learning_rate, warmup_steps=warmup)
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay,
                                             clipnorm=1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
        model.optimizer.build(model.trainable_variables)
    if state["step"]:
        model.load_weights(os.path.join(checkpoint_dir, WEIGHTS))
        logging.info("resumed from step %d (checkpoint interval %d)", state["step"], state["epoch"])
        print(f"resuming from step {state['step']}")

    stats = ip.load_stats(args.data_dir)
    input_config = _input_config(args, state["epoch"])
    throughput = {"steps": 0, "images": 0, "seconds": 0.0, "last_loss": float("nan")}
    if state["step"] < args.steps:
        dataset = ii.distributed_image_dataset(strategy, train_files, input_config,
                                               args.batch_size, stats=stats)
        history = model.fit(
            dataset, epochs=epochs, steps_per_epoch=interval, initial_epoch=state["epoch"],
            callbacks=_callbacks(args, checkpoint_dir, throughput), verbose=args.verbose,
            shuffle=False)  # the input pipeline shuffles
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
        "images_per_s": (throughput["images"] / throughput["seconds"]) if throughput["seconds"] else None,
        "step_time_ms": (1000.0 * throughput["seconds"] / max(1, throughput["steps"] - 2))
        if throughput["seconds"] else None,
        "replicas": replicas,
        "devices": devices,
        "precision": precision,
        "global_batch_size": args.batch_size,
        "image_size": args.image_size,
        "num_classes": classes,
        "model": {"width": args.width, "blocks": args.blocks,
                  "parameters": int(model.count_params())},
    }
    metrics.update(_evaluate(model, args, input_config, stats))
    model.save(os.path.join(args.model_dir, "model.keras"))
    with tf.io.gfile.GFile(os.path.join(args.model_dir, "metrics.json"), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def _evaluate(model, args, input_config, stats) -> Dict:
    """Loss and accuracy on the whole validation split (centre crops, no augmentation).

    Counted here, image by image, rather than by ``model.evaluate``: under
    MirroredStrategy that splits a short last batch across the replicas and
    fails when it does not divide evenly.
    """
    from trainer import image_input as ii
    from trainer import input_pipeline as ip

    empty = {"validation_loss": None, "validation_accuracy": None, "validation_images": 0}
    try:
        files = ip.shard_files(args.data_dir, "validation")
    except FileNotFoundError:
        return empty
    cfg = dataclasses.replace(input_config, training=False, deterministic=True)
    ds = ii.make_image_dataset(files, cfg, stats=stats)
    if args.eval_batches:
        ds = ds.take(args.eval_batches)

    @tf.function
    def step(images, labels):
        logits = tf.cast(model(images, training=False), tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
        return tf.reduce_sum(tf.cast(nll, tf.float64)), tf.reduce_sum(tf.cast(correct, tf.int64))

    loss_sum, correct, images = 0.0, 0, 0
    for batch_images, labels in ds:
        batch_loss, batch_correct = step(batch_images, labels)
        loss_sum += float(batch_loss)
        correct += int(batch_correct)
        images += int(labels.shape[0])
    if not images:
        return empty
    return {"validation_loss": loss_sum / images, "validation_accuracy": correct / images,
            "validation_images": images}


def main(argv: Optional[List[str]] = None) -> Dict:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    metrics = train(args)
    print(f"model:   {os.path.join(args.model_dir, 'model.keras')}")
    print(f"metrics: {os.path.join(args.model_dir, 'metrics.json')}")
    acc = metrics.get("validation_accuracy")
    print(f"steps {metrics['steps']}, train loss {metrics['final_train_loss']:.3f}, "
          f"validation accuracy {acc if acc is None else round(acc, 4)}, "
          f"{metrics['replicas']} replica(s), "
          f"{(metrics['images_per_s'] or 0):.0f} images/s")
    return metrics


if __name__ == "__main__":
    main()
