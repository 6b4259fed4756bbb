"""What a screen reader says without the rep looking: arrivals, transfers, chat.

A banner, a sound or a label changing in a corner is silent to a blind rep:
screen readers speak the focused control and *announcements*.  The
:class:`Announcer` posts a :class:`QAccessibleAnnouncementEvent` (AT-SPI's
``object:announcement``, which Orca speaks) for each thing a rep must hear,
with a politeness that fits it:

* assertive (interrupts what is being read): offers, arrivals in the
  personal queue, transfers and invitations to the rep, and chat lines in
  the session tab the rep is in;
* polite (waits its turn): team arrivals, overdue customers, lost races and
  chat lines in a session tab the rep is not in.

Each kind can be turned off in Preferences (``preferences.announcements``),
read at the moment of announcing.  Team arrivals follow the alerts'
per-team switch, and another (not favourite) team's arrivals are announced
only when their alert is on: on a busy site they would talk over everything.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent
from PySide6.QtWidgets import QWidget

from repconsole.core.state import ConsoleState
from repconsole.preferences import AlertEvent
from repconsole.protocol import LineView
from repconsole.settings import Settings

__all__ = ["Announcer", "Kind", "Politeness"]


class Kind(enum.StrEnum):
    """What an announcement is about; each value names its switch in ``preferences.announcements``."""

    ARRIVALS = "arrivals"
    TRANSFERS = "transfers"
    INVITATIONS = "invitations"
    OFFERS = "offers"
    OVERDUE = "overdue"
    LOST_RACES = "lost_races"
    CHAT = "chat"
    CONNECTION = "connection"  # the console moved to another server of the site (issue 15)


Politeness = QAccessible.AnnouncementPoliteness
POLITE = Politeness.Polite
ASSERTIVE = Politeness.Assertive

# An alert's kind of announcement and how urgently it is spoken.
_FOR_ALERT: dict[AlertEvent, tuple[Kind, QAccessible.AnnouncementPoliteness]] = {
    AlertEvent.PERSONAL: (Kind.ARRIVALS, ASSERTIVE),
    AlertEvent.FAVOURITE_TEAM: (Kind.ARRIVALS, POLITE),
    AlertEvent.TEAM: (Kind.ARRIVALS, POLITE),
    AlertEvent.TRANSFER: (Kind.TRANSFERS, ASSERTIVE),
    AlertEvent.INVITATION: (Kind.INVITATIONS, ASSERTIVE),
    AlertEvent.OVERDUE: (Kind.OVERDUE, POLITE),
    AlertEvent.OFFER: (Kind.OFFERS, ASSERTIVE),
}


class Announcer(QObject):
    """Speaks through assistive technology, as the rep's preferences allow.

    Signals:
        announced(str, str, bool): an announcement was posted (kind, text, assertive).
    """

    announced = Signal(str, str, bool)

    def __init__(self, source: QWidget, settings: Callable[[], Settings]) -> None:
        super().__init__(source)
        self._source = source
        self._settings = settings

    def enabled(self, kind: Kind) -> bool:
        return bool(getattr(self._settings().preferences.announcements, kind.value))

    def announce(self, kind: Kind, text: str, politeness: QAccessible.AnnouncementPoliteness = POLITE) -> bool:
        """Announce ``text`` unless the rep turned ``kind`` off; True when it was posted."""
        if not text or not self.enabled(kind):
            return False
        event = QAccessibleAnnouncementEvent(self._source, text)
        event.setPoliteness(politeness)
        # Does nothing while no assistive technology listens.
        QAccessible.updateAccessibility(event)
        self.announced.emit(kind.value, text, politeness == ASSERTIVE)
        return True

    def alert(self, event: AlertEvent, queue: str, text: str) -> bool:
        """Announce what an alert is about: whether or not its sound and banner are on."""
        kind, politeness = _FOR_ALERT[event]
        prefs = self._settings().preferences
        if queue.startswith("team:") and event not in (AlertEvent.INVITATION, AlertEvent.OFFER):  # made to the rep
            team = prefs.team(queue.removeprefix("team:"))
            if not (team.overdue if event is AlertEvent.OVERDUE else team.arrivals):
                return False
        if event is AlertEvent.TEAM and not prefs.alert(event).enabled:
            return False
        return self.announce(kind, text, politeness)

    def chat_line(self, line: LineView, customer: str, state: ConsoleState, *, current: bool) -> bool:
        """Announce a line of the session chat with ``customer``, unless it is the rep's own or an event line."""
        if line.author is None or line.author == state.rep_id:
            return False
        who = customer if line.author == "customer" else state.rep_name(line.author)
        return self.chat(who, line.text, customer=customer, current=current)

    def chat(self, who: str, text: str, *, customer: str, current: bool) -> bool:
        """Announce a chat line from someone else: assertively in the tab the rep is in."""
        spoken = f"{who}: {text}" if current else f"{who}, in the session with {customer}: {text}"
        return self.announce(Kind.CHAT, spoken, ASSERTIVE if current else POLITE)
