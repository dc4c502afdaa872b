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
    expected = sorted((accounting.stable_hash64(r["id"]), r["text"][:8]) for r in records)[:40]
    assert heapq.nsmallest(40, emitted) == expected
    assert len(emitted) == 40 + 1 + 40  # each bundle sends at most n, one by one
