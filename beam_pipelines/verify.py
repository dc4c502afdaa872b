"""Check a finished output directory against its manifest, byte for byte.

    python -m beam_pipelines.verify DIR

re-reads every shard that ``DIR/manifest.json`` lists and checks:

* the file exists, and its size and sha256 are the manifest's;
* its TFRecord framing (8-byte little-endian length, masked CRC-32C of the
  length, data, masked CRC-32C of the data) is intact, every CRC checked, and
  it holds the manifest's number of records;
* ``DIR/data/`` holds no file the manifest does not list;
* the shards' records add up to stats.json's ``records_out`` (and per split to
  ``records_out_by_split``), and stats.json's accounting identity holds:
  ``records_in == records_out + sum(filtered) + sum(duplicates) + sum(dead_letter)``;
* ``COMPLETED`` exists (and names the manifest's dataset_version);
* the tokenizer's sha256 is the manifest's, when one is listed, and
  ``content_sha256`` is the digest of the listed shards and tokenizer;
* when TFDS metadata is present (``dataset_info.json``), its splits' shard
  lengths and sizes are the manifest's (splits without records are left out
  of it), and ``features.json`` is there.

Prints ``OK: N shards, M records, version V`` and exits 0, or prints one line
per problem (``data/train-00001-of-00004.tfrecord: truncated record at byte
12345``) and exits 1. Works on any Beam filesystem path (gs://..., local).
From Python: :func:`verify` returns the list of problems.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from typing import Any, Dict, List, Optional, Tuple

import google_crc32c
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

__all__ = ["verify", "check_shard", "main"]

_BLOCK = 1 << 20


def _masked_crc(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _open(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _size_of(path: str) -> Optional[int]:
    try:
        matches = FileSystems.match([path])[0].metadata_list
    except Exception:
        return None
    return matches[0].size_in_bytes if matches else None


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:
        return False


class _Reader:
    """Reads a file once, exactly, hashing every byte that goes by."""

    def __init__(self, f):
        self._f = f
        self.sha = hashlib.sha256()
        self.offset = 0

    def read(self, n: int) -> bytes:
        parts, want = [], n
        while want > 0:
            chunk = self._f.read(min(want, _BLOCK))
            if not chunk:
                break
            parts.append(chunk)
            want -= len(chunk)
        data = b"".join(parts)
        self.sha.update(data)
        self.offset += len(data)
        return data

    def drain(self) -> None:
        while self.read(_BLOCK):
            pass


def check_shard(path: str, size: Optional[int] = None) -> Tuple[Optional[int], int, str, List[str]]:
    """Read one TFRecord file: ``(records or None when the framing is broken, bytes, sha256, problems)``.

    ``size`` (the file's size, when known) lets a corrupt length be reported
    as a truncation without reading past the end of the file.
    """
    problems: List[str] = []
    records = 0
    with _open(path) as f:
        r = _Reader(f)
        while True:
            start = r.offset
            header = r.read(12)
            if not header:
                break
            if len(header) < 12:
                problems.append(f"truncated record at byte {start} (record {records}: "
                                f"{len(header)} of 12 header bytes)")
                break
            length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
            if _masked_crc(google_crc32c.value(length_bytes)) != length_crc:
                problems.append(f"corrupt record length at byte {start} (record {records}: "
                                "length CRC mismatch)")
                break
            (length,) = struct.unpack("<Q", length_bytes)
            if size is not None and start + 12 + length + 4 > size:
                problems.append(f"truncated record at byte {start} (record {records} needs "
                                f"{12 + length + 4} bytes, {size - start} left)")
                break
            crc, left = 0, length
            while left:
                chunk = r.read(min(left, _BLOCK))
                if not chunk:
                    break
                crc = google_crc32c.extend(crc, chunk)
                left -= len(chunk)
            footer = r.read(4) if not left else b""
            if left or len(footer) < 4:
                problems.append(f"truncated record at byte {start} (record {records})")
                break
            if _masked_crc(crc) != struct.unpack("<I", footer)[0]:
                problems.append(f"corrupt record data at byte {start} (record {records}: "
                                "data CRC mismatch)")
                break
            records += 1
        broken = bool(problems)
        r.drain()
    return (None if broken else records), r.offset, r.sha.hexdigest(), problems


def _sha256_of(path: str) -> str:
    with _open(path) as f:
        r = _Reader(f)
        r.drain()
    return r.sha.hexdigest()


def _load_json(output_dir: str, name: str, problems: List[str]) -> Optional[Any]:
    path = FileSystems.join(output_dir, name)
    if not _exists(path):
        problems.append(f"{name}: missing")
        return None
    try:
        with _open(path) as f:
            return json.loads(f.read().decode("utf-8"))
    except Exception as e:
        problems.append(f"{name}: not readable JSON ({type(e).__name__}: {e})")
        return None


def _check_stats(stats: Any, problems: List[str]) -> Optional[Dict[str, Any]]:
    if not isinstance(stats, dict):
        problems.append("stats.json: not a JSON object")
        return None
    ok = True
    for key in ("records_in", "records_out"):
        if not isinstance(stats.get(key), int) or isinstance(stats.get(key), bool):
            problems.append(f"stats.json: {key} missing or not an integer")
            ok = False
    for key in ("filtered", "duplicates", "dead_letter"):
        value = stats.get(key)
        if not isinstance(value, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            problems.append(f"stats.json: {key} missing or not a mapping of integers")
            ok = False
    if not ok:
        return None
    lost = sum(sum(stats[k].values()) for k in ("filtered", "duplicates", "dead_letter"))
    if stats["records_in"] != stats["records_out"] + lost:
        problems.append(
            f"stats.json: accounting identity broken: records_in {stats['records_in']} != "
            f"records_out {stats['records_out']} + filtered {sum(stats['filtered'].values())} + "
            f"duplicates {sum(stats['duplicates'].values())} + dead_letter "
            f"{sum(stats['dead_letter'].values())} (= {stats['records_out'] + lost})")
    elif (stats.get("accounting") or {}).get("holds") is False:
        problems.append("stats.json: accounting.holds is false")
    return stats


def _shard_entries(manifest: Dict[str, Any], problems: List[str]) -> List[Dict[str, Any]]:
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        problems.append("manifest.json: shards missing or not a list")
        return []
    good, seen = [], set()
    for i, s in enumerate(shards):
        if not isinstance(s, dict) or not all(k in s for k in ("path", "split", "records",
                                                                 "bytes", "sha256")):
            problems.append(f"manifest.json: shards[{i}] lacks path/split/records/bytes/sha256")
            continue
        if s["path"] in seen:
            problems.append(f"manifest.json: {s['path']} listed twice")
            continue
        seen.add(s["path"])
        good.append(s)
    return good


def _check_tfds(output_dir: str, shards: List[Dict[str, Any]], problems: List[str]) -> None:
    """dataset_info.json, when present, must describe the manifest's shards."""
    if not _exists(FileSystems.join(output_dir, "dataset_info.json")):
        return
    info = _load_json(output_dir, "dataset_info.json", problems)
    if not _exists(FileSystems.join(output_dir, "features.json")):
        problems.append("features.json: missing (dataset_info.json is there)")
    if not isinstance(info, dict):
        return
    expected: Dict[str, Tuple[List[int], int]] = {}
    for s in sorted(shards, key=lambda s: s["path"]):
        lengths, size = expected.get(s["split"], ([], 0))
        expected[s["split"]] = (lengths + [int(s["records"])], size + int(s["bytes"]))
    expected = {k: v for k, v in expected.items() if sum(v[0])}  # TFDS omits empty splits
    got = {sp.get("name"): ([int(n) for n in sp.get("shardLengths", [])], int(sp.get("numBytes", 0)))
           for sp in info.get("splits", [])}
    for split in sorted(set(expected) | set(got)):
        if expected.get(split) != got.get(split):
            problems.append(
                f"dataset_info.json: split {split!r} has shard lengths/bytes {got.get(split)}, "
                f"the manifest {expected.get(split)} (stale TFDS metadata?)")


def verify(output_dir: str) -> List[str]:
    """Every problem found in ``output_dir`` (any Beam filesystem path), one line each; [] = OK."""
    problems: List[str] = []
    join = FileSystems.join
    out = output_dir.rstrip("/") or output_dir
    try:
        FileSystems.get_filesystem(out)
    except ValueError as e:
        return [f"{output_dir}: no Beam filesystem for this path ({e})"]

    manifest = _load_json(out, "manifest.json", problems)
    if manifest is not None and not isinstance(manifest, dict):
        problems.append("manifest.json: not a JSON object")
        manifest = None
    stats = _load_json(out, "stats.json", problems)
    if stats is not None:
        stats = _check_stats(stats, problems)

    completed = join(out, "COMPLETED")
    if not _exists(completed):
        problems.append("COMPLETED: missing (the run did not finish, or failed)")
    elif manifest is not None:
        try:
            with _open(completed) as f:
                marker = json.loads(f.read().decode("utf-8") or "{}")
        except Exception as e:
            problems.append(f"COMPLETED: not readable JSON ({type(e).__name__}: {e})")
        else:
            if isinstance(marker, dict) and marker.get("dataset_version") != manifest.get("dataset_version"):
                problems.append(f"COMPLETED: dataset_version {marker.get('dataset_version')!r}, "
                                f"manifest.json says {manifest.get('dataset_version')!r}")

    if manifest is None:
        return problems

    shards = _shard_entries(manifest, problems)
    total = 0
    by_split: Dict[str, int] = {}
    for s in shards:
        rel = s["path"]
        path = rel if "://" in rel or rel.startswith("/") else join(out, rel)
        by_split[s["split"]] = by_split.get(s["split"], 0) + int(s["records"])
        total += int(s["records"])
        size = _size_of(path)
        if size is None and not _exists(path):
            problems.append(f"{rel}: missing")
            continue
        try:
            records, nbytes, sha, framing = check_shard(path, size)
        except Exception as e:
            problems.append(f"{rel}: unreadable ({type(e).__name__}: {e})")
            continue
        problems.extend(f"{rel}: {p}" for p in framing)
        if nbytes != s["bytes"]:
            problems.append(f"{rel}: size mismatch: {nbytes} bytes, manifest says {s['bytes']}")
        if sha != s["sha256"]:
            problems.append(f"{rel}: sha256 mismatch: {sha}, manifest says {s['sha256']}")
        if records is not None and records != s["records"]:
            problems.append(f"{rel}: record count mismatch: {records} records, "
                            f"manifest says {s['records']}")

    listed = {s["path"] for s in shards}
    data_dir = join(out, "data")
    try:
        found = FileSystems.match([join(data_dir, "*")])[0].metadata_list
    except Exception:
        found = []
    prefix = data_dir.rstrip("/") + "/"
    for m in sorted(found, key=lambda m: m.path):
        rel = "data/" + m.path[len(prefix):] if m.path.startswith(prefix) else m.path
        if rel not in listed:
            problems.append(f"{rel}: extra file in data/, not listed in manifest.json")

    if stats is not None:
        if total != stats["records_out"]:
            problems.append(f"records: the manifest's shards hold {total}, stats.json "
                            f"records_out is {stats['records_out']}")
        per_split = stats.get("records_out_by_split")
        if isinstance(per_split, dict) and {k: v for k, v in per_split.items() if v} != \
                {k: v for k, v in by_split.items() if v}:
            problems.append(f"records: per split the shards hold {by_split}, stats.json "
                            f"records_out_by_split is {per_split}")
    if "records_out" in manifest and manifest["records_out"] != total:
        problems.append(f"manifest.json: records_out {manifest['records_out']}, its shards hold {total}")

    tokenizer = manifest.get("tokenizer")
    if tokenizer:
        rel = tokenizer.get("path", "")
        path = join(out, rel)
        if not _exists(path):
            problems.append(f"{rel}: tokenizer missing")
        else:
            sha = _sha256_of(path)
            if sha != tokenizer.get("sha256"):
                problems.append(f"{rel}: tokenizer sha256 mismatch: {sha}, manifest says "
                                f"{tokenizer.get('sha256')}")

    if "content_sha256" in manifest:
        content = hashlib.sha256()
        for s in manifest.get("shards") or []:
            if isinstance(s, dict):
                content.update(f"{s.get('path')}:{s.get('sha256')}\n".encode())
        if tokenizer:
            content.update(str(tokenizer.get("sha256")).encode())
        if content.hexdigest() != manifest["content_sha256"]:
            problems.append("manifest.json: content_sha256 is not the digest of the listed "
                            "shards and tokenizer (manifest edited?)")

    _check_tfds(out, shards, problems)
    return problems


def summary(output_dir: str) -> str:
    """The OK line of a verified directory."""
    with _open(FileSystems.join(output_dir, "manifest.json")) as f:
        manifest = json.loads(f.read().decode("utf-8"))
    shards = manifest["shards"]
    return (f"OK: {len(shards)} shards, {sum(s['records'] for s in shards)} records, "
            f"version {manifest.get('dataset_version')}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m beam_pipelines.verify",
        description="Check an output directory's shards, stats and manifest.")
    parser.add_argument("output_dir", help="Output directory (local or any Beam filesystem).")
    args = parser.parse_args(argv)
    problems = verify(args.output_dir)
    if problems:
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        print(f"FAILED: {len(problems)} problem{'s' * (len(problems) != 1)} in {args.output_dir}",
              file=sys.stderr)
        return 1
    print(summary(args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
