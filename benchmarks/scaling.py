"""The whole text pipeline at several corpus sizes, per engine: wall time, MB/s per core, peak memory (PSS) of the process tree.

    python -m benchmarks.scaling [--sizes 30,100,300,1000] [--engines direct1,default,flink]
                                 [--repeat N]

The corpus is generated unique English prose with planted copies: 8% exact
copies and 4% near copies (a few words changed). Sentences come from the
prose of Python's own documentation (``pydoc_data.topics``, in every CPython)
and the sample corpus's clean plain-text pages, about 700 distinct prose ones,
recombined per document; as in a real crawl, few documents (1%) carry a
mojibake line for the clean step to repair (the sample pages plant mojibake
in 13% of their sentences, which would make nearly every document need ftfy). Every engine runs all
five steps (clean, filter, dedup, pii, tokenize) as its own
``python -m beam_pipelines.text`` process; peak memory is the largest sum of
the proportional set sizes (PSS) of that process and all its children. PSS
costs the kernel a walk of every page table (about 30 ms of CPU for the five
processes of a two-worker run here, 12% of a core at five readings a second,
taken from the engine being measured: the one-core engine's runs leave the
other core to the sampler, so sampling that often slowed the two-core engine
alone). So the tree's RSS, which is cheap, is read every 0.2 s, and PSS
where that RSS has grown by 5% over its highest so far, and at least every
2 s (:class:`_PeakMemory`).
Each engine's shards are compared, byte for byte, with the first engine's.
With ``--repeat N`` the engines run N times in turn (direct1, default,
direct1, default, ...: a slower spell of the machine falls on both) and the
row shows the median wall time, with the fastest and slowest runs beside it;
"same bytes" then holds for every run.

Engines: ``one_core`` (``direct1`` held to one CPU with
``os.sched_setaffinity``: the one-core figure the two-core runs are compared
with), ``direct1`` (Beam's FnApiRunner in process, one worker:
``--direct_num_workers 1``; one core on average, but nothing holds its
threads to one), ``default`` (no flag: the local default, which
from 64 MiB of input runs one SDK worker process per core), ``flink``
(``--runner FlinkRunner --flink_master=[local]``: an embedded Flink with one
SDK worker process per core; only when ``make flink-jar`` has cached a job
server). MB/s per core divides by the cores the engine used.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


CORES = _usable_cores()
# The five steps the scaling figures have always covered; the lang step (a
# default since) is measured on its own by benchmarks/languages.py.
STEPS = "clean,filter,dedup,pii,tokenize"
# name: (flags, cores used (None: the local default decides), held to one CPU)
ENGINES = {
    "one_core": (["--direct_num_workers", "1"], 1),
    "direct1": (["--direct_num_workers", "1"], 1),
    "default": ([], None),  # the local default: every core from PARALLEL_INPUT_BYTES up
    "flink": (["--runner", "FlinkRunner", "--flink_master=[local]"], CORES),
}


def engine_cores(name: str, input_bytes: int) -> int:
    from beam_pipelines.runner import PARALLEL_INPUT_BYTES

    cores = ENGINES[name][1]
    if cores is None:
        return CORES if input_bytes >= PARALLEL_INPUT_BYTES else 1
    return cores


def _split_sentences(raw: str) -> List[str]:
    out = []
    for s in re.split(r"(?<=[.!?])\s+", " ".join(raw.split())):
        if (8 <= len(s.split()) <= 40 and s[0].isupper() and s[-1] in ".!?"
                and not any(c in s for c in "{|>\"*()_[]=`@\\\\")):
            out.append(s)
    return out


def sentences() -> Tuple[List[str], List[str]]:
    """(clean sentences, mojibake sentences), each sorted and distinct."""
    from pydoc_data import topics

    from transforms.text.clean import clean_text

    raw = [" ".join(topics.topics[k] for k in sorted(topics.topics))]
    for path in sorted(glob.glob(os.path.join(ROOT, "data", "sample", "text", "*.txt"))):
        raw.append(open(path, encoding="utf-8-sig", errors="replace").read())
    pool = sorted({s for text in raw for s in _split_sentences(text)})
    clean = [s for s in pool if clean_text(s) == s]
    broken = [s for s in pool if clean_text(s) != s]
    return clean, broken


def write_corpus(path: str, target_bytes: int, seed: int = 0) -> Dict[str, int]:
    """Unique prose documents with planted exact (8%) and near (4%) copies; returns counts."""
    rng = random.Random(seed)
    pool, broken = sentences()
    counts = {"documents": 0, "exact_copies": 0, "near_copies": 0}
    recent: List[str] = []
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        while size < target_bytes:
            r = rng.random()
            if recent and r < 0.08:
                text = rng.choice(recent)
                counts["exact_copies"] += 1
            elif recent and r < 0.12:
                words = rng.choice(recent).split(" ")
                for _ in range(3):
                    words[rng.randrange(len(words))] = rng.choice(("river", "lamp", "violin"))
                text = " ".join(words)
                counts["near_copies"] += 1
            else:
                paragraphs = ["\n".join(rng.sample(pool, 4)) for _ in range(rng.randint(2, 5))]
                if broken and rng.random() < 0.01:
                    paragraphs[-1] += "\n" + rng.choice(broken)
                text = f"Part {counts['documents']}.\n" + "\n\n".join(paragraphs)
                recent.append(text)
                if len(recent) > 2000:
                    recent.pop(rng.randrange(len(recent)))
            line = json.dumps({"id": f"d{counts['documents']:09d}", "text": text}) + "\n"
            f.write(line)
            size += len(line.encode("utf-8"))
            counts["documents"] += 1
    counts["bytes"] = size
    return counts


def _tree_memory(proc, pss: bool) -> int:
    """The sum of the PSS (``pss``, falling back to RSS where PSS cannot be read) or of
    the RSS of the process and all its children."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            if pss:
                try:
                    total += p.memory_full_info().pss
                    continue
                except (psutil.AccessDenied, AttributeError):
                    pass
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _tree_rss(proc) -> int:
    """Memory of the process and all its children: the sum of their proportional set sizes.

    PSS splits each shared page among the processes that map it, so a child
    forked from a large process (its pages shared copy-on-write until it
    execs) does not count that process twice, as a sum of RSS would; RSS is
    the fallback where PSS cannot be read.
    """
    return _tree_memory(proc, pss=True)


def _tree_rss_cheap(proc) -> int:
    """The sum of the resident set sizes of the process and its children (``/proc/PID/statm``)."""
    return _tree_memory(proc, pss=False)


class _PeakMemory:
    """The peak PSS of a process tree, read where its (cheap) RSS sets a new high by ``step``
    and at least every ``every`` seconds."""

    def __init__(self, proc, step: float = 1.05, every: float = 2.0):
        self._proc, self._step, self._every = proc, step, every
        self.peak_pss = self.peak_rss = 0
        self.readings = 0
        self._last = float("-inf")
        self._rss_at_pss = 0

    def sample(self) -> None:
        rss = _tree_rss_cheap(self._proc)
        now = time.perf_counter()
        if rss > self._rss_at_pss * self._step or now - self._last >= self._every:
            self.peak_pss = max(self.peak_pss, _tree_rss(self._proc))
            self.readings += 1
            self._last = now
            self._rss_at_pss = max(self._rss_at_pss, rss)
        self.peak_rss = max(self.peak_rss, rss)


def _one_cpu() -> None:
    """Hold the process (and its children) to the first CPU it may use."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run_engine(corpus: str, out: str, extra: List[str], one_cpu: bool = False) -> Dict[str, object]:
    cmd = [sys.executable, "-m", "beam_pipelines.text", "--input", corpus, "--output_dir", out,
           "--steps", STEPS, "--vocab_size", "8000", "--report=false",
           "--max_dead_letter_fraction", "1"] + extra
    t0 = time.perf_counter()
    log = open(out + ".log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=_one_cpu if one_cpu else None)
    memory = _PeakMemory(proc)
    while proc.poll() is None:
        memory.sample()
        time.sleep(0.2)
    peak = memory.peak_pss
    seconds = time.perf_counter() - t0
    log.close()
    tail = open(out + ".log", errors="replace").read().strip().splitlines()[-1:]
    shards = {}
    for path in sorted(glob.glob(os.path.join(out, "data", "*.tfrecord"))):
        with open(path, "rb") as f:
            shards[os.path.basename(path)] = hashlib.sha256(f.read()).hexdigest()
    return {"seconds": seconds, "peak_rss": peak, "rc": proc.returncode, "shards": shards,
            "last_line": tail[0] if tail else ""}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="30,100,300,1000", help="corpus sizes in MB")
    parser.add_argument("--engines", default="one_core,default,flink",
                        help=f"any of {', '.join(ENGINES)}")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the engines this many times in turn; report medians")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine {unknown[0]!r}: one of {', '.join(ENGINES)}")
    if "one_core" in engines and not hasattr(os, "sched_setaffinity"):
        print("# one_core: skipped (no sched_setaffinity here)")
        engines.remove("one_core")
    if "flink" in engines:
        from beam_pipelines import flink

        if flink.cached_job_server_jar() is None:
            print("# flink: skipped (no job server cached; make flink-jar)")
            engines.remove("flink")
    print(f"# whole text pipeline (clean, filter, dedup, pii, tokenize), engines {', '.join(engines)}")
    print(f"{'MB':>6} {'engine':>8} {'wall s':>8} {'MB/s':>7} {'MB/s/core':>9} {'peak PSS':>9}  "
          f"{'same bytes':>10}  result")
    for mb in [float(s) for s in args.sizes.split(",") if s]:
        work = tempfile.mkdtemp(prefix="bench-scaling-")
        try:
            corpus = os.path.join(work, "corpus.jsonl")
            info = write_corpus(corpus, int(mb * 1e6))
            first = None
            runs: Dict[str, List[Dict[str, object]]] = {name: [] for name in engines}
            for _ in range(args.repeat):
                for name in engines:
                    out = os.path.join(work, f"out-{name}")
                    shutil.rmtree(out, ignore_errors=True)
                    r = run_engine(corpus, out, ENGINES[name][0], one_cpu=name == "one_core")
                    if first is None and r["rc"] == 0:
                        first = r["shards"]
                    r["same"] = r["shards"] == first
                    runs[name].append(r)
            medians: Dict[str, float] = {}
            for name in engines:
                cores = engine_cores(name, info["bytes"])
                rs = runs[name]
                walls = sorted(float(r["seconds"]) for r in rs)
                seconds = statistics.median(walls)
                peak = max(int(r["peak_rss"]) for r in rs)
                failed = [r for r in rs if r["rc"] != 0]
                last = failed[0] if failed else rs[-1]
                same = ("-" if name == engines[0] and all(r["same"] for r in rs)
                        else "yes" if all(r["same"] for r in rs) else "NO")
                rate = info["bytes"] / 1e6 / seconds
                spread = f" ({walls[0]:.1f}-{walls[-1]:.1f}, {len(walls)} runs)" if len(walls) > 1 else ""
                print(f"{info['bytes'] / 1e6:6.0f} {name:>8} {seconds:8.1f} {rate:7.2f} "
                      f"{rate / cores:9.2f} {peak / 2**30:7.2f}GB  {same:>10}  "
                      f"{'ok' if not failed else 'exit ' + str(last['rc'])}: "
                      f"{str(last['last_line'])[:70]}{spread}", flush=True)
                medians[name] = seconds
            if "one_core" in medians and "default" in medians:
                print(f"# {info['bytes'] / 1e6:.0f} MB: default on {engine_cores('default', info['bytes'])} "
                      f"cores gives {medians['one_core'] / medians['default']:.2f}x one core", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
