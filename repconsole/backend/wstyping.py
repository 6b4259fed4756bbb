"""The typing frames of :class:`~repconsole.backend.websocket.WebSocketBackend` (issue 14).

A ``typing`` travels beside the feed (docs/protocol.md, Typing): the
server's "the customer of S5 is typing" goes to the typing listeners, and
the rep's own is a frame sent and forgotten: never answered, never queued
through an outage (5 s later it means nothing), never retried.  Kept out of
websocket.py, which is at its size limit.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from repconsole.backend.base import Backend
from repconsole.protocol import CustomerIsTyping, RepReply, Typing, encode

__all__ = ["TypingFrames"]

log = logging.getLogger(__name__)


class TypingFrames(Backend):
    """What :class:`WebSocketBackend` adds for typing; it provides ``_ws`` and ``_next_id``."""

    _ws: ClientConnection | None
    _typing_sends: set[asyncio.Task[None]] | None = None

    @abc.abstractmethod
    def _next_id(self) -> str:
        """A fresh request id (the connection's own counter, WebSocketBackend's)."""

    def typing(self, session_id: str) -> None:
        ws = self._ws
        if ws is None:
            return  # offline: dropped, not queued
        if self._typing_sends is None:
            self._typing_sends = set()
        task = asyncio.ensure_future(self._send_typing(ws, encode(Typing(self._next_id(), session_id))))
        self._typing_sends.add(task)
        task.add_done_callback(self._typing_sends.discard)

    @staticmethod
    async def _send_typing(ws: ClientConnection, frame: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):  # the reader sees the close
            await ws.send(frame, text=True)

    def _on_other(self, message: RepReply) -> None:
        """A message beside the feed, the replies and co-browsing: a typing notice, or one to ignore."""
        if isinstance(message, CustomerIsTyping):
            self._deliver_typing(message.session)
        else:
            log.debug("ignoring a %r message", type(message).__name__)
