"""SentencePiece tokenization: train inside the pipeline, or load a model; encode in batches.

Training sample: the ``sample_docs`` records with the smallest hash of their
id (a deterministic sample whatever the order records arrive in; ties by
text), each cut to ``max_chars_per_doc``, split into lines, in hash order.
Each bundle keeps its own smallest and emits them one by one, so no single
element holds the sample (see :class:`_LocalSmallest`). The trainer runs a
fixed :data:`TRAIN_THREADS` threads, whatever the machine: SentencePiece
splits the sentences between its threads and sums their counts in thread
order, so the same sample gives the same model bytes for a given thread count
(and different bytes for another). The model is written to ``DIR/tokenizer/spm.model`` (and a
human-readable ``spm.vocab``) and passed to the encoders as a side input.

Special ids are fixed: pad=0, unk=1, bos=2, eos=3. The normalization rule is
``identity`` (the clean step already applied NFC) and byte fallback is on, so
encoding never loses text: ``decode(encode(x)) == x``. Each document's ids end
with eos when ``add_eos`` is set.

Layout (as for every text stage; the rule is in :mod:`transforms.text.pii_step`):
the pure core first, which never uses Beam, and its thin Beam wrapper last,
under ``# Beam``.
"""

from __future__ import annotations

import dataclasses
import heapq
import io
import re
from collections import Counter
from typing import Iterable, List, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from transforms import accounting
from transforms.packing import pack, unpack

__all__ = ["TokenizerConfig", "train_sentencepiece", "vocab_text", "TrainTokenizer",
           "LoadTokenizer", "Encode", "TokenizerError", "fit_characters", "MIN_VOCAB_SIZE", "PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID"]

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# The vocabulary starts with the 4 special ids and the 256 byte-fallback pieces;
# SentencePiece refuses any vocab_size that leaves no room after them.
RESERVED_PIECES = 4 + 256
# SentencePiece's threads: fixed, because the model's bytes depend on the count.
# Two train the default 20000-document sample in 5.0-5.3 s instead of 7.2 s on
# this 2-core machine (4 threads: 6.0-6.2 s), and give the same bytes on one core.
TRAIN_THREADS = 2
MIN_VOCAB_SIZE = RESERVED_PIECES + 2  # and room for one character and the word boundary


class TokenizerError(ValueError):
    """The tokenizer cannot be trained as asked; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 8000
    model_type: str = "unigram"
    # None: follow the language mix (coverage_for): 0.9995 for a sample rich in
    # Chinese, Japanese or Korean characters, as SentencePiece recommends, else 1.0
    character_coverage: Optional[float] = None
    sample_docs: int = 20000
    max_chars_per_doc: int = 5000  # bounds the sample's memory: sample_docs x this
    max_sentence_length: int = 16384
    add_eos: bool = True
    batch_size: int = 256
    # None: SentencePiece; "bpe", "wordpiece" or "unigram": train with Hugging Face
    # tokenizers instead (transforms.text.hf_tokenizer)
    hf_type: Optional[str] = None

    def __post_init__(self):
        if self.hf_type is not None:
            from transforms.text.hf_tokenizer import HF_TYPES

            if self.hf_type not in HF_TYPES:
                raise ValueError(f"hf_type must be one of {HF_TYPES}, got {self.hf_type!r}")
        if self.vocab_size < MIN_VOCAB_SIZE:
            raise ValueError(
                f"vocab_size must be at least {MIN_VOCAB_SIZE} (4 special ids and 256 byte-fallback "
                f"pieces come first), got {self.vocab_size}")
        if self.model_type not in ("unigram", "bpe", "char", "word"):
            raise ValueError(f"unknown SentencePiece model_type {self.model_type!r}")
        if self.sample_docs <= 0:
            raise ValueError(f"sample_docs must be positive, got {self.sample_docs}")


def _sentences(docs: Iterable[str], max_len: int) -> Iterable[str]:
    for doc in docs:
        for line in doc.split("\n"):
            line = line.strip()
            if line:
                # SentencePiece skips over-long sentences; keep their start instead.
                yield line[: max_len // 4] if len(line.encode("utf-8")) > max_len else line


def train_sentencepiece(docs: List[str], config: TokenizerConfig) -> bytes:
    """Train a SentencePiece model on ``docs`` (or, with ``config.hf_type``, a Hugging Face
    tokenizer); returns the serialized model (a tokenizer.json for Hugging Face)."""
    import sentencepiece as spm

    if not any(d.strip() for d in docs):
        raise TokenizerError("cannot train a tokenizer: no text survived the earlier steps")
    sentences = list(_sentences(docs, config.max_sentence_length))
    if config.hf_type is not None:
        from transforms.text.hf_tokenizer import train_hf

        if config.hf_type == "unigram":
            # the library's Unigram trainer needs a piece for every character (no byte
            # fallback): the rarest leave the training text, and encode as <unk>
            sentences = fit_characters(sentences, config)
        try:
            return train_hf(sentences, config.hf_type, config.vocab_size)
        except Exception as e:  # noqa: BLE001 - the library's message, with what to change
            raise TokenizerError(f"Hugging Face tokenizers could not train a {config.hf_type} "
                                 f"tokenizer with vocab_size={config.vocab_size}: {e}") from e
    if config.character_coverage is None:
        config = dataclasses.replace(config, character_coverage=coverage_for(sentences))
    sentences = fit_characters(sentences, config)
    buf = io.BytesIO()
    try:
        _train(spm, sentences, config, buf)
    except RuntimeError as e:
        raise TokenizerError(
            f"SentencePiece could not train a {config.model_type} model with vocab_size="
            f"{config.vocab_size}: {str(e).strip().splitlines()[-1][:300]}") from e
    return buf.getvalue()


# Scripts with thousands of characters in use: Han, kana, Hangul syllables.
_RICH_SCRIPTS = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
                           "\uac00-\ud7af\U00020000-\U0002fa1f]")
RICH_SHARE = 0.2  # from this share of rich-script characters, the sample is "CJK-heavy"


def coverage_for(sentences: List[str]) -> float:
    """SentencePiece's ``character_coverage`` for this sample: 0.9995 when at least
    :data:`RICH_SHARE` of its non-space characters are Chinese, Japanese or Korean (the
    value SentencePiece recommends for rich character sets), else 1.0 (every character)."""
    rich = total = 0
    for line in sentences:
        total += len(line) - line.count(" ")
        if not line.isascii():
            rich += len(_RICH_SCRIPTS.findall(line))
    return 0.9995 if total and rich / total >= RICH_SHARE else 1.0


def fit_characters(sentences: List[str], config: TokenizerConfig) -> List[str]:
    """The training sentences, with the rarest characters left out if they would not fit.

    SentencePiece makes every character within ``character_coverage`` a piece of
    its own and fails when they outnumber the vocabulary (CJK text with a small
    vocabulary, say; it also refuses a coverage below 0.98). With byte fallback
    on, a character without a piece is encoded as its UTF-8 bytes, so nothing is
    lost by training without it: when the distinct characters exceed half the
    pieces left after the reserved ones, only the most frequent of them (ties by
    code point) stay in the training text.
    """
    if config.model_type in ("char", "word"):
        return sentences
    budget = max(1, (config.vocab_size - RESERVED_PIECES) // 2)
    distinct = set()
    for line in sentences:
        distinct.update(line)  # a set in C: cheaper than counting, and usually enough
    distinct.discard(" ")
    if len(distinct) <= budget:
        return sentences
    counts: Counter = Counter()
    for line in sentences:
        counts.update(line)  # counted in C, one call per line
    counts.pop(" ", None)
    keep = set(sorted(counts, key=lambda c: (-counts[c], c))[:budget])
    rare = "".join(sorted(c for c in counts if c not in keep))
    table = str.maketrans(rare, " " * len(rare))
    out = [" ".join(line.translate(table).split()) for line in sentences]
    return [line for line in out if line]


def _train(spm, sentences, config, buf):
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buf,
        vocab_size=config.vocab_size,
        model_type=config.model_type,
        character_coverage=config.character_coverage,
        hard_vocab_limit=False,  # small corpora get a smaller vocabulary, not an error
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        max_sentence_length=config.max_sentence_length,
        shuffle_input_sentence=False,
        num_threads=TRAIN_THREADS,  # a fixed count: the same bytes on every machine
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        minloglevel=2,
    )


def vocab_text(model: bytes) -> str:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    return "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.get_piece_size()))


# ---------------------------------------------------------------------------
# Beam


def _write_model(model: bytes, output_dir: str) -> str:
    from transforms.text.hf_tokenizer import is_hf

    if is_hf(model):  # a Hugging Face tokenizer.json
        path = FileSystems.join(output_dir, "tokenizer", "tokenizer.json")
        with FileSystems.create(path) as f:
            f.write(model)
        return path
    path = FileSystems.join(output_dir, "tokenizer", "spm.model")
    with FileSystems.create(path) as f:
        f.write(model)
    with FileSystems.create(FileSystems.join(output_dir, "tokenizer", "spm.vocab")) as f:
        f.write(vocab_text(model).encode("utf-8"))
    return path


class _TrainDoFn(beam.DoFn):
    def __init__(self, config: TokenizerConfig, output_dir: str):
        self._config = config
        self._output_dir = output_dir

    def process(self, sample: List[Tuple[int, str]]):
        docs = [text for _, text in sorted(sample)]
        model = train_sentencepiece(docs, self._config)
        _write_model(model, self._output_dir)
        yield model


class _LocalSmallest(beam.DoFn):
    """Records -> ``(None, (hash of id, text[:cap]))`` for the ``n`` smallest of each bundle.

    The sample is the ``n`` smallest such pairs overall (what
    ``Top.Smallest(n)`` gives), found without one accumulator of ``n``
    documents travelling as a single element: a runner that sorts before it
    groups (Flink) refuses a record larger than its sort buffer, and ``n``
    documents are tens of MB. Each bundle keeps its own ``n`` smallest and
    emits them one by one; one key gathers them, and the smallest ``n`` of
    those are the smallest ``n`` of all.
    """

    def __init__(self, n: int, cap: int):
        super().__init__()
        self._n = n
        self._cap = cap

    def start_bundle(self):
        self._kept: List[Tuple[int, str]] = []

    def process(self, record):
        self._kept.append((accounting.stable_hash64(record["id"]), record["text"][:self._cap]))
        if len(self._kept) >= 2 * self._n:
            self._kept = heapq.nsmallest(self._n, self._kept)

    def finish_bundle(self):
        for pair in heapq.nsmallest(self._n, self._kept):
            yield GlobalWindows.windowed_value((None, pair))
        self._kept = []


class TrainTokenizer(beam.PTransform):
    """Records -> a one-element PCollection holding the trained model's bytes.

    Yields nothing when no record reached the tokenizer.
    """

    def __init__(self, config: TokenizerConfig, output_dir: str):
        super().__init__()
        self._config = config
        self._output_dir = output_dir

    def expand(self, records):
        n = self._config.sample_docs
        return (
            records
            | "LocalSample" >> beam.ParDo(_LocalSmallest(n, self._config.max_chars_per_doc))
            | "GatherSample" >> beam.GroupByKey()
            | "DeterministicSample" >> beam.Map(lambda kv: heapq.nsmallest(n, kv[1]))
            | "DropEmptySample" >> beam.Filter(bool)
            | "TrainSentencePiece" >> beam.ParDo(_TrainDoFn(self._config, self._output_dir))
        )


class LoadTokenizer(beam.PTransform):
    """A model path -> its bytes (copied into DIR/tokenizer/ as well)."""

    def __init__(self, model_path: str, output_dir: str):
        super().__init__()
        self._model_path = model_path
        self._output_dir = output_dir

    def expand(self, pbegin):
        def load(path):
            hf = path.startswith("hf:")
            with FileSystems.open(path[3:] if hf else path) as f:
                model = f.read()
            if hf:
                from transforms.text.hf_tokenizer import check_tokenizer_json

                check_tokenizer_json(model)  # fails loudly if not a tokenizer.json
            else:
                import sentencepiece as spm

                spm.SentencePieceProcessor(model_proto=model)  # fails loudly if not a model
            _write_model(model, self._output_dir)
            return model

        return pbegin | "ModelPath" >> beam.Create([self._model_path]) | "ReadModel" >> beam.Map(load)


class _EncodeDoFn(accounting.CountingDoFn):
    def __init__(self, add_eos: bool):
        super().__init__()
        self._add_eos = add_eos
        self._sp = None
        self._model_digest = None

    def _processor(self, model: bytes):
        digest = hash(model)
        if self._sp is None or digest != self._model_digest:
            from transforms.text.hf_tokenizer import HfEncoder, is_hf

            self._hf = is_hf(model)
            if self._hf:
                self._sp = HfEncoder(model)
                self._eos = self._sp.eos_id
            else:
                import sentencepiece as spm

                self._sp = spm.SentencePieceProcessor(model_proto=model)
                self._eos = EOS_ID
            self._model_digest = digest
        return self._sp

    def process(self, packed: bytes, model: bytes):
        import time

        start = time.perf_counter()
        batch = unpack(packed)
        sp = self._processor(model)
        texts = [r["text"] for r in batch]
        # Hugging Face: encode_batch runs on the library's own threads. SentencePiece on one
        # thread: the engine already runs a worker per core, and its thread per core on top
        # cost a fifth more CPU for the same ids (1.11-1.18 s against 1.37-1.44 s for 20,000
        # pages in batches of 256).
        ids = (sp.encode_batch(texts) if self._hf
               else sp.encode(texts, out_type=int, num_threads=1))
        self.time("tokenize", time.perf_counter() - start, len(batch))
        for record, token_ids in zip(batch, ids):
            out = dict(record)
            if self._add_eos and self._eos is not None:
                token_ids.append(self._eos)
            out["input_ids"] = token_ids
            yield out


class Encode(beam.PTransform):
    """Records + model side input -> records with ``input_ids``."""

    def __init__(self, model, config: TokenizerConfig):
        super().__init__()
        self._model = model
        self._config = config

    def expand(self, records):
        return (
            records
            | "Batch" >> beam.BatchElements(
                min_batch_size=8, max_batch_size=self._config.batch_size)
            # the batches wait for the trained model packed (transforms.packing; spilled on a
            # local run)
            | "Pack" >> beam.Map(pack, spill=True)
            | "EncodeBatch" >> beam.ParDo(
                _EncodeDoFn(self._config.add_eos), model=beam.pvalue.AsSingleton(self._model, default_value=None))
            .with_outputs(accounting.COUNTS, main="records")
        )
