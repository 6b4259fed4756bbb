"""The first frame: a start-up window painted before the console's modules are loaded.

Loading the console (asyncio and qasync, the engine, the backends, every
widget) takes about half a second before its window can be built: twice
what Qt alone needs to show a window.  So the command line first does only
what a bare PySide6 program does: it creates the application, claims the
settings directory (:mod:`repconsole.ui.instance`: a second launch stops
here, without a window), and shows :class:`StartWindow` where the console's
window will be, saying "Starting repconsole…".  The console's window
replaces it as soon as it has painted (:func:`repconsole.ui.app.run`).

Only Qt and the standard library are imported here, on purpose.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QCoreApplication, QEvent, QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QWidget

from repconsole.ui.instance import SingleInstance

__all__ = [
    "WINDOW_SIZE",
    "WINDOW_TITLE",
    "FirstPaint",
    "Start",
    "StartWindow",
    "already_running",
    "begin",
    "default_settings_dir",
    "saved_geometry",
    "wants_start_window",
]

WINDOW_TITLE = "repconsole — Representative Console"
WINDOW_SIZE = (1280, 780)
# How long the start waits for the start window's first paint at most (a
# platform that never exposes it must not hold the console back).
_PAINT_WAIT_MS = 2000


class FirstPaint(QObject):
    """Emits :attr:`painted` once, after ``widget`` first painted (the event loop's next turn).

    Signals:
        painted(): the widget's first frame is painted.
    """

    painted = Signal()

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        self._widget = widget
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._widget and event.type() == QEvent.Type.Paint:
            # Once is all: later paints need not pass through Python.
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self.painted.emit)
        return False


def saved_geometry(settings_dir: Path) -> bytes | None:
    """The console window's saved geometry in ``settings_dir`` (what ``MainWindow`` restores), if any.

    Read directly from ``settings.json``: :mod:`repconsole.settings` and its
    validation are for later; a file that is not as expected gives None.
    """
    try:
        geometry = _read_settings(settings_dir)["window"]["geometry"]
        return base64.b64decode(geometry, validate=True) if isinstance(geometry, str) else None
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


def _read_settings(settings_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((settings_dir / "settings.json").read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def wants_start_window(args: argparse.Namespace, settings_dir: Path) -> bool:
    """Whether the console's window comes first (else the login dialog does, and no start window shows).

    As :func:`repconsole.ui.app.run` decides: ``--server`` or ``--login``
    sign in first, and so does a start without options when the
    preferences say "server".  Read directly from ``settings.json``: a
    file that is not as expected means the simulator, the default.
    """
    if getattr(args, "server", None) or getattr(args, "login", False):
        return False
    startup = _read_settings(settings_dir).get("preferences", {})
    startup = startup.get("startup", {}) if isinstance(startup, dict) else {}
    return not (isinstance(startup, dict) and startup.get("backend") == "server")


class StartWindow(QMainWindow):
    """Where the console's window will be, saying so, until it is there."""

    def __init__(self, geometry: bytes | None = None) -> None:
        super().__init__()
        self.setObjectName("startWindow")
        self.setWindowTitle(WINDOW_TITLE)
        # Fixed like the console's: the layout then never changes the window's size hints.
        self.setMinimumSize(900, 560)
        self.resize(*WINDOW_SIZE)
        if geometry:
            self.restoreGeometry(QByteArray(geometry))
        label = QLabel("Starting repconsole…")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setEnabled(False)  # the palette's quiet text colour
        self.setCentralWidget(label)


@dataclass
class Start:
    """What :func:`begin` prepared: the application, the claim on the settings, the start window.

    Attributes:
        started: ``time.perf_counter()`` when the start began.
        settings_dir: the settings directory the console runs on.
        window: the start window, or None (a sign-in dialog comes first).
        first_frame_ms: when the start window painted, in ms from ``started`` (None if it did not).
    """

    started: float
    app: QApplication
    instance: SingleInstance
    settings_dir: Path
    window: StartWindow | None
    first_frame_ms: float | None


def begin(settings_dir: Path, *, show_window: bool = True, started: float | None = None) -> Start | None:
    """Create the application, claim ``settings_dir`` and paint the start window.

    Returns None when another console runs on ``settings_dir`` (it was asked
    to come to the front; this process should exit 0).
    """
    started = time.perf_counter() if started is None else started
    # QtWebEngine (a browser-sharing tab) is imported only when such a tab
    # opens; it needs GL contexts shared, which must be asked before the app.
    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("repconsole")
    app.setApplicationDisplayName("repconsole")
    app.setOrganizationName("repconsole")
    app.setDesktopFileName("io.github.repconsole.RepConsole")
    # One console per settings directory: a second launch raises the first
    # window and exits before it builds anything (or touches the log).
    instance = SingleInstance.claim(settings_dir)
    if instance is None:
        return None
    window: StartWindow | None = None
    first_frame_ms: float | None = None
    # The window's close runs an async shutdown (settings, backend); Qt must
    # not stop the loop underneath it when the last window closes.
    app.setQuitOnLastWindowClosed(False)
    if show_window:
        window = StartWindow(saved_geometry(settings_dir))
        watcher = FirstPaint(window)
        loop = QEventLoop()
        painted: list[float] = []
        watcher.painted.connect(lambda: painted.append(time.perf_counter()))
        watcher.painted.connect(loop.quit)
        QTimer.singleShot(_PAINT_WAIT_MS, loop.quit)
        window.show()
        loop.exec()
        if painted:
            first_frame_ms = (painted[0] - started) * 1000
            # The start-up benchmark and the real-window test read this line.
            print(f"repconsole: first frame ({first_frame_ms:.0f} ms)", file=sys.stderr, flush=True)
    return Start(started, app, instance, settings_dir, window, first_frame_ms)


def already_running(settings_dir: Path) -> str:
    """What a second launch on ``settings_dir`` says before it exits 0."""
    return f"repconsole: a console is already running on the settings in {settings_dir}; it was asked to come to the front."


def default_settings_dir() -> Path:
    """Where the console keeps its settings: the platform's config directory."""
    import platformdirs

    return Path(platformdirs.user_config_dir("repconsole", appauthor=False))
