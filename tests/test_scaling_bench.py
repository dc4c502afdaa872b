"""The scaling benchmark's memory sampler: the peak PSS of a process tree, read sparingly."""

import subprocess
import sys
import time

import psutil

from benchmarks import scaling

CHILD = """
import sys, time
blocks = []
for _ in range(6):
    blocks.append(bytearray(40 << 20))  # 40 MiB, touched: resident
    time.sleep(0.15)
print("ready", flush=True)
time.sleep(30)
"""


def test_peak_memory_follows_a_growing_tree_with_few_pss_readings():
    # a parent whose child holds 240 MiB: the tree's peak counts the child
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])"],
                              stdout=subprocess.PIPE, text=True)
    try:
        memory = scaling._PeakMemory(parent, step=1.05, every=2.0)
        samples = 0
        deadline = time.time() + 20
        while time.time() < deadline:
            memory.sample()
            samples += 1
            if memory.peak_rss > 240 << 20 and samples > 30:
                break
            time.sleep(0.05)
        assert memory.peak_pss > 200 << 20  # the child's 240 MiB, shared pages split
        assert memory.peak_pss <= memory.peak_rss
        # PSS (a walk of every page table) only where RSS grew 5% or 2 s went by
        assert memory.readings < samples / 2
    finally:
        try:
            children = psutil.Process(parent.pid).children(recursive=True)
        except psutil.Error:
            children = []
        for proc in [parent, *children]:
            try:
                proc.kill()
            except (psutil.Error, ProcessLookupError):
                pass
        parent.wait()
