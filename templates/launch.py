"""Flex Template entry point of every beamtrain pipeline (FLEX_TEMPLATE_PYTHON_PY_FILE).

Which pipeline runs comes from ``BEAMTRAIN_PIPELINE`` (text, images,
multimodal or audio), set per template by ``gcloud dataflow flex-template build
--env BEAMTRAIN_PIPELINE=...``. The launcher calls this file with the
template's parameters as command-line options (``--input=gs://...
--output_dir=gs://... --runner=DataflowRunner ...``); every parameter is
validated before the pipeline is built, and a bad one stops the launch with a
one-line error naming it.

A template launch submits the job and exits (``--wait_until_finish=false``
unless the parameters say otherwise): the pipeline itself writes stats.json,
manifest.json, report.html and COMPLETED, so the launcher waits for nothing.
"""

import importlib
import logging
import os
import sys

PIPELINES = ("text", "images", "multimodal", "audio")

if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    name = os.environ.get("BEAMTRAIN_PIPELINE", "text")
    if name not in PIPELINES:
        sys.exit(f"error: BEAMTRAIN_PIPELINE={name!r}: choose one of {', '.join(PIPELINES)}")
    if not any(a.startswith("--wait_until_finish") for a in sys.argv[1:]):
        sys.argv.append("--wait_until_finish=false")
    from beam_pipelines.outputs import main

    main(importlib.import_module(f"beam_pipelines.{name}").run)
