"""The rules every pipeline run obeys before it reads a byte and after it stops.

A run never touches what it did not write, never starts on a mistake that a
check could have caught, and never ends without saying why:

* **Flags.** A mistyped or unknown flag exits 2 naming it
  (:func:`check_flags`); Beam itself would discard it with a warning.
* **Inputs.** Every ``--input`` glob must match at least one file, and no
  input may lie inside the output folder, nor the output folder inside what
  an input glob can match (:func:`check_inputs`).
* **Output folder ownership.** A run writes only into a missing or empty
  folder, or one an earlier beamtrain run owns: it holds ``.beamtrain.json``
  (the claim, written when a run first takes the folder) or a beamtrain
  ``manifest.json``. Only the files that manifest lists (every file the run
  wrote) are deleted; files of anyone else are left alone, and a foreign file
  sitting exactly where this run would write refuses the run
  (:func:`prepare_output_dir`). Leftover ``beam-temp-*`` folders of a killed
  run are removed.
* **Failures.** A run that fails prints its one-line cause last
  (:func:`one_line_cause`) and exits 1.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import posixpath
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence

from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

__all__ = ["OptionError", "CLAIM", "check_flags", "resolve_output_dir", "check_paths",
           "check_inputs", "prepare_output_dir", "owned_files", "one_line_cause",
           "OUTPUT_NAMES", "is_output_name"]

CLAIM = ".beamtrain.json"
MANIFEST = "manifest.json"

# Every name a beamtrain run writes, relative to its output folder. Used to
# refuse a foreign file in the way, and to clear what a killed run (claim
# written, manifest not yet) left.
OUTPUT_NAMES = (
    r"COMPLETED", r"stats\.json", r"manifest\.json", r"report\.html", r"samples\.jsonl",
    r"dataset_info\.json", r"features\.json", r"labels\.txt", r"[^/]*\.labels\.txt",
    r"data/(train|validation)-\d{5}-of-\d{5}\.(tfrecord|parquet|jsonl|tar)",
    r"dead_letter/dead_letter-\d{5}-of-\d{5}\.jsonl",
    r"near_dup_clusters/clusters-\d{5}-of-\d{5}\.jsonl",
    r"tokenizer/spm\.(model|vocab)", r"tokenizer/tokenizer\.json",
)
_OUTPUT_RE = re.compile("^(" + "|".join(OUTPUT_NAMES) + ")$")
_TEMP_RE = re.compile(r"(^|/)beam-temp-[^/]*(/|$)")


class OptionError(ValueError):
    """A bad pipeline parameter; the message names it (exit 2)."""


def is_output_name(rel: str) -> bool:
    return bool(_OUTPUT_RE.match(rel))


# --------------------------------------------------------------------------
# Flags


def _all_option_classes() -> List[type]:
    seen, stack = [], list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop(0)
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen


def check_flags(argv: Optional[Sequence[str]], own: Sequence[type] = ()) -> None:
    """Raise :class:`OptionError` naming the first flag neither Beam nor ``own`` knows.

    ``own`` are the pipeline's options classes: the flags of another beamtrain
    pipeline imported in the same process are unknown to this one.
    """
    import sys

    from apache_beam.options.pipeline_options import _BeamArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    # subclasses re-add their bases' flags: the last definition of a flag wins
    parser = _BeamArgumentParser(allow_abbrev=False, conflict_handler="resolve")
    classes = [c for c in _all_option_classes() if c.__module__.startswith("apache_beam")]
    for cls in classes + list(own):
        try:
            cls._add_argparse_args(parser)
        except Exception:  # noqa: BLE001 - a third-party options class we cannot probe
            continue
    _, unknown = parser.parse_known_args(argv)
    flags = [u for u in unknown if u.startswith("-")]
    if flags:
        raise OptionError(f"{flags[0].split('=', 1)[0]}: unknown option "
                          f"(see --help; Beam would silently discard it)")
    if unknown:
        raise OptionError(f"unexpected argument {unknown[0]!r}")


# --------------------------------------------------------------------------
# Paths


def resolve_output_dir(output_dir: str, now: Optional[datetime.datetime] = None) -> str:
    """``{date}`` / ``{datetime}`` become the launch time (UTC): one folder per scheduled run."""
    if "{date}" in output_dir or "{datetime}" in output_dir:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        output_dir = output_dir.replace("{date}", now.strftime("%Y-%m-%d")).replace(
            "{datetime}", now.strftime("%Y%m%d-%H%M%S"))
    return output_dir


def _is_local(path: str) -> bool:
    return "://" not in path


def _norm(path: str) -> str:
    if _is_local(path):
        return os.path.abspath(os.path.expanduser(path))
    scheme, rest = path.split("://", 1)
    return f"{scheme}://{posixpath.normpath(rest)}"


def check_paths(inputs: Sequence[str], output_dir: str, options: PipelineOptions) -> None:
    """Every path has a Beam filesystem; Dataflow workers get cloud paths only."""
    for name, paths in (("input", inputs), ("output_dir", [output_dir])):
        for path in paths:
            try:
                FileSystems.get_filesystem(path)
            except ValueError as e:
                raise OptionError(f"--{name}: {path!r}: {e}") from e
    runner = str(options.view_as(StandardOptions).runner or "")
    if "Dataflow" in runner:
        for name, paths in (("input", inputs), ("output_dir", [output_dir])):
            local = [p for p in paths if _is_local(p)]
            if local:
                raise OptionError(f"--{name}: {local[0]!r} is a local path; Dataflow workers "
                                  "read and write cloud storage (gs://...)")


def _glob_root(pattern: str) -> str:
    """The longest folder prefix of ``pattern`` without wildcards."""
    cut = min([i for i, c in enumerate(pattern) if c in "*?["] + [len(pattern)])
    head = pattern[:cut]
    return head if cut == len(pattern) else head[: head.rfind("/") + 1] or "."


_PROBES = ("data/train-00000-of-00001.tfrecord", "stats.json", "manifest.json", "COMPLETED",
           "dead_letter/dead_letter-00000-of-00001.jsonl", "tokenizer/spm.model",
           "samples.jsonl", "report.html", "labels.txt", "dataset_info.json")


def _inside(path: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def check_inputs(inputs: Sequence[str], output_dir: str, max_listed: int = 100_000) -> int:
    """Each glob matches something, and inputs and the output folder do not overlap.

    Returns the bytes the globs match (a file matched twice counts once).
    """
    out = _norm(output_dir)
    sizes = {}
    for pattern in inputs:
        norm = _norm(pattern)
        root = _norm(_glob_root(pattern))
        if _inside(root, out):
            raise OptionError(f"--output_dir: {output_dir!r} contains the input {pattern!r}; "
                              "write the output to a folder of its own")
        regex = re.compile(FileSystem.translate_pattern(norm))
        hit = next((p for p in _PROBES if regex.match(f"{out}/{p}")), None)
        if hit or regex.match(out):
            raise OptionError(f"--output_dir: {output_dir!r} lies where the input glob {pattern!r} "
                              "reads, so a rerun would read its own output; choose a folder "
                              "outside the inputs")
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as e:  # noqa: BLE001 - an unreadable location is a bad input glob
            raise OptionError(f"--input: {pattern!r}: cannot list it: {e}") from e
        if not matched:
            raise OptionError(f"--input: {pattern!r} matches no file")
        for meta in matched[:max_listed]:
            if _inside(_norm(meta.path), out):
                raise OptionError(f"--input: {pattern!r} matches {meta.path!r}, inside the output "
                                  f"folder {output_dir!r}")
        for meta in matched:
            sizes[meta.path] = meta.size_in_bytes or 0
    return sum(sizes.values())


# --------------------------------------------------------------------------
# Ownership of the output folder


def _list_files(output_dir: str) -> List[str]:
    """Every file under ``output_dir``, relative to it ('/' separated)."""
    if _is_local(output_dir):
        if not os.path.isdir(output_dir):
            if os.path.exists(output_dir):
                raise OptionError(f"--output_dir: {output_dir!r} exists and is not a folder")
            return []
        rels = []
        for dirpath, dirnames, filenames in os.walk(output_dir):
            for name in filenames + [d for d in dirnames
                                     if os.path.islink(os.path.join(dirpath, d))]:
                full = os.path.join(dirpath, name)
                rels.append(os.path.relpath(full, output_dir).replace(os.sep, "/"))
        return sorted(rels)
    prefix = output_dir.rstrip("/") + "/"
    try:
        matched = FileSystems.match([prefix + "**"])[0].metadata_list
    except Exception:  # noqa: BLE001 - a missing bucket prefix lists as nothing
        return []
    return sorted(m.path[len(prefix):] for m in matched if m.path.startswith(prefix))


def _read_json(path: str) -> Optional[Any]:
    try:
        with FileSystems.open(path) as f:
            return json.loads(f.read(1 << 26).decode("utf-8"))
    except Exception:  # noqa: BLE001 - unreadable means not ours
        return None


def owned_files(manifest: Dict[str, Any]) -> List[str]:
    """What a beamtrain manifest says its run wrote (older manifests: derived from its entries)."""
    files = manifest.get("files")
    if isinstance(files, list):
        return [f for f in files if isinstance(f, str)]
    derived = ["COMPLETED", "stats.json", "manifest.json", "report.html", "samples.jsonl",
               "dataset_info.json", "features.json", "labels.txt"]
    derived += [s.get("path", "") for s in manifest.get("shards", []) if isinstance(s, dict)]
    derived += [d for d in manifest.get("dead_letter", []) if isinstance(d, str)]
    if manifest.get("tokenizer"):
        derived += ["tokenizer/spm.model", "tokenizer/spm.vocab"]
    return derived


def _safe_rel(rel: str) -> bool:
    return bool(rel) and not rel.startswith("/") and "://" not in rel and ".." not in rel.split("/")


def _is_manifest(obj: Any) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("shards"), list)
            and "beamtrain" in (obj.get("code_version") or {}))


def prepare_output_dir(output_dir: str) -> List[str]:
    """Take ``output_dir`` for this run; returns the files deleted. Raises OptionError if not ours."""
    present = _list_files(output_dir)
    join = lambda rel: FileSystems.join(output_dir, rel)  # noqa: E731
    claim = _read_json(join(CLAIM)) if CLAIM in present else None
    manifest = _read_json(join(MANIFEST)) if MANIFEST in present else None
    owned_by_claim = isinstance(claim, dict) and claim.get("tool") == "beamtrain"
    if present and not owned_by_claim and not _is_manifest(manifest):
        raise OptionError(
            f"--output_dir: {output_dir!r} is not empty and no beamtrain run wrote it "
            f"(no {CLAIM} or manifest.json; it holds {present[0]!r}...); beamtrain writes only "
            "into a new or empty folder, or one an earlier run owns")
    foreign = set(claim.get("foreign", [])) if owned_by_claim else set()
    ours = set()
    if _is_manifest(manifest):
        ours |= {f for f in owned_files(manifest) if _safe_rel(f)}
    elif owned_by_claim:
        # the last run was killed before its manifest: everything with one of our
        # names that was not there before it claimed the folder
        ours |= {f for f in present if is_output_name(f) and f not in foreign}
    temp = [f for f in present if _TEMP_RE.search(f)]
    delete = sorted((set(present) & ours) | set(temp))
    left = [f for f in present if f not in delete and f != CLAIM]
    in_the_way = [f for f in left if is_output_name(f)]
    if in_the_way:
        raise OptionError(
            f"--output_dir: {join(in_the_way[0])!r} was not written by beamtrain's last run here "
            "and lies where this run writes; move it or choose another folder")
    if delete:
        logging.info("removing %d files of the previous run in %s", len(delete), output_dir)
        FileSystems.delete([join(f) for f in delete])
    claim_body = {"tool": "beamtrain", "note": "this folder is written by beamtrain runs; "
                  "only what manifest.json lists is ever deleted",
                  "foreign": sorted(left)}
    FileSystems.mkdirs(output_dir) if _is_local(output_dir) and not os.path.isdir(output_dir) else None
    with FileSystems.create(join(CLAIM)) as f:
        f.write((json.dumps(claim_body, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return delete


# --------------------------------------------------------------------------
# Failures

_OURS = ("TooManyBrokenRecords", "AccountingError", "EmptyOutputError", "TfdsMetadataError",
         "TokenizerError")
_CAUSE_RE = re.compile(r"(?:^|[\s.'\"])(" + "|".join(_OURS) + r"): (.+)")


def one_line_cause(error: BaseException) -> str:
    """The cause of a failed run in one line, from Beam's wrapped worker exception."""
    seen: List[BaseException] = []
    e: Optional[BaseException] = error
    while e is not None and e not in seen:
        seen.append(e)
        if type(e).__name__ in _OURS:
            return f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
        e = e.__cause__ or e.__context__
    text = "\n".join(str(x) for x in seen)
    found = _CAUSE_RE.findall(text)
    if found:
        name, message = found[-1]
        return f"{name}: {message.strip()}"
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception)\b", ln)]
    line = (errors or lines or [type(error).__name__])[-1]
    return line if len(line) < 500 else line[:497] + "..."


def split_inputs(values: Iterable[str]) -> List[str]:
    return [g.strip() for value in values for g in value.split(",") if g.strip()]
