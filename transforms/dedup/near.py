"""Near-duplicate removal of text at corpus scale: MinHash LSH and connected components, all in Beam.

This module holds what is particular to text (signatures, the Jaccard check,
the thresholds); the graph steps 2 to 5 are the shared engine
:class:`transforms.dedup.components.RemoveNearDuplicates`, which the image
near-duplicate step uses too.

1. **Signatures** (:mod:`transforms.dedup.minhash`): documents are batched and
   signed per batch (vectorised shingling, compiled permutation loop).
   Documents with no shingle (no word at all) are never candidates.
2. **LSH**: each document emits its id and its band keys, one element for all
   its bands (not one element per band: Beam's per-element work and a hash
   of the id, 18 times per document); the entries are packed per hash
   partition, ``GroupByKey``
   gathers the documents that agree on a whole band, and each bucket yields
   its candidate pairs (:func:`transforms.dedup.components.bucket_pairs`),
   deduplicated across bands.
3. **Verification** (:class:`JaccardAtLeast`): a candidate pair counts as an
   edge only if its estimated Jaccard (share of equal signature values;
   default) or its exact shingle Jaccard (``verify="exact"``) reaches the
   verification threshold. The pair meets its two signatures through two
   joins on the id, so signatures travel once per pair, never once per band.
   The bands and rows are chosen, as datasketch's ``MinHashLSH`` chooses them,
   for a *candidate* threshold below the duplicate threshold (by default 0.2
   lower), so that pairs at the threshold are candidates almost surely and the
   verification, not the S-curve of the bands, draws the line; the estimate's
   verification threshold sits 2.5 standard errors below the duplicate
   threshold for the same reason.
4. **Connected components** without a single machine: alternating large-star
   and small-star rounds (Kiveris et al., "Connected Components in MapReduce
   and Beyond", 2014) over the edge list, unrolled for ``max_rounds`` rounds
   (10 by default; the number of rounds grows with the logarithm of the
   component size), each a pair of ``GroupByKey`` steps; each round counts how many edges
   changed, and the run records whether the last round changed none. At the
   fixed point every component is a star around its smallest id.
5. **Survivors**: the smallest id of each component; every other member is
   counted under ``duplicates.near`` and removed by a join on the id.

Also: cluster membership (``id``, ``cluster_id``, ``cluster_size``) for
audits, and the cluster-size histogram in stats.json.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Tuple

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from transforms import accounting
from transforms.accounting import INFO
from transforms.dedup import components, minhash
from transforms.dedup.components import HIST_CLUSTER_SIZE

__all__ = ["NearDedupConfig", "NearDedup", "JaccardAtLeast", "similarity", "HIST_CLUSTER_SIZE"]

SIGS = "signatures"
VERIFY_MODES = ("estimate", "exact", "none")


@dataclasses.dataclass(frozen=True)
class NearDedupConfig:
    minhash: minhash.MinHashConfig = minhash.MinHashConfig()
    candidate_threshold: float = 0.0  # 0: threshold - 0.2 (see the module docstring)
    verify: str = "estimate"
    verify_threshold: float = 0.0  # 0: threshold - 2.5 standard errors (estimate) or threshold (exact)
    max_rounds: int = 10
    max_bucket: int = 64  # larger buckets compare each member with its next max_bucket members
    batch_size: int = 256

    def __post_init__(self):
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {VERIFY_MODES}, got {self.verify!r}")
        if self.max_rounds < 1 or self.max_bucket < 2:
            raise ValueError("max_rounds must be >= 1 and max_bucket >= 2")
        if not 0.0 <= self.candidate_threshold < 1.0 or not 0.0 <= self.verify_threshold <= 1.0:
            raise ValueError("candidate_threshold and verify_threshold must be in [0, 1)")

    def lsh_params(self) -> Tuple[int, int]:
        m = self.minhash
        if m.bands:
            return m.bands, m.rows
        candidate = self.candidate_threshold or max(0.05, m.threshold - 0.2)
        return minhash.optimal_lsh_params(candidate, m.num_perm, m.fp_weight, m.fn_weight)

    def accept_threshold(self) -> float:
        if self.verify_threshold:
            return self.verify_threshold
        t = self.minhash.threshold
        if self.verify == "estimate":
            return max(0.0, t - 2.5 * math.sqrt(t * (1 - t) / self.minhash.num_perm))
        return t


# ---------------------------------------------------------------------------
# Pure cores


def similarity(payload_a: bytes, payload_b: bytes, mode: str) -> float:
    """Estimated Jaccard (share of equal signature values) or exact shingle Jaccard."""
    a = np.frombuffer(payload_a, dtype=np.uint32)
    b = np.frombuffer(payload_b, dtype=np.uint32)
    if mode == "estimate":
        return float(np.count_nonzero(a == b)) / len(a)
    inter = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - inter
    return inter / union if union else 1.0


@dataclasses.dataclass(frozen=True)
class JaccardAtLeast:
    """The verification predicate: :func:`similarity` of two payloads reaches ``threshold``."""

    mode: str
    threshold: float

    def __call__(self, payload_u: bytes, payload_v: bytes) -> bool:
        return similarity(payload_u, payload_v, self.mode) >= self.threshold


# ---------------------------------------------------------------------------
# Beam


class _Signatures(accounting.CountingDoFn):
    """Batches of records -> (node, [band key, ...]) for LSH; (node, payload) per verification mode."""

    def __init__(self, config: NearDedupConfig):
        super().__init__()
        self._config = config

    def setup(self):
        self._shingler = minhash.Shingler(self._config.minhash)
        self._perms = minhash.permutations(self._config.minhash.num_perm, self._config.minhash.seed)
        self._bands, self._rows = self._config.lsh_params()

    def process(self, batch: List[dict]):
        import time

        start = time.perf_counter()
        flat, offsets = self._shingler.batch([r["text"] for r in batch],
                                             [r.get("language") for r in batch])
        sigs = minhash.signatures(flat, offsets, self._perms)
        self.time("minhash", time.perf_counter() - start, len(batch))
        keys = minhash.band_keys_batch(sigs, self._bands, self._rows)
        for i, record in enumerate(batch):
            if offsets[i + 1] == offsets[i]:
                self.count(INFO, "near_dedup.no_shingles")
                continue
            rid = accounting.node_id(record)
            if self._config.verify == "estimate":
                yield pvalue.TaggedOutput(SIGS, (rid, sigs[i].tobytes()))
            elif self._config.verify == "exact":
                shingles = np.unique(flat[offsets[i]:offsets[i + 1]]).astype(np.uint32)
                yield pvalue.TaggedOutput(SIGS, (rid, shingles.tobytes()))
            yield rid, keys[i]


class NearDedup(beam.PTransform):
    """Records -> survivors; also ``counts`` and ``clusters`` (membership rows).

    MinHash signatures and band keys per batch, then
    :class:`transforms.dedup.components.RemoveNearDuplicates` with
    :class:`JaccardAtLeast` (no predicate when ``verify="none"``).

    Returns a dict with ``records``, ``counts``, ``samples`` and ``clusters``.
    """

    def __init__(self, config: NearDedupConfig = NearDedupConfig()):
        super().__init__()
        self._config = config

    def expand(self, records):
        cfg = self._config
        signed = (
            records
            | "BatchForSignatures" >> beam.BatchElements(
                min_batch_size=16, max_batch_size=cfg.batch_size)
            | "Signatures" >> beam.ParDo(_Signatures(cfg)).with_outputs(
                accounting.COUNTS, SIGS, main="bands")
        )
        inputs = {"records": records, "record_bands": signed.bands}
        accept = None
        if cfg.verify != "none":
            inputs["payloads"] = signed[SIGS]
            accept = JaccardAtLeast(cfg.verify, cfg.accept_threshold())
        removed = inputs | "Components" >> components.RemoveNearDuplicates(
            accept, counter="near_dedup", max_bucket=cfg.max_bucket, max_rounds=cfg.max_rounds,
            clusters=True)
        counts = (signed[accounting.COUNTS], removed[accounting.COUNTS])
        return {"records": removed["records"],
                "counts": counts | "MergeNearDedupCounts" >> beam.Flatten(),
                "samples": removed[accounting.SAMPLES],
                "clusters": removed["clusters"]}
