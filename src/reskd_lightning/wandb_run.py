"""One wandb run per training, across resumes: the run id is saved in every checkpoint and read back on resume.

:class:`SaveWandbRunId` writes the id (and project) of the trainer's ``WandbLogger`` run into each checkpoint as
``checkpoint["wandb_run"]``. On ``reskd fit --ckpt_path X`` (or ``--ckpt_path last``),
:func:`resume_wandb_logger_args` reads it back from ``X`` before LightningCLI builds the loggers and sets
``trainer.logger.init_args.id``, so the new ``WandbLogger`` continues the same run (Lightning's ``WandbLogger``
always passes ``resume="allow"`` to ``wandb.init``). An id given in the config wins. Offline, each resume is
one more ``offline-run-<time>-<id>`` folder with the same id; ``wandb sync <save_dir>/wandb/offline-run-*``
uploads them in order of start time into the one run.

With a plain ``Trainer``: put ``SaveWandbRunId()`` in ``callbacks`` and build the logger with
``WandbLogger(id=wandb_run_of_checkpoint(ckpt)["id"], ...)``.
"""

from __future__ import annotations

import importlib
import os
import re
import zipfile
from pathlib import Path
from typing import Any, MutableMapping

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_info

from .checkpoint_io import local_path

#: The key of the checkpoint dict that holds ``{"id": <wandb run id>, "project": <project>}``.
CHECKPOINT_KEY = "wandb_run"


class SaveWandbRunId(Callback):
    """Save the wandb run of the trainer's first ``WandbLogger`` in every checkpoint, as
    ``checkpoint["wandb_run"] = {"id": ..., "project": ...}``, so that a resumed fit can continue that run
    (:func:`resume_wandb_logger_args`). Without a ``WandbLogger`` it writes nothing. ``reskd fit`` adds it by
    itself when the config has a ``WandbLogger``; from a LightningCLI config of your own:

    .. code-block:: yaml

        trainer:
          logger: {class_path: pytorch_lightning.loggers.WandbLogger, init_args: {project: reskd}}
          callbacks:
            - class_path: reskd_lightning.wandb_run.SaveWandbRunId
    """

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Only rank 0 writes the checkpoint, and only there is the logger's experiment the real run.
        logger = next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)
        if logger is not None and trainer.is_global_zero:
            checkpoint[CHECKPOINT_KEY] = {"id": str(logger.experiment.id), "project": logger.name}


def add_wandb_run_id_saver(trainer: pl.Trainer) -> None:
    """Append a :class:`SaveWandbRunId` to ``trainer.callbacks`` when the trainer logs to wandb and has none."""
    if any(isinstance(lg, WandbLogger) for lg in trainer.loggers):
        if not any(isinstance(c, SaveWandbRunId) for c in trainer.callbacks):
            trainer.callbacks.append(SaveWandbRunId())


def wandb_run_of_checkpoint(path: str | os.PathLike) -> dict[str, str] | None:
    """The ``{"id", "project"}`` of the wandb run that wrote the checkpoint at ``path``; None when it has none
    (trained without wandb, or before this was saved), when the file does not exist (Lightning reports it) or is
    not local (``s3://``...: set ``trainer.logger.init_args.id`` yourself).

    The checkpoint is memory-mapped, so its tensors are not read (a few ms for a 100 MB file). It is unpickled
    with ``weights_only=False``, as Lightning does when it resumes from the same file."""
    local = local_path(path)
    if local is None or not local.is_file():
        return None
    checkpoint = torch.load(local, map_location="cpu", weights_only=False, mmap=zipfile.is_zipfile(local))
    run = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    return dict(run) if isinstance(run, dict) and run.get("id") else None


def _is_subclass(entry: Any, base: type) -> bool:
    """Whether a config entry ``{class_path: ..., init_args: ...}`` names a subclass of ``base``."""
    class_path = entry.get("class_path") if hasattr(entry, "get") else None
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    return isinstance(cls, type) and issubclass(cls, base)


def _entries(value: Any) -> list[Any]:
    """A config value that holds one class entry or a list of them, as a list (``True``/``None``: none)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] if hasattr(value, "get") else []


def last_checkpoint(config: MutableMapping[str, Any]) -> Path | None:
    """What Lightning's ``ckpt_path="last"`` means for this config: the newest ``last*.ckpt`` in the ``dirpath``
    of the config's ``ModelCheckpoint`` callbacks; None when there is none. A ``ModelCheckpoint`` without
    ``dirpath`` saves under the logger's version, which for wandb is the id still to be found, so it cannot be
    searched: give ``dirpath`` to resume with ``last``."""
    found: list[Path] = []
    for entry in _entries(config.get("trainer", {}).get("callbacks")):
        dirpath = (entry.get("init_args") or {}).get("dirpath")
        if _is_subclass(entry, ModelCheckpoint) and dirpath and (folder := local_path(dirpath)) and folder.is_dir():
            # The pattern of ModelCheckpoint._find_last_checkpoints (pytorch_lightning 2.6), matched as it does.
            last = rf"^{ModelCheckpoint.CHECKPOINT_NAME_LAST}(-(\d+))?"
            ext = ModelCheckpoint.FILE_EXTENSION
            found += [p for p in folder.iterdir() if p.suffix == ext and re.match(last, p.stem)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def resume_wandb_logger_args(config: MutableMapping[str, Any], ckpt_path: str | os.PathLike | None) -> str | None:
    """Make the config's ``WandbLogger`` continue the wandb run that wrote ``ckpt_path``.

    ``config`` is a subcommand's parsed LightningCLI config (a jsonargparse ``Namespace``, or a dict of the same
    shape), changed in place before the classes are built: every ``WandbLogger`` in ``trainer.logger`` without
    an ``id`` or ``version`` of its own gets the checkpoint's run id (``ckpt_path="last"`` is resolved by
    :func:`last_checkpoint`). Returns the id set, or None when nothing changed: no ``ckpt_path``, no
    ``WandbLogger``, an id in the config, or no run id in the checkpoint.
    """
    loggers = [e for e in _entries(config.get("trainer", {}).get("logger")) if _is_subclass(e, WandbLogger)]
    if ckpt_path is None or not loggers:
        return None
    path = last_checkpoint(config) if str(ckpt_path) == "last" else ckpt_path
    run = wandb_run_of_checkpoint(path) if path is not None else None
    if run is None:
        if path is not None and Path(path).is_file():
            rank_zero_info(f"wandb: checkpoint {path} names no wandb run; the fit logs to a new one")
        return None
    changed = None
    for entry in loggers:
        args = entry.get("init_args")
        if args is None:
            entry["init_args"] = args = type(entry)()  # a Namespace for a Namespace, a dict for a dict
        if not args.get("id") and not args.get("version"):
            args["id"] = changed = run["id"]
    if changed:
        rank_zero_info(f"wandb: continuing run {changed} (project {run.get('project')}) of checkpoint {path}")
    return changed
