"""The queue server: the Qt-free queue engine behind WebSocket.

``repconsole-server`` (:mod:`repconsole.server.cli`) runs :class:`Server`
(:mod:`repconsole.server.app`).  The wire protocol is docs/protocol.md.
Layers, from the wire inwards:

* :mod:`repconsole.protocol` (shared with the console): frames to typed messages and back (sans-I/O);
* :mod:`~repconsole.server.app` and :mod:`~repconsole.server.customers`: the endpoints;
* :mod:`~repconsole.server.fanout`: events to consoles, batched, encoded once;
* :mod:`~repconsole.server.runtime`: the engine's steps, committed before they are told;
* :mod:`~repconsole.server.timers`: the server's clock, which every server timer runs on;
* :mod:`~repconsole.server.store`: SQLite; :mod:`~repconsole.server.auth`: passwords, tokens;
* :mod:`~repconsole.server.config`: the site (TOML or the demo).
"""

from __future__ import annotations

__all__ = ["Server"]


def __getattr__(name: str) -> object:
    # Lazy, so that `repconsole-server --help` does not import websockets.
    if name == "Server":
        from repconsole.server.app import Server

        return Server
    raise AttributeError(name)
