"""A session tab: one customer's session, its chat, and what the rep can do with it.

The tab is a pure view.  It draws the session dict and chat lines it is
given and turns the rep's actions into signals; the main window runs the
commands and feeds the results back through :meth:`SessionTab.update_session`,
:meth:`SessionTab.append_chat`, :meth:`SessionTab.set_busy` and
:meth:`SessionTab.show_error`.

The chat transcript, the chat input and the customer's live page are
widgets of their own (:mod:`~repconsole.ui.chatlog`,
:mod:`~repconsole.ui.chatinput`, :mod:`~repconsole.ui.cobrowse`); the first
two are shared with the team chat.  The window feeds the page
(:attr:`SessionTab.cobrowse_view`) what the backend streams of it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from repconsole.core.state import ConsoleState
from repconsole.protocol import CUSTOMER, LineView, Priority, SessionState, SessionView, StepKind
from repconsole.settings import Settings
from repconsole.ui import theme
from repconsole.ui.accessible import Splitter
from repconsole.ui.chatinput import ChatInput
from repconsole.ui.chatlog import ChatLog
from repconsole.ui.confirm import SessionAction, SessionConfirm, ask_then
from repconsole.ui.focusorder import chain as focus_chain
from repconsole.ui.infopanel import InfoPanel
from repconsole.ui.outbox import OutageBanner, PendingLines
from repconsole.ui.pickers import ShareDialog, TargetPicker, TransferDialog
from repconsole.ui.presence import PresenceBar, TypingThrottle
from repconsole.ui.theme import Role
from repconsole.ui.widgets import badge_style, clock_time, rule

if TYPE_CHECKING:  # imported when a browser-sharing tab opens: QtWebEngine costs every start ~50 ms
    from repconsole.ui.cobrowse import CobrowseView

__all__ = ["SessionTab"]

# Priority badge colours: (background, text) theme roles.
_PRIORITY_BADGE = {
    Priority.LOW: (Role.QUIET_BADGE, Role.QUIET_BADGE_TEXT),
    Priority.NORMAL: (Role.INFO_BADGE, Role.INFO_BADGE_TEXT),
    Priority.HIGH: (Role.AMBER_BADGE, Role.AMBER_BADGE_TEXT),
    Priority.URGENT: (Role.URGENT_BADGE, Role.URGENT_BADGE_TEXT),
}


class SessionTab(QWidget):
    """One session the rep owns or takes part in: header, chat, info and actions.

    The owner gets Transfer…, Share…, Hold (Resume while on hold) and End
    session; a participant sees those greyed out and gets Leave instead.
    Keyboard: Enter or Ctrl+Enter sends, Alt+T transfers, Alt+S shares,
    Alt+H holds, Alt+U resumes, Alt+E ends, Alt+L leaves, Alt+R toggles
    "Reps only", Alt+I asks "Still there?".

    Signals:
        sendRequested(str, bool): the rep sent a chat line: text (stripped,
            never empty) and whether it is for reps only.  The input is
            cleared right after.
        transferRequested(str, str, bool): transfer to a queue key
            (``rep:<id>`` or ``team:<id>``), with a note (may be empty) and
            whether the rep stays on as a participant.
        shareRequested(str): invite a queue key to join.
        holdRequested(): put the session on hold.
        resumeRequested(): take a held session back (the ``accept`` command).
        endRequested(): end the session for everyone (owner).
        leaveRequested(): leave the session (participant).
        externalKeyEdited(str): the rep changed the external key (ticket id)
            and left the field; the ``set_external_key`` command.
        titleChanged(str): the tab's title (see :attr:`title`) changed.
        typingRequested(): the rep is typing a line the customer will see
            (at most once every 2 s): tell the customer.

    Attributes:
        chat_view: the chat transcript.
        input_edit: the chat input line.
        reps_only_check: "Reps only" for the next lines sent.
        send_button: sends the input.
        transfer_button, share_button, hold_button, resume_button,
        end_button, leave_button: the session actions.
        note_frame: the pinned transfer note (hidden without a note).
        error_frame: the inline error (hidden until :meth:`show_error`).
        cobrowse_view: the customer's live page for browser-sharing sessions, else None.
        presence: "Liam is typing…", the silent flag and "Still there?" (:mod:`~repconsole.ui.presence`).
        info_panel: the scrolling customer and session details.
        external_key_edit: the editable external key in the info panel.
    """

    sendRequested = Signal(str, bool)
    transferRequested = Signal(str, str, bool)
    shareRequested = Signal(str)
    holdRequested = Signal()
    resumeRequested = Signal()
    endRequested = Signal()
    leaveRequested = Signal()
    externalKeyEdited = Signal(str)
    titleChanged = Signal(str)
    typingRequested = Signal()

    def __init__(
        self,
        session: SessionView,
        state: ConsoleState,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
        settings: Settings | None = None,
    ) -> None:
        """A tab for ``session``; its chat comes from ``state`` (and its updates, through the window).

        ``clock`` is the backend's: the customer's page measures its delay on it.
        ``settings`` holds the preferences read when acting (End and Leave
        confirmations, which key sends); without it nothing asks first.
        """
        super().__init__(parent)
        self._settings = settings
        self.confirm_dialog: SessionConfirm | None = None
        self._state = state
        self._session = session
        self._busy = False
        self._picker: TargetPicker | None = None
        self._title = ""
        self._clock = clock
        self._typing_throttle = TypingThrottle(clock)

        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._build_header())

        body = QVBoxLayout()
        body.setContentsMargins(8, 8, 8, 8)
        body.setSpacing(8)
        self.outage_banner = OutageBanner()
        root.addWidget(self.outage_banner)
        body.addWidget(self._build_error())
        body.addWidget(self._build_note())

        self.splitter = Splitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(6)
        self.splitter.addWidget(self._build_chat())
        self.cobrowse_view: CobrowseView | None = None
        if session.browser:
            from repconsole.ui.cobrowse import CobrowseView  # lazily: see the TYPE_CHECKING import
            self.cobrowse_view = CobrowseView(clock=clock, page_url=session.page_url)
            self.splitter.addWidget(self._framed(self.cobrowse_view))
        self.splitter.addWidget(self._build_info())
        body.addWidget(self.splitter, 1)
        root.addLayout(body, 1)
        self._size_splitter()

        # No focus proxy: Qt's Tab chain jumps to a proxy and skips what lies
        # between (the header's actions were never reached).  The order is
        # set out instead, and showing the tab puts focus in the chat input.
        self._set_tab_order()
        self._show_session()
        for line in state.chats.get(session.id, ()):
            self.chat_view.add_line(line)
            if line.author == CUSTOMER:
                self.presence.customer_wrote(line.at)
        self.pending = PendingLines(self.chat_view, lambda: self._state.rep_id, self._restore_input)
        self._fix_minimum_size()
        theme.controller().changed.connect(self._on_theme_changed)

    # ------------------------------------------------------------ public API

    @property
    def session_id(self) -> str:
        return self._session.id

    @property
    def session(self) -> SessionView:
        """The session last given to the tab."""
        return self._session

    @property
    def title(self) -> str:
        """What the window's tab bar should say: ``[Browser] Name`` or ``Name``."""
        return self._title

    @property
    def picker(self) -> TargetPicker | None:
        """The Transfer or Share dialog while it is open, else None."""
        return self._picker

    @property
    def busy(self) -> bool:
        return self._busy

    def is_owner(self) -> bool:
        return bool(self._state.rep_id) and self._session.owner == self._state.rep_id

    def is_participant(self) -> bool:
        return self._state.rep_id in self._session.participants

    def update_session(self, session: SessionView) -> None:
        """Show a newer view of the same session."""
        if session.id != self.session_id:
            raise ValueError(f"session {session.id!r} given to the tab of {self.session_id!r}")
        self._session = session
        self._show_session()
        if self._picker is not None and not self._may_act():
            self._picker.reject()

    def append_chat(self, line: LineView) -> bool:
        """Add a chat line; a line whose ``n`` is already shown is ignored (returns False).

        A line of the rep's that was shown as pending replaces it.
        """
        self.pending.arrived(line)
        if line.author == CUSTOMER:
            self.presence.customer_wrote(line.at)
        return self.chat_view.add_line(line)

    def set_outage(self, detail: str | None) -> None:
        """Say in the tab that the connection is down (``detail``: why), or that it is back (None)."""
        self.outage_banner.set_outage(detail)

    def confirming(self, call: Awaitable[LineView]) -> Awaitable[LineView]:
        """Wrap the ``say`` of the line just sent: it stays pending until ``call`` confirms it."""
        return self.pending.confirming(self.pending.last_key, call)

    def _restore_input(self, text: str) -> None:
        # A refused line goes back to the input, unless the rep has typed something new.
        if not self.input_edit.text().strip():
            self.input_edit.setText(text)

    def set_busy(self, busy: bool) -> None:
        """Disable the actions and sending while a command is in flight.  Typing stays possible."""
        self._busy = bool(busy)
        self._refresh_actions()

    def show_error(self, text: str) -> None:
        """Show ``text`` in the inline error strip above the chat, until dismissed or the next action."""
        self.error_label.setText(text)
        self.error_frame.show()

    def clear_error(self) -> None:
        self.error_label.clear()
        self.error_frame.hide()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not event.spontaneous():  # the rep went to this tab (not: the window came back from the tray)
            self.focus_start()

    def focus_start(self) -> None:
        """Focus where the rep starts in a session: the chat input (or, when chat is closed, the first action)."""
        for widget in (self.input_edit, self.transfer_button, self.leave_button, self.chat_view):
            if widget.isVisibleTo(self) and widget.isEnabled():
                widget.setFocus(Qt.FocusReason.OtherFocusReason)
                return

    # -------------------------------------------------------------- building

    def _set_tab_order(self) -> None:
        # Writing first, then reading, then acting on the session, then its details.
        chain: list[QWidget] = [self.input_edit, self.reps_only_check, self.send_button, self.chat_view]
        chain += [self.transfer_button, self.share_button, self.hold_button, self.resume_button, self.leave_button, self.end_button]
        chain += [self.error_close]
        if self.cobrowse_view is not None:
            chain += self.cobrowse_view.focus_chain()
        chain += [self.info_panel, self.external_key_edit]
        focus_chain(chain)

    def _build_header(self) -> QWidget:
        header = QFrame()
        header.setObjectName("sessionHeader")
        header.setAutoFillBackground(True)
        # A role, not a copied colour: the header follows a change of scheme.
        header.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        header.setFrameShape(QFrame.Shape.StyledPanel)
        header.setFrameShadow(QFrame.Shadow.Plain)

        layout = QHBoxLayout(header)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.setSpacing(16)

        left = QVBoxLayout()
        left.setSpacing(3)
        top = QHBoxLayout()
        top.setSpacing(8)
        self.name_label = QLabel()
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.name_label.setFont(font)
        self.name_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.company_label = QLabel()
        self.company_label.setStyleSheet("color: palette(placeholder-text);")
        self.priority_badge = QLabel()
        self.held_badge = QLabel("On hold")
        theme.set_style(self.held_badge, badge_style(Role.HELD_BADGE, Role.HELD_BADGE_TEXT))
        self.ended_badge = QLabel("Ended")
        theme.set_style(self.ended_badge, badge_style(Role.QUIET_BADGE, Role.QUIET_BADGE_TEXT))
        top.addWidget(self.name_label)
        top.addWidget(self.company_label)
        top.addSpacing(4)
        top.addWidget(self.priority_badge)
        top.addWidget(self.held_badge)
        top.addWidget(self.ended_badge)
        top.addStretch(1)
        left.addLayout(top)

        self.issue_label = QLabel()
        self.issue_label.setTextFormat(Qt.TextFormat.RichText)
        self.people_label = QLabel()
        self.people_label.setTextFormat(Qt.TextFormat.RichText)
        self.people_label.setStyleSheet("color: palette(placeholder-text);")
        left.addWidget(self.issue_label)
        left.addWidget(self.people_label)
        layout.addLayout(left, 1)

        actions = QHBoxLayout()
        actions.setSpacing(6)
        self.transfer_button = QPushButton("&Transfer…")
        self.share_button = QPushButton("&Share…")
        self.hold_button = QPushButton("&Hold")
        self.resume_button = QPushButton("Res&ume")
        self.end_button = QPushButton("&End session")
        self.leave_button = QPushButton("&Leave")
        self.transfer_button.setToolTip("Hand the session to a rep or a team, with a note (Alt+T)")
        self.share_button.setToolTip("Invite a rep or a team to join; you keep the session (Alt+S)")
        self.hold_button.setToolTip("Park the session in your personal queue (Alt+H)")
        self.resume_button.setToolTip("Take the session off hold (Alt+U)")
        self.end_button.setToolTip("End the session for the customer and every rep (Alt+E)")
        self.leave_button.setToolTip("Leave the session; it goes on without you (Alt+L)")
        self.end_button.setObjectName("endButton")
        theme.set_style(self.end_button, "QPushButton#endButton:enabled { color: $danger_text; font-weight: 600; }")
        self.transfer_button.clicked.connect(self._on_transfer_button_clicked)
        self.share_button.clicked.connect(self._on_share_button_clicked)
        self.hold_button.clicked.connect(self._on_hold_button_clicked)
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.end_button.clicked.connect(self._on_end_button_clicked)
        self.leave_button.clicked.connect(self._on_leave_button_clicked)
        for button in (self.transfer_button, self.share_button, self.hold_button, self.resume_button):
            button.setAutoDefault(False)
            actions.addWidget(button)
        separator = rule(Qt.Orientation.Vertical)
        actions.addSpacing(4)
        actions.addWidget(separator)
        actions.addSpacing(4)
        for button in (self.leave_button, self.end_button):
            button.setAutoDefault(False)
            actions.addWidget(button)
        layout.addLayout(actions)
        layout.setAlignment(actions, Qt.AlignmentFlag.AlignVCenter)
        return header

    def _build_error(self) -> QWidget:
        self.error_frame = QFrame()
        self.error_frame.setObjectName("errorStrip")
        theme.set_style(
            self.error_frame,
            "QFrame#errorStrip { background: $error_strip; border: 1px solid $error_strip_border; border-radius: 4px; }"
            " QFrame#errorStrip QLabel { color: $error_strip_text; background: transparent; }"
            " QFrame#errorStrip QToolButton { border: none; color: $error_strip_text; background: transparent; }",
        )
        layout = QHBoxLayout(self.error_frame)
        layout.setContentsMargins(10, 6, 6, 6)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = self.error_close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss the error")
        close.clicked.connect(self._on_error_close_clicked)
        layout.addWidget(self.error_label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.error_frame.hide()
        return self.error_frame

    def _build_note(self) -> QWidget:
        self.note_frame = QFrame()
        self.note_frame.setObjectName("transferNote")
        theme.set_style(
            self.note_frame,
            "QFrame#transferNote { background: $note; border: 1px solid $note_border; border-left: 4px solid $note_accent;"
            " border-radius: 4px; }"
            " QFrame#transferNote QLabel { color: $note_text; background: transparent; }",
        )
        layout = QHBoxLayout(self.note_frame)
        layout.setContentsMargins(10, 7, 10, 7)
        self.note_label = QLabel()
        self.note_label.setWordWrap(True)
        self.note_label.setTextFormat(Qt.TextFormat.RichText)
        self.note_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.note_label, 1)
        self.note_frame.hide()
        return self.note_frame

    def _build_chat(self) -> QWidget:
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.chat_view = ChatLog(self._state)
        self.chat_view.setAccessibleName("Session chat")
        layout.addWidget(self.chat_view, 1)
        settings = self._settings
        self.presence = PresenceBar(self._clock, lambda: settings.preferences.chat.silent_after_minutes if settings is not None else 3)
        self.presence.nudgeRequested.connect(self._on_presence_nudgeRequested)
        layout.addWidget(self.presence)

        layout.addWidget(rule())

        settings = self._settings
        chat_input = ChatInput(enter_sends=lambda: settings.preferences.chat.enter_sends if settings is not None else True)
        self.chat_input = chat_input
        chat_input.submitted.connect(self._on_chat_input_submitted)
        self.input_edit = chat_input.input_edit
        self.input_edit.textChanged.connect(self._on_input_edit_textChanged)
        self.input_edit.setAccessibleName("Chat message")
        self.send_button = chat_input.send_button
        self.reps_only_check = QCheckBox("&Reps only")
        self.reps_only_check.setToolTip("Send to the reps in this session only; the customer does not see it (Alt+R)")
        self.reps_only_check.toggled.connect(self._on_reps_only_check_toggled)
        chat_input.add_option(self.reps_only_check)
        layout.addWidget(chat_input)
        self._on_reps_only_check_toggled(False)
        return box

    @staticmethod
    def _framed(widget: QWidget) -> QFrame:
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(widget)
        return box

    def _build_info(self) -> QWidget:
        self.info_panel = InfoPanel()
        self.external_key_edit = self.info_panel.external_key_edit
        self.external_key_edit.editingFinished.connect(self._on_external_key_edit_editingFinished)
        return self.info_panel

    def _fix_minimum_size(self) -> None:
        """Pin the minimum size, with room for both banners, so later changes stay inside the tab.

        Without it, showing the error strip or a longer header would raise
        the tab's minimum and, through it, the main window's, which resizes
        the window under the rep's hands.
        """
        banner = self.fontMetrics().lineSpacing() * 2 + 24
        hint = self.minimumSizeHint()
        self.setMinimumSize(QSize(max(hint.width(), 480), hint.height() + 2 * banner))

    def _size_splitter(self) -> None:
        if self.cobrowse_view is not None:
            self.splitter.setSizes([400, 560, 260])
            self.splitter.setStretchFactor(0, 1)
            self.splitter.setStretchFactor(1, 1)
            self.splitter.setStretchFactor(2, 0)
        else:
            self.splitter.setSizes([820, 300])
            self.splitter.setStretchFactor(0, 1)
            self.splitter.setStretchFactor(1, 0)

    # ------------------------------------------------------------- refreshing

    def _show_session(self) -> None:
        s = self._session
        self.chat_view.customer_name = s.customer_name
        title = s.title
        self.name_label.setText(title)
        company, code = s.company, s.company_code
        self.company_label.setText(f"{company} ({code})" if company and code else company or code)
        self.company_label.setVisible(bool(company or code))

        priority = s.priority
        self.priority_badge.setText(f"{priority.label} priority")
        theme.set_style(self.priority_badge, badge_style(*_PRIORITY_BADGE[priority]))
        ended = s.state is SessionState.ENDED
        self.held_badge.setVisible(s.held and not ended)
        self.ended_badge.setVisible(ended)

        issue, category = s.issue, s.category
        parts = [f"<b>{html.escape(issue, quote=False)}</b>" if issue else "<i>No issue given</i>"]
        if category:
            parts.append(html.escape(category, quote=False))
        if s.platform:
            parts.append(html.escape(s.platform, quote=False))
        self.issue_label.setText(" · ".join(parts))
        self.people_label.setText(self._people_text())
        # What a screen reader says on entering the tab: whose session it is.
        self.setAccessibleName(f"Session with {s.customer_name}")
        self.setAccessibleDescription(f"{title}: {issue or 'no issue given'}. {html.unescape(self.people_label.text()).replace('  ·  ', '. ')}")
        self.input_edit.setAccessibleDescription(f"To {s.customer_name} and the reps in the session")

        self._show_note()
        self._show_info()
        self._refresh_actions()
        accepted = [step.at for step in s.timeline if step.kind is StepKind.ACCEPTED]
        self.presence.set_session(s.customer_name, active=self._chatting(), since=max(accepted, default=None))
        if title != self._title:
            self._title = title
            self.titleChanged.emit(title)

    def _people_text(self) -> str:
        s = self._session
        me = self._state.rep_id
        owner = s.owner
        if s.state is SessionState.ENDED:
            reason = s.end_reason
            return html.escape(f"Session ended — {reason}" if reason else "Session ended", quote=False)
        if owner:
            who = html.escape(self._state.rep_name(owner), quote=False) + (" (you)" if owner == me else "")
            text = f"Owner: {who}"
        else:
            queue = s.queue
            where = html.escape(self._state.queue_name(queue), quote=False) if queue else "a queue"
            text = f"No owner — waiting in {where}"
        others = [p for p in s.participants if p != owner]
        if others:
            names = ", ".join(html.escape(self._state.rep_name(p), quote=False) + (" (you)" if p == me else "") for p in others)
            text += f"  ·  With: {names}"
        if s.held and owner == me:
            text += "  ·  Parked in your personal queue"
        return text

    def _show_note(self) -> None:
        note = self._session.transfer_note.strip()
        if not note:
            self.note_frame.hide()
            self.note_label.clear()
            return
        by, at = self._last_transfer()
        credit = ""
        if by:
            credit = f"— {html.escape(self._state.rep_name(by), quote=False)}"
            if at:
                credit += f", {clock_time(at)}"
            credit = f'&nbsp;&nbsp;<span style="color:{theme.css(Role.NOTE_CREDIT)}">{credit}</span>'
        text = html.escape(note, quote=False).replace("\n", "<br>")
        self.note_label.setText(f"<b>Note from transfer:</b> {text}{credit}")
        self.note_frame.show()

    def _last_transfer(self) -> tuple[str | None, float]:
        for step in reversed(self._session.timeline):
            if step.kind is StepKind.TRANSFERRED:
                return step.by, step.at
        return None, 0.0

    def _show_info(self) -> None:
        self.info_panel.show_session(self._session)

    def _chatting(self) -> bool:
        """Whether the rep chats with the customer now: the session is active and the rep takes part."""
        return self._session.state is SessionState.ACTIVE and (self.is_owner() or self.is_participant())

    def _may_act(self) -> bool:
        return self.is_owner() and self._session.state is not SessionState.ENDED

    def _refresh_actions(self) -> None:
        s = self._session
        ended = s.state is SessionState.ENDED
        owner = self.is_owner()
        participant = self.is_participant()
        act = owner and not ended and not self._busy
        held = s.held
        self.transfer_button.setEnabled(act)
        self.share_button.setEnabled(act)
        self.hold_button.setEnabled(act and not held)
        self.resume_button.setEnabled(act and held)
        self.end_button.setEnabled(act)
        self.hold_button.setVisible(not (owner and held))
        self.resume_button.setVisible(owner and held)
        self.leave_button.setVisible(not owner)
        self.leave_button.setEnabled(participant and not ended and not self._busy)

        if owner or ended:
            reason = ""
        else:
            who = s.owner
            reason = f"Only the owner ({self._state.rep_name(who)}) can do this." if who else "Only the session's owner can do this."
        for button in (self.transfer_button, self.share_button, self.hold_button, self.end_button):
            base = str(button.property("baseToolTip") or button.toolTip())
            button.setProperty("baseToolTip", base)
            button.setToolTip(f"{base}\n{reason}" if reason else base)

        can_chat = (owner or participant) and not ended
        self.input_edit.setEnabled(can_chat)
        self.reps_only_check.setEnabled(can_chat)
        self.chat_input.set_sendable(can_chat and not self._busy)
        self.external_key_edit.setReadOnly(not can_chat)

    # ----------------------------------------------------------------- slots

    def _on_chat_input_submitted(self, text: str) -> None:
        # The Send button, which ChatInput checks, is disabled while busy.
        self.clear_error()
        self._send(text, self.reps_only_check.isChecked())

    def _send(self, text: str, reps_only: bool) -> None:
        # Shown at once as pending: the window's say (maybe queued through an outage) confirms it.
        self.pending.add(text, reps_only)
        self._typing_throttle.reset()
        self.sendRequested.emit(text, reps_only)

    def _on_presence_nudgeRequested(self, text: str) -> None:
        # "Still there?": a normal line to the customer, as if typed (never reps only).
        if not self._busy and self._chatting():
            self.clear_error()
            self._send(text, False)

    def _on_input_edit_textChanged(self) -> None:
        if self.input_edit.text().strip() and not self.reps_only_check.isChecked() and self._chatting() and self._typing_throttle.ready():
            self.typingRequested.emit()

    def _on_reps_only_check_toggled(self, checked: bool) -> None:
        if checked:
            self.input_edit.setPlaceholderText("Message to reps only — the customer will not see it")
            theme.set_style(self.input_edit, "QPlainTextEdit { background: $reps_only; border: 1px solid $reps_border; border-radius: 3px; padding: 2px 6px; }")
        else:
            enter_sends = self._settings is None or self._settings.preferences.chat.enter_sends
            self.input_edit.setPlaceholderText(f"Message to the customer — {'Enter' if enter_sends else 'Shift+Enter'} to send")
            theme.set_style(self.input_edit, "")

    def _on_error_close_clicked(self) -> None:
        self.clear_error()

    def _on_theme_changed(self, dark: bool) -> None:
        self._show_note()  # its credit is HTML with a theme colour

    def _make_transfer_dialog(self) -> TransferDialog:
        """The Transfer dialog to open; tests and subclasses may replace it."""
        return TransferDialog(self._state, self._session, self)

    def _make_share_dialog(self) -> ShareDialog:
        """The Share dialog to open; tests and subclasses may replace it."""
        return ShareDialog(self._state, self._session, self)

    def _open_picker(self, dialog: TargetPicker, on_accepted: Callable[[], None]) -> None:
        """Open ``dialog`` window-modal without blocking; ``on_accepted`` reads it when confirmed."""
        if self._picker is not None:
            self._picker.reject()
        self._picker = dialog
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(on_accepted)
        dialog.finished.connect(self._on_picker_finished)
        dialog.open()

    def _on_transfer_button_clicked(self) -> None:
        if self._may_act() and not self._busy:
            self._open_picker(self._make_transfer_dialog(), self._on_transfer_dialog_accepted)

    def _on_share_button_clicked(self) -> None:
        if self._may_act() and not self._busy:
            self._open_picker(self._make_share_dialog(), self._on_share_dialog_accepted)

    def _on_transfer_dialog_accepted(self) -> None:
        dialog = self._picker
        if not isinstance(dialog, TransferDialog) or not self._may_act():
            return
        target = dialog.selected_target()
        if target is not None:
            self.clear_error()
            self.transferRequested.emit(target, dialog.note(), dialog.stay())

    def _on_share_dialog_accepted(self) -> None:
        dialog = self._picker
        if not isinstance(dialog, ShareDialog) or not self._may_act():
            return
        target = dialog.selected_target()
        if target is not None:
            self.clear_error()
            self.shareRequested.emit(target)

    def _on_picker_finished(self, result: int) -> None:
        self._picker = None

    def _on_hold_button_clicked(self) -> None:
        self.clear_error()
        self.holdRequested.emit()

    def _on_resume_button_clicked(self) -> None:
        self.clear_error()
        self.resumeRequested.emit()

    def _on_end_button_clicked(self) -> None:
        self._ask(SessionAction.END)

    def _on_leave_button_clicked(self) -> None:
        self._ask(SessionAction.LEAVE)

    def _ask(self, action: SessionAction) -> None:
        """End or leave, after asking if the preferences say so (the dialog does not block the feed)."""
        self.clear_error()
        if self.confirm_dialog is not None:
            self.confirm_dialog.raise_()
            return
        signal = self.endRequested if action is SessionAction.END else self.leaveRequested
        # The session may change while the question is open: End acts only if still the owner's.
        allowed = self._may_act if action is SessionAction.END else self.is_participant
        self.confirm_dialog = ask_then(self, action, self._session.customer_name, self._settings, signal.emit, allowed)
        if self.confirm_dialog is not None:
            self.confirm_dialog.finished.connect(self._on_confirm_dialog_finished)

    def _on_confirm_dialog_finished(self, _result: int) -> None:
        self.confirm_dialog = None

    def _on_external_key_edit_editingFinished(self) -> None:
        text = self.external_key_edit.text().strip()
        if self.external_key_edit.isReadOnly() or text == self._session.external_key:
            return
        self.externalKeyEdited.emit(text)

    def sizeHint(self) -> QSize:
        return QSize(1100, 650)
