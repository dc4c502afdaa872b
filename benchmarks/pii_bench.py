"""PII: precision/recall per kind on the labelled set, and throughput against a naive baseline.

    python -m benchmarks.pii_bench [--mb 8]

* Quality: ``data/pii_eval/pii_eval.jsonl`` (built by
  ``data/pii_eval/build_eval.py``: hundreds of snippets with gold spans and
  hard negatives). A prediction counts as a true positive when it has the
  gold span's kind and exactly its start and end; the overlap score (same
  kind, overlapping) is printed beside it. Printed next to the published
  figures of BigCode's PII regexes (email P 0.88 / R 0.96, IP P 0.80 / R
  0.83, keys P 0.78 / R 0.53).
* Speed: the whole PII step (find + scrub, tag mode) on one core over typical
  web text (the sample corpus's cleaned pages, which hold a few addresses),
  against a naive baseline that runs one regex per kind over every document
  with no pre-check and no validation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from transforms.text import pii  # noqa: E402

EVAL_PATH = os.path.join(ROOT, "data", "pii_eval", "pii_eval.jsonl")
BIGCODE = {"EMAIL": (0.88, 0.96), "IP_ADDRESS": (0.80, 0.83), "SECRET": (0.78, 0.53)}


def load_eval(path: str = EVAL_PATH) -> List[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate(rows: List[dict], scrubber: pii.PiiScrubber = None) -> Dict[str, dict]:
    """Per kind: tp, fp, fn, precision, recall, f1 (exact spans) and overlap recall/precision."""
    scrubber = scrubber or pii.PiiScrubber()
    counts = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "otp_p": 0, "otp_r": 0, "pred": 0, "gold": 0})
    errors = []
    for row in rows:
        gold = {(s["start"], s["end"], s["kind"]) for s in row["spans"]}
        pred = {(s.start, s.end, s.kind) for s in scrubber.find(row["text"])}
        for kind in pii.KINDS:
            g = {x for x in gold if x[2] == kind}
            p = {x for x in pred if x[2] == kind}
            c = counts[kind]
            c["tp"] += len(g & p)
            c["fp"] += len(p - g)
            c["fn"] += len(g - p)
            c["gold"] += len(g)
            c["pred"] += len(p)
            c["otp_r"] += sum(1 for a in g if any(b[0] < a[1] and a[0] < b[1] for b in p))
            c["otp_p"] += sum(1 for b in p if any(b[0] < a[1] and a[0] < b[1] for a in g))
            for x in p - g:
                errors.append(("FP", kind, row["id"], row["text"][x[0]:x[1]]))
            for x in g - p:
                errors.append(("FN", kind, row["id"], row["text"][x[0]:x[1]]))
    out = {}
    for kind in pii.KINDS:
        c = counts[kind]
        precision = c["tp"] / c["pred"] if c["pred"] else 1.0
        recall = c["tp"] / c["gold"] if c["gold"] else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[kind] = {**c, "precision": precision, "recall": recall, "f1": f1,
                     "overlap_precision": c["otp_p"] / c["pred"] if c["pred"] else 1.0,
                     "overlap_recall": c["otp_r"] / c["gold"] if c["gold"] else 1.0}
    out["_errors"] = errors
    return out


# A naive baseline: one regex per kind, every document, no pre-check, no validation.
NAIVE = {
    "EMAIL": re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    "PHONE": re.compile(r"\+?\d[\d\s().-]{7,}\d"),
    "IP_ADDRESS": re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b"),
    "CREDIT_CARD": re.compile(r"\b(?:\d[ -]?){13,19}\b"),
    "US_SSN": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "IBAN": re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}\b"),
    "SECRET": re.compile(r"(?i)(?:password|secret|token|api_?key)\s*[:=]\s*\S+|AKIA[0-9A-Z]{16}|"
                         r"gh[pousr]_[A-Za-z0-9]{36}|-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def naive_scrub(text: str) -> str:
    for kind, pattern in NAIVE.items():
        text = pattern.sub(f"<{kind}>", text)
    return text


def corpus(target_mb: float) -> List[str]:
    from benchmarks.text_bench import sample_texts
    from transforms.text.clean import clean_text

    base = [clean_text(t) for t in sample_texts()]
    docs, size = [], 0
    while size < target_mb * 1e6:
        for d in base:
            docs.append(d)
            size += len(d.encode("utf-8"))
    return docs


def throughput(docs: List[str]) -> Dict[str, float]:
    size = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    scrubber = pii.PiiScrubber()
    t0 = time.perf_counter()
    for d in docs:
        scrubber.scrub(d)
    ours = size / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for d in docs:
        naive_scrub(d)
    naive = size / (time.perf_counter() - t0)
    return {"mb": size, "ours_mb_s": ours, "naive_mb_s": naive}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=8.0)
    parser.add_argument("--errors", action="store_true", help="list every false positive / negative")
    args = parser.parse_args(argv)
    blind = os.path.join(os.path.dirname(EVAL_PATH), "blind_eval.jsonl")
    for path in [EVAL_PATH] + ([blind] if os.path.exists(blind) else []):
        rows = load_eval(path)
        result = evaluate(rows)
        n_spans = sum(len(r["spans"]) for r in rows)
        print(f"# PII quality, {os.path.basename(path)}: {len(rows)} labelled snippets "
              f"({sum(1 for r in rows if not r['spans'])} without PII), {n_spans} gold spans; "
              f"exact span match")
        print(f"{'kind':<12} {'gold':>5} {'P':>6} {'R':>6} {'F1':>6}   {'overlap P':>9} "
              f"{'overlap R':>9}   bigcode P/R")
        for kind in pii.KINDS:
            r = result[kind]
            ref = BIGCODE.get(kind)
            print(f"{kind:<12} {r['gold']:>5} {r['precision']:>6.3f} {r['recall']:>6.3f} "
                  f"{r['f1']:>6.3f}   {r['overlap_precision']:>9.3f} {r['overlap_recall']:>9.3f}   "
                  f"{'%.2f / %.2f' % ref if ref else '-'}")
        if args.errors:
            for err in result["_errors"]:
                print(*err, sep="\t")
    t = throughput(corpus(args.mb))
    print(f"# PII step speed, one core, {t['mb']:.1f} MB of cleaned web pages")
    print(f"ours (pre-checks, validation, scrub)   {t['ours_mb_s']:8.1f} MB/s   (target >= 20)")
    print(f"naive one-regex-per-kind baseline      {t['naive_mb_s']:8.1f} MB/s")


if __name__ == "__main__":
    main()
