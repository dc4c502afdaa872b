"""Reading a run's output directory: stats.json, manifest.json, samples and the dead letter.

Everything goes through Beam's FileSystems, so DIR may be local or on any Beam
filesystem. A file that cannot be read or parsed is logged and skipped: the
report says what is missing instead of failing.
"""

from __future__ import annotations

import collections
import io
import json
import logging
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from beam_pipelines.report.stats import KIND_TITLES

__all__ = ["SAMPLES_PER_REASON", "Samples", "file_systems", "join", "read_json", "load_samples",
           "load_dead_letter"]

SAMPLES_PER_REASON = 3


def file_systems():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def join(directory: str, *parts: str) -> str:
    return file_systems().join(directory, *parts)


def _read_text(path: str) -> Optional[str]:
    fs = file_systems()
    try:
        if not fs.exists(path):
            return None
        with fs.open(path) as f:
            return f.read().decode("utf-8", "replace")
    except Exception as e:  # unreadable: the report says so instead of failing
        logging.warning("cannot read %s: %s", path, e)
        return None


def read_json(path: str) -> Optional[Dict[str, Any]]:
    text = _read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        logging.warning("%s is not valid JSON: %s", path, e)
        return None
    return value if isinstance(value, dict) else None


def _match(pattern: str) -> List[str]:
    try:
        return sorted(m.path for m in file_systems().match([pattern])[0].metadata_list)
    except Exception:
        return []


def _jsonl(paths: Iterable[str]) -> Iterator[Dict[str, Any]]:
    fs = file_systems()
    for path in paths:
        try:
            with fs.open(path) as f:
                for raw in io.TextIOWrapper(f, encoding="utf-8", errors="replace"):
                    raw = raw.strip()
                    if not raw:
                        continue
                    try:
                        row = json.loads(raw)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(row, dict):
                        yield row
        except Exception as e:
            logging.warning("cannot read %s: %s", path, e)


class Samples:
    """At most ``limit`` rows per (kind, reason), and how many there were in all."""

    def __init__(self, limit: int = SAMPLES_PER_REASON):
        self.limit = limit
        self.rows: Dict[Tuple[str, str], List[Dict[str, Any]]] = collections.defaultdict(list)
        self.seen: Dict[Tuple[str, str], int] = collections.Counter()

    def add(self, key: Tuple[str, str], row: Dict[str, Any]) -> None:
        self.seen[key] += 1
        if len(self.rows[key]) < self.limit:
            self.rows[key].append(row)


def load_samples(directory: str) -> Tuple[Samples, bool]:
    paths = _match(join(directory, "samples*.jsonl")) + _match(join(directory, "samples", "*.jsonl"))
    samples = Samples()
    for row in _jsonl(paths):
        kind = str(row.get("kind") or "")
        if kind not in KIND_TITLES:
            continue
        samples.add((kind, str(row.get("reason") or "")), row)
    return samples, bool(paths)


def load_dead_letter(directory: str) -> Samples:
    dead = Samples()
    for row in _jsonl(_match(join(directory, "dead_letter", "*.jsonl"))):
        dead.add(("dead_letter", str(row.get("reason") or "")), row)
    return dead
