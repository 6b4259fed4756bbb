"""Workspace restore: which session tabs were open, in which order, and which was in front.

The window keeps them in its free-form ``settings.window`` (``"tabs"``: the
session ids in tab order, ``"current_tab"``: the one in front or None) and
saves them whenever a tab opens, so a crash keeps them too.  After a restart
the first snapshot reopens the tabs of the sessions the rep still works, in
that order, and brings the last front tab back to the front once (a big
start's once it has filled the queue).  Until then what is saved keeps the
saved tabs as they were: closing early must not lose the rep's layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from PySide6.QtWidgets import QTabWidget

from repconsole.protocol import SessionView

__all__ = ["front_tab", "reopen_order", "tabs_state"]


def tabs_state(tabs: QTabWidget, session_ids: Iterable[str], unopened: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What to save: the open sessions' ids in tab order, and the one in front (None: the Queues tab).

    ``unopened``: the saved window settings, while their tabs have not been
    reopened yet (no snapshot yet, or a big start still filling the queue).
    Their tab list and front tab are kept as they were; a tab opened since
    (the rep accepted a customer meanwhile) is added after them.
    """
    current = getattr(tabs.currentWidget(), "session_id", None)
    ids = list(session_ids)
    if unopened is not None:
        saved = unopened.get("tabs")
        kept = [sid for sid in saved if isinstance(sid, str)] if isinstance(saved, list) else []
        if kept:
            return {"tabs": kept + [sid for sid in ids if sid not in kept], "current_tab": front_tab(unopened)}
    return {"tabs": ids, "current_tab": current if isinstance(current, str) else None}


def front_tab(window: Mapping[str, Any]) -> str | None:
    """The session whose tab was in front when the settings were saved."""
    current = window.get("current_tab")
    return current if isinstance(current, str) else None


def reopen_order(window: Mapping[str, Any], sessions: Iterable[SessionView]) -> list[SessionView]:
    """``sessions`` in the saved tab order; sessions that had no tab come last, in their own order."""
    saved = window.get("tabs")
    order = {sid: n for n, sid in enumerate(saved) if isinstance(sid, str)} if isinstance(saved, list) else {}
    return sorted(sessions, key=lambda s: order.get(s.id, len(order)))
