"""Kill-safe checkpoints: AtomicCheckpointIO writes beside the target and renames, and `reskd fit` uses it.

The issue (12): Lightning's save writes a temporary file in $TMPDIR and moves it; across filesystems the move is a
copy onto a truncated `last.ckpt`, so a SIGKILL during it left an unloadable `last.ckpt` (and an orphan in $TMPDIR).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import fsspec
import pytest
import torch
import yaml
from demo_configs import write_config
from pytorch_lightning.plugins import TorchCheckpointIO

from reskd_lightning import files
from reskd_lightning.checkpoint_io import AtomicCheckpointIO
from reskd_lightning.files import TEMP_NAME
from reskd_lightning.tools.config import load_config

SHM = Path("/dev/shm")


def checkpoint(value: float) -> dict[str, Any]:
    return {"state_dict": {"w": torch.full((1000,), value)}, "global_step": int(value)}


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_NAME.match(p.name))


@pytest.fixture()
def other_fs_tmpdir(tmp_path: Path) -> Iterator[Path]:
    """A $TMPDIR on another filesystem than tmp_path (where the checkpoints go), removed afterwards."""
    if not SHM.is_dir() or os.stat(SHM).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than pytest's tmp_path, to put $TMPDIR across filesystems")
    folder = Path(tempfile.mkdtemp(prefix="reskd-tmpdir-", dir=SHM))
    try:
        yield folder
    finally:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        folder.rmdir()


class Unpicklable:
    def __reduce__(self) -> Any:
        raise OSError("disk full")


def test_a_save_interrupted_by_an_exception_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint(1.0), tmp_path / "last.ckpt")
    # torch.save has begun the temporary file (a partial zip) when pickling fails.
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"w": torch.zeros(100_000), "z": Unpicklable()}, tmp_path / "last.ckpt")
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.equal(io.load_checkpoint(tmp_path / "last.ckpt")["state_dict"]["w"], torch.full((1000,), 1.0))


def test_the_checkpoint_is_written_in_its_own_folder_and_synced_whatever_tmpdir_is(
    tmp_path: Path, other_fs_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(other_fs_tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read $TMPDIR, as a process started with it would
    replaced: list[tuple[Path, Path]] = []
    synced: list[int] = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((Path(a), Path(b))), real_replace(a, b)))
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))

    AtomicCheckpointIO().save_checkpoint(checkpoint(2.0), tmp_path / "ckpts" / "last.ckpt")
    [(src, dst)] = replaced
    assert dst == tmp_path / "ckpts" / "last.ckpt" and src.parent == dst.parent
    assert TEMP_NAME.match(src.name)["target"] == "last.ckpt"  # type: ignore[index]
    assert len(synced) == 2  # the file before the rename, its folder after it
    assert list(other_fs_tmpdir.iterdir()) == []
    assert torch.load(dst, weights_only=True)["global_step"] == 2

    AtomicCheckpointIO(fsync=False).save_checkpoint(checkpoint(3.0), tmp_path / "ckpts" / "last.ckpt")
    assert len(synced) == 2 and len(replaced) == 2


def writer(target: Path, then: str) -> subprocess.Popen:
    """A process that begins writing ``target`` with atomic_write, then runs ``then`` (SIGKILLs itself, waits)."""
    # files.py alone (it imports nothing of the package): importing reskd_lightning would load torch, seconds.
    code = (
        "import importlib.util, os, signal, sys\n"
        f"spec = importlib.util.spec_from_file_location('files', {files.__file__!r})\n"
        "files = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(files)\n"
        f"def write(tmp):\n    tmp.write_bytes(b'half a checkpoint')\n    {then}\n"
        f"files.atomic_write({str(target)!r}, write)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)


def test_leftovers_of_dead_writers_go_at_the_next_save_and_other_files_stay(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint(1.0), tmp_path / "last.ckpt")
    assert writer(tmp_path / "last.ckpt", "os.kill(os.getpid(), signal.SIGKILL)").wait() == -signal.SIGKILL
    [dead] = temporaries(tmp_path)
    live = writer(tmp_path / "other.ckpt", "sys.stdin.read()")  # still writing while we save
    deadline = time.monotonic() + 30
    while len(temporaries(tmp_path)) < 2:
        assert live.poll() is None and time.monotonic() < deadline, "the live writer did not start its file"
        time.sleep(0.01)
    [live_tmp] = set(temporaries(tmp_path)) - {dead}
    # An earlier process that had this pid (pids restart in a new container) left one: not ours in flight.
    reused = f".last.ckpt.tmp-{TEMP_NAME.match(dead)['host']}-{os.getpid()}-0badc0de"  # type: ignore[index]
    (tmp_path / reused).write_bytes(b"half a checkpoint")
    others = {
        ".last.ckpt.tmp-another-node-7-0badc0de",  # another machine's: whether it still writes cannot be told
        ".last.ckpt.tmp",  # not the pattern: a user's file
        "last.ckpt.tmp-vm-1-0badc0de",  # not a dot file
    }
    for name in others:
        (tmp_path / name).write_bytes(b"a user's bytes")
    with pytest.warns(UserWarning, match="another machine's run.*left in place"):
        io.save_checkpoint(checkpoint(2.0), tmp_path / "epoch=0.ckpt")
    assert {p.name for p in tmp_path.iterdir()} == {"last.ckpt", "epoch=0.ckpt", live_tmp, *others}  # no dead, reused
    live.communicate(b"")  # the live writer finishes its file
    assert (tmp_path / "other.ckpt").read_bytes() == b"half a checkpoint"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # another machine's file is reported once, not at every save
        io.save_checkpoint(checkpoint(3.0), tmp_path / "epoch=0.ckpt")
    assert {p.name for p in tmp_path.iterdir()} == {"last.ckpt", "epoch=0.ckpt", "other.ckpt", *others}


def test_remote_paths_keep_lightnings_save() -> None:
    AtomicCheckpointIO().save_checkpoint(checkpoint(4.0), "memory://reskd-test/ckpts/last.ckpt")
    fs = fsspec.filesystem("memory")
    assert fs.ls("/reskd-test/ckpts", detail=False) == ["/reskd-test/ckpts/last.ckpt"]
    assert AtomicCheckpointIO().load_checkpoint("memory://reskd-test/ckpts/last.ckpt")["global_step"] == 4
    fs.rm("/reskd-test", recursive=True)


ATOMIC = {"class_path": "reskd_lightning.checkpoint_io.AtomicCheckpointIO", "init_args": {"fsync": False}}


@pytest.mark.parametrize(
    "plugins, expected, fsync",
    [
        (None, AtomicCheckpointIO, True),  # the default
        ([{"class_path": "pytorch_lightning.plugins.TorchCheckpointIO"}], TorchCheckpointIO, None),  # the user's
        (ATOMIC, AtomicCheckpointIO, False),  # the user's own settings, not replaced by the default
    ],
)
def test_reskd_fit_saves_with_atomic_checkpoint_io_unless_the_config_names_a_checkpoint_io(
    demo_root: Path, tmp_path: Path, plugins: Any, expected: type, fsync: bool | None
) -> None:
    config = write_config(tmp_path / "fit.yaml", demo_root, tmp_path, "teacher")
    if plugins is not None:
        data = yaml.safe_load(config.read_text())
        data["trainer"]["plugins"] = plugins
        config.write_text(yaml.safe_dump(data))
    io = load_config(config, build_trainer=True).trainer.strategy.checkpoint_io  # as `reskd fit` builds it
    assert type(io) is expected and getattr(io, "fsync", None) is fsync


def kill_config(path: Path, demo_root: Path, root: Path, stock: bool = False) -> Path:
    """A fit that never ends on its own, saving `step.ckpt` and `last.ckpt` (~80 MB each) after every step."""
    write_config(path, demo_root, root, "teacher")
    config = yaml.safe_load(path.read_text())
    config["trainer"].update(max_epochs=1000, limit_val_batches=0, enable_model_summary=False)
    config["trainer"]["callbacks"] = [{
        "class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(root / "ckpts"), "filename": "step", "every_n_train_steps": 1,
                      "save_last": True, "enable_version_counter": False},
    }]  # fmt: skip
    if stock:  # a user's own CheckpointIO wins: here Lightning's, to measure what the issue describes
        config["trainer"]["plugins"] = [{"class_path": "pytorch_lightning.plugins.TorchCheckpointIO"}]
    path.write_text(yaml.safe_dump(config))
    return path


def start_fit(config: Path, tmpdir: Path, *args: str) -> subprocess.Popen:
    """`reskd fit --config CONFIG --ckpt_path last ARGS` with $TMPDIR at ``tmpdir``; its output in ``<config>.log``."""
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_WAIT_POLICY": "PASSIVE", "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "reskd_lightning.cli", "fit", "--config", str(config), "--ckpt_path", "last"]
    with config.with_suffix(".log").open("a") as log:
        return subprocess.Popen([*command, *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def output(config: Path) -> str:
    return config.with_suffix(".log").read_text()[-3000:]


def temporary_files(ckpts: Path, tmpdir: Path) -> set[str]:
    """Our temporary files beside the checkpoints and (Lightning's) any file in $TMPDIR."""
    return set(temporaries(ckpts) if ckpts.is_dir() else []) | {f"$TMPDIR/{p.name}" for p in tmpdir.iterdir()}


def kill_during_a_save(config: Path, ckpts: Path, tmpdir: Path, rng: random.Random) -> set[str]:
    """Start `reskd fit` (resuming from last.ckpt if any) and SIGKILL it a random moment into its 1st to 4th save;
    returns the temporary files the kill left (beside the checkpoints or in $TMPDIR)."""
    before = temporary_files(ckpts, tmpdir)  # what earlier kills left
    process, saves, seen = start_fit(config, tmpdir), rng.randint(1, 4), set()
    deadline = time.monotonic() + 120
    while len(seen) < saves:
        if process.poll() is not None:
            raise AssertionError(f"reskd fit exited with {process.returncode}:\n{output(config)}")
        assert time.monotonic() < deadline, f"fewer than {saves} checkpoint saves started within 120 s"
        seen |= temporary_files(ckpts, tmpdir) - before  # each save has its own temporary file
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.08))  # a save of ~80 MB takes ~0.1 s here
    process.send_signal(signal.SIGKILL)
    process.wait()
    return temporary_files(ckpts, tmpdir) - before


def check_checkpoints(ckpts: Path) -> dict[str, int]:
    """torch.load every .ckpt (all must load, with finite weights); returns each one's global step."""
    steps = {}
    for path in sorted(ckpts.glob("*.ckpt")):
        loaded = torch.load(path, map_location="cpu", weights_only=False)
        assert all(torch.isfinite(v).all() for v in loaded["state_dict"].values() if v.is_floating_point()), path
        steps[path.name] = loaded["global_step"]
    return steps


def test_reskd_fit_killed_during_saves_leaves_only_loadable_checkpoints_and_no_temporary_files(
    demo_root: Path, tmp_path: Path, other_fs_tmpdir: Path
) -> None:
    config = kill_config(tmp_path / "fit.yaml", demo_root, tmp_path)
    ckpts, rng = tmp_path / "ckpts", random.Random(0)
    hits, left = 0, set()
    for _ in range(5):  # each run resumes from the last.ckpt the previous kill left: that must load too
        now_left = kill_during_a_save(config, ckpts, other_fs_tmpdir, rng)
        assert list(other_fs_tmpdir.iterdir()) == []
        assert left.isdisjoint(temporaries(ckpts))  # the previous kill's went at this run's first save
        hits, left = hits + bool(now_left), now_left  # a temporary file left: killed inside a save
        check_checkpoints(ckpts)
    assert hits >= 1, "no kill landed inside a save: the test proved nothing"
    step = check_checkpoints(ckpts)["last.ckpt"]
    # A last run resumes and saves once more: the killed runs' temporary files beside the checkpoints are gone.
    final = start_fit(config, other_fs_tmpdir, "--trainer.max_steps", str(step + 1))
    assert final.wait(120) == 0, output(config)
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step.ckpt"]
    assert check_checkpoints(ckpts) == {"last.ckpt": step + 1, "step.ckpt": step + 1}
    assert list(other_fs_tmpdir.iterdir()) == []
