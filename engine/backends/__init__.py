"""Execution backends: how one attempt of one node is carried out (local threads by default).

The executor owns admission, lifecycle and events; a backend only runs an agent on given inputs.
"""

from __future__ import annotations

from typing import Protocol

from engine.backends.local import LocalBackend, NodeCall, WarmPool


class Backend(Protocol):
    name: str

    def call(self, job: NodeCall) -> dict: ...

    def close(self) -> None: ...


def get_backend(name: str, **kwargs: object) -> Backend:
    """The backend called ``name`` (``local``); raises ValueError naming the known ones."""
    if name == "local":
        return LocalBackend(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {name!r}; known backends: local")


__all__ = ["Backend", "LocalBackend", "NodeCall", "WarmPool", "get_backend"]
