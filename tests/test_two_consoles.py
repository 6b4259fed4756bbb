"""Two consoles and one server serve a customer together.

Two real console windows (Alex and Priya) sign in to a real
``repconsole-server`` process; a customer arrives through the customer
endpoint, as the support page does (typed messages: :class:`server_helpers.CustomerClient`).  Alex accepts, shares with Priya, Priya
joins and chats, Alex transfers the session to Priya with a note, Priya takes
it and ends it, and the customer is told.  Everything is driven through the
windows' own widgets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import timeout
from PySide6.QtCore import Qt
from server_helpers import CustomerClient
from test_console_server import ServerProcess, _button, prepared, run, server

from repconsole.backend.base import BackendState
from repconsole.backend.websocket import WebSocketBackend
from repconsole.core.state import RowKind
from repconsole.protocol import CustomerState, Say
from repconsole.ui.app import build_window
from repconsole.ui.mainwindow import MainWindow

__all__ = ["prepared", "server"]


def _open(qtbot, server: ServerProcess, username: str, settings: Path) -> MainWindow:  # type: ignore[no-untyped-def]
    backend = WebSocketBackend(server.url, username, server.passwords[username], backoff=(0.1, 0.2, 0.5))
    window = build_window(backend, settings)
    qtbot.addWidget(window)
    window.resize(1300, 800)
    window.show()
    window.start_soon()
    qtbot.waitUntil(lambda: backend.state is BackendState.LIVE and window.state.seq >= 0, timeout=timeout(10))
    return window


def _double_click(qtbot, window: MainWindow, row_id: str) -> None:  # type: ignore[no-untyped-def]
    index = window.model.index_for(row_id)
    assert index.isValid(), f"{row_id} is not in {window.queue_title.text()}"
    point = window.table.visualRect(index).center()
    qtbot.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.mouseDClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=point)


@pytest.fixture
def two(qtbot, aloop, server: ServerProcess, tmp_path: Path) -> Iterator[tuple[MainWindow, MainWindow]]:  # type: ignore[no-untyped-def]
    alex = _open(qtbot, server, "alex", tmp_path / "alex")
    priya = _open(qtbot, server, "priya", tmp_path / "priya")
    yield alex, priya
    for window in (alex, priya):
        window.quit_guard.close_now()
        run(qtbot, window.shutdown())


def test_two_reps_serve_one_customer_together(qtbot, two, server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    alex, priya = two
    customer = run(qtbot, CustomerClient.started(server, "Dana Whitfield", "vpn", listen=True))
    sid = customer.session

    # Alex accepts from the Networking queue by double-click.
    alex.queue_list.select("team:network")
    qtbot.waitUntil(lambda: alex.model.row_by_id(sid) is not None, timeout=timeout(3))
    _double_click(qtbot, alex, sid)
    qtbot.waitUntil(lambda: sid in alex.session_tabs, timeout=timeout(3))
    alex_tab = alex.session_tabs[sid]
    qtbot.waitUntil(lambda: customer.state() is CustomerState.ACTIVE, timeout=timeout(3))

    # Alex shares with Priya: the invitation shows in Priya's personal queue.
    qtbot.mouseClick(_button(alex_tab, "Share"), Qt.MouseButton.LeftButton)
    assert alex_tab.picker is not None and alex_tab.picker.select_target("rep:priya")
    alex_tab.picker.accept()
    priya.queue_list.select(priya.state.personal_queue)
    qtbot.waitUntil(
        lambda: any(r.kind is RowKind.INVITATION and r.session.id == sid for r in priya.state.rows[priya.state.personal_queue].values()),
        timeout=timeout(3),
    )
    assert priya.alerter.pending, "an invitation alerts the invited rep"
    invitation = next(r.id for r in priya.state.rows[priya.state.personal_queue].values() if r.kind is RowKind.INVITATION)
    qtbot.waitUntil(lambda: priya.model.row_by_id(invitation) is not None, timeout=timeout(3))

    # Priya joins as a participant and writes to the reps only, then to everyone.
    _double_click(qtbot, priya, invitation)
    qtbot.waitUntil(lambda: sid in priya.session_tabs, timeout=timeout(3))
    priya_tab = priya.session_tabs[sid]
    assert priya_tab.is_participant() and not priya_tab.is_owner()
    priya_tab.reps_only_check.setChecked(True)
    priya_tab.input_edit.setText("I've seen error 809 before: it's the gateway.")
    qtbot.keyClick(priya_tab.input_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(
        lambda: any(line.text.startswith("I've seen error 809") for line in alex.state.chats.get(sid, [])), timeout=timeout(3)
    )
    priya_tab.reps_only_check.setChecked(False)
    priya_tab.input_edit.setText("Hi Dana, I'm Priya from the network team.")
    qtbot.keyClick(priya_tab.input_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "Hi Dana, I'm Priya from the network team." in customer.chat(), timeout=timeout(3))
    run(qtbot, customer.request(Say, text="Is that fixable today?"))
    qtbot.waitUntil(lambda: any(line.text == "Is that fixable today?" for line in priya.state.chats.get(sid, [])), timeout=timeout(3))

    # Alex transfers the session to Priya, who is in it already, with a note: it is
    # hers at once. Her tab stays (never through her queue), the note pinned; Alex's
    # closes, saying where it went; the customer reads whom they are with now.
    qtbot.mouseClick(_button(alex_tab, "Transfer"), Qt.MouseButton.LeftButton)
    picker = alex_tab.picker
    assert picker is not None and picker.select_target("rep:priya")
    picker.note_edit.setPlainText("Gateway issue — yours, thanks!")
    picker.accept()
    qtbot.waitUntil(lambda: sid not in alex.session_tabs, timeout=timeout(3))
    assert alex.notice == "The session with Dana Whitfield closed: transferred to Priya Raman."
    qtbot.waitUntil(lambda: priya.state.sessions[sid].owner == "priya", timeout=timeout(3))
    assert priya.session_tabs[sid] is priya_tab and priya_tab.is_owner()
    assert priya.state.sessions[sid].queue is None and priya.state.rows[priya.state.personal_queue][sid].kind is RowKind.MINE
    assert "Gateway issue — yours, thanks!" in priya_tab.note_label.text()
    qtbot.waitUntil(lambda: "You are now with Priya Raman." in customer.chat(), timeout=timeout(3))
    assert not any("Gateway" in text for text in customer.chat()), "the note is for reps"

    # Priya ends it: her tab closes and the customer is told.
    qtbot.mouseClick(_button(priya_tab, "End session"), Qt.MouseButton.LeftButton)
    assert priya_tab.confirm_dialog is not None, "End asks first"
    priya_tab.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: sid not in priya.session_tabs, timeout=timeout(3))
    assert priya.notice == "The session with Dana Whitfield closed: ended by you."
    qtbot.waitUntil(lambda: customer.state() is CustomerState.ENDED, timeout=timeout(3))
    # The reps-only line never reached the customer's page.
    assert "I've seen error 809 before: it's the gateway." not in customer.chat()
    run(qtbot, customer.close())
