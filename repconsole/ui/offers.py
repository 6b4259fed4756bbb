"""Auto-assignment in the console (issue 14): offers, the rep's capacity, pausing offers, wait estimates.

A team that routes offers each waiting session to one rep at a time, until
a deadline.  :class:`OfferCard` shows the rep's oldest open offer in a strip
along the bottom of the window (a tool bar: it takes its own room, so it
covers no chat input nor queue row, and shows whichever tab is in front),
with a countdown, Accept / Decline and "+N more"; :class:`OfferDesk` keeps
it, the alert (a repeating sound, an assertive announcement, a desktop
notification in the background) and the status bar's capacity self-view
("3/6 (3 offered) · auto-assign on") current from the feed, and runs what
the rep chooses.  The strip is the one place that names the offer the rep
answers now: the alert banner shows no offers (``ui/alerts.py``), and each
new offer's announcement says whether it is that one or which one it
waits behind, with the strip's count.  Accepting opens the session's tab as
any accept does.  After two missed offers the engine sets the rep away and
says why; the desk shows and announces that sentence.

The countdown reads an injected clock (``OfferDesk.clock``, the backend's
time by default), so tests move time without sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QWidget,
)

from repconsole.core.state import Changes, ConsoleState
from repconsole.preferences import AlertEvent
from repconsole.protocol import EstimateView, OfferOutcome, OfferView, RepStatus, RoutingView
from repconsole.ui.announce import ASSERTIVE, Kind
from repconsole.ui.keydialog import fix_size

if TYPE_CHECKING:
    from repconsole.ui.mainwindow import MainWindow

__all__ = ["OfferCard", "OfferDesk", "PauseDialog", "capacity_text", "estimate_text", "offer_alert_text", "offer_text", "open_offers"]

TICK_MS = 250  # the countdown's resolution: a whole second never shows late by more than this


def offer_text(state: ConsoleState, offer: OfferView) -> str:
    """``"Liam Smith — VPN won't connect (Networking)"``: who is offered, about what, from which queue."""
    s = state.sessions.get(offer.session)
    issue = f" — {s.issue}" if s is not None and s.issue else ""
    return f"{_who(state, offer)}{issue} ({state.queue_name(offer.queue)})"


def _who(state: ConsoleState, offer: OfferView) -> str:
    s = state.sessions.get(offer.session)
    return s.title if s is not None else "A customer"


def open_offers(state: ConsoleState) -> list[OfferView]:
    """The rep's open offers in the order they are answered: the first runs out first (the strip shows it)."""
    return sorted(state.offers.values(), key=lambda o: (o.deadline, o.session))


def offer_alert_text(state: ConsoleState, offer: OfferView) -> str:
    """What a new offer's alert says (announced, and in the desktop notification), with the strip's count.

    ``"Offer: Liam Smith — VPN won't connect (Networking). Accept or decline."`` when it is the
    offer the strip shows (Accept and Decline answer it); else ``"Another offer: Ava Fischer — …
    (Networking), after Liam Smith's (+2 more)."``: Accept would not answer this one yet.
    """
    offers = open_offers(state)
    more = f" (+{len(offers) - 1} more)" if len(offers) > 1 else ""
    if not offers or offers[0].session == offer.session:
        return f"Offer: {offer_text(state, offer)}. Accept or decline{more}."
    return f"Another offer: {offer_text(state, offer)}, after {_who(state, offers[0])}'s{more}."


def capacity_text(state: ConsoleState, local: Callable[[float], time.struct_time] = time.localtime, offset: float = 0.0) -> str:
    """The capacity self-view: ``"2/6 · auto-assign on"``, ``"3/6 (1 offered) · …"``, ``"… paused until 14:05"``,
    ``"… no offers while away"``; "" outside routed teams.

    The load counts what the engine counts against the capacity: the
    sessions the rep is in and their open offers; the offers are named, since
    beside "0 sessions in progress" a bare "2/6" reads as a mistake.
    ``offset``: the backend's clock minus this machine's (the pause's end is
    on the backend's clock).
    """
    routing = state.me.routing
    if state.seq < 0 or not isinstance(routing, RoutingView):
        return ""
    offered = len(state.offers)
    load = f"{len(state.my_sessions()) + offered}/{state.me.max_sessions}" + (f" ({offered} offered)" if offered else "")
    until = routing.paused_until
    if state.me.status is not RepStatus.AVAILABLE:  # only available reps get offers
        mode = f"no offers while {state.me.status.value}"
    elif until is None:
        mode = "auto-assign on"
    else:
        mode = f"auto-assign paused until {time.strftime('%H:%M', local(until - offset))}"
    return f"{load} · {mode}"


def estimate_text(estimate: EstimateView | None) -> str:
    """A team queue's wait as a rep reads it: ``"about 2–4 min"``; "" when there is no estimate."""
    if estimate is None:
        return ""
    if estimate.high <= 1:
        return "under a minute"
    return f"about {estimate.low}–{estimate.high} min"


class OfferCard(QFrame):
    """The rep's open offer that runs out first: who, a countdown, Accept and Decline ("+2 more" when there are more).

    Signals:
        acceptRequested(str): the rep accepts the offer of this session.
        declineRequested(str): the rep declines it.

    Attributes:
        session: the session offered (None: nothing shown).
        deadline: when the offer shown ends, on the clock :meth:`tick` is given.
    """

    acceptRequested = Signal(str)
    declineRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("offerCard")
        self.setAutoFillBackground(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # Palette roles, as the alert banner: "a note floating over the UI" in both themes.
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.setAccessibleName("Offer")
        self.session: str | None = None
        self.deadline = 0.0
        self._base = ""
        self._more = 0
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.countdown = QLabel()
        self.countdown.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.countdown.setAccessibleName("Time left to answer")
        font = self.countdown.font()
        font.setBold(True)
        self.countdown.setFont(font)
        self.more = QLabel()
        self.more.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.accept = QPushButton("Accept offer")
        self.accept.setToolTip("Accept the offered session (Ctrl+Shift+A)")
        self.decline = QPushButton("Decline")
        self.decline.setToolTip("Decline: the next rep is offered it (Ctrl+Shift+D)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 6, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.more)
        layout.addWidget(self.countdown)
        layout.addWidget(self.accept)
        layout.addWidget(self.decline)
        self.accept.clicked.connect(self._on_accept_clicked)
        self.decline.clicked.connect(self._on_decline_clicked)

    def show_offer(self, session: str | None, text: str, deadline: float, more: int, now: float) -> None:
        """Show the offer of ``session`` (None: nothing to show) until ``deadline``; ``more`` other offers wait."""
        self.session = session
        self.deadline = deadline
        self._base = text
        self._more = more
        self.label.setText(f"Offered to you: {text}")
        self.label.setToolTip(text)
        self.more.setText(f"+{more} more" if more else "")
        self.more.setVisible(bool(more))
        self.tick(now)

    def seconds_left(self, now: float) -> int:
        return max(0, math.ceil(self.deadline - now))

    def tick(self, now: float) -> None:
        """Count down to the deadline (the engine ends the offer; at 0 it waits for that)."""
        left = self.seconds_left(now)
        self.countdown.setText(f"{left} s")
        self.accept.setAccessibleName(f"Accept offer: {self._base}")
        self.decline.setAccessibleName(f"Decline offer: {self._base}")
        more = f", {self._more} more offer{'s' if self._more != 1 else ''}" if self._more else ""
        self.setAccessibleDescription(f"{self._base}, {left} seconds left{more}")

    def _on_accept_clicked(self) -> None:
        if self.session is not None:
            self.acceptRequested.emit(self.session)

    def _on_decline_clicked(self) -> None:
        if self.session is not None:
            self.declineRequested.emit(self.session)


class PauseDialog(QDialog):
    """Asks for how many minutes to take no offers (they come back by themselves).

    Attributes:
        minutes: the choice, 1 to 1440 (a day, the engine's limit).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pause offers")
        form = QFormLayout(self)
        self.minutes = QSpinBox()
        self.minutes.setRange(1, 24 * 60)
        self.minutes.setValue(15)
        self.minutes.setSuffix(" min")
        self.minutes.setAccessibleName("Pause offers for, in minutes")
        form.addRow("Pause offers for:", self.minutes)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Pause")
        form.addRow(buttons)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        fix_size(self, form, 280)  # sized once: no size-hint changes once shown


class OfferDesk(QObject):
    """The window's part in auto-assignment: the offer card, its alert, the capacity label, pausing.

    Signals:
        awaySet(str): two missed offers set the rep away (the engine's sentence why).

    Attributes:
        card: the offer strip.
        capacity_label: the status bar's capacity self-view.
        clock: the time on the backend's clock the countdown reads (tests replace it).
        away_message: the last "you were set away" sentence ("" none yet).
        pause_dialog: the open "Pause offers" dialog, or None.
    """

    awaySet = Signal(str)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.clock: Callable[[], float] = window.now
        self.away_message = ""
        self.pause_dialog: PauseDialog | None = None
        self.card = OfferCard()
        self.bar = QToolBar("Offers", window)
        self.bar.setObjectName("offersBar")
        self.bar.setAccessibleName("Offers")
        self.bar.setMovable(False)
        self.bar.setFloatable(False)
        self.bar.toggleViewAction().setEnabled(False)  # no context menu hides it for good
        self.bar.addWidget(self.card)
        window.addToolBar(Qt.ToolBarArea.BottomToolBarArea, self.bar)
        self.bar.hide()
        self.capacity_label = QLabel()
        self.capacity_label.setAccessibleName("Capacity")
        self.capacity_label.setToolTip("Your sessions and open offers, of your capacity; whether offers come")
        self.capacity_label.hide()
        # The visible team queue's wait, beside its title in the bar above the table (the title stays the name).
        self.estimate_label = QLabel()
        self.estimate_label.setAccessibleName("Estimated wait")
        self.estimate_label.setToolTip("How long a customer who arrives now is told to expect to wait")
        self.estimate_label.hide()
        center = window.queue_title.parentWidget()
        outer = center.layout() if center is not None else None
        item = outer.itemAt(0) if outer is not None else None
        title_bar = item.layout() if item is not None else None
        if not isinstance(title_bar, QHBoxLayout):
            raise TypeError("the queue title is not in the bar above the table")
        title_bar.insertWidget(1, self.estimate_label)
        bar = window.statusBar()
        # After the three texts on the left: the permanent widgets come after those.
        bar.insertPermanentWidget(3, self.capacity_label)
        QWidget.setTabOrder(window.status_combo, self.card.accept)
        QWidget.setTabOrder(self.card.accept, self.card.decline)
        self.card.acceptRequested.connect(self.accept)
        self.card.declineRequested.connect(self.decline)
        window.queue_list.queueSelected.connect(self._show_estimate)  # after the window's slot set the title
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self.tick)

    # ------------------------------------------------------------ the feed

    def update(self, changes: Changes) -> None:
        """The window applied a batch: show its offers, end theirs, tell why the rep went away."""
        state, w = self._window.state, self._window
        for offer in changes.offers:
            if offer.session not in state.offers:
                continue  # made and ended in one batch (taken, moved by a rule): nothing to answer
            w.alerter.alert(AlertEvent.OFFER, offer.queue, offer.session, offer_alert_text(state, offer))
        if changes.reset:
            w.alerter.revalidate(state)
        for ended in changes.offers_ended:
            if ended.away and isinstance(ended.detail, str):
                self.away_message = ended.detail
                w.announcer.announce(Kind.OFFERS, ended.detail, ASSERTIVE)
                w.show_notice(ended.detail, error=True)
                self.awaySet.emit(ended.detail)
            elif ended.outcome is OfferOutcome.EXPIRED:
                s = state.sessions.get(ended.session)
                w.show_notice(f"You missed the offer of {s.title if s else 'a session'}: it goes to the next rep.")
        self.refresh()
        if changes.reset or changes.estimates or changes.queues:
            self._show_estimate()

    def refresh(self) -> None:
        """Show the open offer that runs out first (or hide the strip) and the capacity text."""
        state = self._window.state
        offers = open_offers(state)
        if offers:
            first = offers[0]
            self.card.show_offer(first.session, offer_text(state, first), first.deadline, len(offers) - 1, self.clock())
            self.bar.show()
            if not self._timer.isActive():
                self._timer.start()
        else:
            self.card.show_offer(None, "", 0.0, 0, self.clock())
            self.bar.hide()
            self._timer.stop()
        text = capacity_text(state, offset=self._window.backend.clock_offset)
        self.capacity_label.setText(text)
        self.capacity_label.setVisible(bool(text))

    def _show_estimate(self, _key: str = "") -> None:
        """Beside the title: the visible team queue's wait for a customer arriving now ("" for Personal, or no data)."""
        w = self._window
        queue = w.current_queue or ""
        team = queue.removeprefix("team:") if queue.startswith("team:") else None
        if team is None or team not in w.state.estimates:
            text = ""  # Personal, or not estimated yet
        else:  # None: too few served lately, or nobody to serve (the customer reads "busier than usual")
            text = f"· wait {estimate_text(est)}" if (est := w.state.estimates[team]) else "· no wait estimate"
        self.estimate_label.setText(text)
        self.estimate_label.setVisible(bool(text))

    def tick(self) -> None:
        self.card.tick(self.clock())

    # ------------------------------------------------------------ what the rep does

    def _current(self, session: str | None) -> str | None:
        if session is not None:
            return session
        return None if self.bar.isHidden() else self.card.session

    def accept(self, session: str | None = None) -> None:
        """Accept the offer of ``session`` (default: the one shown); its tab opens as for any accept."""
        sid = self._current(session)
        if sid is not None:
            w = self._window
            w.spawn("Accept offer", w.accept_and_open(w.backend.accept_offer(sid)))

    def decline(self, session: str | None = None) -> None:
        """Decline the offer of ``session`` (default: the one shown); the next rep is offered it."""
        sid = self._current(session)
        if sid is not None:
            self._window.spawn("Decline offer", self._window.backend.decline_offer(sid))

    def ask_pause(self) -> PauseDialog:
        """Ask for how long to pause offers; OK pauses them."""
        if self.pause_dialog is not None:
            self.pause_dialog.close()
        dialog = self.pause_dialog = PauseDialog(self._window)
        dialog.accepted.connect(lambda: self.pause(dialog.minutes.value()))
        dialog.finished.connect(self._on_pause_dialog_finished)
        dialog.open()
        return dialog

    def _on_pause_dialog_finished(self, _result: int) -> None:
        if self.pause_dialog is not None:
            self.pause_dialog.deleteLater()
            self.pause_dialog = None

    def pause(self, minutes: float) -> None:
        """Take no offers for ``minutes`` (0: take them again now); they come back by themselves."""
        self._window.spawn("Pause offers", self._window.backend.pause_offers(minutes))
