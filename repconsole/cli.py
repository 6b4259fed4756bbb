"""Command line of the ``repconsole`` console.

This module is Qt-free on purpose: ``--help`` and ``--version`` answer
without loading Qt, and argument errors are reported before any window
exists.  The window itself lives in :mod:`repconsole.ui.app`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from repconsole import __version__


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _server_urls(text: str) -> list[str]:
    """Queue server addresses, ``ws://HOST:PORT`` or ``wss://HOST:PORT``, separated by commas."""
    for item in filter(None, (i.strip() for i in text.split(","))):
        parts = urlsplit(item)
        if parts.scheme not in ("ws", "wss"):
            raise argparse.ArgumentTypeError(f"must be a ws:// or wss:// URL, e.g. ws://localhost:8765 (got {item!r})")
        try:
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad port in {item!r}") from None
        if not parts.hostname:
            raise argparse.ArgumentTypeError(f"no host in {item!r}; use ws://HOST:PORT")
    # Qt-free, like this module: the backend's own check (which also drops repeats).
    from repconsole.backend.endpoints import parse_servers

    try:
        return parse_servers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repconsole",
        description="Representative console for live remote-support teams. "
        "With no --server it runs on the built-in simulator (or, if the preferences say a server, asks to sign in).",
    )
    parser.add_argument("--version", action="version", version=f"repconsole {__version__}")
    sim = parser.add_argument_group("simulator (the default backend)")
    sim.add_argument(
        "--population",
        type=_count,
        default=40,
        metavar="N",
        help="customers already waiting when the console opens (default 40; try 100000)",
    )
    sim.add_argument(
        "--rate",
        type=_positive_float,
        default=0.5,
        metavar="PER_SECOND",
        help="new customer arrivals per second (default 0.5; 0 stops arrivals)",
    )
    sim.add_argument("--seed", type=int, default=None, help="seed the simulated world")
    server = parser.add_argument_group("queue server")
    server.add_argument(
        "--server",
        type=_server_urls,
        action="extend",
        default=None,
        metavar="URL",
        help="sign in to a queue server (ws://HOST:PORT or wss://HOST:PORT) instead of running the simulator; "
        "a site with several server processes: give each (--server again, or separated by commas), "
        "and the console moves to another when the one it is on stops answering",
    )
    server.add_argument("--user", default=None, metavar="NAME", help="the username to prefill in the sign-in dialog")
    parser.add_argument(
        "--login",
        action="store_true",
        help="open the sign-in dialog first, with the simulator as a choice (what the desktop entry does); "
        "it remembers the last server and user",
    )
    parser.add_argument(
        "--settings-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the console keeps its settings (default: the platform config directory)",
    )
    parser.add_argument(
        "--quit-after",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="close the console after this many seconds (smoke tests, packaging checks)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.user is not None and args.server is None:
        parser.error("--user needs --server")
    # Before Qt: a missing xcb library makes Qt abort the process with a
    # message that names the wrong package; say which ones to install.
    from repconsole import syslibs

    problem = syslibs.check()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    # Imported late so that --help/--version and argument errors never load Qt.
    if importlib.util.find_spec("PySide6") is None:
        print('repconsole: the console needs Qt: pip install "repconsole[console]"', file=sys.stderr)
        return 2
    # First only Qt: the start window paints (or a second launch stops)
    # before the console's own modules load.
    from repconsole.ui.startwindow import already_running, begin, default_settings_dir, wants_start_window

    settings_dir = args.settings_dir if args.settings_dir is not None else default_settings_dir()
    start = begin(settings_dir, show_window=wants_start_window(args, settings_dir))
    if start is None:
        print(already_running(settings_dir), file=sys.stderr)
        return 0
    from repconsole.ui.app import run

    return run(args, start)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
