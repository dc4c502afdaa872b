"""The Beam Flink job server, fetched with Maven into a cache outside git.

``python -m beam_pipelines.flink --fetch`` (``make flink-jar``) copies
``org.apache.beam:beam-runners-flink-<flink>-job-server:<beam>`` (``<beam>``
is the installed Beam's version) into ``~/.cache/beamtrain/flink/`` (or
``$BEAMTRAIN_FLINK_CACHE``) and prints its path; it tries the Flink versions
the installed Beam publishes for, newest first, unless ``--flink_version`` (or
``$BEAMTRAIN_FLINK_VERSION``) names one. ``python -m beam_pipelines.flink``
alone prints the cached jar's path, or exits 1 when none is cached.

With ``--runner FlinkRunner`` and no ``--flink_job_server_jar``, the pipelines
pass the cached jar (and the Flink version its name carries) to Beam, which
otherwise downloads the jar at run time; and with no ``--environment_type``
they run the Python SDK workers in the launching process (``LOOPBACK``)
rather than in Docker containers, Beam's default.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from typing import List, Optional, Sequence, Tuple

__all__ = ["cache_dir", "cached_job_server_jar", "coordinates", "fetch", "flink_defaults",
           "published_flink_versions"]

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


def cached_job_server_jar(flink_version: Optional[str] = None) -> Optional[str]:
    """The cached job-server jar for the installed Beam, or None."""
    beam = beam_version()
    for version in _wanted_versions(flink_version):
        path = os.path.join(cache_dir(), _jar_name(version, beam))
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            return path
    return None


def _mvn_cause(output: str, returncode: int) -> str:
    lines = [_ANSI.sub("", line) for line in output.splitlines() if "ERROR" in line]
    for line in lines:
        m = re.search(r"(\S+ was not found in \S+|Could not (find|transfer) artifact \S+( from/to \S+| in \S+)?)", line)
        if m:
            return "not found in the Maven repositories mvn uses" if "not found" in m.group(1) or "find" in m.group(1) else m.group(1)
    return (lines[0].replace("[ERROR]", "").strip()[:200] if lines else f"mvn exited {returncode}")


def fetch(flink_version: Optional[str] = None, log=sys.stderr) -> str:
    """Copy the job-server jar into the cache with mvn; its path. RuntimeError if none resolves."""
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
    for version in _wanted_versions(flink_version):
        coords = coordinates(version, beam)
        log.write(f"fetching {coords} ...\n")
        proc = subprocess.run(
            [mvn, "-q", "-B", "-U", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={coords}",
             f"-DoutputDirectory={out}", "-Dmdep.overWriteReleases=true"],
            cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        path = os.path.join(out, _jar_name(version, beam))
        if proc.returncode == 0 and os.path.isfile(path):
            return path
        tried.append(f"{coords}: {_mvn_cause(proc.stdout, proc.returncode)}")
    raise RuntimeError("no Flink job server could be fetched:\n  " + "\n  ".join(tried))


def flink_defaults(options) -> None:
    """Fill in what ``--runner FlinkRunner`` needs here and was not given.

    The cached job-server jar (and its Flink version) when no
    ``--flink_job_server_jar`` is given, and the ``LOOPBACK`` environment when
    no ``--environment_type`` is. Raises ValueError when no jar is given or cached.
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
    if not portable.environment_type:
        portable.environment_type = "LOOPBACK"


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
