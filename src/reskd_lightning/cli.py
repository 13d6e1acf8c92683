"""``reskd``: LightningCLI (fit/validate/test/predict) with the library's classes, plus tool subcommands."""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from .data import VideoDataModule
from .module import ResKDModule


def views_for(student_resolution: int, teacher_resolution: int, teacher: Any) -> list[int]:
    """The views a run needs: the student's, and the teacher's only when there is a teacher."""
    return sorted({student_resolution} | ({teacher_resolution} if teacher is not None else set()), reverse=True)


class ResKDCLI(LightningCLI):
    """LightningCLI with ``data.num_classes``, normalisation and interpolation linked from the data to the
    model, and the DataModule's views (``data.resolutions``) computed from the model's resolutions."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes")
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


#: Subcommands that are not Lightning's: thin wrappers over library functions.
TOOLS: dict[str, Callable[[Sequence[str]], None]] = {"demo-data": demo_data_main}

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
