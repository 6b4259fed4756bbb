"""Command line of ``repconsole-server``.

    repconsole-server [--host H] [--port P] [--config FILE] [--data DIR]
                      [--tls-cert PEM --tls-key PEM] [--log-level LEVEL]
    repconsole-server passwd USERNAME [--config FILE] [--data DIR] [--password-cost m=KIB,t=N,p=N]
    repconsole-server link create (--team T | --rep R) [--issue CODE] [--name NAME]
                                  [--lifetime 7d] [--origin URL ...] [--public-url URL]
    repconsole-server link list
    repconsole-server link revoke ID
    repconsole-server check-config [FILE]
    repconsole-server backup DEST [--data DIR]

``link create`` prints the snippet to paste into a web page (one line) and
the plain address of a page that starts a session with the link; the
``link`` commands take ``--config`` and ``--data`` like ``passwd``, and work
while the server runs (it reads a link from the data directory each time a
customer uses it).

Serving prints ``repconsole-server: listening on ws://HOST:PORT`` once the
port is open (with ``--port 0``, the port the system chose), after the demo
site's new passwords if this start generated them.  A configuration error
is printed as ``FILE:LINE: KEY: what is wrong`` and the server exits with
status 2 without listening.  ``check-config`` reads a configuration the same
way without serving it: its problems and status 1, or a one-line summary and 0.

While serving, SIGHUP reads the configuration again and applies what can
change live (:mod:`repconsole.server.reload`); a configuration with a mistake,
or one that needs a restart, is refused in the log and the old one is kept.
Under systemd (``Type=notify``) the server says READY=1 once it listens,
RELOADING=1 and READY=1 around a reload, and STOPPING=1.

``backup`` copies the database while the server runs (docs/operations.md
has the restore).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import platformdirs

from repconsole import __version__
from repconsole.collector import FreezePolicy
from repconsole.core.model import QueueRef
from repconsole.server.auth import OWASP, Argon2Params, hash_password
from repconsole.server.config import ConfigError, SiteSpec, demo_site, load_config, parse_origin, parse_public_url
from repconsole.server.links import link_state, new_link_id, new_row, parse_lifetime, snippet, support_url
from repconsole.server.ops import JsonFormatter, backup, monotonic_usec, sd_notify
from repconsole.server.reload import ReloadRefused, config_digest
from repconsole.server.store import Store, StoreError

if TYPE_CHECKING:
    from repconsole.server.app import Server

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)

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


def _argon2_cost(text: str) -> Argon2Params:
    """``m=KIB,t=PASSES,p=LANES``, as in an argon2id hash's own parameters."""
    try:
        fields = dict(part.split("=", 1) for part in text.split(","))
        params = Argon2Params(time_cost=int(fields.pop("t")), memory_cost=int(fields.pop("m")), parallelism=int(fields.pop("p")))
        if fields:
            raise ValueError(f"unknown {', '.join(fields)}")
        params.validate()
    except (ValueError, KeyError) as exc:
        raise argparse.ArgumentTypeError(f"not an argon2id cost m=KIB,t=PASSES,p=LANES: {text!r} ({exc})") from None
    return params


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
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"],
        help="text lines (default), or JSON lines: time, level, logger, message and exception",
    )  # fmt: skip
    parser.add_argument(
        "--password-cost", type=_argon2_cost, default=OWASP, metavar="m=KIB,t=N,p=N",
        help="the argon2id cost of the password hashes this server makes, and re-hashes others to at their next "
        f"login (default OWASP's, m={OWASP.memory_cost},t={OWASP.time_cost},p={OWASP.parallelism}); lower it only for "
        "benchmarks and tests, whose hashes are made at the same cost",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    passwd = commands.add_parser(
        "passwd",
        help="set a rep's password",
        description="Set a rep's password: read from standard input (one line), or asked twice on a terminal. "
        "It is stored hashed (argon2id) in the data directory and takes effect at the next login.",
    )
    passwd.add_argument("username", help="the rep's id")
    passwd.add_argument("--config", dest="passwd_config", type=Path, metavar="FILE", help="site configuration")
    passwd.add_argument("--data", dest="passwd_data", type=Path, metavar="DIR", help="data directory")
    passwd.add_argument(
        "--password-cost", dest="passwd_cost", type=_argon2_cost, metavar="m=KIB,t=N,p=N",
        help="the argon2id cost of the hash (default: the server's --password-cost, given before the command, "
        "else OWASP's); a server whose own cost differs re-hashes the password to it at the rep's next login",
    )  # fmt: skip
    _link_parser(commands)
    check = commands.add_parser(
        "check-config",
        help="check a site configuration without serving it",
        description="Read and check a site configuration as the server would. Prints every problem as "
        "FILE:LINE: KEY: what is wrong and exits with status 1, or a one-line summary and status 0.",
    )
    check.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the configuration (default: --config)")
    save = commands.add_parser(
        "backup",
        help="copy the database, even while the server runs",
        description="Copy the server's database to DEST, consistently, while the server runs (SQLite's online "
        "backup). DEST is a new file, or a directory to put a dated file in. docs/operations.md tells how to restore.",
    )
    save.add_argument("dest", type=Path, metavar="DEST", help="a new file, or a directory")
    save.add_argument("--data", dest="backup_data", type=Path, metavar="DIR", help="data directory")
    return parser


def _link_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    link = commands.add_parser(
        "link",
        help="make, list and revoke browser-sharing links",
        description="Browser-sharing links route the customers of a web page to a rep or a team. "
        "They are kept in the data directory and take effect at once, even while the server runs.",
    )
    actions = link.add_subparsers(dest="link_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", dest="link_config", type=Path, metavar="FILE", help="site configuration")
    common.add_argument("--data", dest="link_data", type=Path, metavar="DIR", help="data directory")
    create = actions.add_parser(
        "create",
        parents=[common],
        help="make a link; prints its snippet and its address",
        description="Make a link. Prints the one-line snippet to paste into a web page, then the plain address "
        "of a support page that starts a session with the link.",
    )
    target = create.add_mutually_exclusive_group(required=True)
    target.add_argument("--team", metavar="T", help="its sessions go to this team's queue")
    target.add_argument("--rep", metavar="R", help="its sessions go to this rep's personal queue")
    create.add_argument("--issue", metavar="CODE", help="the issue that labels its sessions (default: the customer may pick one)")
    create.add_argument("--name", help="what the customer and the reps see it as (default: from its target)")
    create.add_argument("--lifetime", default="never", help="how long it starts sessions: 7d, 12h, 30m, 90s, or never (default)")
    create.add_argument(
        "--origin", dest="origins", action="append", default=[], metavar="URL",
        help="a web page origin (https://shop.example) that may use it, besides the server's own; repeat for more",
    )  # fmt: skip
    create.add_argument("--public-url", metavar="URL", help="the server's address for browsers (default: [server] public_url)")
    actions.add_parser("list", parents=[common], help="list the links", description="List every link: made here, and the configuration's.")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a link", description="Revoke a link: it starts no more sessions.")
    revoke.add_argument("id", help="the link's id")


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
    # The cost given after the command, else the one given before it (the server's option), else OWASP's.
    cost = args.passwd_cost or args.password_cost
    if spec.cluster.redis_url is not None:  # the organisation's hash, in Redis: every process (cluster/passwords.py)
        from repconsole.server.cluster.keys import OrgKeys
        from repconsole.server.cluster.passwords import set_hash

        try:
            set_hash(spec.cluster.redis_url, OrgKeys.of(spec.cluster.organisation), args.username, hash_password(password, cost))
        except Exception as exc:  # redis.RedisError: redis is imported only under cluster/
            print(f"{PROG}: cannot store the password in Redis: {exc}", file=sys.stderr)
            return 1
        print(f"{PROG}: password of {args.username} stored for organisation {spec.cluster.organisation} (every process)")
        return 0
    data = args.passwd_data or args.data or default_data_dir()
    try:
        store = Store.open(data)
        store.set_password_hash(args.username, hash_password(password, cost))
        store.close()
    except (StoreError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(f"{PROG}: password of {args.username} stored in {data}")
    return 0


def _link(args: argparse.Namespace) -> int:
    try:
        spec = _spec(args.link_config or args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    data = args.link_data or args.data or default_data_dir()
    try:
        store = Store.open(data)
    except (StoreError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.link_command == "create":
            return _link_create(args, spec, store)
        if args.link_command == "list":
            return _link_list(spec, store)
        return _link_revoke(args, spec, store)
    except StoreError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _link_create(args: argparse.Namespace, spec: SiteSpec, store: Store) -> int:
    problems: list[str] = []
    if args.team is not None:
        team = next((t for t in spec.teams if t.id == args.team), None)
        if team is None:
            problems.append(f"no team {args.team!r} on this site (teams: {', '.join(t.id for t in spec.teams)})")
        target, default_name = QueueRef.team(args.team), f"Help from {team.name if team else args.team}"
    else:
        rep = spec.rep(args.rep)
        if rep is None:
            problems.append(f"no rep {args.rep!r} on this site (reps: {', '.join(r.id for r in spec.reps)})")
        target, default_name = QueueRef.personal(args.rep), f"Help from {rep.name if rep else args.rep}"
    if args.issue is not None and all(i.code != args.issue for i in spec.issues):
        problems.append(f"no issue {args.issue!r} on this site (issues: {', '.join(i.code for i in spec.issues) or 'none'})")
    origins: list[str] = []
    for text in args.origins:
        try:
            origins.append(parse_origin(text))
        except ValueError as exc:
            problems.append(f"--origin: {exc}")
    try:
        lifetime = parse_lifetime(args.lifetime)
    except ValueError as exc:
        problems.append(f"--lifetime: {exc}")
    try:
        base = parse_public_url(args.public_url) if args.public_url else spec.server.public_url
    except ValueError as exc:
        problems.append(f"--public-url: {exc}")
    name = (args.name or default_name).strip()
    if not name or len(name) > 100:
        problems.append("--name: 1 to 100 characters")
    if problems:
        for problem in problems:
            print(f"{PROG}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if base is None:
        base = f"http://{args.host}:{args.port}"
        print(f"{PROG}: no [server] public_url: the snippet uses {base}; set public_url or pass --public-url", file=sys.stderr)
    link_id = new_link_id()
    row = new_row(link_id, name, target, issue=args.issue, origins=tuple(origins), lifetime=lifetime)
    store.add_link(row)
    expires = f", until {_when(row.expires_at)}" if row.expires_at is not None else ""
    print(f"{PROG}: link {link_id} ({name}) sends its customers to {target}{expires}", file=sys.stderr)
    print(snippet(base, link_id))
    print(support_url(base, link_id))
    return 0


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _link_list(spec: SiteSpec, store: Store) -> int:
    now = time.time()
    rows = [
        (r.id, link_state(r.revoked_at is not None, r.expires_at, now), r.target, r.issue or "-",
         _when(r.expires_at) if r.expires_at is not None else "never", " ".join(r.origins) or "-", r.name)
        for r in store.links()
    ] + [
        (k.id, "config", str(k.target), k.issue or "-", _when(k.expires_at) if k.expires_at is not None else "never",
         " ".join(k.origins) or "-", k.name)
        for k in spec.links
    ]  # fmt: skip
    header = ("ID", "STATE", "TARGET", "ISSUE", "EXPIRES", "ORIGINS", "NAME")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _link_revoke(args: argparse.Namespace, spec: SiteSpec, store: Store) -> int:
    if any(k.id == args.id for k in spec.links):
        print(f"{PROG}: link {args.id} is in the configuration file: remove it there and restart the server", file=sys.stderr)
        return 1
    if not store.revoke_link(args.id, time.time()):
        print(f"{PROG}: no link {args.id!r}", file=sys.stderr)
        return 1
    print(f"{PROG}: link {args.id} revoked: it starts no more sessions")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    path = args.file or args.config
    if path is None:
        print(f"{PROG}: check-config: which file? (check-config FILE, or --config FILE)", file=sys.stderr)
        return 1
    try:
        spec = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        count = len(exc.problems)
        print(f"{PROG}: {path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    admin = spec.admin.listen or ("token on the main port" if spec.admin.metrics_token else "none")
    # In a cluster every process must run the same configuration: the digest tells (the reload's log lines name it).
    cluster = f"; cluster {spec.cluster.organisation}, digest {config_digest(spec)[:12]}" if spec.cluster.redis_url else ""
    print(
        f"{path}: ok: {len(spec.teams)} teams, {len(spec.reps)} reps, {len(spec.issues)} issues, "
        f"{len(spec.buttons)} buttons, {len(spec.links)} links; metrics: {admin}{cluster}"
    )
    return 0


def _backup(args: argparse.Namespace) -> int:
    data = args.backup_data or args.data or default_data_dir()
    try:
        dest = backup(data, args.dest)
    except (OSError, sqlite3.Error) as exc:
        print(f"{PROG}: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"{PROG}: {data} backed up to {dest}")
    return 0


def _reload(server: Server, path: Path | None) -> None:
    """SIGHUP: the configuration again, applied if it can be; else the old one stays."""
    if path is None:
        log.warning("reload: the demo site has no configuration file to read again")
        return
    sd_notify("RELOADING=1", monotonic_usec())
    ready = True  # READY=1 at the end (a cluster's reload: when its round is over)
    try:
        try:
            spec = load_config(path)
        except ConfigError as exc:
            log.error("reload refused, the running configuration is kept: %s has %d problem(s)", path, len(exc.problems))
            for problem in exc.problems:
                log.error("reload refused: %s", problem)
            return
        if server.cluster is not None:  # the organisation's reload, through its leader (cluster/reconfig.py)
            log.info("reload: asking the organisation's leader to reload every process")
            server.cluster.reloads.start(spec).add_done_callback(lambda _: sd_notify("READY=1"))
            ready = False
            return
        try:
            change = server.reload(spec)
        except ReloadRefused as exc:
            log.error("reload refused, the running configuration is kept: %s", path)
            for reason in exc.reasons:
                log.error("reload refused: %s", reason)
            return
        for note in change.notes:
            log.warning("reload: %s", note)
        log.info(
            "reloaded %s: %s%s", path, ", ".join(change.changes) or "no change",
            " (consoles re-sync)" if change.directory else "",
        )  # fmt: skip
    except Exception:
        log.exception("reload failed")
    finally:
        if ready:
            sd_notify("READY=1")


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
    server = Server(spec, data, host=args.host, port=args.port, ssl_context=ssl_context, hash_params=args.password_cost)
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
    sd_notify("READY=1", f"STATUS=listening on {server.scheme}://{host}:{server.port}")

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, AttributeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, _reload, server, args.config)
    stopping = asyncio.ensure_future(stop.wait())
    closed = asyncio.ensure_future(server.wait_closed())
    await asyncio.wait([stopping, closed], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    freezing.cancel()
    sd_notify("STOPPING=1")
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
    handler = logging.StreamHandler()
    if args.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    if args.log_level != "debug":
        # One line per handshake is noise at info level.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    if args.command == "passwd":
        return _passwd(args)
    if args.command == "link":
        return _link(args)
    if args.command == "check-config":
        return _check_config(args)
    if args.command == "backup":
        return _backup(args)
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
