"""The menus as data: every command resolves, every shortcut is in README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMainWindow

from repconsole.ui.menus import MENUS, TAB_KEYS, MenuItem, build_menus, shortcut_text

README = Path(__file__).resolve().parents[1] / "README.md"


def _items() -> list[MenuItem]:
    return [item for _, items in MENUS for item in items if item is not None]


def test_readme_lists_every_menu_shortcut(qapp) -> None:  # type: ignore[no-untyped-def]
    keys_table = README.read_text(encoding="utf-8").split("| keys | action |", 1)[1].split("\n\n", 1)[0]
    listed = {k.strip() for row in keys_table.splitlines()[2:] for k in re.split(r"(?<!\+)[,/]\s", row.split("|")[1])}
    missing = [f"{item.text}: {shortcut_text(item)}" for item in _items() if shortcut_text(item) and shortcut_text(item) not in listed]
    assert missing == []
    assert "Alt+0, Alt+1…9" in keys_table and len(TAB_KEYS) == 9


def test_every_action_but_about_has_a_shortcut_and_none_is_taken_twice(qapp) -> None:  # type: ignore[no-untyped-def]
    shortcuts = [shortcut_text(item) for item in [*_items(), *TAB_KEYS]]
    assert [item.text for item in _items() if not shortcut_text(item)] == ["&About repconsole"]
    taken = [s for s in shortcuts if s]
    assert len(taken) == len(set(taken))


def test_a_command_the_window_does_not_have_fails_loudly(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = QMainWindow()
    qtbot.addWidget(window)
    with pytest.raises(AttributeError, match="focus_search"):
        build_menus(window)
