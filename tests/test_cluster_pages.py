"""Customer pages on a cluster's processes (issue 15): typing notices between processes, and the grace period of a
page whose process died.  Real server processes on a real redis-server (the fixtures of test_cluster_processes).

- Typing (``cluster/notices.py``): a notice crosses processes over Redis pub/sub, checked and throttled once, on
  the process it came in at.
- Grace (``CustomerDesk.pages_moved``): followers tell the leader the sessions whose pages they hold; the leader
  counts every grace period, for pages on any process.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)
from server_helpers import CustomerClient, RepClient, run, session_event
from test_cluster_processes import Cluster, cluster, cluster_site

from repconsole.protocol import (
    CustomerIsTyping,
    CustomerResume,
    CustomerState,
    CustomerTyping,
    Event,
    RepIsTyping,
    Result,
    Say,
    SessionData,
    SessionGoneEvent,
    SessionState,
    Started,
    Typing,
)


def _typing(client: RepClient | CustomerClient, what: object) -> int:
    return sum(1 for m in client.received if m == what)


def test_typing_crosses_processes_both_ways_throttled_once(redis_server: RedisServer, tmp_path: Path) -> None:
    """Pages on the follower, the rep's console on the leader.  A burst of notices from a page reaches the rep once;
    a burst of the rep's reaches the page once (one per THROTTLE and sender, enforced where it came in).  What
    comes after a burst on the same path is the marker that the burst is over: pub/sub keeps one publisher's order."""

    async def main() -> None:
        async with cluster(redis_server, tmp_path, n=2) as c:
            leader, follower = c.procs[0], c.procs[1]
            alice = await RepClient.open(leader)
            await alice.login("alice")
            ann = await CustomerClient.started(follower, "Ann Lee")
            bea = await CustomerClient.started(follower, "Bea Moss")
            assert ann.session is not None and bea.session is not None
            for page in (ann, bea):
                await alice.wait_event(session_event(page.session or ""), timeout=5)
            # The customer's side: ten notices at once from ann's page, on the follower.
            for _ in range(10):
                await ann.send(CustomerTyping(ann.next_id()))
            assert isinstance(await ann.request(Say, text="hello"), Result)  # the follower has handled the ten
            await bea.send(CustomerTyping(bea.next_id()))  # published after them
            await alice.until(lambda: _typing(alice, CustomerIsTyping(bea.session or "")) == 1, timeout=5)
            assert _typing(alice, CustomerIsTyping(ann.session)) == 1
            # The rep's side: ten notices at once from alice's console, on the leader, then one in bea's session.
            for page in (ann, bea):
                await alice.ok("accept", session=page.session)
            await ann.until(lambda: ann.state() is CustomerState.ACTIVE, timeout=5)
            await bea.until(lambda: bea.state() is CustomerState.ACTIVE, timeout=5)
            for _ in range(10):
                await alice.send(Typing(alice.next_id(), ann.session))
            await alice.send(Typing(alice.next_id(), bea.session))
            await bea.until(lambda: _typing(bea, RepIsTyping("Alice Ng")) == 1, timeout=5)
            await ann.until(lambda: _typing(ann, RepIsTyping("Alice Ng")) >= 1, timeout=5)
            assert _typing(ann, RepIsTyping("Alice Ng")) == 1
            for p in c.procs.values():
                assert not p.problems(), p.lines

    run(main(), 60)


def _graced_cluster(stack: AsyncExitStack, redis: RedisServer, tmp_path: Path) -> Cluster:
    site = cluster_site(tmp_path, redis.url)
    site.write_text(site.read_text(encoding="utf-8").replace("customer_grace = 0", "customer_grace = 1", 1), encoding="utf-8")
    return Cluster(stack, site, tmp_path, redis.url)


def _ended(sid: str) -> Callable[[Event], bool]:
    def pred(e: Event) -> bool:
        if isinstance(e, SessionGoneEvent):
            return e.data.id == sid
        return isinstance(e.data, SessionData) and e.data.session.id == sid and e.data.session.state is SessionState.ENDED

    return pred


async def _started(proc: object, name: str) -> CustomerClient:
    page = await CustomerClient.started(proc, name, listen=True)
    assert page.session is not None and page.token is not None
    return page


def test_the_leader_ends_the_sessions_of_pages_on_a_killed_follower_after_the_grace_unless_they_came_back(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """kill -9 of follower B with two pages: the leader, hearing nothing from B for PRESENCE_TTL, starts their grace
    (1 s); the one that resumed on follower C in time keeps its session, the other ends "customer disconnected".  A
    page on C is untouched."""

    async def main() -> None:
        async with AsyncExitStack() as stack:
            c = _graced_cluster(stack, redis_server, tmp_path)
            for i in range(3):
                await c.start(i)
            alice = await RepClient.open(c.procs[0])
            await alice.login("alice")
            lost, moved = await _started(c.procs[1], "Lou Gray"), await _started(c.procs[1], "Mo Reyes")
            stays = await _started(c.procs[2], "Sal Diaz")
            sids = [p.session or "" for p in (lost, moved, stays)]
            for sid in sids:
                await alice.wait_event(session_event(sid), timeout=5)
            await c.procs[1].kill()
            back = (await CustomerClient.open(c.procs[2])).listen()
            resumed = await back.request(CustomerResume, token=moved.token, last_line=0)
            assert isinstance(resumed, Started) and resumed.session == sids[1], resumed
            gone = await alice.wait_event(_ended(sids[0]), timeout=20)  # PRESENCE_TTL + grace + a poll
            assert not isinstance(gone, SessionGoneEvent) or gone.data.detail == "customer disconnected", gone
            await alice.ok("team_say", team="net", text="after")  # a round trip through the leader: its timers ran
            assert not [e for e in alice.events if _ended(sids[1])(e) or _ended(sids[2])(e)]
            for page in (back, stays):
                await page.until(lambda page=page: page.state() is not None)
                assert page.state() is CustomerState.WAITING, page.statuses
            for i in (0, 2):
                assert not c.procs[i].problems(), c.procs[i].lines

    run(main(), 60)


def test_after_a_leader_kill_only_the_dead_leaders_pages_get_a_grace_period(redis_server: RedisServer, tmp_path: Path) -> None:
    """kill -9 of the leader: the follower that takes over starts the grace of the pages no process holds (the dead
    leader's), not of those on the surviving processes."""

    async def main() -> None:
        async with AsyncExitStack() as stack:
            c = _graced_cluster(stack, redis_server, tmp_path)
            for i in range(3):
                await c.start(i)
            alice = await RepClient.open(c.procs[1])
            await alice.login("alice")
            pages = [await _started(c.procs[i], f"Customer {i}") for i in range(3)]
            sids = [p.session or "" for p in pages]
            for sid in sids:
                await alice.wait_event(session_event(sid), timeout=5)
            await c.procs[0].kill()
            gone = await alice.wait_event(_ended(sids[0]), timeout=20)  # lease_ttl + PRESENCE_TTL + a poll
            assert not isinstance(gone, SessionGoneEvent) or gone.data.detail == "customer disconnected", gone
            await alice.ok("team_say", team="net", text="after")  # through the new leader: its grace timers ran
            assert not [e for e in alice.events if _ended(sids[1])(e) or _ended(sids[2])(e)]
            for page in pages[1:]:
                assert page.state() is CustomerState.WAITING, page.statuses
            for i in (1, 2):
                assert not [line for line in c.procs[i].problems() if "Traceback" in line], c.procs[i].lines

    run(main(), 60)
