"""The tokenizer's pure core (no Beam): SentencePiece training, the sample's documents,
and training in a process of its own.

Its Beam wrapper is :mod:`transforms.text.tokenize` (the module docstring there
says how the sample is drawn, what the model holds, and when training runs
beside the pipeline). This module imports no Beam, so that the training
process (``python -m transforms.text.tokenizer_core PATH``) starts in a
fraction of a second: it reads its job as JSON on standard input
(:func:`start_training`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Sequence

from transforms.text.pii import PiiConfig, PiiScrubber, scrub_prefix

__all__ = ["TokenizerConfig", "TokenizerError", "train_sentencepiece", "vocab_text", "write_model",
           "sample_docs", "train_job", "start_training", "model_ready", "resolve_model",
           "coverage_for", "fit_characters", "PENDING", "MIN_VOCAB_SIZE", "RESERVED_PIECES",
           "TRAIN_THREADS", "PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID"]

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


def write_model(model: bytes, output_dir: str) -> str:
    """Write the model's files under ``DIR/tokenizer/``; returns the model's path.

    SentencePiece: ``spm.model`` and a readable ``spm.vocab``; Hugging Face:
    ``tokenizer.json``. A local folder is written directly, anything else
    (``gs://``) through Beam's filesystems.
    """
    from transforms.text.hf_tokenizer import is_hf

    if is_hf(model):  # a Hugging Face tokenizer.json
        files = [("tokenizer.json", model)]
    else:
        files = [("spm.model", model), ("spm.vocab", vocab_text(model).encode("utf-8"))]
    if "://" in output_dir:
        from apache_beam.io.filesystems import FileSystems

        paths = [FileSystems.join(output_dir, "tokenizer", name) for name, _ in files]
        for path, (_, data) in zip(paths, files):
            with FileSystems.create(path) as f:
                f.write(data)
        return paths[0]
    folder = os.path.join(output_dir, "tokenizer")
    os.makedirs(folder, exist_ok=True)
    for name, data in files:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return os.path.join(folder, files[0][0])


def sample_docs(sample: Iterable[Sequence[Any]], config: TokenizerConfig,
                pii: Optional[PiiConfig] = None) -> List[str]:
    """The training documents of a gathered sample of ``(hash of id, text, id)``, in
    hash order (ties by text), each cut to ``max_chars_per_doc`` characters.

    With ``pii``, each text is scrubbed as the PII step scrubs that record (its id
    is the pseudonyms' key) and then cut: the sample's texts were cut to a PII
    window past the cut (:func:`transforms.text.pii.excerpt_window`), so a finding
    across the cut is replaced whole, as in the full text.
    """
    rows = sorted(tuple(row) for row in sample)
    cap = config.max_chars_per_doc
    if pii is None:
        return [row[1][:cap] for row in rows]
    scrubber = PiiScrubber(pii)
    return [scrub_prefix(text, cap, scrubber, doc_key=key) for _, text, key in rows]


def train_job(sample: Iterable[Sequence[Any]], config: TokenizerConfig, output_dir: str,
              pii: Optional[PiiConfig] = None) -> bytes:
    """Train on a gathered sample and write the model's files; returns the model."""
    model = train_sentencepiece(sample_docs(sample, config, pii), config)
    write_model(model, output_dir)
    return model


# The training process: this module, given the model's path (tests put a failing one here).
TRAIN_COMMAND = (sys.executable, "-m", "transforms.text.tokenizer_core")
# The side input of a model still training beside the pipeline: {PENDING: path}.
PENDING = "pending_model"
_RESOLVED: Dict[str, bytes] = {}
_RESOLVED_LOCK = threading.Lock()


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def start_training(sample: List[Sequence[Any]], config: TokenizerConfig, output_dir: str,
                   pii: Optional[PiiConfig], directory: str) -> Dict[str, str]:
    """Train in a process of its own; returns the pending model (:func:`resolve_model`).

    The job travels on the process's standard input as JSON (the PII salt is
    never written to disk). The process writes the model to ``PATH`` when done,
    or its error to ``PATH.error``; a thread of this process feeds it and, should
    it die without either (killed, out of memory), writes why.
    """
    import tempfile

    handle = tempfile.mkdtemp(prefix="tokenizer-", dir=directory)
    path = os.path.join(handle, "model")
    job = json.dumps({
        "config": dataclasses.asdict(config), "output_dir": output_dir,
        "pii": dataclasses.asdict(pii) if pii is not None else None,
        "sample": [list(row) for row in sample],
    }).encode("utf-8")
    proc = subprocess.Popen([*TRAIN_COMMAND, path], stdin=subprocess.PIPE)

    def feed_and_wait():
        try:
            with proc.stdin:
                proc.stdin.write(job)
        except OSError:  # it died before reading: its exit code says why
            pass
        code = _exit_code(proc.pid)  # not yet reaped: its pid stays taken until the file is there
        if not os.path.exists(path) and not os.path.exists(path + ".error"):
            _write_atomic(path + ".error", (
                f"the tokenizer's training process ended with exit code {code} and no model "
                "(killed, or out of memory?)").encode())
        proc.wait()

    threading.Thread(target=feed_and_wait, name="tokenizer-training", daemon=True).start()
    return {PENDING: path, "pid": proc.pid}


def _exit_code(pid: int) -> Optional[int]:
    """The exit code of a child that has ended, without reaping it (negative: its signal)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except (AttributeError, OSError):  # no waitid here: the caller's wait tells
        return None
    killed = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
    return -info.si_status if killed else info.si_status


def _gone(pid: Optional[int]) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # someone else's process: it exists
        return False
    return False


def model_ready(value: Any) -> bool:
    """Whether :func:`resolve_model` would return (or raise) without waiting."""
    if not isinstance(value, dict):
        return True
    path = value[PENDING]
    return path in _RESOLVED or os.path.exists(path) or os.path.exists(path + ".error")


def resolve_model(value: Any) -> bytes:
    """A model's bytes: ``value`` itself, or the model of a pending training once it is
    written (waits for it; raises its :class:`TokenizerError`)."""
    if not isinstance(value, dict):
        return value
    path = value[PENDING]
    with _RESOLVED_LOCK:
        model = _RESOLVED.get(path)
    if model is not None:
        return model
    delay, gone = 0.005, 0.0
    while True:
        if os.path.exists(path):
            with open(path, "rb") as f:
                model = f.read()
            with _RESOLVED_LOCK:
                _RESOLVED.clear()  # one run's model at a time
                _RESOLVED[path] = model
            return model
        if os.path.exists(path + ".error"):
            with open(path + ".error", "rb") as f:
                raise TokenizerError(f.read().decode("utf-8", "replace"))
        if gone and time.monotonic() > gone:  # and still no file, a while after
            raise TokenizerError("the tokenizer's training process is gone and left no model "
                                 "(the process that started it was killed?)")
        if not gone and _gone(value.get("pid")):
            gone = time.monotonic() + 2.0
        time.sleep(delay)
        delay = min(0.1, delay * 2)


def _train_process(path: str) -> int:
    """``python -m transforms.text.tokenizer_core PATH``: the job on stdin (:func:`start_training`)."""

    def orphaned():  # the process that started it is gone: stop, rather than train for no one
        parent = os.getppid()
        while os.getppid() == parent:
            time.sleep(1)
        try:
            _write_atomic(path + ".error", b"the process that started the tokenizer's training "
                                           b"is gone (the run failed or was stopped)")
        finally:
            os._exit(3)

    threading.Thread(target=orphaned, daemon=True).start()
    try:
        job = json.loads(sys.stdin.buffer.read())
        pii = job["pii"]
        if pii is not None:
            pii = PiiConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in pii.items()})
        model = train_job(job["sample"], TokenizerConfig(**job["config"]), job["output_dir"], pii)
    except Exception as e:  # noqa: BLE001 - the waiting encoders raise it
        message = str(e) if isinstance(e, TokenizerError) else f"{type(e).__name__}: {e}"
        _write_atomic(path + ".error", message.encode("utf-8"))
        return 1
    _write_atomic(path, model)
    return 0


if __name__ == "__main__":
    sys.exit(_train_process(sys.argv[1]))
