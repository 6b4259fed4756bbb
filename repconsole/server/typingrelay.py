"""Typing indicators (issue 14): "Liam is typing…" to the reps, "Alex is typing…" to the customer.

A typing notice is a **transient**: it is relayed at once to whoever is
connected and then forgotten.  It is not an engine event, so it takes no
``seq``, is not written to the store or the event log, and is not replayed
on a resume: a console that was away has nothing to catch up on, since a
notice is stale 5 s after it was sent.  Giving it a ``seq`` would make every
keystroke burst a disk write and a ring entry, and a resume replay notices
long stale.

It travels as a frame of its own beside the feed (``{"type": "typing"}``),
written only to connections that are live: a console whose snapshot or
replay is still being written gets none (its backlog is for events, in
order), and a console of version 2, which could not decode it, never does.

Throttling: each side sends at most one notice every :data:`THROTTLE`
seconds; the server enforces it too, per session and sender, so that a page
that does not throttle cannot make the server write more than that to every
rep who sees the session.  Who gets what:

* the customer's notice goes to the reps who may see the session right now
  (:meth:`QueueEngine.audience`: the queue's members while it waits, its
  owner and participants once taken), so the queue row shows it too;
* a rep's notice goes to the session's customer, only if the rep takes part
  in the session (owner or participant); anything else is dropped silently.

In a cluster (``[cluster]``), the page and the consoles may be on different
processes: the process that receives a notice checks and throttles it as
above, writes it to its own connections, and hands it to its
:class:`TypingBackend` (:class:`~repconsole.server.cluster.notices.RedisTyping`:
Redis pub/sub), which gives it to every other process's relay
(:meth:`TypingRelay.to_reps`, :meth:`TypingRelay.to_customer`): checked and
throttled once, where it came in.  Without ``[cluster]`` there is no backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from websockets.asyncio.server import ServerConnection, broadcast

from repconsole.core.errors import CommandError
from repconsole.core.model import SessionState
from repconsole.protocol import CustomerIsTyping, RepIsTyping, encode
from repconsole.server.fanout import OFFERS_VERSION
from repconsole.server.runtime import Runtime

__all__ = ["THROTTLE", "TYPING_VERSION", "TypingBackend", "TypingRelay"]

log = logging.getLogger(__name__)

# At most one notice per sender and session in this many seconds.
THROTTLE = 2.0
# The protocol version whose consoles decode a typing notice (it came with version 3).
TYPING_VERSION = OFFERS_VERSION
# The throttle's memory is pruned when it holds more senders than this.
_PRUNE_AT = 4096


class TypingBackend(Protocol):
    """Carries the notices this process let through to the other processes (a cluster's; never awaited)."""

    def start(self, relay: TypingRelay) -> None:
        """The relay it gives the other processes' notices to (once, on the loop)."""

    def customer_typing(self, session: str) -> None:
        """The customer of ``session`` is typing (on this process; checked and throttled here)."""

    def rep_typing(self, session: str, name: str) -> None:
        """A rep of ``session``, shown as ``name``, is typing (on this process; checked and throttled here)."""

    def close(self) -> None: ...


class TypingRelay:
    """Passes typing notices between a session's customer and its reps.

    ``customer_sockets(session_id)`` gives the customer connections of a session (on this process).
    ``backend``: the other processes of a cluster (by default, with ``[cluster]``, Redis pub/sub; else none).
    """

    def __init__(
        self, runtime: Runtime, customer_sockets: Callable[[str], Iterable[ServerConnection]], backend: TypingBackend | None = None
    ) -> None:
        self.engine = runtime.engine
        self.fanout = runtime.fanout
        self.monotonic = runtime.clock.monotonic
        self.customer_sockets = customer_sockets
        self._last: dict[tuple[str, str], float] = {}  # (session id, sender) -> when its last notice went out
        self.relayed = 0  # notices passed on (for tests and metrics)
        self.throttled = 0  # notices dropped for coming within THROTTLE of the last
        if backend is None and runtime.spec.cluster.redis_url is not None:
            from repconsole.server.cluster.notices import RedisTyping  # redis-py: only with [cluster]

            backend = RedisTyping.from_settings(runtime.spec.cluster)
        self.backend = backend
        if backend is not None:
            backend.start(self)

    def _allowed(self, session_id: str, sender: str) -> bool:
        now = self.monotonic()
        key = (session_id, sender)
        last = self._last.get(key)
        if last is not None and now - last < THROTTLE:
            self.throttled += 1
            return False
        if len(self._last) >= _PRUNE_AT:
            self._last = {k: t for k, t in self._last.items() if now - t < THROTTLE}
        self._last[key] = now
        return True

    def from_customer(self, session_id: str) -> None:
        """The customer of ``session_id`` is typing: tell the reps who see the session (on every process)."""
        try:
            s = self.engine.session(session_id)
        except CommandError:
            return
        if s.state is SessionState.ENDED or not self._allowed(session_id, ""):
            return
        self.to_reps(session_id)
        if self.backend is not None:
            self.backend.customer_typing(session_id)

    def to_reps(self, session_id: str) -> None:
        """Tell this process's consoles of the reps who may see ``session_id`` now that its customer is typing."""
        try:
            s = self.engine.session(session_id)
        except CommandError:
            return  # a follower's copy may not have it yet: a notice is worth nothing late
        if s.state is SessionState.ENDED:
            return
        sockets = [
            link.ws
            for rep in self.engine.audience(s)
            for link in self.fanout.links_of(rep)
            if link.ready and not link.dropped and link.protocol >= TYPING_VERSION
        ]
        if sockets:
            broadcast(sockets, encode(CustomerIsTyping(session_id)), text=True)
            self.relayed += 1

    def from_rep(self, rep_id: str, session_id: str) -> None:
        """Rep ``rep_id`` is typing in ``session_id``: tell its customer, if the rep takes part in it."""
        try:
            s = self.engine.session(session_id)
        except CommandError:
            return
        if s.state is not SessionState.ACTIVE or (rep_id != s.owner and rep_id not in s.participants):
            return
        rep = self.engine.reps.get(rep_id)
        if rep is None or not self._allowed(session_id, rep_id):
            return
        self.to_customer(session_id, rep.name)
        if self.backend is not None:
            self.backend.rep_typing(session_id, rep.name)

    def to_customer(self, session_id: str, name: str) -> None:
        """Tell ``session_id``'s pages on this process that its rep ``name`` is typing (checked where it came in)."""
        sockets = list(self.customer_sockets(session_id))
        if sockets:
            broadcast(sockets, encode(RepIsTyping(name)), text=True)
            self.relayed += 1

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
