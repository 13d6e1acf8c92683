"""The built-in demo dataset: small real videos whose class is the orientation of a striped disc's stripes.

Each video (16 frames, 128 px) shows two moving discs filled with sine gratings over a tinted, noisy texture:
the *object*, radius about 15 px, stripes about 7 px apart at 0, 45, 90 or 135 degrees (+-8): the class; and a
*distractor* of about its size whose stripes are twice as wide (about 14 px), at any orientation. One scale
factor in [0.9, 1.1] per video sets both; position, motion, stripe phase and contrast differ per video.

The design makes the paper's finding visible (Ma et al., NeurIPS 2022; modes of ``reskd analyze``):

* at the student's 56 px, half the teacher's 112 px, the object's stripes are 3.5 px apart, still resolved:
  the class survives a trip down to 56 px and back (mode D stays near A);
* a network trained at 112 px and fed 56 px (mode B) sees the object's stripes at a width it never saw, the
  width of the distractor's stripes (which carry no class) at 112 px: it falls to chance (it answers one class
  for every video in the README's three seeds);
* a network trained at 56 px (C) sees the object about 13 px across, which its ResNet stem shrinks 4x before
  the first block: it learns the class less reliably than the same recipe at 112 px, and a 112-px teacher's
  feature maps (ResKD, E) help it.

The classes are flip-sensitive (a mirror turns 45 into 135 degrees): the demo configs set ``flip: false``.
Videos are H.264 (libx264, yuv420p, crf 18) ``.mp4`` files written with PyAV, listed in mmaction2 video lists;
writing them shows a progress bar (tqdm, on stderr)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

#: The demo dataset's classes, in label order.
DEMO_CLASSES: tuple[str, ...] = ("stripes_0", "stripes_45", "stripes_90", "stripes_135")
_ANGLES: tuple[float, ...] = (0.0, 45.0, 90.0, 135.0)

#: Environment variable naming the default demo folder (else ``~/.cache/reskd_lightning/demo``).
DEMO_DIR_ENV = "RESKD_DEMO_DIR"

_MARKER = ".complete"
_VERSION = 3
_FPS = 10


def default_demo_dir() -> Path:
    """The demo data's default folder: ``$RESKD_DEMO_DIR`` or ``~/.cache/reskd_lightning/demo``."""
    env = os.environ.get(DEMO_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reskd_lightning" / "demo"


def write_video(
    path: str | os.PathLike, frames: np.ndarray, fps: int = _FPS, crf: int = 18, preset: str = "veryfast"
) -> Path:
    """Write RGB uint8 frames ``[T, H, W, 3]`` (even H, W) as H.264 yuv420p; the suffix picks the format."""
    import av  # lazy, as in decoders.py

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs an even height and width, got {height}x{width}")
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        stream.codec_context.thread_count = 1  # tiny frames: threads cost more than they give
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return path


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Random texture ``[size, size]`` in about [-1, 1]: a ``cells x cells`` noise grid, upsampled."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    pos = np.linspace(0, cells, size, dtype=np.float32)
    i0 = np.minimum(pos.astype(int), cells - 1)
    f = pos - i0
    rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _bounce(start: float, velocity: float, low: float, high: float, steps: int) -> np.ndarray:
    """Positions of a point moving at ``velocity`` and bouncing between ``low`` and ``high``."""
    span = high - low
    raw = start - low + velocity * np.arange(steps)
    folded = np.mod(raw, 2 * span)
    return low + np.where(folded > span, 2 * span - folded, folded)


def _grating_disc(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, radius: float, period: float, angle: float, phase: float
) -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged disc mask and a sine grating of ``period`` pixels across direction ``angle``."""
    mask = np.clip(radius + 0.5 - np.hypot(yy - cy, xx - cx), 0.0, 1.0)
    wave = np.sin(2 * np.pi * ((xx * np.cos(angle) + yy * np.sin(angle)) / period) + phase)
    return mask, wave


#: The class object's disc radius and grating period, in pixels of a 128-px frame (the teacher's 112-px view
#: is a crop of it, so the same pixels), and its contrast range. Each video scales radius and period by one
#: factor in [0.9, 1.1].
_RADIUS, _PERIOD, _CONTRAST = 15.0, 7.0, (50.0, 90.0)
#: Distractors: 1 to ``_MAX_DISTRACTORS`` discs of any orientation, about the object's size, with a grating of
#: ``_TWIN`` times its period (so at half the resolution they look like the object at full resolution).
_TWIN, _MAX_DISTRACTORS, _DISTRACTOR_RADIUS, _DISTRACTOR_CONTRAST = 2.0, 1, (0.8, 1.0), (30.0, 60.0)
#: The class object stays this far (at 128 px) from the frame's border, inside the 112-px centre crop.
_MARGIN = 8.0


def _add_disc(
    frames: np.ndarray,
    rng: np.random.Generator,
    radius: float,
    period: float,
    angle: float,
    contrast: float,
    margin: float,
) -> None:
    """Draw into ``frames`` a disc of a sine grating (``period`` px across direction ``angle``) that moves in a
    straight line, bouncing off the borders (``margin`` px in), its phase drifting."""
    num_frames, size = frames.shape[:2]
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    low, high = radius + margin, size - radius - margin
    speed, heading = rng.uniform(0.5, 2.5) * size / 128.0, rng.uniform(0, 2 * np.pi)
    ys = _bounce(rng.uniform(low, high), speed * np.sin(heading), low, high, num_frames)
    xs = _bounce(rng.uniform(low, high), speed * np.cos(heading), low, high, num_frames)
    phase, drift = rng.uniform(0, 2 * np.pi), rng.uniform(-0.6, 0.6)
    for t in range(num_frames):
        mask, wave = _grating_disc(yy, xx, ys[t], xs[t], radius, period, angle, phase + drift * t)
        frames[t] += mask[:, :, None] * ((128.0 + contrast * wave)[:, :, None] - frames[t])


def render_demo_video(
    class_index: int, rng: np.random.Generator, num_frames: int = 16, size: int = 128
) -> np.ndarray:
    """Frames ``[num_frames, size, size, 3]``, uint8 RGB, of a demo video of ``DEMO_CLASSES[class_index]``."""
    if not 0 <= class_index < len(DEMO_CLASSES):
        raise ValueError(f"class_index must be in [0, {len(DEMO_CLASSES)}), got {class_index}")
    scale = size / 128.0
    # Background: a tinted multi-scale texture, static, plus fresh noise every frame.
    texture = 0.6 * _smooth_noise(rng, size, 4) + 0.4 * _smooth_noise(rng, size, max(4, size // 6))
    tint = rng.uniform(0.7, 1.1, size=3).astype(np.float32)
    background = (110.0 + 30.0 * texture)[:, :, None] * tint
    frames = np.broadcast_to(background, (num_frames, size, size, 3)).copy()
    frames += 6.0 * rng.standard_normal(frames.shape, dtype=np.float32)
    # Distractors first (any orientation, anywhere), then the object, on top, with the class's orientation.
    k = rng.uniform(0.9, 1.1) * scale
    for _ in range(rng.integers(1, _MAX_DISTRACTORS + 1)):
        radius = _RADIUS * k * rng.uniform(*_DISTRACTOR_RADIUS)
        contrast = rng.uniform(*_DISTRACTOR_CONTRAST)
        _add_disc(frames, rng, radius, _PERIOD * k * _TWIN, rng.uniform(0, np.pi), contrast, 0.0)
    angle = np.deg2rad(_ANGLES[class_index] + rng.uniform(-8, 8))
    _add_disc(frames, rng, _RADIUS * k, _PERIOD * k, angle, rng.uniform(*_CONTRAST), _MARGIN * scale)
    return np.clip(frames, 0, 255).astype(np.uint8)


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_demo_complete(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a completely written demo dataset of this version (of any size)."""
    marker = _read_marker(Path(root))
    return marker is not None and marker.get("version") == _VERSION


def _write_split(
    tmp: Path,
    split: str,
    per_class: int,
    num_frames: int,
    size: int,
    seed: int,
    classes: Sequence[str],
    progress: tqdm,
) -> None:
    lines = []
    for label, name in enumerate(classes):
        folder = tmp / split / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            rng = np.random.default_rng([seed, 0 if split == "train" else 1, label, k])
            rel = f"{split}/{name}/{name}_{k:04d}.mp4"
            write_video(tmp / rel, render_demo_video(label, rng, num_frames=num_frames, size=size))
            lines.append(f"{rel} {label}\n")
            progress.update(1)
    (tmp / f"{split}.txt").write_text("".join(lines))


def write_demo_dataset(
    root: str | os.PathLike,
    num_train_per_class: int = 48,
    num_val_per_class: int = 16,
    num_frames: int = 16,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write the demo dataset to ``root`` and return ``root``.

    Layout: ``train/<class>/<id>.mp4``, ``val/<class>/<id>.mp4``, the video lists ``train.txt`` and
    ``val.txt`` (paths relative to ``root``), ``classes.txt``, and a ``.complete`` marker holding the
    parameters. Nothing is written when ``root`` already holds a complete dataset with the same parameters.
    The data are written to a temporary sibling folder and renamed into place, so an interrupted run never
    leaves a partial dataset. A ``root`` holding anything but a demo dataset is refused (``FileExistsError``).
    """
    for name, value in (
        ("num_train_per_class", num_train_per_class),
        ("num_val_per_class", num_val_per_class),
        ("num_frames", num_frames),
        ("size", size),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"write_demo_dataset: {name} must be a positive integer, got {value!r}")
    if size % 2 or size < 16:
        raise ValueError(f"write_demo_dataset: size must be even and at least 16 pixels, got {size}")
    root = Path(root).expanduser()
    params = {
        "version": _VERSION,
        "classes": list(DEMO_CLASSES),
        "num_train_per_class": num_train_per_class,
        "num_val_per_class": num_val_per_class,
        "num_frames": num_frames,
        "size": size,
        "seed": seed,
    }
    if _read_marker(root) == params:
        return root
    if root.exists() and not (root.is_dir() and (_read_marker(root) is not None or not any(root.iterdir()))):
        raise FileExistsError(
            f"{str(root)!r} exists and is not a demo dataset; choose an empty or new folder for the demo data"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    total = len(DEMO_CLASSES) * (num_train_per_class + num_val_per_class)
    # A progress bar on stderr: the first `reskd fit` of a demo config writes the videos before it trains.
    progress = tqdm(total=total, desc=f"writing the demo videos to {root}", unit="video", dynamic_ncols=True)
    try:
        with progress:
            for split, per_class in (("train", num_train_per_class), ("val", num_val_per_class)):
                _write_split(tmp, split, per_class, num_frames, size, seed, DEMO_CLASSES, progress)
        (tmp / "classes.txt").write_text("".join(f"{c}\n" for c in DEMO_CLASSES))
        (tmp / _MARKER).write_text(json.dumps(params, indent=1) + "\n")  # last: marks the dataset complete
        if root.exists():  # an older demo dataset (other parameters) or an empty folder
            shutil.rmtree(root)
        try:
            os.rename(tmp, root)
        except OSError:
            if _read_marker(root) != params:  # not a concurrent writer that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure_demo_dataset(root: str | os.PathLike | None = None) -> Path:
    """The demo dataset's folder, written with default parameters unless a complete one is there already.

    ``root`` defaults to ``$RESKD_DEMO_DIR`` or ``~/.cache/reskd_lightning/demo``.
    """
    root = Path(root).expanduser() if root is not None else default_demo_dir()
    if is_demo_complete(root):
        return root
    return write_demo_dataset(root)
