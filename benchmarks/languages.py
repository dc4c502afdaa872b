"""Held-out multilingual measurement: language ID accuracy, kept share per language, lang step cost.

    python -m benchmarks.languages [--root /usr/share/debian-reference] [--min_chars 400]

The corpus is not in the repository: the Debian Reference (Osamu Aoki et
al., GPL-2+), one technical manual translated into en, de, fr, es, it, pt,
id, ja and zh (Debian packages ``debian-reference-<lang>``; ``make
bench-languages`` installs them with apt-get where it can). Every section of
every chapter is one document: its ``<p>`` paragraphs (no code listings, no
tables), at least ``--min_chars`` characters, so each language holds the same
content. Reported per language: documents, language-ID accuracy (lid.176's
label equals the translation's language), the share kept by clean + lang +
filter with every language allowed, that share over English's, the share
``--languages en`` keeps (every other document counted under
``filtered.language``), and, on the same content, the language's sections
kept against their own English originals kept (sections paired by chapter
and position, :func:`transforms.text.calibrate.parallel_sections`). Last, the seconds of the lang step against clean +
filter on the whole corpus.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
import time
from typing import Dict, List, Tuple

from transforms.text.calibrate import CORPORA, corpus_files, html_sections, parallel_sections

LANGUAGES = {"en": "en", "de": "de", "fr": "fr", "es": "es", "it": "it", "pt": "pt", "id": "id",
             "ja": "ja", "zh-cn": "zh"}  # file suffix -> lid.176 label
def documents(root: str, min_chars: int) -> Dict[str, List[str]]:
    """{label: [section text, ...]} from the manual's HTML chapters.

    A translated section with any paragraph found verbatim in the English
    original is left out (an untranslated paragraph is English, whatever its
    file, and leaving out only it would make the section shorter than its
    original).
    """
    english = {p for path in glob.glob(os.path.join(root, "ch*.en.html"))
               for section in html_sections(path) for p in section}
    out: Dict[str, List[str]] = {}
    for suffix, label in LANGUAGES.items():
        docs = []
        for path in sorted(glob.glob(os.path.join(root, f"ch*.{suffix}.html"))):
            for paragraphs in html_sections(path):
                if label != "en" and any(p in english for p in paragraphs if p):
                    continue  # not (wholly) translated: neither its language nor its length
                text = "\n\n".join(p for p in paragraphs if p)
                if len(text) >= min_chars:
                    docs.append(text)
        if docs:
            out[label] = docs
    return out


def jsonl_documents(path: str, min_chars: int) -> Dict[str, List[str]]:
    """{language: [text, ...]} from JSON lines with ``text`` and ``language`` (the truth)."""
    import json

    out: Dict[str, List[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if len(row["text"]) >= min_chars:
                out.setdefault(row["language"], []).append(row["text"])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="reference", choices=("reference", "handbook",
                                                                    "installation-guide"),
                        help="the Debian Reference (every translated section), or the "
                        "Administrator's Handbook or installation guide (sections paired "
                        "with their English original; the guide is what "
                        "transforms.text.calibrate measures the language scales on)")
    parser.add_argument("--root", help="the corpus folder (default: where its Debian package "
                        "puts it)")
    parser.add_argument("--jsonl", help="measure on these JSON lines (text, language) instead")
    parser.add_argument("--min_chars", type=int, default=400)
    parser.add_argument("--scale_by_language", default="true", choices=("true", "false"),
                        help="false: English thresholds for every language (the filter "
                        "before the calibrated language scales)")
    parser.add_argument("--pipeline_copies", type=int, default=8,
                        help="also time whole pipeline runs (steps clean,filter against "
                        "clean,lang,filter, one worker) on the corpus repeated this many times "
                        "(0: skip)")
    args = parser.parse_args(argv)
    pairs: Dict[str, List[Tuple[str, str]]] = {}
    if args.jsonl:
        corpus = jsonl_documents(args.jsonl, args.min_chars)
        args.root = args.jsonl
    elif args.corpus == "reference":
        args.root = args.root or CORPORA["reference"]
        corpus = documents(args.root, args.min_chars)
        if corpus:
            pairs = parallel_sections(corpus_files("reference", args.root), args.min_chars)
    else:
        args.root = args.root or CORPORA[args.corpus]
        pairs = parallel_sections(corpus_files(args.corpus, args.root), args.min_chars)
        corpus = {lang: [text for text, _ in rows] for lang, rows in pairs.items()
                  if lang in LANGUAGES.values()}
    if not corpus:
        package = {"reference": "debian-reference-{en,de,fr,es,it,pt,id,ja,zh-cn}",
                   "handbook": "debian-handbook"}.get(args.corpus, "installation-guide-amd64")
        print(f"# languages: skipped (no {args.corpus} under {args.root}; "
              f"apt-get install {package})")
        return 0
    from transforms.text.clean import clean_text
    from transforms.text.filters import FilterConfig, TextFilter
    from transforms.text.lang import LanguageIdentifier

    identify = LanguageIdentifier()
    text_filter = TextFilter(FilterConfig(scale_by_language=args.scale_by_language == "true"))
    seconds = collections.Counter()
    rows: Dict[str, Tuple[int, int, int, int, collections.Counter]] = {}
    for label, docs in corpus.items():
        correct = kept = kept_en_only = 0
        reasons: collections.Counter = collections.Counter()
        for raw in docs:
            t0 = time.perf_counter()
            text = clean_text(raw)
            t1 = time.perf_counter()
            language, score = identify(text)
            t2 = time.perf_counter()
            _, reason = text_filter(text, language=language)
            t3 = time.perf_counter()
            seconds["clean+filter"] += (t1 - t0) + (t3 - t2)
            seconds["lang"] += t2 - t1
            correct += language == label
            if score < 0.65:
                reason = "language_score"
            if reason is None:
                kept += 1
                kept_en_only += language == "en"
            else:
                reasons[reason] += 1
        rows[label] = (len(docs), correct, kept, kept_en_only, reasons)
    english = rows.get("en", (1, 0, 1, 0, None))
    en_share = english[2] / english[0]

    def kept_alone(raw: str) -> bool:
        text = clean_text(raw)
        language, score = identify(text)
        return score >= 0.65 and text_filter(text, language=language)[1] is None

    # the same content: each translated section against its own English original
    paired = {label: (sum(map(kept_alone, (t for t, _ in rows_))),
                      sum(map(kept_alone, (e for _, e in rows_))))
              for label, rows_ in pairs.items() if label in rows and label != "en"}
    print(f"# {args.root}: documents of {args.min_chars}+ characters")
    print(f"{'lang':>5} {'docs':>5} {'lid acc':>7} {'kept':>6} {'vs en':>6} {'kept, --languages en':>21}"
          f" {'paired':>14}  top reasons dropped")
    for label, (n, correct, kept, kept_en, reasons) in rows.items():
        top = ", ".join(f"{r} {c}" for r, c in reasons.most_common(3))
        own, original = paired.get(label, (0, 0))
        column = f"{own:>3}/{original:<3} {own / original:5.3f}" if original else ""
        print(f"{label:>5} {n:5d} {correct / n:7.3f} {kept / n:6.2f} {kept / n / en_share:6.3f} "
              f"{kept_en / n:21.2f} {column:>14}  {top}")
    if paired:
        print("paired: the language's sections kept / their English originals kept, and the ratio")
    total = seconds["clean+filter"] or 1.0
    print(f"lang step {seconds['lang']:.2f} s against clean+filter {total:.2f} s: "
          f"+{seconds['lang'] / total * 100:.1f}%")
    if args.pipeline_copies > 0:
        pipeline_cost(corpus, args.pipeline_copies)
    return 0


def pipeline_cost(corpus: Dict[str, List[str]], copies: int) -> None:
    """Whole runs, as a user times them: ``--steps clean,filter`` against
    ``clean,lang,filter`` on the same JSON lines (one worker, no report), wall seconds each,
    and the lang stage's own worker seconds from stats.json."""
    import json
    import shutil
    import subprocess
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    work = tempfile.mkdtemp(prefix="bench-languages-")
    try:
        path = os.path.join(work, "docs.jsonl")
        size = 0
        with open(path, "w", encoding="utf-8") as f:
            for k in range(copies):
                for label, docs in corpus.items():
                    for i, text in enumerate(docs):
                        line = json.dumps({"id": f"{label}-{k}-{i}", "text": text}) + "\n"
                        size += len(line.encode("utf-8"))
                        f.write(line)
        wall = {}
        for steps in ("clean,filter", "clean,lang,filter"):
            out = os.path.join(work, steps.replace(",", "_"))
            cmd = [sys.executable, "-m", "beam_pipelines.text", "--input", path,
                   "--output_dir", out, "--steps", steps, "--direct_num_workers", "1",
                   "--report=false", "--max_dead_letter_fraction", "1"]
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=root, check=True, capture_output=True)
            wall[steps] = time.perf_counter() - t0
            with open(os.path.join(out, "stats.json"), encoding="utf-8") as f:
                timing = json.load(f).get("timing", {})
            if "language" in timing:
                wall["lang stage"] = timing["language"]["seconds"]
        base, with_lang = wall["clean,filter"], wall["clean,lang,filter"]
        print(f"whole runs on {size / 1e6:.1f} MB ({copies} copies): clean,filter {base:.1f} s, "
              f"clean,lang,filter {with_lang:.1f} s: +{(with_lang - base) / base * 100:.1f}% "
              f"(the lang stage's own time {wall.get('lang stage', 0):.1f} s: "
              f"{wall.get('lang stage', 0) / base * 100:.1f}% of the clean,filter run)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
