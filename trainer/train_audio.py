"""Train a small CTC speech recogniser from scratch on beamtrain audio shards.

    python -m trainer.train_audio --data_dir DIR --model_dir M --steps N --batch_size GLOBAL \\
        [--n_mels 80] [--width 128] [--cpu_replicas K] [--checkpoint_every 100]

The loop (strategy, precision, checkpoints and exact resume, metrics.json,
model export, ``--backend``, ``--jit_compile``, ``--multi_worker``) is
:mod:`trainer.loop`'s; this module supplies the task: log-mel features from
:mod:`trainer.audio_input` (SpecAugment, duration buckets, dynamic padding),
clips with a transcript only, a model of two strided 1-D convolutions (4x
fewer frames), a bidirectional GRU and a dense layer over the transcript
vocabulary plus CTC's blank (id 0; transcript ids are shifted by one), and
Keras's CTC loss. The vocabulary is the transcripts' SentencePiece model,
``DIR/tokenizer/spm.model``. metrics.json gains ``seconds_per_s`` (audio
seconds trained on per second) and the validation CTC loss.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from typing import Dict, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":  # --backend must reach Keras before TensorFlow imports it
    from trainer.backend import preselect

    preselect()

import tensorflow as tf  # noqa: E402

from trainer import loop  # noqa: E402

__all__ = ["parse_args", "build_ctc_model", "AudioCtcTask", "train", "main"]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a small CTC model on beamtrain audio shards.")
    p.add_argument("--data_dir", required=True, help="a beamtrain audio output directory")
    p.add_argument("--batch_size", type=int, default=16, help="global batch size (clips)")
    p.add_argument("--n_mels", type=int, default=80)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--shuffle_buffer", type=int, default=2048)
    p.add_argument("--eval_batches", type=int, default=20)
    loop.add_loop_args(p, learning_rate=1e-3, weight_decay=0.01)
    args = p.parse_args(argv)
    loop.check_loop_args(p, args)
    return args


def _vocab_size(data_dir: str) -> int:
    from trainer.train import vocab_size

    try:
        return vocab_size(data_dir)
    except FileNotFoundError:
        raise SystemExit(f"error: no tokenizer in {data_dir}/tokenizer: CTC training needs "
                         "transcripts (the audio pipeline trains a tokenizer on them)") from None


def build_ctc_model(n_mels: int, vocab_size: int, width: int = 128):
    """[B, T, n_mels] log-mel -> [B, T/4, vocab + 1] logits (0: CTC's blank)."""
    import keras
    from keras import layers

    features = keras.Input(shape=(None, n_mels), name="features")
    lengths = keras.Input(shape=(), dtype="int32", name="feature_lengths")
    x = layers.Conv1D(width, 5, strides=2, padding="same", activation="gelu", name="conv1")(features)
    x = layers.Conv1D(width, 5, strides=2, padding="same", activation="gelu", name="conv2")(x)
    x = layers.LayerNormalization(name="norm")(x)
    x = layers.Bidirectional(layers.GRU(width, return_sequences=True), name="bigru")(x)
    logits = layers.Dense(vocab_size + 1, dtype="float32", name="logits")(x)
    return keras.Model({"features": features, "feature_lengths": lengths}, logits, name="ctc")


class AudioCtcTask(loop.Task):
    """CTC on the audio shards' transcripts."""

    unit = "clips"

    def __init__(self, args: argparse.Namespace):
        self.args = args

    def prepare(self, strategy):
        from trainer import input_pipeline as ip

        a = self.args
        self.vocab = _vocab_size(a.data_dir)
        self.train_files = ip.shard_files(a.data_dir, "train")
        self.record_counts = ip.shard_record_counts(a.data_dir)
        manifest = ip.load_stats(a.data_dir) or {}
        self.sample_rate = 16000
        try:
            import json

            with tf.io.gfile.GFile(os.path.join(a.data_dir, "manifest.json")) as f:
                self.sample_rate = int(json.load(f)["config"]["audio"]["sample_rate"])
        except (KeyError, ValueError, TypeError, tf.errors.OpError):
            pass
        self.stats = manifest

    def input_config(self, epoch: int, skip: int = 0, training: bool = True):
        from trainer import audio_input as ai

        a = self.args
        exact = not getattr(a, "nondeterministic", False)
        return ai.AudioInputConfig(
            sample_rate=self.sample_rate, batch_size=a.batch_size, n_mels=a.n_mels,
            training=training, seed=a.seed if exact else a.seed + epoch, deterministic=exact,
            shuffle_buffer=a.shuffle_buffer, skip_batches=skip, record_counts=self.record_counts,
            require_transcript=True)

    def build_model(self):
        return build_ctc_model(self.args.n_mels, self.vocab, self.args.width)

    def compile_args(self) -> Dict:
        import keras

        return {"loss": keras.losses.CTC()}

    def train_dataset(self, strategy, epoch: int, skip: int = 0):
        from trainer import audio_input as ai

        return ai.distributed_audio_dataset(strategy, self.train_files,
                                            self.input_config(epoch, skip), self.args.batch_size)

    def bounded_shapes(self) -> bool:
        return False  # clips of every length: XLA would compile per shape

    def processed(self, batch: int, logs: Dict) -> float:
        return float((batch + 1) * self.args.batch_size)

    def describe(self, model) -> Dict:
        a = self.args
        return {"n_mels": a.n_mels, "vocab_size": self.vocab,
                "model": {"width": a.width, "parameters": int(model.count_params())}}

    def evaluate(self, model, epoch: int) -> Dict:
        """Mean CTC loss over (the first ``--eval_batches`` of) the validation clips."""
        import warnings

        from trainer import audio_input as ai
        from trainer import input_pipeline as ip

        try:
            files = ip.shard_files(self.args.data_dir, "validation")
        except FileNotFoundError:
            return {"validation_loss": None}
        cfg = dataclasses.replace(self.input_config(epoch, training=False), record_counts=None)
        ds = ai.make_audio_dataset(files, cfg).take(self.args.eval_batches)
        if not any(True for _ in ds.take(1)):
            return {"validation_loss": None}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            results = model.evaluate(ds, verbose=0, return_dict=True)
        return {"validation_loss": float(results["loss"])}


def train(args: argparse.Namespace) -> Dict:
    return loop.train(loop.LoopConfig.from_args(args), AudioCtcTask(args))


def main(argv: Optional[List[str]] = None) -> Dict:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    loop.select_backend(args)
    metrics = train(args)
    print(f"model:   {os.path.join(args.model_dir, 'model.keras')}")
    print(f"metrics: {os.path.join(args.model_dir, 'metrics.json')}")
    print(f"steps {metrics['steps']}, train CTC loss {metrics['final_train_loss']:.3f}, "
          f"validation loss {metrics.get('validation_loss')}, {metrics['replicas']} replica(s), "
          f"{(metrics['clips_per_s'] or 0):.1f} clips/s")
    return metrics


if __name__ == "__main__":
    main()
