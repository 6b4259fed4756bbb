"""Passwords, login rate limits and resume tokens.

* Passwords are hashed with **argon2id** at OWASP's recommended cost (19 MiB,
  2 passes, 1 lane: about 35 ms of one core per hash), in the standard PHC
  string ``$argon2id$v=19$m=19456,t=2,p=1$salt$hash``, which carries its own
  parameters: a stored hash keeps verifying after the default cost changes.
* Hashes of earlier servers, scrypt (``scrypt$N$r$p$salt$hash``, 128 MiB and
  half a second each at N=2**17), still verify; a successful login with one
  (or with an argon2id hash of other parameters) stores a new hash at the
  current cost (:func:`needs_rehash`).
* Failed logins are counted per (username, address): five within a minute
  lock that pair for the rest of the minute.  A guesser elsewhere cannot lock
  a rep out; the rep's own address is what gets locked.
* A login session is identified by a 192-bit token that only the console
  holds; the server keeps its SHA-256 (a stolen database yields no usable
  token) and an expiry.  :class:`LoginSessions` is the in-memory index; the
  store persists it so that a console can resume across a server restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from repconsole.core.ratelimit import RateLimiter

__all__ = [
    "OWASP",
    "Argon2Params",
    "FailureLimiter",
    "HashParams",
    "LoginSession",
    "LoginSessions",
    "ScryptParams",
    "dummy_hash",
    "hash_password",
    "hash_token",
    "needs_rehash",
    "new_token",
    "parse_hash",
    "verify_password",
]


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """argon2id's cost: passes, memory in KiB, lanes; and the salt's and hash's lengths."""

    time_cost: int
    memory_cost: int
    parallelism: int
    salt_bytes: int = 16
    key_bytes: int = 32

    def validate(self) -> None:
        if not 1 <= self.time_cost <= 100 or not 1 <= self.parallelism <= 64:
            raise ValueError("argon2id parameters: t must be 1 to 100, p 1 to 64")
        if not 8 * self.parallelism <= self.memory_cost <= 4 * 1024 * 1024:
            raise ValueError("argon2id parameters: m must be 8*p KiB to 4 GiB")
        if self.salt_bytes < 8 or self.key_bytes < 16:
            raise ValueError("password hash: salt or key too short")

    def hasher(self) -> argon2.PasswordHasher:
        return argon2.PasswordHasher(
            time_cost=self.time_cost, memory_cost=self.memory_cost, parallelism=self.parallelism,
            hash_len=self.key_bytes, salt_len=self.salt_bytes, type=argon2.Type.ID,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt's cost (earlier servers' hashes; still verified, re-hashed on the next login)."""

    n: int
    r: int
    p: int
    salt_bytes: int = 16
    key_bytes: int = 64

    @property
    def maxmem(self) -> int:
        # scrypt needs 128 * r * (N + p) bytes; OpenSSL's default cap (32 MiB)
        # is below what N=2**17 needs, so the cap is raised to just enough.
        return 128 * self.r * (self.n + self.p + 2) + 1024 * 1024

    def validate(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or not 1 <= self.r <= 64 or not 1 <= self.p <= 16:
            raise ValueError("scrypt parameters: N must be a power of two, r in 1..64, p in 1..16")
        if self.maxmem >= 2**31:
            raise ValueError("scrypt parameters need more than 2 GiB")


HashParams = Argon2Params | ScryptParams

# OWASP's Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
OWASP = Argon2Params(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_SCRYPT = "scrypt"
_ARGON2 = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)\Z")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, params: ScryptParams, key_bytes: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=params.n, r=params.r, p=params.p, dklen=key_bytes, maxmem=params.maxmem
    )


def _format(params: HashParams, salt: bytes, key: bytes) -> str:
    if isinstance(params, Argon2Params):
        return f"$argon2id$v=19$m={params.memory_cost},t={params.time_cost},p={params.parallelism}${_b64(salt)}${_b64(key)}"
    return f"{_SCRYPT}${params.n}${params.r}${params.p}${_b64(salt)}${_b64(key)}"


def hash_password(password: str, params: HashParams = OWASP) -> str:
    """The stored form of ``password``: argon2id (a PHC string).  CPU-heavy: run it in a thread.

    ``ScryptParams`` make an scrypt hash as earlier servers did (for tests of the migration).
    """
    params.validate()
    if isinstance(params, Argon2Params):
        return params.hasher().hash(password)
    salt = secrets.token_bytes(params.salt_bytes)
    return _format(params, salt, _scrypt(password, salt, params, params.key_bytes))


def _parse(encoded: str) -> tuple[HashParams, bytes, bytes]:
    if not isinstance(encoded, str):
        raise ValueError("not a password hash")
    m = _ARGON2.match(encoded)
    if m is not None:
        salt, key = _unb64(m.group(4)), _unb64(m.group(5))
        a2 = Argon2Params(int(m.group(2)), int(m.group(1)), int(m.group(3)), len(salt), len(key))
        a2.validate()
        return a2, salt, key
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCRYPT:
        raise ValueError("not a password hash of the form $argon2id$v=19$m=…,t=…,p=…$salt$hash (or an earlier scrypt$N$r$p$salt$hash)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise ValueError("password hash: N, r and p must be numbers, salt and hash base64") from None
    params = ScryptParams(n, r, p, len(salt), len(key))
    params.validate()
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("password hash: salt or key too short")
    return params, salt, key


def parse_hash(encoded: str) -> HashParams:
    """The parameters of a stored hash.  Raises ValueError naming what is wrong."""
    try:
        return _parse(encoded)[0]
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (argon2id or scrypt).  Constant-time in the
    comparison; CPU-heavy.  Raises ValueError for a malformed hash."""
    params, salt, key = _parse(encoded)
    if isinstance(params, ScryptParams):
        return hmac.compare_digest(_scrypt(password, salt, params, len(key)), key)
    try:
        return params.hasher().verify(encoded, password)
    except VerifyMismatchError:
        return False
    except (InvalidHashError, VerificationError) as exc:
        raise ValueError(f"password hash: {exc}") from None


def needs_rehash(encoded: str, params: HashParams = OWASP) -> bool:
    """Whether a hash that just verified should be replaced by one made with ``params``:
    any scrypt hash (argon2id is the scheme now), or another cost."""
    try:
        current = parse_hash(encoded)
    except ValueError:
        return True
    return current != params


def dummy_hash(like: str | None = None, params: HashParams = OWASP) -> str:
    """A hash nothing matches, as costly to check as ``like`` (or, without it, as a
    hash made with ``params``): same scheme, cost, salt and key lengths.  An unknown
    username takes as long to refuse as a wrong password, so timing does not tell
    which.  Raises ValueError if ``like`` is malformed."""
    if like:
        params = parse_hash(like)
    return _format(params, secrets.token_bytes(params.salt_bytes), bytes(params.key_bytes))


# ------------------------------------------------------------ rate limit


class FailureLimiter(RateLimiter[Hashable]):
    """Failed logins per key (the server's: a (username, address) pair): the one
    :class:`~repconsole.core.ratelimit.RateLimiter`, on the monotonic clock unless
    told otherwise, with ``fail`` for ``hit``."""

    __slots__ = ()

    def __init__(self, limit: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limit, window, clock)

    def fail(self, key: Hashable) -> None:
        self.hit(key)


# ---------------------------------------------------------------- tokens


def new_token() -> str:
    """192 bits, URL-safe."""
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(slots=True, eq=False)
class LoginSession:
    """One login of one rep: what a token stands for.

    Attributes:
        id: stable number, the key of the session's stored answers.
        token_hash: SHA-256 of the token.
        rep: the rep who logged in.
        expires_at: wall-clock time after which the token resumes nothing.
        connections: the open sockets of this login (a console has one; a
            reconnect may briefly overlap with the dying one).
    """

    id: int
    token_hash: bytes
    rep: str
    created_at: float
    expires_at: float
    connections: set[Any] = field(default_factory=set)  # the server's WebSocket connections


class LoginSessions:
    """The live login sessions, by token hash.  Persisted by the store."""

    def __init__(self) -> None:
        self._by_hash: dict[bytes, LoginSession] = {}
        self._by_id: dict[int, LoginSession] = {}

    def add(self, login: LoginSession) -> None:
        self._by_hash[login.token_hash] = login
        self._by_id[login.id] = login

    def find(self, token: str) -> LoginSession | None:
        return self._by_hash.get(hash_token(token))

    def get(self, login_id: int) -> LoginSession | None:
        return self._by_id.get(login_id)

    def remove(self, login: LoginSession) -> None:
        self._by_hash.pop(login.token_hash, None)
        self._by_id.pop(login.id, None)

    def expired_before(self, when: float) -> list[LoginSession]:
        """Sessions that expired before ``when`` and have no open socket.

        Expired sessions are kept a while before they are forgotten, so that
        a late resume is told "expired" (log in again) rather than "unknown".
        """
        return [s for s in self._by_id.values() if s.expires_at <= when and not s.connections]

    def of_rep(self, rep: str) -> list[LoginSession]:
        return [s for s in self._by_id.values() if s.rep == rep]

    def __len__(self) -> int:
        return len(self._by_id)
