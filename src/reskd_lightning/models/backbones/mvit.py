"""MViT v2 (torchvision ``mvit_v2_s``), built for the clip size it will see."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.video.mvit import MSBlockConfig, MViT

from ..heads import ClsHead
from ..recognizer import VideoRecognizer
from ..registry import register_model
from ..weights import extract_state_dict, load_checkpoint, torchvision_state_dict
from ..weights import load_pretrained as load_pretrained_state

#: torchvision's MViT v2 variants: stem width, blocks per stage and heads per stage (widths double per stage).
MVIT_V2_ARCHS: dict[str, dict[str, object]] = {
    "mvit_v2_s": {"embed_dim": 96, "depths": (1, 2, 11, 2), "num_heads": (1, 2, 4, 8)},
}
_TORCHVISION_WEIGHTS = {"mvit_v2_s": "MViT_V2_S_Weights"}
_FILE_SUFFIXES = {".pth", ".pt", ".ckpt", ".bin", ".tar"}
_REL_POS = ("rel_pos_h", "rel_pos_w", "rel_pos_t")
_REL_POS_THW = ("rel_pos_t", "rel_pos_h", "rel_pos_w")


def _torchvision_name(backbone: str, pretrained: str) -> str:
    """``KINETICS400_V1`` -> ``MViT_V2_S_Weights.KINETICS400_V1``; an unknown name lists the known ones."""
    import torchvision

    enum = _TORCHVISION_WEIGHTS[backbone]
    known = [m for m in getattr(torchvision.models.video, enum).__members__ if m != "DEFAULT"]
    member = pretrained[len(enum) + 1 :] if pretrained.startswith(f"{enum}.") else pretrained
    if member not in known:
        raise ValueError(
            f"unknown pretrained weights {pretrained!r} for {backbone}; choose a torchvision name "
            f"({', '.join(known)}) or a local file path"
        )
    return f"{enum}.{member}"


def _is_file(pretrained: str) -> bool:
    return Path(pretrained).suffix in _FILE_SUFFIXES or Path(pretrained).exists() or "/" in pretrained


def mvit_v2_block_setting(embed_dim: int, depths: Sequence[int], num_heads: Sequence[int]) -> list[MSBlockConfig]:
    """The block list of an MViT v2 with 4 stages; ``(96, (1, 2, 11, 2), (1, 2, 4, 8))`` is torchvision's S.

    The first block of stages 2-4 halves the resolution of the queries and doubles the width; keys and values
    are pooled by 8, 4, 2, 1 per stage, so attention always sees about the same number of tokens.
    """
    if len(depths) != 4 or len(num_heads) != 4:
        raise ValueError(f"MViT v2 has 4 stages: got depths {tuple(depths)} and num_heads {tuple(num_heads)}")
    if min(depths) < 1:
        raise ValueError(f"every stage needs at least one block, got depths {tuple(depths)}")
    blocks: list[MSBlockConfig] = []
    for stage, (depth, heads) in enumerate(zip(depths, num_heads)):
        width = embed_dim * 2**stage
        if width % heads:
            raise ValueError(f"stage {stage} has {width} channels, not divisible by num_heads {heads}")
        kv_stride = max(8 // 2**stage, 1)
        for index in range(depth):
            first = index == 0 and stage > 0
            blocks.append(
                MSBlockConfig(
                    num_heads=heads,
                    input_channels=width // 2 if first else width,
                    output_channels=width,
                    kernel_q=[3, 3, 3],
                    kernel_kv=[3, 3, 3],
                    stride_q=[1, 2, 2] if first else [1, 1, 1],
                    stride_kv=[1, kv_stride, kv_stride],
                )
            )
    return blocks


def resize_rel_pos(table: Tensor, length: int) -> Tensor:
    """Resize a relative position table ``[L, C]`` to ``[length, C]`` by linear interpolation along ``L``.

    The same resize MViT applies at run time when a table does not fit the attention's token grid.
    """
    if table.shape[0] == length:
        return table
    return F.interpolate(table.t().unsqueeze(0), size=length, mode="linear").squeeze(0).t()


def _conv_out(sizes: Sequence[int], conv: nn.Conv3d) -> list[int]:
    return [
        (n + 2 * int(p) - int(k)) // int(st) + 1
        for n, k, st, p in zip(sizes, conv.kernel_size, conv.stride, conv.padding)  # type: ignore[arg-type]
    ]


def _fit_rel_pos_to_grid(mvit: MViT, thw: Sequence[int]) -> None:
    """Size every relative position table for the token grid a ``T x H x W`` clip really gives.

    torchvision sizes them with ``size // stride``, but its poolings (kernel 3, padding 1) give
    ``ceil(size / stride)``: at 112 px the last stage has 4x4 tokens, not 3x3, and its tables would be resized at
    every call. Tables sized from the real grid are used as they are at the build size. (At 224x224x16 both
    agree, so torchvision's weights keep their shapes.) ``h`` and ``w`` tables are sized separately.
    """
    grid = _conv_out(thw, mvit.conv_proj)
    for block in mvit.blocks:
        attn = block.attn
        q = grid if attn.pool_q is None else _conv_out(grid, attn.pool_q.pool)
        k = grid if attn.pool_k is None else _conv_out(grid, attn.pool_k.pool)
        for name, length in zip(_REL_POS_THW, (2 * max(a, b) - 1 for a, b in zip(q, k))):
            table = getattr(attn, name)
            if table is not None and table.shape[0] != length:
                fitted = nn.Parameter(table.new_empty(length, table.shape[1]))
                nn.init.trunc_normal_(fitted, std=0.02)
                setattr(attn, name, fitted)
        grid = q


class MViTv2(VideoRecognizer):
    """MViT v2 over torchvision's ``MViT``, built for ``spatial_size`` x ``temporal_size`` clips.

    torchvision builds ``mvit_v2_s`` for 224x224x16 only; here the relative position tables are sized for the
    clip given, and weights made for another size (torchvision's Kinetics-400 weights are 224x16) are resized
    when loaded, linearly along each table, as MViT itself does at run time. The token grid is read from the
    input, so a model built for one size still runs at another (its tables are then resized at every call).
    Tables are sized for the token grid the clip really gives (torchvision's ``size // stride`` says 3x3 for
    the last stage at 112 px where its poolings give 4x4), so at the build size no table is resized.

    The feature map is the normalized token sequence without the class token, ``[N, 768, T/2, H/32, W/32]``
    (``7x7`` at 224 px, ``4x4`` at 112 px, ``3x3`` at 96 px); our head averages it (torchvision's reads the
    class token, so its classifier is never loaded).

    Args:
        num_classes: number of classes.
        spatial_size: ``(H, W)`` (or one int) of the clips the model is built for.
        temporal_size: frames ``T`` per clip the model is built for (the stem halves time: 16 -> 8 tokens).
        backbone: ``mvit_v2_s``.
        pretrained: ``None``, the torchvision name ``KINETICS400_V1`` (224x16 weights, resized), or a local file:
            a checkpoint of this model (of any build size) or a torchvision ``MViT`` state dict.
        dropout: dropout before the classifier.
        init_std: standard deviation of the classifier's initial weights.
        stochastic_depth_prob: stochastic depth of the last block (linearly less before it).
        embed_dim, depths, num_heads: override the variant's stem width, blocks per stage and heads per stage
            (tiny models for tests; pretrained weights then no longer fit).

    Configure from LightningCLI::

        student:
          class_path: reskd_lightning.models.MViTv2
          init_args:
            spatial_size: [112, 112]
            temporal_size: 16
            pretrained: KINETICS400_V1
    """

    def __init__(
        self,
        num_classes: int,
        spatial_size: int | Sequence[int] = (224, 224),
        temporal_size: int = 16,
        backbone: str = "mvit_v2_s",
        pretrained: str | None = None,
        dropout: float = 0.5,
        init_std: float = 0.02,
        stochastic_depth_prob: float = 0.2,
        embed_dim: int | None = None,
        depths: Sequence[int] | None = None,
        num_heads: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if backbone not in MVIT_V2_ARCHS:
            raise ValueError(f"unknown MViT v2 backbone {backbone!r}; choose one of {sorted(MVIT_V2_ARCHS)}")
        size = (spatial_size, spatial_size) if isinstance(spatial_size, int) else tuple(spatial_size)
        if len(size) != 2 or min(size) < 32:
            raise ValueError(f"spatial_size must be (H, W) of at least 32 px each, got {spatial_size}")
        if temporal_size < 2:
            raise ValueError(f"temporal_size must be at least 2 frames, got {temporal_size}")
        weights_name = None if not pretrained or _is_file(pretrained) else _torchvision_name(backbone, pretrained)
        arch = MVIT_V2_ARCHS[backbone]
        blocks = mvit_v2_block_setting(
            int(arch["embed_dim"]) if embed_dim is None else embed_dim,  # type: ignore[call-overload]
            arch["depths"] if depths is None else depths,  # type: ignore[arg-type]
            arch["num_heads"] if num_heads is None else num_heads,  # type: ignore[arg-type]
        )
        mvit = MViT(
            spatial_size=(int(size[0]), int(size[1])),
            temporal_size=int(temporal_size),
            block_setting=blocks,
            residual_pool=True,
            residual_with_cls_embed=False,
            rel_pos_embed=True,
            proj_after_attn=True,
            stochastic_depth_prob=stochastic_depth_prob,
        )
        mvit.head = nn.Identity()  # our head pools the tokens
        _fit_rel_pos_to_grid(mvit, (int(temporal_size), int(size[0]), int(size[1])))
        self.backbone = mvit
        self.backbone_name = backbone
        self.spatial_size = (int(size[0]), int(size[1]))
        self.temporal_size = int(temporal_size)
        self.num_classes = num_classes
        self.feature_dim = blocks[-1].output_channels
        self.cls_head = ClsHead(self.feature_dim, num_classes, dropout=dropout, init_std=init_std)
        if pretrained:
            self.load_pretrained(weights_name or pretrained)

    # ---------------------------------------------------------------------------------------------- forward
    def forward_features(self, x: Tensor) -> Tensor:
        m = self.backbone
        x = m.conv_proj(x)
        n, _, t, h, w = x.shape
        tokens = m.pos_encoding(x.flatten(2).transpose(1, 2))  # prepends the class token
        thw = (t, h, w)  # from the input, so any clip size runs (torchvision uses the build size)
        for block in m.blocks:
            tokens, thw = block(tokens, thw)
        tokens = m.norm(tokens)[:, 1:]
        return tokens.transpose(1, 2).reshape(n, tokens.shape[-1], *thw)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)

    # ---------------------------------------------------------------------------------------------- weights
    def resize_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``state`` (this model's names) with every relative position table resized to this model's size."""
        own = self.state_dict()
        resized = dict(state)
        for key, value in state.items():
            if key.endswith(_REL_POS) and key in own and value.dim() == 2 and value.shape[1] == own[key].shape[1]:
                resized[key] = resize_rel_pos(value, own[key].shape[0])
        return resized

    def load_pretrained(self, pretrained: str) -> None:
        """Load ``pretrained`` (a torchvision weight name or a local file; see the class docstring)."""
        if _is_file(pretrained):
            source = pretrained
            state = extract_state_dict(load_checkpoint(pretrained), source=pretrained)
        else:
            source = _torchvision_name(self.backbone_name, pretrained)
            state = torchvision_state_dict(source)
        if not any(k.startswith("backbone.") for k in state):
            if "conv_proj.weight" not in state:
                raise ValueError(
                    f"{source} does not look like MViT weights (first keys: {sorted(state)[:5]}); expected this "
                    "model's or torchvision's MViT names"
                )
            # torchvision's classifier reads the class token, ours the pooled tokens: it is not reused.
            state = {f"backbone.{k}": v for k, v in state.items() if not k.startswith("head.")}
        state = self.resize_state_dict(state)
        load_pretrained_state(self, state, source)  # a classifier of another size leaves ours as initialised


@register_model("mvit_v2_s")
def mvit_v2_s(
    num_classes: int, spatial_size: int | Sequence[int] = (224, 224), temporal_size: int = 16, **kwargs: Any
) -> MViTv2:
    """MViT v2 S (torchvision mvit_v2_s), built for ``spatial_size`` x ``temporal_size`` clips."""
    return MViTv2(num_classes=num_classes, spatial_size=spatial_size, temporal_size=temporal_size, **kwargs)
