"""Optimiser and schedule defaults of the paper's recipes."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn


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
