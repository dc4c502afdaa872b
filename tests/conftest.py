"""Shared helpers: run the text pipeline in-process, read shards back with TensorFlow,
kill a trainer from outside once it has checkpointed."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tests never touch the network: google-auth must not probe the GCE metadata server.
os.environ["NO_GCE_CHECK"] = "True"


def run_text(inputs, output_dir, *extra):
    """Run ``python -m beam_pipelines.text`` in-process; returns stats.json's content."""
    from beam_pipelines import text

    argv = []
    for pattern in inputs:
        argv += ["--input", str(pattern)]
    argv += ["--output_dir", str(output_dir)] + [str(a) for a in extra]
    return text.run(argv)


def read_shards(output_dir, split="*"):
    """All Examples of the shards of ``split`` as dicts, parsed by TensorFlow."""
    import tensorflow as tf

    records = []
    for path in sorted(glob.glob(os.path.join(str(output_dir), "data", f"{split}-*.tfrecord"))):
        for raw in tf.data.TFRecordDataset(path):
            ex = tf.train.Example.FromString(raw.numpy())
            row = {}
            for name, feature in ex.features.feature.items():
                kind = feature.WhichOneof("kind")
                values = list(getattr(feature, kind).value)
                row[name] = values
            row["_shard"] = os.path.basename(path)
            records.append(row)
    return records


def read_dead_letter(output_dir):
    entries = []
    for path in sorted(glob.glob(os.path.join(str(output_dir), "dead_letter", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            entries += [json.loads(line) for line in f if line.strip()]
    return entries


def assert_accounting(stats, output_dir):
    """The identity of DESIGN.md holds and matches what is really in the shards."""
    total = (stats["records_out"] + sum(stats["filtered"].values())
             + sum(stats["duplicates"].values()) + sum(stats["dead_letter"].values()))
    assert stats["records_in"] == total, stats
    assert stats["accounting"]["holds"] is True
    assert len(read_shards(output_dir)) == stats["records_out"]
    assert len(read_dead_letter(output_dir)) == sum(stats["dead_letter"].values())


@pytest.fixture
def local_runner():
    from beam_pipelines.runner import local_runner as make

    return make()

def kill_after_checkpoint(cmd, model_dir, min_step, timeout=600):
    """Start the trainer ``cmd`` and SIGKILL it from outside once ``model_dir`` holds a
    checkpoint of step >= ``min_step``; returns the step of the checkpoint left behind.

    Polls state.json, which the trainer writes (atomically) after the weights.
    """
    state_file = os.path.join(str(model_dir), "checkpoints", "state.json")

    def checkpoint_step():
        try:
            with open(state_file) as f:
                return json.load(f)["step"]
        except (FileNotFoundError, ValueError):
            return -1

    log_path = os.path.join(os.path.dirname(str(model_dir)), "killed-run.log")
    killed = False
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if checkpoint_step() >= min_step:
                    proc.send_signal(signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.kill()  # timed out (or the test failed): never leave a trainer running
            proc.wait()
    with open(log_path) as f:
        output = f.read()
    # killed by us mid-run: neither finished nor crashed first
    assert killed and proc.returncode == -signal.SIGKILL, output[-3000:]
    return checkpoint_step()
