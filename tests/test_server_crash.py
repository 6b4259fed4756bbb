"""kill -9 under load: everything the server confirmed survives, and its timers go on.

A real ``repconsole-server`` process runs on a data directory while
clients drive load at it: customers arriving through ``/customer`` (three
teams), reps accepting, chatting, setting external keys, generating session
keys and writing in team chat.  Every effect whose confirmation (``started``
or ``result``) reached its client is recorded.  The process is killed with
SIGKILL in the middle of it (commands in flight), restarted on the same data
directory, loaded and killed once more, and restarted again.  Then every
confirmed effect must be there, as fresh logins' snapshots show it:

* every confirmed arrival is a live session (waiting, or owned by whoever
  took it), and the customer's token still resumes it;
* every confirmed accept: the session's owner;
* every confirmed chat line, external key, session key and team-chat line;
* session numbers are not handed out twice;
* the Hardware team's waiting rule still fires after the restarts: every
  Hardware customer nobody took moves to Billing when its deadline comes
  (at once for deadlines that passed while the server was down).

Time here is real, on purpose: this is the one test of the production clock
(:class:`~repconsole.server.timers.WallClock`) end to end, in a real process
killed with SIGKILL, so it waits out a short rule (``RULE_AFTER``) instead of
driving a virtual clock as the in-process server tests do.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from conftest import TIMEOUT_SCALE
from msgspec import UNSET
from server_helpers import CustomerClient, Port, RepClient, run, server_process, write_site
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from repconsole.protocol import CustomerResume, Result, SessionEvent, SessionState, SessionView, SnapshotData, Started, StepKind

RULE_AFTER = 3.0 * TIMEOUT_SCALE
ISSUES = {"vpn": "net", "invoice": "bill", "printer": "hw"}
WORKERS = {"alice": "net", "bob": "net", "carol": "bill"}  # dave (Hardware) takes nothing: the rule moves his customers


@dataclass
class Confirmed:
    """What the server confirmed, across the run."""

    arrivals: dict[str, tuple[str, str]] = field(default_factory=dict)  # session -> (issue, customer token)
    owners: dict[str, str] = field(default_factory=dict)  # session -> rep
    lines: dict[tuple[str, int], str] = field(default_factory=dict)  # (session, n) -> text
    external_keys: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # key -> rep
    team_lines: dict[tuple[str, int], str] = field(default_factory=dict)  # (team, n) -> text
    deadlines: dict[str, float] = field(default_factory=dict)  # Hardware session -> rule deadline


async def _load(port: int, rng: random.Random, got: Confirmed, round_: int, stop: asyncio.Event) -> None:
    """Drive arrivals and rep work until the server dies (or ``stop``)."""
    server = Port(port)
    reps = {rep: await RepClient.logged_in(server, rep) for rep in WORKERS}
    counter = [0]

    async def customers() -> None:
        while not stop.is_set():
            counter[0] += 1
            issue = rng.choice(list(ISSUES))
            c = await CustomerClient.open(server)
            started = await c.start("issue", issue, f"R{round_} customer {counter[0]}")
            assert isinstance(started, Started), started
            got.arrivals[started.session] = (issue, started.token)
            if issue == "printer":
                got.deadlines[started.session] = time.time() + RULE_AFTER  # at the latest
            await c.close()

    async def worker(rep: str) -> None:
        c = reps[rep]
        team = WORKERS[rep]
        mine: list[str] = []
        n = 0
        while not stop.is_set():
            n += 1
            waiting = [sid for sid, (issue, _) in got.arrivals.items() if ISSUES[issue] == team and sid not in got.owners]
            r = rng.random()
            if waiting and (r < 0.3 or not mine) and len(mine) < 4:
                sid = rng.choice(waiting)
                reply = await c.call("accept", session=sid, timeout=10)
                if isinstance(reply, Result):
                    got.owners[sid] = rep
                    mine.append(sid)
                    for line in reply.result.session.chat:
                        got.lines[(sid, line.n)] = line.text
            elif mine and r < 0.75:
                sid = rng.choice(mine)
                text = f"R{round_} {rep} line {n}"
                reply = await c.call("say", session=sid, text=text, timeout=10)
                if isinstance(reply, Result):
                    got.lines[(sid, reply.result.line.n)] = text
            elif mine and r < 0.8:
                sid = rng.choice(mine)
                key = f"R{round_}-{rep}-{n}"
                reply = await c.call("set_external_key", session=sid, external_key=key, timeout=10)
                if isinstance(reply, Result):
                    got.external_keys[sid] = key
            elif r < 0.9:
                text = f"R{round_} {rep} team note {n}"
                reply = await c.call("team_say", team=team, text=text, timeout=10)
                if isinstance(reply, Result):
                    got.team_lines[(team, reply.result.line.n)] = text
            else:
                reply = await c.call("generate_key", valid_for=3600, timeout=10)
                if isinstance(reply, Result):
                    got.keys[reply.result.key.key] = rep
            await asyncio.sleep(0)

    tasks = [asyncio.ensure_future(customers()) for _ in range(3)] + [asyncio.ensure_future(worker(rep)) for rep in WORKERS]
    done = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in done:
        # The load ends when the server is killed: a dropped connection, or a refused new one.
        if isinstance(outcome, BaseException) and not isinstance(outcome, (ConnectionClosed, OSError, InvalidHandshake, TimeoutError)):
            raise outcome


async def _kill_under_load(config: Path, data: Path, rng: random.Random, got: Confirmed, round_: int, downs: list[list[float]]) -> None:
    spawned = time.time()
    async with server_process(config, data) as proc:
        if downs:
            downs[-1].append(spawned)
        stop = asyncio.Event()
        load = asyncio.ensure_future(_load(proc.port, rng, got, round_, stop))
        # Let the load build up, then kill mid-stream: commands are in flight.
        before = len(got.arrivals) + len(got.lines)
        async with asyncio.timeout(20 * TIMEOUT_SCALE):
            while len(got.arrivals) + len(got.lines) < before + 60 or load.done():
                if load.done():
                    load.result()
                    raise AssertionError("the load stopped before the kill")
                await asyncio.sleep(0.02)
        await asyncio.sleep(rng.uniform(0, 0.3))
        downs.append([time.time()])
        proc.process.send_signal(signal.SIGKILL)
        await proc.process.wait()
        async with asyncio.timeout(10 * TIMEOUT_SCALE):
            await load
        stop.set()


def test_everything_confirmed_survives_kill_9_and_timers_still_fire(tmp_path: Path) -> None:
    rule = f'\n[teams.hw.rule]\nafter = {RULE_AFTER}\naction = "transfer"\noverflow_team = "bill"\n'
    config = write_site(tmp_path, grace_period=120, extra=rule)
    data = tmp_path / "data"
    rng = random.Random(99)
    got = Confirmed()

    async def main() -> None:
        downs: list[list[float]] = []  # [killed at, next process spawned at]
        await _kill_under_load(config, data, rng, got, 1, downs)
        await _kill_under_load(config, data, rng, got, 2, downs)
        # Stay down past the deadline of the oldest Hardware customers: their rule must fire at the restart.
        # (A real wait: a server in another process runs on the real clock; see the module's docstring.)
        first_due = min(due for sid, due in got.deadlines.items() if sid not in got.owners)
        await asyncio.sleep(max(0.0, first_due + 0.1 - time.time()))

        downs[-1].append(time.time())
        async with server_process(config, data) as proc:
            server = Port(proc.port)
            snaps: dict[str, SnapshotData] = {}
            for rep in ("alice", "bob", "carol", "dave", "erin"):
                c = await RepClient.logged_in(server, rep)
                snaps[rep] = c.snapshot
                await c.close()
            sessions: dict[str, SessionView] = {}
            for snap in snaps.values():
                for s in snap.sessions:
                    if s.chat is not UNSET or s.id not in sessions:
                        sessions[s.id] = s

            # Arrivals, accepts.
            assert got.arrivals and got.owners and got.lines and got.team_lines and got.keys and got.external_keys
            for sid in got.arrivals:
                assert sid in sessions, f"confirmed arrival {sid} is gone"
                assert sessions[sid].state in (SessionState.WAITING, SessionState.ACTIVE), sessions[sid]
            for sid, rep in got.owners.items():
                assert sessions[sid].owner == rep and sessions[sid].state is SessionState.ACTIVE, (sid, rep, sessions[sid].owner)
                owned = {s.id: s for s in snaps[rep].sessions}
                assert sid in owned and owned[sid].chat is not UNSET
            # Chat lines, external keys.
            for (sid, n), text in got.lines.items():
                chat = {line.n: line.text for line in sessions[sid].chat}
                assert chat.get(n) == text, (sid, n, text, chat.get(n))
            for sid, key in got.external_keys.items():
                assert sessions[sid].external_key == key
            # Session keys and team chat.
            for key, rep in got.keys.items():
                assert key in {k.key for k in snaps[rep].keys}, (key, rep)
            for (team, n), text in got.team_lines.items():
                member = next(rep for rep, t in WORKERS.items() if t == team)
                lines = {line.n: line.text for line in snaps[member].team_chat[team].lines}
                assert lines.get(n) == text, (team, n, text)
            # Session numbers are not reused; customers can come back.
            newest = max(int(sid[1:]) for sid in got.arrivals)
            c = await CustomerClient.open(server)
            assert int((await c.start("issue", "vpn", "After the crash")).session[1:]) > newest
            for sid, (_, token) in rng.sample(sorted(got.arrivals.items()), 5):
                c = await CustomerClient.open(server)
                reply = await c.request(CustomerResume, token=token)
                assert isinstance(reply, Started) and reply.session == sid, reply

            # Timers: every Hardware customer nobody took moves to Billing, when it is due, or
            # at the restart if it fell due while the server was down.
            hw = [sid for sid, (issue, _) in got.arrivals.items() if issue == "printer" and sid not in got.owners]
            assert hw, "no Hardware customer waited"
            carol = await RepClient.logged_in(server, "carol")
            in_bill = {s.id: s for s in carol.snapshot.sessions if s.id in hw and s.queue == "team:bill"}
            async with asyncio.timeout(RULE_AFTER + 5 * TIMEOUT_SCALE):
                while in_bill.keys() < set(hw):
                    for e in carol.events:
                        if isinstance(e, SessionEvent) and e.data.session.id in hw and e.data.session.queue == "team:bill":
                            in_bill.setdefault(e.data.session.id, e.data.session)
                    if in_bill.keys() < set(hw):
                        await carol.pump(5)
            slack = 1.5 * TIMEOUT_SCALE
            at_restart = 0
            for sid, s in in_bill.items():
                steps = {step.kind: step.at for step in s.timeline}
                due, fired = steps[StepKind.ARRIVED] + RULE_AFTER, steps[StepKind.RULE_TRANSFERRED]
                assert fired >= due - 0.01, (sid, fired - due)  # deadlines are absolute: never early
                down = next(((k, up) for k, up in downs if k <= due <= up), None)
                if down is not None:
                    at_restart += 1
                    assert down[1] <= fired <= down[1] + slack + 3, (sid, fired - down[1])  # at once when back up
                else:
                    assert fired <= due + slack, (sid, fired - due)
            assert at_restart, "no deadline fell while the server was down"
            print("confirmed:", len(got.arrivals), "arrivals,", len(got.owners), "accepts,", len(got.lines), "chat lines,",
                  len(got.team_lines), "team lines,", len(got.keys), "keys;", len(hw), "rule moves,", at_restart, "at a restart")  # fmt: skip

            assert await proc.terminate() == 0
            assert not proc.problems(), proc.problems()

    run(main(), 90)
