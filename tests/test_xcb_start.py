"""The real console on Qt's xcb platform (X11) under Xvfb: the first window paints.

The rest of the suite runs on Qt's offscreen platform, which loads none of
the xcb libraries a fresh Debian lacks (issue 11: ``make run`` aborted
there).  Here the console runs as the ``repconsole`` command does, on an X
server of its own (``Xvfb -br``: a black root window), and the screen is
read back from the X server by a separate process, as a screenshot tool
would: the window's area must hold the painted console, not black.

``.ci/run`` installs Xvfb; without it these tests skip, saying so.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TIMEOUT_SCALE

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 1600, 1000
# Where the console's window lands on a bare X server (no window manager): its default size at the origin.
WINDOW_AREA = 1280 * 780

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (.ci/run installs the xvfb package)")

# Reads the X screen from another X client (Qt on xcb too) and reports what is on it.
_GRAB = r"""
import json, sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication([])
image = app.primaryScreen().grabWindow(0).toImage()
image.save(sys.argv[1])
lit, colours = 0, set()
for y in range(0, image.height(), 2):
    for x in range(0, image.width(), 2):
        rgb = image.pixel(x, y) & 0xFFFFFF
        if rgb:
            lit += 4
        colours.add(rgb)
print(json.dumps({"lit": lit, "colours": len(colours), "size": [image.width(), image.height()]}))
"""


@pytest.fixture
def display() -> Iterator[str]:
    """A fresh X server (Xvfb) with a black root window; its DISPLAY."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{WIDTH}x{HEIGHT}x24", "-br", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    os.close(write)
    # Xvfb writes its display number once it accepts clients (a blocking read, no polling).
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        xvfb.kill()
        pytest.fail(f"Xvfb did not start: {xvfb.communicate()[1].decode(errors='replace')}")
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(timeout=10)


def _env(display: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return {**env, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Console:
    """``python -m repconsole`` on the X server; its stderr read by a thread, line by line."""

    def __init__(self, display: str, settings: Path, *args: str) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "repconsole", "--settings-dir", str(settings), "--rate", "0", "--quit-after", "120", *args],
            env=_env(display), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, seconds: float = 60) -> str:
        """The first line containing ``text`` (blocking on the reader's queue, with a deadline)."""
        while True:
            try:
                line = self._queue.get(timeout=seconds * TIMEOUT_SCALE)
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {seconds} s:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"the console exited ({self.proc.wait()}) before {text!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if text in line:
                return line

    def close(self) -> int:
        """Ctrl+C, as in a terminal: the window closes and the console exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30 * TIMEOUT_SCALE)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def _screen(display: str, path: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", _GRAB, path], env=_env(display), capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_console_window_paints_on_x11(display: str, tmp_path: Path) -> None:
    console = Console(display, tmp_path / "settings")
    try:
        console.wait_for("first frame")  # the start window
        screen = _screen(display, "/tmp/s11-xcb-start-window.png")
        assert screen["lit"] >= 0.9 * WINDOW_AREA, screen
        console.wait_for("window shown")  # the console's window, its queue filled
        screen = _screen(display, "/tmp/s11-xcb-window.png")
        assert screen["size"] == [WIDTH, HEIGHT]
        # The window's area is painted (Xvfb's root is black), with a console's variety of colours.
        assert screen["lit"] >= 0.9 * WINDOW_AREA, screen
        assert screen["colours"] >= 20, screen
        # A second launch on the same settings (xcb can raise windows) exits 0 and builds no window.
        second = subprocess.run(
            [sys.executable, "-m", "repconsole", "--settings-dir", str(tmp_path / "settings"), "--quit-after", "30"],
            env=_env(display), capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE,
        )
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr and "window shown" not in second.stderr
        assert not [line for line in second.stderr.splitlines() if "qt." in line or "QXcb" in line], second.stderr
    finally:
        status = console.close()
    assert status == 0, "\n".join(console.lines)
    assert not [line for line in console.lines if "Could not load the Qt platform plugin" in line or "qt.qpa" in line], console.lines


def test_a_big_start_is_never_a_black_window(display: str, tmp_path: Path) -> None:
    console = Console(display, tmp_path / "settings", "--population", "30000")
    try:
        # The start window, then the console's own window, while the customers are still being created.
        console.wait_for("first frame", 30)
        console.wait_for("console window painted", 30)
        screen = _screen(display, "/tmp/s11-xcb-big-start.png")
        assert screen["lit"] >= 0.9 * WINDOW_AREA, screen
        console.wait_for("window shown", 120)
    finally:
        status = console.close()
    assert status == 0, "\n".join(console.lines)
