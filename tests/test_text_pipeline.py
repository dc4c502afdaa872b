"""The text pipeline end to end: outputs, accounting, determinism, options."""

import glob
import hashlib
import json
import os

import pytest

from beam_pipelines import demo, options, text
from conftest import assert_accounting, read_dead_letter, read_shards, run_text
from corpora import small_corpus


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    stats = run_text(demo.sample_inputs(), out, "--vocab_size", "2000")
    return stats, out


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_demo_corpus_outputs_and_accounting(demo_run):
    stats, out = demo_run
    assert_accounting(stats, out)
    for name in ("COMPLETED", "stats.json", "manifest.json", "tokenizer/spm.model", "tokenizer/spm.vocab"):
        assert (out / name).exists(), name
    # every stage did something on the sample corpus
    assert stats["duplicates"]["exact"] > 0
    assert sum(stats["filtered"].values()) > 0
    assert sum(stats["dead_letter"].values()) > 0
    assert stats["records_out_by_split"]["train"] > 0
    assert stats["records_out_by_split"]["validation"] > 0
    rows = read_shards(out)
    assert all("input_ids" in r and "text" not in r for r in rows)
    ids = [r["id"][0] for r in rows]
    assert len(ids) == len(set(ids))
    assert sum(len(r["input_ids"]) for r in rows) == sum(s["tokens"] for s in stats["splits"].values())


def test_manifest_describes_the_shards(demo_run):
    stats, out = demo_run
    manifest = json.loads((out / "manifest.json").read_text())
    shard_files = sorted(os.path.relpath(p, out) for p in glob.glob(str(out / "data" / "*.tfrecord")))
    assert sorted(s["path"] for s in manifest["shards"]) == shard_files
    for shard in manifest["shards"]:
        assert shard["sha256"] == _sha256(out / shard["path"])
        in_file = [r for r in read_shards(out) if r["_shard"] == os.path.basename(shard["path"])]
        assert shard["records"] == len(in_file)
    assert sum(s["records"] for s in manifest["shards"]) == stats["records_out"]
    assert manifest["tokenizer"]["sha256"] == _sha256(out / "tokenizer" / "spm.model")
    assert {f["path"] for f in manifest["inputs"]} >= {p for g in demo.sample_inputs() for p in glob.glob(g)}
    assert manifest["config"]["steps"] == ["clean", "lang", "filter", "dedup", "pii", "tokenize"]
    assert manifest["code_version"]["apache_beam"]


def test_dead_letter_entries_carry_provenance(demo_run):
    _, out = demo_run
    entries = read_dead_letter(out)
    assert entries
    for e in entries:
        assert os.path.exists(e["source"])
        assert isinstance(e["position"], int) and e["position"] >= 0
        assert e["reason"] and e["unit"] in ("byte", "row", "file")


def test_boilerplate_and_mojibake_gone_from_output(demo_run):
    import sentencepiece as spm

    _, out = demo_run
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer" / "spm.model"))
    texts = [sp.decode([t for t in r["input_ids"] if t != 3]) for r in read_shards(out)]
    joined = "\n".join(texts)
    assert "Ã©" not in joined and "â€™" not in joined
    assert "Copyright 2001" not in joined  # the docs' footer
    assert "\x00" not in joined


@pytest.mark.slow
def test_same_input_twice_same_records_ids_and_tokens(tmp_path):
    inp = small_corpus(tmp_path)
    outs = []
    for run in ("one", "two"):
        out = tmp_path / run
        stats = run_text([str(inp / "*.jsonl")], out, "--vocab_size", "600", "--num_shards", "3")
        assert_accounting(stats, out)
        outs.append(out)
    a = sorted((r["id"][0], tuple(r["input_ids"])) for r in read_shards(outs[0]))
    b = sorted((r["id"][0], tuple(r["input_ids"])) for r in read_shards(outs[1]))
    assert a == b and len(a) > 50
    # and byte for byte: the same shards, the same tokenizer
    for path in glob.glob(str(outs[0] / "data" / "*.tfrecord")) + [str(outs[0] / "tokenizer" / "spm.model")]:
        rel = os.path.relpath(path, outs[0])
        assert _sha256(path) == _sha256(outs[1] / rel), rel
    assert len(glob.glob(str(outs[0] / "data" / "train-*-of-00003.tfrecord"))) == 3


def test_steps_without_tokenize_write_text(tmp_path):
    inp = small_corpus(tmp_path)
    out = tmp_path / "out"
    stats = run_text([str(inp / "*.jsonl")], out, "--steps", "clean,dedup")
    assert_accounting(stats, out)
    rows = read_shards(out)
    assert all("text" in r and "input_ids" not in r for r in rows)
    assert stats["duplicates"]["exact"] == 1 and stats["filtered"] == {}
    assert not (out / "tokenizer").exists()


@pytest.mark.slow
def test_reuse_a_tokenizer_model(tmp_path):
    inp = small_corpus(tmp_path)
    first = tmp_path / "first"
    run_text([str(inp / "*.jsonl")], first, "--vocab_size", "600")
    model = tmp_path / "saved.model"
    model.write_bytes((first / "tokenizer" / "spm.model").read_bytes())
    second = tmp_path / "second"
    stats = run_text([str(inp / "*.jsonl")], second, "--tokenizer_model", str(model))
    assert_accounting(stats, second)
    assert _sha256(second / "tokenizer" / "spm.model") == _sha256(model)
    a = sorted((r["id"][0], tuple(r["input_ids"])) for r in read_shards(first))
    b = sorted((r["id"][0], tuple(r["input_ids"])) for r in read_shards(second))
    assert a == b


def test_rerun_replaces_previous_output(tmp_path):
    inp = small_corpus(tmp_path)
    out = tmp_path / "out"
    run_text([str(inp / "*.jsonl")], out, "--steps", "clean", "--num_shards", "4")
    run_text([str(inp / "*.jsonl")], out, "--steps", "clean", "--num_shards", "2")
    names = sorted(os.path.basename(p) for p in glob.glob(str(out / "data" / "*")))
    assert names == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
                     "validation-00000-of-00002.tfrecord", "validation-00001-of-00002.tfrecord"]


@pytest.mark.parametrize("args,needle", [
    (["--steps", "clean,bogus"], "--steps: unknown step 'bogus'"),
    (["--pii_mode", "pseudonym", "--pii_salt_env", "BEAMTRAIN_TEST_UNSET_SALT"], "--pii_*"),
    (["--pii_kinds", "EMAIL,NAMES"], "--pii_*"),
    (["--blocklist_file", "/nonexistent/words.txt"], "--blocklist_file"),
    (["--near_dup_threshold", "1.5"], "--near_dup_threshold"),
    (["--num_shards", "-1"], "--num_shards"),
    (["--validation_fraction", "1.5"], "--validation_fraction"),
    (["--vocab_size", "3"], "--vocab_size"),
    (["--filter_config", '{"no_such_rule": 1}'], "--filter_config"),
    (["--filter_config", "{not json"], "--filter_config"),
    (["--tokenizer_model", "/nonexistent/spm.model"], "--tokenizer_model"),
])
def test_bad_parameters_get_a_one_line_error(tmp_path, capsys, args, needle):
    inp = small_corpus(tmp_path)
    with pytest.raises(SystemExit) as exc:
        run_text([str(inp / "*.jsonl")], tmp_path / "out", *args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_missing_input_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        text.run(["--output_dir", str(tmp_path / "out")])
    assert "--input" in capsys.readouterr().err


def test_parse_steps_orders_and_defaults():
    assert options.parse_steps(None) == ["clean", "lang", "filter", "dedup", "pii", "tokenize"]
    assert options.parse_steps("filter,lang,clean") == ["clean", "lang", "filter"]
    assert options.parse_steps("tokenize,clean") == ["clean", "tokenize"]
    with pytest.raises(options.OptionError):
        options.parse_steps("clean,clean")


def test_everything_filtered_completes_with_empty_splits_only_when_allowed(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "short.jsonl").write_text("\n".join(json.dumps({"text": f"Too short {i}."}) for i in range(5)))
    out = tmp_path / "out"
    stats = run_text([str(inp / "*.jsonl")], out, "--allow_empty")
    assert_accounting(stats, out)
    assert stats["records_out"] == 0 and sum(stats["filtered"].values()) == 5
    assert (out / "COMPLETED").exists()
    assert sorted(os.listdir(out / "data")) == ["train-00000-of-00001.tfrecord",
                                                "validation-00000-of-00001.tfrecord"]
    assert json.loads((out / "manifest.json").read_text())["tokenizer"] is None


def test_pii_never_reaches_the_tokenizer_though_its_sample_is_drawn_before_the_pii_step(
        tmp_path, monkeypatch):
    """The tokenizer's sample comes from exact dedup's survivors (so that training runs
    beside near dedup and PII); each sampled text is scrubbed first, as the PII step
    scrubs that record."""
    from transforms.text import tokenizer_core

    trained_on = []
    train = tokenizer_core.train_sentencepiece
    monkeypatch.setattr(tokenizer_core, "train_sentencepiece",
                        lambda docs, config: trained_on.extend(docs) or train(docs, config))
    inp = small_corpus(tmp_path)
    for name in ("a.jsonl", "b.jsonl"):
        lines = []
        for i, line in enumerate((inp / name).read_text().splitlines()):
            record = json.loads(line)
            record["text"] += (f"\nMail quentin.zylberstein@hollowmere-example.com about item {i}."
                               f"\nThe token ghp_Zk4qW9xVt2LmR8sNcY6pJd3HfB7gTa1EuK5o is not for "
                               f"sharing, nor is the number +1 415 555 0199.")
            lines.append(json.dumps(record))
        (inp / name).write_text("\n".join(lines) + "\n")
    stats = run_text([str(inp / "*.jsonl")], tmp_path / "out", "--vocab_size", "1000",
                     "--pii_mode", "mask")
    assert min(stats["pii"][kind] for kind in ("EMAIL", "SECRET", "PHONE")) >= stats["records_out"] > 50
    # every survivor of exact dedup (the sample holds up to 20,000), near duplicates too
    assert len(trained_on) == stats["records_out"] + stats["duplicates"]["near"]
    masked = sum(doc.count("[REDACTED]") for doc in trained_on)
    assert masked >= 3 * len(trained_on)
    for secret in ("zylberstein", "hollowmere", "ghp_Zk4q", "555 0199"):
        assert not any(secret in doc for doc in trained_on), secret
    vocab = (tmp_path / "out" / "tokenizer" / "spm.vocab").read_text().lower()
    assert "zylberstein" not in vocab and "hollowmere" not in vocab
