"""`make demo`: the text pipeline on the embedded corpus in data/sample/, on the DirectRunner.

Runs offline. Prints where the shards, stats.json, manifest.json and the dead
letter are.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from beam_pipelines import outputs, text

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sample")
# Every corpus folder of data/sample (its README and build script are not input).
SAMPLE_GLOBS = ["jsonl/*", "parquet/*", "warc/*", "text/*", "broken/*"]


def sample_inputs(root: str = SAMPLE) -> List[str]:
    return [os.path.join(root, g) for g in SAMPLE_GLOBS if os.path.isdir(os.path.join(root, os.path.dirname(g)))]


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="demo_out")
    parser.add_argument("--vocab_size", type=int, default=4000)
    args, rest = parser.parse_known_args(argv)
    output_dir = os.path.abspath(args.output_dir)
    argv = []
    for pattern in sample_inputs():
        argv += ["--input", pattern]
    argv += ["--output_dir", output_dir, "--vocab_size", str(args.vocab_size)] + rest
    try:
        stats = text.run(argv)
    except outputs.RunFailed as e:
        sys.exit(f"error: {e}")
    print(f"manifest:    {os.path.join(output_dir, 'manifest.json')}")
    print(f"tokenizer:   {os.path.join(output_dir, 'tokenizer', 'spm.model')}")
    print(f"COMPLETED:   {os.path.exists(os.path.join(output_dir, 'COMPLETED'))}")
    if not stats["accounting"]["holds"]:
        sys.exit("accounting identity does not hold")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
