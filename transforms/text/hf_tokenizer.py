"""Hugging Face tokenizers: train one on the pipeline's sample, or load a tokenizer.json; encode.

The pure core behind ``--tokenizer_type bpe|wordpiece|unigram`` and
``--tokenizer hf:PATH/tokenizer.json`` (the Beam steps are
:mod:`transforms.text.tokenize`'s, which tell a ``tokenizer.json`` from a
SentencePiece model by its first byte, ``{``).

Trained types, on the same deterministic sample SentencePiece trains on:

* ``bpe``: byte-level BPE as GPT-2 and Llama 3 use it (the GPT-2 split regex,
  the 256 byte symbols as the initial alphabet): every text encodes without
  an unknown token and decodes back exactly;
* ``wordpiece``: BERT's WordPiece (BERT's normaliser without lower-casing or
  accent stripping, BERT's pre-tokenizer, ``##`` continuation pieces);
* ``unigram``: a Unigram language model over Metaspace (``▁``) words.

Special tokens take the ids every beamtrain tokenizer uses: 0 pad, 1 unk, 2 bos,
3 eos (``<pad> <unk> <s> </s>``; WordPiece names them ``[PAD] [UNK] [CLS]
[SEP]`` and adds ``[MASK]`` as 4), so the trainer's padding and the eos
appended to each document mean the same thing whatever the library.

Determinism: the ``tokenizers`` trainers run in parallel and break ties in hash
order. Byte-level BPE gave the same tokenizer.json on every run here;
WordPiece and Unigram did not (a few hundred of 2,000 pieces differ between
two runs on the same sample, with one thread too), so a pipeline run with
those two types is not byte-reproducible. SentencePiece (the default) is.

Loaded files (``hf:PATH``): any ``tokenizer.json`` the library reads (GPT-2,
Llama, BERT...). Its end-of-text token, when it has one of the usual names
(``</s>``, ``<|endoftext|>``, ``<|end_of_text|>``, ``[SEP]``), is what
``add_eos`` appends; without one nothing is appended.
"""

from __future__ import annotations

import json
from typing import List, Optional, Sequence

__all__ = ["HF_TYPES", "SPECIALS", "is_hf", "train_hf", "HfEncoder", "check_tokenizer_json"]

HF_TYPES = ("bpe", "wordpiece", "unigram")
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
_WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_EOS_NAMES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "[SEP]")


def is_hf(model: bytes) -> bool:
    """A tokenizer.json (JSON) rather than a SentencePiece model (protobuf)."""
    return model[:1] == b"{"


def train_hf(sentences: Sequence[str], kind: str, vocab_size: int) -> bytes:
    """Train a ``kind`` tokenizer on ``sentences``; its tokenizer.json bytes."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                    strip_accents=False, lowercase=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size,
                                            special_tokens=_WORDPIECE_SPECIALS, show_progress=False)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                          unk_token="<unk>", show_progress=False)
    else:
        raise ValueError(f"tokenizer type must be one of {HF_TYPES}, got {kind!r}")
    tok.train_from_iterator(list(sentences), trainer=trainer)
    return tok.to_str().encode("utf-8")


def check_tokenizer_json(data: bytes) -> None:
    """ValueError unless ``data`` is a tokenizer.json the library loads."""
    from tokenizers import Tokenizer

    try:
        json.loads(data)
        Tokenizer.from_str(data.decode("utf-8"))
    except Exception as e:  # noqa: BLE001 - the library's own message says what is wrong
        raise ValueError(f"not a Hugging Face tokenizer.json: {type(e).__name__}: {e}") from None


class HfEncoder:
    """A loaded tokenizer.json: batch encoding (the library's own threads) and its eos id."""

    def __init__(self, model: bytes):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_str(model.decode("utf-8"))
        self.eos_id: Optional[int] = next(
            (i for i in (self._tok.token_to_id(n) for n in _EOS_NAMES) if i is not None), None)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        # encode_batch_fast skips the character offsets (about 12% faster, measured)
        encode = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)
        return [e.ids for e in encode(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)
