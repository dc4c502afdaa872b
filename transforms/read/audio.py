"""Audio readers: audio files, LibriSpeech transcripts, Common Voice TSV, NeMo manifests, WebDataset.

Each reader yields *items*: ``("record", dict)`` or ``("dead", dead-letter
entry)``, as the image readers do (:mod:`transforms.read.images`, whose
confinement, tar streaming and loading this module reuses). An audio record
has ``id``, ``key``, ``source``, ``position``, ``text`` (the transcript, ""
when there is none) and either ``audio_bytes`` or ``audio_path`` (candidate
paths, loaded later by :class:`LoadAudio`).

Inputs, by file name:

* audio files (:data:`AUDIO_EXTENSIONS`: WAV, FLAC, MP3, Ogg/Opus/Vorbis,
  M4A/AAC, and video containers whose audio track is read: MKV, MP4, WebM,
  MOV): one record each, no transcript;
* ``*.trans.txt`` (LibriSpeech): lines ``<utterance id> <TRANSCRIPT>``; the
  audio is ``<utterance id>.flac`` beside it;
* ``*.tsv`` (Common Voice: ``path`` and ``sentence`` columns): clips under the
  table's ``clips/`` folder, else beside it;
* ``*.jsonl`` / ``*.json`` (NeMo manifests: ``audio_filepath``, ``text``,
  ``offset``, ``duration``): paths relative to the manifest's folder. The
  transcript belongs to ``[offset, offset + duration)`` of the file, so the
  record carries that ``slice`` and only it is cut from the decoded file
  (a slice outside the audio is dead-lettered ``slice_outside_audio``, a
  negative or non-numeric one ``malformed_slice``);
* ``*.tar`` (WebDataset): a sample's audio member (one of the audio
  extensions) with ``.txt`` or ``.json`` (``text`` or ``caption``).

Referenced audio must resolve inside ``audio_root`` (default: the table's or
manifest's own folder); a reference that escapes it is dead-lettered
``path_outside_root`` unread, and :class:`LoadAudio` checks again right before
opening. Nothing is fetched: an ``http(s)://`` reference is
``remote_audio_not_fetched``.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from typing import Iterator, List, Optional

import apache_beam as beam

from transforms import accounting
from transforms.accounting import IN
from transforms.read import images as _media
from transforms.read.corpus import ExpandGlob, derive_id

__all__ = ["AUDIO_EXTENSIONS", "read_audio_file", "read_librispeech", "read_commonvoice",
           "read_nemo_manifest", "read_audio_webdataset", "ReadAudio", "LoadAudio"]

AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac",
                    ".mka", ".mkv", ".mp4", ".webm", ".mov", ".aif", ".aiff", ".au")
MAX_TABLE_BYTES = 512 << 20


def _audio_record(kind: str, value: dict):
    """Image-reader item -> audio item: the media fields and reasons renamed."""
    if kind == "dead":
        reason = {"missing_image": "missing_audio", "missing_image_reference": "missing_audio_reference",
                  "remote_image_not_fetched": "remote_audio_not_fetched"}.get(value.get("reason"))
        if reason:
            value = dict(value, reason=reason)
        return kind, value
    out = dict(value)
    if "image_bytes" in out:
        out["audio_bytes"] = out.pop("image_bytes")
    if "image_path" in out:
        out["audio_path"] = out.pop("image_path")
    return kind, out


def read_audio_file(path: str, rel: str, max_bytes: int) -> Iterator:
    for kind, value in _media.read_image_file(path, rel, False, max_bytes):
        yield _audio_record(kind, value)


def _lines(path: str):
    with _media._open(path) as f:
        data = f.read(MAX_TABLE_BYTES + 1)
    if len(data) > MAX_TABLE_BYTES:
        raise ValueError(f"over {MAX_TABLE_BYTES} bytes")
    return data.decode("utf-8").splitlines()


def _unreadable(path: str, e: Exception, what: str):
    return "dead", accounting.dead_letter_entry(path, 0, f"unreadable_{what}",
                                                f"{type(e).__name__}: {e}", unit="file")


def read_librispeech(path: str, rel: str, audio_root: Optional[str] = None) -> Iterator:
    """``<utt> <TRANSCRIPT>`` lines; the audio ``<utt>.flac`` beside the transcript file."""
    try:
        lines = _lines(path)
    except Exception as e:  # noqa: BLE001
        yield _unreadable(path, e, "transcripts")
        return
    base = _media._dirname(path)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        utt, _, text = line.strip().partition(" ")
        if not text.strip() or "/" in utt or "\\" in utt:
            yield "dead", accounting.dead_letter_entry(path, i, "malformed_transcript_line",
                                                       line[:200], unit="row")
            continue
        yield _audio_record(*_media._pair(path, i, rel, f"{utt}.flac", text.strip(), (base,),
                                          audio_root, rid=f"librispeech-{utt}"))


def read_commonvoice(path: str, rel: str, audio_root: Optional[str] = None) -> Iterator:
    """Common Voice TSV (``path``, ``sentence``): clips under ``clips/``, else beside the table."""
    try:
        rows = list(csv.DictReader(io.StringIO("\n".join(_lines(path))), delimiter="\t",
                                   quoting=csv.QUOTE_NONE))
    except Exception as e:  # noqa: BLE001
        yield _unreadable(path, e, "table")
        return
    base = _media._dirname(path)
    bases = (_media._join(base, "clips"), base)
    for i, row in enumerate(rows, start=1):  # position: the line, after the header
        ref = row.get("path") or row.get("audio") or row.get("file")
        text = row.get("sentence", row.get("text"))
        yield _audio_record(*_media._pair(path, i, rel, ref, text, bases, audio_root))


def read_nemo_manifest(path: str, rel: str, audio_root: Optional[str] = None) -> Iterator:
    """NeMo JSON lines: ``audio_filepath`` (relative to the manifest), ``text``."""
    try:
        lines = _lines(path)
    except Exception as e:  # noqa: BLE001
        yield _unreadable(path, e, "manifest")
        return
    base = _media._dirname(path)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError) as e:
            yield "dead", accounting.dead_letter_entry(path, i, "malformed_json", str(e)[:200],
                                                       unit="row")
            continue
        offset, duration = row.get("offset", 0), row.get("duration")
        if not isinstance(offset, (int, float)) or isinstance(offset, bool) or offset < 0 or (
                duration is not None and (not isinstance(duration, (int, float))
                                          or isinstance(duration, bool) or duration <= 0)):
            yield "dead", accounting.dead_letter_entry(
                path, i, "malformed_slice", f"offset {offset!r}, duration {duration!r}", unit="row")
            continue
        kind, value = _audio_record(*_media._pair(path, i, rel, row.get("audio_filepath"),
                                                  row.get("text"), (base,), audio_root))
        if kind == "record" and (offset or duration is not None):
            # the transcript belongs to [offset, offset + duration) of the file
            value["slice"] = [float(offset), None if duration is None else float(duration)]
        yield kind, value


def read_audio_webdataset(path: str, rel: str, max_member_bytes: int,
                          max_sample_bytes: int = _media.MAX_SAMPLE_BYTES) -> Iterator:
    for kind, value in _media.read_webdataset(path, rel, max_member_bytes, max_sample_bytes,
                                              media_extensions=AUDIO_EXTENSIONS):
        yield _audio_record(kind, value)


def items_of(path: str, rel: str, max_bytes: int, audio_root: Optional[str] = None,
             max_sample_bytes: int = _media.MAX_SAMPLE_BYTES) -> Iterator:
    """The reader for ``path``, chosen by its name."""
    lowered = path.lower()
    if lowered.endswith(".trans.txt"):
        return read_librispeech(path, rel, audio_root)
    if lowered.endswith(".tsv"):
        return read_commonvoice(path, rel, audio_root)
    if lowered.endswith((".jsonl", ".json")):
        return read_nemo_manifest(path, rel, audio_root)
    if lowered.endswith((".tar", ".tar.gz", ".tgz")):
        return read_audio_webdataset(path, rel, max_bytes, max_sample_bytes)
    if lowered.endswith(AUDIO_EXTENSIONS):
        return read_audio_file(path, rel, max_bytes)
    return iter([("dead", accounting.dead_letter_entry(
        path, 0, "unknown_format",
        "not an audio file, *.trans.txt, Common Voice .tsv, NeMo .jsonl or WebDataset .tar",
        unit="file"))])


class _ReadItems(accounting.CountingDoFn):
    def __init__(self, max_bytes: int, audio_root: Optional[str], max_sample_bytes: int):
        super().__init__()
        self._max_bytes = max_bytes
        self._root = audio_root or None
        self._max_sample_bytes = max_sample_bytes

    def process(self, info: dict):
        for kind, value in items_of(info["path"], info["rel"], self._max_bytes, self._root,
                                    self._max_sample_bytes):
            self.count(IN, "records")
            if kind == "record":
                yield value
            else:
                yield self.dead(value)


class ReadAudio(beam.PTransform):
    """Globs of audio files and transcript tables -> audio records (``records``, ``dead``,
    ``counts``, ``files``), referenced audio loaded and confined (:class:`LoadAudio`)."""

    def __init__(self, patterns: List[str], max_bytes: int = 256 << 20,
                 audio_root: Optional[str] = None,
                 max_sample_bytes: int = _media.MAX_SAMPLE_BYTES):
        super().__init__()
        self._patterns = list(patterns)
        self._max_bytes = max_bytes
        self._root = audio_root or None
        self._max_sample_bytes = max_sample_bytes

    def expand(self, pbegin):
        files = (pbegin | "Patterns" >> beam.Create(self._patterns)
                 | "ExpandGlobs" >> beam.ParDo(ExpandGlob()))
        read = (files
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadItems" >> beam.ParDo(_ReadItems(self._max_bytes, self._root,
                                                       self._max_sample_bytes))
                .with_outputs(accounting.DEAD, accounting.COUNTS, main="records"))
        loaded = (read.records
                  | "SpreadRecords" >> beam.Reshuffle()
                  | "LoadAudio" >> beam.ParDo(LoadAudio(self._max_bytes, self._root))
                  .with_outputs(accounting.DEAD, accounting.COUNTS, main="records"))
        dead = ((read[accounting.DEAD], loaded[accounting.DEAD])
                | "DeadLetters" >> beam.Flatten())
        counts = ((read[accounting.COUNTS], loaded[accounting.COUNTS])
                  | "Counts" >> beam.Flatten())
        return {"records": loaded.records, "dead": dead, "counts": counts, "files": files}


class LoadAudio(_media.LoadImages):
    """Records with ``audio_path`` -> records with ``audio_bytes``: the image loader's
    confinement and checks (:class:`transforms.read.images.LoadImages`), audio names."""

    def dead(self, entry):
        if entry.get("reason") == "missing_image":
            entry = dict(entry, reason="missing_audio")
        return super().dead(entry)

    def process(self, record: dict):
        if "audio_path" not in record:
            yield record
            return
        staged = dict(record)
        staged["image_path"] = staged.pop("audio_path")
        for out in super().process(staged):
            if isinstance(out, dict):
                out = dict(out)
                if "image_bytes" in out:
                    out["audio_bytes"] = out.pop("image_bytes")
                if "image_file" in out:
                    out["audio_file"] = out.pop("image_file")
            yield out
