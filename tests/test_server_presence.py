"""Presence against a real server process: a frozen console is lost within the documented bound.

docs/protocol.md, "Presence": a console that stops answering is seen as lost
within ``ping_interval + ping_timeout`` of freezing, and its sessions fall
back ``grace_period`` later.  The console here is a process of its own,
frozen with SIGSTOP (as a hung machine or a suspended laptop would be), and
the server another process: nothing in the test shares a loop with either.
Small intervals keep it fast; the bound is the same formula at any scale.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import TIMEOUT_SCALE
from server_helpers import PASSWORDS, CustomerClient, Port, RepClient, run, server_process, write_site

from repconsole.protocol import RepEvent, SessionEvent, SessionGoneEvent, SessionState

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")

PING_INTERVAL = 0.6
PING_TIMEOUT = 0.4
GRACE = 1.0
# What measuring adds to the bound: the observer's own frames and the two processes' scheduling.
SLACK = 0.3 * TIMEOUT_SCALE

# A console reduced to its socket: logs in, accepts the session, then reads for ever
# (websockets answers the server's pings while it reads).
CONSOLE = """
import asyncio, json, sys
from websockets.asyncio.client import connect
from repconsole.protocol import PROTOCOL_VERSION as PROTOCOL

async def main(port, password, session):
    async with connect(f"ws://127.0.0.1:{port}/rep", max_size=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "login", "id": 1, "username": "alice", "password": password, "protocol": PROTOCOL}))
        await ws.send(json.dumps({"type": "command", "id": 2, "name": "accept", "args": {"session": session}}))
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("type") in ("result", "error") and msg.get("id") == 2:
                print(msg["type"], flush=True)

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
"""


def test_a_frozen_console_is_lost_within_ping_interval_plus_timeout_and_falls_back_after_the_grace(tmp_path: Path) -> None:
    site = write_site(tmp_path, grace_period=GRACE, server=f"ping_interval = {PING_INTERVAL}\nping_timeout = {PING_TIMEOUT}")

    async def main() -> None:
        async with server_process(site, tmp_path / "data") as server:
            where = Port(server.port)
            bob = (await RepClient.logged_in(where, "bob")).listen()
            customer = await CustomerClient.started(where)
            sid = customer.session
            console = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CONSOLE, str(server.port), PASSWORDS["alice"], sid, stdout=asyncio.subprocess.PIPE
            )
            try:
                assert console.stdout is not None
                async with asyncio.timeout(10 * TIMEOUT_SCALE):
                    assert (await console.stdout.readline()).decode().strip() == "result"
                await bob.until(lambda: any(_taken_by(e, sid, "alice") for e in bob.events), timeout=5)
                # Freeze it somewhere between two pings.
                await asyncio.sleep(PING_INTERVAL * 1.7)
                frozen = time.monotonic()
                os.kill(console.pid, signal.SIGSTOP)
                seen = len(bob.events)
                await bob.until(lambda: any(_lost(e, "alice") for e in bob.events[seen:]), timeout=10)
                lost = time.monotonic()
                await bob.until(lambda: any(_waiting(e, sid) for e in bob.events[seen:]), timeout=10)
                back = time.monotonic()
            finally:
                if console.returncode is None:
                    console.kill()  # SIGKILL ends a stopped process too
                await console.wait()
            bound = PING_INTERVAL + PING_TIMEOUT
            measured = {"lost": round(lost - frozen, 3), "back in the queue": round(back - frozen, 3)}
            print(json.dumps(measured))
            assert PING_TIMEOUT - 0.05 <= lost - frozen <= bound + SLACK, measured
            assert back - lost >= GRACE - 0.05 and back - frozen <= bound + GRACE + SLACK, measured
            await bob.close()
            assert not server.problems(), server.problems()

    run(main(), 60)


def _taken_by(event: object, sid: str, rep: str) -> bool:
    return isinstance(event, SessionGoneEvent) and event.data.id == sid and event.data.by == rep


def _lost(event: object, rep: str) -> bool:
    return isinstance(event, RepEvent) and event.data.rep.id == rep and not event.data.rep.connected


def _waiting(event: object, sid: str) -> bool:
    return isinstance(event, SessionEvent) and event.data.session.id == sid and event.data.session.state is SessionState.WAITING
