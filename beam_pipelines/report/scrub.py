"""Input-derived strings made safe to show.

Privacy: no raw input text is printed. Every string that comes from the input
goes through :func:`scrub` (the pipeline's PII scrubber), whatever wrote it:
sample excerpts (already scrubbed by the pipeline, scrubbed again), the dead
letter's ``raw_excerpt`` and ``detail`` (raw when the run used
--dead_letter_raw, or from an older run), record ids and sources, and licence
names; then it is shortened (:func:`shorten`), control characters are made
visible (:func:`visible`) and it is HTML-escaped. Scrubbing comes before
shortening, so a cut never leaves part of a finding visible. Thumbnails are
shown only when they are plain base64 of a JPEG or PNG (:func:`thumbnail`).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Dict, Optional

__all__ = ["MAX_THUMBNAIL_B64", "visible", "shorten", "scrub", "scrub_field", "thumbnail"]

MAX_THUMBNAIL_B64 = 400_000

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_SCRUBBER = None


def visible(text: str) -> str:
    """Control characters as visible escapes, so broken inputs cannot garble the page."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                        else f"\\u{ord(m.group()):04x}", text)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def scrub(text: str) -> str:
    global _SCRUBBER
    if not text:
        return ""
    try:
        if _SCRUBBER is None:
            from transforms.text.pii import PiiScrubber

            _SCRUBBER = PiiScrubber()
        return _SCRUBBER.scrub(text)[0]
    except Exception:  # never show what could not be scrubbed
        return "[excerpt withheld: PII scrubber failed]"


def scrub_field(row: Dict[str, Any], key: str) -> str:
    """``row[key]`` as text, PII-scrubbed: every input-derived string the page shows."""
    value = row.get(key)
    return "" if value is None else scrub(str(value))


def thumbnail(value: Any) -> Optional[str]:
    """A data URI for a base64 JPEG, or None when it is not plain base64 of a JPEG or PNG."""
    if not isinstance(value, str):
        return None
    compact = "".join(value.split())
    if compact.startswith("data:image/jpeg;base64,"):
        compact = compact[len("data:image/jpeg;base64,"):]
    if not compact or len(compact) > MAX_THUMBNAIL_B64 or not _BASE64.match(compact):
        return None
    try:
        head = base64.b64decode(compact[:16] + "=" * (-len(compact[:16]) % 4))
    except (binascii.Error, ValueError):
        return None
    if head.startswith(b"\xff\xd8"):
        return "data:image/jpeg;base64," + compact
    if head.startswith(b"\x89PNG"):
        return "data:image/png;base64," + compact
    return None
