"""Accessible roles Qt leaves as "unknown" on Linux, given a fitting one.

Qt gives a splitter's handle the role Grip, which its AT-SPI bridge has
no word for: a screen reader meets an object of role "unknown" between
the queue list and the table.  A splitter handle is what ARIA calls a
separator (the focusable kind is the window splitter), so that is its
role here.  Installed once, before the first window is built.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAccessible, QAccessibleInterface
from PySide6.QtWidgets import QAccessibleWidget, QSplitterHandle

__all__ = ["install_roles"]

_installed = False


def _factory(key: str, obj: QObject) -> QAccessibleInterface | None:
    if isinstance(obj, QSplitterHandle):
        # Qt takes the interface over (its accessibility cache deletes it with the handle).
        return QAccessibleWidget(obj, QAccessible.Role.Separator)
    return None


def install_roles() -> None:
    """Install the factory (once per process)."""
    global _installed
    if not _installed:
        QAccessible.installFactory(_factory)
        _installed = True
