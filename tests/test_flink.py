"""--runner FlinkRunner: the cached Beam Flink job server, and the flags the pipelines fill in.

These checks need neither java nor the jar: they stop before Beam starts the job server.
"""

import os

import pytest
from apache_beam.options.pipeline_options import FlinkRunnerOptions, PipelineOptions, PortableOptions

from beam_pipelines import flink
from beam_pipelines.runner import prepare_options, runner_for
from conftest import ROOT, run_text

SAMPLE = [os.path.join(ROOT, "data", "sample", "jsonl", "*"), os.path.join(ROOT, "data", "sample", "text", "*")]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "flink-cache"
    d.mkdir()
    monkeypatch.setenv("BEAMTRAIN_FLINK_CACHE", str(d))
    monkeypatch.delenv("BEAMTRAIN_FLINK_VERSION", raising=False)
    return d


def _fake_jar(cache, flink_version):
    path = cache / f"beam-runners-flink-{flink_version}-job-server-{flink.beam_version()}.jar"
    path.write_bytes(b"PK")
    return str(path)


def test_coordinates_name_the_installed_beam_and_a_published_flink():
    versions = flink.published_flink_versions()
    assert versions
    assert flink.coordinates(versions[0]) == (
        f"org.apache.beam:beam-runners-flink-{versions[0]}-job-server:{flink.beam_version()}")
    assert flink.parse_jar_name("/x/beam-runners-flink-1.19-job-server-2.77.0.jar") == ("1.19", "2.77.0")
    assert flink.parse_jar_name("/x/other.jar") is None


def test_the_cached_jar_is_found_and_the_newest_flink_wins(cache):
    assert flink.cached_job_server_jar() is None
    old, new = flink.published_flink_versions()[0], flink.published_flink_versions()[-1]
    oldest = _fake_jar(cache, old)
    assert flink.cached_job_server_jar() == oldest
    newest = _fake_jar(cache, new)
    assert flink.cached_job_server_jar() == newest
    assert flink.cached_job_server_jar(old) == oldest


def test_flink_runner_gets_the_cached_jar_its_flink_version_and_loopback(cache):
    version = flink.published_flink_versions()[0]
    jar = _fake_jar(cache, version)
    options = PipelineOptions(["--runner", "FlinkRunner", "--flink_master=[local]"])
    prepare_options(options)
    assert options.view_as(FlinkRunnerOptions).flink_job_server_jar == jar
    assert options.view_as(FlinkRunnerOptions).flink_version == version
    assert options.view_as(PortableOptions).environment_type == "LOOPBACK"
    assert runner_for(options) is None  # left to Beam


def test_flags_given_for_flink_are_kept(cache):
    _fake_jar(cache, flink.published_flink_versions()[-1])
    options = PipelineOptions(["--runner", "FlinkRunner", "--flink_job_server_jar", "/opt/js.jar",
                               "--environment_type", "EXTERNAL", "--environment_config", "localhost:50000"])
    prepare_options(options)
    assert options.view_as(FlinkRunnerOptions).flink_job_server_jar == "/opt/js.jar"
    assert options.view_as(PortableOptions).environment_type == "EXTERNAL"


def test_direct_runner_options_are_left_alone(cache):
    _fake_jar(cache, flink.published_flink_versions()[-1])
    options = PipelineOptions([])
    before = options.get_all_options()
    prepare_options(options)
    assert options.get_all_options() == before
    assert runner_for(options) is not None


def test_flink_without_a_jar_exits_2_before_touching_the_output(cache, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        run_text(SAMPLE, out, "--steps", "clean", "--num_shards", "1", "--report=false",
                 "--runner", "FlinkRunner", "--flink_master=[local]")
    assert e.value.code == 2
    assert "make flink-jar" in capsys.readouterr().err
    assert not out.exists()
