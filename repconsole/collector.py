"""Keeping CPython's cyclic garbage collector out of the way of big, long-lived state.

A full collection walks every tracked object alive.  The console holds one
dict per session it can see (100,000 waiting customers are ~4 million
objects once decoded); the server holds its engine, its resume ring and a
few hundred objects per connected console.  A full collection of either
stalls the process for 0.2-1 s: a frozen queue in the console, and a burst
of late events at 2,000 consoles in the server.  Almost none of those
objects is ever cyclic garbage: they die by reference counting when a
session ends or a console leaves.

Two tools, both process-wide (``gc`` is):

* :func:`collector_paused` builds a big structure without a collection in
  the middle of it (every collection the build triggers would walk all that
  is built so far) and, with ``freeze=True``, moves it out of every later
  collection's reach with :func:`gc.freeze`.
* :class:`FreezePolicy` is for a long-running process whose state grows
  over time (the server): now and then it freezes what has survived, so
  full collections only ever walk what is young; much more rarely it
  thaws everything and runs one full collection, so cyclic garbage that was
  frozen is not kept for ever.  The caller drives it from a timer; it reads
  no clock itself.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["FreezePolicy", "PolicyStep", "collector_paused"]

log = logging.getLogger(__name__)


@contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """Run the block with automatic collection off; optionally freeze what it left alive.

    Objects allocated while collection is off still count towards the next
    collection, and they all sit in the youngest generation: re-enabling
    without freezing means the very next (young!) collection walks all of
    them.  Hence ``freeze=True`` for anything big that is meant to live on.
    Nested use is fine: only the outermost block re-enables.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class PolicyStep:
    """What one :meth:`FreezePolicy.tick` did.

    Attributes:
        swept: True when this tick thawed everything and ran a full collection.
        collected: unreachable objects the tick's collection found.
        frozen: objects in the permanent generation afterwards, counted at a sweep only (None
            otherwise): :func:`gc.get_freeze_count` walks every frozen object, some 15 ms a
            million, which a tick every 30 s on the server's loop must not pay.
    """

    swept: bool
    collected: int
    frozen: int | None


class FreezePolicy:
    """Freeze survivors every ``freeze_every`` seconds; sweep everything every ``sweep_every``.

    Each tick first runs a young collection (generations 0 and 1: cheap,
    it only walks what is young), so short-lived cycles die before the
    survivors are frozen.  A sweep (``gc.unfreeze`` and one full
    collection) is the one pause this policy keeps: once every
    ``sweep_every`` seconds instead of whenever CPython's heuristics decide,
    which with a large heap is every few seconds under load.

    Attributes:
        freeze_every: seconds between ticks; the caller's timer uses it.
        sweep_every: seconds between full sweeps.
        last_sweep: the time (the caller's clock) of the last sweep.
    """

    def __init__(self, *, freeze_every: float = 30.0, sweep_every: float = 3600.0, now: float = 0.0) -> None:
        if freeze_every <= 0 or sweep_every < freeze_every:
            raise ValueError(f"need 0 < freeze_every <= sweep_every, not {freeze_every} and {sweep_every}")
        self.freeze_every = freeze_every
        self.sweep_every = sweep_every
        self.last_sweep = now

    def start(self) -> None:
        """Freeze whatever the process built at start-up (configuration, restored state)."""
        gc.collect()
        gc.freeze()

    def tick(self, now: float, *, collect: Callable[[int], int] = gc.collect) -> PolicyStep:
        if now - self.last_sweep >= self.sweep_every:
            self.last_sweep = now
            gc.unfreeze()
            collected = collect(2)
            gc.freeze()
            step = PolicyStep(True, collected, gc.get_freeze_count())  # the sweep walked them all anyway
            log.info("garbage collector: full sweep found %d unreachable objects; %d frozen", collected, step.frozen)
            return step
        collected = collect(1)
        gc.freeze()
        return PolicyStep(False, collected, None)

    def stop(self) -> None:
        """Give everything back to the collector (a server stopped inside a test process)."""
        gc.unfreeze()
