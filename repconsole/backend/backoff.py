"""The console's reconnect delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["Backoff"]


class Backoff:
    """Reconnect delays with full jitter: try ``n`` (from 0) waits a random time in
    ``[0, ceiling(n)]``, where ``ceiling(n) = min(cap, base * 2**n)``.

    After a server restart every console is dropped at the same instant; with a
    fixed backoff they would all come back at the same instants too, in waves.
    Full jitter spreads each wave evenly over its whole ceiling (AWS's
    "Exponential Backoff And Jitter").

    Args:
        base: the first ceiling, in seconds.
        cap: the largest ceiling.
        ceilings: explicit ceilings instead (try ``n`` uses the ``n``-th, the
            last for every later one), for tests and special cases.
        rng: the random generator (injected in tests).
    """

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        *,
        ceilings: Sequence[float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if ceilings is not None and (not ceilings or any(d < 0 for d in ceilings)):
            raise ValueError("backoff must be a non-empty sequence of non-negative delays")
        if base <= 0 or cap < base:
            raise ValueError("backoff: base must be positive and cap at least base")
        self.base = base
        self.cap = cap
        self.ceilings = tuple(float(d) for d in ceilings) if ceilings is not None else None
        self._rng = rng if rng is not None else random.Random()

    def ceiling(self, attempt: int) -> float:
        """The longest wait before try ``attempt`` (from 0)."""
        if self.ceilings is not None:
            return self.ceilings[min(attempt, len(self.ceilings) - 1)]
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int) -> float:
        """A wait before try ``attempt``, uniform in ``[0, ceiling(attempt)]``."""
        return self._rng.uniform(0.0, self.ceiling(attempt))
