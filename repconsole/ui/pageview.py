"""The customer's web page in a browser-sharing session, drawn and never navigated."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QFrame, QTextBrowser, QWidget

__all__ = ["PageView", "visible_controls"]


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

    def loadResource(self, type: int, name: QUrl | str) -> Any:
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
