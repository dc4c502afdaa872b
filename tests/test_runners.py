"""Beyond one machine: packaging, Runner API translation, the portable path, templates."""

import ast
import contextlib
import glob
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines import text
from beam_pipelines.config import text_config
from conftest import assert_accounting, read_shards, run_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("beam_pipelines", "transforms", "trainer")
sys.path.insert(0, os.path.join(ROOT, "templates"))
import make_metadata  # noqa: E402


# ---------------------------------------------------------------- packaging

def _project_imports():
    """Every module of ours that the package's modules import."""
    needed = set()
    for pkg in PACKAGES:
        for path in glob.glob(os.path.join(ROOT, pkg, "*.py")):
            tree = ast.parse(open(path).read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    needed.add(node.module)
                    for alias in node.names:
                        needed.add(f"{node.module}.{alias.name}")
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] in PACKAGES:
                            needed.add(alias.name)
    return needed


@pytest.mark.slow
def test_sdist_ships_every_module_the_pipelines_import(tmp_path):
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True)
    (sdist,) = glob.glob(str(tmp_path / "beamtrain-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert "setup.py" in names
    missing = []
    for module in _project_imports():
        as_module = module.replace(".", "/") + ".py"
        as_package = module.replace(".", "/") + "/__init__.py"
        parent = module.rsplit(".", 1)[0].replace(".", "/") + ".py"  # "from x import name"
        parent_package = module.rsplit(".", 1)[0].replace(".", "/") + "/__init__.py"
        if not ({as_module, as_package, parent, parent_package} & names):
            missing.append(module)
    assert not missing, missing
    for pkg in PACKAGES:
        for path in glob.glob(os.path.join(ROOT, pkg, "*.py")):
            assert os.path.relpath(path, ROOT) in names
    # data files the code reads at run time: remote workers install from this sdist
    stop_lists = glob.glob(os.path.join(ROOT, "transforms", "text", "stopwords", "*.txt"))
    assert stop_lists and all(os.path.relpath(p, ROOT) in names for p in stop_lists)


# ---------------------------------------------------------------- translation

def _config(extra):
    argv = ["--input", "gs://bucket/crawl/*.jsonl.gz", "--output_dir", "gs://bucket/out/v1"] + extra
    return PipelineOptions(argv), text_config(PipelineOptions(argv))


@pytest.mark.parametrize("runner_args", [
    # --dry_run: otherwise Beam checks the temp bucket's soft-delete policy over
    # the network when the pipeline is built
    ["--runner", "DataflowRunner", "--project", "my-project", "--region", "us-central1",
     "--temp_location", "gs://bucket/tmp", "--setup_file", "./setup.py", "--dry_run", "True"],
    ["--runner", "FlinkRunner", "--flink_master", "localhost:8081", "--environment_type", "DOCKER"],
], ids=["dataflow", "flink"])
def test_pipeline_translates_to_the_runner_api(runner_args):
    options, config = _config(runner_args)
    p = beam.Pipeline(options=options)
    text.build_pipeline(p, config)
    proto = p.to_runner_api()
    labels = {t.unique_name for t in proto.components.transforms.values()}
    for expected in ("Read", "Clean", "Filter", "ExactDedup", "NearDedup", "Pii", "Tokenize",
                     "WriteShards", "Finalize"):
        assert expected in labels, expected
    assert len(proto.components.transforms) > 100
    # and back: the proto is a complete pipeline
    beam.Pipeline.from_runner_api(proto, p.runner, options)


def test_dataflow_rejects_local_paths_in_one_line(capsys):
    with pytest.raises(SystemExit):
        text.run(["--input", "/home/me/data/*.jsonl", "--output_dir", "gs://b/out",
                  "--runner", "DataflowRunner"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --input:") and "gs://" in err[0]


def test_unknown_filesystem_is_rejected(capsys):
    with pytest.raises(SystemExit):
        text.run(["--input", "nosuchfs://x/*.jsonl", "--output_dir", "/tmp/x"])
    assert capsys.readouterr().err.startswith("error: --input:")


def test_template_style_boolean_parameters():
    opts = PipelineOptions(["--no_eos=true", "--no_near_dedup=false", "--near_dup_clusters"]) \
        .view_as(text.TextPipelineOptions)
    assert opts.no_eos is True and opts.no_near_dedup is False and opts.near_dup_clusters is True


# ---------------------------------------------------------------- templates

def test_metadata_is_in_step_with_the_options():
    assert make_metadata.main(["--check"]) == 0
    for pipeline in make_metadata.PIPELINES:
        _check_metadata(pipeline)


def _check_metadata(pipeline):
    meta = json.load(open(os.path.join(ROOT, "templates", pipeline, "metadata.json")))
    names = [p["name"] for p in meta["parameters"]]
    module, classes = make_metadata.options_class(pipeline)
    parser = make_metadata.option_parser(classes)
    dests = [a.dest for a in parser._actions if a.option_strings and a.dest != "help"]
    assert sorted(names) == sorted(dests), pipeline
    for param in meta["parameters"]:
        assert param["helpText"] and param["regexes"]
        pattern = re.compile(param["regexes"][0])
        default = parser.get_default(param["name"])
        if default is not None:
            value = str(default).lower() if isinstance(default, bool) else str(default)
            assert pattern.match(value), (param["name"], value)


@pytest.mark.parametrize("name,good,bad", [
    ("input", "gs://b/a/*.jsonl,gs://b/c/*.warc.gz", "/local/data.jsonl"),
    ("output_dir", "gs://b/out/2024-01", "out"),
    ("steps", "clean,dedup,tokenize", "clean,bogus"),
    ("vocab_size", "32000", "3"),
    ("near_dup_threshold", "0.85", "1.5"),
    ("no_eos", "true", "yes please"),
    ("near_dup_verify", "exact", "maybe"),
])
def test_metadata_regexes_accept_and_reject(name, good, bad):
    meta = json.load(open(os.path.join(ROOT, "templates", "text", "metadata.json")))
    (param,) = [p for p in meta["parameters"] if p["name"] == name]
    pattern = re.compile(param["regexes"][0])
    assert pattern.match(good) and not pattern.match(bad)


def test_every_pipeline_has_a_template():
    import importlib
    import inspect
    import pkgutil

    import beam_pipelines
    from beam_pipelines.options import PIPELINE_OPTIONS

    for mod in pkgutil.iter_modules(beam_pipelines.__path__):
        module = importlib.import_module(f"beam_pipelines.{mod.name}")
        # an entry point: a run() and a pipeline's options class (declared in beam_pipelines.options)
        has_options = hasattr(module, "run") and any(
            inspect.isclass(v) and v in PIPELINE_OPTIONS.values() for v in vars(module).values())
        if has_options:
            assert mod.name in make_metadata.PIPELINES, mod.name
            assert mod.name in PIPELINE_OPTIONS, mod.name
            assert os.path.exists(os.path.join(ROOT, "templates", mod.name, "metadata.json"))
            launcher = open(os.path.join(ROOT, "templates", "launch.py")).read()
            assert f'"{mod.name}"' in launcher, mod.name


def test_dockerfile_and_schedule_are_consistent():
    docker = open(os.path.join(ROOT, "templates", "Dockerfile")).read()
    assert "apache/beam_python3.11_sdk:${BEAM_VERSION}" in docker and "ARG BEAM_VERSION=2.77.0" in docker
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/template/templates/launch.py" in docker
    body = json.load(open(os.path.join(ROOT, "templates", "schedule", "text_weekly.json")))
    params = body["launchParameter"]["parameters"]
    meta = json.load(open(os.path.join(ROOT, "templates", "text", "metadata.json")))
    known = {p["name"]: re.compile(p["regexes"][0]) for p in meta["parameters"]}
    for name, value in params.items():
        assert name in known and known[name].match(value), (name, value)


# ---------------------------------------------------------------- the portable path, multi-processing

def small_corpus(tmp_path):
    from corpora import small_corpus as make

    return make(tmp_path, n=60)


def _shard_hashes(out):
    return {os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in glob.glob(os.path.join(str(out), "data", "*.tfrecord"))}


@pytest.fixture
def job_service(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
         "--port", "0", "--port_file", str(port_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = int(port_file.read_text().strip())
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"localhost:{port}"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_portable_runner_through_a_local_job_service_matches_direct(tmp_path, job_service):
    inp = small_corpus(tmp_path)
    args = ["--vocab_size", "600", "--num_shards", "2"]
    direct = run_text([str(inp / "*.jsonl")], tmp_path / "direct", *args)
    portable = run_text([str(inp / "*.jsonl")], tmp_path / "portable", *args,
                        "--runner", "PortableRunner", "--job_endpoint", job_service,
                        "--environment_type", "LOOPBACK")
    assert_accounting(portable, tmp_path / "portable")
    for key in ("records_in", "records_out", "filtered", "duplicates", "dead_letter"):
        assert portable[key] == direct[key], key
    assert _shard_hashes(tmp_path / "portable") == _shard_hashes(tmp_path / "direct")
    assert (tmp_path / "portable" / "COMPLETED").exists()


@pytest.mark.slow
def test_multi_processing_gives_the_same_records(tmp_path):
    inp = small_corpus(tmp_path)
    args = ["--vocab_size", "600", "--num_shards", "2", "--read_chunk_mb", "1"]
    single = run_text([str(inp / "*.jsonl")], tmp_path / "one", *args)
    multi = run_text([str(inp / "*.jsonl")], tmp_path / "two", *args,
                     "--direct_num_workers", "2", "--direct_running_mode", "multi_processing")
    assert_accounting(multi, tmp_path / "two")
    a = sorted((r["id"][0], tuple(r["input_ids"])) for r in read_shards(tmp_path / "one"))
    b = sorted((r["id"][0], tuple(r["input_ids"])) for r in read_shards(tmp_path / "two"))
    assert a == b and len(a) > 20
    assert _shard_hashes(tmp_path / "one") == _shard_hashes(tmp_path / "two")


def test_worker_handlers_are_closed_together():
    """The local runner stops its SDK workers at once, not one after the other: each fake
    handler's close waits at a barrier for all the others, which only a concurrent
    close passes; a failing close is logged and the rest still close."""
    import collections
    import threading

    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    from beam_pipelines.runner import _close_workers_together_in_beam, close_workers_together

    barrier = threading.Barrier(4, timeout=30)
    closed = []

    class Handler:
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def close(self):
            barrier.wait()
            closed.append(self.name)
            if self.fail:
                raise RuntimeError("worker gone")

    class Server:
        closed = False

        def close(self):
            Server.closed = True

    a, b, c, d = Handler("a"), Handler("b"), Handler("c", fail=True), Handler("d")
    manager = worker_handlers.WorkerHandlerManager.__new__(worker_handlers.WorkerHandlerManager)
    manager._cached_handlers = collections.defaultdict(list, {"env1": [a, b, a], "env2": [c, d]})
    manager._workers_by_id = {"w": a}
    manager._grpc_server = Server()
    close_workers_together(manager)
    assert sorted(closed) == ["a", "b", "c", "d"]  # each once, all past the barrier
    assert Server.closed and manager._grpc_server is None
    assert not manager._cached_handlers and manager._workers_by_id == {}
    _close_workers_together_in_beam()
    assert worker_handlers.WorkerHandlerManager.close_all is close_workers_together


# ---------------------------------------------------------------- every core, locally

def _direct(argv, input_bytes):
    from apache_beam.options.pipeline_options import DirectOptions

    from beam_pipelines.runner import prepare_options

    options = PipelineOptions(argv)
    with prepare_options(options, input_bytes):
        pass
    direct = options.view_as(DirectOptions)
    return direct.direct_num_workers, direct.direct_running_mode


def test_a_large_local_run_uses_every_core_and_a_small_one_stays_in_process(monkeypatch):
    from beam_pipelines.runner import PARALLEL_INPUT_BYTES

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert _direct([], PARALLEL_INPUT_BYTES) == (4, "multi_processing")
    assert _direct(["--runner", "DirectRunner"], 10 * PARALLEL_INPUT_BYTES) == (4, "multi_processing")
    assert _direct([], PARALLEL_INPUT_BYTES - 1) == (1, "in_memory")
    # the user's flags win, whatever the size
    assert _direct(["--direct_num_workers", "1"], 10 * PARALLEL_INPUT_BYTES) == (1, "in_memory")
    assert _direct(["--direct_running_mode", "multi_threading"], 10 * PARALLEL_INPUT_BYTES) == (
        1, "multi_threading")
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert _direct([], 10 * PARALLEL_INPUT_BYTES) == (1, "in_memory")
    # a process held to some CPUs (taskset, a container's cpuset) uses those, not the machine's
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 5}, raising=False)
    assert _direct([], 10 * PARALLEL_INPUT_BYTES) == (2, "multi_processing")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {7}, raising=False)
    assert _direct([], 10 * PARALLEL_INPUT_BYTES) == (1, "in_memory")


def test_flags_on_the_command_line_count_when_options_read_sys_argv(monkeypatch):
    from beam_pipelines.runner import PARALLEL_INPUT_BYTES

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    # `python -m beam_pipelines.text ...` builds its options from sys.argv (flags=None)
    monkeypatch.setattr(sys, "argv", ["text", "--input", "x", "--direct_num_workers", "1"])
    assert _direct(None, 10 * PARALLEL_INPUT_BYTES) == (1, "in_memory")
    monkeypatch.setattr(sys, "argv", ["text", "--input", "x"])
    assert _direct(None, 10 * PARALLEL_INPUT_BYTES) == (4, "multi_processing")


def test_check_inputs_returns_the_bytes_matched_once_per_file(tmp_path):
    from beam_pipelines.safety import check_inputs

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(b"x" * 1000)
    (tmp_path / "in" / "b.jsonl").write_bytes(b"y" * 24)
    both = str(tmp_path / "in" / "*.jsonl")
    assert check_inputs([both, str(tmp_path / "in" / "a.jsonl")], str(tmp_path / "out")) == 1024


# ---------------------------------------------------------------- bounded memory: spilling

def _spill_root(argv, input_bytes, local=True):
    from beam_pipelines.runner import spill_root

    return spill_root(PipelineOptions(argv), input_bytes, local)


def test_large_local_runs_spill_and_the_flags_decide(tmp_path):
    import tempfile

    from beam_pipelines.runner import PARALLEL_INPUT_BYTES

    big, small = 10 * PARALLEL_INPUT_BYTES, PARALLEL_INPUT_BYTES - 1
    assert _spill_root([], big) == tempfile.gettempdir()
    assert _spill_root(["--spill_dir", str(tmp_path)], big) == str(tmp_path)
    assert _spill_root([], small) is None  # small runs stay in memory
    assert _spill_root(["--spill", "always"], small) == tempfile.gettempdir()
    assert _spill_root(["--spill", "never"], big) is None
    assert _spill_root(["--wait_until_finish=false"], big) is None  # a submitted run outlives us
    assert _spill_root([], big, local=False) is None  # Dataflow, a Flink cluster: inline
    with pytest.raises(ValueError, match="needs a local engine"):
        _spill_root(["--spill", "always"], big, local=False)


def test_the_spill_directory_is_fresh_and_only_it_is_removed(tmp_path):
    from beam_pipelines.runner import spill_to
    from transforms import packing

    (tmp_path / "mine.txt").write_text("a user's file")
    before = os.environ.get(packing.SPILL_ENV)
    with pytest.raises(RuntimeError):
        with spill_to(str(tmp_path)) as directory:
            assert os.path.dirname(directory) == str(tmp_path)
            assert os.environ[packing.SPILL_ENV] == directory
            ref = packing.pack({"text": os.urandom(400).hex()}, spill=True)
            assert ref[:1] == b"\x03" and os.listdir(directory)
            raise RuntimeError("the run failed")
    assert os.listdir(tmp_path) == ["mine.txt"]  # removed even though the run failed
    assert os.environ.get(packing.SPILL_ENV) == before


def test_a_spilling_run_writes_the_same_bytes_and_leaves_nothing_behind(tmp_path, monkeypatch):
    from transforms import packing
    from transforms.text import tokenize

    started = []
    beside = tokenize.start_training
    monkeypatch.setattr(tokenize, "start_training", lambda *a: started.append(a) or beside(*a))
    inp = small_corpus(tmp_path)
    spill = tmp_path / "spill"
    args = ["--vocab_size", "600", "--num_shards", "2"]
    inline = run_text([str(inp / "*.jsonl")], tmp_path / "inline", *args, "--spill", "never")
    assert started == []  # no shared spill folder: trained in the step
    spilled = run_text([str(inp / "*.jsonl")], tmp_path / "spilled", *args, "--spill", "always",
                       "--spill_dir", str(spill))
    assert len(started) == 1  # trained beside the run, in a process of its own
    for name in ("spm.model", "spm.vocab"):
        assert (tmp_path / "spilled" / "tokenizer" / name).read_bytes() == \
            (tmp_path / "inline" / "tokenizer" / name).read_bytes()
    assert_accounting(spilled, tmp_path / "spilled")
    for key in ("records_out", "filtered", "duplicates", "pii", "near_dedup"):
        assert spilled[key] == inline[key], key
    assert spilled["duplicates"] == inline["duplicates"] and sum(
        spilled["duplicates"].values()) > 0
    assert _shard_hashes(tmp_path / "spilled") == _shard_hashes(tmp_path / "inline")
    assert os.listdir(spill) == [] and packing.SPILL_ENV not in os.environ


@pytest.mark.slow
def test_worker_processes_read_each_others_spills(tmp_path):
    inp = small_corpus(tmp_path)
    args = ["--vocab_size", "600", "--num_shards", "2", "--read_chunk_mb", "1"]
    single = run_text([str(inp / "*.jsonl")], tmp_path / "one", *args, "--spill", "never")
    multi = run_text([str(inp / "*.jsonl")], tmp_path / "two", *args, "--spill", "always",
                     "--spill_dir", str(tmp_path / "spill"), "--direct_num_workers", "2",
                     "--direct_running_mode", "multi_processing")
    assert_accounting(multi, tmp_path / "two")
    assert (multi["records_out"], multi["duplicates"]) == (single["records_out"], single["duplicates"])
    assert _shard_hashes(tmp_path / "one") == _shard_hashes(tmp_path / "two")
    assert os.listdir(tmp_path / "spill") == []


def test_a_spill_folder_in_memory_is_named_in_a_warning(tmp_path, monkeypatch, caplog):
    from beam_pipelines import runner

    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\n"
                      f"tmpfs {tmp_path}/ram tmpfs rw 0 0\n"
                      f"/dev/vdb {tmp_path}/ram/disk ext4 rw 0 0\n")
    assert runner.filesystem_type(str(tmp_path / "ram" / "x"), str(mounts)) == "tmpfs"
    assert runner.filesystem_type(str(tmp_path / "ram" / "disk" / "x"), str(mounts)) == "ext4"
    assert runner.filesystem_type(str(tmp_path / "ramble"), str(mounts)) == "ext4"
    assert runner.filesystem_type("/x", str(tmp_path / "missing")) is None
    real = runner.filesystem_type
    monkeypatch.setattr(runner, "filesystem_type", lambda path: real(path, str(mounts)))
    (tmp_path / "ram").mkdir()
    with caplog.at_level("WARNING"):
        with runner.spill_to(str(tmp_path / "ram")):
            pass
        with runner.spill_to(str(tmp_path / "disk")):
            pass
    warned = [r.getMessage() for r in caplog.records if "spill folder" in r.getMessage()]
    assert len(warned) == 1 and "tmpfs" in warned[0] and "--spill_dir" in warned[0]


def test_spills_are_compressed_only_where_the_disk_is_short_or_in_memory(tmp_path, monkeypatch):
    from beam_pipelines import runner
    from transforms import packing

    class Stat:
        f_frsize = 4096
        f_bavail = (10 << 30) // 4096  # 10 GiB free

    monkeypatch.setattr(runner.os, "statvfs", lambda path: Stat)
    gib = 1 << 30
    assert not runner.compress_spills(str(tmp_path), gib)  # room for 8 times the input
    assert runner.compress_spills(str(tmp_path), 2 * gib)
    assert runner.compress_spills(str(tmp_path), gib, in_memory=True)
    assert runner.compress_spills(str(tmp_path), 0, "zstd")
    assert not runner.compress_spills(str(tmp_path), 100 * gib, "none")
    with pytest.raises(ValueError, match="spill_compression"):
        runner.compress_spills(str(tmp_path), 0, "lz4")
    before = os.environ.get(packing.SPILL_COMPRESS_ENV)
    with runner.spill_to(str(tmp_path), gib):
        assert os.environ[packing.SPILL_COMPRESS_ENV] == "0"
    with runner.spill_to(str(tmp_path), 2 * gib, "auto"):
        assert os.environ[packing.SPILL_COMPRESS_ENV] == "1"
    with runner.spill_to(str(tmp_path), 2 * gib, "none"):
        assert os.environ[packing.SPILL_COMPRESS_ENV] == "0"
    assert os.environ.get(packing.SPILL_COMPRESS_ENV) == before


def test_the_spill_compression_flag_reaches_the_spill(tmp_path, monkeypatch):
    from beam_pipelines import runner
    from transforms import packing

    seen = []
    real = runner.spill_to

    @contextlib.contextmanager
    def spying(root, input_bytes=0, compression="auto"):
        with real(root, input_bytes, compression) as directory:
            seen.append((compression, os.environ[packing.SPILL_COMPRESS_ENV]))
            yield directory

    monkeypatch.setattr(runner, "spill_to", spying)
    options = PipelineOptions(["--spill", "always", "--spill_dir", str(tmp_path),
                               "--spill_compression", "zstd"])
    with runner.prepare_options(options, 1 << 20):
        pass
    assert seen == [("zstd", "1")]


def test_a_run_stopped_by_sigterm_removes_its_spill_folder(tmp_path):
    """A plain kill (SIGTERM) during a spilling run: the command exits 143 and leaves no
    spill folder (the corpus before the pii step) and no output marked complete."""
    import signal

    inp = small_corpus(tmp_path)
    spill = tmp_path / "spill"
    spill.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "beam_pipelines.text", "--input", str(inp / "*.jsonl"),
         "--output_dir", str(tmp_path / "out"), "--vocab_size", "600", "--spill", "always",
         "--spill_dir", str(spill)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(__file__)))
    deadline = time.time() + 120
    while not os.listdir(spill) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert os.listdir(spill), "the run never made its spill folder"
    time.sleep(1.0)  # inside the pipeline now
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode(errors="replace")[-2000:]
    assert b"stopped by SIGTERM" in err
    assert os.listdir(spill) == []
    assert not (tmp_path / "out" / "COMPLETED").exists()
