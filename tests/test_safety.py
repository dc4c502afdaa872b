"""The run-level safety rules: ownership of the output folder, inputs, flags, identity, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, assert_accounting, read_dead_letter, read_shards, run_text

WORDS = ("river stone lamp orchard violin harbour meadow lantern copper willow canyon glacier "
         "pepper saddle thunder marble falcon cedar ribbon quarry").split()


def _doc(i: int, n: int = 60) -> str:
    # distinct documents (seeded random words): far below any near-duplicate threshold
    import random

    rng = random.Random(i)
    return " ".join(f"{rng.choice(WORDS)}{rng.randrange(1000)}" for _ in range(n)) + "."


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path):
    inp = tmp_path / "in"
    _jsonl(inp / "a.jsonl", [{"id": str(i), "text": _doc(i)} for i in range(6)])
    return inp


STEPS = ("--steps", "clean,dedup", "--num_shards", "1", "--report=false")


def _exit_code(fn):
    with pytest.raises(SystemExit) as e:
        fn()
    return e.value.code


# -- ownership of the output folder -------------------------------------------------------

def test_a_foreign_non_empty_folder_is_refused_and_left_untouched(corpus, tmp_path, capsys):
    out = tmp_path / "mine"
    planted = {"data/train-00000-of-00001.tfrecord": b"user shard", "stats.json": b"{}",
               "tokenizer/spm.model": b"model", "labels.txt": b"cat\n", "notes.txt": b"hi"}
    for rel, data in planted.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    code = _exit_code(lambda: run_text([corpus / "*.jsonl"], out, *STEPS))
    assert code == 2
    assert "no beamtrain run wrote it" in capsys.readouterr().err
    for rel, data in planted.items():
        assert (out / rel).read_bytes() == data


def test_a_rerun_deletes_only_what_the_manifest_lists(corpus, tmp_path):
    out = tmp_path / "out"
    run_text([corpus / "*.jsonl"], out, *STEPS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "stats.json" in manifest["files"] and "COMPLETED" in manifest["files"]
    assert all(s["path"] in manifest["files"] for s in manifest["shards"])
    (out / "model").mkdir()
    (out / "model" / "weights.h5").write_bytes(b"w")
    (out / "notes.txt").write_text("mine")
    # a different shard count: the old shard names must go, the user's files stay
    stats = run_text([corpus / "*.jsonl"], out, "--steps", "clean,dedup", "--num_shards", "2",
                     "--report=false")
    assert_accounting(stats, out)
    assert (out / "model" / "weights.h5").read_bytes() == b"w"
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(out / "data")) == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
        "validation-00000-of-00001.tfrecord"]


def test_a_foreign_file_where_the_run_writes_is_refused(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    run_text([corpus / "*.jsonl"], out, *STEPS)
    intruder = out / "data" / "train-00003-of-00004.tfrecord"
    intruder.write_bytes(b"not ours")
    assert _exit_code(lambda: run_text([corpus / "*.jsonl"], out, *STEPS)) == 2
    assert "was not written by beamtrain" in capsys.readouterr().err
    assert intruder.read_bytes() == b"not ours"


def test_what_a_killed_run_left_is_cleared_but_foreign_files_stay(corpus, tmp_path):
    from beam_pipelines import safety

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user")
    with pytest.raises(safety.OptionError):
        safety.prepare_output_dir(str(out))  # not empty, not ours
    os.remove(out / "keep.txt")
    safety.prepare_output_dir(str(out))  # empty: claimed
    (out / "keep.txt").write_text("user")  # the user adds a file, then a run is killed:
    (out / "data").mkdir()
    (out / "data" / "train-00000-of-00003.tfrecord").write_bytes(b"partial")
    (out / "beam-temp-samples-123").mkdir()
    (out / "beam-temp-samples-123" / "part").write_bytes(b"x")
    (out / "dead_letter").mkdir()
    (out / "dead_letter" / "beam-temp-dead_letter-9").mkdir()
    (out / "dead_letter" / "beam-temp-dead_letter-9" / "x").write_bytes(b"x")
    deleted = safety.prepare_output_dir(str(out))
    assert "data/train-00000-of-00003.tfrecord" in deleted
    assert "beam-temp-samples-123/part" in deleted
    assert (out / "keep.txt").read_text() == "user"
    assert not (out / "data" / "train-00000-of-00003.tfrecord").exists()
    assert json.loads((out / safety.CLAIM).read_text())["foreign"] == ["keep.txt"]


def test_an_output_folder_overlapping_an_input_is_refused(corpus, tmp_path, capsys):
    assert _exit_code(lambda: run_text([corpus / "**"], corpus / "out", *STEPS)) == 2
    assert "input" in capsys.readouterr().err
    assert not (corpus / "out").exists()
    # the inputs live inside the output folder
    assert _exit_code(lambda: run_text([corpus / "*.jsonl"], corpus.parent, *STEPS)) == 2


def test_a_glob_matching_nothing_is_refused_naming_it(corpus, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "*.jsonl"
    code = _exit_code(lambda: run_text([corpus / "*.jsonl", missing], tmp_path / "out", *STEPS))
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "matches no file" in err


# -- flags and parameters -----------------------------------------------------------------

def test_unknown_flags_exit_2_naming_them(corpus, tmp_path, capsys):
    code = _exit_code(lambda: run_text([corpus / "*.jsonl"], tmp_path / "out", "--vocab_sise", "900"))
    assert code == 2
    assert "--vocab_sise" in capsys.readouterr().err


def test_pipeline_flags_are_known_to_their_own_pipeline_only():
    from beam_pipelines import images, multimodal, safety, text

    both = [images.ImagePipelineOptions, multimodal.MultimodalPipelineOptions]
    safety.check_flags(["--input", "x", "--caption_vocab_size", "400", "--image_size", "64"], both)
    safety.check_flags(["--runner", "FlinkRunner", "--flink_master=[local]"], [text.TextPipelineOptions])
    with pytest.raises(safety.OptionError, match="--caption_vocab_size"):
        safety.check_flags(["--caption_vocab_size", "400"], [text.TextPipelineOptions])


def test_a_vocabulary_sentencepiece_cannot_build_is_refused_up_front(corpus, tmp_path, capsys):
    code = _exit_code(lambda: run_text([corpus / "*.jsonl"], tmp_path / "out", "--vocab_size", "100"))
    assert code == 2
    assert "--vocab_size" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_images_expand_dates_and_refuse_local_paths_on_dataflow(tmp_path, capsys):
    from beam_pipelines import images
    from beam_pipelines.config import image_config
    from apache_beam.options.pipeline_options import PipelineOptions

    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(b"x")
    opts = PipelineOptions(["--input", str(tmp_path / "img" / "*"),
                            "--output_dir", str(tmp_path / "out-{date}")])
    config = image_config(opts)
    assert "{date}" not in config.output_dir and config.output_dir.startswith(str(tmp_path))
    code = _exit_code(lambda: images.run(["--input", "gs://b/img/*", "--output_dir",
                                          str(tmp_path / "o"), "--runner", "DataflowRunner"]))
    assert code == 2
    assert "local path" in capsys.readouterr().err


# -- failures -----------------------------------------------------------------------------

def test_a_run_that_writes_nothing_fails_without_completed(tmp_path):
    from beam_pipelines import outputs

    inp = _jsonl(tmp_path / "in" / "a.jsonl", [{"id": str(i), "text": "short"} for i in range(3)])
    out = tmp_path / "out"
    with pytest.raises(outputs.RunFailed, match="EmptyOutputError: no record was written"):
        run_text([inp], out, "--steps", "clean,filter,tokenize", "--report=false")
    assert (out / "stats.json").exists() and not (out / "COMPLETED").exists()
    stats = run_text([inp], out, "--steps", "clean,filter", "--allow_empty", "--report=false")
    assert stats["records_out"] == 0 and (out / "COMPLETED").exists()


@pytest.mark.slow
def test_a_failed_run_prints_its_one_line_cause_last(tmp_path):
    inp = _jsonl(tmp_path / "in" / "a.jsonl", [{"id": "1", "text": "tiny"}])
    proc = subprocess.run(
        [sys.executable, "-m", "beam_pipelines.text", "--input", str(inp), "--output_dir",
         str(tmp_path / "out"), "--steps", "clean,filter", "--report=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("error: EmptyOutputError: no record was written"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_one_line_cause_finds_the_cause_inside_beams_wrapping():
    from beam_pipelines.safety import one_line_cause

    wrapped = RuntimeError("Traceback (most recent call last):\n  File x\n"
                           "transforms.write.finalize.TooManyBrokenRecords: 9 of 10 input records are broken"
                           " [while running 'Finalize']")
    assert one_line_cause(wrapped).startswith("TooManyBrokenRecords: 9 of 10")


def test_submitting_without_waiting_returns_at_once_and_the_pipeline_writes_everything(corpus, tmp_path):
    out = tmp_path / "out"
    assert run_text([corpus / "*.jsonl"], out, "--steps", "clean,dedup",
                    "--wait_until_finish=false") is None
    # the direct runner finishes in run(); the report was drawn by the pipeline itself
    assert (out / "COMPLETED").exists() and (out / "report.html").exists()
    done = json.loads((out / "COMPLETED").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert done["config_sha256"] == manifest["config_sha256"]
    assert done["content_sha256"] == manifest["content_sha256"]


# -- identity -----------------------------------------------------------------------------

def test_documents_sharing_an_id_are_all_kept_with_unique_ids(tmp_path):
    inp = tmp_path / "in"
    # ids numbered per file: the same ids, different documents
    _jsonl(inp / "x" / "part.jsonl", [{"id": str(i), "text": _doc(i)} for i in range(5)])
    _jsonl(inp / "y" / "part.jsonl", [{"id": str(i), "text": _doc(100 + i)} for i in range(5)])
    out = tmp_path / "out"
    stats = run_text([inp / "x" / "*.jsonl", inp / "y" / "*.jsonl"], out,
                     "--steps", "clean,dedup", "--report=false")
    assert_accounting(stats, out)
    assert stats["records_out"] == 10 and stats["duplicates"] == {"exact": 0, "near": 0}
    ids = sorted(r["id"][0].decode() for r in read_shards(out))
    assert len(set(ids)) == 10
    assert sum(i.endswith("#dup1") for i in ids) == 5
    assert stats["info"]["duplicate_ids"] == 5


def test_duplicate_ids_can_go_to_the_dead_letter(tmp_path):
    inp = tmp_path / "in"
    _jsonl(inp / "a.jsonl", [{"id": "same", "text": _doc(i)} for i in range(3)])
    out = tmp_path / "out"
    stats = run_text([inp / "*.jsonl"], out, "--steps", "clean", "--duplicate_ids", "dead_letter",
                     "--report=false", "--max_dead_letter_fraction", "1")
    assert_accounting(stats, out)
    assert stats["records_out"] == 1 and stats["dead_letter"] == {"duplicate_id": 2}
    assert {e["reason"] for e in read_dead_letter(out)} == {"duplicate_id"}


def test_text_files_with_the_same_relative_name_under_two_globs_both_survive(tmp_path):
    for root, i in (("p", 1), ("q", 2)):
        (tmp_path / root).mkdir()
        (tmp_path / root / "doc.txt").write_text(_doc(i, 200))
    out = tmp_path / "out"
    stats = run_text([tmp_path / "p" / "*.txt", tmp_path / "q" / "*.txt"], out,
                     "--steps", "clean,dedup", "--report=false")
    assert stats["records_out"] == 2 and stats["duplicates"]["near"] == 0


def test_renamed_examples_equal_encoding_the_renamed_record():
    from transforms.write import shards as writers

    features = {"id": "doc-7", "source": "a.jsonl", "text": "hello", "input_ids": [5, 6, 7]}
    data = writers.encode_example(features)
    assert writers.with_id(data, "doc-7#dup1") == writers.encode_example(
        dict(features, id="doc-7#dup1"))
    assert writers.placement_id("doc-7#dup12") == "doc-7"
    assert writers.placement_id("doc-7#dup0") == "doc-7#dup0"


# -- provenance ---------------------------------------------------------------------------

def test_examples_keep_source_url_and_license_and_stats_count_per_source(tmp_path):
    inp = tmp_path / "in"
    _jsonl(inp / "a.jsonl", [{"id": "1", "text": _doc(1), "url": "https://example.org/1",
                              "license": "CC-BY-4.0"},
                             {"id": "2", "text": _doc(2)}])
    _jsonl(inp / "b.jsonl", [{"id": "3", "text": _doc(3)}])
    out = tmp_path / "out"
    stats = run_text([inp / "*.jsonl"], out, "--steps", "clean,dedup,tokenize",
                     "--vocab_size", "300", "--report=false")
    rows = {r["id"][0].decode(): r for r in read_shards(out)}
    assert rows["1"]["url"] == [b"https://example.org/1"]
    assert rows["1"]["license"] == [b"CC-BY-4.0"]
    assert "url" not in rows["2"] and rows["2"]["source"][0].decode().endswith("a.jsonl")
    by_source = {os.path.basename(k): v for k, v in stats["sources"].items()}
    assert by_source["a.jsonl"]["records"] == 2 and by_source["b.jsonl"]["records"] == 1
    assert by_source["a.jsonl"]["tokens"] == sum(len(rows[i]["input_ids"]) for i in ("1", "2"))


# -- trainer ------------------------------------------------------------------------------

def test_the_trainer_refuses_an_unfinished_dataset(corpus, tmp_path):
    from trainer import input_pipeline as ip

    out = tmp_path / "out"
    run_text([corpus / "*.jsonl"], out, *STEPS)
    ip.check_dataset(str(out))
    os.remove(out / "COMPLETED")
    with pytest.raises(ip.DatasetNotReady, match="no COMPLETED"):
        ip.check_dataset(str(out))
    (out / "COMPLETED").write_text(json.dumps({"content_sha256": "0" * 64}))
    with pytest.raises(ip.DatasetNotReady, match="another run"):
        ip.check_dataset(str(out))


def test_the_image_pipeline_reruns_in_its_own_folder(tmp_path):
    """Every file a run writes (TFDS label files too) is in its manifest, so a rerun is allowed."""
    from beam_pipelines import images

    out = tmp_path / "images"
    argv = ["--input", os.path.join(ROOT, "data", "sample", "images", "train", "*", "*"),
            "--output_dir", str(out), "--image_size", "32", "--max_dead_letter_fraction", "0.5",
            "--report=false"]
    images.run(argv)
    listed = set(json.loads((out / "manifest.json").read_text())["files"])
    on_disk = {os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs}
    assert on_disk <= listed, on_disk - listed
    stats = images.run(argv)
    assert stats["accounting"]["holds"] and (out / "COMPLETED").exists()
