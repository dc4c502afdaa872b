import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from transforms import accounting
from transforms.read.corpus import read_task
from transforms.read.plan import ReaderConfig, detect_format, glob_root, plan_reads
from transforms.read.records import derive_id


def _events(path, config=ReaderConfig(), rel=None):
    out = []
    with open(path, "rb") as f:
        size = len(f.read())
    for task in plan_reads(str(path), size, rel or path.name, config):
        if isinstance(task, dict):
            out.append(("dead", task))
        else:
            out.extend(read_task(task, config))
    return out


def _records(events):
    return [v for k, v in events if k == "record"]


def _dead(events):
    return [v for k, v in events if k == "dead"]


LINES = [json.dumps({"id": f"r{i}", "text": f"document {i} " + "word " * (i % 7)}) for i in range(200)]


def test_jsonl_plain_gzip_zstd_give_the_same_records(tmp_path):
    data = ("\n".join(LINES) + "\n").encode()
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    texts = {}
    for name in ("a.jsonl", "a.jsonl.gz", "a.jsonl.zst"):
        recs = _records(_events(tmp_path / name, rel="a"))
        texts[name] = [(r["id"], r["text"], r["position"]) for r in recs]
    assert len(texts["a.jsonl"]) == 200
    assert texts["a.jsonl"] == texts["a.jsonl.gz"] == texts["a.jsonl.zst"]


def test_split_reading_is_exact_and_ids_are_stable(tmp_path):
    lines = [json.dumps({"text": f"line {i} " + "x" * (i % 50)}) for i in range(300)]
    path = tmp_path / "noid.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode())
    whole = _records(_events(path, ReaderConfig(chunk_bytes=1 << 30)))
    tasks = list(plan_reads(str(path), path.stat().st_size, "noid.jsonl", ReaderConfig(chunk_bytes=997)))
    assert len(tasks) > 5  # really split
    pieces = [r for t in tasks for k, r in read_task(t, ReaderConfig(chunk_bytes=997)) if k == "record"]
    assert [(r["id"], r["text"]) for r in pieces] == [(r["id"], r["text"]) for r in whole]
    assert len({r["id"] for r in whole}) == 300
    # ids derive from the relative path and position, not from the split
    assert whole[5]["id"] == derive_id("noid.jsonl", whole[5]["position"])


def test_truncated_gzip_keeps_what_was_read(tmp_path):
    data = gzip.compress(("\n".join(LINES) + "\n").encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    events = _events(path)
    recs, dead = _records(events), _dead(events)
    assert 0 < len(recs) < 200
    assert [r["id"] for r in recs] == [f"r{i}" for i in range(len(recs))]
    assert len(dead) == 1 and dead[0]["reason"] == "truncated_or_corrupt_stream"
    assert dead[0]["source"] == str(path)


def test_mislabelled_gzip_is_read_as_plain(tmp_path):
    path = tmp_path / "plain.jsonl.gz"
    path.write_bytes(("\n".join(LINES[:10]) + "\n").encode())
    assert detect_format(str(path), path.read_bytes()[:8]) == ("jsonl", "none", True)
    assert len(_records(_events(path))) == 10


BAD_LINES = {
    b'{"text": "unterminated': "malformed_json",
    b'[1, 2, 3]': "not_an_object",
    b'{"text": 42}': "wrong_type",
    b'{"text": null}': "null_text",
    b'{"body": "no text field"}': "missing_text",
    b'{"text": "lone \\ud800 surrogate"}': "lone_surrogate",
    b'{"text": "bad \xff\xfe bytes"}': "invalid_utf8",
    b"[" * 5000 + b"]" * 5000: "json_too_deep",
    b'{"text": "ok", "id": {"nested": 1}}': "wrong_type",
}


@pytest.mark.parametrize("line,reason", list(BAD_LINES.items()))
def test_bad_jsonl_lines_are_dead_lettered_with_reason(tmp_path, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "good1", "text": "fine"}\n' + line + b'\n{"id": "good2", "text": "fine"}\n')
    events = _events(path)
    assert [r["id"] for r in _records(events)] == ["good1", "good2"]
    dead = _dead(events)
    assert len(dead) == 1
    assert dead[0]["reason"] == reason
    assert dead[0]["position"] == len(b'{"id": "good1", "text": "fine"}\n')
    assert dead[0]["source"] == str(path)
    json.dumps(dead[0])  # always serialisable


def test_oversized_line_skipped_without_losing_the_next(tmp_path):
    path = tmp_path / "big.jsonl"
    big = json.dumps({"text": "x" * 5000})
    path.write_text(big + "\n" + json.dumps({"id": "after", "text": "small"}) + "\n")
    events = _events(path, ReaderConfig(max_doc_bytes=1000))
    assert [r["id"] for r in _records(events)] == ["after"]
    assert [d["reason"] for d in _dead(events)] == ["too_large"]


def test_parquet_reads_only_needed_columns_and_splits_row_groups(tmp_path, monkeypatch):
    n = 50
    table = pa.table({
        "id": [f"p{i}" for i in range(n)],
        "text": [f"row {i}" if i != 7 else None for i in range(n)],
        "url": [f"https://example.org/{i}" for i in range(n)],
        "huge_unused": ["z" * 100] * n,
    })
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=20)
    read_columns = []
    original = pq.ParquetFile.read_row_group

    def spy(self, i, columns=None, **kw):
        read_columns.append(tuple(columns))
        return original(self, i, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    tasks = list(plan_reads(str(path), path.stat().st_size, "t.parquet", ReaderConfig()))
    assert [t.row_group for t in tasks] == [0, 1, 2]
    events = [e for t in tasks for e in read_task(t, ReaderConfig())]
    recs, dead = _records(events), _dead(events)
    assert len(recs) == 49 and recs[0]["meta"]["url"] == "https://example.org/0"
    assert dead[0]["reason"] == "null_text" and dead[0]["position"] == 7 and dead[0]["unit"] == "row"
    assert all("huge_unused" not in cols for cols in read_columns)


def test_truncated_parquet_is_one_dead_letter(tmp_path):
    path = tmp_path / "cut.parquet"
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": ["a"] * 100}), buf)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    events = _events(path)
    assert _records(events) == []
    assert [d["reason"] for d in _dead(events)] == ["unreadable_parquet"]


def _warc_record(rtype, uri, block, rid):
    head = (f"WARC/1.0\r\nWARC-Type: {rtype}\r\nWARC-Record-ID: <urn:uuid:{rid}>\r\n"
            f"WARC-Target-URI: {uri}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            f"Content-Length: {len(block)}\r\n\r\n").encode()
    return gzip.compress(head + block + b"\r\n\r\n")


def test_warc_responses_charset_and_non_documents(tmp_path):
    html = "<html><body><p>Crème brûlée</p></body></html>".encode("latin-1")
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n" + html
    img = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n\x89PNG...."
    missing = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n<p>nope</p>"
    data = (_warc_record("warcinfo", "", b"software: test\r\n", "0")
            + _warc_record("request", "https://e.org/a", b"GET /a HTTP/1.1\r\n\r\n", "1")
            + _warc_record("response", "https://e.org/a", resp, "2")
            + _warc_record("response", "https://e.org/b.png", img, "3")
            + _warc_record("response", "https://e.org/c", missing, "4"))
    path = tmp_path / "c.warc.gz"
    path.write_bytes(data)
    events = _events(path)
    recs = _records(events)
    assert len(recs) == 1
    assert "Crème brûlée" in recs[0]["text"] and recs[0]["meta"]["html"] is True
    assert recs[0]["id"] == "<urn:uuid:2>" and recs[0]["meta"]["url"] == "https://e.org/a"
    assert sorted(v for k, v in events if k == "filtered") == [
        "warc_http_status", "warc_non_document", "warc_non_document", "warc_non_text"]
    # a truncated archive keeps the records before the cut
    path.write_bytes(data[: len(data) - 30])
    events = _events(path)
    assert len(_records(events)) == 1
    assert len(_dead(events)) == 1


def test_text_files_bom_binary_and_encoding(tmp_path):
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfHello text file.")
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 16)
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "x.xyz").write_bytes(b"what is this")
    assert _records(_events(tmp_path / "bom.txt"))[0]["text"] == "Hello text file."
    assert [d["reason"] for d in _dead(_events(tmp_path / "bin.txt"))] == ["binary_file"]
    assert [d["reason"] for d in _dead(_events(tmp_path / "latin.txt"))] == ["invalid_utf8"]
    assert [d["reason"] for d in _dead(_events(tmp_path / "x.xyz"))] == ["unknown_format"]


def test_glob_root():
    assert glob_root("/data/crawl/*.jsonl") == "/data/crawl/"
    assert glob_root("gs://b/x/**/y*.gz") == "gs://b/x/"
    assert glob_root("/data/one.jsonl") == "/data/"


def test_record_keys_unique_across_roots_and_stable_across_reads(tmp_path):
    # the same relative name under two --input roots: ids collide, keys must not
    lines = "\n".join(json.dumps({"text": f"doc {i}"}) for i in range(20)) + "\n"
    paths = []
    for root in ("crawl1", "crawl2"):
        (tmp_path / root).mkdir()
        path = tmp_path / root / "part.jsonl"
        path.write_text(lines)
        paths.append(path)
    first, second = (_records(_events(p, rel="part.jsonl")) for p in paths)
    assert [r["id"] for r in first] == [r["id"] for r in second]  # derived from rel: the same
    assert len({r["key"] for r in first + second}) == 40
    for path, recs in zip(paths, (first, second)):
        assert all(r["key"] == accounting.record_key(str(path), r["position"]) for r in recs)
        assert all(r["source"] == str(path) for r in recs)
    again = _records(_events(paths[0], rel="part.jsonl"))
    assert [r["key"] for r in again] == [r["key"] for r in first]


def test_every_reader_sets_a_key(tmp_path):
    (tmp_path / "a.txt").write_text("A plain text file.")
    pq.write_table(pa.table({"text": ["row one", "row two"]}), tmp_path / "b.parquet")
    (tmp_path / "c.warc").write_bytes(_warc_plain(3))
    keys = []
    for name in ("a.txt", "b.parquet", "c.warc"):
        recs = _records(_events(tmp_path / name))
        assert recs and all(r["key"] == accounting.record_key(str(tmp_path / name), r["position"])
                            for r in recs)
        keys += [r["key"] for r in recs]
    assert len(set(keys)) == len(keys) == 6


@pytest.mark.parametrize("compress", [None, gzip.compress, zstandard.ZstdCompressor().compress],
                         ids=["plain", "gz", "zst"])
def test_utf8_bom_at_file_start_is_dropped(tmp_path, compress):
    data = b"\xef\xbb\xbf" + b'{"id": "first", "text": "one"}\n{"id": "second", "text": "two"}\n'
    suffix = {None: "", gzip.compress: ".gz"}.get(compress, ".zst")
    path = tmp_path / ("bom.jsonl" + suffix)
    path.write_bytes(compress(data) if compress else data)
    events = _events(path)
    assert _dead(events) == []
    recs = _records(events)
    assert [(r["id"], r["text"], r["position"]) for r in recs] == [("first", "one", 0), ("second", "two", 34)]


def _warc_http(i, length=None):
    """One WARC response record; ``length`` overrides (lies about) its Content-Length."""
    block = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
             + f"<html><body><p>Page number {i} of the crawl.</p></body></html>".encode())
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{i}>\r\n"
            f"WARC-Target-URI: https://e.org/{i}\r\n"
            f"Content-Length: {len(block) if length is None else length}\r\n\r\n").encode()
    return head + block + b"\r\n\r\n", len(block)


def _warc_plain(n):
    return b"".join(_warc_http(i)[0] for i in range(n))


LIES = {
    "huge": lambda true_len: 10 ** 15,                 # far over any cap
    "past_eof": lambda true_len: true_len + 100_000,   # longer than the rest of the file
    "into_next": lambda true_len: true_len + 60,       # swallows the head of the next record
    "short": lambda true_len: true_len - 25,           # ends inside its own block
}


@pytest.mark.parametrize("gz", [False, True], ids=["warc", "warc.gz"])
@pytest.mark.parametrize("lie", sorted(LIES))
def test_warc_lying_content_length_resyncs_at_next_record(tmp_path, lie, gz):
    records = []
    for i in range(12):
        raw, true_len = _warc_http(i)
        if i == 6:
            raw, _ = _warc_http(i, LIES[lie](true_len))
        records.append(raw)
    stream = b"".join(records)
    starts = [sum(len(r) for r in records[:i]) for i in range(12)]
    path = tmp_path / ("lying.warc.gz" if gz else "lying.warc")
    # .warc.gz as crawlers write it: one gzip member per record
    path.write_bytes(b"".join(gzip.compress(r) for r in records) if gz else stream)
    events = _events(path)
    recs, dead = _records(events), _dead(events)
    assert [r["id"] for r in recs] == [f"<urn:uuid:{i}>" for i in range(12) if i != 6]
    assert [r["position"] for r in recs] == [starts[i] for i in range(12) if i != 6]
    assert all(f"Page number {r['id'][10:-1]} " in r["text"] for r in recs)
    assert len(dead) == 1 and dead[0]["position"] == starts[6]
    assert dead[0]["reason"] in ("too_large", "warc_length_mismatch")
    assert len(events) == 12  # every record counted once


def test_warc_garbage_and_truncation_are_counted(tmp_path):
    body = _warc_plain(3)
    path = tmp_path / "junk.warc"
    # junk before the first record, then a record cut inside its headers
    path.write_bytes(b"not a warc header\r\n" + body + b"WARC/1.0\r\nWARC-Type: resp")
    events = _events(path)
    assert len(_records(events)) == 3
    assert [(d["reason"], d["position"]) for d in _dead(events)] == [
        ("corrupt_warc", 0), ("truncated_warc_record", len(b"not a warc header\r\n") + len(body))]
    # a record whose headers never end: the next record is still read
    broken = b"WARC/1.0\r\nWARC-Type: response\r\n" + _warc_plain(2)
    path.write_bytes(broken)
    events = _events(path)
    assert [r["id"] for r in _records(events)] == ["<urn:uuid:0>", "<urn:uuid:1>"]
    assert [d["reason"] for d in _dead(events)] == ["corrupt_warc"]
