"""Text pipeline throughput, side by side on the same documents.

Prints MB/s (of input text) for:

* ``loop``: our clean + filter functions called in a plain Python loop (one core);
* ``beam``: ``python -m beam_pipelines.text --steps clean,filter`` on the
  DirectRunner (pinned FnApiRunner, one worker), end to end: reading JSONL,
  cleaning, filtering, encoding Examples, writing shards, stats and manifest.
  Reported twice: whole-run (startup included) and marginal (the extra time a
  second, larger corpus costs over the first: the steady-state rate that
  decides how long a big job takes);
* ``beam x2``: the same with ``--direct_num_workers 2`` (multi_processing), for reference;
* ``datatrove``: its equivalent local pipeline (JsonlReader -> FTFYFormatter ->
  GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter ->
  JsonlWriter) on LocalPipelineExecutor with one task and one worker, and its
  formatter and filters called in a plain loop.

The documents are the sample corpus's pages as extracted text (mojibake and
all), repeated with a per-copy marker to the requested size.

    python -m benchmarks.text_bench [--mb 8] [--datatrove_mb 2]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from beam_pipelines import demo, text  # noqa: E402
from transforms.read import corpus as readers  # noqa: E402
from transforms.text.clean import Cleaner, CleanConfig, html_to_text  # noqa: E402
from transforms.text.filters import FilterConfig, TextFilter  # noqa: E402


def sample_texts() -> List[str]:
    """Plain text of every readable sample document (HTML extracted, not cleaned)."""
    out = []
    config = readers.ReaderConfig()
    for pattern in demo.sample_inputs():
        for path in sorted(glob.glob(pattern)):
            for task in readers.plan_reads(path, os.path.getsize(path), os.path.basename(path), config):
                if isinstance(task, dict):
                    continue
                for kind, rec in readers.read_task(task, config):
                    if kind != "record":
                        continue
                    body = rec["text"]
                    if rec["meta"].get("html"):
                        body = html_to_text(body, main_content=True)
                    if body.strip():
                        out.append(body)
    return out


def write_corpus(path: str, target_bytes: int, texts: List[str]) -> int:
    size = 0
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        while size < target_bytes:
            body = texts[n % len(texts)]
            doc = f"Copy {n // len(texts)}.\n{body}" if n >= len(texts) else body
            f.write(json.dumps({"id": f"b{n:07d}", "text": doc}, ensure_ascii=False) + "\n")
            size += len(doc.encode("utf-8"))
            n += 1
    return size


def load_docs(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def bench_loop(path: str) -> Dict[str, float]:
    docs = load_docs(path)
    size = sum(len(d.encode("utf-8")) for d in docs)
    cleaner, filt = Cleaner(CleanConfig(html="never")), TextFilter(FilterConfig())
    t0 = time.perf_counter()
    kept = 0
    with open(path, "rb") as f:
        for pos, line in enumerate(f):
            rec, _ = readers.parse_json_record(line, path, "b", pos, readers.ReaderConfig())
            rec, reason = cleaner(rec)
            if reason is None:
                _, reason = filt(rec["text"])
                kept += reason is None
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    for d in docs:
        cleaner({"text": d, "meta": {}})
    clean_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for d in docs:
        filt(d)
    filter_s = time.perf_counter() - t0
    return {"bytes": size, "seconds": elapsed, "mb_s": size / 1e6 / elapsed, "kept": kept,
            "clean_mb_s": size / 1e6 / clean_s, "filter_mb_s": size / 1e6 / filter_s}


def bench_beam(path: str, workers: int = 1) -> float:
    out = tempfile.mkdtemp(prefix="bench-beam-")
    args = ["--input", path, "--output_dir", out, "--steps", "clean,filter", "--html", "never",
            "--max_dead_letter_fraction", "1", "--report=false"]
    if workers > 1:
        args += ["--direct_num_workers", str(workers), "--direct_running_mode", "multi_processing",
                 "--read_chunk_mb", "1"]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        stats = text.run(args)
    elapsed = time.perf_counter() - t0
    assert stats["accounting"]["holds"]
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def bench_datatrove(path: str) -> Dict[str, float]:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.formatters import FTFYFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from loguru import logger

    logger.remove()  # datatrove's per-step report goes to stderr otherwise
    docs = load_docs(path)
    size = sum(len(d.encode("utf-8")) for d in docs)
    work = tempfile.mkdtemp(prefix="bench-dt-")
    shutil.copy(path, os.path.join(work, "input.jsonl"))
    executor = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(work, glob_pattern="input.jsonl"),
            FTFYFormatter(),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(),
            JsonlWriter(os.path.join(work, "out")),
        ],
        tasks=1, workers=1, logging_dir=os.path.join(work, "logs"))
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # its per-step report
        executor.run()
    pipeline_s = time.perf_counter() - t0
    steps = [FTFYFormatter(), GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter()]
    steps[1].filter(Document(text=docs[0], id="warm"))  # load the word tokenizer outside the timing
    t0 = time.perf_counter()
    for i, body in enumerate(docs):
        doc = Document(text=steps[0].format(body), id=str(i))
        for step in steps[1:]:
            result = step.filter(doc)
            if result is False or (isinstance(result, tuple) and not result[0]):
                break
    loop_s = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    return {"bytes": size, "pipeline_mb_s": size / 1e6 / pipeline_s, "loop_mb_s": size / 1e6 / loop_s}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=8.0, help="corpus size for ours (MB of text)")
    parser.add_argument("--datatrove_mb", type=float, default=1.0,
                        help="corpus size for datatrove (a prefix of the same documents)")
    args = parser.parse_args(argv)
    texts = sample_texts()
    work = tempfile.mkdtemp(prefix="bench-text-")
    small, big, dt = (os.path.join(work, n) for n in ("small.jsonl", "big.jsonl", "dt.jsonl"))
    small_bytes = write_corpus(small, int(args.mb * 1e6 / 4), texts)
    big_bytes = write_corpus(big, int(args.mb * 1e6), texts)
    dt_bytes = write_corpus(dt, int(args.datatrove_mb * 1e6), texts)

    print(f"# text pipeline, {big_bytes / 1e6:.1f} MB of text in {len(load_docs(big))} documents "
          f"({len(texts)} distinct sample pages); one core unless noted")
    loop = bench_loop(big)
    beam_small = bench_beam(small)
    beam_big = bench_beam(big)
    beam_x2 = bench_beam(big, workers=2)
    # the marginal rate needs a real difference in run time to mean anything
    marginal = ((big_bytes - small_bytes) / 1e6 / (beam_big - beam_small)
                if beam_big - beam_small > 1.0 else float("nan"))
    whole = big_bytes / 1e6 / beam_big
    rows = [
        ("ours: clean only, plain loop", loop["clean_mb_s"]),
        ("ours: filter only, plain loop", loop["filter_mb_s"]),
        ("ours: read+clean+filter, plain loop", loop["mb_s"]),
        ("ours: Beam DirectRunner, whole run", whole),
        ("ours: Beam DirectRunner, marginal", marginal),
        ("ours: Beam DirectRunner x2 workers, whole run", big_bytes / 1e6 / beam_x2),
    ]
    dtr = bench_datatrove(dt)
    rows += [
        (f"datatrove: local pipeline ({dt_bytes / 1e6:.1f} MB)", dtr["pipeline_mb_s"]),
        (f"datatrove: formatter+filters, plain loop ({dt_bytes / 1e6:.1f} MB)", dtr["loop_mb_s"]),
    ]
    width = max(len(r[0]) for r in rows)
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:9.2f} MB/s")
    at_margin = "n/a (corpus too small)" if marginal != marginal else f"{marginal / loop['mb_s']:.0%}"
    print(f"Beam keeps {whole / loop['mb_s']:.0%} of the plain loop's rate end to end, "
          f"{at_margin} at the margin (target: 80%)")
    print(f"ours (loop) vs datatrove (loop): {loop['mb_s'] / dtr['loop_mb_s']:.1f}x per core; "
          f"ours (Beam, whole run) vs datatrove (local pipeline): "
          f"{whole / dtr['pipeline_mb_s']:.1f}x (target: 10x)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)
    main()
