"""Which queue server the console tries next, and when (issue 15): the connection policy.

A site that runs several ``repconsole-server`` processes gives the console
all their addresses (``--server ws://a:8765,ws://b:8765``, or the same list in
the sign-in dialog and the preferences).  When the connection drops, the
console tries the server it was on first (a blip, or a restart, brings it
back where it was), then the others in turn.  Each pass over the list is a
*round*; the round ``r`` starts after a full-jitter delay from
:class:`~repconsole.backend.backoff.Backoff` (uniform in
``[0, min(cap, base·2^r)]``), and the other addresses of the round follow at
once: their server is alive or refuses at once, and the jitter already spread
the consoles a dead server dropped together, so they do not reach the next one
in one wave either.  With one address this is exactly the single-server
backoff.

Sans-I/O: :class:`Endpoints` is given the list, told what happened
(:meth:`~Endpoints.lost`, :meth:`~Endpoints.connected`) and says where to go
next and when (:meth:`~Endpoints.next_try`); the randomness is the
backoff's injected generator and the clock is injected.  Qt-free, asyncio-free.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from repconsole.backend.backoff import Backoff

__all__ = ["Endpoints", "Try", "format_servers", "parse_servers", "server_endpoint", "why_unreachable"]


def server_endpoint(url: str) -> str:
    """The ``/rep`` endpoint for a server URL (``ws://host:port`` → ``ws://host:port/rep``).

    Raises ValueError unless the scheme is ``ws`` or ``wss`` and a host is given.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"server URL must start with ws:// or wss://, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"server URL has no host: {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"bad port in server URL {url!r}") from None
    path = parts.path if parts.path not in ("", "/") else "/rep"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def why_unreachable(exc: BaseException) -> str:
    """Why connecting to a server failed, in a few words (``connection refused``)."""
    from websockets.exceptions import WebSocketException  # only once there was a connection to make

    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, WebSocketException):
        return str(exc) or type(exc).__name__
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def parse_servers(servers: str | Iterable[str]) -> list[str]:
    """The server addresses in ``servers``: one string with commas (or spaces) between them, or several.

    Each is checked (``ws://`` or ``wss://`` with a host) and given as typed,
    without a trailing slash; a repeated address counts once.  Raises
    ValueError naming the bad address, or when there is none.
    """
    texts = [servers] if isinstance(servers, str) else list(servers)
    urls: list[str] = []
    for text in texts:
        for item in re.split(r"[,\s]+", text.strip()):
            if not item:
                continue
            server_endpoint(item)  # raises ValueError
            url = item.rstrip("/")
            if url not in urls:
                urls.append(url)
    if not urls:
        raise ValueError("no server address given: ws://host:port or wss://host (several: separated by commas)")
    return urls


def format_servers(urls: Iterable[str]) -> str:
    """The addresses as one line, as :func:`parse_servers` reads them: ``"ws://a:8765, ws://b:8765"``."""
    return ", ".join(urls)


@dataclass(frozen=True, slots=True)
class Try:
    """One connection attempt: where, and after how long.

    Attributes:
        url: the server address to try.
        delay: seconds to wait before trying.
        at: when to try, on the injected clock (now + ``delay``).
        attempt: the number of this try in the outage, from 1.
        round: the pass over the list, from 0 (its first try waits the jittered delay).
    """

    url: str
    delay: float
    at: float
    attempt: int
    round: int


class Endpoints:
    """The console's server addresses and which to try next.

    Args:
        urls: the addresses, in the order to try them (:func:`parse_servers` checks them).
        backoff: the jittered delays between rounds.
        clock: now, in seconds (monotonic by default; injected in tests).

    Attributes:
        urls: the addresses.
        backoff: the delays between rounds.
        url: the address in use (or to use first): the last one that answered.
    """

    def __init__(self, urls: Iterable[str], backoff: Backoff | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.urls = tuple(parse_servers(urls))
        self.backoff = backoff if backoff is not None else Backoff()
        self._clock = clock
        self._current = 0
        self._start = 0
        self._tries = 0
        self._immediate = False

    @property
    def url(self) -> str:
        return self.urls[self._current]

    def order(self) -> list[str]:
        """The addresses in the order of one round: the one in use first, then the others in turn."""
        n = len(self.urls)
        return [self.urls[(self._current + i) % n] for i in range(n)]

    def lost(self, *, immediate: bool = False) -> None:
        """The connection dropped: a new outage starts from the address in use.

        ``immediate``: the first round starts at once (the server closed only
        this console, e.g. too slow, or it asked for a snapshot); later rounds
        wait as usual.
        """
        self._start = self._current
        self._tries = 0
        self._immediate = immediate

    def next_try(self) -> Try:
        """Where to try next and after how long; each call is one more try of the outage."""
        n = len(self.urls)
        k, self._tries = self._tries, self._tries + 1
        rnd, pos = divmod(k, n)
        url = self.urls[(self._start + pos) % n]
        if pos:
            delay = 0.0  # the rest of the round: at once
        elif self._immediate:
            delay = 0.0 if rnd == 0 else self.backoff.delay(rnd - 1)
        else:
            delay = self.backoff.delay(rnd)
        return Try(url, delay, self._clock() + delay, k + 1, rnd)

    def connected(self, url: str) -> bool:
        """``url`` answered: it is the address in use from now on.  True when it is another one than before (a switch).

        The outage's count of tries goes on (only :meth:`lost` starts a new one): a server
        that answers and then fails (a sign-in that times out) must not reset the backoff.
        """
        index = self.urls.index(url)
        switched = index != self._current
        self._current = index
        return switched

    def use(self, urls: Iterable[str]) -> None:
        """Replace the addresses (the rep typed others before signing in); the first is tried first."""
        self.urls = tuple(parse_servers(urls))
        self._current = self._start = self._tries = 0
