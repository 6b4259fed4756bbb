"""Browser-sharing links: the configuration file's, and those an administrator makes while the server runs.

``repconsole-server link create`` writes a link to the store (the server
may be running: SQLite's locking makes that safe); the server reads a link
from the store each time it is used (a customer starts with it, its snippet
asks what it is, a page opens a socket with it), so a link made or revoked
a moment ago counts at once.  A link of the configuration file (``[[links]]``)
is fixed for the server's life; a stored link never shadows it.

The snippet an administrator pastes into a web page::

    <script src="https://support.example.com/cobrowse.js" data-link="ID" async></script>

and the plain address of a page of our own that starts a session with the
link: ``https://support.example.com/support?link=ID``.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from repconsole.core.engine import QueueEngine
from repconsole.core.errors import CommandError
from repconsole.core.model import BrowserLink, QueueRef
from repconsole.protocol import Reason
from repconsole.server.config import SiteSpec
from repconsole.server.store import LinkRow, Store

__all__ = ["LinkBook", "LinkState", "link_state", "new_link_id", "new_row", "parse_lifetime", "snippet", "support_url"]

log = logging.getLogger(__name__)

_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes: read over the phone, typed into a CMS
_ID_LENGTH = 12  # about 59 bits: not a secret (it is in the page), but never guessed by accident
_LIFETIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def new_link_id() -> str:
    return "lk-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def parse_lifetime(text: str) -> float | None:
    """``7d``, ``12h``, ``30m``, ``90s`` or plain seconds; ``never``: None.  ValueError otherwise."""
    if text.strip().lower() in ("never", "none", "0"):
        return None
    m = _LIFETIME.match(text.lower())
    if m is None or float(m[1]) <= 0:
        raise ValueError(f"not a lifetime: {text!r} (e.g. 7d, 12h, 30m, or never)")
    return float(m[1]) * _UNITS[m[2]]


def snippet(base_url: str, link_id: str) -> str:
    """The one line an administrator pastes into a web page."""
    return f'<script src="{base_url}/cobrowse.js" data-link="{link_id}" async></script>'


def support_url(base_url: str, link_id: str) -> str:
    """Our own page that starts a browser-sharing session with the link."""
    return f"{base_url}/support?link={link_id}"


class LinkState:
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def link_state(revoked: bool, expires_at: float | None, now: float) -> str:
    if revoked:
        return LinkState.REVOKED
    if expires_at is not None and expires_at <= now:
        return LinkState.EXPIRED
    return LinkState.ACTIVE


class LinkBook:
    """Every link the server knows, as it stands now."""

    def __init__(self, spec: SiteSpec, engine: QueueEngine, store: Store) -> None:
        self._engine = engine
        self._store = store
        self._configured = frozenset(link.id for link in spec.links)

    def reconfigure(self, spec: SiteSpec) -> None:
        """The configuration's links changed (a reload; the engine has them already)."""
        self._configured = frozenset(link.id for link in spec.links)

    def get(self, link_id: str) -> BrowserLink | None:
        """The link, read again from the store if an administrator made it; None if there is none."""
        if link_id in self._configured:
            return self._engine.links.get(link_id)
        try:
            row = self._store.link(link_id)
        except Exception:  # a busy or broken database must not take a customer's page down with it
            log.exception("cannot read link %r", link_id)
            return self._engine.links.get(link_id)
        if row is None:
            return None
        try:
            return self._engine.add_link(
                row.id, row.name, QueueRef.parse(row.target), issue=row.issue, expires_at=row.expires_at,
                revoked=row.revoked_at is not None, origins=row.origins,
            )  # fmt: skip
        except (CommandError, ValueError) as exc:  # its rep, team or issue left the configuration
            log.warning("link %s cannot be used: %s", link_id, exc)
            self._engine.links.pop(link_id, None)
            return None

    def origins(self, link_id: str) -> tuple[str, ...]:
        """The pages that may use the link, besides the server's own (none for an unknown link)."""
        link = self.get(link_id)
        return link.origins if link is not None else ()

    def public(self, link_id: str) -> dict[str, Any] | None:
        """What the help-link snippet is told about a link (``GET /api/link/ID``); None: no such link.

        Only what a customer may know: its name, whether it can be used, and
        what the customer is asked (a name always; an issue when the link names none).
        """
        link = self.get(link_id)
        if link is None:
            return None
        e = self._engine
        state = link_state(link.revoked, link.expires_at, e.now())
        issue = e.issues.get(link.issue) if link.issue is not None else None
        answer: dict[str, Any] = {
            "id": link.id,
            "name": link.name,
            "available": state == LinkState.ACTIVE,
            "issue": {"code": issue.code, "name": issue.name, "category": issue.category} if issue else None,
            "ask_name": True,
            "ask_issue": issue is None and bool(e.issues),
            "issues": [] if issue else [{"code": i.code, "name": i.name, "category": i.category} for i in e.issues.values()],
        }
        if state == LinkState.REVOKED:
            answer["reason"] = Reason.LINK_REVOKED.value
        elif state == LinkState.EXPIRED:
            answer["reason"] = Reason.LINK_EXPIRED.value
        return answer

    def configured(self) -> list[BrowserLink]:
        """The configuration file's links still usable (``/api/site`` lists them)."""
        now = self._engine.now()
        return [
            link for link in self._engine.links.values()
            if link.id in self._configured and link_state(link.revoked, link.expires_at, now) == LinkState.ACTIVE
        ]  # fmt: skip


def new_row(
    link_id: str, name: str, target: QueueRef, *, issue: str | None, origins: tuple[str, ...], lifetime: float | None, now: float | None = None
) -> LinkRow:
    created = time.time() if now is None else now
    return LinkRow(link_id, name, target.serialize(), issue, origins, created, created + lifetime if lifetime is not None else None)
