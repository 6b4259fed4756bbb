"""Events: ordering, audiences, ``session_gone``, and consoles that stay true.

The long random runs here are the example-based counterpart of the
hypothesis state machine in test_engine_properties.py: a fixed seed, many
more steps, every console compared with a fresh snapshot at checkpoints.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from engine_helpers import (
    Console,
    RandomDriver,
    Site,
    assert_mirrors_snapshot,
    build_site,
    intake,
    site,  # noqa: F401  (pytest fixture)
    standard_rules,
)

from repconsole.core.engine import Event, QueueEngine
from repconsole.core.feed import FeedBatch
from repconsole.core.model import QueueRef
from repconsole.core.state import GapError
from repconsole.protocol import (
    EventKind,
    GoneReason,
    SessionData,
    SessionEvent,
    SessionGoneData,
    SessionGoneEvent,
    SessionState,
    SessionView,
    StepKind,
)


def may_see(engine: QueueEngine, rep: str, session: SessionView) -> bool:
    """The visibility rule, restated from the session view the rep received."""
    if session.state is SessionState.ENDED:
        return False
    if rep == session.owner or rep in session.participants:
        return True

    def member(queue: str | None) -> bool:
        if queue is None:
            return False
        ref = QueueRef.parse(queue)
        return ref.id == rep if ref.is_personal else rep in engine.teams[ref.id].members

    return member(session.queue) or any(member(inv.target) for inv in session.invitations)


def run_random(seed: int, steps: int, *, checkpoints: int = 0) -> tuple[Site, dict[str, Console], RandomDriver]:
    site = build_site(seed)
    standard_rules(site)
    consoles = {rep: site.console(rep) for rep in site.engine.reps}
    driver = RandomDriver(site, seed)
    every = steps // checkpoints if checkpoints else 0
    for i in range(1, steps + 1):
        driver.step()
        if driver.rng.random() < 0.3:  # deliver in batches of varying size, like frames
            for console in consoles.values():
                console.sync()
        if every and i % every == 0:
            for console in consoles.values():
                assert_mirrors_snapshot(console)
    for console in consoles.values():
        console.sync()
    return site, consoles, driver


@pytest.fixture(scope="module")
def long_run() -> tuple[Site, dict[str, Console], RandomDriver]:
    return run_random(seed=2024, steps=4000, checkpoints=20)


def test_the_random_run_exercises_the_engine(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    # Guard against a driver that silently does nothing: every kind of
    # operation succeeded at least once and some were refused.
    site, _, driver = long_run
    assert set(driver.done) >= {"arrive", "accept", "get_next", "transfer", "share", "accept_invitation", "hold",
                                "resume", "end", "leave", "say", "customer_leave", "tick", "presence"}
    kinds = {ev.kind for ev in site.events}
    assert kinds == {EventKind.SESSION, EventKind.CHAT, EventKind.TEAM_CHAT, EventKind.TEAM_READ, EventKind.REP, EventKind.KEY}
    steps = {step.kind for sid in site.session_ids for step in site.engine.session(sid).timeline}
    assert {
        StepKind.RULE_TRANSFERRED, StepKind.RULE_OVERDUE, StepKind.CONNECTION_LOST, StepKind.HELD,
        StepKind.SHARED, StepKind.JOINED, StepKind.LEFT, StepKind.ENDED,
    } <= steps
    assert sum(driver.refused.values()) > 0


def test_seq_strictly_increases_and_time_never_runs_back(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    site, _, _ = long_run
    seqs = [ev.seq for ev in site.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(a.at <= b.at for a, b in zip(site.events, site.events[1:], strict=False))
    assert site.engine.seq == seqs[-1]


def test_each_feed_is_gap_free(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    # One numbering, the engine's: a rep's feed skips the events meant for
    # others, so "gap-free" means it holds every event routed to the rep (its
    # audience or its gone), each once and in order, and the console applied
    # them all (every batch's prev was checked against the last one applied).
    site, consoles, _ = long_run
    for rep, console in consoles.items():
        seqs = [fe.seq for fe in console.received]
        routed = [ev.seq for ev in site.events if rep in ev.audience or rep in ev.gone]
        assert seqs == routed and seqs == sorted(set(seqs))
        assert console.state.seq == (seqs[-1] if seqs else 0)


def test_reps_only_receive_sessions_they_may_see(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    site, consoles, _ = long_run
    for rep, console in consoles.items():
        for fe in console.received:
            if isinstance(fe, SessionEvent):
                assert may_see(site.engine, rep, fe.data.session), (rep, fe.data.session.id)


def test_event_audiences_are_exactly_who_may_see(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    site, _, _ = long_run
    engine = site.engine
    latest: dict[str, SessionView] = {}
    for ev in site.events:
        if ev.kind is EventKind.SESSION:
            s = ev.data.session
            latest[s.id] = s
            assert ev.audience == {r for r in engine.reps if may_see(engine, r, s)}
            assert not ev.audience & ev.gone
        elif ev.kind is EventKind.CHAT:
            # Chat goes to the reps in the session, as it stands at that moment.
            s = latest[ev.data.session]
            assert ev.audience == {s.owner, *s.participants} - {None}
        elif ev.kind is EventKind.TEAM_CHAT:
            assert ev.audience == engine.teams[ev.data.team].members
        elif ev.kind is EventKind.REP:
            assert ev.audience == set(engine.reps)
        else:
            assert ev.kind in (EventKind.KEY, EventKind.TEAM_READ) and len(ev.audience) == 1


def test_a_rep_of_another_team_never_receives_its_sessions(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    # Dave (Hardware only) never sees a Networking or Billing session unless
    # it was put in front of him: his own queue, his session, an invitation.
    site, consoles, _ = long_run
    for fe in consoles["dave"].received:
        if isinstance(fe, SessionEvent):
            s = fe.data.session
            if s.queue in ("team:net", "team:bill"):
                assert s.owner == "dave" or "dave" in s.participants or any(
                    inv.target in ("rep:dave", "team:hw") for inv in s.invitations
                )


def test_every_console_mirrors_a_fresh_snapshot_after_a_long_run(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    _, consoles, _ = long_run
    for console in consoles.values():
        assert_mirrors_snapshot(console)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mirrors_hold_with_other_seeds(seed: int) -> None:
    run_random(seed, 1500, checkpoints=15)


def test_same_seed_same_story() -> None:
    # The simulator relies on this: a seeded engine is fully repeatable.
    def story(seed: int) -> list[tuple[int, EventKind, Any, frozenset[str]]]:
        site, _, _ = run_random(seed, 600)
        return [(ev.seq, ev.kind, ev.data, ev.audience) for ev in site.events]

    assert story(5) == story(5)
    assert story(5) != story(6)


# ----------------------------------------------------------------- gone


def gone_of(console: Console) -> list[SessionGoneData]:
    return [fe.data for fe in console.received if isinstance(fe, SessionGoneEvent)]


def test_gone_taken_names_who_took_it(site: Site) -> None:
    s = site.waiting_in_net()
    bob, erin = site.console("bob"), site.console("erin")
    site.engine.accept("alice", s.id)
    assert gone_of(bob) == gone_of(erin) == [SessionGoneData(s.id, GoneReason.TAKEN, by="alice")]


def test_gone_transferred_tells_only_the_transferrer_where(site: Site) -> None:
    s = site.active("alice")
    site.engine.accept_invitation("bob", site.engine.share("alice", s.id, QueueRef.personal("bob")).id)
    alice, bob = site.console("alice"), site.console("bob")
    site.engine.transfer("alice", s.id, QueueRef.team("bill"))
    assert gone_of(alice) == [SessionGoneData(s.id, GoneReason.TRANSFERRED, by="alice", to="team:bill")]
    assert gone_of(bob) == [], "a participant stays in the session"
    # As the wire carries it: the id, the reason, who and where.
    wire = {"id": s.id, "reason": GoneReason.TRANSFERRED, "by": "alice", "to": "team:bill"}
    assert [msgspec.to_builtins(d) for d in gone_of(alice)] == [wire]


def test_gone_left_names_the_rep_who_left(site: Site) -> None:
    s = site.active("alice")
    site.engine.accept_invitation("bob", site.engine.share("alice", s.id, QueueRef.personal("bob")).id)
    alice, bob = site.console("alice"), site.console("bob")
    site.engine.leave("bob", s.id)
    assert gone_of(bob) == [SessionGoneData(s.id, GoneReason.LEFT, by="bob")] and gone_of(alice) == []


def test_gone_ended_says_the_customer_was_disconnected(site: Site) -> None:
    s = site.active("alice")
    alice = site.console("alice")
    site.engine.customer_leave(s.id, disconnected=True)
    assert gone_of(alice) == [SessionGoneData(s.id, GoneReason.ENDED, detail="customer disconnected")]


def test_gone_ended_says_why(site: Site) -> None:
    s = site.waiting_in_net()
    bob = site.console("bob")
    site.engine.customer_leave(s.id)
    assert gone_of(bob) == [SessionGoneData(s.id, GoneReason.ENDED, detail="customer left")]


def test_gone_is_sent_once_and_only_to_those_who_saw_it(site: Site) -> None:
    s = site.waiting_in_net()
    carol = site.console("carol")
    site.engine.accept("alice", s.id)
    site.engine.end("alice", s.id)
    assert carol.received == []
    events = [ev for ev in site.events if isinstance(ev.data, SessionData) and ev.data.session.id == s.id]
    assert [sorted(ev.gone) for ev in events] == [[], ["bob", "erin"], ["alice"]]


# --------------------------------------------------------------- console


def test_a_skipped_event_is_a_gap(site: Site) -> None:
    bob = site.console("bob")
    site.waiting_in_net("one")
    site.waiting_in_net("two")
    pending = bob.feed.take()
    assert pending is not None
    first, second = pending
    start = bob.state.seq
    assert pending.prev == start
    # Delivered one frame each, as the server would: the second follows the first.
    one, two = FeedBatch([first], prev=start), FeedBatch([second], prev=first.seq)
    with pytest.raises(GapError) as info:
        bob.state.apply(two)  # the first event went missing
    # The console is still after `start`; the batch it got follows `first`.
    assert (info.value.expected, info.value.got) == (start, first.seq)
    assert bob.state.seq == start
    bob.state.apply(one)
    bob.state.apply(two)
    assert bob.state.seq == second.seq
    with pytest.raises(GapError):
        bob.state.apply(two)  # a repeat is a gap too
    with pytest.raises(GapError):
        bob.state.apply(FeedBatch([second], prev=second.seq))  # even one that claims to follow on
    with pytest.raises(GapError):
        bob.state.apply(FeedBatch([first], prev=second.seq))  # or an older event after a newer one


def test_unsubscribed_listeners_hear_nothing(site: Site) -> None:
    heard: list[Event] = []
    stop = site.engine.subscribe(heard.append)
    site.waiting_in_net()
    stop()
    site.waiting_in_net()
    assert len(heard) == 1


def test_arrival_changes_report_rows_per_queue(site: Site) -> None:
    erin = site.console("erin")
    net = site.waiting_in_net()
    bill = site.engine.start_with_issue("invoice", intake())
    changes = erin.sync()
    assert set(changes.queues["team:net"].added) == {net.id}
    assert set(changes.queues["team:bill"].added) == {bill.id}
    site.engine.accept("erin", net.id)
    changes = erin.sync()
    assert changes.queues["team:net"].removed == {net.id}
    assert set(changes.queues["rep:erin"].added) == {net.id}
