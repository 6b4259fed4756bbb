"""Where the window's parts are connected: its widgets' signals to its slots, a session tab's to the backend.

The window builds its widgets (``MainWindow._build``) and keeps what it
knows (its ``ConsoleState``); the connections live here, in one place, so a
feature adds its wiring without growing mainwindow.py (qutebrowser keeps its
wiring apart the same way).  Each function takes the window and uses only
its public surface: ``spawn`` (run a backend command, its refusal shown),
``show_notice``, ``accept_and_open`` and its widgets.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

from repconsole.backend.cobrowse import CobrowseUpdate, PageBatch
from repconsole.core.errors import CommandError, Reason
from repconsole.protocol import KeyView, RepStatus
from repconsole.ui.focusorder import chain
from repconsole.ui.keydialog import KeyRequestDialog, SessionKeyDialog

if TYPE_CHECKING:
    from repconsole.ui.mainwindow import MainWindow
    from repconsole.ui.sessiontab import SessionTab
    from repconsole.ui.teamchat import TeamChatDialog

__all__ = ["ask_session_key", "unwatch", "wire_cobrowse", "wire_session_tab", "wire_team_chat", "wire_window"]

log = logging.getLogger(__name__)


def wire_window(w: MainWindow) -> None:
    """Connect the Queues tab, the tray, the banner and the status bar (once, after they are built)."""
    w.quit_guard.quitChosen.connect(w._on_quit_guard_quitChosen)
    w.banner.showRequested.connect(w._on_banner_showRequested)
    w.tray.statusRequested.connect(lambda status: w.spawn("Status", w.backend.set_status(RepStatus(status))))
    w.tray.muteRequested.connect(w.alerter.mute)
    w.alerter.muteChanged.connect(w.tray.set_muted)
    w.tray.set_muted(w.alerter.muted_until())
    w.tray.quitRequested.connect(w.quit)

    w.queue_list.queueSelected.connect(w._on_queue_list_queueSelected)
    w.queue_list.favouriteToggled.connect(w._on_queue_list_favouriteToggled)
    w.queue_list.teamChatRequested.connect(w.open_team_chat)
    w.table.acceptRequested.connect(w.accept_row)
    w.table.detailsToggled.connect(w._on_table_detailsToggled)
    w.accept_button.clicked.connect(w._on_accept_button_clicked)
    w.get_next_button.clicked.connect(w._on_get_next_button_clicked)
    w.key_button.clicked.connect(w._on_key_button_clicked)
    w.search.textChanged.connect(w._on_search_textChanged)
    w.search.acceptRequested.connect(w._on_search_acceptRequested)
    w.search.resultsRequested.connect(w._on_search_resultsRequested)
    w.status_combo.activated.connect(w._on_status_combo_activated)
    chain([w.queue_list, w.search, w.table, w.accept_button, w.get_next_button, w.key_button, w.status_combo])


def wire_session_tab(w: MainWindow, tab: SessionTab) -> None:
    """Connect a session tab the window just opened: what the rep does in it goes to the backend."""
    sid = tab.session_id
    tab.sendRequested.connect(lambda text, reps_only: w.spawn("Send", tab.confirming(w.backend.say(sid, text, reps_only=reps_only))))
    tab.transferRequested.connect(lambda target, note, stay: w.spawn("Transfer", w.backend.transfer(sid, target, note, stay=stay)))
    tab.shareRequested.connect(lambda target: w.spawn("Share", w.backend.share(sid, target)))
    tab.holdRequested.connect(lambda: w.spawn("Hold", w.backend.hold(sid)))
    tab.endRequested.connect(lambda: w.spawn("End", w.backend.end(sid)))
    tab.leaveRequested.connect(lambda: w.spawn("Leave", w.backend.leave(sid)))
    tab.resumeRequested.connect(lambda: w.spawn("Resume", w.accept_and_open(w.backend.accept(sid))))
    tab.externalKeyEdited.connect(lambda key: w.spawn("External key", w.backend.set_external_key(sid, key)))
    tab.titleChanged.connect(lambda text: w.tabs.setTabText(w.tabs.indexOf(tab), text))
    w.presence.attach(tab)
    w.snippet_desk.attach(tab)  # "/" in the chat input, the "Still there?" snippet
    if tab.cobrowse_view is not None:
        page = tab.cobrowse_view
        page.pointRequested.connect(lambda x, y: w.spawn("Point", w.backend.cobrowse_point(sid, x, y)))
        page.openRequested.connect(lambda: w.spawn("Open in browser", _open_live_page(w, sid)))
        w.spawn("Customer's page", w.backend.cobrowse_watch(sid))


def wire_team_chat(w: MainWindow, dialog: TeamChatDialog, team: str) -> None:
    """Connect a team chat window the window just made: lines go out, reading marks them read."""

    def on_read_up_to(n: int) -> None:
        chat = w.state.team_chat.get(team)
        if chat is not None and n > chat.last_read:
            w.spawn("mark read", w.backend.team_read(team))

    dialog.view.sendRequested.connect(lambda text: w.spawn("team chat", w.backend.team_say(team, text)))
    dialog.view.readUpTo.connect(on_read_up_to)


# ------------------------------------------------------------ co-browsing


def wire_cobrowse(w: MainWindow) -> None:
    """Co-browse updates go to the open tab of their session's page."""

    def on_update(update: CobrowseUpdate) -> None:
        tab = w.session_tabs.get(update.session)
        if w.closing or tab is None or tab.cobrowse_view is None:
            return
        if isinstance(update, PageBatch):
            tab.cobrowse_view.add_batch(update)
        else:
            tab.cobrowse_view.set_status(update)

    w.backend.add_cobrowse_listener(on_update)


async def unwatch(w: MainWindow, sid: str) -> None:
    """Stop watching a closed tab's page."""
    try:
        await w.backend.cobrowse_unwatch(sid)
    except CommandError as exc:  # the session is over: the server no longer streams it anyway
        log.info("unwatching session %s: %s", sid, exc)


async def _open_live_page(w: MainWindow, sid: str) -> None:
    ticket = await w.backend.cobrowse_ticket(sid)
    url = QUrl(ticket.url)
    if url.scheme() not in ("http", "https"):
        raise CommandError(Reason.INVALID, f"The server gave an address a browser cannot open: {ticket.url[:200]}")
    if not QDesktopServices.openUrl(url):
        raise CommandError(Reason.INVALID, "No web browser could open the customer's page.")


# ------------------------------------------------------------ session keys


def ask_session_key(w: MainWindow) -> None:
    """Ask for a key's lifetime; OK generates one and shows it (``w.key_dialog``)."""
    dialog = KeyRequestDialog(w)
    dialog.accepted.connect(lambda: w.spawn("Session key", _generate_key(w, dialog.seconds())))
    dialog.finished.connect(dialog.deleteLater)
    dialog.open()


async def _generate_key(w: MainWindow, seconds: float) -> None:
    key: KeyView = await w.backend.generate_key(seconds)
    if w.key_dialog is not None:
        w.key_dialog.close()
    w.key_dialog = SessionKeyDialog(key, w.backend.customer_page(key.key), w.now, w, local_offset=w.clock_offset)
    w.key_dialog.open()
