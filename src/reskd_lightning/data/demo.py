"""The built-in demo dataset: small real videos whose class is the orientation of a fine moving texture.

Each video shows one moving disc filled with a fine grating (period about 3.3 px at 128 px) whose orientation,
0, 45, 90 or 135 degrees (+-8), is the class, among distractor discs with coarse gratings of any orientation,
over a tinted, noisy texture. Position, speed, phase and contrast differ per video. The fine grating is clear
at 112 px; at 56 px its period falls below two pixels and it aliases, so the class is hard (not impossible)
to read: the regime cross-resolution distillation is about.

Videos are H.264 (libx264, yuv420p, crf 18) ``.mp4`` files written with PyAV, listed in mmaction2 video lists."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

#: The demo dataset's classes, in label order.
DEMO_CLASSES: tuple[str, ...] = ("stripes_0", "stripes_45", "stripes_90", "stripes_135")
_ANGLES: tuple[float, ...] = (0.0, 45.0, 90.0, 135.0)

#: Environment variable naming the default demo folder (else ``~/.cache/reskd_lightning/demo``).
DEMO_DIR_ENV = "RESKD_DEMO_DIR"

_MARKER = ".complete"
_VERSION = 2
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


def render_demo_video(
    class_index: int, rng: np.random.Generator, num_frames: int = 16, size: int = 128
) -> np.ndarray:
    """Frames ``[num_frames, size, size, 3]``, uint8 RGB, of a demo video of ``DEMO_CLASSES[class_index]``."""
    if not 0 <= class_index < len(DEMO_CLASSES):
        raise ValueError(f"class_index must be in [0, {len(DEMO_CLASSES)}), got {class_index}")
    scale = size / 128.0
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    # Background: a tinted multi-scale texture, static, plus fresh noise every frame.
    texture = 0.6 * _smooth_noise(rng, size, 4) + 0.4 * _smooth_noise(rng, size, max(4, size // 6))
    tint = rng.uniform(0.7, 1.1, size=3).astype(np.float32)
    background = (110.0 + 30.0 * texture)[:, :, None] * tint
    frames = np.broadcast_to(background, (num_frames, size, size, 3)).copy()
    frames += 6.0 * rng.standard_normal(frames.shape, dtype=np.float32)

    # Patches: distractors with coarse stripes of any orientation, then the object with the class's fine ones.
    patches = [
        (rng.uniform(7, 12) * scale, rng.uniform(8, 14) * scale, rng.uniform(0, np.pi))
        for _ in range(rng.integers(2, 5))
    ]
    angle = np.deg2rad(_ANGLES[class_index] + rng.uniform(-8, 8))
    patches.append((rng.uniform(12, 16) * scale, rng.uniform(3.0, 3.6) * scale, angle))
    for radius, period, theta in patches:
        contrast = rng.uniform(35.0, 70.0)
        speed = rng.uniform(0.5, 2.5) * scale
        heading = rng.uniform(0, 2 * np.pi)
        ys = _bounce(rng.uniform(radius, size - radius), speed * np.sin(heading), radius, size - radius, num_frames)
        xs = _bounce(rng.uniform(radius, size - radius), speed * np.cos(heading), radius, size - radius, num_frames)
        phase, drift = rng.uniform(0, 2 * np.pi), rng.uniform(-0.6, 0.6)
        for t in range(num_frames):
            mask, wave = _grating_disc(yy, xx, ys[t], xs[t], radius, period, theta, phase + drift * t)
            frames[t] += mask[:, :, None] * ((128.0 + contrast * wave)[:, :, None] - frames[t])
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
    tmp: Path, split: str, per_class: int, num_frames: int, size: int, seed: int, classes: Sequence[str]
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
    try:
        for split, per_class in (("train", num_train_per_class), ("val", num_val_per_class)):
            _write_split(tmp, split, per_class, num_frames, size, seed, DEMO_CLASSES)
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
