"""SlowOnly (Slow pathway of SlowFast) built with pytorchvideo's ResNet builder."""

from __future__ import annotations

import re

from torch import Tensor

from ..heads import ClsHead
from ..mmaction import mmaction_resnet_to_torchvision
from ..recognizer import VideoRecognizer
from ..registry import register_model
from ..weights import (
    inflate_state_dict,
    is_weights_file,
    load_pretrained,
    pytorchvideo_zoo_state_dict,
    read_weights,
    remap_keys,
    torchvision_state_dict,
)

_TORCHVISION_KEY = re.compile(
    r"^(?:backbone\.)?layer(?P<stage>\d)\.(?P<block>\d+)\.(?P<name>conv\d|bn\d|downsample\.\d)\."
)
_BRANCH2 = {"conv1": "branch2.conv_a", "bn1": "branch2.norm_a", "conv2": "branch2.conv_b", "bn2": "branch2.norm_b",
            "conv3": "branch2.conv_c", "bn3": "branch2.norm_c", "downsample.0": "branch1_conv",
            "downsample.1": "branch1_norm"}


def torchvision_resnet_to_pytorchvideo(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchvision ResNet names (bare or under ``backbone.``) -> pytorchvideo ``create_resnet`` names.

    ``conv1``/``bn1`` -> ``backbone.blocks.0.conv``/``.norm``; ``layerI.J.conv1..3``/``bn1..3`` ->
    ``backbone.blocks.I.res_blocks.J.branch2.conv_a..c``/``norm_a..c``; ``downsample.0``/``.1`` ->
    ``branch1_conv``/``branch1_norm``. ``fc.*`` is dropped; other keys are kept as they are.
    """
    out = {}
    for key, value in state.items():
        bare = key[len("backbone.") :] if key.startswith("backbone.") else key
        match = _TORCHVISION_KEY.match(key)
        if match:
            key = (
                f"backbone.blocks.{match['stage']}.res_blocks.{match['block']}."
                f"{_BRANCH2[match['name']]}.{key[match.end():]}"
            )
        elif bare.startswith("conv1."):
            key = "backbone.blocks.0.conv." + bare[len("conv1.") :]
        elif bare.startswith("bn1."):
            key = "backbone.blocks.0.norm." + bare[len("bn1.") :]
        elif bare.startswith("fc."):
            continue
        out[key] = value
    return out


#: pytorchvideo's Kinetics-400 Slow R50 (8x8) is this model with depth 50 and 64 stem channels.
HUB_MODEL = "slow_r50"


class SlowOnly(VideoRecognizer):
    """SlowOnly ResNet (3-D ResNet with temporal kernels only in res4/res5), e.g. SlowOnly-R50 8x8.

    The backbone is ``pytorchvideo.models.resnet.create_resnet`` without its fixed-size pooling head, so it
    runs at any resolution; our head pools globally. Feature map: ``[N, 32 * base_channels, T, H/32, W/32]``.
    "8x8" is the sampling: clips of 8 frames taken every 8th frame (``clip_len: 8``, ``frame_interval: 8``).

    Args:
        num_classes: number of classes.
        depth: 50, 101 or 152.
        base_channels: width of the stem (64 for the standard network; small values make tiny test models).
        pretrained: ``None``; a torchvision ImageNet weight name of the ResNet of this depth (``IMAGENET1K_V1``
            or ``ResNet50_Weights.IMAGENET1K_V1``), inflated to 3-D as the paper initialises its students;
            ``kinetics400``: pytorchvideo's Slow R50 8x8 (downloaded); or a local file: a checkpoint of this
            model, an mmaction2 ``ResNet3dSlowOnly`` checkpoint, a 2-D ResNet (a torchvision state dict or a
            checkpoint of our TSN; inflated) or pytorchvideo's Slow R50 file. A classifier in the file is kept
            when its number of classes matches and re-initialised otherwise.
        inflation: how 2-D kernels become 3-D ones: ``average`` (I3D, mmaction2) or ``center``
            (see :func:`~reskd_lightning.models.weights.inflate_conv_weight`).
        dropout: dropout before the classifier.
        init_std: standard deviation of the classifier's initial weights.

    Configure from LightningCLI (with ``SampleFrames(clip_len=8, frame_interval=8, num_clips=1)``)::

        student:
          class_path: reskd_lightning.models.SlowOnly
          init_args:
            depth: 50
            pretrained: IMAGENET1K_V1
    """

    def __init__(
        self,
        num_classes: int,
        depth: int = 50,
        base_channels: int = 64,
        pretrained: str | None = None,
        inflation: str = "average",
        dropout: float = 0.5,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if depth not in (50, 101, 152):
            raise ValueError(f"SlowOnly depth must be 50, 101 or 152, got {depth}")
        if inflation not in ("average", "center"):
            raise ValueError(f"unknown inflation {inflation!r}; choose 'average' or 'center'")
        from pytorchvideo.models.resnet import create_resnet  # imported here: pytorchvideo is slow to import

        self.backbone = create_resnet(
            model_depth=depth,
            stem_dim_out=base_channels,
            stem_conv_kernel_size=(1, 7, 7),
            stage_conv_a_kernel_size=((1, 1, 1), (1, 1, 1), (3, 1, 1), (3, 1, 1)),
            stage_conv_b_kernel_size=((1, 3, 3), (1, 3, 3), (1, 3, 3), (1, 3, 3)),
            head=None,
        )
        self.depth = depth
        self.inflation = inflation
        self.num_classes = num_classes
        self.feature_dim = base_channels * 32
        self.cls_head = ClsHead(self.feature_dim, num_classes, dropout=dropout, init_std=init_std)
        if pretrained:
            self.load_pretrained(pretrained)

    def load_pretrained(self, pretrained: str) -> None:
        """Initialise from a file, a torchvision ImageNet name (inflated) or ``kinetics400`` (see the class)."""
        if is_weights_file(pretrained):
            state, source = read_weights(self, pretrained, convert=self._to_ours), str(pretrained)
        elif pretrained == "kinetics400":
            if self.depth != 50:
                raise ValueError(f"pretrained='kinetics400' exists for SlowOnly depth 50 only, got depth {self.depth}")
            state, source = pytorchvideo_zoo_state_dict("resnet", HUB_MODEL)
            state = self._to_ours(state)
        else:
            source = pretrained if "." in pretrained else f"ResNet{self.depth}_Weights.{pretrained}"
            state = self._to_ours(torchvision_state_dict(source))
        load_pretrained(self, state, source)

    def _to_ours(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        # Our layout, pytorchvideo's hub layout (blocks.*, head blocks.5.proj) or a 2-D ResNet: torchvision's
        # or our TSN's (backbone.conv1.*, ..., cls_head.*), inflated below.
        if any(k.startswith("blocks.") for k in state):
            state = remap_keys(state, {"blocks.": "backbone.blocks.", "blocks.5.proj.": "cls_head.fc."})
        elif not any(k.startswith("backbone.blocks.") for k in state):
            state = torchvision_resnet_to_pytorchvideo(state)
        return inflate_state_dict(state, self.state_dict(), self.inflation)

    def convert_mmaction_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """mmaction2 ``ResNet3dSlowOnly`` + ``I3DHead`` keys -> this model's keys (2-D ResNets are inflated)."""
        state = torchvision_resnet_to_pytorchvideo(mmaction_resnet_to_torchvision(state))
        return inflate_state_dict(state, self.state_dict(), self.inflation)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)


@register_model("slowonly_r50")
def slowonly_r50(num_classes: int, **kwargs) -> SlowOnly:
    """SlowOnly-R50 (pytorchvideo's Slow R50)."""
    return SlowOnly(num_classes=num_classes, depth=50, **kwargs)
