"""TeamChatView and TeamChatDialog, fed from a real engine through a rep feed."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from typing import Any

import pytest
from PySide6.QtCore import Qt

from repconsole.backend.simulator import SimulatorBackend
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.feed import FeedBatch, RepFeed
from repconsole.core.state import ConsoleState
from repconsole.protocol import LineView
from repconsole.ui.teamchat import TeamChatDialog, TeamChatView
from repconsole.ui.widgets import clock_time


class Console:
    """A ConsoleState kept current from the engine, as the window keeps it."""

    def __init__(self, engine: QueueEngine, rep: str = "me") -> None:
        self.feed = RepFeed(rep)
        self.state = ConsoleState()
        self.state.apply(self.feed.snapshot(engine))
        engine.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.feed.project(event)

    def sync(self) -> list[tuple[str, LineView]]:
        """Apply what happened since the last sync; returns the new team chat lines."""
        batch = self.feed.take()
        return self.state.apply(batch if batch is not None else FeedBatch(prev=self.state.seq)).team_chat


@pytest.fixture
def engine() -> QueueEngine:
    return SimulatorBackend(tick=0, population=0, seed=1).engine


@pytest.fixture
def console(engine: QueueEngine) -> Console:
    engine.team_say("priya", "network", "Heads up: the Frankfurt VPN gateway is flaky.")
    engine.team_say("me", "network", "Thanks, noted.")
    engine.team_say("sven", "network", "Anyone free for an escalated call?")
    engine.team_read("me", "network", 2)
    return Console(engine)


def make_view(qtbot: Any, console: Console) -> TeamChatView:
    view = TeamChatView("network", console.state)
    qtbot.addWidget(view)
    return view


def test_shows_the_teams_lines_with_names_and_times(qtbot: Any, engine: QueueEngine, console: Console) -> None:
    view = make_view(qtbot, console)
    text = view.chat_view.toPlainText()
    assert "Priya Raman:  Heads up: the Frankfurt VPN gateway is flaky." in text
    assert "Alex Morgan:  Thanks, noted." in text
    assert "Sven Lindqvist:  Anyone free for an escalated call?" in text
    for line in console.state.team_chat["network"].lines:
        assert clock_time(line.at) in text
    # Line 3 is the first unread one: the view marks where reading resumes.
    assert text.index("Thanks, noted.") < text.index("New messages") < text.index("Anyone free")
    assert view.title_label.text() == "Networking"
    assert "4 members" in view.members_label.text()


def test_append_line_adds_once(qtbot: Any, engine: QueueEngine, console: Console) -> None:
    view = make_view(qtbot, console)
    engine.team_say("tom", "network", "Printer driver 4.2 fixes it, FYI.")
    (team, line), = console.sync()
    assert team == "network"
    assert view.append_line(line) is True
    assert view.append_line(line) is False
    assert view.chat_view.toPlainText().count("Printer driver 4.2") == 1


def test_reload_redraws_from_state(qtbot: Any, engine: QueueEngine, console: Console) -> None:
    view = make_view(qtbot, console)
    engine.team_say("tom", "network", "Back in five.")
    console.sync()
    assert "Back in five." not in view.chat_view.toPlainText()
    view.reload()
    assert "Back in five." in view.chat_view.toPlainText()
    assert view.chat_view.line_count() == 4


def test_read_is_reported_only_while_on_screen(qtbot: Any, engine: QueueEngine, console: Console) -> None:
    view = make_view(qtbot, console)
    with qtbot.assertNotEmitted(view.readUpTo):
        engine.team_say("tom", "network", "Queue's getting long.")
        (_, line), = console.sync()
        view.append_line(line)  # hidden: nothing read yet

    with qtbot.waitSignal(view.readUpTo, timeout=1000) as blocker:
        view.show()
    assert blocker.args == [4]

    # The window sends team_read; the state catches up.
    engine.team_read("me", "network", 4)
    console.sync()
    with qtbot.assertNotEmitted(view.readUpTo):
        view.hide()
        view.show()

    engine.team_say("sven", "network", "Got it.")
    (_, line), = console.sync()
    with qtbot.waitSignal(view.readUpTo, timeout=1000) as blocker:
        view.append_line(line)
    assert blocker.args == [5]


def test_own_lines_are_already_read(qtbot: Any, engine: QueueEngine, console: Console) -> None:
    view = make_view(qtbot, console)
    engine.team_read("me", "network")
    console.sync()
    view.show()
    engine.team_say("me", "network", "I'll take it.")
    (_, line), = console.sync()
    with qtbot.assertNotEmitted(view.readUpTo):
        view.append_line(line)


def test_send_emits_and_clears(qtbot: Any, console: Console) -> None:
    view = make_view(qtbot, console)
    qtbot.keyClicks(view.input_edit, "  On it  ")
    with qtbot.waitSignal(view.sendRequested, timeout=1000) as blocker:
        qtbot.keyClick(view.input_edit, Qt.Key.Key_Return)
    assert blocker.args == ["On it"]
    assert view.input_edit.text() == ""
    with qtbot.assertNotEmitted(view.sendRequested):
        qtbot.keyClick(view.input_edit, Qt.Key.Key_Return)
        qtbot.keyClicks(view.input_edit, "   ")
        qtbot.mouseClick(view.send_button, Qt.MouseButton.LeftButton)


def test_the_team_chat_follows_the_enter_sends_preference(qtbot: Any, console: Console) -> None:
    enter_sends = [False]
    dialog = TeamChatDialog("network", console.state, enter_sends=lambda: enter_sends[0])
    qtbot.addWidget(dialog)
    view = dialog.view
    qtbot.keyClicks(view.input_edit, "two")
    with qtbot.assertNotEmitted(view.sendRequested):
        qtbot.keyClick(view.input_edit, Qt.Key.Key_Return)
    qtbot.keyClicks(view.input_edit, "lines")
    with qtbot.waitSignal(view.sendRequested, timeout=1000) as blocker:
        qtbot.keyClick(view.input_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert blocker.args == ["two\nlines"]


def test_dialog_is_titled_and_non_modal(qtbot: Any, console: Console) -> None:
    dialog = TeamChatDialog("network", console.state)
    qtbot.addWidget(dialog)
    assert dialog.windowTitle() == "Team chat — Networking"
    assert not dialog.isModal()
    with qtbot.waitSignal(dialog.view.readUpTo, timeout=1000) as blocker:
        dialog.show()
    assert blocker.args == [3]
    dialog.view.show_error("Could not send: connection lost.")
    assert not dialog.view.error_label.isHidden()
