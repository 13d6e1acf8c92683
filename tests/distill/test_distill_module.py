"""Distillers inside ResKDModule: the contract (bind to the networks, adapters owned by the module, schedule state
saved once), stages, adapters, stacking, schedules that survive a resume, logit maps."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from distill_helpers import NUM_CLASSES, ClipsDataModule, LogEverything, clip_batch, out, tiny_reskd, tsn
from torch import Tensor, nn

from reskd_lightning import AttentionTransfer, DistillationLoss, FeatureMapKD, LogitKD, LogitMapKD, ModelOutput
from reskd_lightning import ResKDModule
from reskd_lightning.distill import Constant, Cosine, LinearWarmup, Progress, logit_map_kl
from reskd_lightning.models.backbones.swin import VideoSwin


def fit(
    module: ResKDModule, trainer_kwargs: dict[str, Any], max_epochs: int = 1, ckpt_path: str | None = None, **kw: Any
) -> pl.Trainer:
    """One epoch (or ``max_epochs``) of two training batches, no validation."""
    trainer = pl.Trainer(
        **{**trainer_kwargs, "max_epochs": max_epochs, "limit_train_batches": 2, "limit_val_batches": 0}, **kw
    )
    trainer.fit(module, datamodule=ClipsDataModule(), ckpt_path=ckpt_path)
    return trainer


# ------------------------------------------------------------------------------------------------ the contract
class Recorded(DistillationLoss):
    """A user's distiller that records what it is bound to and learns a scale."""

    uses_teacher_logits = False

    def __init__(self) -> None:
        super().__init__(weight=1.0)
        self.bound: list[tuple[nn.Module, nn.Module]] = []

    def bind(self, student: nn.Module, teacher: nn.Module) -> None:
        self.bound.append((student, teacher))

    def build_learnable(self) -> nn.Module:
        return nn.Linear(1, 1, bias=False)

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Any) -> Tensor:
        scale = self.learnable.weight.squeeze()
        return ((scale * student.features - teacher.features.detach()) ** 2).mean()


def test_a_distiller_is_bound_to_the_two_networks_and_nothing_else_of_the_module() -> None:
    distiller = Recorded()
    module = tiny_reskd([distiller])
    assert len(distiller.bound) == 1
    student, teacher = distiller.bound[0]
    assert student is module.student and teacher is module.teacher
    module.register_distiller(distiller)  # the same object again: a no-op
    assert len(distiller.bound) == 1


def test_distillers_written_for_the_former_contract_are_refused_with_the_new_names() -> None:
    with pytest.raises(TypeError, match=r"defines learnable_modules\(\).* build_learnable\(\) .* self.learnable"):
        type("Old", (DistillationLoss,), {"learnable_modules": lambda self: None})
    with pytest.raises(TypeError, match=r"Old.bind takes one argument .* bind\(self, student, teacher\)"):
        type("Old", (DistillationLoss,), {"bind": lambda self, module: None})


def test_learnable_parts_are_owned_by_the_module_and_read_from_it() -> None:
    distiller = Recorded()
    assert distiller.learnable is None  # before registration: nothing built, nothing kept
    first = tiny_reskd([distiller])
    assert set(first.distill_modules) == {"recorded"}
    assert distiller.learnable is first.distill_modules["recorded"]
    # The distiller keeps no copy: it reads the module's store, whatever the module holds now.
    replacement = nn.Linear(1, 1, bias=False)
    first.distill_modules["recorded"] = replacement
    assert distiller.learnable is replacement
    # A distiller registered with a second module gets new parts there and serves that module; the first
    # module's parts are its own and stay where they are.
    second = tiny_reskd([distiller])
    assert second.distill_modules["recorded"] is not replacement
    assert distiller.learnable is second.distill_modules["recorded"]
    assert first.distill_modules["recorded"] is replacement
    loss = second.training_step(clip_batch(), 0)
    loss.backward()
    assert second.distill_modules["recorded"].weight.grad is not None and replacement.weight.grad is None


def test_an_adapter_distiller_outside_a_module_says_it_is_not_registered() -> None:
    with pytest.raises(RuntimeError, match="the adapter is built when the distiller is registered with a ResKDModule"):
        FeatureMapKD(adapter=True)(out(torch.zeros(1, 4, 1, 2, 2)), out(torch.zeros(1, 8, 1, 2, 2)), {})


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
        (lambda: LogitMapKD(mode="linear"), r"LogitMapKD: mode must be one of bilinear, bicubic, nearest, area"),
    ],
)
def test_schedules_and_distillers_name_bad_values(make, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_weight_and_temperature_follow_their_schedules() -> None:
    def make() -> LogitKD:
        return LogitKD(
            weight=2.0, temperature=4.0, weight_schedule=LinearWarmup(warmup=10), temperature_schedule=Cosine(0.25)
        )

    kd = make()
    kd.update_progress(step=0, epoch=5.0, total_epochs=10)
    assert kd.current_weight == pytest.approx(1.0) and kd.current_temperature == pytest.approx(2.5)
    state = kd.schedule_state()
    assert state == {"progress": {"step": 0, "epoch": 5.0, "total_steps": None, "total_epochs": 10}}
    assert kd.state_dict() == {}  # no Lightning callback state: the module saves the progress (once)
    fresh = make()
    assert fresh.current_weight == 0.0
    fresh.load_schedule_state(state)
    assert fresh.current_weight == pytest.approx(1.0) and fresh.current_temperature == pytest.approx(2.5)
    # Callback state of a checkpoint written before: still read.
    legacy = make()
    legacy.load_state_dict(state)
    assert legacy.progress == kd.progress


@pytest.mark.parametrize("as_callback", [True, False])
def test_resumed_run_continues_the_weight_schedule_saved_once(
    as_callback: bool, tmp_path: Path, quiet_trainer_kwargs: dict[str, Any]
) -> None:
    def run(max_epochs: int, ckpt_path: str | None = None) -> tuple[pl.Trainer, FeatureMapKD]:
        distiller = FeatureMapKD(weight=10.0, weight_schedule=LinearWarmup(warmup=4))
        module = tiny_reskd([] if as_callback else [distiller])
        trainer = fit(module, quiet_trainer_kwargs, max_epochs, callbacks=[distiller] if as_callback else [],
                      ckpt_path=ckpt_path)  # fmt: skip
        return trainer, distiller

    trainer, first = run(max_epochs=1)
    trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
    saved = torch.load(tmp_path / "epoch1.ckpt", weights_only=False)
    # One place, whether the distiller is a trainer callback or a `distillers=` entry; last step: batch 1 of 2.
    assert saved["distillers"] == {
        first.state_key: {"progress": {"step": 1, "epoch": 0.5, "total_steps": 2, "total_epochs": 1}}
    }
    assert first.state_key not in saved.get("callbacks", {})

    # Resuming restores the progress before the first step, and training goes on from epoch 1 of the warm-up.
    restored = FeatureMapKD(weight=10.0, weight_schedule=LinearWarmup(warmup=4))
    restored.load_schedule_state(saved["distillers"][first.state_key])
    assert restored.current_weight == pytest.approx(10.0 * 0.5 / 4)
    _, resumed = run(max_epochs=2, ckpt_path=str(tmp_path / "epoch1.ckpt"))
    assert resumed.progress == Progress(step=3, epoch=1.5, total_steps=4, total_epochs=2)
    assert resumed.current_weight == pytest.approx(10.0 * 1.5 / 4)


# ----------------------------------------------------------------------------------- stages and adapters
def test_two_feature_distillers_on_different_stages_are_each_logged(quiet_trainer_kwargs: dict[str, Any]) -> None:
    last, layer3 = FeatureMapKD(weight=1.0), FeatureMapKD(weight=1.0, stage="backbone.layer3")
    assert (last.name, layer3.name) == ("feature_map_kd", "feature_map_kd_backbone_layer3")
    assert last.state_key != layer3.state_key
    logs = LogEverything()
    module = tiny_reskd([])
    fit(module, quiet_trainer_kwargs, callbacks=[last, layer3, logs])
    assert {"train/distill/feature_map_kd_step", "train/distill/feature_map_kd_backbone_layer3_step"} <= logs.keys
    assert all(v > 0 for v in logs.values["train/distill/feature_map_kd_backbone_layer3_step"])
    assert [d.name for d in module.distillers] == ["feature_map_kd", "feature_map_kd_backbone_layer3"]
    assert module._taps == {"student": {}, "teacher": {}}  # captured maps are not kept past the step


def test_stage_tap_is_the_unfolded_stage_output() -> None:
    module = tiny_reskd([FeatureMapKD(stage="backbone.layer3")])
    b = clip_batch()
    clip = torch.randn(2, 3, 2, 32, 32)
    teacher_out = module._run("teacher", clip)
    tap = teacher_out.taps["backbone.layer3"]
    assert tap.shape == (2 * 2, 256, 2, 2)  # TSN runs frames as a batch: [N*T, C, h, w], layer3 at 1/16
    distiller = module.distillers[0]
    # The term equals the MSE of the unfolded, upsampled maps computed by hand from the two stage outputs.
    s = module._run("student", torch.nn.functional.interpolate(clip.flatten(1, 2), size=16, mode="bilinear").view(
        2, 3, 2, 16, 16
    ))  # fmt: skip
    s_map = s.taps["backbone.layer3"].view(2, 2, 256, 1, 1).transpose(1, 2)
    t_map = tap.view(2, 2, 256, 2, 2).transpose(1, 2)
    expected = ((s_map.expand_as(t_map) - t_map) ** 2).mean()  # a 1x1 map upsamples to a constant 2x2
    assert distiller(s, teacher_out, b).item() == pytest.approx(expected.item(), rel=1e-5)
    assert module.training_step(b, 0).isfinite()


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: FeatureMapKD(stage="backbone.layer9"), "feature_map_kd_backbone_layer9"),
        (lambda: AttentionTransfer(stages=["backbone.layer9"]), "attention_transfer_backbone_layer9"),
    ],
)
def test_a_stage_that_does_not_exist_lists_the_networks_modules(make, name: str) -> None:
    message = rf"{name}: the student \(TSN\) has no submodule 'backbone.layer9'; its top-level modules are " \
              r"\['backbone', 'cls_head'\]"  # fmt: skip
    with pytest.raises(ValueError, match=message):
        tiny_reskd([make()])


def test_different_widths_need_an_adapter_which_is_trained_and_checkpointed(
    tmp_path: Path, quiet_trainer_kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"student's map has 512 channels and the teacher's 2048; set `adapter: true`"):
        tiny_reskd([FeatureMapKD()], teacher=tsn("resnet50"))

    distiller = FeatureMapKD(adapter=True)
    module = tiny_reskd([], teacher=tsn("resnet50"))
    assert distiller.adapter is None  # built when the callback registers, in setup("fit")
    trainer = fit(module, quiet_trainer_kwargs, callbacks=[distiller])
    adapter = module.distill_modules["feature_map_kd"]
    assert adapter is distiller.adapter and adapter.weight.shape == (2048, 512, 1, 1, 1)
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert {id(p) for p in adapter.parameters()} <= optimized
    assert adapter.weight.grad is not None and adapter.weight.grad.abs().sum() > 0
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    state = torch.load(tmp_path / "run.ckpt", weights_only=False)["state_dict"]
    assert torch.equal(state["distill_modules.feature_map_kd.weight"], adapter.weight.detach())
    assert torch.equal(state["distill_modules.feature_map_kd.bias"], adapter.bias.detach())
    # A test-time module without the distiller loads the checkpoint (the adapter is training-only).
    plain = ResKDModule(student=tsn(), num_classes=NUM_CLASSES, student_resolution=16)
    plain.load_state_dict(state)
    assert torch.equal(plain.student.cls_head.fc.weight, state["student.cls_head.fc.weight"])


# --------------------------------------------------------------------------------------------- logit maps
def test_logit_map_kd_compares_each_networks_classifier_at_every_location() -> None:
    student, teacher = tsn("resnet18"), tsn("resnet50")  # 512 and 2048 channels: each uses its own head
    module = tiny_reskd([LogitMapKD()], student=student, teacher=teacher)
    b = clip_batch(size=64)
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
    batchmean.bind(student, teacher)
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
    loss = module.training_step(clip_batch(frames=4, size=64), 0)
    loss.backward()
    assert loss.isfinite()
    assert module.student.cls_head.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.teacher.parameters())


def test_logit_map_kd_outside_a_module_says_how_to_bind() -> None:
    output = ModelOutput(features=torch.zeros(1, 4, 1, 2, 2), logits=torch.zeros(1, 4))
    with pytest.raises(RuntimeError, match=r"register it with a ResKDModule .* or call `bind\(student, teacher\)`"):
        LogitMapKD()(output, output, {})
    with pytest.raises(TypeError, match=r"logit_map_kd: the student \(Linear\) has no `logit_map\(features\)`"):
        LogitMapKD().bind(nn.Linear(1, 1), tsn())
