"""Running the server: check-config, /healthz, /metrics, JSON logs, backup and restore, SIGHUP, sd_notify.

Over real sockets; SIGHUP, sd_notify and the logs with a real server process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_SCALE
from server_helpers import PASSWORDS, CustomerClient, RepClient, run, serving, site_toml, write_site

from repconsole.core import persist
from repconsole.protocol import CloseCode, Error, ErrorReason, Events, Snapshot, Snippets, Started, Welcome
from repconsole.server.config import build_engine, load_config
from repconsole.server.ops import backup, sd_notify
from repconsole.server.store import DB_NAME, Store

LISTENING = re.compile(r"^repconsole-server: listening on ws://127\.0\.0\.1:(\d+)$")
TOKEN = "metrics-token-0123456789"


def program() -> list[str]:
    script = shutil.which("repconsole-server", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "repconsole.server"]


class _Port:
    def __init__(self, port: int) -> None:
        self.port = port


# ---------------------------------------------------------------- check-config


def test_check_config_summarises_a_good_file(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    result = subprocess.run([*program(), "check-config", str(site)], capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{site}: ok: 4 teams, 5 reps, 3 issues, 2 buttons, 2 links; metrics: none"
    # --config works too, as for serving.
    again = subprocess.run([*program(), "--config", str(site), "check-config"], capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, check=False)
    assert again.returncode == 0 and again.stdout == result.stdout


def test_check_config_names_file_line_and_key_of_every_problem(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    text = site_toml(extra='\n[admin]\nlisten = "nowhere"\nmetrics_token = "short"\n')
    text = text.replace('teams = ["hw"]', 'teams = ["hardware"]').replace("grace_period = 60.0", 'grace_period = "a minute"')
    site.write_text(text, encoding="utf-8")
    lines = text.splitlines()

    def line_of(needle: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if needle in line)

    result = subprocess.run([*program(), "check-config", str(site)], capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{site}:{line_of('grace_period')}: site.grace_period: must be a number of seconds, 0 or more",
        f"{site}:{line_of('hardware')}: reps[3].teams[0]: unknown team 'hardware'",
        f"{site}:{line_of('listen =')}: admin.listen: 'nowhere' is not an address such as 127.0.0.1:9102",
        f"{site}:{line_of('metrics_token')}: admin.metrics_token: must be at least 16 characters",
        f"repconsole-server: {site}: 4 problems",
    ]
    missing = subprocess.run([*program(), "check-config", str(tmp_path / "none.toml")], capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, check=False)
    assert missing.returncode == 1 and "none.toml: cannot read" in missing.stderr


# ----------------------------------------------------------- health, metrics


def _get(port: int, path: str, token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5 * TIMEOUT_SCALE) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def get(port: int, path: str, token: str | None = None) -> tuple[int, str, str]:
    return await asyncio.to_thread(_get, port, path, token)


def series(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, from the Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_healthz_says_only_ok_and_admin_pages_need_the_token(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(write_site(tmp_path), tmp_path / "data") as server:
            assert await get(server.port, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
            for path in ("/metrics", "/status"):
                assert (await get(server.port, path))[0] == 404  # no token configured: not served on the main port
        site = write_site(tmp_path, extra=f'\n[admin]\nmetrics_token = "{TOKEN}"\n')
        async with serving(site, tmp_path / "data") as server:
            assert await get(server.port, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
            for path in ("/metrics", "/status"):
                assert (await get(server.port, path))[0] == 401
                assert (await get(server.port, path, token="metrics-token-wrong-one"))[0] == 401
                assert (await get(server.port, path, token=TOKEN))[0] == 200
            status = json.loads((await get(server.port, "/status", token=TOKEN))[2])
            assert status["status"] == "ok" and status["reps_online"] == 0

    run(main())


def test_healthz_says_starting_until_the_server_serves(tmp_path: Path) -> None:
    from repconsole.server.app import Server

    server = Server(load_config(write_site(tmp_path)), tmp_path / "data")
    answer = server.admin.healthz()
    assert (answer.status_code, answer.body) == (503, b"starting\n")


def test_metrics_have_the_named_series(tmp_path: Path) -> None:
    site = write_site(tmp_path, extra=f'\n[admin]\nlisten = "127.0.0.1:0"\nmetrics_token = "{TOKEN}"\n')

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            assert server.admin_address is not None
            admin = int(server.admin_address.rsplit(":", 1)[1])

            async def scrape() -> dict[str, float]:
                status, ctype, body = await get(admin, "/metrics")  # the admin listener needs no token
                assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
                return series(body)

            assert (await get(server.port, "/metrics", token=TOKEN))[0] == 200  # and on the main port with the token
            before = await scrape()
            assert before['repconsole_connections{endpoint="rep"}'] == 0
            assert before['repconsole_waiting_sessions{team="net"}'] == 0
            assert before["repconsole_accepts_total"] == 0
            assert before["repconsole_login_failures_total"] == 0
            assert before['repconsole_connections_closed_total{how="dropped"}'] == 0
            assert before["repconsole_fanout_events_total"] == 0

            stranger = await RepClient.open(server)
            assert not isinstance(await stranger.login("alice", "not her password"), Welcome)
            alice = await RepClient.logged_in(server, "alice")
            alice.listen()
            ann = await CustomerClient.started(server, "Ann Lee", "vpn")
            after_arrival = await scrape()
            assert after_arrival["repconsole_login_failures_total"] == 1
            assert after_arrival['repconsole_connections{endpoint="rep"}'] == 1
            assert after_arrival['repconsole_connections{endpoint="customer"}'] == 1
            assert after_arrival['repconsole_waiting_sessions{team="net"}'] == 1
            assert after_arrival['repconsole_waiting_sessions{team="bill"}'] == 0

            await alice.ok("accept", session=ann.session)
            await alice.ok("say", session=ann.session, text="Hello")
            await asyncio.sleep(0.3)  # the batch window (at most 20 ms): the say's events are out
            accepted = await scrape()
            assert accepted["repconsole_accepts_total"] == 1
            assert accepted['repconsole_waiting_sessions{team="net"}'] == 0
            # One observation per batch written; the arrival, the accept and the line may share one.
            assert accepted["repconsole_delivery_seconds_count"] >= 1
            assert before["repconsole_delivery_seconds_count"] == 0
            assert accepted['repconsole_delivery_seconds_bucket{le="+Inf"}'] == accepted["repconsole_delivery_seconds_count"]
            assert accepted["repconsole_delivery_seconds_sum"] < accepted["repconsole_delivery_seconds_count"] * 0.5
            # The fan-out's cost: alice, the one console, got the arrival, the accept and the line
            # (the session event of each, at least), and the ticks that wrote them took some CPU.
            delivered = accepted["repconsole_fanout_events_total"]
            assert delivered >= 3
            await alice.until(lambda: sum(len(m.events) for m in alice.received if isinstance(m, Events)) >= delivered)
            assert sum(len(m.events) for m in alice.received if isinstance(m, Events)) == delivered
            assert accepted["repconsole_fanout_cpu_seconds_total"] > before["repconsole_fanout_cpu_seconds_total"] >= 0
            assert accepted["repconsole_fanout_cpu_seconds_total"] < 1.0

            alice.ws.transport.abort()  # a console lost without a word
            await ann.close()  # a page that says goodbye
            for _ in range(50):
                gone = await scrape()
                if gone['repconsole_connections{endpoint="rep"}'] == 0 and gone['repconsole_connections_closed_total{how="closed"}'] >= 1:
                    break
                await asyncio.sleep(0.05)
            assert gone['repconsole_connections_closed_total{how="dropped"}'] == 1
            assert gone['repconsole_connections_closed_total{how="closed"}'] >= 2  # the page, and the refused login
            assert gone['repconsole_connections_closed_total{how="slow"}'] == 0
            assert gone['repconsole_connections{endpoint="customer"}'] == 0

    run(main())


# -------------------------------------------------------------- backup


def test_backup_while_writes_run_restores_a_state_the_server_had(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    data, dest = tmp_path / "data", tmp_path / "backups"
    dest.mkdir()
    # What the engine held after each commit: the backup must be exactly one of them.
    states: dict[int, dict[str, Any]] = {}

    def durable(state: dict[str, Any]) -> dict[str, Any]:
        return {k: state[k] for k in ("counters", "sessions", "waiting", "ended", "keys", "team_chat")}

    async def main() -> Path:
        async with serving(site, data) as server:
            rt = server.runtime
            assert rt is not None
            # "ended" as stored: always empty (ended sessions stay in the database, read one at a time), while
            # the engine still holds those a commit ended when its listeners run.  With them, a backup taken
            # right at a session's end failed (about one run in three).
            rt.after_commit.append(lambda events: states.__setitem__(rt.engine.seq, {**durable(persist.dump(rt.engine)), "ended": []}))
            alice = await RepClient.logged_in(server, "alice")
            alice.listen()
            writing = True

            async def write() -> int:
                n = 0
                while writing:
                    c = await CustomerClient.started(server, f"Customer {n}", "vpn")
                    if n % 3 == 0:
                        await alice.ok("accept", session=c.session)
                        await alice.ok("say", session=c.session, text=f"line {n}")
                        await alice.ok("end", session=c.session)
                    n += 1
                return n

            writer = asyncio.ensure_future(write())
            await asyncio.sleep(0.3)
            seq_before = rt.engine.seq
            proc = await asyncio.create_subprocess_exec(
                *program(), "backup", str(dest), "--data", str(data), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await proc.communicate()
            await asyncio.sleep(0.2)
            writing = False
            written = await writer
            assert proc.returncode == 0, err.decode()
            assert rt.engine.seq > seq_before and written > 10
            (copy,) = dest.glob("repconsole-server-*.db")
            assert out.decode().strip() == f"repconsole-server: {data} backed up to {copy}"
            return copy

    copy = run(main(), 60)
    db = sqlite3.connect(copy)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()

    # The copy holds the engine as of one commit, exactly.
    store = Store(copy)
    engine = build_engine(load_config(site), time.time)
    assert persist.load(engine, store.load_state() or {}) == []
    store.close()
    state = durable(persist.dump(engine))
    seq = state["counters"]["seq"]
    assert seq in states, f"the backup is at seq {seq}, which was never committed"
    assert state == states[seq]
    assert max(states) > seq  # the writes went on after the copy was taken
    assert len(state["sessions"]) > 3

    # Restore as docs/operations.md says: the copy becomes the database of an empty data directory.
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    shutil.copy2(copy, restored / DB_NAME)

    async def reopen() -> dict[str, Any]:
        async with serving(site, restored) as server:
            assert server.runtime is not None
            ann = await CustomerClient.started(server, "After the restore", "vpn")
            assert int(ann.session[1:]) == state["counters"]["sessions"] + 1  # numbering goes on from the copy
            return durable(persist.dump(server.runtime.engine))

    after = run(reopen())
    ids = {d["id"] for d in after["sessions"] + after["ended"]}
    assert ids == {d["id"] for d in state["sessions"] + state["ended"]} | {f"S{state['counters']['sessions'] + 1}"}


def test_backup_refuses_to_overwrite_and_names_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no database"):
        backup(tmp_path / "empty", tmp_path / "b.db")
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / DB_NAME).execute("CREATE TABLE t (x)").connection.close()
    assert backup(data, tmp_path / "b.db") == tmp_path / "b.db"
    with pytest.raises(FileExistsError):
        backup(data, tmp_path / "b.db")
    assert not list(tmp_path.glob("*.partial"))


# ------------------------------------------------- a real process: HUP, notify, logs


class Notifications:
    """A stand-in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.path = path

    async def next(self, timeout: float = 10.0) -> str:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout * TIMEOUT_SCALE):
            return (await loop.sock_recv(self.sock, 4096)).decode()


class Process:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.log: list[str] = []
        self._reader = asyncio.ensure_future(self._read())
        self._new = asyncio.Event()

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while raw := await self.process.stderr.readline():
            self.log.append(raw.decode().rstrip("\n"))
            self._new.set()

    async def logged(self, pattern: str, since: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The JSON log lines after line ``since``, once one has a message matching ``pattern``."""
        async with asyncio.timeout(timeout * TIMEOUT_SCALE):
            while True:
                records = [json.loads(line) for line in self.log[since:]]
                if any(re.search(pattern, r["message"]) for r in records):
                    return records
                self._new.clear()
                await self._new.wait()


@asynccontextmanager
async def server_process(config: Path, data: Path, notify: Path) -> AsyncIterator[Process]:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
    process = await asyncio.create_subprocess_exec(
        *program(), "--port", "0", "--config", str(config), "--data", str(data), "--log-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20 * TIMEOUT_SCALE):
            while not (m := LISTENING.match((await process.stdout.readline()).decode().strip())):
                assert process.returncode is None
        yield Process(process, int(m.group(1)))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_sighup_applies_a_good_config_and_keeps_the_old_one_for_a_bad_one(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    notify = Notifications(tmp_path / "notify")

    async def main() -> None:
        async with server_process(site, tmp_path / "data", notify.path) as server:
            assert (await notify.next()).split("\n")[0] == "READY=1"
            alice = await RepClient.logged_in(_Port(server.port), "alice")  # type: ignore[arg-type]
            alice.listen()
            ready = len(server.log)

            # Limits only: applied, and no console is disturbed.
            site.write_text(site_toml(server="resume_window = 600"), encoding="utf-8")
            server.process.send_signal(signal.SIGHUP)
            assert (await notify.next()).startswith("RELOADING=1\nMONOTONIC_USEC=")
            assert await notify.next() == "READY=1"
            records = await server.logged(r"^reloaded ", ready)
            assert any(r["message"] == f"reloaded {site}: [server] resume_window" for r in records), records
            await asyncio.sleep(0.3)
            assert alice.ws.close_code is None

            # The directory: a new team, Alice joins it and is renamed; her console re-syncs.
            mark = len(server.log)
            site.write_text(
                site_toml(server="resume_window = 600", teams_extra='\n[teams.vip]\nname = "VIP desk"\n')
                .replace('name = "Alice Ng"\nteams = ["net"]', 'name = "Alice Ng-Park"\nteams = ["net", "vip"]'),
                encoding="utf-8",
            )
            server.process.send_signal(signal.SIGHUP)
            records = await server.logged(r"^reloaded ", mark)
            assert any(r["message"] == f"reloaded {site}: new team vip, rep alice (consoles re-sync)" for r in records), records
            assert (await notify.next()).startswith("RELOADING=1") and await notify.next() == "READY=1"
            assert await alice.closed_with(5) == CloseCode.GOING_AWAY
            again = await RepClient.open(_Port(server.port))  # type: ignore[arg-type]
            assert alice.token is not None
            welcome = await again.resume(alice.token, alice.seq)
            assert isinstance(welcome, Welcome) and not welcome.resumed
            await again.until(lambda: again.snapshot is not None)  # a new snapshot, not a replay
            snap = again.snapshot
            last = [m for m in again.received if not isinstance(m, Snippets)][-1]  # the team snippets follow it (issue 14)
            assert snap is not None and isinstance(last, Snapshot)
            assert {t.id: t.name for t in snap.teams}["vip"] == "VIP desk"
            assert (snap.you.name, snap.you.teams) == ("Alice Ng-Park", ["net", "vip"])

            # A mistake: refused with file, line and key; the running site stays as it was.
            for broken, why in [
                (
                    site.read_text().replace('name = "VIP desk"', 'name = "VIP desk"\nrule = { after = 0, action = "mark_overdue" }'),
                    r"teams\.vip\.rule\.after: must be more than 0",
                ),
                (site.read_text().replace('teams = ["net", "vip"]', 'teams = ["net"]'), r"rep 'alice' leaving vip needs a restart"),
            ]:
                mark = len(server.log)
                site.write_text(broken, encoding="utf-8")
                server.process.send_signal(signal.SIGHUP)
                records = await server.logged(why, mark)
                refused = [r for r in records if r["message"].startswith("reload refused")]
                assert refused and all(r["level"] == "error" for r in refused), records
                assert any(f"{site}" in r["message"] for r in refused)
                assert not any(r["message"].startswith("reloaded") for r in records)
                assert (await notify.next()).startswith("RELOADING=1") and await notify.next() == "READY=1"
            third = await RepClient.open(_Port(server.port))  # type: ignore[arg-type]
            await third.login("alice")
            assert third.snapshot is not None
            assert {t.id: t.rule for t in third.snapshot.teams}["vip"] is None  # neither mistake applied
            assert third.snapshot.you.name == "Alice Ng-Park"

            server.process.send_signal(signal.SIGTERM)
            assert await notify.next() == "STOPPING=1"
            assert await server.process.wait() == 0
            for line in server.log:  # every line is one JSON object
                record = json.loads(line)
                assert record.keys() >= {"time", "level", "logger", "message"} and record["time"].endswith("Z")

    run(main(), 90)


def test_sd_notify_writes_to_the_notify_socket_and_nothing_without_one(tmp_path: Path) -> None:
    assert not sd_notify("READY=1", environ={})
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "n"))
        assert sd_notify("READY=1", "STATUS=up", environ={"NOTIFY_SOCKET": str(tmp_path / "n")})
        assert sock.recv(100) == b"READY=1\nSTATUS=up"


# ------------------------------------------------------ reload, in process


def test_a_reload_applies_limits_links_and_buttons_without_disturbing_consoles(tmp_path: Path) -> None:
    site = write_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            alice.listen()
            assert (await get(server.port, "/api/link/link-bill"))[0] == 200
            assert (await get(server.port, "/api/link/link-new"))[0] == 404

            limited = site_toml().replace("customer_starts_per_minute = 0", "customer_starts_per_minute = 1")
            site.write_text(limited, encoding="utf-8")
            change = server.reload(load_config(site))
            assert (change.changes, change.directory) == (("[server] customer_starts_per_minute",), False)
            assert isinstance(await (await CustomerClient.open(server)).start(), Started)
            refused = await (await CustomerClient.open(server)).start()
            assert isinstance(refused, Error) and refused.reason == ErrorReason.RATE_LIMITED
            await asyncio.sleep(0.2)
            assert alice.ws.close_code is None  # limits alone disturb no console

            bill = 'id = "link-bill"\nname = "Billing help link"\ntarget = "team:bill"'
            relinked = limited.replace(bill, 'id = "link-new"\nname = "New help"\ntarget = "team:hw"')
            site.write_text(relinked.replace("Alice's desk button", "Alice's new button"), encoding="utf-8")
            change = server.reload(load_config(site))
            assert change.directory and set(change.changes) == {"buttons", "links"}
            assert (await get(server.port, "/api/link/link-bill"))[0] == 404
            status, _, body = await get(server.port, "/api/link/link-new")
            assert status == 200 and json.loads(body)["name"] == "New help"
            site_page = json.loads((await get(server.port, "/api/site"))[2])
            assert {b["description"] for b in site_page["buttons"]} == {"Alice's new button", "Networking Support Button"}
            assert await alice.closed_with(5) == CloseCode.GOING_AWAY  # the directory changed: re-sync

            # A new rep (with Alice's password hash) can sign in at once, in a team, and is in everyone's directory.
            hashed = re.search(r'id = "alice"\n(?:.*\n){2}password_hash = "([^"]*)"', relinked)
            assert hashed is not None
            frank = f'\n[[reps]]\nid = "frank"\nname = "Frank Li"\nteams = ["hw"]\npassword_hash = "{hashed[1]}"\n'
            site.write_text(relinked.replace("Alice's desk button", "Alice's new button") + frank, encoding="utf-8")
            assert server.reload(load_config(site)).changes == ("new rep frank",)
            client = await RepClient.open(server)
            assert isinstance(await client.login("frank", PASSWORDS["alice"]), Welcome)
            assert client.snapshot is not None and client.snapshot.you.teams == ["hw"]
            assert "frank" in {r.id for r in client.snapshot.reps}

    run(main())


def _without_hw(t: str) -> str:
    return t.replace('[teams.hw]\nname = "Hardware"', "").replace('teams = ["hw"]', "teams = []").replace('team = "hw"', 'team = "net"')


def _without_dave(t: str) -> str:
    return re.sub(r'\[\[reps\]\]\nid = "dave"\n(.*\n){2}password_hash = "[^"]*"\n', "", t, count=1)


PRINTER = '[[issues]]\ncode = "printer"\nname = "Printer offline"\ncategory = "Hardware"\nteam = "hw"\n'


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_without_hw, "teams.hw: removing a team needs a restart"),
        (lambda t: t.replace('[[reps]]\nid = "dave"', '[[nothing]]\nid = "dave"'), None),  # not a valid file: refused before
        (_without_dave, "reps: removing rep 'dave' needs a restart"),
        (lambda t: t.replace('teams = ["net", "bill"]', 'teams = ["net"]'), "reps: rep 'erin' leaving bill needs a restart"),
        (lambda t: t.replace(PRINTER, ""), "issues: removing issue 'printer' needs a restart"),
    ],
)
def test_a_reload_that_needs_a_restart_is_refused_and_changes_nothing(tmp_path: Path, edit: Any, reason: str | None) -> None:
    from repconsole.server.config import ConfigError
    from repconsole.server.reload import ReloadRefused, plan

    old = load_config(write_site(tmp_path))
    path = tmp_path / "new.toml"
    path.write_text(edit(site_toml()).replace("Alice Ng", "Alice Renamed"), encoding="utf-8")
    if reason is None:
        with pytest.raises(ConfigError):
            load_config(path)
        return
    new = load_config(path)
    with pytest.raises(ReloadRefused) as refused:
        plan(old, new)
    assert reason in refused.value.reasons
