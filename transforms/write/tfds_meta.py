"""TFDS metadata beside the shards, so ``tfds.builder_from_directory(DIR)`` reads them.

:func:`write_tfds_metadata` writes, next to ``DIR/data/``:

* ``DIR/features.json``: a ``tfds.features.FeaturesDict`` serialized by TFDS
  itself (``FeatureConnector.save_config``). Nested dicts give the Example
  keys of the output contract, since TFDS joins nested names with ``/``
  (``{"image": {"encoded": ...}}`` reads the key ``image/encoded``).
* ``DIR/image-class-label.labels.txt`` (image classification only): the
  ``ClassLabel`` names, from ``DIR/labels.txt``, in TFDS's own file naming.
* ``DIR/dataset_info.json``: the ``DatasetInfo`` proto as JSON (TFDS's
  ``DatasetInfo.write_to_directory``): name, version ``1.0.0``, fileFormat
  ``tfrecord`` and one entry per split with ``shardLengths``, ``numBytes`` and
  ``filepathTemplate`` ``data/{SPLIT}-{SHARD_X_OF_Y}.tfrecord``, which TFDS
  resolves relative to DIR, so our shard names need no renaming. A split
  without any record is left out (TFDS cannot read an empty split; asking
  for it says "Unknown split"); empty shards inside a split are kept (length
  0, TFDS skips them). Written last: a reader never finds dataset_info.json
  without its features.json.

Features by output kind (from the Example keys of the first record of each
split, the config when every shard is empty):

==================  ==========================================================
text, tokenized     ``id`` Text, ``input_ids`` Tensor(shape=(None,), int64)
text, untokenized   ``id`` Text, ``text`` Text
images              ``image/encoded`` Image(jpeg, (S, S, 3) for crop/pad
                    resizing, (None, None, 3) for none), ``image/format`` and
                    ``image/id`` Text, ``image/height`` and ``image/width``
                    Tensor((), int64), ``image/class/label`` ClassLabel
pairs               images' keys without the label, plus ``caption/text``
                    Text and ``caption/input_ids`` Tensor((None,), int64)
==================  ==========================================================

TFDS builds the JSON (in a local temporary folder); Beam's FileSystems copies
it to DIR, so any Beam filesystem works. TFDS's version is always ``1.0.0``;
beamtrain's ``dataset_version`` and ``content_sha256`` are in the description
and the release notes. Any failure raises :class:`TfdsMetadataError` naming
the cause.

Re-write the metadata of an existing output: ``python -m transforms.write.tfds_meta DIR``.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.write.shards import read_varint

__all__ = ["TfdsMetadataError", "TFDS_VERSION", "FILEPATH_TEMPLATE", "example_keys",
           "dataset_name", "expected_keys", "build_features", "build_dataset_info",
           "write_tfds_metadata", "main"]

TFDS_VERSION = "1.0.0"
FILEPATH_TEMPLATE = "data/{SPLIT}-{SHARD_X_OF_Y}.tfrecord"
DATASET_INFO, FEATURES = "dataset_info.json", "features.json"

# Example key -> (wire kind, feature): the output contract of writers.py / image_steps.py
TEXT_KEYS = {"id": "bytes", "source": "bytes", "input_ids": "int64", "text": "bytes",
             "url": "bytes", "license": "bytes", "language": "bytes", "language_score": "float"}
# Written only where the input has them: in the contract, but not TFDS features
# (TFDS would fail on the records without them); tf.io.parse_example reads them
# with a default.
OPTIONAL_KEYS = ("url", "license")
IMAGE_KEYS = {"image/encoded": "bytes", "image/format": "bytes", "image/height": "int64",
              "image/width": "int64", "image/id": "bytes", "image/class/label": "int64",
              "caption/text": "bytes", "caption/input_ids": "int64"}


AUDIO_KEYS = {"audio/encoded": "bytes", "audio/format": "bytes", "audio/sample_rate": "int64",
              "audio/num_samples": "int64", "audio/id": "bytes", "transcript/text": "bytes",
              "transcript/input_ids": "int64"}
# An audio clip's transcript is there only when it has one: in the contract, not a TFDS
# feature (as url and license for text).
OPTIONAL_KEYS = OPTIONAL_KEYS + ("transcript/text", "transcript/input_ids")


class TfdsMetadataError(RuntimeError):
    """The TFDS metadata could not be written; the message says why."""


# --------------------------------------------------------------------------
# A minimal tf.train.Example reader: key names and value kinds (no TensorFlow)


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    return read_varint(buf, pos)


def _fields(buf: bytes):
    """(field number, wire type, value) of one message; value: bytes or int."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


_KINDS = {1: "bytes", 2: "float", 3: "int64"}


def packed_varints(buf: bytes):
    """The int64 values of packed varints, decoded at once with NumPy (token lists are long).

    ValueError when the last varint is cut or one is longer than 10 bytes.
    """
    import numpy as np

    data = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(data < 0x80)
    if not len(data):
        return np.zeros(0, dtype=np.int64)
    if not len(ends) or ends[-1] != len(data) - 1:
        raise ValueError("truncated varint")
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise ValueError("varint longer than 10 bytes")
    payload = (data & 0x7F).astype(np.uint64)
    out = payload[starts].copy()
    for k in range(1, int(lengths.max())):
        more = lengths > k
        out[more] |= payload[starts[more] + k] << np.uint64(7 * k)
    return out.view(np.int64)


def example_keys(serialized: bytes) -> Dict[str, Tuple[str, list]]:
    """``{key: (kind, values)}`` of a serialized tf.train.Example; kind: bytes, float or int64."""
    out: Dict[str, Tuple[str, list]] = {}
    for number, _, features in _fields(serialized):
        if number != 1:
            continue
        for n2, _, entry in _fields(features):
            if n2 != 1:
                continue
            key, feature = None, b""
            for n3, _, v in _fields(entry):
                if n3 == 1:
                    key = v.decode("utf-8")
                elif n3 == 2:
                    feature = v
            kind, values = "bytes", []
            for n4, _, lst in _fields(feature):
                kind = _KINDS.get(n4, "unknown")
                for n5, wire, v in _fields(lst):
                    if n5 != 1:
                        continue
                    if kind == "int64" and wire == 2 and len(v) >= 16:  # packed, long
                        values.extend(packed_varints(v).tolist())
                    elif kind == "int64" and wire == 2:  # packed
                        pos = 0
                        while pos < len(v):
                            x, pos = _varint(v, pos)
                            values.append(x - (1 << 64) if x >= 1 << 63 else x)
                    elif kind == "int64":
                        values.append(v - (1 << 64) if v >= 1 << 63 else v)
                    elif kind == "float" and wire == 2:
                        values.extend(struct.unpack(f"<{len(v) // 4}f", v))
                    elif kind == "float":
                        values.append(struct.unpack("<f", v)[0])
                    else:
                        values.append(v)
            out[key] = (kind, values)
    return out


def _first_record(path: str) -> Optional[bytes]:
    """The data of the first TFRecord of ``path`` (None for an empty file)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        header = f.read(12)
        if not header:
            return None
        if len(header) < 12:
            raise TfdsMetadataError(f"{path}: truncated first record")
        (length,) = struct.unpack("<Q", header[:8])
        data = b""
        while len(data) < length:
            chunk = f.read(length - len(data))
            if not chunk:
                raise TfdsMetadataError(f"{path}: truncated first record")
            data += chunk
        return data


# --------------------------------------------------------------------------
# What the dataset holds


def output_kind(config: Dict[str, Any]) -> str:
    """text, images or pairs, from the run's config (manifest.json's ``config``)."""
    kind = config.get("kind")
    if kind in ("images", "pairs", "audio"):
        return kind
    if "steps" in config:
        return "text"
    raise TfdsMetadataError(
        f"cannot tell the output kind from the config (keys: {sorted(config)}): "
        "expected a text config (steps) or an image config (kind)")


def dataset_name(kind: str) -> str:
    return f"beamtrain_{kind}"


def expected_keys(config: Dict[str, Any]) -> Dict[str, str]:
    """The Example keys (and kinds) the config promises, when no record says otherwise."""
    kind = output_kind(config)
    if kind == "text":
        tokenized = "tokenize" in (config.get("steps") or [])
        return {"id": "bytes", "source": "bytes", ("input_ids" if tokenized else "text"):
                ("int64" if tokenized else "bytes")}
    if kind == "audio":
        keys = {k: AUDIO_KEYS[k] for k in ("audio/encoded", "audio/format", "audio/sample_rate",
                                            "audio/num_samples", "audio/id")}
        return keys
    keys = {k: IMAGE_KEYS[k] for k in ("image/encoded", "image/format", "image/height",
                                        "image/width", "image/id")}
    if kind == "images" and config.get("labels_from_dirs"):
        keys["image/class/label"] = "int64"
    if kind == "pairs":
        keys["caption/text"] = "bytes"
        keys["caption/input_ids"] = "int64"
    return keys


def _image_shape(config: Dict[str, Any]) -> Tuple[Optional[int], Optional[int], int]:
    image = config.get("image") or {}
    if image.get("resize") in ("crop", "pad") and image.get("size"):
        return (int(image["size"]), int(image["size"]), 3)
    return (None, None, 3)


def build_features(keys: Sequence[str], image_shape=(None, None, 3),
                   label_names: Optional[List[str]] = None):
    """A ``tfds.features.FeaturesDict`` whose flattened keys are ``keys``."""
    import numpy as np
    import tensorflow_datasets as tfds

    F = tfds.features
    makers = {
        "id": lambda: F.Text(doc="record id"),
        "source": lambda: F.Text(doc="input file the record came from"),
        "text": lambda: F.Text(doc="document text"),
        "language": lambda: F.Text(doc="lid.176 label of the lang step (ISO 639-1 where one exists)"),
        "language_score": lambda: F.Tensor(shape=(), dtype=np.float32,
                                           doc="lid.176's probability of the label"),
        "input_ids": lambda: F.Tensor(shape=(None,), dtype=np.int64, doc="SentencePiece ids"),
        "image/encoded": lambda: F.Image(shape=tuple(image_shape), encoding_format="jpeg",
                                         doc="RGB JPEG"),
        "image/format": lambda: F.Text(doc="always jpeg"),
        "image/height": lambda: F.Tensor(shape=(), dtype=np.int64),
        "image/width": lambda: F.Tensor(shape=(), dtype=np.int64),
        "image/id": lambda: F.Text(doc="record id"),
        "image/class/label": lambda: F.ClassLabel(names=label_names, doc="index in labels.txt"),
        "caption/text": lambda: F.Text(doc="caption"),
        "caption/input_ids": lambda: F.Tensor(shape=(None,), dtype=np.int64,
                                              doc="SentencePiece ids of the caption"),
        "audio/encoded": lambda: F.Tensor(shape=(), dtype=np.object_,
                                          doc="the clip's file bytes: 16-bit mono FLAC or WAV "
                                              "(audio/format)"),
        "audio/format": lambda: F.Text(doc="flac or wav"),
        "audio/sample_rate": lambda: F.Tensor(shape=(), dtype=np.int64),
        "audio/num_samples": lambda: F.Tensor(shape=(), dtype=np.int64),
        "audio/id": lambda: F.Text(doc="record id (#k: segment k of a split file)"),
    }
    nested: Dict[str, Any] = {}
    for key in sorted(keys):
        if key not in makers:
            raise TfdsMetadataError(f"Example key {key!r} is not part of the output contract")
        if key == "image/class/label" and not label_names:
            raise TfdsMetadataError("image/class/label present but no label names (labels.txt)")
        *parents, leaf = key.split("/")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = makers[key]()
    return F.FeaturesDict(nested)


def _observed_keys(output_dir: str, shards: List[Dict[str, Any]]) -> Dict[str, Tuple[str, list]]:
    """Example keys of the first record of each split's first non-empty shard (all must agree)."""
    seen: Dict[str, Tuple[str, Dict[str, Tuple[str, list]]]] = {}
    for s in shards:
        if s["split"] in seen or not s["records"]:
            continue
        path = FileSystems.join(output_dir, s["path"])
        if not FileSystems.exists(path):
            raise TfdsMetadataError(f"{s['path']}: missing, but listed in manifest.json")
        data = _first_record(path)
        if data is None:
            raise TfdsMetadataError(f"{s['path']}: empty, but manifest.json says {s['records']} records")
        try:
            seen[s["split"]] = (s["path"], example_keys(data))
        except ValueError as e:
            raise TfdsMetadataError(f"{s['path']}: first record is not a tf.train.Example: {e}") from e
    keysets = {path: {k: v[0] for k, v in keys.items() if k not in OPTIONAL_KEYS}
               for path, keys in seen.values()}
    if len({json.dumps(k, sort_keys=True) for k in keysets.values()}) > 1:
        raise TfdsMetadataError(f"splits hold different Example keys: {keysets}")
    return next(iter(seen.values()))[1] if seen else {}


# --------------------------------------------------------------------------
# DatasetInfo


def _split_infos(manifest: Dict[str, Any], name: str, data_dir: str):
    import tensorflow_datasets as tfds

    by_split: Dict[str, List[Dict[str, Any]]] = {}
    for s in manifest["shards"]:
        by_split.setdefault(s["split"], []).append(s)
    infos = []
    for split in sorted(by_split):
        shards = by_split[split]
        template = tfds.core.ShardedFileTemplate(
            data_dir=data_dir, template=FILEPATH_TEMPLATE, dataset_name=name, split=split,
            filetype_suffix="tfrecord")
        by_path = {s["path"]: s for s in shards}
        ordered = []
        for index in range(len(shards)):
            path = template.relative_filepath(shard_index=index, num_shards=len(shards))
            if path not in by_path:
                raise TfdsMetadataError(
                    f"split {split!r}: TFDS expects shard {path} (filepathTemplate "
                    f"{FILEPATH_TEMPLATE!r}), manifest.json lists {sorted(by_path)}")
            ordered.append(by_path[path])
        if not sum(int(s["records"]) for s in ordered):
            continue  # TFDS refuses to read a split without records ("corresponds to no data")
        infos.append(tfds.core.SplitInfo(
            name=split, shard_lengths=[int(s["records"]) for s in ordered],
            num_bytes=sum(int(s["bytes"]) for s in ordered), filename_template=template))
    return infos


def build_dataset_info(manifest: Dict[str, Any], features, kind: str, data_dir: str):
    """A ``tfds.core.DatasetInfo`` for the shards of ``manifest``."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import dataset_info as dataset_info_lib

    name = dataset_name(kind)
    version = manifest.get("dataset_version")
    notes = f"beamtrain dataset_version {version} (content_sha256 {manifest.get('content_sha256')})"
    identity = dataset_info_lib.DatasetIdentity(
        name=name, version=tfds.core.Version(TFDS_VERSION), data_dir=data_dir, module_name="",
        release_notes={TFDS_VERSION: notes})
    description = (
        f"beamtrain {kind} output: tf.train.Example TFRecord shards under data/, described by "
        f"manifest.json and stats.json. {notes}. TFDS version {TFDS_VERSION} is fixed; the "
        "beamtrain dataset_version identifies the content.")
    info = tfds.core.DatasetInfo(
        builder=identity, description=description, features=features,
        split_dict=tfds.core.SplitDict(_split_infos(manifest, name, data_dir)))
    info.set_file_format("tfrecord")
    return info


# --------------------------------------------------------------------------
# Writing


def _read_labels(output_dir: str) -> List[str]:
    path = FileSystems.join(output_dir, "labels.txt")
    if not FileSystems.exists(path):
        raise TfdsMetadataError(f"{path}: missing; image/class/label needs the class names")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return [line.strip() for line in f.read().decode("utf-8").splitlines() if line.strip()]


def _write_tfds_metadata(output_dir: str, manifest: Dict[str, Any]) -> List[str]:
    config = manifest.get("config") or {}
    kind = output_kind(config)
    expected = expected_keys(config)
    _split_infos(manifest, dataset_name(kind), output_dir)  # shard names fit the template?
    observed = _observed_keys(output_dir, manifest["shards"])
    if observed:
        kinds = {k: v[0] for k, v in observed.items()}
        contract = {"text": TEXT_KEYS, "audio": AUDIO_KEYS}.get(kind, IMAGE_KEYS)
        wrong = {k: v for k, v in kinds.items() if contract.get(k) != v}
        if wrong:
            raise TfdsMetadataError(
                f"Example keys outside the {kind} contract (or of the wrong kind): {wrong}")
        keys = sorted(k for k in kinds if k not in OPTIONAL_KEYS)
    else:
        keys = sorted(expected)
    shape = _image_shape(config)
    if observed and "image/height" in observed and shape[0] is not None:
        got = (observed["image/height"][1][:1], observed["image/width"][1][:1])
        if got != ([shape[0]], [shape[1]]):
            raise TfdsMetadataError(
                f"config says {shape[0]}x{shape[1]} images, the first record is "
                f"{got[0]}x{got[1]} (height x width)")
    labels = _read_labels(output_dir) if "image/class/label" in keys else None
    features = build_features(keys, shape, labels)

    written = []
    with tempfile.TemporaryDirectory(prefix="beamtrain-tfds-") as tmp:
        info = build_dataset_info(manifest, features, kind, tmp)
        info.write_to_directory(tmp)
        names = sorted(os.listdir(tmp))
        if DATASET_INFO not in names or FEATURES not in names:
            raise TfdsMetadataError(f"TFDS wrote {names}, expected {DATASET_INFO} and {FEATURES}")
        # dataset_info.json last: it is what readers look for first
        for name in [n for n in names if n != DATASET_INFO] + [DATASET_INFO]:
            with open(os.path.join(tmp, name), "rb") as src:
                data = src.read()
            dest = FileSystems.join(output_dir, name)
            with FileSystems.create(dest) as f:
                f.write(data)
            written.append(dest)
    return written


def write_tfds_metadata(output_dir: str, manifest: Dict[str, Any]) -> List[str]:
    """Write dataset_info.json, features.json (and label names) into ``output_dir``.

    ``manifest`` is manifest.json's content. Returns the written paths; raises
    :class:`TfdsMetadataError` with the cause when anything fails.
    """
    try:
        return _write_tfds_metadata(output_dir, manifest)
    except TfdsMetadataError as e:
        raise TfdsMetadataError(f"TFDS metadata for {output_dir}: {e}") from e
    except Exception as e:  # TFDS or filesystem errors: say what was being done
        raise TfdsMetadataError(
            f"TFDS metadata for {output_dir}: writing {DATASET_INFO}/{FEATURES} failed: "
            f"{type(e).__name__}: {e}") from e


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m transforms.write.tfds_meta DIR``: (re)write the TFDS metadata of an output."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m transforms.write.tfds_meta", description=main.__doc__)
    parser.add_argument("output_dir")
    args = parser.parse_args(argv)
    try:
        with FileSystems.open(FileSystems.join(args.output_dir, "manifest.json"),
                              compression_type=CompressionTypes.UNCOMPRESSED) as f:
            manifest = json.loads(f.read())
        written = write_tfds_metadata(args.output_dir, manifest)
    except Exception as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
