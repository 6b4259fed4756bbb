"""The queue table view: selection, details toggle, accepting, sorting, layouts."""

from __future__ import annotations

import random
from typing import Any

import pytest
from engine_helpers import Console, Site, build_site, intake
from PySide6.QtCore import QPoint, QStringListModel, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView
from pytestqt.qtbot import QtBot

import repconsole.ui.queuemodel as queuemodel
from repconsole.core.model import Origin, Priority, RuleAction, WaitingRule
from repconsole.ui.queuemodel import QueueTableModel
from repconsole.ui.queuetable import MAX_COLUMN_WIDTH, MIN_COLUMN_WIDTH, QueueTableView

ASC = Qt.SortOrder.AscendingOrder
DESC = Qt.SortOrder.DescendingOrder


class Table:
    """A site, Erin's console, and a shown table over her Networking queue."""

    def __init__(self, qtbot: QtBot, n: int = 40) -> None:
        self.site: Site = build_site(5)
        self.site.engine.set_rule("net", WaitingRule(300, RuleAction.MARK_OVERDUE))
        self.erin: Console = self.site.console("erin")
        self.rng = random.Random(5)
        self.arrive(n)
        self.erin.sync()
        self.model = QueueTableModel(clock=self.site.engine.now, rep_name=self.erin.state.rep_name, queue_name=self.erin.state.queue_name)
        self.model.set_rows(self.erin.state.rows["team:net"].values())
        self.view = QueueTableView(clock=self.site.engine.now)
        qtbot.addWidget(self.view)
        self.view.setModel(self.model)
        self.view.resize(1000, 420)
        self.view.show()
        qtbot.waitExposed(self.view)

    def arrive(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            customer = intake(
                f"{self.rng.choice(['Ann', 'Bob', 'Cleo', 'Dev'])} {self.rng.choice(['Lee', 'Ng', 'Roe'])} {i}",
                company=self.rng.choice(["", "Acme", "Globex"]),
                priority=self.rng.choice(list(Priority)),
            )
            ids.append(self.site.start(self.rng.choice([Origin.ISSUE_FORM, Origin.TEAM_BUTTON]), customer).id)
            self.site.tick(self.rng.choice([0.0, 1.0, 5.0]))
        return ids

    def sync(self) -> None:
        self.model.apply(self.erin.sync().delta("team:net"))

    def center(self, row_id: str) -> QPoint:
        index = self.model.index_for(row_id, self.view.horizontalHeader().logicalIndex(0))
        return self.view.visualRect(index).center()

    def selected_position(self) -> int:
        rows = self.view.selectionModel().selectedRows()
        assert len(rows) == 1
        return rows[0].row()


@pytest.fixture
def table(qtbot: QtBot) -> Table:
    return Table(qtbot)


def double_click(qtbot: QtBot, view: QueueTableView, pos: QPoint) -> None:
    """What the window system sends: press, release, then a double-click event."""
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def header_point(view: QueueTableView, key: str) -> QPoint:
    header = view.horizontalHeader()
    logical = view.queue_model().column_index(key)  # type: ignore[union-attr]
    return QPoint(header.sectionViewportPosition(logical) + 10, header.height() // 2)


# ------------------------------------------------------------------ setup


def test_view_is_set_up_for_large_queues(table: Table) -> None:
    view = table.view
    assert view.selectionBehavior() == QAbstractItemView.SelectionBehavior.SelectRows
    assert view.selectionMode() == QAbstractItemView.SelectionMode.SingleSelection
    assert view.alternatingRowColors() and not view.showGrid()
    assert view.verticalHeader().isHidden()
    assert view.verticalHeader().sectionResizeMode(0) == QHeaderView.ResizeMode.Fixed
    header = view.horizontalHeader()
    assert header.sectionsMovable() and header.isSortIndicatorShown()
    assert all(header.sectionResizeMode(i) == QHeaderView.ResizeMode.Interactive for i in range(header.count()))
    shown = [table.model.columns[header.logicalIndex(v)].key for v in range(header.count()) if not header.isSectionHidden(header.logicalIndex(v))]
    assert shown == ["customer", "company", "issue", "category", "waited", "time_left", "priority", "origin", "status", "owner"]
    assert table.model.columns[header.sortIndicatorSection()].key == "waited"
    assert header.sortIndicatorOrder() == DESC
    with pytest.raises(TypeError):
        view.setModel(QStringListModel(["not a queue"]))


def test_visible_rows_and_tick(qtbot: QtBot, table: Table) -> None:
    view, model = table.view, table.model
    first, last = view.visible_rows()
    assert first == 0 and 5 < last < model.rowCount() - 1
    view.scrollToBottom()
    assert view.visible_rows()[1] == model.rowCount() - 1
    seen: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl.row(), br.row())))
    view.tick()
    first, last = view.visible_rows()
    assert seen and set(seen) == {(first, last)}
    model.set_rows([])
    assert view.visible_rows() == (0, -1)


# ------------------------------------------------------- details / accept


def test_clicking_toggles_and_switches_details(qtbot: QtBot, table: Table) -> None:
    view, model = table.view, table.model
    a, b = model.row_at(2).id, model.row_at(4).id
    emitted: list[Any] = []
    view.detailsToggled.connect(emitted.append)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=table.center(a))
    assert emitted == [a] and view.current_row_id() == a
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=table.center(a))
    assert emitted == [a, None] and view.current_row_id() == a  # still selected, details closed
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=table.center(a))
    assert emitted == [a, None, a]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=table.center(b))
    assert emitted == [a, None, a, b]
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert emitted[-1] == model.row_at(5).id == view.current_row_id()
    qtbot.keyClick(view, Qt.Key.Key_Up)
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert emitted[-1] == model.row_at(3).id
    assert view.details_row_id == model.row_at(3).id


def test_double_click_and_enter_accept(qtbot: QtBot, table: Table) -> None:
    view, model = table.view, table.model
    a, b = model.row_at(1).id, model.row_at(3).id
    with qtbot.waitSignal(view.acceptRequested, timeout=1000) as accepted:
        double_click(qtbot, view, table.center(a))
    assert accepted.args == [a]
    assert view.details_row_id == a
    # Double-clicking the entry whose details are open leaves them open.
    with qtbot.waitSignal(view.acceptRequested, timeout=1000) as accepted:
        double_click(qtbot, view, table.center(a))
    assert accepted.args == [a] and view.details_row_id == a
    view.select_row_id(b)
    for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
        with qtbot.waitSignal(view.acceptRequested, timeout=1000) as accepted:
            qtbot.keyClick(view, key)
        assert accepted.args == [b]
    view.clearSelection()
    with qtbot.assertNotEmitted(view.acceptRequested):
        qtbot.keyClick(view, Qt.Key.Key_Return)
    # A double-click below the last entry accepts nothing.
    model.set_rows(list(table.erin.state.rows["team:net"].values())[:3])
    with qtbot.assertNotEmitted(view.acceptRequested):
        double_click(qtbot, view, QPoint(20, view.viewport().height() - 5))


# --------------------------------------------------------------- sorting


def test_header_clicks_sort_through_the_model_and_keep_the_selection(qtbot: QtBot, table: Table) -> None:
    view, model = table.view, table.model
    header = view.horizontalHeader()
    chosen = model.row_at(7).id
    view.select_row_id(chosen)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=header_point(view, "customer"))
    assert model.columns[model.sort_column()].key == "customer" and model.sort_order() == ASC
    assert view.current_row_id() == chosen and table.selected_position() == model.position_of(chosen)
    names = [model.row_at(i).session.customer_name.casefold() for i in range(model.rowCount())]
    assert names == sorted(names)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=header_point(view, "customer"))
    assert model.sort_order() == DESC
    assert view.current_row_id() == chosen and table.selected_position() == model.position_of(chosen)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=header_point(view, "priority"))
    assert model.columns[model.sort_column()].key == "priority" and model.sort_order() == DESC  # urgent first
    assert view.current_row_id() == chosen
    # The selected row stays in sight.
    first, last = view.visible_rows()
    assert first <= model.position_of(chosen) <= last


@pytest.mark.parametrize("limit", [0, 10**6], ids=["layout", "precise"])
def test_selection_survives_feed_updates(qtbot: QtBot, table: Table, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    monkeypatch.setattr(queuemodel, "PRECISE_LIMIT", limit)
    view, model = table.view, table.model
    view.sort_by("customer")
    chosen = model.row_at(10).id
    view.select_row_id(chosen)
    emitted: list[Any] = []
    view.detailsToggled.connect(emitted.append)
    e = table.site.engine
    for _ in range(3):
        table.arrive(15)
        leaving = [model.row_at(i).id for i in (0, 1, 2, 20) if model.row_at(i).id != chosen]
        for sid in leaving:
            e.customer_leave(sid)
        table.site.tick(400)  # overdue: changes in place
        table.sync()
        assert view.current_row_id() == chosen
        assert table.selected_position() == model.position_of(chosen)
    assert emitted == []
    # When the selected entry leaves, the selection and the details go.
    view.select_row_id(model.row_at(0).id)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=table.center(chosen))
    assert emitted[-1] == chosen
    e.accept("alice", chosen)
    table.sync()
    assert view.current_row_id() is None
    assert emitted[-1] is None and view.details_row_id is None


def test_selection_survives_set_rows(qtbot: QtBot, table: Table) -> None:
    view, model = table.view, table.model
    chosen = model.row_at(6).id
    view.select_row_id(chosen)
    rows = list(table.erin.state.rows["team:net"].values())
    with qtbot.assertNotEmitted(view.detailsToggled):
        model.set_rows(rows[::-1])
    assert view.current_row_id() == chosen
    with qtbot.waitSignal(view.detailsToggled, timeout=1000) as closed:
        model.set_rows([r for r in rows if r.id != chosen])
    assert closed.args == [None] and view.current_row_id() is None


# ---------------------------------------------------------------- layout


def test_layout_round_trips_per_column_key(qtbot: QtBot, table: Table) -> None:
    view = table.view
    header = view.horizontalHeader()
    model = table.model
    logical = model.column_index
    header.moveSection(header.visualIndex(logical("priority")), 0)
    header.moveSection(header.visualIndex(logical("owner")), 2)
    view.set_column_visible("origin", False)
    view.set_column_visible("external_key", True)
    header.resizeSection(logical("company"), 233)
    view.sort_by("customer", descending=True)
    saved = view.save_layout()
    assert saved["sort"] == {"key": "customer", "order": "desc"}
    assert [c["key"] for c in saved["columns"]][:3] == ["priority", "customer", "owner"]
    assert {c["key"]: c["width"] for c in saved["columns"]}["company"] == 233

    other = Table(qtbot, n=5)
    other.view.restore_layout(saved)
    assert other.view.save_layout() == saved
    h2 = other.view.horizontalHeader()
    m2 = other.model
    # The model shows the visible columns in the saved order; the header neither hides nor moves any.
    assert [c.key for c in m2.columns] == [c["key"] for c in saved["columns"] if c["visible"]]
    assert [h2.logicalIndex(v) for v in range(h2.count())] == list(range(m2.columnCount())) and h2.hiddenSectionCount() == 0
    assert not other.view.is_column_visible("origin") and other.view.is_column_visible("external_key")
    assert h2.sectionSize(m2.column_index("company")) == 233
    assert m2.columns[m2.sort_column()].key == "customer" and m2.sort_order() == DESC
    assert h2.sortIndicatorOrder() == DESC


def test_columns_come_go_and_move_in_the_model_keeping_rows_and_selection(table: Table) -> None:
    view, model = table.view, table.model
    header = view.horizontalHeader()
    chosen = model.row_at(5).id
    view.select_row_id(chosen)
    rows = model.row_ids()
    view.set_column_visible("platform", True)
    view.set_column_visible("customer", False)
    header.moveSection(3, 0)  # as the rep drags it
    assert [c.key for c in model.columns][:2] == ["waited", "company"] and model.columns[-1].key == "platform"
    assert header.hiddenSectionCount() == 0 and [header.logicalIndex(v) for v in range(header.count())] == list(range(model.columnCount()))
    assert model.row_ids() == rows and view.current_row_id() == chosen
    position = model.position_of(chosen)
    assert all(view.selectionModel().isSelected(model.index(position, c)) for c in range(model.columnCount()))
    assert [header.sectionSize(i) for i in range(header.count() - 1)] == [view.column_width(c.key) for c in model.columns[:-1]]


def test_the_table_can_be_sorted_by_a_column_it_does_not_show(table: Table) -> None:
    view, model = table.view, table.model
    header = view.horizontalHeader()
    view.sort_by("priority", descending=True)
    order = model.row_ids()
    view.set_column_visible("priority", False)
    assert model.sort_key() == "priority" and model.row_ids() == order
    assert header.sortIndicatorSection() == -1
    assert view.accessibleDescription() == "sorted by Priority, descending"
    assert view.save_layout()["sort"] == {"key": "priority", "order": "desc"}
    view.set_column_visible("priority", True)
    assert header.sortIndicatorSection() == model.column_index("priority") and header.sortIndicatorOrder() == DESC


def test_stretched_last_column_keeps_its_own_width(table: Table) -> None:
    view = table.view
    header = view.horizontalHeader()
    last = table.model.columns[header.logicalIndex(header.count() - 1)]
    view.set_column_visible(last.key, True)
    view.resize(3000, 400)
    assert header.sectionSize(header.logicalIndex(header.count() - 1)) > last.default_width
    saved = {c["key"]: c["width"] for c in view.save_layout()["columns"]}
    assert saved[last.key] == last.default_width


def test_restore_survives_damaged_and_foreign_layouts(table: Table) -> None:
    view, model = table.view, table.model
    header = view.horizontalHeader()
    for junk in (None, [], "x", {"columns": "all"}, {"columns": [None, 3, {"key": 5}]}, {"sort": "up"}, {"sort": {"key": "nope", "order": "asc"}}):
        view.restore_layout(junk)  # type: ignore[arg-type]
        assert view.save_layout() == defaults(table)
    view.restore_layout({
        "columns": [
            {"key": "from_a_future_version", "visible": True, "width": 100},
            {"key": "owner", "visible": True, "width": 10**6},
            {"key": "owner", "visible": False, "width": 5},
            {"key": "customer", "visible": "yes", "width": "wide"},
            {"key": "company", "visible": False, "width": 1},
            {"key": "status", "visible": True, "width": True},
        ],
        "sort": {"key": "status", "order": "asc"},
    })
    saved = view.save_layout()
    keys = [c["key"] for c in saved["columns"]]
    assert keys[:4] == ["owner", "customer", "company", "status"]
    assert sorted(keys) == sorted(c.key for c in model.all_columns)  # new columns appended with defaults
    widths = {c["key"]: c["width"] for c in saved["columns"]}
    visible = {c["key"]: c["visible"] for c in saved["columns"]}
    assert widths["owner"] == MAX_COLUMN_WIDTH and widths["company"] == MIN_COLUMN_WIDTH
    assert widths["customer"] == model.columns[model.column_index("customer")].default_width
    assert widths["status"] == model.columns[model.column_index("status")].default_width
    assert visible["customer"] and not visible["company"] and visible["owner"]
    assert visible["details"] is False and visible["issue"] is True  # defaults for unmentioned columns
    assert saved["sort"] == {"key": "status", "order": "asc"}
    # A layout that hides everything falls back to the default visibility.
    view.restore_layout({"columns": [{"key": c.key, "visible": False} for c in model.all_columns]})
    assert header.count() == model.columnCount() == sum(c.default_visible for c in model.all_columns)


def defaults(table: Table) -> dict[str, Any]:
    columns = [{"key": c.key, "visible": c.default_visible, "width": c.default_width} for c in table.model.all_columns]
    return {"columns": columns, "sort": {"key": "waited", "order": "desc"}}


def test_reset_layout_restores_defaults(table: Table) -> None:
    view = table.view
    view.horizontalHeader().moveSection(3, 0)
    view.set_column_visible("customer", False)
    view.sort_by("company")
    view.reset_layout()
    assert view.save_layout() == defaults(table)


def test_column_menu_shows_and_hides_columns(table: Table) -> None:
    view, model = table.view, table.model
    menu = view.column_menu()
    actions = {a.data(): a for a in menu.actions() if a.isCheckable()}
    assert list(actions) == [c.key for c in model.all_columns]
    assert actions["customer"].isChecked() and not actions["platform"].isChecked()
    actions["platform"].setChecked(True)
    actions["customer"].setChecked(False)
    assert view.is_column_visible("platform") and not view.is_column_visible("customer")
    reset = next(a for a in menu.actions() if a.text() == "Reset columns")
    reset.trigger()
    assert view.save_layout() == defaults(table)
    # The last visible column cannot be hidden.
    for column in model.columns[1:]:
        view.set_column_visible(column.key, False)
    assert not view.set_column_visible(model.columns[0].key, False)
    assert view.is_column_visible(model.columns[0].key)
    menu = view.column_menu()
    only = next(a for a in menu.actions() if a.data() == model.columns[0].key)
    assert only.isChecked() and not only.isEnabled()
    assert not view.set_column_visible("no-such-column", True)


# ------------------------------------------------------------ rows that stay put


def row_under(t: Table, pos: QPoint) -> str | None:
    row = t.model.row_for(t.view.indexAt(pos))
    return row.id if row is not None else None


@pytest.mark.parametrize("batch", [1, 100], ids=["one-by-one", "one-batch"])
def test_the_selected_row_stays_under_a_fixed_pointer_while_100_arrivals_sort_in_above_it(qtbot: QtBot, batch: int) -> None:
    t = Table(qtbot, n=60)
    t.view.sort_by("waited", descending=False)  # newest first: every arrival sorts in at the top
    target = t.model.row_ids()[8]
    t.view.select_row_id(target)
    pos = t.center(target)
    qtbot.mouseMove(t.view.viewport(), pos)
    before = t.model.position_of(target)
    for _ in range(100 // batch):
        t.arrive(batch)
        t.sync()
    assert t.model.position_of(target) == before + 100  # they did sort in above it
    assert row_under(t, pos) == target
    assert t.view.current_row_id() == target


def test_with_nothing_selected_the_row_under_the_pointer_stays(qtbot: QtBot) -> None:
    t = Table(qtbot, n=60)
    t.view.sort_by("waited", descending=False)
    target = t.model.row_ids()[4]
    pos = t.center(target)
    qtbot.mouseMove(t.view.viewport(), pos)
    assert t.view.current_row_id() is None
    t.arrive(30)
    t.sync()
    assert row_under(t, pos) == target


def test_without_pointer_or_selection_arrivals_push_rows_down(qtbot: QtBot) -> None:
    t = Table(qtbot, n=60)
    t.view.sort_by("waited", descending=False)
    target = t.model.row_ids()[4]
    pos = t.center(target)
    t.arrive(3)
    t.sync()
    assert t.view.verticalScrollBar().value() == 0
    assert row_under(t, pos) != target


def test_a_double_click_accepts_the_row_its_press_landed_on(qtbot: QtBot) -> None:
    t = Table(qtbot, n=60)
    y = t.model.row_ids()[6]
    pos = t.center(y)
    qtbot.mousePress(t.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseRelease(t.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    # Another row slides under the pointer before the second click arrives.
    t.view.verticalScrollBar().setValue(t.view.verticalScrollBar().value() + 3 * t.view.rowHeight(0))
    slid = row_under(t, pos)
    assert slid is not None and slid != y
    with qtbot.waitSignal(t.view.acceptRequested, timeout=1000) as blocker:
        qtbot.mouseDClick(t.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert blocker.args == [y]


def test_a_double_click_on_a_row_that_went_accepts_nothing(qtbot: QtBot) -> None:
    t = Table(qtbot, n=20)
    y = t.model.row_ids()[2]
    pos = t.center(y)
    qtbot.mouseClick(t.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    t.site.engine.accept("bob", y)
    t.sync()
    with qtbot.assertNotEmitted(t.view.acceptRequested):
        qtbot.mouseDClick(t.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


@pytest.mark.parametrize("others", [0, 200], ids=["precise", "as-layout"])
def test_a_lost_race_is_told_in_place_of_the_row_for_a_few_seconds(qtbot: QtBot, others: int) -> None:
    t = Table(qtbot, n=30)
    y = t.model.row_ids()[3]
    t.view.select_row_id(y)
    top = t.view.visualRect(t.model.index_for(y)).top()
    t.site.engine.accept("bob", y)
    t.arrive(others)
    t.sync()
    assert t.model.position_of(y) < 0
    assert t.view.show_lost(y, "Bob Ortiz took Ann Lee")
    notice = t.view.lost_notice
    assert notice.isVisible() and notice.text() == "Bob Ortiz took Ann Lee" and notice.y() == top
    t.site.clock.advance(4.9)
    t.view.tick()
    assert notice.isVisible()
    t.site.clock.advance(0.1)
    t.view.tick()
    assert not notice.isVisible()


def test_no_lost_race_notice_for_a_row_the_rep_was_not_reaching_for(table: Table) -> None:
    y = table.model.row_ids()[3]
    table.site.engine.accept("bob", y)
    table.sync()
    assert not table.view.show_lost(y, "Bob Ortiz took Ann Lee")
    assert not table.view.lost_notice.isVisible()
