"""Image and image-caption readers: folders, COCO captions, TSV/Parquet pairs, WebDataset tars.

Each reader yields *items*: ``("record", dict)`` or ``("dead", dead-letter
entry)``. An image record has ``id``, ``key`` (:func:`transforms.accounting.record_key`
of the input file, the record's position and, in tars, the member name: unique
per input record), ``source``, ``position`` and either ``image_bytes`` or
``image_path`` (loaded later, by :class:`LoadImages`), plus ``label`` (folder
name, ImageNet layout) or ``text`` (the caption).

Confinement: an image path referenced by a captions table (TSV, Parquet,
COCO JSON) must resolve inside the *image root*: ``image_root`` when given,
else the table's own folder. A relative reference resolves against
``image_root`` when given, else against the table's folder (COCO: its
``images/`` subfolder, then the folder itself); an absolute one is used as
given and is fine when it lies inside the root. A reference that resolves
elsewhere under any of its candidate folders (an absolute path outside, a
``..`` escape, another scheme or bucket, for local files a symlink whose
target lies outside) is dead-lettered unread as ``path_outside_root``, its
detail naming the path, never any bytes of the file. Local paths are
resolved with ``os.path.realpath``; Beam filesystem paths (``gs://`` ...) are
normalised with ``posixpath``. :class:`LoadImages` checks again right before
it opens a file, and opens the resolved path it checked (locally: a regular
file, without following a final symlink). Image folders (``kind='images'``)
are globbed, not referenced, and are not confined.

Nothing is fetched: a pair whose image is an ``http(s)://`` or ``ftp://`` URL
is dead-lettered as ``remote_image_not_fetched``.

WebDataset tars are streamed, one sample at a time: a sample is the run of
adjacent members sharing a key (the member path up to the first dot of its
basename; the rest, lower-cased, is the extension), and it is emitted as soon
as the key changes, so memory holds one sample, never the tar. Every member is
accounted for: it is part of exactly one emitted sample (a record, or one
``missing_image`` entry when the sample has no image) or it has its own
dead-letter entry:

- ``unsafe_tar_member``: absolute path, ``..``, link or device; never
  extracted (directories carry nothing and are skipped);
- ``too_large``: a member over ``max_member_bytes``, or one that would make
  the bytes held for its sample exceed ``max_sample_bytes``;
- ``duplicate_member``: the first member wins, and a later one is refused
  when it repeats an extension of its sample case-insensitively (``x.jpg``
  then ``x.JPG``, or the same name twice), is a second image of its sample
  (``x.jpg`` then ``x.png``), or belongs to a key already emitted earlier in
  the tar (a sample's members must be adjacent, as WebDataset tools write
  them);
- ``corrupt_tar``: one entry for the unreadable rest of a truncated or
  damaged tar (bad compression, a cut member, a garbled or cut header); what
  was read before it is kept.

A sample's id is ``<file id>-<key>`` with the key's full path, so ``a/b`` and
``a_b`` stay apart (a key that is not printable UTF-8 of at most 200
characters is replaced by its hash, after ``~``).
"""

from __future__ import annotations

import bz2
import collections
import gzip
import hashlib
import json
import lzma
import os
import posixpath
import stat
import tarfile
from typing import Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import accounting
from transforms.accounting import IN
from transforms.read.corpus import ExpandGlob, derive_id

__all__ = ["read_image_file", "read_coco", "read_pair_table", "read_webdataset", "ReadImages",
           "ReadPairs", "LoadImages", "IMAGE_EXTENSIONS", "MAX_SAMPLE_BYTES"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
CAPTION_EXTENSIONS = (".txt", ".json", ".caption", ".cls")
MAX_TABLE_BYTES = 512 << 20
MAX_SAMPLE_BYTES = 256 << 20
_REMOTE = ("http://", "https://", "ftp://")
_MAX_READABLE_KEY = 200


def _open(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _open_local_regular(path: str):
    """A local regular file, opened without following a final symlink or blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {path}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _dirname(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


# ---------------------------------------------------------------- confinement

def _scheme(path: str) -> Optional[str]:
    scheme = FileSystems.get_scheme(path)
    return scheme.lower() if scheme else None


def _resolve_root(root: str) -> Tuple[Optional[str], str]:
    """A root as (scheme, resolved path): local roots through realpath, others normalised."""
    scheme = _scheme(root)
    if scheme is None:
        return None, os.path.realpath(root or ".")
    return scheme, posixpath.normpath("/" + root[len(scheme) + 3:].lstrip("/"))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root if root.endswith("/") else root + "/")


def _confine(path: str, root: str) -> Optional[str]:
    """The path to open for ``path`` when it resolves inside ``root``, else None.

    Local paths resolve through symlinks (``os.path.realpath``); paths on other
    Beam filesystems (``gs://bucket/...``) are normalised with ``posixpath``
    and must keep the root's scheme and bucket.
    """
    try:
        root_scheme, root_path = _resolve_root(root)
        scheme = _scheme(path)
        if scheme != root_scheme:
            return None
        if scheme is None:
            resolved = os.path.realpath(path)
            return resolved if _inside(resolved, root_path) else None
        norm = posixpath.normpath("/" + path[len(scheme) + 3:].lstrip("/"))
        return f"{scheme}://{norm[1:]}" if _inside(norm, root_path) else None
    except (ValueError, OSError):  # NUL bytes, unresolvable: not provably inside
        return None


def _join(base: str, ref: str) -> str:
    """``ref`` under ``base`` without asking a filesystem (gs:// works without its client)."""
    if not base:
        return ref
    return base.rstrip("/") + "/" + ref if _scheme(base) else os.path.join(base, ref)


# ---------------------------------------------------------------- folders and tables

def read_image_file(path: str, rel: str, labels_from_dirs: bool, max_bytes: int) -> Iterator:
    try:
        with _open(path) as f:
            data = f.read(max_bytes + 1)
    except Exception as e:  # noqa: BLE001
        yield "dead", accounting.dead_letter_entry(path, 0, "unreadable_file", repr(e), unit="file")
        return
    if len(data) > max_bytes:
        yield "dead", accounting.dead_letter_entry(path, 0, "too_large", f"over {max_bytes} bytes",
                                               unit="file")
        return
    record = {"id": derive_id(rel, 0), "key": accounting.record_key(path, 0), "source": path,
              "position": 0, "image_bytes": data}
    if labels_from_dirs:
        parent = posixpath.basename(_dirname(path))
        record["label"] = parent or "unlabelled"
    yield "record", record


def _pair(source: str, position: int, rel: str, image_ref, caption, bases: Sequence[str],
          image_root: Optional[str], rid=None) -> Tuple[str, dict]:
    """One (image reference, caption) row -> a record with confined ``image_path`` candidates.

    A relative reference is tried under ``image_root`` when one is given,
    else under each of ``bases`` (the table's folders); it is refused when
    any of its candidates resolves outside the root.
    """
    if not image_ref or not isinstance(image_ref, str):
        return "dead", accounting.dead_letter_entry(source, position, "missing_image_reference",
                                                repr(image_ref)[:200], unit="row")
    if caption is not None and not isinstance(caption, str):
        return "dead", accounting.dead_letter_entry(source, position, "wrong_type",
                                                f"caption is {type(caption).__name__}", unit="row")
    if image_ref.lower().startswith(_REMOTE):
        return "dead", accounting.dead_letter_entry(source, position, "remote_image_not_fetched",
                                                image_ref[:200], unit="row")
    if _scheme(image_ref) or image_ref.startswith("/"):
        candidates = [image_ref]
    else:
        candidates = [_join(b, image_ref) for b in ([image_root] if image_root else bases)]
    root = image_root or _dirname(source)
    paths: List[str] = []
    for candidate in candidates:
        resolved = _confine(candidate, root)
        if resolved is None:  # one way out is enough to refuse the reference
            return "dead", accounting.dead_letter_entry(
                source, position, "path_outside_root",
                f"{image_ref[:150]!r} resolves outside the image root {root or '.'}", unit="row")
        if resolved not in paths:
            paths.append(resolved)
    return "record", {"id": str(rid) if rid is not None else derive_id(rel, position),
                      "key": accounting.record_key(source, position), "source": source,
                      "position": position, "image_path": paths, "text": caption or ""}


def read_coco(path: str, rel: str, image_root: Optional[str] = None) -> Iterator:
    """COCO captions: one pair per annotation; images under ``image_root``, else ``images/`` or beside the JSON."""
    import orjson

    try:
        with _open(path) as f:
            data = f.read(MAX_TABLE_BYTES + 1)
        doc = orjson.loads(data)
        images = {img["id"]: img for img in doc["images"]}
        annotations = doc["annotations"]
    except Exception as e:  # noqa: BLE001
        yield "dead", accounting.dead_letter_entry(path, 0, "unreadable_coco", f"{type(e).__name__}: {e}",
                                               unit="file")
        return
    base = _dirname(path)
    bases = (_join(base, "images"), base)
    for i, ann in enumerate(annotations):
        image = images.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if image is None:
            yield "dead", accounting.dead_letter_entry(path, i, "missing_image_reference",
                                                   f"annotation {i}: unknown image_id", unit="row")
            continue
        rid = f"coco-{ann['id']}" if "id" in ann else None
        yield _pair(path, i, rel, image.get("file_name"), ann.get("caption"), bases, image_root, rid)


_IMAGE_COLUMNS = ("url", "image", "image_path", "path", "file_name", "filepath")
_CAPTION_COLUMNS = ("caption", "text", "alt", "alt_text", "title")


def read_pair_table(path: str, rel: str, image_root: Optional[str] = None) -> Iterator:
    """TSV (header row) or Parquet of (image path, caption); paths under ``image_root`` or the table's folder."""
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
        yield "dead", accounting.dead_letter_entry(path, 0, "unreadable_pair_table",
                                               f"{type(e).__name__}: {e}", unit="file")
        return
    for i, (image_ref, caption) in enumerate(rows):
        yield _pair(path, i, rel, image_ref, caption, (base,), image_root)


# ---------------------------------------------------------------- WebDataset

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


def _sample_id(file_id: str, key: str) -> str:
    readable = len(key) <= _MAX_READABLE_KEY and key.isprintable()
    if readable:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in the member name
            readable = False
    if readable:
        return f"{file_id}-{key}"
    return f"{file_id}~{accounting.stable_hash64(key.encode('utf-8', 'surrogateescape').hex()):016x}"


class _Sample:
    """The members of one WebDataset sample read so far (only what a record uses is held)."""

    __slots__ = ("key", "position", "members", "extensions", "image", "image_name", "fields", "held")

    def __init__(self, key: str):
        self.key = key
        self.position = 0  # of its first member kept
        self.members = 0  # members that belong to this sample (not dead-lettered)
        self.extensions = set()
        self.image: Optional[bytes] = None
        self.image_name = ""
        self.fields = {}  # ".txt" / ".json" -> bytes
        self.held = 0

    def keep(self, position: int) -> None:
        if not self.members:
            self.position = position
        self.members += 1


def _caption(sample: _Sample) -> str:
    if ".txt" in sample.fields:
        return sample.fields[".txt"].decode("utf-8", "replace")
    if ".json" in sample.fields:
        try:
            meta = json.loads(sample.fields[".json"])
        except (ValueError, RecursionError):
            return ""
        if isinstance(meta, dict):
            for field in ("caption", "text"):
                if isinstance(meta.get(field), str) and meta[field]:
                    return meta[field]
    return ""


def _finish(path: str, file_id: str, sample: Optional[_Sample]) -> Iterator:
    if sample is None or not sample.members:
        return  # every member of it was dead-lettered on its own
    if sample.image is None:
        yield "dead", accounting.dead_letter_entry(path, sample.position, "missing_image",
                                               f"sample {sample.key!r} has no image member",
                                               unit="record")
        return
    yield "record", {"id": _sample_id(file_id, sample.key),
                     "key": accounting.record_key(path, sample.position, sample.image_name),
                     "source": path, "position": sample.position, "image_bytes": sample.image,
                     "text": _caption(sample)}


class _Recent:
    """A read-only stream over ``head`` then ``f`` that remembers the bytes of its last reads.

    tarfile stops quietly at a truncated or garbled header; the bytes kept
    here tell that damage from a proper end-of-archive block.
    """

    def __init__(self, f, head: bytes = b"", keep: int = 4):
        self._f = f
        self._head = head
        self._chunks = collections.deque(maxlen=keep)  # (offset, bytes)
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        if self._head:
            n = len(self._head) if size is None or size < 0 else size
            data, self._head = self._head[:n], self._head[n:]
            if len(data) < n or size is None or size < 0:
                data += self._f.read(-1 if size is None or size < 0 else n - len(data))
        else:
            data = self._f.read(size)
        if data:
            self._chunks.append((self.pos, data))
            self.pos += len(data)
        return data

    def recent(self, start: int, size: int) -> bytes:
        """Bytes ``[start, start + size)`` as far as they were read and are still kept."""
        out = b"".join(chunk for offset, chunk in self._chunks if offset + len(chunk) > start)
        first = next((offset for offset, chunk in self._chunks if offset + len(chunk) > start), start)
        return out[start - first:start - first + size]


_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))


def _tar_stream(f) -> _Recent:
    """The uncompressed tar bytes of ``f``: gzip, bz2 or xz decided by magic bytes.

    Decompressing through the file classes of the standard library bounds
    every read (tarfile's own stream mode inflates a whole compressed block at
    once, which for a zero-filled member is a thousand times its size).
    """
    head = f.read(6)
    for magic, kind in _COMPRESSED:
        if head.startswith(magic):
            raw = _Recent(f, head, keep=0)
            if kind == "gzip":
                return _Recent(gzip.GzipFile(fileobj=raw, mode="rb"))
            if kind == "bz2":
                return _Recent(bz2.BZ2File(raw))
            return _Recent(lzma.LZMAFile(raw))
    return _Recent(f, head)


def _tar_end_problem(tar: tarfile.TarFile, stream: _Recent) -> Optional[str]:
    """Why the archive ended where tarfile stopped, when that was not its end marker."""
    block = stream.recent(tar.offset, tarfile.BLOCKSIZE)
    if not block or block == bytes(len(block)) and len(block) == tarfile.BLOCKSIZE:
        return None  # end of the stream between members, or the end-of-archive block
    if len(block) < tarfile.BLOCKSIZE:
        return f"truncated header at byte {tar.offset}; the rest is unreadable"
    return f"invalid header at byte {tar.offset}; the rest is unreadable"


def read_webdataset(path: str, rel: str, max_member_bytes: int,
                    max_sample_bytes: int = MAX_SAMPLE_BYTES,
                    media_extensions: Tuple[str, ...] = IMAGE_EXTENSIONS) -> Iterator:
    """WebDataset shards, streamed: one record per sample (adjacent members sharing a key).

    ``media_extensions`` name the member that is the sample's media (images
    here; the audio reader passes audio extensions); the record holds it as
    ``image_bytes`` whatever it is.

    ``position`` is the 1-based index of a member in the tar (of a sample's
    first member kept, for a record). Memory holds one sample, at most
    ``max_sample_bytes`` of it; a damaged tar keeps what was read before the
    damage and adds one ``corrupt_tar`` entry for the rest.
    """
    file_id = derive_id(rel, 0)
    emitted = set()  # 128-bit digests of the keys of samples already started
    sample: Optional[_Sample] = None
    position = 0
    failure: Optional[str] = None

    def dead(reason: str, detail: str):
        return "dead", accounting.dead_letter_entry(path, position, reason, detail, unit="record")

    try:
        with _open(path) as f:
            stream = _tar_stream(f)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                while True:
                    member = tar.next()
                    if member is None:
                        failure = _tar_end_problem(tar, stream)
                        break
                    tar.members.clear()  # tarfile keeps every header it read otherwise
                    position += 1
                    problem = _unsafe(member)
                    if problem:
                        if member.isdir():
                            continue  # directories carry nothing
                        yield dead("unsafe_tar_member", f"{member.name!r}: {problem}")
                        continue
                    dirname, base = posixpath.split(member.name)
                    stem, _, ext = base.partition(".")
                    key, ext = posixpath.join(dirname, stem), "." + ext.lower()
                    if sample is not None and key != sample.key:
                        yield from _finish(path, file_id, sample)
                        sample = None
                    if sample is None:
                        digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"),
                                                 digest_size=16).digest()
                        if digest in emitted:
                            yield dead("duplicate_member",
                                       f"{member.name!r}: sample {key!r} was already emitted "
                                       "(a sample's members must be adjacent)")
                            continue
                        emitted.add(digest)
                        sample = _Sample(key)
                    is_image = ext in media_extensions
                    if ext in sample.extensions or (is_image and sample.image_name):
                        first = sample.image_name if is_image and sample.image_name else f"{key}{ext}"
                        yield dead("duplicate_member",
                                   f"{member.name!r}: sample {key!r} already has {first!r}")
                        continue
                    sample.extensions.add(ext)
                    if member.size > max_member_bytes:
                        yield dead("too_large", f"{member.name}: {member.size} bytes")
                        continue
                    if not (is_image or ext in (".txt", ".json")):
                        sample.keep(position)  # part of the sample, not used: never read
                        continue
                    if sample.held + member.size > max_sample_bytes:
                        yield dead("too_large", f"{member.name}: sample {key!r} over "
                                                f"{max_sample_bytes} bytes")
                        continue
                    data = tar.extractfile(member).read()  # in memory, never to disk
                    sample.keep(position)
                    sample.held += len(data)
                    if is_image:
                        sample.image, sample.image_name = data, member.name
                    else:
                        sample.fields[ext] = data
    except Exception as e:  # noqa: BLE001 - truncated or corrupt tar: keep what was read
        failure = f"{type(e).__name__}: {e}"
    yield from _finish(path, file_id, sample)
    if failure is not None:
        yield dead("corrupt_tar", failure)


# ---------------------------------------------------------------- transforms

class _ReadItems(accounting.CountingDoFn):
    def __init__(self, kind: str, labels_from_dirs: bool = True, max_bytes: int = 64 << 20,
                 image_root: Optional[str] = None, max_sample_bytes: int = MAX_SAMPLE_BYTES):
        super().__init__()
        self._kind = kind
        self._labels = labels_from_dirs
        self._max_bytes = max_bytes
        self._image_root = image_root or None
        self._max_sample_bytes = max_sample_bytes

    def process(self, info: dict):
        path, rel = info["path"], info["rel"]
        lowered = path.lower()
        if self._kind == "images":
            # every file is a candidate: formats are decided by content when decoded
            items = read_image_file(path, rel, self._labels, self._max_bytes)
        elif lowered.endswith(".json"):
            items = read_coco(path, rel, self._image_root)
        elif lowered.endswith((".tsv", ".parquet", ".pq")):
            items = read_pair_table(path, rel, self._image_root)
        elif lowered.endswith((".tar", ".tar.gz", ".tgz")):
            items = read_webdataset(path, rel, self._max_bytes, self._max_sample_bytes)
        else:
            items = iter([("dead", accounting.dead_letter_entry(
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

    ``image_root`` (pairs only) confines the images that tables reference
    (default: each table's own folder); pass the same value to
    :class:`LoadImages`. ``max_sample_bytes`` caps what one WebDataset sample
    may hold in memory. Returns ``records``, ``dead``, ``counts`` and
    ``files`` like :class:`transforms.read.corpus.ReadCorpus`.
    """

    def __init__(self, patterns: List[str], kind: str, labels_from_dirs: bool = True,
                 max_bytes: int = 64 << 20, image_root: Optional[str] = None,
                 max_sample_bytes: int = MAX_SAMPLE_BYTES):
        super().__init__()
        if kind not in ("images", "pairs"):
            raise ValueError(f"kind must be images or pairs, got {kind!r}")
        if max_sample_bytes < 1:
            raise ValueError(f"max_sample_bytes must be positive, got {max_sample_bytes}")
        self._patterns = list(patterns)
        self._kind = kind
        self._labels = labels_from_dirs
        self._max_bytes = max_bytes
        self._image_root = image_root or None
        self._max_sample_bytes = max_sample_bytes

    def expand(self, pbegin):
        files = (pbegin | "Patterns" >> beam.Create(self._patterns)
                 | "ExpandGlobs" >> beam.ParDo(ExpandGlob()))
        read = (files
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadItems" >> beam.ParDo(_ReadItems(self._kind, self._labels, self._max_bytes,
                                                       self._image_root, self._max_sample_bytes))
                .with_outputs(accounting.DEAD, accounting.COUNTS, main="records"))
        return {"records": read.records, "dead": read[accounting.DEAD], "counts": read[accounting.COUNTS],
                "files": files}


ReadPairs = ReadImages


class LoadImages(accounting.CountingDoFn):
    """Records with ``image_path`` -> records with ``image_bytes`` (the first path that exists).

    Each candidate is confined again right before it is opened (``image_root``,
    default the record's table folder, as in :class:`ReadImages`): one that
    resolves outside is never opened, and a record left with none inside is
    dead-lettered ``path_outside_root``.
    """

    def __init__(self, max_bytes: int = 64 << 20, image_root: Optional[str] = None):
        super().__init__()
        self._max_bytes = max_bytes
        self._image_root = image_root or None

    def process(self, record: dict):
        if "image_bytes" in record:
            yield record
            return
        root = self._image_root or _dirname(record["source"])
        outside = []
        for candidate in record["image_path"]:
            resolved = _confine(candidate, root)
            if resolved is None:
                outside.append(candidate)
                continue
            try:
                opener = _open_local_regular if _scheme(resolved) is None else _open
                with opener(resolved) as f:
                    data = f.read(self._max_bytes + 1)
            except Exception:  # noqa: BLE001 - try the next candidate
                continue
            if len(data) > self._max_bytes:
                yield self.dead(accounting.dead_letter_entry(
                    record["source"], record["position"], "too_large", candidate, unit="row",
                    record_id=record["id"]))
                return
            out = dict(record)
            del out["image_path"]
            out["image_bytes"] = data
            out["image_file"] = candidate
            yield out
            return
        if outside and len(outside) == len(record["image_path"]):
            yield self.dead(accounting.dead_letter_entry(
                record["source"], record["position"], "path_outside_root",
                f"{outside[0][:150]!r} resolves outside the image root {root or '.'}", unit="row",
                record_id=record["id"]))
            return
        yield self.dead(accounting.dead_letter_entry(
            record["source"], record["position"], "missing_image",
            f"not found: {record['image_path'][0]}", unit="row", record_id=record["id"]))
