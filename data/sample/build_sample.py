#!/usr/bin/env python3
"""Regenerate the small embedded demo corpus in ``data/sample/``.

Provenance
----------
Every document is built from the HTML pages of the Python 3.11 documentation
as shipped by the Debian package ``python3-doc`` (which depends on
``python3.11-doc``; pages live under ``/usr/share/doc/python3/html`` or
``/usr/share/doc/python3.11/html``).  The Python documentation is
Copyright (c) 2001 Python Software Foundation and is licensed under the PSF
License Agreement (Python Software Foundation License Version 2); code
examples in it are additionally under the Zero-Clause BSD licence.  Every
record therefore carries ``"license": "PSF-2.0"``.  The synthetic spam / stub
pages below are written by this script and are released under the same terms.

The only changes made to a real page before it is packed are:

* ``<link rel="canonical">`` is pointed at ``https://docs.python.org/3/...``
  instead of the local ``file:///usr/share/doc/...`` path;
* the main content (``<div class="body" role="main">``) is cut after roughly
  ``BODY_CAP`` characters, at an element boundary, and the still-open tags are
  closed, so that the corpus stays under 3 MB.  Navigation bars, sidebars,
  footers, ``<head>`` and scripts are left untouched: removing them is the
  pipeline's job (boilerplate removal).

Outputs (relative to ``--out``)
-------------------------------
``jsonl/pages-a.jsonl.gz``
    gzip JSONL, one ``{"id", "url", "text", "license"}`` object per line,
    ``ensure_ascii=False`` (raw UTF-8).  About a third of the lines have no
    ``"id"`` key at all (the pipeline must derive one, e.g. from the URL).
``jsonl/pages-b.jsonl.zst``
    same schema, zstandard-compressed, ``ensure_ascii=True`` (``\\uXXXX``
    escapes), again about a third without ``"id"``.
``parquet/pages.parquet``
    columns ``id, url, text, license`` plus ``raw_headers`` (a few hundred
    bytes of fake HTTP response headers the pipeline should never read, i.e.
    a test for column projection); several row groups.
``warc/crawl.warc.gz``
    WARC/1.0, one gzip member per record: one ``warcinfo`` then a ``request``
    and a ``response`` (HTTP/1.1 200, text/html) per page, deterministic
    ``WARC-Record-ID`` (uuid5) and dates.  One response is served as
    ``charset=iso-8859-1`` with a body that really is Latin-1 encoded.
``text/*.txt``
    ten plain-text documents (tags stripped from the main content); one has a
    UTF-8 BOM, one uses CRLF line endings, one is mojibake, one is an exact
    copy of another, one is only a line long.
``broken/``
    inputs that must be dead-lettered (or, for one record, repaired): see
    ``write_broken``.
``manifest.json``
    machine-readable list of every document written, with its file, position,
    id/url and the deliberate defect categories (for tests and the README).

Deliberate defects (exact duplicates, near duplicates, mojibake, short pages,
spam, broken records) are declared in the tables near the top of this file and
summarised in ``README.md``.

Determinism: the page list is fixed and sorted, every random choice uses a
``random.Random`` seeded from ``SEED``, gzip members are written with
``mtime=0``, WARC dates are fixed and record ids are ``uuid5`` values.  The
same python3-doc version and library versions give byte-identical output.

Usage::

    python data/sample/build_sample.py --html_root /usr/share/doc/python3/html
    python data/sample/build_sample.py --check_only     # no python3-doc needed

Every build ends with ``check()``, which re-reads each file the way the
pipeline will (gzip, zstandard, pyarrow, fastwarc), asserts that the good files
parse, that every broken input fails the documented way, and that the folder
stays under 3,000,000 bytes.  ``--check_only`` runs just that check on the
committed files.

Requires only the standard library, ``pyarrow``, ``zstandard`` and ``fastwarc``
(the last one only for the check).
"""

from __future__ import annotations

import argparse
import base64
import codecs
import gzip
import hashlib
import io
import json
import os
import random
import re
import uuid
import zlib
from html.parser import HTMLParser
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

SEED = 20240601
BODY_CAP = 30_000            # characters of main content kept per page
LICENSE = "PSF-2.0"
BASE_URL = "https://docs.python.org/3/"
UUID_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/beamtrain/data/sample")
WARC_DATE = "2024-06-01T00:00:00Z"  # WARC-Date of the warcinfo; pages add i seconds
HTTP_DATE = "Sat, 01 Jun 2024 00:00:00 GMT"
PARQUET_ROW_GROUP = 16

# --------------------------------------------------------------------------
# Page selection: prose-heavy pages only (no API tables / indexes).
# --------------------------------------------------------------------------
PAGES = sorted(
    [f"tutorial/{p}" for p in (
        "appendix appetite classes controlflow datastructures errors floatingpoint "
        "index inputoutput interactive interpreter introduction modules stdlib "
        "stdlib2 venv whatnow").split()]
    + [f"howto/{p}" for p in (
        "annotations argparse clinic cporting curses descriptor enum functional "
        "index instrumentation ipaddress isolating-extensions logging-cookbook "
        "logging pyporting regex sockets sorting unicode urllib2").split()]
    + [f"faq/{p}" for p in (
        "design extending general gui index installed library programming "
        "windows").split()]
    + [f"whatsnew/{p}" for p in (
        "2.0 2.1 2.2 2.3 2.4 2.5 2.6 2.7 3.0 3.1 3.2 3.3 3.4 3.5 3.6 3.7 3.8 3.9 "
        "3.10 3.11 index").split()]
    + [f"reference/{p}" for p in (
        "compound_stmts datamodel executionmodel expressions import index "
        "introduction lexical_analysis simple_stmts toplevel_components").split()]
    + [f"using/{p}" for p in "cmdline configure editors index mac unix windows".split()]
    + [f"extending/{p}" for p in (
        "building embedding extending index newtypes newtypes_tutorial windows").split()]
    + [f"distutils/{p}" for p in (
        "builtdist configfile examples extending index introduction setupscript "
        "sourcedist").split()]
    + [f"library/{p}" for p in (
        "2to3 __main__ asyncio asyncio-dev crypto custominterp devmode doctest "
        "ensurepip i18n idle intro pdb profile secrets security_warnings "
        "statistics superseded sys_path_init timeit tkinter tomllib turtle "
        "unittest.mock-examples unix venv windows zipapp zoneinfo").split()]
    + ["installing/index", "distributing/index", "install/index", "glossary",
       "about", "bugs", "copyright", "license", "index"]
)

# Formats: a = jsonl/pages-a.jsonl.gz, b = jsonl/pages-b.jsonl.zst,
# pq = parquet/pages.parquet, warc = warc/crawl.warc.gz.
FORMATS = ("a", "b", "pq", "warc")

# Exact duplicates: (page, format of the first copy, formats of extra copies).
# Every copy has the same HTML bytes but its own id ("-dupN") and URL.
EXACT_DUPS = [
    ("tutorial/classes", "a", ["a"]),
    ("tutorial/appetite", "a", ["b"]),
    ("tutorial/errors", "a", ["pq", "warc"]),
    ("faq/general", "b", ["b"]),
    ("faq/design", "b", ["a"]),
    ("howto/sockets", "b", ["warc"]),
    ("howto/argparse", "pq", ["pq"]),
    ("howto/functional", "pq", ["a", "b"]),
    ("reference/executionmodel", "pq", ["warc"]),
    ("whatsnew/3.0", "warc", ["warc"]),
    ("whatsnew/3.1", "warc", ["pq"]),
    ("using/mac", "warc", ["a", "pq"]),
    ("glossary", "a", ["b", "warc"]),
    ("extending/embedding", "b", ["pq"]),
    ("library/venv", "pq", ["b", "a"]),
]

# Near duplicates: (page, format of the original, [(edit, format of the copy)]).
# Edits: sentence   - one sentence of a mid-page paragraph replaced
#        drop_para  - one paragraph removed
#        boiler     - different nav bars / sidebar / footer, same main content
#        append     - one extra paragraph appended to the main content
#        typos      - a handful of words misspelt
#        combo      - sentence replaced and different boilerplate
NEAR_DUPS = [
    ("faq/general", None, [("sentence", "a"), ("drop_para", "pq")]),
    ("tutorial/introduction", "a", [("drop_para", "b")]),
    ("tutorial/datastructures", "b", [("boiler", "warc")]),
    ("tutorial/modules", "pq", [("sentence", "pq")]),
    ("howto/sorting", "warc", [("append", "a")]),
    ("howto/ipaddress", "a", [("typos", "b")]),
    ("howto/annotations", "b", [("combo", "pq")]),
    ("faq/library", "pq", [("drop_para", "warc"), ("boiler", "a")]),
    ("reference/import", "warc", [("sentence", "b")]),
    ("whatsnew/3.6", "a", [("append", "pq")]),
    ("using/cmdline", "b", [("typos", "warc")]),
    ("library/secrets", "pq", [("boiler", "b")]),
    ("library/statistics", "warc", [("combo", "a")]),
]

# Mojibake: the page's HTML was encoded as UTF-8 and decoded as another codec.
# "cp1252" is the "sloppy" Windows-1252 decode used by browsers (the five
# unassigned bytes become U+0081 etc.), "latin-1" leaves C1 control
# characters, "cp1252x2" applies the cp1252 damage twice.
MOJIBAKE = [
    ("howto/unicode", "cp1252", "a"),
    ("tutorial/controlflow", "cp1252", "a"),
    ("whatsnew/3.2", "latin-1", "a"),
    ("howto/logging", "cp1252", "b"),
    ("whatsnew/2.6", "cp1252x2", "b"),
    ("whatsnew/3.7", "cp1252", "b"),
    ("whatsnew/3.9", "cp1252", "pq"),
    ("howto/instrumentation", "latin-1", "pq"),
    ("whatsnew/2.0", "cp1252", "warc"),
    ("whatsnew/2.2", "cp1252", "txt"),
]

# Real page served by the WARC as iso-8859-1 (body really Latin-1 encoded).
LATIN1_PAGE = "whatsnew/2.3"
LATIN1_CAP = 30_000          # larger cut so that the page keeps "é" and "ö"

# Short pages derived from real ones: Sphinx boilerplate intact but the main
# content reduced to the heading and the first sentence.
SHORT_STUBS = [
    ("library/crypto", "a"),
    ("library/unix", "b"),
    ("library/windows", "pq"),
    ("library/custominterp", "warc"),
    ("library/i18n", "a"),
    ("library/superseded", "b"),
]

# Plain-text documents: (page, file name, variant).
TEXT_PAGES = [
    ("tutorial/whatnow", "tutorial-whatnow.txt", "bom"),
    ("tutorial/interpreter", "tutorial-interpreter.txt", None),
    ("faq/gui", "faq-gui.txt", "crlf"),
    ("reference/introduction", "reference-introduction.txt", None),
    ("howto/cporting", "howto-cporting.txt", None),
    ("library/intro", "library-intro.txt", None),
    ("distributing/index", "distributing-index.txt", None),
    ("whatsnew/2.2", "whatsnew-2.2.txt", "mojibake"),
]
TEXT_DUP = ("reference-introduction.txt", "reference-introduction-copy.txt")
TEXT_SHORT = ("short-note.txt",
              "Python 3.11 documentation. See https://docs.python.org/3/ for the current version.\n")

# Pages reserved for the broken/ folder (their good copies live only there).
BROKEN_MIXED_GOOD = ["tutorial/interactive", "using/editors", "faq/installed",
                     "extending/index"]
BROKEN_CONTROL_PAGE = "reference/toplevel_components"
BROKEN_OVERSIZE_GOOD = "howto/index"
BROKEN_TRUNCATED_GZ = ["distutils/builtdist", "distutils/configfile",
                       "distutils/examples", "distutils/extending",
                       "distutils/index", "distutils/introduction",
                       "distutils/setupscript", "distutils/sourcedist",
                       "install/index", "library/ensurepip"]
BROKEN_NOT_GZ = ["bugs", "copyright", "about"]
BROKEN_TRUNC_PARQUET = ["library/zipapp", "library/tomllib", "library/timeit",
                        "library/sys_path_init", "library/security_warnings",
                        "library/asyncio"]

# URL variants used for the extra copies (all distinct from the canonical URL).
DUP_URLS = [
    "https://docs.python.org/3.11/{path}",
    "http://docs.python.org/3/{path}",
    "https://docs.python.org/3/{path}?highlight=python",
    "https://mirror.example.org/python-docs/3/{path}",
]
NEAR_URLS = [
    "https://docs.python.org/3.10/{path}",
    "https://py-docs.example.net/en/3/{path}",
    "https://docs.python.org/3.12/{path}",
]

# --------------------------------------------------------------------------
# HTML helpers
# --------------------------------------------------------------------------
BODY_OPEN = '<div class="body" role="main">'
CLEARER = '<div class="clearer"></div>'
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
        "meta", "source", "track", "wbr"}
BLOCK = {"p", "pre", "div", "section", "ul", "ol", "dl", "table", "blockquote",
         "dd", "li"}


def split_page(page: str) -> tuple[str, str, str]:
    """Split a Sphinx page into (prefix, main content, suffix)."""
    a = page.index(BODY_OPEN) + len(BODY_OPEN)
    b = page.rindex(CLEARER, 0, page.rindex('<div class="sphinxsidebar"'))
    return page[:a], page[a:b], page[b:]


class _Cutter(HTMLParser):
    """Records, after every closing block tag, the offset and the open tags."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=False)
        self.text = text
        self.line_starts = [0]
        for m in re.finditer("\n", text):
            self.line_starts.append(m.end())
        self.stack: list[str] = []
        self.cuts: list[tuple[int, tuple[str, ...]]] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass
        if tag in BLOCK:
            line, col = self.getpos()
            end = self.text.index(">", self.line_starts[line - 1] + col) + 1
            self.cuts.append((end, tuple(self.stack)))


def trim_body(body: str, cap: int = BODY_CAP) -> str:
    """Cut ``body`` after the last block element ending before ``cap``."""
    if len(body) <= cap:
        return body
    cutter = _Cutter(body)
    cutter.feed(body)
    cutter.close()
    best = None
    for end, stack in cutter.cuts:
        if end > cap:
            break
        best = (end, stack)
    if best is None:
        raise ValueError("no element boundary before the cap")
    end, stack = best
    return body[:end] + "\n" + "".join(f"</{t}>" for t in reversed(stack)) + "\n"


def load_page(root: str, key: str, cap: int = BODY_CAP) -> str:
    with open(os.path.join(root, key + ".html"), encoding="utf-8") as f:
        page = f.read()
    page = re.sub(r'(<link rel="canonical" href=")file://[^"]*?/html/',
                  r"\g<1>" + BASE_URL, page)
    prefix, body, suffix = split_page(page)
    return prefix + trim_body(body, cap) + suffix


class _TextExtractor(HTMLParser):
    """Very small tag stripper used only to produce the text/ documents."""

    SKIP = {"script", "style", "head"}
    BREAK = BLOCK | {"h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "dt",
                     "figcaption", "caption"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in self.BREAK:
            self.parts.append("\n\n")
        if tag == "li":
            self.parts.append("* ")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip -= 1
        if tag == "pre":
            self.pre -= 1
        if tag in self.BREAK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self.skip:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(fragment: str) -> str:
    ex = _TextExtractor()
    ex.feed(fragment)
    ex.close()
    text = "".join(ex.parts).replace("\u00b6", "")
    lines = [ln.rstrip() for ln in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    text = re.sub(r"^\* *\n+", "* ", text, flags=re.M)  # "* " marker + <p> inside <li>
    return text + "\n"


def _c1_passthrough(err: UnicodeDecodeError):
    return "".join(chr(b) for b in err.object[err.start:err.end]), err.end


codecs.register_error("beamtrain_sloppy", _c1_passthrough)


def mojibake(text: str, mode: str) -> str:
    """UTF-8 bytes misread as cp1252 (sloppy) or latin-1."""
    if mode == "latin-1":
        return text.encode("utf-8").decode("latin-1")
    rounds = 2 if mode == "cp1252x2" else 1
    for _ in range(rounds):
        text = text.encode("utf-8").decode("cp1252", errors="beamtrain_sloppy")
    return text


def non_ascii(text: str) -> int:
    return sum(1 for c in text if ord(c) > 127 and c not in "\u00b6\u00ab")


# --------------------------------------------------------------------------
# Controlled edits for near duplicates
# --------------------------------------------------------------------------
REWRITES = [
    "This part of the guide was reviewed and lightly reworded for the mirror.",
    "Readers of older editions may remember a slightly different explanation here.",
    "The examples that follow were re-checked against a current interpreter.",
]
TYPOS = [("the ", "teh "), ("and ", "adn "), ("which ", "wich "),
         ("function", "fucntion"), ("example", "exmaple"), ("module", "moduel")]


def _paragraphs(body: str) -> list[re.Match]:
    return [m for m in re.finditer(r"<p>(.*?)</p>", body, re.S)
            if len(re.sub(r"<[^>]+>", "", m.group(1))) > 120]


def edit_sentence(body: str, rng: random.Random) -> str:
    paras = _paragraphs(body)
    candidates = []
    for m in paras:
        s = re.match(r"([^<]*?[.!?])\s", m.group(1), re.S)
        if s and len(s.group(1)) > 30:
            candidates.append((m, s))
    m, s = candidates[len(candidates) // 2]
    new = rng.choice(REWRITES)
    start = m.start(1) + s.start(1)
    return body[:start] + new + body[start + len(s.group(1)):]


def edit_drop_para(body: str, rng: random.Random) -> str:
    paras = _paragraphs(body)
    m = paras[len(paras) // 2 + rng.randrange(max(1, len(paras) // 4))]
    return body[:m.start()] + body[m.end():]


def edit_append(body: str, rng: random.Random) -> str:
    note = ("\n<p>Mirror note: this copy of the page is refreshed once a week; "
            "report stale content to the mirror maintainers, not to the Python "
            "core developers.</p>\n")
    idx = body.rindex("</section>") if "</section>" in body else len(body)
    return body[:idx] + note + body[idx:]


def edit_typos(body: str, rng: random.Random) -> str:
    pieces = re.split(r"(<[^>]+>)", body)
    text_idx = [i for i, p in enumerate(pieces) if p and not p.startswith("<")]
    done = 0
    for i in rng.sample(text_idx, len(text_idx)):
        for old, new in TYPOS:
            if old in pieces[i] and done < 6:
                pieces[i] = pieces[i].replace(old, new, 1)
                done += 1
        if done >= 6:
            break
    return "".join(pieces)


def edit_boiler(prefix: str, suffix: str) -> tuple[str, str]:
    """Different navigation / sidebar / footer around identical content."""
    prefix = prefix.replace("3.11.2 Documentation", "3.11.9 Documentation")
    prefix = prefix.replace("Python 3.11.2 documentation", "Python 3.11.9 documentation")
    prefix = re.sub(r'<div class="mobile-nav">.*?</nav>\s*</div>\s*</div>\s*',
                    "<!-- mobile navigation removed by mirror -->\n", prefix,
                    count=1, flags=re.S)
    suffix = suffix.replace("3.11.2 Documentation", "3.11.9 Documentation")
    suffix = re.sub(
        r'<div role="note" aria-label="source link">.*?</div>',
        '<div role="note" aria-label="mirror links">\n    <h3>Mirror</h3>\n'
        '    <ul class="this-page-menu">\n      <li><a href="/status">Mirror status</a></li>\n'
        '      <li><a href="/about-mirror">About this mirror</a></li>\n    </ul>\n  </div>',
        suffix, count=1, flags=re.S)
    suffix = re.sub(
        r'<div class="footer">.*?</div>',
        '<div class="footer">\n    &copy; Copyright 2001-2024, Python Software Foundation.'
        ' Mirrored for offline reading.<br />\n    Last updated on Jun 01, 2024.'
        ' Created using Sphinx 7.2.6.<br />\n    <a href="/mirror-terms.html">Mirror terms</a>'
        ' | <a href="/contact.html">Contact</a>\n    </div>',
        suffix, count=1, flags=re.S)
    return prefix, suffix


def near_duplicate(page: str, edit: str, rng: random.Random) -> str:
    prefix, body, suffix = split_page(page)
    if edit == "sentence":
        body = edit_sentence(body, rng)
    elif edit == "drop_para":
        body = edit_drop_para(body, rng)
    elif edit == "append":
        body = edit_append(body, rng)
    elif edit == "typos":
        body = edit_typos(body, rng)
    elif edit == "boiler":
        prefix, suffix = edit_boiler(prefix, suffix)
    elif edit == "combo":
        body = edit_sentence(body, rng)
        prefix, suffix = edit_boiler(prefix, suffix)
    else:
        raise ValueError(edit)
    out = prefix + body + suffix
    assert out != page, (edit, "edit changed nothing")
    return out


# --------------------------------------------------------------------------
# Short and spam pages
# --------------------------------------------------------------------------
def short_stub(page: str) -> str:
    """Keep the boilerplate; main content = heading + first sentence."""
    prefix, body, suffix = split_page(page)
    h1 = re.search(r"<h1>.*?</h1>", body, re.S).group(0)
    first_p = re.search(r"<p(?:\s[^>]*)?>(.*?)</p>", body, re.S).group(1)
    sentence = re.match(r"(.*?[.!?])(\s|$)", first_p, re.S)
    sentence = sentence.group(1) if sentence else first_p
    return f"{prefix}\n  <section>\n{h1}\n<p>{sentence}</p>\n</section>\n\n{suffix}"


def _bare(title: str, body: str, extra_head: str = "") -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n"
            f"<title>{title}</title>\n{extra_head}</head>\n<body>\n{body}\n</body>\n</html>\n")


SHORT_BARE = [
    ("short-moved-tutorial", "https://docs.python.org/3/tutorial/old-index.html", "a",
     _bare("Page moved", '<p>This page has moved to <a href="https://docs.python.org/3/tutorial/">'
           "the tutorial index</a>.</p>",
           '<meta http-equiv="refresh" content="0; url=https://docs.python.org/3/tutorial/" />\n')),
    ("short-soft-404", "https://docs.python.org/3/library/removed-module.html", "b",
     _bare("Not Found", "<h1>Not Found</h1>\n<p>Sorry, the page you requested could not be found.</p>")),
    ("short-heading-only", "https://docs.python.org/3/howto/placeholder.html", "pq",
     _bare("Placeholder", "<h1>Coming soon</h1>")),
    ("short-one-line", "https://docs.python.org/3/faq/short.html", "warc",
     _bare("Python FAQ", "<p>See the general Python FAQ.</p>")),
]

LOREM = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud "
         "exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure "
         "in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint "
         "occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id "
         "est laborum").split()


def lorem(rng: random.Random, n_paras: int) -> list[str]:
    paras = []
    for _ in range(n_paras):
        sents = []
        for _ in range(rng.randint(4, 7)):
            words = [rng.choice(LOREM) for _ in range(rng.randint(8, 16))]
            sents.append(" ".join(words).capitalize() + ".")
        paras.append(" ".join(sents))
    return paras


def _docs_page(prefix: str, suffix: str, title: str, paragraphs: list[str]) -> str:
    """Spam main content wrapped in the real docs boilerplate."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"{prefix}\n<section>\n<h1>{title}</h1>\n{body}\n</section>\n{suffix}"


def spam_pages(rng: random.Random, template: str) -> list[tuple[str, str, str, str, str]]:
    """(id, url, format, kind, html) for the synthetic spam pages."""
    prefix, _, suffix = split_page(template)
    kw = ["python", "python tutorial", "free python", "python download", "learn python",
          "best python course", "python jobs", "python certification", "cheap python"]
    stuffing = " ".join(rng.choice(kw) for _ in range(400))
    meta_kw = '<meta name="keywords" content="' + ", ".join(kw * 5) + '" />\n'
    links = "\n".join(
        f'<li><a href="https://links.example.com/{i}">{rng.choice(kw).title()} {i}</a></li>'
        for i in range(80))
    buy_now = "\n".join(
        f"<p><b>CLICK HERE</b> to <a href='https://cheap-certs.example.com/buy?{i}'>BUY NOW</a>"
        f"!!! Cheap Python certificates, {rng.randint(50, 95)}% OFF, limited offer, $$$ "
        "guaranteed job, act now!!!</p>" for i in range(60))
    teasers = ["Read more", "Python tip", "You will not believe", "Top 10"]
    ellipsis = "\n".join(f"<p>{rng.choice(teasers)}...</p>\n<p>...</p>" for _ in range(90))
    docs_stuffing = [" ".join(rng.choice(kw) for _ in range(350))]
    docs_lorem = lorem(rng, 10)
    jobs = "\n".join(f"<p>Python developer jobs in city {i} - apply now, no experience "
                     "needed!</p>" for i in range(150))
    shout_words = ["PYTHON", "FREE", "NOW", "WIN", "BEST", "DOWNLOAD"]
    shouting = "\n".join(
        "<p>" + " ".join(rng.choice(shout_words) for _ in range(12)) + " !!!!!! ...... $$$</p>"
        for _ in range(80))
    return [
        ("spam-keyword-stuffing", "https://python-free-download.example.com/", "a",
         "keyword stuffing",
         _bare("Python Python Python free download best Python",
               f"<h1>Python free python download</h1>\n<p>{stuffing}</p>", meta_kw)),
        ("spam-repeated-line", "https://learn-fast.example.com/python", "b", "repeated line",
         _bare("Learn Python fast",
               "\n".join(["<p>Learn Python fast with our amazing course!</p>"] * 200))),
        ("spam-lorem-ipsum", "https://placeholder.example.com/docs/", "pq", "lorem ipsum",
         _bare("Lorem ipsum", "\n".join(f"<p>{p}</p>" for p in lorem(rng, 12)))),
        ("spam-link-list", "https://links.example.com/python-resources", "warc",
         "bullet-only link list", _bare("Python resources", f"<ul>\n{links}\n</ul>")),
        ("spam-buy-now", "https://cheap-certs.example.com/python", "a", "click here / buy now",
         _bare("BUY NOW", buy_now)),
        ("spam-ellipsis", "https://teasers.example.com/python-tips", "b", "ellipsis lines",
         _bare("Python tips", ellipsis)),
        ("spam-keyword-stuffing-docs", BASE_URL + "library/python-free-download.html", "pq",
         "keyword stuffing inside the docs template",
         _docs_page(prefix, suffix, "Python download", docs_stuffing)),
        ("spam-lorem-ipsum-docs", BASE_URL + "howto/lorem.html", "warc",
         "lorem ipsum inside the docs template",
         _docs_page(prefix, suffix, "Lorem ipsum", docs_lorem)),
        ("spam-templated-lines", "https://jobs.example.com/python", "a",
         "templated repeated line", _bare("Python jobs", jobs)),
        ("spam-shouting", "https://shout.example.com/", "b", "all caps and exclamation marks",
         _bare("!!!", shouting)),
    ]


# --------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------
def canonical_url(key: str) -> str:
    return BASE_URL + key + ".html"


def page_id(key: str) -> str:
    return "py-" + key.replace("/", "-")


def raw_headers(url: str, body_len: int) -> str:
    etag = hashlib.sha1(url.encode()).hexdigest()[:20]
    return ("HTTP/1.1 200 OK\r\n"
            "Server: nginx\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {body_len}\r\n"
            f"Last-Modified: {HTTP_DATE}\r\n"
            f"ETag: \"{etag}\"\r\n"
            "Cache-Control: max-age=600\r\n"
            "Strict-Transport-Security: max-age=315360000; includeSubDomains; preload\r\n"
            "Via: 1.1 varnish, 1.1 varnish\r\n"
            "X-Served-By: cache-iad-kiad7000001-IAD, cache-fra-eddf8230000-FRA\r\n"
            "X-Cache: HIT, HIT\r\nX-Cache-Hits: 3, 12\r\n"
            f"X-Timer: S1717200000.000000,VS0,VE1\r\nVary: Accept-Encoding\r\n"
            f"X-Request-Url: {url}\r\n")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def write_jsonl(path: str, records: list[dict], ensure_ascii: bool, codec: str) -> None:
    data = "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in records).encode("utf-8")
    if codec == "gzip":
        data = gz(data)
    elif codec == "zstd":
        data = zstandard.ZstdCompressor(level=19, write_checksum=True).compress(data)
    with open(path, "wb") as f:
        f.write(data)


def parquet_bytes(rows: list[dict], row_group_size: int) -> bytes:
    schema = pa.schema([("id", pa.string()), ("url", pa.string()), ("text", pa.string()),
                        ("license", pa.string()), ("raw_headers", pa.string())])
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size, compression="zstd")
    return sink.getvalue()


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def _warc_record(headers: list[tuple[str, str]], block: bytes) -> bytes:
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += f"Content-Length: {len(block)}\r\n\r\n"
    return gz(head.encode("utf-8") + block + b"\r\n\r\n")


def _rid(name: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(UUID_NS, name)}>"


def _warc_date(i: int) -> str:
    return f"2024-06-01T00:{i // 60:02d}:{i % 60:02d}Z"


def write_warc(path: str, pages: list[tuple[str, str, str]]) -> list[str]:
    """pages: (url, html, charset). Returns the response record ids."""
    info_id = _rid("warcinfo")
    info = ("software: beamtrain data/sample/build_sample.py\r\n"
            "format: WARC File Format 1.0\r\n"
            "conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/\r\n"
            "isPartOf: beamtrain-sample\r\n"
            "description: Python 3.11 documentation pages (Debian python3-doc) with deliberate defects\r\n"
            "license: PSF-2.0\r\n"
            "robots: classic\r\n").encode()
    out = [_warc_record([("WARC-Type", "warcinfo"), ("WARC-Date", WARC_DATE),
                         ("WARC-Filename", "crawl.warc.gz"), ("WARC-Record-ID", info_id),
                         ("Content-Type", "application/warc-fields"),
                         ("WARC-Block-Digest", _digest(info))], info)]
    response_ids = []
    for i, (url, page, charset) in enumerate(pages, start=1):
        m = re.match(r"https?://([^/]+)(/[^#]*)", url)
        host, target = m.group(1), m.group(2)
        date = _warc_date(i)
        req_id, resp_id = _rid("request:" + url), _rid("response:" + url)
        body = page.encode(charset, errors="xmlcharrefreplace")
        req = (f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"
               "User-Agent: beamtrain-sample-crawler/1.0 (+https://example.org/beamtrain)\r\n"
               "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n"
               "Accept-Encoding: identity\r\nConnection: close\r\n\r\n").encode()
        http_head = ("HTTP/1.1 200 OK\r\nServer: nginx\r\n"
                     f"Content-Type: text/html; charset={charset}\r\n"
                     f"Content-Length: {len(body)}\r\n"
                     f"Last-Modified: {HTTP_DATE}\r\n"
                     "Connection: close\r\n\r\n").encode()
        resp = http_head + body
        out.append(_warc_record([
            ("WARC-Type", "request"), ("WARC-Target-URI", url), ("WARC-Date", date),
            ("WARC-Record-ID", req_id), ("WARC-Concurrent-To", resp_id),
            ("WARC-Warcinfo-ID", info_id), ("WARC-IP-Address", "151.101.0.223"),
            ("Content-Type", "application/http; msgtype=request"),
            ("WARC-Block-Digest", _digest(req))], req))
        out.append(_warc_record([
            ("WARC-Type", "response"), ("WARC-Target-URI", url), ("WARC-Date", date),
            ("WARC-Record-ID", resp_id), ("WARC-Concurrent-To", req_id),
            ("WARC-Warcinfo-ID", info_id), ("WARC-IP-Address", "151.101.0.223"),
            ("Content-Type", "application/http; msgtype=response"),
            ("WARC-Block-Digest", _digest(resp)), ("WARC-Payload-Digest", _digest(body)),
            ("WARC-Identified-Payload-Type", "text/html")], resp))
        response_ids.append(resp_id)
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return response_ids


# --------------------------------------------------------------------------
# Broken inputs
# --------------------------------------------------------------------------
def write_broken(out: str, root: str, manifest: list[dict]) -> None:
    bdir = os.path.join(out, "broken")
    rng = random.Random(f"{SEED}:broken")

    def good(key: str, cap: int = 6_000) -> dict:
        return {"id": page_id(key), "url": canonical_url(key),
                "text": load_page(root, key, cap), "license": LICENSE}

    def note(file: str, line: int, rid, url, cats, reason, source=None, label=None):
        manifest.append({"file": file, "position": line, "id": rid, "label": label or rid,
                         "url": url, "source": source, "categories": cats, "note": reason})

    # ---- mixed.jsonl: good lines interleaved with bad ones -------------
    control_body = load_page(root, BROKEN_CONTROL_PAGE, 6_000)
    pos = [m.start() for m in re.finditer(r"</p>", control_body)]
    pieces, last = [], 0
    junk = ["\x00", "\x07\x00", "\x1b[31m", "\x0b", "\x0c\x00\x00", "\x7f", "\x08", "\x00\x1f"]
    for i, p in enumerate(pos[: len(junk)]):
        pieces.append(control_body[last:p] + junk[i])
        last = p
    control_text = "".join(pieces) + control_body[last:]

    lines: list[tuple] = []

    def add_json(obj, cats, reason, source=None, rid=None, url=None, raw=None, label=None):
        data = raw if raw is not None else json.dumps(obj, ensure_ascii=False).encode("utf-8")
        lines.append((data, rid, url, cats, reason, source, label))

    g = [good(k) for k in BROKEN_MIXED_GOOD]
    add_json(g[0], ["good"], "valid record", BROKEN_MIXED_GOOD[0], g[0]["id"], g[0]["url"])
    add_json(None, ["broken"], "malformed JSON (unterminated string and object)",
             rid="broken-malformed-json", url=BASE_URL + "broken/malformed.html",
             raw=b'{"id": "broken-malformed-json", "url": "' + BASE_URL.encode()
             + b'broken/malformed.html", "text": "<p>The string never ends')
    g1 = dict(g[1])
    del g1["id"]
    add_json(g1, ["good", "no-id"], "valid record without id", BROKEN_MIXED_GOOD[1], None, g1["url"],
             label=g[1]["id"])
    add_json(["broken-json-array", BASE_URL + "broken/array.html", "<p>an array, not an object</p>",
              LICENSE], ["broken"], "top-level JSON array instead of an object",
             rid="broken-json-array", url=BASE_URL + "broken/array.html")
    add_json({"id": "broken-text-number", "url": BASE_URL + "broken/number.html", "text": 12345,
              "license": LICENSE}, ["broken"], '"text" is a number',
             rid="broken-text-number", url=BASE_URL + "broken/number.html")
    add_json({"id": "broken-text-null", "url": BASE_URL + "broken/null.html", "text": None,
              "license": LICENSE}, ["broken"], '"text" is null',
             rid="broken-text-null", url=BASE_URL + "broken/null.html")
    add_json(g[2], ["good"], "valid record", BROKEN_MIXED_GOOD[2], g[2]["id"], g[2]["url"])
    add_json(None, ["broken"], 'lone surrogate escape "\\ud800" in text (not encodable as UTF-8)',
             rid="broken-lone-surrogate", url=BASE_URL + "broken/surrogate.html",
             raw=('{"id": "broken-lone-surrogate", "url": "' + BASE_URL + 'broken/surrogate.html", '
                  '"text": "<html><body><p>Half of a surrogate pair: \\ud800 and nothing after it.'
                  '</p></body></html>", "license": "PSF-2.0"}').encode("ascii"))
    add_json(None, ["broken"], "invalid UTF-8 bytes (0xE9 0xFF 0xFE 0xC3 0x28) inside the line",
             rid="broken-invalid-utf8", url=BASE_URL + "broken/invalid-utf8.html",
             raw=b'{"id": "broken-invalid-utf8", "url": "' + BASE_URL.encode()
             + b'broken/invalid-utf8.html", "text": "<p>caf\xe9 \xff\xfe \xc3\x28 ok</p>", '
               b'"license": "PSF-2.0"}')
    add_json({"id": "fixable-control-chars", "url": canonical_url(BROKEN_CONTROL_PAGE) + "?ctrl=1",
              "text": control_text, "license": LICENSE}, ["fixable", "control-chars"],
             "real page with NUL, BEL, ESC, VT, FF, DEL, BS and US characters: clean, do not drop",
             BROKEN_CONTROL_PAGE, "fixable-control-chars", canonical_url(BROKEN_CONTROL_PAGE) + "?ctrl=1")
    add_json(None, ["broken"], "JSON array nested 5000 levels deep (recursion limit)",
             rid=None, url=None, raw=b"[" * 5000 + b"]" * 5000, label="broken-deep-nesting")
    add_json({"id": "broken-missing-text", "url": BASE_URL + "broken/missing.html",
              "license": LICENSE}, ["broken"], 'no "text" field at all',
             rid="broken-missing-text", url=BASE_URL + "broken/missing.html")
    unit = "<p>Oversized record: this line repeats until the record is larger than 1 MiB.</p>\n"
    big = "<html><body>\n" + unit * (1_150_000 // len(unit) + 1) + "</body></html>\n"
    add_json({"id": "broken-oversize-plain", "url": BASE_URL + "broken/oversize-plain.html",
              "text": big, "license": LICENSE}, ["broken", "oversize"],
             f"text is {len(big)} bytes of repetitive HTML, stored uncompressed "
             "(over a 1 MiB record cap; lower the cap to see it dead-lettered)",
             rid="broken-oversize-plain", url=BASE_URL + "broken/oversize-plain.html")
    add_json(g[3], ["good"], "valid record", BROKEN_MIXED_GOOD[3], g[3]["id"], g[3]["url"])
    with open(os.path.join(bdir, "mixed.jsonl"), "wb") as f:
        for i, (data, rid, url, cats, reason, source, label) in enumerate(lines, start=1):
            f.write(data + b"\n")
            note("broken/mixed.jsonl", i, rid, url, cats, reason, source, label)

    # ---- oversize.jsonl.gz: one good record, then a ~2.5 MB text -----------
    og = good(BROKEN_OVERSIZE_GOOD)
    unit = "<p>This line is repeated to build an oversized record. </p>\n"
    big = "<html><body>\n" + unit * (2_621_440 // len(unit) + 1) + "</body></html>\n"
    over = {"id": "broken-oversize", "url": BASE_URL + "broken/oversize.html", "text": big,
            "license": LICENSE}
    write_jsonl(os.path.join(bdir, "oversize.jsonl.gz"), [og, over], False, "gzip")
    note("broken/oversize.jsonl.gz", 1, og["id"], og["url"], ["good"], "valid record",
         BROKEN_OVERSIZE_GOOD)
    note("broken/oversize.jsonl.gz", 2, "broken-oversize", over["url"], ["broken", "oversize"],
         f"text is {len(big.encode())} bytes (> 2 MiB), highly compressible")

    # ---- truncated.jsonl.gz: gzip stream cut in the middle -----------------
    recs = [good(k, 4_000) for k in BROKEN_TRUNCATED_GZ]
    data = gz("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode())
    cut = len(data) * 3 // 4
    with open(os.path.join(bdir, "truncated.jsonl.gz"), "wb") as f:
        f.write(data[:cut])
    readable = _complete_lines_in_truncated_gzip(data[:cut])
    for i, (k, r) in enumerate(zip(BROKEN_TRUNCATED_GZ, recs), start=1):
        ok = i <= readable
        note("broken/truncated.jsonl.gz", i, r["id"], r["url"],
             ["good"] if ok else ["broken", "truncated"],
             "readable before the cut" if ok else "lost or partial: gzip stream ends early", k)

    # ---- not_really.jsonl.gz: plain JSONL with a .gz name ------------------
    recs = [good(k, 4_000) for k in BROKEN_NOT_GZ]
    write_jsonl(os.path.join(bdir, "not_really.jsonl.gz"), recs, False, "none")
    for i, (k, r) in enumerate(zip(BROKEN_NOT_GZ, recs), start=1):
        note("broken/not_really.jsonl.gz", i, r["id"], r["url"], ["broken", "mislabelled"],
             "plain JSONL named .gz (no gzip magic); valid if sniffed", k)

    # ---- truncated.parquet: first half of a valid parquet file -------------
    rows = []
    for k in BROKEN_TRUNC_PARQUET:
        text = load_page(root, k, 4_000)
        rows.append({"id": page_id(k), "url": canonical_url(k), "text": text, "license": LICENSE,
                     "raw_headers": raw_headers(canonical_url(k), len(text.encode()))})
    data = parquet_bytes(rows, 3)
    with open(os.path.join(bdir, "truncated.parquet"), "wb") as f:
        f.write(data[: len(data) // 2])
    for i, (k, r) in enumerate(zip(BROKEN_TRUNC_PARQUET, rows), start=1):
        note("broken/truncated.parquet", i, r["id"], r["url"], ["broken", "truncated"],
             "parquet cut in half: no footer, unreadable", k)

    # ---- binary.txt: random bytes and NULs with a .txt name ----------------
    blob = bytearray(rng.randbytes(4096))
    for i in range(0, len(blob), 37):
        blob[i] = 0
    blob[1024:1280] = bytes(256)
    with open(os.path.join(bdir, "binary.txt"), "wb") as f:
        f.write(bytes(blob))
    note("broken/binary.txt", 1, None, None, ["broken", "binary"],
         f"{len(blob)} random bytes with {blob.count(0)} NULs, not text", label="broken-binary-txt")

    # ---- unknown.xyz: an unknown container format ---------------------------
    payload = b"".join(b"REC\x00" + len(t).to_bytes(4, "little") + t for t in
                       (b"first record", b"second record", rng.randbytes(64)))
    with open(os.path.join(bdir, "unknown.xyz"), "wb") as f:
        f.write(b"XYZF\x01\x00\x00\x00" + payload)
    note("broken/unknown.xyz", 1, None, None, ["broken", "unknown-format"],
         "made-up 'XYZF' container, no reader exists", label="broken-unknown-xyz")


def _complete_lines_in_truncated_gzip(data: bytes) -> int:
    """Number of complete lines a streaming reader gets before the cut."""
    return zlib.decompressobj(31).decompress(data).count(b"\n")


# --------------------------------------------------------------------------
# Main assembly
# --------------------------------------------------------------------------
def build(root: str, out: str) -> dict:
    for sub in ("jsonl", "parquet", "warc", "text", "broken"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    rng = random.Random(SEED)
    manifest: list[dict] = []

    reserved = set()
    reserved.update(k for k, _, _ in MOJIBAKE)
    reserved.update(k for k, _ in SHORT_STUBS)
    reserved.update(k for k, _, _ in TEXT_PAGES)
    reserved.update(BROKEN_MIXED_GOOD + BROKEN_TRUNCATED_GZ + BROKEN_NOT_GZ + BROKEN_TRUNC_PARQUET)
    reserved.update([BROKEN_CONTROL_PAGE, BROKEN_OVERSIZE_GOOD, LATIN1_PAGE])
    pinned: dict[str, str] = {}
    for k, fmt, _ in EXACT_DUPS:
        pinned[k] = fmt
    for k, fmt, _ in NEAR_DUPS:
        if fmt is not None:
            pinned[k] = fmt
    assert not (reserved & set(pinned)), reserved & set(pinned)
    missing = [k for k in PAGES if not os.path.exists(os.path.join(root, k + ".html"))]
    if missing:
        raise SystemExit(f"missing pages under {root}: {missing}")
    unused = set(pinned) | reserved
    assert unused <= set(PAGES), unused - set(PAGES)

    free = [k for k in PAGES if k not in reserved and k not in pinned]
    rng.shuffle(free)
    home = dict(pinned)
    for i, k in enumerate(free):
        home[k] = FORMATS[i % len(FORMATS)]

    pages = {k: load_page(root, k) for k in PAGES}
    # docs: format -> list of dict(id, url, text, cats, source, note)
    docs: dict[str, list[dict]] = {f: [] for f in FORMATS}

    def add(fmt, rid, url, text, cats, source, note=""):
        docs[fmt].append({"id": rid, "url": url, "text": text, "cats": cats,
                          "source": source, "note": note})

    dup_of = {k: (fmt, copies) for k, fmt, copies in EXACT_DUPS}
    for k in PAGES:
        if k in home:
            cats = (["exact-dup"] if k in dup_of else []) + (
                ["near-dup-original"] if any(k == n[0] for n in NEAR_DUPS) else [])
            cats = cats or ["clean"]
            add(home[k], page_id(k), canonical_url(k), pages[k], cats, k)
    for k, _, copies in EXACT_DUPS:
        for n, fmt in enumerate(copies, start=1):
            url = DUP_URLS[(n - 1 + len(k)) % len(DUP_URLS)].format(path=k + ".html")
            add(fmt, f"{page_id(k)}-dup{n}", url, pages[k], ["exact-dup"], k,
                f"byte-identical copy of {page_id(k)}")
    for k, _, edits in NEAR_DUPS:
        for n, (edit, fmt) in enumerate(edits, start=1):
            erng = random.Random(f"{SEED}:near:{k}:{n}")
            url = NEAR_URLS[(n - 1 + len(k)) % len(NEAR_URLS)].format(path=k + ".html")
            add(fmt, f"near-{k.replace('/', '-')}-{n}", url, near_duplicate(pages[k], edit, erng),
                ["near-dup"], k, f"edit={edit}")
    for k, mode, fmt in MOJIBAKE:
        if fmt == "txt":
            continue
        n = non_ascii(pages[k])
        assert n >= 10, (k, n)
        add(fmt, f"moji-{k.replace('/', '-')}", canonical_url(k), mojibake(pages[k], mode),
            ["mojibake"], k, f"utf-8 read as {mode}; {n} non-ASCII chars damaged")
    for k, fmt in SHORT_STUBS:
        add(fmt, f"short-{k.replace('/', '-')}", canonical_url(k), short_stub(pages[k]),
            ["short"], k, "docs template, main content = heading + one sentence")
    for rid, url, fmt, page in SHORT_BARE:
        add(fmt, rid, url, page, ["short"], None, "bare HTML, one line of text")
    for rid, url, fmt, kind, page in spam_pages(random.Random(f"{SEED}:spam"), pages["faq/index"]):
        add(fmt, rid, url, page, ["spam"], None, kind)

    # ---- jsonl ------------------------------------------------------------
    for fmt, name, ascii_, codec in (("a", "jsonl/pages-a.jsonl.gz", False, "gzip"),
                                     ("b", "jsonl/pages-b.jsonl.zst", True, "zstd")):
        frng = random.Random(f"{SEED}:order:{fmt}")
        recs = docs[fmt]
        frng.shuffle(recs)
        no_id = set(frng.sample(range(len(recs)), round(len(recs) / 3)))
        out_recs = []
        for i, d in enumerate(recs):
            r = {"id": d["id"], "url": d["url"], "text": d["text"], "license": LICENSE}
            if i in no_id:
                del r["id"]
            out_recs.append(r)
            manifest.append({"file": name, "position": i + 1, "id": r.get("id"), "label": d["id"],
                             "url": d["url"], "source": d["source"],
                             "categories": d["cats"] + ([] if "id" in r else ["no-id"]),
                             "note": d["note"]})
        write_jsonl(os.path.join(out, name), out_recs, ascii_, codec)

    # ---- parquet ----------------------------------------------------------
    prng = random.Random(f"{SEED}:order:pq")
    recs = docs["pq"]
    prng.shuffle(recs)
    rows = [{"id": d["id"], "url": d["url"], "text": d["text"], "license": LICENSE,
             "raw_headers": raw_headers(d["url"], len(d["text"].encode()))} for d in recs]
    with open(os.path.join(out, "parquet/pages.parquet"), "wb") as f:
        f.write(parquet_bytes(rows, PARQUET_ROW_GROUP))
    for i, d in enumerate(recs):
        manifest.append({"file": "parquet/pages.parquet", "position": i + 1, "id": d["id"],
                         "label": d["id"], "url": d["url"], "source": d["source"], "categories": d["cats"],
                         "note": d["note"]})

    # ---- warc -------------------------------------------------------------
    wrng = random.Random(f"{SEED}:order:warc")
    recs = docs["warc"]
    wrng.shuffle(recs)
    latin1 = load_page(root, LATIN1_PAGE, LATIN1_CAP)
    latin1 = latin1.replace('<meta charset="utf-8" />', '<meta charset="iso-8859-1" />', 1)
    assert "\u00e9" in latin1 and "\u00f6" in latin1, "Latin-1 page lost its accented names"
    latin1_doc = {"id": page_id(LATIN1_PAGE), "url": canonical_url(LATIN1_PAGE), "text": latin1,
                  "cats": ["latin-1"], "source": LATIN1_PAGE,
                  "note": "Content-Type charset=iso-8859-1, body Latin-1 encoded "
                          "(non-Latin-1 characters as &#NNNN; references)"}
    recs.insert(len(recs) // 2, latin1_doc)
    wpages = [(d["url"], d["text"], "iso-8859-1" if d is latin1_doc else "utf-8") for d in recs]
    rids = write_warc(os.path.join(out, "warc/crawl.warc.gz"), wpages)
    for i, (d, rid) in enumerate(zip(recs, rids), start=1):
        manifest.append({"file": "warc/crawl.warc.gz", "position": i, "id": None,
                         "label": d["id"], "url": d["url"], "warc_record_id": rid, "source": d["source"],
                         "categories": d["cats"], "note": d["note"]})

    # ---- text -------------------------------------------------------------
    moji_txt = {k: mode for k, mode, fmt in MOJIBAKE if fmt == "txt"}
    for k, name, variant in TEXT_PAGES:
        _, body, _ = split_page(pages[k])
        text = html_to_text(body)
        cats = ["clean"]
        data = text.encode("utf-8")
        if variant == "bom":
            data = b"\xef\xbb\xbf" + data
            cats = ["bom"]
        elif variant == "crlf":
            data = text.replace("\n", "\r\n").encode("utf-8")
            cats = ["crlf"]
        elif variant == "mojibake":
            assert non_ascii(text) >= 10, (k, non_ascii(text))
            data = mojibake(text, moji_txt[k]).encode("utf-8")
            cats = ["mojibake"]
        with open(os.path.join(out, "text", name), "wb") as f:
            f.write(data)
        manifest.append({"file": "text/" + name, "position": 1, "id": None,
                         "label": name[:-4], "url": None, "source": k, "categories": cats,
                         "note": "tags stripped from main content"})
    src, dst = TEXT_DUP
    with open(os.path.join(out, "text", src), "rb") as f:
        data = f.read()
    with open(os.path.join(out, "text", dst), "wb") as f:
        f.write(data)
    manifest.append({"file": "text/" + dst, "position": 1, "id": None, "label": dst[:-4], "url": None,
                     "source": "reference/introduction", "categories": ["exact-dup"],
                     "note": f"byte-identical copy of text/{src}"})
    name, body = TEXT_SHORT
    with open(os.path.join(out, "text", name), "wb") as f:
        f.write(body.encode("utf-8"))
    manifest.append({"file": "text/" + name, "position": 1, "id": None, "label": name[:-4], "url": None,
                     "source": None, "categories": ["short"], "note": "one line"})

    write_broken(out, root, manifest)

    urls = [m["url"] for m in manifest if m["url"] and not m["file"].startswith("broken/")]
    assert len(urls) == len(set(urls)), "URLs must be unique"
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump({"seed": SEED, "body_cap": BODY_CAP, "documents": manifest}, f,
                  ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    return {"manifest": manifest, "counts": {f: len(v) for f, v in docs.items()}}


# --------------------------------------------------------------------------
# Self-check: re-read every file the way the pipeline will
# --------------------------------------------------------------------------
MAX_TOTAL_BYTES = 3_000_000
RECORD_CAP = 1 << 20          # the cap the broken/ "oversize" records exceed


def strict_record_error(line: bytes, cap: int = RECORD_CAP) -> str | None:
    """Why a JSONL line must be dead-lettered, or None if it is usable."""
    try:
        s = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid-utf8"
    try:
        obj = json.loads(s)
    except RecursionError:
        return "too-deep"
    except ValueError:
        return "malformed-json"
    if not isinstance(obj, dict):
        return "not-an-object"
    if "text" not in obj:
        return "missing-text"
    if not isinstance(obj["text"], str):
        return "text-not-a-string"
    try:
        size = len(obj["text"].encode("utf-8"))
    except UnicodeEncodeError:
        return "lone-surrogate"
    return "oversize" if size > cap else None


def check(out: str) -> dict[str, int]:
    """Assert that good files parse and broken ones break as documented."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)["documents"]
    per_file: dict[str, list[dict]] = {}
    for m in manifest:
        per_file.setdefault(m["file"], []).append(m)
    counts: dict[str, int] = {}

    def jsonl_records(data: bytes, name: str) -> list[dict]:
        recs = [json.loads(line) for line in data.decode("utf-8").splitlines()]
        assert all(isinstance(r["text"], str) and r["license"] == LICENSE for r in recs), name
        missing = sum("id" not in r for r in recs)
        assert 0.25 <= missing / len(recs) <= 0.4, (name, missing)
        assert [r["url"] for r in recs] == [m["url"] for m in per_file[name]], name
        return recs

    with open(os.path.join(out, "jsonl/pages-a.jsonl.gz"), "rb") as f:
        counts["jsonl/pages-a.jsonl.gz"] = len(
            jsonl_records(gzip.decompress(f.read()), "jsonl/pages-a.jsonl.gz"))
    with open(os.path.join(out, "jsonl/pages-b.jsonl.zst"), "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    assert data.isascii()
    counts["jsonl/pages-b.jsonl.zst"] = len(jsonl_records(data, "jsonl/pages-b.jsonl.zst"))

    pf = pq.ParquetFile(os.path.join(out, "parquet/pages.parquet"))
    assert pf.metadata.num_row_groups >= 2
    assert pf.schema_arrow.names == ["id", "url", "text", "license", "raw_headers"]
    table = pf.read(columns=["id", "url", "text", "license"])
    assert table.column("id").to_pylist() == [m["id"] for m in per_file["parquet/pages.parquet"]]
    counts["parquet/pages.parquet"] = table.num_rows

    kinds: dict[str, int] = {}
    charsets = []
    with open(os.path.join(out, "warc/crawl.warc.gz"), "rb") as f:
        for rec in ArchiveIterator(f, record_types=WarcRecordType.any_type, parse_http=False):
            kind = rec.headers["WARC-Type"]
            kinds[kind] = kinds.get(kind, 0) + 1
            assert rec.verify_block_digest(), rec.record_id
    with open(os.path.join(out, "warc/crawl.warc.gz"), "rb") as f:
        for rec in ArchiveIterator(f, record_types=WarcRecordType.response):
            body = rec.reader.read()
            charset = rec.http_headers["Content-Type"].split("charset=")[1]
            charsets.append(charset)
            if charset != "utf-8":
                try:
                    body.decode("utf-8")
                    raise AssertionError("the Latin-1 body must not be valid UTF-8")
                except UnicodeDecodeError:
                    pass
            body.decode(charset)
    n_pages = len(per_file["warc/crawl.warc.gz"])
    assert kinds == {"warcinfo": 1, "request": n_pages, "response": n_pages}, kinds
    assert charsets.count("iso-8859-1") == 1
    counts["warc/crawl.warc.gz"] = n_pages

    texts = sorted(n for n in os.listdir(os.path.join(out, "text")) if n.endswith(".txt"))
    boms = 0
    for name in texts:
        with open(os.path.join(out, "text", name), "rb") as f:
            data = f.read()
        boms += data.startswith(codecs.BOM_UTF8)
        data.decode("utf-8")
    assert boms == 1 and len(texts) == len([k for k in per_file if k.startswith("text/")])
    counts["text/*.txt"] = len(texts)

    bdir = os.path.join(out, "broken")
    with open(os.path.join(bdir, "mixed.jsonl"), "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    for line, m in zip(lines, per_file["broken/mixed.jsonl"], strict=True):
        err = strict_record_error(line)
        assert (err is not None) == ("broken" in m["categories"]), (m["label"], err)
    counts["broken/mixed.jsonl"] = len(lines)
    with gzip.open(os.path.join(bdir, "oversize.jsonl.gz"), "rb") as f:
        errs = [strict_record_error(line.rstrip(b"\n")) for line in f]
    assert errs == [None, "oversize"], errs
    readable = 0
    try:
        with gzip.open(os.path.join(bdir, "truncated.jsonl.gz"), "rb") as f:
            for line in f:
                json.loads(line)
                readable += 1
        raise AssertionError("truncated.jsonl.gz read to the end")
    except EOFError:
        pass
    assert readable == sum("good" in m["categories"]
                           for m in per_file["broken/truncated.jsonl.gz"]) >= 5, readable
    try:
        with gzip.open(os.path.join(bdir, "not_really.jsonl.gz"), "rb") as f:
            f.read()
        raise AssertionError("not_really.jsonl.gz is gzip")
    except gzip.BadGzipFile:
        pass
    try:
        pq.ParquetFile(os.path.join(bdir, "truncated.parquet"))
        raise AssertionError("truncated.parquet opened")
    except pa.ArrowInvalid:
        pass
    with open(os.path.join(bdir, "binary.txt"), "rb") as f:
        data = f.read()
    assert b"\0" in data
    try:
        data.decode("utf-8")
        raise AssertionError("binary.txt is UTF-8")
    except UnicodeDecodeError:
        pass

    total = sum(os.path.getsize(os.path.join(d, n))
                for d, _, files in os.walk(out) for n in files if "__pycache__" not in d)
    assert total < MAX_TOTAL_BYTES, total
    counts["total bytes"] = total
    return counts


def _default_root() -> str | None:
    for cand in ("/usr/share/doc/python3/html", "/usr/share/doc/python3.11/html",
                 "/usr/share/doc/python3-doc/html"):
        if os.path.isfile(os.path.join(cand, "tutorial", "index.html")):
            return cand
    return None


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html_root", default=_default_root(),
                    help="python3-doc HTML root (contains tutorial/, howto/, ...)")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)),
                    help="output folder (default: the folder of this script)")
    ap.add_argument("--check_only", action="store_true",
                    help="do not rebuild; only re-read and check the files in --out")
    args = ap.parse_args(argv)
    if not args.check_only:
        if not args.html_root:
            ap.error("--html_root is required (apt-get install python3-doc)")
        build(args.html_root, args.out)
    for name, n in check(args.out).items():
        print(f"{n:9d}  {name}")


if __name__ == "__main__":
    main()
