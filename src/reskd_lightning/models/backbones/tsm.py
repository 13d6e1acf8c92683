"""TSM: TSN's frame-wise ResNet with the temporal shift module in its residual branches."""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from ..registry import register_model
from .tsn import RESNETS, FrameResNet, _builder


def temporal_shift(x: Tensor, num_frames: int, shift_div: int = 8) -> Tensor:
    """Shift ``1/shift_div`` of the channels of frame-folded features ``[N*T, C, H, W]`` one step in time.

    As in TSM and mmaction2: channels ``[0, C/shift_div)`` take the next frame's values, channels
    ``[C/shift_div, 2C/shift_div)`` the previous frame's, the rest stay; the ends are zero-padded.
    """
    nt, c, h, w = x.shape
    if nt % num_frames:
        raise ValueError(f"cannot unfold {nt} frame-folded samples into clips of {num_frames} frames")
    clips = x.reshape(nt // num_frames, num_frames, c, h, w)
    fold = c // shift_div
    out = clips.new_zeros(clips.shape)
    out[:, :-1, :fold] = clips[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = clips[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = clips[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


class TSM(FrameResNet):
    """Temporal Shift Module network over a torchvision ResNet ("residual shift", TSM's and mmaction2's default).

    Before the first convolution of a residual branch, 1/8 of the channels move one frame forward in time and
    1/8 one frame backward (zero-padded at the clip's ends); the shortcut is not shifted. The shift has no
    parameters, so the weights are a torchvision ResNet's (ImageNet weights load as they are) and the state
    dict is TSN's. As in TSM and mmaction2, networks with 23 or more blocks in ``layer3`` (ResNet-101/152)
    shift every second block. The shift uses the number of frames ``T`` of each input clip, so any ``T``
    works. Feature map ``[N, C', T, H/32, W/32]``; the head is TSN's (consensus by averaging).

    Args:
        num_classes: number of classes.
        backbone: one of ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``resnet152``.
        num_segments: frames per clip the model is meant for (8 in TSM's recipes); documentation only, the
            shift reads ``T`` from the input.
        shift_div: ``1/shift_div`` of the channels shift each way (8 in TSM).
        pretrained: ``None``, a torchvision weight name such as ``IMAGENET1K_V1``, or a local file: a plain
            ResNet state dict, a checkpoint of this model, or an mmaction2 TSM checkpoint. A classifier in the
            file is kept when its number of classes matches and re-initialised otherwise.
        dropout: dropout before the classifier.
        init_std: standard deviation of the classifier's initial weights.

    Configure from LightningCLI (clips of ``num_segments`` frames, ``SampleFrames(clip_len=1, num_clips=8)``)::

        student:
          class_path: reskd_lightning.models.TSM
          init_args:
            backbone: resnet50
            num_segments: 8
            pretrained: IMAGENET1K_V1
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        num_segments: int = 8,
        shift_div: int = 8,
        pretrained: str | None = None,
        dropout: float = 0.5,
        init_std: float = 0.001,
    ) -> None:
        if num_segments < 1:
            raise ValueError(f"num_segments must be positive, got {num_segments}")
        if shift_div < 2:
            raise ValueError(f"shift_div must be at least 2 (two folds of C/shift_div channels), got {shift_div}")
        super().__init__(num_classes, backbone=backbone, pretrained=pretrained, dropout=dropout, init_std=init_std)
        self.num_segments = num_segments
        self.shift_div = shift_div
        shift_every = 2 if len(self.backbone.layer3) >= 23 else 1
        #: ``(layer, block)`` indices of the blocks whose residual branch is shifted.
        self.shifted_blocks = frozenset(
            (i, j)
            for i in range(1, 5)
            for j in range(len(getattr(self.backbone, f"layer{i}")))
            if j % shift_every == 0
        )

    def _block(self, block: nn.Module, x: Tensor, num_frames: int, shift: bool) -> Tensor:
        # torchvision's BasicBlock/Bottleneck forward, with the shift in front of the residual branch.
        out = temporal_shift(x, num_frames, self.shift_div) if shift else x
        out = block.relu(block.bn1(block.conv1(out)))
        if isinstance(block, Bottleneck):
            out = block.relu(block.bn2(block.conv2(out)))
            out = block.bn3(block.conv3(out))
        elif isinstance(block, BasicBlock):
            out = block.bn2(block.conv2(out))
        else:  # pragma: no cover - torchvision ResNets hold only these two
            raise TypeError(f"unsupported residual block {type(block).__name__}")
        identity = block.downsample(x) if block.downsample is not None else x
        return block.relu(out + identity)

    def forward_features(self, x: Tensor) -> Tensor:
        n, c, t, h, w = x.shape
        y = self._stem(x.transpose(1, 2).reshape(n * t, c, h, w))
        for i in range(1, 5):
            for j, block in enumerate(getattr(self.backbone, f"layer{i}")):
                y = self._block(block, y, t, (i, j) in self.shifted_blocks)
        return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)


for _name in RESNETS:
    register_model(f"tsm_r{_name[len('resnet'):]}")(_builder(TSM, _name))
