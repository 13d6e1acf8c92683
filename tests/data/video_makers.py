"""Videos whose frames are easy to get wrong, written with PyAV for the decoder-integrity and check-data
tests.

Every frame is numbered (its index drawn in binary as large blocks, read back by ``frame_number``) over a
moving gradient, so an off-by-one read shows as the wrong number, not just as different pixels.

- ``write_packed_mpeg4_avi``: MPEG-4 Part 2 with B-frames in "packed bitstream" layout, as DivX 5 and Xvid
  wrote AVIs (the P-frame and the next B-frame in one packet, then an empty N-VOP packet).
- ``write_spliced_h264_mp4``: H.264 4:4:4 whose second part was encoded with other settings and carries its
  parameter sets (SPS/PPS) once, in its first keyframe, while the MP4 header holds the first part's: decoded
  from the start it is right; decoded from a later keyframe after a seek, the decoder uses the wrong PPS.
- ``write_damaged_h264_mp4``: one P-frame's data cut in half, so even a sequential decode flags it corrupt.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

HEIGHT, WIDTH = 96, 128
BITS = 7  # frame numbers up to 127, one 16-px block per bit along the bottom
_TB = Fraction(1, 30)


def numbered_frames(num_frames: int) -> np.ndarray:
    """RGB frames ``[T, 96, 128, 3]``: a gradient moving 3 px a frame, frame ``i`` written in binary below."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.zeros((num_frames, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(num_frames):
        frames[i, ..., 0] = ((x + 3 * i) * 3) % 256
        frames[i, ..., 1] = ((2 * y + i) * 2) % 256
        frames[i, ..., 2] = (x + y + 5 * i) % 256
        frames[i, HEIGHT - 16 :] = 0
        for bit in range(BITS):
            if (i >> bit) & 1:
                frames[i, HEIGHT - 14 : HEIGHT - 2, bit * 16 + 2 : bit * 16 + 14] = 255
    return frames


def frame_number(frame: torch.Tensor | np.ndarray) -> int:
    """The number ``numbered_frames`` drew on ``frame`` ``[H, W, 3]`` (lossy codecs keep blocks readable)."""
    band = np.asarray(frame)[HEIGHT - 12 : HEIGHT - 4].astype(np.float32).mean(axis=(0, 2))
    return sum(1 << bit for bit in range(BITS) if band[bit * 16 + 4 : bit * 16 + 12].mean() > 128)


def full_decode(path: Path) -> torch.Tensor:
    """Every frame, decoded from the start with PyAV alone: what the library's reads must equal."""
    with av.open(str(path)) as container:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))


def _encode(
    codec: str, frames: np.ndarray, pix_fmt: str, options: dict[str, str], **settings: int
) -> list[av.Packet]:
    """Encode ``frames`` with a bare codec context (no container: headers in-band), in decode order."""
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = WIDTH, HEIGHT, pix_fmt
    context.time_base, context.framerate, context.thread_count = _TB, Fraction(30), 1
    for name, value in settings.items():
        setattr(context, name, value)
    context.options = options
    packets = []
    for i, array in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(array, format="rgb24")
        frame.pts = i
        packets += context.encode(frame)
    return packets + context.encode(None)


def _mux(container: av.container.OutputContainer, stream: av.VideoStream, data: bytes, pts: int, dts: int,
         key: bool) -> None:
    packet = av.Packet(data)
    packet.stream, packet.time_base = stream, _TB
    packet.pts, packet.dts, packet.is_keyframe = pts, dts, key
    container.mux(packet)


# -- MPEG-4 Part 2, packed B-frames ---------------------------------------------------------------------------

_VOP = b"\x00\x00\x01\xb6"  # VOP start code; the next two bits are the coding type (I, P, B, S)
# Xvid writes this DivX user data to mark a packed bitstream; FFmpeg's decoder unpacks on the trailing "p".
_PACKED_MARK = b"\x00\x00\x01\xb2DivX503b1393p"


def _vop_type(packet: bytes) -> str:
    return "IPBS"[packet[packet.index(_VOP) + 4] >> 6]


def _n_vop(reference: bytes, time_increment_bits: int = 5) -> bytes:
    """A not-coded P-VOP (DivX's "N-VOP") with ``reference``'s time stamp; 30 fps: 5 time-increment bits."""
    head = reference.index(_VOP) + 4
    bits = "".join(f"{b:08b}" for b in reference[head : head + 8])
    k = 2
    while bits[k] == "1":  # modulo_time_base: ones, then a zero
        k += 1
    vop = "01" + bits[2 : k + 1] + bits[k + 1 : k + 3 + time_increment_bits] + "0"  # ... marker, vop_coded=0
    vop += "0" + "1" * (-(len(vop) + 1) % 8)  # stuffing to the byte
    return _VOP + int(vop, 2).to_bytes(len(vop) // 8, "big")


def write_packed_mpeg4_avi(path: Path, num_frames: int = 61, b_frames: int = 2) -> Path:
    """An MPEG-4 Part 2 AVI with ``b_frames`` B-frames between references, in packed-bitstream layout.

    The encoder's packets (decode order I0 P3 B1 B2 P6 ...) are repacked one AVI chunk per frame, as Xvid's
    packed mode stores them: [I0] [P3 B1] [B2] [N-VOP] [P6 B4] ... (FFmpeg's ``mpeg4_unpack_bframes`` filter
    undoes exactly this), with the DivX user data that tells decoders so.
    """
    # No scene cuts: the gradient moves fast enough for the encoder to make every third frame an I-frame.
    encoded = _encode("mpeg4", numbered_frames(num_frames), "yuv420p", {"sc_threshold": "1000000000"},
                      max_b_frames=b_frames, gop_size=12)
    packets = [bytes(p) for p in encoded]
    kinds = [_vop_type(p) for p in packets]
    chunks: list[tuple[bytes, bool]] = []
    i = 0
    while i < len(packets):
        ref, key = packets[i], kinds[i] == "I"
        if key:  # the mark goes into every keyframe's header, right before its VOP
            ref = ref.replace(_VOP, _PACKED_MARK + _VOP, 1)
        j = i + 1
        while j < len(packets) and kinds[j] == "B":
            j += 1
        b = packets[i + 1 : j]
        if b:
            chunks += [(ref + b[0], key), *[(x, False) for x in b[1:]], (_n_vop(packets[i]), False)]
        else:
            chunks.append((ref, key))
        i = j
    assert len(chunks) == num_frames, (len(chunks), num_frames)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.codec_tag = "XVID"
        for k, (data, key) in enumerate(chunks):
            _mux(container, stream, data, k, k, key)
    return path


# -- H.264 with parameter sets a seek skips -------------------------------------------------------------------

_X264 = "keyint=15:min-keyint=15:scenecut=0:bframes=2:b-adapt=0"


def _nal_units(annexb: bytes) -> list[bytes]:
    """The NAL units of an Annex B packet, each with its start code."""
    starts = []
    i = annexb.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i - 1 if i and annexb[i - 1] == 0 else i)
        i = annexb.find(b"\x00\x00\x01", i + 3)
    return [annexb[a:b] for a, b in zip(starts, starts[1:] + [len(annexb)])]


def _nal_type(unit: bytes) -> int:
    return unit[unit.index(b"\x00\x01") + 2] & 0x1F


def write_spliced_h264_mp4(path: Path, second_part: str, num_frames: int = 90, splice_at: int = 45) -> Path:
    """H.264 4:4:4 (keyframes every 15 frames, 2 B-frames): frames ``[0, splice_at)`` encoded with x264's
    defaults, the rest with the x264 parameters ``second_part`` on top (e.g. ``8x8dct=0``), whose SPS/PPS
    travel only with the second part's first keyframe.

    The MP4 header (avcC) holds the first part's parameter sets, as when the first encoder's header is kept
    for a stream that changes its settings later. After a seek to a keyframe past the second part's first,
    FFmpeg decodes with the first part's PPS: ``8x8dct=0`` logs "error while decoding MB" and flags frames
    corrupt, ``cabac=0`` makes packets fail, ``chroma-qp-offset=6`` gives wrong colours without a sign.
    """
    frames = numbered_frames(num_frames)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        stream.codec_context.thread_count = 1
        stream.options = {"x264-params": _X264}
        for array in frames[:splice_at]:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
        first = True
        second = _encode("libx264", frames[splice_at:], "yuv444p", {"x264-params": f"{_X264}:{second_part}"})
        for packet in second:
            data = bytes(packet)
            if packet.is_keyframe and not first:  # SPS (7) and PPS (8) only in the first keyframe
                data = b"".join(u for u in _nal_units(data) if _nal_type(u) not in (7, 8))
            first = first and not packet.is_keyframe
            _mux(container, stream, data, packet.pts + splice_at, packet.dts + splice_at, packet.is_keyframe)
    return path


def write_damaged_h264_mp4(path: Path, damaged: int = 20, num_frames: int = 45) -> Path:
    """H.264 4:2:0 without B-frames (IDR keyframes every 15 frames) whose frame ``damaged`` lost the second
    half of its data: decoding it, from the start or not, runs out of slice data ("error while decoding MB"),
    conceals the rest and flags the frame corrupt."""
    options = {"x264-params": _X264 + ":bframes=0"}
    packets = _encode("libx264", numbered_frames(num_frames), "yuv420p", options)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)  # only a muxing target: never opened as an encoder
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for packet in packets:
            data = bytes(packet)
            if packet.pts == damaged:
                data = data[: len(data) // 2]
            _mux(container, stream, data, packet.pts, packet.dts, packet.is_keyframe)
    return path
