"""Regression test for the PySide6 6.12.0 / CPython 3.11 reference leak.

PySide6-Essentials 6.12.0 drops a reference to ``None``/``True`` on many
calls (``QTimer.singleShot(0, f)``, void setters, ``Signal.emit``).  On
CPython 3.11 those objects are mortal, so after a few thousand calls the
process aborts with "deallocating None"; qasync, which turns every
``call_soon`` into a Qt timer, dies within seconds.  pyproject.toml pins
around it; this test fails if a future pin lets it back in.

It runs in a subprocess because the failure mode is an abort, which would
take pytest down with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SOAK = textwrap.dedent(
    """
    import asyncio, sys
    from PySide6.QtCore import QObject, QTimer, Signal
    from PySide6.QtWidgets import QApplication, QLabel
    import qasync

    N = 20000
    app = QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    class Emitter(QObject):
        ping = Signal()
        value = Signal(bool)

    emitter = Emitter()
    hits = 0
    def on_ping():
        global hits
        hits += 1
    emitter.ping.connect(on_ping)
    emitter.value.connect(lambda v: None)
    label = QLabel()

    none_before = sys.getrefcount(None)
    true_before = sys.getrefcount(True)

    async def main():
        fired = 0
        done = asyncio.Event()
        def tick():
            nonlocal fired
            fired += 1
            if fired == N:
                done.set()
        for i in range(N):
            QTimer.singleShot(0, tick)
            emitter.ping.emit()
            emitter.value.emit(True)
            label.setVisible(False)      # a void setter
            label.setEnabled(True)
            loop.call_soon(lambda: None)  # qasync: one Qt timer per callback
            if i % 1000 == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(done.wait(), 60)

    with loop:
        loop.run_until_complete(main())
    none_drop = none_before - sys.getrefcount(None)
    true_drop = true_before - sys.getrefcount(True)
    print(f"hits={hits} none_drop={none_drop} true_drop={true_drop}")
    # A leak of one reference per call would show as a drop of ~N or more.
    sys.exit(0 if hits == N and none_drop < N // 4 and true_drop < N // 4 else 3)
    """
)


def test_event_loop_survives_many_qt_calls() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-c", SOAK], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"event loop soak failed (exit {result.returncode}); a PySide6 build that leaks "
        f"references to None/True (6.12.0 on CPython 3.11) is installed?\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr[-2000:]}"
    )
    assert "hits=20000" in result.stdout


def test_installed_pyside_is_not_the_broken_release() -> None:
    import PySide6

    if sys.version_info < (3, 12):
        assert not PySide6.__version__.startswith("6.12.0"), "PySide6 6.12.0 crashes on CPython 3.11; see pyproject.toml"
