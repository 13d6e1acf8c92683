"""``ResKDCLI``: LightningCLI with the library's classes, and :func:`cli_main`, which runs it in process.

``reskd fit|validate|test|predict`` run it (``reskd_lightning.cli`` dispatches to it), and the config loader of
the tools (:func:`reskd_lightning.tools.config.load_config`) is built on it, so a config means the same thing
to every way in.
"""

from __future__ import annotations

import sys
from argparse import ArgumentError
from typing import Any, Sequence

from jsonargparse import Namespace
from pytorch_lightning import Trainer
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from .checkpoint_io import use_atomic_checkpoints
from .data import VideoDataModule
from .data.presets import preset_metric, preset_num_classes
from .module import ResKDModule
from .predictions import VideoPredictionWriter
from .quiet import QuietIntendedWarnings, quiet_lightning_tips
from .reporting import log_config, log_file, wandb_offline_by_default
from .rng_state import RNGStateCheckpoint
from .usage_errors import usage_error
from .wandb_run import add_wandb_run_id_saver, resume_wandb_logger_args


def views_for(student_resolution: int, teacher_resolution: int, teacher: Any) -> list[int]:
    """The views a run needs: the student's, and the teacher's only when there is a teacher."""
    return sorted({student_resolution} | ({teacher_resolution} if teacher is not None else set()), reverse=True)


class ResKDCLI(LightningCLI):
    """LightningCLI with ``data``'s classes and metric (given or its preset's), normalisation and
    interpolation linked from the data to the model, and the DataModule's views (``data.resolutions``)
    computed from the model's resolutions."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # A preset (activitynet, sthv2, ...) knows its classes and metric; a value given in `data` wins.
        parser.link_arguments(("data.preset", "data.num_classes"), "model.num_classes", compute_fn=preset_num_classes)
        parser.link_arguments(
            ("data.preset", "data.metric", "data.multi_label"), "model.metric", compute_fn=preset_metric
        )
        # One normalisation and one resize method for the DataModule's views and the module's own.
        for key in ("mean", "std", "interpolation", "antialias"):
            parser.link_arguments(f"data.{key}", f"model.{key}")
        parser.link_arguments(
            ("model.student_resolution", "model.teacher_resolution", "model.teacher"),
            "data.resolutions",
            compute_fn=views_for,
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """As LightningCLI's, with two differences: an invalid config ends in one short message (a misspelt key
        with the closest valid one, and the config file it is in) instead of the whole usage, and no warning
        when both ``args`` and ``sys.argv`` are given (the tools always pass their own command line)."""
        # LightningCLI keeps the subcommands' parsers only when it has subcommands (run=True).
        parsers = [parser, *getattr(self, "_subcommand_parsers", {}).values()]
        given = sys.argv[1:] if args is None else args
        argv = None if isinstance(given, (dict, Namespace)) else [str(a) for a in given]
        for each in parsers:
            each.exit_on_error = False  # raise an ArgumentError here instead of printing the usage and exiting
        try:
            self.config = parser.parse_object(args) if argv is None else parser.parse_args(argv)
        except ArgumentError as error:
            self._exit_on_usage_error(str(error), argv or [], subcommands=len(parsers) > 1)
        finally:
            for each in parsers:
                each.exit_on_error = True

    def _exit_on_usage_error(self, message: str, argv: list[str], subcommands: bool) -> None:
        subcommand = next((a for a in argv if a in self.subcommands()), None) if subcommands else None
        prog = f"reskd {subcommand}" if subcommand else "reskd"
        message = usage_error(message, argv, self._parser(subcommand), subcommand)
        help_command = f"{prog if subcommand else 'reskd fit'} --help"
        sys.stderr.write(f"{prog}: error: {message}\n(`{help_command}` lists every option)\n")
        raise SystemExit(2)  # as argparse exits on a usage error

    def before_instantiate_classes(self) -> None:
        wandb_offline_by_default()  # before the loggers are built, so a wandb run never waits for a network
        if self.subcommand == "fit":  # --ckpt_path continues the checkpoint's wandb run (an id in the config wins)
            resume_wandb_logger_args(self.config.fit, self.config.fit.get("ckpt_path"))

    def _log_config_to_wandb(self) -> None:
        """The whole parsed config of the subcommand into wandb's run config (Lightning logs only hparams)."""
        from pytorch_lightning.loggers import WandbLogger

        if self.subcommand is None or not any(isinstance(lg, WandbLogger) for lg in self.trainer.loggers):
            return
        import yaml  # only for a wandb run

        text = self._parser(self.subcommand).dump(self.config[self.subcommand], skip_link_targets=False)
        log_config(self.trainer.loggers, yaml.safe_load(text))

    before_fit = before_validate = before_test = before_predict = _log_config_to_wandb

    def _report(self, stage: str) -> None:
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(stage)}
        if metrics:
            rank_zero_info("final " + ", ".join(f"{k} = {v:.4f}" for k, v in sorted(metrics.items())))

    def after_fit(self) -> None:
        self._report("val/")
        ckpt = self.trainer.checkpoint_callback
        if ckpt is not None and ckpt.best_model_path:
            rank_zero_info(f"checkpoint: {ckpt.best_model_path}")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer; ``test`` and ``predict`` get a per-video CSV writer when the config has none; every
        subcommand kill-safe checkpoints (:class:`~reskd_lightning.checkpoint_io.AtomicCheckpointIO`) unless
        ``trainer.plugins`` names a ``CheckpointIO``, the wandb run id in its checkpoints, and the RNG
        states (:class:`~reskd_lightning.rng_state.RNGStateCheckpoint`) for an exact resume."""
        quiet_lightning_tips()
        trainer = super().instantiate_trainer(**kwargs)
        resumes = bool(self.subcommand and self.config[self.subcommand].get("ckpt_path"))
        trainer.callbacks.insert(0, QuietIntendedWarnings(resumes=resumes))
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}  # as LightningCLI builds it
        use_atomic_checkpoints(trainer, config.get("plugins"))
        add_wandb_run_id_saver(trainer)  # the wandb run id in every checkpoint, for the resume above
        # fit: a resumed run draws dropout as the uninterrupted one; other subcommands: a fit checkpoint's state
        # finds its callback (Lightning warns about callbacks a checkpoint names that the Trainer lacks)
        if not any(isinstance(c, RNGStateCheckpoint) for c in trainer.callbacks):
            trainer.callbacks.append(RNGStateCheckpoint())
        if self.subcommand in ("test", "predict"):
            if not any(isinstance(c, VideoPredictionWriter) for c in trainer.callbacks):
                trainer.callbacks.append(VideoPredictionWriter())
        return trainer

    def _report_predictions(self) -> None:
        for writer in (c for c in self.trainer.callbacks if isinstance(c, VideoPredictionWriter)):
            for path in writer.written.get(self.subcommand or "", []):
                rank_zero_info(f"per-video predictions: {path}")
                log_file(self.trainer.loggers, path)

    after_test = after_predict = _report_predictions


def cli_kwargs() -> dict[str, Any]:
    """The keyword arguments every ResKDCLI of the package is built with (``reskd``, the config loader): the
    saved ``config.yaml`` is overwritten, and no setting comes from environment variables."""
    return dict(save_config_kwargs={"overwrite": True}, parser_kwargs={"default_env": False})


def cli_main(args: Sequence[str] | None = None, run: bool = True) -> ResKDCLI:
    """Build (and by default run) the LightningCLI in process, as ``reskd`` does; for tests and notebooks.

    To read a config without running anything, prefer :func:`reskd_lightning.tools.config.load_config`.
    """
    args = list(args) if args is not None else None
    return ResKDCLI(ResKDModule, VideoDataModule, args=args, run=run, **cli_kwargs())
