"""The console window end to end against the real queue server.

Each test starts ``repconsole-server`` as a subprocess on a free port, with
a data directory of its own (a copy of one prepared once per module, so the
demo passwords are hashed only once), and builds the real window over a
:class:`WebSocketBackend` signed in as the demo's ``alex``.  Customers come
in through the server's ``/customer`` endpoint, as a support page would
(:class:`server_helpers.CustomerClient`, typed messages, reading in the background);
a peer (``priya``) is a second WebSocketBackend with a state of her own.
What the window shows is checked against what the customer's page and the
peer's console are told by the server.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_SCALE, timeout
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton
from server_helpers import CustomerClient

from repconsole.backend.base import BackendState
from repconsole.backend.websocket import FeedBatch, WebSocketBackend
from repconsole.core.state import ConsoleState, RowKind
from repconsole.protocol import CustomerState, RepStatus, Say, SessionState
from repconsole.ui.app import build_window
from repconsole.ui.mainwindow import MainWindow
from repconsole.ui.sessiontab import SessionTab

ME = "alex"
PEER = "priya"


# ---------------------------------------------------------------- the server process


class ServerProcess:
    """``repconsole-server`` running in a subprocess; its output is drained by a thread.

    Attributes:
        url: ``ws://127.0.0.1:PORT`` once it listens.
        passwords: the demo passwords it printed at its first start.
        lines: what it printed up to listening, and since as :meth:`output` reads it.
    """

    def __init__(self, data: Path, *, log_level: str = "warning") -> None:
        """``log_level``: the server's ``--log-level``."""
        self.data = data
        self.log_level = log_level
        self.lines: list[str] = []
        self.passwords: dict[str, str] = {}
        self.port = 0
        self._start()

    def _start(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "repconsole.server", "--port", str(self.port), "--data", str(self.data), "--log-level", self.log_level],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.url = self._wait_listening()
        self.port = int(self.url.rsplit(":", 1)[1])

    def restart(self) -> None:
        """Start again on the same port and data directory (after :meth:`stop`)."""
        self._start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _wait_listening(self) -> str:
        while True:
            try:
                line = self._queue.get(timeout=30 * TIMEOUT_SCALE)
            except queue.Empty:
                raise AssertionError("repconsole-server did not start:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError("repconsole-server exited:\n" + "\n".join(self.lines))
            self.lines.append(line)
            match = re.fullmatch(r"\s+(\S+)\s+(\S+)", line)
            if match:
                self.passwords[match[1]] = match[2]
            match = re.search(r"listening on (ws://\S+)", line)
            if match:
                return match[1]

    def output(self) -> list[str]:
        """Everything it printed so far (its log, at ``log_level``)."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return self.lines
            if line is not None:
                self.lines.append(line)

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM); it closes its connections and exits."""
        self.proc.terminate()

    def stopped(self) -> bool:
        return self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10 * TIMEOUT_SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A data directory whose demo passwords are set, and those passwords."""
    data = tmp_path_factory.mktemp("server") / "data"
    server = ServerProcess(data)
    server.stop()
    assert {ME, PEER} <= server.passwords.keys(), server.lines
    (data / "server.lock").unlink(missing_ok=True)
    return data, server.passwords


@pytest.fixture
def server(prepared: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[ServerProcess]:
    data, passwords = prepared
    mine = tmp_path / "data"
    shutil.copytree(data, mine)
    proc = ServerProcess(mine)
    proc.passwords = passwords
    yield proc
    proc.stop()


# ---------------------------------------------------------------- helpers on the qasync loop


def run(qtbot, coro: Any, seconds: float = 5.0) -> Any:  # type: ignore[no-untyped-def]
    """Run a coroutine on the qasync loop, waiting the Qt way."""
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=timeout(seconds))
    return task.result()


class Peer:
    """Another rep's console, headless: a backend and the state it feeds."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.backend = WebSocketBackend(url, username, password, backoff=(0.1,))
        self.state = ConsoleState()
        self.backend.add_event_listener(self._on_backend_events)

    def _on_backend_events(self, batch: FeedBatch) -> None:
        self.state.apply(batch)


class Console:
    """The window signed in to the server, its peer and its customers, for one test."""

    def __init__(self, qtbot, window: MainWindow, backend: WebSocketBackend, server: ServerProcess, peer: Peer) -> None:  # type: ignore[no-untyped-def]
        self.qtbot = qtbot
        self.window = window
        self.backend = backend
        self.server = server
        self.peer = peer
        self.customers: list[CustomerClient] = []

    def customer(self, name: str, issue: str = "vpn") -> CustomerClient:
        """A customer starts a session; wait until the window has it."""
        c = run(self.qtbot, CustomerClient.started(self.server, name, issue, listen=True))
        self.customers.append(c)
        sid = c.session
        self.qtbot.waitUntil(lambda: sid in self.window.state.sessions, timeout=timeout(3))
        return c

    def show_queue(self, key: str) -> None:
        self.window.queue_list.select(key)
        assert self.window.queue_title.text() == self.window.state.queue_name(key)

    def double_click_row(self, row_id: str) -> None:
        index = self.window.model.index_for(row_id)
        assert index.isValid(), f"{row_id} is not in the table"
        point = self.window.table.visualRect(index).center()
        self.qtbot.mouseClick(self.window.table.viewport(), Qt.MouseButton.LeftButton, pos=point)
        self.qtbot.mouseDClick(self.window.table.viewport(), Qt.MouseButton.LeftButton, pos=point)

    def wait_tab(self, session_id: str) -> SessionTab:
        self.qtbot.waitUntil(lambda: session_id in self.window.session_tabs, timeout=timeout(3))
        return self.window.session_tabs[session_id]

    def peer_sees(self, predicate: Any) -> None:
        self.qtbot.waitUntil(lambda: predicate(self.peer.state), timeout=timeout(3))

    def close(self) -> None:
        # The window first: pytest-qt deletes it once Qt events run again.
        self.window.quit_guard.close_now()
        run(self.qtbot, self.window.shutdown())
        for c in self.customers:
            run(self.qtbot, c.close())
        run(self.qtbot, self.peer.backend.stop())


@pytest.fixture
def console(qtbot, aloop, server: ServerProcess, tmp_path: Path) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    backend = WebSocketBackend(server.url, ME, server.passwords[ME], backoff=(0.1, 0.2, 0.5))
    window = build_window(backend, tmp_path / "settings")
    qtbot.addWidget(window)
    window.resize(1300, 800)
    window.show()
    window.start_soon()
    qtbot.waitUntil(lambda: backend.state is BackendState.LIVE and window.state.seq >= 0, timeout=timeout(10))
    peer = Peer(server.url, PEER, server.passwords[PEER])
    run(qtbot, peer.backend.start(), 10)
    c = Console(qtbot, window, backend, server, peer)
    yield c
    c.close()


def _button(widget, text: str) -> QAbstractButton:  # type: ignore[no-untyped-def]
    for button in widget.findChildren(QAbstractButton):
        if button.text().replace("&", "").rstrip("…") == text and button.isVisible():
            return button
    raise AssertionError(f"no visible button {text!r}")


# ---------------------------------------------------------------- tests


def test_the_console_signs_in_and_a_new_customer_shows_in_the_queue(console: Console) -> None:
    w = console.window
    assert w.backend_label.text() == f"Server {console.server.url} · live"
    entries = list(w.queue_list.entries.values())
    assert entries[0].key == f"rep:{ME}" and entries[0].name == "Personal"
    assert {e.team for e in entries[1:]} == {"network", "accounts", "software"}
    console.show_queue("team:network")
    c = console.customer("Quentin Zebulon")
    console.qtbot.waitUntil(lambda: w.model.row_by_id(c.session) is not None, timeout=timeout(3))
    assert w.queue_list.entries["team:network"].count == 1
    assert w.model.row_by_id(c.session).session.customer_name == "Quentin Zebulon"


def test_accept_by_double_click_then_chat_with_the_customer(console: Console) -> None:
    c = console.customer("Rita Chat")
    console.show_queue("team:network")
    console.double_click_row(c.session)
    tab = console.wait_tab(c.session)
    assert console.window.tabs.currentWidget() is tab
    console.qtbot.waitUntil(lambda: c.state() is CustomerState.ACTIVE, timeout=timeout(3))
    tab.input_edit.setText("Hello Rita, let me look at your VPN.")
    console.qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return)
    console.qtbot.waitUntil(lambda: "Hello Rita, let me look at your VPN." in c.chat(), timeout=timeout(3))
    run(console.qtbot, c.request(Say, text="Thanks, it says error 809."))
    console.qtbot.waitUntil(
        lambda: any(line.text == "Thanks, it says error 809." for line in console.window.state.chats.get(c.session, [])),
        timeout=timeout(3),
    )
    console.qtbot.waitUntil(lambda: console.window.model.row_by_id(c.session) is None, timeout=timeout(3))


def test_get_next_takes_the_longest_waiting_across_my_teams(console: Console) -> None:
    first = console.customer("First Waiting", "vpn")
    console.customer("Second Waiting", "crash")
    console.qtbot.mouseClick(console.window.get_next_button, Qt.MouseButton.LeftButton)
    console.wait_tab(first.session)
    console.qtbot.waitUntil(lambda: console.window.state.sessions[first.session].owner == ME, timeout=timeout(3))


def test_a_peer_taking_it_first_is_reported(console: Console) -> None:
    c = console.customer("Contested Customer")
    console.show_queue("team:network")
    console.qtbot.waitUntil(lambda: console.window.model.row_by_id(c.session) is not None, timeout=timeout(3))
    console.peer_sees(lambda st: c.session in st.sessions)
    # Priya's accept and ours race over real sockets in one loop: hers is sent
    # first, ours right after, before our window can have heard of hers.
    failed: list[str] = []
    console.window.commandFailed.connect(lambda _what, text: failed.append(text))
    peer_accept = asyncio.ensure_future(console.peer.backend.accept(c.session))
    console.window.accept_row(c.session)
    console.qtbot.waitUntil(peer_accept.done, timeout=timeout(3))
    console.qtbot.waitUntil(lambda: bool(failed), timeout=timeout(3))
    assert failed == ["Already taken by Priya Raman."]
    console.qtbot.waitUntil(lambda: console.window.model.row_by_id(c.session) is None, timeout=timeout(3))
    assert c.session not in console.window.session_tabs


def test_share_hold_transfer_and_end_from_the_tab(console: Console) -> None:
    qtbot, w = console.qtbot, console.window
    c = console.customer("Tab Actions")
    console.show_queue("team:network")
    qtbot.waitUntil(lambda: w.model.row_by_id(c.session) is not None, timeout=timeout(3))
    w.accept_row(c.session)
    tab = console.wait_tab(c.session)

    # Share with Priya: an invitation waits in her personal queue.
    qtbot.mouseClick(_button(tab, "Share"), Qt.MouseButton.LeftButton)
    assert tab.picker is not None and tab.picker.select_target(f"rep:{PEER}")
    tab.picker.accept()
    console.peer_sees(lambda st: any(r.kind is RowKind.INVITATION for r in st.rows.get(f"rep:{PEER}", {}).values()))

    # Hold: back in my personal queue, the tab stays with Resume.
    qtbot.mouseClick(_button(tab, "Hold"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.state.sessions[c.session].held, timeout=timeout(3))
    assert w.state.sessions[c.session].queue == f"rep:{ME}"
    assert c.session in w.session_tabs
    qtbot.mouseClick(_button(tab, "Resume"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.state.sessions[c.session].state is SessionState.ACTIVE and not w.state.sessions[c.session].held, timeout=timeout(3))

    # Transfer to Software with a note: the tab closes, Priya (a member) sees the note.
    qtbot.mouseClick(_button(tab, "Transfer"), Qt.MouseButton.LeftButton)
    picker = tab.picker
    assert picker is not None and picker.select_target("team:software")
    picker.note_edit.setPlainText("Needs the licence server reset")
    picker.accept()
    qtbot.waitUntil(lambda: c.session not in w.session_tabs, timeout=timeout(3))
    console.peer_sees(lambda st: c.session in st.sessions and st.sessions[c.session].transfer_note == "Needs the licence server reset")

    # Take it back from the team queue and end it: the customer is told.
    console.show_queue("team:software")
    qtbot.waitUntil(lambda: w.model.row_by_id(c.session) is not None, timeout=timeout(3))
    w.accept_row(c.session)
    tab = console.wait_tab(c.session)
    qtbot.mouseClick(_button(tab, "End session"), Qt.MouseButton.LeftButton)
    assert tab.confirm_dialog is not None
    tab.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: c.session not in w.session_tabs, timeout=timeout(3))
    qtbot.waitUntil(lambda: c.state() is CustomerState.ENDED, timeout=timeout(3))


def test_team_chat_both_ways(console: Console) -> None:
    qtbot, w = console.qtbot, console.window
    run(qtbot, console.peer.backend.team_say("network", "VPN gateway is flaky this morning"))
    qtbot.waitUntil(lambda: w.queue_list.entries["team:network"].unread == 1, timeout=timeout(3))
    dialog = w.open_team_chat("network")
    qtbot.waitUntil(lambda: w.queue_list.entries["team:network"].unread == 0, timeout=timeout(3))
    dialog.view.input_edit.setText("Seeing it too, on it")
    qtbot.keyClick(dialog.view.input_edit, Qt.Key.Key_Return)
    console.peer_sees(lambda st: any(line.text == "Seeing it too, on it" for line in st.team_chat["network"].lines))
    dialog.close()


def test_my_status_reaches_the_server(console: Console) -> None:
    w = console.window
    w.status_combo.setCurrentIndex(w.status_combo.findData(RepStatus.BUSY.value))
    w.status_combo.activated.emit(w.status_combo.currentIndex())
    console.peer_sees(lambda st: st.reps[ME].status is RepStatus.BUSY)
    assert w.state.me.status is RepStatus.BUSY


def test_a_server_restart_greys_the_queue_and_the_console_resumes(console: Console) -> None:
    qtbot, w, server = console.qtbot, console.window, console.server
    console.show_queue("team:network")
    before = console.customer("Before The Restart")
    run(qtbot, before.close())
    console.customers.remove(before)
    # Stopped while the consoles run (the loop answers the server's close
    # handshakes): a graceful shutdown, as an operator's restart would be.
    server.terminate()
    qtbot.waitUntil(server.stopped, timeout=timeout(10))
    server.stop()
    qtbot.waitUntil(lambda: console.backend.state is BackendState.RECONNECTING, timeout=timeout(5))
    assert w.backend_label.text() == f"Server {server.url} · reconnecting"
    assert w.stale_label.isVisible() and not w.table.isEnabled()
    assert w.grace_label.text().startswith("Connection lost: your sessions are kept for")
    server.restart()
    qtbot.waitUntil(lambda: console.backend.state is BackendState.LIVE, timeout=timeout(10))
    assert not w.stale_label.isVisible() and w.table.isEnabled() and w.grace_label.text() == ""
    qtbot.waitUntil(lambda: console.peer.backend.state is BackendState.LIVE, timeout=timeout(10))
    after = console.customer("After The Restart")
    qtbot.waitUntil(lambda: w.model.row_by_id(after.session) is not None, timeout=timeout(3))


def test_typing_both_ways_and_still_there(console: Console) -> None:
    """Issue 14: the customer's typing shows in the tab, the rep's reaches the page, "Still there?" is a line."""
    from repconsole.protocol import CustomerTyping, RepIsTyping
    from repconsole.ui.presence import NUDGE_TEXT

    c = console.customer("Rita Typing")
    console.show_queue("team:network")
    console.double_click_row(c.session)
    tab = console.wait_tab(c.session)
    console.qtbot.waitUntil(lambda: c.state() is CustomerState.ACTIVE, timeout=timeout(3))
    run(console.qtbot, c.send(CustomerTyping(c.next_id())))
    console.qtbot.waitUntil(lambda: tab.presence.typing, timeout=timeout(3))
    assert tab.presence.typing_label.text() == "Rita is typing…"
    console.qtbot.keyClicks(tab.input_edit, "Let me")
    console.qtbot.waitUntil(lambda: any(isinstance(m, RepIsTyping) for m in c.received), timeout=timeout(3))
    assert [m for m in c.received if isinstance(m, RepIsTyping)] == [RepIsTyping(console.window.state.rep_name(ME))]
    tab.presence.nudge_button.click()
    console.qtbot.waitUntil(lambda: NUDGE_TEXT in c.chat(), timeout=timeout(3))
