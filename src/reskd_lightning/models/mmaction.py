"""mmaction2 checkpoints (the paper's released teachers) mapped onto our CNNs' key names.

An mmaction2 recognizer saves ``{"state_dict": {"backbone.*", "cls_head.*"}, "meta": ...}``. Its ResNets
(``ResNet``, ``ResNetTSM``, ``ResNet3dSlowOnly``) wrap every convolution with its norm in a ``ConvModule``:
``backbone.conv1.conv.weight``, ``backbone.conv1.bn.*``, ``backbone.layer1.0.conv2.conv.weight``,
``backbone.layer1.0.downsample.conv.weight``, ``backbone.layer1.0.downsample.bn.*``. ``ResNetTSM`` wraps the
first convolution of a residual branch in ``TemporalShift(net=conv)``, which adds ``.net``
(``backbone.layer1.0.conv1.conv.net.weight``). The classifier is ``cls_head.fc_cls.*``.

Models that read such files define ``convert_mmaction_state_dict(state) -> state``;
:func:`~reskd_lightning.models.weights.load_weights` calls it when :func:`is_mmaction_state_dict` says so.
"""

from __future__ import annotations

import re
from typing import Mapping

from torch import Tensor

#: A key that only an mmaction2 ResNet (2-D or 3-D) writes: a ConvModule's ``conv``/``bn`` inside ``conv1``, a
#: block's ``convK`` or its ``downsample``.
_SWIN_KEY = re.compile(r"^backbone\.layers\.\d+\.blocks\.")
_RESNET_KEY = re.compile(r"^backbone\.(conv1|layer\d+\.\d+\.(conv\d|downsample))\.(conv|bn)\.")
_CONV_MODULE = re.compile(r"^(?P<path>backbone\.(?:layer\d+\.\d+\.)?)(?P<name>conv\d|downsample)\.(?P<part>conv|bn)\.")

#: mmaction2 keys that hold no weights of the network (buffers of the data pre-processor of mmaction2 1.x).
IGNORED_PREFIXES: tuple[str, ...] = ("data_preprocessor.",)


def is_mmaction_state_dict(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is in mmaction2's layout: an mmaction2 classifier, ConvModule-style ResNet keys, or
    Video Swin blocks (``backbone.layers.I.blocks.J``; a backbone-only Swin file has no classifier)."""
    return any(
        k.startswith("cls_head.fc_cls.") or _RESNET_KEY.match(k) or _SWIN_KEY.match(k) for k in state
    )


def mmaction_head_to_ours(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``cls_head.fc_cls.*`` -> ``cls_head.fc.*``; other keys unchanged, pre-processor buffers dropped."""
    out = {}
    for key, value in state.items():
        if key.startswith(IGNORED_PREFIXES):
            continue
        if key.startswith("cls_head.fc_cls."):
            key = "cls_head.fc." + key[len("cls_head.fc_cls.") :]
        out[key] = value
    return out


def mmaction_resnet_to_torchvision(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """mmaction2 ResNet keys (2-D, TSM or 3-D) -> torchvision ResNet names under ``backbone.``, head -> ours.

    ``conv1.conv`` -> ``conv1``, ``conv1.bn`` -> ``bn1``, ``layerI.J.convK.conv[.net]`` -> ``layerI.J.convK``,
    ``layerI.J.convK.bn`` -> ``layerI.J.bnK``, ``downsample.conv``/``.bn`` -> ``downsample.0``/``.1``. Keys
    that match none of these are kept as they are, so a checked load reports them as unexpected.
    """
    out = {}
    for key, value in mmaction_head_to_ours(state).items():
        match = _CONV_MODULE.match(key)
        if match:
            path, name, part = match["path"], match["name"], match["part"]
            rest = key[match.end() :]
            if part == "conv" and rest.startswith("net."):  # TSM's TemporalShift(net=conv) wrapper
                rest = rest[len("net.") :]
            if name == "downsample":
                key = f"{path}downsample.{0 if part == 'conv' else 1}.{rest}"
            elif part == "conv":
                key = f"{path}{name}.{rest}"
            else:
                key = f"{path}bn{name[len('conv'):]}.{rest}"
        out[key] = value
    return out
