"""The window's menus as data: every action, its shortcut and what it runs.

Kept as a table so that one place says which keys the console answers to:
the window builds its menu bar from :data:`MENUS`, and a test checks that
README's key list names every shortcut here (a rep who cannot use a mouse
reads it there).

A command names a method of the window (or of one of its widgets, dotted:
``"table.setFocus"``), called with the item's arguments.  The table stays plain data; :func:`build_menus` resolves the
names and fails loudly on a name the window does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow

__all__ = ["MENUS", "SEPARATOR", "TAB_KEYS", "MenuItem", "build_menus", "shortcut_text"]


@dataclass(frozen=True, slots=True)
class MenuItem:
    """One action: its text (with its ``&`` mnemonic), its shortcut, the window's method it calls."""

    text: str
    shortcut: str | QKeySequence.StandardKey | None
    command: str
    args: tuple[object, ...] = ()


SEPARATOR = None

MENUS: tuple[tuple[str, tuple[MenuItem | None, ...]], ...] = (
    ("&Console", (
        MenuItem("&Search active sessions", QKeySequence.StandardKey.Find, "focus_search"),
        MenuItem("Focus &queue list", "Ctrl+1", "queue_list.setFocus"),
        MenuItem("Focus queue &table", "Ctrl+2", "table.setFocus"),
        SEPARATOR,
        MenuItem("&Preferences…", "Ctrl+,", "open_preferences"),
        MenuItem("Canned &messages…", "Ctrl+Shift+M", "snippet_desk.open_manager"),
        SEPARATOR,
        MenuItem("&Quit", "Ctrl+Q", "quit"),
    )),
    ("&Session", (
        MenuItem("&Accept selected", "Ctrl+Return", "_on_accept_button_clicked"),
        MenuItem("Get &Next", "Ctrl+G", "_on_get_next_button_clicked"),
        MenuItem("Generate session &key…", "Ctrl+K", "_on_key_button_clicked"),
        SEPARATOR,
        MenuItem("Accept &offer", "Ctrl+Shift+A", "offers.accept"),
        MenuItem("&Decline offer", "Ctrl+Shift+D", "offers.decline"),
        MenuItem("&Pause offers…", "Ctrl+Shift+O", "offers.ask_pause"),
        MenuItem("&Take offers again", "Ctrl+Shift+T", "offers.pause", (0,)),
    )),
    ("&View", (
        MenuItem("&Queues tab", "Alt+0", "tabs.setCurrentIndex", (0,)),
        MenuItem("&Next tab", "Ctrl+PgDown", "cycle_tab", (1,)),
        MenuItem("&Previous tab", "Ctrl+PgUp", "cycle_tab", (-1,)),
        MenuItem("Close &details pane", "Esc", "close_details"),
    )),
    # Headers take no keyboard focus: sorting from the keyboard is here.  Again on the
    # column the table is sorted by reverses the order; the new order is announced.
    ("S&ort", (
        MenuItem("By &customer", "Ctrl+Shift+C", "table.sort_from_keyboard", ("customer",)),
        MenuItem("By &waiting time", "Ctrl+Shift+W", "table.sort_from_keyboard", ("waited",)),
        MenuItem("By time &left", "Ctrl+Shift+L", "table.sort_from_keyboard", ("time_left",)),
        MenuItem("By &priority", "Ctrl+Shift+P", "table.sort_from_keyboard", ("priority",)),
        MenuItem("By &status", "Ctrl+Shift+S", "table.sort_from_keyboard", ("status",)),
        SEPARATOR,
        MenuItem("&Reverse order", "Ctrl+Shift+R", "table.reverse_sort"),
    )),
    ("&Help", (
        MenuItem("&About repconsole", None, "open_about"),
    )),
)  # fmt: skip

# Alt+1 … Alt+9 go to the session tabs; window-wide actions, not menu entries.
TAB_KEYS = tuple(MenuItem(f"Session tab {n}", f"Alt+{n}", "go_to_tab", (n,)) for n in range(1, 10))


def shortcut_text(item: MenuItem) -> str:
    """The shortcut as this platform spells it ("Ctrl+F"), or "" for none."""
    if item.shortcut is None:
        return ""
    return QKeySequence(item.shortcut).toString(QKeySequence.SequenceFormat.PortableText)


def _command(window: QMainWindow, item: MenuItem) -> Callable[[], object]:
    method: object = window
    for name in item.command.split("."):
        method = getattr(method, name, None)
    if not callable(method):
        raise AttributeError(f"menu item {item.text!r}: the window has no method {item.command!r}")
    args = item.args
    return lambda: method(*args)


def _action(window: QMainWindow, item: MenuItem) -> QAction:
    act = QAction(item.text, window)
    if item.shortcut is not None:
        act.setShortcut(QKeySequence(item.shortcut))
    command = _command(window, item)
    act.triggered.connect(lambda _checked=False: command())
    return act


def build_menus(window: QMainWindow) -> dict[str, QAction]:
    """Fill ``window``'s menu bar from :data:`MENUS`; returns the actions by command and arguments."""
    actions: dict[str, QAction] = {}
    bar = window.menuBar()
    for title, items in MENUS:
        menu = bar.addMenu(title)
        for item in items:
            if item is None:
                menu.addSeparator()
                continue
            act = _action(window, item)
            menu.addAction(act)
            actions[item.text] = act
    for item in TAB_KEYS:
        act = _action(window, item)
        window.addAction(act)
        actions[item.text] = act
    return actions
