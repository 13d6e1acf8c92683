"""Names of a package imported on first use (PEP 562), so that importing the package stays light.

``reskd_lightning`` and ``reskd_lightning.data`` map each public name to the submodule that defines it; the
first ``package.name`` (or ``from package import name``) imports that submodule and keeps the name in the
package, so later lookups are ordinary attribute reads. ``reskd --help`` and ``reskd prepare --help`` import
neither torch nor Lightning thanks to it.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(package: str, sources: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public names ``sources`` maps to their
    submodules (``{"ResKDModule": "module"}``). In the package: ``__getattr__, __dir__ = lazy_exports(__name__,
    _SOURCES)``."""

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{sources[name]}", package), name)
        setattr(sys.modules[package], name, value)  # later lookups do not come back here
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *sources})

    return __getattr__, __dir__
