"""`make bench`: every side-by-side benchmark, one after the other, in one run.

    python -m benchmarks.run [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpora, for a smoke run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("datatrove").setLevel(logging.ERROR)
    from benchmarks import text_bench

    text_bench.main(["--mb", "2" if args.quick else "16", "--datatrove_mb", "0.5" if args.quick else "2"])
    print()
    from benchmarks import minhash_bench

    minhash_bench.main(["--mb", "1" if args.quick else "4"])
    print()
    from benchmarks import pii_bench

    pii_bench.main(["--mb", "1" if args.quick else "8"])
    print()
    from benchmarks import image_bench

    image_bench.main(["--n", "20" if args.quick else "60"])
    print()
    from benchmarks import tokenizer_bench

    tokenizer_bench.main(["--mb", "2" if args.quick else "8"])
    print()
    from benchmarks import audio_bench

    audio_bench.main(["--files", "10" if args.quick else "40"])
    print()
    input_bench(quick=args.quick)
    print()
    from benchmarks import dedup_scaling

    dedup_scaling.main(["--sizes", "10000,100000" if args.quick else "10000,100000,1000000"])
    print()
    from benchmarks import hostile

    hostile.main(["--scale", "0.25" if args.quick else "1"])
    print()
    from benchmarks import languages

    languages.main([])  # held-out: the Debian Reference in nine languages (skipped without it)
    print()
    # and the Administrator's Handbook, sections paired with their English original
    languages.main(["--corpus", "handbook", "--pipeline_copies", "0"])

    print()
    gpu_bench()

    from benchmarks import scaling

    scaling.main(["--sizes", "3,10" if args.quick else "30,100,300,1000"])


def gpu_bench() -> None:
    """The trainer's model on an accelerator, under Keras's JAX backend, in its own process
    (the backend is chosen when Keras is first imported); skipped without a GPU."""
    import subprocess

    probe = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"],
                           capture_output=True, text=True, env=dict(os.environ, KERAS_BACKEND="jax"))
    if probe.returncode != 0 or probe.stdout.strip() not in ("gpu", "cuda", "rocm", "tpu"):
        print("# gpu_lm: skipped (no GPU for JAX here); run "
              "KERAS_BACKEND=jax python -m benchmarks.gpu_lm on a GPU machine")
        return
    subprocess.run([sys.executable, "-m", "benchmarks.gpu_lm"], cwd=ROOT,
                   env=dict(os.environ, KERAS_BACKEND="jax"), check=False)


def input_bench(quick: bool = False) -> None:
    """The trainer's tf.data input on the demo corpus's shards (built here, offline)."""
    import contextlib
    import io
    import shutil
    import tempfile

    from beam_pipelines import demo, text
    from trainer import input_bench as bench

    out = tempfile.mkdtemp(prefix="bench-input-")
    argv = []
    for pattern in demo.sample_inputs():
        argv += ["--input", pattern]
    with contextlib.redirect_stdout(io.StringIO()):
        text.run(argv + ["--output_dir", out, "--vocab_size", "4000"])
    bench.main(["--data_dir", out, "--batches", "300" if quick else "1500"])
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
