"""One way to read a ``reskd`` config: :func:`load_config`, built on :class:`ResKDCLI` itself (``run=False``).

Every tool (``reskd analyze``, ``reskd benchmark``, ``reskd check-data``), test and notebook that reads a config
goes through it, so a config means to them exactly what it means to ``reskd fit``: the same parser, the same
links (the data's classes and metric into the model, one normalisation, the views from the model's
resolutions), the same seed, the same instantiation.

Library use::

    from reskd_lightning.tools.config import load_config

    loaded = load_config("configs/demo.yaml", ["--data.batch_size", "4"])
    loaded.model, loaded.datamodule                  # ResKDModule, VideoDataModule
    loaded.callbacks, loaded.loggers                 # trainer.callbacks (distillers ...), trainer.logger
    trainer = pl.Trainer(**loaded.trainer_kwargs, callbacks=loaded.callbacks, logger=loaded.loggers)

    load_config("configs/anet.yaml", build_trainer=True).trainer   # the Trainer `reskd fit` would build
    load_config("x.yaml", build_model=False).model_args["student"]  # the config's network, not built
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from jsonargparse import Namespace
from pytorch_lightning import Callback, Trainer
from pytorch_lightning.cli import LightningArgumentParser
from pytorch_lightning.loggers import Logger

from ..data import VideoDataModule
from ..lightning_cli import ResKDCLI, cli_kwargs
from ..module import ResKDModule

#: What to do with the config's ``model.teacher_ckpt``: read it (an error when it is missing, as for ``reskd
#: fit``), read it only if the file exists, or never (the teacher keeps its initial weights).
TeacherCkpt = Literal["load", "if_exists", "skip"]
TEACHER_CKPT: tuple[str, ...] = ("load", "if_exists", "skip")


@dataclass
class LoadedConfig:
    """A ``reskd`` config, instantiated as ``reskd fit`` instantiates it (see :func:`load_config`)."""

    #: The ``ResKDModule``; ``None`` with ``build_model=False``.
    model: ResKDModule | None
    datamodule: VideoDataModule
    #: ``trainer.callbacks`` as configured (distillers, checkpointing, ...); ``[]`` with ``callbacks=False``.
    callbacks: list[Callback]
    #: The loggers ``trainer.logger`` names (``[]`` when it names none, is ``true``/``false``, or ``loggers=False``).
    loggers: list[Logger]
    #: The rest of the ``trainer`` section, instantiated: ``pl.Trainer(**trainer_kwargs, ...)``.
    trainer_kwargs: dict[str, Any]
    #: The Trainer ``reskd fit`` would build (config's callbacks and loggers, the config file's saver); only
    #: with ``build_trainer=True``.
    trainer: Trainer | None
    #: With ``build_model=False``: the arguments the model would get, its networks as the config makes them
    #: (a ``num_classes -> network`` factory, or a network) and ``teacher_ckpt`` unread; else ``None``.
    model_args: dict[str, Any] | None
    #: The ``teacher_ckpt`` not read (``teacher_ckpt="if_exists"`` or ``"skip"``), else ``None``.
    skipped_teacher_ckpt: str | None
    #: The parsed config the objects were built from (linked values filled in).
    config: Namespace
    parser: LightningArgumentParser

    def to_dict(self) -> dict[str, Any]:
        """The whole parsed config, linked values included, as plain data (e.g. a wandb run's config)."""
        return yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False))


def load_config(
    config: str | os.PathLike,
    overrides: Sequence[str] = (),
    *,
    build_model: bool = True,
    build_trainer: bool = False,
    callbacks: bool = True,
    loggers: bool = True,
    teacher_ckpt: TeacherCkpt = "load",
) -> LoadedConfig:
    """Read a ``reskd`` config file plus command-line style ``overrides`` (``["--data.batch_size", "4"]``).

    Args:
        config: the YAML file, as given to ``reskd fit --config``.
        overrides: further arguments, as on the ``reskd fit`` command line.
        build_model: build the ``ResKDModule``. Without it the model section is only parsed (a config of the
            data alone is accepted) and its arguments are in ``model_args``.
        build_trainer: also build the ``pl.Trainer`` (in ``trainer``), as ``reskd fit`` would.
        callbacks: instantiate ``trainer.callbacks``.
        loggers: instantiate ``trainer.logger``.
        teacher_ckpt: ``"load"``, ``"if_exists"`` or ``"skip"``: see :data:`TeacherCkpt`.

    Invalid configs fail as they do for ``reskd fit`` (a usage message and ``SystemExit``).
    """
    if teacher_ckpt not in TEACHER_CKPT:
        raise ValueError(f"teacher_ckpt must be one of {', '.join(map(repr, TEACHER_CKPT))}, got {teacher_ckpt!r}")
    cli = _LoaderCLI(
        ["--config", os.fspath(config), *overrides],
        build_model=build_model,
        build_trainer=build_trainer,
        keep_callbacks=callbacks,
        keep_loggers=loggers,
        teacher_ckpt=teacher_ckpt,
    )
    trainer_section = {k: v for k, v in dict(cli.config_init["trainer"]).items() if k not in ("callbacks", "logger")}
    return LoadedConfig(
        model=cli.model,
        datamodule=cli.datamodule,
        callbacks=cli.configured_callbacks,
        loggers=as_loggers(cli.config_init["trainer"].get("logger")),
        trainer_kwargs=trainer_section,
        trainer=cli.trainer,
        model_args=cli.model_args,
        skipped_teacher_ckpt=cli.skipped_teacher_ckpt,
        config=cli.config,
        parser=cli.parser,
    )


def as_loggers(logger: Any) -> list[Logger]:
    """The Logger objects of an instantiated ``trainer.logger`` (a logger, a list of them, True/False/None)."""
    if isinstance(logger, Logger):
        return [logger]
    if isinstance(logger, (list, tuple)):
        return [lg for lg in logger if isinstance(lg, Logger)]
    return []


def _as_callbacks(callbacks: Any) -> list[Callback]:
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]


class _LoaderCLI(ResKDCLI):
    """``ResKDCLI`` with ``run=False`` that builds only what :func:`load_config` is asked for."""

    def __init__(
        self,
        args: list[str],
        *,
        build_model: bool,
        build_trainer: bool,
        keep_callbacks: bool,
        keep_loggers: bool,
        teacher_ckpt: TeacherCkpt,
    ) -> None:
        self.build_model, self.build_trainer = build_model, build_trainer
        self.keep_callbacks, self.keep_loggers, self.teacher_ckpt = keep_callbacks, keep_loggers, teacher_ckpt
        self.model_args: dict[str, Any] | None = None
        self.skipped_teacher_ckpt: str | None = None
        self.configured_callbacks: list[Callback] = []
        super().__init__(ResKDModule, VideoDataModule, args=args, run=False, **cli_kwargs())

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        if not self.build_model:
            # The model is not built, so it needs no network: a config of the data alone is read as well.
            for action in parser._actions:  # argparse keeps no public list of a parser's arguments
                if action.dest == "model.student":
                    action.required = False

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        cfg = self.config
        ckpt = cfg.model.teacher_ckpt
        if ckpt and (self.teacher_ckpt == "skip" or (self.teacher_ckpt == "if_exists" and not Path(ckpt).exists())):
            self.skipped_teacher_ckpt, cfg.model.teacher_ckpt = ckpt, None
        if not self.build_model:
            # jsonargparse builds the networks (factories, unless the config gives num_classes) and hands the
            # model's arguments to this instantiator, which keeps them instead of building a ResKDModule.
            self.parser.add_instantiator(self._keep_model_args, ResKDModule, subclasses=True, prepend=True)
            for key in ("optimizer", "lr_scheduler"):  # top-level ones would be attached to the (absent) model
                if cfg.get(key) is not None:
                    cfg[key] = None
        if not self.keep_callbacks:
            cfg.trainer.callbacks = None
        if not self.keep_loggers:
            cfg.trainer.logger = False

    def _keep_model_args(
        self, class_type: type, *args: Any, applied_instantiation_links: Any = None, **kwargs: Any
    ) -> None:
        self.model_args = dict(kwargs)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer | None:
        # Kept before the Trainer is built: LightningCLI appends its own callbacks to the configured list.
        self.configured_callbacks = _as_callbacks(self.config_init["trainer"].get("callbacks"))
        return super().instantiate_trainer(**kwargs) if self.build_trainer else None
