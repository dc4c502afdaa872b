"""The Beam Flink job server, fetched with Maven into a cache outside git; local SDK workers.

``python -m beam_pipelines.flink --fetch`` (``make flink-jar``) puts a job
server into ``~/.cache/beamtrain/flink/`` (or ``$BEAMTRAIN_FLINK_CACHE``) and
prints its path. It first asks Maven for Beam's own shaded jar,
``org.apache.beam:beam-runners-flink-<flink>-job-server:<beam>`` for the
installed Beam and the newest Flink it publishes for (or ``--flink_version``,
``$BEAMTRAIN_FLINK_VERSION``). Maven Central does not serve those shaded jars
to every mirror (none of any version here, on 2026-11-29), so it then
assembles the same server from the runner library, which is served:
``beam-runners-flink-1.19:2.62.0`` (:data:`ASSEMBLED`; the newest Beam whose
Flink runner resolves with all its dependencies here -- 2.70.0 lacks
``beam-runners-java-job-service``) and its runtime dependencies go into
``lib-1.19-2.62.0/``, and ``beam-runners-flink-1.19-job-server-2.62.0.jar`` beside
it is a manifest-only jar (``Main-Class: FlinkJobServerDriver``, ``Class-Path``
listing those jars), which ``java -jar`` runs as Beam runs its own.

A 2.62.0 job server runs the pipelines of the installed Python SDK (2.77.0):
the Runner API is versioned, and ``tests/test_flink.py`` checks the shards are
byte-identical to the DirectRunner's. The Python side is not pinned back to
2.62, which would force tensorflow<2.21 (protobuf<6), pyarrow<17 and Beam's
old abbreviating flag parser (``--wait_until_finish=false`` would be read as
``--wait_until_finish_duration``). ``python -m beam_pipelines.flink`` alone
prints the cached jar's path, or exits 1 when none is cached.

With ``--runner FlinkRunner`` and no ``--flink_job_server_jar``, the pipelines
pass the cached jar (and the Flink version its name carries) to Beam, which
otherwise downloads the jar at run time. On an embedded Flink
(``--flink_master`` ``[local]`` or ``[auto]``, the default) with no
``--environment_type``, the Python code runs in SDK worker *processes*, one per
core: :func:`local_workers` starts Beam's external worker pool in the launching
process (it spawns one ``python`` per worker, from this interpreter's
environment) and the job gets ``--environment_type EXTERNAL``,
``--parallelism`` = ``--sdk_worker_parallelism`` = the core count and a long
``--environment_cache_millis`` (without it Flink starts fresh workers for
every stage). Against a cluster (``--flink_master host:port``) the
environment is Beam's default (Docker containers on the task managers) unless
``--environment_type`` says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Iterator, List, Optional, Sequence, Tuple

__all__ = ["ASSEMBLED", "assemble", "cache_dir", "cached_job_server_jar", "coordinates", "fetch",
           "flink_defaults", "is_local_master", "local_workers", "published_flink_versions"]

# (Flink, Beam) of the job server assembled from the runner library when Beam's
# shaded job-server jar is not served: the newest Beam whose
# beam-runners-flink-<F> resolves with all its dependencies on Maven Central here.
ASSEMBLED = ("1.19", "2.62.0")
JOB_SERVER_MAIN = "org.apache.beam.runners.flink.FlinkJobServerDriver"
# What Beam's own job-server build adds at run time to the runner library.
_EXTRA_DEPENDENCIES = (("org.slf4j", "slf4j-simple", "1.7.30"), ("org.slf4j", "jcl-over-slf4j", "1.7.30"))
LOCAL_MASTERS = ("[local]", "[auto]", "", None)

GROUP = "org.apache.beam"
# maven-dependency-plugin 3.x copies an artifact without a project (2.x needs one).
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_JAR_NAME = re.compile(r"beam-runners-flink-(?P<flink>[0-9.]+)-job-server-(?P<beam>[^/]+)\.jar$")


def beam_version() -> str:
    import apache_beam
    return apache_beam.__version__


def published_flink_versions() -> List[str]:
    """The Flink versions the installed Beam has job servers for, oldest first."""
    from apache_beam.options.pipeline_options import FlinkRunnerOptions
    return list(FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS)


def cache_dir() -> str:
    return os.environ.get("BEAMTRAIN_FLINK_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "beamtrain", "flink")


def coordinates(flink_version: str, beam: Optional[str] = None) -> str:
    return f"{GROUP}:beam-runners-flink-{flink_version}-job-server:{beam or beam_version()}"


def _jar_name(flink_version: str, beam: str) -> str:
    return f"beam-runners-flink-{flink_version}-job-server-{beam}.jar"


def parse_jar_name(path: str) -> Optional[Tuple[str, str]]:
    """(flink version, beam version) from a job-server jar's file name, or None."""
    m = _JAR_NAME.search(os.path.basename(path))
    return (m.group("flink"), m.group("beam")) if m else None


def _wanted_versions(flink_version: Optional[str]) -> List[str]:
    wanted = flink_version or os.environ.get("BEAMTRAIN_FLINK_VERSION")
    return [wanted] if wanted else list(reversed(published_flink_versions()))


def _lib_dir(flink_version: str, beam: str) -> str:
    return os.path.join(cache_dir(), f"lib-{flink_version}-{beam}")


def _usable(path: str) -> bool:
    if not (os.path.isfile(path) and os.path.getsize(path) > 0):
        return False
    parsed = parse_jar_name(path)
    if parsed and parsed == ASSEMBLED:  # a manifest-only jar needs its lib folder
        lib = _lib_dir(*parsed)
        return os.path.isdir(lib) and any(n.endswith(".jar") for n in os.listdir(lib))
    return True


def cached_job_server_jar(flink_version: Optional[str] = None) -> Optional[str]:
    """The cached job-server jar: Beam's own for the installed Beam, else the assembled one; or None."""
    beam = beam_version()
    candidates = [(version, beam) for version in _wanted_versions(flink_version)]
    if flink_version in (None, ASSEMBLED[0]) and os.environ.get("BEAMTRAIN_FLINK_VERSION") in (None, "", ASSEMBLED[0]):
        candidates.append(ASSEMBLED)
    for version, beam_v in candidates:
        path = os.path.join(cache_dir(), _jar_name(version, beam_v))
        if _usable(path):
            return path
    return None


def _mvn_cause(output: str, returncode: int) -> str:
    lines = [_ANSI.sub("", line) for line in output.splitlines() if "ERROR" in line]
    for line in lines:
        m = re.search(r"(\S+ was not found in \S+|Could not (find|transfer) artifact \S+( from/to \S+| in \S+)?)", line)
        if m:
            return "not found in the Maven repositories mvn uses" if "not found" in m.group(1) or "find" in m.group(1) else m.group(1)
    return (lines[0].replace("[ERROR]", "").strip()[:200] if lines else f"mvn exited {returncode}")


def _pom(flink_version: str, beam: str) -> str:
    deps = [(GROUP, f"beam-runners-flink-{flink_version}", beam)] + list(_EXTRA_DEPENDENCIES)
    body = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version>"
        + ("<exclusions><exclusion><groupId>commons-logging</groupId>"
           "<artifactId>commons-logging</artifactId></exclusion></exclusions>" if g == GROUP else "")
        + "</dependency>\n" for g, a, v in deps)
    return ('<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>\n'
            "<groupId>beamtrain.local</groupId><artifactId>flink-job-server</artifactId>"
            "<version>1</version><packaging>pom</packaging>\n"
            f"<dependencies>\n{body}</dependencies></project>\n")


def manifest(main_class: str, class_path: Sequence[str]) -> bytes:
    """A jar manifest; lines over 72 bytes continue on the next line after one space."""
    lines = ["Manifest-Version: 1.0", f"Main-Class: {main_class}",
             "Class-Path: " + " ".join(class_path), "Created-By: beamtrain"]
    out = []
    for line in lines:
        raw = line.encode("utf-8")
        out.append(raw[:72])
        for i in range(72, len(raw), 71):
            out.append(b" " + raw[i:i + 71])
    return b"\r\n".join(out) + b"\r\n\r\n"


def assemble(flink_version: str = ASSEMBLED[0], beam: str = ASSEMBLED[1], log=sys.stderr) -> str:
    """Build a runnable job server from the runner library and its dependencies; its path.

    ``mvn dependency:copy-dependencies`` puts the runtime jars into
    ``lib-<flink>-<beam>/`` of the cache; the job-server jar beside it holds
    only a manifest naming its main class and those jars. RuntimeError when
    Maven cannot resolve them.
    """
    mvn = shutil.which("mvn")
    if not mvn:
        raise RuntimeError("mvn is not on PATH: cannot fetch the Flink job server")
    out = cache_dir()
    os.makedirs(out, exist_ok=True)
    lib = _lib_dir(flink_version, beam)
    log.write(f"assembling the Flink job server from {GROUP}:beam-runners-flink-{flink_version}:{beam} ...\n")
    with tempfile.TemporaryDirectory(dir=out) as work:
        with open(os.path.join(work, "pom.xml"), "w") as f:
            f.write(_pom(flink_version, beam))
        staging = os.path.join(work, "lib")
        proc = subprocess.run(
            [mvn, "-q", "-B", f"{DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={staging}",
             "-DincludeScope=runtime"],
            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        jars = sorted(n for n in os.listdir(staging) if n.endswith(".jar")) if os.path.isdir(staging) else []
        if proc.returncode != 0 or not any(n.startswith(f"beam-runners-flink-{flink_version}-") for n in jars):
            raise RuntimeError(f"{GROUP}:beam-runners-flink-{flink_version}:{beam} and its dependencies: "
                               f"{_mvn_cause(proc.stdout, proc.returncode)}")
        shutil.rmtree(lib, ignore_errors=True)
        shutil.move(staging, lib)
        jar = os.path.join(out, _jar_name(flink_version, beam))
        tmp = os.path.join(work, "server.jar")
        rel = os.path.basename(lib)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("META-INF/MANIFEST.MF", manifest(JOB_SERVER_MAIN, [f"{rel}/{n}" for n in jars]))
        os.replace(tmp, jar)
    return jar


def fetch(flink_version: Optional[str] = None, log=sys.stderr) -> str:
    """Put a job server into the cache with mvn; its path. RuntimeError if none can be had.

    Beam's shaded job server for the installed Beam first (the newest Flink
    it publishes for, or ``flink_version``), then :func:`assemble`.
    """
    cached = cached_job_server_jar(flink_version)
    if cached:
        return cached
    mvn = shutil.which("mvn")
    if not mvn:
        raise RuntimeError("mvn is not on PATH: cannot fetch the Flink job server")
    beam = beam_version()
    out = cache_dir()
    os.makedirs(out, exist_ok=True)
    tried = []
    for version in _wanted_versions(flink_version)[:1]:
        coords = coordinates(version, beam)
        log.write(f"fetching {coords} ...\n")
        proc = subprocess.run(
            [mvn, "-q", "-B", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={coords}",
             f"-DoutputDirectory={out}", "-Dmdep.overWriteReleases=true"],
            cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        path = os.path.join(out, _jar_name(version, beam))
        if proc.returncode == 0 and os.path.isfile(path):
            return path
        tried.append(f"{coords}: {_mvn_cause(proc.stdout, proc.returncode)}")
    if flink_version in (None, ASSEMBLED[0]):
        try:
            return assemble(log=log)
        except RuntimeError as e:
            tried.append(str(e))
    raise RuntimeError("no Flink job server could be fetched:\n  " + "\n  ".join(tried))


def is_local_master(options) -> bool:
    from apache_beam.options.pipeline_options import FlinkRunnerOptions

    return options.view_as(FlinkRunnerOptions).flink_master in LOCAL_MASTERS


def flink_defaults(options) -> bool:
    """Fill in what ``--runner FlinkRunner`` needs here and was not given; True when
    the run needs :func:`local_workers`.

    The cached job-server jar (and its Flink version) when no
    ``--flink_job_server_jar`` is given. On an embedded Flink with no
    ``--environment_type``: the ``EXTERNAL`` environment (its address is set
    by :func:`local_workers`), ``--parallelism`` and
    ``--sdk_worker_parallelism`` = the core count unless given, and a long
    ``--environment_cache_millis``. Raises ValueError when no jar is given or cached.
    """
    from apache_beam.options.pipeline_options import FlinkRunnerOptions, PortableOptions

    flink = options.view_as(FlinkRunnerOptions)
    if not flink.flink_job_server_jar:
        jar = cached_job_server_jar()
        if not jar:
            raise ValueError(
                "--runner FlinkRunner needs the Beam Flink job server: run `make flink-jar` "
                f"(python -m beam_pipelines.flink --fetch) to cache it in {cache_dir()}, "
                "or pass --flink_job_server_jar PATH")
        flink.flink_job_server_jar = jar
        parsed = parse_jar_name(jar)
        if parsed:
            flink.flink_version = parsed[0]
    portable = options.view_as(PortableOptions)
    if portable.environment_type or not is_local_master(options):
        return False
    from beam_pipelines.runner import flag_given, usable_cores

    if not flag_given(options, "parallelism") or flink.parallelism < 1:
        flink.parallelism = usable_cores()
    if not flag_given(options, "sdk_worker_parallelism"):
        portable.sdk_worker_parallelism = flink.parallelism
    if not flag_given(options, "environment_cache_millis"):
        portable.environment_cache_millis = 24 * 3600 * 1000  # workers live for the whole job
    portable.environment_type = "EXTERNAL"
    return True


@contextlib.contextmanager
def local_workers(options) -> Iterator[str]:
    """Beam's external worker pool, in this process, for the length of one run.

    Each worker Flink asks for is a ``python`` process of this interpreter's
    environment (the pool starts ``python`` from PATH, so this interpreter's
    directory goes first on it while the pool lives); the address goes into
    ``--environment_config``. On exit the pool stops and its workers are ended.
    """
    import grpc
    from apache_beam.options.pipeline_options import PortableOptions
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.runners.worker import worker_pool_main
    from apache_beam.utils import thread_pool_executor

    import logging

    logging.getLogger(worker_pool_main.__name__).setLevel(logging.ERROR)  # "Starting worker ..." per worker
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + old_path
    pool = worker_pool_main.BeamFnExternalWorkerPoolServicer(use_process=True, data_buffer_time_limit_ms=-1)
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(),
                         options=[("grpc.http2.max_pings_without_data", 0),
                                  ("grpc.http2.max_ping_strikes", 0)])
    port = server.add_insecure_port("localhost:0")
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    address = f"localhost:{port}"
    options.view_as(PortableOptions).environment_config = address
    try:
        yield address
    finally:
        server.stop(0)
        os.environ["PATH"] = old_path
        for proc in list(pool._worker_processes.values()):  # Flink stops them; this is the backstop
            worker_pool_main.kill_process_gracefully(proc, timeout=5)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beam_pipelines.flink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fetch", action="store_true", help="fetch the jar with mvn if it is not cached")
    parser.add_argument("--flink_version", default=None,
                        help=f"one of {', '.join(published_flink_versions())} (default: newest that resolves)")
    args = parser.parse_args(argv)
    try:
        path = fetch(args.flink_version) if args.fetch else cached_job_server_jar(args.flink_version)
    except RuntimeError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    if not path:
        sys.stderr.write(f"no Flink job server cached in {cache_dir()}: run with --fetch\n")
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
