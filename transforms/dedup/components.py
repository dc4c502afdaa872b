"""The near-duplicate graph in Beam: LSH buckets -> verified edges -> components -> survivors.

The engine both near-duplicate steps share (:class:`transforms.dedup.near.NearDedup`
on MinHash bands with a Jaccard check, :class:`transforms.image.steps.ImageNearDedup`
on difference-hash bands with a Hamming check). A step supplies, per record, its
node (:func:`transforms.accounting.node_id`), its LSH band keys and a payload,
and a pure predicate on two payloads; :class:`RemoveNearDuplicates` does the rest:

1. :class:`CandidatePairs`: the nodes that agree on a whole band meet in one
   bucket; each bucket yields its pairs (:func:`bucket_pairs`), deduplicated
   across bands. Counted under ``info.near_dedup.bucket_pairs``. A record has
   one band entry per band (18 by default), nearly all in buckets of one, so
   the entries are kept small: a node is represented there by its 12-byte
   :func:`node_handle` (ids can be long URLs), and per bundle the entries of
   each of ``partitions`` hash partitions of the band keys travel as one
   packed bytes value (:mod:`transforms.packing`) of up to 64 entries; a
   ``GroupByKey`` on the partition gathers them and the buckets are formed
   inside each partition. (One shuffle element per entry held about 200 bytes
   in the local runner's grouping table: more than the corpus itself.)
2. :class:`VerifyPairs`: each pair of handles asks both ends for their node
   and payload; one join on the handle answers (so every payload waits in one
   shuffle, not two), and a grouping on the pair brings both ends together:
   a payload travels once per pair it is in, never once per band. The pair is
   an edge ``(larger node, smaller node)`` when ``accept(payload_u,
   payload_v)`` holds (every pair, without a predicate). Two nodes sharing a
   handle (a 96-bit hash: about one chance in 10^10 among a billion records)
   would only add candidates, each still checked by ``accept`` (without a
   predicate, such a candidate would be taken as an edge). Counted
   under ``info.<counter>.pairs_compared`` and ``.pairs_accepted``. Without a
   predicate every candidate is an edge.
3. :class:`ConnectedComponents`: alternating large-star and small-star rounds
   (:class:`StarRound`; Kiveris et al., "Connected Components in MapReduce
   and Beyond", 2014), unrolled for ``max_rounds`` rounds, each counting the
   edges it changed under ``info.near_dedup.round_NN_changes`` (counted by the
   next round's grouping: two shuffles per round). At the fixed
   point every component is a star ``(child, root)`` around its smallest node.
4. :class:`Survivors`: every child is removed by a join on the node, counted
   under ``duplicates.near``; roots and records outside any edge are kept.
5. :class:`Clusters` (optional): membership rows (``id``, ``cluster_id``,
   ``cluster_size``; :func:`cluster_rows`) and the cluster-size histogram
   under :data:`HIST_CLUSTER_SIZE`.

Every counter name above is the same for text and images (``bucket_pairs`` and
the round changes sit under ``near_dedup.`` for both, as stats.json has them);
only the verification counter's prefix is the caller's.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from transforms import accounting
from transforms.accounting import DUPLICATES, INFO
from transforms.packing import pack, unpack

__all__ = ["band_partition", "bucket_pairs", "node_handle", "large_star", "small_star", "cluster_rows", "CandidatePairs",
           "VerifyPairs", "StarRound", "ConnectedComponents", "Survivors", "Clusters",
           "RemoveNearDuplicates", "HIST_CLUSTER_SIZE", "COUNTER"]

HIST_CLUSTER_SIZE = "hist.near_dup_cluster_size"
COUNTER = "near_dedup"  # prefix of the info counters of buckets and rounds

# A pure predicate on two payloads: is the pair a near-duplicate edge?
Accept = Callable[[Any, Any], bool]


# ---------------------------------------------------------------------------
# Pure cores


def bucket_pairs(ids: Iterable[Any], max_bucket: int) -> List[Tuple[Any, Any]]:
    """Candidate pairs ``(larger, smaller)`` of one LSH bucket (of handles, in the pipeline).

    All pairs when the bucket has at most ``max_bucket`` members; otherwise
    each member (in sorted order: for handles, a fixed pseudo-random order)
    with its next ``max_bucket`` members, so a
    bucket of k documents costs O(k * max_bucket) pairs, not O(k^2) (such
    buckets come from templated pages, whose members are all alike anyway).
    """
    ids = sorted(set(ids))
    pairs = []
    for i, low in enumerate(ids):
        for high in ids[i + 1:i + 1 + max_bucket]:
            pairs.append((high, low))
    return pairs


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


def cluster_rows(root: str, children: Iterable[str]) -> Iterator[dict]:
    """Membership rows of one star: the root first, then its children in order.

    Nodes are :func:`transforms.accounting.node_id` values; rows hold record ids.
    """
    children = sorted(set(children))
    size = len(children) + 1
    root_id = accounting.node_record_id(root)
    yield {"id": root_id, "cluster_id": root_id, "cluster_size": size}
    for child in children:
        yield {"id": accounting.node_record_id(child), "cluster_id": root_id, "cluster_size": size}


# ---------------------------------------------------------------------------
# Beam


def node_handle(node: str) -> bytes:
    """The 12 bytes that stand for a node in the LSH buckets: a BLAKE2b hash of it."""
    return hashlib.blake2b(node.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def band_partition(key: Any, partitions: int) -> int:
    """The partition of a band key: a CRC of its bytes (of its repr for other keys), stable across processes."""
    raw = key if isinstance(key, bytes) else repr(key).encode("utf-8")
    return zlib.crc32(raw) % partitions


class _PackBandsFn(beam.DoFn):
    """``(band key, node)`` -> ``(partition, packed list of (band key, handle))``, up to ``flush_at`` each;

    spilled on a local run, so the packs wait for their partition on disk.
    With ``per_record``, an element is ``(node, [band key, ...])``: every band
    of one record in one element (one call and one hash of the node per record
    instead of one per band; the entries are the same, in the same order).
    """

    def __init__(self, partitions: int, flush_at: int = 64, per_record: bool = False):
        super().__init__()
        self._partitions = partitions
        self._flush_at = flush_at
        self._per_record = per_record

    def start_bundle(self):
        self._pending: Dict[int, list] = {}

    def process(self, entry):
        if self._per_record:
            node, keys = entry
        else:
            keys, node = (entry[0],), entry[1]
        handle = node_handle(node)
        partitions, pending_parts = self._partitions, self._pending
        for key in keys:
            part = band_partition(key, partitions)
            pending = pending_parts.setdefault(part, [])
            pending.append((key, handle))
            if len(pending) >= self._flush_at:
                del pending_parts[part]
                yield part, pack(pending, compress=False, spill=True)

    def finish_bundle(self):
        for part in sorted(self._pending):
            yield GlobalWindows.windowed_value(
                (part, pack(self._pending[part], compress=False, spill=True)))
        self._pending = {}


class _BucketPairsFn(accounting.CountingDoFn):
    def __init__(self, max_bucket: int):
        super().__init__()
        self._max_bucket = max_bucket

    def process(self, keyed):
        _, blobs = keyed
        buckets: Dict[Any, List[str]] = {}
        for blob in blobs:
            for key, node in unpack(blob):
                buckets.setdefault(key, []).append(node)
        for key in sorted(k for k, ids in buckets.items() if len(ids) > 1):
            pairs = bucket_pairs(buckets[key], self._max_bucket)
            self.count(INFO, f"{COUNTER}.bucket_pairs", len(pairs), metric=False)
            yield from pairs


class CandidatePairs(beam.PTransform):
    """``(band key, node)`` (or, with ``per_record``, ``(node, [band key, ...])``)
    -> distinct candidate pairs of handles ``(larger, smaller)``.

    A handle is :func:`node_handle` of the node; :class:`VerifyPairs` turns
    the pairs back into nodes.

    Args:
      max_bucket: see :func:`bucket_pairs`.
      partitions: hash partitions of the band keys (a partition's entries are
        held together while its buckets are formed: about ``entries /
        partitions``, 3,000 for a 1 GB corpus and 3 million for 1 TB at the
        default).

    Returns a dict with ``pairs`` and ``counts``.
    """

    def __init__(self, max_bucket: int = 64, partitions: int = 4096, per_record: bool = False):
        super().__init__()
        self._per_record = per_record
        if max_bucket < 2:
            raise ValueError(f"max_bucket must be >= 2, got {max_bucket}")
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self._max_bucket = max_bucket
        self._partitions = partitions

    def expand(self, bands):
        candidates = (
            bands
            | "PackBands" >> beam.ParDo(_PackBandsFn(self._partitions, per_record=self._per_record))
            | "GroupBands" >> beam.GroupByKey()
            | "BucketPairs" >> beam.ParDo(_BucketPairsFn(self._max_bucket)).with_outputs(
                accounting.COUNTS, main="pairs")
        )
        return {"pairs": candidates.pairs | "DistinctPairs" >> beam.Distinct(),
                accounting.COUNTS: candidates[accounting.COUNTS]}


def _ask_both(pair):
    """(handle u, handle v) -> a request to each end for its node and payload."""
    yield pair[0], pair
    yield pair[1], pair


def _by_handle(kv):
    """(node, payload) -> (handle, (node, packed payload)); the payload waits for the pairs
    that ask for it packed (spilled on a local run: only the few nodes in candidate
    pairs are ever read back)."""
    return node_handle(kv[0]), (kv[0], pack(kv[1], compress=False, spill=True))


def _answer(keyed):
    """(handle, {ask: [pairs], payload: [(node, p)]}) -> (pair, (handle, node, p)) per pair that asked."""
    handle, grouped = keyed
    for node, payload in grouped["payload"]:
        for pair in grouped["ask"]:
            yield pair, (handle, node, payload)


class _VerifyFn(accounting.CountingDoFn):
    def __init__(self, accept: Optional[Accept], counter: str):
        super().__init__()
        self._accept = accept
        self._compared = f"{counter}.pairs_compared"
        self._accepted = f"{counter}.pairs_accepted"

    def process(self, keyed):
        (hu, hv), answers = keyed
        ends_u, ends_v = {}, {}
        for handle, node, payload in answers:
            (ends_u if handle == hu else ends_v)[node] = unpack(payload)
        for u, payload_u in sorted(ends_u.items()):
            for v, payload_v in sorted(ends_v.items()):
                if u == v:
                    continue
                if self._accept is None:
                    yield (max(u, v), min(u, v))
                    continue
                self.count(INFO, self._compared, metric=False)
                if self._accept(payload_u, payload_v):
                    self.count(INFO, self._accepted, metric=False)
                    yield (max(u, v), min(u, v))


class VerifyPairs(beam.PTransform):
    """``{"pairs": (handle u, handle v), "payloads": (node, payload)}`` -> edges ``(larger node, smaller node)``.

    Args:
      accept: a pure, picklable predicate ``accept(payload_u, payload_v) -> bool``,
        or None to take every pair (payloads may then be None).
      counter: prefix of the ``info`` counters ``pairs_compared`` / ``pairs_accepted``
        (counted only with a predicate).

    Returns a dict with ``edges`` and ``counts``.
    """

    def __init__(self, accept: Optional[Accept], counter: str = COUNTER):
        super().__init__()
        if accept is not None and not callable(accept):
            raise ValueError("accept must be a predicate on two payloads, or None")
        self._accept = accept
        self._counter = counter

    def expand(self, inputs):
        asks = inputs["pairs"] | "AskBothEnds" >> beam.FlatMap(_ask_both)
        ends = inputs["payloads"] | "ByHandle" >> beam.Map(_by_handle)
        verified = (
            {"ask": asks, "payload": ends}
            | "JoinPayloads" >> beam.CoGroupByKey()
            | "Answer" >> beam.FlatMap(_answer)
            | "GroupPairs" >> beam.GroupByKey()
            | "Verify" >> beam.ParDo(_VerifyFn(self._accept, self._counter)).with_outputs(
                accounting.COUNTS, main="edges")
        )
        return {"edges": verified.edges, accounting.COUNTS: verified[accounting.COUNTS]}


CHANGES = "changes"  # the side output of a round's changes


def _round_key(index: int) -> Tuple[str, str]:
    return (INFO, f"{COUNTER}.round_{index:02d}_changes")


def _forward_and_reverse(edge):
    """Both directions of an edge, tagged: ``f`` where the edge starts at the key, ``r`` where it ends."""
    a, b = edge
    yield a, ("f", b)
    yield b, ("r", a)


def _before(edge):
    """An edge of the previous round, at the node it starts from."""
    return edge[0], ("p", edge[1])


def _edge_changes(node_items) -> int:
    """The edges starting at this node present in one of two rounds and not the other.

    ``f`` items are this round's edges from the node, ``p`` the previous round's:
    summed over the nodes, the edges in one round's input or output, not both.
    """
    after, before = set(), set()
    for tag, v in node_items:
        if tag == "f":
            after.add(v)
        elif tag == "p":
            before.add(v)
    return len(after ^ before)


class _LargeStarFn(beam.DoFn):
    """A node and its tagged neighbours -> large-star edges; the previous round's changes on a side output."""

    def __init__(self, key: Optional[Tuple[str, str]]):
        super().__init__()
        self._key = key

    def process(self, keyed):
        node, items = keyed
        items = list(items)
        if self._key is not None:
            changed = _edge_changes(items)
            if changed:
                yield beam.pvalue.TaggedOutput(CHANGES, (self._key, changed))
        yield from large_star(node, [v for tag, v in items if tag != "p"])


class _CountedRound(beam.PTransform):
    """A star round (:class:`StarRound`) without a shuffle of its own to count changes.

    The large star's grouping by node also receives the previous round's edges
    (``previous``), tagged, and counts the edges that changed between that round's
    input and its output (this round's input) in the same pass: one shuffle of the
    edges per round fewer than a join of the two edge sets. Returns ``(edges,
    changes of round index - 1)``; ``changes`` is None for the first round.
    """

    def __init__(self, index: int, previous=None):
        super().__init__()
        self._index = index
        self._previous = previous

    def expand(self, edges):
        tagged = edges | "Undirected" >> beam.FlatMap(_forward_and_reverse)
        key = None
        if self._previous is not None:
            key = _round_key(self._index - 1)
            before = self._previous | "Before" >> beam.Map(_before)
            tagged = (tagged, before) | "WithBefore" >> beam.Flatten()
        large = (
            tagged
            | "GroupLarge" >> beam.GroupByKey()
            | "LargeStar" >> beam.ParDo(_LargeStarFn(key)).with_outputs(CHANGES, main="edges")
        )
        small = (
            large.edges
            | "GroupSmall" >> beam.GroupByKey()
            | "SmallStar" >> beam.FlatMap(lambda kv: small_star(kv[0], kv[1]))
        )
        return small, (large[CHANGES] if key is not None else None)


class _LastRoundChanges(beam.PTransform):
    """A round's changes from its output (the input here) and its input edges (``previous``),
    grouped by the node they start from: for the last round, or a round on its own."""

    def __init__(self, index: int, previous):
        super().__init__()
        self._key = _round_key(index)
        self._previous = previous

    def expand(self, edges):
        key = self._key
        after = edges | "After" >> beam.Map(lambda e: (e[0], ("f", e[1])))
        before = self._previous | "Before" >> beam.Map(_before)
        return (
            (after, before)
            | "Both" >> beam.Flatten()
            | "ByNode" >> beam.GroupByKey()
            | "Count" >> beam.FlatMap(lambda kv: [(key, n) for n in [_edge_changes(kv[1])] if n])
        )


class StarRound(beam.PTransform):
    """One large-star + small-star round: edges -> ``(edges, changes)``.

    ``changes`` holds ``((info, near_dedup.round_NN_changes), n)`` counts (the
    edges in the round's input or its output, not both), one zero included,
    so a round that changed nothing still reports 0. Duplicate edges need no
    ``Distinct``: every step groups by a node and works on the set of its
    neighbours. :class:`ConnectedComponents` chains the same rounds, counting
    each round's changes in the next one's grouping.
    """

    def __init__(self, index: int):
        super().__init__()
        self._index = index

    def expand(self, edges):
        small, _ = edges | "Round" >> _CountedRound(self._index)
        zero = edges.pipeline | "ZeroChanges" >> beam.Create([(_round_key(self._index), 0)])
        changed = small | "Changes" >> _LastRoundChanges(self._index, edges)
        return small, (changed, zero) | "RoundChanges" >> beam.Flatten()


class ConnectedComponents(beam.PTransform):
    """Edges -> stars ``(child, root)`` after ``max_rounds`` star rounds.

    Each round is :class:`StarRound`'s large star and small star; the changes
    a round made (``info.near_dedup.round_NN_changes``, a zero included) are
    counted by the next round's
    large-star grouping, and the last round's by one grouping of its own
    (:class:`_CountedRound`): two shuffles per round and one more, instead of
    three per round.

    Returns a dict with ``edges`` (the stars) and ``counts`` (changes per round).
    """

    def __init__(self, max_rounds: int = 10):
        super().__init__()
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self._rounds = max_rounds

    def expand(self, edges):
        changes = [edges.pipeline | "ZeroChanges" >> beam.Create(
            [(_round_key(i), 0) for i in range(self._rounds)])]  # a round with none
        previous = None
        for i in range(self._rounds):
            new, changed = edges | f"StarRound{i:02d}" >> _CountedRound(i, previous)
            if changed is not None:
                changes.append(changed)
            previous, edges = edges, new
        changes.append(edges | "LastRoundChanges" >> _LastRoundChanges(self._rounds - 1, previous))
        return {"edges": edges, accounting.COUNTS: changes | "MergeRoundChanges" >> beam.Flatten()}


class _DropChildrenFn(accounting.CountingDoFn):
    def __init__(self, thumbnail: Optional[Callable[[dict], str]]):
        super().__init__()
        self._thumbnail = thumbnail

    def process(self, keyed):
        _, grouped = keyed
        records, dropped = [unpack(blob) for blob in grouped["record"]], grouped["drop"]
        if dropped:
            self.count(DUPLICATES, "near", len(records))
            for record in records:
                thumb = self._thumbnail(record) if self._thumbnail else ""
                self.sample(DUPLICATES, "near", record, thumb)
            return
        yield from records


class Survivors(beam.PTransform):
    """``{"records", "edges"}`` -> records that are no star's child (``duplicates.near``).

    Args:
      thumbnail: optional ``record -> str`` (base64 JPEG) shown with the samples of drops.
      node: ``record -> node``, as the bands and payloads were keyed (default
        :func:`transforms.accounting.node_id`).

    Returns a dict with ``records``, ``counts`` and ``samples``.
    """

    def __init__(self, thumbnail: Optional[Callable[[dict], str]] = None,
                 node: Callable[[dict], str] = accounting.node_id):
        super().__init__()
        self._thumbnail = thumbnail
        self._node = node

    def expand(self, inputs):
        removed = (
            inputs["edges"]
            | "Children" >> beam.Map(lambda e: e[0])
            | "DistinctChildren" >> beam.Distinct()
            | "KeyRemoved" >> beam.Map(lambda rid: (rid, True))
        )
        # records wait for the components packed (transforms.packing; spilled on a local run)
        node = self._node
        keyed = inputs["records"] | "KeyByNode" >> beam.Map(
            lambda r: (node(r), pack(r, spill=True)))
        survivors = (
            {"record": keyed, "drop": removed}
            | "JoinRemovals" >> beam.CoGroupByKey()
            | "DropNearDuplicates" >> beam.ParDo(_DropChildrenFn(self._thumbnail)).with_outputs(
                accounting.COUNTS, accounting.SAMPLES, main="records")
        )
        return {"records": survivors.records, accounting.COUNTS: survivors[accounting.COUNTS],
                accounting.SAMPLES: survivors[accounting.SAMPLES]}


class Clusters(beam.PTransform):
    """Stars ``(child, root)`` -> membership rows and the cluster-size histogram.

    Returns a dict with ``clusters`` (:func:`cluster_rows`) and ``counts``
    (``((HIST_CLUSTER_SIZE, size), 1)`` per cluster).
    """

    def expand(self, edges):
        grouped = (
            edges
            | "ByRoot" >> beam.Map(lambda e: (e[1], e[0]))
            | "GroupClusters" >> beam.GroupByKey()
        )
        return {
            "clusters": grouped | "ClusterRows" >> beam.FlatMap(lambda kv: cluster_rows(*kv)),
            accounting.COUNTS: grouped | "SizeBucket" >> beam.Map(
                lambda kv: ((HIST_CLUSTER_SIZE, str(len(set(kv[1])) + 1)), 1)),
        }


class RemoveNearDuplicates(beam.PTransform):
    """The whole engine: records, their band keys and payloads -> survivors.

    Input: a dict with ``records``, ``bands`` (``(band key, node)`` pairs; or instead
    ``record_bands``, ``(node, [band key, ...])`` per record: one element where
    the other form has one per band) and,
    unless ``accept`` is None, ``payloads`` (``(node, payload)``); a node is
    ``node(record)``: :func:`transforms.accounting.node_id` unless given. The
    smallest node of a component survives, so a ``node`` function that puts a
    rank before the id chooses which record a group keeps.

    Args:
      accept: pure predicate on two payloads (see :class:`VerifyPairs`), or None
        to take every candidate pair as an edge.
      counter: prefix of the verification counters.
      max_bucket: see :func:`bucket_pairs`.
      max_rounds: star rounds (see :class:`ConnectedComponents`).
      clusters: also return ``clusters`` rows and count the cluster-size histogram.
      thumbnail: optional ``record -> str`` for the samples of dropped records.
      node: ``record -> node`` (default :func:`transforms.accounting.node_id`); the
        bands and payloads must be keyed by the same function. Cluster rows name
        records by :func:`transforms.accounting.node_record_id`, so ``clusters``
        needs the default.

    Returns a dict with ``records``, ``counts``, ``samples`` (of dropped records) and,
    with ``clusters``, ``clusters``.
    """

    def __init__(self, accept: Optional[Accept], counter: str = COUNTER, max_bucket: int = 64,
                 max_rounds: int = 10, clusters: bool = False,
                 thumbnail: Optional[Callable[[dict], str]] = None,
                 node: Callable[[dict], str] = accounting.node_id):
        super().__init__()
        if max_rounds < 1 or max_bucket < 2:
            raise ValueError("max_rounds must be >= 1 and max_bucket >= 2")
        if clusters and node is not accounting.node_id:
            raise ValueError("clusters name records by node_id: a custom node function cannot")
        self._node = node
        self._accept = accept
        self._counter = counter
        self._max_bucket = max_bucket
        self._max_rounds = max_rounds
        self._clusters = clusters
        self._thumbnail = thumbnail

    def expand(self, inputs):
        per_record = "record_bands" in inputs
        candidates = (inputs["record_bands" if per_record else "bands"]
                      | "CandidatePairs" >> CandidatePairs(self._max_bucket, per_record=per_record))
        counts = [candidates[accounting.COUNTS]]
        if self._accept is not None:
            payloads = inputs["payloads"]
        else:  # pairs of handles still need their nodes
            node = self._node
            payloads = inputs["records"] | "Nodes" >> beam.Map(lambda r: (node(r), None))
        verified = ({"pairs": candidates["pairs"], "payloads": payloads}
                    | "VerifyPairs" >> VerifyPairs(self._accept, self._counter))
        edges = verified["edges"]
        counts.append(verified[accounting.COUNTS])
        stars = edges | "ConnectedComponents" >> ConnectedComponents(self._max_rounds)
        counts.append(stars[accounting.COUNTS])
        survivors = ({"records": inputs["records"], "edges": stars["edges"]}
                     | "Survivors" >> Survivors(self._thumbnail, self._node))
        counts.append(survivors[accounting.COUNTS])
        out = {"records": survivors["records"], accounting.SAMPLES: survivors[accounting.SAMPLES]}
        if self._clusters:
            clusters = stars["edges"] | "Clusters" >> Clusters()
            counts.append(clusters[accounting.COUNTS])
            out["clusters"] = clusters["clusters"]
        out[accounting.COUNTS] = counts | "MergeCounts" >> beam.Flatten()
        return out
