"""Golden outputs: the sample corpus gives the same shards, stats and manifest as recorded.

Refactors must not change what a run writes. This runs the text, image and
image-caption pipelines on ``data/sample/`` (relative globs from the
repository root, so paths in the outputs do not depend on where the checkout
lives) and compares against ``tests/golden/*.json``:

* shards, tokenizer, labels: sha256 of the bytes; dead letter and clusters:
  sha256 of their sorted lines (samples.jsonl is a random sample: left out);
* stats.json: the whole content, minus ``timing`` (seconds vary run to run);
* manifest.json: the whole content, minus ``code_version``, input mtimes and
  the config digest (the output folder, which differs per run, is in the
  config; it is replaced by ``<OUT>``).

A deliberate change of output rewrites the records with
``BEAMTRAIN_UPDATE_GOLDEN=1 pytest tests/test_golden.py`` and says why in
its commit.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

import pytest

from tests.conftest import ROOT

GOLDEN = os.path.join(ROOT, "tests", "golden")
UPDATE = os.environ.get("BEAMTRAIN_UPDATE_GOLDEN") == "1"

TEXT_ARGS = ["--input", "data/sample/jsonl/*", "--input", "data/sample/parquet/*",
             "--input", "data/sample/warc/*", "--input", "data/sample/text/*",
             "--input", "data/sample/broken/*", "--vocab_size", "2000", "--num_shards", "2",
             "--near_dup_clusters", "--report=false"]
IMAGE_ARGS = ["--input", "data/sample/images/train/*/*", "--image_size", "64",
              "--max_dead_letter_fraction", "0.2", "--report=false"]
PAIR_ARGS = ["--input", "data/sample/multimodal/coco/captions.json",
             "--input", "data/sample/multimodal/laion/pairs.tsv",
             "--input", "data/sample/multimodal/webdataset/*.tar", "--image_size", "64",
             "--caption_vocab_size", "400", "--max_dead_letter_fraction", "0.3", "--report=false"]


def _sha(path: str, sort_lines: bool = False) -> str:
    with open(path, "rb") as f:
        data = f.read()
    if sort_lines:  # line files written from a Flatten: their order is the runner's
        # image paths resolved through symlinks are absolute: not where the checkout is
        data = data.replace(os.path.realpath(ROOT).encode() + b"/", b"<ROOT>/")
        data = b"".join(sorted(data.splitlines(keepends=True)))
    return hashlib.sha256(data).hexdigest()


def snapshot(out: str) -> dict:
    """What must stay the same: digests of the data files, normalized stats and manifest."""
    files = {}
    for pattern in ("data/*.tfrecord", "tokenizer/*", "dead_letter/*.jsonl",
                    "near_dup_clusters/*.jsonl", "labels.txt"):
        for path in sorted(glob.glob(os.path.join(out, pattern))):
            files[os.path.relpath(path, out)] = _sha(path, path.endswith(".jsonl"))
    stats = json.load(open(os.path.join(out, "stats.json")))
    stats.pop("timing", None)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    for key in ("code_version", "config_sha256"):
        manifest.pop(key, None)
    for entry in manifest.get("inputs", []):
        entry.pop("mtime", None)
    manifest = json.loads(json.dumps(manifest).replace(json.dumps(out)[1:-1], "<OUT>"))
    return {"files": files, "stats": stats, "manifest": manifest}


def _check(name: str, got: dict) -> None:
    path = os.path.join(GOLDEN, f"{name}.json")
    if UPDATE:
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
            f.write("\n")
    want = json.load(open(path))
    assert got["files"] == want["files"]
    assert got["stats"] == want["stats"]
    assert got["manifest"] == want["manifest"]


@pytest.mark.parametrize("name,module,args", [
    ("text", "text", TEXT_ARGS),
    ("images", "images", IMAGE_ARGS),
    ("pairs", "multimodal", PAIR_ARGS),
])
def test_sample_corpus_outputs_match_the_golden_record(name, module, args, tmp_path, monkeypatch):
    import importlib

    monkeypatch.chdir(ROOT)
    out = str(tmp_path / "out")
    importlib.import_module(f"beam_pipelines.{module}").run(args + ["--output_dir", out])
    _check(name, snapshot(out))
