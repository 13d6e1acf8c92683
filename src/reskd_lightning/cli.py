"""``reskd``: LightningCLI (fit/validate/test/predict) with the library's classes, plus tool subcommands."""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from pytorch_lightning import Trainer
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from .data import VideoDataModule
from .data.presets import preset_metric, preset_num_classes
from .module import ResKDModule
from .predictions import VideoPredictionWriter
from .reporting import log_config, wandb_offline_by_default


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

    def before_instantiate_classes(self) -> None:
        wandb_offline_by_default()  # before the loggers are built, so a wandb run never waits for a network

    def _log_config_to_wandb(self) -> None:
        """The whole parsed config of the subcommand into wandb's run config (Lightning logs only hparams)."""
        from pytorch_lightning.loggers import WandbLogger

        if self.subcommand is None or not any(isinstance(lg, WandbLogger) for lg in self.trainer.loggers):
            return
        import yaml

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
        """The trainer; ``test`` and ``predict`` get a per-video CSV writer when the config has none."""
        trainer = super().instantiate_trainer(**kwargs)
        if self.subcommand in ("test", "predict"):
            if not any(isinstance(c, VideoPredictionWriter) for c in trainer.callbacks):
                trainer.callbacks.append(VideoPredictionWriter())
        return trainer

    def _report_predictions(self) -> None:
        for writer in (c for c in self.trainer.callbacks if isinstance(c, VideoPredictionWriter)):
            for path in writer.written.get(self.subcommand or "", []):
                rank_zero_info(f"per-video predictions: {path}")

    after_test = after_predict = _report_predictions


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



def predict_videos_main(argv: Sequence[str]) -> None:
    """``reskd predict --ckpt_path X.ckpt --video a.mp4 [b.mp4 ...]``: the top classes of your own videos."""
    import argparse

    import torch

    from .data.dataset import UNREADABLE
    from .predictions import VideoPredictor, read_video_list

    parser = argparse.ArgumentParser(prog="reskd predict", description=predict_videos_main.__doc__)
    parser.add_argument("--ckpt_path", "--ckpt-path", required=True, help="checkpoint of a `reskd fit` run")
    parser.add_argument("--video", nargs="+", default=[], help="video files (or frame folders of a rawframe run)")
    parser.add_argument("--list", help="a file of video paths, one a line")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--classes", help="class names, one a line; default: the run's data, else class ids")
    parser.add_argument("--num-clips", type=int, help="test clips per video; default: the run's num_test_clips")
    parser.add_argument("--crop", choices=["center", "three"], help="test crops; default: the run's test_crop")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(list(argv))
    videos = list(args.video) + (read_video_list(args.list) if args.list else [])
    if not videos:
        parser.error("give --video and/or --list")
    predictor = VideoPredictor.from_checkpoint(
        args.ckpt_path, args.classes, num_clips=args.num_clips, crop=args.crop, top_k=args.top_k, device=args.device
    )
    failed = 0
    for video in videos:
        try:
            prediction = predictor.predict(video)
        except UNREADABLE as e:  # name the file, go on with the others
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(video)
        for rank, (class_id, name, prob) in enumerate(prediction.top, 1):
            print(f"  {rank}. {name:<30} {prob:.4f}  (class {class_id})")
    if failed:
        raise SystemExit(f"{failed} of {len(videos)} videos could not be read")


def analyze_main(argv: Sequence[str]) -> None:
    """``reskd analyze --config X.yaml --high CKPT ...``: the paper's key-finding analysis (see analysis.py)."""
    from .analysis import analyze_main as run

    run(argv)


def benchmark_main(argv: Sequence[str]) -> None:
    """``reskd benchmark --config X.yaml``: inference and training-step times of a config's pair (see benchmark.py)."""
    from .benchmark import benchmark_main as run

    run(argv)


#: Subcommands that are not Lightning's: thin wrappers over library functions.
TOOLS: dict[str, Callable[[Sequence[str]], None]] = {
    "analyze": analyze_main,
    "benchmark": benchmark_main,
    "demo-data": demo_data_main,
    "check-data": check_data_main,
    "flops": flops_main,
}

USAGE = """usage: reskd {fit,validate,test,predict} --config CONFIG.yaml [--print_config] [overrides]
       reskd predict --ckpt_path X.ckpt --video a.mp4 [b.mp4 ...]   (top classes of your own videos)
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
    if args[:1] == ["predict"] and any(a.split("=")[0] in ("--video", "--list") for a in args[1:]):
        predict_videos_main(args[1:])  # a user's own videos; without --video/--list: LightningCLI's predict
        return
    if not args or args[0] in ("-h", "--help"):
        print(USAGE.replace("{tools}", ",".join(TOOLS)))
        return
    cli_main(argv)  # None: LightningCLI reads sys.argv itself


if __name__ == "__main__":
    main()
