"""Write templates/<pipeline>/metadata.json from the pipeline's own options.

    python templates/make_metadata.py [--check]

Every option of a pipeline's ``PipelineOptions`` subclass becomes a template
parameter with its help text, ``isOptional`` unless required, and validation
``regexes`` (gs:// paths only, bounded integers, fractions, choices,
booleans). ``--check`` exits non-zero when a committed metadata.json differs
from what the options say (tests/test_templates.py runs it), so the two never
drift apart.
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

GS_PATH = r"^gs://[^\n\r]+$"
GS_PATHS = r"^gs://[^,\n\r]+(,gs://[^,\n\r]+)*$"
BOOL = r"^(true|false)$"
FRACTION = r"^(0(\.[0-9]+)?|1(\.0+)?)$"
OPEN_FRACTION = r"^0?\.[0-9]*[1-9][0-9]*$"
STEP = "(clean|filter|dedup|pii|tokenize)"

# Per-parameter rules where the type alone does not say enough.
SPECIAL = {
    "input": (GS_PATHS, "One or more gs:// globs, separated by commas."),
    "output_dir": (r"^gs://[^\n\r,]+$", None),
    "tokenizer_model": (GS_PATH, None),
    "blocklist_file": (GS_PATH, None),
    "filter_config": (r"^(\{.*\}|gs://[^\n\r]+)$", None),
    "steps": (rf"^{STEP}(,{STEP}){{0,4}}$", None),
    "text_field": (r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", None),
    "id_field": (r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", None),
    "dataset_version": (r"^[A-Za-z0-9._-]{1,64}$", None),
    "license_allow": (r"^[A-Za-z0-9 ._-]+(,[A-Za-z0-9 ._-]+)*$", None),
    "pii_kinds": (r"^(EMAIL|PHONE|IP_ADDRESS|CREDIT_CARD|US_SSN|IBAN|SECRET)"
                  r"(,(EMAIL|PHONE|IP_ADDRESS|CREDIT_CARD|US_SSN|IBAN|SECRET)){0,6}$", None),
    "pii_phone_regions": (r"^[A-Z]{2}(,[A-Z]{2})*$", None),
    "pii_salt_env": (r"^[A-Z_][A-Z0-9_]{0,63}$", None),
    "pii_mask": (r"^[^\n\r]{1,64}$", None),
    "vocab_size": (r"^(26[2-9]|2[7-9][0-9]|[3-9][0-9]{2}|[1-9][0-9]{3,6})$", "262 to 9,999,999."),
    "caption_vocab_size": (r"^(26[2-9]|2[7-9][0-9]|[3-9][0-9]{2}|[1-9][0-9]{3,6})$",
                           "262 to 9,999,999."),
    "minhash_num_perm": (r"^([2-9]|[1-9][0-9]{1,3})$", "2 to 9,999."),
    "caption_blocklist_file": (GS_PATH, None),
    "image_root": (GS_PATH, None),
    "max_file_bytes": (r"^[1-9][0-9]{0,15}$", "Bytes, 1 to 10^16."),
    "max_decompression_ratio": (r"^[1-9][0-9]{0,5}(\.[0-9]+)?$", "1 or more."),
    "caption_tokenizer_model": (GS_PATH, None),
    "caption_pii_salt_env": (r"^[A-Z_][A-Z0-9_]{0,63}$", None),
    "image_size": (r"^([89]|[1-9][0-9]{1,3})$", "8 to 9,999."),
    "jpeg_quality": (r"^([1-9]|[1-9][0-9]|100)$", "1 to 100."),
    "near_dup_hamming": (r"^(-1|[0-7])$", "-1 (off) or 0 to 7."),
    "max_aspect": (r"^[0-9]+(\.[0-9]+)?$", None),
    "background": (r"^[0-9]{1,3},[0-9]{1,3},[0-9]{1,3}$", None),
    "min_std": (r"^[0-9]+(\.[0-9]+)?$", None),
    "caption_blocklist_threshold": (FRACTION, None),
    "near_dup_threshold": (OPEN_FRACTION, "Strictly between 0 and 1."),
    "validation_fraction": (r"^(0(\.[0-9]+)?|\.[0-9]+)$", "0 to just under 1."),
}
INT = r"^[0-9]{1,9}$"
REQUIRED = {"input", "output_dir"}


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def option_parser(options_classes) -> argparse.ArgumentParser:
    """Every option a pipeline reads: its classes and the option classes they extend."""
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
    from beam_pipelines.text import _flag

    parser = option_parser(options_classes)
    params = []
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        name = action.dest
        helptext = action.help or _label(name)
        regex, extra = SPECIAL.get(name, (None, None))
        if regex is None:
            if action.type is _flag:
                regex = BOOL
            elif action.choices:
                regex = "^(" + "|".join(map(str, action.choices)) + ")$"
            elif action.type is int:
                regex = INT
            elif action.type is float:
                regex = FRACTION
            else:
                regex = r"^[^\n\r]*$"
        if extra:
            helptext = f"{helptext} {extra}"
        param = {"name": name, "label": _label(name), "helpText": helptext,
                 "isOptional": name not in REQUIRED, "regexes": [regex]}
        params.append(param)
    return params


def options_class(pipeline: str):
    import importlib

    module = importlib.import_module(f"beam_pipelines.{pipeline}")
    names = {"text": ["TextPipelineOptions"], "images": ["ImagePipelineOptions"],
             "multimodal": ["ImagePipelineOptions", "MultimodalPipelineOptions"]}[pipeline]
    from beam_pipelines import images

    return module, [getattr(module, n, None) or getattr(images, n) for n in names]


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


PIPELINES = ("text", "images", "multimodal")


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
