"""Start the console: the Qt application, the asyncio loop and the window.

The public Python API is :func:`build_window`: it builds the console window
over a given backend and settings directory, which is what tests and
embedders use.  :func:`run` is what the ``repconsole`` command calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import qasync
from PySide6.QtCore import QLoggingCategory, QTimer
from PySide6.QtWidgets import QWidget

from repconsole import __version__
from repconsole.backend import Backend, BackendState, create_backend
from repconsole.logfile import setup_logging
from repconsole.preferences import StartupBackend
from repconsole.settings import Settings
from repconsole.ui import theme
from repconsole.ui.instance import bring_to_front
from repconsole.ui.loading import LoopWatch
from repconsole.ui.mainwindow import MainWindow
from repconsole.ui.serverswitch import ServerSwitch
from repconsole.ui.startwindow import FirstPaint, Start, already_running, begin, default_settings_dir, wants_start_window

if TYPE_CHECKING:
    # The server's client (the websockets library) and the sign-in dialog
    # load only when signing in: the simulator's start does not pay for them.
    from repconsole.backend.websocket import WebSocketBackend
    from repconsole.ui.login import EarlyFeed

__all__ = ["already_running", "build_window", "create_console_backend", "default_settings_dir", "keep_signed_in", "run"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def build_window(backend: Backend, settings_dir: Path | str | None = None) -> MainWindow:
    """Build the console window over ``backend``, with settings in ``settings_dir``.

    A QApplication must exist.  The window is not shown and the backend is
    not started: call ``window.show()`` and ``await window.start()`` (or
    ``window.start_soon()``) from a running qasync loop.
    """
    directory = Path(settings_dir) if settings_dir is not None else default_settings_dir()
    settings, warning = Settings.load(directory)
    return MainWindow(backend, settings, settings_warning=warning)


def create_console_backend(args: argparse.Namespace) -> Backend:
    """The backend the command line asks for: the server(s) with ``--server``, else the simulator.

    Raises ValueError on a bad option.
    """
    if getattr(args, "server", None):
        return create_backend("server", url=args.server, username=getattr(args, "user", None) or "")
    return create_backend("simulator", population=args.population, rate=args.rate, seed=args.seed)


def keep_signed_in(window: MainWindow, backend: WebSocketBackend) -> None:
    """When the server ends the login session (4000/4401), ask the rep to sign in again.

    The sign-in dialog opens over the window with the reason; a successful
    sign-in delivers a fresh snapshot into the same window.  Cancelling it
    closes the console.
    """
    from repconsole.ui.login import sign_in

    signing: list[asyncio.Task[None]] = []
    async def sign_in_again(detail: str) -> None:
        message = f"{detail} Sign in again to continue." if detail else "Sign in again to continue."
        if not await sign_in(backend, window, message=message):
            window.quit_guard.close_now()

    def on_state(state: BackendState, detail: str) -> None:
        if state is not BackendState.CLOSED or not backend.needs_login or not window.isVisible():
            return
        if any(not task.done() for task in signing):
            return  # the dialog is already open (a failed attempt closes the state again)
        signing[:] = [asyncio.ensure_future(sign_in_again(detail))]

    backend.add_state_listener(on_state)


async def _first_sign_in(backend: WebSocketBackend, closed: asyncio.Event, settings: Settings) -> bool:
    """The login dialog before the window shows; False if the rep cancelled or the console closed."""
    from repconsole.ui.login import sign_in

    return await _unless_closed(sign_in(backend, settings=settings), closed, False)


async def _unless_closed(work: Awaitable[_T], closed: asyncio.Event, otherwise: _T) -> _T:
    """``work``'s result, or ``otherwise`` (and ``work`` cancelled) if the console closes first."""
    doing = asyncio.ensure_future(work)
    closing = asyncio.ensure_future(closed.wait())
    done, _ = await asyncio.wait({doing, closing}, return_when=asyncio.FIRST_COMPLETED)
    if doing in done:
        closing.cancel()
        return doing.result()
    doing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await doing
    return otherwise


def _servers_text(servers: str | Sequence[str] | None) -> str:
    """The server addresses as one line (``"ws://a:8765, ws://b:8765"``), as the dialog and the preferences keep them."""
    from repconsole.backend.endpoints import format_servers, parse_servers

    try:
        return format_servers(parse_servers(servers or ""))
    except ValueError:
        return servers if isinstance(servers, str) else ""


def _wants_login(args: argparse.Namespace, settings: Settings) -> bool:
    """Open the login dialog (simulator or server) first: ``--login``, or no server given and the preferences say server."""
    if getattr(args, "login", False):
        return True
    return not getattr(args, "server", None) and settings.preferences.startup.backend is StartupBackend.SERVER


async def _choose(args: argparse.Namespace, settings: Settings, closed: asyncio.Event, early: EarlyFeed) -> Backend | None:
    """The login dialog with the simulator as a choice; the backend chosen, or None."""
    from repconsole.ui.login import choose_backend

    def simulator() -> Backend:
        return create_backend("simulator", population=args.population, rate=args.rate, seed=args.seed)

    def opened(dialog: QWidget) -> None:
        print("repconsole: sign-in dialog shown", file=sys.stderr, flush=True)

    url, user = _servers_text(getattr(args, "server", None)), getattr(args, "user", None) or ""
    return await _unless_closed(choose_backend(settings, simulator, url=url, username=user, early=early, opened=opened), closed, None)


def run(args: argparse.Namespace, start: Start | None = None) -> int:
    """Run the console until its window closes.  Returns the exit code.

    ``start`` is what :func:`repconsole.ui.startwindow.begin` prepared (the
    command line calls it before importing this module, so the start window
    paints before the console's modules load); without it, it is done here.
    """
    if start is None:
        settings_dir = Path(args.settings_dir) if args.settings_dir is not None else default_settings_dir()
        start = begin(settings_dir, show_window=wants_start_window(args, settings_dir))
        if start is None:
            print(already_running(settings_dir), file=sys.stderr)
            return 0
    started, app, instance, settings_dir = start.started, start.app, start.instance, start.settings_dir
    log_path = setup_logging()
    log.info("repconsole %s starting (settings %s, log %s)", __version__, settings_dir, log_path)
    # QtMultimedia (alert sounds) names each optional library it does not find (PipeWire, VA-API):
    # noise about the machine in the rep's terminal and log, not a problem of the console.
    QLoggingCategory.setFilterRules("qt.multimedia.symbolsresolver.warning=false")
    app.setApplicationVersion(__version__)

    settings, warning = Settings.load(settings_dir)
    theme.follow(lambda: settings.preferences.appearance.theme)  # the sign-in dialog is light or dark too
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    early: EarlyFeed | None = None
    if _wants_login(args, settings):
        from repconsole.ui.login import EarlyFeed

        if start.window is not None:  # the login dialog is the first window after all
            start.window.close()
            start.window = None
        early = EarlyFeed()
        # The desktop entry: sign in to a server, or pick the simulator, before any window.
        signal.signal(signal.SIGINT, lambda *_: closed.set())
        if args.quit_after is not None:
            QTimer.singleShot(int(args.quit_after * 1000), closed.set)
        chosen = loop.run_until_complete(_choose(args, settings, closed, early))
        if chosen is None:
            loop.close()
            return 0
        backend = chosen
    else:
        try:
            backend = create_console_backend(args)
        except ValueError as exc:
            loop.close()
            print(f"repconsole: {exc}", file=sys.stderr)
            return 2
        startup = settings.preferences.startup
        server = cast("WebSocketBackend", backend) if backend.kind == "server" else None
        if server is not None and not server.username and _servers_text(server.servers.urls) == _servers_text(startup.server_url):
            server.username = startup.user  # the last user on this server
    window = MainWindow(backend, settings, settings_warning=warning)
    if early is not None:
        early.hand_over(window.deliver)
    window.closed.connect(closed.set)
    instance.raiseRequested.connect(lambda: bring_to_front(window))

    # How long the loop stood still at most while the queue filled (the start-up benchmark asks).
    watch = LoopWatch(window) if os.environ.get("REPCONSOLE_LOOP_WATCH") else None
    filled: list[bool] = []

    # The start-up benchmark and the real-window test read these lines.
    def _window_painted() -> None:
        if watch is not None and not filled:
            watch.start()
        ms = (time.perf_counter() - started) * 1000
        if start.first_frame_ms is None:
            print(f"repconsole: first frame ({ms:.0f} ms)", file=sys.stderr, flush=True)
        print(f"repconsole: console window painted ({ms:.0f} ms)", file=sys.stderr, flush=True)
        if start.window is not None:
            # The console's window is there: the start window has done its job.
            start.window.close()
            start.window.deleteLater()
            start.window = None

    def _first_paint() -> None:
        # The queue painted complete (after a big start's last slice).
        filled.append(True)
        print(f"repconsole: window shown ({(time.perf_counter() - started) * 1000:.0f} ms)", file=sys.stderr, flush=True)
        if watch is not None:
            print(f"repconsole: longest frozen frame while filling ({watch.stop() * 1000:.0f} ms)", file=sys.stderr, flush=True)

    first_frame = FirstPaint(window)
    first_frame.painted.connect(_window_painted)
    window.firstQueuePainted.connect(_first_paint)
    # Ctrl+C in the terminal closes the window like the close button does.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), window.quit_guard.close_now)

    async def main() -> None:
        if backend.kind == "server":
            server = cast("WebSocketBackend", backend)
            # Sign in first (unless the login dialog did): the window opens live, on the rep's snapshot.
            if server.rep is None and not await _first_sign_in(server, closed, settings):
                await window.shutdown()
                return
            keep_signed_in(window, server)
            ServerSwitch(window, server)  # a site with several servers: say when the console moves
        window.show()
        await window.start()
        # Everything built so far (the site, a snapshot of up to 100,000
        # sessions, Qt wrappers) lives for the whole shift: keep it out of
        # every future full garbage collection.
        gc.freeze()
        await closed.wait()
        await window.shutdown()
        instance.release()  # while the loop still runs: its socket notifier goes with it

    try:
        with loop:
            loop.run_until_complete(main())
    finally:
        instance.release()
        log.info("repconsole stopped")
    return 0
