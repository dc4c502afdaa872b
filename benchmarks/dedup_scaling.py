"""Scaling of the dedup step (exact + MinHash LSH near-dedup) on the DirectRunner.

For each size (default 10k, 100k, 1M synthetic documents of 60 to 100 words,
a tenth of them near-duplicates of another and a twentieth exact copies), runs
``python -m beam_pipelines.text --steps dedup`` in a fresh process and prints
wall time, time per document, peak resident memory and memory per document.
Time should grow about linearly; memory is bounded by the data (the
DirectRunner keeps a stage's data in memory), never by a global index.

    python -m benchmarks.dedup_scaling [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_corpus(path: str, n: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20000)]
    cum_weights = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(vocab))))  # Zipf-like
    originals = []
    size = 0
    with open(path, "w") as f:
        for i in range(n):
            r = rng.random()
            if originals and r < 0.10:  # near-duplicate: one word changed (Jaccard about 0.9)
                words = list(rng.choice(originals))
                words[rng.randrange(len(words))] = rng.choice(vocab)
            elif originals and r < 0.15:  # exact copy
                words = rng.choice(originals)
            else:
                words = rng.choices(vocab, cum_weights=cum_weights, k=rng.randint(60, 100))
                if len(originals) < 5000:
                    originals.append(words)
                else:
                    originals[rng.randrange(5000)] = words
            line = json.dumps({"id": f"doc{i:08d}", "text": " ".join(words)})
            f.write(line + "\n")
            size += len(line) + 1
    return size


def run_child(input_path: str, out_dir: str) -> dict:
    code = (
        "import json, resource, sys, time, contextlib, io\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "from beam_pipelines import text\n"
        "t = time.perf_counter()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    stats = text.run(['--input', {input_path!r}, '--output_dir', {out_dir!r},"
        " '--steps', 'dedup', '--max_dead_letter_fraction', '1'])\n"
        "print(json.dumps({'seconds': time.perf_counter() - t,"
        " 'peak_rss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        " 'duplicates': stats['duplicates'], 'records_out': stats['records_out'],"
        " 'converged': stats.get('near_dedup', {}).get('converged')}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args(argv)
    print("# dedup step (exact + near) on the DirectRunner, one worker, synthetic 60-100-word documents")
    print(f"{'documents':>10} {'seconds':>9} {'us/doc':>8} {'peak RSS MB':>12} {'KB/doc':>8} "
          f"{'exact':>7} {'near':>7} {'converged':>9}")
    for n in [int(s) for s in args.sizes.split(",")]:
        work = tempfile.mkdtemp(prefix="bench-dedup-")
        try:
            path = os.path.join(work, "docs.jsonl")
            write_corpus(path, n)
            r = run_child(path, os.path.join(work, "out"))
            rss_mb = r["peak_rss_kb"] / 1024
            print(f"{n:>10} {r['seconds']:>9.1f} {1e6 * r['seconds'] / n:>8.1f} {rss_mb:>12.0f} "
                  f"{r['peak_rss_kb'] / n:>8.2f} {r['duplicates']['exact']:>7} "
                  f"{r['duplicates']['near']:>7} {str(r['converged']):>9}", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
