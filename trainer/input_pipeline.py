"""tf.data input for beamtrain shards: interleave, shuffle, batch-parse, bucket or pack, prefetch.

The shards are those of the text pipeline's output contract (DESIGN.md):
``DIR/data/{split}-SSSSS-of-NNNNN.tfrecord`` holding ``tf.train.Example`` with
``id`` and ``input_ids``. Each element this module yields is::

    ({"tokens": int32[B, T], "segment_ids": int32[B, T], "positions": int32[B, T]},
     targets int32[B, T], weights float32[B, T])

for causal language modelling: ``targets`` are the next tokens, ``weights``
are 1 where a target is a real next token of the same segment, 0 on padding
and across packed-segment boundaries. ``segment_ids`` are 0 on padding.

Steps, in order:

1. list the split's shard files; shuffle their order with a seed;
2. shard per input pipeline (``tf.distribute.InputContext``) so that every
   pipeline gets the same number of records (:func:`pipeline_segments`):
   with the shards' record counts (``manifest.json``) the files are laid end
   to end and each pipeline reads its own contiguous ``1/P`` of the records
   (whole files, and a part of one or two); without counts, by file when
   every pipeline gets at least :data:`MIN_FILES_PER_PIPELINE` files, by
   record after reading otherwise;
3. ``interleave`` TFRecord readers (``cycle_length``, parallel calls,
   ``deterministic`` a flag); optional ``cache``; ``shuffle``; ``repeat`` for
   training;
4. parse in batches of records (``tf.io.parse_example`` with a
   ``RaggedFeature``), never one record at a time;
5. cut documents longer than ``seq_len + 1`` tokens into pieces of
   ``seq_len + 1`` (vectorised on the ragged batch: no token is dropped);
   when training, shuffle the *pieces* (blocks of ``piece_shuffle`` pieces,
   each permuted at random), so the pieces of one long document spread over
   many batches instead of filling some; ``bucket`` windows then spread the
   pieces of a document with more than ``B / 4`` of them evenly over the
   window's batches (:func:`_spread_order`);
6. batch, one of:

   * ``bucket`` (default) -- length bucketing done on whole windows: windows
     of ``bucket_window * B`` pieces are sorted by length and cut into batches
     of B, each padded to its own longest piece (dynamic padding), and the
     batches shuffled. Vectorised, so it costs far less per piece than
     per-element bucketing;
   * ``tf_bucket`` -- ``tf.data``'s ``bucket_by_sequence_length`` with dynamic
     padding, the boundaries derived from the token-length histogram in
     ``stats.json`` (:func:`bucket_boundaries`): the textbook form, slower
     (its per-element cost bounds it to some 15k pieces/s on this machine);
   * ``pack`` -- several pieces per row of ``seq_len + 1`` tokens with segment
     ids and per-segment positions (as seqio packs), for causal LM training;
   * ``pad`` -- ``padded_batch`` to the longest sequence of each batch: the
     baseline the benchmark prints beside the others;

7. when resuming, skip the batches already trained on (``skip_batches``:
   the order is deterministic, so the stream continues exactly); with
   ``batch_log``, append each batch's record ids to ``batch_log.K`` (K: the
   input pipeline) with the batch's index in the stream, as JSON lines;
8. ``prefetch(AUTOTUNE)``.

``bucket`` batches may be padded up to a fixed ladder of widths
(``pad_widths``, :func:`width_ladder`) instead of their own longest piece, so
an XLA-compiled step sees a bounded number of shapes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from trainer.sharding import pipeline_segments

__all__ = ["InputConfig", "shard_files", "load_stats", "shard_record_counts", "pipeline_segments",
           "bucket_boundaries", "width_ladder", "make_dataset", "distributed_dataset", "PAD_ID",
           "MODES", "MIN_FILES_PER_PIPELINE", "pad_rows"]

PAD_ID = 0
MODES = ("bucket", "tf_bucket", "pack", "pad")
AUTOTUNE = tf.data.AUTOTUNE
# Without record counts, shard by file only when each pipeline gets this many
# files (fewer, and one extra file is a large share of a pipeline's data).
MIN_FILES_PER_PIPELINE = 4


@dataclasses.dataclass(frozen=True)
class InputConfig:
    seq_len: int = 512  # model context: rows hold seq_len inputs (+1 for the shifted targets)
    batch_size: int = 32  # per input pipeline (the trainer divides the global batch)
    mode: str = "bucket"
    shuffle_buffer: int = 10_000
    cycle_length: int = 4
    deterministic: bool = False
    seed: int = 0
    cache: bool = False
    parse_batch: int = 256  # records parsed per parse_example call
    pack_group: int = 512  # pieces packed together per group (pack mode)
    bucket_window: int = 64  # batches per length-sorted window (bucket mode)
    bucket_ratio: float = 1.1  # width of a length bucket: upper / lower bound
    min_bucket_share: float = 0.005  # merge buckets holding less of the data than this
    with_ids: bool = False  # keep each row's record id (tests, audits)
    piece_shuffle: int = -1  # pieces in the piece-level shuffle buffer; -1: auto, 0: off
    pad_widths: tuple = ()  # bucket mode: pad each batch up to the first of these widths
    skip_batches: int = 0  # batches to skip at the start (resume)
    batch_log: Optional[str] = None  # append each batch's ids to batch_log.K
    record_counts: Optional[tuple] = None  # ((file, records), ...) from manifest.json

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.bucket_ratio <= 1.0:
            raise ValueError(f"bucket_ratio must be above 1, got {self.bucket_ratio}")
        if self.skip_batches < 0:
            raise ValueError(f"skip_batches must be >= 0, got {self.skip_batches}")
        if self.pad_widths and max(self.pad_widths) < self.seq_len + 1:
            raise ValueError(f"pad_widths must reach seq_len + 1 = {self.seq_len + 1}")

    @property
    def piece_buffer(self) -> int:
        """The piece shuffle buffer: ``piece_shuffle``, or auto: eight batching windows."""
        if self.piece_shuffle >= 0:
            return self.piece_shuffle
        window = self.pack_group if self.mode == "pack" else self.bucket_window * self.batch_size
        return min(65536, 8 * max(window, self.batch_size))


class DatasetNotReady(RuntimeError):
    """The data folder is not a finished beamtrain dataset (no COMPLETED, or it disagrees)."""


def check_dataset(data_dir: str) -> None:
    """Refuse a data folder the pipeline did not finish: the trainer would fail, or train on half.

    Needs ``COMPLETED`` (written last by a successful run) agreeing with
    ``manifest.json`` (its content digest), and every shard the manifest lists
    present with its recorded size. ``python -m beam_pipelines.verify`` checks
    more (every byte); this is the cheap part, done at every start.
    """
    done = os.path.join(data_dir, "COMPLETED")
    if not tf.io.gfile.exists(done):
        raise DatasetNotReady(f"{data_dir}: no COMPLETED marker: the pipeline run did not finish "
                              "(or this is not a beamtrain output folder); pass --force to train anyway")
    try:
        with tf.io.gfile.GFile(os.path.join(data_dir, "manifest.json")) as f:
            manifest = json.load(f)
        with tf.io.gfile.GFile(done) as f:
            completed = json.loads(f.read() or "{}")
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise DatasetNotReady(f"{data_dir}: manifest.json or COMPLETED unreadable: {e}") from e
    want = completed.get("content_sha256") if isinstance(completed, dict) else None
    if want and want != manifest.get("content_sha256"):
        raise DatasetNotReady(f"{data_dir}: COMPLETED belongs to another run than manifest.json "
                              "(content digests differ); rerun the pipeline or pass --force")
    for shard in manifest.get("shards", []):
        rel = str(shard.get("path", ""))
        if rel.startswith("/") or ".." in rel.split("/") or "://" in rel:
            raise DatasetNotReady(f"{data_dir}: manifest.json lists a shard outside the folder: {rel!r}")
        path = os.path.join(data_dir, rel)
        if not tf.io.gfile.exists(path):
            raise DatasetNotReady(f"{data_dir}: shard {rel} is missing; pass --force to train anyway")
        size = tf.io.gfile.stat(path).length
        if size != shard.get("bytes", size):
            raise DatasetNotReady(f"{data_dir}: shard {rel} has {size} bytes, manifest.json says "
                                  f"{shard['bytes']}; pass --force to train anyway")


def shard_files(data_dir: str, split: str) -> List[str]:
    """The split's shard files, sorted; a clear error when there are none."""
    pattern = os.path.join(data_dir, "data", f"{split}-*-of-*.tfrecord")
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        others = sorted(tf.io.gfile.glob(os.path.join(data_dir, "data", f"{split}-*-of-*.*")))
        if others:
            raise FileNotFoundError(
                f"{data_dir} holds {os.path.splitext(others[0])[1][1:]} shards, not TFRecord: "
                "the trainer reads --output_format tfrecord (run the pipeline again with it, or "
                "load these with their own library)")
        raise FileNotFoundError(f"no shards match {pattern}: is {data_dir} a beamtrain output directory?")
    return files


def load_stats(data_dir: str) -> Optional[dict]:
    path = os.path.join(data_dir, "stats.json")
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def shard_record_counts(data_dir: str) -> Optional[tuple]:
    """``((shard path, records), ...)`` from ``manifest.json``; None without one."""
    path = os.path.join(data_dir, "manifest.json")
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            shards = json.load(f).get("shards", [])
        return tuple((os.path.join(data_dir, str(s["path"])), int(s["records"]))
                     for s in shards if isinstance(s, dict))
    except (ValueError, KeyError, TypeError, tf.errors.OpError):
        return None


def width_ladder(seq_len: int, steps: int = 8) -> tuple:
    """A few fixed batch widths up to ``seq_len + 1`` (multiples of 8 where they fit):
    bucket batches padded up to these compile a bounded number of XLA programs."""
    piece = seq_len + 1
    widths = set()
    for i in range(1, steps + 1):
        w = -(-piece * i // steps)
        widths.add(min(piece, -(-w // 8) * 8))
    widths.add(piece)
    return tuple(sorted(widths))


def _piece_length_histogram(stats: dict, piece: int) -> Dict[int, float]:
    """Token-length histogram of the pieces documents are cut into."""
    hist = stats.get("histograms", {}).get("tokens_per_doc")
    if not hist:
        return {}
    pieces: Dict[int, float] = {}
    lows = hist["bucket_lower_bounds"]
    for i, (low, count) in enumerate(zip(lows, hist["counts"])):
        # a bucket covers [low, next low): take its middle as its documents' length
        high = lows[i + 1] if i + 1 < len(lows) else low + max(1, low // 8)
        length = (low + high) // 2 if high > low + 1 else low
        full, rest = divmod(length, piece)
        if full:
            pieces[piece] = pieces.get(piece, 0) + full * count
        if rest:
            pieces[rest] = pieces.get(rest, 0) + count
    return pieces


def bucket_boundaries(stats: Optional[dict], seq_len: int, ratio: float = 1.1,
                      min_share: float = 0.005) -> List[int]:
    """Bucket boundaries for ``bucket_by_sequence_length``.

    Candidates grow geometrically by ``ratio`` (a batch's sequences then differ
    by at most that factor, which bounds padding); with a token histogram from
    stats.json, candidate buckets holding less than ``min_share`` of the pieces
    are merged into their neighbour, so every bucket fills batches.
    """
    piece = seq_len + 1
    candidates = []
    b = 8
    while b < piece:
        candidates.append(b)
        b = max(b + 1, int(math.ceil(b * ratio)))
    candidates.append(piece)
    hist = _piece_length_histogram(stats, piece) if stats else {}
    total = sum(hist.values())
    if not total:
        return candidates
    # mass per candidate bucket [prev, boundary)
    kept: List[int] = []
    acc = 0.0
    lengths = sorted(hist)
    j = 0
    for boundary in candidates:
        while j < len(lengths) and lengths[j] < boundary:
            acc += hist[lengths[j]]
            j += 1
        if acc >= min_share * total:
            kept.append(boundary)
            acc = 0.0
    if not kept or kept[-1] != piece:
        if kept and acc < min_share * total:
            kept[-1] = piece
        else:
            kept.append(piece)
    return kept


def _parse(serialized, with_ids: bool):
    spec = {"input_ids": tf.io.RaggedFeature(tf.int64)}
    if with_ids:
        spec["id"] = tf.io.FixedLenFeature([], tf.string)
    parsed = tf.io.parse_example(serialized, spec)
    ids = tf.cast(parsed["input_ids"], tf.int32)
    return (ids, parsed["id"]) if with_ids else (ids, tf.zeros([tf.shape(serialized)[0]], tf.string))


def _cut_pieces(ids: tf.RaggedTensor, record_ids, piece: int, base=None):
    """Cut every row longer than ``piece`` into pieces of at most ``piece`` tokens.

    With ``base`` (the parse batch's first record number) also each piece's
    document number, ``base`` + its row: pieces of one document share it.
    """
    lengths = tf.cast(ids.row_lengths(), tf.int64)
    n_pieces = tf.maximum((lengths + piece - 1) // piece, 1)
    j = tf.cast(tf.ragged.range(n_pieces).flat_values, tf.int64)  # piece index in its document
    doc = tf.repeat(tf.range(tf.shape(lengths, out_type=tf.int64)[0]), n_pieces)
    piece_lengths = tf.minimum(tf.cast(piece, tf.int64), tf.gather(lengths, doc) - j * piece)
    piece_lengths = tf.maximum(piece_lengths, 0)
    pieces = tf.RaggedTensor.from_row_lengths(ids.flat_values, piece_lengths)
    if base is None:
        return pieces, tf.gather(record_ids, doc)
    return pieces, tf.gather(record_ids, doc), tf.cast(base, tf.int64) + doc


def _permute_block(pieces: tf.RaggedTensor, record_ids, docs, seed: int, block):
    """A block of pieces in a random order, drawn from ``(seed, block number)``."""
    n = tf.shape(docs)[0]
    keys = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64) + 1,
                                                           tf.cast(block, tf.int64)]))
    order = tf.argsort(keys)
    return tf.gather(pieces, order), tf.gather(record_ids, order), tf.gather(docs, order)


def _drop_single_tokens(pieces: tf.RaggedTensor, record_ids, docs):
    keep = pieces.row_lengths() >= 2  # one token predicts nothing
    return (tf.ragged.boolean_mask(pieces, keep), tf.boolean_mask(record_ids, keep),
            tf.boolean_mask(docs, keep))


def _spread_order(lengths, docs, batch: int, cap: int):
    """The order of a window's pieces: by length, except that a document with more than
    ``cap`` pieces in the window has them spread evenly over the whole window.

    Length sorting alone puts the many equal-length pieces of one long document
    side by side, so they fill whole batches; spread, each batch holds about
    ``pieces / batches`` of them. Vectorised: one stable sort for the length
    order, one for the rank of each piece within its document, one for the
    final order.
    """
    n = tf.shape(lengths, out_type=tf.int64)[0]
    by_length = tf.argsort(lengths, stable=True)
    position = tf.cast(tf.math.invert_permutation(by_length), tf.float64)  # rank by length
    _, doc_index, counts = tf.unique_with_counts(docs, out_idx=tf.int64)
    per_doc = tf.cast(tf.gather(counts, doc_index), tf.float64)
    # rank of each piece among its document's pieces, in length order
    grouped = tf.argsort(tf.cast(doc_index, tf.float64) * tf.cast(n + 1, tf.float64) + position,
                         stable=True)
    starts = tf.math.cumsum(counts, exclusive=True)
    sorted_doc = tf.gather(doc_index, grouped)
    rank_sorted = tf.range(n) - tf.gather(starts, sorted_doc)
    rank = tf.scatter_nd(tf.expand_dims(tf.cast(grouped, tf.int64), 1), rank_sorted,
                         tf.expand_dims(n, 0))
    spread = (tf.cast(rank, tf.float64) + 0.5) / per_doc * tf.cast(n, tf.float64)
    crowded = per_doc > cap
    # the other pieces keep their length order, stretched over the same [0, n)
    rest = tf.reduce_sum(tf.cast(tf.logical_not(crowded), tf.float64))
    by_length_rest = tf.argsort(tf.where(crowded, tf.cast(tf.reduce_max(lengths) + 1, tf.int64),
                                         tf.cast(lengths, tf.int64)), stable=True)
    rest_position = tf.cast(tf.math.invert_permutation(by_length_rest), tf.float64)
    stretched = (rest_position + 0.5) / tf.maximum(rest, 1.0) * tf.cast(n, tf.float64)
    key = tf.where(crowded, spread, stretched)
    return tf.argsort(key, stable=True)


def _sorted_batches(pieces: tf.RaggedTensor, record_ids, docs, batch: int, cap: int):
    """A window of pieces -> [n_batches, batch, None], similar lengths in each batch
    (and no document holding more than about ``cap`` rows of one)."""
    lengths = pieces.row_lengths()
    order = _spread_order(lengths, docs, batch, cap)
    pieces = tf.gather(pieces, order)
    record_ids = tf.gather(record_ids, order)
    n = tf.shape(lengths, out_type=tf.int64)[0]
    full, rest = n // batch, n % batch
    sizes = tf.concat([tf.fill([full], tf.cast(batch, tf.int64)),
                       tf.reshape(rest, [1])[: tf.cast(rest > 0, tf.int32)]], 0)
    return (tf.RaggedTensor.from_row_lengths(pieces, sizes),
            tf.RaggedTensor.from_row_lengths(record_ids, sizes))


def _dense_row(row):
    return row.flat_values if isinstance(row, tf.RaggedTensor) else row


def _lm_example(tokens, segment_ids, positions, record_ids=None):
    """Rows of seq_len + 1 -> (features, targets, weights) for next-token prediction."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    seg_in, seg_out = segment_ids[:, :-1], segment_ids[:, 1:]
    weights = tf.cast(tf.logical_and(tf.equal(seg_in, seg_out), seg_out > 0), tf.float32)
    features = {"tokens": inputs, "segment_ids": seg_in, "positions": positions[:, :-1]}
    if record_ids is not None:
        features["id"] = record_ids
    return features, targets, weights


def _dense_example(padded, record_ids=None):
    segment_ids = tf.cast(tf.not_equal(padded, PAD_ID), tf.int32)
    positions = tf.broadcast_to(tf.range(tf.shape(padded)[1], dtype=tf.int32), tf.shape(padded))
    return _lm_example(padded, segment_ids, positions, record_ids)


def _pack(pieces: tf.RaggedTensor, row: int):
    """Concatenate pieces into rows of ``row`` tokens with segment ids and positions."""
    flat = pieces.flat_values
    n = tf.shape(flat, out_type=tf.int64)[0]
    n_rows = (n + row - 1) // row
    pad = n_rows * row - n
    doc = pieces.value_rowids()
    doc_start = tf.gather(pieces.row_starts(), doc)
    t = tf.range(n, dtype=tf.int64)
    row_start = (t // row) * row
    # a piece continued from the previous row starts a new segment there
    seg_start = tf.maximum(doc_start, row_start)
    positions = tf.cast(t - seg_start, tf.int32)
    first_doc = tf.gather(doc, row_start)
    segment = tf.cast(doc - first_doc + 1, tf.int32)
    tokens = tf.reshape(tf.concat([flat, tf.fill([pad], PAD_ID)], 0), [-1, row])
    segment = tf.reshape(tf.concat([segment, tf.zeros([pad], tf.int32)], 0), [-1, row])
    positions = tf.reshape(tf.concat([positions, tf.zeros([pad], tf.int32)], 0), [-1, row])
    return tokens, segment, positions


def _with_options(ds: tf.data.Dataset, config: InputConfig) -> tf.data.Dataset:
    options = tf.data.Options()
    # This pipeline shards itself (by file, or by record when there are fewer
    # files than pipelines): tf.distribute's auto-sharding stays off.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = config.deterministic
    return ds.with_options(options)


def read_records(files: Sequence[str], input_context: Optional[tf.distribute.InputContext],
                 training: bool, seed: int, cycle_length: int, block_length: int,
                 deterministic: bool, cache: bool, shuffle_buffer: int,
                 record_counts: Optional[Dict[str, int]] = None) -> tf.data.Dataset:
    """Serialized records of one input pipeline's share of ``files``.

    Every pipeline gets the same number of records: with ``record_counts``
    (``{file: records}``, from manifest.json) its contiguous share of the
    files laid end to end (:func:`pipeline_segments`, the file order shuffled
    once with ``seed``, the same in every pipeline); without, by file when
    each pipeline gets at least :data:`MIN_FILES_PER_PIPELINE` whole files
    and the file count divides, else by record after reading. Then:
    interleave TFRecord readers; optional cache; shuffle and repeat when
    training. Shared by the text and image input pipelines.
    """
    files = list(files)
    n_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    counts = dict(record_counts) if record_counts else None
    if counts is not None and not all(f in counts for f in files):
        counts = None  # the manifest does not describe these files: count-free sharding
    if training:
        # one fixed order for every pipeline (they must agree on who reads what)
        random.Random(seed).shuffle(files)

    def reader(f, skip=None, take=None):
        ds = tf.data.TFRecordDataset(f, buffer_size=1 << 20)
        return ds if skip is None else ds.skip(skip).take(take)

    shard_records = False
    if n_pipelines > 1 and counts is not None:
        segments = pipeline_segments(files, counts, n_pipelines, pipeline_id)
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant([s[0] for s in segments] or [""], tf.string),
             tf.constant([s[1] for s in segments] or [0], tf.int64),
             tf.constant([s[2] for s in segments] or [0], tf.int64)))
        if not segments:
            ds = ds.take(0)
        if training and len(segments) > 1:
            ds = ds.shuffle(len(segments), seed=seed, reshuffle_each_iteration=True)
        read = lambda f, skip, take: reader(f, skip, take)
    else:
        by_file = n_pipelines > 1 and (len(files) >= MIN_FILES_PER_PIPELINE * n_pipelines
                                       and len(files) % n_pipelines == 0)
        shard_records = n_pipelines > 1 and not by_file
        ds = tf.data.Dataset.from_tensor_slices(files)
        if by_file:
            ds = ds.shard(n_pipelines, pipeline_id)
        if training:
            ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        read = reader
    # every pipeline must read the same order when each keeps every P-th record
    ds = ds.interleave(read, cycle_length=cycle_length, block_length=block_length,
                       num_parallel_calls=AUTOTUNE, deterministic=deterministic or shard_records)
    if shard_records:
        ds = ds.shard(n_pipelines, pipeline_id)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat()
    return ds


def per_replica(strategy: Optional[tf.distribute.Strategy], global_batch_size: int, build,
                fetch_to_device: Optional[bool] = None):
    """``build(ctx, per_replica_batch)`` once per replica; batches sized globally.

    Batches are prefetched onto each replica's device when the replicas are
    accelerators (``fetch_to_device``; on CPUs they stay on the host, where
    they already are). MultiWorkerMirroredStrategy builds one pipeline per
    worker (its replicas take turns). Without a strategy (Keras's JAX
    backend) one pipeline gives whole global batches.
    """
    if strategy is None:
        return build(None, global_batch_size)
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f"global batch size {global_batch_size} is not divisible by "
                         f"{replicas} replicas")

    def dataset_fn(ctx: tf.distribute.InputContext):
        return build(ctx, ctx.get_per_replica_batch_size(global_batch_size))

    if fetch_to_device is None:
        devices = list(strategy.extended.worker_devices)
        fetch_to_device = any("GPU" in d.upper() or "TPU" in d.upper() for d in devices)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    options = tf.distribute.InputOptions(
        experimental_replication_mode=tf.distribute.InputReplicationMode.PER_WORKER
        if multi_worker else tf.distribute.InputReplicationMode.PER_REPLICA,
        experimental_fetch_to_device=fetch_to_device)
    return strategy.distribute_datasets_from_function(dataset_fn, options)


def _log_batches(ds: tf.data.Dataset, path: str, start: int, with_ids: bool) -> tf.data.Dataset:
    """Append ``{"batch": index, "ids": [...]}`` (a JSON line) per batch to ``path``, in the
    order the pipeline makes them (it runs ahead of training by its prefetch); drop the
    ids from the features unless wanted."""

    def write(index, ids):
        line = json.dumps({"batch": int(index),
                           "ids": [i.decode("utf-8", "replace") for i in ids.numpy()]})
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")  # one write: a killed run leaves at most a torn last line
        return index

    def log(index, element):
        features, targets, weights = element
        done = tf.py_function(write, [index, features["id"]], tf.int64)
        with tf.control_dependencies([done]):
            targets = tf.identity(targets)
        if not with_ids:
            features = {k: v for k, v in features.items() if k != "id"}
        return features, targets, weights

    return ds.enumerate(start=start).map(log)


def make_dataset(files: Sequence[str], config: InputConfig,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 training: bool = True, stats: Optional[dict] = None) -> tf.data.Dataset:
    """The input pipeline for one replica (or for everything without a context).

    ``stats`` is the output's stats.json, whose token histogram sets the
    bucket boundaries (geometric ones without it).
    """
    ds = read_records(files, input_context, training=training, seed=config.seed,
                      cycle_length=config.cycle_length, block_length=16,
                      deterministic=config.deterministic, cache=config.cache,
                      shuffle_buffer=config.shuffle_buffer,
                      record_counts=dict(config.record_counts) if config.record_counts else None)
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    finish = lambda ds: _finish(ds, config, pipeline_id)
    keep_ids = config.with_ids or bool(config.batch_log)

    piece = config.seq_len + 1
    parse_batch = config.parse_batch
    ds = ds.batch(parse_batch).enumerate()
    ds = ds.map(lambda i, s: (*_parse(s, keep_ids), i * parse_batch),
                num_parallel_calls=AUTOTUNE, deterministic=config.deterministic)
    ds = ds.map(lambda ids, rid, base: _cut_pieces(ids, rid, piece, base),
                num_parallel_calls=AUTOTUNE, deterministic=config.deterministic)
    if training and config.piece_buffer > 1:
        # Shuffle pieces, not only records: the pieces of one long document
        # would otherwise arrive together and fill whole batches. Blocks of
        # piece_buffer pieces, each permuted at random in one vectorised
        # gather (a per-element shuffle buffer cost 5x the whole pipeline).
        ds = ds.rebatch(config.piece_buffer, drop_remainder=False).enumerate()
        ds = ds.map(lambda i, el: _permute_block(*el, config.seed, i),
                    num_parallel_calls=AUTOTUNE, deterministic=config.deterministic)
    B = config.batch_size
    if config.mode != "bucket":
        ds = ds.map(lambda p, rid, doc: (p, rid))

    if config.mode == "pack":
        if config.pack_group != config.parse_batch:
            ds = ds.unbatch().batch(config.pack_group)
        ds = ds.map(lambda p, rid: _pack(p, piece), num_parallel_calls=AUTOTUNE,
                    deterministic=config.deterministic)
        ds = ds.unbatch().batch(B, drop_remainder=training)
        ds = ds.map(lambda tok, seg, pos: _lm_example(tok, seg, pos),
                    num_parallel_calls=AUTOTUNE, deterministic=config.deterministic)
        return finish(ds)

    with_ids = keep_ids
    if config.mode == "bucket":
        # Windows of bucket_window * B pieces, sorted by length and cut into
        # batches of B: all in vectorised ops on whole windows, so the cost per
        # piece is a fraction of a per-element bucketing op's.
        window = config.bucket_window * B
        ds = ds.map(_drop_single_tokens, num_parallel_calls=AUTOTUNE,
                    deterministic=config.deterministic)
        ds = ds.rebatch(window, drop_remainder=False)
        cap = max(1, B // 4)
        ds = ds.map(lambda p, rid, doc: _sorted_batches(p, rid, doc, B, cap),
                    num_parallel_calls=AUTOTUNE, deterministic=config.deterministic)
        ds = ds.unbatch()
        if training:
            # the batches of a window come shortest first: mix them
            ds = ds.shuffle(2 * config.bucket_window, seed=config.seed)
            ds = ds.filter(lambda p, rid: tf.shape(rid)[0] == B)  # only a finite tail is short
        widths = tf.constant(sorted(config.pad_widths) or [0], tf.int64)
        fixed = bool(config.pad_widths)

        def pad(p):
            if not fixed:
                return p.to_tensor(PAD_ID)
            longest = tf.reduce_max(p.row_lengths())
            width = tf.gather(widths, tf.searchsorted(widths, tf.reshape(longest, [1]))[0])
            return p.to_tensor(PAD_ID, shape=tf.stack([tf.shape(p.row_lengths(), tf.int64)[0],
                                                       width]))

        ds = ds.map(lambda p, rid: _dense_example(pad(p), rid if with_ids else None),
                    num_parallel_calls=AUTOTUNE, deterministic=config.deterministic)
        return finish(ds)

    ds = ds.unbatch()
    # unbatched rows of a ragged batch are typed ragged (rank 0): make them dense
    ds = ds.map(lambda ids, rid: (_dense_row(ids), rid))
    ds = ds.filter(lambda ids, rid: tf.size(ids) >= 2)  # one token predicts nothing
    if config.mode == "pad":
        ds = ds.padded_batch(B, padded_shapes=([None], []),
                             padding_values=(PAD_ID, b""), drop_remainder=training)
    else:  # tf_bucket
        # Buckets: [.., b0), [b0, b1), ..., [b_last = seq_len + 1, inf): the last
        # one holds the full-length pieces of long documents, all of one length.
        boundaries = bucket_boundaries(stats, config.seq_len, config.bucket_ratio,
                                       config.min_bucket_share)
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda ids, rid: tf.size(ids),
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[B] * (len(boundaries) + 1),
            padded_shapes=([None], []), padding_values=(PAD_ID, b""),
            pad_to_bucket_boundary=False, drop_remainder=training)
    ds = ds.map(lambda ids, rid: _dense_example(ids, rid if with_ids else None),
                num_parallel_calls=AUTOTUNE, deterministic=config.deterministic)
    return finish(ds)


def pad_rows(batch, rows: int):
    """A (features, targets, weights) batch with fewer than ``rows`` rows padded with
    zero rows (weight 0: no loss, no metric counts them)."""

    def pad(t):
        missing = tf.maximum(rows - tf.shape(t)[0], 0)
        paddings = tf.concat([[[0, missing]], tf.zeros([tf.rank(t) - 1, 2], tf.int32)], 0)
        return tf.pad(t, paddings)

    return tf.nest.map_structure(pad, batch)


def _finish(ds: tf.data.Dataset, config: InputConfig, pipeline_id: int) -> tf.data.Dataset:
    """Skip the batches already trained on, log batch ids, prefetch, options."""
    if config.skip_batches:
        ds = ds.skip(config.skip_batches)
    if config.batch_log:
        if config.mode == "pack":
            raise ValueError("batch_log needs record ids, which pack batching does not carry")
        ds = _log_batches(ds, f"{config.batch_log}.{pipeline_id}", config.skip_batches,
                          config.with_ids)
    return _with_options(ds.prefetch(AUTOTUNE), config)


def distributed_dataset(strategy: tf.distribute.Strategy, files: Sequence[str],
                        config: InputConfig, global_batch_size: int, training: bool = True,
                        stats: Optional[dict] = None):
    """One input pipeline per replica, each reading its own files (or records).

    Batches are sized globally: each replica gets ``global_batch_size /
    replicas`` rows.
    """
    return per_replica(strategy, global_batch_size, lambda ctx, batch: make_dataset(
        files, dataclasses.replace(config, batch_size=batch), ctx, training=training, stats=stats))
