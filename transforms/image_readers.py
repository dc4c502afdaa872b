"""Image and image-caption readers: folders, COCO captions, TSV/Parquet pairs, WebDataset tars.

Each reader yields *items*: ``("record", dict)`` or ``("dead", dead-letter
entry)``. An image record has ``id``, ``source``, ``position`` and either
``image_bytes`` or ``image_path`` (loaded later, by :class:`LoadImages`), plus
``label`` (folder name, ImageNet layout) or ``text`` (the caption).

Nothing is fetched: a pair whose image is an ``http(s)://`` URL is
dead-lettered as ``remote_image_not_fetched``. Tar members are read in
memory from a stream; members with absolute paths, ``..``, links or devices
are skipped, counted as ``unsafe_tar_member``, and never extracted.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from typing import Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import common
from transforms.common import IN
from transforms.readers import _ExpandGlob, derive_id

__all__ = ["read_image_file", "read_coco", "read_pair_table", "read_webdataset", "ReadImages",
           "ReadPairs", "LoadImages", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
CAPTION_EXTENSIONS = (".txt", ".json", ".caption", ".cls")
MAX_TABLE_BYTES = 512 << 20


def _open(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _dirname(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def read_image_file(path: str, rel: str, labels_from_dirs: bool, max_bytes: int) -> Iterator:
    try:
        with _open(path) as f:
            data = f.read(max_bytes + 1)
    except Exception as e:  # noqa: BLE001
        yield "dead", common.dead_letter_entry(path, 0, "unreadable_file", repr(e), unit="file")
        return
    if len(data) > max_bytes:
        yield "dead", common.dead_letter_entry(path, 0, "too_large", f"over {max_bytes} bytes",
                                               unit="file")
        return
    record = {"id": derive_id(rel, 0), "source": path, "position": 0, "image_bytes": data}
    if labels_from_dirs:
        parent = posixpath.basename(_dirname(path))
        record["label"] = parent or "unlabelled"
    yield "record", record


def _pair(source: str, position: int, rel: str, image_ref: Optional[str], caption, base: str,
          rid=None, candidates: Tuple[str, ...] = ()) -> Tuple[str, Dict]:
    if not image_ref or not isinstance(image_ref, str):
        return "dead", common.dead_letter_entry(source, position, "missing_image_reference",
                                                repr(image_ref)[:200], unit="row")
    if caption is not None and not isinstance(caption, str):
        return "dead", common.dead_letter_entry(source, position, "wrong_type",
                                                f"caption is {type(caption).__name__}", unit="row")
    lowered = image_ref.lower()
    if lowered.startswith(("http://", "https://", "ftp://")):
        return "dead", common.dead_letter_entry(source, position, "remote_image_not_fetched",
                                                image_ref[:200], unit="row")
    if "://" in image_ref or image_ref.startswith("/"):
        paths = (image_ref,)
    else:
        paths = candidates or (FileSystems.join(base, image_ref) if base else image_ref,)
    return "record", {"id": str(rid) if rid is not None else derive_id(rel, position),
                      "source": source, "position": position, "image_path": list(paths),
                      "text": caption or ""}


def read_coco(path: str, rel: str) -> Iterator:
    """COCO captions: one pair per annotation; images under ``images/`` or beside the JSON."""
    import orjson

    try:
        with _open(path) as f:
            data = f.read(MAX_TABLE_BYTES + 1)
        doc = orjson.loads(data)
        images = {img["id"]: img for img in doc["images"]}
        annotations = doc["annotations"]
    except Exception as e:  # noqa: BLE001
        yield "dead", common.dead_letter_entry(path, 0, "unreadable_coco", f"{type(e).__name__}: {e}",
                                               unit="file")
        return
    base = _dirname(path)
    for i, ann in enumerate(annotations):
        image = images.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if image is None:
            yield "dead", common.dead_letter_entry(path, i, "missing_image_reference",
                                                   f"annotation {i}: unknown image_id", unit="row")
            continue
        name = image.get("file_name")
        candidates = ()
        if isinstance(name, str) and "://" not in name and not name.startswith("/"):
            candidates = (FileSystems.join(base, "images", name), FileSystems.join(base, name))
        rid = f"coco-{ann['id']}" if "id" in ann else None
        yield _pair(path, i, rel, name, ann.get("caption"), base, rid, candidates)


_IMAGE_COLUMNS = ("url", "image", "image_path", "path", "file_name", "filepath")
_CAPTION_COLUMNS = ("caption", "text", "alt", "alt_text", "title")


def read_pair_table(path: str, rel: str) -> Iterator:
    """TSV (header row) or Parquet of (image path, caption); paths relative to the table."""
    base = _dirname(path)
    try:
        if path.lower().endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            with _open(path) as f:
                table = pq.read_table(f)
            cols = {c.lower(): c for c in table.column_names}
            image_col = next((cols[c] for c in _IMAGE_COLUMNS if c in cols), None)
            caption_col = next((cols[c] for c in _CAPTION_COLUMNS if c in cols), None)
            if image_col is None:
                raise ValueError(f"no image column among {table.column_names}")
            images = table.column(image_col).to_pylist()
            captions = table.column(caption_col).to_pylist() if caption_col else [None] * len(images)
            rows = list(zip(images, captions))
        else:
            with _open(path) as f:
                text = f.read(MAX_TABLE_BYTES + 1).decode("utf-8")
            lines = text.splitlines()
            header = [h.strip().lower() for h in lines[0].split("\t")]
            image_i = next((header.index(c) for c in _IMAGE_COLUMNS if c in header), None)
            caption_i = next((header.index(c) for c in _CAPTION_COLUMNS if c in header), None)
            if image_i is None:
                raise ValueError(f"no image column in header {header}")
            rows = []
            for line in lines[1:]:
                if not line.strip():
                    continue
                parts = line.split("\t")
                rows.append((parts[image_i] if image_i < len(parts) else None,
                             parts[caption_i] if caption_i is not None and caption_i < len(parts) else None))
    except Exception as e:  # noqa: BLE001
        yield "dead", common.dead_letter_entry(path, 0, "unreadable_pair_table",
                                               f"{type(e).__name__}: {e}", unit="file")
        return
    for i, (image_ref, caption) in enumerate(rows):
        yield _pair(path, i, rel, image_ref, caption, base)


def _unsafe(member: tarfile.TarInfo) -> Optional[str]:
    name = member.name
    if not (member.isfile()):
        return "link or special file" if (member.issym() or member.islnk() or member.isdev()
                                          or member.isfifo()) else "not a file"
    if name.startswith("/") or posixpath.isabs(name):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "path with .."
    return None


def read_webdataset(path: str, rel: str, max_member_bytes: int) -> Iterator:
    """WebDataset shards: members grouped by key (the name up to its first dot)."""
    samples: Dict[str, Dict] = {}
    order: List[str] = []
    position = 0
    try:
        with _open(path) as f:
            with tarfile.open(fileobj=f, mode="r|*") as tar:
                for member in tar:
                    position += 1
                    problem = _unsafe(member)
                    if problem:
                        if member.isdir():
                            continue  # directories carry nothing
                        yield "dead", common.dead_letter_entry(
                            path, position, "unsafe_tar_member", f"{member.name!r}: {problem}",
                            unit="record")
                        continue
                    if member.size > max_member_bytes:
                        yield "dead", common.dead_letter_entry(
                            path, position, "too_large", f"{member.name}: {member.size} bytes",
                            unit="record")
                        continue
                    dirname, base = posixpath.split(member.name)
                    key, dot, ext = base.partition(".")
                    key = posixpath.join(dirname, key)
                    data = tar.extractfile(member).read()  # in memory, never to disk
                    if key not in samples:
                        samples[key] = {"position": position}
                        order.append(key)
                    samples[key]["." + ext.lower()] = data
    except Exception as e:  # noqa: BLE001 - truncated or corrupt tar: keep what was read
        yield "dead", common.dead_letter_entry(path, position, "corrupt_tar",
                                               f"{type(e).__name__}: {e}", unit="record")
    for key in order:
        sample = samples[key]
        image = next((sample[e] for e in IMAGE_EXTENSIONS if e in sample), None)
        caption = None
        if ".txt" in sample:
            caption = sample[".txt"].decode("utf-8", "replace")
        elif ".json" in sample:
            try:
                meta = json.loads(sample[".json"])
                caption = meta.get("caption") or meta.get("text") if isinstance(meta, dict) else None
            except ValueError:
                caption = None
        if image is None:
            yield "dead", common.dead_letter_entry(path, sample["position"], "missing_image",
                                                   f"sample {key!r} has no image member",
                                                   unit="record")
            continue
        yield "record", {"id": derive_id(rel, sample["position"]) if not key else
                         derive_id(rel, 0) + "-" + key.replace("/", "_"),
                         "source": path, "position": sample["position"], "image_bytes": image,
                         "text": caption or ""}


class _ReadItems(common.CountingDoFn):
    def __init__(self, kind: str, labels_from_dirs: bool = True, max_bytes: int = 64 << 20):
        super().__init__()
        self._kind = kind
        self._labels = labels_from_dirs
        self._max_bytes = max_bytes

    def process(self, info: dict):
        path, rel = info["path"], info["rel"]
        lowered = path.lower()
        if self._kind == "images":
            # every file is a candidate: formats are decided by content when decoded
            items = read_image_file(path, rel, self._labels, self._max_bytes)
        elif lowered.endswith(".json"):
            items = read_coco(path, rel)
        elif lowered.endswith((".tsv", ".parquet", ".pq")):
            items = read_pair_table(path, rel)
        elif lowered.endswith((".tar", ".tar.gz", ".tgz")):
            items = read_webdataset(path, rel, self._max_bytes)
        else:
            items = iter([("dead", common.dead_letter_entry(
                path, 0, "unknown_format", "not a COCO .json, .tsv, .parquet or WebDataset .tar",
                unit="file"))])
        for kind, value in items:
            self.count(IN, "records")
            if kind == "record":
                yield value
            else:
                yield self.dead(value)


class ReadImages(beam.PTransform):
    """Globs of image files (``kind='images'``) or pair files (``kind='pairs'``) -> records.

    Returns ``records``, ``dead``, ``counts`` and ``files`` like :class:`transforms.readers.ReadCorpus`.
    """

    def __init__(self, patterns: List[str], kind: str, labels_from_dirs: bool = True,
                 max_bytes: int = 64 << 20):
        super().__init__()
        if kind not in ("images", "pairs"):
            raise ValueError(f"kind must be images or pairs, got {kind!r}")
        self._patterns = list(patterns)
        self._kind = kind
        self._labels = labels_from_dirs
        self._max_bytes = max_bytes

    def expand(self, pbegin):
        files = (pbegin | "Patterns" >> beam.Create(self._patterns)
                 | "ExpandGlobs" >> beam.ParDo(_ExpandGlob()))
        read = (files
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadItems" >> beam.ParDo(_ReadItems(self._kind, self._labels, self._max_bytes))
                .with_outputs(common.DEAD, common.COUNTS, main="records"))
        return {"records": read.records, "dead": read[common.DEAD], "counts": read[common.COUNTS],
                "files": files}


ReadPairs = ReadImages


class LoadImages(common.CountingDoFn):
    """Records with ``image_path`` -> records with ``image_bytes`` (the first path that exists)."""

    def __init__(self, max_bytes: int = 64 << 20):
        super().__init__()
        self._max_bytes = max_bytes

    def process(self, record: dict):
        if "image_bytes" in record:
            yield record
            return
        for candidate in record["image_path"]:
            try:
                with _open(candidate) as f:
                    data = f.read(self._max_bytes + 1)
            except Exception:  # noqa: BLE001 - try the next candidate
                continue
            if len(data) > self._max_bytes:
                yield self.dead(common.dead_letter_entry(
                    record["source"], record["position"], "too_large", candidate, unit="row",
                    record_id=record["id"]))
                return
            out = dict(record)
            del out["image_path"]
            out["image_bytes"] = data
            out["image_file"] = candidate
            yield out
            return
        yield self.dead(common.dead_letter_entry(
            record["source"], record["position"], "missing_image",
            f"not found: {record['image_path'][0]}", unit="row", record_id=record["id"]))
