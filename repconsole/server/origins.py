"""Which browser pages may use the server's endpoints: the Origin policy.

Browsers send ``Origin``; a page from elsewhere must not use our endpoints.
Allowed are the configured public origins (``[server] public_url``'s and
``allowed_origins``), and, for a page that names its browser-sharing link
(``/customer?link=ID``, ``/cobrowse?link=ID``), that link's ``origins``.
Without ``public_url``, also the origin the request's ``Host`` names, but
only when that Host is an IP address or ``localhost``: a name could be an
attacker's, rebound to this server's address (DNS rebinding), and then
Origin and Host agree.

A request without Origin is not from a browser (the desktop console, a
script); any such client could send whatever Origin it liked, so refusing
it would protect nobody.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Collection

from websockets.http11 import Request

from repconsole.server.config import ServerSettings, parse_origin

__all__ = ["OriginPolicy", "loopback", "origin_of"]


class OriginPolicy:
    """The origins ``[server]`` allows, as of the settings it was made from (a reload makes a new one).

    Attributes:
        allowed: the public origins, normalised.
    """

    def __init__(self, settings: ServerSettings | None = None, *, tls: bool = False) -> None:
        public_url = settings.public_url if settings is not None else None
        self._tls = tls
        self._host_counts = not public_url  # with a public_url, Host never names an allowed origin
        self.allowed: frozenset[str] = frozenset(settings.allowed_origins if settings is not None else ()) | (
            {parse_origin(origin_of(public_url))} if public_url else frozenset()
        )

    def allows(self, request: Request, link_origins: Collection[str] = ()) -> bool:
        """Whether ``request`` may go on; ``link_origins`` are the origins of the link the page names."""
        origins = request.headers.get_all("Origin")
        if not origins:
            return True
        if len(origins) > 1:
            return False  # no browser sends two
        try:
            origin = parse_origin(origins[0])
        except ValueError:
            return False  # "null" (sandboxed frames, files) and anything malformed
        return origin in self.allowed or origin == self._own_origin(request) or origin in link_origins

    def _own_origin(self, request: Request) -> str | None:
        """The origin the request's Host names, if it may count as the server's own."""
        hosts = request.headers.get_all("Host")
        if len(hosts) != 1 or not self._host_counts:
            return None
        try:
            origin = parse_origin(f"{'https' if self._tls else 'http'}://{hosts[0]}")
        except ValueError:
            return None
        name = urllib.parse.urlsplit(origin).hostname or ""
        if name != "localhost":
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return None  # a name: it could be rebound
        return origin


def loopback(host: str) -> bool:
    """Whether ``host`` (a listen address) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_of(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}"
