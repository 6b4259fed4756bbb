"""What a screen reader gets: announcements, names, states, focus and Tab order.

The console under pytest-qt, as in ``test_console``.  Announcements are
asserted on the :class:`~repconsole.ui.announce.Announcer`'s signal (the
AT-SPI side, that Orca would hear them, is ``test_atspi``); names and
states on what Qt's accessibility layer reads (``QAccessible``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import timeout
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAccessible, QAccessibleInterface
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QLabel, QMenu, QMenuBar, QSplitterHandle, QWidget
from test_console import Console, first_waiting, open_console

from repconsole.backend.world import ME
from repconsole.core.clock import ManualClock
from repconsole.preferences import AlertEvent, TeamAlerts
from repconsole.ui.queuetable import QueueTableView

T = 1_800_000_000.0
PERSONAL = f"rep:{ME}"


@pytest.fixture
def console(qtbot, aloop, tmp_path: Path) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "settings", clock=ManualClock(T))
    yield c
    c.close()


class Heard:
    """Every announcement the window posts: (kind, text, assertive)."""

    def __init__(self, c: Console) -> None:
        self.said: list[tuple[str, str, bool]] = []
        c.window.announcer.announced.connect(lambda kind, text, assertive: self.said.append((kind, text, assertive)))

    def kinds(self) -> list[tuple[str, bool]]:
        return [(k, a) for k, _, a in self.said]


@pytest.fixture
def heard(console: Console) -> Heard:
    return Heard(console)


# ---------------------------------------------------------------- announcements


def test_a_personal_arrival_is_announced_assertively_even_with_its_sound_and_alert_off(console: Console, heard: Heard) -> None:
    console.show_queue("team:software")
    s = console.engine.start_with_rep(ME, console.backend.simulation.world.intake())
    console.settle()
    assert heard.said == [("arrivals", console.window.alerter.pending[-1].text, True)]
    assert s.customer_name in heard.said[0][1] and "personal queue" in heard.said[0][1]
    console.window.settings.preferences.alerts[AlertEvent.PERSONAL].enabled = False
    console.engine.start_with_rep(ME, console.backend.simulation.world.intake())
    console.settle()
    assert heard.kinds() == [("arrivals", True)] * 2


def test_team_arrivals_are_polite_and_follow_favourites_and_the_team_switch(console: Console, heard: Heard) -> None:
    w = console.window
    console.show_queue(PERSONAL)
    intake = console.backend.simulation.world.intake
    console.engine.start_with_issue("wifi", intake())  # another team: its alert is off, so is its announcement
    console.settle()
    assert heard.said == []
    w.settings.favourites = ["network"]
    console.engine.start_with_issue("wifi", intake())
    console.settle()
    assert heard.kinds() == [("arrivals", False)] and "Networking" in heard.said[0][1]
    w.settings.preferences.team_alerts["network"] = TeamAlerts(arrivals=False)
    console.engine.start_with_issue("wifi", intake())
    console.settle()
    assert len(heard.said) == 1


def test_each_kind_of_announcement_can_be_turned_off(console: Console, heard: Heard) -> None:
    prefs = console.window.settings.preferences.announcements
    prefs.arrivals = False
    console.engine.start_with_rep(ME, console.backend.simulation.world.intake())
    console.settle()
    assert heard.said == []
    a = console.window.announcer
    from repconsole.ui.announce import Kind

    for kind in Kind:
        setattr(prefs, kind.value, True)
        assert a.announce(kind, "x")
        setattr(prefs, kind.value, False)
        assert not a.announce(kind, "x")
    assert [k for k, _, _ in heard.said] == [k.value for k in Kind]


def test_offers_transfers_and_invitations_are_assertive_overdue_polite(console: Console, heard: Heard) -> None:
    a = console.window.announcer
    console.window.settings.preferences.alerts[AlertEvent.TEAM].enabled = True
    for event in AlertEvent:
        a.alert(event, PERSONAL, event.value)
    assert {text: assertive for _, text, assertive in heard.said} == {
        "personal": True, "favourite_team": False, "team": False, "transfer": True, "invitation": True, "overdue": False, "offer": True,
    }  # fmt: skip
    assert ("offers", "offer", True) in heard.said


def test_a_chat_line_is_announced_assertively_in_the_tab_the_rep_is_in_politely_elsewhere(console: Console, heard: Heard) -> None:
    w = console.window
    sid = first_waiting(console, "team:network")
    w.accept_row(sid)
    tab = console.wait_tab(sid)
    console.settle()
    heard.said.clear()
    name = tab.session.customer_name
    console.engine.customer_say(sid, "my VPN drops")
    console.settle()
    assert heard.said == [("chat", f"{name}: my VPN drops", True)]
    console.engine.say(ME, sid, "looking")  # the rep's own line: not announced
    w.tabs.setCurrentIndex(0)
    console.engine.customer_say(sid, "still there?")
    console.settle()
    assert heard.said[1:] == [("chat", f"{name}, in the session with {name}: still there?", False)]
    w.settings.preferences.announcements.chat = False
    console.engine.customer_say(sid, "hello?")
    console.settle()
    assert len(heard.said) == 2


def test_a_lost_race_is_announced(console: Console, heard: Heard) -> None:
    w = console.window
    sid = first_waiting(console, "team:network")
    w.table.select_row_id(sid)
    title = w.model.row_by_id(sid).session.title  # type: ignore[union-attr]
    console.engine.accept("priya", sid)
    console.settle()
    assert ("lost_races", f"Priya Raman took {title}", False) in heard.said


def test_the_announcement_event_reaches_qt_accessibility(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[tuple[str, QAccessible.AnnouncementPoliteness]] = []
    real = QAccessible.updateAccessibility

    def spy(event):  # type: ignore[no-untyped-def]
        if event.type() == QAccessible.Event.Announcement:
            posted.append((event.message(), event.politeness()))
        real(event)

    monkeypatch.setattr(QAccessible, "updateAccessibility", spy)
    console.window.announcer.alert(AlertEvent.OFFER, PERSONAL, "Offered: Sam Lee")
    assert posted == [("Offered: Sam Lee", QAccessible.AnnouncementPoliteness.Assertive)]


def test_the_preferences_dialog_turns_each_announcement_on_and_off(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from repconsole.settings import Settings
    from repconsole.ui.prefsdialog import PreferencesDialog

    settings = Settings(tmp_path / "s")
    settings.preferences.announcements.overdue = False
    dialog = PreferencesDialog(settings, [("network", "Networking")])
    qtbot.addWidget(dialog)
    boxes = dialog.announcements
    assert set(boxes) == set(settings.preferences.announcements.__struct_fields__)
    assert not boxes["overdue"].isChecked() and boxes["chat"].isChecked()
    boxes["chat"].setChecked(False)
    boxes["overdue"].setChecked(True)
    dialog.apply()
    a = Settings.load(settings.directory)[0].preferences.announcements
    assert (a.chat, a.overdue, a.offers) == (False, True, True)
    assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())].count("Screen &reader") == 1


# ---------------------------------------------------------------- exposed state


def accessible_texts(widget) -> list[str]:  # type: ignore[no-untyped-def]
    """The names of a widget's accessible children, as Qt gives them to AT-SPI."""
    iface = QAccessible.queryAccessibleInterface(widget)
    return [iface.child(i).text(QAccessible.Text.Name) for i in range(iface.childCount())]


def test_queue_list_items_read_favourite_count_and_unread_and_tell_changes(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    w = console.window
    events: list[tuple[QAccessible.Event, str]] = []
    real = QAccessible.updateAccessibility

    def spy(event):  # type: ignore[no-untyped-def]
        text = event.message() if event.type() == QAccessible.Event.Announcement else str(event.child())
        events.append((event.type(), text))
        real(event)

    monkeypatch.setattr(QAccessible, "updateAccessibility", spy)
    net = w.queue_list.entries["team:network"]
    row = list(w.queue_list.entries).index("team:network")
    assert accessible_texts(w.queue_list)[row] == f"Networking, {net.count} waiting"
    w.queue_list.select("team:network")
    w.queue_list.setFocus()
    console.qtbot.keyClick(w.queue_list, "d", Qt.KeyboardModifier.ControlModifier)
    assert accessible_texts(w.queue_list)[row] == f"Networking, favourite, {net.count} waiting"
    assert (QAccessible.Event.NameChanged, str(row)) in events
    assert (QAccessible.Event.Announcement, "Networking: favourite") in events
    console.engine.team_say("priya", "network", "anyone free?")
    console.settle()
    n = w.queue_list.entries["team:network"].count
    assert accessible_texts(w.queue_list)[row] == f"Networking, favourite, {n} waiting, 1 unread team message"
    assert accessible_texts(w.queue_list)[0].startswith("Personal, ") and " in session" in accessible_texts(w.queue_list)[0]


def test_table_rows_have_names_blank_cells_read_none_and_the_sort_is_described(console: Console) -> None:
    w = console.window
    console.show_queue("team:network")
    model = w.model
    iface = QAccessible.queryAccessibleInterface(w.table)
    assert iface.text(QAccessible.Text.Description) == "sorted by Waiting, descending"
    first = model.row_at(0).session
    spoken = model.headerData(0, Qt.Orientation.Vertical)
    assert spoken.startswith(f"{first.title}, waiting ") and ", Networking" in spoken
    names = accessible_texts(w.table)
    assert spoken in names  # the row's header cell: its name
    owner = model.index(0, model.column_index("owner"))  # a waiting customer has no owner
    assert owner.data() == "" and owner.data(Qt.ItemDataRole.AccessibleTextRole) == "none"
    assert model.index(0, 0).data(Qt.ItemDataRole.AccessibleDescriptionRole) == spoken
    assert "" not in names[1:]  # no cell with an empty name
    w.table.sort_from_keyboard("customer")
    assert iface.text(QAccessible.Text.Description) == "sorted by Customer, ascending"
    w.table.sort_from_keyboard("customer")
    assert w.table.accessibleDescription() == "sorted by Customer, descending"
    w.menu_actions["By &priority"].trigger()
    assert w.table.accessibleDescription() == "sorted by Priority, descending"
    w.menu_actions["&Reverse order"].trigger()
    assert w.table.accessibleDescription() == "sorted by Priority, ascending"


def column_names(table: QueueTableView) -> list[str]:
    """The table's columns as its accessibility reads them: its column header cells, in order.

    (PySide has no binding of the table interface: the cells are read as the
    table's children, the corner first, then a row of column headers, then
    each row: its header, then its cells.)
    """
    iface = fresh_interface(table)
    names = []
    while (child := iface.child(len(names) + 1)) is not None and child.role() == QAccessible.Role.ColumnHeader:
        names.append(child.text(QAccessible.Text.Name))
    assert iface.childCount() == (table.model().rowCount() + 1) * (len(names) + 1)
    return names


def fresh_interface(widget: QWidget) -> QAccessibleInterface:
    """``widget``'s accessibility object made anew, as a screen reader meets it.

    Under pytest accessibility is not active, so Qt does not keep the
    children a table's object has handed out up to date through column
    changes (``test_atspi`` checks that part, with it active).
    """
    QAccessible.deleteAccessibleInterface(QAccessible.uniqueId(QAccessible.queryAccessibleInterface(widget)))
    return QAccessible.queryAccessibleInterface(widget)


def first_row(table: QueueTableView) -> list[str]:
    """The names of the first row's cells, as its accessibility reads them."""
    iface = fresh_interface(table)
    columns = len(column_names(table))
    cells = [iface.child(columns + 2 + c) for c in range(columns)]
    assert [(cell.tableCellInterface().rowIndex(), cell.tableCellInterface().columnIndex()) for cell in cells] == [(0, c) for c in range(columns)]
    return [cell.text(QAccessible.Text.Name) for cell in cells]


def test_the_table_exposes_only_the_columns_shown_in_the_order_shown(console: Console) -> None:
    w = console.window
    console.show_queue("team:network")
    shown = ["Customer", "Company", "Issue", "Category", "Waiting", "Time left", "Priority", "Origin", "Status", "Owner"]
    assert column_names(w.table) == shown
    header = w.table.horizontalHeader()
    header.moveSection(header.visualIndex(w.model.column_index("priority")), 0)  # as the rep drags it
    w.table.set_column_visible("origin", False)
    w.table.set_column_visible("platform", True)
    arranged = ["Priority", "Customer", "Company", "Issue", "Category", "Waiting", "Time left", "Status", "Owner", "Platform"]
    assert column_names(w.table) == arranged
    # The cells read in that order too: the first row's are its values under those headers.
    first = w.model.row_at(0).session
    cells = first_row(w.table)
    assert cells[1] == first.title and cells[-1] == (first.platform or "none") and "" not in cells
    # The Queue column comes while searching, right after the first column, and goes after.
    w.search.setText("a")
    console.qtbot.waitUntil(lambda: w.queue_title.text().startswith("Search:"), timeout=timeout(2))
    assert column_names(w.table) == [arranged[0], "Queue", *arranged[1:]]
    w.search.clear()
    console.qtbot.waitUntil(lambda: not w.queue_title.text().startswith("Search:"), timeout=timeout(2))
    assert column_names(w.table) == arranged
    w.grab().save("/tmp/a12g-queues-arranged.png")


# ---------------------------------------------------------------- keyboard


def tab_cycle(c: Console, start: QWidget, key: Qt.Key = Qt.Key.Key_Tab) -> list[QWidget]:
    """Press Tab from ``start`` until focus comes back to it: the widgets reached, in order."""
    start.setFocus()
    c.qtbot.waitUntil(lambda: QApplication.focusWidget() is start, timeout=timeout(2))
    reached = [start]
    for _ in range(80):
        c.qtbot.keyClick(QApplication.focusWidget(), key)
        widget = QApplication.focusWidget()
        if widget is start:
            return reached
        assert widget not in reached, f"Tab came back to {widget!r} before {start!r}: {reached}"
        reached.append(widget)
    raise AssertionError(f"Tab never came back to {start!r} (a trap): {reached}")


def focusable(window: QWidget) -> set[QWidget]:
    """Every control of the visible view that Tab should reach."""
    found = set()
    for widget in window.findChildren(QWidget):
        tabbable = widget.isVisible() and widget.isEnabled() and widget.focusPolicy() & Qt.FocusPolicy.TabFocus and widget.focusProxy() is None
        if tabbable and not isinstance(widget, (QMenuBar, QMenu)) and widget.window() is window:
            found.add(widget)
    return found


def test_a_tab_cycle_on_the_queues_tab_reaches_every_control_in_a_deliberate_order(console: Console) -> None:
    w = console.window
    w.activateWindow()
    reached = tab_cycle(console, w.queue_list)
    assert reached[:7] == [w.queue_list, w.search, w.table, w.accept_button, w.get_next_button, w.key_button, w.status_combo]
    assert set(reached) == focusable(w)
    assert list(reversed(tab_cycle(console, w.queue_list, Qt.Key.Key_Backtab)[1:])) == reached[1:]
    # With the details pane and the banner open, they are in the cycle too.
    sid = first_waiting(console, "team:network")
    w.table.select_row_id(sid)
    w.table.detailsToggled.emit(sid)
    w.banner.show_message("New customer")
    assert set(tab_cycle(console, w.queue_list)) == focusable(w)


def test_a_session_tab_starts_in_the_chat_input_and_tab_reaches_every_control(console: Console) -> None:
    w = console.window
    w.activateWindow()
    sid = first_waiting(console, "team:network")
    w.accept_row(sid)
    tab = console.wait_tab(sid)
    console.settle()
    console.qtbot.waitUntil(lambda: QApplication.focusWidget() is tab.input_edit, timeout=timeout(2))
    name = tab.session.customer_name
    assert name in tab.accessibleName() and name in tab.accessibleDescription()
    assert name in w.tabs.tabBar().tabToolTip(w.tabs.indexOf(tab))
    reached = tab_cycle(console, tab.input_edit)
    chat = [tab.input_edit, tab.reps_only_check, tab.send_button, tab.chat_view]
    assert reached[:9] == [*chat, tab.transfer_button, tab.share_button, tab.hold_button, tab.end_button, tab.info_panel]
    assert set(reached) == focusable(w)
    # Back to the Queues tab and again to the session: the chat input again.
    w.tabs.setCurrentIndex(0)
    w.go_to_tab(1)
    console.qtbot.waitUntil(lambda: QApplication.focusWidget() is tab.input_edit, timeout=timeout(2))


# ---------------------------------------------------------------- labels


def labelled_by(widget: QWidget) -> list[str]:
    """The texts of the labels Qt's accessibility reports as labelling ``widget``."""
    iface = QAccessible.queryAccessibleInterface(widget)
    return [other.text(QAccessible.Text.Name) for other, _ in iface.relations(QAccessible.RelationFlag.Label)]


def test_the_status_combo_the_external_key_and_every_info_value_are_linked_to_their_captions(console: Console) -> None:
    w = console.window
    assert labelled_by(w.status_combo) == ["Your status:"]
    sid = first_waiting(console, "team:network")
    w.accept_row(sid)
    tab = console.wait_tab(sid)
    console.settle()
    assert tab.external_key_edit.accessibleName() == "External key" and labelled_by(tab.external_key_edit) == ["External key"]
    values = tab.info_panel.widget().findChildren(QLabel)
    name = next(v for v in values if v.text() == tab.session.customer_name)
    assert name.accessibleName() == f"Name: {tab.session.customer_name}" and labelled_by(name) == ["Name"]
    blank = [v.accessibleName() for v in values if v.text() == "—"]
    assert blank and all(text.endswith(": none") for text in blank)


def accessible_tree(window: QWidget) -> Iterator[QAccessibleInterface]:
    """Every object of ``window``'s accessibility tree that is on screen (items of views: the first 400)."""

    def walk(iface: QAccessibleInterface) -> Iterator[QAccessibleInterface]:
        if iface.state().invisible:
            return
        yield iface
        for i in range(min(iface.childCount(), 400)):
            child = iface.child(i)
            if child is not None:
                yield from walk(child)

    yield from walk(QAccessible.queryAccessibleInterface(window))


def test_no_control_has_a_role_the_at_spi_bridge_calls_unknown_and_the_panes_still_resize(console: Console) -> None:
    # Qt's Grip role has no AT-SPI word ("unknown"): the status bar's size grip is off, and
    # the splitter handles (mouse-only) are left out of the tree like QMainWindow's separators.
    w = console.window
    sid = first_waiting(console, "team:network")
    w.accept_row(sid)
    tab = console.wait_tab(sid)
    for page in (w.tabs.widget(0), tab):
        w.tabs.setCurrentWidget(page)
        QApplication.processEvents()
        tree = list(accessible_tree(w))
        assert len(tree) > 30
        assert [iface.object() for iface in tree if iface.role() == QAccessible.Role.Grip] == []
        assert not any(isinstance(iface.object(), QSplitterHandle) for iface in tree)
    assert not w.statusBar().isSizeGripEnabled()
    assert tab.splitter.handle(1).isVisible()
    w.tabs.setCurrentIndex(0)
    before = w.splitter.sizes()
    drag_handle(console, w.splitter.handle(1), 60)
    after = w.splitter.sizes()
    assert after[0] == before[0] + 60 and sum(after) == sum(before)


def drag_handle(c: Console, handle: QSplitterHandle, dx: int) -> None:
    """The rep drags a splitter handle ``dx`` pixels with the mouse."""
    assert handle.isVisible() and handle.width() > 0
    middle = handle.rect().center()
    c.qtbot.mousePress(handle, Qt.MouseButton.LeftButton, pos=middle)
    c.qtbot.mouseMove(handle, middle + QPoint(dx, 0))
    c.qtbot.mouseRelease(handle, Qt.MouseButton.LeftButton, pos=middle + QPoint(dx, 0))


def test_the_pane_sizes_the_rep_dragged_survive_a_restart(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "s")
    before = c.window.splitter.sizes()
    drag_handle(c, c.window.splitter.handle(1), 50)
    sizes = c.window.splitter.sizes()
    assert sizes[0] == before[0] + 50
    c.close()
    c2 = open_console(qtbot, tmp_path / "s")
    assert c2.window.splitter.sizes() == sizes
    c2.close()


def focus_claims(window: QWidget) -> list[tuple[QAccessible.Role, str]]:
    """Whatever claims the focus in ``window``'s accessibility tree besides the focus widget.

    An item of a focused view or tab bar (an object of its own, with no
    widget) is where the reader is in it: it is the focus, not a second one.
    Left out: the current page tab, which Qt marks focused whatever has the
    focus (``QAccessibleTabButton::state``; no widget setting changes it).
    """
    focus = QApplication.focusWidget()
    claims = []
    for iface in accessible_tree(window):
        if not iface.state().focused or iface.object() is focus:
            continue
        if iface.role() == QAccessible.Role.PageTab and iface.state().selected:
            continue
        parent = iface.parent()
        if iface.object() is None and parent is not None and parent.object() is focus:
            continue
        claims.append((iface.role(), iface.text(QAccessible.Text.Name)))
    return claims


def focus_on(c: Console, widget: QWidget) -> None:
    widget.setFocus()
    c.qtbot.waitUntil(lambda: QApplication.focusWidget() is widget, timeout=timeout(2))


def test_one_object_has_the_focus_wherever_it_is(console: Console) -> None:
    w = console.window
    w.activateWindow()
    sid = first_waiting(console, "team:network")
    w.table.select_row_id(sid)
    for widget in (w.table, w.search, w.queue_list, w.accept_button, w.tabs.tabBar()):
        focus_on(console, widget)
        assert focus_claims(w) == [], widget
    assert w.table.current_row_id() == sid and w.queue_list.current_key() == "team:network"
    w.accept_row(sid)
    tab = console.wait_tab(sid)
    console.qtbot.waitUntil(lambda: tab.input_edit.hasFocus(), timeout=timeout(2))
    assert focus_claims(w) == []
    for widget in (tab.chat_view, tab.info_panel, tab.external_key_edit):
        focus_on(console, widget)
        assert focus_claims(w) == [], widget
    assert not QAccessible.queryAccessibleInterface(tab.chat_input).state().focused
    assert not QAccessible.queryAccessibleInterface(tab).state().focused
    w.grab().save("/tmp/a12g-session.png")


# ---------------------------------------------------------------- 200 %


def test_at_200_percent_on_a_1080p_screen_nothing_is_cut(console: Console) -> None:
    # QT_SCALE_FACTOR=2 doubles device pixels, not the layout: a 1920x1080 screen at 200 %
    # is 960x540 logical pixels, less a panel.  The window fits in 960x500 and every
    # control keeps its full size, inside the window.
    w = console.window
    assert w.minimumSize().width() <= 960 and w.minimumSize().height() <= 500
    w.resize(w.minimumSize())
    sid = first_waiting(console, "team:network")
    w.accept_row(sid)
    tab = console.wait_tab(sid)
    console.settle()
    for page in (0, 1):
        w.tabs.setCurrentIndex(page)
        QApplication.processEvents()
        assert w.size() == w.minimumSize()
        for control in focusable(w):
            if control.parent() is w.tabs or isinstance(control, QAbstractScrollArea):
                continue
            rect = control.rect().translated(control.mapTo(w, control.rect().topLeft()))
            assert w.rect().contains(rect), f"{control!r} is cut: {rect} outside {w.rect()}"
            assert control.width() >= min(control.sizeHint().width(), control.minimumSizeHint().width()), f"{control!r} is squeezed"
    assert tab.end_button.isVisible() and tab.input_edit.isVisible()
