"""Backends: where the console's queue truth comes from.

:func:`create_backend` is the one factory.  It fails loudly on a kind it
does not know, rather than guessing.
"""

from __future__ import annotations

from typing import Any

from repconsole.backend.base import Backend, BackendState

__all__ = ["Backend", "BackendState", "create_backend", "KINDS"]

KINDS = ("simulator",)


def create_backend(kind: str, **options: Any) -> Backend:
    """Build a backend by name: ``simulator`` (the default)."""
    if kind == "simulator":
        from repconsole.backend.simulator import SimulatorBackend

        return SimulatorBackend(**options)
    raise ValueError(f"unknown backend kind {kind!r}; known kinds: {', '.join(KINDS)}")
