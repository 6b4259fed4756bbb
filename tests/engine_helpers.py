"""Shared scaffolding for the engine tests (no Qt, no I/O).

* :func:`build_site` makes a small support site on a :class:`ManualClock`
  with a seeded generator, so every test is repeatable;
* :class:`Console` is one rep's console exactly as the simulator runs it:
  engine events -> :class:`RepFeed` -> batches -> :class:`ConsoleState`;
* :func:`assert_refused` checks the engine's promise that a refused command
  has a specific reason *and* changes nothing;
* :func:`console_view` / :func:`snapshot_view` reduce a console to what must
  agree with a fresh snapshot, so a mirrored console can be compared with one
  that just (re)connected.

Import the ``site`` fixture into a test module to use it
(``from engine_helpers import site``); this file is not a conftest because
``tests/conftest.py`` belongs to everyone.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from repconsole.core.clock import ManualClock
from repconsole.core.commands import execute
from repconsole.core.engine import TEAM_CHAT_HISTORY, Event, QueueEngine
from repconsole.core.errors import CommandError, Reason
from repconsole.core.feed import FeedBatch, RepFeed
from repconsole.core.intake import Intake
from repconsole.core.model import Origin, QueueRef, RoutingMode, RuleAction, Session, SessionState, SiteConfig, WaitingRule
from repconsole.core.state import Changes, ConsoleState, RowKind
from repconsole.protocol import Event as WireEvent
from repconsole.protocol import SessionData, SessionView

__all__ = [
    "ALL_ORIGINS",
    "BUTTON_EXPIRES_AT",
    "ORIGIN_QUEUE",
    "T0",
    "Console",
    "RandomDriver",
    "Site",
    "assert_mirrors_snapshot",
    "assert_refused",
    "build_site",
    "console_view",
    "fingerprint",
    "fresh_state",
    "intake",
    "live_states",
    "site",
    "snapshot_view",
    "standard_rules",
    "timeline_kinds",
]

T0 = 1_000_000.0
BUTTON_EXPIRES_AT = T0 + 3600.0

# The directory of the standard test site.
#   net  "Networking"   alice, bob, erin
#   bill "Billing"      carol, erin
#   hw   "Hardware"     dave
#   vault "Vault"       nobody; persistent (keeps sessions with nobody logged in)
TEAMS: list[tuple[str, str, bool]] = [
    ("net", "Networking", False),
    ("bill", "Billing", False),
    ("hw", "Hardware", False),
    ("vault", "Vault", True),
]
REPS: list[tuple[str, str, list[str]]] = [
    ("alice", "Alice Ng", ["net"]),
    ("bob", "Bob Ortiz", ["net"]),
    ("carol", "Carol Diaz", ["bill"]),
    ("dave", "Dave Kim", ["hw"]),
    ("erin", "Erin Wu", ["net", "bill"]),
]
ISSUES: list[tuple[str, str, str, str]] = [
    ("vpn", "VPN won't connect", "Network", "net"),
    ("invoice", "Invoice question", "Billing", "bill"),
    ("printer", "Printer offline", "Hardware", "hw"),
]

ALL_ORIGINS: tuple[Origin, ...] = tuple(Origin)
# Where the standard site's entry point for each origin lands.
ORIGIN_QUEUE: dict[Origin, QueueRef] = {
    Origin.SESSION_KEY: QueueRef.personal("alice"),
    Origin.REP_PICKED: QueueRef.personal("alice"),
    Origin.REP_BUTTON: QueueRef.personal("alice"),
    Origin.TEAM_BUTTON: QueueRef.team("net"),
    Origin.ISSUE_FORM: QueueRef.team("net"),
    Origin.BROWSER_REP: QueueRef.personal("alice"),
    Origin.BROWSER_TEAM: QueueRef.team("bill"),
}


def intake(name: str = "Ann Lee", **fields: Any) -> Intake:
    return Intake(name, **fields)


def routed_pair(clock: ManualClock, length: float = 600.0, served: int = 24) -> QueueEngine:
    """A routed team "net" (issue "vpn") of two reps of capacity 1 who have served ``served`` sessions between
    them, of ``length`` to ``length + 60`` s: history enough for a wait forecast (outlook.MIN_LENGTHS is 20)."""
    e = QueueEngine(clock, rng=random.Random(1))
    e.add_team("net", "Net", routing=RoutingMode.LEAST_BUSY, max_sessions=1)
    e.add_rep("a", "A", ["net"])
    e.add_rep("b", "B", ["net"])
    e.add_issue("vpn", "VPN", "Network", "net")
    for i in range(served):
        s = e.start_with_issue("vpn", intake(f"c{i}"))
        clock.advance(4)
        offer = next(o for o in e.open_offers() if o.session == s.id)
        e.accept_offer(offer.rep, s.id)
        clock.advance(length + (i % 3) * 30)
        e.end(offer.rep, s.id)
    return e


def both_serving(e: QueueEngine, clock: ManualClock, age: float) -> None:
    """Both reps of :func:`routed_pair` in a session that began ``age`` ago."""
    for name in ("x", "y"):
        s = e.start_with_issue("vpn", intake(name))
        offer = next(o for o in e.open_offers() if o.session == s.id)
        e.accept_offer(offer.rep, s.id)
    clock.advance(age)


@dataclass
class Site:
    """An engine with the standard directory, its clock and generator.

    Attributes:
        session_ids: every session the engine ever announced, in order; with
            it, tests can reach ended sessions through the public API.
        events: every event the engine emitted since the site was built.
    """

    clock: ManualClock
    engine: QueueEngine
    rng: random.Random
    session_ids: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def _record(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event.data, SessionData):
            sid = event.data.session.id
            if sid not in self._known:
                self._known.add(sid)
                self.session_ids.append(sid)

    def __post_init__(self) -> None:
        self._known: set[str] = set()
        self.engine.subscribe(self._record)

    def tick(self, seconds: float) -> int:
        """Move time on and let the engine fire what is due, as a backend does."""
        self.clock.advance(seconds)
        return self.engine.advance()

    def start(self, origin: Origin, customer: Intake | None = None, *, source: str = "") -> Session:
        """Start a session through ``origin``'s standard entry point (see ORIGIN_QUEUE)."""
        e = self.engine
        customer = customer or intake()
        match origin:
            case Origin.SESSION_KEY:
                key = e.generate_key("alice", 600)
                return e.start_with_key(key.key, customer, source=source)
            case Origin.REP_PICKED:
                return e.start_with_rep("alice", customer)
            case Origin.REP_BUTTON:
                return e.start_with_button("btn-alice", customer)
            case Origin.TEAM_BUTTON:
                return e.start_with_button("btn-net", customer)
            case Origin.ISSUE_FORM:
                return e.start_with_issue("vpn", customer)
            case Origin.BROWSER_REP:
                return e.start_browser("link-alice", customer, page_url="https://shop.example/cart", page_html="<p>cart</p>")
            case Origin.BROWSER_TEAM:
                return e.start_browser("link-bill", customer, page_url="https://bank.example/pay", page_html="<p>pay</p>")
        raise AssertionError(origin)

    def waiting_in_net(self, name: str = "Ann Lee") -> Session:
        return self.engine.start_with_issue("vpn", intake(name))

    def active(self, owner: str = "alice", *, name: str = "Ann Lee") -> Session:
        """A session ``owner`` accepted from the first of their team queues that has one."""
        rep = self.engine.reps[owner]
        team = sorted(rep.teams)[0]
        issue = next(code for code, _, _, t in ISSUES if t == team)
        s = self.engine.start_with_issue(issue, intake(name))
        return self.engine.accept(owner, s.id)

    def console(self, rep: str) -> Console:
        return Console(self.engine, rep)


def build_site(
    seed: int = 7,
    *,
    grace_period: float = 60.0,
    fallback_queue: QueueRef | None = None,
    max_sessions: dict[str, int] | None = None,
) -> Site:
    clock = ManualClock(T0)
    engine = QueueEngine(clock, rng=random.Random(seed), site=SiteConfig(grace_period=grace_period, fallback_queue=fallback_queue))
    for team_id, name, persistent in TEAMS:
        engine.add_team(team_id, name, persistent=persistent)
    for rep_id, name, teams in REPS:
        engine.add_rep(rep_id, name, teams, max_sessions=(max_sessions or {}).get(rep_id))
    for code, name, category, team in ISSUES:
        engine.add_issue(code, name, category, team)
    engine.add_button("btn-alice", "Alice's desk button", QueueRef.personal("alice"))
    engine.add_button("btn-net", "Networking Support Button", QueueRef.team("net"))
    engine.add_button("btn-promo", "Spring promo button", QueueRef.team("bill"), expires_at=BUTTON_EXPIRES_AT)
    engine.add_link("link-alice", "Help from Alice", QueueRef.personal("alice"))
    engine.add_link("link-bill", "Billing help link", QueueRef.team("bill"))
    return Site(clock, engine, random.Random(seed))


@pytest.fixture
def site() -> Site:
    return build_site()


class Console:
    """One rep's console as the simulator runs it.

    Engine events are projected by a :class:`RepFeed` as they happen and
    queued; :meth:`sync` delivers the queue as one batch, like a frame.
    """

    def __init__(self, engine: QueueEngine, rep: str) -> None:
        self.engine = engine
        self.rep = rep
        self.feed = RepFeed(rep)
        self.state = ConsoleState()
        self.received: list[WireEvent] = []  # every feed event, for assertions
        self.unsubscribe = engine.subscribe(self._on_event)
        self.state.apply(self.feed.snapshot(engine))

    def _on_event(self, event: Event) -> None:
        fe = self.feed.project(event)
        if fe is not None:
            self.received.append(fe)

    def sync(self) -> Changes:
        batch = self.feed.take()
        return self.state.apply(batch if batch is not None else FeedBatch(prev=self.state.seq))

    def rows(self, queue: str) -> dict[str, RowKind]:
        """Row id -> kind for one queue table, after delivering what is pending."""
        self.sync()
        return {row_id: row.kind for row_id, row in self.state.rows.get(queue, {}).items()}

    def kinds(self) -> list[str]:
        return [fe.__struct_config__.tag for fe in self.received]  # type: ignore[misc]


# ------------------------------------------------------------- comparisons


def _strip(session: SessionView) -> SessionView:
    # chat and page_html travel only with a chat-bearing view (snapshot /
    # accept result), never in events; the console keeps them aside.
    return msgspec.structs.replace(session, chat=UNSET, page_html=UNSET)


def console_view(state: ConsoleState, now: float) -> dict[str, Any]:
    """What a mirrored console and a freshly loaded one must agree on."""
    return {
        "me": state.me,
        "reps": state.reps,
        "teams": state.teams,
        "my_teams": state.my_teams,
        "sessions": {sid: _strip(s) for sid, s in state.sessions.items()},
        "rows": {
            queue: {
                row_id: (row.kind, row.queue, _strip(row.session), row.invitation)
                for row_id, row in rows.items()
            }
            for queue, rows in state.rows.items()
        },
        "team_chat": {
            # A snapshot carries only the last TEAM_CHAT_HISTORY lines.
            t: (c.count, c.last_read, c.lines[-TEAM_CHAT_HISTORY:])
            for t, c in state.team_chat.items()
        },
        # Keys expire silently (no event); a console hides them by time.
        "keys": {k: v for k, v in state.keys.items() if v.expires_at > now},
    }


def fresh_state(engine: QueueEngine, rep: str) -> ConsoleState:
    state = ConsoleState()
    state.apply(RepFeed(rep).snapshot(engine))
    return state


def snapshot_view(engine: QueueEngine, rep: str) -> dict[str, Any]:
    return console_view(fresh_state(engine, rep), engine.now())


def assert_mirrors_snapshot(console: Console) -> None:
    """The console fed event by event shows exactly what a reconnecting one would."""
    console.sync()
    engine = console.engine
    fresh = fresh_state(engine, console.rep)
    assert console_view(console.state, engine.now()) == console_view(fresh, engine.now())
    # A console only receives chat lines from the moment it is in a session;
    # earlier history comes with the accept result.  So each mirrored line
    # must be the engine's line of that number, with nothing invented.
    for sid, lines in fresh.chats.items():
        mine = console.state.chats.get(sid, [])
        assert [line.n for line in mine] == sorted({line.n for line in mine})
        for line in mine:
            assert lines[line.n - 1] == line


def fingerprint(engine: QueueEngine, session_ids: Iterable[str] = ()) -> dict[str, Any]:
    """Everything a command could change, through the public API only.

    ``session_ids`` adds sessions that may have ended (an ended session is
    no longer listed by :meth:`QueueEngine.sessions`).
    """
    ids = {s.id for s in engine.sessions()} | set(session_ids)
    snapshots = {}
    for rep in engine.reps:
        snapshots[rep] = msgspec.structs.replace(engine.snapshot(rep), at=0.0)
    return {
        "seq": engine.seq,
        "next_deadline": engine.next_deadline(),
        "sessions": {sid: engine.session(sid).view(chat=True) for sid in sorted(ids)},
        "snapshots": snapshots,
        "loads": {rep: engine.load(rep) for rep in engine.reps},
    }


def assert_refused(
    engine: QueueEngine,
    reason: Reason,
    action: Callable[[], object],
    *,
    session_ids: Iterable[str] = (),
) -> CommandError:
    """``action`` is refused for ``reason`` and leaves the engine exactly as it was."""
    ids = list(session_ids)
    before = fingerprint(engine, ids)
    with pytest.raises(CommandError) as info:
        action()
    assert info.value.reason is reason, f"expected {reason.value}, got {info.value}"
    after = fingerprint(engine, ids)
    assert after == before, "a refused command changed the engine"
    return info.value


def timeline_kinds(s: Session) -> list[str]:
    return [step.kind.value for step in s.timeline]


def live_states(engine: QueueEngine) -> dict[str, SessionState]:
    return {s.id: s.state for s in engine.sessions()}


# ------------------------------------------------------------ random traffic


class RandomDriver:
    """Random but plausible traffic on a :class:`Site`: every origin, every
    rep command (through :func:`execute`), customers chatting and leaving,
    connections dropping, time passing.

    Refusals are part of the traffic; each one is checked to have emitted
    nothing.  ``refused`` counts them by reason.
    """

    def __init__(self, site: Site, seed: int) -> None:
        self.site = site
        self.rng = random.Random(seed)
        self.refused: dict[Reason, int] = {}
        self.done: dict[str, int] = {}
        self._ops: list[tuple[Callable[[], object], int]] = [
            (self.arrive, 18), (self.accept, 10), (self.get_next, 5), (self.transfer, 6), (self.share, 4),
            (self.accept_invitation, 4), (self.hold, 3), (self.resume, 3), (self.end, 4), (self.leave, 2),
            (self.say, 6), (self.customer_say, 3), (self.customer_leave, 3), (self.team_chat, 3),
            (self.status, 1), (self.presence, 2), (self.tick, 8), (self.external_key, 1),
        ]
        self._weights = [w for _, w in self._ops]

    def run(self, steps: int, *, each: Callable[[], None] | None = None) -> None:
        for _ in range(steps):
            self.step()
            if each is not None:
                each()

    def step(self) -> None:
        ((op, _),) = self.rng.choices(self._ops, weights=self._weights)
        self._mark()
        try:
            op()
            self.done[op.__name__] = self.done.get(op.__name__, 0) + 1
        except CommandError as exc:
            assert self.site.engine.seq == self._seq, f"refused {op.__name__} ({exc}) emitted events"
            self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1

    # -- helpers
    def _mark(self) -> None:
        """Remember the seq before the call that may be refused (set-up calls come before it)."""
        self._seq = self.site.engine.seq

    @property
    def e(self) -> QueueEngine:
        return self.site.engine

    def _rep(self, *, connected: bool = True) -> str:
        reps = [r.id for r in self.e.reps.values() if r.connected or not connected]
        return self.rng.choice(reps or list(self.e.reps))

    def _session(self, pred: Callable[[Session], bool] = lambda s: True) -> Session | None:
        pool = [s for s in self.e.sessions() if pred(s)]
        return self.rng.choice(pool) if pool else None

    def _target(self) -> str:
        if self.rng.random() < 0.5:
            return f"rep:{self._rep()}"
        return f"team:{self.rng.choice(sorted(self.e.teams))}"

    def _cmd(self, rep: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return execute(self.e, rep, name, args)

    # -- operations
    def arrive(self) -> None:
        origin = self.rng.choice(ALL_ORIGINS)
        customer = intake(f"Customer {self.rng.randrange(10_000)}", company=self.rng.choice(["", "Acme", "Globex"]))
        e = self.e
        match origin:
            case Origin.SESSION_KEY:
                key = e.generate_key(self._rep(), self.rng.choice([30, 600]))
                if self.rng.random() < 0.1:
                    self.tick()
                self._mark()
                e.start_with_key(key.key.lower() if self.rng.random() < 0.3 else key.key, customer, source=str(self.rng.randrange(3)))
            case Origin.REP_PICKED:
                e.start_with_rep(self._rep(connected=False), customer)
            case Origin.REP_BUTTON:
                e.start_with_button("btn-alice", customer)
            case Origin.TEAM_BUTTON:
                e.start_with_button(self.rng.choice(["btn-net", "btn-promo"]), customer)
            case Origin.ISSUE_FORM:
                e.start_with_issue(self.rng.choice(sorted(e.issues)), customer)
            case Origin.BROWSER_REP | Origin.BROWSER_TEAM:
                e.start_browser(self.rng.choice(["link-alice", "link-bill"]), customer, page_url="https://x.example", page_html="<p/>")

    def accept(self) -> None:
        s = self._session(lambda s: s.state is SessionState.WAITING)
        if s is None:
            return
        assert s.queue is not None
        if s.queue.is_personal and self.rng.random() < 0.8:
            rep = s.queue.id
        elif not s.queue.is_personal and self.rng.random() < 0.8 and self.e.teams[s.queue.id].members:
            rep = self.rng.choice(sorted(self.e.teams[s.queue.id].members))
        else:
            rep = self._rep()
        self._cmd(rep, "accept", {"session": s.id})

    def get_next(self) -> None:
        self._cmd(self._rep(), "get_next", {})

    def _owned(self) -> Session | None:
        return self._session(lambda s: s.owner is not None)

    def transfer(self) -> None:
        s = self._owned()
        if s is not None:
            args: dict[str, Any] = {"session": s.id, "target": self._target(), "stay": self.rng.random() < 0.3}
            if self.rng.random() < 0.5:
                args["note"] = "over to you"
            self._cmd(s.owner or "", "transfer", args)

    def share(self) -> None:
        s = self._owned()
        if s is not None:
            self._cmd(s.owner or "", "share", {"session": s.id, "target": self._target()})

    def accept_invitation(self) -> None:
        s = self._session(lambda s: bool(s.invitations))
        if s is None:
            return
        inv = self.rng.choice(list(s.invitations.values()))
        members = sorted(self.e.teams[inv.target.id].members) if not inv.target.is_personal else [inv.target.id]
        rep = self.rng.choice(members) if members and self.rng.random() < 0.9 else self._rep()
        self._cmd(rep, "accept_invitation", {"invitation": inv.id})

    def hold(self) -> None:
        s = self._session(lambda s: s.state is SessionState.ACTIVE)
        if s is not None:
            self._cmd(s.owner or "", "hold", {"session": s.id})

    def resume(self) -> None:
        s = self._session(lambda s: s.held)
        if s is not None:
            self._cmd(s.owner or "", "accept", {"session": s.id})

    def end(self) -> None:
        s = self._owned()
        if s is not None:
            self._cmd(s.owner or "", "end", {"session": s.id})

    def leave(self) -> None:
        s = self._session(lambda s: bool(s.participants))
        if s is not None:
            self._cmd(self.rng.choice(list(s.participants)), "leave", {"session": s.id})

    def say(self) -> None:
        s = self._owned()
        if s is not None:
            self._cmd(s.owner or "", "say", {"session": s.id, "text": "try restarting", "reps_only": self.rng.random() < 0.3})

    def customer_say(self) -> None:
        s = self._session()
        if s is not None:
            self.e.customer_say(s.id, "hello?")

    def customer_leave(self) -> None:
        s = self._session()
        if s is not None:
            self.e.customer_leave(s.id)

    def team_chat(self) -> None:
        team = self.rng.choice(sorted(self.e.teams))
        rep = self._rep()
        if self.rng.random() < 0.5:
            self._cmd(rep, "team_say", {"team": team, "text": "anyone free?"})
        else:
            self._cmd(rep, "team_read", {"team": team})

    def status(self) -> None:
        self._cmd(self._rep(), "set_status", {"status": self.rng.choice(["available", "busy", "away"])})

    def presence(self) -> None:
        rep = self.rng.choice(sorted(self.e.reps))
        if self.e.reps[rep].connected:
            self.e.rep_disconnected(rep)
        else:
            self.e.rep_connected(rep)

    def tick(self) -> None:
        self.site.tick(self.rng.choice([0.5, 5.0, 20.0, 45.0, 70.0]))

    def external_key(self) -> None:
        s = self._owned()
        if s is not None:
            self._cmd(s.owner or "", "set_external_key", {"session": s.id, "external_key": f"TCK-{self.rng.randrange(999)}"})


def standard_rules(site: Site) -> None:
    """Rules that make time matter: an overflow pair (the ping-pong trap) and a mark."""
    site.engine.set_rule("net", WaitingRule(60, RuleAction.TRANSFER, "bill"))
    site.engine.set_rule("bill", WaitingRule(90, RuleAction.TRANSFER, "net"))
    site.engine.set_rule("hw", WaitingRule(120, RuleAction.MARK_OVERDUE))
