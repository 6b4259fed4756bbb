"""The queue table model: order kept through real feed traffic, cheap sorts and paints."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
from engine_helpers import Console, RandomDriver, Site, build_site, intake
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont
from pytestqt.qtbot import QtBot

import repconsole.ui.queuemodel as queuemodel
from repconsole.core.model import Origin, Priority, QueueRef, RuleAction, WaitingRule
from repconsole.core.state import QueueDelta, Row
from repconsole.ui import theme
from repconsole.ui.columns import make_columns, sort_rows
from repconsole.ui.queuemodel import ROW_ID_ROLE, QueueTableModel
from repconsole.ui.queuetable import QueueTableView
from repconsole.ui.theme import Role

ASC = Qt.SortOrder.AscendingOrder
DESC = Qt.SortOrder.DescendingOrder
DISPLAY = Qt.ItemDataRole.DisplayRole


class CountingModel(QueueTableModel):
    """Counts data() calls."""

    calls = 0

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        self.calls += 1
        return super().data(index, role)


def new_site(seed: int = 11) -> Site:
    site = build_site(seed)
    site.engine.set_rule("net", WaitingRule(90, RuleAction.MARK_OVERDUE))
    site.engine.set_rule("bill", WaitingRule(150, RuleAction.TRANSFER, "net"))
    return site


def model_for(console: Console, cls: type[QueueTableModel] = QueueTableModel) -> QueueTableModel:
    return cls(clock=console.engine.now, rep_name=console.state.rep_name, queue_name=console.state.queue_name)


def crowd(site: Site, n: int, seed: int = 5) -> None:
    """``n`` arrivals through several origins, with sparse intake fields, spread over time."""
    rng = random.Random(seed)
    for i in range(n):
        customer = intake(
            f"{rng.choice(['Ann', 'Bob', 'Cleo', 'Dev', 'Émile', 'zoë'])} {rng.choice(['Lee', 'Ng', 'Roe'])}",
            company=rng.choice(["", "Acme", "Globex", "Initech"]),
            external_key=rng.choice(["", "", f"INC{i:04d}"]),
            platform=rng.choice(["", "Windows 11", "macOS 14"]),
            priority=rng.choice(list(Priority)),
        )
        site.start(rng.choice([Origin.ISSUE_FORM, Origin.TEAM_BUTTON, Origin.BROWSER_TEAM]), customer)
        if rng.random() < 0.3:
            site.tick(rng.choice([0.0, 2.0, 30.0]))


def expected_ids(console: Console, queue: str, model: QueueTableModel) -> list[str]:
    column = model.columns[model.sort_column()]
    rows = console.state.rows.get(queue, {}).values()
    return [r.id for r in sort_rows(rows, column, model.sort_order() == DESC)]


@pytest.fixture
def loaded(qapp: Any) -> tuple[Site, Console, QueueTableModel]:
    site = new_site()
    erin = site.console("erin")
    crowd(site, 60)
    e = site.engine
    shared = site.waiting_in_net("Shared Sam")
    e.accept("alice", shared.id)
    e.share("alice", shared.id, QueueRef.team("net"))
    site.tick(100)  # the oldest in Networking go overdue
    erin.sync()
    model = model_for(erin)
    model.set_rows(erin.state.rows["team:net"].values())
    return site, erin, model


# --------------------------------------------------------------- structure


def test_model_passes_the_model_tester_after_set_rows(qtmodeltester: Any, loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    assert model.rowCount() > 30
    qtmodeltester.check(model)
    model.set_rows([])
    model.set_rows(erin.state.rows["team:net"].values())
    assert model.row_ids() == expected_ids(erin, "team:net", model)


def test_default_order_is_longest_wait_first(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    assert model.columns[model.sort_column()].key == "waited"
    assert model.sort_order() == DESC
    created = [model.row_at(i).session.created_at for i in range(model.rowCount())]
    assert created == sorted(created)


def test_the_model_exposes_only_the_columns_asked_for_in_their_order(qtmodeltester: Any, loaded: tuple[Site, Console, QueueTableModel]) -> None:
    # What the table's accessibility reads is the model: the columns the rep hides are not there at all.
    site, erin, model = loaded
    assert model.columns == model.all_columns
    for r in range(model.rowCount()):  # fill the cell cache: it is by model column
        for c in range(model.columnCount()):
            model.index(r, c).data()
    rows = model.row_ids()
    signals: list[str] = []
    for name in ("columnsInserted", "columnsRemoved", "columnsMoved", "modelReset", "layoutChanged"):
        getattr(model, name).connect(lambda *args, name=name: signals.append(name))
    kept = QPersistentModelIndex(model.index(3, model.column_index("company")))
    model.set_columns(["priority", "company", "nope", "customer", "priority"])
    assert [c.key for c in model.columns] == ["priority", "company", "customer"] and model.columnCount() == 3
    assert signals and set(signals) <= {"columnsInserted", "columnsRemoved", "columnsMoved"}
    assert model.row_ids() == rows
    assert (kept.row(), kept.column()) == (3, 1)
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(3)] == ["Priority", "Company", "Customer"]
    for r in range(model.rowCount()):
        row = model.row_at(r)
        assert [model.index(r, c).data() for c in (1, 2)] == [row.session.company, row.session.title]
    # Sorted by a column not shown (Waiting); sorting by a shown one and back.
    assert (model.sort_key(), model.sort_column()) == ("waited", -1)
    model.sort(0, DESC)
    assert (model.sort_key(), model.sort_column()) == ("priority", 0)
    assert model.row_ids() == [r.id for r in sort_rows(erin.state.rows["team:net"].values(), model.column("priority"), True)]
    assert model.sort_by_key("waited", DESC) and model.sort_column() == -1 and model.row_ids() == rows
    assert not model.sort_by_key("nope")
    qtmodeltester.check(model)
    # Live columns are found where they are now.
    model.set_columns(["waited", "customer", "in_queue", "time_left"])
    seen: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl.column(), br.column())))
    model.tick(0, 3)
    assert sorted(seen) == [(0, 0), (2, 3)]
    with pytest.raises(ValueError, match="at least one column"):
        model.set_columns(["nope"])


@pytest.mark.parametrize("limit", [0, 6, 10**6], ids=["layout", "mixed", "precise"])
def test_random_traffic_keeps_each_queue_sorted_like_the_state(
    qtmodeltester: Any, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """Real engine traffic through RepFeed and ConsoleState, each batch's delta applied to a model per queue."""
    monkeypatch.setattr(queuemodel, "PRECISE_LIMIT", limit)
    if limit == 6:
        # Also keep as few sort key caches as possible: columns drop out and come back.
        monkeypatch.setattr(queuemodel, "_KEY_CACHE_BUDGET", 1)
    site = new_site(seed=23)
    erin = site.console("erin")
    crowd(site, 25, seed=23)
    erin.sync()
    models = {q: model_for(erin) for q in erin.state.queue_keys()}
    for q, model in models.items():
        model.set_rows(erin.state.rows[q].values())
    # Qt's model tester re-checks the whole model on every signal: one queue is enough.
    qtmodeltester.check(models["team:net"])
    driver = RandomDriver(site, seed=23)
    rng = random.Random(23)
    moves = 0
    sizes: list[int] = []
    for step in range(60):
        driver.run(rng.choice([1, 1, 2, 5, 12, 40]))
        if rng.random() < 0.3:
            crowd(site, rng.choice([1, 2, 6]), seed=step)
        # Hold on to a row of each queue to see where its persistent index goes.
        held: dict[str, tuple[QPersistentModelIndex, str]] = {}
        for q, model in models.items():
            if model.rowCount():
                r = rng.randrange(model.rowCount())
                held[q] = (QPersistentModelIndex(model.index(r, rng.randrange(model.columnCount()))), model.row_at(r).id)
        changes = erin.sync()
        assert not changes.reset
        for q, model in models.items():
            if q in changes.queues:
                model.apply(changes.queues[q])
            if rng.random() < 0.15:
                model.sort(rng.randrange(model.columnCount()), rng.choice([ASC, DESC]))
                moves += 1
            assert model.row_ids() == expected_ids(erin, q, model), f"step {step}, queue {q}"
            sizes.append(model.rowCount())
            if q in held:
                index, row_id = held[q]
                if row_id in erin.state.rows[q]:
                    assert index.isValid() and model.row_for(index).id == row_id  # type: ignore[union-attr]
                else:
                    assert not index.isValid()
    assert moves and sizes and max(sizes) > 30
    assert sum(driver.done.values()) > 300


def test_apply_is_tolerant_of_a_delta_that_does_not_match(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    rows = list(erin.state.rows["team:net"].values())
    model.set_rows(rows[:10])
    delta = QueueDelta()
    delta.removed.add("no-such-row")
    delta.changed[rows[20].id] = rows[20]  # unknown: added
    delta.added[rows[0].id] = rows[0]  # known: changed (same object: nothing to do)
    model.apply(delta)
    assert sorted(model.row_ids()) == sorted(r.id for r in [*rows[:10], rows[20]])
    model.apply(QueueDelta())
    assert model.rowCount() == 11


def test_a_changed_row_moves_to_its_new_place_and_shows_its_new_text(qtbot: QtBot, loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    model.sort(model.column_index("time_left"), ASC)
    status = model.column_index("status")
    fresh = site.waiting_in_net("Newest Nell")
    model.apply(erin.sync().delta("team:net"))
    assert model.row_ids() == expected_ids(erin, "team:net", model)
    pos = model.position_of(fresh.id)
    assert model.index(pos, status).data() == "Waiting"
    site.tick(91)  # Nell goes overdue: the top of a "time left" sort
    changes = erin.sync()
    assert fresh.id in changes.delta("team:net").changed
    with qtbot.waitSignal(model.dataChanged, timeout=1000):
        model.apply(changes.delta("team:net"))
    pos = model.position_of(fresh.id)
    assert model.index(pos, status).data() == "Overdue"
    assert model.row_ids() == expected_ids(erin, "team:net", model)
    assert model.row_at(0).session.overdue


# ----------------------------------------------------------------- sorting


@pytest.mark.parametrize("order", [ASC, DESC], ids=["asc", "desc"])
def test_every_column_sorts_with_empties_last(loaded: tuple[Site, Console, QueueTableModel], order: Qt.SortOrder) -> None:
    site, erin, model = loaded
    rows = list(erin.state.rows["team:net"].values())
    for logical, column in enumerate(model.columns):
        model.sort(logical, order)
        assert model.sort_column() == logical and model.sort_order() == order
        keys = [column.sort_key(model.row_at(i)) for i in range(model.rowCount())]
        filled = [k for k in keys if k is not None]
        assert keys[: len(filled)] == filled, f"{column.key}: empties must come last"
        assert filled == sorted(filled, reverse=order == DESC), column.key
        assert model.row_ids() == [r.id for r in sort_rows(rows, column, order == DESC)], column.key


def test_sorting_makes_no_data_calls(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, _ = loaded
    model = model_for(erin, CountingModel)
    model.set_rows(erin.state.rows["team:net"].values())
    view = QueueTableView()
    view.setModel(model)
    view.resize(900, 500)
    view.select_row_id(model.row_at(3).id)
    model.calls = 0
    for logical in range(model.columnCount()):
        model.sort(logical, ASC)
        model.sort(logical, DESC)
    assert model.calls == 0


def test_sort_moves_persistent_indexes_with_their_rows(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    marks = [(QPersistentModelIndex(model.index(r, c)), model.row_at(r).id, c) for r, c in ((0, 0), (5, 3), (17, 9))]
    for logical in range(model.columnCount()):
        model.sort(logical, DESC if logical % 2 else ASC)
        for index, row_id, column in marks:
            assert model.row_for(index).id == row_id and index.column() == column  # type: ignore[union-attr]


def test_sorting_the_current_order_again_does_nothing(qtbot: QtBot, loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    with qtbot.assertNotEmitted(model.layoutChanged):
        model.sort(model.sort_column(), model.sort_order())
        model.sort(-1, ASC)
        model.sort(model.columnCount(), ASC)


# --------------------------------------------------------------- painting


def test_full_repaint_asks_at_most_eight_roles_per_visible_cell(qtbot: QtBot, loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, _ = loaded
    model = model_for(erin, CountingModel)
    model.set_rows(erin.state.rows["team:net"].values())
    view = QueueTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(1100, 500)
    view.show()
    qtbot.waitExposed(view)
    first, last = view.visible_rows()
    header = view.horizontalHeader()
    width = view.viewport().width()
    columns = [
        logical
        for logical in range(header.count())
        if not header.isSectionHidden(logical) and header.sectionViewportPosition(logical) < width
    ]
    cells = (last - first + 1) * len(columns)
    assert cells > 100
    model.calls = 0
    view.grab()
    assert model.calls > 0
    assert model.calls / cells <= 8, f"{model.calls} data() calls for {cells} visible cells"


def test_roles(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    e = site.engine
    cols = {c.key: i for i, c in enumerate(model.columns)}
    held = site.waiting_in_net("Held Hana")
    e.accept("erin", held.id)
    e.hold("erin", held.id)
    erin.sync()
    personal = model_for(erin)
    personal.set_rows(erin.state.rows["rep:erin"].values())
    index = personal.index_for(held.id, cols["customer"])
    assert index.data(Qt.ItemDataRole.ForegroundRole) == theme.colour(Role.HELD_TEXT)
    assert index.data(Qt.ItemDataRole.BackgroundRole) is None
    assert index.data(ROW_ID_ROLE) == held.id

    overdue = next(model.row_at(i) for i in range(model.rowCount()) if model.row_at(i).session.overdue)
    background = model.index_for(overdue.id, cols["company"]).data(Qt.ItemDataRole.BackgroundRole)
    assert isinstance(background, QColor) and background.red() > background.green()
    left = model.index_for(overdue.id, cols["time_left"])
    assert left.data() == "overdue"
    assert left.data(Qt.ItemDataRole.FontRole).bold()

    invitation = next(model.row_at(i) for i in range(model.rowCount()) if model.row_at(i).invitation is not None)
    font = model.index_for(invitation.id, cols["issue"]).data(Qt.ItemDataRole.FontRole)
    assert isinstance(font, QFont) and font.italic()
    assert model.index_for(invitation.id, cols["status"]).data() == "Invitation from Alice Ng"

    plain = next(model.row_at(i) for i in range(model.rowCount())
                 if not model.row_at(i).session.overdue and model.row_at(i).invitation is None)
    for role in (Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.DecorationRole,
                 Qt.ItemDataRole.CheckStateRole, Qt.ItemDataRole.EditRole):
        assert model.index_for(plain.id, cols["category"]).data(role) is None

    right = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
    assert model.index(0, cols["waited"]).data(Qt.ItemDataRole.TextAlignmentRole) == right
    assert model.index(0, cols["customer"]).data(Qt.ItemDataRole.TextAlignmentRole) != right
    name = model.index(0, cols["customer"])
    assert name.data(Qt.ItemDataRole.ToolTipRole) == name.data()
    assert model.index(0, cols["waited"]).data(Qt.ItemDataRole.ToolTipRole) is None
    assert model.headerData(cols["waited"], Qt.Orientation.Horizontal) == "Waiting"
    assert model.headerData(cols["waited"], Qt.Orientation.Horizontal, Qt.ItemDataRole.InitialSortOrderRole) == DESC.value
    # The (hidden) vertical header names each row for a screen reader.
    assert model.headerData(0, Qt.Orientation.Vertical).startswith(model.row_at(0).session.title + ", ")
    assert model.headerData(model.rowCount(), Qt.Orientation.Vertical) is None
    assert model.data(QModelIndex()) is None


def test_time_columns_follow_the_clock(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    waited = model.column_index("waited")
    newest = model.row_at(model.rowCount() - 1)
    index = model.index_for(newest.id, waited)
    before = index.data()
    site.clock.advance(3600)
    assert index.data() != before
    assert index.data().count(":") == 2  # h:mm:ss now


def test_tick_repaints_only_live_columns_of_the_given_rows(qtbot: QtBot, loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    live = {i for i, c in enumerate(model.columns) if c.live}
    seen: list[tuple[int, int, int, int, list[int]]] = []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl.row(), br.row(), tl.column(), br.column(), list(roles))))
    model.tick(5, 20)
    assert seen
    covered = set()
    for top, bottom, left, right, roles in seen:
        assert (top, bottom) == (5, 20)
        assert roles == [int(DISPLAY.value)]
        covered |= set(range(left, right + 1))
    assert covered == live
    seen.clear()
    model.tick(0, -1)
    model.tick(10**6, 10**6 + 5)
    assert seen == []
    model.tick()
    assert seen and all(bottom == model.rowCount() - 1 for _, bottom, *_ in seen)


def test_display_cache_follows_row_objects(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    company = model.column_index("company")
    row = model.row_at(0)
    assert model.index(0, company).data() == row.session.company
    changed = Row(row.id, row.kind, row.queue, msgspec.structs.replace(row.session, company="Renamed Ltd"), row.invitation)
    delta = QueueDelta()
    delta.change(changed)
    model.apply(delta)
    assert model.index_for(row.id, company).data() == "Renamed Ltd"
    assert model.row_by_id(row.id) is changed


def test_lookups(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    for r in range(model.rowCount()):
        row = model.row_at(r)
        assert model.position_of(row.id) == r
        assert model.index_for(row.id, 2) == model.index(r, 2)
        assert model.row_for(model.index(r, 4)) is row
    assert model.position_of("nope") == -1
    assert not model.index_for("nope").isValid()
    assert model.row_for(QModelIndex()) is None
    assert model.row_by_id("nope") is None
    assert model.row_ids() == [model.row_at(r).id for r in range(model.rowCount())]


def test_refresh_picks_up_renamed_reps(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    invited_by = model.column_index("invited_by")
    invitation = next(model.row_at(i) for i in range(model.rowCount()) if model.row_at(i).invitation is not None)
    assert model.index_for(invitation.id, invited_by).data() == "Alice Ng"
    erin.state.reps["alice"] = msgspec.structs.replace(erin.state.reps["alice"], name="Alice Ngata")
    model.refresh()
    assert model.index_for(invitation.id, invited_by).data() == "Alice Ngata"


def test_search_results_can_be_shown(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    from repconsole.ui.search import search_rows

    site, erin, model = loaded
    found = search_rows(erin.state, "acme")
    model.set_rows(found)
    assert sorted(model.row_ids()) == sorted(r.id for r in found)
    queue = model.column_index("queue")
    assert {model.index(r, queue).data() for r in range(model.rowCount())} <= {"Networking", "Billing", "Personal"}


def test_rows_are_deduplicated_by_id(loaded: tuple[Site, Console, QueueTableModel]) -> None:
    site, erin, model = loaded
    rows = list(erin.state.rows["team:net"].values())
    model.set_rows(rows + rows[:5])
    assert model.rowCount() == len(rows)
    assert model.row_ids() == [r.id for r in sort_rows(rows, model.columns[model.sort_column()], True)]
    assert len(make_columns()) == model.columnCount()
