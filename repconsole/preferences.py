"""What a rep chooses in the Preferences dialog: alerts, appearance, startup, chat, confirmations.

Qt-free data, stored in ``settings.json`` under ``"preferences"`` (see
:mod:`repconsole.settings`).  Every field has a default, so a file written
by an older console, or missing a part, loads with the defaults for what it
lacks; a field a newer console added is kept and ignored.

The window reads these at the moment it acts (an alert rings, End is
pressed), so a change in the dialog takes effect at once.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

__all__ = [
    "UNTIL_UNMUTED",
    "AlertEvent",
    "AlertPreference",
    "Announcements",
    "Appearance",
    "ChatPreferences",
    "Confirmations",
    "Preferences",
    "StartupBackend",
    "StartupPreferences",
    "TeamAlerts",
    "Theme",
    "load_preferences",
]

_Seconds = Annotated[float, msgspec.Meta(ge=0, le=3600)]

# ``mute_until`` for "until unmuted": a wall-clock time no shift reaches
# (JSON has no infinity).
UNTIL_UNMUTED = 1e15


class AlertEvent(enum.StrEnum):
    """What an alert is for; each has its own sound, repeat and on/off."""

    PERSONAL = "personal"  # a new customer in the rep's personal queue
    FAVOURITE_TEAM = "favourite_team"  # a new customer in a favourite team's queue
    TEAM = "team"  # a new customer in another of the rep's team queues
    TRANSFER = "transfer"  # a session transferred to the rep
    INVITATION = "invitation"  # an invitation to join a session
    OVERDUE = "overdue"  # a customer passed a waiting-session rule
    OFFER = "offer"  # an auto-assigned session is offered to the rep


class AlertPreference(msgspec.Struct, kw_only=True):
    """One kind of alert: whether it sounds, which sound, and how often it repeats until handled."""

    enabled: bool = True
    sound: str = "alert"  # a sound of repconsole.resources (without ".wav"), or "" for silence
    repeat_every: _Seconds = 30.0  # 0: once
    desktop: bool = True  # a desktop notification too, while the window is in the background


def _alert_defaults() -> dict[AlertEvent, AlertPreference]:
    # Team arrivals are many on a busy site: they are quieter by default.
    return {
        AlertEvent.PERSONAL: AlertPreference(),
        AlertEvent.FAVOURITE_TEAM: AlertPreference(sound="team", repeat_every=60.0),
        AlertEvent.TEAM: AlertPreference(enabled=False, sound="team", repeat_every=0.0, desktop=False),
        AlertEvent.TRANSFER: AlertPreference(sound="transfer"),
        AlertEvent.INVITATION: AlertPreference(sound="invitation"),
        AlertEvent.OVERDUE: AlertPreference(sound="overdue", repeat_every=60.0),
        AlertEvent.OFFER: AlertPreference(sound="offer", repeat_every=5.0),
    }


class TeamAlerts(msgspec.Struct, kw_only=True):
    """Per team: whether its arrivals and its overdue customers alert at all."""

    arrivals: bool = True
    overdue: bool = True


class Announcements(msgspec.Struct, kw_only=True):
    """What is announced to assistive technology (a screen reader), by kind."""

    arrivals: bool = True
    transfers: bool = True
    invitations: bool = True
    offers: bool = True
    overdue: bool = True
    lost_races: bool = True
    chat: bool = True
    connection: bool = True  # the console moved to another server of the site


class Theme(enum.StrEnum):
    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


class Appearance(msgspec.Struct, kw_only=True):
    theme: Theme = Theme.SYSTEM


class StartupBackend(enum.StrEnum):
    SIMULATOR = "simulator"
    SERVER = "server"


class StartupPreferences(msgspec.Struct, kw_only=True):
    """What the console connects to when it starts without options."""

    backend: StartupBackend = StartupBackend.SIMULATOR
    server_url: str = ""
    user: str = ""
    recent_servers: list[str] = msgspec.field(default_factory=list)  # newest first, at most 10


class ChatPreferences(msgspec.Struct, kw_only=True):
    enter_sends: bool = True  # else Ctrl+Enter sends and Enter adds a line
    # A session whose customer has not written for this many minutes is flagged in its tab (0: never; issue 14).
    silent_after_minutes: Annotated[int, msgspec.Meta(ge=0, le=1440)] = 3


class Confirmations(msgspec.Struct, kw_only=True):
    """Which actions ask first ("don't ask again" turns one off)."""

    end_session: bool = True
    leave_session: bool = True
    quit_with_sessions: bool = True


class Preferences(msgspec.Struct, kw_only=True):
    """Everything the Preferences dialog edits."""

    alerts: dict[AlertEvent, AlertPreference] = msgspec.field(default_factory=_alert_defaults)
    team_alerts: dict[str, TeamAlerts] = msgspec.field(default_factory=dict)  # by team id; absent: the defaults
    mute_until: float | None = None  # wall-clock time; UNTIL_UNMUTED for "until unmuted"
    announcements: Announcements = msgspec.field(default_factory=Announcements)
    appearance: Appearance = msgspec.field(default_factory=Appearance)
    startup: StartupPreferences = msgspec.field(default_factory=StartupPreferences)
    chat: ChatPreferences = msgspec.field(default_factory=ChatPreferences)
    confirm: Confirmations = msgspec.field(default_factory=Confirmations)
    close_to_tray: bool = False  # closing the window keeps the console running in the tray

    def alert(self, event: AlertEvent) -> AlertPreference:
        """The preference for ``event`` (its default if the file did not name it)."""
        found = self.alerts.get(event)
        return found if found is not None else _alert_defaults()[event]

    def team(self, team_id: str) -> TeamAlerts:
        return self.team_alerts.get(team_id) or TeamAlerts()

    def muted(self, now: float) -> bool:
        return self.mute_until is not None and now < self.mute_until


def load_preferences(value: object) -> Preferences:
    """Preferences from the file's ``"preferences"`` part.  Raises ValueError naming what is wrong."""
    try:
        return msgspec.convert(value, Preferences, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"preferences: {exc}") from None
