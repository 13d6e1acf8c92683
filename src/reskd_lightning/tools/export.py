"""``reskd export --ckpt_path X.ckpt --out student.pt [--program]``: the trained student alone, in a file.

The student is rebuilt with its test pipeline by :class:`reskd_lightning.predictions.VideoPredictor` (the
teacher is not) and written by :func:`reskd_lightning.student_export.export_student`; ``--program`` adds a
``torch.export`` program of the file's student (:func:`reskd_lightning.student_export.export_program`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..student_export import ExportedStudent

EPILOG = """The exported student holds the student's weights, its class path and init arguments, num_classes,
the student's resolution and view options (mean, std, interpolation, antialias), the run's test pipeline
(DataModule settings: frames, clips, crops), class names when known, and the format and library versions; no
teacher, optimiser or distiller state. Load it with ResKDModule.load_student(path), score videos with
`reskd predict --ckpt_path student.pt --video a.mp4`. The program takes the normalised student view
[N, 3, T, R, R] and returns logits [N, K]; run it with
reskd_lightning.student_export.load_program(path)[0].module()(clip) or torch.export.load."""


def describe(student: "ExportedStudent", path: Path) -> str:
    """One line about an exported student: where, what network, resolution, frames, classes, parameters."""
    params = sum(p.numel() for p in student.model.parameters())
    spec = student.student or {}
    frames = f", {student.frames} frames" if student.frames else ""
    return (
        f"student: {path} ({spec.get('class_path', type(student.model).__name__)}, {student.resolution} px{frames}, "
        f"{student.num_classes} classes, {params / 1e6:.2f} M parameters)"
    )


def main(argv: Sequence[str]) -> None:
    """``reskd export --ckpt_path X.ckpt --out student.pt [--program [student.pt2]]``: the student alone."""
    parser = argparse.ArgumentParser(prog="reskd export", description=main.__doc__, epilog=EPILOG)
    parser.add_argument("--ckpt_path", "--ckpt-path", required=True,
                        help="checkpoint of a `reskd fit` run (or an exported student, to add a program)")  # fmt: skip
    parser.add_argument("--out", required=True, help="the exported student's file, e.g. student.pt")
    parser.add_argument("--program", nargs="?", const="", default=None, metavar="PATH",
                        help="also write a torch.export program (default path: OUT with the suffix .pt2)")  # fmt: skip
    parser.add_argument("--frames", type=int, help="frames of the program's input; default: the run's view")
    parser.add_argument("--static-batch", action="store_true", help="a program for batch 1 only")
    parser.add_argument("--classes", help="class names, one a line; default: the run's data, else none")
    parser.add_argument("--num-clips", type=int, help="test clips per video; default: the run's num_test_clips")
    parser.add_argument("--crop", choices=["center", "three"], help="test crops; default: the run's test_crop")
    args = parser.parse_args(list(argv))
    from ..predictions import VideoPredictor  # torch and Lightning: after the arguments, so --help is instant
    from ..student_export import export_program, load_student

    out = Path(args.out)
    if args.program is not None and Path(args.program or out.with_suffix(".pt2")) == out:
        parser.error(f"--program would overwrite --out {out}: give the program another path")
    predictor = VideoPredictor.from_checkpoint(args.ckpt_path, args.classes, num_clips=args.num_clips, crop=args.crop)
    path = predictor.export_student(out)
    student = load_student(path)  # what the file gives back: the program is made from it
    print(describe(student, path))
    if args.program is not None:
        program = Path(args.program) if args.program else out.with_suffix(".pt2")
        export_program(student, program, frames=args.frames, dynamic_batch=not args.static_batch)
        print(f"program: {program} (torch.export; input [N, 3, T, R, R] normalised, output logits)")
