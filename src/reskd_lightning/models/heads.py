"""Classification heads that read a 5-D feature map."""

from __future__ import annotations

from torch import Tensor, nn


class ClsHead(nn.Module):
    """Average pooling over ``T', h, w`` (TSN's segment consensus), dropout and a linear classifier.

    ``logit_map`` applies the same classifier at every location of the feature map, which is what the paper's
    transformer distillation (LogitMapKD) compares.

    Args:
        in_channels: channels of the feature map.
        num_classes: number of classes.
        dropout: dropout ratio before the classifier (0.5 for TSN in the paper's code).
        init_std: standard deviation of the classifier's initial weights (0.001 in the paper's heads).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.5, init_std: float = 0.001) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, init_std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: Tensor) -> Tensor:
        """``[N, C, T, h, w]`` -> logits ``[N, K]``."""
        pooled = features.mean(dim=(2, 3, 4))
        return self.fc(self.dropout(pooled))

    def logit_map(self, features: Tensor) -> Tensor:
        """``[N, C, T, h, w]`` -> per-location logits ``[N, K, T, h, w]`` (no dropout)."""
        return self.fc(features.movedim(1, -1)).movedim(-1, 1)
