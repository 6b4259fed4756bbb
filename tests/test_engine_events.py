"""Events: ordering, audiences, ``session_gone``, and consoles that stay true.

The long random runs here are the example-based counterpart of the
hypothesis state machine in test_engine_properties.py: a fixed seed, many
more steps, every console compared with a fresh snapshot at checkpoints.
"""

from __future__ import annotations

from typing import Any

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
from repconsole.core.feed import SESSION_GONE
from repconsole.core.model import QueueRef
from repconsole.core.state import GapError


def may_see(engine: QueueEngine, rep: str, session: dict[str, Any]) -> bool:
    """The visibility rule, restated from the session dict the rep received."""
    if session["state"] == "ended":
        return False
    if rep == session["owner"] or rep in session["participants"]:
        return True

    def member(queue: str | None) -> bool:
        if queue is None:
            return False
        ref = QueueRef.parse(queue)
        return ref.id == rep if ref.is_personal else rep in engine.teams[ref.id].members

    return member(session["queue"]) or any(member(inv["target"]) for inv in session["invitations"])


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
    assert kinds == {"session", "chat", "team_chat", "team_read", "rep", "key"}
    steps = {step.kind.value for sid in site.session_ids for step in site.engine.session(sid).timeline}
    assert {"rule_transferred", "rule_overdue", "connection_lost", "held", "shared", "joined", "left", "ended"} <= steps
    assert sum(driver.refused.values()) > 0


def test_seq_strictly_increases_and_time_never_runs_back(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    site, _, _ = long_run
    seqs = [ev.seq for ev in site.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(a.at <= b.at for a, b in zip(site.events, site.events[1:]))
    assert site.engine.seq == seqs[-1]


def test_each_feed_is_gap_free(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    _, consoles, _ = long_run
    for console in consoles.values():
        seqs = [fe.seq for fe in console.received]
        assert seqs == list(range(1, len(seqs) + 1)) and console.state.seq == len(seqs)


def test_reps_only_receive_sessions_they_may_see(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    site, consoles, _ = long_run
    for rep, console in consoles.items():
        for fe in console.received:
            if fe.kind == "session":
                assert may_see(site.engine, rep, fe.data["session"]), (rep, fe.data["session"]["id"])


def test_event_audiences_are_exactly_who_may_see(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    site, _, _ = long_run
    engine = site.engine
    latest: dict[str, dict[str, Any]] = {}
    for ev in site.events:
        if ev.kind == "session":
            s = ev.data["session"]
            latest[s["id"]] = s
            assert ev.audience == {r for r in engine.reps if may_see(engine, r, s)}
            assert not ev.audience & ev.gone
        elif ev.kind == "chat":
            # Chat goes to the reps in the session, as it stands at that moment.
            s = latest[ev.data["session"]]
            assert ev.audience == {s["owner"], *s["participants"]} - {None}
        elif ev.kind == "team_chat":
            assert ev.audience == engine.teams[ev.data["team"]].members
        elif ev.kind == "rep":
            assert ev.audience == set(engine.reps)
        else:
            assert ev.kind in ("key", "team_read") and len(ev.audience) == 1


def test_a_rep_of_another_team_never_receives_its_sessions(long_run: tuple[Site, dict[str, Console], RandomDriver]) -> None:
    # Dave (Hardware only) never sees a Networking or Billing session unless
    # it was put in front of him: his own queue, his session, an invitation.
    site, consoles, _ = long_run
    for fe in consoles["dave"].received:
        if fe.kind == "session":
            s = fe.data["session"]
            if s["queue"] in ("team:net", "team:bill"):
                assert s["owner"] == "dave" or "dave" in s["participants"] or any(
                    inv["target"] in ("rep:dave", "team:hw") for inv in s["invitations"]
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
    def story(seed: int) -> list[tuple[int, str, Any, frozenset[str]]]:
        site, _, _ = run_random(seed, 600)
        return [(ev.seq, ev.kind, ev.data, ev.audience) for ev in site.events]

    assert story(5) == story(5)
    assert story(5) != story(6)


# ----------------------------------------------------------------- gone


def gone_of(console: Console) -> list[dict[str, Any]]:
    return [fe.data for fe in console.received if fe.kind == SESSION_GONE]


def test_gone_taken_names_who_took_it(site: Site) -> None:
    s = site.waiting_in_net()
    bob, erin = site.console("bob"), site.console("erin")
    site.engine.accept("alice", s.id)
    assert gone_of(bob) == gone_of(erin) == [{"id": s.id, "reason": "taken", "by": "alice"}]


def test_gone_moved_does_not_say_where(site: Site) -> None:
    s = site.active("alice")
    alice = site.console("alice")
    site.engine.transfer("alice", s.id, QueueRef.team("bill"))
    assert gone_of(alice) == [{"id": s.id, "reason": "moved"}]


def test_gone_ended_says_why(site: Site) -> None:
    s = site.waiting_in_net()
    bob = site.console("bob")
    site.engine.customer_leave(s.id)
    assert gone_of(bob) == [{"id": s.id, "reason": "ended", "detail": "customer left"}]


def test_gone_is_sent_once_and_only_to_those_who_saw_it(site: Site) -> None:
    s = site.waiting_in_net()
    carol = site.console("carol")
    site.engine.accept("alice", s.id)
    site.engine.end("alice", s.id)
    assert carol.received == []
    events = [ev for ev in site.events if ev.kind == "session" and ev.data["session"]["id"] == s.id]
    assert [sorted(ev.gone) for ev in events] == [[], ["bob", "erin"], ["alice"]]


# --------------------------------------------------------------- console


def test_a_skipped_event_is_a_gap(site: Site) -> None:
    bob = site.console("bob")
    site.waiting_in_net("one")
    site.waiting_in_net("two")
    first, second = bob.pending
    with pytest.raises(GapError) as info:
        bob.state.apply([second])
    assert (info.value.expected, info.value.got) == (first.seq, second.seq)
    bob.state.apply([first, second])
    with pytest.raises(GapError):
        bob.state.apply([second])  # a repeat is a gap too


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
