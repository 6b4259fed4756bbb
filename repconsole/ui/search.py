"""Finding entries across every queue the rep can see.

Qt-free: the window hands the result to the table model with
:meth:`~repconsole.ui.queuemodel.QueueTableModel.set_rows`.
"""

from __future__ import annotations

from operator import attrgetter

from repconsole.core.state import ConsoleState, Row
from repconsole.protocol import SessionState, SessionView
from repconsole.ui.columns import canonical_key

__all__ = ["SEARCH_FIELDS", "search_rows", "session_matches"]

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
    needle = " ".join(text.split()).casefold()
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
