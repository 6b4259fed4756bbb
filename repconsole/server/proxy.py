"""The client's address, behind a reverse proxy or not.

Rate limits (failed logins, customer starts, wrong session keys) and logs
are keyed on the client's address.  Behind a reverse proxy (nginx, Caddy)
every connection comes from the proxy, so all customers would share one
limit; the proxy says who its client was in a header instead.  Anybody can
send that header, so it is believed only from the peers named in
``[server] trusted_proxies`` (addresses or networks), and only the header
named by ``[server] forwarded_header``: ``x-forwarded-for`` (the default;
nginx's ``$proxy_add_x_forwarded_for`` and Caddy set it) or ``forwarded``
(RFC 7239).  Only one is read: a proxy that sets one usually passes the
other through from the client untouched, forged or not.

A header may list several hops, the client first, each proxy appending the
address it saw.  It is read from the right: addresses of trusted proxies
are skipped, and the first other address is the client.  So a client that
sends its own header only adds entries to the left of the true one, which
are never reached.  An entry that is not an address (``unknown``, an
obfuscated name) ends the walk at the trusted hop after it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Literal

__all__ = ["FORWARDED_HEADERS", "TrustedProxies", "parse_network"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]
FORWARDED_HEADERS: tuple[ForwardedHeader, ...] = ("x-forwarded-for", "forwarded")
_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE)
_MAX_HOPS = 32  # a header longer than this is someone's joke: its leftmost entries are never reached anyway


def parse_network(text: str) -> Network:
    """An address (``10.0.0.5``, ``::1``) or a network (``10.0.0.0/8``), or ValueError saying why not."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network such as 10.0.0.5 or 10.0.0.0/8") from None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address of a header entry: ``192.0.2.7``, ``192.0.2.7:4711``, ``[2001:db8::1]:4711``, ``2001:db8::1``."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """Which peers may say who their client is, and how they say it."""

    def __init__(self, networks: Iterable[str | Network] = (), header: ForwardedHeader = "x-forwarded-for") -> None:
        self.networks: tuple[Network, ...] = tuple(n if not isinstance(n, str) else parse_network(n) for n in networks)
        self.header = header

    def trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address.version == n.version and address in n for n in self.networks)

    def client(self, peer: str, values: Sequence[str]) -> str:
        """The client's address, for a connection from ``peer`` with these values of the
        configured header (every occurrence, in order).  ``peer`` itself unless it is trusted."""
        peer_address = _address(peer)
        if not self.networks or not self.trusted(peer_address):
            return str(peer_address) if peer_address is not None else peer
        hops = self._hops(values)
        nearest = peer_address
        for entry in reversed(hops[-_MAX_HOPS:]):
            address = _address(entry)
            if address is None:
                break
            if not self.trusted(address):
                return str(address)
            nearest = address
        return str(nearest)

    def _hops(self, values: Sequence[str]) -> list[str]:
        if self.header == "x-forwarded-for":
            return [hop for value in values for hop in value.split(",") if hop.strip()]
        hops = []
        for value in values:
            for element in _elements(value):
                m = _FOR.search(element)
                hops.append(m.group(1) if m else "")
        return hops


def _elements(value: str) -> list[str]:
    """A Forwarded header's elements: split on commas outside quoted strings."""
    out: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(current))
            current = []
            continue
        current.append(ch)
    out.append("".join(current))
    return [e for e in out if e.strip()]
