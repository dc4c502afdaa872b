"""Tokenizers side by side: SentencePiece against Hugging Face tokenizers' BPE, WordPiece, Unigram.

    python -m benchmarks.tokenizer_bench [--mb 8] [--vocab_size 8000]

The text is the sample corpus's documents (HTML extracted, as the text
benchmark reads them), repeated to ``--mb``; each library trains on the same first
20,000 lines (the pipeline trains on a sample too) and then encodes the whole
text in batches of 256 documents, as the pipeline's Encode step does.
Printed per tokenizer: training seconds, encoding MB/s (wall; Hugging Face's
``encode_batch`` uses every core, SentencePiece's ``encode`` one) and tokens
per kB of text (a smaller number is a more compact vocabulary).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def corpus_texts(mb: float):
    from benchmarks.text_bench import sample_texts  # the text benchmark's documents

    docs = sample_texts()
    out, size = [], 0
    while size < mb * 1e6:
        for d in docs:
            out.append(d)
            size += len(d.encode("utf-8"))
            if size >= mb * 1e6:
                break
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=8.0)
    parser.add_argument("--vocab_size", type=int, default=8000)
    args = parser.parse_args(argv)
    from transforms.text.hf_tokenizer import HfEncoder
    from transforms.text.tokenize import TokenizerConfig, train_sentencepiece

    texts = corpus_texts(args.mb)
    total = sum(len(t.encode("utf-8")) for t in texts)
    sample = [line for t in texts[:5000] for line in t.split("\n") if line.strip()][:20000]
    print(f"# tokenizers: train on {len(sample)} lines, encode {total / 1e6:.1f} MB, "
          f"vocab {args.vocab_size}, {os.cpu_count()} cores")
    for label, hf_type in (("sentencepiece unigram", None), ("hf byte-level bpe", "bpe"),
                           ("hf wordpiece", "wordpiece"), ("hf unigram", "unigram")):
        start = time.perf_counter()
        model = train_sentencepiece(sample, TokenizerConfig(vocab_size=args.vocab_size,
                                                            hf_type=hf_type))
        train_s = time.perf_counter() - start
        if hf_type:
            enc = HfEncoder(model)
            encode = enc.encode_batch
        else:
            import sentencepiece as spm

            sp = spm.SentencePieceProcessor(model_proto=model)
            encode = lambda batch: sp.encode(batch, out_type=int)  # noqa: E731
        start = time.perf_counter()
        tokens = 0
        for i in range(0, len(texts), 256):
            tokens += sum(map(len, encode(texts[i:i + 256])))
        seconds = time.perf_counter() - start
        print(f"{label:<24} train {train_s:6.2f} s   encode {total / 1e6 / seconds:6.2f} MB/s   "
              f"{tokens / (total / 1000):6.1f} tokens/kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
