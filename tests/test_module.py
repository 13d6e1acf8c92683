"""ResKDModule: the teacher contract, distillers in the step, mixed precision and a user's own script."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset

from reskd_lightning import (
    AttentionTransfer,
    DecoupledKD,
    DistillationLoss,
    FeatureMapKD,
    LogitKD,
    LogitMapKD,
    ModelOutput,
    ResKDModule,
    VideoDataModule,
)
from reskd_lightning.models import TSN, VideoSwin
from reskd_lightning.optim import ParamGroups

NUM_CLASSES = 4


class RandomClips(Dataset):
    """A user's own dataset: uint8 clips ``[C, T, H, W]`` and labels, nothing else."""

    def __init__(self, n: int = 8, size: int = 32, frames: int = 2, dtype: torch.dtype = torch.uint8) -> None:
        g = torch.Generator().manual_seed(0)
        self.video = torch.randint(0, 256, (n, 3, frames, size, size), generator=g, dtype=torch.uint8)
        if dtype != torch.uint8:
            self.video = (self.video.float() - 128.0) / 64.0
        self.label = torch.randint(0, NUM_CLASSES, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"video": self.video[i], "label": self.label[i]}


class UserDataModule(pl.LightningDataModule):
    def __init__(self, dtype: torch.dtype = torch.uint8, size: int = 32) -> None:
        super().__init__()
        self.dtype, self.size = dtype, size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(RandomClips(size=self.size, dtype=self.dtype), batch_size=4, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(RandomClips(n=4, size=self.size, dtype=self.dtype), batch_size=4)


def tsn(backbone: str = "resnet18") -> TSN:
    return TSN(NUM_CLASSES, backbone=backbone, dropout=0.0, init_std=0.01)


def reskd(**kwargs: Any) -> ResKDModule:
    args: dict[str, Any] = dict(
        student=tsn(), teacher=tsn(), num_classes=NUM_CLASSES, student_resolution=16, teacher_resolution=32
    )
    args.update(kwargs)
    return ResKDModule(**args)


def bn_training_flags(module: nn.Module) -> set[bool]:
    return {m.training for m in module.modules() if isinstance(m, _BatchNorm)}


def other_training_flags(module: nn.Module) -> set[bool]:
    """Training flags of every submodule that is not a BatchNorm (dropout, drop-path, convolutions, ...)."""
    return {m.training for m in module.modules() if not isinstance(m, _BatchNorm)}


#: teacher_mode -> (BatchNorm layers in train mode, every other submodule in train mode)
TEACHER_MODE_FLAGS = {"train": (True, True), "bn_train": (True, False), "eval": (False, False)}


class RecordModes(pl.Callback):
    """Records the teacher's BN and other submodules' modes at every train and validation batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, frozenset[bool], frozenset[bool]]] = []

    def record(self, stage: str, teacher: nn.Module) -> None:
        self.seen.append((stage, frozenset(bn_training_flags(teacher)), frozenset(other_training_flags(teacher))))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: ResKDModule, *args: Any) -> None:
        self.record("train", pl_module.teacher)

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: ResKDModule, *args: Any) -> None:
        self.record("val", pl_module.teacher)


def fit(module: ResKDModule, trainer_kwargs: dict[str, Any], dm: pl.LightningDataModule | None = None, **kw: Any):
    trainer = pl.Trainer(**{**trainer_kwargs, "max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, **kw})
    trainer.fit(module, datamodule=dm or UserDataModule())
    return trainer


# ------------------------------------------------------------------------------------------ teacher contract
def test_a_plain_trainer_does_not_warn_about_the_frozen_teachers_eval_mode(
    quiet_trainer_kwargs: dict[str, Any], recwarn: pytest.WarningsRecorder
) -> None:
    # The teacher is in eval mode on purpose (teacher_mode: eval); Lightning's "Found N module(s) in eval mode at
    # the start of training" is silenced for it by the module itself, as `reskd fit` does, in any Trainer.
    fit(reskd(teacher_mode="eval", distillers=[FeatureMapKD(weight=1.0)]), quiet_trainer_kwargs)
    assert not [w for w in recwarn if "in eval mode at the start of training" in str(w.message)]
    # Any other module in eval mode still warns: a student left in eval mode is a user's mistake.
    module = reskd(teacher_mode="eval", distillers=[FeatureMapKD(weight=1.0)])
    module.student.cls_head.eval()
    with pytest.warns(UserWarning, match="in eval mode at the start of training"):
        fit(module, quiet_trainer_kwargs)


def test_teacher_parameters_are_frozen() -> None:
    module = reskd(distillers=[FeatureMapKD()])
    assert all(not p.requires_grad for p in module.teacher.parameters())
    assert all(p.requires_grad for p in module.student.parameters())
    out = module.teacher_forward(torch.randn(2, 3, 2, 32, 32))
    assert not out.features.requires_grad and not out.logits.requires_grad


def test_teacher_not_in_optimizer(quiet_trainer_kwargs: dict[str, Any]) -> None:
    module = reskd(distillers=[FeatureMapKD()])
    trainer = fit(module, quiet_trainer_kwargs)
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in module.teacher.parameters()}
    assert {id(p) for p in module.student.parameters()} <= optimized


@pytest.mark.parametrize("teacher_mode", ["train", "bn_train", "eval"])
def test_teacher_mode_kept_after_fit_switches_modes(teacher_mode: str, quiet_trainer_kwargs: dict[str, Any]) -> None:
    # official: mmaction/models/backbones/rkd.py:57-60 (CVMI-Lab/ResKD): `# self.high_res_path_a.eval()` is commented
    # out, so the teacher runs (under no_grad) in the mode of the whole model: train mode during training.
    module = reskd(distillers=[FeatureMapKD()], teacher_mode=teacher_mode)
    assert module.teacher_mode == teacher_mode and module.hparams["teacher_mode"] == teacher_mode
    recorder = RecordModes()
    fit(module, quiet_trainer_kwargs, callbacks=[recorder], num_sanity_val_steps=1)
    bn, other = TEACHER_MODE_FLAGS[teacher_mode]
    assert {stage for stage, *_ in recorder.seen} == {"train", "val"}
    assert all((bn_flags, other_flags) == ({bn}, {other}) for _, bn_flags, other_flags in recorder.seen), recorder.seen
    for switch in (module.train, module.eval, module.train):
        switch()
        assert (bn_training_flags(module.teacher), other_training_flags(module.teacher)) == ({bn}, {other})
    assert module.student.training


def test_teacher_bn_statistics_update_in_train_and_bn_train_not_in_eval(quiet_trainer_kwargs: dict[str, Any]) -> None:
    for teacher_mode, changes in (("train", True), ("bn_train", True), ("eval", False)):
        module = reskd(distillers=[FeatureMapKD()], teacher_mode=teacher_mode)
        before = module.teacher.backbone.bn1.running_mean.clone()
        fit(module, quiet_trainer_kwargs)
        changed = not torch.equal(before, module.teacher.backbone.bn1.running_mean)
        assert changed is changes, teacher_mode


def tiny_swin(dim: int = 16, stochastic_depth_prob: float = 0.9) -> VideoSwin:
    return VideoSwin(
        NUM_CLASSES, embed_dim=dim, depths=[1, 1, 2, 1], num_heads=[1, 1, 1, 1], window_size=[2, 4, 4],
        stochastic_depth_prob=stochastic_depth_prob,
    )  # fmt: skip


@pytest.mark.parametrize("teacher_mode, random", [("train", True), ("bn_train", False), ("eval", False)])
def test_only_teacher_mode_train_runs_the_swin_teachers_drop_path_and_dropout(teacher_mode: str, random: bool) -> None:
    # official: configs/_base_/models/rkd_swinb_swins.py:36 (CVMI-Lab/ResKD): the teacher's drop_path_rate=0.1, and
    # mmaction/models/backbones/rkd.py:57-60: the teacher runs in train mode under no_grad, so drop-path is active.
    module = ResKDModule(
        student=tiny_swin(), teacher=tiny_swin(32), num_classes=NUM_CLASSES, student_resolution=32,
        teacher_resolution=64, distillers=[LogitMapKD()], teacher_mode=teacher_mode,
    ).train()  # fmt: skip
    clip = torch.randn(4, 3, 4, 64, 64)
    first, second = module.teacher_forward(clip), module.teacher_forward(clip)
    assert not first.features.requires_grad
    assert torch.equal(first.features, second.features) is not random  # drop-path (stochastic depth)
    assert torch.equal(first.logits, second.logits) is not random  # and the head's dropout
    # The per-location logit maps LogitMapKD compares never use dropout (official: grkd_3d_head.py:128-130).
    assert torch.equal(module.teacher.logit_map(first.features), module.teacher.logit_map(first.features))


def test_deprecated_teacher_bn_mode_is_an_alias_and_contradictions_are_refused() -> None:
    for old, new in (("train", "bn_train"), ("eval", "eval")):
        with pytest.warns(DeprecationWarning, match=f"teacher_bn_mode: {old} is teacher_mode: {new}"):
            module = reskd(distillers=[FeatureMapKD()], teacher_bn_mode=old)
        assert module.teacher_mode == new
        assert module.hparams["teacher_mode"] == new and module.hparams["teacher_bn_mode"] is None
        with pytest.warns(DeprecationWarning):
            assert reskd(teacher_bn_mode=old, teacher_mode=new).teacher_mode == new  # consistent: fine
    with pytest.raises(ValueError, match=r"teacher_bn_mode='train' \(deprecated; it means teacher_mode='bn_train'\) "
                       r"contradicts teacher_mode='train': set only teacher_mode"):
        reskd(teacher_bn_mode="train", teacher_mode="train")
    with pytest.raises(ValueError, match="contradicts teacher_mode='eval'"):
        reskd(teacher_bn_mode="train", teacher_mode="eval")
    with pytest.raises(ValueError, match=r"teacher_mode must be one of 'train', 'bn_train', 'eval', got 'bn'"):
        reskd(teacher_mode="bn")


@pytest.mark.parametrize("old, new", [("train", "bn_train"), ("eval", "eval")])
def test_old_checkpoint_with_teacher_bn_mode_loads_with_load_from_checkpoint(old: str, new: str, tmp_path: Path) -> None:
    net = functools.partial(TSN, backbone="resnet18", dropout=0.0)  # factories: kept as hyper-parameters
    module = ResKDModule(student=net, teacher=net, num_classes=NUM_CLASSES, distillers=[FeatureMapKD()])
    hparams = {k: v for k, v in module.hparams.items() if k not in ("teacher_mode", "teacher_weights")}
    hparams["teacher_bn_mode"] = old  # what checkpoints written before teacher_mode hold
    state = {k: v for k, v in module.state_dict().items() if not k.startswith("teacher.")}
    torch.save(
        {"state_dict": state, "hyper_parameters": hparams, "pytorch-lightning_version": pl.__version__},
        tmp_path / "old.ckpt",
    )
    with pytest.warns(DeprecationWarning, match="teacher_bn_mode is deprecated"):
        loaded = ResKDModule.load_from_checkpoint(tmp_path / "old.ckpt", weights_only=False)  # pickled factories
    assert loaded.teacher_mode == new and loaded.teacher_weights == "all"
    assert (bn_training_flags(loaded.teacher), other_training_flags(loaded.teacher)) == (
        {TEACHER_MODE_FLAGS[new][0]}, {False}
    )
    assert torch.equal(loaded.student.cls_head.fc.weight, module.student.cls_head.fc.weight)


def test_teacher_not_saved_in_checkpoint(tmp_path: Path, quiet_trainer_kwargs: dict[str, Any]) -> None:
    module = reskd(distillers=[FeatureMapKD()])
    trainer = fit(module, quiet_trainer_kwargs)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    state = torch.load(tmp_path / "run.ckpt", weights_only=False)["state_dict"]
    assert not [k for k in state if k.startswith("teacher.")]
    assert any(k.startswith("student.") for k in state)

    kept = reskd(distillers=[FeatureMapKD()], save_teacher=True)
    trainer = fit(kept, quiet_trainer_kwargs)
    trainer.save_checkpoint(tmp_path / "with_teacher.ckpt")
    assert any(k.startswith("teacher.") for k in torch.load(tmp_path / "with_teacher.ckpt", weights_only=False)["state_dict"])


def test_checkpoint_restores_student_and_teacher_comes_from_teacher_ckpt(
    tmp_path: Path, quiet_trainer_kwargs: dict[str, Any]
) -> None:
    teacher = tsn()
    torch.save(teacher.state_dict(), tmp_path / "teacher.pth")
    module = reskd(teacher=tsn(), teacher_ckpt=str(tmp_path / "teacher.pth"), distillers=[FeatureMapKD()])
    for key, value in teacher.state_dict().items():
        assert torch.equal(module.teacher.state_dict()[key], value), key
    trainer = fit(module, quiet_trainer_kwargs)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    student_after_epoch_1 = {k: v.clone() for k, v in module.student.state_dict().items()}

    restored = reskd(teacher=tsn(), teacher_ckpt=str(tmp_path / "teacher.pth"), distillers=[FeatureMapKD()])
    restored.load_state_dict(torch.load(tmp_path / "run.ckpt", weights_only=False)["state_dict"])
    for key, value in student_after_epoch_1.items():
        assert torch.equal(restored.student.state_dict()[key], value), key
    for key, value in teacher.state_dict().items():
        if "running" not in key and "num_batches" not in key:  # BN statistics moved in train mode
            assert torch.equal(restored.teacher.state_dict()[key], value), key


def test_fit_resumes_from_checkpoint_path(tmp_path: Path, quiet_trainer_kwargs: dict[str, Any]) -> None:
    module = reskd(distillers=[FeatureMapKD()])
    trainer = fit(module, quiet_trainer_kwargs)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    resumed = reskd(distillers=[FeatureMapKD()])
    trainer = pl.Trainer(**{**quiet_trainer_kwargs, "max_epochs": 2, "limit_train_batches": 2, "limit_val_batches": 1})
    trainer.fit(resumed, datamodule=UserDataModule(), ckpt_path=tmp_path / "run.ckpt")
    assert trainer.global_step == 4


def test_load_state_dict_raises_on_non_teacher_missing_key() -> None:
    source = reskd(distillers=[FeatureMapKD()])
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("teacher.")}
    reskd(distillers=[FeatureMapKD()]).load_state_dict(state)  # teacher keys may be missing
    del state["student.cls_head.fc.weight"]
    message = (r"weights from checkpoint do not match ResKDModule:\n  missing keys \(1\): student.cls_head.fc.weight\n"
               r"  \(only teacher.\* keys may be missing and distill_modules.\* keys be extra\)$")  # fmt: skip
    with pytest.raises(RuntimeError, match=message):  # torch's error type (a WeightsMismatchError)
        reskd(distillers=[FeatureMapKD()]).load_state_dict(state)


def test_load_state_dict_raises_on_unexpected_key() -> None:
    state = dict(reskd().state_dict())
    state["student.extra.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match=r"do not match ResKDModule:\n  unexpected keys \(1\): student.extra.weight\n"):
        reskd().load_state_dict(state)
    del state["student.extra.weight"]
    state["student.cls_head.fc.bias"] = torch.zeros(7)
    with pytest.raises(RuntimeError, match=r"wrong shapes \(1\): student.cls_head.fc.bias: file \(7,\) vs model \(4,\)"):
        reskd().load_state_dict(state)
    reskd().load_state_dict({"student.extra.weight": torch.zeros(1)}, strict=False)  # not strict: no check


def test_teacher_ckpt_mismatch_names_file_and_keys(tmp_path: Path) -> None:
    torch.save(tsn("resnet34").state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match=r"r34.pth.*\n.*unexpected keys.*backbone.layer1.2") as err:
        reskd(teacher_ckpt=str(tmp_path / "r34.pth"))
    assert "missing" not in str(err.value)
    wrong_classes = TSN(7, backbone="resnet18")
    torch.save({"state_dict": {f"student.{k}": v for k, v in wrong_classes.state_dict().items()}}, tmp_path / "k7.ckpt")
    with pytest.raises(ValueError, match=r"wrong shapes.*cls_head.fc.weight: file \(7, 512\) vs model \(4, 512\)"):
        reskd(teacher_ckpt=str(tmp_path / "k7.ckpt"))


# ------------------------------------------------------------------------------- teacher_weights: backbone
def save_teacher_file(tmp_path: Path, num_classes: int, backbone: str = "resnet18") -> tuple[Path, TSN]:
    """A teacher-stage checkpoint (our Lightning layout, the network under ``student.``) of another class count."""
    teacher = TSN(num_classes, backbone=backbone, dropout=0.0, init_std=0.01)
    path = tmp_path / f"teacher_{backbone}_k{num_classes}.ckpt"
    torch.save({"state_dict": {f"student.{k}": v for k, v in teacher.state_dict().items()}}, path)
    return path, teacher


def test_teacher_weights_all_with_another_class_count_names_the_shapes_and_suggests_backbone(tmp_path: Path) -> None:
    path, _ = save_teacher_file(tmp_path, num_classes=7)
    with pytest.raises(ValueError) as err:
        reskd(teacher_ckpt=str(path), distillers=[FeatureMapKD()])
    message = str(err.value)
    assert f"weights from {path} do not match TSN" in message
    assert "cls_head.fc.weight: file (7, 512) vs model (4, 512)" in message
    assert "cls_head.fc.bias: file (7,) vs model (4,)" in message
    assert "set `teacher_weights: backbone` to load everything but the classifier" in message
    # A mismatch outside the classifier gets no such suggestion: it would not help.
    r34, _ = save_teacher_file(tmp_path, num_classes=NUM_CLASSES, backbone="resnet34")
    with pytest.raises(ValueError, match="unexpected keys") as err:
        reskd(teacher_ckpt=str(r34))
    assert "`teacher_weights: backbone`" not in str(err.value)


def test_teacher_weights_backbone_loads_every_key_but_the_classifier(tmp_path: Path) -> None:
    # official: mmaction/models/backbones/rkd.py:29-37 (CVMI-Lab/ResKD): the teacher is loaded from the
    # `backbone.*` keys of pretrained_t only (strict load_state_dict: each of them must fit).
    path, trained = save_teacher_file(tmp_path, num_classes=7)  # e.g. a Kinetics-400 teacher, 200 student classes
    teacher = tsn()
    initial_head = {k: v.clone() for k, v in teacher.cls_head.state_dict().items()}
    module = reskd(teacher=teacher, teacher_ckpt=str(path), teacher_weights="backbone", distillers=[FeatureMapKD()])
    assert module.teacher_weights == "backbone" and module.hparams["teacher_weights"] == "backbone"
    for key, value in trained.backbone.state_dict().items():
        assert torch.equal(module.teacher.backbone.state_dict()[key], value), key
    for key, value in initial_head.items():
        assert torch.equal(module.teacher.cls_head.state_dict()[key], value), key  # as initialised
    module.register_distiller(AttentionTransfer())  # reads feature maps only: fine
    # Every non-classifier key is still checked: another backbone, or a file without one of its keys, raises.
    r34, _ = save_teacher_file(tmp_path, num_classes=7, backbone="resnet34")
    with pytest.raises(ValueError, match=r"teacher_resnet34_k7.ckpt.*\n.*unexpected keys.*backbone.layer1.2"):
        reskd(teacher_ckpt=str(r34), teacher_weights="backbone")
    state = torch.load(path, weights_only=True)["state_dict"]
    del state["student.backbone.layer4.1.bn2.running_var"]
    torch.save({"state_dict": state}, tmp_path / "incomplete.ckpt")
    with pytest.raises(ValueError, match=r"missing keys \(1\): backbone.layer4.1.bn2.running_var"):
        reskd(teacher_ckpt=str(tmp_path / "incomplete.ckpt"), teacher_weights="backbone")


@pytest.mark.parametrize("make", [LogitKD, DecoupledKD, LogitMapKD])
def test_distillers_reading_the_teachers_classifier_are_refused_with_teacher_weights_backbone(
    make: type[DistillationLoss], tmp_path: Path
) -> None:
    distiller = make()
    name, option = distiller.name, "teacher_weights='backbone'"
    message = rf"distiller '{name}' \({make.__name__}\) reads the teacher's classifier .* {option}"
    with pytest.raises(ValueError, match=message):
        reskd(teacher_weights="backbone", distillers=[distiller])
    module = reskd(teacher_weights="backbone", distillers=[FeatureMapKD()])
    with pytest.raises(ValueError, match=message):
        module.register_distiller(make())  # what setup() does for a distiller given as a trainer callback
    assert [d.name for d in module.distillers] == ["feature_map_kd"]


def test_distillers_declare_whether_they_read_the_teachers_classifier() -> None:
    assert DistillationLoss.uses_teacher_logits is True  # a user's distiller is assumed to, unless it says not
    for cls in (LogitKD, DecoupledKD, LogitMapKD):
        assert cls.uses_teacher_logits is True, cls
    for cls in (FeatureMapKD, AttentionTransfer):
        assert cls.uses_teacher_logits is False, cls


def test_teacher_weights_backbone_needs_a_classifier_to_leave_out_and_a_known_value(tmp_path: Path) -> None:
    torch.save(UserTeacher().state_dict(), tmp_path / "user.pth")
    with pytest.raises(ValueError, match=r"teacher \(UserTeacher\) has no cls_head.\* keys; use teacher_weights: all"):
        ResKDModule(
            student=UserStudent(), teacher=UserTeacher(), num_classes=NUM_CLASSES, teacher_ckpt=str(tmp_path / "user.pth"),
            teacher_weights="backbone",
        )  # fmt: skip
    with pytest.raises(ValueError, match="teacher_weights must be 'all' or 'backbone', got 'head'"):
        reskd(teacher_weights="head")


# --------------------------------------------------------------------------------------------- the step
class RecordLoss(pl.Callback):
    def __init__(self) -> None:
        self.grad_norms: list[float] = []

    def on_after_backward(self, trainer: pl.Trainer, pl_module: ResKDModule) -> None:
        grads = [p.grad for p in pl_module.student.parameters() if p.grad is not None]
        self.grad_norms.append(float(torch.stack([g.float().norm() for g in grads]).norm()) if grads else 0.0)
        assert all(p.grad is None for p in pl_module.teacher.parameters())


def test_student_gets_gradients_with_teacher_under_no_grad_in_bf16_mixed(quiet_trainer_kwargs: dict[str, Any]) -> None:
    # Only the distillation term: the gradient the student gets must come through the teacher's targets.
    # 32/64 px: at 16 px ResNet-18's last stages see 1x1 maps and BatchNorm over 8 values, whose gradients
    # explode in any precision.
    module = reskd(distillers=[FeatureMapKD(weight=100.0)], student_resolution=32, teacher_resolution=64)
    recorder = RecordLoss()
    trainer = fit(module, quiet_trainer_kwargs, UserDataModule(size=64), precision="bf16-mixed", callbacks=[recorder])
    assert len(recorder.grad_norms) == 2 and all(0 < n < float("inf") for n in recorder.grad_norms)
    assert trainer.callback_metrics["train/distill/feature_map_kd_epoch"] > 0


def test_distillers_from_callbacks_are_registered_and_logged(quiet_trainer_kwargs: dict[str, Any]) -> None:
    module = reskd()
    trainer = fit(module, quiet_trainer_kwargs, callbacks=[FeatureMapKD(weight=10.0), LogitKD(temperature=2.0)])
    assert [d.name for d in module.distillers] == ["feature_map_kd", "logit_kd"]
    metrics = trainer.callback_metrics
    assert {"train/distill/feature_map_kd_epoch", "train/distill/logit_kd_epoch", "train/ce_epoch"} <= set(metrics)
    total = metrics["train/ce_epoch"] + 10.0 * metrics["train/distill/feature_map_kd_epoch"] + metrics[
        "train/distill/logit_kd_epoch"
    ]
    assert torch.isclose(metrics["train/loss_epoch"], total, rtol=1e-4)


def test_two_distillers_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two distillers are named 'feature_map_kd'"):
        reskd(distillers=[FeatureMapKD(), FeatureMapKD(weight=1.0)])
    module = reskd(distillers=[FeatureMapKD(name="fm_a"), FeatureMapKD(name="fm_b")])
    assert [d.state_key for d in module.distillers] == ["FeatureMapKD{'name': 'fm_a'}", "FeatureMapKD{'name': 'fm_b'}"]


def test_distiller_without_teacher_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a teacher"):
        ResKDModule(student=tsn(), num_classes=NUM_CLASSES, distillers=[FeatureMapKD()])


class EpochLosses(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.losses.append(float(trainer.callback_metrics["train/loss_epoch"]))


def test_plain_training_without_teacher_learns(quiet_trainer_kwargs: dict[str, Any]) -> None:
    module = ResKDModule(
        student=tsn(), num_classes=NUM_CLASSES, student_resolution=32,
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
    )
    record = EpochLosses()
    trainer = fit(module, quiet_trainer_kwargs, max_epochs=6, callbacks=[record])
    assert module.teacher is None and module.distillers == ()
    assert record.losses[-1] < 0.5 * record.losses[0], record.losses
    assert "val/acc1" in trainer.callback_metrics


# --------------------------------------------------------------------------------------- user's own script
class UserStudent(nn.Module):
    """A user's own network: returns (features, logits) like a VideoRecognizer."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, width, (1, 3, 3), stride=(1, 4, 4), padding=(0, 1, 1))
        self.bn = nn.BatchNorm3d(width)
        self.fc = nn.Linear(width, NUM_CLASSES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = torch.relu(self.bn(self.conv(x)))
        return features, self.fc(features.mean((2, 3, 4)))


class UserTeacher(UserStudent):
    def forward(self, x: Tensor) -> ModelOutput:  # the library's output type works too
        return ModelOutput(*super().forward(x))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_user_script_with_own_modules_and_datamodule(dtype: torch.dtype, quiet_trainer_kwargs: dict[str, Any]) -> None:
    module = ResKDModule(
        student=UserStudent(),
        teacher=UserTeacher(),
        num_classes=NUM_CLASSES,
        student_resolution=16,
        teacher_resolution=32,
        distillers=[FeatureMapKD(weight=100.0)],
    )
    seen: list[tuple[int, ...]] = []
    original = module.student.forward
    module.student.forward = lambda x: (seen.append(tuple(x.shape)), original(x))[1]  # type: ignore[method-assign]
    trainer = fit(module, quiet_trainer_kwargs, dm=UserDataModule(dtype))
    assert seen[0] == (4, 3, 2, 16, 16)  # the module made the student's view from batch["video"]
    assert float(trainer.callback_metrics["train/distill/feature_map_kd_epoch"]) > 0
    assert 0.0 <= float(trainer.callback_metrics["val/acc1"]) <= 1.0


def test_fit_with_video_datamodule_on_demo_videos(demo_root: Path, quiet_trainer_kwargs: dict[str, Any]) -> None:
    dm = VideoDataModule(
        demo_data=str(demo_root), num_segments=2, short_side=64, crop_size=64, resolutions=[64, 32],
        batch_size=4, num_workers=0,
    )
    module = reskd(student_resolution=32, teacher_resolution=64, distillers=[FeatureMapKD()])
    trainer = fit(module, quiet_trainer_kwargs, dm=dm, limit_val_batches=2)
    assert trainer.global_step == 2 and "val/acc1" in trainer.callback_metrics


def test_eval_probabilities_average_softmax_over_test_views() -> None:
    module = reskd(student_resolution=16).eval()
    video = torch.randn(2, 3, 3, 2, 16, 16)  # [N, V, C, T, H, W], already normalised
    probs = module.eval_probabilities({"video": video})
    with torch.no_grad():
        per_view = torch.stack([module.student(video[:, v]).logits.softmax(-1) for v in range(3)], 1)
    assert probs.shape == (2, NUM_CLASSES)
    assert torch.allclose(probs, per_view.mean(1), atol=1e-6)
    # One view: the student's softmax on its view, made from a uint8 video at student_resolution and kept in the
    # batch; what validation, test and predict score.
    batch = {"video": torch.randint(0, 256, (2, 3, 2, 32, 32), dtype=torch.uint8)}
    probs = module.eval_probabilities(batch)
    assert set(batch["clips"]) == {16} and batch["clips"][16].shape == (2, 3, 2, 16, 16)
    with torch.no_grad():
        assert torch.allclose(probs, module.student(batch["clips"][16]).logits.softmax(-1), atol=1e-6)
    assert module.predict_step(batch, 0)["probs"].equal(probs)


def test_export_student_writes_loadable_weights(tmp_path: Path) -> None:
    module = reskd()
    path = module.export_student(tmp_path / "student.pth")
    payload = torch.load(path, weights_only=True)
    assert payload["num_classes"] == NUM_CLASSES and payload["resolution"] == 16
    fresh = tsn()
    fresh.load_state_dict(payload["state_dict"])
    assert [p.name for p in tmp_path.iterdir()] == ["student.pth"]  # no temporary file left


def test_interrupted_saves_keep_the_previous_files(
    tmp_path: Path, quiet_trainer_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = reskd(distillers=[FeatureMapKD()])
    trainer = fit(module, quiet_trainer_kwargs)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    module.export_student(tmp_path / "student.pth")
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.*")}

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("interrupted while saving")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(tmp_path / "run.ckpt")
    with pytest.raises(KeyboardInterrupt):
        module.export_student(tmp_path / "student.pth")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.*")} == before  # untouched, no temporary left
    assert not list(tmp_path.glob(".*"))
    torch.load(tmp_path / "run.ckpt", weights_only=False)


def test_map_metric_scores_multi_hot_targets_and_accuracy_refuses_them() -> None:
    module = reskd(student_resolution=16, metric="mAP").eval()
    video = torch.randn(4, 3, 2, 16, 16)
    probs = module.eval_probabilities({"video": video})
    targets = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1]], dtype=torch.float32)
    module.validation_step({"video": video, "label": targets}, 0)
    # Macro AP by hand: per class, mean precision at the rank of each positive.
    aps = []
    for k in range(NUM_CLASSES):
        order = probs[:, k].argsort(descending=True)
        hits = targets[order, k]
        precision = hits.cumsum(0) / torch.arange(1, 5)
        aps.append((precision * hits).sum() / hits.sum())
    assert torch.allclose(module.val_metrics["mAP"].compute(), torch.stack(aps).mean(), atol=1e-6)
    # Class ids are one-hot targets for mAP; multi-hot targets are refused by accuracy, with the fix named.
    assert module._targets({"label": torch.tensor([2, 0])})[0].tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]
    with pytest.raises(ValueError, match="multi-label data .* are evaluated with metric: mAP"):
        reskd()._targets({"label": targets})
    with pytest.raises(ValueError, match="metric must be 'accuracy' or 'mAP', got 'top1'"):
        reskd(metric="top1")


# ------------------------------------------------------------------------------------------- student alone
def test_student_only_is_a_copy_of_the_student_without_teacher_distillers_or_taps() -> None:
    optimizer = functools.partial(torch.optim.AdamW, lr=1e-3)
    groups = ParamGroups(bias_lr_mult=2.0)
    module = reskd(
        distillers=[FeatureMapKD(stage="backbone.layer3")], optimizer=optimizer, label_smoothing=0.1,
        mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0), interpolation="bicubic", antialias=True, metric="mAP",
        param_groups=groups, lr_base_batch_size=32,
    ).eval()  # fmt: skip
    hooked = module.student.backbone.layer3
    assert len(hooked._forward_hooks) == 1  # the tap FeatureMapKD asked for

    alone = module.student_only()
    assert isinstance(alone, ResKDModule) and alone is not module
    assert alone.teacher is None and alone.distillers == () and len(alone.distill_modules) == 0
    assert alone.student is not module.student and type(alone.student) is TSN
    for (key, mine), theirs in zip(alone.student.state_dict().items(), module.student.state_dict().values()):
        assert torch.equal(mine, theirs) and mine.data_ptr() != theirs.data_ptr(), key
    assert not any(m._forward_hooks for m in alone.student.modules())  # the copy carries no tap
    assert len(hooked._forward_hooks) == 1 and module.distillers[0].name == "feature_map_kd_backbone_layer3"
    # The same step settings.
    for key in ("num_classes", "student_resolution", "teacher_resolution", "label_smoothing", "mean", "std",
                "interpolation", "antialias", "metric", "lr_base_batch_size"):  # fmt: skip
        assert alone.hparams[key] == module.hparams[key], key
    assert (alone.num_classes, alone.student_resolution, alone.teacher_resolution) == (NUM_CLASSES, 16, 32)
    assert alone.optimizer_factory is optimizer and alone.param_groups is groups and alone.label_smoothing == 0.1
    assert alone.view_options == module.view_options == dict(
        mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0), mode="bicubic", antialias=True
    )
    assert alone.metric == "mAP" and not alone.training  # this module's mode
    # It scores as the module does, and trains the student copy alone (the original's student is untouched).
    video = torch.randint(0, 256, (2, 3, 2, 32, 32), dtype=torch.uint8)
    assert torch.equal(alone.eval_probabilities({"video": video}), module.eval_probabilities({"video": video}))
    before = module.student.cls_head.fc.weight.clone()
    alone.train().training_step({"video": video, "label": torch.tensor([0, 1])}, 0).backward()
    assert alone.student.cls_head.fc.weight.grad is not None and module.student.cls_head.fc.weight.grad is None
    assert torch.equal(module.student.cls_head.fc.weight, before) and not module.training
    # The module's tap, taken off for the copy and put back, still hands its map to the distiller.
    module.train().training_step({"video": video, "label": torch.tensor([0, 1])}, 0)
    assert len(hooked._forward_hooks) == 1


def test_a_student_above_the_teachers_resolution_is_refused_unless_asked() -> None:
    # ResKD teaches a low-resolution student from a high-resolution teacher: 224 -> 112 swapped is a config slip.
    with pytest.raises(ValueError, match="student_resolution 224 is above teacher_resolution 112: .* swap the two"):
        ResKDModule(student=TSN(3, backbone="resnet18"), teacher=TSN(3, backbone="resnet18"), num_classes=3,
                    student_resolution=224, teacher_resolution=112)  # fmt: skip
    upwards = ResKDModule(
        student=TSN(3, backbone="resnet18"), teacher=TSN(3, backbone="resnet18"), num_classes=3,
        student_resolution=224, teacher_resolution=112, allow_student_above_teacher=True,
    )  # fmt: skip
    assert (upwards.student_resolution, upwards.teacher_resolution) == (224, 112)
    # without a teacher there is nothing to compare: a teacher stage at 256 px is fine
    assert ResKDModule(student=TSN(3, backbone="resnet18"), num_classes=3, student_resolution=256).teacher is None
