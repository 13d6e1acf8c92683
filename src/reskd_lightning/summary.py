"""What a ResKD run achieved, in three lines a newcomer understands, printed at the end of ``fit``.

:class:`RunSummary` prints the teacher's and the student's validation accuracy (or mAP) side by side, what each
costs per clip (GMACs: multiply-adds, counted with ``FlopCounterMode``), and where the checkpoints are::

    teacher (TSN-resnet18 at 112 px): val/acc1 1.000, 1.45 GMACs a clip
    student (TSN-resnet18 at 56 px): val/acc1 1.000, 0.39 GMACs a clip (27% of the teacher's)
    checkpoints: runs/demo/student/student.ckpt (student), runs/demo/teacher/teacher.ckpt (teacher)

(the end of ``reskd fit --config configs/demo.yaml``, measured).
"""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from .analysis import frames_per_clip
from .efficiency import count_macs, describe
from .metrics import average_views, evaluation_metrics
from .models.recognizer import as_model_output
from .views import attach_views


def _shown(path: str) -> str:
    """``path`` as a user typed it: relative to the working folder when inside it (ModelCheckpoint makes its
    folder absolute), as it is otherwise."""
    here, full = os.getcwd(), os.path.abspath(path)
    return os.path.relpath(full, here) if full.startswith(here + os.sep) else path


@torch.no_grad()
def validate_network(network: nn.Module, resolution: int, datamodule: Any, module: Any) -> dict[str, float]:
    """``network``'s validation metrics at ``resolution`` (eval mode, the module's views and metric)."""
    metrics = evaluation_metrics(module.metric, module.num_classes).clone(prefix="val/").to(module.device)
    was_training = network.training
    network.eval()
    try:
        for batch in datamodule.val_dataloader():
            if "video" not in batch:
                continue  # unreadable videos only
            batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            clip = attach_views(batch, [resolution], **module.view_options)["clips"][resolution]
            views = clip.shape[1] if clip.dim() == 6 else 1
            logits = as_model_output(network(clip.flatten(0, 1) if clip.dim() == 6 else clip)).logits
            probs = average_views(logits, num_views=views)
            metrics.update(probs, module.evaluation_targets(batch))
    finally:
        network.train(was_training)
    return {k: float(v) for k, v in metrics.compute().items()}


class RunSummary(pl.Callback):
    """Print, at the end of ``fit`` (one process), the teacher's and the student's validation metric, their GMACs
    per clip and the checkpoints: the three lines of ``configs/demo.yaml``'s end. The teacher is evaluated once
    on the validation set (eval mode, its resolution); without a teacher, only the student's line.

    Configure from LightningCLI::

        trainer:
          callbacks:
            - class_path: reskd_lightning.RunSummary
    """

    def __init__(self) -> None:
        self.lines: list[str] = []  # the last summary, for notebooks and tests

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1 or trainer.datamodule is None or not hasattr(pl_module, "student_resolution"):
            return  # one process: the teacher's evaluation below is not sharded
        key = "val/mAP" if getattr(pl_module, "metric", "accuracy") == "mAP" else "val/acc1"
        frames = frames_per_clip(trainer.datamodule) or 8  # 8 when the data does not say
        student_res = pl_module.student_resolution
        student_macs = count_macs(pl_module.student, student_res, frames) / 1e9
        student_value = trainer.callback_metrics.get(key)
        student = f"{float(student_value):.3f}" if student_value is not None else "not validated"
        lines = []
        teacher = pl_module.teacher
        if teacher is not None:
            teacher_res = pl_module.teacher_resolution
            value = validate_network(teacher, teacher_res, trainer.datamodule, pl_module).get(key)
            teacher_macs = count_macs(teacher, teacher_res, frames) / 1e9
            lines.append(f"teacher ({describe(teacher)} at {teacher_res} px): {key} {value:.3f}, "
                         f"{teacher_macs:.2f} GMACs a clip")  # fmt: skip
            share = f" ({100 * student_macs / teacher_macs:.0f}% of the teacher's)"
        else:
            share = ""
        lines.append(f"student ({describe(pl_module.student)} at {student_res} px): {key} {student}, "
                     f"{student_macs:.2f} GMACs a clip{share}")  # fmt: skip
        ckpt = trainer.checkpoint_callback
        where = [f"{_shown(ckpt.best_model_path or ckpt.last_model_path)} (student)"] if ckpt is not None else []
        if teacher is not None and getattr(pl_module.hparams, "teacher_ckpt", None):
            where.append(f"{_shown(pl_module.hparams.teacher_ckpt)} (teacher)")
        if where:
            lines.append("checkpoints: " + ", ".join(where))
        self.lines = lines
        rank_zero_info("\n".join(lines))
