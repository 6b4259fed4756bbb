"""Auto-assignment (issue 14): offer latency over WebSocket, fairness over a day, double offers in races.

    python -m bench.bench_routing             # 5 runs of each part (two to three minutes)
    python -m bench.bench_routing --quick     # 5 short runs of each (a smoke run, ~30 s)

Three parts, each a median of ``--runs`` runs (min-max):

1. **Offer latency after capacity frees**, against a real
   ``repconsole-server`` process over loopback WebSocket.  One team,
   ``routing = "least-busy"``, 100 reps of capacity 1, all signed in (one
   console each, in this process) with a session each, and thousands of
   customers waiting (seeded through ``/customer`` before).  The load:
   ``--rate`` capacity events a second (default 200; 100 with ``--quick``),
   each a rep ending its session at its scheduled time; the server offers
   that rep the next waiting customer (they are the only one with room),
   the console accepts the offer at once (a second command), so the server
   gets 2 x rate = 400 commands a second.  Latency: from sending ``end`` to the ``offer``
   event reaching the console (``time.perf_counter()``, one process).
   **Anchor**, same runs: the round trip of the ``end`` command itself (the
   offer is made in the engine command that ended the session, so what is
   left is the fan-out); printed as a ratio.  Goal: p99 <= 1 s.
2. **Fairness over a simulated day**, on the engine (bench_estimate's day:
   Poisson arrivals by a daily profile, lognormal service, 4% declines,
   2% missed offers, breaks and lunch at random times), with 14 reps of
   equal capacity (2) and the same shift: max/min of the sessions each rep
   took (goal <= 1.2), and offers per session.
3. **Double offers in 10,000 races** on the engine: in each race, 2-4 reps
   at capacity free room at the same instant (an end, a raised capacity, a
   decline, coming back from away) while other commands race them (Get
   Next and accepts of waiting sessions by other reps, accepting offers,
   customers arriving and leaving), in a random interleaving.  Checked from
   the event stream alone after every command: an ``offer`` for a session
   with an open offer (a double offer), a rep's sessions plus open offers
   over their capacity, a session accepted twice.  Must all be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench.bench_estimate import PROFILE, simulate_day
from bench.bench_server import PASSWORD, ServerProc, open_ws, percentile, raise_fd_limit, rep_id, seed, site_toml
from repconsole.core.clock import ManualClock
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.errors import CommandError
from repconsole.core.intake import Intake
from repconsole.core.model import QueueRef, RepStatus, RoutingMode, SessionState, SiteConfig
from repconsole.protocol import (
    PROTOCOL_VERSION,
    Command,
    CommandName,
    Error,
    Events,
    Login,
    OfferData,
    OfferEndedData,
    OfferEndedEvent,
    OfferEvent,
    Result,
    Welcome,
    encode,
    parse_rep_reply,
)

__all__ = ["TARGET_FAIRNESS", "TARGET_P99_S", "main", "races"]

TARGET_P99_S = 1.0
TARGET_FAIRNESS = 1.2
REPS = 100


# ---------------------------------------------------------------- 1. offer latency over WebSocket


class Console:
    """One rep's console: accepts every offer at once, and times the offer after its own ``end``."""

    def __init__(self, rep: str, ws: Any, book: Book) -> None:
        self.rep = rep
        self.ws = ws
        self.book = book
        self.ids = itertools.count(1)
        self.session: str | None = None  # the session they are serving
        self.ended_at: float | None = None  # when they sent ``end``: the next offer is timed from it
        self.pending: dict[int, tuple[str, str, float]] = {}  # request id -> (command, session, sent)
        self.reader = asyncio.ensure_future(self._read())

    async def send(self, name: CommandName, session: str) -> None:
        rid = next(self.ids)
        now = time.perf_counter()
        self.pending[rid] = (name.value, session, now)
        if name is CommandName.END:
            self.ended_at = now
            self.session = None
        await self.ws.send(encode(Command(rid, name, {"session": session})), text=True)

    async def _read(self) -> None:
        book = self.book
        while True:
            msg = parse_rep_reply(await self.ws.recv(decode=False))
            now = time.perf_counter()
            if isinstance(msg, Events):
                for e in msg.events:
                    if isinstance(e, OfferEvent) and e.data.offer.rep == self.rep:
                        sid = e.data.offer.session
                        book.offer(sid)
                        if self.ended_at is not None and book.measuring:
                            book.latency.append(now - self.ended_at)
                        self.ended_at = None
                        await self.send(CommandName.ACCEPT_OFFER, sid)
                    elif isinstance(e, OfferEndedEvent) and e.data.rep == self.rep:
                        book.open.pop(e.data.session, None)
            elif isinstance(msg, Result | Error) and isinstance(msg.id, int) and msg.id in self.pending:
                name, sid, sent = self.pending.pop(msg.id)
                if isinstance(msg, Error):
                    book.errors[f"{name}: {msg.reason}"] += 1
                elif name == CommandName.ACCEPT_OFFER.value:
                    self.session = sid
                    book.accepted += 1
                elif book.measuring:
                    book.end_rtt.append(now - sent)


class Book:
    """What the consoles saw, for one run."""

    def __init__(self) -> None:
        self.measuring = False
        self.latency: list[float] = []
        self.end_rtt: list[float] = []
        self.open: dict[str, int] = {}  # session -> open offers seen
        self.offers = 0
        self.accepted = 0
        self.doubles = 0
        self.errors: Counter[str] = Counter()

    def offer(self, sid: str) -> None:
        self.offers += 1
        if self.open.get(sid):
            self.doubles += 1
        self.open[sid] = self.open.get(sid, 0) + 1


async def sign_in(port: int, rep: str) -> tuple[Any, list[str]]:
    """A signed-in console, and the sessions offered to it in its snapshot (a rep is offered one as they sign in)."""
    ws = await open_ws(port, "rep")
    await ws.send(encode(Login(1, rep, PASSWORD, PROTOCOL_VERSION)), text=True)
    welcome = parse_rep_reply(await ws.recv(decode=False))
    if not isinstance(welcome, Welcome):
        raise RuntimeError(f"login of {rep} refused: {welcome}")
    offered: list[str] = []
    parts = 1
    while parts:
        frame = json.loads(await ws.recv(decode=False))
        parts = (frame.get("parts", 1) if frame["type"] == "snapshot" else parts) - 1
        offered += [o["session"] for o in frame.get("data", {}).get("offers", [])]
    return ws, offered


def routed_site(reps: int) -> str:
    text = site_toml(1, reps, max_sessions=1)
    return text.replace('name = "Team 00"\n', 'name = "Team 00"\nrouting = "least-busy"\n', 1).replace(
        "[site]\n", "[site]\noffer_timeout = 60\n", 1
    )


async def _latency(args: argparse.Namespace) -> list[dict[str, float]]:
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-routing-"))
    (work / "site.toml").write_text(routed_site(REPS))
    server = ServerProc(work / "site.toml", work / "data")
    runs: list[dict[str, float]] = []
    consoles: list[Console] = []
    try:
        waiting = int(args.rate * args.seconds * args.runs * 1.1) + 2 * REPS
        took = await seed(server.port, waiting, 1)
        print(f"  seeded {waiting:,} waiting customers in {took:.1f} s; {REPS} reps of capacity 1 sign in", flush=True)
        book = Book()
        for i in range(REPS):
            ws, offered = await sign_in(server.port, rep_id(0, i))
            consoles.append(c := Console(rep_id(0, i), ws, book))
            for sid in offered:
                book.offer(sid)
                await c.send(CommandName.ACCEPT_OFFER, sid)
        for _ in range(200):  # each is offered a session at sign-in and accepts it
            if all(c.session for c in consoles):
                break
            await asyncio.sleep(0.05)
        rng = random.Random(args.seed)
        for n in range(args.runs):
            book.latency, book.end_rtt, book.measuring = [], [], True
            offers0, accepted0, doubles0 = book.offers, book.accepted, book.doubles
            start = time.perf_counter()
            skipped = 0
            for k in range(int(args.rate * args.seconds)):
                due = start + k / args.rate
                if (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                busy = [c for c in consoles if c.session is not None]
                if not busy:
                    skipped += 1
                    continue
                c = rng.choice(busy)
                assert c.session is not None
                await c.send(CommandName.END, c.session)
            await asyncio.sleep(1.0)  # the last offers arrive
            book.measuring = False
            lat = book.latency
            run = {
                "p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat, default=float("nan")),
                "rtt50": percentile(book.end_rtt, 50), "rtt99": percentile(book.end_rtt, 99),
                "n": len(lat), "offers": book.offers - offers0, "accepted": book.accepted - accepted0,
                "doubles": book.doubles - doubles0, "skipped": skipped,
                "rate": int(args.rate * args.seconds) / (time.perf_counter() - 1.0 - start),
            }  # fmt: skip
            runs.append(run)
            print(f"  run {n + 1}: offer after end p50 {run['p50'] * 1e3:.1f} ms, p99 {run['p99'] * 1e3:.1f} ms, max {run['max'] * 1e3:.0f} ms "
                  f"({run['n']:.0f} offers timed; end round trip p50 {run['rtt50'] * 1e3:.1f} ms, p99 {run['rtt99'] * 1e3:.1f} ms); "
                  f"{run['offers']:.0f} offers, {run['accepted']:.0f} accepted, {run['doubles']:.0f} double; "
                  f"{run['rate']:.0f} ends/s, {skipped} ticks with nobody busy", flush=True)  # fmt: skip
        if book.errors:
            print(f"  refused commands: {dict(book.errors)}")
        if server.problems():
            print("  server reported problems:\n    " + "\n    ".join(server.problems()[:20]))
    finally:
        for c in consoles:
            c.reader.cancel()
            await c.ws.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return runs


# ---------------------------------------------------------------- 3. races on the engine


class Checker:
    """The invariants, from the event stream alone (and each rep's load and capacity)."""

    def __init__(self, engine: QueueEngine) -> None:
        self.engine = engine
        self.open: dict[str, str] = {}  # session -> rep, from offer / offer_ended events
        self.doubles = 0
        self.over = 0
        self.offers = 0
        self.accepted: Counter[str] = Counter()
        engine.subscribe(self.heard)

    def heard(self, event: Event) -> None:
        data = event.data
        if isinstance(data, OfferData):
            self.offers += 1
            if data.offer.session in self.open:
                self.doubles += 1
            self.open[data.offer.session] = data.offer.rep
        elif isinstance(data, OfferEndedData):
            self.open.pop(data.session, None)

    def check(self) -> None:
        held = Counter(self.open.values())
        for rep in self.engine.reps.values():
            if self.engine.load(rep.id) + held[rep.id] > rep.max_sessions and held[rep.id]:
                self.over += 1


def races(seed: int, count: int) -> dict[str, float]:
    """``count`` races; returns double offers, offers over capacity, double accepts, offers and commands."""
    rng = random.Random(seed)
    clock = ManualClock()
    engine = QueueEngine(clock, rng=random.Random(seed), site=SiteConfig(offer_timeout=20.0))
    engine.add_team("t", "Team", routing=RoutingMode.LEAST_BUSY)
    engine.add_issue("i", "Issue", "General", "t")
    reps = [f"r{i}" for i in range(5)]
    base = {r: 1 + i % 2 for i, r in enumerate(reps)}
    for r in reps:
        engine.add_rep(r, r.upper(), ["t"], max_sessions=base[r])
    check = Checker(engine)
    commands = refused = 0
    team = QueueRef.team("t")

    def run(action: Callable[[], object]) -> None:
        nonlocal commands, refused
        commands += 1
        try:
            result = action()
        except CommandError:
            refused += 1
        else:
            # An engine command bound with partial, or a named helper (a lambda's name says nothing).
            name = getattr(action, "__name__", "") or getattr(getattr(action, "func", None), "__name__", "")
            if getattr(result, "state", None) is SessionState.ACTIVE and name in ("accept", "get_next", "accept_offer"):
                check.accepted[getattr(result, "id", "")] += 1
        check.check()

    def owned(rep: str) -> list[str]:
        return sorted(sid for sid in engine.involved(rep) if engine.session(sid).owner == rep)

    for n in range(count):
        clock.advance(rng.uniform(0.1, 5))
        # Set up: everyone back, at their base capacity, full, and 0-3 customers waiting.
        for r in reps:
            if engine.reps[r].status is not RepStatus.AVAILABLE:
                run(partial(engine.set_status, r, RepStatus.AVAILABLE))
            if engine.reps[r].max_sessions != base[r]:
                run(partial(engine.set_capacity, r, base[r]))
        for _ in range(40):
            offers = engine.open_offers()
            if offers:
                o = rng.choice(offers)
                run(partial(engine.accept_offer, o.rep, o.session))
            elif engine.queue_count(team) < rng.randint(0, 3) or any(engine.load(r) < engine.reps[r].max_sessions for r in reps):
                run(lambda: engine.start_with_issue("i", Intake(f"c{n}")))
            else:
                break
        # The race: 2-4 reps free room at once, other commands racing them, in a random order.
        freeing = rng.sample(reps, rng.randint(2, 4))
        acts: list[Callable[[], object]] = []
        for r in freeing:
            kind = rng.choice(["end", "end", "capacity", "away"])
            if kind == "end" and owned(r):
                sid = rng.choice(owned(r))
                acts.append(partial(engine.end, r, sid))
            elif kind == "capacity":
                acts.append(partial(engine.set_capacity, r, base[r] + 1))
            else:
                acts.append(partial(engine.set_status, r, RepStatus.AWAY))
                acts.append(partial(engine.set_status, r, RepStatus.AVAILABLE))
        for _ in range(rng.randint(1, 4)):
            who = rng.choice(reps)
            racer = rng.choice(["get_next", "accept", "accept_offer", "accept_offer", "decline", "arrive", "leave"])
            if racer == "get_next":
                acts.append(partial(engine.get_next, who))
            elif racer == "accept":  # a pull of whatever is first in line when it runs (offered or not)
                def accept(who: str = who) -> object:
                    ids = engine.waiting_order().get(team)
                    return engine.accept(who, ids[0]) if ids else None

                acts.append(accept)
            elif racer in ("accept_offer", "decline"):
                def answer(racer: str = racer) -> object:
                    offers = engine.open_offers()
                    if not offers:
                        return None
                    o = rng.choice(offers)
                    return engine.accept_offer(o.rep, o.session) if racer == "accept_offer" else engine.decline_offer(o.rep, o.session)
                acts.append(answer)
            elif racer == "arrive":
                acts.append(lambda: engine.start_with_issue("i", Intake(f"racer{n}")))
            else:
                acts.append(lambda: engine.customer_leave(ids[-1]) if (ids := engine.waiting_order().get(team)) else None)
        rng.shuffle(acts)
        for act in acts:
            run(act)
        if n % 500 == 499:
            engine.forget_ended()
    twice = sum(1 for v in check.accepted.values() if v > 1)
    return {"doubles": check.doubles, "over": check.over, "twice": twice, "offers": check.offers, "commands": commands, "refused": refused}


# ---------------------------------------------------------------- report


def _med(values: Sequence[float], scale: float = 1.0, fmt: str = "{:.1f}", unit: str = "") -> str:
    vs = [v * scale for v in values]
    return f"{fmt.format(statistics.median(vs))}{unit} ({fmt.format(min(vs))}–{fmt.format(max(vs))})"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_routing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 short runs of each part (a smoke run)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=None, help="capacity events (ends) a second; each also brings an accept_offer")
    parser.add_argument("--seconds", type=float, default=10.0, help="of load per latency run")
    parser.add_argument("--races", type=int, default=None, help="races per run (default 10,000; 1,000 with --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-server", action="store_true", help="skip the latency part (no server process)")
    args = parser.parse_args(argv)
    hours = len(PROFILE)
    if args.quick:
        args.seconds, hours = 2.0, 3
    args.races = args.races or (1000 if args.quick else 10_000)
    args.rate = args.rate or (100.0 if args.quick else 200.0)
    print(f"bench_routing: median of {args.runs} runs (min–max)")

    if not args.no_server:
        print(f"1. offer latency after capacity frees: repconsole-server, {REPS} reps of capacity 1, least-busy, "
              f"{args.rate:.0f} ends/s + as many accept_offer = {2 * args.rate:.0f} commands/s, {args.seconds:.0f} s a run")  # fmt: skip
        lat = asyncio.run(_latency(args))
        p99s = [r["p99"] for r in lat]
        print(f"offer latency after capacity frees: p50 {_med([r['p50'] for r in lat], 1e3, unit=' ms')}, "
              f"p99 {_med(p99s, 1e3, unit=' ms')}  (goal p99 <= {TARGET_P99_S * 1e3:.0f} ms at {2 * args.rate:.0f} commands/s: "
              f"{_verdict(statistics.median(p99s) <= TARGET_P99_S)})")  # fmt: skip
        print(f"  anchor: the end command's own round trip p50 {_med([r['rtt50'] for r in lat], 1e3, unit=' ms')}, "
              f"p99 {_med([r['rtt99'] for r in lat], 1e3, unit=' ms')}; "
              f"offer p99 / end p99 {_med([r['p99'] / r['rtt99'] for r in lat], fmt='{:.2f}', unit='x')}")
        print(f"  over the sockets: {sum(r['doubles'] for r in lat):.0f} double offers in {sum(r['offers'] for r in lat):.0f} offers; "
              f"offers per accepted session {_med([r['offers'] / max(1, r['accepted']) for r in lat], fmt='{:.3f}')}")

    print(f"2. a simulated day of {hours} h on the engine: 14 reps of capacity 2, the same shift, least-busy (bench_estimate's day)")
    ratios, fixed, per_session = [], [], []
    for n in range(args.runs):
        day = simulate_day(args.seed + n, hours, equal=True)
        counts = [day.sessions.get(f"r{i:02d}", 0) for i in range(14)]
        ratio = max(counts) / min(counts) if min(counts) else float("inf")
        ratios.append(ratio)
        per_session.append(day.offers / max(1, sum(counts)))
        same = simulate_day(args.seed + n, hours, equal=True, fixed_service=True)
        fcounts = [same.sessions.get(f"r{i:02d}", 0) for i in range(14)]
        fixed.append(max(fcounts) / min(fcounts) if min(fcounts) else float("inf"))
        print(f"  day {n + 1}: sessions per rep {min(counts)}–{max(counts)} (ratio {ratio:.3f}), {per_session[-1]:.3f} offers per session; "
              f"every session 8 min: {min(fcounts)}–{max(fcounts)} (ratio {fixed[-1]:.3f})", flush=True)
    fair = _verdict(statistics.median(ratios) <= TARGET_FAIRNESS)
    print(f"sessions per rep, max/min over a day: {_med(ratios, fmt='{:.3f}')}  (goal <= {TARGET_FAIRNESS}: {fair})")
    print(f"  anchor, the same days with every session lasting the mean 8 min (routing's share of it): {_med(fixed, fmt='{:.3f}')}")
    print(f"offers per session: {_med(per_session, fmt='{:.3f}')}  (4% declined, 2% missed on purpose)")

    print(f"3. races on the engine: {args.races:,} a run, 2-4 reps freeing capacity at once with pulls, answers and customers racing")
    results = []
    for n in range(args.runs):
        t0 = time.perf_counter()
        r = races(args.seed + n, args.races)
        results.append(r)
        print(f"  run {n + 1}: {r['doubles']:.0f} double offers, {r['over']:.0f} over capacity, {r['twice']:.0f} accepted twice; "
              f"{r['offers']:.0f} offers, {r['commands']:.0f} commands ({r['refused']:.0f} refused) in {time.perf_counter() - t0:.1f} s", flush=True)
    doubles = [r["doubles"] for r in results]
    print(f"double offers in {args.races:,} races: {_med(doubles, fmt='{:.0f}')}; over capacity {_med([r['over'] for r in results], fmt='{:.0f}')}; "
          f"accepted twice {_med([r['twice'] for r in results], fmt='{:.0f}')}  "
          f"(must be 0: {_verdict(not any(r['doubles'] or r['over'] or r['twice'] for r in results))})")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
