"""The method registry. A method is one file in this package that calls ``register_method``.

Every module of this package is imported on first use, so adding a method means adding one
file; nothing else is edited.
"""

from __future__ import annotations

import importlib
import pkgutil

from autoquant.engine.methods.base import Method

_REGISTRY: dict[str, Method] = {}
_DISCOVERED = False


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator that makes a :class:`Method` available under ``cls.name``."""
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"A method named {cls.name!r} is already registered.")
    _REGISTRY[cls.name] = cls()
    return cls


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def available_methods() -> list[str]:
    """Names of the registered methods."""
    _discover()
    return list(_REGISTRY)


def get_method(name: str) -> Method:
    """The registered method called ``name``."""
    _discover()
    if name not in _REGISTRY:
        from autoquant.errors import ConfigError

        raise ConfigError(
            f"The 'method' parameter must be one of {list(_REGISTRY)}. Got {name!r} instead."
        )
    return _REGISTRY[name]


def capabilities() -> list[dict[str, str | bool]]:
    """The capability table: every (method, backend) pair, whether it works and why not."""
    from autoquant.engine.backends import BACKENDS

    rows = []
    for name in available_methods():
        method = _REGISTRY[name]
        for backend in BACKENDS:
            reason = method.unsupported_backends.get(backend, "")
            note = reason or method.notes.get(backend, "")
            rows.append(
                {
                    "method": name,
                    "engine": method.engine,
                    "backend": backend,
                    "supported": not reason,
                    "note": note,
                    "compile": method.compile_support,
                    "compile_note": method.no_compile_reason
                    if method.compile_support == "no"
                    else "",
                }
            )
    return rows


__all__ = ["Method", "available_methods", "capabilities", "get_method", "register_method"]
