"""A retried customer ``start`` is idempotent by its ``retry_key`` (review finding 11 of issue 15; docs/protocol.md).

A follower answers a start "retryable" when the leader's reply does not come in time, though the leader may
have started the session; the page's retry made a second session, the first orphaned in the queue.  With the
page's ``retry_key`` (the same for every attempt of one start) the retry gets the session the first attempt
started, on one process, across a restart, and in a cluster through the same follower, another follower, the
leader, or the process that took over (real servers on real sockets, a real redis-server).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)
from server_helpers import CustomerClient, eventually, run, serving, write_site
from test_cluster_server import cluster_site

from repconsole.core.model import Session
from repconsole.protocol import CustomerResume, CustomerState, Error, ErrorReason, Intake, Leave, Result, Start, Started, Via, encode
from repconsole.server.app import Server
from repconsole.server.auth import hash_token
from repconsole.server.cluster.forward import Reply, Request


def _start(page: CustomerClient, name: str, key: str | None, details: str = "") -> Start:
    extra = {"retry_key": key} if key is not None else {}
    return Start(page.next_id(), Via.ISSUE, Intake(name, details=details) if details else Intake(name), issue="vpn", **extra)


async def _attempt(server: object, name: str, key: str | None, details: str = "") -> tuple[CustomerClient, Started | Error]:
    """A page's connection to ``server`` and the answer to its start."""
    page = (await CustomerClient.open(server)).listen()
    reply = await page.request(_start(page, name, key, details), timeout=10)
    assert isinstance(reply, Started | Error), reply
    return page, reply


def _named(server: Server, name: str) -> list[Session]:
    assert server.runtime is not None
    return [s for s in server.runtime.engine.sessions() if s.customer_name == name]


def test_a_start_retried_with_its_key_gets_the_same_session_on_one_process_and_after_a_restart(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    key = "k3v9Qm2xT7bWc1LpZ8dR4a"

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            first, started = await _attempt(server, "Ann Lee", key)
            assert isinstance(started, Started), started
            await first.close()  # as if its answer had been lost with the connection
            again, retried = await _attempt(server, "Ann Lee", key)
            assert isinstance(retried, Started) and retried.session == started.session and not retried.resumed, retried
            assert retried.token != started.token
            await again.until(lambda: again.state() is CustomerState.WAITING)
            assert len(_named(server, "Ann Lee")) == 1
            # The same key with another start (another intake) is another start; no key, never matched.
            other, different = await _attempt(server, "Ann Lee", key, details="another problem")
            assert isinstance(different, Started) and different.session != started.session
            for _ in range(2):
                page, plain = await _attempt(server, "Bea Moss", None)
                assert isinstance(plain, Started)
                await page.close()
            assert len(_named(server, "Ann Lee")) == 2 and len(_named(server, "Bea Moss")) == 2
            # Both tokens open the session.
            back = (await CustomerClient.open(server)).listen()
            assert isinstance(await back.request(CustomerResume, token=started.token, last_line=0), Started)
            for page in (again, other, back):
                await page.close()
        async with serving(site, tmp_path / "data") as server:  # restarted: the key is in the store
            page, after = await _attempt(server, "Ann Lee", key)
            assert isinstance(after, Started) and after.session == started.session, after
            assert len(_named(server, "Ann Lee")) == 2
            # A retried start of a session that ended: started, its ended status, then closed (as a resume).
            assert isinstance(await page.request(Leave), Result)
            late, ended = await _attempt(server, "Ann Lee", key)
            assert isinstance(ended, Started) and ended.session == started.session
            await late.until(lambda: late.state() is CustomerState.ENDED)
            await page.close()
            await late.close()

    run(main(), 60)


def test_the_leaders_step_of_a_start_with_a_known_retry_key_starts_nothing_and_stores_the_new_token(tmp_path: Path) -> None:
    """At the runtime level (``CustomerDesk.forwarded``, what the leader runs for a follower's start): the same
    start twice is one session, one event-free step for the second, and both tokens open it."""
    site = write_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            desk, rt = server.customers, server.runtime
            assert desk is not None and rt is not None
            frame = encode(Start(1, Via.ISSUE, Intake("Ann Lee"), issue="vpn", retry_key="k3v9Qm2xT7bWc1LpZ8dR4a"))
            body, first = desk.forwarded("customer_start", "", frame, hash_token("token-1"), "10.0.0.1")
            assert first and not body
            seq = rt.engine.seq
            body, again = desk.forwarded("customer_start", "", frame.replace(b'"id":1', b'"id":2'), hash_token("token-2"), "10.0.0.1")
            assert again == first and not body
            assert rt.engine.seq == seq and len(_named(server, "Ann Lee")) == 1
            assert desk.session_of("token-1") == desk.session_of("token-2") == first

    run(main())


class _LostReplies:
    """The leader runs a follower's ``customer_start``, but its reply never reaches the follower: the
    follower's wait ends at once as at its FORWARD_TIMEOUT (``Forwarder.fail_pending``: NoLeader, so the page
    is answered "retryable"), and the reply is dropped.  Deterministic: no timing, no sleep."""

    def __init__(self, leader: Server, followers: list[Server]) -> None:
        member = leader.runtime.member if leader.runtime is not None else None
        assert member is not None and member.handler is not None
        self.real = member.handler
        self.members = {f.runtime.member.origin: f.runtime.member for f in followers if f.runtime is not None and f.runtime.member is not None}
        self.armed = 0
        self.started: list[str] = []  # the sessions whose reply was lost
        member.handler = self.handle

    def handle(self, request: Request) -> Reply | None:
        reply = self.real(request)
        if request.kind == "customer_start" and self.armed and reply is not None and reply.session:
            self.armed -= 1
            self.started.append(reply.session)
            self.members[request.origin].forwarder.fail_pending()
            return None
        return reply


def test_a_start_whose_reply_the_follower_lost_is_retried_into_the_same_session_on_any_process(redis_server: RedisServer, tmp_path: Path) -> None:
    """A page on follower B starts; the leader A starts the session, but its reply is lost: the page is answered
    internal_error, retryable.  Its retry with the same key, through B, through the other follower C, through A,
    and through the process that took over from A, gets that session: one session per customer in every
    process's engine, and the page's token opens it."""
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            servers: list[Server] = []
            for name in ("a", "b", "c"):
                servers.append(await stack.enter_async_context(serving(site, tmp_path / name)))
            a, b, c = servers
            assert a.runtime is not None and a.runtime.cluster is not None  # the first leads
            lost = _LostReplies(a, [b, c])

            def keys() -> Iterator[str]:
                n = 0
                while True:
                    n += 1
                    yield f"retry-key-{n:06d}-abcdef"

            made = keys()

            async def lost_start(name: str) -> tuple[str, str]:
                key = next(made)
                lost.armed = 1
                page, answer = await _attempt(b, name, key)
                assert isinstance(answer, Error) and answer.reason == ErrorReason.INTERNAL_ERROR, answer
                assert answer.data == {"retryable": True}, answer
                assert not lost.armed
                await page.close()
                return key, lost.started[-1]

            async def retried(server: Server, name: str, key: str, sid: str) -> None:
                page, answer = await _attempt(server, name, key)
                assert isinstance(answer, Started) and answer.session == sid, (answer, sid)
                await page.until(lambda: page.state() is CustomerState.WAITING)
                assert page.statuses[-1].position is not None
                await page.close()
                check = (await CustomerClient.open(server)).listen()  # its token resumes the session
                resumed = await check.request(CustomerResume, token=answer.token, last_line=0)
                assert isinstance(resumed, Started) and resumed.session == sid, resumed
                await check.close()

            for name, via in (("Ann Lee", b), ("Bea Moss", c), ("Cy Park", a)):
                key, sid = await lost_start(name)
                await retried(via, name, key, sid)
            key, sid = await lost_start("Dee Ruiz")
            await a.stop()  # hands over: B or C leads, from the log
            await eventually(lambda: any(s.runtime is not None and s.runtime.cluster is not None for s in (b, c)), timeout=10)
            leader = next(s for s in (b, c) if s.runtime is not None and s.runtime.cluster is not None)
            other = c if leader is b else b
            await retried(other, "Dee Ruiz", key, sid)  # through the other follower to the new leader
            await retried(leader, "Dee Ruiz", key, sid)  # and on the new leader itself
            seq = leader.runtime.engine.seq if leader.runtime is not None else 0
            await eventually(lambda: other.runtime is not None and other.runtime.engine.seq >= seq, timeout=5)
            for server in (a, b, c):
                for name in ("Ann Lee", "Bea Moss", "Cy Park", "Dee Ruiz"):
                    assert len(_named(server, name)) == 1, (name, _named(server, name))

    run(main(), 90)
