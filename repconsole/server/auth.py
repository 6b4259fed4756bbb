"""Passwords, login rate limits and resume tokens.

* Passwords are hashed with scrypt at OWASP's recommended cost (N=2**17,
  r=8, p=1: about half a second and 128 MiB per hash) and stored
  self-describing, ``scrypt$N$r$p$salt$hash``, so that a stored hash keeps
  verifying after the default cost is raised.  Comparison is constant-time.
* Five failed logins for a username within a minute lock it for the rest of
  that minute: a guesser gets five tries a minute, a rep who mistyped waits.
* A login session is identified by a 192-bit token that only the console
  holds; the server keeps its SHA-256 (a stolen database yields no usable
  token) and an expiry.  :class:`LoginSessions` is the in-memory index; the
  store persists it so that a console can resume across a server restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from repconsole.core.ratelimit import RateLimiter

__all__ = [
    "OWASP",
    "FailureLimiter",
    "LoginSession",
    "LoginSessions",
    "ScryptParams",
    "dummy_hash",
    "hash_password",
    "hash_token",
    "new_token",
    "parse_hash",
    "verify_password",
]


@dataclass(frozen=True, slots=True)
class ScryptParams:
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


OWASP = ScryptParams(n=2**17, r=8, p=1)
_SCHEME = "scrypt"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, params: ScryptParams, key_bytes: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=params.n, r=params.r, p=params.p, dklen=key_bytes, maxmem=params.maxmem
    )


def _format(params: ScryptParams, salt: bytes, key: bytes) -> str:
    return f"{_SCHEME}${params.n}${params.r}${params.p}${_b64(salt)}${_b64(key)}"


def hash_password(password: str, params: ScryptParams = OWASP) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) for ``password``.  CPU-heavy: run it in a thread."""
    params.validate()
    salt = secrets.token_bytes(params.salt_bytes)
    return _format(params, salt, _scrypt(password, salt, params, params.key_bytes))


def parse_hash(encoded: str) -> tuple[ScryptParams, bytes, bytes]:
    """Params, salt and key of a stored hash.  Raises ValueError naming what is wrong."""
    parts = encoded.split("$") if isinstance(encoded, str) else []
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise ValueError("not a password hash of the form scrypt$N$r$p$salt$hash")
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


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``.  Constant-time in the comparison; CPU-heavy."""
    params, salt, key = parse_hash(encoded)
    return hmac.compare_digest(_scrypt(password, salt, params, len(key)), key)


def dummy_hash(like: str | None = None, params: ScryptParams = OWASP) -> str:
    """A hash nothing matches, as costly to check as ``like`` (or, without it, as a
    hash made with ``params``): same N, r, p, salt and key lengths.  An unknown
    username takes as long to refuse as a wrong password, so timing does not tell
    which.  Raises ValueError if ``like`` is malformed."""
    if like:
        params = parse_hash(like)[0]
    return _format(params, secrets.token_bytes(params.salt_bytes), bytes(params.key_bytes))


# ------------------------------------------------------------ rate limit


class FailureLimiter(RateLimiter[str]):
    """Failed logins per username: the one :class:`~repconsole.core.ratelimit.RateLimiter`,
    on the monotonic clock unless told otherwise, with ``fail`` for ``hit``."""

    __slots__ = ()

    def __init__(self, limit: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limit, window, clock)

    def fail(self, key: str) -> None:
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
