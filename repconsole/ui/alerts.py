"""Alerts that a rep cannot miss: banner, sound, desktop notification, taskbar flash.

Missed arrivals are the most common complaint about peer products, so an
alert repeats its sound until the rep sees it or it is handled:

* it is *handled* when its row leaves the queue: the customer was accepted
  (by anyone), left, or moved on (:meth:`Alerter.revalidate`);
* it is *seen* when the rep opens the queue it is about, clicks Show on the
  banner or dismisses it (:meth:`Alerter.acknowledge`).

An offer (issue 14) is the exception: the offer strip (``ui/offers.py``) is
its banner, the one place that names the offer the rep answers now and how
many more wait, so the banner here never shows offers and counts none in
its "+N more" (it named the newest offer while the strip named the oldest).
An offer's alert still rings, repeats, reaches the desktop and is announced
once; it ends only when the offer does (answered, run out, withdrawn), not
when a queue is opened or the banner dismissed: an offer wants an answer.

What sounds, how often it repeats and whether it reaches the desktop is read
from the rep's preferences at the moment of ringing, so a change in the
Preferences dialog (or a mute from the tray) applies at once.  Repeats run
on an injected clock: :meth:`Alerter.tick` rings whatever is due, a one-second
timer calls it in the console, and tests call it after moving their clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from repconsole.core.state import Arrival, Changes, ConsoleState, RowKind
from repconsole.preferences import UNTIL_UNMUTED, AlertEvent, Preferences
from repconsole.protocol import StepKind
from repconsole.resources import ALERT_SOUND, resource
from repconsole.settings import Settings
from repconsole.ui.announce import Announcer

if TYPE_CHECKING:
    from PySide6.QtMultimedia import QSoundEffect

__all__ = ["SOUNDS", "Alert", "AlertBanner", "AlertSounds", "Alerter", "alerts_for"]

log = logging.getLogger(__name__)

# The sounds a rep can choose, by preference name, with what the dialog calls them.
# A name without its own file plays the chime (resources/alert.wav).
SOUNDS: dict[str, str] = {"alert": "Chime", "team": "Team chime", "transfer": "Transfer", "invitation": "Invitation", "overdue": "Overdue", "offer": "Offer"}
TICK_MS = 1000
# A customer's arrival in a team queue: an offer of that customer to the rep takes its place.
_ARRIVALS = (AlertEvent.TEAM, AlertEvent.FAVOURITE_TEAM)
# When several alerts are due at once, one sound plays: the most urgent.
_URGENCY = [AlertEvent.OFFER, AlertEvent.TRANSFER, AlertEvent.PERSONAL, AlertEvent.INVITATION, AlertEvent.OVERDUE, AlertEvent.FAVOURITE_TEAM, AlertEvent.TEAM]


def sound_path(name: str) -> Path | None:
    """The file of sound ``name``, the chime when it has none of its own; None for silence."""
    if not name:
        return None
    for candidate in (f"{name}.wav", ALERT_SOUND):
        try:
            node = resource(candidate)
        except (FileNotFoundError, ValueError):
            continue
        if isinstance(node, Path):
            return node
    return None


class AlertSounds(QObject):
    """One :class:`QSoundEffect` per sound, loaded on first use.

    Attributes:
        effects: the loaded effects by sound name (tests assert on them).
    """

    def __init__(self, parent: QObject | None = None, *, factory: Callable[[QObject], QSoundEffect] | None = None) -> None:
        super().__init__(parent)
        self._factory = factory
        self.effects: dict[str, QSoundEffect] = {}

    def play(self, name: str) -> QSoundEffect | None:
        """Play sound ``name`` (from the start if it is still playing); None when it is silence."""
        effect = self.effects.get(name)
        if effect is None:
            path = sound_path(name)
            if path is None:
                return None
            if self._factory is None:
                # QtMultimedia loads at the first sound, not at start: the queue fills without it.
                from PySide6.QtMultimedia import QSoundEffect

                self._factory = QSoundEffect
            effect = self._factory(self)
            effect.setSource(QUrl.fromLocalFile(str(path)))
            effect.setVolume(0.8)
            self.effects[name] = effect
        effect.stop()
        effect.play()
        return effect


class AlertBanner(QFrame):
    """A banner floating over the bottom of the queue table.

    It overlays the table rather than taking a place in the layout, so
    showing it never moves a row under the rep's pointer.

    Signals:
        showRequested(): the rep clicked "Show".
        dismissed(): the rep closed the banner.
    """

    showRequested = Signal()
    dismissed = Signal()

    def __init__(self, parent: QAbstractScrollArea) -> None:
        super().__init__(parent)
        self.setObjectName("alertBanner")
        self.setAutoFillBackground(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # Palette roles: a tooltip's colours are "a note floating over the UI" in every theme.
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self._label = QLabel()
        self._label.setTextFormat(Qt.TextFormat.PlainText)
        self._label.setForegroundRole(QPalette.ColorRole.ToolTipText)
        # A long text must not widen the banner past the table (its buttons went out of sight).
        self._label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        show = QPushButton("&Show")
        show.clicked.connect(self.showRequested)
        close = QPushButton("Dismiss")
        close.clicked.connect(self._on_close_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 6, 4)
        layout.addWidget(self._label, 1)
        layout.addWidget(show)
        layout.addWidget(close)
        self._area = parent
        parent.installEventFilter(self)
        # A scroll bar that comes or goes changes the viewport without resizing the table.
        bar = parent.horizontalScrollBar()
        if bar is not None:
            bar.rangeChanged.connect(self._on_bar_rangeChanged)
        self.hide()

    @property
    def text(self) -> str:
        return self._label.text()

    def show_message(self, text: str) -> None:
        self._label.setText(text)
        self._place()
        self.show()
        self.raise_()

    def _place(self) -> None:
        viewport = self._area.viewport().geometry()
        height = self.sizeHint().height()
        self.setGeometry(viewport.left() + 6, viewport.bottom() - height - 5, max(0, viewport.width() - 12), height)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._area and event.type() == QEvent.Type.Resize:
            self._place_later()
        return super().eventFilter(watched, event)

    def _on_bar_rangeChanged(self, low: int, high: int) -> None:
        self._place_later()

    def _place_later(self) -> None:
        # After the table has laid out its viewport (a filter sees the resize
        # first).  Not isVisible(): the table may change while its tab is
        # hidden, and the banner must fit when it shows again.
        if not self.isHidden():
            QTimer.singleShot(0, self, self._place)

    def _on_close_clicked(self) -> None:
        self.hide()
        self.dismissed.emit()


@dataclass
class Alert:
    """One thing the rep is alerted about, until seen or handled.

    ``queue`` and ``row`` name the queue table row it is about (a session id,
    or an invitation id); ``next_at`` is when its sound repeats.
    """

    event: AlertEvent
    queue: str
    row: str
    text: str
    next_at: float | None = None


class Alerter(QObject):
    """Raises alerts through every channel, repeats their sound until seen or handled.

    Signals:
        raised(str, str): an alert was raised (event, text).
        rang(str): a sound was played for an event (the first time or a repeat).
        desktopNotified(str, str): a desktop notification was shown (title, text).
        changed(): the pending alerts changed.
        muteChanged(object): the sounds were muted until a time (float), or unmuted (None).

    Attributes:
        pending: the alerts not yet seen or handled, oldest first (offers included).
        banner: the in-window banner: the newest pending alert that is not an offer, "+N more" of those.
        sounds: the sound player.
        clock: the wall clock repeats and mutes run on (tests replace it).
        notify: shows a desktop notification, returns False when it cannot.
        announcer: tells assistive technology (a screen reader) what each alert is about.
    """

    raised = Signal(str, str)
    rang = Signal(str)
    desktopNotified = Signal(str, str)
    changed = Signal()
    muteChanged = Signal(object)

    def __init__(
        self,
        window: QWidget,
        banner: AlertBanner,
        settings: Callable[[], Settings],
        *,
        clock: Callable[[], float],
        notify: Callable[[str, str], bool] | None = None,
        sounds: AlertSounds | None = None,
        announcer: Announcer | None = None,
    ) -> None:
        super().__init__(window)
        self._window = window
        self._settings = settings
        self.clock = clock
        self.notify = notify
        self.announcer = announcer
        self.banner = banner
        self.sounds = sounds if sounds is not None else AlertSounds(self)
        self.pending: list[Alert] = []
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self.tick)
        banner.dismissed.connect(self.acknowledge)

    # ------------------------------------------------------------ raising

    def event_for(self, queue: str, personal: str, overdue: bool = False) -> AlertEvent:
        """Which kind of alert a waiting customer in ``queue`` is."""
        if overdue:
            return AlertEvent.OVERDUE
        if queue == personal:
            return AlertEvent.PERSONAL
        team = queue.removeprefix("team:")
        return AlertEvent.FAVOURITE_TEAM if team in self._settings().favourites else AlertEvent.TEAM

    def alert(self, event: AlertEvent, queue: str, row: str, text: str) -> Alert | None:
        """Alert the rep about ``row`` of ``queue``, as the preferences for ``event`` say.

        Returns the alert, or None when the preferences turn it off.  It is
        announced to assistive technology as the announcement preferences
        say, whether or not its sound and banner are on.
        """
        if self.announcer is not None:
            self.announcer.alert(event, queue, text)
        prefs = self._settings().preferences
        choice = prefs.alert(event)
        if not choice.enabled:
            return None
        if queue.startswith("team:"):
            team = prefs.team(queue.removeprefix("team:"))
            if (event is AlertEvent.OVERDUE and not team.overdue) or (event in (AlertEvent.TEAM, AlertEvent.FAVOURITE_TEAM) and not team.arrivals):
                return None
        self.pending = [a for a in self.pending if (a.queue, a.row, a.event) != (queue, row, event)]
        if event is AlertEvent.OFFER:
            # The customer's arrival in the team queue, if it alerted in an earlier batch: the offer says it now.
            self.pending = [a for a in self.pending if not (a.row == row and a.event in _ARRIVALS)]
        alert = Alert(event, queue, row, text)
        self.pending.append(alert)
        self._show_banner()
        self._ring(alert, prefs)
        background = not self._window.isActiveWindow() or self._window.isMinimized() or not self._window.isVisible()
        if choice.desktop and background and (self.notify is None or self.notify("repconsole", text)):
            self.desktopNotified.emit("repconsole", text)
        QApplication.alert(self._window)  # taskbar flash when in the background
        if not self._timer.isActive():
            self._timer.start()
        self.raised.emit(event.value, text)
        self.changed.emit()
        return alert

    def mute(self, seconds: float) -> None:
        """Silence every alert sound for ``seconds`` (math.inf: until unmuted; 0: unmute), and keep that."""
        settings = self._settings()
        settings.preferences.mute_until = None if seconds <= 0 else UNTIL_UNMUTED if math.isinf(seconds) else self.clock() + seconds
        try:
            settings.save()
        except OSError as exc:
            log.error("could not save the mute: %s", exc)
        self.muteChanged.emit(self.muted_until())

    def muted_until(self) -> float | None:
        """When the mute ends (UNTIL_UNMUTED: never), or None when the sounds are on."""
        prefs = self._settings().preferences
        return prefs.mute_until if prefs.muted(self.clock()) else None

    # ------------------------------------------------------------ ending

    @property
    def shown(self) -> Alert | None:
        """The alert the banner shows (None: the banner is hidden)."""
        return next((a for a in reversed(self.pending) if a.event is not AlertEvent.OFFER), None)

    def acknowledge(self, queue: str | None = None) -> None:
        """The rep saw the alerts about ``queue`` (all the banner's when None): they stop.

        Not offers: an offer's alert lasts as long as the offer (see the module's docstring).
        """
        self._drop(lambda a: a.event is not AlertEvent.OFFER and (queue is None or a.queue == queue))

    def clear(self) -> None:
        """Stop every alert, offers' too (the window closes)."""
        self._drop(lambda a: True)

    def revalidate(self, state: ConsoleState) -> None:
        """Drop alerts whose row was handled: accepted by anyone, left, moved, no longer overdue."""

        def handled(a: Alert) -> bool:
            if a.event is AlertEvent.OFFER:
                return a.row not in state.offers  # accepted, declined, ran out, withdrawn
            row = state.rows.get(a.queue, {}).get(a.row)
            if row is None:
                return True
            if a.event is AlertEvent.INVITATION:
                return row.kind is not RowKind.INVITATION
            if row.kind is not RowKind.WAITING:
                return True
            return a.event is AlertEvent.OVERDUE and not row.session.overdue

        self._drop(handled)

    def _drop(self, which: Callable[[Alert], bool]) -> None:
        before = len(self.pending)
        self.pending = [a for a in self.pending if not which(a)]
        if len(self.pending) == before:
            return
        if not self.pending:
            self._timer.stop()
        self._show_banner()
        self.changed.emit()

    # ------------------------------------------------------------ ringing

    def tick(self) -> None:
        """Repeat the sound of every alert that is due (one sound for all of them)."""
        if not self.pending:
            self._timer.stop()
            return
        now = self.clock()
        due = [a for a in self.pending if a.next_at is not None and a.next_at <= now]
        if not due:
            return
        prefs = self._settings().preferences
        due.sort(key=lambda a: _URGENCY.index(a.event))
        self._ring(due[0], prefs)
        for a in due[1:]:
            self._schedule(a, prefs, now)
        QApplication.alert(self._window)

    def _ring(self, alert: Alert, prefs: Preferences) -> None:
        now = self.clock()
        self._schedule(alert, prefs, now)
        choice = prefs.alert(alert.event)
        if prefs.muted(now) or not choice.enabled or not choice.sound:
            return
        try:
            self.sounds.play(choice.sound)
        except Exception:  # a broken audio stack must never take an alert down with it
            log.exception("could not play the alert sound %r", choice.sound)
        self.rang.emit(alert.event.value)

    def _schedule(self, alert: Alert, prefs: Preferences, now: float) -> None:
        every = prefs.alert(alert.event).repeat_every
        alert.next_at = now + every if every > 0 else None

    def _show_banner(self) -> None:
        """The newest alert that is not an offer, with how many more of those; hidden when there is none."""
        shown = [a for a in self.pending if a.event is not AlertEvent.OFFER]
        if not shown:
            self.banner.hide()
            return
        more = f"  (+{len(shown) - 1} more)" if len(shown) > 1 else ""
        self.banner.show_message(shown[-1].text + more)


def alerts_for(state: ConsoleState, changes: Changes, event_for: Callable[[str, str, bool], AlertEvent]) -> list[tuple[AlertEvent, str, str, str]]:
    """What a batch of changes alerts the rep about: ``(event, queue, row id, text)`` each."""
    personal = state.personal_queue
    found: list[tuple[AlertEvent, str, str, str]] = []
    for reason, s in changes.arrived:
        name = s.title
        issue = f" — {s.issue}" if s.issue else ""
        if reason is Arrival.TRANSFER:
            by = next((step.by for step in reversed(s.timeline) if step.kind is StepKind.TRANSFERRED), None)
            found.append((AlertEvent.TRANSFER, personal, s.id, f"{state.rep_name(by)} transferred {name} to you."))
        elif reason is Arrival.INVITATION:
            mine = set(state.queue_keys())
            inv = next((i for i in reversed(s.invitations) if i.target in mine), None)
            if inv is not None:
                found.append((AlertEvent.INVITATION, inv.target, inv.id, f"{state.rep_name(inv.by)} invites you to join the session with {name}."))
        elif reason is Arrival.TEAM and s.queue is not None:
            if s.id in state.offers:
                continue  # offered to the rep in this batch: the offer is its alert (said once, in the offer strip)
            found.append((event_for(s.queue, personal, False), s.queue, s.id, f"New customer in {state.queue_name(s.queue)}: {name}{issue}"))
        else:
            found.append((AlertEvent.PERSONAL, personal, s.id, f"New customer in your personal queue: {name}{issue}"))
    for s in changes.overdue:
        if s.queue is not None:
            found.append((AlertEvent.OVERDUE, s.queue, s.id, f"{s.title} has waited too long in {state.queue_name(s.queue)}."))
    return found

