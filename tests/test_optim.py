"""Optimiser side of the paper's recipes: parameter groups, lr scaling and the warm-up LR schedules."""

from __future__ import annotations

import math
from functools import partial
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import torch
from jsonargparse import ArgumentParser
from pytorch_lightning.cli import LRSchedulerCallable
from torch import nn

from reskd_lightning import ResKDModule
from reskd_lightning.models import TSN
from reskd_lightning.optim import (
    ParamGroups,
    WarmupCosineLR,
    WarmupMultiStepLR,
    apply_group_multipliers,
    linear_scaled_lr_factor,
)

PAPER_CNN_GROUPS = ParamGroups(bias_lr_mult=2.0, bias_decay_mult=0.0, norm_decay_mult=0.0)
SWIN_NO_DECAY = ["relative_position_bias_table", "absolute_pos_embed"]


class WindowAttention(nn.Module):
    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.relative_position_bias_table = nn.Parameter(torch.zeros(3, 2))
        self.qkv = nn.Linear(dim, 3 * dim)


class Block(nn.Module):
    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim)


class TinySwin(nn.Module):
    """A Swin-shaped network: ``backbone.`` with a LayerNorm and a relative position table, then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.patch_embed = nn.Linear(4, 8)
        self.backbone.block = Block(8)
        self.head = nn.Linear(8, 4)


def multipliers_by_name(groups: list[dict], modules: dict[str, nn.Module]) -> dict[str, tuple[float, float]]:
    """``"<module>/<parameter name>" -> (lr_mult, decay_mult)`` of the groups, asserting each appears once."""
    by_id = {}
    for group in groups:
        for p in group["params"]:
            assert id(p) not in by_id, "a parameter is in two groups"
            by_id[id(p)] = (group["lr_mult"], group["decay_mult"])
    return {
        f"{key}/{name}": by_id[id(p)] for key, m in modules.items() for name, p in m.named_parameters() if id(p) in by_id
    }


def lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    return [group["lr"] for group in optimizer.param_groups]


# ------------------------------------------------------------------------------------------ parameter groups
def test_paper_cnn_rules_on_resnet_tsn() -> None:
    model = TSN(10, backbone="resnet18")
    groups = PAPER_CNN_GROUPS({"student": model})

    assert [g["name"] for g in groups] == ["lr x1, wd x1", "lr x1, wd x0", "lr x2, wd x0"]
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each trainable parameter exactly once
    mults = multipliers_by_name(groups, {"student": model})
    assert mults["student/cls_head.fc.bias"] == (2.0, 0.0)
    assert mults["student/cls_head.fc.weight"] == (1.0, 1.0)
    assert mults["student/backbone.conv1.weight"] == (1.0, 1.0)
    assert mults["student/backbone.layer3.1.conv2.weight"] == (1.0, 1.0)
    assert mults["student/backbone.bn1.weight"] == (1.0, 0.0)
    assert mults["student/backbone.layer4.1.bn2.bias"] == (1.0, 0.0)  # a norm's bias: the norm rule wins
    assert groups[2]["params"] == [model.cls_head.fc.bias]  # resnet convs have no bias


def test_default_param_groups_put_everything_in_one_group() -> None:
    model = TinySwin()
    groups = ParamGroups()({"student": model})
    assert len(groups) == 1 and groups[0]["name"] == "lr x1, wd x1"
    assert groups[0]["params"] == list(model.parameters())


def test_frozen_parameters_are_left_out() -> None:
    model = TSN(10, backbone="resnet18")
    model.backbone.conv1.requires_grad_(False)
    model.backbone.bn1.requires_grad_(False)
    groups = PAPER_CNN_GROUPS({"student": model})
    grouped = {id(p) for g in groups for p in g["params"]}
    assert id(model.backbone.conv1.weight) not in grouped and id(model.backbone.bn1.bias) not in grouped
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}


def test_shared_parameters_appear_once() -> None:
    encoder, decoder = nn.Linear(4, 4), nn.Linear(4, 4)
    decoder.weight = encoder.weight  # tied weights
    tied = nn.Sequential(encoder, decoder)
    groups = PAPER_CNN_GROUPS({"student": tied, "again": tied})
    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == 3 and {id(p) for p in grouped} == {id(p) for p in tied.parameters()}


def test_swin_rules_no_decay_keys_norms_and_backbone_lr() -> None:
    model, adapter = TinySwin(), nn.ModuleList([nn.Linear(8, 8)])
    modules = {"student": model, "distill_modules": adapter}
    rules = ParamGroups(norm_decay_mult=0.0, no_decay_keys=SWIN_NO_DECAY, lr_mults={"backbone.": 0.1})
    groups = rules(modules)

    assert multipliers_by_name(groups, modules) == {
        "student/backbone.patch_embed.weight": (0.1, 1.0),
        "student/backbone.patch_embed.bias": (0.1, 1.0),
        "student/backbone.block.norm.weight": (0.1, 0.0),
        "student/backbone.block.norm.bias": (0.1, 0.0),
        "student/backbone.block.attn.relative_position_bias_table": (0.1, 0.0),
        "student/backbone.block.attn.qkv.weight": (0.1, 1.0),
        "student/backbone.block.attn.qkv.bias": (0.1, 1.0),
        "student/head.weight": (1.0, 1.0),
        "student/head.bias": (1.0, 1.0),
        # prefixes are matched within each module: the adapter's "0.weight" is not under "backbone."
        "distill_modules/0.weight": (1.0, 1.0),
        "distill_modules/0.bias": (1.0, 1.0),
    }
    assert [g["name"] for g in groups] == ["lr x0.1, wd x1", "lr x0.1, wd x0", "lr x1, wd x1"]


#: The official Swin paramwise_cfg (configs/myconfig/rkd/rkd_swins_32x2x1_60e_k400.py:96-100, CVMI-Lab/ResKD).
OFFICIAL_SWIN_KEYS = {
    "absolute_pos_embed": {"decay_mult": 0.0},
    "relative_position_bias_table": {"decay_mult": 0.0},
    "norm": {"decay_mult": 0.0},
    "backbone": {"lr_mult": 0.1},
}


def test_custom_keys_resolve_as_mmcv_default_optimizer_constructor() -> None:
    # mmcv v1.4.0 mmcv/runner/optimizer/default_constructor.py:155 sorts the keys longest first (alphabetically
    # within a length) and lines 181-190 stop at the first key the name contains; no other rule then applies.
    # So a backbone norm meets "backbone" (8 letters) before "norm" (4): lr x0.1 and weight decay KEPT, and a
    # position table meets "relative_position_bias_table" first: lr x1 (not x0.1) and no weight decay.
    model, adapter = TinySwin(), nn.ModuleList([nn.Linear(8, 8)])
    modules = {"student": model, "distill_modules": adapter}
    rules = ParamGroups(bias_lr_mult=2.0, norm_decay_mult=0.0, custom_keys=OFFICIAL_SWIN_KEYS)
    assert rules.custom_key_order() == ["relative_position_bias_table", "absolute_pos_embed", "backbone", "norm"]
    assert multipliers_by_name(rules(modules), modules) == {
        "student/backbone.patch_embed.weight": (0.1, 1.0),
        "student/backbone.patch_embed.bias": (0.1, 1.0),  # bias_lr_mult does not apply to a custom match
        "student/backbone.block.norm.weight": (0.1, 1.0),
        "student/backbone.block.norm.bias": (0.1, 1.0),
        "student/backbone.block.attn.relative_position_bias_table": (1.0, 0.0),
        "student/backbone.block.attn.qkv.weight": (0.1, 1.0),
        "student/backbone.block.attn.qkv.bias": (0.1, 1.0),
        "student/head.weight": (1.0, 1.0),
        "student/head.bias": (2.0, 1.0),  # no key matches: the ordinary rules
        "distill_modules/0.weight": (1.0, 1.0),
        "distill_modules/0.bias": (2.0, 1.0),
    }


def test_custom_keys_tie_breaks_alphabetically() -> None:
    rules = ParamGroups(custom_keys={"blockb": {"lr_mult": 3.0}, "blocka": {"lr_mult": 2.0}, "block": {}})
    assert rules.custom_key_order() == ["blocka", "blockb", "block"]


def test_custom_keys_are_validated() -> None:
    with pytest.raises(ValueError, match=r"custom_keys\['norm'\] has unknown entries \['decay'\]"):
        ParamGroups(custom_keys={"norm": {"decay": 0.0}})
    with pytest.raises(ValueError, match=r"custom_keys\['backbone'\].lr_mult must be a number >= 0, got -1"):
        ParamGroups(custom_keys={"backbone": {"lr_mult": -1}})


def test_longest_lr_prefix_wins_and_multiplies_with_bias_rule() -> None:
    model = TinySwin()
    rules = ParamGroups(bias_lr_mult=2.0, lr_mults={"backbone.": 0.1, "backbone.block.attn.": 0.5})
    mults = multipliers_by_name(rules({"student": model}), {"student": model})
    assert mults["student/backbone.block.attn.qkv.weight"] == (0.5, 1.0)
    assert mults["student/backbone.block.attn.qkv.bias"] == (1.0, 1.0)  # 2 x 0.5
    assert mults["student/backbone.block.attn.relative_position_bias_table"] == (0.5, 1.0)
    assert mults["student/backbone.patch_embed.bias"] == pytest.approx((0.2, 1.0))  # 2 x 0.1
    assert mults["student/backbone.block.norm.bias"] == (0.1, 1.0)  # norms keep lr x1 before the prefix rule
    assert mults["student/head.bias"] == (2.0, 1.0)


def test_lr_prefix_matching_no_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lr_mults prefixes \['backbone_'\] match no parameter"):
        ParamGroups(lr_mults={"backbone_": 0.1})({"student": TinySwin()})


# ------------------------------------------------------------------------------------------ multipliers and lr scaling
def test_sgd_groups_hold_scaled_lr_and_weight_decay_after_apply() -> None:
    model = TSN(10, backbone="resnet18")
    optimizer = torch.optim.SGD(PAPER_CNN_GROUPS({"student": model}), lr=0.01, momentum=0.9, weight_decay=1e-4)
    apply_group_multipliers(optimizer, lr_scale=0.125)

    # 0.01 x 0.125 = 0.00125; the bias group: x 2 = 0.0025; decay 1e-4 x 1 or x 0.
    got = {g["name"]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    assert got == {"lr x1, wd x1": (0.00125, 1e-4), "lr x1, wd x0": (0.00125, 0.0), "lr x2, wd x0": (0.0025, 0.0)}
    assert all("lr_mult" not in g and "decay_mult" not in g for g in optimizer.param_groups)
    assert all(g["momentum"] == 0.9 for g in optimizer.param_groups)

    apply_group_multipliers(optimizer)  # the multipliers are spent: nothing changes
    assert {g["name"]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups} == got


def test_plain_groups_get_only_the_lr_scale() -> None:
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.01, weight_decay=1e-4)
    apply_group_multipliers(optimizer, lr_scale=0.5)
    assert lrs(optimizer) == [0.005] and optimizer.param_groups[0]["weight_decay"] == 1e-4


def test_multipliers_after_a_scheduler_are_refused() -> None:
    optimizer = torch.optim.SGD(ParamGroups(bias_lr_mult=2.0)({"m": nn.Linear(2, 2)}), lr=0.01)
    WarmupMultiStepLR(optimizer, milestones=[3])
    with pytest.raises(ValueError, match=r"param group 0 already has initial_lr=0.01"):
        apply_group_multipliers(optimizer)


def test_linear_scaling_rule() -> None:
    assert linear_scaled_lr_factor(64, 16) == 0.25  # the paper's lr 0.01 is for 8 GPUs x 8 videos
    assert linear_scaled_lr_factor(64, 128) == 2.0


# ------------------------------------------------------------------------------------------ LR schedules
def run_epochs(scheduler: torch.optim.lr_scheduler.LRScheduler, epochs: int) -> list[float]:
    """The first group's lr in each of ``epochs`` epochs, stepping the scheduler at each epoch's end."""
    seen = []
    for _ in range(epochs):
        seen.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return seen


def sgd(lr: float = 0.01) -> torch.optim.SGD:
    return torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def test_warmup_multistep_follows_the_slowonly_k400_recipe() -> None:
    seen = run_epochs(WarmupMultiStepLR(sgd(0.01), milestones=[90, 130], warmup_epochs=10), 150)
    # warm-up factor 1 - (1 - 0.1) * (1 - e / 10): e=0 -> 0.1, e=5 -> 1 - 0.9 * 0.5 = 0.55, e=9 -> 1 - 0.09 = 0.91
    assert seen[0] == pytest.approx(0.001) and seen[5] == pytest.approx(0.0055) and seen[9] == pytest.approx(0.0091)
    assert seen[10] == pytest.approx(0.01) and seen[89] == pytest.approx(0.01)
    assert seen[90] == pytest.approx(0.001) and seen[129] == pytest.approx(0.001)  # 0.1 ** 1
    assert seen[130] == pytest.approx(0.0001) and seen[149] == pytest.approx(0.0001)  # 0.1 ** 2


def test_warmup_multiplies_a_milestone_inside_it() -> None:
    seen = run_epochs(WarmupMultiStepLR(sgd(1.0), milestones=[1], gamma=0.5, warmup_epochs=2), 3)
    # e=0: 1 x (1 - 0.9 x 1) = 0.1; e=1: 0.5 x (1 - 0.9 x 0.5) = 0.5 x 0.55 = 0.275; e=2: 0.5
    assert seen == pytest.approx([0.1, 0.275, 0.5])


def test_warmup_cosine_with_fractional_warmup() -> None:
    seen = run_epochs(WarmupCosineLR(sgd(1.0), max_epochs=10, warmup_epochs=2.5), 13)
    # e=0: cosine 1,                                 warm-up 1 - 0.9 x (1 - 0/2.5) = 0.1   -> 0.1
    # e=1: cosine 0.5 x (1 + cos(pi/10)) = 0.97553,  warm-up 1 - 0.9 x (1 - 1/2.5) = 0.46  -> 0.44874
    # e=2: cosine 0.5 x (1 + cos(pi/5))  = 0.90451,  warm-up 1 - 0.9 x (1 - 2/2.5) = 0.82  -> 0.74170
    # e=3: cosine 0.5 x (1 + cos(3pi/10)) = 0.79389, no warm-up; e=5: 0.5; e=10 and after: 0
    expected = [0.1, 0.448743, 0.741697, 0.793893, 0.654508, 0.5]
    assert seen[:6] == pytest.approx(expected, abs=1e-6)
    assert seen[10:] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)


def test_warmup_cosine_floor_and_no_warmup() -> None:
    seen = run_epochs(WarmupCosineLR(sgd(1.0), max_epochs=4, eta_min_factor=0.1), 6)
    # 0.1 + 0.9 x 0.5 x (1 + cos(pi e / 4)): e=0 -> 1, e=1 -> 0.1 + 0.9 x 0.85355 = 0.86820, e=2 -> 0.55, e>=4 -> 0.1
    assert seen == pytest.approx([1.0, 0.868198, 0.55, 0.231802, 0.1, 0.1], abs=1e-6)


def test_warmup_moves_every_iteration_as_mmcv() -> None:
    # mmcv v1.4.0 mmcv/runner/hooks/lr_updater.py:129 sets warmup_iters = warmup_epochs x epoch length and
    # lines 137-155 apply the warm-up at every iteration (on the epoch's regular lr) until warmup_iters;
    # lines 91-92: factor 1 - (1 - cur_iter / warmup_iters) x (1 - warmup_ratio), warmup_ratio 0.1.
    scheduler = WarmupCosineLR(sgd(1.0), max_epochs=10, warmup_epochs=2.5)
    scheduler.step_per_iteration(4)  # 4 optimiser steps an epoch: warmup_iters = 10
    seen = run_epochs(scheduler, 16)  # here one "epoch" of run_epochs is one iteration
    cosine = [0.5 * (1 + math.cos(math.pi * e / 10)) for e in range(4)]
    expected = [cosine[i // 4] * (1 - 0.9 * (1 - i / 10)) if i < 10 else cosine[i // 4] for i in range(16)]
    assert seen == pytest.approx(expected, abs=1e-9)
    assert seen[1] == pytest.approx(0.19)  # iteration 1 of 10: 1 - 0.9 x 0.9, inside epoch 0 (cosine 1)


def test_steps_per_epoch_is_set_before_stepping() -> None:
    scheduler = WarmupMultiStepLR(sgd(), milestones=[3], warmup_epochs=1)
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive integer, got 0"):
        scheduler.step_per_iteration(0)
    scheduler.optimizer.step()
    scheduler.step()
    with pytest.raises(RuntimeError, match="before the schedule has stepped"):
        scheduler.step_per_iteration(4)


def test_schedule_starts_from_the_multiplied_group_lrs() -> None:
    optimizer = sgd(0.01)
    optimizer.add_param_group({"params": [nn.Parameter(torch.zeros(1))], "lr_mult": 2.0, "decay_mult": 0.0})
    apply_group_multipliers(optimizer, lr_scale=0.5)
    scheduler = WarmupMultiStepLR(optimizer, milestones=[2], warmup_epochs=1)
    assert lrs(optimizer) == pytest.approx([0.0005, 0.001])  # warm-up x0.1 of 0.005 and 0.01
    optimizer.step()
    scheduler.step()
    assert lrs(optimizer) == pytest.approx([0.005, 0.01])


@pytest.mark.parametrize(
    "make",
    [
        lambda opt: WarmupMultiStepLR(opt, milestones=[3, 5], warmup_epochs=2),
        lambda opt: WarmupCosineLR(opt, max_epochs=8, warmup_epochs=2.5, eta_min_factor=0.01),
    ],
)
def test_schedule_resumes_from_state_dict(make: Callable[[torch.optim.Optimizer], Any]) -> None:
    uninterrupted = run_epochs(make(sgd()), 8)
    first = make(sgd())
    run_epochs(first, 4)
    state = first.state_dict()
    optimizer = sgd()
    resumed = make(optimizer)
    optimizer.load_state_dict(first.optimizer.state_dict())
    resumed.load_state_dict(state)
    assert run_epochs(resumed, 4) == pytest.approx(uninterrupted[4:])


# ------------------------------------------------------------------------------------------ LightningCLI configs
class RecipeModel:
    """Stands for the LightningModule: the argument types ResKDModule uses."""

    def __init__(self, param_groups: ParamGroups | None = None, lr_scheduler: LRSchedulerCallable | None = None):
        self.param_groups, self.lr_scheduler = param_groups, lr_scheduler


@pytest.mark.parametrize(
    "scheduler_yaml, cls, attrs",
    [
        (
            "{class_path: reskd_lightning.optim.WarmupMultiStepLR, init_args: {milestones: [90, 130], warmup_epochs: 10}}",
            WarmupMultiStepLR,
            {"milestones": [90, 130], "warmup_epochs": 10, "gamma": 0.1},
        ),
        (
            "{class_path: reskd_lightning.optim.WarmupCosineLR, init_args: {max_epochs: 30, warmup_epochs: 2.5}}",
            WarmupCosineLR,
            {"max_epochs": 30, "warmup_epochs": 2.5, "eta_min_factor": 0.0},
        ),
    ],
)
def test_yaml_configures_param_groups_and_scheduler(scheduler_yaml: str, cls: type, attrs: dict[str, Any]) -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(RecipeModel, "model")
    config = parser.parse_string(
        "model:\n"
        "  param_groups: {bias_lr_mult: 2.0, bias_decay_mult: 0.0, norm_decay_mult: 0.0}\n"
        f"  lr_scheduler: {scheduler_yaml}\n"
    )
    model = parser.instantiate(config).model

    assert model.param_groups == PAPER_CNN_GROUPS
    optimizer = torch.optim.SGD(model.param_groups({"student": TSN(10, backbone="resnet18")}), lr=0.01)
    scheduler = model.lr_scheduler(optimizer)
    assert type(scheduler) is cls and scheduler.optimizer is optimizer
    assert {key: getattr(scheduler, key) for key in attrs} == attrs


def test_yaml_swin_param_groups_via_optional_argument() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--param_groups", type=ParamGroups | None)
    config = parser.parse_string(
        "param_groups:\n"
        "  norm_decay_mult: 0.0\n"
        "  no_decay_keys: [relative_position_bias_table, absolute_pos_embed]\n"
        '  lr_mults: {"backbone.": 0.1}\n'
    )
    groups = parser.instantiate(config).param_groups
    assert groups == ParamGroups(norm_decay_mult=0.0, no_decay_keys=SWIN_NO_DECAY, lr_mults={"backbone.": 0.1})
    assert parser.instantiate(parser.parse_string("param_groups: null")).param_groups is None


def test_module_builds_groups_scaled_lrs_and_epoch_schedule() -> None:
    module = ResKDModule(
        student=TSN(4, backbone="resnet18"),
        num_classes=4,
        param_groups=PAPER_CNN_GROUPS,
        lr_scheduler=partial(WarmupMultiStepLR, milestones=[90, 130], warmup_epochs=10),
    )
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]
    assert isinstance(scheduler["scheduler"], WarmupMultiStepLR) and scheduler["interval"] == "epoch"
    # the paper's SGD (lr 0.01, wd 1e-4), then the first warm-up epoch's factor 0.1
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == pytest.approx(
        {"lr x1, wd x1": 0.001, "lr x1, wd x0": 0.001, "lr x2, wd x0": 0.002}
    )
    assert {g["name"]: g["weight_decay"] for g in optimizer.param_groups} == {
        "lr x1, wd x1": 1e-4,
        "lr x1, wd x0": 0.0,
        "lr x2, wd x0": 0.0,
    }


def test_module_steps_a_warmup_schedule_per_iteration() -> None:
    module = ResKDModule(
        student=TSN(4, backbone="resnet18"),
        num_classes=4,
        lr_scheduler=partial(WarmupCosineLR, max_epochs=5, warmup_epochs=2.5),
    )
    # a trainer with 5 epochs of 12 optimiser steps
    module._trainer = SimpleNamespace(max_epochs=5, estimated_stepping_batches=60)  # type: ignore[assignment]
    try:
        config = module.configure_optimizers()
    finally:
        module._trainer = None
    scheduler = config["lr_scheduler"]
    assert scheduler["interval"] == "step" and scheduler["scheduler"].steps_per_epoch == 12


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ParamGroups(bias_lr_mult=-1.0), r"bias_lr_mult must be a number >= 0, got -1.0"),
        (lambda: ParamGroups(bias_decay_mult=-0.5), r"bias_decay_mult must be a number >= 0, got -0.5"),
        (lambda: ParamGroups(norm_decay_mult=-2), r"norm_decay_mult must be a number >= 0, got -2"),
        (lambda: ParamGroups(norm_decay_mult=math.nan), r"norm_decay_mult must be a number >= 0, got nan"),
        (lambda: ParamGroups(lr_mults={"backbone.": -0.1}), r"lr_mults\['backbone.'\] must be a number >= 0, got -0.1"),
        (
            lambda: ParamGroups(no_decay_keys="relative_position_bias_table"),  # type: ignore[arg-type]
            r"no_decay_keys must be a list of non-empty name substrings, got 'relative_position_bias_table'",
        ),
        (lambda: ParamGroups(no_decay_keys=[""]), r"no_decay_keys must be a list .*, got \[''\]"),
        (lambda: apply_group_multipliers(sgd(), lr_scale=0), r"lr_scale must be a number > 0, got 0"),
        (lambda: apply_group_multipliers(sgd(), lr_scale=-0.5), r"lr_scale must be a number > 0, got -0.5"),
        (lambda: linear_scaled_lr_factor(0, 64), r"base_batch_size must be a positive number of videos, got 0"),
        (lambda: linear_scaled_lr_factor(64, -8), r"global_batch_size must be a positive number of videos, got -8"),
        (lambda: linear_scaled_lr_factor(64, 6.4), r"global_batch_size must be a positive number of videos, got 6.4"),
        (
            lambda: WarmupMultiStepLR(sgd(), milestones=[130, 90]),
            r"milestones must be strictly increasing positive epochs, got \[130, 90\]",
        ),
        (lambda: WarmupMultiStepLR(sgd(), milestones=[90, 90]), r"strictly increasing .*, got \[90, 90\]"),
        (lambda: WarmupMultiStepLR(sgd(), milestones=[0, 90]), r"positive epochs, got \[0, 90\]"),
        (lambda: WarmupMultiStepLR(sgd(), milestones=[90], gamma=0), r"gamma must be > 0, got 0"),
        (lambda: WarmupMultiStepLR(sgd(), [90], warmup_epochs=-1), r"warmup_epochs must be >= 0, got -1"),
        (lambda: WarmupMultiStepLR(sgd(), [90], warmup_start_factor=0), r"warmup_start_factor must be in \(0, 1\], got 0"),
        (lambda: WarmupCosineLR(sgd(), max_epochs=0), r"max_epochs must be a positive number of epochs, got 0"),
        (lambda: WarmupCosineLR(sgd(), 10, warmup_start_factor=1.5), r"warmup_start_factor must be in \(0, 1\], got 1.5"),
        (lambda: WarmupCosineLR(sgd(), 10, warmup_epochs=12), r"warmup_epochs must be <= max_epochs=10, got 12"),
        (lambda: WarmupCosineLR(sgd(), 10, eta_min_factor=1.5), r"eta_min_factor must be in \[0, 1\], got 1.5"),
    ],
)
def test_invalid_arguments_are_refused_with_the_value(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
