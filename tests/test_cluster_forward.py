"""Review rev15: the forwarding lists (cluster/forward.py) against a real redis-server."""

from __future__ import annotations

import asyncio
import contextvars
import time

import msgspec
import pytest
import redis
from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)
from server_helpers import run

from repconsole.server.cluster import forward
from repconsole.server.cluster.forward import CommandServer, Forwarder, NoLeader, Reply, Request, async_client, commands_key, reply_key
from repconsole.server.cluster.keys import OrgKeys

KEYS = OrgKeys.of("acme")


def test_one_undecodable_request_does_not_stop_the_leader_serving_forwards(redis_server: RedisServer) -> None:
    """A request the leader cannot decode (a follower of another version during a rolling upgrade, a
    stray RPUSH) must be dropped, not end the CommandServer's task: today the task dies silently and
    every later forward of every follower times out while this process goes on leading."""

    async def main() -> Reply:
        client = async_client(redis_server.url)
        server = CommandServer(client, KEYS, lambda request: Reply(request.fid, body=b"ran " + request.frame))
        forwarder = Forwarder(client, KEYS, "b")
        redis.Redis.from_url(redis_server.url).rpush(commands_key(KEYS), b"\xc1 not a request")
        server.start()
        forwarder.start()
        try:
            return await forwarder.call(Request("command", "", 0, 0.0, frame=b"x"), timeout=3.0)
        finally:
            server.stop()
            forwarder.stop()
            await client.aclose()

    assert run(main()).body == b"ran x"


def test_an_undecodable_reply_is_dropped_and_the_reader_goes_on(redis_server: RedisServer) -> None:
    """The follower's reply reader: one bad reply on its list must not end it (every later forward would time out)."""

    async def main() -> Reply:
        client = async_client(redis_server.url)
        forwarder = Forwarder(client, KEYS, "b")
        redis.Redis.from_url(redis_server.url).rpush(reply_key(KEYS, "b"), b"\xc1 not a reply")
        forwarder.start()
        server = CommandServer(client, KEYS, lambda request: Reply(request.fid, body=b"ran"))
        try:
            server.start()
            return await forwarder.call(Request("command", "", 0, 0.0, frame=b"x"), timeout=3.0)
        finally:
            server.stop()
            forwarder.stop()
            await client.aclose()

    assert run(main()).body == b"ran"


def test_a_request_of_another_version_is_answered_internal_error_when_its_sender_can_be_read(redis_server: RedisServer) -> None:
    """A request whose fields do not decode (another version's) but whose origin and number do: its follower
    hears ``internal_error`` at once instead of a timeout; the leader goes on."""

    async def main() -> Reply:
        client = async_client(redis_server.url)
        forwarder = Forwarder(client, KEYS, "b")
        forwarder.start()
        future = asyncio.get_running_loop().create_future()
        forwarder._pending[77] = future  # as if call() had sent it
        odd = msgspec.msgpack.encode(["command", "b", 77, 1e12, {"a": "map where a str is"}])
        redis.Redis.from_url(redis_server.url).rpush(commands_key(KEYS), odd)
        server = CommandServer(client, KEYS, lambda request: Reply(request.fid, body=b"ran"))
        server.start()
        try:
            async with asyncio.timeout(3.0):
                return await future  # type: ignore[no-any-return]
        finally:
            server.stop()
            forwarder.stop()
            await client.aclose()

    assert run(main()).refused == "internal_error"


def test_a_serving_task_that_ends_tells_on_fail(redis_server: RedisServer) -> None:
    """Either task ending other than by stop() (a bug) is reported, so the member stops the process."""

    async def main() -> list[BaseException]:
        client = async_client(redis_server.url)
        failed: list[BaseException] = []

        async def broken(*args: object, **kwargs: object) -> object:
            raise ValueError("a bug")

        client.blpop = broken  # type: ignore[method-assign]
        server = CommandServer(client, KEYS, lambda request: None, on_fail=failed.append)
        forwarder = Forwarder(client, KEYS, "b", on_fail=failed.append)
        server.start()
        forwarder.start()
        try:
            async with asyncio.timeout(3.0):
                while len(failed) < 2:
                    await asyncio.sleep(0.01)
        finally:
            server.stop()
            forwarder.stop()
            await client.aclose()
        return failed

    assert [str(exc) for exc in run(main())] == ["a bug", "a bug"]


_skew: contextvars.ContextVar[float] = contextvars.ContextVar("skew", default=0.0)


class _SkewedTime:
    """The forward module's ``time``, off by the current context's skew: the follower's tasks (created in
    a context with a skew) see another host's clocks, the leader's (created before) this one's."""

    @staticmethod
    def time() -> float:
        return time.time() + _skew.get()

    @staticmethod
    def monotonic() -> float:
        return time.monotonic() + _skew.get()


@pytest.mark.parametrize("skew", [-30.0, 30.0])
def test_a_followers_clock_off_by_seconds_changes_nothing(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, skew: float) -> None:
    """A request's deadline is on one clock (Redis's): a follower whose clocks are 30 s behind the leader's
    still gets its requests run (they were all dropped as past their deadline), and one 30 s ahead does
    not get a request run that waited in the list past its deadline (it had answered "retryable")."""
    monkeypatch.setattr(forward, "time", _SkewedTime)

    async def main() -> tuple[Reply, list[bytes]]:
        client = async_client(redis_server.url)
        ran: list[bytes] = []

        def handle(request: Request) -> Reply:
            ran.append(request.frame)
            return Reply(request.fid, body=b"ran " + request.frame)

        server = CommandServer(client, KEYS, handle)
        forwarder = Forwarder(client, KEYS, "b")
        try:
            _skew.set(skew)  # the follower's host
            forwarder.start()
            async def redis_now() -> float:
                seconds, micros = await client.time()
                return float(seconds) + micros / 1e6

            sent = await redis_now()
            with pytest.raises(NoLeader):  # no leader yet: it waits in the list past its deadline
                await forwarder.call(Request("command", "", 0, 0.0, frame=b"late"), timeout=0.2)
            while await redis_now() < sent + 0.2 + 0.5:
                await asyncio.sleep(0.01)  # clearly past its deadline on Redis's clock (reading it has an error of ~1 ms)
            _skew.set(0.0)
            server.start()  # the leader's task: this host's clocks
            _skew.set(skew)
            reply = await forwarder.call(Request("command", "", 0, 0.0, frame=b"x"), timeout=3.0)
            return reply, ran
        finally:
            server.stop()
            forwarder.stop()
            await client.aclose()

    reply, ran = run(main())
    assert reply.body == b"ran x" and ran == [b"x"]


def test_a_batch_popped_while_the_lease_is_not_valid_is_pushed_back_unrun(redis_server: RedisServer) -> None:
    """A leader frozen past its lease (SIGSTOP) that wakes with a batch in hand must not run it: it pushes it
    back, in order, to the head of the list (the next leader, or itself renewed, runs it)."""

    async def main() -> tuple[list[bytes], Reply]:
        client = async_client(redis_server.url)
        ran: list[bytes] = []
        held = [False]
        sync = redis.Redis.from_url(redis_server.url)

        def handle(request: Request) -> Reply:
            ran.append(request.frame)
            return Reply(request.fid, body=b"ran " + request.frame)

        asked = asyncio.Event()

        def ready() -> bool:
            asked.set()
            return held[0]

        server = CommandServer(client, KEYS, handle, ready=ready)
        forwarder = Forwarder(client, KEYS, "b")
        forwarder.start()
        try:
            for frame in (b"1", b"2"):
                await forwarder.tell(Request("command", "", 0, 0.0, frame=frame))
            server.start()
            async with asyncio.timeout(3.0):
                await asyncio.wait_for(asked.wait(), None)  # popped, the lease is not valid: pushed back, in order
                while sync.llen(commands_key(KEYS)) != 2:
                    await asyncio.sleep(0.01)
            assert ran == []
            held[0] = True
            reply = await forwarder.call(Request("command", "", 0, 0.0, frame=b"3"), timeout=3.0)
            return ran, reply
        finally:
            server.stop()
            forwarder.stop()
            await client.aclose()

    ran, reply = run(main())
    assert ran == [b"1", b"2", b"3"] and reply.body == b"ran 3"
