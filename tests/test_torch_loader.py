"""The PyTorch IterableDataset: ranks x DataLoader workers see every record exactly once per
epoch, batches equal the NumPy loader's (hence tf.data's packing), exact resume from a state
dict, and two real torch.distributed ranks (gloo) split the records between them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_loaders import _data_dir  # noqa: E402

from trainer import loaders  # noqa: E402
from trainer.torch_data import LMDataset, LoaderState  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ids_of(loader):
    seen = []
    for batch in loader:
        for row in batch["ids"]:
            seen.extend(row)
    return seen


def record_ids(batches):
    """Ids of the records whose tokens the batches hold (a record cut into pieces counts once)."""
    return {rid for b in batches for row in b["ids"] for rid in row}


@pytest.mark.parametrize("world,workers", [(1, 2), (2, 2), (3, 1)])
def test_ranks_times_workers_see_every_record_once_per_epoch(tmp_path, world, workers):
    docs = _data_dir(tmp_path, n_docs=240, n_files=5)
    nonempty = {rid for rid, ids in docs.items() if ids}
    per_reader = []
    for rank in range(world):
        ds = LMDataset(str(tmp_path), 32, 4, mode="pack", shuffle_buffer=16,
                       rank=rank, world_size=world, with_ids=True, seed=3)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
        batches = list(loader)
        assert all(b["readers"].item() == world * workers for b in batches)
        by_reader = {}
        for b in batches:
            by_reader.setdefault(b["reader"].item(), []).append(b)
        assert sorted(by_reader) == [rank * workers + w for w in range(workers)]
        per_reader += [record_ids(v) for v in by_reader.values()]
    # the readers' records are disjoint, and together every record (packing keeps every token)
    union = set().union(*per_reader)
    assert sum(len(r) for r in per_reader) == len(union)
    assert union == nonempty


def test_batches_are_the_numpy_loaders_as_tensors(tmp_path):
    _data_dir(tmp_path, n_docs=150, n_files=3)
    ds = LMDataset(str(tmp_path), 48, 6, mode="pack", shuffle_buffer=32, seed=7)
    ours = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0))
    theirs = list(loaders.LMBatches(str(tmp_path), 48, 6, mode="pack", shuffle_buffer=32, seed=7))
    assert len(ours) == len(theirs) > 10
    for a, (f, t, w) in zip(ours, theirs):
        assert a["tokens"].dtype == torch.int32 and a["weights"].dtype == torch.float32
        for key in ("tokens", "segment_ids", "positions"):
            np.testing.assert_array_equal(a[key].numpy(), f[key])
        np.testing.assert_array_equal(a["targets"].numpy(), t)
        np.testing.assert_array_equal(a["weights"].numpy(), w)
    # a seed changes the order; the same seed gives the same batches again
    again = list(torch.utils.data.DataLoader(LMDataset(str(tmp_path), 48, 6, shuffle_buffer=32,
                                                       seed=7), batch_size=None))
    other = list(torch.utils.data.DataLoader(LMDataset(str(tmp_path), 48, 6, shuffle_buffer=32,
                                                       seed=8), batch_size=None))
    assert all(torch.equal(a["tokens"], b["tokens"]) for a, b in zip(ours, again))
    assert not all(torch.equal(a["tokens"], b["tokens"]) for a, b in zip(ours, other))


def test_packed_batches_equal_tf_data_for_the_same_records(tmp_path):
    from trainer import input_pipeline as ip

    _data_dir(tmp_path, n_docs=200, n_files=1)
    files = ip.shard_files(str(tmp_path), "train")
    cfg = ip.InputConfig(seq_len=64, batch_size=8, mode="pack", deterministic=True)
    want = list(ip.make_dataset(files, cfg, training=False))
    got = list(torch.utils.data.DataLoader(LMDataset(str(tmp_path), 64, 8, mode="pack",
                                                     shuffle_buffer=0), batch_size=None))
    assert len(got) == len(want) > 5
    for g, (f, t, w) in zip(got, want):
        for key in ("tokens", "segment_ids", "positions"):
            np.testing.assert_array_equal(g[key].numpy(), np.asarray(f[key]))
        np.testing.assert_array_equal(g["targets"].numpy(), np.asarray(t))
        np.testing.assert_array_equal(g["weights"].numpy(), np.asarray(w))


def test_resume_from_the_state_dict_continues_each_reader_exactly(tmp_path):
    _data_dir(tmp_path, n_docs=300, n_files=4)
    kwargs = dict(mode="bucket", bucket_window=2, shuffle_buffer=20, with_ids=True, seed=1)

    def run(state=None, stop=None):
        ds = LMDataset(str(tmp_path), 32, 4, state=state, **kwargs)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                             prefetch_factor=4)
        tracker, seen = LoaderState(state), []
        for i, batch in enumerate(loader):
            if stop is not None and i == stop:
                break  # prefetched batches are dropped here, never trained on
            tracker.update(batch)
            seen.append((batch["reader"].item(), tuple(map(tuple, batch["ids"]))))
        return seen, tracker.state_dict()

    full, _ = run()
    first, saved = run(stop=7)
    saved = json.loads(json.dumps(saved))  # as it would be saved with a checkpoint
    rest, _ = run(state=saved)
    for reader in (0, 1):
        want = [ids for r, ids in full if r == reader]
        got = [ids for r, ids in first + rest if r == reader]
        assert got == want, reader
    assert len(first) == 7 and len(first) + len(rest) == len(full)
    with pytest.raises(ValueError, match="readers"):
        next(iter(LMDataset(str(tmp_path), 32, 4, state={"readers": 5, "positions": {}})))


def test_epochs_reshuffle_and_repeat_goes_on(tmp_path):
    docs = _data_dir(tmp_path, n_docs=60, n_files=2)
    ds = LMDataset(str(tmp_path), 32, 4, shuffle_buffer=30, with_ids=True)
    e0 = [b["ids"] for b in ds]
    ds.set_epoch(1)
    e1 = [b["ids"] for b in ds]
    every = {rid for rid, ids in docs.items() if ids}
    assert e0 != e1
    assert {r for b in e0 for row in b for r in row} == {r for b in e1 for row in b for r in row} \
        == every
    forever = LMDataset(str(tmp_path), 32, 4, repeat=True)
    epochs = set()
    for i, b in enumerate(forever):
        epochs.add(b["epoch"].item())
        if i > 3 * len(e0):
            break
    assert epochs >= {0, 1, 2}


_RANK_SCRIPT = r"""
import json, sys
import torch, torch.distributed as dist
from trainer.torch_data import LMDataset
rank, world, init, data_dir, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
ds = LMDataset(data_dir, 32, 4, mode="pack", with_ids=True)
loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
ids = sorted({rid for b in loader for row in b["ids"] for rid in row})
count = torch.tensor([len(ids)])
dist.all_reduce(count)
json.dump({"ids": ids, "total": int(count)}, open(out, "w"))
dist.destroy_process_group()
"""


def test_two_torch_distributed_ranks_split_the_records(tmp_path):
    docs = _data_dir(tmp_path / "d", n_docs=120, n_files=3)
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [subprocess.Popen([sys.executable, "-c", _RANK_SCRIPT, str(r), "2", init,
                               str(tmp_path / "d"), str(tmp_path / f"rank{r}.json")], cwd=ROOT)
             for r in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    a, b = set(got[0]["ids"]), set(got[1]["ids"])
    assert a and b and not a & b
    assert a | b == {rid for rid, ids in docs.items() if ids}
    assert got[0]["total"] == got[1]["total"] == len(a) + len(b)  # all_reduce ran across both
