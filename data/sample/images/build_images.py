#!/usr/bin/env python3
"""Regenerate the small embedded image corpus in ``data/sample/images/`` and
the image-caption corpus in ``data/sample/multimodal/``.

Provenance
----------
Every picture is derived from nine sample images shipped inside the
scikit-image 0.26.0 wheel (``skimage/data/``).  Only images whose docstring in
``skimage/data/_fetchers.py`` says they are public domain or CC0 are used; the
table ``SOURCES`` below records, for each one, its origin, author, licence and
the exact sentence of the wheel that states it, plus the sha256 of the file we
built from (the build refuses other bytes, so that the output is reproducible).
The captions, the synthetic images (near-blank, decompression bomb, text file)
and everything else written by this script are released under CC0-1.0.

Outputs (relative to ``--out``, default: the ``data/sample`` folder)
-------------------------------------------------------------------
``images/train/<class>/*``
    ImageNet-style folder, classes ``animal``, ``object``, ``person``,
    ``space``.  Mostly JPEG (quality 85, long side <= 320 px), plus PNG, WebP,
    GIF, BMP and TIFF, and deliberate defects: exact duplicates, near
    duplicates, an EXIF-rotated JPEG, palette / LA / 16-bit / CMYK images,
    a near-blank image, a 20x20 image, a 600x40 strip, a truncated JPEG, a
    zero-byte ``.jpg``, a text file named ``.jpg`` and a PNG decompression
    bomb (30000x30000, 1 bit, ~110 KB on disk).  See ``TRAIN`` below.
``images/manifest.json``
    one record per file: path, class, source, sha256, bytes, format, mode,
    size, the defect tags, the expected reader behaviour and the file it
    duplicates.
``multimodal/coco/``
    ``captions.json`` (COCO captions format) + ``images/``; one image entry
    whose file is missing, one image with two captions.
``multimodal/laion/``
    ``pairs.tsv`` and ``pairs.parquet`` (columns ``url``, ``caption``; ``url``
    is the image path relative to ``multimodal/laion/``, e.g.
    ``images/000003.jpg``; never an http URL) + ``images/``.
``multimodal/webdataset/shard-00000{0,1}.tar``
    WebDataset shards (``<key>.jpg`` + ``<key>.txt`` or ``<key>.json``); the
    second one also holds hostile members (``../escape.txt``,
    ``/etc/evil.txt``, a symlink) and a truncated image.
``multimodal/manifest.json``
    every sample and its caption defects.

Each caption set (coco, laion, webdataset) has its own caption defects: an
e-mail address or phone number (fictional: ``example.com`` domains and
``555-01xx`` numbers), one empty caption, one punctuation-only caption and
one mojibake caption (UTF-8 read as cp1252).

Determinism: no wall clock, every random choice comes from
``random.Random(f"{SEED}/<file name>")`` or ``numpy.random.default_rng(SEED)``,
files are written in sorted order, tar members have ``mtime=MTIME``,
uid/gid 0, empty user/group names and fixed modes.  With the same Pillow
(12.3.0: libjpeg-turbo 6.2 ABI, libwebp 1.6.0, zlib 1.2.13, libtiff 4.7.1),
numpy and pyarrow versions, two builds give byte-identical files.

Usage::

    # extract the originals from the scikit-image wheel (pip download only)
    pip download scikit-image==0.26.0 --no-deps -d /tmp/wheels
    python data/sample/images/build_images.py --src /tmp/imgsrc \
        --from_wheel /tmp/wheels/scikit_image-0.26.0-*.whl
    # or, with the originals already in /tmp/imgsrc:
    python data/sample/images/build_images.py --src /tmp/imgsrc
    python data/sample/images/build_images.py --check_only
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import random
import re
import shutil
import sys
import tarfile
import zipfile
import zlib
import struct

import numpy as np
from PIL import ExifTags, Image, ImageEnhance, ImageOps, UnidentifiedImageError

SEED = 20240601
MTIME = 1717200000  # 2024-06-01T00:00:00Z, used for every tar member
LONG = 320  # long side of the ordinary training images
MM_LONG = 256  # long side of the multimodal images
JPEG_Q = 85
MAX_TOTAL_BYTES = 3_000_000
CLASSES = ("animal", "object", "person", "space")

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.dirname(HERE)  # data/sample

# --------------------------------------------------------------------------
# Source images: all from the scikit-image 0.26.0 wheel, skimage/data/.
# "verified" quotes skimage/data/_fetchers.py in that wheel.
# --------------------------------------------------------------------------
SOURCES = {
    "astronaut": dict(
        file="astronaut.png",
        sha256="88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        subject="astronaut Eileen Collins in an orange flight suit (NASA portrait)",
        origin="NASA Great Images database, https://flic.kr/p/r9qvLn",
        author="NASA",
        licence="Public domain (US government work)",
        spdx="LicenseRef-PublicDomain",
        verified="skimage.data.astronaut docstring: 'No known copyright "
        "restrictions, released into the public domain.'",
    ),
    "camera": dict(
        file="camera.png",
        sha256="b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
        subject="man filming with a camera on a tripod (grayscale)",
        origin="scikit-image sample data (replaced in 0.18, "
        "https://github.com/scikit-image/scikit-image/issues/3927)",
        author="Lav Varshney",
        licence="CC0 1.0",
        spdx="CC0-1.0",
        verified="skimage.data.camera docstring: 'No copyright restrictions. "
        "CC0 by the photographer (Lav Varshney).'",
    ),
    "chelsea": dict(
        file="chelsea.png",
        sha256="596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
        subject="close-up of a tabby cat (Chelsea)",
        origin="scikit-image sample data",
        author="Stefan van der Walt",
        licence="CC0 1.0",
        spdx="CC0-1.0",
        verified="skimage.data.chelsea docstring: 'No copyright restrictions.  "
        "CC0 by the photographer (Stefan van der Walt).'",
    ),
    "horse": dict(
        file="horse.png",
        sha256="c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455",
        subject="black silhouette of a horse on white",
        origin="openclipart, http://openclipart.org/detail/158377/horse-by-marauder",
        author="Andreas Preuss (marauder)",
        licence="CC0 1.0",
        spdx="CC0-1.0",
        verified="skimage.data.horse docstring: 'No copyright restrictions. "
        "CC0 given by owner (Andreas Preuss (marauder)).'",
    ),
    "coffee": dict(
        file="coffee.png",
        sha256="cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
        subject="cup of espresso on a red saucer on a wooden table",
        origin="scikit-image sample data",
        author="Rachel Michetti",
        licence="CC0 1.0",
        spdx="CC0-1.0",
        verified="skimage.data.coffee docstring: 'No copyright restrictions.  "
        "CC0 by the photographer (Rachel Michetti).'",
    ),
    "clock": dict(
        file="clock_motion.png",
        sha256="f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955",
        subject="motion-blurred wall clock (grayscale)",
        origin="scikit-image sample data",
        author="Stefan van der Walt",
        licence="Public domain (dedicated by the photographer)",
        spdx="LicenseRef-PublicDomain",
        verified="skimage.data.clock docstring: 'Released into the public "
        "domain by the photographer (Stefan van der Walt).'",
    ),
    "brick": dict(
        file="brick.png",
        sha256="7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
        subject="brick wall texture (grayscale, perspective-corrected)",
        origin="CC0Textures Bricks25, https://cc0textures.com/view.php?tex=Bricks25",
        author="CC0Textures",
        licence="CC0 1.0",
        spdx="CC0-1.0",
        verified="skimage.data.brick docstring: 'downloaded from CC0Textures "
        "... and licensed under the Creative Commons CC0 License.'",
    ),
    "rocket": dict(
        file="rocket.jpg",
        sha256="c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
        subject="Falcon 9 on SpaceX Launch Complex 40 at dusk",
        origin="SpaceX Photos, https://www.flickr.com/photos/spacexphotos/16511594820/",
        author="SpaceX",
        licence="Public domain (released by SpaceX)",
        spdx="LicenseRef-PublicDomain",
        verified="skimage.data.rocket docstring: 'The image was captured by "
        "SpaceX and released in the public domain.'",
    ),
    "hubble": dict(
        file="hubble_deep_field.jpg",
        sha256="3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
        subject="Hubble eXtreme Deep Field, galaxies on black",
        origin="HubbleSite news release 2012-37, "
        "http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/",
        author="NASA",
        licence="Public domain (NASA media guidelines)",
        spdx="LicenseRef-PublicDomain",
        verified="skimage.data.hubble_deep_field docstring: 'The image was "
        "captured by NASA and may be freely used in the public domain.'",
    ),
}

# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rng_for(name: str) -> random.Random:
    return random.Random(f"{SEED}/{name}")


def load_sources(src: str) -> dict:
    out = {}
    for name, meta in SOURCES.items():
        path = os.path.join(src, meta["file"])
        with open(path, "rb") as f:
            data = f.read()
        if sha256(data) != meta["sha256"]:
            sys.exit(f"{path}: sha256 {sha256(data)} != expected {meta['sha256']}; "
                     "extract the originals from scikit-image 0.26.0 (--from_wheel)")
        im = Image.open(io.BytesIO(data))
        im.load()
        if name == "horse":  # opaque RGBA clip art: black horse on white
            im = im.convert("RGB")
        elif im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        out[name] = im
    return out


def fit(im: Image.Image, long_side: int) -> Image.Image:
    w, h = im.size
    s = long_side / max(w, h)
    return im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def crop_frac(im: Image.Image, box) -> Image.Image:
    w, h = im.size
    l, t, r, b = box
    return im.crop((round(l * w), round(t * h), round(r * w), round(b * h)))


def rand_crop(im: Image.Image, name: str, lo=0.6, hi=0.85) -> Image.Image:
    """Seeded random crop keeping lo..hi of each side."""
    rng = rng_for(name)
    w, h = im.size
    cw, ch = round(w * rng.uniform(lo, hi)), round(h * rng.uniform(lo, hi))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return im.crop((x, y, x + cw, y + ch))


def hflip(im):
    return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        kw.setdefault("quality", JPEG_Q)
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(im, **kw):
    return encode(im, "JPEG", **kw)


def bomb_png(width=30000, height=30000) -> bytes:
    """A valid 1-bit grayscale PNG of width x height zeros (~110 KB)."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0 + packed bits
    comp = zlib.compressobj(9, zlib.DEFLATED, 15, 9)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    idat = b"".join(parts)
    out = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", ihdr)]
    for i in range(0, len(idat), 1 << 16):  # 64 KiB IDAT chunks
        out.append(chunk(b"IDAT", idat[i:i + (1 << 16)]))
    out.append(chunk(b"IEND", b""))
    return b"".join(out)


# --------------------------------------------------------------------------
# Training images
# --------------------------------------------------------------------------


class Corpus:
    def __init__(self):
        self.files = {}  # relpath (under --out) -> bytes
        self.records = []  # manifest records for images/train
        self.symlinks = {}

    def add(self, rel, data, **meta):
        assert rel not in self.files, rel
        self.files[rel] = data
        if rel.startswith("images/train/"):
            meta.setdefault("defects", [])
            meta.setdefault("expect", "ok")
            self.records.append(dict(path=rel[len("images/"):], **meta))


def build_train(c: Corpus, S: dict):
    T = "images/train"

    def add(cls, fname, data, source, transform, **meta):
        c.add(f"{T}/{cls}/{fname}", data, cls=cls, source=source,
              transform=transform, **meta)

    # ---------------- animal: chelsea (cat) + horse (clip art) -------------
    cat = fit(S["chelsea"], LONG)
    cat_jpg = jpeg(cat)
    add("animal", "chelsea_000.jpg", cat_jpg, "chelsea", "resize long side 320")
    add("animal", "chelsea_001_crop.jpg",
        jpeg(fit(rand_crop(S["chelsea"], "chelsea_001"), LONG)),
        "chelsea", "seeded random crop 60-85%, resize 320")
    add("animal", "chelsea_002_flip.jpg", jpeg(hflip(cat)), "chelsea",
        "resize 320, horizontal flip")
    add("animal", "chelsea_003_crop.webp",
        encode(fit(rand_crop(S["chelsea"], "chelsea_003"), 256), "WEBP", quality=80),
        "chelsea", "seeded random crop, resize 256, WebP q80")
    add("animal", "chelsea_004_q40.jpg", jpeg(cat, quality=40), "chelsea",
        "same pixels as chelsea_000.jpg, JPEG quality 40",
        defects=["near_duplicate"], near_duplicate_of="train/animal/chelsea_000.jpg")
    # EXIF Orientation 6 = "rotate 90 CW to display": store the upright
    # picture rotated 90 CCW; exif_transpose() gives back the 320x213 image.
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    upright = fit(crop_frac(S["chelsea"], (0.05, 0.0, 0.95, 1.0)), LONG)
    add("animal", "chelsea_005_exif_rot6.jpg",
        jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif=exif), "chelsea",
        "crop, resize 320, pixels stored rotated 90 CCW, EXIF Orientation=6",
        defects=["exif_orientation"], display_size=list(upright.size))
    horse = fit(S["horse"], LONG)
    add("animal", "horse_000.jpg", jpeg(horse), "horse", "resize 320")
    # palette PNG with transparency: white background -> transparent index 0,
    # black-to-brown ramp for the silhouette and its anti-aliased edge.
    lum = np.asarray(horse.convert("L"))
    idx = np.where(lum > 235, 0, 1 + np.minimum(lum // 64, 3)).astype(np.uint8)
    pal = Image.fromarray(idx, "L").convert("P")
    pal.putpalette([255, 255, 255, 60, 35, 15, 110, 70, 35, 160, 110, 60, 210, 170, 120])
    add("animal", "horse_001_palette_alpha.png",
        encode(pal, "PNG", transparency=bytes([0, 255, 255, 255, 255]), optimize=True),
        "horse", "resize 320, 5-colour palette, tRNS: background index fully transparent",
        defects=["palette_transparency"])
    add("animal", "horse_002_flip.gif",
        encode(hflip(fit(S["horse"], 240)).convert("L").convert("P"), "GIF"),
        "horse", "resize 240, horizontal flip, GIF")
    add("animal", "horse_003_crop.jpg",
        jpeg(fit(crop_frac(S["horse"], (0.45, 0.0, 1.0, 0.6)), 256)),
        "horse", "crop head and neck, resize 256")
    trunc_full = jpeg(fit(rand_crop(S["chelsea"], "chelsea_truncated", 0.8, 0.95), LONG))
    add("animal", "chelsea_006_truncated.jpg", trunc_full[: len(trunc_full) // 2],
        "chelsea", "JPEG cut to its first half (header intact)",
        defects=["truncated"], expect="truncated")
    # exact duplicate in the wrong class (see object/cat_dup.jpg below)

    # ---------------- object: coffee, clock, brick -------------------------
    cof = fit(S["coffee"], LONG)
    cof_jpg = jpeg(cof)
    add("object", "coffee_000.jpg", cof_jpg, "coffee", "resize 320")
    add("object", "coffee_001_crop.jpg",
        jpeg(fit(rand_crop(S["coffee"], "coffee_001"), LONG)), "coffee",
        "seeded random crop, resize 320")
    add("object", "coffee_002_flip.png",
        encode(hflip(fit(S["coffee"], 160)), "PNG", optimize=True), "coffee",
        "resize 160, horizontal flip, PNG RGB")
    add("object", "coffee_003_cmyk.jpg",
        jpeg(fit(rand_crop(S["coffee"], "coffee_003"), 256).convert("CMYK")),
        "coffee", "seeded random crop, resize 256, converted to CMYK JPEG",
        defects=["cmyk"])
    cof95 = cof.resize((round(cof.width * 0.95), round(cof.height * 0.95)),
                       Image.Resampling.LANCZOS)
    add("object", "coffee_004_resized95.jpg", jpeg(cof95), "coffee",
        "coffee_000 pixels resized to 95%",
        defects=["near_duplicate"], near_duplicate_of="train/object/coffee_000.jpg")
    clock = fit(S["clock"], LONG)
    add("object", "clock_000.jpg", jpeg(clock), "clock", "resize 320, grayscale JPEG")
    add("object", "clock_001.bmp", encode(fit(S["clock"], 192), "BMP"), "clock",
        "resize 192, 8-bit grayscale BMP")
    la = fit(S["clock"], 200)
    yy, xx = np.mgrid[0:la.height, 0:la.width]
    r = np.hypot((xx - la.width / 2) / (la.width / 2), (yy - la.height / 2) / (la.height / 2))
    alpha = Image.fromarray(np.clip(255 * (1.3 - r), 0, 255).astype(np.uint8), "L")
    la = Image.merge("LA", (la, alpha))
    add("object", "clock_002_la.png", encode(la, "PNG", optimize=True), "clock",
        "resize 200, radial alpha vignette, LA (gray + alpha) PNG",
        defects=["grayscale_alpha"])
    add("object", "brick_000.jpg", jpeg(fit(S["brick"], LONG)), "brick",
        "resize 320, grayscale JPEG")
    strip = fit(S["brick"], 600).crop((0, 280, 600, 320))
    add("object", "brick_001_strip_600x40.jpg", jpeg(strip), "brick",
        "resize 600, crop a 600x40 strip", defects=["extreme_aspect_ratio"])
    noise = np.random.default_rng(SEED).integers(-2, 3, size=(224, 224))
    blank = Image.fromarray((128 + noise).astype(np.uint8), "L").convert("RGB")
    add("object", "near_blank_gray.jpg", jpeg(blank), None,
        "synthetic: uniform gray 128 with +-2 noise, 224x224", defects=["near_blank"])
    add("object", "zero_bytes.jpg", b"", None, "synthetic: empty file",
        defects=["empty_file"], expect="unidentified")
    add("object", "cat_dup.jpg", cat_jpg, "chelsea",
        "byte-identical copy of train/animal/chelsea_000.jpg (mislabelled)",
        defects=["exact_duplicate", "wrong_class"],
        duplicate_of="train/animal/chelsea_000.jpg")

    # ---------------- person: astronaut, camera ----------------------------
    ast = fit(S["astronaut"], LONG)
    ast_jpg = jpeg(ast)
    add("person", "astronaut_000.jpg", ast_jpg, "astronaut", "resize 320")
    add("person", "astronaut_001_face.jpg",
        jpeg(fit(crop_frac(S["astronaut"], (0.1, 0.0, 0.65, 0.55)), 256)),
        "astronaut", "crop head and shoulders, resize 256")
    add("person", "astronaut_002_flip.jpg", jpeg(hflip(ast)), "astronaut",
        "resize 320, horizontal flip")
    add("person", "astronaut_003_crop.webp",
        encode(fit(rand_crop(S["astronaut"], "astronaut_003"), 256), "WEBP", quality=80),
        "astronaut", "seeded random crop, resize 256, WebP q80")
    add("person", "astronaut_004_bright.jpg",
        jpeg(ImageEnhance.Brightness(ast).enhance(1.06)), "astronaut",
        "astronaut_000 pixels brightened by 6%",
        defects=["near_duplicate"], near_duplicate_of="train/person/astronaut_000.jpg")
    cam = fit(S["camera"], LONG)
    add("person", "camera_000.jpg", jpeg(cam), "camera", "resize 320, grayscale JPEG")
    add("person", "camera_001_q60.jpg", jpeg(cam, quality=60), "camera",
        "same pixels as camera_000.jpg, JPEG quality 60",
        defects=["near_duplicate"], near_duplicate_of="train/person/camera_000.jpg")
    c16 = np.asarray(fit(S["camera"], 160), dtype=np.uint16) * 257
    add("person", "camera_002_16bit.png",
        encode(Image.fromarray(c16), "PNG", optimize=True), "camera",
        "resize 160, scaled to 16 bits (v*257), mode I;16 PNG",
        defects=["16bit_grayscale"])
    add("person", "camera_003_crop.tif",
        encode(fit(rand_crop(S["camera"], "camera_003"), 192), "TIFF",
               compression="tiff_lzw"), "camera",
        "seeded random crop, resize 192, LZW TIFF")
    add("person", "camera_004_crop.png",
        encode(fit(crop_frac(S["camera"], (0.05, 0.05, 0.8, 0.95)), 192), "PNG",
               optimize=True), "camera", "crop man and tripod, resize 192, grayscale PNG")
    add("person", "not_an_image.jpg",
        b"This is a plain text file, not a JPEG.\n"
        b"It exists to test that readers reject files by content, not by name.\n",
        None, "synthetic: ASCII text with a .jpg name",
        defects=["not_an_image"], expect="unidentified")

    # ---------------- space: rocket, hubble --------------------------------
    rock = fit(S["rocket"], LONG)
    rock_jpg = jpeg(rock)
    add("space", "rocket_000.jpg", rock_jpg, "rocket", "resize 320")
    add("space", "rocket_001_crop.jpg",
        jpeg(fit(crop_frac(S["rocket"], (0.3, 0.2, 0.75, 1.0)), 256)), "rocket",
        "crop rocket and pad, resize 256")
    add("space", "rocket_002_flip.webp",
        encode(hflip(fit(S["rocket"], 256)), "WEBP", quality=80), "rocket",
        "resize 256, horizontal flip, WebP q80")
    add("space", "launch_pad.jpg", rock_jpg, "rocket",
        "byte-identical copy of train/space/rocket_000.jpg",
        defects=["exact_duplicate"], duplicate_of="train/space/rocket_000.jpg")
    hub = S["hubble"]
    add("space", "hubble_000.jpg", jpeg(fit(hub, LONG)), "hubble", "resize 320")
    for i in (1, 2):
        add("space", f"hubble_00{i}_crop.jpg",
            jpeg(fit(rand_crop(hub, f"hubble_00{i}", 0.3, 0.5), LONG)), "hubble",
            "seeded random crop 30-50%, resize 320")
    add("space", "hubble_003_crop.png",
        encode(fit(rand_crop(hub, "hubble_003", 0.2, 0.3), 128), "PNG", optimize=True),
        "hubble", "seeded random crop 20-30%, resize 128, PNG RGB")
    add("space", "hubble_004_flip.jpg",
        jpeg(hflip(fit(rand_crop(hub, "hubble_004", 0.5, 0.7), LONG))), "hubble",
        "seeded random crop, resize 320, horizontal flip")
    add("space", "hubble_005_tiny_20x20.jpg",
        jpeg(crop_frac(hub, (0.4, 0.4, 0.6, 0.6)).resize((20, 20), Image.Resampling.LANCZOS)),
        "hubble", "centre crop resized to 20x20", defects=["tiny"])
    add("space", "eileen_collins.jpg", ast_jpg, "astronaut",
        "byte-identical copy of train/person/astronaut_000.jpg (cross-class)",
        defects=["exact_duplicate", "ambiguous_class"],
        duplicate_of="train/person/astronaut_000.jpg")
    add("space", "deep_field_30000x30000.png", bomb_png(), None,
        "synthetic: valid PNG header 30000x30000 1-bit gray, all-zero IDAT",
        defects=["decompression_bomb"], expect="bomb")


# --------------------------------------------------------------------------
# Multimodal
# --------------------------------------------------------------------------
# view name -> (source, crop box as fractions or None, hflip)
VIEWS = {
    "astronaut": ("astronaut", None, False),
    "astronaut_face": ("astronaut", (0.1, 0.0, 0.65, 0.55), False),
    "camera": ("camera", None, False),
    "camera_man": ("camera", (0.1, 0.05, 0.7, 0.75), False),
    "chelsea": ("chelsea", None, False),
    "chelsea_eyes": ("chelsea", (0.25, 0.1, 0.95, 0.75), False),
    "horse": ("horse", None, False),
    "horse_flip": ("horse", None, True),
    "coffee": ("coffee", None, False),
    "coffee_cup": ("coffee", (0.25, 0.0, 0.8, 0.6), False),
    "clock": ("clock", None, False),
    "brick": ("brick", None, False),
    "rocket": ("rocket", None, False),
    "rocket_pad": ("rocket", (0.3, 0.2, 0.75, 1.0), False),
    "hubble": ("hubble", None, False),
    "hubble_crop": ("hubble", (0.55, 0.1, 0.85, 0.4), False),
}

EMAIL, PHONE, EMPTY, PUNCT, MOJI = "pii_email", "pii_phone", "empty", "punctuation_only", "mojibake"

# (file, view, [(caption, [defects]), ...]); file None = image entry without a file
COCO = [
    ("000001.jpg", "astronaut", [
        ("A smiling astronaut in an orange spacesuit sits beside her helmet in front of an American flag.", []),
        ("Portrait of a woman in an orange flight suit with a model space shuttle behind her.", [])]),
    ("000002.jpg", "chelsea", [("Close-up of a tabby cat with green eyes and long white whiskers.", [])]),
    ("000003.jpg", "coffee", [("A cafÃ© table with a cup of espresso on a red saucer.", [MOJI])]),
    ("000004.jpg", "rocket", [("A rocket stands on its launch pad at dusk between tall lightning towers.", [])]),
    ("000005.jpg", "hubble", [("A deep space image packed with small, colourful galaxies.", [])]),
    ("000006.jpg", "camera", [("A black and white photo of a man in a dark coat looking through a camera on a tripod.", [])]),
    ("000007.jpg", "horse", [("The black silhouette of a horse standing side-on against a plain white background.", [])]),
    ("000008.jpg", "clock", [("A motion-blurred photo of a round wall clock. Contact jane.doe@example.com for the original.", [EMAIL])]),
    ("000009.jpg", "brick", [("", [EMPTY])]),
    ("000010.jpg", "astronaut_face", [("?!... -- !!", [PUNCT])]),
    ("000011.jpg", "rocket_pad", [("A white rocket lit by floodlights. Prints available, call 555-0142.", [PHONE])]),
    ("000012.jpg", "chelsea_eyes", [("A tabby cat's face seen very close, with bright yellow-green eyes.", [])]),
    ("000013.jpg", None, [("A cup of coffee on a wooden table.", ["missing_file"])]),
]

LAION = [
    ("000000.jpg", "coffee_cup", "Espresso with a thick golden crema in a red and white cup.", []),
    ("000001.jpg", "hubble_crop", "Faint galaxies and a few bright stars scattered across a black sky.", []),
    ("000002.jpg", "camera_man", "A man in a black coat holds a camera on a tripod to his eye.", []),
    ("000003.jpg", "horse_flip", "A black horse silhouette facing left on a white background.", []),
    ("000004.jpg", "astronaut", "Astronaut portrait in an orange suit. Order a poster at +1-202-555-0173.", [PHONE]),
    ("000005.jpg", "rocket", "Rocket on the pad at dusk - send questions to launch.photos@example.org", [EMAIL]),
    ("000006.jpg", "chelsea", "A tabby catâ€™s face with green eyes and white whiskers.", [MOJI]),
    ("000007.jpg", "brick", "", [EMPTY]),
    ("000008.jpg", "clock", "*** ... ***", [PUNCT]),
    ("000009.jpg", "coffee", "A cup of coffee and a small spoon on a red saucer on a wooden table.", []),
]

# (key, view or special, caption, caption member ext, defects)
WDS = [
    [
        ("000000", "astronaut_face", "A smiling astronaut with short brown hair in an orange spacesuit.", "txt", []),
        ("000001", "chelsea", "A close-up photo of a cat's face with green eyes.", "json", []),
        ("000002", "coffee", "Espresso in a red cup on a matching saucer with a small spoon.", "txt", []),
        ("000003", "rocket_pad", "A rocket on a launch pad under a deep blue evening sky.", "json", []),
        ("000004", "hubble", "Hubble deep field full of distant galaxies. Questions: astro-team@example.net", "txt", [EMAIL]),
        ("000005", "camera", "", "txt", [EMPTY]),
    ],
    [
        ("000100", "horse", "A horse drawn as a solid black silhouette.", "txt", []),
        ("000101", "clock", "A blurry clock on a gray wall â€” taken while the camera moved.", "json", [MOJI]),
        ("000102", "brick", "!!!???", "txt", [PUNCT]),
        ("000103", "astronaut", "An astronaut with her helmet and a model shuttle. Call (555) 010-0199.", "txt", [PHONE]),
        ("000104", "@symlink", "A rocket on the launch pad.", "txt", ["symlink_image"]),
        ("000105", "@corrupt", "Colourful galaxies against black space.", "txt", ["corrupt_image"]),
    ],
]
HOSTILE = [("../escape.txt", "path_traversal"), ("/etc/evil.txt", "absolute_path")]


def view_jpeg(S, view, long_side=MM_LONG, quality=JPEG_Q):
    src, box, flip = VIEWS[view]
    im = S[src]
    if box is not None:
        im = crop_frac(im, box)
    im = fit(im, long_side)
    if flip:
        im = hflip(im)
    return im, jpeg(im, quality=quality)


def make_tar(members) -> bytes:
    """members: list of (name, bytes | None, linkname | None); sorted by name."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data, link in sorted(members, key=lambda m: m[0]):
            ti = tarfile.TarInfo(name)  # names are kept verbatim (no lstrip)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "", ""
            if link is not None:
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, link, 0o777
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def build_multimodal(c: Corpus, S: dict):
    M = "multimodal"
    man = {"coco": [], "laion": [], "webdataset": []}

    # COCO
    images, anns, aid = [], [], 0
    for i, (fname, view, caps) in enumerate(COCO, start=1):
        if view is None:
            w, h = MM_LONG, 171
        else:
            im, data = view_jpeg(S, view)
            w, h = im.size
            c.add(f"{M}/coco/images/{fname}", data)
        images.append({"id": i, "file_name": fname, "width": w, "height": h})
        for cap, defects in caps:
            aid += 1
            anns.append({"id": aid, "image_id": i, "caption": cap})
            man["coco"].append({"annotation_id": aid, "image_id": i, "file": f"coco/images/{fname}",
                                "view": view, "caption": cap,
                                "defects": defects + (["two_captions"] if len(caps) > 1 else [])})
    coco = {"info": {"description": "beamtrain sample captions (COCO format)",
                     "version": "1.0", "year": 2024},
            "licenses": [{"id": 1, "name": "CC0-1.0 / public domain, see data/sample/images/README.md"}],
            "images": images, "annotations": anns}
    c.add(f"{M}/coco/captions.json",
          (json.dumps(coco, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))

    # LAION-style pairs
    rows = []
    for fname, view, cap, defects in LAION:
        _, data = view_jpeg(S, view)
        c.add(f"{M}/laion/images/{fname}", data)
        rows.append((f"images/{fname}", cap))
        man["laion"].append({"url": f"images/{fname}", "view": view, "caption": cap,
                             "defects": defects})
    for _, cap in rows:
        assert "\t" not in cap and "\n" not in cap and '"' not in cap
    tsv = "url\tcaption\n" + "".join(f"{u}\t{cap}\n" for u, cap in rows)
    c.add(f"{M}/laion/pairs.tsv", tsv.encode("utf-8"))
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.table({"url": [u for u, _ in rows], "caption": [cap for _, cap in rows]})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    c.add(f"{M}/laion/pairs.parquet", buf.getvalue())

    # WebDataset shards
    for shard, samples in enumerate(WDS):
        members = []
        for key, view, cap, ext, defects in samples:
            if view == "@symlink":
                members.append((f"{key}.jpg", None, "/etc/passwd"))
            elif view == "@corrupt":
                _, data = view_jpeg(S, "hubble_crop")
                members.append((f"{key}.jpg", data[: len(data) // 3], None))
            else:
                members.append((f"{key}.jpg", view_jpeg(S, view)[1], None))
            body = cap if ext == "txt" else json.dumps({"caption": cap}, ensure_ascii=False)
            members.append((f"{key}.{ext}", body.encode("utf-8"), None))
            man["webdataset"].append({"shard": f"shard-{shard:06d}.tar", "key": key,
                                      "view": view, "caption_member": ext, "caption": cap,
                                      "defects": defects})
        if shard == 1:
            for name, defect in HOSTILE:
                members.append((name, b"This member must never be extracted outside "
                                      b"the target folder.\n", None))
                man["webdataset"].append({"shard": "shard-000001.tar", "member": name,
                                          "defects": [defect]})
            man["webdataset"].append({"shard": "shard-000001.tar", "member": "000104.jpg",
                                      "linkname": "/etc/passwd", "defects": ["symlink"]})
        c.add(f"{M}/webdataset/shard-{shard:06d}.tar", make_tar(members))

    man["views"] = {k: {"source": v[0], "crop_box": v[1], "hflip": v[2]} for k, v in VIEWS.items()}
    c.add(f"{M}/manifest.json",
          (json.dumps(man, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    c.add(f"{M}/README.md", MM_README.encode("utf-8"))


MM_README = """\
# `data/sample/multimodal/`: image-caption pairs

Generated by `data/sample/images/build_images.py`; provenance, licences and the
list of deliberate defects are in `data/sample/images/README.md`.
`manifest.json` lists every sample, its source view and its defects.

* `coco/captions.json` + `coco/images/`: COCO captions format.
* `laion/pairs.tsv`, `laion/pairs.parquet` + `laion/images/`: columns `url`
  (path relative to `laion/`) and `caption`.
* `webdataset/shard-000000.tar`, `shard-000001.tar`: WebDataset shards; the
  second one contains hostile members (path traversal, absolute path, symlink)
  and a truncated JPEG.
"""

# --------------------------------------------------------------------------
# Manifest, writing, checking
# --------------------------------------------------------------------------


def describe(data: bytes):
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.format, im.mode, list(im.size)
    except Exception:
        return None, None, None


def finish_manifest(c: Corpus):
    for r in c.records:
        data = c.files["images/" + r["path"]]
        r["bytes"], r["sha256"] = len(data), sha256(data)
        if r["expect"] in ("ok", "truncated"):
            r["format"], r["mode"], r["size"] = describe(data)
        elif r["expect"] == "bomb":
            r["format"], r["mode"], r["size"] = "PNG", "1", [30000, 30000]
        else:
            r["format"], r["mode"], r["size"] = None, None, None
        if r["source"]:
            r["licence"] = SOURCES[r["source"]]["spdx"]
        else:
            r["licence"] = "CC0-1.0"
    c.records.sort(key=lambda r: r["path"])
    man = {"seed": SEED, "sources": SOURCES, "files": c.records}
    c.add("images/manifest.json",
          (json.dumps(man, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8"))


OWNED = ["images/train", "images/manifest.json", "multimodal/coco", "multimodal/laion",
         "multimodal/webdataset", "multimodal/manifest.json", "multimodal/README.md"]


def write(c: Corpus, out: str):
    for rel in OWNED:
        p = os.path.join(out, rel)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    for rel in sorted(c.files):
        p = os.path.join(out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(c.files[rel])


def _decode(data: bytes):
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.format, im.mode, im.size


def _expect_fail(fn, exc, what):
    try:
        fn()
    except exc as e:
        return re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", " <bytes>",
                      f"{type(e).__name__}: {e}")[:90]
    raise AssertionError(f"{what}: expected {exc.__name__}")


def check(out: str, verbose=True) -> None:
    log = print if verbose else (lambda *a: None)
    img_root = os.path.join(out, "images")
    man = json.load(open(os.path.join(img_root, "manifest.json"), encoding="utf-8"))
    on_disk = sorted(os.path.relpath(p, img_root)
                     for p in glob.glob(os.path.join(img_root, "train", "*", "*")))
    listed = sorted(r["path"] for r in man["files"])
    assert on_disk == listed, (set(on_disk) ^ set(listed))
    counts = {}
    for r in man["files"]:
        counts[r["cls"]] = counts.get(r["cls"], 0) + 1
        data = open(os.path.join(img_root, r["path"]), "rb").read()
        assert sha256(data) == r["sha256"], r["path"]
        exp = r["expect"]
        if exp == "ok":
            fmt, mode, size = _decode(data)
            assert [fmt, mode, list(size)] == [r["format"], r["mode"], r["size"]], r["path"]
            assert max(size) <= 640, r["path"]
            note = f"{fmt} {mode} {size[0]}x{size[1]}"
            if "exif_orientation" in r["defects"]:
                with Image.open(io.BytesIO(data)) as im:
                    assert im.getexif().get(ExifTags.Base.Orientation) == 6
                    t = ImageOps.exif_transpose(im)
                    assert list(t.size) == r["display_size"] == [size[1], size[0]]
                note += f" -> exif_transpose {t.size[0]}x{t.size[1]}"
        elif exp == "truncated":
            def load():
                with Image.open(io.BytesIO(data)) as im:
                    im.load()
            note = _expect_fail(load, OSError, r["path"])
            assert "truncated" in note, note
        elif exp == "bomb":
            assert len(data) < 200_000, len(data)
            note = _expect_fail(lambda: Image.open(io.BytesIO(data)),
                                Image.DecompressionBombError, r["path"])
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                with Image.open(io.BytesIO(data)) as im:  # header only, never load()
                    assert im.size == (30000, 30000) and im.mode == "1"
            finally:
                Image.MAX_IMAGE_PIXELS = old
        elif exp == "unidentified":
            note = _expect_fail(lambda: Image.open(io.BytesIO(data)),
                                UnidentifiedImageError, r["path"])
        else:
            raise AssertionError(exp)
        for key in ("duplicate_of",):
            if key in r:
                assert open(os.path.join(img_root, r[key]), "rb").read() == data, r["path"]
        log(f"  {r['path']:<45} {exp:<12} {note}")
    assert all(8 <= n <= 15 for n in counts.values()) and len(counts) == len(CLASSES), counts
    log(f"  classes: {counts}")

    mm = os.path.join(out, "multimodal")
    # COCO
    coco = json.load(open(os.path.join(mm, "coco", "captions.json"), encoding="utf-8"))
    ids = {im["id"]: im for im in coco["images"]}
    missing = []
    for im in coco["images"]:
        p = os.path.join(mm, "coco", "images", im["file_name"])
        if not os.path.exists(p):
            missing.append(im["file_name"])
            continue
        fmt, mode, size = _decode(open(p, "rb").read())
        assert list(size) == [im["width"], im["height"]], p
    assert missing == ["000013.jpg"], missing
    per_image = {}
    for a in coco["annotations"]:
        assert a["image_id"] in ids
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    assert sorted(per_image.values())[-1] == 2
    log(f"  coco: {len(coco['images'])} images ({len(missing)} missing), "
        f"{len(coco['annotations'])} annotations")
    # LAION
    lines = open(os.path.join(mm, "laion", "pairs.tsv"), encoding="utf-8").read().split("\n")
    assert lines[0] == "url\tcaption" and lines[-1] == ""
    rows = [tuple(line.split("\t")) for line in lines[1:-1]]
    import pyarrow.parquet as pq
    t = pq.read_table(os.path.join(mm, "laion", "pairs.parquet"))
    assert t.column_names == ["url", "caption"]
    assert list(zip(t["url"].to_pylist(), t["caption"].to_pylist())) == rows
    for u, _ in rows:
        assert not u.startswith(("http:", "https:", "/")) and ".." not in u
        _decode(open(os.path.join(mm, "laion", u), "rb").read())
    log(f"  laion: {len(rows)} pairs (tsv == parquet)")
    # WebDataset
    for shard in (0, 1):
        path = os.path.join(mm, "webdataset", f"shard-{shard:06d}.tar")
        with tarfile.open(path) as tf:
            mems = tf.getmembers()
            names = [m.name for m in mems]
            assert names == sorted(names), names
            bad = []
            for m in mems:
                assert m.mtime == MTIME and m.uid == 0 and m.gid == 0
                if m.issym():
                    bad.append(f"symlink {m.name} -> {m.linkname}")
                elif m.name.startswith("/") or ".." in m.name.split("/"):
                    bad.append(f"hostile name {m.name}")
                elif m.name.endswith(".jpg"):
                    data = tf.extractfile(m).read()
                    try:
                        _decode(data)
                    except OSError as e:
                        bad.append(f"corrupt {m.name} ({e})")
                elif m.name.endswith(".json"):
                    assert "caption" in json.loads(tf.extractfile(m).read())
        expect_bad = 0 if shard == 0 else 4
        assert len(bad) == expect_bad, bad
        log(f"  {os.path.basename(path)}: {len(names)} members; flagged: {bad}")
    total = 0
    for root in (img_root, mm):
        for dp, _, fns in os.walk(root):
            for fn in fns:
                total += os.path.getsize(os.path.join(dp, fn))
    assert total < MAX_TOTAL_BYTES, total
    log(f"  total size of images/ + multimodal/: {total} bytes")
    log("check OK")


def extract_wheel(whl: str, src: str):
    os.makedirs(src, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        for meta in SOURCES.values():
            with open(os.path.join(src, meta["file"]), "wb") as f:
                f.write(z.read("skimage/data/" + meta["file"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", help="folder with the original scikit-image sample files")
    ap.add_argument("--from_wheel", help="scikit-image wheel to extract the originals "
                    "from into --src first")
    ap.add_argument("--out", default=DEFAULT_OUT, help="data/sample folder (default: %(default)s)")
    ap.add_argument("--check_only", action="store_true", help="only check the files in --out")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if not a.check_only:
        if not a.src:
            ap.error("--src is required unless --check_only")
        if a.from_wheel:
            extract_wheel(a.from_wheel, a.src)
        S = load_sources(a.src)
        c = Corpus()
        build_train(c, S)
        build_multimodal(c, S)
        finish_manifest(c)
        write(c, a.out)
    check(a.out, verbose=not a.quiet)


if __name__ == "__main__":
    main()
