"""X3D (XS, S, M, L) built with pytorchvideo's X3D builder, without its fixed-size pooling head."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, NamedTuple

from torch import Tensor, nn

from ..heads import ClsHead
from ..recognizer import VideoRecognizer
from ..registry import register_model
from ..weights import is_weights_file, load_pretrained, pytorchvideo_zoo_state_dict, read_weights, remap_keys


class X3DVariant(NamedTuple):
    """An X3D size: the clip it is trained on and its depth multiplier (pytorchvideo's hub definitions)."""

    clip_len: int
    frame_interval: int
    crop_size: int
    depth_factor: float


#: Clip length and crop size from ``pytorchvideo.models.hub.x3d``, frame intervals from the X3D paper's recipes.
#: XS, S and M share one architecture (width factor 2.0, depth factor 2.2); they differ in the clips they
#: are trained on, hence in their weights.
X3D_VARIANTS: dict[str, X3DVariant] = {
    "xs": X3DVariant(clip_len=4, frame_interval=12, crop_size=160, depth_factor=2.2),
    "s": X3DVariant(clip_len=13, frame_interval=6, crop_size=160, depth_factor=2.2),
    "m": X3DVariant(clip_len=16, frame_interval=5, crop_size=224, depth_factor=2.2),
    "l": X3DVariant(clip_len=16, frame_interval=5, crop_size=312, depth_factor=5.0),
}


class X3D(VideoRecognizer):
    """X3D, the efficient 3-D CNN family, from ``pytorchvideo.models.x3d.create_x3d``.

    The backbone is X3D's stem and four stages followed by its ``conv5`` (the head's pre-pool 1x1x1 projection
    192 -> 432 with BatchNorm and ReLU), so the feature map is ``[N, 432, T, H/32, W/32]`` at any input size.
    X3D's post-pool 432 -> 2048 projection is replaced by our head (global average, dropout, classifier);
    Kinetics weights therefore initialise the backbone and ``conv5``, not the classifier.

    Args:
        num_classes: number of classes.
        variant: ``xs``, ``s``, ``m`` or ``l`` (see :data:`X3D_VARIANTS` for the clips each is meant for).
        pretrained: ``None``, ``kinetics400`` (pytorchvideo's model zoo, downloaded) or a local file: a
            checkpoint of this model or pytorchvideo's X3D file (``X3D_M.pyth``, ``{"model_state": ...}``).
        dropout: dropout before the classifier.
        init_std: standard deviation of the classifier's initial weights.

    Configure from LightningCLI (X3D-M: ``SampleFrames(clip_len=16, frame_interval=5)``, 224 px)::

        teacher:
          class_path: reskd_lightning.models.X3D
          init_args:
            variant: m
            pretrained: kinetics400
    """

    def __init__(
        self,
        num_classes: int,
        variant: str = "m",
        pretrained: str | None = None,
        dropout: float = 0.5,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if variant not in X3D_VARIANTS:
            raise ValueError(f"unknown X3D variant {variant!r}; choose one of {sorted(X3D_VARIANTS)}")
        from pytorchvideo.models.x3d import create_x3d  # imported here: pytorchvideo is slow to import

        spec = X3D_VARIANTS[variant]
        net = create_x3d(
            input_clip_length=spec.clip_len, input_crop_size=spec.crop_size, depth_factor=spec.depth_factor
        )
        pool = net.blocks[-1].pool  # the head's ProjectedPool: pre_conv, pre_norm, pre_act, pool, post_conv, ...
        net.blocks = net.blocks[:-1]
        self.backbone = net
        self.conv5 = nn.Sequential(OrderedDict(conv=pool.pre_conv, norm=pool.pre_norm, act=pool.pre_act))
        self.variant = variant
        self.num_classes = num_classes
        self.feature_dim = pool.pre_conv.out_channels
        self.cls_head = ClsHead(self.feature_dim, num_classes, dropout=dropout, init_std=init_std)
        if pretrained:
            self.load_pretrained(pretrained)

    def load_pretrained(self, pretrained: str) -> None:
        """Initialise from a local file or ``kinetics400`` (pytorchvideo's model zoo)."""
        if is_weights_file(pretrained):
            state, source = read_weights(self, pretrained, convert=self._to_ours), str(pretrained)
        elif pretrained == "kinetics400":
            state, source = pytorchvideo_zoo_state_dict("x3d", f"x3d_{self.variant}")
            state = self._to_ours(state)
        else:
            raise ValueError(f"unknown X3D weights {pretrained!r}; pass 'kinetics400' or a local file")
        load_pretrained(self, state, source)

    def _to_ours(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        # pytorchvideo's layout: blocks.0-4 backbone, blocks.5 head (pool.pre_conv/pre_norm kept as conv5).
        head = f"blocks.{len(self.backbone.blocks)}."
        if not any(k.startswith(head) for k in state):
            return state
        return remap_keys(
            state,
            {"blocks.": "backbone.blocks.", head: None, f"{head}pool.pre_conv.": "conv5.conv.",
             f"{head}pool.pre_norm.": "conv5.norm."},
        )

    def forward_features(self, x: Tensor) -> Tensor:
        return self.conv5(self.backbone(x))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)


def _x3d_builder(variant: str) -> Callable[..., X3D]:
    def build(num_classes: int, **kwargs) -> X3D:
        return X3D(num_classes=num_classes, variant=variant, **kwargs)

    spec = X3D_VARIANTS[variant]
    build.__doc__ = f"X3D-{variant.upper()} (clips of {spec.clip_len} frames at {spec.crop_size} px)."
    return build


for _variant in X3D_VARIANTS:
    register_model(f"x3d_{_variant}")(_x3d_builder(_variant))
