"""R(2+1)D-18 from torchvision: 3-D convolutions factorised into spatial and temporal ones."""

from __future__ import annotations

import torchvision
from torch import Tensor, nn

from ..heads import ClsHead
from ..recognizer import VideoRecognizer
from ..registry import register_model
from ..weights import is_weights_file, load_pretrained, read_weights, remap_keys, torchvision_state_dict


def torchvision_video_resnet_to_ours(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A bare torchvision video ResNet state dict (``stem.*``, ``layer*``, ``fc.*``) in our layout."""
    if any(k.startswith(("backbone.", "cls_head.")) for k in state):
        return state
    return remap_keys({f"backbone.{k}": v for k, v in state.items()}, {"backbone.fc.": "cls_head.fc."})


class R2Plus1D(VideoRecognizer):
    """R(2+1)D-18 (torchvision ``r2plus1d_18``); the feature map is taken before its average pooling.

    Every stage after the first halves time and space, so the map is ``[N, 512, T/8, H/16, W/16]``
    (7x7 at 112 px, its training size; 14x14 at 224 px).

    Args:
        num_classes: number of classes.
        pretrained: ``None``, a torchvision weight name (``KINETICS400_V1`` or
            ``R2Plus1D_18_Weights.KINETICS400_V1``, downloaded) or a local file: a checkpoint of this model
            or a torchvision ``r2plus1d_18`` state dict. The Kinetics classifier is kept when
            ``num_classes`` is 400 and re-initialised otherwise.
        dropout: dropout before the classifier.
        init_std: standard deviation of the classifier's initial weights.

    Configure from LightningCLI (``SampleFrames(clip_len=16, frame_interval=2)``, 112 px as in torchvision)::

        student:
          class_path: reskd_lightning.models.R2Plus1D
          init_args:
            pretrained: KINETICS400_V1
    """

    def __init__(
        self, num_classes: int, pretrained: str | None = None, dropout: float = 0.5, init_std: float = 0.01
    ) -> None:
        super().__init__()
        net = torchvision.models.video.r2plus1d_18(weights=None)
        self.feature_dim = net.fc.in_features
        net.avgpool = nn.Identity()
        net.fc = nn.Identity()
        self.backbone = net
        self.num_classes = num_classes
        self.cls_head = ClsHead(self.feature_dim, num_classes, dropout=dropout, init_std=init_std)
        if pretrained:
            self.load_pretrained(pretrained)

    def load_pretrained(self, pretrained: str) -> None:
        """Initialise from a torchvision weight name or a local file (see the class)."""
        if is_weights_file(pretrained):
            state, source = read_weights(self, pretrained, convert=torchvision_video_resnet_to_ours), str(pretrained)
        else:
            source = pretrained if "." in pretrained else f"R2Plus1D_18_Weights.{pretrained}"
            state = torchvision_video_resnet_to_ours(torchvision_state_dict(source))
        load_pretrained(self, state, source)

    def forward_features(self, x: Tensor) -> Tensor:
        r = self.backbone
        return r.layer4(r.layer3(r.layer2(r.layer1(r.stem(x)))))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)


@register_model("r2plus1d_r18")
def r2plus1d_r18(num_classes: int, **kwargs) -> R2Plus1D:
    """R(2+1)D-18 (torchvision ``r2plus1d_18``)."""
    return R2Plus1D(num_classes=num_classes, **kwargs)
