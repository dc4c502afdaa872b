"""Images and image-caption pairs: the Pillow core, the readers, both pipelines, bad input."""

import io
import json
import os
import shutil
import struct
import tarfile
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import assert_accounting, read_dead_letter, read_shards
from transforms.read import images as image_readers
from transforms.image.process import ImageConfig, ImageReject, dhash128, hamming, process_image


SECRET = b"PRIVATE-KEY-0f9e8d7c-never-to-be-read"


def pattern(seed, w=400, h=300):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 20 + 1, w // 20 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BICUBIC)


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_bomb(w=30000, h=30000):
    """A PNG whose header declares w x h pixels; a few KB on disk."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * (w + 1) * 4)) + chunk(b"IEND", b""))


def reject(data, config=ImageConfig()):
    with pytest.raises(ImageReject) as e:
        process_image(data, config)
    return e.value.kind, e.value.reason


# ---------------------------------------------------------------- the core

def test_good_jpeg_is_resized_and_reencoded():
    out = process_image(encode(pattern(1, 800, 600), "JPEG"))
    assert (out["width"], out["height"]) == (256, 256) and out["format"] == "JPEG"
    assert Image.open(io.BytesIO(out["jpeg"])).format == "JPEG"
    pad = process_image(encode(pattern(1, 800, 400), "PNG"), ImageConfig(resize="pad", size=128))
    assert (pad["width"], pad["height"]) == (128, 128)
    keep = process_image(encode(pattern(1, 800, 400), "PNG"), ImageConfig(resize="none", size=128))
    assert (keep["width"], keep["height"]) == (256, 128)


@pytest.mark.parametrize("data,expected", [
    (b"", ("dead", "empty_file")),
    (b"just some text, not an image", ("dead", "unidentified_image")),
    (encode(pattern(2), "JPEG")[:2500], ("dead", "corrupt_image")),
    (png_bomb(), ("dead", "decompression_bomb")),
    (encode(pattern(3), "PDF"), ("dead", "unidentified_image")),
    (encode(Image.new("RGB", (300, 300), (90, 90, 90)), "PNG"), ("filtered", "blank_image")),
    (encode(pattern(4, 20, 20), "PNG"), ("filtered", "too_small")),
    (encode(pattern(5, 900, 60), "PNG"), ("filtered", "aspect_ratio")),
], ids=["zero-byte", "text-as-jpg", "truncated-jpeg", "bomb", "pdf", "blank", "tiny", "aspect"])
def test_rejections(data, expected):
    assert reject(data) == expected


def test_unsupported_format_and_pixel_limit_are_configurable():
    assert reject(encode(pattern(6), "PNG"), ImageConfig(formats=("JPEG",))) == ("dead", "unsupported_format")
    assert reject(encode(pattern(6, 400, 300), "PNG"), ImageConfig(max_pixels=100_000)) == (
        "dead", "decompression_bomb")
    assert reject(b"x" * 10, ImageConfig(min_file_bytes=100)) == ("filtered", "file_too_small")


def test_modes_are_converted_to_rgb_correctly():
    base = pattern(7)
    for im in (base.convert("CMYK"), base.convert("LA"), base.convert("L"), base.convert("1")):
        fmt = "JPEG" if im.mode == "CMYK" else "PNG"
        out = process_image(encode(im, fmt))
        assert Image.open(io.BytesIO(out["jpeg"])).mode == "RGB"
    sixteen = Image.fromarray((np.arange(300 * 200).reshape(200, 300) * 3 % 65535).astype(np.uint16))
    decoded = Image.open(io.BytesIO(process_image(encode(sixteen, "PNG"))["jpeg"]))
    assert np.asarray(decoded).std() > 20  # scaled into 8 bits, not clipped to white
    # transparency composited on the background colour
    rgba = Image.new("RGBA", (200, 200), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (50, 50, 150, 150))
    out = Image.open(io.BytesIO(process_image(encode(rgba, "PNG"), ImageConfig(
        background=(0, 255, 0), size=200))["jpeg"]))
    corner, centre = out.getpixel((5, 5)), out.getpixel((100, 100))
    assert corner[1] > 200 and corner[0] < 60  # green background, not the hidden red
    assert centre[2] > 200
    palette = rgba.convert("P")
    palette.info["transparency"] = palette.getpixel((0, 0))
    assert process_image(encode(palette, "PNG", transparency=palette.getpixel((0, 0))))


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (400, 200), (255, 255, 255))
    im.paste((0, 0, 0), (0, 0, 200, 200))  # left half black
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = Image.open(io.BytesIO(process_image(encode(im, "JPEG", exif=exif),
                                              ImageConfig(resize="none", size=100))["jpeg"]))
    assert out.size == (100, 200)  # portrait after rotation
    top, bottom = np.asarray(out.convert("L"))[10, 50], np.asarray(out.convert("L"))[190, 50]
    assert top < 60 and bottom > 200  # the black half is now on top


def test_difference_hash_separates_near_and_far():
    a = process_image(encode(pattern(8), "JPEG", quality=95))["phash"]
    b = process_image(encode(pattern(8), "JPEG", quality=40))["phash"]
    c = process_image(encode(pattern(9), "JPEG", quality=95))["phash"]
    assert hamming(a, b) <= 6 < hamming(a, c)
    assert dhash128(Image.new("L", (9, 9), 5)) == 0


def test_webdataset_reader_skips_hostile_members(tmp_path):
    path = tmp_path / "shard.tar"
    with tarfile.open(path, "w") as tar:
        def add(name, data, **kw):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in kw.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data))
        add("a.jpg", encode(pattern(10), "JPEG"))
        add("a.txt", b"A caption.")
        add("../escape.txt", b"evil")
        add("/etc/evil.txt", b"evil")
        link = tarfile.TarInfo("link.jpg")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
        add("b.jpg", encode(pattern(11), "JPEG"))
        add("b.json", json.dumps({"caption": "Another caption."}).encode())
    items = list(image_readers.read_webdataset(str(path), "shard.tar", 1 << 20))
    records = [v for k, v in items if k == "record"]
    dead = [v for k, v in items if k == "dead"]
    assert [r["text"] for r in records] == ["A caption.", "Another caption."]
    assert sorted(d["reason"] for d in dead) == ["unsafe_tar_member"] * 3
    assert not (tmp_path.parent / "escape.txt").exists()


# ---------------------------------------------------------------- the pipelines

@pytest.fixture(scope="module")
def image_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    inp = root / "in"
    for cls in ("cats", "dogs"):
        (inp / cls).mkdir(parents=True)
        for i in range(5):
            pattern(hash((cls, i)) % 10_000).save(inp / cls / f"{cls}{i}.jpg", "JPEG", quality=90)
    shutil.copy(inp / "cats" / "cats0.jpg", inp / "dogs" / "same_bytes_as_cats0.jpg")
    pattern(hash(("cats", 1)) % 10_000).save(inp / "cats" / "cats1_requality.jpg", "JPEG", quality=55)
    bad = {
        "truncated.jpg": encode(pattern(20), "JPEG")[:3000],
        "random.jpg": bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
        "zero.jpg": b"",
        "bomb.png": png_bomb(),
    }
    for name, data in bad.items():
        (inp / "cats" / name).write_bytes(data)
    pattern(21).convert("CMYK").save(inp / "dogs" / "cmyk.jpg", "JPEG")
    Image.fromarray((np.arange(300 * 200).reshape(200, 300) * 5 % 65535).astype(np.uint16)).save(
        inp / "dogs" / "sixteen.png")
    pal = pattern(22).convert("P")
    pal.save(inp / "dogs" / "palette_transparent.png", transparency=3)
    exif = Image.Exif()
    exif[0x0112] = 6
    pattern(23, 400, 220).save(inp / "dogs" / "rotated.jpg", "JPEG", exif=exif)
    out = root / "out"
    from beam_pipelines import images

    stats = images.run(["--input", str(inp / "*" / "*"), "--output_dir", str(out),
                        "--image_size", "64", "--max_dead_letter_fraction", "1",
                        "--validation_fraction", "0.2"])
    return stats, out


def test_image_pipeline_accounts_for_every_file(image_corpus):
    stats, out = image_corpus
    assert_accounting(stats, out)
    assert (out / "COMPLETED").exists()
    assert stats["dead_letter"] == {"corrupt_image": 1, "decompression_bomb": 1, "empty_file": 1,
                                    "unidentified_image": 1}
    assert stats["duplicates"] == {"exact": 1, "near": 1}
    assert stats["records_out"] == 14  # 10 + cmyk, 16-bit, palette, rotated
    assert stats["info"]["format.JPEG"] >= 12 and stats["info"]["format.PNG"] == 2
    assert set(stats["histograms"]) >= {"image_long_side", "image_aspect_ratio_x100"}


def test_image_examples_follow_the_contract(image_corpus):
    import tensorflow as tf

    _, out = image_corpus
    labels = (out / "labels.txt").read_text().split()
    assert labels == ["cats", "dogs"]
    rows = read_shards(out)
    for row in rows:
        assert row["image/format"] == [b"jpeg"] and row["image/height"] == [64] == row["image/width"]
        assert row["image/class/label"][0] in (0, 1)
        decoded = tf.io.decode_jpeg(row["image/encoded"][0])
        assert tuple(decoded.shape) == (64, 64, 3)
    ids = [r["image/id"][0] for r in rows]
    assert len(ids) == len(set(ids))
    dead = read_dead_letter(out)
    assert all(os.path.exists(d["source"]) and d["reason"] for d in dead)


@pytest.fixture(scope="module")
def pair_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    coco = root / "coco"
    (coco / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(6):
        name = f"img{i}.jpg"
        pattern(100 + i).save(coco / "images" / name, "JPEG")
        images.append({"id": i, "file_name": name, "width": 400, "height": 300})
        annotations.append({"id": 10 + i, "image_id": i,
                            "caption": f"A photo of pattern number {i} with many coloured squares."})
    annotations.append({"id": 30, "image_id": 0, "caption": "Another caption for the first photo."})
    images.append({"id": 99, "file_name": "missing.jpg", "width": 1, "height": 1})
    annotations.append({"id": 31, "image_id": 99, "caption": "This image file does not exist."})
    annotations.append({"id": 32, "image_id": 1, "caption": "Mail me at someone@example.org please."})
    annotations.append({"id": 33, "image_id": 2, "caption": "!!"})
    annotations.append({"id": 34, "image_id": 3, "caption": "A cafÃ© table with cups."})
    (coco / "captions.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    laion = root / "laion"
    (laion / "images").mkdir(parents=True)
    pattern(200).save(laion / "images" / "x.jpg", "JPEG")
    (laion / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    private = root / "private"
    private.mkdir()
    (private / "id_rsa").write_bytes(SECRET + b"\n")
    os.symlink(private / "id_rsa", laion / "images" / "link.jpg")
    hostile = ["../private/id_rsa", str(private / "id_rsa"), "images/link.jpg", "/etc/passwd"]
    (laion / "pairs.tsv").write_text("url\tcaption\nimages/x.jpg\tA laion style caption here.\n"
                                     "https://example.com/remote.jpg\tRemote image, never fetched.\n"
                                     "images/broken.jpg\tThe image is corrupt but the caption is fine.\n"
                                     + "".join(f"{ref}\tA caption pointing outside the table.\n"
                                               for ref in hostile))
    wds = root / "wds"
    wds.mkdir()
    with tarfile.open(wds / "shard-000000.tar", "w") as tar:
        for key, data in [("s1.jpg", encode(pattern(300), "JPEG")), ("s1.txt", b"A webdataset caption."),
                          ("s1.JPG", encode(pattern(301), "JPEG")), ("../escape.txt", b"evil")]:
            info = tarfile.TarInfo(key)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = root / "out"
    from beam_pipelines import multimodal

    stats = multimodal.run(["--input", str(coco / "captions.json"), "--input", str(laion / "pairs.tsv"),
                            "--input", str(wds / "*.tar"), "--output_dir", str(out),
                            "--image_size", "64", "--max_dead_letter_fraction", "1",
                            "--caption_vocab_size", "300", "--validation_fraction", "0"])
    return stats, out


def test_multimodal_pairs_are_accounted_and_scrubbed(pair_corpus):
    stats, out = pair_corpus
    assert_accounting(stats, out)
    assert stats["dead_letter"] == {"unidentified_image": 1, "missing_image": 1,
                                    "remote_image_not_fetched": 1, "unsafe_tar_member": 1,
                                    "path_outside_root": 4, "duplicate_member": 1}
    # nothing outside the table's folder was read: no artefact carries a byte of it
    passwd = open("/etc/passwd", "rb").read(12) if os.path.exists("/etc/passwd") else SECRET
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET not in data and passwd not in data, path
    outside = [d for d in read_dead_letter(out) if d["reason"] == "path_outside_root"]
    assert len(outside) == 4 and all(d["raw_excerpt"] == "" and d["detail"] for d in outside)
    assert stats["filtered"] == {"too_short": 1}  # the "!!" caption, dropped once with its image
    assert stats["pii"] == {"EMAIL": 1}
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer" / "spm.model"))
    rows = read_shards(out)
    captions = {r["caption/text"][0].decode() for r in rows}
    assert "Mail me at <EMAIL> please." in captions
    assert "A café table with cups." in captions  # mojibake repaired
    for r in rows:
        ids = [t for t in r["caption/input_ids"] if t != 3]
        assert sp.decode(ids) == r["caption/text"][0].decode()
        assert r["image/height"] == [64]
    assert "image/class/label" not in rows[0]
