"""The console, driven by lines on stdin, for the AT-SPI check (``test_atspi``).

Run under Xvfb with the accessibility bus; ``tests/atspi_walker.py`` starts
it and reads the accessibility tree while telling it what to do:

* ``arrive``: a customer arrives in the rep's personal queue;
* ``accept``: the rep accepts the first customer waiting in Networking;
* ``say``: that customer writes a chat line;
* ``queues`` / ``session``: show the Queues tab / the session tab, focus its first control;
* ``table``: select the first customer in Networking and focus the queue table;
* ``arrange``: drag the Priority column to the front, hide Origin, show Platform;
* ``search`` / ``unsearch``: type "a" in the search field (focused) / clear it;
* ``quit``.

Each command answers ``ok <command>`` on stdout once the window shows it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import qasync
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

from repconsole.backend.simulator import SimulatorBackend
from repconsole.backend.world import ME
from repconsole.core.state import RowKind
from repconsole.ui.app import build_window


class Commands(QObject):
    """Lines of stdin, read on a thread, delivered to the GUI thread."""

    line = Signal(str)

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for text in sys.stdin:
            self.line.emit(text.strip())
        self.line.emit("quit")


def main() -> None:
    app = QApplication(sys.argv[:1])
    app.setApplicationName("repconsole")
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    backend = SimulatorBackend(population=30, rate=0.0, seed=11, tick=0)
    window = build_window(backend, Path(sys.argv[1]))
    window.resize(1300, 800)
    window.show()
    window.activateWindow()
    session: list[str] = []

    def answer(command: str, ready: Callable[[], bool] = lambda: True) -> None:
        backend.flush()

        # Answer after the window applied the batch (it arrives through the loop), and is ready.
        def check() -> None:
            if ready():
                print(f"ok {command}", flush=True)
            else:
                QTimer.singleShot(100, check)

        QTimer.singleShot(300, check)

    def run(command: str) -> None:
        engine = backend.engine
        if command == "arrive":
            engine.start_with_rep(ME, backend.simulation.world.intake())
        elif command == "accept":
            window.tabs.setCurrentIndex(0)
            window.queue_list.select("team:network")
            sid = next(r for r in window.model.row_ids() if window.model.row_by_id(r).kind is RowKind.WAITING)  # type: ignore[union-attr]
            session.append(sid)
            window.accept_row(sid)
        elif command == "say":
            engine.customer_say(session[-1], "My VPN keeps dropping")
        elif command == "queues":
            window.tabs.setCurrentIndex(0)
            window.queue_list.setFocus(Qt.FocusReason.TabFocusReason)
        elif command == "session":
            window.tabs.setCurrentWidget(window.session_tabs[session[-1]])
        elif command == "table":
            window.tabs.setCurrentIndex(0)
            window.queue_list.select("team:network")
            window.table.select_row_id(window.model.row_ids()[0])
            window.table.setFocus(Qt.FocusReason.TabFocusReason)
        elif command == "arrange":
            header = window.table.horizontalHeader()
            header.moveSection(header.visualIndex(window.model.column_index("priority")), 0)  # as the rep drags it
            window.table.set_column_visible("origin", False)
            window.table.set_column_visible("platform", True)
        elif command == "search":
            window.search.setFocus(Qt.FocusReason.TabFocusReason)
            window.search.setText("a")
            answer(command, lambda: window.queue_title.text().startswith("Search:"))
            return
        elif command == "unsearch":
            window.search.clear()
            answer(command, lambda: not window.queue_title.text().startswith("Search:"))
            return
        elif command == "quit":
            print("ok quit", flush=True)
            window.quit_guard.close_now()
            window.close()
            loop.call_later(0.5, app.quit)
            return
        answer(command)

    commands = Commands()
    commands.line.connect(run)

    async def start() -> None:
        await window.start()
        await asyncio.sleep(0.5)
        commands.start()
        print("ok started", flush=True)

    with loop:
        loop.create_task(start())
        loop.run_forever()


if __name__ == "__main__":
    main()
