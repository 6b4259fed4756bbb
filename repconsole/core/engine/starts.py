"""How customers come in: session keys, Support Buttons, browser links, the issue form, a picked rep."""

from __future__ import annotations

import heapq
import random
import string
from collections.abc import Iterator

from repconsole.core.clock import Clock
from repconsole.core.engine.directory import Directory
from repconsole.core.engine.events import EventBus
from repconsole.core.engine.sessions import SessionDesk
from repconsole.core.errors import CommandError, Reason
from repconsole.core.intake import Intake
from repconsole.core.model import Origin, QueueRef, Session, SessionKey
from repconsole.core.ratelimit import RateLimiter
from repconsole.protocol.events import KeyData

__all__ = ["KEYS_KEPT_AFTER_EXPIRY", "KEY_ALPHABET", "KEY_FAILURE_WINDOW", "MAX_KEY_VALIDITY", "Starts"]

# Easy to read aloud over the phone: no 0/O, 1/I/L, 2/Z, 5/S, 8/B look-alikes.
KEY_ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "0O1IL2Z5S8B")
MAX_KEY_VALIDITY = 7 * 24 * 3600.0
# Used and expired keys are kept for a day so that a late customer is told
# "expired" or "used" rather than "unknown".
KEYS_KEPT_AFTER_EXPIRY = 86400.0
KEY_FAILURE_WINDOW = 60.0


class Starts:
    """The ways a customer starts a session, and the session keys reps hand out.

    Attributes:
        keys: every session key still remembered (valid, used, or expired
            less than a day ago), by key.
    """

    def __init__(self, clock: Clock, rng: random.Random, bus: EventBus, directory: Directory, desk: SessionDesk) -> None:
        self._clock = clock
        self._rng = rng
        self._bus = bus
        self._dir = directory
        self._desk = desk
        self.keys: dict[str, SessionKey] = {}
        # (expires_at, key), soonest first: forgetting dead keys pops from
        # the front instead of scanning every key on every generate_key().
        self._key_expiry: list[tuple[float, str]] = []
        # A 7-character key has little entropy, so wrong guesses are counted
        # per caller; idle callers are forgotten, so a flood of guessers from
        # many addresses costs memory only while it lasts.
        self._key_failures: RateLimiter[str] = RateLimiter(directory.site.key_failures_per_minute, KEY_FAILURE_WINDOW, clock)

    # ----------------------------------------------------------------- keys

    def generate_key(self, rep_id: str, valid_for: float) -> SessionKey:
        """A one-time session key that brings a customer to this rep's personal queue.

        ``valid_for`` limits when a session may *start* with the key, not
        how long that session may last.
        """
        self._dir.rep(rep_id)
        if not isinstance(valid_for, (int, float)) or not 0 < valid_for <= MAX_KEY_VALIDITY:
            raise CommandError(Reason.INVALID, f"valid_for must be between 0 and {MAX_KEY_VALIDITY:.0f} seconds")
        now = self._clock()
        self._forget_dead_keys(now)
        while True:
            key = "".join(self._rng.choice(KEY_ALPHABET) for _ in range(self._dir.site.key_length))
            if key not in self.keys:
                break
        record = SessionKey(key, rep_id, now, now + float(valid_for))
        self.keys[key] = record
        heapq.heappush(self._key_expiry, (record.expires_at, key))
        self._bus.emit(KeyData(record.view()), frozenset((rep_id,)))
        return record

    def keys_of(self, rep_id: str) -> list[SessionKey]:
        """The rep's keys that can still start a session."""
        now = self._clock()
        return [k for k in self.keys.values() if k.rep == rep_id and k.used_by is None and k.expires_at > now]

    def all_keys(self) -> Iterator[SessionKey]:
        return iter(self.keys.values())

    def restore_key(self, key: SessionKey) -> None:
        self.keys[key.key] = key
        heapq.heappush(self._key_expiry, (key.expires_at, key.key))

    def _forget_dead_keys(self, now: float) -> None:
        expiry = self._key_expiry
        while expiry and expiry[0][0] < now - KEYS_KEPT_AFTER_EXPIRY:
            self.keys.pop(heapq.heappop(expiry)[1], None)

    # --------------------------------------------------------------- starts

    def start_with_key(self, key: str, intake: Intake, *, source: str = "") -> Session:
        """A customer types a session key; they join the personal queue of the rep who made it.

        ``source`` identifies the caller (an address) for rate limiting:
        a 7-character key has little entropy, so wrong guesses are counted.
        """
        now = self._clock()
        failures = self._key_failures
        failures.limit = self._dir.site.key_failures_per_minute  # read on every attempt, as the site may change
        if failures.blocked(source):
            raise CommandError(Reason.KEY_RATE_LIMITED)
        normalized = "".join(ch for ch in key.upper() if ch.isalnum())
        record = self.keys.get(normalized)
        reason: Reason | None = None
        if record is None:
            reason = Reason.KEY_UNKNOWN
        elif record.used_by is not None:
            reason = Reason.KEY_USED
        elif record.expires_at <= now:
            reason = Reason.KEY_EXPIRED
        if reason is not None:
            failures.hit(source)
            raise CommandError(reason)
        assert record is not None
        # The key goes in before the arrival is announced: consoles mirror the event.
        s = self._desk.arrive(Origin.SESSION_KEY, intake, QueueRef.personal(record.rep), source=normalized, session_key=normalized)
        record.used_by = s.id
        self._bus.emit(KeyData(record.view()), frozenset((record.rep,)))
        return s

    def start_with_rep(self, rep_id: str, intake: Intake) -> Session:
        """The customer picked a rep's name on the public support site."""
        rep = self._dir.rep(rep_id)
        if not rep.connected:
            raise CommandError(Reason.REP_OFFLINE, rep=rep_id)
        return self._desk.arrive(Origin.REP_PICKED, intake, QueueRef.personal(rep_id), source=rep_id)

    def start_with_button(self, button_id: str, intake: Intake) -> Session:
        button = self._dir.buttons.get(button_id)
        if button is None:
            raise CommandError(Reason.UNKNOWN_BUTTON, button=button_id)
        if button.expires_at is not None and button.expires_at <= self._clock():
            raise CommandError(Reason.BUTTON_EXPIRED, button=button_id)
        origin = Origin.REP_BUTTON if button.target.is_personal else Origin.TEAM_BUTTON
        return self._desk.arrive(origin, intake, button.target, source=button.description)

    def start_with_issue(self, issue_code: str, intake: Intake) -> Session:
        """The issue submission form: the team that owns the issue gets the customer."""
        issue = self._dir.issues.get(issue_code)
        if issue is None:
            raise CommandError(Reason.UNKNOWN_ISSUE, issue=issue_code)
        return self._desk.arrive(Origin.ISSUE_FORM, intake, QueueRef.team(issue.team), source=issue.code, issue=issue)

    def start_browser(
        self, link_id: str, intake: Intake, *, page_url: str = "", page_html: str = "", issue: str | None = None
    ) -> Session:
        """A help link on the customer's web page: a browser-sharing session.

        A revoked or expired link starts nothing.  The link's issue, if it
        names one, labels the session; else the one the customer picked, if any.
        """
        link = self._dir.links.get(link_id)
        if link is None:
            raise CommandError(Reason.UNKNOWN_LINK, link=link_id)
        if link.revoked:
            raise CommandError(Reason.LINK_REVOKED, link=link_id)
        if link.expires_at is not None and link.expires_at <= self._clock():
            raise CommandError(Reason.LINK_EXPIRED, link=link_id)
        code = link.issue if link.issue is not None else issue
        picked = None
        if code is not None:
            picked = self._dir.issues.get(code)
            if picked is None:
                raise CommandError(Reason.UNKNOWN_ISSUE, issue=code)
        origin = Origin.BROWSER_REP if link.target.is_personal else Origin.BROWSER_TEAM
        return self._desk.arrive(origin, intake, link.target, source=link.name, issue=picked, page_url=page_url, page_html=page_html)
