"""SentencePiece tokenization: train inside the pipeline, or load a model; encode in batches.

Training sample: the ``sample_docs`` records with the smallest hash of their
id (a deterministic sample whatever the order records arrive in; ties by
text), each cut to ``max_chars_per_doc``, split into lines, in hash order.
Each bundle keeps its own smallest and emits them one by one, so no single
element holds the sample (see :class:`_LocalSmallest`). The text pipeline
draws it from the records leaving exact dedup, before near dedup and PII, so
that the training can run beside those steps: each sampled text is scrubbed
as the PII step scrubs that record (:func:`sample_docs`), so no PII reaches
the vocabulary; a record that near dedup or the PII step's ``drop_above``
removes later may be in the sample.

The trainer runs a fixed :data:`TRAIN_THREADS` threads, whatever the machine:
SentencePiece splits the sentences between its threads and sums their counts
in thread order, so the same sample gives the same model bytes for a given
thread count (and different bytes for another). The model is written to
``DIR/tokenizer/spm.model`` (and a human-readable ``spm.vocab``) and passed to
the encoders as a side input.

Training beside the pipeline: on a local engine (this run's processes share a
spill folder, :mod:`transforms.packing`) the trainer runs in a process of its
own (``python -m transforms.text.tokenizer_core``) and the step's side input
is a pending model, which the encoders and the run's end wait for
(:func:`resolve_model`). Beam's local engine runs one stage at a time, so a
training in a stage of its own (seconds to minutes, on :data:`TRAIN_THREADS`
cores) would leave the other cores idle. Beside the pipeline it runs while
the PII stage does: the engine fuses the encoders into that stage, and they
set their batches (spill references) aside until the model is there, then
encode them at the end of the bundle. The same sample gives the same model
bytes either way.

Special ids are fixed: pad=0, unk=1, bos=2, eos=3. The normalization rule is
``identity`` (the clean step already applied NFC) and byte fallback is on, so
encoding never loses text: ``decode(encode(x)) == x``. Each document's ids end
with eos when ``add_eos`` is set.

Layout (the rule is in :mod:`transforms.text.pii_step`): the pure core is
:mod:`transforms.text.tokenizer_core` (the training process imports it without
Beam); this module is its Beam wrapper, and still offers the core's names.
"""

from __future__ import annotations

import heapq
import time
from typing import Any, List, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from transforms import accounting
from transforms.packing import pack, spill_directory, unpack
from transforms.text.pii import PiiConfig, excerpt_window
from transforms.text.tokenizer_core import (  # noqa: F401 - the core's names, offered here too
    BOS_ID, EOS_ID, MIN_VOCAB_SIZE, PAD_ID, PENDING, RESERVED_PIECES, TRAIN_THREADS, UNK_ID,
    TokenizerConfig, TokenizerError, coverage_for, fit_characters, model_ready, resolve_model,
    sample_docs, start_training, train_job, train_sentencepiece, vocab_text, write_model)

__all__ = ["TokenizerConfig", "train_sentencepiece", "vocab_text", "TrainTokenizer",
           "LoadTokenizer", "Encode", "TokenizerError", "sample_docs", "resolve_model",
           "fit_characters", "coverage_for", "MIN_VOCAB_SIZE", "RESERVED_PIECES", "TRAIN_THREADS",
           "PENDING", "PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID"]


class _TrainDoFn(beam.DoFn):
    """The gathered sample -> the model's bytes, or a pending model where this run's
    processes share a spill folder (``background``: unless told not to)."""

    def __init__(self, config: TokenizerConfig, output_dir: str, pii: Optional[PiiConfig] = None,
                 background: bool = True):
        self._config = config
        self._output_dir = output_dir
        self._pii = pii
        self._background = background

    def process(self, sample: List[Tuple[int, str, str]]):
        directory = spill_directory() if self._background else None
        if directory is not None:
            yield start_training(sample, self._config, self._output_dir, self._pii, directory)
        else:
            yield train_job(sample, self._config, self._output_dir, self._pii)


# A sampled text waiting to be scrubbed keeps at most this many characters past the cut:
# the PII window grows to the end of a run without spaces, which may be the whole document.
# A finding that still runs past it (over 2 kB long) is cut there; a private key block
# cut short is still replaced whole (transforms.text.pii).
WINDOW_MAX = 2048


class _LocalSmallest(beam.DoFn):
    """Records -> ``(None, (hash of id, text, id))`` for the ``n`` smallest of each bundle.

    The text is cut to ``cap`` characters, or with ``pii_window`` to the PII
    window past them, at most :data:`WINDOW_MAX` further (:func:`sample_docs`
    scrubs, then cuts).

    The sample is the ``n`` smallest such rows overall (what
    ``Top.Smallest(n)`` gives), found without one accumulator of ``n``
    documents travelling as a single element: a runner that sorts before it
    groups (Flink) refuses a record larger than its sort buffer, and ``n``
    documents are tens of MB. Each bundle keeps its own ``n`` smallest and
    emits them one by one; one key gathers them, and the smallest ``n`` of
    those are the smallest ``n`` of all.
    """

    def __init__(self, n: int, cap: int, pii_window: bool = False):
        super().__init__()
        self._n = n
        self._cap = cap
        self._window = pii_window

    def start_bundle(self):
        self._kept: List[Tuple[int, str, str]] = []

    def process(self, record):
        text = record["text"]
        cut = (min(excerpt_window(text, self._cap), self._cap + WINDOW_MAX) if self._window
               else self._cap)
        self._kept.append((accounting.stable_hash64(record["id"]), text[:cut], record["id"]))
        if len(self._kept) >= 2 * self._n:
            self._kept = heapq.nsmallest(self._n, self._kept)

    def finish_bundle(self):
        for row in heapq.nsmallest(self._n, self._kept):
            yield GlobalWindows.windowed_value((None, row))
        self._kept = []


class TrainTokenizer(beam.PTransform):
    """Records -> a one-element PCollection holding the trained model's bytes, or on a
    local engine its pending model (:func:`resolve_model` gives the bytes).

    With ``pii``, the records are not yet scrubbed: the sampled texts are scrubbed
    with it before training (:func:`sample_docs`). Yields nothing when no record
    reached the tokenizer.
    """

    def __init__(self, config: TokenizerConfig, output_dir: str, pii: Optional[PiiConfig] = None,
                 background: bool = True):
        super().__init__()
        self._config = config
        self._output_dir = output_dir
        self._pii = pii
        self._background = background

    def expand(self, records):
        n = self._config.sample_docs
        return (
            records
            | "LocalSample" >> beam.ParDo(_LocalSmallest(
                n, self._config.max_chars_per_doc, pii_window=self._pii is not None))
            | "GatherSample" >> beam.GroupByKey()
            | "DeterministicSample" >> beam.Map(lambda kv: heapq.nsmallest(n, kv[1]))
            | "DropEmptySample" >> beam.Filter(bool)
            | "TrainSentencePiece" >> beam.ParDo(
                _TrainDoFn(self._config, self._output_dir, self._pii, self._background))
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
            write_model(model, self._output_dir)
            return model

        return pbegin | "ModelPath" >> beam.Create([self._model_path]) | "ReadModel" >> beam.Map(load)


class _EncodeDoFn(accounting.CountingDoFn):
    def __init__(self, add_eos: bool):
        super().__init__()
        self._add_eos = add_eos
        self._sp = None
        self._model_digest = None

    def _processor(self, model):
        model = resolve_model(model)
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

    def start_bundle(self):
        super().start_bundle()
        self._waiting: List[Tuple[bytes, Any]] = []

    def process(self, packed: bytes, model):
        if not model_ready(model):
            # Training beside the run: the batches (spill references) wait, the bundle
            # goes on (a local engine fuses the PII step into this stage), and they are
            # encoded at its end, once the model is there.
            self._waiting.append((packed, model))
            return
        yield from self._encode(packed, model)

    def finish_bundle(self):
        waiting, self._waiting = self._waiting, []
        for packed, model in waiting:
            for out in self._encode(packed, model):
                yield GlobalWindows.windowed_value(out)
        yield from super().finish_bundle()

    def _encode(self, packed: bytes, model):
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
