"""The console window end to end, on the real simulator backend.

Each test builds the real window over a :class:`SimulatorBackend` (with its
background ticker off, so nothing happens unless the test makes it happen),
drives the widgets through their own methods and input events, and checks
both what the window shows and what the engine now holds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import timeout
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from repconsole.backend.simulator import SimulatorBackend
from repconsole.backend.world import ME
from repconsole.core.clock import ManualClock
from repconsole.core.model import QueueRef, SessionState
from repconsole.core.state import RowKind
from repconsole.ui.app import build_window
from repconsole.ui.mainwindow import MainWindow
from repconsole.ui.queuelist import QueueList
from repconsole.ui.sessiontab import SessionTab


class Console:
    """A running console window and its backend, for one test."""

    def __init__(self, qtbot, window: MainWindow, backend: SimulatorBackend) -> None:  # type: ignore[no-untyped-def]
        self.qtbot = qtbot
        self.window = window
        self.backend = backend
        self.engine = backend.engine

    def settle(self) -> None:
        """Deliver what the engine did, and wait until the window applied it."""
        self.backend.flush()
        seq = self.window.state.seq
        self.qtbot.waitUntil(lambda: self.window.state.seq >= seq, timeout=timeout(2))

    def show_queue(self, key: str) -> None:
        self.window.queue_list.select(key)
        assert self.window.queue_title.text() == self.window.state.queue_name(key)

    def row_point(self, row_id: str) -> QPoint:
        index = self.window.model.index_for(row_id)
        assert index.isValid(), f"{row_id} is not in the table"
        return self.window.table.visualRect(index).center()

    def click_row(self, row_id: str) -> None:
        self.qtbot.mouseClick(self.window.table.viewport(), Qt.MouseButton.LeftButton, pos=self.row_point(row_id))

    def double_click_row(self, row_id: str) -> None:
        # A real double-click is a click followed by a double-click event;
        # Qt's views only honour the second when the first pressed the row.
        self.click_row(row_id)
        self.qtbot.mouseDClick(self.window.table.viewport(), Qt.MouseButton.LeftButton, pos=self.row_point(row_id))

    def wait_tab(self, session_id: str) -> SessionTab:
        self.qtbot.waitUntil(lambda: session_id in self.window.session_tabs, timeout=timeout(3))
        return self.window.session_tabs[session_id]

    def close(self) -> None:
        window = self.window
        window.quit_guard.close_now()  # quitting for good: no question about open sessions
        task = asyncio.ensure_future(window.shutdown())
        self.qtbot.waitUntil(task.done, timeout=timeout(3))


def open_console(qtbot, settings_dir: Path, **options) -> Console:  # type: ignore[no-untyped-def]
    options = {"population": 30, "rate": 0.0, "seed": 11, "tick": 0} | options
    backend = SimulatorBackend(**options)
    window = build_window(backend, settings_dir)
    qtbot.addWidget(window)
    window.resize(1300, 800)
    window.show()
    window.start_soon()
    qtbot.waitUntil(lambda: window.state.seq >= 0 and window.model.rowCount() > 0, timeout=timeout(5))
    return Console(qtbot, window, backend)


@pytest.fixture
def console(qtbot, aloop, tmp_path: Path) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "settings")
    yield c
    c.close()


def first_waiting(c: Console, queue: str) -> str:
    c.show_queue(queue)
    for row_id in c.window.model.row_ids():
        if c.window.model.row_by_id(row_id).kind is RowKind.WAITING:
            return row_id
    raise AssertionError(f"nobody waiting in {queue}")


# ---------------------------------------------------------------- queues


def test_queue_list_shows_personal_first_then_my_teams_with_counts(console: Console) -> None:
    entries = list(console.window.queue_list.entries.values())
    assert entries[0].key == f"rep:{ME}" and entries[0].name == "Personal"
    me = console.engine.reps[ME]
    assert {e.team for e in entries[1:]} == me.teams
    for entry in entries:
        assert entry.count == console.engine.queue_count(QueueRef.parse(entry.key))


def test_a_new_arrival_updates_the_visible_queue_and_the_count(console: Console) -> None:
    console.show_queue("team:network")
    before = console.window.model.rowCount()
    s = console.engine.start_with_issue("vpn", console.backend.simulation.world.intake())
    console.settle()
    assert console.window.model.row_by_id(s.id) is not None
    assert console.window.model.rowCount() == before + 1
    assert console.window.queue_list.entries["team:network"].count == before + 1


# ---------------------------------------------------------------- accepting


def test_accept_by_double_click_opens_a_tab(console: Console) -> None:
    sid = first_waiting(console, "team:network")
    console.double_click_row(sid)
    tab = console.wait_tab(sid)
    assert console.engine.session(sid).owner == ME
    assert console.window.tabs.currentWidget() is tab
    console.settle()
    assert console.window.model.row_by_id(sid) is None  # it left the team queue


def test_accept_by_selecting_and_pressing_the_button(console: Console) -> None:
    sid = first_waiting(console, "team:software")
    console.window.table.select_row_id(sid)
    console.qtbot.mouseClick(console.window.accept_button, Qt.MouseButton.LeftButton)
    console.wait_tab(sid)
    assert console.engine.session(sid).owner == ME


def test_enter_in_the_table_accepts(console: Console) -> None:
    sid = first_waiting(console, "team:accounts")
    console.window.table.select_row_id(sid)
    console.window.table.setFocus()
    console.qtbot.keyClick(console.window.table, Qt.Key.Key_Return)
    console.wait_tab(sid)


def test_get_next_takes_the_longest_waiting_across_my_teams(console: Console) -> None:
    e = console.engine
    oldest = min(
        (s for t in e.reps[ME].teams for s in e.waiting_in(QueueRef.team(t))),
        key=lambda s: (s.created_at, s.id),
    )
    console.qtbot.mouseClick(console.window.get_next_button, Qt.MouseButton.LeftButton)
    console.wait_tab(oldest.id)


def test_two_session_tabs_at_once(console: Console) -> None:
    a = first_waiting(console, "team:network")
    console.window.accept_row(a)
    console.wait_tab(a)
    console.settle()
    b = first_waiting(console, "team:software")
    console.window.accept_row(b)
    console.wait_tab(b)
    assert console.window.tabs.count() == 3  # Queues + two sessions
    console.settle()
    assert console.window.progress_label.text() == "2 sessions in progress"
    console.window.tabs.setCurrentIndex(1)
    assert console.window.tabs.currentWidget().session_id == a


def test_the_tab_keys_of_the_menus_move_between_tabs(console: Console) -> None:
    actions = console.window.menu_actions
    a = first_waiting(console, "team:network")
    console.window.accept_row(a)
    console.wait_tab(a)
    console.settle()
    actions["&Queues tab"].trigger()
    assert console.window.tabs.currentIndex() == 0
    actions["Session tab 1"].trigger()
    assert console.window.tabs.currentWidget().session_id == a
    actions["&Next tab"].trigger()  # wraps round to Queues
    assert console.window.tabs.currentIndex() == 0
    actions["&Previous tab"].trigger()
    assert console.window.tabs.currentIndex() == 1
    actions["Session tab 2"].trigger()  # no such tab: stays
    assert console.window.tabs.currentIndex() == 1


def test_someone_else_taking_it_first_is_reported_and_the_entry_leaves(console: Console) -> None:
    sid = first_waiting(console, "team:network")
    # Priya takes it; the window has not heard yet when the rep double-clicks.
    console.engine.accept("priya", sid)
    with console.qtbot.waitSignal(console.window.commandFailed, timeout=timeout(3)) as blocker:
        console.window.accept_row(sid)
    assert blocker.args[1] == "Already taken by Priya Raman."
    assert "Already taken by Priya Raman" in console.window.notice
    console.settle()
    assert console.window.model.row_by_id(sid) is None
    assert sid not in console.window.session_tabs


def test_an_invitation_is_accepted_the_same_way_and_joins_as_participant(console: Console) -> None:
    e = console.engine
    s = e.start_with_issue("vpn", console.backend.simulation.world.intake())
    e.accept("priya", s.id)
    inv = e.share("priya", s.id, QueueRef.personal(ME))
    console.settle()
    console.show_queue(f"rep:{ME}")
    row = console.window.model.row_by_id(inv.id)
    assert row is not None and row.kind is RowKind.INVITATION
    assert console.window.alerter.pending, "an invitation alerts the rep"
    console.double_click_row(inv.id)
    tab = console.wait_tab(s.id)
    assert ME in e.session(s.id).participants and e.session(s.id).owner == "priya"
    assert tab.is_participant() and not tab.is_owner()
    console.qtbot.mouseClick(_button(tab, "Leave"), Qt.MouseButton.LeftButton)
    assert tab.confirm_dialog is not None and "Leave the session with" in tab.confirm_dialog.text()
    tab.confirm_dialog.confirm_button.click()
    console.qtbot.waitUntil(lambda: s.id not in console.window.session_tabs, timeout=timeout(3))
    assert console.window.notice.endswith("closed: you left.")
    assert ME not in e.session(s.id).participants


def _button(widget, text: str):  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QAbstractButton

    for button in widget.findChildren(QAbstractButton):
        if button.text().replace("&", "").rstrip("…") == text and button.isVisible():
            return button
    raise AssertionError(f"no visible button {text!r}")


# ---------------------------------------------------------------- session tab actions


def test_transfer_share_hold_and_end_from_the_tab(console: Console) -> None:
    e = console.engine
    sid = first_waiting(console, "team:network")
    console.window.accept_row(sid)
    tab = console.wait_tab(sid)

    # Share with a rep: an invitation waits in Priya's queue.
    console.qtbot.mouseClick(_button(tab, "Share"), Qt.MouseButton.LeftButton)
    assert tab.picker is not None
    assert tab.picker.select_target("rep:priya")
    tab.picker.accept()
    console.qtbot.waitUntil(lambda: any(i.target == QueueRef.personal("priya") for i in e.session(sid).invitations.values()), timeout=timeout(3))

    # Hold: back in my personal queue, the tab stays with Resume.
    console.qtbot.mouseClick(_button(tab, "Hold"), Qt.MouseButton.LeftButton)
    console.qtbot.waitUntil(lambda: e.session(sid).held, timeout=timeout(3))
    assert e.session(sid).queue == QueueRef.personal(ME)
    console.settle()
    assert sid in console.window.session_tabs
    console.qtbot.mouseClick(_button(tab, "Resume"), Qt.MouseButton.LeftButton)
    console.qtbot.waitUntil(lambda: e.session(sid).state is SessionState.ACTIVE, timeout=timeout(3))

    # Chat, to everyone and to reps only.
    tab_input = tab.input_edit
    tab_input.setText("Let me check your VPN profile.")
    console.qtbot.keyClick(tab_input, Qt.Key.Key_Return)
    console.qtbot.waitUntil(lambda: any(line.text == "Let me check your VPN profile." for line in e.session(sid).chat), timeout=timeout(3))

    # Transfer to a team with a note: the tab closes, the note travels.
    console.qtbot.mouseClick(_button(tab, "Transfer"), Qt.MouseButton.LeftButton)
    picker = tab.picker
    assert picker is not None and picker.select_target("team:software")
    picker.note_edit.setPlainText("Needs the licence server reset")
    picker.accept()
    console.qtbot.waitUntil(lambda: e.session(sid).queue == QueueRef.team("software"), timeout=timeout(3))
    assert e.session(sid).transfer_note == "Needs the licence server reset"
    console.settle()
    assert sid not in console.window.session_tabs

    # Take it back from the team queue and end it.
    console.show_queue("team:software")
    console.window.accept_row(sid)
    tab = console.wait_tab(sid)
    assert "Needs the licence server reset" in _visible_text(tab)
    console.qtbot.mouseClick(_button(tab, "End session"), Qt.MouseButton.LeftButton)
    assert tab.confirm_dialog is not None
    tab.confirm_dialog.confirm_button.click()
    console.qtbot.waitUntil(lambda: e.session(sid).state is SessionState.ENDED, timeout=timeout(3))
    console.settle()
    assert sid not in console.window.session_tabs


def _visible_text(widget) -> str:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QLabel

    return "\n".join(label.text() for label in widget.findChildren(QLabel) if label.isVisible())


# ---------------------------------------------------------------- details, search


def test_clicking_an_entry_shows_details_and_clicking_it_again_closes_them(console: Console) -> None:
    sid = first_waiting(console, "team:network")
    console.click_row(sid)
    assert console.window.details.isVisible() and console.window.details.row_id == sid
    console.click_row(sid)
    assert not console.window.details.isVisible() and console.window.details.row_id is None


def test_search_finds_active_sessions_across_all_queues(console: Console) -> None:
    e = console.engine
    from repconsole.core.intake import Intake

    a = e.start_with_issue("printer", Intake("Quentin Zebulon", company="Zyxel Widgets", external_key="TCK-777001"))
    b = e.start_with_button("btn-software", Intake("Rita Zebulon", company="Other Co"))
    c = e.start_with_issue("vpn", Intake("Somebody Else", company="Zyxel Widgets"))
    e.accept(ME, c.id)
    console.settle()
    console.qtbot.keyClick(console.window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert console.window.search.hasFocus() or QApplication.focusWidget() is console.window.search
    console.window.search.setText("zebulon")
    console.qtbot.waitUntil(lambda: console.window.queue_title.text().startswith("Search"), timeout=timeout(2))
    found = set(console.window.model.row_ids())
    # a waits in Hardware, a team the rep is not in: search covers the rep's queues only.
    assert b.id in found and a.id not in found
    console.window.search.setText("zyxel")
    console.qtbot.waitUntil(lambda: c.id in console.window.model.row_ids(), timeout=timeout(2))
    console.window.search.setText("TCK-777001")
    console.qtbot.waitUntil(lambda: console.window.model.rowCount() == 0, timeout=timeout(2))
    console.window.search.clear()
    console.qtbot.waitUntil(lambda: not console.window.queue_title.text().startswith("Search"), timeout=timeout(2))


# ---------------------------------------------------------------- favourites, team chat


def test_favourite_star_toggles_and_persists(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "s")
    ql = c.window.queue_list
    item = next(ql.item(i) for i in range(ql.count()) if ql.item(i).text() == "Networking")
    star = QueueList.icon_rect(ql.visualItemRect(item)).center()
    qtbot.mouseClick(ql.viewport(), Qt.MouseButton.LeftButton, pos=star)
    assert ql.entries["team:network"].favourite
    saved = json.loads((tmp_path / "s" / "settings.json").read_text())
    assert saved["favourites"] == ["network"]
    c.close()
    c2 = open_console(qtbot, tmp_path / "s")
    assert c2.window.queue_list.entries["team:network"].favourite
    assert not c2.window.queue_list.entries["team:software"].favourite
    c2.close()


def test_team_chat_message_shows_a_bubble_until_read(console: Console) -> None:
    e = console.engine
    e.team_say("priya", "network", "VPN gateway is flaky this morning")
    console.settle()
    entry = console.window.queue_list.entries["team:network"]
    assert entry.unread == 1
    # Clicking the bubble opens the chat; reading it takes the bubble away.
    ql = console.window.queue_list
    item = next(ql.item(i) for i in range(ql.count()) if ql.item(i).text() == "Networking")
    console.qtbot.mouseClick(ql.viewport(), Qt.MouseButton.LeftButton, pos=QueueList.icon_rect(ql.visualItemRect(item)).center())
    dialog = console.window.team_chats["network"]
    assert dialog.isVisible()
    console.qtbot.waitUntil(lambda: e._team_chat["network"].last_read.get(ME) == 1, timeout=timeout(3))
    console.settle()
    assert console.window.queue_list.entries["team:network"].unread == 0
    dialog.close()


# ---------------------------------------------------------------- layout persistence


def test_column_order_and_sort_survive_closing_and_reopening(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "s")
    table = c.window.table
    header = table.horizontalHeader()
    company = c.window.model.column_index("company")
    header.moveSection(header.visualIndex(company), 0)  # as the rep drags it
    table.sort_by("customer", descending=True)
    order_before = [column.key for column in c.window.model.columns]
    assert order_before[0] == "company"
    rows_before = c.window.model.row_ids()
    c.close()
    c2 = open_console(qtbot, tmp_path / "s")
    header2 = c2.window.table.horizontalHeader()
    assert [column.key for column in c2.window.model.columns] == order_before
    assert header2.sortIndicatorSection() == c2.window.model.column_index("customer")
    assert header2.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
    assert c2.window.model.row_ids() == rows_before
    c2.close()


def test_a_corrupt_settings_file_is_reported_and_replaced(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "s"
    d.mkdir()
    (d / "settings.json").write_bytes(b"\x00{not json")
    c = open_console(qtbot, d)
    assert "settings.json" in c.window.notice
    assert list(d.glob("settings.json.corrupt-*")), "the bad file is kept aside"
    c.close()
    json.loads((d / "settings.json").read_text())  # replaced by a good one


# ---------------------------------------------------------------- alerts, status


def test_a_transfer_to_me_alerts_the_rep(console: Console) -> None:
    e = console.engine
    s = e.start_with_issue("wifi", console.backend.simulation.world.intake())
    e.accept("tom", s.id)
    e.transfer("tom", s.id, QueueRef.personal(ME), "Customer asked for you")
    with console.qtbot.waitSignal(console.window.alerter.raised, timeout=timeout(2)) as blocker:
        console.backend.flush()
    assert blocker.args[0] == "transfer"
    assert "Tom Becker transferred" in console.window.banner.text
    assert console.window.banner.isVisible()


def test_status_bar_shows_backend_status_and_work_in_progress(console: Console) -> None:
    w = console.window
    assert w.backend_label.text() == "Simulator · live"
    assert w.progress_label.text() == "0 sessions in progress"
    w.status_combo.setCurrentIndex(w.status_combo.findData("busy"))
    w.status_combo.activated.emit(w.status_combo.currentIndex())
    console.qtbot.waitUntil(lambda: console.engine.reps[ME].status == "busy", timeout=timeout(2))


def test_models_stay_consistent_while_the_simulator_runs(qtbot, aloop, tmp_path: Path, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(1_800_000_000.0)
    c = open_console(qtbot, tmp_path / "s", clock=clock, rate=3.0, population=80)
    qtmodeltester.check(c.window.model)
    c.show_queue("team:network")
    for _ in range(40):
        clock.advance(5)
        c.backend.pump()
        qtbot.waitUntil(lambda: not c.backend._feed.pending, timeout=timeout(2))
        expected = sorted(c.window.state.rows["team:network"])
        assert sorted(c.window.model.row_ids()) == expected
    c.close()
