"""PII precision and recall per kind on the labelled evaluation set(s) in data/pii_eval/."""

import os

import pytest

from benchmarks.pii_bench import EVAL_PATH, evaluate, load_eval
from transforms.text.pii import KINDS

BLIND_PATH = os.path.join(os.path.dirname(EVAL_PATH), "blind_eval.jsonl")


@pytest.mark.parametrize("path", [EVAL_PATH, BLIND_PATH], ids=["generated", "blind"])
def test_precision_and_recall_per_kind(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} not built")
    rows = load_eval(path)
    assert len(rows) >= 200
    result = evaluate(rows)
    for kind in KINDS:
        r = result[kind]
        if r["gold"] < 10:
            continue
        assert r["precision"] >= 0.95 and r["recall"] >= 0.95, (kind, r, [
            e for e in result["_errors"] if e[1] == kind][:10])


def test_the_evaluation_is_strict():
    # a detector that finds nothing scores zero recall, one that tags every digit zero precision
    rows = load_eval(EVAL_PATH)

    class Nothing:
        def find(self, text):
            return []

    assert all(evaluate(rows, Nothing())[k]["recall"] == 0.0 for k in KINDS)
