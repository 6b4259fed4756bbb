"""Start the console: the Qt application, the asyncio loop and the window.

The public Python API is :func:`build_window`: it builds the console window
over a given backend and settings directory, which is what tests and
embedders use.  :func:`run` is what the ``repconsole`` command calls.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

import platformdirs
import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from repconsole import __version__
from repconsole.backend import Backend, create_backend
from repconsole.settings import Settings
from repconsole.ui.mainwindow import MainWindow

__all__ = ["build_window", "run", "default_settings_dir"]

log = logging.getLogger(__name__)


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


def run(args: argparse.Namespace) -> int:
    """Run the console until its window closes.  Returns the exit code."""
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("repconsole")
    app.setApplicationDisplayName("repconsole")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("repconsole")
    app.setDesktopFileName("io.github.repconsole.RepConsole")
    # The window's close runs an async shutdown (settings, backend); Qt must
    # not stop the loop underneath it when the last window closes.
    app.setQuitOnLastWindowClosed(False)

    try:
        backend = create_backend("simulator", population=args.population, rate=args.rate, seed=args.seed)
    except ValueError as exc:
        print(f"repconsole: {exc}", file=sys.stderr)
        return 2

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = build_window(backend, args.settings_dir)
    closed = asyncio.Event()
    window.closed.connect(closed.set)

    def _first_paint() -> None:
        print(f"repconsole: window shown ({(time.perf_counter() - started) * 1000:.0f} ms)", file=sys.stderr, flush=True)

    window.firstQueuePainted.connect(_first_paint)
    # Ctrl+C in the terminal closes the window like the close button does.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), window.close)

    async def main() -> None:
        window.show()
        await window.start()
        await closed.wait()
        await window.shutdown()

    with loop:
        loop.run_until_complete(main())
    return 0
