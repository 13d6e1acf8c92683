"""A diverging run stops loudly and keeps its last good state; `on_nonfinite: skip` leaves such batches out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor

from reskd_lightning import FeatureMapKD, ModelOutput, ResKDModule
from reskd_lightning.data import VideoDataModule
from reskd_lightning.finite import NonFiniteLossError
from reskd_lightning.models import TSN


class FeatureMapKDGoingNaN(FeatureMapKD):
    """The paper's feature loss, NaN from its ``at``-th call (a diverging run, made to happen on time)."""

    def __init__(self, at: int, times: int = 10**9) -> None:
        super().__init__(weight=1.0, name="feature_map_kd")
        self.at, self.times, self.calls = at, times, 0

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        term = super().forward(student, teacher, batch)
        self.calls += 1
        return term * float("nan") if self.at <= self.calls < self.at + self.times else term


class InfiniteGradientKD(FeatureMapKD):
    """A finite term (0) whose gradient is not: d sqrt(x)/dx at 0."""

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        return (super().forward(student, teacher, batch) * 0).sqrt()


class StudentWeights(pl.Callback):
    """The student's first conv weight after every training batch."""

    def __init__(self) -> None:
        self.seen: list[Tensor] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.seen.append(next(pl_module.student.parameters()).detach().clone())


def _fit(demo_root: Path, tmp_path: Path, distiller: FeatureMapKD, **module_kwargs: Any) -> tuple[pl.Trainer, ResKDModule]:
    tsn = dict(backbone="resnet18", dropout=0.0)
    module = ResKDModule(
        student=TSN(4, **tsn), teacher=TSN(4, **tsn), student_resolution=32, teacher_resolution=56,
        distillers=[distiller], **module_kwargs,
    )  # fmt: skip
    data = VideoDataModule(
        demo_data=str(demo_root), num_classes=4, num_segments=2, short_side=64, crop_size=56, batch_size=4,
        num_workers=0, resolutions=[56, 32],
    )  # fmt: skip
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_last=True)
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=4, limit_val_batches=0, accelerator="cpu", logger=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[checkpoints, StudentWeights()],
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return trainer, module


def _finite(path: Path) -> bool:
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return all(v.isfinite().all() for v in state.values() if v.is_floating_point())


def test_a_nan_distillation_term_stops_the_run_naming_where_and_the_last_checkpoint_stays_good(
    demo_root: Path, tmp_path: Path
) -> None:
    # Before: the run finished "green" with NaN weights and last.ckpt overwritten by them.
    with pytest.raises(NonFiniteLossError) as error:
        _fit(demo_root, tmp_path, FeatureMapKDGoingNaN(at=3))
    message = str(error.value)
    assert "non-finite loss term(s) feature_map_kd = nan" in message and "ce =" not in message
    assert "epoch 0, global step 2, batch 2 (videos [" in message and ".mp4" in message
    assert "training stopped before the weights changed" in message
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 2 and _finite(tmp_path / "ckpt" / "last.ckpt")


def test_non_finite_gradients_stop_the_run_naming_the_parameters(demo_root: Path, tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradients of student\.backbone\..* at epoch 0, global step 0"):
        _fit(demo_root, tmp_path, InfiniteGradientKD(weight=1.0))
    assert not (tmp_path / "ckpt" / "last.ckpt").exists()  # no step was taken, nothing saved


def test_skip_leaves_the_batch_out_counts_it_and_stops_past_the_limit(demo_root: Path, tmp_path: Path) -> None:
    trainer, module = _fit(demo_root, tmp_path / "a", FeatureMapKDGoingNaN(at=2, times=1), on_nonfinite="skip")
    weights = next(c for c in trainer.callbacks if isinstance(c, StudentWeights)).seen
    assert len(weights) == 4 and module.nonfinite.skipped == 1
    assert torch.equal(weights[0], weights[1])  # batch 1 was NaN: no optimiser step
    assert not torch.equal(weights[1], weights[2])  # the others train
    assert _finite(tmp_path / "a" / "ckpt" / "last.ckpt")
    saved = torch.load(tmp_path / "a" / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["nonfinite_skipped"] == 1

    with pytest.raises(NonFiniteLossError, match=r"3 batches skipped, more than max_nonfinite_batches=2"):
        _fit(demo_root, tmp_path / "b", FeatureMapKDGoingNaN(at=1), on_nonfinite="skip", max_nonfinite_batches=2)


def test_a_checkpoint_of_non_finite_weights_is_refused_and_the_old_file_kept(demo_root: Path, tmp_path: Path) -> None:
    trainer, module = _fit(demo_root, tmp_path, FeatureMapKD(weight=1.0))
    path = tmp_path / "ckpt" / "last.ckpt"
    before = path.read_bytes()
    with torch.no_grad():
        next(module.student.parameters())[0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"refusing to save a checkpoint with non-finite weights \(1 tensors"):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == before


def test_on_nonfinite_is_checked() -> None:
    with pytest.raises(ValueError, match=r"on_nonfinite must be 'raise' or 'skip', got 'ignore'"):
        ResKDModule(student=TSN(4, backbone="resnet18"), on_nonfinite="ignore")  # type: ignore[arg-type]
