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
from pathlib import Path
from typing import TYPE_CHECKING, cast

import qasync
from PySide6.QtCore import QTimer

from repconsole import __version__
from repconsole.backend import Backend, BackendState, create_backend
from repconsole.logfile import setup_logging
from repconsole.settings import Settings
from repconsole.ui.instance import bring_to_front
from repconsole.ui.mainwindow import MainWindow
from repconsole.ui.startwindow import FirstPaint, Start, already_running, begin, default_settings_dir

if TYPE_CHECKING:
    # The server's client (the websockets library) and the sign-in dialog
    # load only for --server: the simulator's start does not pay for them.
    from repconsole.backend.websocket import WebSocketBackend

__all__ = ["already_running", "build_window", "create_console_backend", "default_settings_dir", "keep_signed_in", "run"]

log = logging.getLogger(__name__)


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

    from repconsole.ui.login import sign_in

    async def sign_in_again(detail: str) -> None:
        message = f"{detail} Sign in again to continue." if detail else "Sign in again to continue."
        if not await sign_in(backend, window, message=message):
            window.close()

    def on_state(state: BackendState, detail: str) -> None:
        if state is not BackendState.CLOSED or not backend.needs_login or not window.isVisible():
            return
        if any(not task.done() for task in signing):
            return  # the dialog is already open (a failed attempt closes the state again)
        signing[:] = [asyncio.ensure_future(sign_in_again(detail))]

    backend.add_state_listener(on_state)


async def _first_sign_in(backend: WebSocketBackend, closed: asyncio.Event) -> bool:
    """The login dialog before the window shows; False if the rep cancelled or the console closed."""
    from repconsole.ui.login import sign_in

    signing = asyncio.ensure_future(sign_in(backend))
    closing = asyncio.ensure_future(closed.wait())
    done, _ = await asyncio.wait({signing, closing}, return_when=asyncio.FIRST_COMPLETED)
    if signing in done:
        closing.cancel()
        return signing.result()
    signing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await signing
    return False


def run(args: argparse.Namespace, start: Start | None = None) -> int:
    """Run the console until its window closes.  Returns the exit code.

    ``start`` is what :func:`repconsole.ui.startwindow.begin` prepared (the
    command line calls it before importing this module, so the start window
    paints before the console's modules load); without it, it is done here.
    """
    if start is None:
        settings_dir = Path(args.settings_dir) if args.settings_dir is not None else default_settings_dir()
        start = begin(settings_dir, show_window=args.server is None)
        if start is None:
            print(already_running(settings_dir), file=sys.stderr)
            return 0
    started, app, instance, settings_dir = start.started, start.app, start.instance, start.settings_dir
    log_path = setup_logging()
    log.info("repconsole %s starting (settings %s, log %s)", __version__, settings_dir, log_path)
    app.setApplicationVersion(__version__)

    try:
        backend = create_console_backend(args)
    except ValueError as exc:
        print(f"repconsole: {exc}", file=sys.stderr)
        return 2

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = build_window(backend, settings_dir)
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    instance.raiseRequested.connect(lambda: bring_to_front(window))

    # The start-up benchmark and the real-window test read these lines.
    def _window_painted() -> None:
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
        print(f"repconsole: window shown ({(time.perf_counter() - started) * 1000:.0f} ms)", file=sys.stderr, flush=True)

    first_frame = FirstPaint(window)
    first_frame.painted.connect(_window_painted)
    window.firstQueuePainted.connect(_first_paint)
    # Ctrl+C in the terminal closes the window like the close button does.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), window.close)

    async def main() -> None:
        if backend.kind == "server":
            # Sign in first: the window opens live, on the rep's snapshot.
            server = cast("WebSocketBackend", backend)
            if not await _first_sign_in(server, closed):
                await window.shutdown()
                return
            keep_signed_in(window, server)
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
