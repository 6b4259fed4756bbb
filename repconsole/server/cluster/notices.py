"""Typing notices across processes: Redis pub/sub, one channel per organisation.

A customer's page and the consoles of the reps who see its session may be on
different processes of a cluster.  A typing notice is a *transient*
(:mod:`repconsole.server.typingrelay`): it takes no seq, is never logged,
stored nor replayed, so it does not go through the log but over pub/sub,
fire-and-forget, like the co-browse relays (:mod:`.relay`).

The process that **receives** a notice from its sender (the page's process
for a customer's, the console's for a rep's) does everything
:class:`~repconsole.server.typingrelay.TypingRelay` promises: the checks
(the session is not over; a rep's notice only if the rep takes part) and
the throttle per session and sender, **once**, there.  Then it writes the
notice to its own connections and publishes it on
``repconsole:{org}:typing``; every other process writes it to its own
connections without checking or throttling it again (a second throttle on
another clock could drop a notice the sender's process let through):

- a customer's notice (``name`` empty) to the consoles of the reps who may
  see the session now, by that process's engine copy
  (:meth:`TypingRelay.to_reps`);
- a rep's notice (``name``: the rep's display name, never the id) to the
  session's pages on that process (:meth:`TypingRelay.to_customer`).

One channel for the whole organisation: every process hears every notice
(at most one per session and side every 2 s: a few hundred bytes a second
per hundred chatting sessions).  A per-session channel would spare that
but needs every process to know where each session's audience is.

What Redis cannot carry is dropped: the publisher's queue is bounded
(:data:`QUEUED`), a publish that fails is logged, and pub/sub itself drops
messages across a reconnect; a lost notice costs a "typing…" line for 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

import msgspec
import redis.asyncio as aredis

from repconsole.server.cluster.keys import PREFIX
from repconsole.server.config import ClusterSettings

if TYPE_CHECKING:
    from repconsole.server.typingrelay import TypingRelay

__all__ = ["QUEUED", "RedisTyping", "typing_channel"]

log = logging.getLogger(__name__)

# Notices waiting to be published; more (Redis is slow or away) are dropped.
QUEUED = 1000


def typing_channel(organisation: str) -> str:
    """The organisation's pub/sub channel of typing notices."""
    return f"{PREFIX}:{{{organisation}}}:typing"


class Notice(msgspec.Struct, array_like=True, frozen=True):
    node: str  # the sending process (a process ignores its own)
    session: str
    name: str = ""  # "": the customer is typing (to the reps); else the typing rep's display name (to the page)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Notice)


class RedisTyping:
    """The :class:`~repconsole.server.typingrelay.TypingBackend` of a cluster (see the module's docstring).

    Two connections: one subscribed to the channel (a reader task hands each
    notice to the relay on the loop), one publishing in order (a writer task:
    the relay never waits for Redis).
    """

    def __init__(self, url: str, organisation: str, *, node: str | None = None, timeout: float = 1.0) -> None:
        self.channel = typing_channel(organisation)
        self.node = node if node is not None else f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._pub = aredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        # No socket timeout on the subscriber: it waits for messages (get_message's own timeout bounds each wait).
        self._sub = aredis.Redis.from_url(url, socket_connect_timeout=timeout)
        self._pubsub = self._sub.pubsub()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUED)
        self._relay: TypingRelay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.subscribed = asyncio.Event()  # Redis confirmed the subscription (tests wait for it)
        self.published = 0
        self.dropped = 0  # not published: the queue was full

    @classmethod
    def from_settings(cls, settings: ClusterSettings) -> RedisTyping:
        assert settings.redis_url is not None
        return cls(settings.redis_url, settings.organisation, timeout=settings.lease_ttl / 3)

    def start(self, relay: TypingRelay) -> None:
        self._relay = relay
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read()), loop.create_task(self._write())]

    def customer_typing(self, session: str) -> None:
        self._send(Notice(self.node, session))

    def rep_typing(self, session: str, name: str) -> None:
        self._send(Notice(self.node, session, name))

    def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(RuntimeError):  # no loop any more: the sockets close with the process
            asyncio.get_running_loop().create_task(self._aclose())

    async def _aclose(self) -> None:
        if self._tasks:
            # Not an await of each: redis-py may swallow a cancellation mid-command (the task then goes
            # on, and stops at its next turn, seeing _closed).
            await asyncio.wait(self._tasks, timeout=1.0)
        for close in (self._pubsub.aclose, self._pub.aclose, self._sub.aclose):
            with contextlib.suppress(Exception):
                await close()

    def _send(self, notice: Notice) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(_encoder.encode(notice))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _write(self) -> None:
        while not self._closed:
            data = await self._queue.get()
            try:
                await self._pub.publish(self.channel, data)
                self.published += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # best effort: a lost notice is a "typing…" line missed
                log.warning("typing notices: publishing failed: %s", exc)

    async def _read(self) -> None:
        while not self._closed:
            try:
                if not self._pubsub.subscribed:
                    await self._pubsub.subscribe(self.channel)
                message: Any = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("typing notices: reading pub/sub failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            if message["type"] == "subscribe":
                self.subscribed.set()
            elif message["type"] == "message":
                try:
                    self.receive(message["data"])
                except Exception:
                    log.exception("typing notices: a message could not be taken")

    def receive(self, data: bytes) -> None:
        """One notice heard on the channel: to this process's connections (checked and throttled by its sender's)."""
        notice = _decoder.decode(data)
        if notice.node == self.node or self._relay is None:
            return
        if notice.name:
            self._relay.to_customer(notice.session, notice.name)
        else:
            self._relay.to_reps(notice.session)
