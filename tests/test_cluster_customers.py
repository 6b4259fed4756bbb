"""Customers, co-browse recorders and snippets on any process of a cluster (issue 15): real server processes on a real redis-server.

A customer page connected to a follower starts, chats, resumes and leaves: its requests are forwarded to the
leader (:meth:`CustomerDesk.forwarded <repconsole.server.customers.CustomerDesk.forwarded>`), and what it is
pushed comes from the log entries the follower applies (``Runtime.applied``), as on the leader.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)
from server_helpers import CustomerClient, RecorderClient, RepClient, page_change, page_snapshot, run, session_event
from test_cluster_processes import Cluster, cluster, cluster_site

from repconsole.protocol import (
    ChatData,
    CobrowseName,
    CobrowseState,
    CustomerResume,
    CustomerState,
    Error,
    GoneReason,
    Leave,
    NoResult,
    Result,
    Say,
    SayResult,
    SessionGoneData,
    SessionGoneEvent,
    SnippetResult,
    Started,
    Via,
)


def test_a_customer_on_a_follower_chats_with_a_rep_on_the_leader_resumes_and_leaves(redis_server: RedisServer, tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster(redis_server, tmp_path, n=2) as c:
            leader, follower = c.procs[0], c.procs[1]
            alice = await RepClient.open(leader)
            await alice.login("alice")
            ann = await CustomerClient.open(follower)
            ann.listen()
            started = await ann.start()
            assert isinstance(started, Started), started
            sid = started.session
            await ann.until(lambda: ann.state() is CustomerState.WAITING)
            assert ann.statuses[-1].position == 1
            await alice.wait_event(session_event(sid))  # raised on the leader
            assert isinstance(await alice.call("accept", session=sid), Result)
            await ann.until(lambda: ann.state() is CustomerState.ACTIVE)  # from the entry the follower applied
            assert isinstance(await alice.call("say", session=sid, text="Hello from Alice"), Result)
            await ann.until(lambda: "Hello from Alice" in ann.chat())
            said = await ann.request(Say, text="Thanks, Alice")
            assert isinstance(said, Result) and isinstance(said.result, SayResult), said
            await alice.wait_event(lambda e: isinstance(e.data, ChatData) and e.data.line.text == "Thanks, Alice")
            assert ann.token is not None
            await ann.close()
            # The token was replicated: the page resumes on the follower (and would on the leader).
            again = await CustomerClient.open(follower)
            again.listen()
            resumed = await again.request(CustomerResume, token=ann.token, last_line=0)
            assert isinstance(resumed, Started) and resumed.session == sid, resumed
            await again.until(lambda: again.chat()[-2:] == ["Hello from Alice", "Thanks, Alice"] and again.state() is CustomerState.ACTIVE)
            on_leader = await CustomerClient.open(leader)
            assert isinstance(await on_leader.request(CustomerResume, token=ann.token, last_line=0), Started)
            await on_leader.close()
            left = await again.request(Leave)
            assert isinstance(left, Result), left
            await again.until(lambda: again.state() is CustomerState.ENDED)
            gone = await alice.wait_event(lambda e: isinstance(e, SessionGoneEvent) and e.data.id == sid)
            assert gone.data == SessionGoneData(sid, GoneReason.ENDED, detail="customer left")
            # Every start kind goes through the leader: a personal queue's start from the follower.
            bob = await CustomerClient.open(follower)
            personal = await bob.start(Via.REP, "alice")
            assert isinstance(personal, Started), personal
            await alice.wait_event(session_event(personal.session))
            await bob.close()
            for p in c.procs.values():
                assert not p.problems(), p.lines

    run(main(), 60)


def test_a_recorder_on_a_follower_streams_to_a_rep_on_the_leader(redis_server: RedisServer, tmp_path: Path) -> None:
    """The customer's page and its recorder on a follower, the rep's console on the leader: the page reaches her
    through the relay (Redis pub/sub), the recorder hears her watch and her pointer, and her ``end`` ends the watch."""

    async def main() -> None:
        async with cluster(redis_server, tmp_path, n=2) as c:
            leader, follower = c.procs[0], c.procs[1]
            customer = await CustomerClient.open(follower)
            reply = await customer.start(Via.LINK, "link-alice", "Ann Lee", page_url="https://shop.example/")
            assert isinstance(reply, Started), reply
            sid = reply.session
            alice = await RepClient.open(leader)
            await alice.login("alice")
            await alice.ok("accept", session=sid)
            recorder = await RecorderClient.attached_to(follower, reply.token)  # was closed with 1013
            await recorder.record(page_snapshot("Hello"))
            await alice.ok(CobrowseName.WATCH, session=sid)
            await alice.until(lambda: alice.page.texts(sid) == ["Hello"])
            await recorder.until(lambda: bool(recorder.watching) and recorder.watching[-1].reps == ["Alice Ng"])
            for n in range(10):
                await recorder.record([page_change(f"change {n}")])
            await alice.until(lambda: alice.page.texts(sid) == ["Hello", *(f"change {n}" for n in range(10))])
            await alice.ok(CobrowseName.POINT, session=sid, x=1, y=2)
            await recorder.until(lambda: bool(recorder.pointers))
            assert recorder.pointers[-1].by == "Alice Ng"
            await alice.ok("end", session=sid)  # on the leader; the follower's recorder ends from the entry it applies
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.ENDED)
            for p in c.procs.values():
                assert not p.problems(), p.lines

    run(main(), 60)


def test_a_leads_snippet_made_on_a_follower_reaches_the_members_on_every_process(redis_server: RedisServer, tmp_path: Path) -> None:
    """``snippet_*`` on a follower is forwarded to the leader, which stores it and logs a SnippetRecord: every
    process's store and members' consoles get the change (add, edit, delete), and a retry gets the same answer."""

    async def main() -> None:
        from test_server_snippets import NET, NET_WITH_SNIPPETS, call, names, ok, told

        site = cluster_site(tmp_path, redis_server.url)
        site.write_text(site.read_text(encoding="utf-8").replace(NET, NET_WITH_SNIPPETS, 1), encoding="utf-8")
        async with AsyncExitStack() as stack:
            c = Cluster(stack, site, tmp_path, redis_server.url)
            for i in range(3):
                await c.start(i)
            alice = await RepClient.open(c.procs[1])  # the lead, on a follower
            await alice.login("alice")
            alice.listen()
            bob = await RepClient.open(c.procs[0])  # on the leader
            await bob.login("bob")
            bob.listen()
            erin = await RepClient.open(c.procs[2])  # on the other follower
            await erin.login("erin")
            erin.listen()
            added = await ok(alice, "snippet_add", team="net", name="wifi", text="Hi {customer}")
            assert isinstance(added, SnippetResult), added
            sid = added.snippet.id
            for member in (alice, bob, erin):
                assert names(await told(member, lambda s: len(s.snippets) == 2)) == ["vpn-reset", "wifi"]
            edited = await ok(alice, "snippet_edit", id=sid, name="wifi-2", text="Hello")
            assert isinstance(edited, SnippetResult) and edited.snippet.name == "wifi-2"
            for member in (bob, erin):
                assert names(await told(member, lambda s: "wifi-2" in [x.name for x in s.snippets])) == ["vpn-reset", "wifi-2"]
            late = await c.start(3)  # joins from the snapshot and the log: the snippet as edited
            carol = await RepClient.open(late)
            await carol.login("bob")
            carol.listen()
            assert names(await told(carol, lambda s: len(s.snippets) == 2)) == ["vpn-reset", "wifi-2"]
            assert isinstance(await ok(alice, "snippet_delete", id=sid), NoResult)
            for member in (alice, bob, erin, carol):
                assert names(await told(member, lambda s: len(s.snippets) == 1)) == ["vpn-reset"]
            refused = await call(erin, "snippet_add", team="net", name="x", text="y")  # not a lead: refused by the leader
            assert isinstance(refused, Error), refused
            for p in c.procs.values():
                assert not p.problems(), p.lines

    run(main(), 60)
