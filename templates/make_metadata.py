"""Write templates/<pipeline>/metadata.json from the pipeline's own flag declarations.

    python templates/make_metadata.py [--check]

Every flag declared for a pipeline (:mod:`beam_pipelines.options`: the same
declarations its ``PipelineOptions`` subclass and its checks come from)
becomes a template parameter with its help text, ``isOptional`` unless
required, and its validation regex (gs:// paths only, bounded integers,
fractions, choices, booleans). ``--check`` exits non-zero when a committed
metadata.json differs from what the declarations say (tests/test_runners.py
runs it), so the two never drift apart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def option_parser(options_classes) -> argparse.ArgumentParser:
    """Every option a pipeline reads, as argparse sees it: its classes and the ones they extend."""
    from apache_beam.options.pipeline_options import PipelineOptions

    parser = argparse.ArgumentParser(conflict_handler="resolve")
    for options_cls in options_classes:
        for cls in options_cls.mro():
            if cls is PipelineOptions:
                break
            if "_add_argparse_args" in cls.__dict__:
                cls._add_argparse_args(parser)
    return parser


def parameters(options_classes) -> List[Dict]:
    """One template parameter per declared flag (beam_pipelines.options), in declaration order."""
    from beam_pipelines.options import flags_of

    params, seen = [], set()
    for options_cls in options_classes:
        for flag in flags_of(options_cls):
            if flag.name in seen:
                continue
            seen.add(flag.name)
            helptext = flag.help or _label(flag.name)
            if flag.regex_help:
                helptext = f"{helptext} {flag.regex_help}"
            params.append({"name": flag.name, "label": _label(flag.name), "helpText": helptext,
                           "isOptional": not flag.required, "regexes": [flag.template_regex]})
    return params


def options_class(pipeline: str):
    """The pipeline's module (its docstring names the template) and its options classes."""
    import importlib

    from beam_pipelines.options import PIPELINE_OPTIONS

    return importlib.import_module(f"beam_pipelines.{pipeline}"), [PIPELINE_OPTIONS[pipeline]]


def metadata(pipeline: str) -> Dict:
    if pipeline not in PIPELINES:
        raise ValueError(f"no template for pipeline {pipeline!r}")
    module, classes = options_class(pipeline)
    return {
        "name": f"beamtrain {pipeline} pipeline",
        "description": module.__doc__.strip().split("\n")[0],
        "streaming": False,
        "parameters": parameters(classes),
    }


PIPELINES = ("text", "images", "multimodal", "audio")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for pipeline in PIPELINES:
        path = os.path.join(ROOT, "templates", pipeline, "metadata.json")
        wanted = json.dumps(metadata(pipeline), indent=2) + "\n"
        if args.check:
            current = open(path).read() if os.path.exists(path) else ""
            if current != wanted:
                stale.append(path)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(wanted)
    if stale:
        print("stale: " + ", ".join(stale) + " (run python templates/make_metadata.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
