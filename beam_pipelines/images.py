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

from typing import Any, Dict, List, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import outputs
from beam_pipelines.config import ImageRunConfig, image_config
from beam_pipelines.options import ImagePipelineOptions
from transforms import accounting
from transforms.image.steps import ImageExactDedup, ImageNearDedup, ProcessImages, ToImageExamples
from transforms.read.images import ReadImages
from transforms.write.finalize import Parts

__all__ = ["ImagePipelineOptions", "build_pipeline", "run", "read_images", "image_steps",
           "write_images"]


def _write_labels(names: List[str], output_dir: str) -> str:
    path = FileSystems.join(output_dir, "labels.txt")
    with FileSystems.create(path) as f:
        f.write("".join(f"{n}\n" for n in names).encode("utf-8"))
    return path


def read_images(p: beam.Pipeline, config: ImageRunConfig) -> Tuple[beam.PCollection, Parts]:
    """The image records of the inputs (image files, or caption tables for pairs)."""
    read = p | "Read" >> ReadImages(list(config.inputs), config.kind, config.labels_from_dirs,
                                    config.max_file_bytes, image_root=config.image_root)
    parts = Parts(files=read["files"])
    parts.add(read["counts"], read["dead"])
    return read["records"], parts


def image_steps(records: beam.PCollection, config: ImageRunConfig, parts: Parts) -> beam.PCollection:
    """Validate and resize, then drop exact and near duplicates (as configured)."""
    processed = records | "Images" >> ProcessImages(config.image.stage())
    records = processed.records
    parts.add(processed[accounting.COUNTS], processed[accounting.DEAD], processed[accounting.SAMPLES])
    if config.dedup:
        exact = records | "ExactDedup" >> ImageExactDedup()
        records = exact.records
        parts.add(exact[accounting.COUNTS])
        if config.near_dup_hamming >= 0:
            near = records | "NearDedup" >> ImageNearDedup(config.near_dup_hamming)
            records = near["records"]
            parts.add(near["counts"], samples=near["samples"])
    return records


def write_images(records: beam.PCollection, config: ImageRunConfig, parts: Parts) -> None:
    """labels.txt (labels from folders), then the outputs every pipeline writes."""
    labels = None
    if config.labels_from_dirs:
        labels = (records
                  | "Labels" >> beam.Map(lambda r: r.get("label", "unlabelled"))
                  | "DistinctLabels" >> beam.Distinct()
                  | "LabelList" >> beam.combiners.ToList()
                  | "Sorted" >> beam.Map(sorted))
        parts.extras.append(labels | "WriteLabels" >> beam.Map(_write_labels, config.output_dir))
    encode = ToImageExamples(config.writer.validation_fraction, labels)
    outputs.write_outputs(records, encode, parts, config)


def build_pipeline(p: beam.Pipeline, config: ImageRunConfig) -> None:
    """Add the image pipeline to ``p``."""
    records, parts = read_images(p, config)
    records = image_steps(records, config, parts)
    write_images(records, config, parts)


def run(argv: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Parse options, run the pipeline, return stats.json's content (None when only submitted)."""
    return outputs.run(argv, ImagePipelineOptions, image_config, build_pipeline)


if __name__ == "__main__":
    outputs.main(run)
