"""Near-duplicate removal at corpus scale: MinHash LSH and connected components, all in Beam.

1. **Signatures** (:mod:`transforms.dedup.minhash`): documents are batched and
   signed per batch (vectorised shingling, compiled permutation loop).
   Documents with no shingle (no word at all) are never candidates.
2. **LSH**: each document emits one (band key, id) per band; ``GroupByKey``
   gathers the documents that agree on a whole band, and each bucket yields
   its candidate pairs (:func:`bucket_pairs`), deduplicated across bands.
3. **Verification**: a candidate pair counts as an edge only if its estimated
   Jaccard (share of equal signature values; default) or its exact shingle
   Jaccard (``verify="exact"``) reaches the verification threshold. The pair
   meets its two signatures through two joins on the id, so signatures travel
   once per pair, never once per band. The bands and rows are chosen, as datasketch's ``MinHashLSH``
   chooses them, for a *candidate* threshold below the duplicate threshold
   (by default 0.2 lower), so that pairs at the threshold are candidates
   almost surely and the verification, not the S-curve of the bands, draws the
   line; the estimate's verification threshold sits 2.5 standard errors below
   the duplicate threshold for the same reason.
4. **Connected components** without a single machine: alternating large-star
   and small-star rounds (Kiveris et al., "Connected Components in MapReduce
   and Beyond", 2014) over the edge list, unrolled for ``max_rounds`` rounds
   (10 by default; the number of rounds grows with the logarithm of the
   component size), each a pair of ``GroupByKey`` steps; each round counts how many edges
   changed, and the run records whether the last round changed none. At the
   fixed point every component is a star around its smallest id.
5. **Survivors**: the smallest id of each component; every other member is
   counted under ``duplicates.near`` and removed by a join on the id.

Optional: cluster membership (``id``, ``cluster_id``, ``cluster_size``) for
audits, and the cluster-size histogram in stats.json.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, List, Tuple

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from transforms import accounting
from transforms.dedup import minhash
from transforms.accounting import DUPLICATES, INFO

__all__ = ["NearDedupConfig", "NearDedup", "bucket_pairs", "similarity", "large_star",
           "small_star", "HIST_CLUSTER_SIZE"]

HIST_CLUSTER_SIZE = "hist.near_dup_cluster_size"
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


def bucket_pairs(ids: Iterable[str], max_bucket: int) -> List[Tuple[str, str]]:
    """Candidate pairs ``(larger id, smaller id)`` of one LSH bucket.

    All pairs when the bucket has at most ``max_bucket`` members; otherwise
    each member (in id order) with its next ``max_bucket`` members, so a
    bucket of k documents costs O(k * max_bucket) pairs, not O(k^2) (such
    buckets come from templated pages, whose members are all alike anyway).
    """
    ids = sorted(set(ids))
    pairs = []
    for i, low in enumerate(ids):
        for high in ids[i + 1:i + 1 + max_bucket]:
            pairs.append((high, low))
    return pairs


def similarity(payload_a: bytes, payload_b: bytes, mode: str) -> float:
    """Estimated Jaccard (share of equal signature values) or exact shingle Jaccard."""
    a = np.frombuffer(payload_a, dtype=np.uint32)
    b = np.frombuffer(payload_b, dtype=np.uint32)
    if mode == "estimate":
        return float(np.count_nonzero(a == b)) / len(a)
    inter = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - inter
    return inter / union if union else 1.0


def large_star(node: str, neighbours: Iterable[str]) -> Iterable[Tuple[str, str]]:
    """Connect every strictly larger neighbour to the smallest of the neighbourhood."""
    nbrs = set(neighbours)
    m = min(nbrs | {node})
    for v in nbrs:
        if v > node:
            yield (v, m)


def small_star(node: str, smaller: Iterable[str]) -> Iterable[Tuple[str, str]]:
    """Connect the node and its smaller neighbours to the smallest of them."""
    nbrs = set(smaller)
    m = min(nbrs | {node})
    for v in nbrs | {node}:
        if v != m:
            yield (v, m)


# ---------------------------------------------------------------------------
# Beam


class _Signatures(accounting.CountingDoFn):
    """Batches of records -> (id, payload) for LSH; payload per verification mode."""

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
        flat, offsets = self._shingler.batch([r["text"] for r in batch])
        sigs = minhash.signatures(flat, offsets, self._perms)
        self.time("minhash", time.perf_counter() - start, len(batch))
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
            for key in minhash.band_keys(sigs[i], self._bands, self._rows):
                yield key, rid


class _BucketPairs(accounting.CountingDoFn):
    def __init__(self, max_bucket: int):
        super().__init__()
        self._max_bucket = max_bucket

    def process(self, keyed):
        _, ids = keyed
        ids = list(ids)
        if len(ids) < 2:
            return
        pairs = bucket_pairs(ids, self._max_bucket)
        self.count(INFO, "near_dedup.bucket_pairs", len(pairs), metric=False)
        yield from pairs


def _attach_first(keyed):
    """(u, {pairs: [v...], sig: [sig_u]}) -> (v, (u, sig_u)) for each v."""
    u, grouped = keyed
    for sig in grouped["sig"]:
        for v in grouped["pair"]:
            yield v, (u, sig)


class _Verify(accounting.CountingDoFn):
    def __init__(self, config: NearDedupConfig):
        super().__init__()
        self._mode = config.verify
        self._accept = config.accept_threshold()

    def process(self, keyed):
        v, grouped = keyed
        for sig_v in grouped["sig"]:
            for u, sig_u in grouped["half"]:
                self.count(INFO, "near_dedup.pairs_compared", metric=False)
                if similarity(sig_u, sig_v, self._mode) >= self._accept:
                    self.count(INFO, "near_dedup.pairs_accepted", metric=False)
                    yield (u, v)


def _both_directions(edge):
    a, b = edge
    yield a, b
    yield b, a


def _changed(kv):
    """An edge present before the round or after it, not both."""
    grouped = kv[1]
    return not (grouped["before"] and grouped["after"])


class _StarRound(beam.PTransform):
    """One large-star + small-star round; also counts the edges that changed.

    Duplicate edges need no ``Distinct``: every step groups by a node and
    works on the set of its neighbours.
    """

    def __init__(self, index: int):
        super().__init__()
        self._index = index

    def expand(self, edges):
        key = (INFO, f"near_dedup.round_{self._index:02d}_changes")
        small = (
            edges
            | "Undirected" >> beam.FlatMap(_both_directions)
            | "GroupLarge" >> beam.GroupByKey()
            | "LargeStar" >> beam.FlatMap(lambda kv: large_star(kv[0], kv[1]))
            | "GroupSmall" >> beam.GroupByKey()
            | "SmallStar" >> beam.FlatMap(lambda kv: small_star(kv[0], kv[1]))
        )
        changed = (
            {"before": edges | "KeyBefore" >> beam.Map(lambda e: (e, None)),
             "after": small | "KeyAfter" >> beam.Map(lambda e: (e, None))}
            | "Diff" >> beam.CoGroupByKey()
            | "Changed" >> beam.Filter(_changed)
            | "OnePerChange" >> beam.Map(lambda _: (key, 1))
        )
        zero = edges.pipeline | "ZeroChanges" >> beam.Create([(key, 0)])  # a round with none
        changes = (changed, zero) | "RoundChanges" >> beam.Flatten()
        return small, changes


class _DropDuplicates(accounting.CountingDoFn):
    def process(self, keyed):
        _, grouped = keyed
        records, dropped = grouped["record"], grouped["drop"]
        if dropped:
            self.count(DUPLICATES, "near", len(records))
            for record in records:
                self.sample(DUPLICATES, "near", record, thumbnail(record))
            return
        yield from records


def thumbnail(record: dict, size: int = 64) -> str:
    """A small base64 JPEG of an image record, for reports; '' for text."""
    data = record.get("jpeg")
    if not data:
        return ""
    import base64
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(data))
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=70)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _cluster_rows(kv):
    root, children = kv
    children = sorted(set(children))
    size = len(children) + 1
    root_id = accounting.node_record_id(root)
    yield {"id": root_id, "cluster_id": root_id, "cluster_size": size}
    for child in children:
        yield {"id": accounting.node_record_id(child), "cluster_id": root_id, "cluster_size": size}


class NearDedup(beam.PTransform):
    """Records -> survivors; also ``counts`` and ``clusters`` (membership rows).

    Returns a dict with ``records``, ``counts`` and ``clusters``.
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
        candidates = (
            signed.bands
            | "GroupBands" >> beam.GroupByKey()
            | "BucketPairs" >> beam.ParDo(_BucketPairs(cfg.max_bucket)).with_outputs(
                accounting.COUNTS, main="pairs")
        )
        pairs = candidates.pairs | "DistinctPairs" >> beam.Distinct()
        counts = [signed[accounting.COUNTS], candidates[accounting.COUNTS]]
        if cfg.verify == "none":
            edges = pairs
        else:
            # Each pair meets its two signatures through two joins on the id, so a
            # signature travels once per pair it is in, not once per band.
            sigs = signed[SIGS]
            half = (
                {"pair": pairs, "sig": sigs}
                | "JoinFirstSignature" >> beam.CoGroupByKey()
                | "AttachFirst" >> beam.FlatMap(_attach_first)
            )
            verified = (
                {"half": half, "sig": sigs}
                | "JoinSecondSignature" >> beam.CoGroupByKey()
                | "VerifyPairs" >> beam.ParDo(_Verify(cfg)).with_outputs(accounting.COUNTS, main="edges")
            )
            edges = verified.edges
            counts.append(verified[accounting.COUNTS])
        for i in range(cfg.max_rounds):
            edges, changes = edges | f"StarRound{i:02d}" >> _StarRound(i)
            counts.append(changes)
        removed = (
            edges
            | "Children" >> beam.Map(lambda e: e[0])
            | "DistinctChildren" >> beam.Distinct()
            | "KeyRemoved" >> beam.Map(lambda rid: (rid, True))
        )
        survivors = (
            {"record": records | "KeyByNode" >> beam.Map(lambda r: (accounting.node_id(r), r)),
             "drop": removed}
            | "JoinRemovals" >> beam.CoGroupByKey()
            | "DropNearDuplicates" >> beam.ParDo(_DropDuplicates()).with_outputs(
                accounting.COUNTS, main="records")
        )
        counts.append(survivors[accounting.COUNTS])
        grouped = (
            edges
            | "ByRoot" >> beam.Map(lambda e: (e[1], e[0]))
            | "GroupClusters" >> beam.GroupByKey()
        )
        clusters = grouped | "ClusterRows" >> beam.FlatMap(_cluster_rows)
        counts.append(
            grouped
            | "SizeBucket" >> beam.Map(
                lambda kv: ((HIST_CLUSTER_SIZE, str(len(set(kv[1])) + 1)), 1)))
        return {"records": survivors.records,
                "counts": counts | "MergeNearDedupCounts" >> beam.Flatten(),
                "clusters": clusters}
