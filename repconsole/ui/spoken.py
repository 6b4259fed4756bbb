"""What a screen reader reads for things the console draws: a queue row, a sort, a time.

The table paints "26:03" in a Waited column and a red tint for an overdue
customer; a screen reader reading cell by cell would say "26 colon 03" and
nothing about the tint.  These functions put the same facts into words,
for the models' ``AccessibleTextRole``/``AccessibleDescriptionRole`` and
the views' accessible descriptions.
"""

from __future__ import annotations

from collections.abc import Callable

from repconsole.core.model import Priority
from repconsole.core.state import Row, RowKind
from repconsole.protocol import SessionState

__all__ = ["BLANK", "spoken_duration", "spoken_row", "spoken_sort"]

BLANK = "none"
"""What an empty cell reads (an empty name is read as nothing at all, or as "blank" by some readers)."""


def spoken_duration(seconds: float) -> str:
    """``"less than a minute"``, ``"1 minute"``, ``"26 minutes"``, ``"2 hours 5 minutes"``."""
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return "less than a minute"
    hours, minutes = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if minutes:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts)


def spoken_row(row: Row, now: float, queue_name: Callable[[str], str], rep_name: Callable[[str | None], str]) -> str:
    """A row in one sentence: "Liam Smith, waiting 26 minutes, Networking, urgent"."""
    s = row.session
    parts = [s.title]
    if row.kind is RowKind.INVITATION and row.invitation is not None:
        parts.append(f"invitation from {rep_name(row.invitation.by)}")
    elif s.state is SessionState.ACTIVE:
        parts.append(f"in session with {rep_name(s.owner)}" if s.owner else "in session")
    elif s.held:
        parts.append(f"on hold for {spoken_duration(now - s.queue_entered_at)}")
    else:
        parts.append(f"waiting {spoken_duration(now - s.created_at)}")
    parts.append(queue_name(s.queue or row.queue))
    if s.priority != Priority.NORMAL:
        parts.append(Priority(s.priority).label.lower())
    if s.overdue:
        parts.append("overdue")
    return ", ".join(parts)


def spoken_sort(column: str, descending: bool) -> str:
    """``"sorted by Waiting, descending"``."""
    return f"sorted by {column}, {'descending' if descending else 'ascending'}"
