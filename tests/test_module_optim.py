"""The paper's optimiser set-up inside ResKDModule: parameter groups and the lr scaled by the global batch."""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
from test_module import UserDataModule, reskd, tsn

from reskd_lightning import FeatureMapKD
from reskd_lightning.optim import ParamGroups

PAPER = ParamGroups(bias_lr_mult=2.0, bias_decay_mult=0.0, norm_decay_mult=0.0)


class BatchedDataModule(UserDataModule):
    """The user's DataModule, declaring its per-device batch (4) as VideoDataModule does."""

    batch_size = 4


def groups_after_fit(module: Any, trainer_kwargs: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    trainer = pl.Trainer(**{**trainer_kwargs, "max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 0, **kw})
    trainer.fit(module, datamodule=BatchedDataModule())
    # `initial_lr`: each group's lr before the schedule (per-epoch cosine: 0 after the only epoch).
    return trainer.optimizers[0].param_groups


@pytest.mark.parametrize("accumulate", [1, 2])
def test_paper_groups_and_lr_scaled_to_the_global_batch(accumulate: int, quiet_trainer_kwargs: dict[str, Any]) -> None:
    adapter = FeatureMapKD(adapter=True)
    module = reskd(teacher=tsn("resnet50"), param_groups=PAPER, lr_base_batch_size=64)
    groups = groups_after_fit(module, quiet_trainer_kwargs, callbacks=[adapter], accumulate_grad_batches=accumulate)
    # lr 0.01 is for 64 videos; this run steps on 4 x 1 device x `accumulate` videos.
    lr = 0.01 * 4 * accumulate / 64
    by_id = {id(p): g for g in groups for p in g["params"]}
    student = module.student
    assert by_id[id(student.backbone.conv1.weight)]["initial_lr"] == pytest.approx(lr)
    assert by_id[id(student.backbone.conv1.weight)]["weight_decay"] == pytest.approx(1e-4)
    assert by_id[id(student.cls_head.fc.bias)]["initial_lr"] == pytest.approx(2 * lr)
    assert by_id[id(student.cls_head.fc.bias)]["weight_decay"] == 0.0
    assert by_id[id(student.backbone.bn1.weight)]["weight_decay"] == 0.0
    assert by_id[id(student.backbone.bn1.weight)]["initial_lr"] == pytest.approx(lr)
    # The adapter is optimised under the same rules; the teacher not at all.
    assert by_id[id(adapter.adapter.bias)]["initial_lr"] == pytest.approx(2 * lr)
    assert by_id[id(adapter.adapter.weight)]["weight_decay"] == pytest.approx(1e-4)
    assert not {id(p) for p in module.teacher.parameters()} & set(by_id)
    assert len(by_id) == sum(1 for _ in student.parameters()) + 2


def test_default_optimiser_is_one_group_at_the_given_lr(quiet_trainer_kwargs: dict[str, Any]) -> None:
    groups = groups_after_fit(reskd(distillers=[FeatureMapKD()]), quiet_trainer_kwargs)
    assert len(groups) == 1 and groups[0]["initial_lr"] == pytest.approx(0.01) and groups[0]["weight_decay"] == 1e-4


def test_lr_scaling_needs_a_known_batch_size(quiet_trainer_kwargs: dict[str, Any]) -> None:
    module = reskd(distillers=[FeatureMapKD()], lr_base_batch_size=64)
    trainer = pl.Trainer(**{**quiet_trainer_kwargs, "max_epochs": 1, "limit_train_batches": 1})
    with pytest.raises(ValueError, match=r"lr_base_batch_size=64 .* per-device batch size is unknown"):
        trainer.fit(module, datamodule=UserDataModule())
    with pytest.raises(ValueError, match=r"lr_base_batch_size must be a positive number of videos or None, got 0"):
        reskd(lr_base_batch_size=0)
