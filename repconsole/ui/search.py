"""Finding entries across every queue the rep can see.

Qt-free: the window hands the result to the table model with
:meth:`~repconsole.ui.queuemodel.QueueTableModel.set_rows`.
"""

from __future__ import annotations

from operator import attrgetter

from repconsole.core.state import Changes, ConsoleState, QueueDelta, Row
from repconsole.protocol import SessionState, SessionView
from repconsole.ui.columns import canonical_key

__all__ = ["SEARCH_FIELDS", "search_delta", "search_rows", "search_title", "session_matches"]

# What a rep types to find a customer: a name, a company, an issue, the key
# they read out on the phone, or a ticket number from another system.
SEARCH_FIELDS = ("customer_name", "company", "issue", "session_key", "external_key")


_SEARCHED = attrgetter(*SEARCH_FIELDS)


def session_matches(session: SessionView, needle: str) -> bool:
    """Whether any searched field of ``session`` contains ``needle`` (already casefolded)."""
    return any(value and needle in value.casefold() for value in _SEARCHED(session))


def search_rows(state: ConsoleState, text: str) -> list[Row]:
    """The rows of every queue whose session matches ``text``.

    Case-insensitive substring match on customer name, company, issue,
    session key and external key.  Only sessions that have not ended, and
    each row once, in arrival order.  Blank ``text`` matches nothing.
    """
    needle = _needle(text)
    if not needle:
        return []
    found: dict[str, Row] = {}
    for row in state.all_rows():
        s = row.session
        if s.state is SessionState.ENDED or row.id in found:
            continue
        if session_matches(s, needle):
            found[row.id] = row
    return sorted(found.values(), key=canonical_key)


def search_delta(state: ConsoleState, changes: Changes, text: str) -> QueueDelta:
    """How one applied batch (``changes``) changes the results of searching ``text``, as a delta for their model.

    Only the rows the batch touched are looked at again, each as
    :func:`search_rows` finds it (its first row across the queues): with
    100,000 rows, an arrival or a slice of a big start does not cost a
    search of everything.  Matching rows are in ``changed`` (new to the
    results or not), the others in ``removed``:
    :meth:`~repconsole.ui.queuemodel.QueueTableModel.apply` takes both.
    """
    delta = QueueDelta()
    needle = _needle(text)
    if not needle:
        return delta
    touched: set[str] = set()
    for d in changes.queues.values():
        touched.update(d.added, d.changed, d.removed)
    queues = list(state.rows.values())
    for row_id in touched:
        row = next((rows[row_id] for rows in queues if row_id in rows), None)
        if row is not None and row.session.state is not SessionState.ENDED and session_matches(row.session, needle):
            delta.changed[row_id] = row
        else:
            delta.removed.add(row_id)
    return delta


def search_title(matches: int) -> str:
    """The queue title over search results: ``"Search: 3 matches"``."""
    return f"Search: {matches} match{'es' if matches != 1 else ''}"


def _needle(text: str) -> str:
    return " ".join(text.split()).casefold()
