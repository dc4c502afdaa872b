"""PyTorch: a text output's shards as a ``torch.utils.data.IterableDataset`` (no TensorFlow).

:class:`LMDataset` yields the batches of :class:`trainer.loaders.LMBatches`
(the project's own TFRecord reader, CRCs checked; the same cutting, packing,
bucketing and dynamic padding as the tf.data pipeline) as tensors. Use it
with ``DataLoader(dataset, batch_size=None, num_workers=K)``: the dataset
makes the batches itself.

Sharding: every record goes to exactly one reader. A reader is one
``torch.distributed`` rank (``get_rank()`` of ``get_world_size()`` when a
process group is initialised, or ``rank``/``world_size`` given) times one
DataLoader worker (``get_worker_info()``), so ``world_size x num_workers``
readers see each record once per epoch, with no overlap and no gap.

Shuffling: a buffer seeded by (seed, epoch, reader); ``set_epoch(e)`` starts
epoch ``e`` (as ``DistributedSampler.set_epoch``), or ``repeat=True`` goes on
through the epochs.

Exact resume: each batch carries its reader and that reader's position
(``reader`` of ``readers``, ``epoch``, ``batch``). :class:`LoaderState` keeps the position of
the last batch the loop consumed from each reader; its ``state_dict()`` saved
with a checkpoint and given back as ``LMDataset(..., state=...)`` makes every
reader continue after its last consumed batch: batches the DataLoader had
prefetched but the loop never saw are produced again, none is trained on
twice, whatever order the workers' batches arrived in.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional

import torch
from torch.utils.data import IterableDataset, get_worker_info

from trainer.loaders import LMBatches, reader_index

__all__ = ["LMDataset", "LoaderState", "rank_and_world"]


def rank_and_world(rank: Optional[int] = None, world_size: Optional[int] = None):
    """(rank, world size): given, else from an initialised torch.distributed group, else (0, 1)."""
    if rank is not None and world_size is not None:
        return rank, world_size
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class LMDataset(IterableDataset):
    """Language-model batches of a text output: dicts of int32/float32 tensors.

    Each item: ``tokens``, ``segment_ids``, ``positions`` (inputs, ``[B, T]`` int32),
    ``targets`` (int32), ``weights`` (float32; 0 where a position predicts
    nothing), and the reader's position ``reader``, ``epoch``, ``batch``
    and ``readers`` (0-d int64); ``ids`` (the record ids per row) with ``with_ids=True``.
    """

    def __init__(self, data_dir: str, seq_len: int, batch_size: int, split: str = "train",
                 mode: str = "pack", shuffle_buffer: int = 4096, seed: int = 0,
                 repeat: bool = False, rank: Optional[int] = None,
                 world_size: Optional[int] = None, state: Optional[Dict[str, Any]] = None,
                 with_ids: bool = False, bucket_window: int = 64):
        super().__init__()
        self.data_dir, self.split = data_dir, split
        self.seq_len, self.batch_size, self.mode = seq_len, batch_size, mode
        self.shuffle_buffer, self.seed, self.repeat = shuffle_buffer, seed, repeat
        self.rank, self.world_size = rank, world_size
        self.with_ids, self.bucket_window = with_ids, bucket_window
        self.state = state
        self.epoch = 0
        LMBatches(data_dir, seq_len, batch_size, split=split, mode=mode)  # fail early: no shards

    def set_epoch(self, epoch: int) -> None:
        """Start at ``epoch`` (readers without a saved position)."""
        self.epoch = int(epoch)

    def reader(self):
        """(this reader's index, readers in all) inside the current process and worker."""
        rank, world = rank_and_world(self.rank, self.world_size)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return reader_index(rank, world, worker, workers)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        index, count = self.reader()
        batches = LMBatches(self.data_dir, self.seq_len, self.batch_size, split=self.split,
                            mode=self.mode, shuffle_buffer=self.shuffle_buffer, seed=self.seed,
                            index=index, count=count, repeat=self.repeat,
                            bucket_window=self.bucket_window, with_ids=self.with_ids)
        position = None
        if self.state:
            if int(self.state.get("readers", count)) != count:
                raise ValueError(f"the saved loader state has {self.state['readers']} readers; "
                                 f"this run has {count} (world size x workers must not change "
                                 "to resume exactly)")
            position = (self.state.get("positions") or {}).get(str(index))
        if position:
            batches.load_state_dict(position)
        else:
            batches.epoch = self.epoch
        for features, targets, weights in batches:
            item = {k: torch.from_numpy(v) for k, v in features.items() if k != "ids"}
            item["targets"] = torch.from_numpy(targets)
            item["weights"] = torch.from_numpy(weights)
            item["reader"] = torch.tensor(index)
            item["readers"] = torch.tensor(count)
            item["epoch"] = torch.tensor(batches.epoch)
            item["batch"] = torch.tensor(batches.batches)
            if self.with_ids:
                item["ids"] = features["ids"]
            yield item


class LoaderState:
    """The last consumed batch of each reader: ``update(batch)`` after each step, save
    ``state_dict()`` with the checkpoint, resume with ``LMDataset(..., state=saved)``."""

    def __init__(self, state: Optional[Dict[str, Any]] = None):
        state = state or {}
        self.readers: Optional[int] = state.get("readers")
        self.positions: Dict[str, Dict[str, int]] = dict(state.get("positions") or {})

    def update(self, batch: Dict[str, Any]) -> None:
        self.readers = int(batch["readers"])
        self.positions[str(int(batch["reader"]))] = {"epoch": int(batch["epoch"]),
                                                      "batches": int(batch["batch"])}

    def state_dict(self) -> Dict[str, Any]:
        return {"readers": self.readers, "positions": dict(self.positions)}
