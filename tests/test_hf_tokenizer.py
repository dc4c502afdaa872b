"""Hugging Face tokenizers in the text pipeline: trained types, a reused tokenizer.json, the files
and ids they leave."""

import json
import os

import pytest

pytest.importorskip("tokenizers")

from conftest import read_shards, run_text  # noqa: E402
from transforms.text import hf_tokenizer as hf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MULTI = os.path.join(ROOT, "data", "sample", "multilingual", "docs.jsonl")


def _docs(n=300):
    with open(MULTI, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f][:n]


@pytest.mark.parametrize("kind", hf.HF_TYPES)
def test_trained_types_keep_the_special_ids_and_encode_every_text(kind):
    from transforms.text.tokenize import TokenizerConfig, train_sentencepiece

    docs = _docs()  # nine languages, Chinese and Japanese among them
    model = train_sentencepiece(docs, TokenizerConfig(vocab_size=1500, hf_type=kind))
    assert hf.is_hf(model) and not hf.is_hf(b"\n\x0bsentencepiece")
    enc = hf.HfEncoder(model)
    assert enc.vocab_size > 300 and enc.eos_id == 3
    if kind != "wordpiece":  # WordPiece keeps every character of the sample, past the size asked
        assert enc.vocab_size <= 1505
    ids = enc.encode_batch(docs[:20])
    assert all(ids) and all(0 <= i < enc.vocab_size for row in ids for i in row)
    if kind == "bpe":  # byte level: any text, any script, back exactly, no unknown token
        for text in docs[:20] + ["emoji 🧪 and 中文 and ü\u0301 tabs\tend"]:
            assert enc.decode(enc.encode_batch([text])[0]) == text


def test_byte_level_bpe_training_is_reproducible():
    docs = _docs()
    assert hf.train_hf(docs, "bpe", 1200) == hf.train_hf(docs, "bpe", 1200)


def test_pipeline_trains_a_hf_tokenizer_and_the_trainer_reads_it(tmp_path):
    from beam_pipelines import demo, verify
    from trainer.train import vocab_size

    out = tmp_path / "bpe"
    stats = run_text(demo.sample_inputs(), out, "--tokenizer_type", "bpe", "--vocab_size", "1500")
    assert sorted(os.listdir(out / "tokenizer")) == ["tokenizer.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tokenizer"]["path"] == "tokenizer/tokenizer.json"
    assert verify.main([str(out)]) == 0
    enc = hf.HfEncoder((out / "tokenizer" / "tokenizer.json").read_bytes())
    assert vocab_size(str(out)) == enc.vocab_size
    records = read_shards(out)
    assert len(records) == stats["records_out"] > 0
    for r in records[:20]:
        ids = r["input_ids"]
        assert ids[-1] == 3 and 3 not in ids[:-1]  # eos once, at the end
        assert len(enc.decode(ids[:-1])) > 0


def test_pipeline_reuses_a_tokenizer_json_with_its_own_end_token(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    # a GPT-2-like tokenizer: byte-level BPE whose only special token is <|endoftext|>
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_docs(200), trainers.BpeTrainer(
        vocab_size=900, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path = tmp_path / "gpt" / "tokenizer.json"
    path.parent.mkdir()
    tok.save(str(path))
    from beam_pipelines import demo

    out = tmp_path / "out"
    run_text(demo.sample_inputs(), out, "--tokenizer", f"hf:{path}")
    assert (out / "tokenizer" / "tokenizer.json").read_bytes() == path.read_bytes()
    end = tok.token_to_id("<|endoftext|>")
    records = read_shards(out)
    assert records
    for r in records:
        assert r["input_ids"][-1] == end and end not in r["input_ids"][:-1]
        assert max(r["input_ids"]) < tok.get_vocab_size()


def test_bad_tokenizer_flags_are_one_line_errors(tmp_path, capsys):
    from beam_pipelines import demo

    bogus = tmp_path / "tokenizer.json"
    bogus.write_text('{"not": "a tokenizer"}')
    for extra in (["--tokenizer", f"hf:{bogus}"],
                  ["--tokenizer", f"hf:{tmp_path / 'missing.json'}"],
                  ["--tokenizer", f"hf:{bogus}", "--tokenizer_type", "bpe"]):
        with pytest.raises(SystemExit) as e:
            run_text(demo.sample_inputs(), tmp_path / "out", *extra)
        assert e.value.code == 2
        assert "--tokenizer" in capsys.readouterr().err
