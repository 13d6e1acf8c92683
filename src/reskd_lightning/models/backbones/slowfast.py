"""SlowFast built with pytorchvideo's SlowFast builder; one clip in, one feature map out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..heads import ClsHead
from ..recognizer import VideoRecognizer
from ..registry import register_model
from ..weights import is_weights_file, load_pretrained, pytorchvideo_zoo_state_dict, read_weights, remap_keys

#: Temporal kernel of the fast-to-slow lateral connections in pytorchvideo's Kinetics models, per depth.
FUSION_KERNEL: dict[int, int] = {50: 7, 101: 5, 152: 5}
#: Channel ratio slow : fast (SlowFast's beta = 1/8).
BETA_INV = 8


class SlowFast(VideoRecognizer):
    """SlowFast ResNet (two pathways with lateral fast-to-slow fusions), e.g. SlowFast-R50 8x8.

    The input is one clip ``[N, C, T, H, W]``: it is the fast pathway's input, and the slow pathway sees every
    ``alpha``-th frame of it (``x[:, :, ::alpha]``, ``ceil(T / alpha)`` frames, which is what the lateral
    convolutions' temporal stride produces for any ``T``). The feature map joins both pathways' last stages:
    the fast one is average-pooled over time to the slow one's ``T / alpha`` frames and concatenated on
    channels, ``[N, 32 * base_channels * 9/8, ceil(T / alpha), H/32, W/32]`` (2048 + 256 = 2304 channels for
    R50). Global averaging of this map equals SlowFast's own head (pathways pooled, then concatenated).

    Args:
        num_classes: number of classes.
        depth: 50, 101 or 152.
        alpha: frame rate ratio fast : slow (4 in the 8x8 models: 32 fast frames, 8 slow frames).
        base_channels: slow stem width (64 standard; a multiple of 8, the fast pathway has 1/8 of it; small
            values make tiny test models).
        pretrained: ``None``, ``kinetics400`` (pytorchvideo's SlowFast 8x8 for depth 50 or 101, downloaded) or
            a local file: a checkpoint of this model or pytorchvideo's SlowFast file (``{"model_state": ...}``).
            A classifier in the file is kept when its number of classes matches.
        dropout: dropout before the classifier.
        init_std: standard deviation of the classifier's initial weights.

    Configure from LightningCLI (8x8: ``SampleFrames(clip_len=32, frame_interval=2)``, 32 fast frames)::

        teacher:
          class_path: reskd_lightning.models.SlowFast
          init_args:
            depth: 50
            alpha: 4
            pretrained: kinetics400
    """

    def __init__(
        self,
        num_classes: int,
        depth: int = 50,
        alpha: int = 4,
        base_channels: int = 64,
        pretrained: str | None = None,
        dropout: float = 0.5,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if depth not in FUSION_KERNEL:
            raise ValueError(f"SlowFast depth must be one of {sorted(FUSION_KERNEL)}, got {depth}")
        if alpha < 1:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if base_channels < BETA_INV or base_channels % BETA_INV:
            raise ValueError(f"base_channels must be a positive multiple of {BETA_INV}, got {base_channels}")
        from pytorchvideo.models.slowfast import create_slowfast  # imported here: pytorchvideo is slow to import

        net = create_slowfast(
            model_depth=depth,
            stem_dim_outs=(base_channels, base_channels // BETA_INV),
            slowfast_channel_reduction_ratio=(BETA_INV,),
            slowfast_fusion_conv_kernel_size=(FUSION_KERNEL[depth], 1, 1),
            slowfast_fusion_conv_stride=(alpha, 1, 1),
            head=None,
        )
        # Stem and four stages; the rest is the fixed-size pooling (and the head, not built).
        net.blocks = net.blocks[:5]
        self.backbone = net
        self.depth = depth
        self.alpha = alpha
        self.num_classes = num_classes
        self.feature_dim = base_channels * 32 + base_channels * 32 // BETA_INV
        self.cls_head = ClsHead(self.feature_dim, num_classes, dropout=dropout, init_std=init_std)
        if pretrained:
            self.load_pretrained(pretrained)

    def load_pretrained(self, pretrained: str) -> None:
        """Initialise from a local file or ``kinetics400`` (pytorchvideo's model zoo)."""
        if is_weights_file(pretrained):
            state, source = read_weights(self, pretrained, convert=self._to_ours), str(pretrained)
        elif pretrained == "kinetics400":
            if self.depth not in (50, 101) or self.alpha != 4:
                raise ValueError(
                    f"pretrained='kinetics400' exists for SlowFast depth 50 or 101 with alpha 4, got depth "
                    f"{self.depth}, alpha {self.alpha}"
                )
            state, source = pytorchvideo_zoo_state_dict("slowfast", f"slowfast_r{self.depth}")
            state = self._to_ours(state)
        else:
            raise ValueError(f"unknown SlowFast weights {pretrained!r}; pass 'kinetics400' or a local file")
        load_pretrained(self, state, source)

    def _to_ours(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        # pytorchvideo's layout: blocks.0-4 pathways, blocks.5 pooling (no weights), blocks.6 the classifier.
        if not any(k.startswith("blocks.") for k in state):
            return state
        return remap_keys(state, {"blocks.": "backbone.blocks.", "blocks.6.proj.": "cls_head.fc."})

    def forward_features(self, x: Tensor) -> Tensor:
        slow, fast = self.backbone([x[:, :, :: self.alpha], x])
        fast = F.adaptive_avg_pool3d(fast, slow.shape[2:])
        return torch.cat([slow, fast], dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)


@register_model("slowfast_r50")
def slowfast_r50(num_classes: int, **kwargs) -> SlowFast:
    """SlowFast-R50 (pytorchvideo's SlowFast R50 8x8)."""
    return SlowFast(num_classes=num_classes, depth=50, **kwargs)
