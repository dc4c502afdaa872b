"""Records built from what a format core found, with their provenance.

Provenance: every record keeps ``source`` (the file path) and ``position``
(the byte offset of a JSONL line in the decompressed stream, the row index of
a Parquet row, the stream offset of a WARC record, 0 for a text file). Records
without an id get ``"<relative path>#<position>"`` hashed into a stable id, so
the same file gives the same ids however it was split.

Every record also gets ``key``: :func:`transforms.accounting.record_key` of the
full path and the position, unique per input record even where two globs
hold files with the same relative name (ids need not be unique; keys are).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterator, Optional, Tuple

from transforms import accounting
from transforms.read.plan import ReaderConfig

__all__ = ["Event", "derive_id", "record_from_mapping", "rows_of_columns"]

# Format cores. Each yields ("record", rec) / ("dead", entry) / ("filtered", reason)
# / ("info", name).
Event = Tuple[str, Any]

_HTML_SNIFF_STR = re.compile(r"^\s*(?:<!doctype\s+html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)


def derive_id(rel: str, position: int) -> str:
    return "d%016x" % accounting.stable_hash64(f"{rel}#{position}")


def _looks_html(text: str) -> bool:
    return bool(_HTML_SNIFF_STR.match(text[:512]))


def record_from_mapping(
    obj: Dict[str, Any], source: str, rel: str, position: int, config: ReaderConfig,
    raw: Any = None, unit: str = "byte",
) -> Tuple[Optional[dict], Optional[dict]]:
    raw = raw if raw is not None else obj
    text = obj.get(config.text_field)
    if text is None:
        reason = "missing_text" if config.text_field not in obj else "null_text"
        return None, accounting.dead_letter_entry(
            source, position, reason, f"field {config.text_field!r}", raw, unit)
    if not isinstance(text, str):
        return None, accounting.dead_letter_entry(
            source, position, "wrong_type",
            f"field {config.text_field!r} is {type(text).__name__}, expected string", raw, unit)
    if len(text) > config.max_doc_bytes or len(text.encode("utf-8", "surrogatepass")) > config.max_doc_bytes:
        return None, accounting.dead_letter_entry(
            source, position, "too_large",
            f"document of {len(text)} characters exceeds max_doc_bytes={config.max_doc_bytes}", text, unit)
    rid = obj.get(config.id_field)
    if rid is None or rid == "":
        rid = derive_id(rel, position)
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return None, accounting.dead_letter_entry(
            source, position, "wrong_type",
            f"field {config.id_field!r} is {type(rid).__name__}, expected string or integer", raw, unit)
    else:
        rid = str(rid)
    meta: Dict[str, Any] = {}
    for key in ("url", "license"):
        value = obj.get(key)
        if isinstance(value, str):
            meta[key] = value
    content_type = obj.get("content_type") or obj.get("mime_type")
    if isinstance(content_type, str):
        meta["html"] = "html" in content_type.lower()
    else:
        meta["html"] = _looks_html(text)
    return {"id": rid, "key": accounting.record_key(source, position), "text": text, "source": source,
            "position": position, "meta": meta}, None


def rows_of_columns(cols: Dict[str, list], n_rows: int, first: int, source: str, rel: str,
                    config: ReaderConfig) -> Iterator[Event]:
    """Columnar input (Parquet row groups, Arrow record batches) -> one event per row."""
    names = list(cols)
    for i in range(n_rows):
        obj = {c: cols[c][i] for c in names}
        rec, dead = record_from_mapping(obj, source, rel, first + i, config,
                                        raw=repr(obj)[:400], unit="row")
        yield ("dead", dead) if dead is not None else ("record", rec)
