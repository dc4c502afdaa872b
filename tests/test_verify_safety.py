"""verify reads only regular files inside the output folder, and never hangs.

Every path it would read (manifest paths, and its own fixed names such as
manifest.json and COMPLETED) must be relative, without ``..``, resolve inside
the folder, and be a regular file; anything else is reported by name without
being opened. Each call runs under a deadline, so a regression that blocks on
a fifo or streams /dev/zero fails the test instead of hanging the suite.
"""

import builtins
import io
import os
import shutil
import threading

import pytest

from beam_pipelines import verify as verify_mod
from beam_pipelines.verify import check_shard, path_problem, verify
from test_verify import _manifest, _write_json, build_good_run

DEADLINE_S = 60


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    return build_good_run(tmp_path_factory)  # the same run as test_verify.py's, built once


@pytest.fixture
def copy(good_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(good_run, out, symlinks=True)
    return out


def _bounded(fn, *args):
    """``fn(*args)``, failing (not hanging) when it takes longer than DEADLINE_S."""
    result = {}

    def call():
        try:
            result["value"] = fn(*args)
        except BaseException as e:  # re-raised below, in the test's thread
            result["error"] = e

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"{fn.__name__} hung (blocked on a fifo or device?)"
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture
def opened(monkeypatch):
    """Every path opened (os.open, open, io.open) while the test runs."""
    paths = []
    real_os_open, real_open = os.open, builtins.open

    def spy_os_open(path, *args, **kwargs):
        paths.append(os.path.realpath(os.fspath(path)))
        return real_os_open(path, *args, **kwargs)

    def spy_open(file, *args, **kwargs):
        if not isinstance(file, int):
            paths.append(os.path.realpath(os.fspath(file)))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy_os_open)
    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_open)
    return paths


def _set_shard_path(out, old, new):
    manifest = _manifest(out)
    next(s for s in manifest["shards"] if s["path"] == old)["path"] = new
    _write_json(out / "manifest.json", manifest)


def _first_shard(out):
    return next(s["path"] for s in _manifest(out)["shards"] if s["records"])


# ------------------------------------------------------------------ manifest paths


@pytest.mark.parametrize("bad", ["/dev/zero", "/etc/passwd", "gs://bucket/data/x.tfrecord",
                                 "data/../../../dev/zero", "../out/data/train-00000-of-00003.tfrecord"])
def test_shard_path_leaving_the_folder_is_refused(copy, bad, opened):
    rel = _first_shard(copy)
    _set_shard_path(copy, rel, bad)
    opened.clear()
    problems = _bounded(verify, str(copy))
    why = "absolute path" if not bad.startswith(("data/", "..")) else "'..' component"
    assert any(p.startswith(f"{bad}: ") and why in p for p in problems), problems
    assert len([p for p in problems if p.startswith(f"{bad}: ")]) == 1  # named once
    assert f"{rel}: missing from manifest.json (split 'train' lists 2 of its 3 shards)" in problems
    assert not [p for p in opened if p.startswith(("/dev", "/etc"))]


def test_tokenizer_path_leaving_the_folder_is_not_read(copy, tmp_path, opened):
    secret = tmp_path / "etc" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0\n")
    manifest = _manifest(copy)
    manifest["tokenizer"]["path"] = "../etc/passwd"  # copy is tmp_path/out
    _write_json(copy / "manifest.json", manifest)
    opened.clear()
    problems = _bounded(verify, str(copy))
    assert opened  # the spy sees verify's reads
    assert "../etc/passwd: path has a '..' component (leaves the output folder)" in problems
    assert str(secret.resolve()) not in opened
    assert not any("tokenizer sha256" in p for p in problems)


@pytest.mark.parametrize("rel, why", [
    ("data/train-00000-of-00003.tfrecord", None),
    ("data/./train.tfrecord", None),
    ("tokenizer/spm.model", None),
    ("/abs/path", "absolute path"),
    ("\\\\server\\share", "absolute path"),
    ("C:\\data\\x", "absolute path"),
    ("gs://bucket/x", "absolute path"),
    ("file:///etc/passwd", "absolute path"),
    ("..", "'..' component"),
    ("data/../../x", "'..' component"),
    ("data\\..\\..\\x", "'..' component"),
    ("", "not a relative path"),
    (None, "not a relative path"),
    (7, "not a relative path"),
    ("data/x\0y", "NUL byte"),
])
def test_path_problem_lexical_rules(rel, why):
    got = path_problem(rel)
    assert (got is None) if why is None else (why in got), got


# ------------------------------------------------------------------ what is on disk


def test_symlink_out_of_the_folder_is_refused(copy, tmp_path, opened):
    """A valid shard, byte for byte, but outside: refused without being opened."""
    rel = _first_shard(copy)
    outside = tmp_path / "elsewhere" / "shard.tfrecord"
    outside.parent.mkdir()
    shutil.move(str(copy / rel), outside)
    (copy / rel).symlink_to(outside)
    opened.clear()
    problems = _bounded(verify, str(copy))
    assert problems == [f"{rel}: symlink resolves outside the output folder (to {outside.resolve()})"]
    assert str(outside.resolve()) not in opened


def test_symlinks_inside_the_folder_are_followed(copy, tmp_path):
    rel = _first_shard(copy)
    store = copy / "store"
    store.mkdir()
    shutil.move(str(copy / rel), store / "shard")
    (copy / rel).symlink_to(os.path.join("..", "store", "shard"))
    assert verify(str(copy)) == []
    link = tmp_path / "current"  # the output folder itself reached through a link
    link.symlink_to(copy)
    assert verify(str(link)) == []


@pytest.mark.parametrize("name", ["manifest.json", "COMPLETED", "stats.json",
                                  "dataset_info.json", "features.json"])
def test_fixed_file_symlinked_to_dev_zero(copy, name):
    (copy / name).unlink()
    (copy / name).symlink_to("/dev/zero")
    problems = _bounded(verify, str(copy))
    assert f"{name}: symlink resolves outside the output folder (to /dev/zero)" in problems


def test_fifo_instead_of_a_shard(copy):
    rel = _first_shard(copy)
    (copy / rel).unlink()
    os.mkfifo(copy / rel)
    assert _bounded(verify, str(copy)) == [f"{rel}: not a regular file (fifo)"]
    assert _bounded(check_shard, str(copy / rel))[3] == ["not a regular file (fifo)"]


def test_fifo_instead_of_the_manifest(copy):
    (copy / "manifest.json").unlink()
    os.mkfifo(copy / "manifest.json")
    problems = _bounded(verify, str(copy))
    assert problems == ["manifest.json: not a regular file (fifo)"]
    assert _bounded(verify_mod.main, [str(copy)]) == 1


def test_directory_instead_of_a_shard(copy):
    rel = _first_shard(copy)
    (copy / rel).unlink()
    (copy / rel).mkdir()
    assert _bounded(verify, str(copy)) == [f"{rel}: not a regular file (directory)"]


def test_device_instead_of_a_shard(copy):
    rel = _first_shard(copy)
    (copy / rel).unlink()
    try:
        os.mknod(copy / rel, 0o600 | 0o020000, os.makedev(1, 5))  # a character device: zero
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot create a device node here ({e})")
    assert _bounded(verify, str(copy)) == [f"{rel}: not a regular file (character device)"]


def test_dangling_symlink_is_missing(copy):
    rel = _first_shard(copy)
    (copy / rel).unlink()
    (copy / rel).symlink_to("nowhere.tfrecord")
    assert verify(str(copy)) == [f"{rel}: missing"]


# ------------------------------------------------------------------ other filesystems


def test_non_local_filesystems_get_the_lexical_checks(copy, monkeypatch, tmp_path):
    """On gs:// there are no symlinks or devices to ask about: the path rules still hold."""
    monkeypatch.setattr(verify_mod, "_is_local", lambda path: False)
    assert verify(str(copy)) == []  # the Beam FileSystems path reads a good output
    rel = _first_shard(copy)
    manifest = _manifest(copy)
    manifest["tokenizer"]["path"] = "../../etc/passwd"
    next(s for s in manifest["shards"] if s["path"] == rel)["path"] = "/dev/zero"
    _write_json(copy / "manifest.json", manifest)
    problems = _bounded(verify, str(copy))
    assert "../../etc/passwd: path has a '..' component (leaves the output folder)" in problems
    assert ("/dev/zero: absolute path (manifest paths are relative to the output folder)"
            in problems)
