"""Lightning's warnings and tips about what a ResKD run does on purpose, silenced precisely: what is left is what a
user should act on. ``reskd`` installs both for every run (:class:`~reskd_lightning.lightning_cli.ResKDCLI`)."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")  # Lightning's ads for litlogger and litmodels


_NO_TIPS = _NoTips()


def quiet_lightning_tips() -> None:
    """Drop Lightning's "💡 Tip: ... try installing litlogger/litmodels" lines (for this process), and the
    deprecation warning Lightning 2.6 itself triggers in torch >= 2.9's pytree (``isinstance(treespec, LeafSpec)``):
    neither asks anything of a user."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        if _NO_TIPS not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_NO_TIPS)
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", module=r"pytorch_lightning\."
    )


class QuietIntendedWarnings(Callback):
    """Silences, for one run, two Lightning warnings about what a ResKD run does on purpose; any other case of
    them still warns:

    * "Found N module(s) in eval mode at the start of training" when the N are all the teacher's (it is frozen,
      in its ``teacher_mode``);
    * "Checkpoint directory X exists and is not empty" when X holds no checkpoint yet (on a first run, the
      logger's folder is there already) or the run ``resumes`` (``ckpt_path``: into its own folder).

    ``reskd`` adds it to every Trainer it builds; elsewhere (a Lightning config of your own)::

        trainer:
          callbacks:
            - class_path: reskd_lightning.quiet.QuietIntendedWarnings
              init_args: {resumes: false}
    """

    def __init__(self, resumes: bool = False) -> None:
        self.resumes = resumes
        self._filters: warnings.catch_warnings | None = None

    def _ignore(self, message: str) -> None:
        if self._filters is None:
            self._filters = warnings.catch_warnings()
            self._filters.__enter__()
        warnings.filterwarnings("ignore", message=re.escape(message))

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        for callback in (c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.dirpath):
            folder = Path(callback.dirpath)
            if self.resumes or (folder.is_dir() and not any(folder.glob(f"*{callback.FILE_EXTENSION}"))):
                self._ignore(f"Checkpoint directory {callback.dirpath} exists and is not empty.")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        in_eval = [name for name, module in pl_module.named_modules() if not module.training]
        if in_eval and all(name == "teacher" or name.startswith("teacher.") for name in in_eval):
            self._ignore(f"Found {len(in_eval)} module(s) in eval mode at the start of training.")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._filters is not None:
            self._filters.__exit__(None, None, None)
            self._filters = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "")
