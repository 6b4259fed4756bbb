"""Command line of ``repconsole-server``.

    repconsole-server [--host H] [--port P] [--config FILE] [--data DIR]
                      [--tls-cert PEM --tls-key PEM] [--log-level LEVEL]
    repconsole-server passwd USERNAME [--config FILE] [--data DIR]

Serving prints ``repconsole-server: listening on ws://HOST:PORT`` once the
port is open (with ``--port 0``, the port the system chose), after the demo
site's new passwords if this start generated them.  A configuration error
is printed as ``FILE:LINE: KEY: what is wrong`` and the server exits with
status 2 without listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import platformdirs

from repconsole import __version__
from repconsole.collector import FreezePolicy
from repconsole.server.auth import hash_password
from repconsole.server.config import ConfigError, SiteSpec, demo_site, load_config
from repconsole.server.store import Store, StoreError

__all__ = ["build_parser", "main"]

PROG = "repconsole-server"
MIN_PASSWORD = 8
EXIT_CONFIG = 2


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {value}")
    return value


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("repconsole"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The repconsole queue server: the queue engine behind WebSocket, for rep consoles "
        "(/rep) and customer pages (/customer). With no --config it serves a demo site.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8765, help="port to listen on (default 8765; 0: any free port)")
    parser.add_argument("--config", type=Path, metavar="FILE", help="site configuration (TOML; see docs/site.example.toml)")
    parser.add_argument("--data", type=Path, metavar="DIR", help=f"data directory (default {default_data_dir()})")
    parser.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve wss:// with this certificate chain")
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's private key")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log verbosity (default info)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    passwd = commands.add_parser(
        "passwd",
        help="set a rep's password",
        description="Set a rep's password: read from standard input (one line), or asked twice on a terminal. "
        "It is stored hashed (scrypt) in the data directory and takes effect at the next login.",
    )
    passwd.add_argument("username", help="the rep's id")
    passwd.add_argument("--config", dest="passwd_config", type=Path, metavar="FILE", help="site configuration")
    passwd.add_argument("--data", dest="passwd_data", type=Path, metavar="DIR", help="data directory")
    return parser


def _spec(config: Path | None) -> SiteSpec:
    return load_config(config) if config is not None else demo_site()


def _read_password(stdin: TextIO) -> str:
    if stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the passwords do not match")
        return first
    return stdin.readline().rstrip("\r\n")


def _passwd(args: argparse.Namespace) -> int:
    try:
        spec = _spec(args.passwd_config or args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if spec.rep(args.username) is None:
        known = ", ".join(r.id for r in spec.reps)
        print(f"{PROG}: no rep {args.username!r} on this site (reps: {known})", file=sys.stderr)
        return 1
    try:
        password = _read_password(sys.stdin)
    except (ValueError, EOFError, KeyboardInterrupt) as exc:
        print(f"{PROG}: {exc or 'no password given'}", file=sys.stderr)
        return 1
    if len(password) < MIN_PASSWORD:
        print(f"{PROG}: a password needs at least {MIN_PASSWORD} characters", file=sys.stderr)
        return 1
    data = args.passwd_data or args.data or default_data_dir()
    try:
        store = Store.open(data)
        store.set_password_hash(args.username, hash_password(password))
        store.close()
    except (StoreError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(f"{PROG}: password of {args.username} stored in {data}")
    return 0


class DataDirBusy(Exception):
    """Another server holds the data directory."""


@contextlib.contextmanager
def _locked(data: Path) -> Iterator[None]:
    """One server per data directory: two engines on one database would diverge."""
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = open(data / "server.lock", "a+")  # noqa: SIM115 - held for the server's life
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; SQLite still keeps the file sane
            yield
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DataDirBusy(f"another {PROG} is using {data}") from None
        yield
    finally:
        lock.close()


async def _serve(spec: SiteSpec, args: argparse.Namespace, data: Path) -> int:
    from repconsole.server.app import Server, tls_context

    loop = asyncio.get_running_loop()
    ssl_context = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    server = Server(spec, data, host=args.host, port=args.port, ssl_context=ssl_context)
    try:
        await server.start()
    except (OSError, StoreError) as exc:
        print(f"{PROG}: cannot start: {exc}", file=sys.stderr)
        await server.stop()
        return 1
    if server.new_passwords:
        print(f"{PROG}: demo site; new passwords, shown only this once (stored hashed in {data}):")
        width = max(len(rep) for rep in server.new_passwords)
        for rep, password in server.new_passwords.items():
            print(f"  {rep:<{width}}  {password}")
    elif spec.demo:
        print(f"{PROG}: demo site; reps: {', '.join(r.id for r in spec.reps)} (passwords were shown at the first start)")
    # The site, the restored sessions and, later, every connected console
    # live long: keep them out of full garbage collections, which would
    # otherwise stall every console's feed for a few hundred ms under load.
    collector = FreezePolicy(now=loop.time())
    collector.start()
    freezing = asyncio.ensure_future(_freeze_now_and_then(collector))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"{PROG}: listening on {server.scheme}://{host}:{server.port}", flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, AttributeError):
            loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    closed = asyncio.ensure_future(server.wait_closed())
    await asyncio.wait([stopping, closed], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    freezing.cancel()
    await server.stop()
    closed.cancel()
    if server.failed is not None:
        print(f"{PROG}: stopped: {server.failed}", file=sys.stderr)
        return 1
    return 0


async def _freeze_now_and_then(policy: FreezePolicy) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(policy.freeze_every)
        policy.tick(loop.time())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":
        # One line per handshake is noise at info level.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    if args.command == "passwd":
        return _passwd(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        print(f"{PROG}: --tls-cert and --tls-key go together", file=sys.stderr)
        return EXIT_CONFIG
    try:
        spec = _spec(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    data = args.data or default_data_dir()
    try:
        with _locked(data):
            return asyncio.run(_serve(spec, args, data))
    except DataDirBusy as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
