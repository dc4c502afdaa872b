"""MinHash signatures, side by side on the same documents, shingling included.

Prints signatures/s and MB/s (of document text) for:

* ours: ``Shingler`` (word 5-grams, vectorised hashing) + the compiled
  permutation loop, in batches of 256 documents, 128 permutations;
* ours with ``hash="sha1"``: the datasketch-identical signatures;
* datasketch 2.0 (``scheme="legacy"``, the (a*h+b) mod (2^61-1) permutations),
  one ``update`` per shingle (its per-document loop) on a subset;
* datasketch's bulk API (``MinHash.bulk``);
* rensa's ``RMinHash`` (Rust) driven from Python: Python shingling, one
  ``update`` with the document's shingles, ``digest()``.

Every peer gets the same shingle strings (``shingle_strings``: lower-cased,
punctuation removed, word 5-grams).

    python -m benchmarks.minhash_bench [--mb 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from transforms.dedup import minhash as mh  # noqa: E402

NUM_PERM = 128


def corpus(target_mb: float) -> List[str]:
    from benchmarks.text_bench import sample_texts
    from transforms.text.clean import clean_text

    base = [clean_text(t) for t in sample_texts()]
    docs, size, n = [], 0, 0
    while size < target_mb * 1e6:
        doc = base[n % len(base)]
        if n >= len(base):
            doc = f"copy {n // len(base)} " + doc
        docs.append(doc)
        size += len(doc.encode("utf-8"))
        n += 1
    return docs


def timed(fn: Callable[[List[str]], object], docs: List[str]) -> dict:
    start = time.perf_counter()
    fn(docs)
    seconds = time.perf_counter() - start
    size = sum(len(d.encode("utf-8")) for d in docs)
    return {"docs": len(docs), "sig_s": len(docs) / seconds, "mb_s": size / 1e6 / seconds}


def ours(hash_kind: str = "fast"):
    config = mh.MinHashConfig(num_perm=NUM_PERM, hash=hash_kind)
    perms = mh.permutations(NUM_PERM, config.seed)

    def run(docs):
        shingler = mh.Shingler(config)
        for i in range(0, len(docs), 256):
            flat, offsets = shingler.batch(docs[i:i + 256])
            mh.signatures(flat, offsets, perms)

    return run


def datasketch_loop(docs):
    from datasketch import MinHash

    for d in docs:
        m = MinHash(num_perm=NUM_PERM, scheme="legacy")
        for s in mh.shingle_strings(d):
            m.update(s.encode("utf-8"))
        m.digest()


def datasketch_bulk(docs):
    from datasketch import MinHash

    MinHash.bulk([[s.encode("utf-8") for s in mh.shingle_strings(d)] for d in docs],
                 num_perm=NUM_PERM, scheme="legacy")


def rensa_loop(docs):
    from rensa import RMinHash

    for d in docs:
        m = RMinHash(num_perm=NUM_PERM, seed=1)
        m.update(mh.shingle_strings(d))
        m.digest()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=4.0)
    args = parser.parse_args(argv)
    docs = corpus(args.mb)
    ours("fast")(docs[:50])  # compile the kernel outside the timing
    few = docs[: max(20, len(docs) // 20)]
    rows = [
        ("ours (fast hash)", timed(ours("fast"), docs)),
        ("ours (sha1, = datasketch's values)", timed(ours("sha1"), docs)),
        (f"datasketch update loop ({len(few)} docs)", timed(datasketch_loop, few)),
        ("datasketch bulk", timed(datasketch_bulk, docs)),
        ("rensa RMinHash, Python shingling", timed(rensa_loop, docs)),
    ]
    size = sum(len(d.encode("utf-8")) for d in docs)
    print(f"# MinHash, {NUM_PERM} permutations, word 5-grams, {len(docs)} documents, "
          f"{size / 1e6:.1f} MB, one core")
    width = max(len(r[0]) for r in rows)
    for name, r in rows:
        print(f"{name:<{width}}  {r['sig_s']:10.0f} signatures/s  {r['mb_s']:8.2f} MB/s")
    res = dict(rows)
    ours_rate = res["ours (fast hash)"]["mb_s"]
    print(f"ours vs datasketch bulk: {ours_rate / res['datasketch bulk']['mb_s']:.1f}x (target 5x); "
          f"vs rensa: {ours_rate / res['rensa RMinHash, Python shingling']['mb_s']:.2f}x (goal > 1)")


if __name__ == "__main__":
    main()
