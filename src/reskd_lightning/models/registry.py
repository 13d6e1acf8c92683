"""A small registry of named video networks: ``build_model("tsn_r50", num_classes=200)``."""

from __future__ import annotations

import fnmatch
import inspect
from typing import Any, Callable, TypeVar

from .recognizer import VideoRecognizer

_MODELS: dict[str, Callable[..., VideoRecognizer]] = {}

F = TypeVar("F", bound=Callable[..., VideoRecognizer])


def register_model(name: str) -> Callable[[F], F]:
    """Register a builder under ``name``; a second builder with the same name is refused."""

    def decorator(builder: F) -> F:
        if name in _MODELS:
            raise ValueError(f"a model named {name!r} is already registered")
        _MODELS[name] = builder
        return builder

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted (``list_models("*r50*")``)."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def build_model(name: str, **kwargs: Any) -> VideoRecognizer:
    """Build the registered model ``name``; an unknown name lists the known ones."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)


def build_model_for_input(name: str, num_classes: int, resolution: int, frames: int, **kwargs: Any) -> VideoRecognizer:
    """Build ``name`` for clips of ``frames`` x ``resolution`` px.

    Most networks take any input size; a builder that needs it (MViT: ``spatial_size``, ``temporal_size``)
    gets it when its signature names those arguments.
    """
    builder = _MODELS.get(name)
    if builder is None:
        return build_model(name, num_classes=num_classes, **kwargs)  # raises, listing the known names
    params = inspect.signature(builder).parameters
    if "spatial_size" in params and "spatial_size" not in kwargs:
        kwargs["spatial_size"] = (resolution, resolution)
    if "temporal_size" in params and "temporal_size" not in kwargs:
        kwargs["temporal_size"] = frames
    return builder(num_classes=num_classes, **kwargs)
