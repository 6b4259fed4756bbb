"""Console start-up: process start -> first painted frame, and -> queue filled, beside a bare PySide6 window.

Each round launches, in turn, a bare PySide6 window holding an empty
QTableView (the floor: Python, Qt and one window) and the real
``repconsole`` command on the simulator at each population, and times
from the outside, from ``Popen`` to the line each prints:

* ``first frame``: the first window painted: the bare window; the
  console's start window (:mod:`repconsole.ui.startwindow`, painted before
  the console's modules load);
* ``console window painted``: the console's own window painted (it then
  replaces the start window; at 100,000 waiting it shows "Loading");
* ``window shown``: the queue table painted complete (the queue is filled;
  a big start shows its rows slice by slice before that);
* ``longest frozen frame``: the longest time the console's event loop did
  not turn between its window's first paint and the queue filled (the
  window could neither paint nor answer input), measured inside the
  console (``REPCONSOLE_LOOP_WATCH``: a 10 ms heartbeat timer).

Rounds interleave the three so that a busy machine slows all of them
alike.  Printed: the median over the runs, with min-max, and the console's
first frame as a ratio of the bare window's measured in the same run.
Goal: <= 1.5x the bare window to the first frame at any population.

``python -m bench.bench_startup [--runs N] [--populations 40,100000] [--platform offscreen|xcb] [--quick]``
(xcb needs ``Xvfb``: a private X server is started for the run).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

RUNS = 5
POPULATIONS = (40, 100_000)
GOAL = 1.5

# The floor: what any PySide6 program pays for one window with an empty table.
_BARE = r"""
import sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QApplication, QMainWindow, QTableView

class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self.done)
        return False

    def done(self):
        print("bare: first frame", file=sys.stderr, flush=True)
        app.quit()

app = QApplication(sys.argv[:1])
window = QMainWindow()
table = QTableView()
table.setModel(QStandardItemModel(0, 10))
window.setCentralWidget(table)
window.resize(1280, 780)
watcher = FirstPaint()
window.installEventFilter(watcher)
window.show()
app.exec()
"""


def _timed(cmd: list[str], env: dict[str, str], marks: tuple[str, ...], lines: dict[str, str] | None = None) -> dict[str, float]:
    """Seconds from launching ``cmd`` to the first stderr line containing each of ``marks`` (those lines into ``lines``)."""
    found: dict[str, float] = {}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            for mark in marks:
                if mark not in found and mark in line:
                    found[mark] = time.perf_counter() - started
                    if lines is not None:
                        lines[mark] = line
            if len(found) == len(marks):
                return found
        raise RuntimeError(f"{cmd[2:5]} exited (status {proc.wait()}) before {set(marks) - set(found)}")
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)


def bare(env: dict[str, str]) -> float:
    return _timed([sys.executable, "-c", _BARE], env, ("first frame",))["first frame"]


def console(population: int, env: dict[str, str], scratch: str) -> tuple[float, float, float, float]:
    """(first frame, console window painted, queue filled, longest frozen frame) for the console at ``population``, on fresh settings."""
    settings = tempfile.mkdtemp(dir=scratch)
    lines: dict[str, str] = {}
    marks = _timed(
        [sys.executable, "-m", "repconsole", "--population", str(population), "--quit-after", "300", "--settings-dir", settings],
        {**env, "REPCONSOLE_LOOP_WATCH": "1"}, ("first frame", "console window painted", "window shown", "longest frozen frame"), lines,
    )
    frozen = re.search(r"\((\d+) ms\)", lines["longest frozen frame"])
    assert frozen is not None, lines["longest frozen frame"]
    return marks["first frame"], marks["console window painted"], marks["window shown"], int(frozen.group(1)) / 1000


@contextmanager
def _display(platform: str) -> Iterator[dict[str, str]]:
    env = dict(os.environ, QT_QPA_PLATFORM=platform, PYTHONUNBUFFERED="1")
    if platform != "xcb":
        yield env
        return
    if shutil.which("Xvfb") is None:
        raise SystemExit("--platform xcb needs Xvfb")
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"], pass_fds=(write,))
    os.close(write)
    with os.fdopen(read) as f:
        env["DISPLAY"] = ":" + f.readline().strip()
    try:
        yield env
    finally:
        xvfb.terminate()
        xvfb.wait()


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:6.0f} ms ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_startup", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--populations", default=",".join(map(str, POPULATIONS)))
    parser.add_argument("--platform", default="offscreen", choices=("offscreen", "xcb"))
    parser.add_argument("--quick", action="store_true", help="2 runs at 40 and 20,000 waiting (a smoke run, not a measurement)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.populations = 2, "40,20000"
    populations = [int(p) for p in args.populations.split(",")]
    bare_times: list[float] = []
    frames: dict[int, list[float]] = {p: [] for p in populations}
    windows: dict[int, list[float]] = {p: [] for p in populations}
    filled: dict[int, list[float]] = {p: [] for p in populations}
    frozen: dict[int, list[float]] = {p: [] for p in populations}
    with tempfile.TemporaryDirectory(prefix="repconsole-bench-") as scratch, _display(args.platform) as env:
        # The console's log goes to the scratch directory, not the user's.
        env["XDG_STATE_HOME"] = scratch
        # One launch of each first, untimed: the disk cache is warm for all alike.
        bare(env)
        console(populations[0], env, scratch)
        for _ in range(args.runs):
            bare_times.append(bare(env))
            for p in populations:
                frame, window, full, longest = console(p, env, scratch)
                frames[p].append(frame)
                windows[p].append(window)
                filled[p].append(full)
                frozen[p].append(longest)
    print(f"== console start-up, {args.platform}: process start -> first painted frame / -> queue filled; median (min-max) of {args.runs} runs ==")
    print(f"bare PySide6 window + empty QTableView: first frame {_ms(bare_times)}")
    floor = statistics.median(bare_times)
    for p in populations:
        ratio = statistics.median(frames[p]) / floor
        verdict = "ok" if ratio <= GOAL else f"over the {GOAL}x goal"
        print(f"console, {p:>7,} waiting:           first frame {_ms(frames[p])}  = {ratio:.2f}x bare ({verdict})")
        print(f"{'':36}console window {_ms(windows[p])}  = {statistics.median(windows[p]) / floor:.2f}x bare;  queue filled {_ms(filled[p])}")
        if max(frozen[p]) > 0:
            print(f"{'':36}longest frozen frame during the fill {_ms(frozen[p])}")
        else:  # the console's window painted with its queue full: there was no fill to watch
            print(f"{'':36}longest frozen frame during the fill: none (filled by the window's first paint)")


if __name__ == "__main__":
    main(sys.argv[1:])
