"""The columns of a queue table, declared as data.

Each :class:`Column` says what a settings file stores about it (its stable
``key``), how it looks by default (title, width, visibility, alignment),
what it shows (``display``) and how it sorts (``sort_key``).  Display text
and sort key are separate functions: "1:05" must sort after "0:59", and
"[Browser] Ann" must sort with "Ann".

This module does not import Qt, so the columns, their formatting and their
ordering are tested without a display; :mod:`repconsole.ui.queuemodel`
turns them into a Qt model.

Ordering rules, shared by every column:

* A sort key of ``None`` means "empty".  Empty cells sort *after* every
  real value in both directions, so that flipping the order of a sparse
  column (external key, owner) never buries the real values under a wall of
  blanks.
* Ties, and the empty cells among themselves, are always in *canonical*
  order: the order customers arrived in (``created_at``, then row id), the
  longest-waiting first.  It does not flip with the sort direction, so
  sorting by priority descending lists the urgent customers who have
  waited longest first.

Time columns sort by a timestamp, not by the text they show, so the order
stays right as the clock runs and nothing needs re-sorting each second.
The "Waiting" column sorts by ``-created_at``: ascending is the order of
the numbers it shows (shortest wait first), and its *first* click sorts it
descending (``descending_first``), which puts the longest-waiting customer
on top: what a rep triaging a queue wants to see.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter, neg
from typing import Any

from repconsole.core.state import Row, RowKind
from repconsole.protocol import Origin, Priority, SessionState

__all__ = [
    "CENTER",
    "DEFAULT_SORT_DESCENDING",
    "DEFAULT_SORT_KEY",
    "LEFT",
    "RIGHT",
    "Column",
    "QueueNameFn",
    "RepNameFn",
    "canonical_key",
    "column_index",
    "format_countdown",
    "format_duration",
    "make_columns",
    "sort_rows",
]

LEFT = "left"
RIGHT = "right"
CENTER = "center"

RepNameFn = Callable[[str | None], str]
QueueNameFn = Callable[[str], str]

# The order a queue shows in until the rep clicks a header: longest wait first.
DEFAULT_SORT_KEY = "waited"
DEFAULT_SORT_DESCENDING = True

OVERDUE_TEXT = "overdue"

_ORIGIN_LABELS: dict[str, str] = {o.value: o.label for o in Origin}
_PRIORITY_LABELS = {int(p): p.label for p in Priority}

# Status texts and their sort ranks: what needs attention first.
STATUS_OVERDUE = "Overdue"
STATUS_WAITING = "Waiting"
STATUS_INVITATION = "Invitation"
STATUS_HELD = "On hold"
STATUS_ACTIVE = "Active"
_STATUS_RANK = {STATUS_OVERDUE: 0, STATUS_WAITING: 1, STATUS_INVITATION: 2, STATUS_HELD: 3, STATUS_ACTIVE: 4}


@dataclass(frozen=True, slots=True, eq=False)
class Column:
    """One column of a queue table.

    Attributes:
        key: stable identifier; what saved layouts refer to.  Never renamed.
        title: header text.
        default_width: width in pixels before the rep resizes it.
        default_visible: shown until the rep hides it.
        align: ``left``, ``right`` or ``center``.
        display: ``display(row, now)`` -> the cell text; ``now`` is the
            engine's time, which only live columns use.
        sort_key: ``sort_key(row)`` -> a value that orders the column, or
            ``None`` for an empty cell.  All non-None values of one column
            are of one comparable type.
        live: the text changes as time passes (the table refreshes it every
            second); its sort key does not.
        descending_first: the first click on the header sorts descending.
        tooltip: the cell's full text is also its tooltip (long text that
            a narrow column elides).
        description: the header's tooltip.
        bulk_sort_key: optional; ``bulk_sort_key(rows)`` -> the list of
            ``sort_key(row)`` for every row, computed faster (C-level
            getters, one name lookup per distinct id).  The table uses it
            when it first sorts 100,000 rows by this column.
    """

    key: str
    title: str
    default_width: int
    default_visible: bool
    align: str
    display: Callable[[Row, float], str]
    sort_key: Callable[[Row], Any]
    live: bool = False
    descending_first: bool = False
    tooltip: bool = False
    description: str = ""
    bulk_sort_key: Callable[[Sequence[Row]], list[Any]] | None = None

    def sort_keys(self, rows: Sequence[Row]) -> list[Any]:
        """``[sort_key(row) for row in rows]``, the fast way when the column has one."""
        if self.bulk_sort_key is not None:
            return self.bulk_sort_key(rows)
        return list(map(self.sort_key, rows))

    def __repr__(self) -> str:
        return f"Column({self.key!r})"


def format_duration(seconds: float) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` from an hour on; never negative.

    Whole seconds are cut, not rounded: a customer who has waited 59.7 s has
    not waited a minute.
    """
    total = int(seconds) if seconds > 0 else 0
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_countdown(seconds: float) -> str:
    """Like :func:`format_duration`, but rounds up: a countdown shows 0:01 until it is over."""
    return format_duration(math.ceil(seconds) if seconds > 0 else 0)


def canonical_key(row: Row) -> tuple[float, str]:
    """The tie-break order: arrival time, then row id."""
    return (row.session.created_at, row.id)


def sort_rows(rows: Iterable[Row], column: Column, descending: bool = False) -> list[Row]:
    """``rows`` in the order ``column`` sorts them (see the module docstring).

    The reference definition of a queue's order; the table model keeps the
    same order incrementally.
    """
    key = column.sort_key
    keyed = [(key(r), r) for r in sorted(rows, key=canonical_key)]
    filled = [kr for kr in keyed if kr[0] is not None]
    # A stable sort keeps ties in canonical order, also with reverse=True.
    filled.sort(key=itemgetter(0), reverse=descending)
    return [r for _, r in filled] + [r for k, r in keyed if k is None]


def _text_key(value: str) -> bytes | None:
    """How text sorts: casefolded, as UTF-8 bytes; empty -> None.

    UTF-8 bytes are in the same (code point) order as the text itself, but
    ``list.sort`` compares bytes with one ``memcmp``, while it compares
    strings of mixed widths ("Zoë", "Łukasz") the slow, general way: twice
    as fast at 100,000 customer names.
    """
    return value.casefold().encode() if value else None


_session_of = attrgetter("session")


def _sessions(rows: Sequence[Row]) -> list[Any]:
    """The rows' sessions, as a list of their own.

    The bulk keys read a field from this list rather than chaining
    ``map(get, map(_session_of, rows))``.  At 100,000 rows the work is
    memory-bound: the chained form follows row -> view -> value for each
    row in turn, one cache miss waiting on the other, while one pass per
    hop lets the misses of many rows overlap.  On typed session views the
    chained form took twice as long for the "Waiting" column (measured with
    bench/bench_table).
    """
    return list(map(_session_of, rows))


_ACTIVE = SessionState.ACTIVE
_invitation_of = attrgetter("invitation")
_INVITATION = RowKind.INVITATION


def _bulk_text(name: str) -> Callable[[Sequence[Row]], list[Any]]:
    """Bulk keys of a text field: casefolded, empty -> None."""
    get = attrgetter(name)

    def bulk(rows: Sequence[Row]) -> list[Any]:
        sessions = _sessions(rows)
        try:
            # One pass from the sessions to the keys: a list of the values in
            # between cost a fifth more at 100,000 rows (measured in one process).
            return [k or None for k in map(str.encode, map(str.casefold, map(get, sessions)))]
        except TypeError:  # a None among the values: the slow, careful way
            return list(map(_text_key, map(get, sessions)))

    return bulk


def _bulk_field(name: str, negate: bool = False) -> Callable[[Sequence[Row]], list[Any]]:
    """Bulk keys of a numeric field (negated for "longest first" time columns)."""
    get = attrgetter(name)

    def bulk(rows: Sequence[Row]) -> list[Any]:
        values = map(get, _sessions(rows))
        return list(map(neg, values) if negate else values)

    return bulk


def _session_values(name: str) -> Callable[[Sequence[Row]], list[Any]]:
    get = attrgetter(name)
    return lambda rows: list(map(get, _sessions(rows)))


def _bulk_memo(ids_of: Callable[[Sequence[Row]], list[Hashable]], key: Callable[[Any], Any]) -> Callable[[Sequence[Row]], list[Any]]:
    """Bulk keys that depend on one id per row (a queue, a rep): one name lookup per distinct id."""

    def bulk(rows: Sequence[Row]) -> list[Any]:
        ids = ids_of(rows)
        memo = {i: key(i) for i in set(ids)}
        return list(map(memo.__getitem__, ids))

    return bulk


def _plain(name: str) -> str:
    return name


def make_columns(rep_name: RepNameFn | None = None, queue_name: QueueNameFn | None = None) -> tuple[Column, ...]:
    """Every column a queue table offers, in their default order.

    ``rep_name`` and ``queue_name`` turn ids into names (pass
    :meth:`ConsoleState.rep_name` and :meth:`ConsoleState.queue_name`);
    without them the ids are shown.
    """
    rep = rep_name if rep_name is not None else (lambda rep_id: rep_id or "")
    queue = queue_name if queue_name is not None else _plain

    def customer(row: Row, now: float) -> str:
        return row.session.title

    def customer_key(row: Row) -> bytes | None:
        return _text_key(row.session.customer_name)

    def field(name: str) -> dict[str, Any]:
        """A plain text field of the session: display, sort key and bulk sort key."""
        get = attrgetter(name)

        def display(row: Row, now: float) -> str:
            return get(row.session) or ""

        def sort_key(row: Row) -> bytes | None:
            return _text_key(get(row.session))

        return {"display": display, "sort_key": sort_key, "bulk_sort_key": _bulk_text(name)}

    def details(row: Row, now: float) -> str:
        return " ".join(row.session.details.split())

    def waited(row: Row, now: float) -> str:
        return format_duration(now - row.session.created_at)

    def waited_key(row: Row) -> float:
        return -row.session.created_at

    def waited_bulk(rows: Sequence[Row]) -> list[Any]:
        # A comprehension reads the slot faster than map(neg, map(attrgetter(...))).
        return [-s.created_at for s in _sessions(rows)]

    def in_queue(row: Row, now: float) -> str:
        if row.kind is RowKind.INVITATION:
            return format_duration(now - row.invitation.at)  # type: ignore[union-attr]
        s = row.session
        if s.state is _ACTIVE:
            return ""
        return format_duration(now - s.queue_entered_at)

    def in_queue_key(row: Row) -> float | None:
        if row.kind is RowKind.INVITATION:
            return -row.invitation.at  # type: ignore[union-attr]
        s = row.session
        if s.state is _ACTIVE:
            return None
        return -s.queue_entered_at

    def in_queue_bulk(rows: Sequence[Row]) -> list[Any]:
        # One pass over the rows: each session dict is visited once (memory, not
        # arithmetic, is what costs at 100,000 rows).
        return [
            -r.invitation.at if r.kind is _INVITATION  # type: ignore[union-attr]
            else None if (s := r.session).state is _ACTIVE
            else -s.queue_entered_at
            for r in rows
        ]

    def time_left(row: Row, now: float) -> str:
        s = row.session
        if s.overdue:
            return OVERDUE_TEXT
        deadline = s.rule_deadline
        if deadline is None:
            return ""
        return format_countdown(deadline - now)

    def time_left_key(row: Row) -> float | None:
        s = row.session
        if s.overdue:
            return -math.inf
        return s.rule_deadline

    def time_left_bulk(rows: Sequence[Row]) -> list[Any]:
        return [-math.inf if s.overdue else s.rule_deadline for s in map(_session_of, rows)]

    def priority(row: Row, now: float) -> str:
        p = row.session.priority
        return _PRIORITY_LABELS.get(p) or str(p)

    def priority_key(row: Row) -> int:
        return int(row.session.priority)

    def origin(row: Row, now: float) -> str:
        o = row.session.origin
        return _ORIGIN_LABELS.get(o) or o

    def origin_value_key(value: str) -> bytes | None:
        return _text_key(_ORIGIN_LABELS.get(value) or value)

    def origin_key(row: Row) -> bytes | None:
        return origin_value_key(row.session.origin)

    def status_word(row: Row) -> str:
        if row.kind is RowKind.INVITATION:
            return STATUS_INVITATION
        s = row.session
        if s.state is _ACTIVE:
            return STATUS_ACTIVE
        if s.held:
            return STATUS_HELD
        if s.overdue:
            return STATUS_OVERDUE
        return STATUS_WAITING

    def status(row: Row, now: float) -> str:
        word = status_word(row)
        if word is STATUS_INVITATION:
            return f"Invitation from {rep(row.invitation.by)}"  # type: ignore[union-attr]
        return word

    def status_key(row: Row) -> int:
        return _STATUS_RANK[status_word(row)]

    def status_bulk(rows: Sequence[Row]) -> list[Any]:
        invitation, active, held = _STATUS_RANK[STATUS_INVITATION], _STATUS_RANK[STATUS_ACTIVE], _STATUS_RANK[STATUS_HELD]
        late, waiting = _STATUS_RANK[STATUS_OVERDUE], _STATUS_RANK[STATUS_WAITING]
        return [
            invitation if r.kind is _INVITATION
            else active if (s := r.session).state is _ACTIVE
            else held if s.held
            else late if s.overdue
            else waiting
            for r in rows
        ]

    def owner(row: Row, now: float) -> str:
        o = row.session.owner
        return rep(o) if o else ""

    def owner_name_key(rep_id: str | None) -> bytes | None:
        return _text_key(rep(rep_id)) if rep_id else None

    def owner_key(row: Row) -> bytes | None:
        return owner_name_key(row.session.owner)

    def invited_by(row: Row, now: float) -> str:
        return rep(row.invitation.by) if row.invitation is not None else ""

    def inviter_name_key(rep_id: str | None) -> bytes | None:
        return _text_key(rep(rep_id)) if rep_id is not None else None

    def invited_by_key(row: Row) -> bytes | None:
        return inviter_name_key(row.invitation.by) if row.invitation is not None else None

    def inviters(rows: Sequence[Row]) -> list[Hashable]:
        return [inv.by if inv is not None else None for inv in map(_invitation_of, rows)]

    def queue_display(row: Row, now: float) -> str:
        return queue(row.queue)

    def queue_name_key(queue_id: str) -> bytes | None:
        return _text_key(queue(queue_id))

    def queue_key(row: Row) -> bytes | None:
        return queue_name_key(row.queue)

    by_queue = attrgetter("queue")

    return (
        Column("customer", "Customer", 160, True, LEFT, customer, customer_key, tooltip=True,
               bulk_sort_key=_bulk_text("customer_name"),
               description="The customer's name; [Browser] marks a browser-sharing session"),
        Column("company", "Company", 115, True, LEFT, **field("company"), tooltip=True,
               description="The customer's company, when the intake form asked for it"),
        Column("issue", "Issue", 130, True, LEFT, **field("issue"), tooltip=True,
               description="The issue the customer picked on the issue submission form"),
        Column("category", "Category", 80, True, LEFT, **field("category"),
               description="The category of the customer's issue"),
        Column("waited", "Waiting", 62, True, RIGHT, waited, waited_key, live=True, descending_first=True,
               bulk_sort_key=waited_bulk,
               description="Time since the customer arrived (ascending: shortest wait first)"),
        Column("time_left", "Time left", 66, True, RIGHT, time_left, time_left_key, live=True, bulk_sort_key=time_left_bulk,
               description="Time before the team's waiting-session rule acts on this customer"),
        Column("priority", "Priority", 60, True, LEFT, priority, priority_key, descending_first=True,
               bulk_sort_key=_bulk_field("priority"),
               description="The customer's priority"),
        Column("origin", "Origin", 145, True, LEFT, origin, origin_key,
               bulk_sort_key=_bulk_memo(_session_values("origin"), origin_value_key),
               description="How the customer started the session"),
        Column("status", "Status", 150, True, LEFT, status, status_key, tooltip=True, bulk_sort_key=status_bulk,
               description="Waiting, overdue, on hold, an invitation to join, or active"),
        Column("owner", "Owner", 85, True, LEFT, owner, owner_key,
               bulk_sort_key=_bulk_memo(_session_values("owner"), owner_name_key),
               description="The representative who owns the session"),
        Column("in_queue", "In this queue", 90, False, RIGHT, in_queue, in_queue_key, live=True, descending_first=True,
               bulk_sort_key=in_queue_bulk,
               description="Time since the entry came to this queue"),
        Column("invited_by", "Invited by", 110, False, LEFT, invited_by, invited_by_key,
               bulk_sort_key=_bulk_memo(inviters, inviter_name_key),
               description="Who invited this queue to join the session"),
        Column("queue", "Queue", 120, False, LEFT, queue_display, queue_key,
               bulk_sort_key=_bulk_memo(lambda rows: list(map(by_queue, rows)), queue_name_key),
               description="The queue the entry waits in"),
        Column("session_key", "Session key", 92, False, LEFT, **field("session_key"),
               description="The session key the customer typed"),
        Column("external_key", "External key", 110, False, LEFT, **field("external_key"),
               description="A ticket number or other reference from another system"),
        Column("platform", "Platform", 100, False, LEFT, **field("platform"),
               description="The customer's operating system"),
        Column("locale", "Locale", 64, False, LEFT, **field("locale"),
               description="The customer's language"),
        Column("details", "Details", 220, False, LEFT, details, lambda row: _text_key(row.session.details), tooltip=True,
               bulk_sort_key=_bulk_text("details"),
               description="What the customer wrote about the problem"),
    )


def column_index(columns: Sequence[Column], key: str) -> int:
    """The position of the column ``key`` in ``columns``, or -1."""
    for i, column in enumerate(columns):
        if column.key == key:
            return i
    return -1

