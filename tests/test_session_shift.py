"""A rep's shift in a session tab (issue 11): End and Leave ask first, the
outage shows in the tab with pending lines, the chat input is multi-line and
never cuts, a transfer to a rep in the session keeps their tab, and every
tab that closes says why."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import timeout
from PySide6.QtCore import Qt
from test_console import Console, open_console

from repconsole.backend.base import BackendState
from repconsole.backend.simulator import SimulatorBackend
from repconsole.backend.world import ME
from repconsole.core.engine import CHAT_LIMIT, QueueEngine
from repconsole.core.feed import RepFeed
from repconsole.core.intake import Intake
from repconsole.core.model import QueueRef, Session, SessionState
from repconsole.core.state import ConsoleState
from repconsole.protocol import GoneReason, LineView, SessionGoneData, Visibility
from repconsole.settings import Settings
from repconsole.ui.chatinput import COUNT_FROM, ChatInput
from repconsole.ui.closereason import close_reason
from repconsole.ui.sessiontab import SessionTab

SHOTS = Path(os.environ.get("SCREENSHOT_DIR", "/tmp"))


@pytest.fixture
def engine() -> QueueEngine:
    return SimulatorBackend(tick=0, population=0, seed=1).engine


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(tmp_path / "settings")


def state_of(engine: QueueEngine, rep: str = "me") -> ConsoleState:
    state = ConsoleState()
    state.apply(RepFeed(rep).snapshot(engine))
    return state


def make_tab(qtbot: Any, engine: QueueEngine, s: Session, settings: Settings | None = None) -> SessionTab:
    state = state_of(engine)
    tab = SessionTab(state.adopt(s.view(chat=True)), state, settings=settings)
    qtbot.addWidget(tab)
    tab.resize(1100, 650)
    return tab


@pytest.fixture
def owned(engine: QueueEngine) -> Session:
    s = engine.start_with_issue("vpn", Intake("Sam Lee"))
    engine.accept("me", s.id)
    engine.customer_say(s.id, "My VPN drops every ten minutes")
    return s


@pytest.fixture
def shared(engine: QueueEngine) -> Session:
    s = engine.start_with_issue("vpn", Intake("Sam Lee"))
    engine.accept("priya", s.id)
    engine.accept_invitation("me", engine.share("priya", s.id, QueueRef.personal("me")).id)
    return s


# ------------------------------------------------------------ confirmations


def test_end_asks_first_and_cancel_keeps_the_session(qtbot: Any, engine: QueueEngine, owned: Session, settings: Settings) -> None:
    tab = make_tab(qtbot, engine, owned, settings)
    tab.show()
    with qtbot.assertNotEmitted(tab.endRequested):
        tab.end_button.click()
        dialog = tab.confirm_dialog
        assert dialog is not None and dialog.isVisible()
        assert dialog.question_label.text() == "End the session with Sam Lee?"
        assert "The customer will be disconnected" in dialog.detail_label.text()
        assert dialog.cancel_button.isDefault(), "Enter must not end the session"
        dialog.grab().save(str(SHOTS / "s11_confirm_end.png"))
        dialog.cancel_button.click()
    assert tab.confirm_dialog is None
    # Asked again next time, and confirming ends it.
    tab.end_button.click()
    assert tab.confirm_dialog is not None
    with qtbot.waitSignal(tab.endRequested, timeout=1000):
        tab.confirm_dialog.confirm_button.click()
    assert settings.preferences.confirm.end_session is True


def test_dont_ask_again_is_saved_and_then_end_acts_at_once(qtbot: Any, engine: QueueEngine, owned: Session, settings: Settings) -> None:
    tab = make_tab(qtbot, engine, owned, settings)
    tab.end_button.click()
    assert tab.confirm_dialog is not None
    tab.confirm_dialog.dont_ask_check.setChecked(True)
    with qtbot.waitSignal(tab.endRequested, timeout=1000):
        tab.confirm_dialog.confirm_button.click()
    assert settings.preferences.confirm.end_session is False
    assert Settings.load(settings.directory)[0].preferences.confirm.end_session is False, "written to the file"
    with qtbot.waitSignal(tab.endRequested, timeout=1000):
        tab.end_button.click()
    assert tab.confirm_dialog is None
    # Turned on again (the Preferences dialog's job): it asks again, at once.
    settings.preferences.confirm.end_session = True
    tab.end_button.click()
    assert tab.confirm_dialog is not None


def test_dont_ask_again_with_cancel_changes_nothing(qtbot: Any, engine: QueueEngine, owned: Session, settings: Settings) -> None:
    tab = make_tab(qtbot, engine, owned, settings)
    tab.end_button.click()
    assert tab.confirm_dialog is not None
    tab.confirm_dialog.dont_ask_check.setChecked(True)
    tab.confirm_dialog.reject()
    assert settings.preferences.confirm.end_session is True


def test_leave_asks_with_its_own_preference(qtbot: Any, engine: QueueEngine, shared: Session, settings: Settings) -> None:
    tab = make_tab(qtbot, engine, shared, settings)
    tab.leave_button.click()
    dialog = tab.confirm_dialog
    assert dialog is not None and dialog.question_label.text() == "Leave the session with Sam Lee?"
    dialog.dont_ask_check.setChecked(True)
    with qtbot.waitSignal(tab.leaveRequested, timeout=1000):
        dialog.confirm_button.click()
    assert (settings.preferences.confirm.leave_session, settings.preferences.confirm.end_session) == (False, True)


def test_end_confirmed_after_the_session_changed_hands_does_nothing(qtbot: Any, engine: QueueEngine, owned: Session, settings: Settings) -> None:
    tab = make_tab(qtbot, engine, owned, settings)
    tab.end_button.click()
    engine.transfer("me", owned.id, QueueRef.team("network"))
    tab.update_session(owned.view())
    assert tab.confirm_dialog is not None
    with qtbot.assertNotEmitted(tab.endRequested):
        tab.confirm_dialog.confirm_button.click()


# --------------------------------------------------------- pending and outage


def said(engine: QueueEngine, s: Session, text: str, **kw: Any) -> LineView:
    return engine.say("me", s.id, text, **kw).view()


async def _returns(line: LineView) -> LineView:
    return line


async def _refused() -> LineView:
    raise RuntimeError("refused")


def test_a_sent_line_is_pending_until_its_result_confirms_it(qtbot: Any, aloop: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.input_edit.setText("Try the other gateway")
    with qtbot.waitSignal(tab.sendRequested, timeout=1000):
        tab.chat_input.send_button.click()
    assert tab.chat_view.pending_texts() == ["Try the other gateway"]
    lines = tab.chat_view.line_count()
    task = asyncio.ensure_future(tab.confirming(_returns(said(engine, owned, "Try the other gateway"))))
    qtbot.waitUntil(task.done, timeout=timeout(2))
    assert tab.chat_view.pending_texts() == [] and tab.chat_view.line_count() == lines + 1
    # Its chat event comes after: shown once.
    assert tab.append_chat(task.result()) is False
    assert tab.chat_view.toPlainText().count("Try the other gateway") == 1


def test_a_pending_line_confirmed_by_its_chat_event_first_is_shown_once(qtbot: Any, aloop: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.chat_input.input_edit.setText("Reps: it's the gateway")
    tab.reps_only_check.setChecked(True)
    tab.chat_input.send_button.click()
    line = said(engine, owned, "Reps: it's the gateway", reps_only=True)
    assert line.visibility is Visibility.REPS
    assert tab.append_chat(line) is True
    assert tab.chat_view.pending_texts() == []
    task = asyncio.ensure_future(tab.confirming(_returns(line)))
    qtbot.waitUntil(task.done, timeout=timeout(2))
    assert tab.chat_view.toPlainText().count("Reps: it's the gateway") == 1


def test_a_refused_line_leaves_the_chat_and_goes_back_to_the_input(qtbot: Any, aloop: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.input_edit.setText("Never lost")
    tab.chat_input.send_button.click()
    assert tab.input_edit.text() == "" and tab.chat_view.pending_texts() == ["Never lost"]
    task = asyncio.ensure_future(tab.confirming(_refused()))
    qtbot.waitUntil(task.done, timeout=timeout(2))
    assert isinstance(task.exception(), RuntimeError)
    assert tab.chat_view.pending_texts() == [] and tab.input_edit.text() == "Never lost"


def test_the_outage_banner_shows_in_the_tab_with_the_pending_lines(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.show()
    assert not tab.outage_banner.isVisible()
    tab.set_outage("reconnecting…")
    assert tab.outage_banner.isVisible() and "Not connected to the server (reconnecting…)" in tab.outage_banner.text()
    for text in ("Are you still there?", "I'll check the gateway logs\nand come back to you"):
        tab.input_edit.setText(text)
        tab.chat_input.send_button.click()
    assert tab.chat_view.pending_texts() == ["Are you still there?", "I'll check the gateway logs\nand come back to you"]
    assert len(tab.pending) == 2
    tab.grab().save(str(SHOTS / "s11_outage_tab.png"))
    tab.set_outage(None)
    assert not tab.outage_banner.isVisible()
    assert len(tab.pending) == 2, "lines stay pending until the server confirms them, not until the reconnect"


# ------------------------------------------------------------------ chat input


def test_enter_sends_and_shift_enter_adds_a_line(qtbot: Any) -> None:
    enter_sends = [True]
    box = ChatInput(enter_sends=lambda: enter_sends[0])
    qtbot.addWidget(box)
    qtbot.keyClicks(box.input_edit, "first line")
    qtbot.keyClick(box.input_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(box.input_edit, "second line")
    assert box.input_edit.text() == "first line\nsecond line"
    with qtbot.waitSignal(box.submitted, timeout=1000) as sent:
        qtbot.keyClick(box.input_edit, Qt.Key.Key_Return)
    assert sent.args == ["first line\nsecond line"] and box.input_edit.text() == ""
    # The opposite, by preference: read at the key press, so it applies at once.
    enter_sends[0] = False
    qtbot.keyClicks(box.input_edit, "a")
    with qtbot.assertNotEmitted(box.submitted):
        qtbot.keyClick(box.input_edit, Qt.Key.Key_Return)
    qtbot.keyClicks(box.input_edit, "b")
    assert box.input_edit.text() == "a\nb"
    with qtbot.waitSignal(box.submitted, timeout=1000) as sent:
        qtbot.keyClick(box.input_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert sent.args == ["a\nb"]
    qtbot.keyClicks(box.input_edit, "c")
    with qtbot.waitSignal(box.submitted, timeout=1000):
        qtbot.keyClick(box.input_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def test_the_tab_reads_enter_sends_from_the_preferences(qtbot: Any, engine: QueueEngine, owned: Session, settings: Settings) -> None:
    settings.preferences.chat.enter_sends = False
    tab = make_tab(qtbot, engine, owned, settings)
    qtbot.keyClicks(tab.input_edit, "x")
    with qtbot.assertNotEmitted(tab.sendRequested):
        qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return)
    assert tab.input_edit.text() == "x\n"


def test_the_count_shows_near_the_limit_and_over_it_nothing_is_cut_or_sent(qtbot: Any) -> None:
    box = ChatInput()
    qtbot.addWidget(box)
    box.input_edit.setText("x" * (COUNT_FROM - 1))
    assert not box.count_label.isVisibleTo(box)
    box.input_edit.setText("x" * CHAT_LIMIT)
    assert box.count_label.isVisibleTo(box) and box.count_label.text() == "4,000 / 4,000"
    assert box.send_button.isEnabled()
    too_long = "y" * (CHAT_LIMIT + 12)
    box.input_edit.setText(too_long)
    assert box.input_edit.text() == too_long, "never cut"
    assert "12 too many" in box.count_label.text() and not box.send_button.isEnabled()
    with qtbot.assertNotEmitted(box.submitted):
        qtbot.keyClick(box.input_edit, Qt.Key.Key_Return)
        box.send_button.click()
    assert box.input_edit.text() == too_long
    # Shortened, it goes; and Send stays off while the owner says so.
    box.input_edit.setText("y" * CHAT_LIMIT)
    assert box.send_button.isEnabled()
    box.set_sendable(False)
    assert not box.send_button.isEnabled()


# --------------------------------------------------------------- close reasons


@pytest.mark.parametrize(
    ("gone", "expected"),
    [
        (SessionGoneData("S1", GoneReason.ENDED, detail="customer left"), "ended by the customer"),
        (SessionGoneData("S1", GoneReason.ENDED, detail="customer disconnected"), "the customer was disconnected"),
        (SessionGoneData("S1", GoneReason.ENDED, detail="ended by Priya Raman"), "ended by Priya Raman"),
        (SessionGoneData("S1", GoneReason.TRANSFERRED, by="me", to="rep:priya"), "transferred to Priya Raman"),
        (SessionGoneData("S1", GoneReason.TRANSFERRED, by="me", to="team:network"), "transferred to Networking"),
        (SessionGoneData("S1", GoneReason.LEFT, by="me"), "you left"),
        (SessionGoneData("S1", GoneReason.TAKEN, by="priya"), "taken by Priya Raman"),
    ],
)
def test_close_reasons_are_words(engine: QueueEngine, gone: SessionGoneData, expected: str) -> None:
    assert close_reason(gone, None, state_of(engine)) == expected


def test_ended_by_me_reads_ended_by_you(engine: QueueEngine) -> None:
    state = state_of(engine)
    me = state.rep_name(state.rep_id)
    assert close_reason(SessionGoneData("S1", GoneReason.ENDED, detail=f"ended by {me}"), None, state) == "ended by you"


# ----------------------------------------------------------- the whole window


@pytest.fixture
def console(qtbot: Any, aloop: Any, tmp_path: Path) -> Iterator[Console]:
    c = open_console(qtbot, tmp_path / "settings")
    yield c
    c.close()


def _accept_one(c: Console) -> tuple[Session, SessionTab]:
    s = c.engine.start_with_issue("vpn", Intake("Sam Lee"))
    c.settle()
    c.show_queue("team:network")
    c.window.accept_row(s.id)
    return s, c.wait_tab(s.id)


def test_a_transfer_to_me_while_i_am_in_the_session_keeps_my_tab_and_the_note(console: Console) -> None:
    e = console.engine
    s = e.start_with_issue("vpn", Intake("Sam Lee"))
    e.accept("priya", s.id)
    inv = e.share("priya", s.id, QueueRef.personal(ME))
    console.settle()
    console.show_queue(f"rep:{ME}")
    console.window.accept_row(inv.id)
    tab = console.wait_tab(s.id)
    assert tab.is_participant()
    e.transfer("priya", s.id, QueueRef.personal(ME), "Gateway issue, yours now")
    console.settle()
    console.qtbot.waitUntil(tab.is_owner, timeout=timeout(2))
    assert console.window.session_tabs[s.id] is tab
    assert "Gateway issue, yours now" in tab.note_label.text() and tab.note_frame.isVisible()
    assert "You are now with" in tab.chat_view.toPlainText()
    assert console.window.alerter.pending, "a transfer alerts the receiver"


def test_tabs_that_close_say_why(console: Console) -> None:
    e = console.engine
    s, tab = _accept_one(console)
    e.customer_leave(s.id)
    console.settle()
    assert s.id not in console.window.session_tabs
    assert console.window.notice == "The session with Sam Lee closed: ended by the customer."

    s, tab = _accept_one(console)
    tab.transfer_button.click()
    assert tab.picker is not None and tab.picker.select_target("rep:priya")
    tab.picker.accept()
    console.qtbot.waitUntil(lambda: e.session(s.id).queue == QueueRef.personal("priya"), timeout=timeout(3))
    console.settle()
    assert console.window.notice == "The session with Sam Lee closed: transferred to Priya Raman."

    s, tab = _accept_one(console)
    e.customer_leave(s.id, disconnected=True)
    console.settle()
    assert console.window.notice == "The session with Sam Lee closed: the customer was disconnected."


def test_an_outage_shows_in_every_tab_and_a_line_typed_then_stays_pending(console: Console) -> None:
    s, tab = _accept_one(console)
    window = console.window
    window._on_backend_state(BackendState.RECONNECTING, "reconnecting…")
    assert tab.outage_banner.isVisibleTo(tab)
    # A tab opened during the outage shows it too.
    other, other_tab = _accept_one(console)
    assert other_tab.outage_banner.isVisibleTo(other_tab)
    other_tab.input_edit.setText("Three lines\nof a message\nbeing written")  # the input grows, the window does not jump
    grown = other_tab.input_edit.height()
    console.qtbot.waitUntil(lambda: other_tab.chat_input.height() > grown, timeout=timeout(2))
    window.grab().save(str(SHOTS / "s11_outage_window.png"))
    window._on_backend_state(BackendState.LIVE, "")
    assert not tab.outage_banner.isVisibleTo(tab) and not other_tab.outage_banner.isVisibleTo(other_tab)
    assert e_state(console, s.id) is SessionState.ACTIVE


def e_state(c: Console, sid: str) -> SessionState:
    return c.engine.session(sid).state
