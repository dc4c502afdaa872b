"""The image pipeline: validate, deduplicate, resize and shard image folders.

Inputs are globs of image files; with ``--labels_from_dirs`` (default) the
parent folder names the class (the ImageNet layout), written as
``image/class/label`` with the class names in ``DIR/labels.txt``. Output
contract as the text pipeline's (DESIGN.md): shards, stats.json (formats,
resolution and aspect-ratio histograms, per-reason rejections, the
accounting identity), manifest.json, dead letter, COMPLETED last.

Local run::

    python -m beam_pipelines.images --input 'data/sample/images/train/*/*' \\
        --output_dir /tmp/beamtrain-images --image_size 256

Dataflow::

    python -m beam_pipelines.images --input 'gs://BUCKET/photos/*/*' \\
        --output_dir gs://BUCKET/datasets/images/v1 --runner DataflowRunner \\
        --project PROJECT --region us-central1 --temp_location gs://BUCKET/tmp \\
        --setup_file ./setup.py
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines.safety import OptionError
from beam_pipelines.text import (_flag, add_output_args, code_version, execute, main, prepare,
                                 run_settings, sum_counts_and_write_samples, validate_io,
                                 write_dead_letter, write_report)
from transforms import accounting
from transforms.read.images import LoadImages, ReadImages
from transforms.image.steps import ImageExactDedup, ImageNearDedup, ProcessImages, ToImageExamples
from transforms.image.process import ImageConfig
from transforms.write.finalize import Finalize
from transforms.write.shards import WriteShards, WriterConfig

__all__ = ["ImagePipelineOptions", "image_config", "validate", "build_pipeline", "run"]


class ImagePipelineOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        add_output_args(parser)
        parser.add_argument("--labels_from_dirs", type=_flag, nargs="?", const=True, default=True,
                            help="Label each image with its parent folder's name (ImageNet layout).")
        parser.add_argument("--image_size", type=int, default=256, help="Shorter side after resizing.")
        parser.add_argument("--image_root", default=None,
                            help="Captions tables: image paths must lie inside this folder "
                                 "(default: the table's own folder); others are dead-lettered unread.")
        parser.add_argument("--resize_mode", default="crop", choices=["crop", "pad", "none"],
                            help="crop: centre crop to a square; pad: pad to a square; none: keep aspect.")
        parser.add_argument("--jpeg_quality", type=int, default=90)
        parser.add_argument("--background", default="255,255,255",
                            help="R,G,B colour transparent images are composited on.")
        parser.add_argument("--min_side", type=int, default=32)
        parser.add_argument("--max_side", type=int, default=20000)
        parser.add_argument("--max_aspect", type=float, default=5.0,
                            help="Largest long-side / short-side ratio kept.")
        parser.add_argument("--min_std", type=float, default=3.0,
                            help="Images whose grey levels vary less than this are blank.")
        parser.add_argument("--min_file_bytes", type=int, default=0)
        parser.add_argument("--max_pixels", type=int, default=50_000_000,
                            help="Larger images are refused before decoding (decompression bombs).")
        parser.add_argument("--max_file_mb", type=int, default=64)
        parser.add_argument("--near_dup_hamming", type=int, default=None,
                            help="Near-duplicate images: dHash Hamming distance up to this (0-7); "
                                 "-1 turns it off. Default: 6 for images, off for image-caption "
                                 "pairs (several captions of one image are not duplicates).")
        parser.add_argument("--no_dedup", type=_flag, nargs="?", const=True, default=False)


def _background(value: str):
    parts = [int(p) for p in value.split(",")]
    if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"background must be R,G,B with values 0-255, got {value!r}")
    return tuple(parts)


def image_config(opts) -> ImageConfig:
    return ImageConfig(max_pixels=opts.max_pixels, min_side=opts.min_side, max_side=opts.max_side,
                       max_aspect=opts.max_aspect, min_std=opts.min_std,
                       min_file_bytes=opts.min_file_bytes, size=opts.image_size,
                       resize=opts.resize_mode, quality=opts.jpeg_quality,
                       background=_background(opts.background))


def validate(opts, kind: str = "images") -> Dict[str, Any]:
    inputs = validate_io(opts)
    if opts.image_root:
        try:
            FileSystems.get_filesystem(opts.image_root)
        except ValueError as e:
            raise OptionError(f"--image_root: {opts.image_root!r}: {e}") from e
        if "://" not in opts.image_root and not os.path.isdir(opts.image_root):
            raise OptionError(f"--image_root: {opts.image_root!r} is not a folder")
    near = opts.near_dup_hamming
    if near is None:
        near = 6 if kind == "images" else -1
    for name, value, ok in (
            ("image_size", opts.image_size, 8 <= opts.image_size <= 8192),
            ("jpeg_quality", opts.jpeg_quality, 1 <= opts.jpeg_quality <= 100),
            ("min_side", opts.min_side, opts.min_side >= 1),
            ("max_side", opts.max_side, opts.max_side >= opts.min_side),
            ("max_aspect", opts.max_aspect, opts.max_aspect >= 1.0),
            ("max_pixels", opts.max_pixels, opts.max_pixels >= 1),
            ("max_file_mb", opts.max_file_mb, opts.max_file_mb >= 1),
            ("near_dup_hamming", near, -1 <= near <= 7),
            ("validation_fraction", opts.validation_fraction, 0.0 <= opts.validation_fraction < 1.0),
            ("num_shards", opts.num_shards, opts.num_shards >= 0),
            ("target_shard_mb", opts.target_shard_mb, opts.target_shard_mb > 0),
            ("max_dead_letter_fraction", opts.max_dead_letter_fraction,
             0.0 <= opts.max_dead_letter_fraction <= 1.0)):
        if not ok:
            raise OptionError(f"--{name}: invalid value {value!r}")
    try:
        background = _background(opts.background)
    except ValueError as e:
        raise OptionError(f"--background: {e}") from e
    try:
        image_config(opts)
    except ValueError as e:
        raise OptionError(f"--image_*: {e}") from e
    return {
        "kind": kind,
        "inputs": inputs,
        "output_dir": opts.output_dir,
        "labels_from_dirs": bool(opts.labels_from_dirs) and kind == "images",
        "image": {"max_pixels": opts.max_pixels, "min_side": opts.min_side, "max_side": opts.max_side,
                  "max_aspect": opts.max_aspect, "min_std": opts.min_std,
                  "min_file_bytes": opts.min_file_bytes, "size": opts.image_size,
                  "resize": opts.resize_mode, "quality": opts.jpeg_quality,
                  "background": list(background)},
        "max_file_bytes": opts.max_file_mb << 20,
        "image_root": opts.image_root or None,
        "dedup": not opts.no_dedup,
        "near_dup_hamming": near,
        "writer": {"validation_fraction": opts.validation_fraction, "num_shards": opts.num_shards,
                   "target_shard_bytes": opts.target_shard_mb << 20,
                   "duplicate_ids": opts.duplicate_ids},
        "max_dead_letter_fraction": opts.max_dead_letter_fraction,
        "dataset_version": opts.dataset_version,
        **run_settings(opts),
    }


def _write_labels(names: List[str], output_dir: str) -> str:
    path = FileSystems.join(output_dir, "labels.txt")
    with FileSystems.create(path) as f:
        f.write("".join(f"{n}\n" for n in names).encode("utf-8"))
    return path


def build_pipeline(p: beam.Pipeline, config: Dict[str, Any], caption_steps=None) -> None:
    """The image pipeline; ``caption_steps(records, counts, dead) -> (records, tokenizer)`` for pairs."""
    out = config["output_dir"]
    counts, dead = [], []
    read = p | "Read" >> ReadImages(config["inputs"], "images" if config["kind"] == "images" else "pairs",
                                    config["labels_from_dirs"], config["max_file_bytes"],
                                    image_root=config.get("image_root"))
    records = read["records"]
    counts.append(read["counts"])
    dead.append(read["dead"])
    tokenizer = p | "NoTokenizer" >> beam.Create([])
    if config["kind"] == "pairs":
        loaded = records | "LoadImages" >> beam.ParDo(
            LoadImages(config["max_file_bytes"], image_root=config.get("image_root"))).with_outputs(
            accounting.DEAD, accounting.COUNTS, main="records")
        records = loaded.records
        counts.append(loaded[accounting.COUNTS])
        dead.append(loaded[accounting.DEAD])
        if caption_steps is not None:
            records, tokenizer = caption_steps(p, records, counts)
    image = dict(config["image"], background=tuple(config["image"]["background"]))
    processed = records | "Images" >> ProcessImages(ImageConfig(**image))
    records = processed.records
    counts.append(processed[accounting.COUNTS])
    dead.append(processed[accounting.DEAD])
    if config["dedup"]:
        exact = records | "ExactDedup" >> ImageExactDedup()
        records = exact.records
        counts.append(exact[accounting.COUNTS])
        if config["near_dup_hamming"] >= 0:
            near = records | "NearDedup" >> ImageNearDedup(config["near_dup_hamming"])
            records = near["records"]
            counts.append(near["counts"])
    if config.get("encode_captions") is not None:
        encoded = config["encode_captions"](records, tokenizer)
        records = encoded.records
        counts.append(encoded[accounting.COUNTS])

    labels = None
    extras = []
    if config["labels_from_dirs"]:
        labels = (records
                  | "Labels" >> beam.Map(lambda r: r.get("label", "unlabelled"))
                  | "DistinctLabels" >> beam.Distinct()
                  | "LabelList" >> beam.combiners.ToList()
                  | "Sorted" >> beam.Map(sorted))
        extras.append(labels | "WriteLabels" >> beam.Map(_write_labels, out))
    examples = records | "EncodeExamples" >> ToImageExamples(
        config["writer"]["validation_fraction"], labels)
    counts.append(examples[accounting.COUNTS])
    shards = examples.examples | "WriteShards" >> WriteShards(out, WriterConfig(**config["writer"]))
    counts.append(shards[accounting.COUNTS])
    dead.append(shards[accounting.DEAD])
    dead_files = write_dead_letter(dead, out, config.get("dead_letter_raw", False))
    total, samples_file = sum_counts_and_write_samples(counts, out)
    manifest_config = {k: v for k, v in config.items() if k != "encode_captions"}
    _ = p | "Finalize" >> Finalize(
        out, total, shards.shards, read["files"], dead_files, tokenizer, config=manifest_config,
        code_version=code_version(), max_dead_letter_fraction=config["max_dead_letter_fraction"],
        dataset_version=config.get("dataset_version"), extras=extras + [samples_file],
        on_success=write_report if config.get("report", True) else None)


def _validate_images(options: PipelineOptions) -> Dict[str, Any]:
    return validate(options.view_as(ImagePipelineOptions), "images")


def run(argv: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Parse options, run the pipeline, return stats.json's content (None when only submitted)."""
    options, config = prepare(argv, [ImagePipelineOptions], _validate_images)
    wait = options.view_as(ImagePipelineOptions).wait_until_finish
    return execute(options, config, build_pipeline, wait)


if __name__ == "__main__":
    main(run)
