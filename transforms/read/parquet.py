"""Parquet: one record per row, reading only the columns the pipeline uses."""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from transforms import accounting
from transforms.read.plan import ReaderConfig, ReadTask, open_raw, parquet_columns, parquet_stop
from transforms.read.records import Event, rows_of_columns

__all__ = ["iter_parquet"]


def iter_parquet(task: ReadTask, config: ReaderConfig,
                 on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Event]:
    import pyarrow.parquet as pq

    with open_raw(task.path) as raw:
        try:
            pf = pq.ParquetFile(raw)
        except Exception as e:
            yield "dead", accounting.dead_letter_entry(
                task.path, 0, "unreadable_parquet", f"{type(e).__name__}: {e}", unit="file")
            return
        names = set(pf.schema_arrow.names)
        if config.text_field not in names:
            if task.row_group <= 0:
                yield "dead", accounting.dead_letter_entry(
                    task.path, 0, "missing_text_column",
                    f"no column {config.text_field!r} among {sorted(names)[:20]}", unit="file")
            return
        # Read only the columns the pipeline uses.
        columns = parquet_columns(pf, config)
        groups = [task.row_group] if task.row_group >= 0 else list(range(pf.metadata.num_row_groups))
        # A task for one row group was planned under the limits; a whole file checks here.
        stop = parquet_stop(pf.metadata, columns, config) if task.row_group < 0 else None
        first = task.first_row if task.row_group >= 0 else 0
        for g in groups:
            if stop is not None and g == stop[0]:
                yield "dead", accounting.dead_letter_entry(task.path, first, stop[1], stop[2], unit="row")
                return
            n_rows = pf.metadata.row_group(g).num_rows
            try:
                table = pf.read_row_group(g, columns=columns)
                cols = {c: table.column(c).to_pylist() for c in columns}
            except Exception as e:
                yield "dead", accounting.dead_letter_entry(
                    task.path, first, "corrupt_row_group",
                    f"row group {g} ({n_rows} rows): {type(e).__name__}: {e}", unit="row")
                first += n_rows
                continue
            if on_bytes is not None:
                on_bytes(table.nbytes)
            yield from rows_of_columns(cols, n_rows, first, task.path, task.rel, config)
            first += n_rows
