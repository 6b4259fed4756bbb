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
import signal
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import platformdirs
import qasync
from PySide6.QtCore import QLoggingCategory, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from repconsole import __version__
from repconsole.backend import Backend, BackendState, create_backend
from repconsole.backend.websocket import WebSocketBackend
from repconsole.preferences import StartupBackend
from repconsole.settings import Settings
from repconsole.ui.login import EarlyFeed, choose_backend, sign_in
from repconsole.ui.mainwindow import MainWindow

__all__ = ["build_window", "create_console_backend", "default_settings_dir", "keep_signed_in", "run"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def default_settings_dir() -> Path:
    """Where the console keeps its settings: the platform's config directory."""
    return Path(platformdirs.user_config_dir("repconsole", appauthor=False))


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
    """The backend the command line asks for: the server with ``--server``, else the simulator.

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


def _wants_login(args: argparse.Namespace, settings: Settings) -> bool:
    """Open the login dialog (simulator or server) first: ``--login``, or no server given and the preferences say server."""
    if getattr(args, "login", False):
        return True
    return not getattr(args, "server", None) and settings.preferences.startup.backend is StartupBackend.SERVER


async def _choose(args: argparse.Namespace, settings: Settings, closed: asyncio.Event, early: EarlyFeed) -> Backend | None:
    """The login dialog with the simulator as a choice; the backend chosen, or None."""

    def simulator() -> Backend:
        return create_backend("simulator", population=args.population, rate=args.rate, seed=args.seed)

    def opened(dialog: QWidget) -> None:
        print("repconsole: sign-in dialog shown", file=sys.stderr, flush=True)

    url, user = getattr(args, "server", None) or "", getattr(args, "user", None) or ""
    return await _unless_closed(choose_backend(settings, simulator, url=url, username=user, early=early, opened=opened), closed, None)


def run(args: argparse.Namespace) -> int:
    """Run the console until its window closes.  Returns the exit code."""
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # QtMultimedia (alert sounds) names each optional library it does not find (PipeWire, VA-API):
    # noise about the machine in the rep's terminal and log, not a problem of the console.
    QLoggingCategory.setFilterRules("qt.multimedia.symbolsresolver.warning=false")
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("repconsole")
    app.setApplicationDisplayName("repconsole")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("repconsole")
    app.setDesktopFileName("io.github.repconsole.RepConsole")
    # The window's close runs an async shutdown (settings, backend); Qt must
    # not stop the loop underneath it when the last window closes.
    app.setQuitOnLastWindowClosed(False)

    settings, warning = Settings.load(args.settings_dir if args.settings_dir is not None else default_settings_dir())
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    early = EarlyFeed()
    if _wants_login(args, settings):
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
        if isinstance(backend, WebSocketBackend) and not backend.username and backend.url == startup.server_url:
            backend.username = startup.user  # the last user on this server
    window = MainWindow(backend, settings, settings_warning=warning)
    early.hand_over(window.deliver)
    window.closed.connect(closed.set)

    def _first_paint() -> None:
        print(f"repconsole: window shown ({(time.perf_counter() - started) * 1000:.0f} ms)", file=sys.stderr, flush=True)

    window.firstQueuePainted.connect(_first_paint)
    # Ctrl+C in the terminal closes the window like the close button does.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), window.quit_guard.close_now)

    async def main() -> None:
        # Sign in first (unless the login dialog did): the window opens live, on the rep's snapshot.
        if isinstance(backend, WebSocketBackend) and backend.rep is None and not await _first_sign_in(backend, closed, settings):
            await window.shutdown()
            return
        if isinstance(backend, WebSocketBackend):
            keep_signed_in(window, backend)
        window.show()
        await window.start()
        # Everything built so far (the site, a snapshot of up to 100,000
        # sessions, Qt wrappers) lives for the whole shift: keep it out of
        # every future full garbage collection.
        gc.freeze()
        await closed.wait()
        await window.shutdown()

    with loop:
        loop.run_until_complete(main())
    return 0
