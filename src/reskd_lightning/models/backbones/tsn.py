"""TSN: a torchvision ResNet applied to each sampled frame, features averaged over segments by the head."""

from __future__ import annotations

from pathlib import Path

import torchvision
from torch import Tensor, nn

from ..heads import ClsHead
from ..recognizer import VideoRecognizer
from ..registry import register_model
from ..weights import extract_state_dict, load_checkpoint, load_state_dict_checked, torchvision_state_dict

RESNETS: dict[str, str] = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
}


class TSN(VideoRecognizer):
    """Temporal Segment Network over a torchvision ResNet (the paper's CNN teachers and students).

    Time is folded into the batch for the 2-D backbone and unfolded after, so the feature map is
    ``[N, C', T, H/32, W/32]`` (7x7 at 224 px, 4x4 at 112 px); the head averages it over segments and space.

    Args:
        num_classes: number of classes.
        backbone: one of ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``resnet152``.
        pretrained: ``None`` (random init), a torchvision weight name such as ``IMAGENET1K_V1`` (downloaded),
            or a local file: a plain ResNet state dict (``fc.*`` ignored) or a checkpoint of this model.
        dropout: dropout before the classifier.
        init_std: standard deviation of the classifier's initial weights.

    Configure from LightningCLI::

        student:
          class_path: reskd_lightning.models.TSN
          init_args:
            backbone: resnet50
            pretrained: IMAGENET1K_V1
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: str | None = None,
        dropout: float = 0.5,
        init_std: float = 0.001,
    ) -> None:
        super().__init__()
        if backbone not in RESNETS:
            raise ValueError(f"unknown TSN backbone {backbone!r}; choose one of {sorted(RESNETS)}")
        resnet = getattr(torchvision.models, backbone)(weights=None)
        self.feature_dim = resnet.fc.in_features
        self.num_classes = num_classes
        resnet.fc = nn.Identity()
        resnet.avgpool = nn.Identity()
        self.backbone = resnet
        self.cls_head = ClsHead(self.feature_dim, num_classes, dropout=dropout, init_std=init_std)
        if pretrained:
            self._load_pretrained(pretrained, backbone)

    def _load_pretrained(self, pretrained: str, backbone: str) -> None:
        if Path(pretrained).suffix in {".pth", ".pt", ".ckpt", ".bin"} or Path(pretrained).exists():
            # A file of this whole model (backbone.*, cls_head.*) or of a bare ResNet (conv1.*, ..., fc.*).
            state = extract_state_dict(load_checkpoint(pretrained), source=pretrained)
            if any(k.startswith("backbone.") for k in state):
                load_state_dict_checked(self, state, pretrained)
            else:
                load_state_dict_checked(self.backbone, state, pretrained, ignore_unexpected=("fc.",))
            return
        enum_name = pretrained if "." in pretrained else f"{RESNETS[backbone]}.{pretrained}"
        state = torchvision_state_dict(enum_name)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        load_state_dict_checked(self.backbone, state, enum_name)

    def forward_features(self, x: Tensor) -> Tensor:
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        r = self.backbone
        y = r.maxpool(r.relu(r.bn1(r.conv1(frames))))
        y = r.layer4(r.layer3(r.layer2(r.layer1(y))))
        return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)


def _tsn_builder(backbone: str):
    def build(num_classes: int, **kwargs) -> TSN:
        return TSN(num_classes=num_classes, backbone=backbone, **kwargs)

    build.__doc__ = f"TSN over torchvision {backbone}."
    return build


for _name in RESNETS:
    register_model(f"tsn_r{_name[len('resnet'):]}")(_tsn_builder(_name))
