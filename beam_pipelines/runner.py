"""Pin the local runner so that nothing waits on the network.

Beam 2.77's ``DirectRunner`` first tries the Prism runner, which downloads a
binary on first use, and falls back to the FnApiRunner when it cannot. Local
runs here go straight to the FnApiRunner (the engine the DirectRunner falls
back to), which honours ``--direct_num_workers`` and
``--direct_running_mode`` (in_memory, multi_threading, multi_processing).

Every core by default: when neither flag is given and the inputs hold at
least :data:`PARALLEL_INPUT_BYTES`, a local run uses one SDK worker process
per core it may use (``multi_processing``; :func:`usable_cores`: under
``taskset`` or a container's cpuset, the CPUs allowed, not the machine's); smaller runs (tests, samples, trying a flag)
stay in process, where starting the workers would cost more than they save.
``--direct_num_workers 1`` keeps any run in one process.
``--runner FlinkRunner`` gets the job-server jar cached by
``make flink-jar`` and, on an embedded Flink, one SDK worker process per core
unless told otherwise (see :mod:`beam_pipelines.flink`). Any other ``--runner`` (DataflowRunner,
PortableRunner, ...) is left to Beam.

Memory bounded on a local engine: from :data:`PARALLEL_INPUT_BYTES` of input
(``--spill auto``), the records that wait in a shuffle are written to a fresh
directory under ``--spill_dir`` (default: the system's temporary directory)
and the shuffles carry references to them (:mod:`transforms.packing`); the
directory is removed when the run ends, failed or not. Engines on other
machines (Dataflow, a Flink cluster) carry the records themselves.

Spilled records are written as Beam encodes them, without compression, when
the spill disk has room for :data:`SPILL_ROOM` times the input (Zstandard
would cost a tenth of the run's CPU to save disk the run only borrows); on a
disk shorter of room, or a spill folder in memory, they are compressed
(``--spill_compression auto``; ``zstd`` or ``none`` to choose).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from typing import ContextManager, Iterator, Optional

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

__all__ = ["LOCAL_RUNNER_NAMES", "PARALLEL_INPUT_BYTES", "flag_given", "local_defaults", "local_runner",
           "prepare_options", "runner_for", "spill_to", "compress_spills", "filesystem_type"]

LOCAL_RUNNER_NAMES = (None, "", "DirectRunner", "SwitchingDirectRunner", "FnApiRunner")
# Inputs from this size up run on every core by default.
PARALLEL_INPUT_BYTES = 64 << 20
# --spill_compression auto: uncompressed spills where the disk has this many times the
# input free. A text run spills each surviving record twice (for the dedup joins, then
# batched for the tokenizer) and each example once: 0.91 GB at most for a 300 MB corpus
# uncompressed, measured with du every second (0.55 GB compressed).
SPILL_ROOM = 8


def flag_given(options: PipelineOptions, name: str) -> bool:
    """Whether the command line named ``--name`` (even at its default value)."""
    flags = getattr(options, "_flags", None)
    if flags is None:  # as Beam parses it: no flags given means the process's own
        flags = sys.argv[1:]
    return any(f == f"--{name}" or f.startswith(f"--{name}=") for f in flags)


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity: ``taskset``, a container's cpuset), else all."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        allowed = 0
    cores = os.cpu_count() or 1
    return min(allowed, cores) if allowed else cores


def local_defaults(options: PipelineOptions, input_bytes: int) -> None:
    """One worker process per core for a large local run, unless the flags say how to run."""
    from apache_beam.options.pipeline_options import DirectOptions

    if flag_given(options, "direct_num_workers") or flag_given(options, "direct_running_mode"):
        return
    cores = usable_cores()
    if cores > 1 and input_bytes >= PARALLEL_INPUT_BYTES:
        direct = options.view_as(DirectOptions)
        direct.direct_num_workers = cores
        direct.direct_running_mode = "multi_processing"


def close_workers_together(manager) -> None:
    """Close the FnApiRunner's worker handlers all at once, then its gRPC server.

    Beam's ``WorkerHandlerManager.close_all`` stops the SDK worker processes
    one after the other, waiting for each to exit (about 0.8 s each here):
    1.6 s at the end of every two-worker run, 13 s with 16 workers. Closing
    each handler in its own thread lets them exit together; what is closed,
    and the errors logged, are as in Beam's method.
    """
    import collections
    import logging
    import threading

    handlers = []
    for handler_list in manager._cached_handlers.values():
        for handler in handler_list:
            if handler not in handlers:
                handlers.append(handler)

    def close(handler):
        try:
            handler.close()
        except Exception:  # noqa: BLE001 - logged as Beam logs it; the others still close
            logging.getLogger(__name__).error("Error closing worker_handler %s", handler, exc_info=True)

    threads = [threading.Thread(target=close, args=(h,), name="close-worker", daemon=True)
               for h in handlers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    manager._cached_handlers = collections.defaultdict(list)
    manager._workers_by_id = {}
    if manager._grpc_server is not None:
        manager._grpc_server.close()
        manager._grpc_server = None


def _close_workers_together_in_beam() -> None:
    """Make the FnApiRunner close its workers together (:func:`close_workers_together`).

    Only where Beam's manager has the attributes that function uses (Beam
    2.77's); otherwise Beam's own method stays.
    """
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    manager = worker_handlers.WorkerHandlerManager
    if getattr(manager.close_all, "_beamtrain", False):
        return
    import inspect

    try:
        source = inspect.getsource(manager.close_all)
    except (OSError, TypeError):  # no source to read (a zipped or compiled install): Beam's method stays
        return
    if not all(name in source for name in ("_cached_handlers", "_workers_by_id", "_grpc_server")):
        return
    close_workers_together._beamtrain = True
    manager.close_all = close_workers_together


def local_runner(options: Optional[PipelineOptions] = None):
    """The FnApiRunner, set up as the DirectRunner would set it up (workers closed together)."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    _close_workers_together_in_beam()

    options = options or PipelineOptions([])
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def prepare_options(options: PipelineOptions, input_bytes: int = 0) -> ContextManager:
    """Fill in runner flags this project supplies itself; ValueError when one cannot be.

    ``input_bytes`` (what the input globs match) decides whether a local run
    uses every core (:func:`local_defaults`). Returns the context the pipeline
    must run in: the local SDK worker pool for an embedded Flink
    (:func:`beam_pipelines.flink.local_workers`), else a no-op.
    """
    name = options.view_as(StandardOptions).runner
    local, workers = False, None
    if name in LOCAL_RUNNER_NAMES:
        local_defaults(options, input_bytes)
        local = True
    if isinstance(name, str) and name.split(".")[-1] == "FlinkRunner":
        from beam_pipelines import flink
        if flink.flink_defaults(options):
            local, workers = True, flink.local_workers(options)
    return _engine(spill_root(options, input_bytes, local), workers, input_bytes,
                   spill_compression(options))


def spill_compression(options: PipelineOptions) -> str:
    """``--spill_compression``: auto, zstd or none."""
    from beam_pipelines.options import OutputOptions

    return getattr(options.view_as(OutputOptions), "spill_compression", None) or "auto"


@contextlib.contextmanager
def _engine(spill: Optional[str], workers: Optional[ContextManager], input_bytes: int = 0,
            compression: str = "auto") -> Iterator[Optional[str]]:
    """The spill directory, then the workers (they inherit its variables); yields what the
    workers' context gives (an embedded Flink's worker pool address), else None."""
    with contextlib.ExitStack() as stack:
        if spill is not None:
            stack.enter_context(spill_to(spill, input_bytes, compression))
        yield stack.enter_context(workers) if workers is not None else None


def spill_root(options: PipelineOptions, input_bytes: int, local: bool) -> Optional[str]:
    """Where this run spills its waiting records (``--spill``, ``--spill_dir``), or None."""
    from beam_pipelines.options import OutputOptions

    flags = options.view_as(OutputOptions)
    mode = getattr(flags, "spill", None) or "auto"
    if mode == "never":
        return None
    if not local:
        if mode == "always":
            raise ValueError("--spill always needs a local engine (the DirectRunner or an "
                             "embedded Flink): other machines cannot read this one's disk")
        return None
    if mode == "auto" and (input_bytes < PARALLEL_INPUT_BYTES or
                           not getattr(flags, "wait_until_finish", True)):
        return None  # small runs keep everything in memory; a submitted run outlives us
    return getattr(flags, "spill_dir", None) or tempfile.gettempdir()


def filesystem_type(path: str, mounts: str = "/proc/mounts") -> Optional[str]:
    """The type of the filesystem ``path`` is on (``ext4``, ``tmpfs``...), from the
    longest matching mount point in ``mounts``; None where that cannot be read."""
    try:
        with open(mounts, encoding="utf-8", errors="replace") as f:
            entries = [line.split() for line in f]
    except OSError:
        return None
    path = os.path.realpath(path)
    best, kind = "", None
    for entry in entries:
        if len(entry) < 3:
            continue
        point = entry[1].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, entry[2]
    return kind


def compress_spills(directory: str, input_bytes: int, compression: str = "auto",
                    in_memory: bool = False) -> bool:
    """Whether values spilled to ``directory`` are compressed (``--spill_compression``).

    auto: where the folder is in memory, or its disk has less than
    :data:`SPILL_ROOM` times ``input_bytes`` free.
    """
    if compression not in ("auto", "zstd", "none"):
        raise ValueError(f"--spill_compression must be auto, zstd or none, got {compression!r}")
    if compression != "auto":
        return compression == "zstd"
    if in_memory:
        return True
    try:
        stat = os.statvfs(directory)
    except (AttributeError, OSError):  # cannot tell: save the disk
        return True
    return stat.f_bavail * stat.f_frsize < SPILL_ROOM * input_bytes


@contextlib.contextmanager
def spill_to(root: str, input_bytes: int = 0, compression: str = "auto") -> Iterator[str]:
    """A fresh spill directory under ``root`` for the run inside; removed afterwards.

    A root in memory (tmpfs, ramfs) would hold the spilled records in RAM
    again: the run says so once, and goes on (compressing them, unless told
    ``compression="none"``). Whether spills are compressed: :func:`compress_spills`.
    """
    import logging

    from transforms import packing

    os.makedirs(root, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="beamtrain-spill-", dir=root)
    in_memory = filesystem_type(directory) in ("tmpfs", "ramfs")
    if in_memory:
        logging.getLogger(__name__).warning(
            "the spill folder %s is in memory (%s): records that wait in shuffles will use RAM; "
            "pass --spill_dir on a disk", directory, filesystem_type(directory))
    compress = compress_spills(directory, input_bytes, compression, in_memory)
    previous = {name: os.environ.get(name) for name in (packing.SPILL_ENV, packing.SPILL_COMPRESS_ENV)}
    os.environ[packing.SPILL_ENV] = directory
    os.environ[packing.SPILL_COMPRESS_ENV] = "1" if compress else "0"
    try:
        yield directory
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        packing.release(directory)
        shutil.rmtree(directory, ignore_errors=True)  # made here, by mkdtemp: only ours


def runner_for(options: PipelineOptions):
    """A runner instance for local runs, or None to let Beam resolve ``--runner``."""
    name = options.view_as(StandardOptions).runner
    if isinstance(name, str) or name is None:
        if name in LOCAL_RUNNER_NAMES:
            return local_runner(options)
        return None
    return name
