"""Who leads an organisation: a Redis lease that carries a fencing epoch.

Exactly one process at a time leads (runs the engine and appends to the
log).  It holds the organisation's lease key, ``"<owner> <epoch>"`` with a
TTL, and renews it every ``ttl / 3``:

- **Acquire** is one Lua script: if the lease key does not exist, raise the
  epoch (``INCR`` of a counter key that never expires) and ``SET`` the
  lease with ``PX ttl``.  It is ``SET NX PX`` with the epoch raised in the
  same atomic step: two separate commands could leave a lease whose epoch
  was never raised if the process died between them.
- **Renew** is a compare-and-``PEXPIRE``: only while the key still holds
  this owner's value.
- **Step down at once** when a renewal fails (the key expired or changed
  hands, or Redis cannot be reached) or the log refuses an append
  (:class:`~repconsole.server.cluster.log.AppendRefused`): the
  ``on_lost`` callback runs once, and :attr:`Lease.held` is False from
  then on.

The lease is also valid *locally* only until ``renewed at + ttl x (1 -
DRIFT)`` by the injected monotonic clock, so a leader that was frozen
(SIGSTOP, a long GC pause, a suspended VM) knows on waking that it may
no longer lead.  The authority is Redis, though: every append checks the
epoch and the lease value inside the log's script (fencing), so a stale
leader's write is refused even if its own clock is wrong.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import redis

from repconsole.server.cluster.keys import OrgKeys

__all__ = ["DRIFT", "Lease"]

log = logging.getLogger(__name__)

# The share of the TTL a holder gives up to clock drift and the request's own travel.
DRIFT = 0.1

_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. epoch, 'PX', ARGV[2])
return {1, epoch}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """One process's claim to lead one organisation.

    Attributes:
        owner: this process's id (no spaces), written into the lease.
        ttl: the lease's time to live, seconds.
        epoch: the epoch this process leads under, None while it does not lead.
        lost_because: why it last stepped down ("" if it never did).
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: OrgKeys,
        owner: str,
        *,
        ttl: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        if not owner or " " in owner:
            raise ValueError(f"a lease owner is a non-empty id without spaces: {owner!r}")
        if ttl <= 0:
            raise ValueError("a lease's ttl must be positive")
        self.client = client
        self.keys = keys
        self.owner = owner
        self.ttl = ttl
        self.clock = clock
        self.on_lost = on_lost
        self.epoch: int | None = None
        self.lost_because = ""
        self._valid_until = -math.inf
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def value(self) -> str:
        """What the lease key holds while this process leads: ``"<owner> <epoch>"``."""
        if self.epoch is None:
            raise RuntimeError("not leading: no lease value")
        return f"{self.owner} {self.epoch}"

    @property
    def held(self) -> bool:
        """Whether this process leads, as far as its own clock can tell."""
        return self.epoch is not None and self.clock() < self._valid_until

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it (raising the epoch).  Returns whether this process now leads.

        Raises redis.RedisError if Redis cannot be reached (nothing changed here).
        """
        if self.held:
            return True
        sent = self.clock()
        taken, got = self._acquire(keys=[self.keys.lease, self.keys.epoch], args=[self.owner, self._ttl_ms()])
        if not taken:
            return False
        self.epoch = int(got)
        self._valid_until = sent + self.ttl * (1 - DRIFT)
        self.lost_because = ""
        log.info("%s leads %s under epoch %d", self.owner, self.keys.lease, self.epoch)
        return True

    def renew(self) -> bool:
        """Extend the lease.  If it cannot be (lost, expired, Redis unreachable), step down now.

        Returns whether this process still leads.
        """
        if self.epoch is None:
            return False
        if not self.held:
            # Frozen past our own deadline: someone may lead already.  Ask Redis
            # anyway (a renewal succeeds only if the key still holds our value).
            log.warning("%s: lease renewal is late by %.3f s", self.owner, self.clock() - self._valid_until)
        sent = self.clock()
        try:
            ok = self._renew(keys=[self.keys.lease], args=[self.value, self._ttl_ms()])
        except redis.RedisError as exc:
            self.step_down(f"lease renewal failed: {exc}")
            return False
        if not ok:
            self.step_down("lease lost: it expired or another process took it")
            return False
        self._valid_until = sent + self.ttl * (1 - DRIFT)
        return True

    def step_down(self, reason: str, *, release: bool = False) -> None:
        """Stop leading at once; ``on_lost`` hears ``reason`` (once per term).

        ``release``: also delete the lease key if it still holds this term's
        value (best effort), so that another process need not wait for the
        TTL: after the log refused an append for a seq out of step, this
        process still holds the lease but must not lead on it.
        """
        if self.epoch is None:
            return
        log.warning("%s steps down from epoch %d: %s", self.owner, self.epoch, reason)
        if release:
            self.release()
        self.epoch = None
        self._valid_until = -math.inf
        self.lost_because = reason
        if self.on_lost is not None:
            self.on_lost(reason)

    def release(self) -> None:
        """Give the lease up (a clean shutdown), so another process can take it without waiting for the TTL."""
        if self.epoch is None:
            return
        value = self.value
        self.epoch = None
        self._valid_until = -math.inf
        try:
            self._release(keys=[self.keys.lease], args=[value])
        except redis.RedisError:
            log.warning("%s: could not release the lease; it expires by itself", self.owner, exc_info=True)
