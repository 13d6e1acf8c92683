"""The end of a demo run: three lines with the teacher's and the student's accuracy, their GMACs and the
checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from reskd_lightning import FeatureMapKD, ResKDModule, VideoDataModule
from reskd_lightning.efficiency import count_macs
from reskd_lightning.models import TSN
from reskd_lightning.summary import RunSummary, validate_network


def _data(demo_root: Path) -> VideoDataModule:
    return VideoDataModule(demo_data=str(demo_root), num_classes=4, num_segments=2, short_side=64, crop_size=64,
                           batch_size=4, num_workers=0, resolutions=[64, 32])  # fmt: skip


def test_the_summary_names_both_accuracies_the_gmacs_share_and_the_checkpoints(demo_root: Path, tmp_path: Path) -> None:
    teacher = TSN(4, backbone="resnet18", dropout=0.0)
    module = ResKDModule(student=TSN(4, backbone="resnet18", dropout=0.0), teacher=teacher, student_resolution=32,
                         teacher_resolution=64, distillers=[FeatureMapKD(weight=100)])  # fmt: skip
    summary = RunSummary()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, logger=False,
                         enable_progress_bar=False, default_root_dir=tmp_path,
                         callbacks=[summary, ModelCheckpoint(dirpath=tmp_path, filename="student")])  # fmt: skip
    data = _data(demo_root)
    trainer.fit(module, datamodule=data)
    teacher_line, student_line, where = summary.lines
    # the teacher's value is its own validation at 64 px, the student's the run's final val/acc1
    expected = validate_network(module.teacher, 64, data, module)["val/acc1"]
    assert teacher_line.startswith("teacher (TSN-resnet18 at 64 px): val/acc1 ") and f"{expected:.3f}" in teacher_line
    assert f"val/acc1 {float(trainer.callback_metrics['val/acc1']):.3f}" in student_line
    share = count_macs(module.student, 32, 2) / count_macs(module.teacher, 64, 2)
    assert f"({100 * share:.0f}% of the teacher's)" in student_line and 20 <= 100 * share <= 30  # half the side
    assert where == f"checkpoints: {tmp_path / 'student.ckpt'} (student)"  # outside the working folder: whole


def test_checkpoints_in_the_working_folder_are_named_as_a_user_typed_them(
    demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ModelCheckpoint makes `dirpath: runs/demo/student` absolute; the summary shows it as the config wrote it.
    monkeypatch.chdir(tmp_path)
    module = ResKDModule(student=TSN(4, backbone="resnet18", dropout=0.0), student_resolution=32)
    summary = RunSummary()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, limit_val_batches=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[summary, ModelCheckpoint(dirpath="runs/demo/student", filename="student")])  # fmt: skip
    trainer.fit(module, datamodule=_data(demo_root))
    assert summary.lines[-1] == f"checkpoints: {Path('runs/demo/student/student.ckpt')} (student)"


def test_validating_the_teacher_leaves_its_mode_and_weights(demo_root: Path) -> None:
    module = ResKDModule(student=TSN(4, backbone="resnet18"), teacher=TSN(4, backbone="resnet18"),
                         student_resolution=32, teacher_resolution=64)  # fmt: skip
    data = _data(demo_root)
    data.setup("validate")
    before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    module.teacher.train()
    metrics = validate_network(module.teacher, 64, data, module)
    assert module.teacher.training and 0.0 <= metrics["val/acc1"] <= 1.0
    assert all(torch.equal(before[k], v) for k, v in module.teacher.state_dict().items())  # eval: BN stats kept
