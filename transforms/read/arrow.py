"""Arrow IPC: Hugging Face ``save_to_disk`` shards and Feather/IPC files, one record per row.

A ``datasets`` ``save_to_disk`` folder holds ``data-00000-of-000NN.arrow``
files in Arrow's *streaming* format (with ``dataset_info.json`` and
``state.json`` beside them: pass ``--input 'DIR/*.arrow'``); Feather v2 and
``pyarrow.ipc`` files use the *file* format (magic ``ARROW1``). Both are read
record batch by record batch, so memory holds one batch, and only the columns
the pipeline uses (text, id, url, license) are turned into Python objects. The
bytes of those columns count against ``max_file_bytes`` and, against the
file's size, ``max_decompression_ratio`` (IPC buffers may be compressed): the
batches past a limit are one dead-letter entry, as Parquet's row groups are.
One batch is decoded before it is measured, so a single compressed batch can
expand in memory before the ratio stops the file.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from transforms import accounting
from transforms.read.plan import RATIO_FLOOR, ReaderConfig, ReadTask, open_raw
from transforms.read.records import Event, rows_of_columns

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
            raw.seek(0, 2)
            on_disk = raw.tell()
            raw.seek(0)
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
            if read >= RATIO_FLOOR and read > config.max_decompression_ratio * max(on_disk, 1):
                # compressed IPC buffers: the batches hold far more than the file
                yield "dead", accounting.dead_letter_entry(
                    task.path, first, "decompression_bomb",
                    f"record batches from row {first} on not read: {read} bytes from a file of "
                    f"{on_disk} exceed max_decompression_ratio={config.max_decompression_ratio:g}",
                    unit="row")
                return
            if read > config.max_file_bytes:
                yield "dead", accounting.dead_letter_entry(
                    task.path, first, "file_too_large",
                    f"record batches from row {first} on not read: {read} bytes of the columns "
                    f"read exceed max_file_bytes={config.max_file_bytes}", unit="row")
                return
            if on_bytes is not None:
                on_bytes(picked.nbytes)
            cols = {c: picked.column(c).to_pylist() for c in columns}
            yield from rows_of_columns(cols, batch.num_rows, first, task.path, task.rel, config)
            first += batch.num_rows
