"""Arrow IPC: Hugging Face ``save_to_disk`` shards and Feather/IPC files, one record per row.

A ``datasets`` ``save_to_disk`` folder holds ``data-00000-of-000NN.arrow``
files in Arrow's *streaming* format (with ``dataset_info.json`` and
``state.json`` beside them: pass ``--input 'DIR/*.arrow'``); Feather v2 and
``pyarrow.ipc`` files use the *file* format (magic ``ARROW1``). Both are read
record batch by record batch, so memory holds one batch, and only the columns
the pipeline uses (text, id, url, license) are turned into Python objects. The
bytes of those columns count against ``max_file_bytes``: the batches past the
limit are one dead-letter entry, as Parquet's row groups are.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from transforms import accounting
from transforms.read.plan import ReaderConfig, ReadTask, open_raw
from transforms.read.records import Event, record_from_mapping

__all__ = ["iter_arrow", "ARROW_FILE_MAGIC"]

ARROW_FILE_MAGIC = b"ARROW1"


def _batches(f):
    """Record batches of an Arrow IPC file (file format) or stream (streaming format)."""
    import pyarrow as pa

    head = f.read(6)
    f.seek(0)
    if head == ARROW_FILE_MAGIC:
        reader = pa.ipc.open_file(f)
        return reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
    reader = pa.ipc.open_stream(f)
    return reader.schema, iter(reader)


def iter_arrow(task: ReadTask, config: ReaderConfig,
               on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Event]:
    with open_raw(task.path) as raw:
        try:
            schema, batches = _batches(raw)
        except Exception as e:  # noqa: BLE001 - pyarrow's message names the problem
            yield "dead", accounting.dead_letter_entry(
                task.path, 0, "unreadable_arrow", f"{type(e).__name__}: {e}", unit="file")
            return
        names = set(schema.names)
        if config.text_field not in names:
            yield "dead", accounting.dead_letter_entry(
                task.path, 0, "missing_text_column",
                f"no column {config.text_field!r} among {sorted(names)[:20]}", unit="file")
            return
        columns = [c for c in (config.text_field, config.id_field, "url", "license") if c in names]
        first = read = 0
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - a cut or garbled batch: keep what was read
                yield "dead", accounting.dead_letter_entry(
                    task.path, first, "corrupt_record_batch", f"{type(e).__name__}: {e}", unit="row")
                return
            picked = batch.select(columns)
            read += picked.nbytes
            if read > config.max_file_bytes:
                yield "dead", accounting.dead_letter_entry(
                    task.path, first, "file_too_large",
                    f"record batches from row {first} on not read: {read} bytes of the columns "
                    f"read exceed max_file_bytes={config.max_file_bytes}", unit="row")
                return
            if on_bytes is not None:
                on_bytes(picked.nbytes)
            cols = {c: picked.column(c).to_pylist() for c in columns}
            for i in range(batch.num_rows):
                obj = {c: cols[c][i] for c in columns}
                rec, dead = record_from_mapping(
                    obj, task.path, task.rel, first + i, config, raw=repr(obj)[:400], unit="row")
                if dead is not None:
                    yield "dead", dead
                else:
                    yield "record", rec
            first += batch.num_rows
