"""Argument checks the decoders share: frame indices, keyframe-mode bounds, thread counts."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_indices(indices: np.ndarray, path: str) -> np.ndarray:
    """``indices`` as a flat int64 array; empty or negative indices are refused, naming the video."""
    indices = np.asarray(indices)
    if indices.size and not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"frame indices for {path!r} must be integers, got dtype {indices.dtype}")
    indices = indices.astype(np.int64).reshape(-1)
    if indices.size == 0:
        raise ValueError(f"no frame indices asked for from {path!r}")
    if indices.min() < 0:
        raise IndexError(f"negative frame index {int(indices.min())} asked for from {path!r}")
    return indices


def check_bounds(bounds: np.ndarray, num_indices: int, path: str) -> np.ndarray:
    """``bounds`` as int64 ``[num_indices, 2]`` with ``lo < hi`` in every row."""
    bounds = np.asarray(bounds)
    if bounds.shape != (num_indices, 2) or (bounds.size and not np.issubdtype(bounds.dtype, np.integer)):
        raise ValueError(
            f"bounds for {path!r} must be an integer array [{num_indices}, 2] (one [lo, hi) per index), "
            f"got {bounds.dtype} {tuple(bounds.shape)}"
        )
    bounds = bounds.astype(np.int64)
    bad = np.flatnonzero(bounds[:, 1] <= bounds[:, 0])
    if bad.size:
        row = int(bad[0])
        raise ValueError(f"bounds for {path!r}: row {row} {bounds[row].tolist()} is empty (need lo < hi)")
    return bounds


def check_threads(owner: str, num_threads: Any) -> int:
    """``num_threads`` if an integer >= 0 (0: FFmpeg's choice), else a ``ValueError`` naming ``owner``."""
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ValueError(
            f"{owner}: num_threads must be an integer >= 0 (0 = FFmpeg's choice), got {num_threads!r}"
        )
    return num_threads
