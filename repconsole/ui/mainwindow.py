"""The console window: it builds its parts and keeps them current (their wiring: ui/wiring.py).

The window owns a :class:`~repconsole.core.state.ConsoleState` fed by the
backend.  Every batch of feed events is applied once and then fanned out to
the widgets precisely: the visible queue's rows, the queue counts, the open
session tabs, team chats and alerts.  Backend commands run as asyncio tasks;
their refusals are shown, never raised into Qt.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from repconsole import __version__
from repconsole.backend.base import Backend, BackendState
from repconsole.core.errors import CommandError, Reason
from repconsole.core.feed import FeedBatch
from repconsole.core.state import Changes, ConsoleState, GapError, Row, RowKind
from repconsole.protocol import GoneReason, RepStatus, SessionGoneData, SessionView
from repconsole.settings import Settings
from repconsole.ui import loading, theme, wiring, workspace
from repconsole.ui.accessible import Splitter, TabWidget
from repconsole.ui.alerts import AlertBanner, Alerter, alerts_for
from repconsole.ui.announce import Announcer, Kind
from repconsole.ui.closereason import close_reason
from repconsole.ui.details import DetailsPane
from repconsole.ui.focusorder import labelled
from repconsole.ui.keydialog import SessionKeyDialog
from repconsole.ui.menus import build_menus
from repconsole.ui.offers import OfferDesk
from repconsole.ui.presencewiring import PresenceWiring
from repconsole.ui.queuelist import QueueList, queue_entries
from repconsole.ui.queuemodel import QueueTableModel
from repconsole.ui.queuetable import QueueTableView
from repconsole.ui.quitdialog import QuitGuard
from repconsole.ui.resources import app_icon
from repconsole.ui.search import search_delta, search_rows, search_title
from repconsole.ui.searchfield import SearchField
from repconsole.ui.snippetdesk import SnippetDesk
from repconsole.ui.statusline import ElidedLabel, backend_text, fit_message, grace_text, window_title
from repconsole.ui.tray import ConsoleTray

if TYPE_CHECKING:  # these load when first opened: the queue fills without them
    from repconsole.ui.prefsdialog import PreferencesDialog
    from repconsole.ui.sessiontab import SessionTab
    from repconsole.ui.teamchat import TeamChatDialog
__all__ = ["MainWindow"]

log = logging.getLogger(__name__)

SEARCH_QUEUE = "search:"
_STATUS_LABELS = {RepStatus.AVAILABLE: "Available", RepStatus.BUSY: "Busy", RepStatus.AWAY: "Away"}


class MainWindow(QMainWindow):
    """The representative console.

    Signals:
        closed(): the window closed (after its settings were saved).
        firstQueuePainted(): the queue table painted its first snapshot, complete (a big start's once filled).
        commandFailed(str, str): a backend command was refused (command, message).

    Attributes:
        backend: where commands go and events come from.
        settings: the rep's saved arrangement.
        state: what the console knows, kept current from the backend's feed.
        tabs: the top-level tab widget: the Queues tab, then one per session.
        session_tabs: open session tabs by session id.
        queue_list, table, model, details, search, loading: the queue workspace ("Loading N customers" over the table).
        notice: the last command message shown to the rep.
    """

    closed = Signal()
    firstQueuePainted = Signal()
    commandFailed = Signal(str, str)

    def __init__(self, backend: Backend, settings: Settings, *, settings_warning: str | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.settings = settings
        self.state = ConsoleState()
        self.session_tabs: dict[str, SessionTab] = {}
        self.team_chats: dict[str, TeamChatDialog] = {}
        self.notice = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.clock_offset = 0.0
        self._queue: str | None = None
        self.closing = False
        self._quitting = False  # a real quit (tray, Ctrl+Q): never just hide to the tray
        self.key_dialog: SessionKeyDialog | None = None
        self._restore_tab = workspace.front_tab(settings.window)  # brought back to the front once
        self._tabs_reopened = False  # until then the saved tabs are saved as they were (closing early loses no layout)

        self.setWindowTitle(window_title("", "", ""))
        theme.follow(lambda: self.settings.preferences.appearance.theme)  # light or dark, before any widget
        self.setWindowIcon(app_icon())
        self.resize(1280, 780)
        # A fixed minimum: showing the details pane or a banner must not change the
        # window's size hints (which would also make Qt's offscreen platform warn in tests).
        self.setMinimumSize(900, 480)
        self._build()
        self._build_actions()
        self._restore_settings()
        if settings_warning:
            self.show_notice(settings_warning, error=True)

        backend.add_event_listener(self._on_backend_events)
        backend.add_state_listener(self._on_backend_state)
        wiring.wire_cobrowse(self)
        self.presence = PresenceWiring(backend, self.tabs, self.session_tabs, self.model)  # typing, silence (issue 14)
        self.loading = loading.LoadingOverlay(self.table, backend)  # after the window's listener: sees each batch applied
        self.loading.filled.connect(self._reopen_tabs)
        self.loading.fillingChanged.connect(self._update_backend_label)  # "loading customers", not "connecting"
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._on_tick_timeout)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(150)
        self._search_timer.timeout.connect(self._on_search_timer_timeout)

    # ------------------------------------------------------------ building

    def _build(self) -> None:
        self.tabs = TabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setAccessibleName("Queues and sessions")
        # No close buttons: closing a tab is not ending a session.  A tab
        # closes when the rep ends, leaves or transfers the session.
        self.tabs.setTabsClosable(False)
        self.setCentralWidget(self.tabs)

        workspace = QWidget()
        outer = QVBoxLayout(workspace)
        outer.setContentsMargins(6, 6, 6, 6)
        self.queue_list = QueueList()
        self.queue_list.setMinimumWidth(190)

        center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.queue_title = QLabel()
        self.queue_title.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.stale_label = QLabel()
        theme.set_style(self.stale_label, "color: $warning_text; font-weight: 600;")
        self.stale_label.hide()
        self.search = SearchField()
        self.accept_button = QPushButton("&Accept")
        self.accept_button.setToolTip("Accept the selected entry (Enter or double-click)")
        self.get_next_button = QPushButton("Get &Next")
        self.get_next_button.setToolTip("Accept the longest-waiting session across your team queues (Ctrl+G)")
        self.key_button = QPushButton("Session &Key…")
        self.key_button.setToolTip("Generate a one-time session key for a customer (Ctrl+K)")
        bar.addWidget(self.queue_title)
        bar.addWidget(self.stale_label)
        bar.addStretch(1)
        bar.addWidget(self.search)
        bar.addWidget(self.key_button)
        bar.addWidget(self.get_next_button)
        bar.addWidget(self.accept_button)
        center_layout.addLayout(bar)

        self.model = QueueTableModel(clock=self.now, rep_name=self.state.rep_name, queue_name=self.state.queue_name)
        self.table = QueueTableView(clock=self.now)
        self.table.setModel(self.model)
        self.table.setAccessibleName("Queue")
        center_layout.addWidget(self.table, 1)
        self.banner = AlertBanner(self.table)  # floats over the table: rows never move for it
        self.notice_label = QLabel()
        self.notice_label.setWordWrap(True)
        self.notice_label.hide()
        center_layout.addWidget(self.notice_label)

        self.details = DetailsPane(self.state)
        self.details.hide()

        self.splitter = Splitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.queue_list)
        self.splitter.addWidget(center)
        self.splitter.addWidget(self.details)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([220, 760, 320])
        outer.addWidget(self.splitter, 1)
        self.tabs.addTab(workspace, "Queues")

        # Who is signed in; then where, and the connection (the status is the combo on the right).
        self.identity_label = ElidedLabel()
        self.identity_label.setAccessibleName("Signed in as")
        self.backend_label = ElidedLabel()
        self.status_combo = QComboBox()
        for status, label in _STATUS_LABELS.items():
            self.status_combo.addItem(label, status.value)
        self.status_combo.setToolTip("Your status")
        self.status_combo.setAccessibleName("Your status")
        self.progress_label = QLabel()
        self.grace_label = ElidedLabel()
        status_bar = self.statusBar()
        status_bar.setSizeGripEnabled(False)  # a nameless "unknown" object to a screen reader; the window manager resizes
        status_bar.addWidget(self.identity_label)
        status_bar.addWidget(self.backend_label)
        status_bar.addWidget(self.grace_label)
        status_bar.addPermanentWidget(self.progress_label)
        status_bar.addPermanentWidget(labelled("Your status:", self.status_combo))
        status_bar.addPermanentWidget(self.status_combo)

        self.tray = ConsoleTray(app_icon(), self)  # its Show brings this window back
        self.announcer = Announcer(self, lambda: self.settings)
        self.alerter = Alerter(self, self.banner, lambda: self.settings, clock=time.time, notify=self.tray.notify, announcer=self.announcer)
        self.quit_guard = QuitGuard(self, self.state, self.settings)
        wiring.wire_window(self)
        self.offers = OfferDesk(self)  # issue 14: offers, capacity, pausing, wait estimates
        self.snippet_desk = SnippetDesk(self.backend, self.state, self.settings, self)  # canned messages (issue 14)
        # Watches for the first paint of a snapshot (firstQueuePainted), then stops watching.
        self.table.viewport().installEventFilter(self)

    def _build_actions(self) -> None:
        self.menu_actions = build_menus(self)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the backend; its snapshot fills the window."""
        self._update_backend_label()
        await self.backend.start()
        self._tick.start()

    def start_soon(self) -> None:
        self.spawn("start", self.start())

    async def shutdown(self) -> None:
        """Stop the backend.  Touches no widget: the window may already be gone."""
        for task in list(self._tasks):
            task.cancel()
        await self.backend.stop()

    def quit(self) -> None:
        """Close the console, even when closing the window would only hide it to the tray."""
        self._quitting = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        told_to_quit = self._quitting or self.quit_guard.confirmed
        if not told_to_quit and self.settings.preferences.close_to_tray and self.tray.icon.isVisible():
            self.hide()  # the console keeps running: alerts reach the rep through the tray
            event.ignore()
            return
        if not self.closing and not self.quit_guard.may_quit():
            event.ignore()
            return
        if not self.closing:
            self.closing = True
            self._tick.stop()
            self.alerter.clear()
            self.tray.icon.hide()
            self._save_settings()
            for dialog in self.team_chats.values():
                dialog.close()
            self.closed.emit()
        super().closeEvent(event)

    def _on_quit_guard_quitChosen(self, away: bool) -> None:
        self.spawn("Set away", self._quit(away))

    async def _quit(self, away: bool) -> None:
        try:
            if away:
                await self.backend.set_status(RepStatus.AWAY.value)
        finally:
            self.close()  # quit even if the status could not be set: the rep chose to go

    def now(self) -> float:
        """The current time on the backend's clock."""
        return time.time() + self.clock_offset

    # ------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        self.table.restore_layout(self.settings.table)
        window = self.settings.window
        geometry = window.get("geometry")
        if isinstance(geometry, str):
            try:
                self.restoreGeometry(QByteArray(base64.b64decode(geometry)))
            except ValueError:
                log.warning("ignoring a malformed saved window geometry")
        sizes = window.get("splitter")
        if isinstance(sizes, list) and len(sizes) == 3 and all(isinstance(x, int) and x >= 0 for x in sizes):
            self.splitter.setSizes(sizes)

    def _save_settings(self) -> None:
        self.settings.table = self.table.save_layout()
        self.settings.window = {
            "geometry": base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii"),
            "splitter": self.splitter.sizes(),
            **workspace.tabs_state(self.tabs, self.session_tabs, None if self._tabs_reopened else self.settings.window),
        }
        if self._queue and not self._queue.startswith(SEARCH_QUEUE):
            self.settings.last_queue = self._queue
        try:
            self.settings.save()
        except OSError as exc:
            log.error("could not save settings: %s", exc)

    # ------------------------------------------------------------ feed

    def _on_backend_events(self, batch: FeedBatch) -> None:
        if self.closing:
            return  # a closed window is being torn down; its backend may still deliver
        try:
            changes = self.state.apply(batch)
        except GapError as exc:
            # Never show a queue we know is incomplete: mark it stale; the
            # backend resynchronises with a fresh snapshot.
            log.error("%s", exc)
            self._set_stale("missed events — resynchronising…")
            self.backend.resync()
            return
        if changes.reset:
            self._load_snapshot()
        else:
            self._apply_changes(changes)
        self._update_progress()
        self.offers.update(changes)

    def deliver(self, batch: FeedBatch) -> None:
        """A batch the backend delivered before this window listened (signed in from the login dialog)."""
        self._on_backend_events(batch)

    def _load_snapshot(self) -> None:
        self.clock_offset = self.state.at - time.time()
        self._set_stale(None)
        # Read before the queue list fills: filling it selects Personal.
        wanted = self._queue or self.settings.last_queue
        self._refresh_queue_list()
        if wanted not in self.state.rows:
            wanted = self.state.personal_queue
        if self.search.text().strip():
            self._run_search()
        else:
            self._show_queue(wanted, force=True)
        self.queue_list.select(wanted)
        self._show_my_status()
        self._reopen_tabs()
        self._close_stale_tabs({})
        for dialog in self.team_chats.values():
            dialog.view.reload()

    def _reopen_tabs(self) -> None:
        """Sessions the rep is already in get their tabs back (after a restart or a crash, as they were; a big start's once it is filled)."""
        for s in workspace.reopen_order(self.settings.window, self.state.my_sessions()):
            if s.id not in self.session_tabs:
                # Not over a tab the rep opened meanwhile (accepted while a big start filled).
                self._open_tab(s, focus=s.id == self._restore_tab and self.tabs.currentIndex() == 0)
        if not self.loading.filling:
            self._restore_tab = None
            self._tabs_reopened = True

    def _apply_changes(self, changes: Changes) -> None:
        if self._queue is not None and self._queue.startswith(SEARCH_QUEUE):
            if changes.queues:  # the results follow the rows that changed: no search of all 100,000 again
                self.model.apply(search_delta(self.state, changes, self._queue.removeprefix(SEARCH_QUEUE)))
                self.queue_title.setText(search_title(self.model.rowCount()))
        elif self._queue is not None and self._queue in changes.queues:
            # Names of the rows another rep took, while the rows are still here.
            names = {rid: row.session.title for rid, g in changes.gone.items() if g.reason is GoneReason.TAKEN and (row := self._row(rid))}
            self.model.apply(changes.queues[self._queue])
            for rid, name in names.items():
                by = changes.gone[rid].by
                if by and by != self.state.rep_id and self.table.show_lost(rid, text := f"{self.state.rep_name(by)} took {name}"):
                    self.announcer.announce(Kind.LOST_RACES, text)
        if changes.queues or changes.team_chat or changes.teams_read:
            self._refresh_queue_list()
        if self.details.row_id is not None:
            row = self._row(self.details.row_id)
            if row is None:
                gone = changes.gone.get(self.details.row_id)
                self.close_details()
                if gone and gone.reason is GoneReason.TAKEN:
                    self.show_notice(f"That session was taken by {self.state.rep_name(gone.by or None)}.")
            elif row.session.id in changes.sessions:
                self.details.refresh(row)
        for sid, line in changes.chat:
            tab = self.session_tabs.get(sid)
            if tab is not None and tab.append_chat(line):
                self.announcer.chat_line(line, tab.session.customer_name, self.state, current=self.tabs.currentWidget() is tab)
        for sid in changes.sessions:
            tab = self.session_tabs.get(sid)
            if tab is not None and sid in self.state.sessions:
                tab.update_session(self.state.sessions[sid])
        self._close_stale_tabs(changes.gone)
        for team, line in changes.team_chat:
            dialog = self.team_chats.get(team)
            if dialog is not None:
                dialog.view.append_line(line)
        if self.state.rep_id in changes.reps:
            self._show_my_status()
        # Handled first (accepted by anyone, left), so a batch's new alerts ring.
        self.alerter.revalidate(self.state)
        for event, queue, row_id, text in alerts_for(self.state, changes, self.alerter.event_for):
            self.alerter.alert(event, queue, row_id, text)

    def _show_my_status(self) -> None:
        index = self.status_combo.findData(self.state.me.status.value)
        if index >= 0:
            self.status_combo.setCurrentIndex(index)
        self.tray.set_status(self.state.me.status.value)
        self._update_backend_label()  # the title shows the status too

    def _refresh_queue_list(self) -> None:
        self.queue_list.set_entries(queue_entries(self.state, set(self.settings.favourites)))

    def _update_progress(self) -> None:
        n = self.state.in_progress()
        self.progress_label.setText(f"{n} session{'s' if n != 1 else ''} in progress")
        if self.queue_list.count():
            self._refresh_queue_list()  # the Personal badge counts sessions too

    def _update_backend_label(self) -> None:
        state, st, where = self.backend.state, self.state, self.backend.where
        name, status = (st.rep_name(st.rep_id), _STATUS_LABELS.get(st.me.status, "")) if st.seq >= 0 else ("", "")
        self.setWindowTitle(window_title(name, where, status))
        self.identity_label.setText(f"{name} on" if name else "")
        self.identity_label.setToolTip(f"Signed in as {name} on {where}" if name else "")
        text, warn = backend_text(self.backend.description, state, filling=self.loading.filling)
        self.backend_label.setText(text)
        theme.set_style(self.backend_label, "color: $warning_text;" if warn else "")

    def _on_backend_state(self, state: BackendState, detail: str) -> None:
        if self.closing:
            return
        self._update_backend_label()
        if state is BackendState.RECONNECTING:
            self._set_stale(detail or "reconnecting…")
        elif state is BackendState.LIVE:
            self._set_stale(None)
        elif state is BackendState.CLOSED and detail:
            self._set_stale(detail)  # e.g. signed out by the server
        self._update_grace()

    def _set_stale(self, reason: str | None) -> None:
        """Grey the queue out while it may not be current."""
        stale = reason is not None
        for tab in self.session_tabs.values():
            tab.set_outage(reason)
        self.stale_label.setText(reason or "")
        self.stale_label.setVisible(stale)
        self.table.setEnabled(not stale)
        self.queue_list.setEnabled(not stale)

    # ------------------------------------------------------------ queues

    def _show_queue(self, key: str, *, force: bool = False) -> None:
        if key == self._queue and not force:
            return
        self._queue = key
        self.queue_title.setText(self.state.queue_name(key))
        self.model.set_rows(list(self.state.rows.get(key, {}).values()))
        self.close_details()
        self.alerter.acknowledge(key)  # the rep sees that queue now

    @property
    def current_queue(self) -> str | None:
        """The queue the table shows (``"search:…"`` while searching), None before the snapshot."""
        return self._queue

    def _row(self, row_id: str) -> Row | None:
        return self.model.row_by_id(row_id)

    def _on_queue_list_queueSelected(self, key: str) -> None:
        if self.search.text():
            self.search.clear()
        self._show_queue(key)

    def _on_queue_list_favouriteToggled(self, team: str, favourite: bool) -> None:
        favourites = [t for t in self.settings.favourites if t != team]
        if favourite:
            favourites.append(team)
        self.settings.favourites = favourites
        try:
            self.settings.save()
        except OSError as exc:
            self.show_notice(f"Could not save favourites: {exc}", error=True)
        self._refresh_queue_list()

    def open_team_chat(self, team: str) -> TeamChatDialog:
        dialog = self.team_chats.get(team)
        if dialog is None:
            from repconsole.ui.teamchat import TeamChatDialog
            dialog = TeamChatDialog(team, self.state, self, enter_sends=lambda: self.settings.preferences.chat.enter_sends)
            wiring.wire_team_chat(self, dialog, team)
            self.team_chats[team] = dialog
        if dialog.isVisible():
            dialog.raise_()
            dialog.activateWindow()
        else:
            dialog.show()  # a newly shown window comes to the front by itself
        return dialog

    def _on_table_detailsToggled(self, row_id: str | None) -> None:
        row = self._row(row_id) if row_id is not None else None
        if row is None:
            self.close_details()
        else:
            self.details.show_row(row)
            self.details.show()

    def close_details(self) -> None:
        self.details.clear()
        self.details.hide()

    def _on_search_textChanged(self, text: str) -> None:
        if text.strip():
            self._search_timer.start()
        elif self._queue is not None and self._queue.startswith(SEARCH_QUEUE):
            self._search_timer.stop()
            self.table.show_column_for_now("queue", False)
            self._show_queue(self.queue_list.current_key() or self.state.personal_queue, force=True)

    def _on_search_acceptRequested(self) -> None:
        if self._search_timer.isActive() or not (self._queue or "").startswith(SEARCH_QUEUE):
            self._search_timer.stop()
            self._run_search()
        row_id = self.table.current_row_id() or next(iter(self.model.row_ids()), None)
        if row_id is not None:
            self.table.select_row_id(row_id)
            self.accept_row(row_id)

    def _on_search_resultsRequested(self) -> None:
        self.table.setFocus()
        if self.table.current_row_id() is None and self.model.rowCount():
            self.table.select_row_id(self.model.row_ids()[0])

    def _on_search_timer_timeout(self) -> None:
        if self.search.text().strip():
            self._run_search()

    def _run_search(self) -> None:
        text = self.search.text().strip()
        rows = search_rows(self.state, text)
        self._queue = SEARCH_QUEUE + text
        self.queue_title.setText(search_title(len(rows)))
        self.table.show_column_for_now("queue", True)  # results come from every queue: say which
        self.model.set_rows(rows)

    def focus_search(self) -> None:
        self.tabs.setCurrentIndex(0)
        self.search.setFocus()
        self.search.selectAll()

    def _on_tick_timeout(self) -> None:
        self.table.tick()
        self._update_grace()

    def _update_grace(self) -> None:
        self.grace_label.setText(grace_text(self.backend, self.state, self.now()))

    # ------------------------------------------------------------ accepting

    def _on_accept_button_clicked(self) -> None:
        row_id = self.table.current_row_id()
        if row_id is None:
            self.show_notice("Select an entry to accept.")
            return
        self.accept_row(row_id)

    def accept_row(self, row_id: str) -> None:
        """Accept the entry ``row_id`` of the visible queue (or switch to its tab)."""
        row = self._row(row_id)
        if row is None:
            return
        self.table.reach_for(row_id)
        sid = row.session.id
        if row.kind is RowKind.MINE:
            tab = self.session_tabs.get(sid)
            if tab is not None:
                self.tabs.setCurrentWidget(tab)
                return
        if row.kind is RowKind.INVITATION and row.invitation is not None:
            self.spawn("Join", self.accept_and_open(self.backend.accept_invitation(row.invitation.id)))
        else:
            self.spawn("Accept", self.accept_and_open(self.backend.accept(sid)))

    def _on_get_next_button_clicked(self) -> None:
        self.spawn("Get Next", self.accept_and_open(self.backend.get_next()))

    async def accept_and_open(self, call: Awaitable[SessionView]) -> None:
        """Await an accept (or join) and open the session's tab in front."""
        session = await call
        # Keep its chat and page; the session itself comes as an event, maybe
        # after this: until then the result is the newest view of it.
        self._open_tab(self.state.adopt(session), focus=True)

    def _open_tab(self, session: SessionView, *, focus: bool) -> SessionTab:
        sid = session.id
        tab = self.session_tabs.get(sid)
        if tab is None:
            # The state's view, unless it does not show the rep in the session
            # yet: a command's result (accept, join) arrives before its event.
            current = self.state.sessions.get(sid)
            shown = current if current is not None and current.involves(self.state.rep_id) else session
            from repconsole.ui.sessiontab import SessionTab
            tab = SessionTab(shown, self.state, clock=self.backend.server_time, settings=self.settings)
            tab.set_outage(self.stale_label.text() or None)  # opened during an outage: it shows at once
            self.session_tabs[sid] = tab
            QTimer.singleShot(0, self._save_settings)  # the open tabs survive a crash (after the focus below)
            index = self.tabs.addTab(tab, tab.title)
            self.tabs.setTabToolTip(index, f"{session.customer_name} — {session.issue or 'no issue given'}")
            wiring.wire_session_tab(self, tab)
        if focus:
            self.tabs.setCurrentWidget(tab)
        self._update_progress()
        return tab

    def _close_stale_tabs(self, gone: dict[str, SessionGoneData]) -> None:
        """Close the tab of every session the rep is no longer working."""
        me = self.state.rep_id
        for sid, tab in list(self.session_tabs.items()):
            s = self.state.sessions.get(sid)
            # A held session keeps its tab (with a Resume button) while it
            # waits in the owner's personal queue.
            if s is not None and s.involves(me):
                continue
            why = close_reason(gone.get(sid), s, self.state)
            self._close_tab(sid)
            self.show_notice(f"The session with {tab.session.customer_name} closed: {why}.")

    def _close_tab(self, sid: str) -> None:
        tab = self.session_tabs.pop(sid, None)
        if tab is not None:
            self.tabs.removeTab(self.tabs.indexOf(tab))
            tab.deleteLater()
            if tab.cobrowse_view is not None:
                self.spawn("Customer's page", wiring.unwatch(self, sid))
        self._update_progress()

    def cycle_tab(self, step: int) -> None:
        if count := self.tabs.count():
            self.tabs.setCurrentIndex((self.tabs.currentIndex() + step) % count)

    def go_to_tab(self, n: int) -> None:
        if n < self.tabs.count():
            self.tabs.setCurrentIndex(n)

    # ------------------------------------------------------------ misc actions

    def _on_status_combo_activated(self, index: int) -> None:
        self.spawn("Status", self.backend.set_status(self.status_combo.itemData(index)))

    def _on_key_button_clicked(self) -> None:
        wiring.ask_session_key(self)

    def open_about(self) -> None:
        from repconsole.ui.about import AboutDialog
        AboutDialog(self, settings_path=self.settings.path).open()

    def _on_banner_showRequested(self) -> None:
        self.tabs.setCurrentIndex(0)
        shown = self.alerter.shown  # never an offer: those are answered in the offer strip
        queue = shown.queue if shown is not None else self.state.personal_queue
        self.queue_list.select(queue)
        self.alerter.acknowledge(queue)

    def open_preferences(self) -> PreferencesDialog:
        from repconsole.ui.prefsdialog import PreferencesDialog
        dialog = PreferencesDialog(self.settings, [(t, self.state.queue_name(f"team:{t}")) for t in self.state.my_teams], self)
        dialog.saveFailed.connect(lambda text: self.show_notice(text, error=True))
        dialog.open()
        return dialog

    def show_notice(self, text: str, *, error: bool = False) -> None:
        """Show ``text`` under the table and in the status bar (``error``: in the error colour)."""
        self.notice = text
        self.notice_label.setText(text)
        theme.set_style(self.notice_label, "color: $error_text;" if error else "color: $notice_text;")
        self.notice_label.show()
        self.statusBar().showMessage(fit_message(self.statusBar(), text, self.progress_label), 10_000)

    # ------------------------------------------------------------ plumbing

    def spawn(self, what: str, coro: Awaitable[Any]) -> None:
        """Run a backend command; a refusal becomes a message, never an exception in Qt."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._on_task_done, what))

    def _on_task_done(self, what: str, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        if isinstance(exc, CommandError):
            message = exc.detail
            if exc.reason is Reason.ALREADY_TAKEN:
                message = f"Already taken by {self.state.rep_name(exc.data.get('by'))}."
            self.show_notice(f"{what}: {message}", error=True)
            self.commandFailed.emit(what, message)
        else:
            log.error("%s failed", what, exc_info=exc)
            self.show_notice(f"{what} failed: {exc}", error=True)
            self.commandFailed.emit(what, str(exc))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table.viewport() and event.type() == QEvent.Type.Paint and self.state.seq >= 0 and not self.loading.filling:
            # Once is all: the viewport's later events need not pass through Python.
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self.firstQueuePainted.emit)
        return super().eventFilter(watched, event)

    def __repr__(self) -> str:
        return f"<MainWindow {__version__} backend={self.backend.kind}>"
