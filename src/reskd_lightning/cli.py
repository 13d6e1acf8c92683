"""``reskd``: LightningCLI (fit/validate/test/predict) with the library's classes, plus tool subcommands."""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from .data import VideoDataModule
from .data.presets import preset_metric, preset_num_classes
from .module import ResKDModule


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

    def _report(self, stage: str) -> None:
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(stage)}
        if metrics:
            rank_zero_info("final " + ", ".join(f"{k} = {v:.4f}" for k, v in sorted(metrics.items())))

    def after_fit(self) -> None:
        self._report("val/")
        ckpt = self.trainer.checkpoint_callback
        if ckpt is not None and ckpt.best_model_path:
            rank_zero_info(f"checkpoint: {ckpt.best_model_path}")


def demo_data_main(argv: Sequence[str]) -> None:
    """``reskd demo-data DIR``: write the built-in demo dataset (real H.264 videos) into DIR."""
    import argparse

    from .data.demo import write_demo_dataset

    parser = argparse.ArgumentParser(prog="reskd demo-data", description=demo_data_main.__doc__)
    parser.add_argument("root", help="folder to write train/, val/, train.txt, val.txt and classes.txt into")
    parser.add_argument("--num-train-per-class", type=int, default=48)
    parser.add_argument("--num-val-per-class", type=int, default=16)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(list(argv))
    root = write_demo_dataset(
        args.root,
        num_train_per_class=args.num_train_per_class,
        num_val_per_class=args.num_val_per_class,
        num_frames=args.num_frames,
        size=args.size,
        seed=args.seed,
    )
    print(f"demo dataset in {root}: lists {root / 'train.txt'} and {root / 'val.txt'}")


def load_data_module(config: str, overrides: Sequence[str] = ()) -> VideoDataModule:
    """The ``VideoDataModule`` of a ``reskd`` config file's ``data`` section (plus ``--data.*`` overrides)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="reskd", exit_on_error=False)
    parser.add_argument("--config", action="config")
    parser.add_class_arguments(VideoDataModule, "data")
    # Only the data section matters here: the other sections are accepted and ignored.
    for key in ("trainer", "model", "seed_everything", "ckpt_path", "optimizer", "lr_scheduler"):
        parser.add_argument(f"--{key}", type=Any, default=None)
    cfg = parser.parse_args(["--config", config, *overrides])
    return parser.instantiate_classes(cfg).data


def check_data_main(argv: Sequence[str]) -> None:
    """``reskd check-data --config X.yaml``: read every video of the config's lists, report the unreadable."""
    import argparse

    from .data.check import check_dataset

    parser = argparse.ArgumentParser(prog="reskd check-data", description=check_data_main.__doc__)
    parser.add_argument("--config", required=True, help="a reskd config; only its data section is used")
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"])
    parser.add_argument("--num-workers", type=int, default=None, help="default: the config's data.num_workers")
    args, overrides = parser.parse_known_args(list(argv))
    dm = load_data_module(args.config, overrides)
    dm.prepare_data()
    dm.setup(None)
    workers = dm.hparams.num_workers if args.num_workers is None else args.num_workers
    total = 0
    for split in args.splits:
        if split not in dm.datasets:
            continue
        dataset = dm.datasets[split]
        failures = check_dataset(dataset, num_workers=workers)
        total += len(failures)
        print(f"{split}: {len(dataset)} videos from {dataset.source}, {len(failures)} unreadable")
        for f in failures:
            print(f"  record {f.index}: {f.path}: {f.reason}")
    if total:
        raise SystemExit(f"{total} unreadable videos")


def flops_main(argv: Sequence[str]) -> None:
    """``reskd flops --model NAME --resolution R [R ...] --frames T``: GMACs per video and parameters."""
    import argparse

    from .efficiency import TABLE_HEADER, efficiency
    from .models import build_model_for_input, list_models

    parser = argparse.ArgumentParser(prog="reskd flops", description=flops_main.__doc__)
    parser.add_argument("--model", nargs="+", required=True, help=f"registered names, e.g. {', '.join(list_models('tsn*')[:3])}")
    parser.add_argument("--resolution", type=int, nargs="+", default=[224, 112])
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (TSN: segments)")
    parser.add_argument("--num-classes", type=int, default=400)
    args = parser.parse_args(list(argv))
    print(TABLE_HEADER)
    for name in args.model:
        for resolution in args.resolution:
            model = build_model_for_input(name, args.num_classes, resolution, args.frames)
            print(efficiency(model, resolution, args.frames, name=name).row())
    print("GMACs: multiply-adds per video (one clip, one view), the 'FLOPs' of efficient-video tables")


#: Subcommands that are not Lightning's: thin wrappers over library functions.
TOOLS: dict[str, Callable[[Sequence[str]], None]] = {
    "demo-data": demo_data_main,
    "check-data": check_data_main,
    "flops": flops_main,
}

USAGE = """usage: reskd {fit,validate,test,predict} --config CONFIG.yaml [--print_config] [overrides]
       reskd {tools} ...

Lightning subcommands: run `reskd fit --help` for every option.
Tools: {tools}; run `reskd TOOL --help`."""


def cli_main(args: Sequence[str] | None = None, run: bool = True) -> ResKDCLI:
    """Build (and by default run) the LightningCLI in process, as ``reskd`` does; for tests and notebooks."""
    return ResKDCLI(
        ResKDModule,
        VideoDataModule,
        args=list(args) if args is not None else None,
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"default_env": False},
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``reskd`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TOOLS:
        TOOLS[args[0]](args[1:])
        return
    if not args or args[0] in ("-h", "--help"):
        print(USAGE.replace("{tools}", ",".join(TOOLS)))
        return
    cli_main(argv)  # None: LightningCLI reads sys.argv itself


if __name__ == "__main__":
    main()
