"""Images: validate, normalise, filter, hash and resize with Pillow; the pure core.

:func:`process_image` turns the bytes of one file into a training-ready JPEG
or raises :class:`ImageReject` with a reason (dead letter for broken input,
filtered for a rule):

1. Format allowlist (JPEG, PNG, WebP, GIF's first frame, BMP, TIFF), checked
   on the header Pillow reads, never on the file name.
2. Decompression bombs refused before decoding: the header's width x height
   against ``max_pixels``; zero-byte files and zero-size images refused.
3. JPEG draft mode: the decoder scales by 1/2, 1/4 or 1/8 while decoding when
   the target is that much smaller, which is most of the speed.
4. Decode; truncated and corrupt files are rejected with Pillow's message.
5. EXIF orientation applied; palette, CMYK, 16-bit, LA, 1-bit and
   transparent images converted to RGB (transparency composited on
   ``background``).
6. Filters, each with its own reason: minimum and maximum side, aspect ratio,
   blank or near-uniform (low pixel standard deviation), and optionally
   too-small files.
7. Perceptual hash: 128-bit difference hash (horizontal and vertical
   gradients of a 9x9 grey thumbnail), for near-duplicate removal by Hamming
   distance.
8. Resize (shorter side to ``size``, then centre crop, pad to a square, or
   keep the aspect) and JPEG re-encode at ``quality``.

Also for the Beam steps (:mod:`transforms.image.steps`): :class:`HammingAtMost`,
the near-duplicate check on two hashes, and :func:`thumbnail` for report samples.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from typing import Dict, Tuple

import numpy as np

__all__ = ["ImageConfig", "ImageReject", "process_image", "dhash128", "hamming",
           "HammingAtMost", "thumbnail", "ALLOWED_FORMATS"]

ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    formats: Tuple[str, ...] = ALLOWED_FORMATS
    max_pixels: int = 50_000_000  # refuse larger images before decoding them
    min_side: int = 32
    max_side: int = 20_000
    max_aspect: float = 5.0  # long side / short side
    min_std: float = 3.0  # grey-level standard deviation below which an image is blank
    min_file_bytes: int = 0  # 0: off
    size: int = 256  # shorter side after resizing
    resize: str = "crop"  # crop: centre crop to size x size; pad: pad to a square; none: keep aspect
    quality: int = 90
    background: Tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self):
        if self.resize not in ("crop", "pad", "none"):
            raise ValueError(f"resize must be crop, pad or none, got {self.resize!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in [1, 100], got {self.quality}")
        if self.size < 8 or self.min_side < 1 or self.max_side < self.min_side:
            raise ValueError("size must be >= 8 and 1 <= min_side <= max_side")
        if self.max_aspect < 1.0 or self.max_pixels < 1:
            raise ValueError("max_aspect must be >= 1 and max_pixels positive")


class ImageReject(Exception):
    """An image that is not kept: ``kind`` is 'dead' (broken input) or 'filtered' (a rule)."""

    def __init__(self, kind: str, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.kind = kind
        self.reason = reason
        self.detail = detail


def _to_rgb(im, background):
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max()
        lo = arr.min()
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr = ((arr - lo) * scale).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        canvas = Image.new("RGB", im.size, background)
        canvas.paste(im, mask=im.getchannel("A"))
        return canvas
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def dhash128(grey_thumb) -> int:
    """128-bit difference hash of a 9x9 grey image: horizontal then vertical gradients."""
    a = np.asarray(grey_thumb, dtype=np.int16)
    horizontal = (a[:8, 1:] > a[:8, :-1]).flatten()
    vertical = (a[1:, :8] > a[:-1, :8]).flatten()
    bits = np.concatenate([horizontal, vertical])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


@dataclasses.dataclass(frozen=True)
class HammingAtMost:
    """Near-duplicate predicate on two hashes: at most ``max_distance`` bits differ."""

    max_distance: int

    def __call__(self, hash_u: int, hash_v: int) -> bool:
        return hamming(hash_u, hash_v) <= self.max_distance


def thumbnail(record: dict, size: int = 64) -> str:
    """A small base64 JPEG of an image record (its ``jpeg``), for reports; '' for text."""
    data = record.get("jpeg")
    if not data:
        return ""
    import base64

    from PIL import Image

    im = Image.open(io.BytesIO(data))
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=70)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _resize(im, config: ImageConfig):
    from PIL import Image

    w, h = im.size
    scale = config.size / min(w, h)
    if config.resize == "crop" or config.resize == "none":
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
        if config.resize == "crop":
            left = (nw - config.size) // 2
            top = (nh - config.size) // 2
            im = im.crop((left, top, left + config.size, top + config.size))
        return im
    # pad: longer side to size, then centre on a square canvas
    scale = config.size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
    canvas = Image.new("RGB", (config.size, config.size), config.background)
    canvas.paste(im, ((config.size - nw) // 2, (config.size - nh) // 2))
    return canvas


def process_image(data: bytes, config: ImageConfig = ImageConfig()) -> Dict:
    """Bytes of one image file -> {jpeg, width, height, format, orig_width, orig_height, phash}.

    Raises :class:`ImageReject` for anything not kept.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageReject("dead", "empty_file", "zero bytes")
    if config.min_file_bytes and len(data) < config.min_file_bytes:
        raise ImageReject("filtered", "file_too_small", f"{len(data)} bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageReject("dead", "decompression_bomb", str(e)) from None
        except UnidentifiedImageError:
            raise ImageReject("dead", "unidentified_image",
                              "not an image Pillow can identify") from None
        except Exception as e:  # noqa: BLE001 - any parser failure is bad input
            raise ImageReject("dead", "corrupt_image", f"{type(e).__name__}: {e}") from None
        fmt = im.format or "UNKNOWN"
        if fmt not in config.formats:
            raise ImageReject("dead", "unsupported_format", fmt)
        w, h = im.size
        if w <= 0 or h <= 0:
            raise ImageReject("dead", "zero_size", f"{w}x{h}")
        if w * h > config.max_pixels:
            raise ImageReject("dead", "decompression_bomb",
                              f"{w}x{h} = {w * h} pixels > max_pixels={config.max_pixels}")
        try:
            if fmt in ("JPEG", "MPO") and im.mode in ("RGB", "L", "CMYK", "YCbCr"):
                # decode at 1/2, 1/4 or 1/8 scale when the target is that much smaller
                short = min(w, h)
                factor = max(1, short // max(config.size, 1))
                if factor >= 2:
                    im.draft(im.mode, (max(1, w // factor), max(1, h // factor)))
            if fmt == "GIF":
                im.seek(0)
            im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageReject("dead", "decompression_bomb", str(e)) from None
        except Exception as e:  # noqa: BLE001 - truncated, corrupt, bad header
            raise ImageReject("dead", "corrupt_image", f"{type(e).__name__}: {e}") from None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block does not make the pixels bad
        pass
    rgb = _to_rgb(im, config.background)
    cw, ch = rgb.size
    short, long = min(w, h), max(w, h)  # rules use the stored size, not the draft size
    if short < config.min_side:
        raise ImageReject("filtered", "too_small", f"{w}x{h}")
    if long > config.max_side:
        raise ImageReject("filtered", "too_large", f"{w}x{h}")
    if long / short > config.max_aspect:
        raise ImageReject("filtered", "aspect_ratio", f"{w}x{h}")
    grey = rgb.convert("L")
    thumb = grey.resize((9, 9), Image.BILINEAR)
    if float(np.asarray(grey.resize((64, 64), Image.BILINEAR), dtype=np.float32).std()) < config.min_std:
        raise ImageReject("filtered", "blank_image", "near-uniform pixels")
    out = _resize(rgb, config)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=config.quality)
    return {"jpeg": buf.getvalue(), "width": out.size[0], "height": out.size[1], "format": fmt,
            "orig_width": w, "orig_height": h, "phash": dhash128(thumb)}
