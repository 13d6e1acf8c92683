"""The ``"rawframes"`` decoder: mmaction2 frame folders (``img_00001.jpg`` ...), read with Pillow.

Pillow is imported when a frame is read, not before.
"""

from __future__ import annotations

import os
import string

import numpy as np
import torch
from torch import Tensor

from reskd_lightning.data.decoders.base import VideoDecodeError, VideoHandle
from reskd_lightning.data.decoders.checks import check_indices


def _split_template(filename_tmpl: str) -> tuple[str, str]:
    """The literal text before and after the one replacement field of ``filename_tmpl``."""
    try:
        parts = list(string.Formatter().parse(filename_tmpl))
        filename_tmpl.format(1)
    except (ValueError, IndexError, KeyError) as e:
        raise ValueError(
            "RawFrameDecoder: filename_tmpl must be a str.format template with one field for the frame "
            f"number, like 'img_{{:05}}.jpg', got {filename_tmpl!r} ({e})"
        ) from None
    fields = [p for p in parts if p[1] is not None]
    if len(fields) != 1 or "/" in filename_tmpl or os.sep in filename_tmpl:
        raise ValueError(
            "RawFrameDecoder: filename_tmpl must be a file name with exactly one field for the frame "
            f"number, like 'img_{{:05}}.jpg', got {filename_tmpl!r}"
        )
    k = parts.index(fields[0])
    prefix = "".join(p[0] for p in parts[: k + 1])
    suffix = "".join(p[0] for p in parts[k + 1 :])
    return prefix, suffix


class RawFrameVideoHandle(VideoHandle):
    """A folder of frame images, frame ``i`` in ``filename_tmpl.format(start_index + i)``."""

    def __init__(self, path: str, filename_tmpl: str, start_index: int):
        self.path = path
        self.filename_tmpl = filename_tmpl
        self.start_index = start_index
        self._prefix, self._suffix = _split_template(filename_tmpl)
        self._num_frames: int | None = None

    def _file(self, index: int) -> str:
        return os.path.join(self.path, self.filename_tmpl.format(self.start_index + index))

    def _missing(self, index: int) -> VideoDecodeError:
        return VideoDecodeError(
            f"frame {index} of {self.path!r} is missing: no file {os.path.basename(self._file(index))!r} in it "
            f"(filename_tmpl={self.filename_tmpl!r}, start_index={self.start_index})"
        )

    @property
    def num_frames(self) -> int:
        """Files in the folder named like the template (its text before and after the frame number)."""
        if self._num_frames is None:
            pre, suf = self._prefix, self._suffix
            count = 0
            with os.scandir(self.path) as entries:
                for entry in entries:
                    name = entry.name
                    if len(name) > len(pre) + len(suf) and name.startswith(pre) and name.endswith(suf):
                        count += name[len(pre) : len(name) - len(suf)].strip().isdigit()
            if count == 0:
                raise VideoDecodeError(
                    f"cannot decode frame folder {self.path!r}: no files named like {self.filename_tmpl!r}"
                )
            self._num_frames = count
        return self._num_frames

    def _read(self, index: int) -> Tensor:
        # Pillow (libjpeg-turbo, libpng): torchvision's image decoding is deprecated since 0.29.
        from PIL import Image, UnidentifiedImageError  # lazy: only users of this decoder need Pillow

        path = self._file(index)
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            name = os.path.basename(path)
            reason = str(e).replace(repr(path), repr(name))  # Pillow's message names the file's whole path
            raise VideoDecodeError(f"cannot decode frame {index} of {self.path!r}: file {name!r} ({reason})") from e
        return torch.from_numpy(array.copy())

    def get_frames(self, indices: np.ndarray, bounds: np.ndarray | None = None) -> Tensor:
        """The frames at ``indices`` as uint8 ``[len(indices), H, W, 3]`` RGB; each file is read once.

        An index past the folder's last file gets the last frame; a missing file inside the range is an error.
        ``bounds`` is ignored (every frame of a folder is equally cheap).
        """
        indices = check_indices(indices, self.path)
        targets = indices.copy()
        for i in np.unique(indices).tolist():
            if not os.path.isfile(self._file(i)):
                if i < self.num_frames:
                    raise self._missing(i)
                targets[indices == i] = self.num_frames - 1
        wanted, inverse = np.unique(targets, return_inverse=True)
        if not os.path.isfile(self._file(int(wanted[-1]))):  # the last frame itself (numbering with gaps)
            raise self._missing(int(wanted[-1]))
        images = [self._read(i) for i in wanted.tolist()]
        shapes = {tuple(im.shape) for im in images}
        if len(shapes) > 1:
            raise VideoDecodeError(f"frames of {self.path!r} differ in size: {sorted(shapes)}")
        return torch.stack(images)[torch.from_numpy(inverse.reshape(-1))]


class RawFrameDecoder:
    """Read mmaction2 frame folders: frame ``i`` of a folder is ``filename_tmpl.format(start_index + i)``.

    JPEG and PNG frames are decoded with Pillow. ``num_frames`` counts the files named like the template;
    an index past the last one gets the last frame; a missing file in between raises ``VideoDecodeError``.

    Configured through ``VideoDataModule`` (used for rawframe lists, ``frame_dir total_frames label``)::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            filename_tmpl: img_{:05}.jpg
            start_index: 1
    """

    def __init__(self, filename_tmpl: str = "img_{:05}.jpg", start_index: int = 1):
        if not isinstance(filename_tmpl, str):
            raise ValueError(f"RawFrameDecoder: filename_tmpl must be a string, got {filename_tmpl!r}")
        _split_template(filename_tmpl)
        if isinstance(start_index, bool) or not isinstance(start_index, int) or start_index < 0:
            raise ValueError(f"RawFrameDecoder: start_index must be an integer >= 0, got {start_index!r}")
        self.filename_tmpl = filename_tmpl
        self.start_index = start_index

    def __repr__(self) -> str:
        return f"{type(self).__name__}(filename_tmpl={self.filename_tmpl!r}, start_index={self.start_index})"

    def open(self, path: str | os.PathLike) -> RawFrameVideoHandle:
        """Open the frame folder ``path``: ``FileNotFoundError`` if it is not a folder."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"frame folder {path!r} does not exist")
        return RawFrameVideoHandle(path, self.filename_tmpl, self.start_index)
