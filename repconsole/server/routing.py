"""Auto-assignment and wait estimates on the server (issue 14).

The engine decides everything (:mod:`repconsole.core.engine.routing`); the
server only has to:

* keep version 2 consoles safe: a console of protocol version 2 cannot
  decode ``offer``, ``offer_ended`` or ``estimate``.  It is served while no
  team routes (the fan-out leaves those events out of its frames, see
  :func:`repconsole.server.fanout.newer_kind`), and refused with
  ``unsupported_protocol`` (4426) where a team does: it would be offered
  sessions it cannot show, miss them, and be set away;
* fire offer deadlines and the ends of paused offers: they are engine
  deadlines, which :meth:`Runtime.arm <repconsole.server.runtime.Runtime.arm>`
  already keeps a timer at;
* publish each team queue's estimate to its members when it changes
  (:class:`Estimates`, as often as customers' positions are refreshed),
  and give a waiting customer theirs (:func:`customer_estimate`).
"""

from __future__ import annotations

from repconsole.core.engine import QueueEngine
from repconsole.core.model import RoutingMode
from repconsole.protocol import EstimateView
from repconsole.server.fanout import OFFERS_VERSION

__all__ = ["customer_estimate", "routes", "too_old_for_offers"]


def routes(engine: QueueEngine) -> bool:
    """Whether any team of the site routes (its routing is not ``none``)."""
    return any(t.routing is not RoutingMode.NONE for t in engine.teams.values())


def too_old_for_offers(engine: QueueEngine | None, protocol: int) -> str | None:
    """Why a console of ``protocol`` may not sign in to this site (None: it may)."""
    if engine is None or protocol >= OFFERS_VERSION or not routes(engine):
        return None
    return (
        f"this site assigns sessions automatically, which needs protocol version {OFFERS_VERSION}; "
        f"the console speaks version {protocol}: update the console"
    )


def customer_estimate(engine: QueueEngine, session_id: str, position: int | None = None) -> EstimateView | None:
    """A waiting customer's estimated wait (None: no data, "we are busier than usual"); ``position``: their
    ``queue_position``, if the caller has it already."""
    est = engine.estimate_for(session_id, position)
    return est.view() if est is not None else None
