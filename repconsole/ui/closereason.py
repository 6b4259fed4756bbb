"""Why a session tab closed, in words: "ended by the customer", "transferred to Priya", "you left"."""

from __future__ import annotations

from repconsole.core.state import ConsoleState
from repconsole.protocol import GoneReason, SessionGoneData, SessionState, SessionView

__all__ = ["close_reason"]

# The engine's end reasons (``SessionView.end_reason``), as a rep reads them.
_ENDED = {
    "customer left": "ended by the customer",
    "customer disconnected": "the customer was disconnected",
    "representative lost connection": "ended: its owner lost the connection",
    "configuration changed": "ended: the server's configuration changed",
}


def close_reason(gone: SessionGoneData | None, last: SessionView | None, state: ConsoleState) -> str:
    """Why the rep's tab of a session closes.

    ``gone`` is what the server said when the rep lost sight of it (None if
    the tab closes on a fresh snapshot, which says nothing of why); ``last``
    is the session as the console knows it now (None if it is out of sight).
    """
    me = state.rep_id
    if gone is not None:
        by = gone.by if isinstance(gone.by, str) else None
        match gone.reason:
            case GoneReason.ENDED:
                return _ended(gone.detail if isinstance(gone.detail, str) else "", state)
            case GoneReason.TRANSFERRED:
                to = gone.to if isinstance(gone.to, str) else None
                where = state.queue_name(to) if to else "another queue"
                return f"transferred to {where}" if by == me else f"transferred to {where} by {state.rep_name(by)}"
            case GoneReason.LEFT:
                return "you left" if by == me else f"left by {state.rep_name(by)}"
            case GoneReason.TAKEN:
                return "you took it on another console" if by == me else f"taken by {state.rep_name(by)}"
            case GoneReason.MOVED:
                return "moved to another queue by the site's rules"
    if last is not None:
        if last.state is SessionState.ENDED:
            return _ended(last.end_reason, state)
        if last.owner and last.owner != me:
            return f"now with {state.rep_name(last.owner)}"
    return "no longer yours (it changed while the console was reconnecting)"


def _ended(detail: str, state: ConsoleState) -> str:
    if detail in _ENDED:
        return _ENDED[detail]
    if detail == f"ended by {state.rep_name(state.rep_id)}":
        return "ended by you"
    return detail or "ended"
