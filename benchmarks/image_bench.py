"""Images per second per core: validate + resize + encode, against a plain Pillow loop.

    python -m benchmarks.image_bench [--n 40]

Both sides take the same 1-2 megapixel JPEGs (built from the sample corpus's
photos, upscaled) to 256 px JPEGs on one core:

* ours: :func:`transforms.image.process.process_image` (format and size checks,
  decompression-bomb guard, JPEG draft-mode decoding, EXIF orientation, mode
  conversion, blank/aspect filters, perceptual hash, resize, crop, encode);
* plain loop: ``Image.open(...).convert("RGB").resize((256, 256)).save(...)``.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def make_jpegs(n: int):
    from PIL import Image

    sources = sorted(glob.glob(os.path.join(ROOT, "data", "sample", "images", "train", "*", "*.jpg")))
    photos = []
    for path in sources:
        try:
            im = Image.open(path)
            im.load()
            grey_std = float(__import__("numpy").asarray(im.convert("L")).std())
            if min(im.size) >= 150 and im.mode == "RGB" and grey_std > 10:
                photos.append(im)
        except Exception:  # noqa: BLE001 - the corpus holds broken files on purpose
            continue
    sizes = [(1280, 960), (1600, 1200), (1024, 1024), (1440, 1080)]  # 1.0 to 1.9 megapixels
    out = []
    for i in range(n):
        im = photos[i % len(photos)].resize(sizes[i % len(sizes)])
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def plain_loop(data: bytes) -> bytes:
    from PIL import Image

    im = Image.open(io.BytesIO(data)).convert("RGB").resize((256, 256))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main(argv=None) -> None:
    from transforms.image.process import ImageConfig, process_image

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args(argv)
    jpegs = make_jpegs(args.n)
    config = ImageConfig(size=256)
    process_image(jpegs[0], config)
    t0 = time.perf_counter()
    for data in jpegs:
        process_image(data, config)
    ours = len(jpegs) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for data in jpegs:
        plain_loop(data)
    plain = len(jpegs) / (time.perf_counter() - t0)
    from PIL import Image

    megapixels = sum(w * h for w, h in (Image.open(io.BytesIO(d)).size for d in jpegs)) / len(jpegs) / 1e6
    print(f"# images: {len(jpegs)} JPEGs of {megapixels:.1f} megapixels on average -> 256 px, one core")
    print(f"ours (validate + resize + encode, draft decoding)   {ours:8.1f} images/s")
    print(f"plain Pillow open/convert/resize/save loop          {plain:8.1f} images/s")
    print(f"ratio {ours / plain:.1f}x (target 3x)")


if __name__ == "__main__":
    main()
