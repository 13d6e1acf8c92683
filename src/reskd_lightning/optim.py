"""Optimiser and schedule defaults of the paper's recipes: SGD, parameter groups, lr scaling, warm-up schedules."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

#: Layers whose parameters (weight and bias) follow ``ParamGroups.norm_decay_mult``.
NORM_LAYERS: tuple[type[nn.Module], ...] = (_BatchNorm, nn.GroupNorm, nn.LayerNorm, _InstanceNorm)


def paper_sgd(
    params: Iterable[nn.Parameter] | Iterable[dict],
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> torch.optim.SGD:
    """SGD as in the paper's code: lr 0.01 (per 64 videos), momentum 0.9, weight decay 1e-4."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def cosine_per_epoch(optimizer: torch.optim.Optimizer, max_epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine annealing to 0 over ``max_epochs``, stepped once per epoch (mmaction2's ``CosineAnnealing``)."""
    if max_epochs <= 0:
        raise ValueError(f"a cosine schedule needs a positive number of epochs, got max_epochs={max_epochs}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: 0.5 * (1.0 + math.cos(math.pi * min(epoch, max_epochs) / max_epochs))
    )


# ------------------------------------------------------------------------------------------ parameter groups
def _check_multiplier(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:  # `not >=` catches nan
        raise ValueError(f"ParamGroups: {name} must be a number >= 0, got {value!r}")


def _mult_str(value: float) -> str:
    return f"{value:g}"


@dataclass
class ParamGroups:
    """How a network's parameters are split into optimiser groups, each with an lr and a weight-decay multiplier.

    The rules of the paper's mmaction2 code (``TSMOptimizerConstructor``) and of mmaction2's Swin
    ``paramwise_cfg``, applied to every trainable parameter:

    - biases (parameters named ``bias``) of non-norm layers (conv, linear): ``bias_lr_mult``, ``bias_decay_mult``;
    - every parameter of a normalisation layer (BatchNorm, GroupNorm, LayerNorm, InstanceNorm), bias included:
      lr x1 and ``norm_decay_mult``;
    - a parameter whose name contains one of ``no_decay_keys``: no weight decay (a key absent from the network
      is allowed: recipes list keys for several model variants);
    - ``lr_mults``: parameter-name prefix -> lr multiplier, the longest matching prefix wins, multiplied with the
      rules above (every prefix must match some parameter, so a typo cannot silently leave the lr unscaled);
    - ``custom_keys``: mmcv 1.x's ``DefaultOptimizerConstructor`` rule, which the paper's Swin recipes use: name
      substring -> ``{lr_mult, decay_mult}`` (each default 1). The keys are tried longest first (ties
      alphabetically) and the FIRST key the parameter's name contains decides both multipliers; the rules above
      are then not applied to it. So with the official keys ``backbone``, ``norm`` and
      ``relative_position_bias_table``, a backbone norm matches ``backbone`` (lr x0.1, weight decay kept) and a
      position table ``relative_position_bias_table`` (lr x1, no weight decay), exactly as mmcv resolves them.
      As in mmcv, a key that matches nothing is allowed (the official list names ``absolute_pos_embed``, which a
      Video Swin without absolute position embedding does not have).

    Names are matched within their module, e.g. ``backbone.layer1.0.conv1.weight`` in the student. The multipliers
    are applied to the optimiser's lr and weight decay by :func:`apply_group_multipliers`. ``ParamGroups()``
    puts everything in one group.

    Configure from LightningCLI (the paper's CNN recipes)::

        model:
          param_groups: {bias_lr_mult: 2.0, bias_decay_mult: 0.0, norm_decay_mult: 0.0}

    and the Swin recipes::

        model:
          param_groups:
            norm_decay_mult: 0.0
            no_decay_keys: [relative_position_bias_table, absolute_pos_embed]
            custom_keys:  # mmcv's paramwise_cfg.custom_keys, resolved as mmcv 1.4 does
              backbone: {lr_mult: 0.1}
              relative_position_bias_table: {decay_mult: 0.0}
              absolute_pos_embed: {decay_mult: 0.0}
              norm: {decay_mult: 0.0}
    """

    bias_lr_mult: float = 1.0
    bias_decay_mult: float = 1.0
    norm_decay_mult: float = 1.0
    no_decay_keys: list[str] = field(default_factory=list)
    lr_mults: dict[str, float] = field(default_factory=dict)
    custom_keys: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("bias_lr_mult", "bias_decay_mult", "norm_decay_mult"):
            _check_multiplier(name, getattr(self, name))
        if isinstance(self.no_decay_keys, str) or not all(isinstance(k, str) and k for k in self.no_decay_keys):
            raise ValueError(
                f"ParamGroups: no_decay_keys must be a list of non-empty name substrings, got {self.no_decay_keys!r}"
            )
        if not isinstance(self.lr_mults, Mapping):
            raise ValueError(f"ParamGroups: lr_mults must map name prefixes to multipliers, got {self.lr_mults!r}")
        for prefix, mult in self.lr_mults.items():
            if not isinstance(prefix, str):
                raise ValueError(f"ParamGroups: lr_mults keys must be name prefixes (str), got {prefix!r}")
            _check_multiplier(f"lr_mults[{prefix!r}]", mult)
        if not isinstance(self.custom_keys, Mapping):
            raise ValueError(
                f"ParamGroups: custom_keys must map name substrings to {{lr_mult, decay_mult}}, got {self.custom_keys!r}"
            )
        for key, mults in self.custom_keys.items():
            if not isinstance(key, str) or not key or not isinstance(mults, Mapping):
                raise ValueError(
                    f"ParamGroups: custom_keys[{key!r}] must be a non-empty name substring mapped to "
                    f"{{lr_mult, decay_mult}}, got {mults!r}"
                )
            unknown = set(mults) - {"lr_mult", "decay_mult"}
            if unknown:
                raise ValueError(
                    f"ParamGroups: custom_keys[{key!r}] has unknown entries {sorted(unknown)}; "
                    "expected lr_mult and/or decay_mult"
                )
            for entry, mult in mults.items():
                _check_multiplier(f"custom_keys[{key!r}].{entry}", mult)

    def __call__(self, modules: Mapping[str, nn.Module]) -> list[dict]:
        """Optimiser parameter groups of the trainable parameters of ``modules`` (name -> module).

        Returns one dict per distinct ``(lr_mult, decay_mult)``, in order of first appearance:
        ``{"params": [...], "lr_mult": 2.0, "decay_mult": 0.0, "name": "lr x2, wd x0"}``. Each parameter appears
        once, even when shared; parameters with ``requires_grad=False`` are left out.
        """
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        seen: set[int] = set()
        names: list[str] = []  # all parameter names, frozen included, to report an unmatched lr_mults prefix
        for module in modules.values():
            for module_name, layer in module.named_modules():
                is_norm = isinstance(layer, NORM_LAYERS)
                for local_name, param in layer.named_parameters(recurse=False):
                    name = f"{module_name}.{local_name}" if module_name else local_name
                    names.append(name)
                    if not param.requires_grad or id(param) in seen:
                        continue
                    seen.add(id(param))
                    groups.setdefault(self._multipliers(name, local_name, is_norm), []).append(param)
        unmatched = [p for p in self.lr_mults if not any(n.startswith(p) for n in names)]
        if unmatched:
            raise ValueError(
                f"ParamGroups: lr_mults prefixes {unmatched} match no parameter; parameter names look like "
                f"{names[:3]} (matched within each module: {list(modules)})"
            )
        return [
            {"params": params, "lr_mult": lr, "decay_mult": wd, "name": f"lr x{_mult_str(lr)}, wd x{_mult_str(wd)}"}
            for (lr, wd), params in groups.items()
        ]

    def custom_key_order(self) -> list[str]:
        """``custom_keys`` in the order mmcv tries them: longest first, ties alphabetically."""
        return sorted(sorted(self.custom_keys), key=len, reverse=True)

    def _multipliers(self, name: str, local_name: str, is_norm: bool) -> tuple[float, float]:
        for key in self.custom_key_order():
            if key in name:  # the first key found decides; no other rule applies (mmcv 1.x)
                mults = self.custom_keys[key]
                return float(mults.get("lr_mult", 1.0)), float(mults.get("decay_mult", 1.0))
        lr_mult, decay_mult = 1.0, 1.0
        if is_norm:
            decay_mult = self.norm_decay_mult
        elif local_name == "bias":
            lr_mult, decay_mult = self.bias_lr_mult, self.bias_decay_mult
        if any(key in name for key in self.no_decay_keys):
            decay_mult = 0.0
        prefixes = [p for p in self.lr_mults if name.startswith(p)]
        if prefixes:
            lr_mult *= self.lr_mults[max(prefixes, key=len)]
        return float(lr_mult), float(decay_mult)


def apply_group_multipliers(optimizer: torch.optim.Optimizer, lr_scale: float = 1.0) -> None:
    """Turns the ``lr_mult`` / ``decay_mult`` of :class:`ParamGroups` groups into each group's lr and weight decay.

    Each group's ``lr`` becomes ``lr * lr_scale * lr_mult`` and its ``weight_decay`` ``weight_decay * decay_mult``;
    the multiplier keys are removed. Groups without them get ``lr_scale`` only. Call it once, right after building
    the optimiser and before any LR scheduler is built (a scheduler records the lrs it starts from; a second call
    would apply ``lr_scale`` again).
    """
    if isinstance(lr_scale, bool) or not isinstance(lr_scale, (int, float)) or not lr_scale > 0:
        raise ValueError(f"apply_group_multipliers: lr_scale must be a number > 0, got {lr_scale!r}")
    for i, group in enumerate(optimizer.param_groups):
        if "initial_lr" in group:
            raise ValueError(
                f"apply_group_multipliers: param group {i} already has initial_lr={group['initial_lr']!r}, so an LR "
                "scheduler was built on this optimiser; apply the multipliers before building the scheduler"
            )
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * lr_scale * group.pop("lr_mult", 1.0)
        decay_mult = group.pop("decay_mult", 1.0)
        if "weight_decay" in group:
            group["weight_decay"] = group["weight_decay"] * decay_mult


def linear_scaled_lr_factor(base_batch_size: int, global_batch_size: int) -> float:
    """The linear scaling rule: ``global_batch_size / base_batch_size``.

    E.g. the paper's lr 0.01 is for 64 videos per step (8 GPUs x 8); a run with 16 videos per step uses 0.25 x.
    """
    for name, value in (("base_batch_size", base_batch_size), ("global_batch_size", global_batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"linear_scaled_lr_factor: {name} must be a positive number of videos, got {value!r}")
    return global_batch_size / base_batch_size


# ------------------------------------------------------------------------------------------ LR schedules
def _check_warmup(cls: str, warmup_epochs: float, warmup_start_factor: float) -> None:
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, (int, float)) or not warmup_epochs >= 0:
        raise ValueError(f"{cls}: warmup_epochs must be >= 0, got {warmup_epochs!r}")
    if not 0 < warmup_start_factor <= 1:
        raise ValueError(f"{cls}: warmup_start_factor must be in (0, 1], got {warmup_start_factor!r}")


def _warmup(regular: float, epoch: float, warmup_epochs: float, warmup_start_factor: float) -> float:
    # mmcv's linear warm-up: from warmup_start_factor x the schedule's factor up to the schedule itself
    if epoch >= warmup_epochs:
        return regular
    return regular * (1.0 - (1.0 - warmup_start_factor) * (1.0 - epoch / warmup_epochs))


class EpochScheduleWithWarmup(torch.optim.lr_scheduler.LambdaLR):
    """An lr factor that changes once per epoch, after a linear warm-up that changes at every optimiser step.

    This is mmcv 1.x's ``LrUpdaterHook`` with ``by_epoch=True`` and ``warmup_by_epoch=True`` (the paper's SlowOnly
    and Swin recipes): the regular factor is computed from the epoch number, and during the first
    ``warmup_epochs`` the warm-up is applied at every iteration, ``warmup_iters = warmup_epochs x epoch length``
    (mmcv/runner/hooks/lr_updater.py, v1.4.0, lines 129 and 137-155). ``ResKDModule`` calls
    :meth:`step_per_iteration` with the run's optimiser steps per epoch and steps the schedule after every
    optimiser step; stepped once per epoch instead (``steps_per_epoch = 1``), the warm-up moves per epoch.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, last_epoch: int = -1) -> None:
        self.steps_per_epoch = 1
        super().__init__(optimizer, self._factor_at_step, last_epoch)

    def step_per_iteration(self, steps_per_epoch: int) -> None:
        """Count steps instead of epochs from now on (call before the first step); ``steps_per_epoch`` >= 1."""
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ValueError(f"{type(self).__name__}: steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
        if self.last_epoch > 0:
            raise RuntimeError(f"{type(self).__name__}: set steps_per_epoch before the schedule has stepped")
        self.steps_per_epoch = steps_per_epoch

    def _factor_at_step(self, step: int) -> float:
        epoch = step / self.steps_per_epoch
        return _warmup(self.regular_factor(int(epoch)), epoch, self.warmup_epochs, self.warmup_start_factor)

    def factor(self, epoch: float) -> float:
        """The multiplier of the initial lr at (possibly fractional) ``epoch``: the regular factor of its whole
        epoch, warmed up by the fraction of ``warmup_epochs`` done."""
        return _warmup(self.regular_factor(int(epoch)), epoch, self.warmup_epochs, self.warmup_start_factor)

    def regular_factor(self, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


class WarmupMultiStepLR(EpochScheduleWithWarmup):
    """Step decay by ``gamma`` at each of ``milestones`` (epochs), after a linear warm-up (per iteration).

    The factor at epoch ``e`` is ``gamma ** (number of milestones <= e)``, times mmcv's linear warm-up
    ``1 - (1 - warmup_start_factor) * (1 - e / warmup_epochs)`` while ``e < warmup_epochs``, ``e`` counting
    fractions of an epoch (see :class:`EpochScheduleWithWarmup`). The paper's SlowOnly Kinetics-400 recipe:
    milestones [90, 130], 10 warm-up epochs, 150 epochs.

    Configure from LightningCLI::

        model:
          lr_scheduler:
            class_path: reskd_lightning.optim.WarmupMultiStepLR
            init_args: {milestones: [90, 130], warmup_epochs: 10}
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        milestones: list[int],
        gamma: float = 0.1,
        warmup_epochs: int = 0,
        warmup_start_factor: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        milestones = list(milestones)
        if not all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in milestones) or any(
            a >= b for a, b in zip(milestones, milestones[1:])
        ):
            raise ValueError(
                f"WarmupMultiStepLR: milestones must be strictly increasing positive epochs, got {milestones!r}"
            )
        if not gamma > 0:
            raise ValueError(f"WarmupMultiStepLR: gamma must be > 0, got {gamma!r}")
        _check_warmup("WarmupMultiStepLR", warmup_epochs, warmup_start_factor)
        self.milestones, self.gamma = milestones, gamma
        self.warmup_epochs, self.warmup_start_factor = warmup_epochs, warmup_start_factor
        super().__init__(optimizer, last_epoch)

    def regular_factor(self, epoch: int) -> float:
        """``gamma ** (milestones passed)`` at whole ``epoch``."""
        return self.gamma ** sum(m <= epoch for m in self.milestones)


class WarmupCosineLR(EpochScheduleWithWarmup):
    """Cosine annealing over ``max_epochs`` (per epoch) after a linear warm-up (per iteration).

    The factor at epoch ``e`` is ``eta_min_factor + (1 - eta_min_factor) * 0.5 * (1 + cos(pi * e / max_epochs))``
    (held at ``eta_min_factor`` after ``max_epochs``), times mmcv's linear warm-up
    ``1 - (1 - warmup_start_factor) * (1 - e / warmup_epochs)`` while ``e < warmup_epochs``, ``e`` counting fractions
    of an epoch (see :class:`EpochScheduleWithWarmup`): the cosine runs over all epochs from 0, as mmcv's
    ``CosineAnnealing`` with warm-up. ``warmup_epochs`` may be fractional (the Swin recipes: 2.5). Set
    ``max_epochs`` to the trainer's.

    Configure from LightningCLI::

        model:
          lr_scheduler:
            class_path: reskd_lightning.optim.WarmupCosineLR
            init_args: {max_epochs: 30, warmup_epochs: 2.5}
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_epochs: int,
        warmup_epochs: float = 0,
        warmup_start_factor: float = 0.1,
        eta_min_factor: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs <= 0:
            raise ValueError(f"WarmupCosineLR: max_epochs must be a positive number of epochs, got {max_epochs!r}")
        _check_warmup("WarmupCosineLR", warmup_epochs, warmup_start_factor)
        if warmup_epochs > max_epochs:
            raise ValueError(
                f"WarmupCosineLR: warmup_epochs must be <= max_epochs={max_epochs}, got {warmup_epochs!r}"
            )
        if not 0 <= eta_min_factor <= 1:
            raise ValueError(f"WarmupCosineLR: eta_min_factor must be in [0, 1], got {eta_min_factor!r}")
        self.max_epochs, self.eta_min_factor = max_epochs, eta_min_factor
        self.warmup_epochs, self.warmup_start_factor = warmup_epochs, warmup_start_factor
        super().__init__(optimizer, last_epoch)

    def regular_factor(self, epoch: int) -> float:
        """The cosine factor at whole ``epoch`` (held at ``eta_min_factor`` after ``max_epochs``)."""
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(epoch, self.max_epochs) / self.max_epochs))
        return self.eta_min_factor + (1.0 - self.eta_min_factor) * cosine
