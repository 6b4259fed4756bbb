"""Events: what the engine announces, and the numbering they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from repconsole.core.clock import Clock
from repconsole.protocol.events import EventData, kind_of
from repconsole.protocol.vocabulary import EventKind

__all__ = ["NO_REPS", "Event", "EventBus", "Listener"]

NO_REPS: frozenset[str] = frozenset()


@dataclass(slots=True)
class Event:
    """One change, as the engine announces it.

    Attributes:
        seq: strictly increasing across the engine's life.
        at: engine time of the change.
        data: the payload, a protocol Struct built once for every receiver;
            its type says what kind of event this is (:attr:`kind`).
        audience: the reps allowed to see ``data``.
        gone: reps who could see the session before this change and can't
            any more; their feeds get a ``session_gone`` instead of ``data``,
            so they learn that it left without learning where it went.
    """

    seq: int
    at: float
    data: EventData
    audience: frozenset[str]
    gone: frozenset[str] = NO_REPS

    @property
    def kind(self) -> EventKind:
        return kind_of(self.data)


Listener = Callable[[Event], None]


class EventBus:
    """The engine's listeners and its event numbering.

    Every change moves ``seq`` on, whether or not anyone listens, so that a
    console's numbering never depends on who else was subscribed.  Callers
    on a hot path check :attr:`listeners` first and, when it is empty, only
    :meth:`skip`: the payload of an event nobody hears is never built.

    Attributes:
        seq: the sequence number of the last event.
        listeners: called with every event, in subscription order.  The list
            object never changes (parts of the engine may hold it).
    """

    __slots__ = ("_clock", "listeners", "seq")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.seq = 0
        self.listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def emit(self, data: EventData, audience: frozenset[str], gone: frozenset[str] = NO_REPS) -> None:
        self.seq += 1
        if not self.listeners:
            return
        event = Event(self.seq, self._clock(), data, audience, gone)
        for listener in self.listeners:
            listener(event)

    def skip(self) -> None:
        """Number a change nobody hears (what :meth:`emit` does without listeners)."""
        self.seq += 1
