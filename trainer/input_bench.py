"""Input pipeline throughput: real tokens/s and padding efficiency, per batching mode.

    python -m trainer.input_bench --data_dir DIR [--seq_len 512] [--batch_size 32] [--batches 1500]

For each mode (``pad``: padding to the longest sequence of the batch, the
baseline; ``bucket``; ``tf_bucket``; ``pack``) it times ``--batches`` training
batches through the whole pipeline (shard files read from disk, interleave,
shuffle, batch-parse, cut, batch, prefetch) and prints

* real tokens/s: target tokens with weight 1 (padding and cross-segment
  positions excluded) per second;
* padding efficiency: real tokens / padded tokens.

The loop runs inside TensorFlow (``Dataset.reduce``), so Python iteration
costs do not count against the pipeline.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from trainer import input_pipeline as ip  # noqa: E402


def measure(data_dir: str, mode: str, seq_len: int, batch_size: int, batches: int,
            cache: bool = False, piece_shuffle: int = -1, deterministic: bool = True) -> dict:
    files = ip.shard_files(data_dir, "train")
    config = ip.InputConfig(seq_len=seq_len, batch_size=batch_size, mode=mode, cache=cache,
                            piece_shuffle=piece_shuffle, deterministic=deterministic,
                            record_counts=ip.shard_record_counts(data_dir))
    ds = ip.make_dataset(files, config, stats=ip.load_stats(data_dir))

    def run(n):
        return ds.take(n).reduce(
            (tf.constant(0.0, tf.float64), tf.constant(0, tf.int64)),
            lambda acc, el: (acc[0] + tf.reduce_sum(tf.cast(el[2], tf.float64)),
                             acc[1] + tf.size(el[2], out_type=tf.int64)))

    run(min(50, batches))  # warm up: trace functions, fill buffers
    start = time.perf_counter()
    real, padded = run(batches)
    seconds = time.perf_counter() - start
    real, padded = float(real), int(padded)
    return {"mode": mode, "tokens_per_s": real / seconds, "efficiency": real / max(1, padded),
            "batches_per_s": batches / seconds}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=32, help="rows per batch (one replica)")
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("--modes", default="pad,bucket,tf_bucket,pack")
    parser.add_argument("--cache", action="store_true", help="cache parsed records in memory")
    parser.add_argument("--piece_shuffle", type=int, default=-1,
                        help="piece shuffle buffer (-1: the trainer's auto size, 0: off)")
    parser.add_argument("--nondeterministic", action="store_true",
                        help="let tf.data reorder (the trainer's --nondeterministic)")
    args = parser.parse_args(argv)
    print(f"# tf.data input, {args.data_dir}: seq_len {args.seq_len}, batch {args.batch_size}, "
          f"{args.batches} batches per mode, {os.cpu_count()} CPU cores")
    results = [measure(args.data_dir, m, args.seq_len, args.batch_size, args.batches, args.cache,
                       args.piece_shuffle, not args.nondeterministic)
               for m in args.modes.split(",")]
    for r in results:
        label = {"pad": "pad to longest (baseline)"}.get(r["mode"], r["mode"])
        print(f"{label:<28} {r['tokens_per_s'] / 1e6:8.2f} M real tokens/s   "
              f"padding efficiency {r['efficiency']:.3f}   {r['batches_per_s']:7.0f} batches/s")
    by_mode = {r["mode"]: r for r in results}
    if "bucket" in by_mode:
        b = by_mode["bucket"]
        ok = b["tokens_per_s"] >= 10e6 and b["efficiency"] >= 0.9
        print(f"bucket: {b['tokens_per_s'] / 1e6:.1f} M tokens/s at efficiency {b['efficiency']:.3f} "
              f"(target: >= 10 M tokens/s and >= 0.90): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
