"""Read planning: what a file is, and the read tasks it is split into.

Formats are recognised by extension and confirmed by sniffing magic bytes: a
``.gz`` file that is not gzip (or a ``.jsonl`` that is) is read as what it
really is and counted under ``info.mislabelled_compression``.

:func:`plan_reads` turns one file into :class:`ReadTask` s: a plain JSONL file
larger than ``chunk_bytes`` becomes byte ranges, a Parquet file one task per
row group, anything else one task. What lies beyond ``max_file_bytes`` (or, for
Parquet, beyond the decompression ratio stated by the row groups' metadata) is
not planned but is one dead-letter entry here. No Beam in this module.
"""

from __future__ import annotations

import dataclasses
import numbers
import posixpath
from typing import Iterator, List, Optional, Tuple, Union

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import accounting

__all__ = [
    "JSONL", "PARQUET", "TEXT", "WARC", "ARROW", "UNKNOWN", "GZIP", "ZSTD", "NONE", "BOM", "RATIO_FLOOR",
    "ReaderConfig", "ReadTask", "detect_format", "glob_root", "open_raw", "parquet_columns",
    "parquet_stop", "plan_reads",
]

JSONL, PARQUET, TEXT, WARC, UNKNOWN = "jsonl", "parquet", "text", "warc", "unknown"
ARROW = "arrow"  # Arrow IPC: Hugging Face save_to_disk shards (streaming format), Feather v2
GZIP, ZSTD, NONE = "gzip", "zstd", "none"

_EXT_FORMATS = {
    ".jsonl": JSONL, ".json": JSONL, ".ndjson": JSONL,
    ".parquet": PARQUET, ".pq": PARQUET,
    ".arrow": ARROW, ".feather": ARROW, ".ipc": ARROW,
    ".warc": WARC, ".wet": WARC, ".arc": WARC,
    ".txt": TEXT, ".text": TEXT, ".md": TEXT,
}
_EXT_COMPRESSION = {".gz": GZIP, ".gzip": GZIP, ".zst": ZSTD, ".zstd": ZSTD}

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PARQUET_MAGIC = b"PAR1"
# A UTF-8 byte-order mark: dropped at the start of a JSONL or text file.
BOM = b"\xef\xbb\xbf"
# The decompression-ratio guard applies once this much has been decompressed.
RATIO_FLOOR = 16 << 20


@dataclasses.dataclass(frozen=True)
class ReaderConfig:
    """How records are found in the input files, and the resources one file may take."""

    text_field: str = "text"
    id_field: str = "id"
    # Documents (and raw JSONL lines / files) larger than this are dead-lettered.
    max_doc_bytes: int = 1 << 20
    # Plain JSONL files are split into byte ranges of this size.
    chunk_bytes: int = 16 << 20
    # Decompressed bytes read from one file at most; the rest is one dead letter
    # (file_too_large).
    max_file_bytes: int = 64 << 30
    # Decompressed / compressed bytes allowed once 16 MiB have been decompressed;
    # beyond it the rest of the file is one dead letter (decompression_bomb).
    max_decompression_ratio: float = 100.0
    # A read task stops once it has produced this many dead letters while more
    # than max_broken_share of its records were broken; the rest of it is one
    # dead letter (too_many_broken_records).
    max_dead_per_file: int = 1000
    max_broken_share: float = 0.5

    def __post_init__(self):
        for name in ("max_doc_bytes", "chunk_bytes", "max_file_bytes", "max_dead_per_file"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        ratio = self.max_decompression_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not ratio >= 1:
            raise ValueError(f"max_decompression_ratio must be a number >= 1, got {ratio!r}")
        share = self.max_broken_share
        if isinstance(share, bool) or not isinstance(share, numbers.Real) or not 0 <= share <= 1:
            raise ValueError(f"max_broken_share must be a number in [0, 1], got {share!r}")


@dataclasses.dataclass(frozen=True)
class ReadTask:
    """One unit of reading work: a whole file, a byte range or a row group."""

    path: str
    fmt: str
    compression: str
    rel: str  # path relative to the glob's fixed prefix: the base of derived ids
    start: int = 0
    end: int = -1  # exclusive; -1 = to the end
    row_group: int = -1
    first_row: int = 0


# --------------------------------------------------------------------------
# Format detection and planning


def _split_ext(path: str) -> Tuple[str, str]:
    name = posixpath.basename(path).lower()
    compression = NONE
    for ext, comp in _EXT_COMPRESSION.items():
        if name.endswith(ext):
            compression = comp
            name = name[: -len(ext)]
            break
    fmt = UNKNOWN
    for ext, f in _EXT_FORMATS.items():
        if name.endswith(ext):
            fmt = f
            break
    return fmt, compression


def detect_format(path: str, head: bytes) -> Tuple[str, str, bool]:
    """(format, compression, mislabelled) from the name and the first bytes."""
    fmt, named = _split_ext(path)
    if head.startswith(_GZIP_MAGIC):
        sniffed = GZIP
    elif head.startswith(_ZSTD_MAGIC):
        sniffed = ZSTD
    else:
        sniffed = NONE
    if head.startswith(_PARQUET_MAGIC):
        return PARQUET, NONE, fmt not in (PARQUET, UNKNOWN)
    if head.startswith(b"ARROW1"):
        return ARROW, NONE, fmt not in (ARROW, UNKNOWN)
    if fmt == ARROW:
        return ARROW, NONE, sniffed != NONE
    if head.startswith(b"WARC/"):
        return WARC, NONE, fmt not in (WARC, UNKNOWN) or named != NONE
    if fmt == WARC:
        # Compressed as a whole or per record: read through the sniffed decompressor.
        return WARC, sniffed, sniffed != named
    return fmt, sniffed, sniffed != named


def glob_root(pattern: str) -> str:
    """The directory part of a glob before its first wildcard."""
    cut = len(pattern)
    for ch in "*?[{":
        i = pattern.find(ch)
        if i != -1:
            cut = min(cut, i)
    prefix = pattern[:cut]
    if cut == len(pattern):  # a plain path: its directory
        return posixpath.dirname(prefix.rstrip("/")) + "/"
    return prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""


def open_raw(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def parquet_columns(pf, config: ReaderConfig) -> List[str]:
    """The columns the pipeline reads (only those are ever decompressed)."""
    names = set(pf.schema_arrow.names)
    return [c for c in (config.text_field, config.id_field, "url", "license") if c in names]


def parquet_stop(meta, columns: List[str], config: ReaderConfig) -> Optional[Tuple[int, str, str]]:
    """(row group, reason, detail) of the first row group that takes the file over a limit.

    Sizes are the ones the row groups' metadata states for the columns read,
    summed over the file: the Parquet form of the byte and ratio limits.
    """
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    wanted = [index[c] for c in columns if c in index]
    plain = packed = 0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for c in wanted:
            col = rg.column(c)
            plain += col.total_uncompressed_size
            packed += col.total_compressed_size
        if plain > config.max_file_bytes:
            return g, "file_too_large", (
                f"row groups from {g} on not read: {plain} decompressed bytes "
                f"exceed max_file_bytes={config.max_file_bytes}")
        if plain >= RATIO_FLOOR and plain > config.max_decompression_ratio * max(packed, 1):
            return g, "decompression_bomb", (
                f"row groups from {g} on not read: {plain} bytes from {packed} compressed bytes "
                f"exceed max_decompression_ratio={config.max_decompression_ratio:g}")
    return None


def _plain_cut(path: str, limit: int, size: int, config: ReaderConfig) -> Tuple[int, bool]:
    """Where reading a plain file stops under ``limit``: (offset, whether anything follows).

    The offset is the end of the last line that ends within ``limit`` bytes
    (as for a compressed file), looked for in the line cap before it;
    "anything" is a non-blank byte after it.
    """
    window = min(limit, config.max_doc_bytes + 65536)
    with open_raw(path) as f:
        f.seek(limit - window)
        before = f.read(window)
        nl = before.rfind(b"\n")
        cut = limit if nl == -1 else limit - window + nl + 1
        f.seek(cut)
        after = f.read(1 << 16)
    return cut, bool(after.strip()) or cut + len(after) < size


def plan_reads(path: str, size: int, rel: str, config: ReaderConfig) -> Iterator[Union[ReadTask, dict]]:
    """Split one file into read tasks (or yield a dead-letter entry).

    What a file holds beyond a limit is not planned: the lines of a plain
    JSONL file that do not end within ``max_file_bytes``, or the Parquet row
    groups from the one that crosses ``max_file_bytes`` or
    ``max_decompression_ratio``, are one dead-letter entry here.
    """
    try:
        with open_raw(path) as f:
            head = f.read(8)
    except Exception as e:  # unreadable file: permissions, vanished, ...
        yield accounting.dead_letter_entry(path, 0, "unreadable_file", repr(e), unit="file")
        return
    fmt, compression, _ = detect_format(path, head)
    if fmt == JSONL and compression == NONE and size > min(config.chunk_bytes, config.max_file_bytes):
        readable, rest = size, False
        if size > config.max_file_bytes:
            try:
                readable, rest = _plain_cut(path, config.max_file_bytes, size, config)
            except Exception:
                readable, rest = config.max_file_bytes, True
        for start in range(0, readable, config.chunk_bytes):
            yield ReadTask(path, fmt, compression, rel, start, min(readable, start + config.chunk_bytes))
        if rest:
            yield accounting.dead_letter_entry(
                path, readable, "file_too_large",
                f"file of {size} bytes: lines from byte {readable} on not read "
                f"(max_file_bytes={config.max_file_bytes})")
        return
    if fmt == PARQUET:
        plan: List[Union[ReadTask, dict]] = []
        try:
            import pyarrow.parquet as pq

            with open_raw(path) as f:
                pf = pq.ParquetFile(f)
                meta = pf.metadata
                stop = parquet_stop(meta, parquet_columns(pf, config), config)
            first = 0
            for i in range(meta.num_row_groups):
                if stop is not None and i == stop[0]:
                    plan.append(accounting.dead_letter_entry(path, first, stop[1], stop[2], unit="row"))
                    break
                plan.append(ReadTask(path, fmt, compression, rel, row_group=i, first_row=first))
                first += meta.row_group(i).num_rows
        except Exception:
            plan = []  # the read task reports the error with the file's position
        if plan:
            yield from plan
            return
    yield ReadTask(path, fmt, compression, rel)
