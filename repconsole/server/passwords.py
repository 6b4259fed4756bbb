"""Checking a rep's password at login, within limits.

:class:`PasswordDesk` answers one question per login: may this username
with this password, from this client address, log in?

* **Lockout per (username, address)**: five failures within a minute lock
  that pair for the rest of the minute (:class:`~repconsole.server.auth.FailureLimiter`).
  A guesser at one address never locks the rep out at another.
* **A global budget of hashing CPU**: every check is charged the CPU time it
  took (in :data:`HASH_WORK_UNIT` steps, to one
  :class:`~repconsole.core.ratelimit.RateLimiter` key over a one-second
  window); once ``[server] password_work`` seconds of a second are spent, a
  login is refused at once, with no hash computed.  A flood of unknown
  usernames from many addresses costs at most that much CPU.
* **Unknown usernames cost a check too**, against a hash that matches
  nothing, with the parameters a known rep's argon2id hash has: timing does
  not tell which usernames exist.
* **Re-hash**: a hash that verified but is an earlier server's scrypt hash
  (or argon2id at another cost) is replaced by one at this server's cost.
* **In a cluster** the hashes set with ``passwd`` and the re-hashes live in
  Redis, for every process (:attr:`PasswordDesk.remote`,
  repconsole/server/cluster/passwords.py): read at each login, a re-hash
  replaces only the hash it verified.  Redis unreachable: the login is
  refused as busy, never checked against an older hash.

Hashing runs in a small thread pool, off the event loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from repconsole.core.ratelimit import RateLimiter
from repconsole.server.auth import (
    OWASP,
    Argon2Params,
    FailureLimiter,
    HashParams,
    dummy_hash,
    hash_password,
    needs_rehash,
    parse_hash,
    verify_password,
)
from repconsole.server.config import SiteSpec
from repconsole.server.store import Store
from repconsole.server.timers import ServerClock

__all__ = ["HASH_WORK_UNIT", "LOGIN_FAILURES_PER_MINUTE", "PasswordDesk", "Verdict"]

log = logging.getLogger(__name__)

LOGIN_FAILURES_PER_MINUTE = 5
# Password checks are charged to the global budget in units of this much CPU time.
HASH_WORK_UNIT = 0.001
_ALL_LOGINS = "all logins"


class Verdict(enum.Enum):
    OK = "ok"
    WRONG = "wrong"  # a wrong password or an unknown username (not told apart)
    LOCKED = "locked"  # too many failures for this username at this address
    BUSY = "busy"  # the second's budget of password checks is spent


class RemoteHashes(Protocol):
    """The organisation's hashes in a cluster (cluster/passwords.py's ClusterPasswords)."""

    async def get(self, username: str) -> str | None: ...

    async def replace(self, username: str, verified: str | None, encoded: str) -> bool: ...


class PasswordDesk:
    """The password checks of one server.

    Args:
        spec: the site (the configuration's password hashes).
        clock: the server's clock (the windows are durations: its monotonic reading).
        hash_params: the cost of the hashes this server makes.
        password_work: seconds of CPU password checks may take per second.

    Attributes:
        store: where ``passwd`` and re-hashes keep hashes (set once the store is open).
        remote: in a cluster, where they are kept instead: Redis, for every process.
    """

    def __init__(self, spec: SiteSpec, clock: ServerClock, hash_params: HashParams = OWASP, *, password_work: float = 1.0) -> None:
        self.spec = spec
        self.hash_params = hash_params
        self.store: Store | None = None
        self.remote: RemoteHashes | None = None
        self._failures = FailureLimiter(LOGIN_FAILURES_PER_MINUTE, 60.0, clock=clock.monotonic)
        self._work: RateLimiter[str] = RateLimiter(1, 1.0, clock=clock.monotonic)
        self.set_budget(password_work)
        # argon2id at OWASP cost: 19 MiB and ~35 ms a hash (an earlier scrypt hash, 128 MiB and
        # half a second), two at a time.
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="repconsole-hash")

    def set_budget(self, password_work: float) -> None:
        self._work.limit = max(1, round(password_work / HASH_WORK_UNIT))

    def prune(self) -> None:
        self._failures.prune()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def hash(self, password: str) -> str:
        """``password`` hashed at this server's cost, in the pool."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, hash_password, password, self.hash_params)

    def password_hash(self, username: str) -> str | None:
        rep = self.spec.rep(username)
        if rep is None:
            return None
        # A password set with `passwd` (stored) wins over the configuration file's.
        stored = self.store.password_hash(username) if self.store is not None else None
        return stored or rep.password_hash

    async def check(self, username: str, password: str, address: Hashable) -> Verdict:
        """Whether ``username`` may log in with ``password`` from ``address``."""
        pair = (username, address)
        if self._failures.blocked(pair):
            return Verdict.LOCKED
        if self._work.blocked(_ALL_LOGINS):
            log.warning("password checks over budget: login of %r from %s refused", username, address)
            return Verdict.BUSY
        try:
            stored, remote = await self._stored(username)
        except Exception as exc:  # the organisation's hashes cannot be read (Redis): refused, not checked against an old one
            log.warning("cannot read the password hash of %r (%s): login refused", username, exc)
            return Verdict.BUSY
        # An unknown username costs as much as a wrong password: timing tells nothing.
        encoded = stored or self._dummy_hash()
        try:
            ok, cpu = await asyncio.get_running_loop().run_in_executor(self.pool, _timed_verify, password, encoded)
        except ValueError:
            log.error("the stored password hash of %s is malformed", username)
            ok, cpu = False, 0.0
        for _ in range(max(1, math.ceil(cpu / HASH_WORK_UNIT))):
            self._work.hit(_ALL_LOGINS)
        if not ok or stored is None:
            self._failures.fail(pair)
            log.info("failed login for %r from %s", username, address)
            return Verdict.WRONG
        self._failures.clear(pair)
        if needs_rehash(stored, self.hash_params):
            await self._rehash(username, password, stored, remote)
        return Verdict.OK

    async def _stored(self, username: str) -> tuple[str | None, str | None]:
        """The hash to check, and (in a cluster) the organisation's hash it came from (None: the configuration's)."""
        if self.remote is None:
            return self.password_hash(username), None
        rep = self.spec.rep(username)
        if rep is None:
            return None, None
        remote = await self.remote.get(username)
        return remote or rep.password_hash, remote

    def _dummy_hash(self) -> str:
        """What a login without a password hash (an unknown username) is checked against:
        a hash that matches nothing, with the parameters of a hash a known rep's login
        really checks.  Any stored argon2id hash is one (a stored hash wins over the
        configuration's); else any of the configuration's; else this server's own
        parameters, those a demo, a new password or a re-hash gets.  Never an earlier
        server's scrypt hash: an unknown username must not cost half a second of CPU."""
        stored = self.store.any_password_hash() if self.store is not None else None
        for like in (stored, *(r.password_hash for r in self.spec.reps)):
            if like:
                try:
                    if isinstance(parse_hash(like), Argon2Params):
                        return dummy_hash(like)
                except ValueError:
                    continue
        return dummy_hash(None, self.hash_params)

    async def _rehash(self, username: str, password: str, verified: str, remote: str | None = None) -> None:
        """An earlier server's scrypt hash (or another cost) that just verified: store the
        password hashed at this server's cost.  Stored in the data directory, where it wins
        over the configuration file's hash, as one set with ``passwd`` does; in a cluster, in
        Redis, only if the organisation's hash is still ``remote`` (the one verified, or none)."""
        encoded = await self.hash(password)
        if self.remote is not None:
            try:
                replaced = await self.remote.replace(username, remote, encoded)
            except Exception as exc:
                log.warning("the re-hash of %s's password was not stored (%s)", username, exc)
                return
            if replaced:
                log.info("the password hash of %s is now argon2id at this server's cost (for every process)", username)
            return
        if self.store is None or self.password_hash(username) != verified:
            return  # changed meanwhile (`passwd`): the new password stands
        self.store.set_password_hash(username, encoded)
        log.info("the password hash of %s is now argon2id at this server's cost", username)


def _timed_verify(password: str, encoded: str) -> tuple[bool, float]:
    """verify_password, and the CPU time it took this thread (run in the pool)."""
    start = time.thread_time()
    ok = verify_password(password, encoded)
    return ok, time.thread_time() - start
