"""Running a cluster: a configuration reload is the organisation's, and password hashes reach every process.

Three real ``repconsole-server`` processes on one real redis-server (the fixtures of
tests/test_cluster_processes.py): a SIGHUP to a follower reloads every process, the engine part once, by
the leader; a process whose file differs stops the reload everywhere; ``passwd`` and a re-hash at login
are the organisation's (docs/operations.md "Run a cluster", docs/architecture.md "Cluster").
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)
from server_helpers import CHEAP, PASSWORDS, RepClient, ServerProcess, eventually, run, server_program
from test_cluster_processes import KEYS, cluster

from repconsole.protocol import Error, SnapshotData, Welcome
from repconsole.server.auth import OWASP, ScryptParams, hash_password, parse_hash, verify_password
from repconsole.server.cluster.forward import async_client
from repconsole.server.cluster.log import connect
from repconsole.server.cluster.passwords import ClusterPasswords, set_hash

SCRYPT = ScryptParams(n=1024, r=8, p=1)  # cheap, as the tests' argon2id

NEW_TEAM = """
[teams.sec]
name = "Security"
routing = "least-busy"
max_sessions = 2

[[reps]]
id = "frank"
name = "Frank Li"
teams = ["sec", "net"]
skills = ["vpn"]
password_hash = "{hash}"
"""


def directory(snapshot: SnapshotData | None) -> tuple[object, ...]:
    """What a snapshot says of the directory (not who is online)."""
    assert snapshot is not None
    reps = [(r.id, r.name, r.teams, r.max_sessions, r.routing) for r in snapshot.reps]
    return snapshot.site, snapshot.teams, reps


def grown(site: Path) -> str:
    """The site with a new team and rep and a new limit."""
    text = site.read_text(encoding="utf-8").replace("customer_starts_per_minute = 0", "customer_starts_per_minute = 50")
    return text + NEW_TEAM.format(hash=hash_password("frank-secret-pw", CHEAP))


async def logged(proc: ServerProcess, text: str, since: int = 0) -> list[str]:
    """The process's output lines after ``since`` that have ``text``, once there is one."""
    try:
        await eventually(lambda: any(text in line for line in proc.lines[since:]), timeout=10)
    except TimeoutError:
        raise AssertionError(f"no {text!r} in:\n" + "\n".join(proc.lines[since:])) from None
    return [line for line in proc.lines[since:] if text in line]


def test_a_sighup_to_a_follower_reloads_every_process_once_through_the_leader(redis_server: RedisServer, tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster(redis_server, tmp_path) as c:
            procs = [c.procs[i] for i in range(3)]
            consoles = [await RepClient.open(p) for p in procs]
            for console, rep in zip(consoles, ("alice", "bob", "erin"), strict=True):
                await console.login(rep)
            marks = [len(p.lines) for p in procs]
            c.site.write_text(grown(c.site), encoding="utf-8")
            procs[1].process.send_signal(signal.SIGHUP)  # a follower
            applied = await logged(procs[0], "applied on every process", marks[0])
            assert "new rep frank" in applied[0] and "new team sec" in applied[0] and "customer_starts_per_minute" in applied[0], applied
            for i in (1, 2):  # each follower took its own settings with the leader's step
                took = await logged(procs[i], "with the organisation (reload", marks[i])
                assert "[server] customer_starts_per_minute" in took[0] and "(consoles re-sync)" in took[0], took
            done = await logged(procs[1], "reloaded the organisation's configuration", marks[1])
            assert done, procs[1].lines[marks[1]:]
            # The consoles re-sync; a console on each process sees the new team, and Frank signs in anywhere.
            for console in consoles:
                await console.until(lambda cl=console: cl.ws.close_code is not None)  # type: ignore[misc]
            views = []
            for p in procs:
                frank = await RepClient.open(p)
                welcome = await frank.login("frank", "frank-secret-pw")
                assert isinstance(welcome, Welcome), welcome
                assert frank.snapshot is not None and "sec" in [t.id for t in frank.snapshot.teams]
                views.append(directory(frank.snapshot))
                await frank.close()
            assert views[0] == views[1] == views[2], "every follower's copy has the leader's directory"
            # The engine part ran once, on the leader: a follower never runs an engine step (it would stop).
            assert sum("applied on every process" in line for p in procs for line in p.lines) == 1
            for p in procs:
                assert p.process.returncode is None and not p.problems(), p.lines[-30:]

    run(main(), 90)


def test_a_process_whose_file_differs_stops_the_reload_everywhere(redis_server: RedisServer, tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster(redis_server, tmp_path, n=2) as c:
            other = tmp_path / "other" / "site.toml"
            other.parent.mkdir()
            other.write_text(c.site.read_text(encoding="utf-8"), encoding="utf-8")
            c.site = other
            late = await c.start(2)  # the same file, for now, at another path
            procs = [c.procs[i] for i in range(3)]
            marks = [len(p.lines) for p in procs]
            (tmp_path / "site.toml").write_text(grown(tmp_path / "site.toml"), encoding="utf-8")  # 0 and 1 only
            procs[0].process.send_signal(signal.SIGHUP)  # the leader
            refused = await logged(procs[0], "refused: the configuration differs from the leader's", marks[0])
            assert str(procs[2].pid) in refused[0], refused  # it names the process (host-pid)
            await logged(procs[2], "differs from the leader's", marks[2])  # the odd one says so too
            await logged(procs[0], "reload refused, the running configuration is kept everywhere", marks[0])
            # Nothing applied anywhere: frank is unknown on every process; the old ones are served as before.
            for p in procs:
                frank = await RepClient.open(p)
                assert isinstance(await frank.login("frank", "frank-secret-pw"), Error)
                alice = await RepClient.open(p)
                await alice.login("alice")
                assert alice.snapshot is not None and "sec" not in [t.id for t in alice.snapshot.teams]
            assert not any("with the organisation (reload" in line for p in procs for line in p.lines)
            assert late.process.returncode is None

    run(main(), 90)


def _passwd(site: Path, rep: str, password: str, *cost: str) -> None:
    done = subprocess.run([*server_program(), "passwd", rep, "--config", str(site), *cost], input=password + "\n",
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr


def test_passwd_and_a_rehash_at_login_reach_every_process(redis_server: RedisServer, tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster(redis_server, tmp_path) as c:
            procs = [c.procs[i] for i in range(3)]
            await asyncio.to_thread(_passwd, c.site, "bob", "bob-new-password", "--password-cost", "m=8,t=1,p=1")
            for p in procs:  # the new password on every process, the configuration's no longer
                bob = await RepClient.open(p)
                assert isinstance(await bob.login("bob", "bob-new-password"), Welcome)
                old = await RepClient.open(p)
                assert isinstance(await old.login("bob", PASSWORDS["bob"]), Error)
            # An earlier server's scrypt hash, verified at B, is re-hashed there: A and C check the argon2id one.
            client = connect(redis_server.url)
            scrypt = hash_password("carol-scrypt-pw", SCRYPT)
            client.hset(KEYS.passwords, "carol", scrypt)
            carol = await RepClient.open(procs[1])
            assert isinstance(await carol.login("carol", "carol-scrypt-pw"), Welcome)

            await eventually(lambda: client.hget(KEYS.passwords, "carol") != scrypt.encode(), timeout=10)
            argon = client.hget(KEYS.passwords, "carol").decode()  # type: ignore[union-attr]
            assert parse_hash(argon) == OWASP and verify_password("carol-scrypt-pw", argon)
            assert any("now argon2id" in line for line in procs[1].lines)
            for p in (procs[0], procs[2]):
                again = await RepClient.open(p)
                assert isinstance(await again.login("carol", "carol-scrypt-pw"), Welcome)
            assert client.hget(KEYS.passwords, "carol") == argon.encode(), "A and C checked B's hash: nothing to re-hash"
            for p in procs:
                assert not p.problems(), p.lines[-30:]

    run(main(), 120)


def test_a_stale_rehash_never_overwrites_a_newer_hash(redis_server: RedisServer) -> None:
    """Order: a process re-hashes only the hash it verified (compare and set in Redis); a hash set meanwhile stands."""

    async def main() -> None:
        book = ClusterPasswords(async_client(redis_server.url), KEYS)
        assert await book.get("dave") is None
        assert await book.replace("dave", None, "first")  # none set: the configuration's was verified
        await asyncio.to_thread(set_hash, redis_server.url, KEYS, "dave", "set-by-passwd")  # meanwhile
        assert not await book.replace("dave", "first", "stale")
        assert await book.get("dave") == "set-by-passwd"
        assert not await book.replace("dave", None, "stale")
        await book.client.aclose()

    run(main(), 30)
