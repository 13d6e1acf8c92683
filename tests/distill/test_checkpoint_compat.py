"""Checkpoints written before issue 11 keep loading: the adapter's weights and the schedules' progress come back,
through ``load_from_checkpoint`` and through a resumed ``Trainer.fit(ckpt_path=...)``.

The fixture (``tests/fixtures/reskd_v0_checkpoint.ckpt``, 11 KB) and the run that wrote it are described in
``v0_checkpoint.py``: a FeatureMapKD with a learnable adapter as a trainer callback and a LogitKD given as
``distillers=``, both with weight schedules, saved after two steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from v0_checkpoint import FIXTURE, SAVED_PROGRESS, TinyData, feature_kd, logit_kd, networks, trainer

from reskd_lightning import ResKDModule
from reskd_lightning.distill import Progress

ADAPTER = "distill_modules.feature_map_kd."


@pytest.fixture(scope="module")
def saved() -> dict[str, Any]:
    """The fixture as torch reads it: what the old code wrote, independently of the loading code under test."""
    return torch.load(FIXTURE, map_location="cpu", weights_only=False)


def test_the_fixture_is_the_old_format(saved: dict[str, Any]) -> None:
    # The old code saved each schedule's progress in checkpoint["distillers"] and, for a trainer callback, again
    # as Lightning callback state; the adapter under distill_modules.<name>.
    assert FIXTURE.stat().st_size < 64 * 1024
    assert set(saved["distillers"]) == {"FeatureMapKD{'name': 'feature_map_kd'}", "LogitKD{'name': 'logit_kd'}"}
    assert saved["callbacks"]["FeatureMapKD{'name': 'feature_map_kd'}"] == {"progress": SAVED_PROGRESS}
    assert saved["state_dict"][ADAPTER + "weight"].shape == (8, 4, 1, 1, 1)
    assert saved["global_step"] == 2


def test_load_from_checkpoint_restores_the_adapter_and_the_schedules(saved: dict[str, Any]) -> None:
    features, logits = feature_kd(), logit_kd()
    module = ResKDModule.load_from_checkpoint(FIXTURE, **networks(), distillers=[features, logits], weights_only=False)
    adapter = module.distill_modules["feature_map_kd"]
    assert torch.equal(adapter.weight, saved["state_dict"][ADAPTER + "weight"])
    assert torch.equal(adapter.bias, saved["state_dict"][ADAPTER + "bias"])
    assert torch.equal(module.student.cls_head.fc.weight, saved["state_dict"]["student.cls_head.fc.weight"])
    for distiller in (features, logits):
        assert distiller.progress == Progress(**SAVED_PROGRESS), distiller.name
    assert features.current_weight == pytest.approx(10.0 * 0.5 / 4)  # LinearWarmup(4 epochs) at epoch 0.5
    assert logits.current_weight == pytest.approx(1.0 * 1 / 4)  # LinearWarmup(4 steps) at step 1
    assert logits.current_temperature == pytest.approx(4.0 * (0.25 + 0.75 * 0.5))  # Cosine(0.25) halfway (epoch 0.5 of 1)
    # A student-only module (validation, test) loads it too: the adapter is training-only.
    plain = ResKDModule.load_from_checkpoint(FIXTURE, **{**networks(), "teacher": None}, weights_only=False)
    assert plain.distillers == () and len(plain.distill_modules) == 0
    assert torch.equal(plain.student.cls_head.fc.weight, saved["state_dict"]["student.cls_head.fc.weight"])


class AtTrainStart(pl.Callback):
    """What the resumed module holds when training starts again (after the checkpoint is restored)."""

    def __init__(self) -> None:
        self.adapter: dict[str, torch.Tensor] = {}
        self.progress: dict[str, Progress] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: ResKDModule) -> None:
        self.adapter = {k: v.clone() for k, v in pl_module.distill_modules["feature_map_kd"].state_dict().items()}
        self.progress = {d.name: d.progress for d in pl_module.distillers}


def test_a_fit_resumed_from_the_old_checkpoint_continues_the_adapter_and_the_schedules(
    saved: dict[str, Any], tmp_path: Path
) -> None:
    features, logits, start = feature_kd(), logit_kd(), AtTrainStart()
    module = ResKDModule(**networks(), distillers=[logits])
    run = trainer(tmp_path, max_epochs=2, callbacks=[features, start])
    run.fit(module, datamodule=TinyData(), ckpt_path=FIXTURE)
    assert run.global_step == 4  # two more steps after the two of the checkpoint
    for key in ("weight", "bias"):
        assert torch.equal(start.adapter[key], saved["state_dict"][ADAPTER + key]), key
    assert start.progress == {"feature_map_kd": Progress(**SAVED_PROGRESS), "logit_kd": Progress(**SAVED_PROGRESS)}
    # Training went on from there: epoch 1, batches 0 and 1, steps 2 and 3 of 4.
    for distiller in (features, logits):
        assert distiller.progress == Progress(step=3, epoch=1.5, total_steps=4, total_epochs=2), distiller.name
    assert features.current_weight == pytest.approx(10.0 * 1.5 / 4)
