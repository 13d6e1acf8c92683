"""Kill-safe checkpoints: :class:`AtomicCheckpointIO` writes each checkpoint beside its target and renames it.

Lightning's ``TorchCheckpointIO`` writes a checkpoint to a temporary file in ``$TMPDIR`` and moves it into
place. When ``$TMPDIR`` is on another filesystem than the checkpoint (a tmpfs ``/tmp``, common on clusters), the
move is a copy onto the target, which is truncated first: a job killed during that copy leaves a ``last.ckpt``
that does not load, and a checkpoint-sized orphan in ``$TMPDIR``. :class:`AtomicCheckpointIO` writes to a
temporary file in the checkpoint's own folder, flushes it to the disk, renames it over the target (atomic on one
filesystem) and syncs the folder; the temporary files of killed runs are removed the next time a checkpoint is
saved in that folder. ``reskd fit`` uses it unless the config names a ``CheckpointIO`` plugin of its own
(:func:`use_atomic_checkpoints`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from pytorch_lightning import Trainer
from pytorch_lightning.plugins import CheckpointIO, TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_warn

from .files import atomic_write, remove_stale_temps


def local_path(path: str | os.PathLike) -> Path | None:
    """``path`` as a local path (``file://`` stripped), or ``None`` for a remote one (``s3://``, ``gs://``, ...)."""
    fs, stripped = fsspec.core.url_to_fs(str(path))
    return Path(stripped) if isinstance(fs, LocalFileSystem) else None


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves survive a kill at any moment: the old checkpoint or the new one,
    never a truncated file, and no orphan in ``$TMPDIR``.

    A local checkpoint is written with ``torch.save`` to ``.<name>.tmp-<host>-<pid>-<token>`` in its own folder,
    flushed to the disk (``fsync``), renamed over the target and the folder synced; a failing save removes its
    temporary file. Before each save, the temporary files that killed processes of this machine left in that
    folder are removed (only files with that name pattern: never a user's file); those written on another machine
    are reported once, not removed. Remote paths (``s3://``, ``gs://``, any fsspec URL that is not local) keep
    Lightning's behaviour. Loading and removing are Lightning's.

    ``reskd fit`` uses it by default. With a plain ``Trainer``: ``Trainer(plugins=[AtomicCheckpointIO()])``, or
    from a LightningCLI config:

    .. code-block:: yaml

        trainer:
          plugins:
            - class_path: reskd_lightning.checkpoint_io.AtomicCheckpointIO
              init_args: {fsync: true}   # false: atomic against kills, not against a power loss; faster

    Args:
        fsync: flush the checkpoint and its folder to the disk before returning, so the checkpoint also survives
            a power loss or a crash of the machine (a kill of the process only needs the rename).
    """

    def __init__(self, fsync: bool = True) -> None:
        super().__init__()
        self.fsync = fsync
        self._reported: set[Path] = set()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Optional[Any] = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (a local path) or as Lightning does (a remote one)."""
        target = local_path(path)
        if target is None or storage_options is not None:  # TorchCheckpointIO refuses storage_options with a message
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        self._report(remove_stale_temps(target.parent).other_hosts)
        atomic_write(target, lambda tmp: torch.save(checkpoint, tmp), fsync=self.fsync)

    def _report(self, other_hosts: list[Path]) -> None:
        new = [p for p in other_hosts if p not in self._reported]
        if new:
            self._reported.update(new)
            rank_zero_warn(
                f"{len(new)} temporary checkpoint file(s) of another machine's run in {new[0].parent} (e.g. "
                f"{new[0].name}): left in place, since whether that run still writes them cannot be told from here; "
                "delete them once no other run saves checkpoints in this folder."
            )


def use_atomic_checkpoints(trainer: Trainer, plugins: Any = None) -> bool:
    """Make :class:`AtomicCheckpointIO` the checkpoint IO of ``trainer`` unless one was chosen; returns whether it did.

    ``plugins`` is what the Trainer was given as ``plugins`` (one plugin or a list): a ``CheckpointIO`` among them
    wins, even Lightning's own ``TorchCheckpointIO`` (the way to keep Lightning's saving). So does a strategy's own
    kind of IO (XLA's, an ``AsyncCheckpointIO``): only a plain ``TorchCheckpointIO`` on the strategy is replaced.
    """
    given = plugins if isinstance(plugins, (list, tuple)) else [plugins]
    if any(isinstance(plugin, CheckpointIO) for plugin in given):
        return False
    if type(trainer.strategy.checkpoint_io) is not TorchCheckpointIO:
        return False
    trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return True
