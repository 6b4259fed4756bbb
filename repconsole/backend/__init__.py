"""Backends: where the console's queue truth comes from.

:func:`create_backend` is the one factory.  It fails loudly on a kind it
does not know, rather than guessing.
"""

from __future__ import annotations

from typing import Any

from repconsole.backend.base import Backend, BackendState

__all__ = ["KINDS", "Backend", "BackendState", "create_backend"]

KINDS = ("simulator", "server")


def create_backend(kind: str, **options: Any) -> Backend:
    """Build a backend by name.

    * ``simulator`` (the default): the in-process simulator; options are
      those of :class:`~repconsole.backend.simulator.SimulatorBackend`.
    * ``server``: the WebSocket client of a queue server, e.g.
      ``create_backend("server", url="ws://host:8765", username="alex", password=…)``;
      options are those of :class:`~repconsole.backend.websocket.WebSocketBackend`.
    """
    if kind == "simulator":
        from repconsole.backend.simulator import SimulatorBackend

        return SimulatorBackend(**options)
    if kind == "server":
        from repconsole.backend.websocket import WebSocketBackend

        return WebSocketBackend(**options)
    raise ValueError(f"unknown backend kind {kind!r}; known kinds: {', '.join(KINDS)}")
