"""Arrow IPC input: Hugging Face save_to_disk shards (streaming format) and Feather/IPC files."""

import pyarrow as pa
import pyarrow.feather as feather

from conftest import read_dead_letter, read_shards, run_text

TEXT = ("Arrow files carry columns of text that this pipeline reads one record batch at a time. "
        "Each document here is long enough to pass the length rules of the filter step and it "
        "ends with a full stop. The shards then hold it as one record with its own id.")


def _table(n, start=0, with_text=True):
    cols = {"id": [f"row{start + i:04d}" for i in range(n)],
            "url": [f"https://example.org/{start + i}" for i in range(n)],
            "extra": list(range(n))}
    if with_text:
        cols["text"] = [f"Document number {start + i}. {TEXT}" for i in range(n)]
    return pa.table(cols)


def _write_stream(path, table, batch_rows=7):
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write_batch(batch)


def test_save_to_disk_shards_and_feather_files_are_read_row_by_row(tmp_path):
    src = tmp_path / "ds"
    src.mkdir()
    _write_stream(src / "data-00000-of-00002.arrow", _table(20))
    _write_stream(src / "data-00001-of-00002.arrow", _table(15, start=20))
    (src / "state.json").write_text("{}")  # what save_to_disk writes beside them
    feather.write_feather(_table(5, start=100), str(tmp_path / "more.feather"))  # IPC file format
    no_text = tmp_path / "no_text.arrow"
    _write_stream(no_text, _table(3, with_text=False))
    cut = tmp_path / "cut.arrow"
    _write_stream(cut, _table(30, start=200))
    cut.write_bytes(cut.read_bytes()[: int(cut.stat().st_size * 0.6)])

    out = tmp_path / "out"
    stats = run_text([src / "*.arrow", tmp_path / "more.feather", no_text, cut], out,
                     "--steps", "clean", "--max_dead_letter_fraction", "0.5",
                     "--validation_fraction", "0")
    ids = sorted(r["id"][0].decode() for r in read_shards(out))
    read_from_cut = [i for i in ids if i >= "row0200"]
    assert [i for i in ids if i < "row0200"] == sorted(
        [f"row{i:04d}" for i in range(35)] + [f"row{i:04d}" for i in range(100, 105)])
    assert 0 < len(read_from_cut) < 30  # the batches before the cut
    reasons = {e["reason"] for e in read_dead_letter(out)}
    assert reasons == {"missing_text_column", "corrupt_record_batch"}
    assert stats["records_in"] == (stats["records_out"] + sum(stats["filtered"].values())
                                   + sum(stats["duplicates"].values())
                                   + sum(stats["dead_letter"].values()))


def test_compressed_batches_that_expand_far_past_the_file_are_stopped(tmp_path):
    from transforms.read.arrow import iter_arrow
    from transforms.read.plan import ReaderConfig, ReadTask

    table = pa.table({"id": [f"big{i}" for i in range(40)], "text": ["a" * (1 << 20)] * 40})
    path = tmp_path / "bomb.arrow"
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema,
                                                               options=options) as writer:
        for batch in table.to_batches(max_chunksize=4):
            writer.write_batch(batch)
    assert path.stat().st_size < 200_000  # 40 MB of text in a few kB
    events = list(iter_arrow(ReadTask(str(path), "arrow", "none", "bomb.arrow"), ReaderConfig()))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "dead" and events[-1][1]["reason"] == "decompression_bomb"
    assert 0 < kinds.count("record") < 40  # what came before the limit was read


def test_a_real_datasets_save_to_disk_folder_is_read(tmp_path, monkeypatch):
    datasets = __import__("pytest").importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    table = _table(40)
    ds = datasets.Dataset(table)
    ds.save_to_disk(str(tmp_path / "saved"), num_shards=3)
    shards = sorted(p.name for p in (tmp_path / "saved").glob("*.arrow"))
    assert len(shards) == 3 and (tmp_path / "saved" / "dataset_info.json").exists()
    out = tmp_path / "out"
    stats = run_text([tmp_path / "saved" / "*.arrow"], out, "--steps", "clean",
                     "--validation_fraction", "0")
    rows = read_shards(out)
    assert stats["records_in"] == stats["records_out"] == 40
    assert sorted(r["id"][0].decode() for r in rows) == table.column("id").to_pylist()
    assert sorted(r["url"][0].decode() for r in rows) == sorted(table.column("url").to_pylist())
