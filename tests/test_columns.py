"""The queue table's columns, ordering and search, without Qt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import T0, Console, RandomDriver, Site, build_site, intake
from hypothesis import given, settings
from hypothesis import strategies as st

from repconsole.core.model import (
    Origin,
    Priority,
    QueueRef,
    RuleAction,
    SessionState,
    WaitingRule,
)
from repconsole.core.state import Row, RowKind
from repconsole.protocol import SessionView
from repconsole.ui.columns import (
    CENTER,
    LEFT,
    RIGHT,
    Column,
    canonical_key,
    column_index,
    format_countdown,
    format_duration,
    make_columns,
    sort_rows,
)
from repconsole.ui.search import search_rows

ROOT = Path(__file__).resolve().parents[1]


def session_view(sid: str, **fields: Any) -> SessionView:
    """A waiting session view with empty intake, ``fields`` set: for rows built by hand."""
    base: dict[str, Any] = {
        "id": sid, "origin": Origin.ISSUE_FORM, "browser": False, "created_at": 0.0, "customer_name": "", "company": "",
        "company_code": "", "issue_code": None, "issue": "", "category": "", "details": "", "platform": "", "locale": "",
        "external_key": "", "custom_fields": {}, "portal": "", "session_key": "", "source": "", "page_url": "",
        "priority": Priority.NORMAL, "state": SessionState.WAITING, "queue": "team:x", "queue_entered_at": 0.0,
        "owner": None, "participants": [], "held": False, "overdue": False, "rule_deadline": None, "transfer_note": "",
        "invitations": [], "timeline": [], "ended_at": None, "end_reason": "",
    }
    return SessionView(**(base | fields))


@pytest.fixture
def site() -> Site:
    s = build_site()
    s.engine.set_rule("net", WaitingRule(120, RuleAction.MARK_OVERDUE))
    return s


def columns_for(console: Console) -> dict[str, Column]:
    return {c.key: c for c in make_columns(console.state.rep_name, console.state.queue_name)}


def row(console: Console, queue: str, row_id: str) -> Row:
    console.sync()
    return console.state.rows[queue][row_id]


# ------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (0.999, "0:00"), (59.9, "0:59"), (61, "1:01"), (600, "10:00"), (3599, "59:59"),
     (3600, "1:00:00"), (3725.5, "1:02:05"), (100 * 3600 + 1, "100:00:01"), (-5, "0:00"), (float("-inf"), "0:00")],
)
def test_durations_are_m_ss_or_h_mm_ss(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(0.2, "0:01"), (59.01, "1:00"), (0, "0:00"), (-3, "0:00"), (3599.5, "1:00:00")])
def test_countdowns_round_up(seconds: float, text: str) -> None:
    assert format_countdown(seconds) == text


# ---------------------------------------------------------- declarations


def test_columns_are_declared_as_data() -> None:
    columns = make_columns()
    keys = [c.key for c in columns]
    assert len(keys) == len(set(keys))
    for required in ("customer", "company", "issue", "category", "origin", "waited", "in_queue", "time_left", "priority",
                     "owner", "status", "session_key", "external_key", "platform", "queue", "invited_by"):
        assert required in keys
    for c in columns:
        assert c.align in (LEFT, RIGHT, CENTER)
        assert 30 <= c.default_width <= 400
        assert c.title and c.description
    live = {c.key for c in columns if c.live}
    assert live == {"waited", "in_queue", "time_left"}
    shown = [c.key for c in columns if c.default_visible]
    assert shown[:10] == ["customer", "company", "issue", "category", "waited", "time_left", "priority", "origin", "status", "owner"]
    assert column_index(columns, "priority") == keys.index("priority")
    assert column_index(columns, "nope") == -1


def test_qt_free_modules_do_not_import_qt() -> None:
    code = (
        "import sys\n"
        "import repconsole.ui.columns, repconsole.ui.columnlayout, repconsole.ui.search, repconsole.settings\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'qasync')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------- display


def test_waiting_session_cells(site: Site) -> None:
    erin = site.console("erin")
    s = site.engine.start_with_issue("vpn", intake("Ann Lee", company="Acme", platform="Windows 11", external_key="INC-7",
                                                   priority=Priority.URGENT, locale="en-GB"))
    site.tick(65)
    r = row(erin, "team:net", s.id)
    cols = columns_for(erin)
    now = site.clock.now
    text = {k: c.display(r, now) for k, c in cols.items()}
    assert text["customer"] == "Ann Lee"
    assert text["company"] == "Acme"
    assert text["issue"] == "VPN won't connect"
    assert text["category"] == "Network"
    assert text["origin"] == Origin.ISSUE_FORM.label
    assert text["waited"] == "1:05"
    assert text["in_queue"] == "1:05"
    assert text["time_left"] == "0:55"
    assert text["priority"] == "Urgent"
    assert text["status"] == "Waiting"
    assert text["owner"] == ""
    assert text["invited_by"] == ""
    assert text["queue"] == "Networking"
    assert text["external_key"] == "INC-7"
    assert text["platform"] == "Windows 11"
    assert text["locale"] == "en-GB"
    assert text["session_key"] == ""
    assert cols["priority"].sort_key(r) == int(Priority.URGENT)
    assert cols["session_key"].sort_key(r) is None
    assert cols["waited"].sort_key(r) == -T0


def test_time_columns_follow_the_clock_without_changing_sort_keys(site: Site) -> None:
    erin = site.console("erin")
    s = site.waiting_in_net()
    r = row(erin, "team:net", s.id)
    cols = columns_for(erin)
    keys = {k: c.sort_key(r) for k, c in cols.items()}
    assert cols["waited"].display(r, T0 + 3725) == "1:02:05"
    assert cols["time_left"].display(r, T0 + 119.5) == "0:01"
    assert cols["time_left"].display(r, T0 + 500) == "0:00"  # the engine has not acted yet
    assert {k: c.sort_key(r) for k, c in cols.items()} == keys


def test_overdue_session(site: Site) -> None:
    erin = site.console("erin")
    s = site.waiting_in_net()
    site.tick(121)
    r = row(erin, "team:net", s.id)
    cols = columns_for(erin)
    assert r.session.overdue
    assert cols["time_left"].display(r, site.clock.now) == "overdue"
    assert cols["status"].display(r, site.clock.now) == "Overdue"
    assert cols["time_left"].sort_key(r) == float("-inf")


def test_browser_session_is_marked_but_sorts_by_name(site: Site) -> None:
    erin = site.console("erin")
    s = site.start(Origin.BROWSER_TEAM, intake("Zed Ray"))
    r = row(erin, "team:bill", s.id)
    cols = columns_for(erin)
    assert cols["customer"].display(r, 0.0) == "[Browser] Zed Ray"
    assert cols["customer"].sort_key(r) == b"zed ray"
    assert cols["time_left"].display(r, 0.0) == ""
    assert cols["time_left"].sort_key(r) is None


def test_held_active_and_invitation_rows(site: Site) -> None:
    e = site.engine
    erin = site.console("erin")
    held = site.waiting_in_net("Held Person")
    e.accept("erin", held.id)
    e.hold("erin", held.id)
    active = site.waiting_in_net("Active Person")
    e.accept("erin", active.id)
    shared = site.waiting_in_net("Shared Person")
    e.accept("alice", shared.id)
    inv = e.share("alice", shared.id, QueueRef.team("bill"))
    site.tick(30)
    erin.sync()
    cols = columns_for(erin)
    now = site.clock.now

    r = erin.state.rows["rep:erin"][held.id]
    assert r.kind is RowKind.WAITING
    assert cols["status"].display(r, now) == "On hold"
    assert cols["owner"].display(r, now) == "Erin Wu"

    r = erin.state.rows["rep:erin"][active.id]
    assert r.kind is RowKind.MINE
    assert cols["status"].display(r, now) == "Active"
    assert cols["in_queue"].display(r, now) == ""
    assert cols["in_queue"].sort_key(r) is None

    r = erin.state.rows["team:bill"][inv.id]
    assert r.kind is RowKind.INVITATION
    assert cols["status"].display(r, now) == "Invitation from Alice Ng"
    assert cols["invited_by"].display(r, now) == "Alice Ng"
    assert cols["owner"].display(r, now) == "Alice Ng"
    assert cols["in_queue"].display(r, now) == "0:30"
    assert cols["queue"].display(r, now) == "Billing"
    ranks = [cols["status"].sort_key(erin.state.rows[q][i]) for q, i in
             (("rep:erin", active.id), ("rep:erin", held.id), ("team:bill", inv.id))]
    assert ranks == sorted(ranks, reverse=True)


def test_session_key_column(site: Site) -> None:
    alice = site.console("alice")
    s = site.start(Origin.SESSION_KEY, intake("Kim"))
    r = row(alice, "rep:alice", s.id)
    cols = columns_for(alice)
    assert cols["session_key"].display(r, 0.0) == s.session_key
    assert cols["session_key"].sort_key(r) == s.session_key.casefold().encode()


# --------------------------------------------------------------- ordering


def random_rows(seed: int = 3, steps: int = 400) -> list[Row]:
    """Erin's rows after random traffic, plus a crowd of arrivals with sparse fields."""
    site = build_site(seed)
    site.engine.set_rule("net", WaitingRule(90, RuleAction.MARK_OVERDUE))
    erin = site.console("erin")
    RandomDriver(site, seed).run(steps)
    rng = site.rng
    for i in range(40):
        customer = intake(
            rng.choice(["Ann", "bob", "Émile", "Zoë", "ann"]) + f" {i % 7}",
            company=rng.choice(["", "Acme", "acme", "Globex"]),
            external_key=rng.choice(["", "", f"INC{i % 5}"]),
            platform=rng.choice(["", "macOS"]),
            priority=rng.choice(list(Priority)),
        )
        site.start(rng.choice([Origin.ISSUE_FORM, Origin.TEAM_BUTTON, Origin.BROWSER_TEAM]), customer)
        if i % 3 == 0:
            site.tick(rng.choice([0.0, 1.0, 45.0]))
    e = site.engine
    for name, target in (("Inv One", "bill"), ("Inv Two", "net")):
        shared = e.start_with_issue("vpn", intake(name))
        e.accept("alice", shared.id)
        e.share("alice", shared.id, QueueRef.team(target))
    held = e.start_with_issue("invoice", intake("Held Hal"))
    e.accept("erin", held.id)
    e.hold("erin", held.id)
    erin.sync()
    return list(erin.state.all_rows())


def assert_ordered(rows: list[Row], column: Column, descending: bool) -> None:
    keys = [column.sort_key(r) for r in rows]
    filled = [k for k in keys if k is not None]
    assert keys[: len(filled)] == filled, f"{column.key}: an empty cell sorts before a value"
    assert filled == sorted(filled, reverse=descending), column.key
    # Ties, and the empties, are in canonical (arrival) order.
    for a, b, ka, kb in zip(rows, rows[1:], keys, keys[1:], strict=False):
        if ka == kb:
            assert canonical_key(a) < canonical_key(b), column.key


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
def test_every_column_sorts_with_empties_last(descending: bool) -> None:
    rows = random_rows()
    assert len(rows) > 20
    for column in make_columns():
        ordered = sort_rows(rows, column, descending)
        assert sorted(r.id for r in ordered) == sorted(r.id for r in rows)
        assert_ordered(ordered, column, descending)


def test_waiting_sorts_longest_wait_first_when_descending(site: Site) -> None:
    erin = site.console("erin")
    first = site.waiting_in_net("First")
    site.tick(10)
    second = site.waiting_in_net("Second")
    erin.sync()
    waited = columns_for(erin)["waited"]
    rows = list(erin.state.rows["team:net"].values())
    assert waited.descending_first
    assert [r.id for r in sort_rows(rows, waited, descending=True)] == [first.id, second.id]
    assert [r.id for r in sort_rows(rows, waited, descending=False)] == [second.id, first.id]


def test_bulk_sort_keys_equal_the_row_by_row_keys() -> None:
    rows = random_rows(seed=8)
    for column in make_columns(lambda rep: f"Rep {rep}" if rep else "", lambda q: q.upper()):
        assert column.sort_keys(rows) == [column.sort_key(r) for r in rows], column.key
    assert sum(c.bulk_sort_key is not None for c in make_columns()) >= 10


def test_text_sorts_like_casefolded_text() -> None:
    names = ["zoë", "Zoe", "Łukasz", "adam", "Émile", "émile", "bob", "Bob", "ß", "ss", "ÿ", "z"]
    rows = [Row(f"S{i}", RowKind.WAITING, "team:x", session_view(f"S{i}", created_at=0.0, customer_name=n, browser=False))
            for i, n in enumerate(names)]
    customer = make_columns()[0]
    ordered = [r.session.customer_name for r in sort_rows(rows, customer)]
    assert ordered == sorted(names, key=lambda n: (n.casefold(), names.index(n)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-3, 3)), max_size=30), st.booleans())
def test_sort_rows_property(values: list[int | None], descending: bool) -> None:
    # A SessionView has no field "v": the test column reads each row's value by row id.
    v = {f"S{i}": value for i, value in enumerate(values)}
    rows = [Row(f"S{i}", RowKind.WAITING, "team:x", session_view(f"S{i}", created_at=float(i % 4))) for i in range(len(values))]
    column = Column("v", "V", 50, True, LEFT, lambda r, now: str(v[r.id]), lambda r: v[r.id])
    ordered = sort_rows(rows, column, descending)
    assert_ordered(ordered, column, descending)


# ----------------------------------------------------------------- search


def test_search_matches_fields_across_queues(site: Site) -> None:
    e = site.engine
    erin = site.console("erin")
    a = e.start_with_issue("vpn", intake("Ann Lee", company="Acme Corp"))
    b = e.start_with_issue("invoice", intake("Bo Acme"))
    c = e.start_with_issue("vpn", intake("Cy", external_key="TICKET-9"))
    d = e.start_with_issue("invoice", intake("Di Other"))
    erin.sync()
    assert {r.id for r in search_rows(erin.state, "acme")} == {a.id, b.id}
    assert {r.id for r in search_rows(erin.state, "  ACME  ")} == {a.id, b.id}
    assert [r.id for r in search_rows(erin.state, "ticket-9")] == [c.id]
    assert [r.id for r in search_rows(erin.state, "won't")] == [a.id, c.id]  # the issue, in arrival order
    assert search_rows(erin.state, "") == []
    assert search_rows(erin.state, "   ") == []
    assert search_rows(erin.state, "nobody") == []
    assert d.id in {r.id for r in search_rows(erin.state, "di")}
    assert {r.queue for r in search_rows(erin.state, "acme")} == {"team:net", "team:bill"}


def test_search_finds_session_keys_and_skips_ended_sessions(site: Site) -> None:
    e = site.engine
    alice = site.console("alice")
    s = site.start(Origin.SESSION_KEY, intake("Kim"))
    gone = site.waiting_in_net("Kim Gone")
    alice.sync()
    assert [r.id for r in search_rows(alice.state, s.session_key.lower())] == [s.id]
    assert {r.id for r in search_rows(alice.state, "kim")} == {s.id, gone.id}
    e.customer_leave(gone.id)
    alice.sync()
    assert [r.id for r in search_rows(alice.state, "kim")] == [s.id]


def test_search_returns_each_row_once_including_invitations(site: Site) -> None:
    e = site.engine
    erin = site.console("erin")
    s = site.waiting_in_net("Shared Sam")
    e.accept("alice", s.id)
    inv = e.share("alice", s.id, QueueRef.team("bill"))
    erin.sync()
    found = search_rows(erin.state, "sam")
    assert [r.id for r in found] == [inv.id]
    assert found[0].kind is RowKind.INVITATION
