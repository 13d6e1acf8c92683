"""``reskd predict --ckpt_path X.ckpt --video a.mp4 [b.mp4 ...]`` (or ``--list``): the top classes of your videos.

The work is :class:`reskd_lightning.predictions.VideoPredictor` (notebooks call it in process), with the
checkpoint's own test pipeline. ``--ckpt_path`` is a ``reskd fit`` checkpoint or an exported student
(``reskd export``), told apart by content. Without ``--video``/``--list``, ``reskd predict`` is LightningCLI's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def main(argv: Sequence[str]) -> None:
    """``reskd predict --ckpt_path X.ckpt --video a.mp4 [b.mp4 ...]``: the top classes of your own videos."""
    parser = argparse.ArgumentParser(prog="reskd predict", description=main.__doc__)
    parser.add_argument("--ckpt_path", "--ckpt-path", required=True,
                        help="checkpoint of a `reskd fit` run, or an exported student (`reskd export`)")  # fmt: skip
    parser.add_argument("--video", nargs="+", default=[], help="video files (or frame folders of a rawframe run)")
    parser.add_argument("--list", help="a file of video paths, one a line")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--classes", help="class names, one a line; default: the run's data, else class ids")
    parser.add_argument("--num-clips", type=int, help="test clips per video; default: the run's num_test_clips")
    parser.add_argument("--crop", choices=["center", "three"], help="test crops; default: the run's test_crop")
    parser.add_argument("--device", help="default: cuda when there is a GPU, else cpu")
    args = parser.parse_args(list(argv))
    import torch  # here and below: `--help` needs no torch

    from ..data.dataset import UNREADABLE
    from ..predictions import VideoPredictor, read_video_list

    videos = list(args.video) + (read_video_list(args.list) if args.list else [])
    if not videos:
        parser.error("give --video and/or --list")
    predictor = VideoPredictor.from_checkpoint(
        args.ckpt_path, args.classes, num_clips=args.num_clips, crop=args.crop, top_k=args.top_k,
        device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
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
