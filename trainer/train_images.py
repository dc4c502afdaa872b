"""Train a small CNN image classifier from scratch on beamtrain image shards.

    python -m trainer.train_images --data_dir DIR --model_dir M --steps N --batch_size GLOBAL \\
        [--image_size 64] [--width 32 --blocks 3] [--cpu_replicas K] [--checkpoint_every 100]

The loop (strategy, precision, compile, checkpoints and resume, metrics.json,
model export) is :mod:`trainer.loop`'s, the same as :mod:`trainer.train`'s;
this module supplies the classification task (:class:`ImageClassificationTask`):

* data: shards of the image output contract (:mod:`trainer.image_input`):
  JPEG ``image/encoded`` and an int64 ``image/class/label``. The number of
  classes is the line count of ``DIR/labels.txt``, or the largest label in
  the shards plus one when there is no labels.txt. One input pipeline per
  replica (``distribute_datasets_from_function``); ``--batch_size`` is
  global. Training images get a random resized crop, flip and small
  rotation; validation images a centre crop;
* model (:func:`build_cnn`): conv blocks of two 3x3 conv + group norm +
  ReLU, max pooling between blocks, global average pooling, a float32 dense
  output; cross-entropy loss and accuracy;
* metrics: images/s (console, TensorBoard ``M/logs``, metrics.json),
  validation loss and accuracy counted image by image.

Outputs (:mod:`trainer.loop`): ``M/checkpoints`` every ``--checkpoint_every``
steps (a restarted run resumes from the latest and stops at the same total
step count); ``M/metrics.json``: steps, first/final/per-interval train loss,
validation loss and accuracy, images/s, step time, replicas, devices,
precision; ``M/model.keras``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":  # --backend must reach Keras before TensorFlow imports it
    from trainer.backend import preselect

    preselect()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import loop  # noqa: E402

__all__ = ["parse_args", "CNNConfig", "build_cnn", "read_labels", "num_classes",
           "check_classification_shards", "max_label", "ImageClassificationTask", "train", "main"]

LABELS_FILE = "labels.txt"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a small CNN classifier on beamtrain image shards.")
    p.add_argument("--data_dir", required=True, help="a beamtrain image output directory")
    p.add_argument("--batch_size", type=int, default=64, help="global batch size (images)")
    p.add_argument("--image_size", type=int, default=64, help="training and evaluation image side")
    p.add_argument("--width", type=int, default=32, help="filters of the first block (doubling)")
    p.add_argument("--blocks", type=int, default=3, help="conv blocks")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--shuffle_buffer", type=int, default=4096)
    p.add_argument("--cycle_length", type=int, default=4)
    p.add_argument("--max_rotation", type=float, default=10.0, help="degrees; 0 = off")
    p.add_argument("--no_flip", action="store_true", help="no random horizontal flip")
    p.add_argument("--min_crop_scale", type=float, default=0.08,
                   help="smallest random crop, as a fraction of the image area")
    p.add_argument("--deterministic", action="store_true",
                   help="kept for old command lines: the input order is deterministic unless "
                        "--nondeterministic")
    p.add_argument("--cache", action="store_true", help="cache the serialized records in memory")
    p.add_argument("--eval_batches", type=int, default=0, help="validation batches (0 = whole split)")
    loop.add_loop_args(p, learning_rate=3e-3, weight_decay=1e-4)
    args = p.parse_args(argv)
    loop.check_loop_args(p, args)
    for name in ("image_size", "width", "blocks"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be positive")
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

    from trainer.model import ImageNormalization

    # uint8 pixels from the input pipeline, normalised on the device
    image = keras.Input(shape=(config.image_size, config.image_size, 3), name="image",
                        dtype="uint8")
    x = ImageNormalization(name="normalize")(image)
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


class ImageClassificationTask(loop.Task):
    """Classify the image shards' ``image/class/label``."""

    unit = "images"

    def __init__(self, args: argparse.Namespace):
        self.args = args

    def prepare(self, strategy):
        from trainer import input_pipeline as ip

        a = self.args
        try:
            self.train_files = ip.shard_files(a.data_dir, "train")
            check_classification_shards(self.train_files)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
        self.model_config = CNNConfig(
            num_classes=num_classes(a.data_dir, self.train_files), image_size=a.image_size,
            width=a.width, blocks=a.blocks, dropout=a.dropout)
        self.stats = ip.load_stats(a.data_dir)
        self.record_counts = ip.shard_record_counts(a.data_dir)

    def input_config(self, epoch: int, skip: int = 0):
        from trainer import image_input as ii

        a = self.args
        exact = not getattr(a, "nondeterministic", False)
        return ii.ImageInputConfig(
            image_size=a.image_size, batch_size=a.batch_size, training=True,
            # exact resume continues the stream; otherwise a resumed run reshuffles
            seed=a.seed if exact else a.seed + epoch, skip_batches=skip, uint8=True,
            record_counts=self.record_counts,
            deterministic=exact, cache=a.cache, cycle_length=a.cycle_length,
            shuffle_buffer=a.shuffle_buffer, crop_scale=(a.min_crop_scale, 1.0),
            flip=not a.no_flip, max_rotation=a.max_rotation)

    def build_model(self):
        return build_cnn(self.model_config)

    def compile_args(self) -> Dict:
        import keras

        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def train_dataset(self, strategy, epoch: int, skip: int = 0):
        from trainer import image_input as ii

        return ii.distributed_image_dataset(strategy, self.train_files,
                                            self.input_config(epoch, skip),
                                            self.args.batch_size, stats=self.stats)

    def processed(self, batch: int, logs: Dict) -> float:
        return float((batch + 1) * self.args.batch_size)  # every step takes a full global batch

    def describe(self, model) -> Dict:
        a = self.args
        return {"image_size": a.image_size, "num_classes": self.model_config.num_classes,
                "model": {"width": a.width, "blocks": a.blocks,
                          "parameters": int(model.count_params())}}

    def evaluate(self, model, epoch: int) -> Dict:
        """Loss and accuracy on the whole validation split (centre crops, no augmentation).

        Counted here, image by image, rather than by ``model.evaluate``: under
        MirroredStrategy that splits a short last batch across the replicas and
        fails when it does not divide evenly.
        """
        from trainer import image_input as ii
        from trainer import input_pipeline as ip

        empty = {"validation_loss": None, "validation_accuracy": None, "validation_images": 0}
        try:
            files = ip.shard_files(self.args.data_dir, "validation")
        except FileNotFoundError:
            return empty
        cfg = dataclasses.replace(self.input_config(epoch), training=False, deterministic=True,
                                  skip_batches=0)
        ds = ii.make_image_dataset(files, cfg, stats=self.stats)
        if self.args.eval_batches:
            ds = ds.take(self.args.eval_batches)

        import keras

        def counts(images, labels):
            logits = tf.cast(model(images, training=False), tf.float32)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
            return tf.reduce_sum(tf.cast(nll, tf.float64)), tf.reduce_sum(tf.cast(correct, tf.int64))

        if keras.backend.backend() == "tensorflow":
            step = tf.function(counts)
        else:  # JAX: the model runs on NumPy input, the counting in TensorFlow eagerly
            def step(images, labels):
                logits = tf.constant(np.asarray(model.predict_on_batch(images.numpy()), np.float32))
                return counts_from_logits(logits, labels)

            def counts_from_logits(logits, labels):
                nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
                correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
                return (tf.reduce_sum(tf.cast(nll, tf.float64)),
                        tf.reduce_sum(tf.cast(correct, tf.int64)))

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


def train(args: argparse.Namespace) -> Dict:
    return loop.train(loop.LoopConfig.from_args(args), ImageClassificationTask(args))


def main(argv: Optional[List[str]] = None) -> Dict:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    loop.select_backend(args)
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
