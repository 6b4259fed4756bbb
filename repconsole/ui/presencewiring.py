"""Typing notices and the silent flag between the backend and the main window's session tabs (issue 14).

Kept out of mainwindow.py (at its size limit): the window makes one
:class:`PresenceWiring` and calls :meth:`PresenceWiring.attach` for each tab
it opens.

* The backend's "the customer of S5 is typing" goes to S5's tab
  (:meth:`PresenceBar.customer_typing`) and, through ``on_queue_typing``, to
  the queue row;
* a tab's ``typingRequested`` goes to :meth:`Backend.typing` (fire and forget);
* a tab whose customer went silent gets an icon on the tab bar, and its
  tooltip and accessible name say so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QStyle, QTabWidget

from repconsole.backend.base import Backend

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
        on_queue_typing: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(tabs)
        self.backend = backend
        self.tabs = tabs
        self.session_tabs = session_tabs
        self.on_queue_typing = on_queue_typing
        backend.add_typing_listener(self._on_backend_typing)

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
        if self.on_queue_typing is not None:
            self.on_queue_typing(session_id)

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
