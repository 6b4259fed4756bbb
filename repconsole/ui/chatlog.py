"""The chat transcript shared by the session tabs and the team chat.

:class:`ChatLog` draws chat line dicts (session or team) as time, author and
text, and keeps following new lines only while the rep is at the bottom.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QFont, QTextBlock, QTextBlockFormat, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import QFrame, QTextBrowser, QWidget

from repconsole.core.state import ConsoleState
from repconsole.protocol import CUSTOMER, LineView, Visibility
from repconsole.ui import theme
from repconsole.ui.accessible import quiet_viewport
from repconsole.ui.theme import Role
from repconsole.ui.widgets import clock_time

__all__ = ["ChatLog"]


# The block property that marks a pending line (its value: the pending key).
_PENDING = QTextFormat.Property.UserProperty + 1

_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")

# Which theme role a fragment's (or a reps-only block's) colour is: the
# transcript takes the new scheme's colours from it (recolour()).
_FG_ROLE = QTextFormat.Property.UserProperty + 2
_BG_ROLE = QTextFormat.Property.UserProperty + 3


def _fg(fmt: QTextCharFormat, role: Role) -> None:
    fmt.setForeground(theme.colour(role))
    fmt.setProperty(_FG_ROLE, role.value)


def _bg(fmt: QTextCharFormat | QTextBlockFormat, role: Role) -> None:
    fmt.setBackground(theme.colour(role))
    fmt.setProperty(_BG_ROLE, role.value)


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
        self._pending: set[int] = set()
        self.setOpenExternalLinks(True)
        quiet_viewport(self)
        self.setReadOnly(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.document().setDocumentMargin(10)
        self.setMinimumWidth(260)
        theme.controller().changed.connect(self._on_theme_changed)

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
        self._pending.clear()

    def add_line(self, line: LineView) -> bool:
        """Show ``line`` at the end.  Returns False (and shows nothing) if its ``n`` is already shown."""
        n = line.n
        if n in self._seen:
            return False
        self._seen.add(n)
        self._last_n = max(self._last_n, n)
        with self._following():
            at = line.at
            self._date_divider(at)
            self._write_line(line, at)
        return True

    def add_pending(self, key: int, text: str, *, reps_only: bool = False) -> None:
        """Show a line the rep sent that the server has not confirmed yet, marked *pending*.

        It is drawn as the rep's line in grey italics with a "pending" tag;
        :meth:`remove_pending` takes it away when the line is confirmed (the
        real line is then added as any other) or refused.
        """
        with self._following():
            fmt = QTextBlockFormat()
            indent = self.fontMetrics().horizontalAdvance("00:00:00") + 14
            fmt.setLeftMargin(indent + 4)
            fmt.setTextIndent(-indent)
            fmt.setTopMargin(2)
            fmt.setBottomMargin(2)
            fmt.setProperty(_PENDING, key)
            cursor = self._block(fmt)
            grey = QTextCharFormat()
            _fg(grey, Role.CHAT_EVENT)
            grey.setFontItalic(True)
            cursor.insertText("pending\u2003", grey)
            who = QTextCharFormat(grey)
            who.setFontWeight(QFont.Weight.Bold)
            cursor.insertText(self.author_name(self._state.rep_id) + (" (reps only)" if reps_only else ""), who)
            cursor.insertText(":  " + text.replace("\r\n", "\n").replace("\n", "\u2028"), grey)
        self._pending.add(key)

    def remove_pending(self, key: int) -> bool:
        """Take away the pending line ``key``; False if it is not shown."""
        if key not in self._pending:
            return False
        self._pending.discard(key)
        block = self.document().firstBlock()
        while block.isValid():
            if block.blockFormat().property(_PENDING) == key:
                cursor = QTextCursor(block)
                cursor.select(QTextCursor.SelectionType.BlockUnderCursor)
                if block.blockNumber() == 0:
                    # The first block has no separator before it: take the one after, if any.
                    cursor = QTextCursor(block)
                    cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
                    if block.next().isValid():
                        cursor.movePosition(QTextCursor.MoveOperation.NextCharacter, QTextCursor.MoveMode.KeepAnchor)
                    else:
                        self._blank = True
                cursor.removeSelectedText()
                if self._blank:
                    QTextCursor(self.document()).setBlockFormat(QTextBlockFormat())
                return True
            block = block.next()
        return False

    def pending_texts(self) -> list[str]:
        """The texts of the pending lines shown, in order (for tests and the accessible view)."""
        texts = []
        block = self.document().firstBlock()
        while block.isValid():
            if block.blockFormat().property(_PENDING) is not None:
                texts.append(block.text().split(":  ", 1)[-1].replace("\u2028", "\n"))
            block = block.next()
        return texts

    def add_divider(self, text: str, *, colour: Role = Role.CHAT_DIVIDER) -> None:
        """A centred, small note between lines (a date, "New messages")."""
        with self._following():
            self._divider(text, colour)

    def author_name(self, author: str | None) -> str:
        if author == CUSTOMER:
            return self.customer_name or "Customer"
        return self._state.rep_name(author)

    # -------------------------------------------------------------- drawing

    def recolour(self) -> None:
        """Give every line shown the current scheme's colours (after a change of scheme)."""
        doc = self.document()
        changes: list[tuple[int, int, QTextCharFormat]] = []
        blocks: list[tuple[QTextBlock, QTextBlockFormat]] = []
        block = doc.firstBlock()
        while block.isValid():
            block_format = block.blockFormat()
            if block_format.property(_BG_ROLE):
                _bg(block_format, Role(block_format.property(_BG_ROLE)))
                blocks.append((block, block_format))
            item = block.begin()
            while not item.atEnd():
                fragment = item.fragment()
                fmt = fragment.charFormat()
                fg, bg = fmt.property(_FG_ROLE), fmt.property(_BG_ROLE)
                if fragment.isValid() and (fg or bg):
                    change = QTextCharFormat()
                    if fg:
                        _fg(change, Role(fg))
                    if bg:
                        _bg(change, Role(bg))
                    changes.append((fragment.position(), fragment.length(), change))
                item += 1
            block = block.next()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        for block, block_format in blocks:
            QTextCursor(block).setBlockFormat(block_format)
        for position, length, change in changes:
            cursor.setPosition(position)
            cursor.setPosition(position + length, QTextCursor.MoveMode.KeepAnchor)
            cursor.mergeCharFormat(change)
        cursor.endEditBlock()

    def _on_theme_changed(self, dark: bool) -> None:
        self.recolour()

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

    def _divider(self, text: str, colour: Role) -> None:
        fmt = QTextBlockFormat()
        fmt.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        fmt.setTopMargin(6)
        fmt.setBottomMargin(4)
        cursor = self._block(fmt)
        cf = QTextCharFormat()
        _fg(cf, colour)
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
        self._divider(datetime.fromtimestamp(at).strftime("%A %d %B %Y"), Role.CHAT_DIVIDER)

    def _write_line(self, line: LineView, at: float) -> None:
        author = line.author
        reps_only = line.visibility is Visibility.REPS
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
            _bg(fmt, Role.REPS_ONLY)
        fmt.setProperty(QTextFormat.Property.UserProperty, line.n)
        cursor = self._block(fmt)

        time_fmt = QTextCharFormat(base)
        _fg(time_fmt, Role.CHAT_TIME)
        cursor.insertText(stamp + "\u2003", time_fmt)

        if reps_only:
            tag = QTextCharFormat(base)
            _bg(tag, Role.REPS_TAG)
            _fg(tag, Role.REPS_TAG_TEXT)
            tag.setFontWeight(QFont.Weight.Bold)
            tag.setFontPointSize(max(7.0, self.font().pointSizeF() * 0.8))
            cursor.insertText("\u2009reps only\u2009", tag)
            cursor.insertText(" ", base)

        text = line.text.replace("\r\n", "\n").replace("\n", "\u2028")
        if author is None:
            event = QTextCharFormat(base)
            _fg(event, Role.CHAT_EVENT)
            event.setFontItalic(True)
            self._insert_linked(cursor, text, event)
            return
        who = QTextCharFormat(base)
        who.setFontWeight(QFont.Weight.Bold)
        if author == CUSTOMER:
            _fg(who, Role.CHAT_CUSTOMER)
        elif author == self._state.rep_id:
            _fg(who, Role.CHAT_ME)
        else:
            _fg(who, Role.CHAT_REP)
        cursor.insertText(self.author_name(author), who)
        cursor.insertText(":  ", base)
        self._insert_linked(cursor, text, base)

    @staticmethod
    def _insert_linked(cursor: QTextCursor, text: str, fmt: QTextCharFormat) -> None:
        pos = 0
        for match in _URL.finditer(text):
            if match.start() > pos:
                cursor.insertText(text[pos : match.start()], fmt)
            link = QTextCharFormat(fmt)
            link.setAnchor(True)
            link.setAnchorHref(QUrl(match.group(0)).toString())
            _fg(link, Role.CHAT_LINK)
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
