"""The rep's arrangement of a queue table's columns, without Qt."""

from __future__ import annotations

import pytest

from repconsole.ui.columnlayout import MAX_COLUMN_WIDTH, MIN_COLUMN_WIDTH, ColumnLayout
from repconsole.ui.columns import make_columns

COLUMNS = make_columns()
DEFAULT_SHOWN = ["customer", "company", "issue", "category", "waited", "time_left", "priority", "origin", "status", "owner"]


@pytest.fixture
def layout() -> ColumnLayout:
    return ColumnLayout(COLUMNS)


def test_the_default_layout_shows_the_default_columns_in_order(layout: ColumnLayout) -> None:
    assert layout.shown() == DEFAULT_SHOWN
    assert layout.order == [c.key for c in COLUMNS]
    assert layout.saved() == [{"key": c.key, "visible": c.default_visible, "width": c.default_width} for c in COLUMNS]


def test_arranging_the_shown_columns_keeps_hidden_ones_in_their_place(layout: ColumnLayout) -> None:
    layout.set_visible("company", False)
    layout.set_visible("details", True)
    shown = layout.shown()
    assert shown == ["customer", "issue", "category", "waited", "time_left", "priority", "origin", "status", "owner", "details"]
    # The rep drags Priority to the front and Details before Owner.
    layout.arrange(["priority", "customer", "issue", "category", "waited", "time_left", "origin", "status", "details", "owner"])
    assert layout.shown() == ["priority", "customer", "issue", "category", "waited", "time_left", "origin", "status", "details", "owner"]
    assert layout.order.index("company") == 1  # hidden, still right after the first column
    assert layout.order[-2:] == ["locale", "owner"]  # Details took Owner's slot; hidden columns did not move
    # Shown again, Company comes back where it was.
    layout.set_visible("company", True)
    assert layout.shown()[:3] == ["priority", "company", "customer"]


def test_a_column_shown_for_now_is_never_saved_as_shown_or_moved(layout: ColumnLayout) -> None:
    saved = layout.saved()
    assert layout.show_for_now("queue", True, at=1)
    assert layout.shown()[:3] == ["customer", "queue", "company"]
    assert layout.saved() == saved
    assert not layout.show_for_now("customer", True, at=0)  # shown already
    # The rep drags columns meanwhile: the for-now column keeps its new place, the rep's order changes.
    layout.arrange(["company", "customer", "queue", *DEFAULT_SHOWN[2:]])
    assert layout.shown()[:3] == ["company", "customer", "queue"]
    assert [c["key"] for c in layout.saved()][:2] == ["company", "customer"]
    assert layout.show_for_now("queue", False, at=1)
    assert layout.shown() == ["company", "customer", *DEFAULT_SHOWN[2:]]
    assert not layout.show_for_now("queue", False, at=1)
    assert {c["key"]: c["visible"] for c in layout.saved()}["queue"] is False


def test_a_column_shown_for_now_that_the_rep_shows_stays_where_it_is(layout: ColumnLayout) -> None:
    layout.show_for_now("queue", True, at=1)
    assert layout.set_visible("queue", True)
    assert layout.for_now == {}
    assert layout.shown()[:3] == ["customer", "queue", "company"]
    assert [c["key"] for c in layout.saved() if c["visible"]] == layout.shown()
    layout.show_for_now("platform", True, at=0)
    assert layout.set_visible("platform", False) and "platform" not in layout.shown()


def test_the_last_shown_column_cannot_be_hidden_and_unknown_keys_are_refused(layout: ColumnLayout) -> None:
    for key in DEFAULT_SHOWN[1:]:
        assert layout.set_visible(key, False)
    assert not layout.set_visible("customer", False)
    assert layout.shown() == ["customer"]
    assert not layout.set_visible("nope", True)
    assert not layout.show_for_now("nope", True, at=0)


def test_a_saved_layout_is_read_however_old_or_damaged() -> None:
    for junk in (None, [], "x", {"columns": "all"}, {"columns": [None, 3, {"key": 5}]}):
        assert ColumnLayout.from_saved(COLUMNS, junk).saved() == ColumnLayout(COLUMNS).saved()
    restored = ColumnLayout.from_saved(COLUMNS, {"columns": [
        {"key": "from_a_future_version", "visible": True, "width": 100},
        {"key": "owner", "visible": True, "width": 10**6},
        {"key": "owner", "visible": False, "width": 5},
        {"key": "company", "visible": False, "width": 1},
        {"key": "customer", "visible": "yes", "width": True},
    ]})  # fmt: skip
    assert restored.order[:3] == ["owner", "company", "customer"] and sorted(restored.order) == sorted(c.key for c in COLUMNS)
    assert restored.widths["owner"] == MAX_COLUMN_WIDTH and restored.widths["company"] == MIN_COLUMN_WIDTH
    assert restored.shown()[:2] == ["owner", "customer"]
    everything_hidden = ColumnLayout.from_saved(COLUMNS, {"columns": [{"key": c.key, "visible": False} for c in COLUMNS]})
    assert everything_hidden.shown() == DEFAULT_SHOWN
