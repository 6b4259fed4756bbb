"""Queue engine throughput and memory, on one core.

    python -m bench.bench_engine             # full run (about a minute)
    python -m bench.bench_engine --quick     # smoke run (a few seconds)

Prints:

* operations per second for a realistic mix - customers arriving through
  every origin, accepts and Get Next, transfers, shares, holds, chat, ends,
  customers giving up, waiting-session rules firing - measured twice: with
  one rep's :class:`RepFeed` + :class:`ConsoleState` subscribed and fed in
  frame-sized batches (what the simulator does for its console), and with no
  subscriber at all (the engine alone);
* bytes per waiting session (tracemalloc) with 100,000 customers waiting,
  for the engine alone and for one console mirroring them.

An *operation* is one successful engine call (a command, a customer
request) or one timer that fired.  Refused calls are counted and shown but
not included.  Each measurement builds a fresh engine with the same seed,
so every repetition does exactly the same work; the median of the runs is
reported, with min–max (the machine is shared: a best run is not a promise).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from repconsole.core.clock import ManualClock
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.errors import CommandError
from repconsole.core.feed import RepFeed
from repconsole.core.intake import Intake
from repconsole.core.model import Priority, QueueRef, RuleAction, Session, SessionState, SiteConfig, WaitingRule
from repconsole.core.state import ConsoleState

__all__ = ["TARGET_OPS_PER_SECOND", "ThroughputResult", "main", "measure_memory", "measure_throughput"]

TARGET_OPS_PER_SECOND = 50_000
ME = "me"
FRAME_OPS = 64  # ops between two deliveries to the console (one "frame" of batched events)
SECONDS_PER_OP = 0.01  # engine time that passes per operation: a busy site, 100 operations per engine-second

# Team id, name, waiting-session rule, persistent.  Networking and Accounts
# overflow into each other (the ping-pong trap); the others mark overdue.
TEAMS: list[tuple[str, str, WaitingRule, bool]] = [
    ("network", "Networking", WaitingRule(45, RuleAction.TRANSFER, "accounts"), False),
    ("accounts", "Accounts & Billing", WaitingRule(60, RuleAction.TRANSFER, "network"), False),
    ("software", "Software", WaitingRule(90, RuleAction.MARK_OVERDUE), True),
    ("hardware", "Hardware", WaitingRule(120, RuleAction.MARK_OVERDUE), False),
]
ISSUES = [("vpn", "network"), ("wifi", "network"), ("invoice", "accounts"), ("login", "accounts"),
          ("install", "software"), ("crash", "software"), ("printer", "hardware"), ("laptop", "hardware")]
PEERS = 48  # besides "me"; 12 per team, some in two teams

# Operation mix, by weight.  Arrivals balance what leaves the queues.
MIX: dict[str, int] = {
    "arrive": 22,
    "get_next": 16,
    "accept_personal": 7,
    "transfer": 6,
    "share": 3,
    "accept_invitation": 3,
    "hold": 2,
    "resume": 2,
    "say": 14,
    "customer_say": 9,
    "end": 15,
    "customer_leave": 3,
    "team_say": 1,
}
# How arrivals come in, by weight (as in the simulator's world).
ORIGINS: dict[str, int] = {"issue": 46, "team_button": 12, "rep_pick": 8, "rep_button": 7, "browser": 12, "session_key": 5}


def build_engine(seed: int) -> tuple[QueueEngine, ManualClock]:
    clock = ManualClock()
    engine = QueueEngine(clock, rng=random.Random(seed), site=SiteConfig(grace_period=30.0, fallback_queue=QueueRef.team("software")))
    for team_id, name, rule, persistent in TEAMS:
        engine.add_team(team_id, name, rule=rule, persistent=persistent)
    engine.add_rep(ME, "Alex Morgan", ["network", "accounts", "software"], max_sessions=6)
    team_ids = [t for t, _, _, _ in TEAMS]
    for i in range(PEERS):
        teams = {team_ids[i % 4]} | ({team_ids[(i + 1) % 4]} if i % 3 == 0 else set())
        engine.add_rep(f"peer{i}", f"Peer {i}", teams, max_sessions=5)
    for code, team in ISSUES:
        engine.add_issue(code, code.title(), team.title(), team)
    engine.add_button("btn-me", "Alex's desk button", QueueRef.personal(ME))
    engine.add_button("btn-peer0", "Peer 0's desk button", QueueRef.personal("peer0"))
    for team_id in team_ids:
        engine.add_button(f"btn-{team_id}", f"{team_id} Support Button", QueueRef.team(team_id))
    engine.add_link("link-me", "Help from Alex", QueueRef.personal(ME))
    engine.add_link("link-software", "Product help", QueueRef.team("software"))
    engine.add_link("link-accounts", "Billing help", QueueRef.team("accounts"))
    return engine, clock


def customers(rng: random.Random, n: int) -> list[Intake]:
    """A pool of realistic intakes, built before timing: the bench measures the engine, not Intake."""
    companies = ["Acme Corp", "Globex", "Initech", "Hooli", "Umbrella Health", ""]
    pool = []
    for i in range(n):
        company = rng.choice(companies)
        pool.append(Intake(
            f"Customer {i} {rng.choice(['Smith', 'García', 'Nguyen', 'Kim', 'Müller'])}",
            company=company,
            company_code=company[:3].upper(),
            details=rng.choice(["It worked yesterday.", "Error 0x80070005 on install.", ""]),
            platform=rng.choice(["Windows 11", "macOS 15", "Ubuntu 24.04"]),
            locale=rng.choice(["en-US", "de-DE", "fr-FR"]),
            external_key=f"TCK-{rng.randint(10000, 99999)}" if rng.random() < 0.35 else "",
            custom_fields={"contract": "Gold"} if rng.random() < 0.3 else {},
            priority=rng.choice(list(Priority)),
        ))
    return pool


def _draws(rng: random.Random, population: list[str], weights: list[int], block: int = 4096) -> Iterator[str]:
    """Weighted draws, made a block at a time (one C-level call instead of one per draw)."""
    while True:
        yield from rng.choices(population, weights=weights, k=block)


class Workload:
    """Drives the mix.  Keeps its own light bookkeeping from return values
    (never a scan of the engine), so that the time measured is the engine's.
    """

    def __init__(self, engine: QueueEngine, clock: ManualClock, seed: int, waiting_target: int) -> None:
        self.e = engine
        self.clock = clock
        self.rng = random.Random(seed)
        self.pool = customers(self.rng, 512)
        self.reps = sorted(engine.reps)
        self.members = {t: sorted(engine.teams[t].members) for t in engine.teams}
        self.team_ids = sorted(engine.teams)
        self.issues = sorted(engine.issues)
        self.waiting_target = waiting_target
        self.active: list[Session] = []  # sessions some rep owns (entries may be stale)
        self.personal: deque[Session] = deque()  # arrivals in personal queues, oldest first
        self.recent: deque[Session] = deque(maxlen=2048)  # recent arrivals, for customers giving up
        self.held: list[Session] = []
        self.invitations: list[tuple[str, str]] = []  # (invitation id, rep who will take it)
        self.done: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.fired = 0
        self._random = self.rng.random
        # Arrival origins drawn in advance, in order: no per-arrival weighted choice.
        origins = list(ORIGINS)
        self._origin_plan = _draws(self.rng, origins, [ORIGINS[o] for o in origins])
        self._handlers: dict[str, Callable[[], int]] = {name: getattr(self, f"op_{name}") for name in MIX}

    # ------------------------------------------------------------ running

    def plan(self, n: int) -> list[str]:
        names = list(MIX)
        return self.rng.choices(names, weights=[MIX[k] for k in names], k=n)

    def run(self, plan: Sequence[str], on_frame: Callable[[], None] | None = None) -> int:
        """Execute ``plan``; returns the number of successful operations (timers included)."""
        e, clock, handlers = self.e, self.clock, self._handlers
        ops = 0
        for i, name in enumerate(plan):
            clock.now += SECONDS_PER_OP
            try:
                n = handlers[name]()
                ops += n
                if n:
                    self.done[name] += 1
            except CommandError as exc:
                self.refused[exc.reason.value] += 1
            fired = e.advance()
            self.fired += fired
            ops += fired
            if on_frame is not None and i % FRAME_OPS == 0:
                on_frame()
        return ops

    def populate(self) -> None:
        for _ in range(self.waiting_target):
            self.op_arrive()
            self.clock.now += 0.05
            self.e.advance()

    # ------------------------------------------------------------ helpers

    def _rep_with_room(self, candidates: Sequence[str]) -> str | None:
        e = self.e
        for _ in range(4):
            rep = candidates[self._index(len(candidates))]
            if e.load(rep) < e.reps[rep].max_sessions:
                return rep
        return None

    def _take_active(self) -> Session | None:
        """A random session that is still active, dropping stale entries on the way."""
        active = self.active
        while active:
            i = self._index(len(active))
            s = active[i]
            if s.state is SessionState.ACTIVE:
                return s
            active[i] = active[-1]
            active.pop()
        return None

    def _intake(self) -> Intake:
        return self.pool[self._index(len(self.pool))]

    def _index(self, n: int) -> int:
        # random() runs in C, randrange() in Python: the driver stays out of the figure.
        return int(self._random() * n)

    # --------------------------------------------------------- operations

    def op_arrive(self) -> int:
        e = self.e
        if e.waiting_total() > 1.3 * self.waiting_target:
            return self.op_get_next()
        kind = next(self._origin_plan)
        intake = self._intake()
        ops = 1
        if kind == "issue":
            s = e.start_with_issue(self.issues[self._index(len(self.issues))], intake)
        elif kind == "team_button":
            s = e.start_with_button(f"btn-{self.team_ids[self._index(4)]}", intake)
        elif kind == "rep_pick":
            s = e.start_with_rep(self.reps[self._index(len(self.reps))], intake)
        elif kind == "rep_button":
            s = e.start_with_button("btn-me" if self._random() < 0.5 else "btn-peer0", intake)
        elif kind == "browser":
            link = ("link-me", "link-software", "link-accounts")[self._index(3)]
            s = e.start_browser(link, intake, page_url="https://shop.example/checkout", page_html="<p>Payment failed</p>")
        else:
            key = e.generate_key(self.reps[self._index(len(self.reps))], 600)
            s = e.start_with_key(key.key, intake, source="phone")
            ops = 2
        if s.queue is not None and s.queue.is_personal:
            self.personal.append(s)
        self.recent.append(s)
        return ops

    def op_get_next(self) -> int:
        rep = self._rep_with_room(self.reps)
        if rep is None:
            return self.op_end()
        self.active.append(self.e.get_next(rep))
        return 1

    def op_accept_personal(self) -> int:
        while self.personal:
            s = self.personal.popleft()
            if s.state is SessionState.WAITING and s.queue is not None and s.queue.is_personal and not s.held:
                rep = s.queue.id
                if self.e.load(rep) >= self.e.reps[rep].max_sessions:
                    self.personal.append(s)  # later; free one of the rep's sessions instead
                    return self.op_end()
                self.active.append(self.e.accept(rep, s.id))
                return 1
        return self.op_get_next()

    def op_transfer(self) -> int:
        s = self._take_active()
        if s is None or s.owner is None:
            return 0
        if self._random() < 0.75:
            target = QueueRef.team(self.team_ids[self._index(4)])
        else:
            target = QueueRef.personal(self.reps[self._index(len(self.reps))])
            if target.id == s.owner:
                target = QueueRef.personal(ME if s.owner != ME else "peer1")
        self.e.transfer(s.owner, s.id, target, "Customer needs an admin - over to you." if self._random() < 0.5 else "",
                        stay=self._random() < 0.2)
        if target.is_personal:
            self.personal.append(s)
        return 1

    def op_share(self) -> int:
        s = self._take_active()
        if s is None or s.owner is None:
            return 0
        rep = self.reps[self._index(len(self.reps))]
        if rep == s.owner or rep in s.participants:
            return 0
        inv = self.e.share(s.owner, s.id, QueueRef.personal(rep))
        self.invitations.append((inv.id, rep))
        return 1

    def op_accept_invitation(self) -> int:
        while self.invitations:
            inv_id, rep = self.invitations.pop()
            if self.e.load(rep) < self.e.reps[rep].max_sessions:
                self.e.accept_invitation(rep, inv_id)
                return 1
        return self.op_say()

    def op_hold(self) -> int:
        s = self._take_active()
        if s is None or s.owner is None:
            return 0
        self.e.hold(s.owner, s.id)
        self.held.append(s)
        return 1

    def op_resume(self) -> int:
        while self.held:
            s = self.held.pop()
            if s.held and s.owner is not None:
                self.active.append(self.e.accept(s.owner, s.id))
                return 1
        return self.op_say()

    def op_say(self) -> int:
        s = self._take_active()
        if s is None or s.owner is None:
            return 0
        self.e.say(s.owner, s.id, "Could you open the network settings for me?", reps_only=self._random() < 0.15)
        return 1

    def op_customer_say(self) -> int:
        s = self._take_active()
        if s is None:
            return 0
        self.e.customer_say(s.id, "OK, one moment, let me try that.")
        return 1

    def op_end(self) -> int:
        s = self._take_active()
        if s is None or s.owner is None:
            return 0
        self.e.end(s.owner, s.id)
        return 1

    def op_customer_leave(self) -> int:
        recent = self.recent
        while recent:
            s = recent.popleft()
            if s.state is SessionState.WAITING and not s.held:
                self.e.customer_leave(s.id)
                return 1
        return 0

    def op_team_say(self) -> int:
        team = self.team_ids[self._index(4)]
        members = self.members[team]
        self.e.team_say(members[self._index(len(members))], team, "Queue's getting long, can someone jump on Get Next?")
        return 1


class _GcClock:
    """CPU time spent in the garbage collector while active (a context manager)."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            self.spent += time.process_time() - self._start

    def __enter__(self) -> _GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


@dataclass
class ThroughputResult:
    ops_per_second: list[float]
    ops: int
    elapsed: list[float]
    mix: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    fired: int = 0
    waiting_at_end: int = 0
    console_rows: int = 0
    gc_share: list[float] = field(default_factory=list)  # of the CPU time, per run
    halves: tuple[float, float] = (0.0, 0.0)  # ops/s in the first and second half of the best run (a drift check)

    @property
    def best(self) -> float:
        return max(self.ops_per_second)

    @property
    def median(self) -> float:
        return statistics.median(self.ops_per_second)

    @property
    def spread(self) -> str:
        return f"{min(self.ops_per_second):,.0f}–{max(self.ops_per_second):,.0f}"


def measure_throughput(ops: int, *, subscribed: bool, repeat: int = 3, waiting: int = 2000, seed: int = 11) -> ThroughputResult:
    """Best-of-``repeat`` throughput of the mix, each on a fresh engine with the same seed."""
    rates: list[float] = []
    elapsed: list[float] = []
    gc_share: list[float] = []
    halves: list[tuple[float, float]] = []
    last: Workload | None = None
    done = 0
    rows = 0
    for _ in range(repeat):
        engine, clock = build_engine(seed)
        work = Workload(engine, clock, seed, waiting)
        work.populate()
        plan = work.plan(ops)
        on_frame: Callable[[], None] | None = None
        state: ConsoleState | None = None
        if subscribed:
            feed, state = RepFeed(ME), ConsoleState()

            def listener(event: Event, project=feed.project) -> None:
                project(event)  # kept by the feed for its next batch

            engine.subscribe(listener)
            state.apply(feed.snapshot(engine))

            def on_frame(state: ConsoleState = state, feed: RepFeed = feed) -> None:
                batch = feed.take()
                if batch is not None:
                    state.apply(batch)

        gc.collect()
        gc_clock = _GcClock()
        # CPU time of this process: "on one core", and unaffected by whatever
        # else the machine is running (wall time would charge us for that).
        half = len(plan) // 2
        t0 = time.process_time()
        with gc_clock:
            first = work.run(plan[:half], on_frame)
            tm = time.process_time()
            second = work.run(plan[half:], on_frame)
            if on_frame is not None:
                on_frame()
        t1 = time.process_time()
        done = first + second
        rates.append(done / (t1 - t0))
        halves.append((first / (tm - t0), second / (t1 - tm)))
        gc_share.append(gc_clock.spent / (t1 - t0))
        elapsed.append(t1 - t0)
        last = work
        rows = sum(len(r) for r in state.rows.values()) if state is not None else 0
    assert last is not None
    return ThroughputResult(rates, done, elapsed, last.done, last.refused, last.fired, last.e.waiting_total(), rows, gc_share,
                            halves[rates.index(max(rates))])


@dataclass
class MemoryResult:
    sessions: int
    engine_bytes: float  # per waiting session
    console_bytes: float | None  # per session one console shows, on top of the engine's


def _traced_arrivals(n: int, *, console: bool, seed: int) -> tuple[int, int]:
    """Memory held after ``n`` customers arrived and wait: (bytes, sessions the console shows)."""
    engine, clock = build_engine(seed)
    rng = random.Random(seed)
    issues = sorted(engine.issues)
    state: ConsoleState | None = None
    feed = RepFeed(ME)
    if console:
        state = ConsoleState()
        state.apply(feed.snapshot(engine))
        engine.subscribe(feed.project)
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for i in range(n):
            # Distinct strings per customer, made here so that they count.
            who = Intake(f"Customer {i}", company=f"Company {i % 977}", details="It worked yesterday." if i % 3 else "",
                         external_key=f"TCK-{i}" if i % 3 == 0 else "")
            r = rng.random()
            if r < 0.75:
                engine.start_with_issue(issues[i % len(issues)], who)
            elif r < 0.9:
                engine.start_with_button(f"btn-{TEAMS[i % 4][0]}", who)
            else:
                engine.start_with_rep(f"peer{i % PEERS}", who)
            clock.now += 0.001
            if state is not None and feed.pending >= FRAME_OPS:
                state.apply(feed.take())  # type: ignore[arg-type]
        if state is not None and (batch := feed.take()) is not None:
            state.apply(batch)
        gc.collect()
        total, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert engine.waiting_total() == n
    return total - base, len(state.sessions) if state is not None else 0


def measure_memory(n: int = 100_000, *, console: bool = True, seed: int = 11) -> MemoryResult:
    """Bytes per waiting session: ``n`` customers arrive (mixed origins, distinct
    names) and wait; nobody accepts, no timer is due yet.  Everything the engine
    keeps for them counts: the session, its strings, the queue indexes, heap
    entries and rule timers, its arrival timeline.  With ``console``, a second
    run adds one rep's RepFeed + ConsoleState; the difference, per session that
    console shows, is what mirroring costs.
    """
    engine_total, _ = _traced_arrivals(n, console=False, seed=seed)
    console_bytes = None
    if console:
        with_console, shown = _traced_arrivals(n, console=True, seed=seed)
        console_bytes = (with_console - engine_total) / shown if shown else None
    return MemoryResult(n, engine_total / n, console_bytes)


def _mix_line(result: ThroughputResult) -> str:
    total = result.ops
    parts = [(name, count) for name, count in result.mix.most_common()]
    parts.append(("timers fired", result.fired))
    return ", ".join(f"{name} {100 * count / total:.1f}%" for name, count in parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=200_000, help="operations per measurement (default 200,000)")
    parser.add_argument("--repeat", type=int, default=5, help="measurements per variant; their median counts (default 5)")
    parser.add_argument("--waiting", type=int, default=100_000, help="waiting sessions for the memory figure (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: 20,000 ops, 10,000 waiting, once")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a throughput figure misses the target")
    args = parser.parse_args(argv)
    if args.quick:
        args.ops, args.repeat, args.waiting = 20_000, 1, 10_000

    print(f"Engine throughput: one core, {args.ops:,} operations per run, median of {args.repeat} (min–max), target {TARGET_OPS_PER_SECOND:,} ops/s")
    results = {}
    for label, subscribed in (("with RepFeed + ConsoleState for one rep", True), ("without any subscriber", False)):
        r = measure_throughput(args.ops, subscribed=subscribed, repeat=args.repeat)
        results[label] = r
        if subscribed:
            # Context, not the target: the engine plus one console's whole
            # client side (projection and mirror), sharing the one core.
            verdict = "engine + one console's mirror, for context"
        else:
            verdict = "ok" if r.median >= TARGET_OPS_PER_SECOND else "BELOW TARGET"
        gc_part = statistics.median(r.gc_share) if r.gc_share else 0.0
        print(f"  {label:<42} {r.median:>10,.0f} ops/s ({r.spread})  ({verdict};"
              f" halves {r.halves[0]:,.0f} -> {r.halves[1]:,.0f}; {gc_part:.0%} of the time in gc)")
    r = results["without any subscriber"]
    print(f"  mix: {_mix_line(r)}")
    print(f"  refused along the way: {sum(r.refused.values()):,} ({', '.join(f'{k} {v}' for k, v in r.refused.most_common(4)) or 'none'});"
          f" {r.waiting_at_end:,} waiting at the end")

    m = measure_memory(args.waiting)
    print(f"Memory with {m.sessions:,} waiting sessions (tracemalloc):")
    print(f"  engine                                     {m.engine_bytes:>10,.0f} bytes per waiting session")
    if m.console_bytes is not None:
        print(f"  one console mirroring them (ConsoleState)  {m.console_bytes:>10,.0f} bytes per session it shows")

    slow = results["without any subscriber"].median < TARGET_OPS_PER_SECOND
    return 1 if args.strict and slow else 0


if __name__ == "__main__":
    sys.exit(main())
