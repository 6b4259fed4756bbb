"""A rep's shift in the window: where am I, rows that stay, lost races, search, keys, quitting.

Built like ``test_console``: the real window over a :class:`SimulatorBackend`
with its ticker off, driven through the widgets' own methods and input.
Screenshots go to ``/tmp/repconsole-shots`` for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import timeout
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from test_console import Console, first_waiting, open_console

from repconsole.backend.websocket import WebSocketBackend
from repconsole.backend.world import ME
from repconsole.core.clock import ManualClock
from repconsole.core.model import QueueRef
from repconsole.core.state import RowKind
from repconsole.protocol import KeyView, RepStatus
from repconsole.ui.keydialog import KeyRequestDialog, SessionKeyDialog, spoken

SHOTS = Path("/tmp/repconsole-shots")


@pytest.fixture
def console(qtbot, aloop, tmp_path: Path) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "settings")
    yield c
    c.close()


def shot(widget: QWidget, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    QApplication.processEvents()  # let pending layouts run first
    assert widget.grab().save(str(SHOTS / f"{name}.png"))


def accept(c: Console, queue: str) -> str:
    sid = first_waiting(c, queue)
    c.window.accept_row(sid)
    c.wait_tab(sid)
    c.settle()
    return sid


# ------------------------------------------------------------ where am I


def test_the_title_and_status_bar_show_the_rep_the_backend_and_the_status(console: Console) -> None:
    w = console.window
    assert w.windowTitle() == "Alex Morgan · simulator · Available — repconsole"
    assert w.identity_label.text() == "Alex Morgan on" and "simulator" in w.identity_label.toolTip()
    assert w.backend_label.text() == "Simulator · live"
    console.engine.set_status(ME, RepStatus.AWAY)
    console.settle()
    assert w.windowTitle() == "Alex Morgan · simulator · Away — repconsole"
    assert w.status_combo.currentData() == "away"
    shot(w, "main-window")


def test_a_server_backend_names_its_address_and_the_customer_page() -> None:
    backend = WebSocketBackend("wss://support.example.com:8443/", "alex")
    assert backend.where == "wss://support.example.com:8443"
    assert backend.customer_page("AB12CD3") == "https://support.example.com:8443/?key=AB12CD3"
    assert WebSocketBackend("ws://127.0.0.1:8765", "alex").customer_page() == "http://127.0.0.1:8765/"


def _overlaps(widgets: list[QWidget]) -> list[tuple[str, str]]:
    shown = [(w, w.geometry()) for w in widgets if w.isVisible() and w.width() > 0]
    return [
        (type(a).__name__ + (a.text() if isinstance(a, QLabel) else ""), type(b).__name__ + (b.text() if isinstance(b, QLabel) else ""))
        for i, (a, ra) in enumerate(shown)
        for b, rb in shown[i + 1 :]
        if ra.intersects(rb)
    ]


def test_status_bar_texts_never_overlap_even_in_the_narrowest_window(console: Console) -> None:
    w = console.window
    w.resize(w.minimumSize())
    bar = w.statusBar()
    w.grace_label.setText("Connection lost: the grace period is over; your sessions may have been handed on to others")
    console.qtbot.waitUntil(lambda: w.width() == w.minimumWidth(), timeout=timeout(2))
    QApplication.processEvents()
    children = [c for c in bar.findChildren(QWidget) if c.parentWidget() is bar]
    assert not _overlaps(children)
    for label in (w.identity_label, w.backend_label, w.grace_label):
        assert label.fontMetrics().horizontalAdvance(label.elided()) <= label.contentsRect().width()
    assert w.grace_label.toolTip() == w.grace_label.text()  # the whole text is one hover away
    # A notice in the status bar stops short of the permanent widgets.
    w.show_notice("Session key ABCDEFG — read it as “A B C D E F G”. Valid until 16:32. The customer lands in your personal queue.")
    message = bar.currentMessage()
    assert message.endswith("…")
    assert 6 + bar.fontMetrics().horizontalAdvance(message) < w.progress_label.x()


def test_the_personal_badge_shows_waiting_and_in_session(console: Console) -> None:
    w = console.window
    personal = f"rep:{ME}"
    waiting = console.engine.queue_count(QueueRef.personal(ME))
    assert w.queue_list.entries[personal].badge == f"{waiting} / 0"
    accept(console, "team:network")
    assert w.queue_list.entries[personal].badge == f"{waiting} / 1"
    assert w.queue_list.entries["team:network"].badge == str(w.queue_list.entries["team:network"].count)


def test_the_queue_selected_at_closing_is_selected_again(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "s")
    c.show_queue("team:software")
    c.close()
    again = open_console(qtbot, tmp_path / "s")
    w = again.window
    assert w.queue_list.current_key() == "team:software"
    assert w.queue_title.text() == "Software"
    assert sorted(w.model.row_ids()) == sorted(w.state.rows["team:software"])
    again.close()


# ------------------------------------------------------------ the personal queue's waiting rule


def test_the_personal_queue_shows_time_to_breach_and_overdue_marks(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(1_800_000_000.0)
    console = open_console(qtbot, tmp_path / "s", clock=clock)
    w = console.window
    console.show_queue(f"rep:{ME}")
    s = console.engine.start_with_rep(ME, console.backend.simulation.world.intake())
    console.settle()
    model = w.model
    column = model.column_index("time_left")
    index = model.index_for(s.id, column)
    assert index.data() == "2:00"  # the simulator's personal rule: 120 s
    assert index.data(Qt.ItemDataRole.BackgroundRole) is None
    clock.advance(121)
    console.backend.pump()
    console.settle()
    index = model.index_for(s.id, column)
    assert index.data() == "overdue"
    assert index.data(Qt.ItemDataRole.BackgroundRole) is not None
    assert index.data(Qt.ItemDataRole.FontRole).bold()
    console.close()


# ------------------------------------------------------------ rows that stay, lost races


def test_arrivals_in_the_window_do_not_move_the_selected_row(console: Console) -> None:
    w = console.window
    sid = first_waiting(console, "team:network")
    w.table.sort_by("waited", descending=False)  # newest first: arrivals go on top
    w.table.select_row_id(sid)
    pos = w.table.visualRect(w.model.index_for(sid)).center()
    console.qtbot.mouseMove(w.table.viewport(), pos)
    world = console.backend.simulation.world
    for _ in range(100):
        console.engine.start_with_issue("vpn", world.intake())
    console.settle()
    assert w.model.row_for(w.table.indexAt(pos)).id == sid  # type: ignore[union-attr]
    assert w.model.position_of(sid) == 101  # they did sort in above it
    shot(w, "main-window-after-100-arrivals")


def test_losing_a_race_says_who_took_the_customer_in_place_of_the_row(console: Console) -> None:
    w = console.window
    sid = first_waiting(console, "team:network")
    w.table.select_row_id(sid)
    top = w.table.visualRect(w.model.index_for(sid)).top()
    title = w.model.row_by_id(sid).session.title  # type: ignore[union-attr]
    console.engine.accept("priya", sid)
    console.settle()
    notice = w.table.lost_notice
    assert notice.isVisible() and notice.text() == f"Priya Raman took {title}"
    assert notice.y() == top
    shot(w, "lost-race")
    # A press anywhere dismisses it, and reaches the row underneath.
    console.qtbot.mouseClick(w.table.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(40, top + 4))
    assert not notice.isVisible()


def test_my_own_accept_is_not_a_lost_race(console: Console) -> None:
    w = console.window
    sid = first_waiting(console, "team:network")
    w.table.select_row_id(sid)
    w.accept_row(sid)
    console.wait_tab(sid)
    console.settle()
    assert not w.table.lost_notice.isVisible()


# ------------------------------------------------------------ search


def _search(c: Console, text: str) -> None:
    w = c.window
    w.search.setFocus()
    w.search.clear()
    w.search.setText(text)  # keyClicks cannot type every name (QTest aborts on some letters)
    c.qtbot.waitUntil(lambda: w.queue_title.text().startswith("Search:"), timeout=timeout(2))


def test_search_results_show_their_queue_and_esc_clears_the_search(console: Console, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    w = console.window
    console.show_queue("team:software")
    assert not w.table.is_column_visible("queue")
    _search(console, "a")
    assert w.table.is_column_visible("queue")
    queue_col = w.model.column_index("queue")
    assert w.table.horizontalHeader().visualIndex(queue_col) == 1  # right after the customer
    shown = {w.model.index(r, queue_col).data() for r in range(w.model.rowCount())}
    assert {"Software", "Networking"} <= shown
    assert not any(c["key"] == "queue" and c["visible"] for c in w.table.save_layout()["columns"])
    qtmodeltester.check(w.model)
    shot(w, "search-results")
    # Down goes to the results, selecting the first.
    console.qtbot.keyClick(w.search, Qt.Key.Key_Down)
    assert w.table.hasFocus() and w.table.current_row_id() == w.model.row_ids()[0]
    w.search.setFocus()
    console.qtbot.keyClick(w.search, Qt.Key.Key_Escape)
    assert w.search.text() == ""
    assert w.queue_title.text() == "Software"
    assert not w.table.is_column_visible("queue")
    layout = [c["key"] for c in w.table.save_layout()["columns"]]
    assert layout.index("queue") > 1  # back where it was


def test_esc_without_a_search_still_closes_the_details(console: Console) -> None:
    w = console.window
    sid = first_waiting(console, "team:network")
    console.click_row(sid)
    assert w.details.isVisible()
    w.table.setFocus()
    console.qtbot.keyClick(w.table, Qt.Key.Key_Escape)
    assert not w.details.isVisible()


def test_enter_on_a_search_result_accepts_it_then_goes_to_its_tab(console: Console) -> None:
    w = console.window
    sid = first_waiting(console, "team:accounts")
    name = w.model.row_by_id(sid).session.customer_name  # type: ignore[union-attr]
    _search(console, name)
    w.table.select_row_id(sid)
    w.search.setFocus()
    console.qtbot.keyClick(w.search, Qt.Key.Key_Return)
    tab = console.wait_tab(sid)
    assert console.engine.session(sid).owner == ME
    w.tabs.setCurrentIndex(0)
    console.settle()
    _search(console, name)
    row = w.model.row_by_id(sid)
    assert row is not None and row.kind is RowKind.MINE
    w.table.select_row_id(sid)
    w.search.setFocus()
    console.qtbot.keyClick(w.search, Qt.Key.Key_Return)
    assert w.tabs.currentWidget() is tab


# ------------------------------------------------------------ session keys


def test_the_key_dialog_counts_down_and_copies(qtbot) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(1_800_000_000.0)
    key = KeyView(key="K7Q2M9X", rep=ME, created_at=clock.now, expires_at=clock.now + 3600, used_by=None)
    dialog = SessionKeyDialog(key, "http://127.0.0.1:8765/?key=K7Q2M9X", clock)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.key_label.text() == "K7Q2M9X"
    assert dialog.key_label.font().pointSizeF() >= 28
    assert dialog.spoken_label.text() == "Read it as: K 7 Q 2   M 9 X"
    assert dialog.expiry_label.text().startswith("Valid for 1:00:00 more")
    assert dialog.url_field.text() == "http://127.0.0.1:8765/?key=K7Q2M9X"
    shot(dialog, "session-key-dialog")
    clock.advance(61)
    dialog.tick()
    assert dialog.expiry_label.text().startswith("Valid for 58:59 more")
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == "K7Q2M9X"
    qtbot.mouseClick(dialog.copy_url_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == "http://127.0.0.1:8765/?key=K7Q2M9X"
    clock.advance(3600)
    dialog.tick()
    assert dialog.expiry_label.text().startswith("Expired")
    assert not dialog.copy_button.isEnabled()


def test_spoken_keys_group_letters_without_a_lone_last_one() -> None:
    assert spoken("ABCDE") == "A B C   D E"
    assert spoken("ABCDEFGHI") == "A B C D   E F G   H I"
    assert spoken("ABCD") == "A B C D"


def test_generating_a_key_opens_the_dialog_with_the_engines_key(console: Console) -> None:
    w = console.window
    w.key_button.click()
    request = w.findChild(KeyRequestDialog)
    assert request is not None and request.isVisible()
    request.validity.setCurrentIndex(0)  # 15 minutes
    request.accept()
    console.qtbot.waitUntil(lambda: w.key_dialog is not None and w.key_dialog.isVisible(), timeout=timeout(3))
    dialog = w.key_dialog
    assert dialog is not None
    keys = [k for k in console.engine.export_state().keys if k.rep == ME]
    assert dialog.key_label.text() == keys[-1].key
    # The dialog counts down on the window's clock: a loaded machine may take seconds to get here.
    assert re.match(r"Valid for (15:0\d|14:[0-5]\d) more", dialog.expiry_label.text()), dialog.expiry_label.text()
    assert dialog.url is None and not dialog.copy_url_button.isEnabled()  # the simulator has no customer page
    dialog.close()


# ------------------------------------------------------------ quitting


def test_quitting_with_open_sessions_asks_and_cancel_keeps_the_console(console: Console) -> None:
    w = console.window
    sid = accept(console, "team:network")
    assert not w.close()
    dialog = w.quit_guard.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.sessions_list.count() == 1
    assert console.engine.session(sid).customer_name in dialog.sessions_list.item(0).text()
    shot(dialog, "quit-confirmation")
    console.qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert w.quit_guard.dialog is None and w.isVisible()
    # Console > Quit (Ctrl+Q) asks the same.
    quit_action = next(a for a in w.menuBar().actions()[0].menu().actions() if a.text() == "&Quit")  # type: ignore[union-attr]
    assert quit_action.shortcut() == QKeySequence("Ctrl+Q")
    quit_action.trigger()
    assert w.quit_guard.dialog is not None
    w.quit_guard.dialog.reject()
    assert w.isVisible()


def test_quit_closes_and_leaves_the_sessions_to_the_fallback_rules(console: Console) -> None:
    w = console.window
    sid = accept(console, "team:network")
    with console.qtbot.waitSignal(w.closed, timeout=timeout(3)):
        assert not w.close()
        console.qtbot.mouseClick(w.quit_guard.dialog.quit_button, Qt.MouseButton.LeftButton)  # type: ignore[union-attr]
    assert not w.isVisible()
    assert console.engine.session(sid).owner == ME  # the console did not end or hand them on itself
    assert console.engine.reps[ME].status is RepStatus.AVAILABLE


def test_set_away_and_quit(console: Console) -> None:
    w = console.window
    accept(console, "team:network")
    assert not w.close()
    dialog = w.quit_guard.dialog
    assert dialog is not None
    dialog.dont_ask.setChecked(True)
    with console.qtbot.waitSignal(w.closed, timeout=timeout(3)):
        console.qtbot.mouseClick(dialog.away_button, Qt.MouseButton.LeftButton)
    assert console.engine.reps[ME].status is RepStatus.AWAY
    assert w.settings.preferences.confirm.quit_with_sessions is False


def test_no_question_without_sessions_or_when_the_preference_is_off(console: Console) -> None:
    w = console.window
    accept(console, "team:network")
    w.settings.preferences.confirm.quit_with_sessions = False
    with console.qtbot.waitSignal(w.closed, timeout=timeout(2)):
        assert w.close()
    assert w.quit_guard.dialog is None


