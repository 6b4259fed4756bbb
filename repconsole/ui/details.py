"""The details pane: everything known about one queue entry.

It shows the intake fields, how the customer started the session, and a
timeline of every queue the session has been through.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QTextBrowser, QVBoxLayout, QWidget

from repconsole.core.state import ConsoleState, Row, RowKind
from repconsole.protocol import BROWSER_PREFIX, StepKind
from repconsole.ui import theme
from repconsole.ui.accessible import quiet_viewport
from repconsole.ui.theme import Role
from repconsole.ui.widgets import clock_time

__all__ = ["DetailsPane"]

_STEP_LABELS: dict[StepKind, str] = {
    StepKind.ARRIVED: "Arrived in",
    StepKind.ACCEPTED: "Accepted by",
    StepKind.TRANSFERRED: "Transferred to",
    StepKind.RULE_OVERDUE: "Marked overdue in",
    StepKind.RULE_TRANSFERRED: "Moved by waiting rule to",
    StepKind.CONNECTION_LOST: "Fallback (rep lost connection) to",
    StepKind.HELD: "Put on hold in",
    StepKind.SHARED: "Shared with",
    StepKind.JOINED: "Joined by",
    StepKind.LEFT: "Left by",
    StepKind.ENDED: "Ended",
}
# Steps that name who acted rather than the queue.
_STEPS_BY_WHOM = frozenset({StepKind.ACCEPTED, StepKind.JOINED, StepKind.LEFT})


class DetailsPane(QFrame):
    """Intake fields, origin and queue timeline of the selected entry.

    Attributes:
        row_id: the row shown, or None when the pane is empty.
    """

    def __init__(self, state: ConsoleState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self.row_id: str | None = None
        self._row: Row | None = None
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumWidth(260)
        self._title = QLabel()
        self._title.setTextFormat(Qt.TextFormat.RichText)
        self._title.setWordWrap(True)
        self._body = QTextBrowser()
        self._body.setOpenLinks(False)
        quiet_viewport(self._body)
        self._body.setFrameShape(QFrame.Shape.NoFrame)
        self._body.setAccessibleName("Session details")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addWidget(self._title)
        layout.addWidget(self._body, 1)
        theme.controller().changed.connect(self._on_theme_changed)

    def show_row(self, row: Row) -> None:
        self.row_id = row.id
        self._row = row
        s = row.session
        name = html.escape(s.customer_name)
        prefix = f'<span style="color:{theme.css(Role.ACCENT_TEXT)}">{html.escape(BROWSER_PREFIX.strip())}</span> ' if s.browser else ""
        self._title.setText(f'<div style="font-size:15px;font-weight:600">{prefix}{name}</div>'
                            f'<div style="color:{theme.css(Role.SECONDARY_TEXT)}">{html.escape(s.company or "No company given")}</div>')
        self._body.setHtml(self._render(row))

    def refresh(self, row: Row) -> None:
        """Re-render if ``row`` is the one shown (its session changed)."""
        if row.id == self.row_id:
            self.show_row(row)

    def clear(self) -> None:
        self.row_id = None
        self._row = None
        self._title.clear()
        self._body.clear()

    def _on_theme_changed(self, dark: bool) -> None:
        if self._row is not None:
            self.show_row(self._row)  # the HTML holds the old scheme's colours

    def _render(self, row: Row) -> str:
        secondary = theme.css(Role.SECONDARY_TEXT)
        s = row.session
        st = self._state
        fields: list[tuple[str, Any]] = []
        if row.kind is RowKind.INVITATION and row.invitation is not None:
            fields.append(("Invitation", f"from {st.rep_name(row.invitation.by)} to join {st.rep_name(s.owner)}'s session"))
        fields += [
            ("Origin", s.origin.label + (f" — {s.source}" if s.source else "")),
            ("Issue", s.issue),
            ("Category", s.category),
            ("Priority", s.priority.label),
            ("Details", s.details),
            ("Company code", s.company_code),
            ("Platform", s.platform),
            ("Locale", s.locale),
            ("Portal", s.portal),
            ("External key", s.external_key),
            ("Session key", s.session_key),
            ("Page", s.page_url),
            ("Owner", st.rep_name(s.owner)),
            ("Participants", ", ".join(st.rep_name(p) for p in s.participants)),
            ("Transfer note", s.transfer_note),
            ("Arrived", clock_time(s.created_at)),
        ]
        fields += [(k, v) for k, v in sorted(s.custom_fields.items())]
        rows = "".join(
            f'<tr><td style="color:{secondary};padding-right:10px;white-space:nowrap">{html.escape(k)}</td>'
            f"<td>{html.escape(str(v))}</td></tr>"
            for k, v in fields
            if v not in ("", None)
        )
        steps = []
        for step in s.timeline:
            label = _STEP_LABELS.get(step.kind, step.kind)
            where = st.queue_name(step.queue) if step.queue else ""
            who = st.rep_name(step.by) if step.by else ""
            target = where if step.queue and step.kind not in _STEPS_BY_WHOM else who
            extra = f" by {html.escape(who)}" if who and target != who else ""
            note = f'<br><span style="color:{secondary}">{html.escape(step.note)}</span>' if step.note else ""
            steps.append(
                f'<tr><td style="color:{secondary};padding-right:10px">{clock_time(step.at)}</td>'
                f"<td>{html.escape(label)} <b>{html.escape(target)}</b>{extra}{note}</td></tr>"
            )
        return (
            f"<table cellspacing=2>{rows}</table>"
            '<h4 style="margin-top:14px;margin-bottom:4px">Queue timeline</h4>'
            f"<table cellspacing=2>{''.join(steps)}</table>"
        )
