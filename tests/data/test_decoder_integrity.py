"""The PyAV decoder's promise, on files where seeking gets it wrong: frames equal a full sequential decode, or
the read fails naming the frame. Issue 12's reproductions, on videos the tests encode (``video_makers``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from video_makers import (
    frame_number,
    full_decode,
    write_damaged_h264_mp4,
    write_packed_mpeg4_avi,
    write_spliced_h264_mp4,
)

from reskd_lightning.data import PyAVDecoder, VideoDecodeError


def misread(path: Path, reference: torch.Tensor, indices: list[int]) -> dict[int, int]:
    """Frame -> the frame read instead, for each of ``indices`` read alone from a fresh handle (as a training
    item reads; validation reads the same frames every epoch), where the read differs from ``reference``."""
    wrong = {}
    for i in indices:
        with PyAVDecoder().open(path) as video:
            frame = video.get_frames(np.array([i]))[0]
        if not torch.equal(frame, reference[i]):
            wrong[i] = frame_number(frame)
    return wrong


# -- MPEG-4 Part 2 with packed B-frames ----------------------------------------------------------------------


@pytest.mark.parametrize("b_frames", [1, 2])
def test_every_frame_of_a_packed_b_frame_avi_reads_as_in_a_sequential_decode(tmp_path: Path, b_frames: int) -> None:
    path = write_packed_mpeg4_avi(tmp_path / "xvid_packed.avi", b_frames=b_frames)
    reference = full_decode(path)
    assert [frame_number(f) for f in reference] == list(range(61))  # the sequential decode is in display order
    # Before the fix, frames were found by the packets' pts, one off here: frame i came back as frame i + 1
    # for every B-frame position (a third of the frames with two B-frames, half with one).
    assert misread(path, reference, list(range(61))) == {}
    clip = np.array([58, 3, 4, 31, 30, 17])  # a sparse clip, unsorted
    with PyAVDecoder().open(path) as video:
        assert torch.equal(video.get_frames(clip), reference[clip])


# -- frames that decode corrupt after a seek ------------------------------------------------------------------


@pytest.mark.parametrize(
    "second_part, symptom",
    [
        ("8x8dct=0", "decoded corrupt"),  # "error while decoding MB": frames flagged corrupt, mean diff ~100
        ("cabac=0", "failed to decode"),  # the first part's CABAC PPS on CAVLC slices: packets fail
    ],
)
def test_frames_that_decode_corrupt_after_a_seek_come_from_a_sequential_decode(
    tmp_path: Path, second_part: str, symptom: str
) -> None:
    # Keyframes every 15 frames; from frame 45 on the stream needs parameter sets sent only with frame 45,
    # so a seek to keyframe 60 or 75 decodes with the MP4 header's (the first part's).
    path = write_spliced_h264_mp4(tmp_path / "spliced444.mp4", second_part)
    reference = full_decode(path)
    assert misread(path, reference, list(range(60, 90))) == {}
    with PyAVDecoder().open(path) as video:
        dense = np.arange(62, 90)  # a dense clip (kinetics400-like) from a keyframe after the splice on
        assert torch.equal(video.get_frames(dense), reference[dense])
        assert video.recovered and symptom in video.recovered[0], video.recovered
    with PyAVDecoder().open(path) as video:  # where seeking works it is still used, and nothing is noted
        assert torch.equal(video.get_frames(np.array([35])), reference[[35]])
        assert video.seeks == 1 and video.frames_decoded <= 6 and video.recovered == []


def test_a_frame_corrupt_even_in_a_sequential_decode_is_an_error_naming_file_and_frame(tmp_path: Path) -> None:
    path = write_damaged_h264_mp4(tmp_path / "damaged.mp4", damaged=20)  # IDR keyframes at 0, 15, 30
    reference = full_decode(path)
    with PyAVDecoder().open(path) as video:
        assert torch.equal(video.get_frames(np.array([12, 31])), reference[[12, 31]])  # GOPs without damage
    with PyAVDecoder().open(path) as video:
        with pytest.raises(VideoDecodeError, match=r"damaged.mp4'?: frame 20 decodes corrupt even from the start"):
            video.get_frames(np.array([25]))  # decoded from keyframe 15, through the damaged frame 20


def test_the_sequential_decoder_decodes_from_the_start_without_seeking(tmp_path: Path) -> None:
    path = write_spliced_h264_mp4(tmp_path / "spliced444.mp4", "chroma-qp-offset=6")
    reference = full_decode(path)
    indices = np.array([80, 3, 62])
    with PyAVDecoder(sequential=True).open(path) as video:
        assert torch.equal(video.get_frames(indices), reference[indices])
        assert video.seeks == 0 and video.frames_decoded == 81
    # The seeking decoder cannot see this one: a chroma offset taken from the wrong PPS leaves no error and no
    # flag, only wrong colours (what `reskd check-data --deep` finds by comparing with the sequential decoder).
    wrong = misread(path, reference, [62, 80])
    assert sorted(wrong) == [62, 80] and wrong == {62: 62, 80: 80}  # the right frame, in the wrong colours
