"""--runner FlinkRunner: the cached Beam Flink job server, the flags the pipelines fill in, a real run.

All but the last test need neither java nor the jar: they stop before Beam
starts the job server. The last runs the text pipeline on an embedded Flink
with the job server `make flink-jar` cached (`make test` fetches it first and
sets BEAMTRAIN_REQUIRE_FLINK=1, so there a missing jar fails instead of skipping).
"""

import filecmp
import glob
import os
import socket

import pytest
from apache_beam.options.pipeline_options import FlinkRunnerOptions, PipelineOptions, PortableOptions

from beam_pipelines import flink
from beam_pipelines.runner import prepare_options, runner_for, usable_cores
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


def test_embedded_flink_gets_the_cached_jar_and_one_sdk_worker_process_per_core(cache):
    version = flink.published_flink_versions()[0]
    jar = _fake_jar(cache, version)
    options = PipelineOptions(["--runner", "FlinkRunner", "--flink_master=[local]"])
    engine = prepare_options(options)
    assert options.view_as(FlinkRunnerOptions).flink_job_server_jar == jar
    assert options.view_as(FlinkRunnerOptions).flink_version == version
    portable = options.view_as(PortableOptions)
    assert portable.environment_type == "EXTERNAL"
    assert options.view_as(FlinkRunnerOptions).parallelism == usable_cores()
    assert portable.sdk_worker_parallelism == usable_cores()
    assert portable.environment_cache_millis >= 3600 * 1000  # not a fresh worker per stage
    assert runner_for(options) is None  # left to Beam
    with engine as address:  # the worker pool listens while the run lasts
        assert portable.environment_config == address
        host, port = address.split(":")
        socket.create_connection((host, int(port)), timeout=5).close()
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()


def test_a_flink_cluster_keeps_beams_environment_and_parallelism(cache):
    _fake_jar(cache, flink.published_flink_versions()[-1])
    options = PipelineOptions(["--runner", "FlinkRunner", "--flink_master", "jobmanager:8081"])
    engine = prepare_options(options)
    assert options.view_as(PortableOptions).environment_type is None  # Beam's default: Docker
    assert options.view_as(FlinkRunnerOptions).parallelism in (None, -1)
    with engine as nothing:
        assert nothing is None


def test_the_assembled_job_server_counts_only_with_its_lib_folder(cache):
    beam_flink, beam = flink.ASSEMBLED
    jar = cache / f"beam-runners-flink-{beam_flink}-job-server-{beam}.jar"
    jar.write_bytes(b"PK")
    assert flink.cached_job_server_jar() is None  # the manifest names jars that are not there
    lib = cache / f"lib-{beam_flink}-{beam}"
    lib.mkdir()
    (lib / f"beam-runners-flink-{beam_flink}-{beam}.jar").write_bytes(b"PK")
    assert flink.cached_job_server_jar() == str(jar)
    assert flink.parse_jar_name(str(jar)) == flink.ASSEMBLED
    # Beam's own jar for the installed Beam, when cached, comes first
    own = _fake_jar(cache, flink.published_flink_versions()[-1])
    assert flink.cached_job_server_jar() == own


def test_the_manifest_wraps_at_72_bytes_and_lists_every_jar():
    jars = [f"lib-1.19-2.62.0/some-rather-long-artifact-name-{i}-1.2.3.jar" for i in range(40)]
    raw = flink.manifest(flink.JOB_SERVER_MAIN, jars)
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 72 for line in lines)
    # unfolded as the JVM reads it: a line starting with one space continues the previous one
    unfolded = raw.replace(b"\r\n ", b"").decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in unfolded if line)
    assert fields["Main-Class"] == "org.apache.beam.runners.flink.FlinkJobServerDriver"
    assert fields["Class-Path"].split(" ") == jars
    assert raw.endswith(b"\r\n\r\n")


def test_flags_given_for_flink_are_kept(cache):
    _fake_jar(cache, flink.published_flink_versions()[-1])
    options = PipelineOptions(["--runner", "FlinkRunner", "--flink_job_server_jar", "/opt/js.jar",
                               "--environment_type", "EXTERNAL", "--environment_config", "localhost:50000"])
    prepare_options(options)
    assert options.view_as(FlinkRunnerOptions).flink_job_server_jar == "/opt/js.jar"
    assert options.view_as(PortableOptions).environment_type == "EXTERNAL"


def test_parallelism_given_for_an_embedded_flink_is_kept_even_at_beams_default(cache):
    _fake_jar(cache, flink.published_flink_versions()[-1])
    options = PipelineOptions(["--runner", "FlinkRunner", "--parallelism", "1", "--sdk_worker_parallelism", "1"])
    prepare_options(options)
    assert options.view_as(FlinkRunnerOptions).parallelism == 1
    assert int(options.view_as(PortableOptions).sdk_worker_parallelism) == 1
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


@pytest.mark.slow
def test_text_pipeline_on_an_embedded_flink_writes_the_same_shards_as_the_direct_runner(tmp_path, monkeypatch):
    monkeypatch.delenv("BEAMTRAIN_FLINK_CACHE", raising=False)
    jar = flink.cached_job_server_jar()
    if jar is None:
        if os.environ.get("BEAMTRAIN_REQUIRE_FLINK"):
            pytest.fail("no Flink job server cached: `make flink-jar` should have fetched it")
        pytest.skip("no Flink job server cached (make flink-jar)")
    args = ("--vocab_size", "400", "--num_shards", "2", "--report=false", "--max_dead_letter_fraction", "1")
    direct = run_text(SAMPLE, tmp_path / "direct", *args)
    on_flink = run_text(SAMPLE, tmp_path / "flink", *args, "--runner", "FlinkRunner", "--flink_master=[local]")
    assert on_flink["records_in"] == direct["records_in"] > 0
    for key in ("records_out", "filtered", "duplicates", "dead_letter"):
        assert on_flink[key] == direct[key], key
    shards = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "direct" / "data" / "*.tfrecord")))
    assert len(shards) == 4  # train and validation, 2 shards each
    assert sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "flink" / "data" / "*.tfrecord"))) == shards
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "direct" / "data", tmp_path / "flink" / "data", shards,
                                           shallow=False)
    assert not mismatch and not errors
    assert filecmp.cmp(tmp_path / "direct" / "tokenizer" / "spm.model",
                       tmp_path / "flink" / "tokenizer" / "spm.model", shallow=False)
    assert (tmp_path / "flink" / "COMPLETED").exists()
