"""Shared fixtures.

Every test runs headless, with its own config, data and home directories,
so no test can read or write the real user's settings.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# QtWebEngine (the session tab's live customer page) runs Chromium, whose
# sandbox refuses to start as root, which tests and CI containers are.  Only
# the tests turn it off, and only here, before anything imports QtWebEngine:
# the console itself keeps the sandbox, since the page it renders is the
# customer's.
os.environ["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
# QtMultimedia (the alert sounds) looks for optional libraries (PipeWire,
# VA-API) and warns about each one the machine lacks: that is the machine,
# not the console, so that category is off; every other warning still fails
# a test (qt_log_level_fail), and the sound server's own messages are listed
# in qt_log_ignore.
os.environ["QT_LOGGING_RULES"] = ";".join(filter(None, [os.environ.get("QT_LOGGING_RULES"), "qt.multimedia.symbolsresolver.warning=false"]))

# Time limits in tests are in this unit, which a slow machine can scale:
# REPCONSOLE_TEST_TIMEOUT_SCALE=3 pytest ...
TIMEOUT_SCALE = float(os.environ.get("REPCONSOLE_TEST_TIMEOUT_SCALE", "1"))


def timeout(seconds: float) -> int:
    """A wait limit in milliseconds, scaled for the environment."""
    return int(seconds * 1000 * TIMEOUT_SCALE)


@pytest.fixture(scope="session", autouse=True)
def _widgets_deleted_before_exit() -> Iterator[None]:
    """Delete what the last tests closed (pytest-qt's deleteLater) before Qt shuts down.

    QtWebEngine wants every page gone before its profile: a session tab's
    live page still waiting for deletion at exit makes it warn.
    """
    yield
    from PySide6.QtCore import QCoreApplication, QEvent

    if QCoreApplication.instance() is not None:
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    # XDG_STATE_HOME: the console's log file (platformdirs' user_log_dir).
    places = (("HOME", ""), ("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"), ("XDG_CACHE_HOME", ".cache"), ("XDG_STATE_HOME", ".local/state"))
    for var, sub in places:
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(path))
    return home


@pytest.fixture
def aloop(qapp):  # type: ignore[no-untyped-def]
    """An asyncio loop running inside Qt's, as in the real console.

    qasync's ``already_running`` mode makes the loop current while pytest-qt
    processes Qt events, so ``qtbot.waitUntil``/``waitSignal`` also run the
    backend's coroutines: the same integration the app uses, no sleeping.
    """
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        asyncio.events._set_running_loop(None)
        loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
        loop.close()
        asyncio.set_event_loop(None)
