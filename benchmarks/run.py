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

    from benchmarks import scaling

    scaling.main(["--sizes", "3,10" if args.quick else "30,100,300,1000"])


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
