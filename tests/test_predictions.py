"""VideoPredictor's checkpoints: read by the library's loader, keys checked by the library's one check, the
student scored by ``ResKDModule.eval_probabilities``."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import reskd_lightning.predictions as predictions
from reskd_lightning import FeatureMapKD, ResKDModule, VideoDataModule
from reskd_lightning.models import SlowOnly
from reskd_lightning.models.weights import WeightsMismatchError
from reskd_lightning.predictions import VideoPredictor


def write_checkpoint(tmp_path: Path, demo_root: Path, drop: str | None = None, extra: str | None = None) -> Path:
    """A fit checkpoint as `reskd fit` writes it, with its teacher and adapter kept, a key dropped or added."""
    net = functools.partial(SlowOnly, base_channels=4, dropout=0.0)  # a factory: rebuilt from the hyper-parameters
    module = ResKDModule(
        student=net, teacher=net, num_classes=4, student_resolution=32, teacher_resolution=64,
        distillers=[FeatureMapKD(adapter=True)],
    )  # fmt: skip
    dm = VideoDataModule(demo_data=str(demo_root), num_segments=2, short_side=64, crop_size=64, resolutions=[64, 32])
    state = dict(module.state_dict())
    assert {k.split(".")[0] for k in state} == {"student", "teacher", "distill_modules"}
    if drop is not None:
        del state[drop]
    if extra is not None:
        state[extra] = torch.zeros(1)
    path = tmp_path / "fit.ckpt"
    torch.save({
        "state_dict": state, "hyper_parameters": dict(module.hparams), "datamodule_hyper_parameters": dict(dm.hparams),
        "pytorch-lightning_version": pl.__version__,
    }, path)  # fmt: skip
    return path


def test_predictor_reads_the_checkpoint_through_the_library_and_scores_with_eval_probabilities(
    tmp_path: Path, demo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_checkpoint(tmp_path, demo_root)
    read: list[Path] = []

    def spy(file: Path):  # the library's reader, recorded
        read.append(Path(file))
        return load_checkpoint(file)

    load_checkpoint = predictions.load_checkpoint
    monkeypatch.setattr(predictions, "load_checkpoint", spy)
    predictor = VideoPredictor.from_checkpoint(path)
    assert read == [path]
    saved = torch.load(path, weights_only=False)["state_dict"]
    assert predictor.module.teacher is None and predictor.module.distillers == ()
    for key, value in predictor.module.student.state_dict().items():
        assert torch.equal(value, saved[f"student.{key}"]), key

    scored: list[torch.Tensor] = []
    original = ResKDModule.eval_probabilities

    def recorded(self: ResKDModule, batch: dict) -> torch.Tensor:
        scored.append(original(self, batch))
        return scored[-1]

    monkeypatch.setattr(ResKDModule, "eval_probabilities", recorded)
    video = sorted(demo_root.rglob("*.mp4"))[0]
    probs = predictor.probabilities(video)
    assert len(scored) == 1 and torch.equal(probs, scored[0][0])
    assert probs.shape == (4,) and probs.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_predictor_refuses_a_checkpoint_without_the_students_weights(tmp_path: Path, demo_root: Path) -> None:
    path = write_checkpoint(tmp_path, demo_root, drop="student.cls_head.fc.bias")
    with pytest.raises(WeightsMismatchError, match=r"fit.ckpt do not match the student's ResKDModule:\n"
                                                   r"  missing keys \(1\): student.cls_head.fc.bias$"):  # fmt: skip
        VideoPredictor.from_checkpoint(path)
    # Keys of neither the student, the teacher nor an adapter: not a checkpoint of this student.
    path = write_checkpoint(tmp_path, demo_root, extra="student.extra.weight")
    with pytest.raises(WeightsMismatchError, match=r"unexpected keys \(1\): student.extra.weight$"):
        VideoPredictor.from_checkpoint(path)
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*gone.ckpt' does not exist"):
        VideoPredictor.from_checkpoint(tmp_path / "gone.ckpt")
