"""Video decoders behind one small interface, chosen by name.

A decoder opens a video (or a folder of frames) as a ``VideoHandle``, a context manager that knows its
``num_frames`` and returns the frames asked for as a uint8 tensor ``[T, H, W, 3]``, in the order asked.

- ``"pyav"``: ``PyAVDecoder``, any container and codec FFmpeg reads. Decodes sparsely: it seeks to the
  keyframe before each wanted frame and decodes forward only as far as needed; optionally snaps indices to
  keyframes. Where seeking would give other frames than a sequential decode (frames that decode corrupt after
  a seek, DivX/Xvid packed B-frames) it decodes from the start; ``sequential=True`` always does.
- ``"rawframes"``: ``RawFrameDecoder``, mmaction2 frame folders (``img_00001.jpg`` ...).
- ``"torchcodec"``: ``TorchCodecDecoder``, an optional backend (needs ``torchcodec`` and FFmpeg's shared
  libraries).

Decoding libraries are imported only when a decoder opens a file, so a missing optional backend costs nothing
until it is chosen.

Layout: ``base`` (the interface: ``Decoder``, ``VideoHandle``, ``VideoDecodeError``), ``checks`` (argument
checks the backends share), one module per backend (``pyav`` with ``pyav_timeline``, ``rawframes``,
``torchcodec``) and ``registry`` (``DECODERS``, ``build_decoder``).
"""

from reskd_lightning.data.decoders.base import Decoder, DecoderFactory, VideoDecodeError, VideoHandle
from reskd_lightning.data.decoders.pyav import PyAVDecoder, PyAVVideoHandle
from reskd_lightning.data.decoders.rawframes import RawFrameDecoder, RawFrameVideoHandle
from reskd_lightning.data.decoders.registry import DECODERS, build_decoder
from reskd_lightning.data.decoders.torchcodec import TorchCodecDecoder, TorchCodecVideoHandle

__all__ = [
    "DECODERS",
    "Decoder",
    "DecoderFactory",
    "PyAVDecoder",
    "PyAVVideoHandle",
    "RawFrameDecoder",
    "RawFrameVideoHandle",
    "TorchCodecDecoder",
    "TorchCodecVideoHandle",
    "VideoDecodeError",
    "VideoHandle",
    "build_decoder",
]
