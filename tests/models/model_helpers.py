"""Helpers shared by the model tests (importable: pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import torch


def randomize_bn(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so a lost or misplaced buffer shows in outputs."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
