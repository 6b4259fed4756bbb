"""The server's connections: tracking every TCP connection from its accept, and TLS."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

from websockets.asyncio.server import ServerConnection

__all__ = ["tls_context", "tracked"]

log = logging.getLogger(__name__)


def tracked(connections: set[ServerConnection], lost: Callable[[ServerConnection], None]) -> type[ServerConnection]:
    """A ServerConnection that is in ``connections`` from the moment its TCP
    connection is accepted until it is lost (then ``lost`` is told); websockets
    itself only lists connections whose handshake is done."""

    class TrackedConnection(ServerConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            connections.add(self)

        def connection_lost(self, exc: Exception | None) -> None:
            connections.discard(self)
            super().connection_lost(exc)
            try:
                lost(self)
            except Exception:  # counting must never break a connection's end
                log.exception("counting a closed connection failed")

    return TrackedConnection


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context

