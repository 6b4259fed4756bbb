"""The in-process simulator: the embedded default backend.

Two layers, websockets-style:

* :class:`Simulation` is the sans-I/O director.  Given a clock and a seeded
  generator it decides what the synthetic world does: customers arrive
  through every origin, peers take, transfer and share sessions, write in
  team chat and drop their connection now and then, customers chat back and
  some give up waiting.  Call :meth:`Simulation.step` and it catches up to
  the clock.  Same seed, same clock readings: same world.
* :class:`SimulatorBackend` runs it on asyncio and implements
  :class:`~repconsole.backend.base.Backend` for the console's rep, "me".
  Its browser-sharing customers' pages come from
  :class:`~repconsole.backend.pageplayer.PagePlayer`: a real page, recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from repconsole.backend.base import FRAME_SECONDS, Backend, BackendState
from repconsole.backend.pageplayer import PagePlayer
from repconsole.backend.simsnippets import SimSnippets
from repconsole.backend.world import ME, MY_TEAMS, PEERS, World, build_site, start_routing
from repconsole.collector import collector_paused
from repconsole.core.commands import execute
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.errors import CommandError
from repconsole.core.feed import RepFeed
from repconsole.core.model import QueueRef
from repconsole.protocol import (
    COBROWSE_COMMANDS,
    SNIPPET_COMMANDS,
    ChatData,
    CommandResult,
    KeyData,
    OfferData,
    SessionData,
    SessionState,
    StepKind,
    Visibility,
)

__all__ = ["SimClock", "Simulation", "SimulatorBackend"]

log = logging.getLogger(__name__)

# Mean seconds between peer actions (per peer, or per site where noted).
PEER_TAKE_EVERY = 25.0  # a peer with room takes the next session
PEER_SESSION_LENGTH = 100.0  # mean length of a peer's session
TRANSFER_TO_ME_EVERY = 75.0  # site-wide
INVITE_ME_EVERY = 110.0  # site-wide
TEAM_CHAT_EVERY = 40.0  # site-wide
PEER_DROP_EVERY = 400.0  # site-wide
PATIENCE = 900.0  # mean seconds a waiting customer waits before giving up
# Issue 14: a peer answers an offer within this many seconds, and declines this share of them.
PEER_ANSWERS_WITHIN = (2.0, 12.0)
PEER_DECLINES = 0.15
ESTIMATES_EVERY = 5.0  # seconds between re-estimates of the team queues' waits
# A start with more customers than this creates them in slices of this many
# seconds, letting the window paint and answer input between slices, and
# shows what it created at most this often (each showing costs the window a
# repaint: showing every slice would double the time to fill).
LOAD_PROGRESSIVELY_FROM = 2000
LOAD_SLICE_SECONDS = 0.05
LOAD_SHOW_SECONDS = 0.1
# Arrival mix: which way customers come in, by weight.
ORIGIN_WEIGHTS = {
    "issue": 46,
    "team_button": 12,
    "rep_pick": 8,
    "rep_button": 7,
    "browser": 12,
    "session_key": 5,
}


_ORIGIN_KINDS = list(ORIGIN_WEIGHTS)
_ORIGIN_CUM = list(itertools.accumulate(ORIGIN_WEIGHTS.values()))


class SimClock:
    """The engine's clock in the simulator: the real clock, or a pinned time.

    The initial population is created "in the past" by pinning the clock to
    each customer's arrival time, so a fresh console shows a realistic spread
    of waiting times and rules that have already fired.
    """

    def __init__(self, base: Callable[[], float]) -> None:
        self._base = base
        self.pinned: float | None = None

    def __call__(self) -> float:
        return self._base() if self.pinned is None else self.pinned


class Simulation:
    """The synthetic world's director.

    Attributes:
        engine: the queue engine it drives.
        rate: customer arrivals per second.
        world: the generator of names, companies, pages and chat lines.

    ``routing``: the routed teams (:data:`~repconsole.backend.world.ROUTED_TEAMS`)
    start auto-assigning with the first :meth:`step`; False keeps every team pull only.
    """

    def __init__(self, engine: QueueEngine, clock: SimClock, rng: random.Random, *, rate: float, routing: bool = True) -> None:
        self.engine = engine
        self.clock = clock
        self.rng = rng
        self.rate = rate
        self.world = World(rng)
        self._last = clock()
        self._todo: list[tuple[float, int, Callable[[], Any]]] = []
        self._order = itertools.count()
        self._keys_used: set[str] = set()
        self._issue_codes = list(engine.issues)
        self._team_ids = list(engine.teams)
        self._unsubscribe = engine.subscribe(self._on_engine_event)
        self._reacting = True  # not while it creates the past (populating)
        self._estimated_at = -math.inf
        # Auto-assignment starts with the first step, once the population is there and the console
        # has its snapshot: the population's past makes no offers (they would run out at once).
        self._routing_started = not routing  # routing=False: never started
        self.on_typing: Callable[[str], None] | None = None  # told when a customer starts typing (issue 14)

    # ------------------------------------------------------------ population

    def populate(self, count: int, *, span: float = 2700.0) -> None:
        """Create ``count`` waiting customers who arrived over the last ``span`` seconds."""
        for _ in self.populating(count, span=span):
            pass

    def populating(self, count: int, *, span: float = 2700.0) -> Generator[int, None, None]:
        """:meth:`populate`, one customer at a time: yields how many exist so far.

        Between two steps the clock may be unpinned and other code may run
        (the console paints); each step pins it again.  Stopping early
        leaves the customers created so far.
        """
        if count <= 0:
            return
        now = self.clock()
        ages = sorted((self.rng.random() * span for _ in range(count)), reverse=True)
        # Nobody is watching yet: the director need not react to its own past.
        self._unsubscribe()
        self._reacting = False
        try:
            for done, age in enumerate(ages, 1):
                self.clock.pinned = now - age
                self._arrive(population=True)
                # Rules that would have fired by now fire in arrival order.
                self.engine.advance()
                yield done
        finally:
            self.clock.pinned = None
            self._unsubscribe = self.engine.subscribe(self._on_engine_event)
            self._reacting = True
        self.engine.advance()
        self._last = self.clock()

    @contextlib.contextmanager
    def reacting(self) -> Iterator[None]:
        """React to what happens inside, even between two steps of :meth:`populating` (the rep's command).

        What it schedules (the customer's hello to the rep who accepted)
        is on the clock of the moment, and happens once :meth:`step` runs.
        """
        if self._reacting:
            yield
            return
        unsubscribe = self.engine.subscribe(self._on_engine_event)
        try:
            yield
        finally:
            unsubscribe()

    # ----------------------------------------------------------------- steps

    def step(self) -> None:
        """Catch the world up with the clock."""
        now = self.clock()
        dt = max(0.0, now - self._last)
        self._last = now
        if not self._routing_started:
            self._routing_started = True
            start_routing(self.engine)
        while self._todo and self._todo[0][0] <= now:
            _, _, action = heapq.heappop(self._todo)
            self._attempt(action)
        if dt > 0:
            for _ in range(self._poisson(self.rate * dt)):
                self._attempt(self._arrive)
            self._peers(dt)
        self.engine.advance()
        if now - self._estimated_at >= ESTIMATES_EVERY:
            self._estimated_at = now
            self.engine.publish_estimates()

    def schedule(self, delay: float, action: Callable[[], Any]) -> None:
        heapq.heappush(self._todo, (self.clock() + delay, next(self._order), action))

    # ------------------------------------------------------------- arrivals

    def _arrive(self, population: bool = False) -> None:
        e, rng, w = self.engine, self.rng, self.world
        kind = rng.choices(_ORIGIN_KINDS, cum_weights=_ORIGIN_CUM)[0]
        if population and kind == "session_key":
            kind = "issue"  # keys are generated live by the rep; don't invent old ones
        intake = w.intake()
        if kind == "issue":
            e.start_with_issue(w._pick(self._issue_codes), intake)
        elif kind == "team_button":
            e.start_with_button(f"btn-{w._pick(self._team_ids)}", intake)
        elif kind == "rep_pick":
            rep = rng.choice([r for r in e.reps.values() if r.connected])
            e.start_with_rep(rep.id, intake)
        elif kind == "rep_button":
            e.start_with_button(rng.choice(["btn-me", "btn-priya"]), intake)
        elif kind == "browser":
            page = w.page(intake.customer_name)
            e.start_browser(rng.choice(list(e.links)), intake, page_url=page.url, page_html=page.html)
        else:
            # A peer read a key to a customer on the phone.
            peer = rng.choice(PEERS)[0]
            key = e.generate_key(peer, 600)
            e.start_with_key(key.key, intake, source="sim")

    # ----------------------------------------------------------------- peers

    def _peers(self, dt: float) -> None:
        e, rng = self.engine, self.rng
        peers = [e.reps[p] for p, _, _ in PEERS]
        for rep in peers:
            if not rep.connected:
                continue
            if e.load(rep.id) < rep.max_sessions and self._chance(dt, PEER_TAKE_EVERY):
                self._attempt(functools.partial(e.get_next, rep.id))
            for sid in sorted(e.involved(rep.id)):
                s = e.session(sid)
                if s.owner == rep.id and s.state is SessionState.ACTIVE and self._chance(dt, PEER_SESSION_LENGTH):
                    self._attempt(functools.partial(e.end, rep.id, sid))
        if self._chance(dt, TRANSFER_TO_ME_EVERY):
            self._transfer_to_me()
        if self._chance(dt, INVITE_ME_EVERY):
            self._invite_me()
        if self._chance(dt, TEAM_CHAT_EVERY):
            team = rng.choice(MY_TEAMS)
            members = sorted(m for m in e.teams[team].members if m != ME and e.reps[m].connected)
            if members:
                self._attempt(lambda: e.team_say(rng.choice(members), team, self.world.chatter()))
        if self._chance(dt, PEER_DROP_EVERY):
            rep = rng.choice([p for p in peers if p.connected])
            e.rep_disconnected(rep.id)
            # Some come back within the grace period, some don't.
            self.schedule(rng.uniform(5, 2.5 * e.site.grace_period), functools.partial(e.rep_connected, rep.id))
        for _ in range(self._poisson(e.waiting_total() * dt / PATIENCE)):
            self._give_up()

    def _peer_sessions(self) -> list[tuple[str, str]]:
        e = self.engine
        return [
            (p, sid)
            for p, _, _ in PEERS
            for sid in sorted(e.involved(p))
            if e.session(sid).owner == p and e.session(sid).state is SessionState.ACTIVE
        ]

    def _transfer_to_me(self) -> None:
        owned = self._peer_sessions()
        if owned:
            peer, sid = self.rng.choice(owned)
            note = self.rng.choice(
                [
                    "Customer needs admin rights on the VPN profile — over to you.",
                    "Billing dispute, I've verified their identity already.",
                    "Asked for you by name.",
                    "Escalating: second time this week.",
                ]
            )
            self._attempt(lambda: self.engine.transfer(peer, sid, QueueRef.personal(ME), note))

    def _invite_me(self) -> None:
        owned = self._peer_sessions()
        if owned:
            peer, sid = self.rng.choice(owned)
            target = QueueRef.personal(ME) if self.rng.random() < 0.6 else QueueRef.team(self.rng.choice(MY_TEAMS))
            self._attempt(lambda: self.engine.share(peer, sid, target))

    def _give_up(self) -> None:
        e = self.engine
        # Sample a queue, then a customer in it: no scan of every session.
        queues = [QueueRef.team(t) for t in e.teams] + [QueueRef.personal(r) for r in e.reps]
        queue = self.rng.choice(queues)
        waiting = [s for s in e.waiting_in(queue) if not s.held] if e.queue_count(queue) < 2000 else []
        if waiting:
            sid = self.rng.choice(waiting).id
            self._attempt(lambda: e.customer_leave(sid))

    # ---------------------------------------------------- reacting to events

    def _on_engine_event(self, event: Event) -> None:
        """Customers react to what the console's rep does."""
        match event.data:
            case ChatData(session=sid, line=line):
                if line.author == ME and line.visibility is Visibility.ALL:
                    self._say_later(sid, self.rng.uniform(2, 6), self.world.reply)
            case SessionData(session=s):
                last = s.timeline[-1] if s.timeline else None
                accepted = last is not None and last.kind is StepKind.ACCEPTED and last.by == ME
                if s.owner == ME and s.state is SessionState.ACTIVE and accepted:
                    sid = s.id
                    self._say_later(sid, self.rng.uniform(1, 3), self.world.opener)
            case OfferData(offer=offer) if offer.rep != ME:
                # A peer answers its offer (a decline goes to the next rep, maybe the console's).
                e, sid, peer = self.engine, offer.session, offer.rep
                answer = e.decline_offer if self.rng.random() < PEER_DECLINES else e.accept_offer
                self.schedule(self.rng.uniform(*PEER_ANSWERS_WITHIN), functools.partial(self._attempt, functools.partial(answer, peer, sid)))
            case KeyData(key=key):
                if key.rep == ME and key.used_by is None and key.key not in self._keys_used:
                    self._keys_used.add(key.key)
                    # The rep read the key to a customer, who types it in shortly.
                    self.schedule(
                        self.rng.uniform(4, 12),
                        functools.partial(self._type_key, key.key),
                    )

    def _say_later(self, sid: str, delay: float, text: Callable[[], str]) -> None:
        """The customer types for a while (the console is told, as a page would), then says ``text()``."""
        if self.on_typing is not None:
            on_typing = self.on_typing
            self.schedule(max(0.0, delay - 1.5), lambda: on_typing(sid))
        self.schedule(delay, lambda: self.engine.customer_say(sid, text()))

    def _type_key(self, key: str) -> None:
        self.engine.start_with_key(key, self.world.intake(), source="phone")

    # --------------------------------------------------------------- helpers

    def _attempt(self, action: Callable[[], Any]) -> None:
        """Run a simulated action; a refusal is part of life (someone was faster)."""
        try:
            action()
        except CommandError as exc:
            log.debug("simulated action refused: %s", exc)

    def _chance(self, dt: float, mean_interval: float) -> bool:
        return self.rng.random() < 1.0 - math.exp(-dt / mean_interval)

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        threshold, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= threshold:
                return k
            k += 1


class SimulatorBackend(Backend):
    """The engine and a synthetic world, in-process, for the rep "me".

    Attributes:
        engine: the queue engine (tests may drive it directly).
        simulation: the director of the synthetic world.
        pages: the browser-sharing customers' pages (the co-browse relay).
    """

    kind = "simulator"

    def __init__(
        self,
        *,
        population: int = 40,
        rate: float = 0.5,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        tick: float = 0.1,
        routing: bool = True,
    ) -> None:
        super().__init__()
        if population < 0 or rate < 0:
            raise ValueError("population and rate must not be negative")
        self._clock = SimClock(clock)
        rng = random.Random(seed)
        self.engine = QueueEngine(self._clock, rng=rng)
        build_site(self.engine)
        self.simulation = Simulation(self.engine, self._clock, rng, rate=rate, routing=routing)
        self.pages = PagePlayer(self.engine, ME, self._deliver_cobrowse, self._clock)
        self.snippet_book = SimSnippets(lambda: sorted(self.engine.reps[ME].teams), self._deliver_snippets)  # issue 14
        self.simulation.on_typing = self._deliver_typing
        self._population = population
        self._tick = tick
        self._feed = RepFeed(ME)
        self._flush_handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._loading = False
        self._stopped = False

    @property
    def description(self) -> str:
        return "Simulator"

    async def start(self) -> None:
        if self._unsubscribe is not None or self._loading:
            return
        self._stopped = False
        if self._population >= LOAD_PROGRESSIVELY_FROM:
            self._loading = True
            try:
                await self._populate_progressively(self._population)
            finally:
                self._loading = False
            if self._stopped:
                return
        else:
            self.simulation.populate(self._population)
            self._unsubscribe = self.engine.subscribe(self._on_engine_event)
            self._deliver(self._feed.snapshot(self.engine))
        self._set_state(BackendState.LIVE, "in-process simulator")
        self._deliver_snippets(self.snippet_book.current())  # after the snapshot, as a server sends them
        if self._tick > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="simulator")

    async def _populate_progressively(self, total: int) -> None:
        """Create the initial customers a slice at a time; the console shows each slice as it comes.

        The snapshot goes first, before anyone is waiting (the site, the
        reps, the queues: the window paints its queues at once), then each
        slice's events as a *backfill* batch (rows appear, nothing alerts),
        and the loading listeners hear how far it is.  Creating a slice and
        showing it are separate turns of the event loop, each about
        :data:`LOAD_SLICE_SECONDS`: the window paints and answers input in
        between.  Without this a 100,000-customer start keeps the loop for
        seconds: a black window, then a frozen one while one snapshot of
        them all is built and shown.
        """
        clock = self.simulation.clock
        self._set_loading(0, total)  # first: the window knows the snapshot is not all there is
        self._unsubscribe = self.engine.subscribe(self._on_engine_event)
        self._deliver(self._feed.snapshot(self.engine))
        await asyncio.sleep(0)  # the window paints its first frame
        population = self.simulation.populating(total)
        show_at = time.perf_counter() + LOAD_SHOW_SECONDS
        try:
            while True:
                deadline = time.perf_counter() + LOAD_SLICE_SECONDS
                done = total  # unless the slice ends first
                # The population lives for the shift: no collection walks it
                # halfway (each would walk all of it so far), and none later.
                with collector_paused(freeze=True):
                    for n in population:
                        if n < total and time.perf_counter() >= deadline:
                            done = n
                            break
                clock.pinned = None  # the past is only the population's
                if done >= total:
                    break
                await asyncio.sleep(0)
                if self._stopped:
                    return
                if time.perf_counter() < show_at:
                    continue
                with collector_paused(freeze=True):
                    self._backfill(done, total)
                await asyncio.sleep(0)
                if self._stopped:
                    return
                show_at = time.perf_counter() + LOAD_SHOW_SECONDS
        finally:
            population.close()  # stopped early: the customers created so far stay
        with collector_paused(freeze=True):
            self._backfill(total, total)

    def _backfill(self, done: int | None = None, total: int = 0) -> None:
        """Deliver the population's events so far as a backfill batch, then say how far it is (``done`` of ``total``)."""
        batch = self._feed.take(backfill=True)
        if batch is not None:
            self._deliver(batch)
        if done is not None:
            self._set_loading(done, total)

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.pages.close()
        self._set_state(BackendState.CLOSED)

    async def call(self, command: str, **args: Any) -> CommandResult:
        if not self._loading:
            return self._execute(command, args)
        # A big start is still creating its customers: the command runs now,
        # between two slices, rather than seconds later.  That is safe: the
        # engine, the slices and this coroutine share the event loop's one
        # thread, and a slice never awaits (nor calls out to code that could
        # run a command), so the command cannot land inside one: it sees
        # the customers created so far, on the real clock (unpinned between
        # slices), and the rest arrive in the past, before it, touching only
        # themselves.  The hazard is the feed's one numbering (each batch's
        # ``prev`` is the last seq of the batch before): the slices' events
        # are still pending, to be shown as backfill.  Taken with the
        # command's, they would turn into news (alerts for every customer)
        # or the command's events would reach the window late as no news.
        # So: the population so far goes first, as backfill; then the
        # command; then its own events, as a live batch; the next slices'
        # follow as backfill.
        self._backfill()
        try:
            with self.simulation.reacting():
                return self._execute(command, args)
        finally:
            self.flush()

    def _execute(self, command: str, args: dict[str, Any]) -> CommandResult:
        if command in COBROWSE_COMMANDS:
            return self.pages.command(command, args)
        if command in SNIPPET_COMMANDS:
            return self.snippet_book.command(command, args)
        return execute(self.engine, ME, command, args)

    def resync(self) -> None:
        if self._unsubscribe is not None:
            self._deliver(self._feed.snapshot(self.engine))

    def pump(self) -> None:
        """Step the world once and deliver what happened now (tests, benchmarks)."""
        self.simulation.step()
        self.flush()

    def flush(self) -> None:
        """Deliver the pending feed events as one batch."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch = self._feed.take()
        if batch is not None:
            self._deliver(batch)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            try:
                self.simulation.step()
            except Exception:  # a bug in the director must not stop the console's feed
                log.exception("simulation step failed")

    def _on_engine_event(self, event: Event) -> None:
        if self._feed.project(event) is None or self._loading:
            return  # while loading, each slice of the population is delivered as a backfill batch
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a test driving the engine directly): flush() delivers
            self._flush_handle = loop.call_later(FRAME_SECONDS, self._flush_from_timer)

    def _flush_from_timer(self) -> None:
        self._flush_handle = None
        self.flush()
