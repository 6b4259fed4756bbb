"""Commands from followers to the leader, and their replies, through Redis lists.

A follower does not run the engine: what a console (or its coming and
going) asks of the engine goes to the organisation's leader as a
:class:`Request` on one Redis list, ``repconsole:{org}:commands`` (``RPUSH``;
the leader ``BLPOP``\\ s it: first in, first out).  The leader runs it as one
of its own steps (same idempotency: the stored answer by login and request
id), logs it, and pushes the :class:`Reply` to the asking process's own list,
``repconsole:{org}:reply:<origin>`` (expiring after :data:`REPLY_KEPT`).

- **A request not answered within its ``timeout``** is answered to the
  console by the follower: an ``internal_error`` whose ``data`` has
  ``"retryable": true`` (docs/protocol.md): the command may or may not have
  run; a retry with the same id gets the stored answer if it did.  A request
  still queued past its deadline (no leader for a while) is dropped by the
  leader that takes it, unrun: the follower has already answered it.
- **Presence** requests carry the follower's whole set of connected reps
  and the sessions whose customer pages it holds (idempotent; sent on every
  change and every :data:`PRESENCE_EVERY` seconds): the leader counts a rep
  as connected, and a customer page as there (no grace period), while any
  live process has it, and a process silent for :data:`PRESENCE_TTL` as gone.

Kinds: ``connect`` (a console signed in: ``token_hash`` given, the leader
makes the login session; or resumed), ``command`` (a console's ``Command``
frame, as sent), ``logout``, ``presence``; a customer's ``customer_start``,
``customer_say``, ``customer_leave`` and ``customer_here`` (its page resumed
on a follower: its grace period, counted by the leader, stops):
:meth:`CustomerDesk.forwarded <repconsole.server.customers.CustomerDesk.forwarded>`;
``reload`` (a SIGHUP on a follower: the leader's round answers it when done) and
``reload_ready`` (a follower's digest, in ``frame``): :mod:`.reconfig`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import redis.asyncio

from repconsole.server.cluster.keys import OrgKeys
from repconsole.server.cluster.records import LoginRecord

__all__ = ["PRESENCE_EVERY", "PRESENCE_TTL", "CommandServer", "Forwarder", "NoLeader", "Reply", "Request"]

log = logging.getLogger(__name__)

REPLY_KEPT = 60  # seconds a reply list lives after the last reply pushed to it
PRESENCE_EVERY = 1.0
PRESENCE_TTL = 4.0
BLOCK = 1.0  # seconds a blocking pop waits before it looks again
RESYNC = 30.0  # seconds between two readings of Redis's clock (RedisClock)


class Request(msgspec.Struct, array_like=True, frozen=True):
    kind: str
    origin: str
    fid: int  # the follower's number for it (0: no reply wanted)
    deadline: float  # Redis's clock (TIME): see RedisClock
    rep: str = ""
    login: int = 0
    token_hash: bytes = b""
    frame: bytes = b""  # a console's frame, as sent (reload_ready: its ReloadAnswer)
    reps: list[str] = []
    session: str = ""  # a customer's requests: the session
    address: str = ""  # a customer's start: the page's address
    sessions: list[str] = []  # presence: the sessions whose customer pages the follower holds


class Reply(msgspec.Struct, array_like=True, frozen=True):
    fid: int
    body: bytes = b""  # a command's answer, as the console gets it
    login: LoginRecord | None = None
    refused: str = ""  # why a connect or logout was not done ("" if it was)
    session: str = ""  # a customer's start: the session it started ("" if refused: ``body`` says why)
    seq: int = 0  # the leader's seq after the request: a follower waits for its copy to reach it


class NoLeader(Exception):
    """No reply within the timeout (no leader, or it died with the request)."""


_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(Request)
_replies = msgspec.msgpack.Decoder(Reply)


def commands_key(keys: OrgKeys) -> str:
    return keys.lease.rsplit(":", 1)[0] + ":commands"


def reply_key(keys: OrgKeys, origin: str) -> str:
    return keys.lease.rsplit(":", 1)[0] + f":reply:{origin}"


def async_client(url: str) -> redis.asyncio.Redis:
    # The socket timeout outlasts a blocking pop (BLOCK); the pool gives each concurrent call a connection.
    return redis.asyncio.Redis.from_url(url, socket_timeout=BLOCK + 4, socket_connect_timeout=2, decode_responses=False)


def _watched(task: asyncio.Task[None], on_fail: Callable[[BaseException], None] | None, stopped: Callable[[], bool]) -> asyncio.Task[None]:
    """``task``, with ``on_fail`` told if it ever ends other than by a stop (cancelled, or ``stopped()``):
    a serving or reading loop that ends (a bug) must stop the process, not leave it running deaf."""

    def done(task: asyncio.Task[None]) -> None:
        if task.cancelled() or (stopped() and task.exception() is None):
            return
        exc = task.exception() or RuntimeError(f"{task.get_name()} ended")
        log.critical("%s ended unexpectedly: %r", task.get_name(), exc, exc_info=exc)
        if on_fail is not None:
            on_fail(exc)

    task.add_done_callback(done)
    return task


def _salvage(raw: bytes) -> tuple[str, int] | None:
    """The (origin, fid) of a request that does not decode as a :class:`Request` (another version's,
    say), if its first fields are there: so that its follower hears an answer rather than a timeout."""
    try:
        fields = msgspec.msgpack.decode(raw)
    except msgspec.DecodeError:
        return None
    if isinstance(fields, list) and len(fields) >= 3 and isinstance(fields[1], str) and isinstance(fields[2], int) and fields[2] > 0:
        return fields[1], fields[2]
    return None


class RedisClock:
    """Redis's clock (``TIME``) as this process reads it: its own monotonic clock plus an offset read
    from Redis at the first use and every :data:`RESYNC` seconds (its error is half a round trip).

    Why: a request's deadline is set by the follower and checked by the leader, two hosts whose wall
    clocks may disagree by seconds (a container without NTP, a VM after a suspend).  On a follower
    behind the leader every request looked expired and was dropped; on one ahead, the leader ran
    requests the follower had already answered "retryable".  Both now read the one clock every
    process already depends on, and a wall-clock step on either host (NTP) changes nothing: the
    local part is monotonic.  (A relative timeout measured on one side cannot work: the leader cannot
    tell how long a request waited in the list.)
    """

    def __init__(self, client: redis.asyncio.Redis, *, every: float = RESYNC) -> None:
        self.client = client
        self.every = every
        self.offset: float | None = None  # Redis's time - this process's monotonic time
        self._read_at = -math.inf

    async def sync(self) -> None:
        sent = time.monotonic()
        seconds, micros = await self.client.time()
        got = time.monotonic()
        self.offset = seconds + micros / 1e6 - (sent + got) / 2
        self._read_at = got

    async def now(self) -> float:
        """Redis's time now (reads it first if due; if that fails, the last offset read serves).
        Raises redis.RedisError only if it was never read."""
        if self.offset is None or time.monotonic() - self._read_at > self.every:
            try:
                await self.sync()
            except redis.RedisError:
                if self.offset is None:
                    raise
                log.warning("cannot read Redis's clock: the offset read %.0f s ago serves", time.monotonic() - self._read_at)
        assert self.offset is not None
        return time.monotonic() + self.offset


class Forwarder:
    """A follower's side: send requests, match replies (a task reads this process's reply list).

    ``on_fail`` is told if the reading task ever ends other than by :meth:`stop` (the member stops the process).
    """

    def __init__(self, client: redis.asyncio.Redis, keys: OrgKeys, origin: str, *, on_fail: Callable[[BaseException], None] | None = None) -> None:
        self.client = client
        self.keys = keys
        self.origin = origin
        self.on_fail = on_fail
        self.clock = RedisClock(client)
        self._numbers = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._stopped = False
        self._task = _watched(asyncio.get_running_loop().create_task(self._read(), name="forwarded replies"), self.on_fail, lambda: self._stopped)

    def stop(self) -> None:
        # The flag as well as the cancel: redis-py may swallow a cancellation mid-command, and the
        # loop must not go on blocking a connection (or hold the event loop's shutdown) after a stop.
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.fail_pending()

    def fail_pending(self) -> None:
        """Every request waiting for a reply gets NoLeader now (this process leads from here on)."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NoLeader("the leader changed while it waited"))

    async def call(self, request: Request, timeout: float) -> Reply:
        """Send ``request`` (its fid and deadline set here) and wait for its reply; NoLeader after ``timeout``."""
        fid = next(self._numbers)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[fid] = future
        try:
            async with asyncio.timeout(timeout):
                sent = msgspec.structs.replace(request, origin=self.origin, fid=fid, deadline=await self.clock.now() + timeout)
                await self.client.rpush(commands_key(self.keys), _encoder.encode(sent))
                return await future
        except (TimeoutError, redis.RedisError) as exc:
            raise NoLeader(f"no answer from the organisation's leader within {timeout:g} s ({exc or 'timeout'})") from exc
        finally:
            self._pending.pop(fid, None)

    async def tell(self, request: Request) -> None:
        """Send ``request`` with no reply wanted (presence); a Redis error is logged, not raised."""
        try:
            sent = msgspec.structs.replace(request, origin=self.origin, fid=0, deadline=await self.clock.now() + PRESENCE_TTL)
            await self.client.rpush(commands_key(self.keys), _encoder.encode(sent))
        except redis.RedisError as exc:
            log.warning("cannot tell the leader (%s)", exc)

    async def _read(self) -> None:
        key = reply_key(self.keys, self.origin)
        while not self._stopped:
            try:
                got = await self.client.blpop([key], timeout=BLOCK)
            except redis.RedisError as exc:
                log.warning("cannot read replies (%s); again in a second", exc)
                await asyncio.sleep(1.0)
                continue
            if got is None:
                continue
            raw: Any = got[1]
            try:
                reply = _replies.decode(raw)
            except msgspec.DecodeError as exc:  # one bad reply: its call times out ("retryable"), the others go on
                log.error("dropping an undecodable reply (%s): %r", exc, bytes(raw)[:80])
                continue
            future = self._pending.get(reply.fid)
            if future is not None and not future.done():
                future.set_result(reply)


class CommandServer:
    """The leader's side: take requests in order, run each with ``handle`` on the loop, push its reply.

    A request that cannot be decoded is logged and dropped (answered ``internal_error`` if its origin
    and number can be read); ``handle`` raising answers ``internal_error``.  ``on_fail`` is told if the
    serving task ever ends other than by :meth:`stop` (the member stops the process).  A batch popped
    while ``ready()`` is False (the leader's lease is no longer valid by its own clock: it was frozen)
    is pushed back to the head of the list, in order, unrun: the next leader runs it.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        keys: OrgKeys,
        handle: Callable[[Request], Reply | None],
        *,
        on_fail: Callable[[BaseException], None] | None = None,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        self.keys = keys
        self.handle = handle
        self.on_fail = on_fail
        self.ready = ready
        self.clock = RedisClock(client)
        self.idle: Callable[[], None] | None = None  # called at least every BLOCK seconds
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._stopped = False
        self._task = _watched(asyncio.get_running_loop().create_task(self._serve(), name="forwarded commands"), self.on_fail, lambda: self._stopped)

    def stop(self) -> None:
        self._stopped = True  # as Forwarder.stop
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def reply(self, origin: str, reply: Reply) -> Awaitable[object]:
        """Push ``reply`` to ``origin``'s list (``handle`` returned None and answers later: a reload)."""
        target = reply_key(self.keys, origin)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(target, _encoder.encode(reply))
        pipe.expire(target, REPLY_KEPT)
        return pipe.execute()

    async def _serve(self) -> None:
        key = commands_key(self.keys)
        while not self._stopped:
            try:
                got = await self.client.blpop([key], timeout=BLOCK)
                more = await self.client.lpop(key, 100) if got is not None else None
                now = await self.clock.now() if got is not None else 0.0
            except redis.RedisError as exc:
                log.warning("cannot read forwarded commands (%s); again in a second", exc)
                await asyncio.sleep(1.0)
                continue
            if self.idle is not None:
                try:
                    self.idle()
                except Exception:
                    log.exception("the forwarded commands' idle pass failed")
            if got is None:
                continue
            popped: list[Any] = [got[1], *(more or ())]
            batch = [bytes(raw) for raw in popped]
            if not self.ready():
                log.warning("not running %d forwarded requests: this process's lease is not valid; pushed back", len(batch))
                try:
                    await self.client.lpush(key, *reversed(batch))
                except redis.RedisError as exc:
                    log.warning("cannot push them back (%s): their followers answer 'retryable'", exc)
                await asyncio.sleep(0.1)  # meanwhile the renewal finds out: renewed, or the server stops
                continue
            replies: list[Awaitable[object]] = []
            for raw in batch:
                reply = self._run(raw, now)
                if reply is not None:
                    target, answer = reply
                    pipe = self.client.pipeline(transaction=False)
                    pipe.rpush(target, _encoder.encode(answer))
                    pipe.expire(target, REPLY_KEPT)
                    replies.append(pipe.execute())
            try:
                await asyncio.gather(*replies)
            except redis.RedisError as exc:
                log.warning("cannot send replies (%s): the followers answer their consoles 'retry'", exc)

    def _run(self, raw: bytes, now: float) -> tuple[str, Reply] | None:
        """Decode and run one request: (its reply list, the reply), or None (no reply wanted, or dropped)."""
        try:
            request = _requests.decode(raw)
        except msgspec.DecodeError as exc:
            salvaged = _salvage(raw)
            log.error("dropping an undecodable forwarded request (%s): %r", exc, raw[:80])
            return None if salvaged is None else (reply_key(self.keys, salvaged[0]), Reply(salvaged[1], refused="internal_error"))
        if request.deadline < now:
            log.info("dropping a forwarded %s of %s: past its deadline (answered by its process)", request.kind, request.origin)
            return None
        try:
            reply = self.handle(request)
        except Exception:
            log.exception("a forwarded %s failed", request.kind)
            reply = Reply(request.fid, refused="internal_error")
        return (reply_key(self.keys, request.origin), reply) if reply is not None and request.fid else None
