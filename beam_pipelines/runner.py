"""Pin the local runner so that nothing waits on the network.

Beam 2.77's ``DirectRunner`` first tries the Prism runner, which downloads a
binary on first use, and falls back to the FnApiRunner when it cannot. Local
runs here go straight to the FnApiRunner (the engine the DirectRunner falls
back to), which honours ``--direct_num_workers`` and
``--direct_running_mode`` (in_memory, multi_threading, multi_processing).
``--runner FlinkRunner`` gets the job-server jar cached by
``make flink-jar`` and, on an embedded Flink, one SDK worker process per core
unless told otherwise (see :mod:`beam_pipelines.flink`). Any other ``--runner`` (DataflowRunner,
PortableRunner, ...) is left to Beam.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Optional

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

__all__ = ["LOCAL_RUNNER_NAMES", "local_runner", "prepare_options", "runner_for"]

LOCAL_RUNNER_NAMES = (None, "", "DirectRunner", "SwitchingDirectRunner", "FnApiRunner")


def local_runner(options: Optional[PipelineOptions] = None):
    """The FnApiRunner, set up as the DirectRunner would set it up."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    options = options or PipelineOptions([])
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def prepare_options(options: PipelineOptions) -> ContextManager:
    """Fill in runner flags this project supplies itself; ValueError when one cannot be.

    Returns the context the pipeline must run in: the local SDK worker pool
    for an embedded Flink (:func:`beam_pipelines.flink.local_workers`), else
    a no-op.
    """
    name = options.view_as(StandardOptions).runner
    if isinstance(name, str) and name.split(".")[-1] == "FlinkRunner":
        from beam_pipelines import flink
        if flink.flink_defaults(options):
            return flink.local_workers(options)
    return contextlib.nullcontext()


def runner_for(options: PipelineOptions):
    """A runner instance for local runs, or None to let Beam resolve ``--runner``."""
    name = options.view_as(StandardOptions).runner
    if isinstance(name, str) or name is None:
        if name in LOCAL_RUNNER_NAMES:
            return local_runner(options)
        return None
    return name
