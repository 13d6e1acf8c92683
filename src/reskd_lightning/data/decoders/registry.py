"""Decoders by name: ``DECODERS`` (name -> factory) and ``build_decoder``.

The backend modules import their decoding library (PyAV, Pillow, torchcodec) only when a video is opened, so
registering them here costs nothing: a missing optional backend is an error only once it is chosen and used.
"""

from __future__ import annotations

from typing import Any

from reskd_lightning.data.decoders.base import Decoder, DecoderFactory
from reskd_lightning.data.decoders.pyav import PyAVDecoder
from reskd_lightning.data.decoders.rawframes import RawFrameDecoder
from reskd_lightning.data.decoders.torchcodec import TorchCodecDecoder

#: Decoders by name, for ``build_decoder`` and ``VideoDataModule(decoder=...)``.
DECODERS: dict[str, DecoderFactory] = {
    "pyav": PyAVDecoder,
    "rawframes": RawFrameDecoder,
    "torchcodec": TorchCodecDecoder,
}


def build_decoder(name: str, **kwargs: Any) -> Decoder:
    """The decoder registered as ``name``, built with ``kwargs``; an unknown name lists the known ones."""
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ValueError(f"unknown video decoder {name!r}; known decoders are {sorted(DECODERS)}") from None
    try:
        return cls(**kwargs)
    except TypeError as e:  # an argument this decoder does not take
        raise TypeError(f"decoder {name!r} ({getattr(cls, '__name__', cls)}): {e}") from e
