"""tf.data input for beamtrain audio shards: decode, log-mel, SpecAugment, duration buckets, padding.

The shards are those of the audio pipeline's output contract: Examples with
``audio/encoded`` (16-bit mono FLAC or WAV bytes), ``audio/format``,
``audio/sample_rate``, ``audio/num_samples``, ``audio/id`` and, where the clip
has one, ``transcript/input_ids``. Each element this module yields is::

    ({"features": float32[B, T, n_mels], "feature_lengths": int32[B]}, labels int32[B, L])

``labels`` are the transcript ids plus one (0 is CTC's blank and the
padding), ``T`` and ``L`` the batch's own longest (dynamic padding).

Steps, in order:

1. read the shards as the text input does (:func:`trainer.input_pipeline.read_records`:
   one pipeline per replica with equal record counts, shuffle, repeat);
2. parse in batches of records, then unbatch;
3. decode: WAV with ``tf.audio.decode_wav``; FLAC through PyAV (FFmpeg) in a
   ``tf.numpy_function`` (TensorFlow has no FLAC decoder); parallel calls;
4. log-mel features with ``tf.signal``: 25 ms windows every 10 ms, a 512-point
   FFT, ``n_mels`` mel bands, log, per-utterance mean and variance
   normalisation;
5. SpecAugment when training (Park et al. 2019): ``freq_masks`` bands of up to
   ``freq_mask`` mel bins and ``time_masks`` spans of up to ``time_mask``
   frames (at most 10% of the clip each) set to zero, drawn statelessly from
   the seed and the element's position;
6. ``bucket_by_sequence_length`` on the frame count (boundaries every
   ``bucket_seconds``), each batch padded to its own longest clip and label;
7. ``prefetch(AUTOTUNE)``.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from trainer.input_pipeline import per_replica, read_records

__all__ = ["AudioInputConfig", "log_mel", "spec_augment", "make_audio_dataset",
           "distributed_audio_dataset", "decode_flac"]

AUTOTUNE = tf.data.AUTOTUNE
HOP_S, WINDOW_S, FFT = 0.010, 0.025, 512


@dataclasses.dataclass(frozen=True)
class AudioInputConfig:
    sample_rate: int = 16000
    batch_size: int = 16  # per input pipeline
    n_mels: int = 80
    training: bool = True
    seed: int = 0
    deterministic: bool = True
    shuffle_buffer: int = 2048
    cycle_length: int = 4
    parse_batch: int = 64
    max_seconds: float = 30.0
    bucket_seconds: float = 2.0  # width of a duration bucket
    freq_masks: int = 2
    freq_mask: int = 15  # mel bins
    time_masks: int = 2
    time_mask: int = 40  # frames
    skip_batches: int = 0
    record_counts: Optional[tuple] = None
    with_ids: bool = False
    require_transcript: bool = False  # drop clips without one (CTC has nothing to learn there)

    def __post_init__(self):
        if self.batch_size < 1 or self.n_mels < 1 or self.sample_rate < 1000:
            raise ValueError("batch_size and n_mels must be positive, sample_rate >= 1000")


def decode_flac(data: bytes) -> np.ndarray:
    """FLAC (or any FFmpeg-readable) bytes -> float32 mono samples, through PyAV."""
    import av

    with av.open(io.BytesIO(bytes(data))) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
    if not chunks:
        return np.zeros(0, np.float32)
    x = np.concatenate(chunks)
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    return x.astype(np.float32)


def _decode(encoded, fmt):
    def wav():
        audio, _ = tf.audio.decode_wav(encoded, desired_channels=1)
        return tf.reshape(audio, [-1])

    def other():
        x = tf.numpy_function(decode_flac, [encoded], tf.float32, stateful=False)
        return tf.reshape(x, [-1])

    return tf.cond(tf.equal(fmt, b"wav"), wav, other)


def log_mel(samples, sample_rate: int, n_mels: int):
    """float32 [N] samples -> [frames, n_mels] normalised log-mel features."""
    frame = int(round(WINDOW_S * sample_rate))
    hop = int(round(HOP_S * sample_rate))
    samples = tf.pad(samples, [[0, tf.maximum(0, frame - tf.shape(samples)[0])]])
    stft = tf.signal.stft(samples, frame_length=frame, frame_step=hop, fft_length=FFT)
    power = tf.square(tf.abs(stft))
    mel = tf.signal.linear_to_mel_weight_matrix(n_mels, FFT // 2 + 1, sample_rate, 20.0,
                                                sample_rate / 2.0)
    features = tf.math.log(tf.matmul(power, mel) + 1e-6)
    mean, var = tf.nn.moments(features, axes=[0], keepdims=True)
    return (features - mean) / tf.sqrt(var + 1e-5)


def _mask(length, max_width, limit, seed):
    width = tf.random.stateless_uniform([], seed, 0, tf.maximum(1, tf.minimum(max_width, limit)) + 1,
                                        dtype=tf.int32)
    start = tf.random.stateless_uniform([], seed + 1, 0, tf.maximum(1, length - width + 1),
                                        dtype=tf.int32)
    idx = tf.range(length)
    return tf.logical_and(idx >= start, idx < start + width)


def spec_augment(features, seed, config: AudioInputConfig):
    """Zero ``freq_masks`` mel bands and ``time_masks`` time spans (SpecAugment)."""
    frames, bins = tf.shape(features)[0], tf.shape(features)[1]
    keep_t = tf.ones([frames], tf.bool)
    keep_f = tf.ones([bins], tf.bool)
    for i in range(config.freq_masks):
        keep_f &= ~_mask(bins, config.freq_mask, bins, seed + 2 * i)
    for i in range(config.time_masks):
        keep_t &= ~_mask(frames, config.time_mask, frames // 10, seed + 100 + 2 * i)
    keep = tf.logical_and(keep_t[:, None], keep_f[None, :])
    return tf.where(keep, features, tf.zeros_like(features))


def _parse(serialized):
    spec = {"audio/encoded": tf.io.FixedLenFeature([], tf.string),
            "audio/format": tf.io.FixedLenFeature([], tf.string),
            "audio/id": tf.io.FixedLenFeature([], tf.string),
            "transcript/input_ids": tf.io.RaggedFeature(tf.int64)}
    return tf.io.parse_example(serialized, spec)


def make_audio_dataset(files: Sequence[str], config: AudioInputConfig,
                       input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """The audio input pipeline for one replica (or for everything without a context)."""
    training = config.training
    ds = read_records(files, input_context, training=training, seed=config.seed,
                      cycle_length=config.cycle_length, block_length=8,
                      deterministic=config.deterministic, cache=False,
                      shuffle_buffer=config.shuffle_buffer,
                      record_counts=dict(config.record_counts) if config.record_counts else None)
    ds = ds.batch(config.parse_batch).map(_parse, num_parallel_calls=AUTOTUNE,
                                          deterministic=config.deterministic).unbatch()
    if config.require_transcript:
        ds = ds.filter(lambda rec: tf.size(rec["transcript/input_ids"]) > 0)
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    seeds = tf.data.Dataset.counter().map(
        lambda i: tf.stack([tf.constant(config.seed * 1_000_003 + pipeline_id, tf.int64), i]))

    def features_of(rec, seed):
        samples = _decode(rec["audio/encoded"], rec["audio/format"])
        samples = samples[: int(config.max_seconds * config.sample_rate)]
        feats = log_mel(samples, config.sample_rate, config.n_mels)
        if training:
            feats = spec_augment(feats, tf.cast(seed, tf.int32), config)
        ids = rec["transcript/input_ids"]
        ids = ids.flat_values if isinstance(ids, tf.RaggedTensor) else ids
        labels = tf.cast(ids, tf.int32) + 1  # 0: CTC's blank and the padding
        out = {"features": feats, "feature_lengths": tf.shape(feats)[0]}
        if config.with_ids:
            out["id"] = rec["audio/id"]
        return out, labels

    ds = tf.data.Dataset.zip(ds, seeds).map(features_of, num_parallel_calls=AUTOTUNE,
                                            deterministic=config.deterministic)
    frames_per_bucket = int(config.bucket_seconds / HOP_S)
    top = int(config.max_seconds / HOP_S) + 2
    boundaries = list(range(frames_per_bucket, top, frames_per_bucket))
    padded = ({"features": [None, config.n_mels], "feature_lengths": []}, [None])
    pad_values = ({"features": 0.0, "feature_lengths": 0}, 0)
    if config.with_ids:
        padded[0]["id"] = []
        pad_values[0]["id"] = b""
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda f, labels: f["feature_lengths"],
        bucket_boundaries=boundaries, bucket_batch_sizes=[config.batch_size] * (len(boundaries) + 1),
        padded_shapes=padded, padding_values=pad_values, drop_remainder=training)
    if config.skip_batches:
        ds = ds.skip(config.skip_batches)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = config.deterministic
    return ds.prefetch(AUTOTUNE).with_options(options)


def distributed_audio_dataset(strategy, files: Sequence[str], config: AudioInputConfig,
                              global_batch_size: int):
    """One audio input pipeline per replica; batches sized globally."""
    return per_replica(strategy, global_batch_size, lambda ctx, batch: make_audio_dataset(
        files, dataclasses.replace(config, batch_size=batch), ctx))
