"""Build ``data/sample/multilingual/docs.jsonl`` from the Debian Installation Guide (GPL-2).

    apt-get install installation-guide-amd64
    python data/sample/multilingual/build_multilingual.py

Each page of the guide (``/usr/share/doc/installation-guide-amd64/<lang>/*.html``)
gives one document: its ``<p>`` paragraphs (no listings, no tables), kept when
it has at least 400 characters (paragraphs are taken until it has 1,200). Paragraphs also found, verbatim, in the English
guide are left out first (an untranslated paragraph is English prose, whatever
the folder says). The same pages are taken for every language, so each holds
the same content; ``language`` is the translation's ISO 639-1 code, the truth
the tests compare the lang step with. The records carry no ``license`` field
(the guide is GPL-2, which the default licence filter would drop); see README.md. The held-out measurement
(``benchmarks/languages.py``) uses a different manual, the Debian Reference.
"""

import glob
import html
import json
import os
import re

ROOT = "/usr/share/doc/installation-guide-amd64"
HERE = os.path.dirname(os.path.abspath(__file__))
FOLDERS = {"en": "en", "de": "de", "fr": "fr", "es": "es", "it": "it", "pt": "pt", "id": "id",
           "ja": "ja", "zh": "zh_CN", "ru": "ru", "nl": "nl", "sv": "sv", "vi": "vi", "ko": "ko"}
PAGES = ("ch01s01.html", "ch01s02.html", "ch01s03.html", "ch02s01.html", "ch03s01.html",
         "ch03s02.html", "ch03s06.html", "ch04s01.html", "ch05s01.html", "ch06s01.html",
         "ch06s02.html", "ch06s03.html", "ch08s01.html", "ch08s02.html", "apbs01.html")
MIN_CHARS = 400
KEEP_CHARS = 1200  # paragraphs are taken until the document has this many characters
_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def paragraphs(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        page = f.read()
    return [" ".join(html.unescape(_TAG.sub("", p)).split()) for p in _PARAGRAPH.findall(page)]


def main():
    english = {p for path in glob.glob(os.path.join(ROOT, "en", "*.html")) for p in paragraphs(path)}
    rows = []
    for lang, folder in FOLDERS.items():
        for page in PAGES:
            path = os.path.join(ROOT, folder, page)
            if not os.path.isfile(path):
                continue
            kept = []
            for p in paragraphs(path):
                if p and (lang == "en" or p not in english) and sum(map(len, kept)) < KEEP_CHARS:
                    kept.append(p)
            text = "\n\n".join(kept)
            if len(text) >= MIN_CHARS:
                rows.append({"id": f"{lang}-{page[:-5]}", "text": text, "language": lang,
                             "url": f"https://www.debian.org/releases/stable/amd64/{page[:-5]}.{lang}.html"})
    with open(os.path.join(HERE, "docs.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = {}
    for row in rows:
        counts[row["language"]] = counts.get(row["language"], 0) + 1
    print(len(rows), counts)


if __name__ == "__main__":
    main()
