"""Video Swin Transformer (torchvision ``swin3d_t/s/b``): the paper's transformer teacher and student."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.video.swin_transformer import SwinTransformer3d

from ..heads import ClsHead
from ..recognizer import VideoRecognizer
from ..registry import register_model
from ..weights import extract_state_dict, load_checkpoint, torchvision_state_dict
from ..weights import load_pretrained as load_pretrained_state

#: torchvision's Video Swin variants: widths, depths and heads (patch 2x4x4, window 8x7x7 for all).
SWIN3D_ARCHS: dict[str, dict[str, object]] = {
    "swin3d_t": {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24)},
    "swin3d_s": {"embed_dim": 96, "depths": (2, 2, 18, 2), "num_heads": (3, 6, 12, 24)},
    "swin3d_b": {"embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32)},
}

#: torchvision weight enums: the Kinetics-400 video weights and the ImageNet 2-D Swin they inflate from.
_VIDEO_WEIGHTS = {"swin3d_t": "Swin3D_T_Weights", "swin3d_s": "Swin3D_S_Weights", "swin3d_b": "Swin3D_B_Weights"}
_IMAGE_WEIGHTS = {"swin3d_t": "Swin_T_Weights", "swin3d_s": "Swin_S_Weights", "swin3d_b": "Swin_B_Weights"}

_FILE_SUFFIXES = {".pth", ".pt", ".ckpt", ".bin", ".tar"}


def _known_torchvision_names(backbone: str) -> dict[str, str]:
    """``{"KINETICS400_V1": "Swin3D_T_Weights.KINETICS400_V1", "IMAGENET1K_V1": "Swin_T_Weights...", ...}``."""
    import torchvision

    names: dict[str, str] = {}
    image_enum = getattr(torchvision.models, _IMAGE_WEIGHTS[backbone])
    video_enum = getattr(torchvision.models.video, _VIDEO_WEIGHTS[backbone])
    for enum in (image_enum, video_enum):
        enum_name = enum.__name__
        names.update({member: f"{enum_name}.{member}" for member in enum.__members__ if member != "DEFAULT"})
    return names


def _torchvision_name(backbone: str, pretrained: str) -> str:
    """``KINETICS400_V1`` -> ``Swin3D_T_Weights.KINETICS400_V1``; an unknown name lists the known ones."""
    known = _known_torchvision_names(backbone)
    if pretrained in known.values():
        return pretrained
    if pretrained not in known:
        raise ValueError(
            f"unknown pretrained weights {pretrained!r} for {backbone}; choose a torchvision name "
            f"({', '.join(sorted(known))}) or a local file path"
        )
    return known[pretrained]


def _is_file(pretrained: str) -> bool:
    """A local file or an http(s) address of one (e.g. the Swin release's ImageNet-22K Swin-B), not a torchvision
    weight name."""
    return Path(pretrained).suffix in _FILE_SUFFIXES or Path(pretrained).exists() or "/" in pretrained


def inflate_swin2d_state_dict(
    state: Mapping[str, Tensor], patch_size: Sequence[int], window_size: Sequence[int]
) -> dict[str, Tensor]:
    """Inflate 2-D Swin tensors (already in torchvision's 3-D names) to a Video Swin, as mmaction2 does.

    The patch embedding's ``[C, 3, 4, 4]`` kernel is repeated over the temporal patch size and divided by it, so a
    static clip embeds as the image does; each ``[(2Wh-1)(2Ww-1), heads]`` relative position bias table is resized
    (bicubic) to the 3-D window's spatial extent if it differs, then repeated for every temporal offset
    ``-(Wd-1)..Wd-1``. Everything else is returned unchanged.
    """
    wd, wh, ww = window_size
    out = dict(state)
    for key, value in state.items():
        if key.endswith("patch_embed.proj.weight") and value.dim() == 4:
            out[key] = value.unsqueeze(2).repeat(1, 1, patch_size[0], 1, 1) / patch_size[0]
        elif key.endswith("relative_position_bias_table"):
            spatial = (2 * wh - 1) * (2 * ww - 1)
            if value.shape[0] == (2 * wd - 1) * spatial:
                continue  # already 3-D
            length, heads = value.shape
            if length != spatial:
                side = int(round(length**0.5))
                if side * side != length:
                    raise ValueError(f"{key}: a 2-D relative position table of {length} rows is not square")
                grid = value.t().reshape(1, heads, side, side)
                value = F.interpolate(grid, size=(2 * wh - 1, 2 * ww - 1), mode="bicubic").reshape(heads, -1).t()
            out[key] = value.repeat(2 * wd - 1, 1)
    return out


def _mmaction_to_torchvision_key(key: str) -> str | None:
    """Map one mmaction2 / original Video Swin key (``backbone.`` prefix removed) to torchvision's names.

    Returns None for keys that are not network weights (attention masks, relative position indices).
    """
    if key.endswith(("relative_position_index", "attn_mask")):
        return None
    match = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.(.*)$", key)
    if match:
        stage, block, rest = int(match[1]), match[2], match[3]
        rest = rest.replace("mlp.fc1.", "mlp.0.").replace("mlp.fc2.", "mlp.3.")
        return f"features.{2 * stage}.{block}.{rest}"
    match = re.match(r"layers\.(\d+)\.downsample\.(.*)$", key)
    if match:
        return f"features.{2 * int(match[1]) + 1}.{match[2]}"
    # The final norm: ``norm`` in the original Video Swin code and mmaction2 0.x, ``norm3`` in mmaction2 1.x.
    match = re.match(r"norm\d?\.(weight|bias)$", key)
    if match:
        return f"norm.{match[1]}"
    return key  # patch_embed.* keeps its name; anything else stays as it is and is reported as unexpected


class VideoSwin(VideoRecognizer):
    """Video Swin Transformer over torchvision's ``SwinTransformer3d`` (patch 2x4x4, window 8x7x7).

    The feature map is the normalized last stage, ``[N, C, T/2, H/32, W/32]`` (``C`` 768 for T/S, 1024 for B;
    ``7x7`` at 224 px, ``4x4`` at 112 px, ``3x3`` at 96 px; odd sizes are padded as torchvision does). The head
    averages it; ``cls_head.logit_map`` gives the per-location logits LogitMapKD compares.

    Where a stage's map is smaller than the window (the last stage at 112 px, the last two at 96 px, and time
    when ``T/2 < 8``), the window shrinks to the map and, as in the original Video Swin and mmaction2 code,
    its relative position biases are read from the top-left block of the full window's index; weights trained
    with that code therefore behave the same here.

    Args:
        num_classes: number of classes.
        backbone: ``swin3d_t``, ``swin3d_s`` or ``swin3d_b``.
        pretrained: ``None`` (random init); a torchvision weight name: ``KINETICS400_V1`` (and
            ``KINETICS400_IMAGENET22K_V1`` for ``swin3d_b``), or the 2-D ImageNet Swin ``IMAGENET1K_V1``, which is
            inflated to 3-D; or a local file: a checkpoint of this model, an mmaction2 / original Video Swin
            checkpoint (the paper's teachers), a torchvision ``swin3d_*`` or 2-D ``swin_*`` state dict, or an
            original 2-D Swin ImageNet checkpoint (``{"model": ...}``, inflated); or the http(s) address of such a
            file, downloaded once into torch's hub cache (the paper's Swin-B teacher starts from the Swin
            release's ImageNet-22K ``swin_base_patch4_window7_224_22k.pth``). A classifier in the weights is kept
            when it has ``num_classes`` outputs and is new otherwise; ImageNet classifiers are never kept.
        dropout: dropout before the classifier (0.5 as mmaction2's Video Swin head).
        init_std: standard deviation of the classifier's initial weights (its bias starts at 0): 0.01 as the
            paper's Video Swin head (``GeneralRKD3DHead``'s default, ``mmcv.normal_init``).
        stochastic_depth_prob: stochastic depth of the last block, linearly less before it down to 0 for the
            first (the paper's ``drop_path_rate`` 0.1); active in train mode only.
        embed_dim, depths, num_heads: override the variant's width, blocks per stage and heads per stage (tiny
            models for tests and experiments; pretrained weights then no longer fit).
        window_size: attention window ``(T, H, W)`` in tokens.

    Configure from LightningCLI::

        student:
          class_path: reskd_lightning.models.VideoSwin
          init_args:
            backbone: swin3d_s
            pretrained: IMAGENET1K_V1
        teacher:
          class_path: reskd_lightning.models.VideoSwin
          init_args:
            backbone: swin3d_b
            pretrained: checkpoints/swin_base_patch244_window877_kinetics400_22k.pth
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "swin3d_t",
        pretrained: str | None = None,
        dropout: float = 0.5,
        init_std: float = 0.01,
        stochastic_depth_prob: float = 0.1,
        embed_dim: int | None = None,
        depths: Sequence[int] | None = None,
        num_heads: Sequence[int] | None = None,
        window_size: Sequence[int] = (8, 7, 7),
    ) -> None:
        super().__init__()
        if backbone not in SWIN3D_ARCHS:
            raise ValueError(f"unknown Video Swin backbone {backbone!r}; choose one of {sorted(SWIN3D_ARCHS)}")
        arch = SWIN3D_ARCHS[backbone]
        embed_dim = int(arch["embed_dim"]) if embed_dim is None else embed_dim  # type: ignore[call-overload]
        depths = list(arch["depths"] if depths is None else depths)  # type: ignore[call-overload]
        num_heads = list(arch["num_heads"] if num_heads is None else num_heads)  # type: ignore[call-overload]
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} must have one entry per stage")
        if len(window_size) != 3:
            raise ValueError(f"window_size must be (T, H, W), got {window_size}")
        for stage, heads in enumerate(num_heads):
            if (embed_dim * 2**stage) % heads:
                raise ValueError(
                    f"stage {stage} has {embed_dim * 2**stage} channels, not divisible by num_heads {heads}"
                )
        weights_name = None if not pretrained or _is_file(pretrained) else _torchvision_name(backbone, pretrained)
        self.backbone_name = backbone
        self.patch_size = (2, 4, 4)
        self.window_size = tuple(window_size)
        swin = SwinTransformer3d(
            patch_size=list(self.patch_size),
            embed_dim=embed_dim,
            depths=depths,
            num_heads=num_heads,
            window_size=list(window_size),
            stochastic_depth_prob=stochastic_depth_prob,
        )
        swin.avgpool = nn.Identity()  # our head pools
        swin.head = nn.Identity()
        self.backbone = swin
        self.num_classes = num_classes
        self.feature_dim = swin.num_features
        self.cls_head = ClsHead(self.feature_dim, num_classes, dropout=dropout, init_std=init_std)
        if pretrained:
            self.load_pretrained(weights_name or pretrained)

    # ---------------------------------------------------------------------------------------------- forward
    def forward_features(self, x: Tensor) -> Tensor:
        s = self.backbone
        y = s.norm(s.features(s.pos_drop(s.patch_embed(x))))  # channels last: [N, T', h, w, C]
        return y.permute(0, 4, 1, 2, 3)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)

    # ---------------------------------------------------------------------------------------------- weights
    def convert_mmaction_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """An mmaction2 (0.x or 1.x) or original Video Swin checkpoint's tensors, in this model's names.

        ``backbone.layers.{i}.blocks.{j}`` becomes ``backbone.features.{2i}.{j}`` (``mlp.fc1/fc2`` ->
        ``mlp.0/3``), ``backbone.layers.{i}.downsample`` becomes ``backbone.features.{2i+1}``,
        ``backbone.norm``/``backbone.norm3`` becomes ``backbone.norm`` and ``cls_head.fc_cls`` becomes
        ``cls_head.fc``. Relative position indices (derived, not learned) are taken from this model;
        ``data_preprocessor.*`` is dropped. A 2-D checkpoint (ImageNet Swin, no ``backbone.`` prefix) is
        inflated. Keys it does not know are passed through, so a checked load names them.
        """
        # A recognizer's checkpoint keeps the network under ``backbone.``; a 2-D Swin's has no prefix.
        prefix = "backbone." if any(k.startswith("backbone.") for k in state) else ""
        converted: dict[str, Tensor] = {}
        for key, value in state.items():
            if key.startswith("data_preprocessor.") or (not prefix and key.startswith("head.")):
                continue  # input normalization constants; an ImageNet classifier
            if key.startswith("cls_head.fc_cls."):
                converted["cls_head.fc." + key[len("cls_head.fc_cls.") :]] = value
            elif key.startswith(prefix):
                new = _mmaction_to_torchvision_key(key[len(prefix) :])
                if new is not None:
                    converted[f"backbone.{new}"] = value
            else:
                converted[key] = value
        return self._with_own_buffers(self._inflate(converted))

    def load_pretrained(self, pretrained: str) -> None:
        """Load ``pretrained`` (a torchvision weight name, a local file or its URL; see the class docstring)."""
        if _is_file(pretrained):
            checkpoint = load_checkpoint(pretrained)
            if "state_dict" not in checkpoint and isinstance(checkpoint.get("model"), Mapping):
                checkpoint = checkpoint["model"]  # original Swin / Video Swin release files
            state = extract_state_dict(checkpoint, source=pretrained)
            self._load_converted(self._to_own_names(state, pretrained), pretrained)
            return
        enum_name = _torchvision_name(self.backbone_name, pretrained)
        state = torchvision_state_dict(enum_name)
        self._load_converted(self._to_own_names(state, enum_name), enum_name)

    def _to_own_names(self, state: Mapping[str, Tensor], source: str) -> dict[str, Tensor]:
        """Recognize the layout of ``state`` and return it in this model's names (2-D weights inflated)."""
        if any(k.startswith("backbone.features.") for k in state):  # ours
            return self._with_own_buffers(self._inflate(dict(state)))
        if any(k.startswith(("backbone.layers.", "layers.")) for k in state):  # mmaction2 / original Swin
            return self.convert_mmaction_state_dict(state)
        if "features.0.0.weight" in state:  # torchvision 2-D Swin: features.0 is the patch embedding
            renamed: dict[str, Tensor] = {}
            for key, value in state.items():
                if key.startswith("head."):
                    continue
                match = re.match(r"features\.(\d+)\.(.*)$", key)
                if match and match[1] == "0":
                    stem = {"0": "proj", "2": "norm"}[match[2].split(".")[0]]
                    renamed[f"backbone.patch_embed.{stem}.{match[2].split('.', 1)[1]}"] = value
                elif match:
                    renamed[f"backbone.features.{int(match[1]) - 1}.{match[2]}"] = value
                else:
                    renamed[f"backbone.{key}"] = value
            return self._with_own_buffers(self._inflate(renamed))
        if "patch_embed.proj.weight" in state:  # torchvision 3-D Swin
            return self._with_own_buffers(
                {(f"cls_head.fc.{k[5:]}" if k.startswith("head.") else f"backbone.{k}"): v for k, v in state.items()}
            )
        raise ValueError(
            f"{source} does not look like Swin weights (first keys: {sorted(state)[:5]}); expected this model's, "
            "mmaction2's, or torchvision's swin3d_*/swin_* names"
        )

    def _inflate(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        proj = state.get("backbone.patch_embed.proj.weight")
        if proj is not None and proj.dim() == 4:
            state = inflate_swin2d_state_dict(state, self.patch_size, self.window_size)
            state = {k: v for k, v in state.items() if not k.startswith("cls_head.")}  # ImageNet classes
        return state

    def _with_own_buffers(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Relative position indices follow from the window size: take this model's, whatever the file holds."""
        state = {k: v for k, v in state.items() if not k.endswith("relative_position_index")}
        state.update({k: v for k, v in self.state_dict().items() if k.endswith("relative_position_index")})
        return state

    def _load_converted(self, state: dict[str, Tensor], source: str) -> None:
        """Load converted weights; a classifier of another size (or none) leaves ours newly initialised."""
        load_pretrained_state(self, state, source)


def _swin_builder(backbone: str) -> Callable[..., VideoSwin]:
    def build(num_classes: int, **kwargs: Any) -> VideoSwin:
        return VideoSwin(num_classes=num_classes, backbone=backbone, **kwargs)

    build.__doc__ = f"Video Swin {backbone[-1].upper()} (torchvision {backbone})."
    build.__name__ = backbone
    return build


for _name in SWIN3D_ARCHS:
    register_model(_name)(_swin_builder(_name))
