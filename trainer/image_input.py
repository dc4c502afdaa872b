"""tf.data input for beamtrain image shards: interleave, shuffle, batch-parse, decode, augment.

The shards are those of the image pipeline's output contract:
``DIR/data/{train,validation}-SSSSS-of-NNNNN.tfrecord`` holding
``tf.train.Example`` with ``image/encoded`` (JPEG bytes), ``image/format``,
``image/height``, ``image/width``, ``image/id`` and either
``image/class/label`` (int64 class index) or ``caption/text`` and
``caption/input_ids`` (SentencePiece ids, 0 = pad). ``DIR/labels.txt`` (may be
absent) names the classes, one per line, in index order.

Each element this module yields is, for classification::

    (image float32[B, S, S, 3], label int32[B])

and with ``captions=True``::

    ({"image": float32[B, S, S, 3], "caption_ids": int32[B, L]}, caption_ids int32[B, L])

where ``L`` is the longest caption of that batch (dynamic padding with 0),
never more than ``max_caption_len``; the targets are the caption ids
themselves (a captioning model shifts them for teacher forcing). With
``with_ids`` the features are a dict holding ``image`` and the record's
``id`` (tests, audits).

Steps, in order:

1. shuffle the shard files with a seed (training);
2. shard per input pipeline (``tf.distribute.InputContext``): by file when
   there are at least as many files as pipelines, otherwise by record after
   reading; tf.distribute's auto-sharding is switched off, since the pipeline
   shards itself;
3. ``interleave`` TFRecord readers (``cycle_length``, parallel calls,
   ``deterministic`` a flag); optional ``cache`` of the serialized records;
   ``shuffle``; ``repeat`` for training;
4. parse in batches of records (``tf.io.parse_example``), then unbatch;
5. decode, one image per map call, in parallel:

   * training -- Inception-style random resized crop on the fast path:
     ``sample_distorted_bounding_box`` draws a window (area ``crop_scale`` of
     the image, aspect ratio ``crop_ratio``) from the JPEG header's shape and
     ``decode_and_crop_jpeg`` decodes only that window; resize to
     ``image_size`` squared; random horizontal flip; a small random rotation
     (``ImageProjectiveTransformV3`` with a rotation about the centre,
     reflected borders). All draws are stateless, seeded from ``seed``, the
     pipeline and the element's position, so a seeded run repeats exactly
     (with ``deterministic``) while every epoch sees new augmentations;
   * evaluation -- decode, resize the shorter side to ``image_size /
     eval_crop_fraction``, centre crop ``image_size`` squared; no randomness;

   then scale to [0, 1] and normalise with the ImageNet mean and std (or,
   with ``uint8``, round to uint8 pixels: a quarter of the bytes cross to
   the accelerator, and the model's ``ImageNormalization`` layer
   (:mod:`trainer.model`)
   normalises there);
6. ``batch`` (``padded_batch`` for captions: each batch padded to its own
   longest caption);
7. skip ``skip_batches`` (exact resume), ``prefetch(AUTOTUNE)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Tuple

import tensorflow as tf

from trainer.input_pipeline import per_replica, read_records

__all__ = ["ImageInputConfig", "make_image_dataset", "distributed_image_dataset",
           "decode_train_image", "decode_eval_image", "rotate", "normalize",
           "IMAGENET_MEAN", "IMAGENET_STD", "PAD_ID"]

AUTOTUNE = tf.data.AUTOTUNE
PAD_ID = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class ImageInputConfig:
    image_size: int = 224  # output images are image_size x image_size
    batch_size: int = 32  # per input pipeline (the trainer divides the global batch)
    training: bool = True  # augment, shuffle and repeat; else the deterministic eval path
    seed: int = 0
    deterministic: bool = False
    cache: bool = False  # cache the serialized records (before decoding) in memory
    cycle_length: int = 4
    shuffle_buffer: int = 4096  # records; they are JPEG bytes, so mind the memory
    parse_batch: int = 128  # records parsed per parse_example call
    captions: bool = False  # yield caption ids instead of class labels
    max_caption_len: int = 64
    crop_scale: Tuple[float, float] = (0.08, 1.0)  # crop area / image area (training)
    crop_ratio: Tuple[float, float] = (3 / 4, 4 / 3)  # crop width / height (training)
    flip: bool = True  # random horizontal flip (training)
    max_rotation: float = 10.0  # degrees, uniform in [-max, max] (training); 0 = off
    eval_crop_fraction: float = 0.875  # eval: shorter side resized to image_size / this
    with_ids: bool = False  # keep each image's record id (tests, audits)
    uint8: bool = False  # yield uint8 pixels (4x fewer bytes to the device); the model normalises
    skip_batches: int = 0  # batches to skip at the start (exact resume)
    record_counts: Optional[tuple] = None  # ((file, records), ...) from manifest.json

    def __post_init__(self):
        if self.image_size < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.parse_batch < 1 or self.cycle_length < 1 or self.shuffle_buffer < 1:
            raise ValueError("parse_batch, cycle_length and shuffle_buffer must be positive")
        if self.max_caption_len < 1:
            raise ValueError(f"max_caption_len must be positive, got {self.max_caption_len}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        lo, hi = self.crop_ratio
        if not 0.0 < lo <= hi:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if not 0.0 <= self.max_rotation <= 180.0:
            raise ValueError(f"max_rotation must be in [0, 180] degrees, got {self.max_rotation}")
        if not 0.0 < self.eval_crop_fraction <= 1.0:
            raise ValueError(f"eval_crop_fraction must be in (0, 1], got {self.eval_crop_fraction}")


# --------------------------------------------------------------------------
# Parsing


def _parse(serialized, config: ImageInputConfig):
    """A batch of serialized Examples -> dict of batched features."""
    spec = {"image/encoded": tf.io.FixedLenFeature([], tf.string)}
    if config.with_ids:
        spec["image/id"] = tf.io.FixedLenFeature([], tf.string, default_value=b"")
    if config.captions:
        spec["caption/input_ids"] = tf.io.RaggedFeature(tf.int64)
    else:
        spec["image/class/label"] = tf.io.FixedLenFeature([], tf.int64)
    parsed = tf.io.parse_example(serialized, spec)
    out = {"encoded": parsed["image/encoded"]}
    if config.with_ids:
        out["id"] = parsed["image/id"]
    if config.captions:
        ids = parsed["caption/input_ids"]
        ids = tf.ragged.boolean_mask(ids, tf.not_equal(ids, PAD_ID))  # stored padding, if any
        out["caption_ids"] = tf.cast(ids[:, : config.max_caption_len], tf.int32)
    else:
        out["label"] = tf.cast(parsed["image/class/label"], tf.int32)
    return out


def _dense_row(row):
    # unbatched rows of a ragged batch may come typed ragged (rank 0): make them dense
    return row.flat_values if isinstance(row, tf.RaggedTensor) else row


# --------------------------------------------------------------------------
# Decoding and augmentation


def normalize(image):
    """[0, 255] float pixels -> ImageNet-normalised float32."""
    image = tf.cast(image, tf.float32) / 255.0
    return (image - tf.constant(IMAGENET_MEAN, tf.float32)) / tf.constant(IMAGENET_STD, tf.float32)


def _finish_pixels(image, config: "ImageInputConfig"):
    """Float [0, 255] pixels -> what the pipeline yields: normalised float32, or (``uint8``)
    rounded uint8 for the model to normalise on the device."""
    if config.uint8:
        return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return normalize(image)


def rotate(image, angle):
    """Rotate an [H, W, C] float image by ``angle`` radians about its centre.

    Borders are filled by reflection (no black corners). The transform maps
    output pixel coordinates to input ones, as ``ImageProjectiveTransformV3``
    expects: ``[a0, a1, a2, b0, b1, b2, c0, c1]``.
    """
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
    y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
    transform = tf.reshape(tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0]), [1, 8])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.expand_dims(tf.cast(image, tf.float32), 0), transforms=transform,
        output_shape=shape[:2], fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    return out[0]


def decode_train_image(encoded, seed, config: ImageInputConfig):
    """JPEG bytes -> augmented, normalised float32 [S, S, 3]; ``seed`` is int64[2].

    Random resized crop decoding only the crop window, resize, flip, rotation.
    """
    crop_seed, flip_seed, angle_seed = tf.unstack(tf.random.split(seed, 3))
    shape = tf.io.extract_jpeg_shape(encoded)  # header only: no decode
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=crop_seed,
        min_object_covered=0.0, aspect_ratio_range=config.crop_ratio,
        area_range=config.crop_scale, max_attempts=10, use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    image = tf.io.decode_and_crop_jpeg(encoded, window, channels=3)
    image = tf.image.resize(image, [config.image_size, config.image_size], method="bilinear")
    if config.flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    if config.max_rotation > 0:
        limit = config.max_rotation * math.pi / 180.0
        angle = tf.random.stateless_uniform([], angle_seed, -limit, limit)
        image = rotate(image, angle)
    image = _finish_pixels(image, config)
    return tf.ensure_shape(image, [config.image_size, config.image_size, 3])


def decode_eval_image(encoded, config: ImageInputConfig):
    """JPEG bytes -> normalised float32 [S, S, 3]: shorter side resized, centre crop."""
    image = tf.io.decode_jpeg(encoded, channels=3)
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    size = config.image_size
    short = tf.cast(tf.math.ceil(size / config.eval_crop_fraction - 1e-6), tf.float32)
    scale = short / tf.minimum(h, w)
    new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), size)
    new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), size)
    image = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear")
    top = (new_h - size) // 2
    left = (new_w - size) // 2
    image = image[top: top + size, left: left + size, :]
    image = _finish_pixels(image, config)
    return tf.ensure_shape(image, [size, size, 3])


# --------------------------------------------------------------------------
# The pipeline


def _with_options(ds: tf.data.Dataset, config: ImageInputConfig) -> tf.data.Dataset:
    options = tf.data.Options()
    # This pipeline shards itself (by file, or by record when there are fewer
    # files than pipelines): tf.distribute's auto-sharding stays off.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = config.deterministic
    return ds.with_options(options)


def _shuffle_buffer(config: ImageInputConfig, stats: Optional[dict]) -> int:
    """``shuffle_buffer``, capped at the record count of stats.json when known."""
    records = (stats or {}).get("records_out")
    if isinstance(records, int) and records > 0:
        return max(1, min(config.shuffle_buffer, records))
    return config.shuffle_buffer


def _element_seed_base(config: ImageInputConfig, pipeline_id: int) -> int:
    """Each pipeline draws its own augmentations (int64-safe)."""
    return (config.seed * 1_000_003 + pipeline_id) % (1 << 62)


def make_image_dataset(files: Sequence[str], config: ImageInputConfig,
                       input_context: Optional[tf.distribute.InputContext] = None,
                       stats: Optional[dict] = None) -> tf.data.Dataset:
    """The image input pipeline for one replica (or for everything without a context).

    ``stats`` is the output's stats.json, when there is one: its record count
    caps the shuffle buffer.
    """
    files = list(files)
    if not files:
        raise ValueError("make_image_dataset: no shard files given")
    training = config.training
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    ds = read_records(files, input_context, training=training, seed=config.seed,
                      cycle_length=config.cycle_length, block_length=8,
                      deterministic=config.deterministic, cache=config.cache,
                      shuffle_buffer=_shuffle_buffer(config, stats) if training else 1,
                      record_counts=dict(config.record_counts) if config.record_counts else None)

    ds = ds.batch(config.parse_batch)
    ds = ds.map(lambda s: _parse(s, config), num_parallel_calls=AUTOTUNE,
                deterministic=config.deterministic)
    ds = ds.unbatch()

    if training:
        # one stateless seed per element: [pipeline's base, element index];
        # the index keeps counting across epochs, so augmentations never repeat
        base = _element_seed_base(config, pipeline_id)
        seeds = tf.data.Dataset.counter().map(
            lambda i: tf.stack([tf.constant(base, tf.int64), i]))
        ds = tf.data.Dataset.zip(ds, seeds)
        decode = lambda rec, seed: (rec, decode_train_image(rec["encoded"], seed, config))
    else:
        decode = lambda rec: (rec, decode_eval_image(rec["encoded"], config))

    def to_example(rec, image):
        if config.captions:
            caption = _dense_row(rec["caption_ids"])
            features = {"image": image, "caption_ids": caption}
            target = caption
        else:
            features = {"image": image} if config.with_ids else image
            target = rec["label"]
        if config.with_ids:
            features["id"] = rec["id"]
        return features, target

    ds = ds.map(lambda *a: to_example(*decode(*a)), num_parallel_calls=AUTOTUNE,
                deterministic=config.deterministic)

    B = config.batch_size
    if config.captions:
        size = config.image_size
        features_shape = {"image": [size, size, 3], "caption_ids": [None]}
        features_pad = {"image": tf.constant(0, tf.uint8) if config.uint8 else 0.0,
                        "caption_ids": PAD_ID}
        if config.with_ids:
            features_shape["id"] = []
            features_pad["id"] = b""
        ds = ds.padded_batch(B, padded_shapes=(features_shape, [None]),
                             padding_values=(features_pad, PAD_ID), drop_remainder=training)
    else:
        ds = ds.batch(B, drop_remainder=training)
    if config.skip_batches:
        ds = ds.skip(config.skip_batches)  # exact resume: the batches already trained on
    return _with_options(ds.prefetch(AUTOTUNE), config)


def distributed_image_dataset(strategy: tf.distribute.Strategy, files: Sequence[str],
                              config: ImageInputConfig, global_batch_size: int,
                              stats: Optional[dict] = None):
    """One input pipeline per replica, each reading its own files (or records).

    Batches are sized globally: each replica gets ``global_batch_size /
    replicas`` images.
    """
    return per_replica(strategy, global_batch_size, lambda ctx, batch: make_image_dataset(
        files, dataclasses.replace(config, batch_size=batch), ctx, stats=stats))
