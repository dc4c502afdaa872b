"""Train a decoder-only language model from scratch on beamtrain shards.

    python -m trainer.train --data_dir DIR --model_dir M --steps N --batch_size GLOBAL \\
        [--seq_len 512 --layers 4 --width 256 --heads 4] [--batching bucket|pack|pad|tf_bucket] \\
        [--cpu_replicas K] [--checkpoint_every 100] [--jit_compile auto|on|off] \\
        [--steps_per_execution N] [--backend tensorflow|jax] [--multi_worker] [--batch_log FILE]

The loop (strategy, precision, compile, checkpoints and resume, metrics.json,
model export) is :mod:`trainer.loop`'s; this module supplies the language
model task (:class:`LanguageModelTask`):

* data: the tokenized shards of the text pipeline, the vocabulary size from
  ``DIR/tokenizer/spm.model`` (or ``tokenizer.json``, Hugging Face); one input pipeline
  per replica
  (``distribute_datasets_from_function``), each reading a distinct part of
  the files, length-bucketed or packed (:mod:`trainer.input_pipeline`);
  ``--batch_size`` is global;
* model: :func:`trainer.model.build_model`, a token-weighted loss, token
  count and masked NLL as metrics;
* metrics: tokens/s (console, TensorBoard ``M/logs``, metrics.json),
  validation loss and perplexity; with ``--input_check_steps``, whether the
  input pipeline kept up (step time on one cached batch vs on the real
  input).

Outputs (:mod:`trainer.loop`): ``M/checkpoints`` every ``--checkpoint_every``
steps (a restarted run resumes from the latest and stops at the same total
step count); ``M/metrics.json``: steps, first/final/per-interval train loss,
validation loss and perplexity, tokens/s, step time, replicas, devices,
precision; ``M/model.keras``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import time
import warnings
from typing import Dict, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":  # --backend must reach Keras before TensorFlow imports it
    from trainer.backend import preselect

    preselect()

import tensorflow as tf  # noqa: E402

from trainer import loop  # noqa: E402

__all__ = ["parse_args", "LanguageModelTask", "vocab_size", "train", "main"]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a decoder-only LM on beamtrain shards.")
    p.add_argument("--data_dir", required=True, help="a beamtrain output directory")
    p.add_argument("--batch_size", type=int, default=32, help="global batch size (rows)")
    p.add_argument("--seq_len", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--mlp_ratio", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batching", default="bucket", choices=["bucket", "tf_bucket", "pack", "pad"],
                   help="bucket: length-bucketed dynamic padding; pack: several documents per "
                        "row with segment ids (causal LM); pad: pad to the batch's longest")
    p.add_argument("--shuffle_buffer", type=int, default=10_000)
    p.add_argument("--cycle_length", type=int, default=4)
    p.add_argument("--deterministic", action="store_true",
                   help="kept for old command lines: the input order is deterministic unless "
                        "--nondeterministic")
    p.add_argument("--cache", action="store_true", help="cache the parsed records in memory")
    p.add_argument("--eval_batches", type=int, default=50, help="validation batches (0 = whole split)")
    p.add_argument("--input_check_steps", type=int, default=0,
                   help="after training, time this many steps on one cached batch and compare: "
                        "tells whether the input pipeline kept up")
    loop.add_loop_args(p, learning_rate=1e-3, weight_decay=0.01)
    args = p.parse_args(argv)
    loop.check_loop_args(p, args)
    if args.seq_len < 1:
        p.error("--seq_len must be positive")
    return args


def vocab_size(data_dir: str) -> int:
    """The vocabulary size of ``DIR/tokenizer/spm.model`` (SentencePiece) or
    ``DIR/tokenizer/tokenizer.json`` (Hugging Face tokenizers)."""
    hf = os.path.join(data_dir, "tokenizer", "tokenizer.json")
    if tf.io.gfile.exists(hf):
        from transforms.text.hf_tokenizer import HfEncoder

        with tf.io.gfile.GFile(hf, "rb") as f:
            return HfEncoder(f.read()).vocab_size
    import sentencepiece as spm

    path = os.path.join(data_dir, "tokenizer", "spm.model")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: the trainer needs tokenized shards "
                                "(run the text pipeline with the tokenize step)")
    with tf.io.gfile.GFile(path, "rb") as f:
        return spm.SentencePieceProcessor(model_proto=f.read()).get_piece_size()


class LanguageModelTask(loop.Task):
    """Next-token prediction on the text pipeline's tokenized shards."""

    unit = "tokens"

    def __init__(self, args: argparse.Namespace):
        self.args = args

    def prepare(self, strategy):
        from trainer import input_pipeline as ip
        from trainer.model import ModelConfig

        a = self.args
        self.model_config = ModelConfig(
            vocab_size=vocab_size(a.data_dir), seq_len=a.seq_len, layers=a.layers,
            width=a.width, heads=a.heads, mlp_ratio=a.mlp_ratio, dropout=a.dropout,
            packed=a.batching == "pack")
        self.stats = ip.load_stats(a.data_dir)
        self.train_files = ip.shard_files(a.data_dir, "train")
        self.record_counts = ip.shard_record_counts(a.data_dir)

    def input_config(self, epoch: int, skip: int = 0):
        from trainer import input_pipeline as ip

        a = self.args
        exact = not getattr(a, "nondeterministic", False)
        return ip.InputConfig(
            seq_len=a.seq_len, batch_size=a.batch_size, mode=a.batching,
            shuffle_buffer=a.shuffle_buffer, cycle_length=a.cycle_length,
            deterministic=exact, cache=a.cache,
            # exact resume continues the stream; otherwise a resumed run reshuffles
            seed=a.seed if exact else a.seed + epoch, skip_batches=skip,
            pad_widths=ip.width_ladder(a.seq_len)
            if a.batching == "bucket" and getattr(self, "jit_compile", False) else (),
            batch_log=getattr(a, "batch_log", None), record_counts=self.record_counts)

    def bounded_shapes(self) -> bool:
        # pack: one shape; bucket: padded to a fixed ladder of widths under XLA
        return self.args.batching in ("pack", "bucket")

    def build_model(self):
        from trainer.model import build_model

        return build_model(self.model_config)

    def compile_args(self) -> Dict:
        import keras

        from trainer.model import MaskedNLL, TokenCount

        return {"loss": keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True, reduction="mean_with_sample_weight"),
                "weighted_metrics": [TokenCount(), MaskedNLL()]}

    def train_dataset(self, strategy, epoch: int, skip: int = 0):
        from trainer import input_pipeline as ip

        return ip.distributed_dataset(strategy, self.train_files, self.input_config(epoch, skip),
                                      self.args.batch_size, training=True, stats=self.stats)

    def processed(self, batch: int, logs: Dict) -> float:
        return float(logs.get("tokens", 0.0))  # TokenCount: real tokens so far this interval

    def describe(self, model) -> Dict:
        a = self.args
        return {"seq_len": a.seq_len, "batching": a.batching,
                "model": {"layers": a.layers, "width": a.width, "heads": a.heads,
                          "vocab_size": self.model_config.vocab_size,
                          "parameters": int(model.count_params())}}

    def evaluate(self, model, epoch: int) -> Dict:
        """Token-weighted loss and perplexity on (the first ``--eval_batches`` of) validation."""
        from trainer import input_pipeline as ip

        a = self.args
        try:
            files = ip.shard_files(a.data_dir, "validation")
        except FileNotFoundError:
            return {"validation_loss": None, "validation_perplexity": None}
        cfg = dataclasses.replace(self.input_config(epoch), deterministic=True, batch_log=None,
                                  mode="bucket" if a.batching == "tf_bucket" else a.batching)
        ds = ip.make_dataset(files, cfg, training=False, stats=self.stats)
        if a.eval_batches:
            ds = ds.take(a.eval_batches)
        # the last batch is short: pad it with rows of weight 0 (they change no metric),
        # so it splits evenly over data-parallel devices
        ds = ds.map(lambda f, t, w: ip.pad_rows((f, t, w), a.batch_size))
        if not any(True for _ in ds.take(1)):
            return {"validation_loss": None, "validation_perplexity": None}
        with warnings.catch_warnings():
            # Keras calls the normal end of a finite dataset "ran out of data".
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            results = model.evaluate(ds, verbose=0, return_dict=True)
        nll = float(results["nll"])
        return {"validation_loss": nll, "validation_perplexity": math.exp(min(nll, 700.0)),
                "validation_tokens": float(results["tokens"])}

    def extra_metrics(self, model, strategy, epoch: int, metrics: Dict) -> Dict:
        if not self.args.input_check_steps:
            return {}
        return self._input_check(model, strategy, epoch, metrics["step_time_ms"])

    def _input_check(self, model, strategy, epoch: int, real_step_ms) -> Dict:
        """Step time on one batch held in memory vs on the real input: did the input keep up?"""
        import keras

        from trainer import input_pipeline as ip

        input_config = dataclasses.replace(self.input_config(epoch), batch_log=None)

        def one_batch_fn(ctx, batch):
            cfg = dataclasses.replace(input_config, batch_size=batch)
            return ip.make_dataset(self.train_files, cfg, ctx, training=True,
                                   stats=self.stats).take(1).cache().repeat()

        dataset = ip.per_replica(strategy, self.args.batch_size, one_batch_fn)
        times: List[float] = []

        class Timer(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                self._t = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                times.append(time.perf_counter() - self._t)

        model.fit(dataset, epochs=1, steps_per_epoch=self.args.input_check_steps,
                  callbacks=[Timer()], verbose=0)
        synthetic_ms = 1000.0 * sum(times[2:]) / max(1, len(times) - 2)
        return {"input_check": {
            "step_time_ms_real_input": real_step_ms,
            "step_time_ms_cached_batch": synthetic_ms,
            "input_kept_up": bool(real_step_ms is not None and real_step_ms <= 1.1 * synthetic_ms),
        }}


def train(args: argparse.Namespace) -> Dict:
    return loop.train(loop.LoopConfig.from_args(args), LanguageModelTask(args))


def main(argv: Optional[List[str]] = None) -> Dict:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    loop.select_backend(args)
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
