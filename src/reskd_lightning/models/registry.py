"""A small registry of named video networks: ``build_model("tsn_r50", num_classes=200)``."""

from __future__ import annotations

import fnmatch
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
