"""SlowOnly (Slow pathway of SlowFast) built with pytorchvideo's ResNet builder."""

from __future__ import annotations

from torch import Tensor

from ..heads import ClsHead
from ..recognizer import VideoRecognizer
from ..registry import register_model
from ..weights import load_weights


class SlowOnly(VideoRecognizer):
    """SlowOnly ResNet (3-D ResNet with temporal kernels only in res4/res5), e.g. SlowOnly-R50 8x8.

    The backbone is ``pytorchvideo.models.resnet.create_resnet`` without its fixed-size pooling head, so it
    runs at any resolution; our head pools globally. Feature map: ``[N, 32 * base_channels, T, H/32, W/32]``.

    Args:
        num_classes: number of classes.
        depth: 50, 101 or 152.
        base_channels: width of the stem (64 for the standard network; small values make tiny test models).
        pretrained: a local file with this model's weights (a checkpoint of ours or a plain state dict).
        dropout: dropout before the classifier.
        init_std: standard deviation of the classifier's initial weights.

    Configure from LightningCLI::

        teacher:
          class_path: reskd_lightning.models.SlowOnly
          init_args:
            depth: 50
    """

    def __init__(
        self,
        num_classes: int,
        depth: int = 50,
        base_channels: int = 64,
        pretrained: str | None = None,
        dropout: float = 0.5,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if depth not in (50, 101, 152):
            raise ValueError(f"SlowOnly depth must be 50, 101 or 152, got {depth}")
        from pytorchvideo.models.resnet import create_resnet  # imported here: pytorchvideo is slow to import

        self.backbone = create_resnet(
            model_depth=depth,
            stem_dim_out=base_channels,
            stem_conv_kernel_size=(1, 7, 7),
            stage_conv_a_kernel_size=((1, 1, 1), (1, 1, 1), (3, 1, 1), (3, 1, 1)),
            stage_conv_b_kernel_size=((1, 3, 3), (1, 3, 3), (1, 3, 3), (1, 3, 3)),
            head=None,
        )
        self.num_classes = num_classes
        self.feature_dim = base_channels * 32
        self.cls_head = ClsHead(self.feature_dim, num_classes, dropout=dropout, init_std=init_std)
        if pretrained:
            load_weights(self, pretrained)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)


@register_model("slowonly_r50")
def slowonly_r50(num_classes: int, **kwargs) -> SlowOnly:
    """SlowOnly-R50 (pytorchvideo's Slow R50)."""
    return SlowOnly(num_classes=num_classes, depth=50, **kwargs)
