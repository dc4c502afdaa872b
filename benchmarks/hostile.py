"""Hostile inputs, measured as a user would meet them: whole processes, wall time, peak RSS.

    python -m benchmarks.hostile [--scale 1.0]

Each case is built in a temporary folder and run as its own
``python -m beam_pipelines.<pipeline>`` process; peak memory is that
process's maximum resident set (``RUSAGE_CHILDREN`` of a wrapper whose only
child it is):

- 4 M broken JSON lines in a small ``.jsonl.gz`` (stops at the per-file cap)
- 1 GiB of blank lines in a ~1 MB gzip (the decompression-ratio guard)
- a ``.tar.gz`` of zero-filled WebDataset members (one sample held at a time)
- 1 MB of nested ``<div>`` (plain extraction instead of main content)

The point of each line is that time and memory stay small whatever the
input claims; the pipeline's own exit status and records are printed beside.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _broken_lines(folder: str, lines: int) -> str:
    path = os.path.join(folder, "broken.jsonl.gz")
    with gzip.open(path, "wb", compresslevel=9) as f:
        block = b"{\n" * 65536
        for _ in range(lines // 65536):
            f.write(block)
    return path


def _blank_lines(folder: str, gib: float) -> str:
    path = os.path.join(folder, "blank.jsonl.gz")
    good = json.dumps({"id": "real", "text": "A real document before the blank lines. " * 20})
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(good.encode() + b"\n")
        block = b"\n" * (1 << 20)
        for _ in range(int(gib * 1024)):
            f.write(block)
    return path


def _zero_tar(folder: str, members: int, member_mb: int) -> str:
    path = os.path.join(folder, "zeros.tar.gz")
    zeros = bytes(member_mb << 20)
    with tarfile.open(path, "w:gz") as tar:
        for i in range(members):
            info = tarfile.TarInfo(f"sample{i:05d}.jpg")
            info.size = len(zeros)
            tar.addfile(info, io.BytesIO(zeros))
    return path


def _nested_div(folder: str, mb: float) -> str:
    path = os.path.join(folder, "nested.jsonl")
    depth = int(mb * (1 << 20)) // 11
    html = "<html><body>" + "<div>" * depth + "deep text" + "</div>" * depth + "</body></html>"
    with open(path, "w") as f:
        f.write(json.dumps({"id": "nested", "text": html, "content_type": "text/html"}) + "\n")
        for i in range(3):
            f.write(json.dumps({"id": f"ok{i}", "text": f"Plain document number {i}. " * 40}) + "\n")
    return path


_WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print('@@', rc, time.perf_counter() - t,"
    " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
)


def _run(module: str, args) -> dict:
    """One pipeline process, through a wrapper whose only child it is (its peak RSS alone)."""
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, sys.executable, "-m", module]
                          + list(args), cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    _, rc, seconds, peak_kb = next(ln for ln in reversed(lines) if ln.startswith("@@")).split()
    summary = next((ln for ln in reversed(lines) if ln.startswith(("records in", "error:"))),
                   "")
    return {"seconds": float(seconds), "peak_rss_mb": int(peak_kb) / 1024, "rc": int(rc),
            "summary": summary}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="input sizes relative to the issue's")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        cases = []
        inp = os.path.join(tmp, "broken")
        os.makedirs(inp)
        path = _broken_lines(inp, int(4_000_000 * args.scale))
        cases.append(("4M broken JSON lines, .jsonl.gz", os.path.getsize(path), "beam_pipelines.text",
                      ["--input", path, "--steps", "clean", "--max_dead_letter_fraction", "1",
                       "--allow_empty", "--report=false"]))
        inp = os.path.join(tmp, "blank")
        os.makedirs(inp)
        path = _blank_lines(inp, args.scale)
        cases.append(("1 GiB of blank lines, gzip", os.path.getsize(path), "beam_pipelines.text",
                      ["--input", path, "--steps", "clean", "--max_dead_letter_fraction", "1",
                       "--report=false"]))
        inp = os.path.join(tmp, "tar")
        os.makedirs(inp)
        path = _zero_tar(inp, max(2, int(40 * args.scale)), 64)
        cases.append(("zero-filled WebDataset members, .tar.gz", os.path.getsize(path),
                      "beam_pipelines.multimodal",
                      ["--input", path, "--max_dead_letter_fraction", "1", "--allow_empty",
                       "--report=false", "--caption_vocab_size", "300"]))
        inp = os.path.join(tmp, "nested")
        os.makedirs(inp)
        path = _nested_div(inp, args.scale)
        cases.append(("1 MB of nested <div>", os.path.getsize(path), "beam_pipelines.text",
                      ["--input", path, "--steps", "clean", "--report=false",
                       "--max_doc_bytes", str(4 << 20)]))
        print(f"{'case':42s} {'input':>10s} {'wall s':>8s} {'peak RSS':>10s}  rc  result")
        for i, (name, size, module, extra) in enumerate(cases):
            out = os.path.join(tmp, f"out{i}")
            r = _run(module, extra + ["--output_dir", out])
            print(f"{name:42s} {size / 1e6:8.2f}MB {r['seconds']:8.1f} {r['peak_rss_mb']:8.0f}MB "
                  f"{r['rc']:3d}  {r['summary'][:110]}")


if __name__ == "__main__":
    main()
