"""Loading weights from local files and torchvision weight names, with errors that name the keys."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import Tensor, nn

#: Prefixes stripped from checkpoint keys, tried in order: our Lightning checkpoints keep the trained network
#: under ``student.`` (a teacher-stage run is a student-only run), DDP/EMA wrappers under ``module.``.
DEFAULT_PREFIXES: tuple[str, ...] = ("student.", "model.", "module.", "")


def load_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    """Read a checkpoint file on the CPU. Tensors-only files load with ``weights_only=True``.

    Lightning checkpoints may hold pickled hyper-parameters; those are loaded with ``weights_only=False``,
    so only load files you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # not tensors only: a checkpoint with pickled objects, or not a checkpoint at all
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"checkpoint {str(path)!r} could not be read: {err}") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any failure means the file is not a checkpoint
        raise ValueError(f"checkpoint {str(path)!r} could not be read: {type(err).__name__}: {err}") from err


def extract_state_dict(
    checkpoint: Mapping[str, Any], prefixes: Iterable[str] = DEFAULT_PREFIXES, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """The network's tensors from a plain state dict or a Lightning/mmaction2 checkpoint, prefix stripped.

    The first prefix in ``prefixes`` that some key starts with is used; keys without it are dropped (e.g. a
    ResKD checkpoint's distiller adapters when the student is wanted).
    """
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{source} holds no state dict (top-level keys: {sorted(checkpoint)[:10]})")
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    for prefix in prefixes:
        if prefix and any(k.startswith(prefix) for k in tensors):
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return tensors


def _preview(keys: Iterable[str], limit: int = 8) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_dict_checked(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    source: str,
    ignore_missing: Iterable[str] = (),
    ignore_unexpected: Iterable[str] = (),
) -> None:
    """Load ``state_dict`` into ``module``; any missing, unexpected or wrongly shaped key raises.

    ``ignore_missing``/``ignore_unexpected`` are key prefixes that may legitimately differ (for example a
    classifier that is re-initialised for a new number of classes). The error names ``source`` and the keys.
    """
    ignore_missing, ignore_unexpected = tuple(ignore_missing), tuple(ignore_unexpected)
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not (ignore_missing and k.startswith(ignore_missing))]
    unexpected = [
        k for k in state_dict if k not in own and not (ignore_unexpected and k.startswith(ignore_unexpected))
    ]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"weights from {source} do not match {type(module).__name__}:"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {_preview(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
        if shapes:
            parts.append(f"  wrong shapes ({len(shapes)}): {'; '.join(shapes[:8])}")
        raise ValueError("\n".join(parts))
    module.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False)


def load_weights(
    module: nn.Module,
    path: str | os.PathLike,
    prefixes: Iterable[str] = DEFAULT_PREFIXES,
    ignore_missing: Iterable[str] = (),
    ignore_unexpected: Iterable[str] = (),
) -> None:
    """Load a local file (plain state dict or Lightning checkpoint) into ``module``, checking every key."""
    state = extract_state_dict(load_checkpoint(path), prefixes, source=str(path))
    load_state_dict_checked(module, state, str(path), ignore_missing, ignore_unexpected)


def torchvision_state_dict(weights_enum: str) -> dict[str, Tensor]:
    """Download (or read from torch's cache) torchvision weights, e.g. ``"ResNet50_Weights.IMAGENET1K_V2"``.

    Without a network, the error says which file to place where.
    """
    import torchvision

    try:
        weights = torchvision.models.get_weight(weights_enum)
    except (ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"unknown torchvision weights {weights_enum!r}: {err}") from err
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except OSError as err:  # URLError is an OSError
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise RuntimeError(
            f"could not download {weights_enum} from {weights.url} ({err}). Without a network, download that "
            f"file elsewhere and place it at {cache}, or pass a local file path as `pretrained`."
        ) from err
