"""Distillers inside ResKDModule: stages, adapters, stacking, schedules that survive a resume, logit maps."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from test_module import NUM_CLASSES, UserDataModule, reskd, tsn

from reskd_lightning import FeatureMapKD, LogitKD, LogitMapKD, ModelOutput, ResKDModule
from reskd_lightning.distill import Constant, Cosine, LinearWarmup, Progress, logit_map_kl
from reskd_lightning.models.backbones.swin import VideoSwin


def batch(n: int = 2, frames: int = 2, size: int = 32) -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    return {
        "video": torch.randint(0, 256, (n, 3, frames, size, size), generator=g, dtype=torch.uint8),
        "label": torch.randint(0, NUM_CLASSES, (n,), generator=g),
    }


class LogEverything(pl.Callback):
    """Collects every value logged on a training step."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.values: dict[str, list[float]] = {}

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        for key, value in trainer.callback_metrics.items():
            self.keys.add(key)
            self.values.setdefault(key, []).append(float(value))


# ------------------------------------------------------------------------------------------------ schedules
def test_schedules_give_the_documented_factors() -> None:
    at = lambda epoch, total=10: Progress(step=0, epoch=epoch, total_epochs=total)  # noqa: E731
    assert Constant().factor(at(3)) == 1.0
    warm = LinearWarmup(warmup=4, start_factor=0.2)
    assert [warm.factor(at(e)) for e in (0, 2, 4, 9)] == pytest.approx([0.2, 0.6, 1.0, 1.0])
    cos = Cosine(final_factor=0.25)  # over the run's 10 epochs: 1 -> 0.25
    assert cos.factor(at(0)) == pytest.approx(1.0)
    assert cos.factor(at(5)) == pytest.approx(0.625)  # halfway: 0.25 + 0.75 * 0.5
    assert cos.factor(at(10)) == pytest.approx(0.25) and cos.factor(at(12)) == pytest.approx(0.25)
    steps = Cosine(total=100, unit="step")
    assert steps.factor(Progress(step=25)) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert Cosine().factor(Progress(epoch=3)) == 1.0  # the run's length unknown: the base value


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LinearWarmup(warmup=0), r"warmup must be > 0 epochs, got 0"),
        (lambda: LinearWarmup(warmup=2, start_factor=1.5), r"start_factor must be in \[0, 1\], got 1.5"),
        (lambda: Cosine(final_factor=-1), r"final_factor must be >= 0, got -1"),
        (lambda: Cosine(unit="iter"), r"unit must be 'epoch' or 'step', got 'iter'"),
        (lambda: LogitKD(weight_schedule=0.5), r"weight_schedule must be a reskd_lightning.distill.Schedule"),
        (lambda: LogitMapKD(reduction="sum"), r"reduction must be 'mean' or 'batchmean', got 'sum'"),
    ],
)
def test_schedules_and_distillers_name_bad_values(make, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_weight_and_temperature_follow_their_schedules() -> None:
    kd = LogitKD(weight=2.0, temperature=4.0, weight_schedule=LinearWarmup(warmup=10), temperature_schedule=Cosine(0.25))
    kd.update_progress(step=0, epoch=5.0, total_epochs=10)
    assert kd.current_weight == pytest.approx(1.0) and kd.current_temperature == pytest.approx(2.5)
    state = kd.state_dict()
    fresh = LogitKD(weight=2.0, temperature=4.0, weight_schedule=LinearWarmup(warmup=10), temperature_schedule=Cosine(0.25))
    assert fresh.current_weight == 0.0
    fresh.load_state_dict(state)
    assert fresh.current_weight == pytest.approx(1.0) and fresh.current_temperature == pytest.approx(2.5)


@pytest.mark.parametrize("as_callback", [True, False])
def test_resumed_run_continues_the_weight_schedule(
    as_callback: bool, tmp_path: Path, quiet_trainer_kwargs: dict[str, Any]
) -> None:
    def run(max_epochs: int, ckpt_path: str | None = None) -> tuple[pl.Trainer, FeatureMapKD]:
        distiller = FeatureMapKD(weight=10.0, weight_schedule=LinearWarmup(warmup=4))
        module = reskd(distillers=[] if as_callback else [distiller])
        trainer = pl.Trainer(
            **{**quiet_trainer_kwargs, "max_epochs": max_epochs, "limit_train_batches": 2, "limit_val_batches": 0},
            callbacks=[distiller] if as_callback else [],
        )
        trainer.fit(module, datamodule=UserDataModule(), ckpt_path=ckpt_path)
        return trainer, distiller

    trainer, first = run(max_epochs=1)
    trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
    saved = torch.load(tmp_path / "epoch1.ckpt", weights_only=False)
    assert saved["distillers"][first.state_key]["progress"]["epoch"] == pytest.approx(0.5)  # last step: batch 1 of 2
    if as_callback:
        assert saved["callbacks"][first.state_key]["progress"]["step"] == 1

    # Resuming restores the progress before the first step, and training goes on from epoch 1 of the warm-up.
    restored = FeatureMapKD(weight=10.0, weight_schedule=LinearWarmup(warmup=4))
    restored.load_state_dict(saved["distillers"][first.state_key])
    assert restored.current_weight == pytest.approx(10.0 * 0.5 / 4)
    _, resumed = run(max_epochs=2, ckpt_path=str(tmp_path / "epoch1.ckpt"))
    assert resumed.progress.epoch == pytest.approx(1.5) and resumed.progress.step == 3
    assert resumed.current_weight == pytest.approx(10.0 * 1.5 / 4)


# ----------------------------------------------------------------------------------- stages and adapters
def test_two_feature_distillers_on_different_stages_are_each_logged(quiet_trainer_kwargs: dict[str, Any]) -> None:
    last, layer3 = FeatureMapKD(weight=1.0), FeatureMapKD(weight=1.0, stage="backbone.layer3")
    assert (last.name, layer3.name) == ("feature_map_kd", "feature_map_kd_backbone_layer3")
    assert last.state_key != layer3.state_key
    logs = LogEverything()
    module = reskd()
    trainer = pl.Trainer(
        **{**quiet_trainer_kwargs, "max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 0},
        callbacks=[last, layer3, logs],
    )
    trainer.fit(module, datamodule=UserDataModule())
    assert {"train/distill/feature_map_kd_step", "train/distill/feature_map_kd_backbone_layer3_step"} <= logs.keys
    assert [d.name for d in module.distillers] == ["feature_map_kd", "feature_map_kd_backbone_layer3"]
    assert module._taps == {"student": {}, "teacher": {}}  # captured maps are not kept past the step


def test_stage_tap_is_the_unfolded_stage_output() -> None:
    module = reskd(distillers=[FeatureMapKD(stage="backbone.layer3")])
    b = batch()
    clip = torch.randn(2, 3, 2, 32, 32)
    out = module._run("teacher", clip)
    tap = out.taps["backbone.layer3"]
    assert tap.shape == (2 * 2, 256, 2, 2)  # TSN runs frames as a batch: [N*T, C, h, w], layer3 at 1/16
    distiller = module.distillers[0]
    # The term equals the MSE of the unfolded, upsampled maps computed by hand from the two stage outputs.
    s = module._run("student", torch.nn.functional.interpolate(clip.flatten(1, 2), size=16, mode="bilinear").view(
        2, 3, 2, 16, 16
    ))  # fmt: skip
    s_map = s.taps["backbone.layer3"].view(2, 2, 256, 1, 1).transpose(1, 2)
    t_map = tap.view(2, 2, 256, 2, 2).transpose(1, 2)
    expected = ((s_map.expand_as(t_map) - t_map) ** 2).mean()  # a 1x1 map upsamples to a constant 2x2
    assert distiller(s, out, b).item() == pytest.approx(expected.item(), rel=1e-5)
    assert module.training_step(b, 0).isfinite()


def test_a_stage_that_does_not_exist_lists_the_networks_modules() -> None:
    with pytest.raises(ValueError, match=r"has no submodule 'backbone.layer9'.*\['backbone', 'cls_head'\]"):
        reskd(distillers=[FeatureMapKD(stage="backbone.layer9")])


def test_different_widths_need_an_adapter_which_is_trained_and_checkpointed(
    tmp_path: Path, quiet_trainer_kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"student's map has 512 channels and the teacher's 2048; set `adapter: true`"):
        reskd(teacher=tsn("resnet50"), distillers=[FeatureMapKD()])

    distiller = FeatureMapKD(adapter=True)
    module = reskd(teacher=tsn("resnet50"))
    trainer = pl.Trainer(
        **{**quiet_trainer_kwargs, "max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 0},
        callbacks=[distiller],
    )
    assert distiller.adapter is None  # built when the callback registers, in setup("fit")
    trainer.fit(module, datamodule=UserDataModule())
    adapter = module.distill_modules["feature_map_kd"]
    assert adapter is distiller.adapter and adapter.weight.shape == (2048, 512, 1, 1, 1)
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert {id(p) for p in adapter.parameters()} <= optimized
    assert adapter.weight.grad is not None and adapter.weight.grad.abs().sum() > 0
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    state = torch.load(tmp_path / "run.ckpt", weights_only=False)["state_dict"]
    assert torch.equal(state["distill_modules.feature_map_kd.weight"], adapter.weight.detach())
    # A test-time module without the distiller loads the checkpoint (the adapter is training-only).
    plain = ResKDModule(student=tsn(), num_classes=NUM_CLASSES, student_resolution=16)
    plain.load_state_dict(state)


# --------------------------------------------------------------------------------------------- logit maps
def test_logit_map_kd_compares_each_networks_classifier_at_every_location() -> None:
    student, teacher = tsn("resnet18"), tsn("resnet50")  # 512 and 2048 channels: each uses its own head
    module = reskd(student=student, teacher=teacher, distillers=[LogitMapKD()])
    b = batch(size=64)
    s = module._run("student", torch.randn(2, 3, 2, 32, 32))
    t = module.teacher_forward(torch.randn(2, 3, 2, 64, 64))
    assert s.features.shape[-2:] == (1, 1) and t.features.shape[-2:] == (2, 2)
    s_map = student.cls_head.fc(s.features.movedim(1, -1)).movedim(-1, 1)  # [N, K, T, 1, 1]
    t_map = teacher.cls_head.fc(t.features.movedim(1, -1)).movedim(-1, 1)
    # The paper's reduction: pointwise KL of T=2 distributions, averaged over locations x classes, times T^2.
    # official: mmaction/models/heads/grkd_3d_head.py:131 (CVMI-Lab/ResKD): w_loss_kd * T * T * nn.KLDivLoss()(...)
    p_t = (t_map / 2).softmax(1)
    log_p_s = (s_map.expand_as(t_map) / 2).log_softmax(1)
    expected = (p_t * (p_t.log() - log_p_s)).mean() * 4
    term = module.distillers[0](s, t, b)
    assert term.item() == pytest.approx(expected.item(), rel=1e-4)
    assert logit_map_kl(s_map, t_map, 2.0).item() == pytest.approx(expected.item(), rel=1e-4)
    batchmean = LogitMapKD(reduction="batchmean")
    batchmean.bind(module)
    per_location = (p_t * (p_t.log() - log_p_s)).sum(1).mean() * 4  # summed over classes, times T^2
    assert batchmean(s, t, b).item() == pytest.approx(per_location.item(), rel=1e-4)
    term.backward()
    assert student.cls_head.fc.weight.grad is not None and teacher.cls_head.fc.weight.grad is None


def test_logit_map_kd_trains_a_video_swin_pair_of_different_widths() -> None:
    def swin(dim: int) -> VideoSwin:
        return VideoSwin(NUM_CLASSES, embed_dim=dim, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=[2, 4, 4])

    module = ResKDModule(
        student=swin(16), teacher=swin(32), num_classes=NUM_CLASSES, student_resolution=32, teacher_resolution=64,
        distillers=[LogitMapKD()],
    )  # fmt: skip
    loss = module.training_step(batch(frames=4, size=64), 0)
    loss.backward()
    assert loss.isfinite()
    assert module.student.cls_head.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.teacher.parameters())


def test_logit_map_kd_outside_a_module_says_how_to_bind() -> None:
    out = ModelOutput(features=torch.zeros(1, 4, 1, 2, 2), logits=torch.zeros(1, 4))
    with pytest.raises(RuntimeError, match=r"register it with a ResKDModule .* or call `bind\(module\)`"):
        LogitMapKD()(out, out, {})
