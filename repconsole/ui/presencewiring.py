"""Typing notices and the silent flag between the backend and the main window's session tabs (issue 14).

Kept out of mainwindow.py (at its size limit): the window makes one
:class:`PresenceWiring` and calls :meth:`PresenceWiring.attach` for each tab
it opens.

* The backend's "the customer of S5 is typing" goes to S5's tab
  (:meth:`PresenceBar.customer_typing`) and to the queue row
  (:meth:`QueueTableModel.set_typing`: a bubble by the customer's name),
  which loses it after :data:`TYPING_CLEAR` s without another notice (a
  one-second timer, on the injected clock) or when the customer's line comes;
* a tab's ``typingRequested`` goes to :meth:`Backend.typing` (fire and forget);
* a tab whose customer went silent gets an icon on the tab bar, and its
  tooltip and accessible name say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QStyle, QTabWidget

from repconsole.backend.base import Backend
from repconsole.core.feed import FeedBatch
from repconsole.protocol import CUSTOMER, ChatData
from repconsole.ui.presence import TYPING_CLEAR
from repconsole.ui.queuemodel import QueueTableModel

if TYPE_CHECKING:
    from repconsole.ui.sessiontab import SessionTab

__all__ = ["PresenceWiring"]


class PresenceWiring(QObject):
    """Connects typing and silence of each session tab; see the module's docstring."""

    def __init__(
        self,
        backend: Backend,
        tabs: QTabWidget,
        session_tabs: Mapping[str, SessionTab],
        model: QueueTableModel | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(tabs)
        self.backend = backend
        self.tabs = tabs
        self.session_tabs = session_tabs
        self.model = model
        self.clock = clock
        self._typing_at: dict[str, float] = {}  # the queue rows marked typing: when their last notice came
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.expire)
        backend.add_typing_listener(self._on_backend_typing)
        backend.add_event_listener(self._on_backend_events)

    def attach(self, tab: SessionTab) -> None:
        """Wire a tab the window just opened."""
        sid = tab.session_id
        tab.typingRequested.connect(lambda s=sid: self.backend.typing(s))
        tab.presence.silentChanged.connect(lambda silent, t=tab: self._flag(t, silent))
        tab.titleChanged.connect(lambda _title, t=tab: self._flag(t, t.presence.silent))

    def _on_backend_typing(self, session_id: str) -> None:
        tab = self.session_tabs.get(session_id)
        if tab is not None:
            tab.presence.customer_typing()
        if self.model is not None:
            self._typing_at[session_id] = self.clock()
            self.model.set_typing(session_id, True)
            self._timer.start()

    def expire(self) -> None:
        """Unmark the queue rows whose last notice is :data:`TYPING_CLEAR` s old."""
        now = self.clock()
        for sid in [sid for sid, at in self._typing_at.items() if now - at >= TYPING_CLEAR]:
            self._unmark(sid)

    def _unmark(self, session_id: str) -> None:
        self._typing_at.pop(session_id, None)
        if self.model is not None:
            self.model.set_typing(session_id, False)
        if not self._typing_at:
            self._timer.stop()

    def _on_backend_events(self, batch: FeedBatch) -> None:
        if not self._typing_at:
            return
        for item in batch:
            data = getattr(item, "data", None)  # a snapshot has none
            if isinstance(data, ChatData) and data.line.author == CUSTOMER:
                self._unmark(data.session)

    def _flag(self, tab: SessionTab, silent: bool) -> None:
        index = self.tabs.indexOf(tab)
        if index < 0:
            return
        name = tab.session.customer_name
        icon = self.tabs.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation) if silent else QIcon()
        self.tabs.setTabIcon(index, icon)
        quiet = tab.presence.silent_label.accessibleName()
        issue = tab.session.issue or "no issue given"
        self.tabs.setTabToolTip(index, f"{name} — {issue}" + (f"\n{quiet}" if silent else ""))
        self.tabs.tabBar().setAccessibleTabName(index, f"{tab.title}, silent" if silent else tab.title)
