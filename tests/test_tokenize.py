import hashlib

import pytest
import sentencepiece as spm

from transforms.text.tokenize import EOS_ID, PAD_ID, TokenizerConfig, train_sentencepiece, vocab_text

DOCS = [
    f"Document {i}: the quick brown fox jumps over the lazy dog. Numbers {i * 37} and symbols £€.\n"
    f"A second line about classes, functions and modules in Python {i % 13}."
    for i in range(300)
]


def test_training_is_deterministic_and_lossless():
    cfg = TokenizerConfig(vocab_size=400)
    a = train_sentencepiece(DOCS, cfg)
    b = train_sentencepiece(DOCS, cfg)
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    sp = spm.SentencePieceProcessor(model_proto=a)
    assert sp.pad_id() == PAD_ID and sp.eos_id() == EOS_ID
    for text in ["unseen 漢字 and emoji 🙂\nnew line", DOCS[3]]:
        assert sp.decode(sp.encode(text)) == text  # byte fallback, identity normalization
    assert vocab_text(a).count("\n") == sp.get_piece_size()


def test_too_small_vocab_is_a_clear_error():
    with pytest.raises(ValueError, match="vocab_size must be at least 262"):
        train_sentencepiece(DOCS, TokenizerConfig(vocab_size=20))


def test_more_characters_than_the_vocabulary_holds_are_encoded_as_bytes():
    import sentencepiece as spm

    from transforms.text.tokenize import fit_characters

    # 3000 distinct CJK characters and a 300-piece vocabulary: SentencePiece alone fails
    cjk = "".join(chr(0x4E00 + i) for i in range(3000))
    docs = DOCS + [cjk[i:i + 40] for i in range(0, 3000, 40)]
    cfg = TokenizerConfig(vocab_size=300)
    kept = set("".join(fit_characters(list(docs), cfg))) - {" "}
    assert len(kept) <= (300 - 260) // 2
    sp = spm.SentencePieceProcessor(model_proto=train_sentencepiece(docs, cfg))
    assert sp.get_piece_size() <= 300
    for text in (cjk[:50], DOCS[0]):
        assert sp.decode(sp.encode(text)) == text  # byte fallback: nothing lost


def test_empty_corpus_is_a_clear_error():
    with pytest.raises(ValueError, match="no text"):
        train_sentencepiece(["", "  "], TokenizerConfig())


def test_the_training_sample_is_the_smallest_hashes_whatever_the_bundles():
    import heapq

    from transforms import accounting
    from transforms.text.tokenize import _LocalSmallest

    records = [{"id": f"doc{i}", "text": f"text {i} " * 3} for i in range(500)]
    emitted = []
    for bundle in (records[:120], records[120:121], records[121:]):  # three bundles, one of one record
        fn = _LocalSmallest(n=40, cap=8)
        fn.start_bundle()
        for r in bundle:
            assert list(fn.process(r) or []) == []
        emitted += [wv.value[1] for wv in fn.finish_bundle()]
        assert all(wv is not None for wv in emitted)
    expected = sorted((accounting.stable_hash64(r["id"]), r["text"][:8], r["id"]) for r in records)[:40]
    assert heapq.nsmallest(40, emitted) == expected
    assert len(emitted) == 40 + 1 + 40  # each bundle sends at most n, one by one


def _sample(docs, ids=None):
    from transforms import accounting

    ids = ids or [f"doc{i}" for i in range(len(docs))]
    return [(accounting.stable_hash64(key), text, key) for key, text in zip(ids, docs)]


def test_sampled_texts_are_scrubbed_as_the_pii_step_scrubs_them_then_cut():
    from transforms.text.pii import PiiConfig, PiiScrubber
    from transforms.text.tokenize import sample_docs

    docs = ["Hello there, mail me at jane.doe@example.com please, or call later today.",
            "Nothing to hide in this one, just words that run past the cut."]
    cfg = TokenizerConfig(max_chars_per_doc=30)
    plain = sample_docs(_sample(docs), cfg)
    assert sorted(plain) == sorted(d[:30] for d in docs)  # cut only
    assert any("jane.d" in d for d in plain)  # the cut falls inside the address

    pii = PiiConfig(mode="pseudonym", salt="s3cret")
    scrubbed = sample_docs(_sample(docs), cfg, pii)
    assert not any("jane" in d or "example.com" in d for d in scrubbed)
    # the address is replaced whole, by the pseudonym the PII step gives that record
    full, _ = PiiScrubber(pii).scrub(docs[0], doc_key="doc0")
    mailed = [d for d in scrubbed if d.startswith("Hello there")][0]
    assert mailed.startswith("Hello there, mail me at ") and full.startswith(mailed)
    assert len(mailed) > 30  # the pseudonym that runs past the cut is kept whole
    # hash order, whatever order the rows arrive in
    assert sample_docs(list(reversed(_sample(docs))), cfg, pii) == scrubbed


def test_training_beside_the_run_gives_the_same_model_and_files(tmp_path):
    from transforms.text.pii import PiiConfig
    from transforms.text.tokenize import resolve_model
    from transforms.text.tokenizer_core import PENDING, start_training, train_job

    docs = [d + " Write to someone%d@example.org." % i for i, d in enumerate(DOCS)]
    cfg = TokenizerConfig(vocab_size=400)
    pii = PiiConfig(mode="pseudonym", salt="s3cret", phone_regions=("US",))
    here = train_job(_sample(docs), cfg, str(tmp_path / "here"), pii)
    pending = start_training(_sample(docs), cfg, str(tmp_path / "beside"), pii, str(tmp_path))
    assert set(pending) == {PENDING, "pid"}
    assert resolve_model(pending) == here
    assert resolve_model(dict(pending)) == here  # read once, then remembered
    for name in ("spm.model", "spm.vocab"):
        assert (tmp_path / "beside" / "tokenizer" / name).read_bytes() == \
            (tmp_path / "here" / "tokenizer" / name).read_bytes()
    vocab = (tmp_path / "here" / "tokenizer" / "spm.vocab").read_text()
    assert "example.org" not in vocab and "someone" not in vocab


def test_a_training_beside_the_run_that_fails_or_dies_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from transforms.text import tokenizer_core
    from transforms.text.tokenize import TokenizerError, resolve_model

    pending = tokenizer_core.start_training(_sample(["", "  "]), TokenizerConfig(), str(tmp_path / "a"),
                                            None, str(tmp_path))
    with pytest.raises(TokenizerError, match="no text survived"):
        resolve_model(pending)
    monkeypatch.setattr(tokenizer_core, "TRAIN_COMMAND", (
        sys.executable, "-c", "import os, signal, sys; sys.stdin.buffer.read(); "
                              "os.kill(os.getpid(), signal.SIGKILL)"))
    pending = tokenizer_core.start_training(_sample(DOCS), TokenizerConfig(), str(tmp_path / "b"),
                                            None, str(tmp_path))
    with pytest.raises(TokenizerError, match="exit code -9"):
        resolve_model(pending)
    # a process that vanished without a word (its starter killed too): no endless wait
    with pytest.raises(TokenizerError, match="is gone"):
        resolve_model({tokenizer_core.PENDING: str(tmp_path / "never" / "model"), "pid": 2 ** 22 + 7})


def test_encoders_set_batches_aside_until_the_model_is_there(tmp_path):
    from apache_beam.pvalue import TaggedOutput

    from transforms.packing import pack
    from transforms.text.tokenize import _EncodeDoFn
    from transforms.text.tokenizer_core import PENDING

    model = train_sentencepiece(DOCS, TokenizerConfig(vocab_size=400))
    sp = spm.SentencePieceProcessor(model_proto=model)
    batch = [{"id": "a", "text": "the quick brown fox"}, {"id": "b", "text": "lazy dog 42"}]
    path = tmp_path / "model"
    pending = {PENDING: str(path)}

    fn = _EncodeDoFn(add_eos=True)
    fn.start_bundle()
    assert list(fn.process(pack(batch), pending) or []) == []  # set aside: no model yet
    path.write_bytes(model)
    out = [o for o in fn.finish_bundle() if not isinstance(o, TaggedOutput)]
    assert [wv.value["input_ids"] for wv in out] == [sp.encode(r["text"]) + [EOS_ID] for r in batch]

    fn.start_bundle()  # a model that is there: encoded at once
    now = list(fn.process(pack(batch), model))
    assert [r["id"] for r in now] == ["a", "b"]
    assert [o for o in fn.finish_bundle() if not isinstance(o, TaggedOutput)] == []


def test_a_sampled_text_waiting_for_its_scrub_is_bounded_and_keeps_its_pii_whole():
    from transforms.text.pii import PiiConfig
    from transforms.text.tokenize import WINDOW_MAX, _LocalSmallest, sample_docs

    blob = "A" * 50_000  # no spaces: the PII window would run to its end
    email = "x" * 90 + " mail jane.doe@example.com soon"  # the address straddles the cut at 100
    fn = _LocalSmallest(n=5, cap=100, pii_window=True)
    fn.start_bundle()
    for key, text in (("blob", blob), ("mail", email)):
        fn.process({"id": key, "text": text})
    rows = {row[2]: row for row in (wv.value[1] for wv in fn.finish_bundle())}
    assert len(rows["blob"][1]) == 100 + WINDOW_MAX
    assert rows["mail"][1] == email  # the whole address is kept for the scrub
    docs = sample_docs(rows.values(), TokenizerConfig(max_chars_per_doc=100), PiiConfig())
    assert blob[:100] in docs
    scrubbed = [d for d in docs if d.startswith("x")][0]
    assert "jane" not in scrubbed and "example" not in scrubbed and scrubbed.endswith("<EMAIL>")
