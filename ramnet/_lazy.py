"""Names a package exports but loads on first use (PEP 562), so that importing the package does
not import every module behind it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, modules: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``.

    Args:
        package: The package's ``__name__``.
        modules: Exported name -> the private module (``_daemon``) that defines it.
        namespace: The package's ``globals()``: a loaded name is kept there, so the next lookup
            does not come back here.

    Returns:
        The function to assign to the package's ``__getattr__``; it raises ``AttributeError``
        for names outside ``modules``.
    """

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
