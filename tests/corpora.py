"""Test corpora shared by several test modules (kept out of the test modules themselves)."""

from __future__ import annotations

import glob
import json
import os

from beam_pipelines import demo


def prose_sentences():
    """Real English sentences from the sample corpus's plain-text files."""
    import re

    sentences = []
    for path in sorted(glob.glob(os.path.join(demo.SAMPLE, "text", "*.txt"))):
        raw = open(path, encoding="utf-8-sig", errors="replace").read()
        for s in re.split(r"(?<=[.!?])\s+", " ".join(raw.split())):
            if 8 <= len(s.split()) <= 40 and s[0].isupper() and s[-1] in ".!?" and "{" not in s:
                sentences.append(s)
    return sentences


def small_corpus(tmp_path, n=120):
    """``n`` JSONL documents of real prose in two files under ``tmp_path/in`` (a third
    of them with an id, one exact duplicate); the folder is returned."""
    import random

    pool = prose_sentences()
    assert len(pool) > 100
    inp = tmp_path / "in"
    inp.mkdir()
    lines = []
    for i in range(n):
        rng = random.Random(i)
        paragraphs = ["\n".join(rng.sample(pool, 3)) for _ in range(3)]
        text = f"Document {i} follows.\n" + "\n\n".join(paragraphs)
        lines.append(json.dumps({"text": text} if i % 3 else {"id": f"r{i}", "text": text}))
    lines.append(lines[5])  # an exact duplicate
    (inp / "a.jsonl").write_text("\n".join(lines[:70]) + "\n")
    (inp / "b.jsonl").write_text("\n".join(lines[70:]) + "\n")
    return inp
