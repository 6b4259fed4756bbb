"""The real ``repconsole-server`` program, as a subprocess."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_SCALE
from server_helpers import CustomerClient, RepClient, run, serving, write_site

from repconsole import __version__
from repconsole.protocol import CustomerResume, CustomerState, ErrorReason, SessionState, Status, Welcome
from repconsole.server.auth import OWASP, Argon2Params, parse_hash, verify_password
from repconsole.server.store import Store

LISTENING = re.compile(r"^repconsole-server: listening on wss?://127\.0\.0\.1:(\d+)$")


def program() -> list[str]:
    script = shutil.which("repconsole-server", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "repconsole.server"]


class Running:
    """A server process and the port it printed."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, lines: list[str]) -> None:
        self.process = process
        self.port = port
        self.lines = lines


@asynccontextmanager
async def server_process(*args: str, ready: float = 20.0) -> AsyncIterator[Running]:
    process = await asyncio.create_subprocess_exec(
        *program(), "--port", "0", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    lines: list[str] = []
    try:
        async with asyncio.timeout(ready * TIMEOUT_SCALE):
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    raise AssertionError("the server exited: " + (await process.stderr.read()).decode())
                line = raw.decode().rstrip("\n")
                lines.append(line)
                match = LISTENING.match(line)
                if match:
                    break
        yield Running(process, int(match.group(1)), lines)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


class _Port:
    """What server_helpers' clients need of a server: its port."""

    def __init__(self, port: int) -> None:
        self.port = port


def test_help_and_version() -> None:
    out = subprocess.run([*program(), "--help"], capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE, check=True).stdout
    assert "--config FILE" in out and "passwd" in out and "--tls-cert" in out
    version = subprocess.run([*program(), "--version"], capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE, check=True)
    assert version.stdout.strip() == f"repconsole-server {__version__}"


def test_a_configuration_error_stops_the_server_before_it_listens(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    text = site.read_text().replace('teams = ["net", "bill"]', 'teams = ["net", "billing"]')
    site.write_text(text)
    line = next(n for n, s in enumerate(text.splitlines(), 1) if '"billing"' in s)
    result = subprocess.run(
        [*program(), "--port", "0", "--config", str(site), "--data", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"{site}:{line}: reps[4].teams[1]: unknown team 'billing'"
    assert "listening" not in result.stdout


def test_a_confirmed_accept_survives_kill_9(tmp_path: Path) -> None:
    site, data = write_site(tmp_path), tmp_path / "data"
    args = ("--config", str(site), "--data", str(data))

    async def main() -> None:
        async with server_process(*args) as first:
            server: Any = _Port(first.port)
            alice = await RepClient.logged_in(server, "alice")
            ann = await CustomerClient.open(server)
            await ann.start("issue", "vpn", "Ann Lee")
            await alice.ok("accept", session=ann.session)
            await alice.ok("say", session=ann.session, text="I have it from here.")
            token, seq = alice.token, alice.seq
            first.process.send_signal(signal.SIGKILL)
            await first.process.wait()
        async with server_process(*args) as second:
            server = _Port(second.port)
            back = await RepClient.open(server)
            assert (await back.resume(token, seq)).resumed is True
            fresh = await RepClient.logged_in(server, "alice")
            (session,) = [s for s in fresh.snapshot.sessions if s.id == ann.session]
            assert session.owner == "alice" and session.state is SessionState.ACTIVE
            assert session.chat[-1].text == "I have it from here."
            customer = await CustomerClient.open(server)
            await customer.request(CustomerResume, token=ann.token)
            await customer.until(lambda: bool(customer.statuses))
            assert customer.statuses[-1] == Status(CustomerState.ACTIVE, rep_name="Alice Ng")
            second.process.send_signal(signal.SIGTERM)
            assert await second.process.wait() == 0

    run(main(), 60)


def test_passwd_stores_a_password_the_server_accepts(tmp_path: Path) -> None:
    site, data = write_site(tmp_path), tmp_path / "data"

    def passwd(user: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*program(), "passwd", user, "--config", str(site), "--data", str(data)],
            input=stdin, capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, check=False,
        )  # fmt: skip

    done = passwd("alice", "a-new-long-password\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"repconsole-server: password of alice stored in {data}"
    assert passwd("mallory", "whatever-password\n").returncode == 1
    short = passwd("bob", "short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr

    async def main() -> None:
        async with serving(site, data) as server:
            c = await RepClient.open(server)
            assert isinstance(await c.login("alice", "a-new-long-password"), Welcome)
            old = await RepClient.open(server)
            assert (await old.login("alice")).reason == ErrorReason.BAD_CREDENTIALS  # the stored one wins
            assert isinstance(await (await RepClient.open(server)).login("bob"), Welcome)

    run(main())


def test_passwd_hashes_at_the_password_cost_given(tmp_path: Path) -> None:
    """``--password-cost`` after ``passwd``, or before it (the server's option), sets the stored
    hash's argon2id cost; with neither it is OWASP's.  A wrong cost is refused (status 2)."""
    site, data = write_site(tmp_path), tmp_path / "data"

    def passwd(user: str, *before: str, after: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*program(), *before, "passwd", user, "--config", str(site), "--data", str(data), *after],
            input="a-new-long-password\n", capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, check=False,
        )  # fmt: skip

    def stored(user: str) -> object:
        store = Store.open(data)
        try:
            encoded = store.password_hash(user)
        finally:
            store.close()
        assert encoded is not None and verify_password("a-new-long-password", encoded)
        return parse_hash(encoded)

    assert passwd("alice", after=("--password-cost", "m=8,t=1,p=1")).returncode == 0
    assert stored("alice") == Argon2Params(time_cost=1, memory_cost=8, parallelism=1)
    assert passwd("bob", "--password-cost", "m=16,t=3,p=2").returncode == 0
    assert stored("bob") == Argon2Params(time_cost=3, memory_cost=16, parallelism=2)
    # After the command wins over before it.
    both = passwd("carol", "--password-cost", "m=16,t=3,p=2", after=("--password-cost", "m=8,t=2,p=1"))
    assert both.returncode == 0, both.stderr
    assert stored("carol") == Argon2Params(time_cost=2, memory_cost=8, parallelism=1)
    assert passwd("dave").returncode == 0
    assert stored("dave") == OWASP
    bad = passwd("erin", after=("--password-cost", "m=8,t=1"))
    assert bad.returncode == 2 and "not an argon2id cost" in bad.stderr


def test_the_demo_site_shows_new_passwords_once(tmp_path: Path) -> None:
    data = tmp_path / "data"

    async def main() -> None:
        async with server_process("--data", str(data), ready=60) as first:
            passwords = dict(re.findall(r"^  (\w+)\s+(\S+)$", "\n".join(first.lines), re.MULTILINE))
            assert set(passwords) == {"alex", "priya", "tom", "lucia", "kenji", "amara", "sven"}
            server: Any = _Port(first.port)
            alex = await RepClient.open(server)
            assert isinstance(await alex.login("alex", passwords["alex"]), Welcome)
            assert {t.id for t in alex.snapshot.teams} == {"network", "accounts", "software", "hardware"}
            first.process.send_signal(signal.SIGINT)
            assert await first.process.wait() == 0
        async with server_process("--data", str(data)) as second:
            assert not any(re.match(r"^  \w+\s+\S+$", line) for line in second.lines)
            assert "passwords were shown at the first start" in second.lines[0]

    run(main(), 90)


def test_one_server_per_data_directory(tmp_path: Path) -> None:
    site, data = write_site(tmp_path), tmp_path / "data"

    async def main() -> None:
        async with server_process("--config", str(site), "--data", str(data)):
            second = await asyncio.create_subprocess_exec(
                *program(), "--port", "0", "--config", str(site), "--data", str(data),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await second.communicate()
            assert second.returncode == 1 and b"another repconsole-server is using" in err

    run(main())



@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl program to make a certificate")
def test_tls_serves_wss(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30 * TIMEOUT_SCALE,
    )  # fmt: skip
    site = write_site(tmp_path)

    async def main() -> None:
        async with server_process("--config", str(site), "--data", str(tmp_path / "data"), "--tls-cert", str(cert), "--tls-key", str(key)) as running:
            assert running.lines[-1] == f"repconsole-server: listening on wss://127.0.0.1:{running.port}"
            server: Any = _Port(running.port)
            trust = ssl.create_default_context(cafile=str(cert))
            alice = await RepClient.open(server, ssl=trust, origin=f"https://127.0.0.1:{running.port}")
            assert isinstance(await alice.login("alice"), Welcome)

    run(main())
    missing_key = subprocess.run(
        [*program(), "--tls-cert", str(cert)], capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE, check=False
    )
    assert missing_key.returncode == 2 and "--tls-cert and --tls-key go together" in missing_key.stderr


def test_password_cost_is_an_argon2id_cost_and_defaults_to_owasps() -> None:
    from repconsole.server.auth import OWASP, Argon2Params
    from repconsole.server.cli import build_parser

    parser = build_parser()
    assert parser.parse_args([]).password_cost == OWASP
    assert parser.parse_args(["--password-cost", "m=8,t=1,p=1"]).password_cost == Argon2Params(time_cost=1, memory_cost=8, parallelism=1)
    for bad in ("m=8,t=1", "m=4,t=1,p=1", "m=8,t=1,p=1,x=2", "cheap"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--password-cost", bad])
