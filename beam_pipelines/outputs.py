"""How every pipeline runs, written once: the run skeleton, the pipeline's end, the summary.

:func:`run` is the body of each pipeline's ``run(argv)``:

1. the flags are checked (an unknown one exits 2 naming it) and the typed config
   is built from them (a bad value exits 2, one line naming the flag);
2. the inputs are listed and the output folder is taken
   (:mod:`beam_pipelines.safety`);
3. the pipeline is built from the config and run; a failure raises
   :class:`RunFailed` with its one-line cause (:func:`main` prints it, exit 1);
4. where the outputs are and where the records went is printed.

:func:`write_outputs` is the end of every pipeline's graph: shards, dead
letter, samples, stats.json, manifest.json (its ``config`` is the run's typed
config, ``dataclasses.asdict``), report.html and COMPLETED
(:func:`transforms.write.finalize.write_dataset`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from beam_pipelines import safety
from beam_pipelines.config import RunConfig
from beam_pipelines.options import OutputOptions
from beam_pipelines.runner import prepare_options, runner_for
from beam_pipelines.safety import OptionError
from transforms.write.finalize import Parts, write_dataset

__all__ = ["RunFailed", "run", "main", "write_outputs", "code_version", "write_report",
           "print_summary"]


class RunFailed(RuntimeError):
    """The pipeline ran and failed; the message is its one-line cause."""


def code_version() -> Dict[str, Any]:
    """beamtrain's version and git commit, and Beam's version (manifest.json's code_version)."""
    from importlib import metadata

    try:
        version = metadata.version("beamtrain")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit = None
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except Exception:
        pass
    return {"beamtrain": version, "git_commit": commit, "apache_beam": beam.__version__}


def write_report(out: str) -> None:
    """report.html beside stats.json, drawn by the pipeline before COMPLETED.

    A failure to draw it is logged, never fatal to the run: the data is written.
    """
    try:
        from beam_pipelines.report import build_report

        build_report(out)
    except Exception as e:  # noqa: BLE001 - the data is written; say why the report is not
        logging.getLogger(__name__).warning("report.html not written: %s: %s", type(e).__name__, e)


def write_outputs(records: beam.PCollection, encode: beam.PTransform, parts: Parts,
                  config: RunConfig) -> beam.PCollection:
    """The end of a pipeline built from ``config``: everything it writes after the records."""
    return write_dataset(records, encode, parts, config.output_spec(code_version()),
                         on_success=write_report if config.report else None)


def run(argv: Optional[List[str]], options_class: type,
        make_config: Callable[[PipelineOptions], RunConfig],
        build: Callable[[beam.Pipeline, RunConfig], None]) -> Optional[Dict[str, Any]]:
    """Check, build and run one pipeline; returns stats.json's content (None when only submitted).

    Everything the run reports (stats.json, manifest.json, report.html,
    COMPLETED) is written by the pipeline itself, so a submitted job (a Flex
    Template launch, ``--wait_until_finish=false``) needs nothing more from the
    launcher. A bad flag exits 2 with one line; a failed run raises
    :class:`RunFailed` with its one-line cause.
    """
    options = options_class(argv)  # --help lists this pipeline's flags, by group
    try:
        safety.check_flags(argv, [options_class])
        config = make_config(options)
        input_bytes = safety.check_inputs(config.inputs, config.output_dir)
        try:
            engine = prepare_options(options, input_bytes)
        except ValueError as e:
            raise OptionError(str(e)) from e
        safety.prepare_output_dir(config.output_dir)
    except OptionError as e:
        sys.stderr.write(f"error: {e}\n")
        raise SystemExit(2)
    options.view_as(SetupOptions).save_main_session = False
    wait = options.view_as(OutputOptions).wait_until_finish
    out = config.output_dir
    with engine:
        p = beam.Pipeline(runner=runner_for(options), options=options)
        build(p, config)
        try:
            result = p.run()
            if not wait:
                job = getattr(result, "job_id", lambda: None)
                print(f"submitted:   job {job() if callable(job) else job or ''} writes {out}/ "
                      "(COMPLETED last)".replace("job  ", "job "))
                return None
            state = result.wait_until_finish()
            if state is not None and str(state).upper().split(".")[-1] not in ("DONE", "UNKNOWN"):
                raise RuntimeError(f"the job ended in state {state}")
        except Exception as e:  # noqa: BLE001 - say why in one line, keep the cause chained
            raise RunFailed(safety.one_line_cause(e)) from e
    with FileSystems.open(FileSystems.join(out, "stats.json")) as f:
        stats = json.loads(f.read())
    print_summary(out, stats)
    return stats


def main(run_fn: Callable[[], Any]) -> None:
    """Command-line entry: a failed run prints its one-line cause last and exits 1.

    Beam logs a failing DoFn's whole traceback from its worker; the cause is
    printed here instead (set BEAMTRAIN_DEBUG=1 to see Beam's log).
    """
    logging.basicConfig(level=logging.WARNING)
    if not os.environ.get("BEAMTRAIN_DEBUG"):
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    stop_on_terminate()
    try:
        run_fn()
    except RunFailed as e:
        sys.stdout.flush()
        sys.stderr.write(f"error: {e}\n")
        raise SystemExit(1)


def stop_on_terminate() -> None:
    """A plain ``kill`` (SIGTERM: a scheduler, ``timeout``, a container stopping) ends the run as
    Ctrl-C does: ``SystemExit(143)`` in the main thread, so the run's ``finally`` blocks stop the
    workers and remove the spill folder (the corpus before the pii step) instead of leaving it.

    Only from the main thread, and only where SIGTERM still has its default action.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second kill ends it at once
        sys.stderr.write("error: stopped by SIGTERM; cleaning up\n")
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


def print_summary(out: str, stats: Dict[str, Any]) -> None:
    """Where the outputs are and where the records went."""
    if FileSystems.exists(FileSystems.join(out, "report.html")):
        print(f"report:      {FileSystems.join(out, 'report.html')}")
    print(f"shards:      {FileSystems.join(out, 'data')}/")
    print(f"stats:       {FileSystems.join(out, 'stats.json')}")
    print(f"dead letter: {FileSystems.join(out, 'dead_letter')}/")
    print(f"records in {stats['records_in']}, out {stats['records_out']}, "
          f"filtered {sum(stats['filtered'].values())}, duplicates "
          f"{sum(stats['duplicates'].values())}, dead letter {sum(stats['dead_letter'].values())}")
