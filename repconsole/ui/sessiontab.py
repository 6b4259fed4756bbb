"""A session tab: one customer's session, its chat, and what the rep can do with it.

The tab is a pure view.  It draws the session dict and chat lines it is
given and turns the rep's actions into signals; the main window runs the
commands and feeds the results back through :meth:`SessionTab.update_session`,
:meth:`SessionTab.append_chat`, :meth:`SessionTab.set_busy` and
:meth:`SessionTab.show_error`.

:class:`ChatLog` (the transcript) and :class:`ChatInput` (the line being
written and its Send button) are shared with the team chat.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QFont, QPalette, QTextBlockFormat, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from repconsole.core.engine import CHAT_LIMIT
from repconsole.core.model import Origin, Priority
from repconsole.core.state import ConsoleState
from repconsole.ui.pickers import ShareDialog, TargetPicker, TransferDialog

__all__ = ["CHAT_LIMIT", "ChatInput", "ChatLog", "PageView", "SessionTab", "clock_time", "rule", "visible_controls"]

CUSTOMER = "customer"

_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")

_LIGHT = {
    "time": "#8a9099",
    "customer": "#0b5cad",
    "me": "#1e7a3c",
    "rep": "#9a4d00",
    "event": "#6b7280",
    "reps_bg": "#f3eefc",
    "reps_tag_bg": "#6b3fa0",
    "reps_tag_fg": "#ffffff",
    "link": "#0b5cad",
    "divider": "#9aa0a6",
    "new": "#d9480f",
}
_DARK = {
    "time": "#8b949e",
    "customer": "#6cb6ff",
    "me": "#7ee2a8",
    "rep": "#f0b072",
    "event": "#9aa3ad",
    "reps_bg": "#2d2640",
    "reps_tag_bg": "#8a63c9",
    "reps_tag_fg": "#ffffff",
    "link": "#6cb6ff",
    "divider": "#8b949e",
    "new": "#ff8c5a",
}

# Priority badge colours: (background, text).
_PRIORITY_BADGE = {
    Priority.LOW: ("#eceef1", "#4b5563"),
    Priority.NORMAL: ("#e3edfd", "#1d4ed8"),
    Priority.HIGH: ("#ffedd5", "#b45309"),
    Priority.URGENT: ("#fde2e1", "#b42318"),
}


# The info panel's fixed labels; the longest sets the label column's width.
_INFO_LABELS = ("Name", "Company", "Company code", "Platform", "Locale", "Issue", "Category", "Priority", "Details",
                "External key", "Origin", "Source", "Portal", "Session key", "Started", "Session ID")


def clock_time(at: float) -> str:
    """An engine time (epoch seconds) as local ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def rule(orientation: Qt.Orientation = Qt.Orientation.Horizontal) -> QFrame:
    """A thin separator line in the palette's mid tone (quiet in light and dark themes)."""
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine if orientation == Qt.Orientation.Horizontal else QFrame.Shape.VLine)
    line.setFrameShadow(QFrame.Shadow.Plain)
    line.setStyleSheet("QFrame { color: palette(mid); }")
    return line


def _is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Base).lightness() < 128


def _badge_style(background: str, foreground: str) -> str:
    return (
        f"QLabel {{ background: {background}; color: {foreground}; border-radius: 3px;"
        " padding: 1px 7px; font-weight: 600; }"
    )


class ChatLog(QTextBrowser):
    """A read-only chat transcript: time, author and text, one line per block.

    Lines are session or team chat line dicts (``n``, ``at``, ``author``,
    ``text``, ``visibility``).  A line whose ``n`` is already shown is
    ignored, so a line that arrives twice (snapshot and event) shows once.
    Text is inserted as plain text, never parsed as HTML; web addresses in
    it become links that open in the system browser.  Event lines (no
    author) are grey italic; reps-only lines are tinted and tagged
    "reps only".  The view follows new lines only while it is scrolled to
    the bottom, so reading back through the history is not interrupted.

    Attributes:
        customer_name: the name shown for the customer's lines.
    """

    def __init__(self, state: ConsoleState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self.customer_name = ""
        self._seen: set[int] = set()
        self._last_n = 0
        self._last_day: date | None = None
        self._blank = True
        self.setOpenExternalLinks(True)
        self.setReadOnly(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.document().setDocumentMargin(10)
        self.setMinimumWidth(260)

    # ------------------------------------------------------------ public API

    @property
    def last_n(self) -> int:
        """The highest line number shown (0 when empty)."""
        return self._last_n

    def line_count(self) -> int:
        return len(self._seen)

    def has_line(self, n: int) -> bool:
        return n in self._seen

    def clear_lines(self) -> None:
        self.clear()
        self._seen.clear()
        self._last_n = 0
        self._last_day = None
        self._blank = True

    def add_line(self, line: dict[str, Any]) -> bool:
        """Show ``line`` at the end.  Returns False (and shows nothing) if its ``n`` is already shown."""
        n = int(line["n"])
        if n in self._seen:
            return False
        self._seen.add(n)
        self._last_n = max(self._last_n, n)
        with self._following():
            at = float(line.get("at") or 0.0)
            self._date_divider(at)
            self._write_line(line, at)
        return True

    def add_divider(self, text: str, *, colour: str = "divider") -> None:
        """A centred, small note between lines (a date, "New messages")."""
        with self._following():
            self._divider(text, colour)

    def author_name(self, author: str | None) -> str:
        if author == CUSTOMER:
            return self.customer_name or "Customer"
        return self._state.rep_name(author)

    # -------------------------------------------------------------- drawing

    def _colours(self) -> dict[str, str]:
        return _DARK if _is_dark(self) else _LIGHT

    def _following(self) -> _FollowBottom:
        return _FollowBottom(self)

    def _block(self, fmt: QTextBlockFormat) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if self._blank:
            cursor.setBlockFormat(fmt)
            self._blank = False
        else:
            cursor.insertBlock(fmt, QTextCharFormat())
        return cursor

    def _divider(self, text: str, colour: str) -> None:
        c = self._colours()
        fmt = QTextBlockFormat()
        fmt.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        fmt.setTopMargin(6)
        fmt.setBottomMargin(4)
        cursor = self._block(fmt)
        cf = QTextCharFormat()
        cf.setForeground(QColor(c[colour]))
        cf.setFontPointSize(max(7.0, self.font().pointSizeF() * 0.85))
        cf.setFontWeight(QFont.Weight.DemiBold)
        cursor.insertText(f"—  {text}  —", cf)

    def _date_divider(self, at: float) -> None:
        if not at:
            return
        day = datetime.fromtimestamp(at).date()
        if day == self._last_day:
            return
        first = self._last_day is None
        self._last_day = day
        if first and day == date.today():
            return
        self._divider(datetime.fromtimestamp(at).strftime("%A %d %B %Y"), "divider")

    def _write_line(self, line: dict[str, Any], at: float) -> None:
        c = self._colours()
        author = line.get("author")
        reps_only = line.get("visibility") == "reps"
        stamp = clock_time(at) if at else ""

        base = QTextCharFormat()
        fmt = QTextBlockFormat()
        # A hanging indent: wrapped text lines up after the time stamp.
        indent = self.fontMetrics().horizontalAdvance("00:00:00") + 14
        fmt.setLeftMargin(indent + 4)
        fmt.setTextIndent(-indent)
        fmt.setTopMargin(2)
        fmt.setBottomMargin(2)
        if reps_only:
            fmt.setBackground(QColor(c["reps_bg"]))
        fmt.setProperty(QTextFormat.Property.UserProperty, int(line["n"]))
        cursor = self._block(fmt)

        time_fmt = QTextCharFormat(base)
        time_fmt.setForeground(QColor(c["time"]))
        cursor.insertText(stamp + "\u2003", time_fmt)

        if reps_only:
            tag = QTextCharFormat(base)
            tag.setBackground(QColor(c["reps_tag_bg"]))
            tag.setForeground(QColor(c["reps_tag_fg"]))
            tag.setFontWeight(QFont.Weight.Bold)
            tag.setFontPointSize(max(7.0, self.font().pointSizeF() * 0.8))
            cursor.insertText("\u2009reps only\u2009", tag)
            cursor.insertText(" ", base)

        text = str(line.get("text", "")).replace("\r\n", "\n").replace("\n", "\u2028")
        if author is None:
            event = QTextCharFormat(base)
            event.setForeground(QColor(c["event"]))
            event.setFontItalic(True)
            self._insert_linked(cursor, text, event, c)
            return
        who = QTextCharFormat(base)
        who.setFontWeight(QFont.Weight.Bold)
        if author == CUSTOMER:
            who.setForeground(QColor(c["customer"]))
        elif author == self._state.rep_id:
            who.setForeground(QColor(c["me"]))
        else:
            who.setForeground(QColor(c["rep"]))
        cursor.insertText(self.author_name(author), who)
        cursor.insertText(":  ", base)
        self._insert_linked(cursor, text, base, c)

    @staticmethod
    def _insert_linked(cursor: QTextCursor, text: str, fmt: QTextCharFormat, c: dict[str, str]) -> None:
        pos = 0
        for match in _URL.finditer(text):
            if match.start() > pos:
                cursor.insertText(text[pos : match.start()], fmt)
            link = QTextCharFormat(fmt)
            link.setAnchor(True)
            link.setAnchorHref(QUrl(match.group(0)).toString())
            link.setForeground(QColor(c["link"]))
            link.setFontUnderline(True)
            cursor.insertText(match.group(0), link)
            pos = match.end()
        if pos < len(text):
            cursor.insertText(text[pos:], fmt)


class _FollowBottom:
    """Keep a text view pinned to its end across an insert, if it was at the end."""

    def __init__(self, view: QTextBrowser) -> None:
        self._view = view
        self._stick = True

    def __enter__(self) -> None:
        bar = self._view.verticalScrollBar()
        self._stick = bar.value() >= bar.maximum() - 4

    def __exit__(self, *exc: object) -> None:
        if self._stick:
            bar = self._view.verticalScrollBar()
            bar.setValue(bar.maximum())


class ChatInput(QWidget):
    """The chat line being written and its Send button, in a row.

    Enter or the button submits the line, stripped, unless it is blank or
    the button is disabled; the input is cleared right after.

    Signals:
        submitted(str): the rep sent a line (stripped, never empty).

    Attributes:
        input_edit: the line being written (at most the engine's chat limit).
        send_button: sends the input.
    """

    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(8, 8, 8, 8)
        self._row.setSpacing(8)
        self.input_edit = QLineEdit()
        self.input_edit.setMaxLength(CHAT_LIMIT)
        self.input_edit.setMinimumHeight(30)
        self.input_edit.returnPressed.connect(self._submit)
        self.send_button = QPushButton("Send")
        self.send_button.setAutoDefault(False)
        self.send_button.setMinimumHeight(30)
        self.send_button.setToolTip("Send (Enter)")
        self.send_button.clicked.connect(self._on_send_button_clicked)
        self._row.addWidget(self.input_edit, 1)
        self._row.addWidget(self.send_button)
        self.setFocusProxy(self.input_edit)

    def add_option(self, widget: QWidget) -> None:
        """Put ``widget`` (e.g. a check box) between the input and the Send button, also in the Tab order."""
        self._row.insertWidget(self._row.count() - 1, widget)
        QWidget.setTabOrder(widget, self.send_button)

    def _submit(self) -> None:
        if not self.send_button.isEnabled():
            return
        text = self.input_edit.text().strip()
        if not text:
            return
        self.submitted.emit(text)
        self.input_edit.clear()

    def _on_send_button_clicked(self) -> None:
        self._submit()
        self.input_edit.setFocus()


class PageView(QTextBrowser):
    """The customer's web page, drawn as Qt rich text and never navigated.

    The page is the customer's HTML: nothing it links to or embeds is
    fetched, and clicking a link does nothing.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        # A web page is drawn on white, as a browser would, whatever the console's theme.
        paper = self.palette()
        paper.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
        paper.setColor(QPalette.ColorRole.Text, QColor("#1f2328"))
        paper.setColor(QPalette.ColorRole.Link, QColor("#0b5cad"))
        self.setPalette(paper)

    def set_page(self, page_html: str) -> None:
        """Show the customer's HTML, with form fields and buttons drawn as shaded text."""
        self.setHtml(visible_controls(page_html))

    def loadResource(self, type: int, name: QUrl) -> Any:  # noqa: A002 - Qt's signature
        return None


_INPUT = re.compile(r"<input\b([^>]*)>", re.IGNORECASE)
_ATTR = r"""\b{}\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))"""
_BUTTON = re.compile(r"<button\b[^>]*>(.*?)</button\s*>", re.IGNORECASE | re.DOTALL)
_TEXTAREA = re.compile(r"<textarea\b[^>]*>(.*?)</textarea\s*>", re.IGNORECASE | re.DOTALL)
_FIELD_STYLE = "background-color:#eef1f5; color:#1f2328;"
_BUTTON_STYLE = "background-color:#dfe3e8; color:#1f2328; font-weight:600;"


def _attr(attrs: str, name: str) -> str | None:
    match = re.search(_ATTR.format(name), attrs, re.IGNORECASE)
    if match is None:
        return None
    return next((g for g in match.groups() if g is not None), "")


def visible_controls(page_html: str) -> str:
    """Turn form controls, which Qt rich text drops, into shaded text showing their values.

    The customer's page is a snapshot: the rep needs to see what is typed in
    the fields and which buttons there are, not to use them.
    """

    def field(match: re.Match[str]) -> str:
        attrs = match.group(1)
        kind = (_attr(attrs, "type") or "text").lower()
        if kind == "hidden":
            return ""
        if kind in ("checkbox", "radio"):
            return "☑" if re.search(r"\bchecked\b", attrs, re.IGNORECASE) else "☐"
        value = _attr(attrs, "value") or ""
        if kind in ("submit", "button", "reset"):
            return f'<span style="{_BUTTON_STYLE}">&nbsp;&nbsp;{value or kind.capitalize()}&nbsp;&nbsp;</span>'
        if kind == "password":
            value = "•" * min(len(value), 12)
        shown = value or (_attr(attrs, "placeholder") or "")
        pad = "&nbsp;" * max(2, 24 - len(shown))
        return f'<span style="{_FIELD_STYLE}">&nbsp;{shown}{pad}</span>'

    out = _INPUT.sub(field, page_html)
    out = _BUTTON.sub(lambda m: f'<span style="{_BUTTON_STYLE}">&nbsp;&nbsp;{m.group(1)}&nbsp;&nbsp;</span>', out)
    return _TEXTAREA.sub(lambda m: f'<span style="{_FIELD_STYLE}">&nbsp;{m.group(1)}&nbsp;</span>', out)


class SessionTab(QWidget):
    """One session the rep owns or takes part in: header, chat, info and actions.

    The owner gets Transfer…, Share…, Hold (Resume while on hold) and End
    session; a participant sees those greyed out and gets Leave instead.
    Keyboard: Enter or Ctrl+Enter sends, Alt+T transfers, Alt+S shares,
    Alt+H holds, Alt+U resumes, Alt+E ends, Alt+L leaves, Alt+R toggles
    "Reps only".

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

    Attributes:
        chat_view: the chat transcript.
        input_edit: the chat input line.
        reps_only_check: "Reps only" for the next lines sent.
        send_button: sends the input.
        transfer_button, share_button, hold_button, resume_button,
        end_button, leave_button: the session actions.
        note_frame: the pinned transfer note (hidden without a note).
        error_frame: the inline error (hidden until :meth:`show_error`).
        page_view: the customer's page for browser-sharing sessions, else None.
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

    def __init__(self, session: dict[str, Any], chat: list[dict[str, Any]], state: ConsoleState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self._session: dict[str, Any] = dict(session)
        self._busy = False
        self._picker: TargetPicker | None = None
        self._title = ""
        self._page_html: str | None = None
        self._info_values: dict[str, QLabel] = {}
        self._custom_shown: dict[str, str] | None = None

        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._build_header())

        body = QVBoxLayout()
        body.setContentsMargins(8, 8, 8, 8)
        body.setSpacing(8)
        body.addWidget(self._build_error())
        body.addWidget(self._build_note())

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(6)
        self.splitter.addWidget(self._build_chat())
        self.page_view: PageView | None = None
        if self._session.get("browser"):
            self.splitter.addWidget(self._build_page())
        self.splitter.addWidget(self._build_info())
        body.addWidget(self.splitter, 1)
        root.addLayout(body, 1)
        self._size_splitter()

        self.setFocusProxy(self.input_edit)
        self._show_session()
        for line in chat:
            self.chat_view.add_line(line)
        self._fix_minimum_size()

    # ------------------------------------------------------------ public API

    @property
    def session_id(self) -> str:
        return str(self._session["id"])

    @property
    def session(self) -> dict[str, Any]:
        """The session dict last given to the tab."""
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
        return bool(self._state.rep_id) and self._session.get("owner") == self._state.rep_id

    def is_participant(self) -> bool:
        return self._state.rep_id in self._session.get("participants", [])

    def update_session(self, session: dict[str, Any]) -> None:
        """Show a newer dict of the same session."""
        if str(session["id"]) != self.session_id:
            raise ValueError(f"session {session['id']!r} given to the tab of {self.session_id!r}")
        merged = dict(session)
        if "page_html" not in merged and "page_html" in self._session:
            merged["page_html"] = self._session["page_html"]
        self._session = merged
        self._show_session()
        if self._picker is not None and not self._may_act():
            self._picker.reject()

    def append_chat(self, line: dict[str, Any]) -> bool:
        """Add a chat line; a line whose ``n`` is already shown is ignored (returns False)."""
        return self.chat_view.add_line(line)

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

    # -------------------------------------------------------------- building

    def _build_header(self) -> QWidget:
        header = QFrame()
        header.setObjectName("sessionHeader")
        header.setAutoFillBackground(True)
        pal = header.palette()
        pal.setColor(QPalette.ColorRole.Window, self.palette().color(QPalette.ColorRole.AlternateBase))
        header.setPalette(pal)
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
        self.held_badge.setStyleSheet(_badge_style("#fde68a", "#713f12"))
        self.ended_badge = QLabel("Ended")
        self.ended_badge.setStyleSheet(_badge_style("#e5e7eb", "#374151"))
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
        danger = "#ff7b72" if _is_dark(self) else "#b42318"
        self.end_button.setStyleSheet(f"QPushButton#endButton:enabled {{ color: {danger}; font-weight: 600; }}")
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
        self.error_frame.setStyleSheet(
            "QFrame#errorStrip { background: #fdecea; border: 1px solid #f3b4ae; border-radius: 4px; }"
            " QFrame#errorStrip QLabel { color: #8a1c12; background: transparent; }"
            " QFrame#errorStrip QToolButton { border: none; color: #8a1c12; background: transparent; }"
        )
        layout = QHBoxLayout(self.error_frame)
        layout.setContentsMargins(10, 6, 6, 6)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self._on_error_close_clicked)
        layout.addWidget(self.error_label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.error_frame.hide()
        return self.error_frame

    def _build_note(self) -> QWidget:
        self.note_frame = QFrame()
        self.note_frame.setObjectName("transferNote")
        self.note_frame.setStyleSheet(
            "QFrame#transferNote { background: #fff6cc; border: 1px solid #e9cf5f; border-left: 4px solid #e0b400;"
            " border-radius: 4px; }"
            " QFrame#transferNote QLabel { color: #4a3b00; background: transparent; }"
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

        layout.addWidget(rule())

        chat_input = ChatInput()
        chat_input.submitted.connect(self._on_chat_input_submitted)
        self.input_edit = chat_input.input_edit
        self.input_edit.setAccessibleName("Chat message")
        self.send_button = chat_input.send_button
        self.reps_only_check = QCheckBox("&Reps only")
        self.reps_only_check.setToolTip("Send to the reps in this session only; the customer does not see it (Alt+R)")
        self.reps_only_check.toggled.connect(self._on_reps_only_check_toggled)
        chat_input.add_option(self.reps_only_check)
        layout.addWidget(chat_input)
        self._on_reps_only_check_toggled(False)
        return box

    def _build_page(self) -> QWidget:
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        bar = QWidget()
        bar.setAutoFillBackground(True)
        pal = bar.palette()
        pal.setColor(QPalette.ColorRole.Window, self.palette().color(QPalette.ColorRole.AlternateBase))
        bar.setPalette(pal)
        bar_layout = QVBoxLayout(bar)
        bar_layout.setContentsMargins(10, 6, 10, 6)
        bar_layout.setSpacing(1)
        title = QLabel("Customer's page")
        bold = QFont(self.font())
        bold.setBold(True)
        title.setFont(bold)
        self.page_url_label = QLabel()
        self.page_url_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.page_url_label.setStyleSheet("color: palette(placeholder-text);")
        self.page_url_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        bar_layout.addWidget(title)
        bar_layout.addWidget(self.page_url_label)
        layout.addWidget(bar)
        layout.addWidget(rule())
        self.page_view = PageView()
        self.page_view.setAccessibleName("Customer's page")
        self.page_view.setMinimumWidth(240)
        layout.addWidget(self.page_view, 1)
        return box

    def _build_info(self) -> QWidget:
        self.info_panel = QScrollArea()
        self.info_panel.setWidgetResizable(True)
        self.info_panel.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.info_panel.setMinimumWidth(230)
        self.info_panel.setAccessibleName("Customer and session details")
        body = QWidget()
        self._info_layout = QVBoxLayout(body)
        self._info_layout.setContentsMargins(12, 10, 12, 12)
        self._info_layout.setSpacing(4)

        self._section("Customer")
        form = self._form()
        self._info_row(form, "customer_name", "Name")
        self._info_row(form, "company", "Company")
        self._info_row(form, "company_code", "Company code")
        self._info_row(form, "platform", "Platform")
        self._info_row(form, "locale", "Locale")

        self._section("Issue")
        form = self._form()
        self._info_row(form, "issue", "Issue")
        self._info_row(form, "category", "Category")
        self._info_row(form, "priority", "Priority")
        self._info_row(form, "details", "Details")

        self._section("Session")
        form = self._form()
        self.external_key_edit = QLineEdit()
        self.external_key_edit.setMaxLength(100)
        self.external_key_edit.setPlaceholderText("Ticket ID")
        self.external_key_edit.setToolTip("A ticket or case ID; press Enter or leave the field to save it")
        self.external_key_edit.editingFinished.connect(self._on_external_key_edit_editingFinished)
        key_label = self._form_label("External key")
        key_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.addRow(key_label, self.external_key_edit)
        self._info_row(form, "origin", "Origin")
        self._info_row(form, "source", "Source")
        self._info_row(form, "portal", "Portal")
        self._info_row(form, "session_key", "Session key")
        self._info_row(form, "created_at", "Started")
        self._info_row(form, "id", "Session ID")

        self._section("Custom fields")
        self._custom_form = self._form()
        self._info_layout.addStretch(1)
        self.info_panel.setWidget(body)
        return self.info_panel

    def _section(self, title: str) -> None:
        label = QLabel(title.upper())
        font = QFont(self.font())
        font.setBold(True)
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.82))
        font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 106)
        label.setFont(font)
        label.setStyleSheet("color: palette(placeholder-text);")
        if self._info_layout.count():
            self._info_layout.addSpacing(10)
        self._info_layout.addWidget(label)

    def _form(self) -> QFormLayout:
        form = QFormLayout()
        form.setContentsMargins(0, 2, 0, 0)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(5)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._info_layout.addLayout(form)
        return form

    def _form_label(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setStyleSheet("color: palette(placeholder-text);")
        # One label column width for every section, so the values line up down the panel.
        label.setMinimumWidth(max(label.fontMetrics().horizontalAdvance(t) for t in _INFO_LABELS) + 2)
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        return label

    def _value_label(self) -> QLabel:
        value = QLabel()
        value.setWordWrap(True)
        value.setTextFormat(Qt.TextFormat.PlainText)
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        value.setMinimumWidth(60)
        return value

    def _info_row(self, form: QFormLayout, key: str, text: str) -> None:
        value = self._value_label()
        self._info_values[key] = value
        form.addRow(self._form_label(text), value)

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
        if self.page_view is not None:
            self.splitter.setSizes([500, 400, 280])
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
        name = str(s.get("customer_name", ""))
        self.chat_view.customer_name = name
        title = f"[Browser] {name}" if s.get("browser") else name
        self.name_label.setText(title)
        company = str(s.get("company", ""))
        code = str(s.get("company_code", ""))
        self.company_label.setText(f"{company} ({code})" if company and code else company or code)
        self.company_label.setVisible(bool(company or code))

        priority = _priority(s.get("priority"))
        self.priority_badge.setText(f"{priority.label} priority")
        self.priority_badge.setStyleSheet(_badge_style(*_PRIORITY_BADGE[priority]))
        ended = s.get("state") == "ended"
        self.held_badge.setVisible(bool(s.get("held")) and not ended)
        self.ended_badge.setVisible(ended)

        issue = str(s.get("issue", ""))
        category = str(s.get("category", ""))
        parts = [f"<b>{html.escape(issue, quote=False)}</b>" if issue else "<i>No issue given</i>"]
        if category:
            parts.append(html.escape(category, quote=False))
        if s.get("platform"):
            parts.append(html.escape(str(s["platform"]), quote=False))
        self.issue_label.setText(" · ".join(parts))
        self.people_label.setText(self._people_text())

        self._show_note()
        self._show_info()
        self._show_page()
        self._refresh_actions()
        if title != self._title:
            self._title = title
            self.titleChanged.emit(title)

    def _people_text(self) -> str:
        s = self._session
        me = self._state.rep_id
        owner = s.get("owner")
        if s.get("state") == "ended":
            reason = str(s.get("end_reason", ""))
            return html.escape(f"Session ended — {reason}" if reason else "Session ended", quote=False)
        if owner:
            who = html.escape(self._state.rep_name(owner), quote=False) + (" (you)" if owner == me else "")
            text = f"Owner: {who}"
        else:
            queue = s.get("queue")
            where = html.escape(self._state.queue_name(queue), quote=False) if queue else "a queue"
            text = f"No owner — waiting in {where}"
        others = [p for p in s.get("participants", []) if p != owner]
        if others:
            names = ", ".join(html.escape(self._state.rep_name(p), quote=False) + (" (you)" if p == me else "") for p in others)
            text += f"  ·  With: {names}"
        if s.get("held") and owner == me:
            text += "  ·  Parked in your personal queue"
        return text

    def _show_note(self) -> None:
        note = str(self._session.get("transfer_note") or "").strip()
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
            credit = f'&nbsp;&nbsp;<span style="color:#7a6a1f">{credit}</span>'
        text = html.escape(note, quote=False).replace("\n", "<br>")
        self.note_label.setText(f"<b>Note from transfer:</b> {text}{credit}")
        self.note_frame.show()

    def _last_transfer(self) -> tuple[str | None, float]:
        for step in reversed(self._session.get("timeline", [])):
            if step.get("kind") == "transferred":
                return step.get("by"), float(step.get("at") or 0.0)
        return None, 0.0

    def _show_info(self) -> None:
        s = self._session
        values: dict[str, str] = {key: str(s.get(key) or "") for key in self._info_values}
        values["priority"] = _priority(s.get("priority")).label
        try:
            values["origin"] = Origin(s.get("origin")).label
        except ValueError:
            values["origin"] = str(s.get("origin") or "")
        values["created_at"] = clock_time(float(s["created_at"])) if s.get("created_at") else ""
        for key, label in self._info_values.items():
            self._set_value(label, values[key])
        if not self.external_key_edit.hasFocus():
            self.external_key_edit.setText(str(s.get("external_key") or ""))

        fields: dict[str, str] = dict(s.get("custom_fields") or {})
        if fields == self._custom_shown:
            return
        self._custom_shown = fields
        while self._custom_form.rowCount():
            self._custom_form.removeRow(0)
        if not fields:
            none = self._value_label()
            self._set_value(none, "")
            none.setText("None")
            self._custom_form.addRow(none)
        for key in sorted(fields, key=str.casefold):
            value = self._value_label()
            self._set_value(value, str(fields[key]))
            label = self._form_label(key[:1].upper() + key[1:])
            self._custom_form.addRow(label, value)

    @staticmethod
    def _set_value(label: QLabel, text: str) -> None:
        if text:
            label.setText(text)
            label.setStyleSheet("")
        else:
            label.setText("—")
            label.setStyleSheet("color: palette(placeholder-text);")

    def _show_page(self) -> None:
        if self.page_view is None:
            return
        url = str(self._session.get("page_url") or "")
        self.page_url_label.setText(url or "No address reported")
        self.page_url_label.setToolTip(url)
        page = self._session.get("page_html")
        if page is None or page == self._page_html:
            return
        self._page_html = str(page)
        if self._page_html:
            self.page_view.set_page(self._page_html)
        else:
            self.page_view.setPlainText("The customer's page has not been received.")

    def _may_act(self) -> bool:
        return self.is_owner() and self._session.get("state") != "ended"

    def _refresh_actions(self) -> None:
        s = self._session
        ended = s.get("state") == "ended"
        owner = self.is_owner()
        participant = self.is_participant()
        act = owner and not ended and not self._busy
        held = bool(s.get("held"))
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
            who = s.get("owner")
            reason = f"Only the owner ({self._state.rep_name(who)}) can do this." if who else "Only the session's owner can do this."
        for button in (self.transfer_button, self.share_button, self.hold_button, self.end_button):
            base = str(button.property("baseToolTip") or button.toolTip())
            button.setProperty("baseToolTip", base)
            button.setToolTip(f"{base}\n{reason}" if reason else base)

        can_chat = (owner or participant) and not ended
        self.input_edit.setEnabled(can_chat)
        self.reps_only_check.setEnabled(can_chat)
        self.send_button.setEnabled(can_chat and not self._busy)
        self.external_key_edit.setReadOnly(not can_chat)

    # ----------------------------------------------------------------- slots

    def _on_chat_input_submitted(self, text: str) -> None:
        # The Send button, which ChatInput checks, is disabled while busy.
        self.clear_error()
        self.sendRequested.emit(text, self.reps_only_check.isChecked())

    def _on_reps_only_check_toggled(self, checked: bool) -> None:
        if checked:
            self.input_edit.setPlaceholderText("Message to reps only — the customer will not see it")
            self.input_edit.setStyleSheet(
                "QLineEdit { background: %s; border: 1px solid %s; border-radius: 3px; padding: 2px 6px; }"
                % (_DARK["reps_bg"] if _is_dark(self) else _LIGHT["reps_bg"], _LIGHT["reps_tag_bg"])
            )
        else:
            self.input_edit.setPlaceholderText("Message to the customer — Enter to send")
            self.input_edit.setStyleSheet("")

    def _on_error_close_clicked(self) -> None:
        self.clear_error()

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
        self.clear_error()
        self.endRequested.emit()

    def _on_leave_button_clicked(self) -> None:
        self.clear_error()
        self.leaveRequested.emit()

    def _on_external_key_edit_editingFinished(self) -> None:
        text = self.external_key_edit.text().strip()
        if self.external_key_edit.isReadOnly() or text == str(self._session.get("external_key") or ""):
            return
        self.externalKeyEdited.emit(text)

    def sizeHint(self) -> QSize:
        return QSize(1100, 650)


def _priority(value: Any) -> Priority:
    try:
        return Priority(int(value))
    except (TypeError, ValueError):
        return Priority.NORMAL
