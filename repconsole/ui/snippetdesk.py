"""The window's part in canned messages (issue 14): the "/" list in each session tab, "Still there?", the manage dialog.

:class:`SnippetDesk` knows the rep's snippets (the personal ones in the
settings, the team ones the backend last heard) and fills placeholders
with a tab's values: {customer} the customer's name, {rep} the rep's
display name, {key} the session key the customer came with (else the
session's id).  The window makes one and calls :meth:`SnippetDesk.attach`
for each session tab it opens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from repconsole.backend.base import Backend
from repconsole.core.state import ConsoleState
from repconsole.protocol import Snippets
from repconsole.settings import Settings
from repconsole.snippets import NUDGE_NAME, Snippet, fill, merged, nudge_text
from repconsole.ui.snippetpopup import SnippetCompleter

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from repconsole.ui.sessiontab import SessionTab
    from repconsole.ui.snippetdialog import SnippetDialog

__all__ = ["SnippetDesk", "tab_values"]


def tab_values(state: ConsoleState, tab: SessionTab) -> dict[str, str]:
    """The placeholders' values in ``tab``'s session."""
    s = tab.session
    return {"customer": s.customer_name, "rep": state.rep_name(state.rep_id), "key": s.session_key or s.id}


class SnippetDesk(QObject):
    """Canned messages for the window's session tabs.

    Signals:
        changed(): the snippets changed (the team's came from the server, or the rep saved a personal one).

    Attributes:
        completers: each open tab's "/" list, by session id.
        dialog: the open manage dialog, or None.
    """

    changed = Signal()

    def __init__(self, backend: Backend, state: ConsoleState, settings: Settings, parent: QWidget) -> None:
        super().__init__(parent)
        self.backend = backend
        self.state = state
        self.settings = settings
        self._parent = parent
        self.completers: dict[str, SnippetCompleter] = {}
        self.dialog: SnippetDialog | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        backend.add_snippet_listener(self._on_backend_snippets)

    # ------------------------------------------------------------ the snippets

    def all(self) -> list[Snippet]:
        teams = {t: self.state.queue_name(f"team:{t}") for t in self.state.my_teams}
        return merged(self.settings.snippets, self.backend.snippets, teams)

    def lead_teams(self) -> list[tuple[str, str]]:
        team = self.backend.snippets
        return [(t, self.state.queue_name(f"team:{t}")) for t in (team.lead_of if team is not None else [])]

    def _on_backend_snippets(self, _snippets: Snippets) -> None:
        self.changed.emit()
        if self.dialog is not None:
            self.dialog.reload()

    # ------------------------------------------------------------ session tabs

    def attach(self, tab: SessionTab) -> SnippetCompleter:
        """Give ``tab``'s chat input its "/" list and its "Still there?" its snippet."""
        completer = SnippetCompleter(tab.input_edit, self.all, lambda: tab_values(self.state, tab), tab)
        completer.problem.connect(lambda text: tab.show_error(text) if text else tab.clear_error())
        self.completers[tab.session_id] = completer
        completer.destroyed.connect(lambda _obj=None, sid=tab.session_id: self.completers.pop(sid, None))
        tab.presence.nudge_text = lambda: self.nudge(tab)
        return completer

    def nudge(self, tab: SessionTab) -> str | None:
        """What "Still there?" sends in ``tab``: the rep's snippet, filled in.

        One with a placeholder this console cannot fill is not sent: it goes into
        the chat input, as written, and the rep is told (None: nothing to send now).
        """
        text, unknown = fill(nudge_text(self.settings.snippets), tab_values(self.state, tab))
        if not unknown:
            return text
        tab.input_edit.setPlainText(text)
        tab.show_error(
            f"Your “{NUDGE_NAME}” snippet has {', '.join(unknown)}, which this console cannot fill: it was not sent. "
            "It is in the message box: fix it and send it, or change the snippet (Console ▸ Canned messages…)."
        )
        return None

    # ------------------------------------------------------------ managing

    def save_personal(self, index: int | None, name: str, text: str) -> None:
        """Add (``index`` None) or replace a personal snippet, and save the settings (OSError if they cannot be)."""
        personal = self.settings.snippets
        if index is None:
            personal.append({"name": name, "text": text})
        else:
            personal[index] = {"name": name, "text": text}
        self.settings.snippets = personal
        self.settings.save()
        self.changed.emit()

    def delete_personal(self, index: int) -> None:
        personal = self.settings.snippets
        del personal[index]
        self.settings.snippets = personal
        self.settings.save()
        self.changed.emit()

    def team_add(self, team: str, name: str, text: str) -> Awaitable[Any]:
        return self.backend.snippet_add(team, name, text)

    def team_edit(self, snippet_id: str, name: str, text: str) -> Awaitable[Any]:
        return self.backend.snippet_edit(snippet_id, name, text)

    def team_delete(self, snippet_id: str) -> Awaitable[Any]:
        return self.backend.snippet_delete(snippet_id)

    def run(self, coro: Awaitable[Any], done: Callable[[BaseException | None], None]) -> None:
        """Run a snippet command; ``done(error or None)`` when it ends (never raises into Qt)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def finished(t: asyncio.Future[Any]) -> None:
            self._tasks.discard(t)
            done(None if t.cancelled() else t.exception())

        task.add_done_callback(finished)

    def open_manager(self) -> SnippetDialog:
        """Console ▸ Canned messages…: the manage dialog (one at a time)."""
        from repconsole.ui.snippetdialog import SnippetDialog

        if self.dialog is None:
            self.dialog = SnippetDialog(self, self.run, self._parent)
            self.dialog.finished.connect(self._on_dialog_finished)
        if self.dialog.isVisible():
            self.dialog.raise_()
            self.dialog.activateWindow()
        else:
            self.dialog.show()  # a newly shown window comes to the front by itself
        return self.dialog

    def _on_dialog_finished(self, _result: int) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None
