"""One rep's view of the engine's event stream.

The engine numbers every change globally and says who may see it.  A
console needs a stream of its own, numbered without gaps, so that a missing
number means a lost event and never "an event for someone else".
:class:`RepFeed` does that projection; the simulator runs one per console,
the queue server one per connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repconsole.core.engine import Event, QueueEngine

__all__ = ["FeedEvent", "RepFeed", "SNAPSHOT", "SESSION_GONE"]

SNAPSHOT = "snapshot"
SESSION_GONE = "session_gone"


@dataclass(slots=True)
class FeedEvent:
    """An event as one console receives it.

    Attributes:
        seq: 1, 2, 3... within this console's stream; the snapshot carries
            the seq it is current to.
        kind: ``snapshot``, ``session``, ``session_gone``, ``chat``,
            ``team_chat``, ``team_read``, ``rep`` or ``key``.
        data: JSON-ready payload.
    """

    seq: int
    kind: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeedEvent:
        return cls(int(d["seq"]), str(d["kind"]), dict(d["data"]))


def gone_payload(event: Event) -> dict[str, Any]:
    """What a rep who lost sight of a session is told: that it left, and why.

    Only the reason and, when a rep took it, who: that is what the console
    needs to say "already taken by Alice".  Where it went is not told.
    """
    s = event.data["session"]
    if s["state"] == "ended":
        return {"id": s["id"], "reason": "ended", "detail": s["end_reason"]}
    if s["state"] == "active" and s["owner"] is not None:
        return {"id": s["id"], "reason": "taken", "by": s["owner"]}
    return {"id": s["id"], "reason": "moved"}


class RepFeed:
    """Projects engine events onto one rep's gap-free stream.

    Attributes:
        rep: the rep this feed is for.
        seq: the number of the last event this feed produced.
    """

    def __init__(self, rep: str, seq: int = 0) -> None:
        self.rep = rep
        self.seq = seq

    def snapshot(self, engine: QueueEngine) -> FeedEvent:
        data = engine.snapshot(self.rep)
        data["feed_seq"] = self.seq
        return FeedEvent(self.seq, SNAPSHOT, data)

    def project(self, event: Event) -> FeedEvent | None:
        if self.rep in event.audience:
            kind, data = event.kind, event.data
        elif self.rep in event.gone:
            kind, data = SESSION_GONE, gone_payload(event)
        else:
            return None
        self.seq += 1
        return FeedEvent(self.seq, kind, data)
