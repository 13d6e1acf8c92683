"""TSN: a torchvision ResNet applied to each sampled frame, features averaged over segments by the head."""

from __future__ import annotations

from typing import Callable

import torchvision
from torch import Tensor, nn

from ..heads import ClsHead
from ..mmaction import mmaction_resnet_to_torchvision
from ..recognizer import VideoRecognizer
from ..registry import register_model
from ..weights import is_weights_file, load_pretrained, read_weights, torchvision_state_dict

RESNETS: dict[str, str] = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
}


def torchvision_resnet_to_ours(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A bare torchvision ResNet state dict (``conv1.weight``, ..., ``fc.*``) under our ``backbone.`` prefix.

    Its ImageNet classifier ``fc.*`` is dropped. A state dict already in our layout is returned as it is.
    """
    if any(k.startswith(("backbone.", "cls_head.")) for k in state):
        return state
    return {f"backbone.{k}": v for k, v in state.items() if not k.startswith("fc.")}


class FrameResNet(VideoRecognizer):
    """A torchvision ResNet run on every frame (time folded into the batch): the body of TSN and TSM.

    Feature map ``[N, C', T, H/32, W/32]``; weights load from torchvision names, local files and mmaction2
    checkpoints through one path (:meth:`load_pretrained`).
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
            raise ValueError(f"unknown {type(self).__name__} backbone {backbone!r}; choose one of {sorted(RESNETS)}")
        resnet = getattr(torchvision.models, backbone)(weights=None)
        self.backbone_name = backbone
        self.feature_dim = resnet.fc.in_features
        self.num_classes = num_classes
        resnet.fc = nn.Identity()
        resnet.avgpool = nn.Identity()
        self.backbone = resnet
        self.cls_head = ClsHead(self.feature_dim, num_classes, dropout=dropout, init_std=init_std)
        if pretrained:
            self.load_pretrained(pretrained)

    def load_pretrained(self, pretrained: str) -> None:
        """Initialise from a torchvision weight name (``IMAGENET1K_V1`` or ``ResNet50_Weights.IMAGENET1K_V1``)
        or a local file: this model's checkpoint, a bare torchvision ResNet state dict (``fc.*`` ignored) or an
        mmaction2 TSN/TSM checkpoint. The classifier is kept only when its number of classes matches.
        """
        if is_weights_file(pretrained):
            state, source = read_weights(self, pretrained, convert=torchvision_resnet_to_ours), str(pretrained)
        else:
            source = pretrained if "." in pretrained else f"{RESNETS[self.backbone_name]}.{pretrained}"
            state = torchvision_resnet_to_ours(torchvision_state_dict(source))
        load_pretrained(self, state, source)

    def convert_mmaction_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """mmaction2 ``ResNet``/``ResNetTSM`` + ``TSNHead``/``TSMHead`` keys -> this model's keys."""
        return mmaction_resnet_to_torchvision(state)

    def _stem(self, frames: Tensor) -> Tensor:
        r = self.backbone
        return r.maxpool(r.relu(r.bn1(r.conv1(frames))))

    def forward_features(self, x: Tensor) -> Tensor:
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        r = self.backbone
        y = r.layer4(r.layer3(r.layer2(r.layer1(self._stem(frames)))))
        return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)


class TSN(FrameResNet):
    """Temporal Segment Network over a torchvision ResNet (the paper's CNN teachers and students).

    Time is folded into the batch for the 2-D backbone and unfolded after, so the feature map is
    ``[N, C', T, H/32, W/32]`` (7x7 at 224 px, 4x4 at 112 px); the head is the paper's: segment consensus by
    averaging (over segments and space), dropout 0.5, a classifier initialised with std 0.001.

    Args:
        num_classes: number of classes.
        backbone: one of ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``resnet152``.
        pretrained: ``None`` (random init), a torchvision weight name such as ``IMAGENET1K_V1`` (downloaded),
            or a local file: a plain ResNet state dict (``fc.*`` ignored), a checkpoint of this model, or an
            mmaction2 TSN checkpoint (such as the paper's released teachers). A classifier in the file is kept
            when its number of classes matches and re-initialised otherwise.
        dropout: dropout before the classifier.
        init_std: standard deviation of the classifier's initial weights.

    Configure from LightningCLI::

        student:
          class_path: reskd_lightning.models.TSN
          init_args:
            backbone: resnet50
            pretrained: IMAGENET1K_V1
    """


def _builder(cls: type[FrameResNet], backbone: str) -> Callable[..., FrameResNet]:
    def build(num_classes: int, **kwargs) -> FrameResNet:
        return cls(num_classes=num_classes, backbone=backbone, **kwargs)

    build.__doc__ = f"{cls.__name__} over torchvision {backbone}."
    return build


for _name in RESNETS:
    register_model(f"tsn_r{_name[len('resnet'):]}")(_builder(TSN, _name))
