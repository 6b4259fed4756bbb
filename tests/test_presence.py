"""The customer's presence in a session tab (issue 14): "… is typing…", the silent flag, "Still there?".

Driven with real engine sessions (the simulator's engine) and an injected
clock: the tests move time, nothing sleeps.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QTabWidget
from test_console import first_waiting, open_console

from repconsole.backend.simulator import SimulatorBackend
from repconsole.core.engine import QueueEngine
from repconsole.core.feed import RepFeed
from repconsole.core.intake import Intake
from repconsole.core.model import Session
from repconsole.core.state import ConsoleState
from repconsole.settings import Settings
from repconsole.ui.presence import NUDGE_TEXT, TYPING_CLEAR, TYPING_EVERY, first_name
from repconsole.ui.presencewiring import PresenceWiring
from repconsole.ui.sessiontab import SessionTab


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def backend() -> SimulatorBackend:
    return SimulatorBackend(tick=0, population=0, seed=1, rate=0)


@pytest.fixture
def engine(backend: SimulatorBackend) -> QueueEngine:
    return backend.engine


@pytest.fixture
def owned(engine: QueueEngine) -> Session:
    s = engine.start_with_issue("vpn", Intake(customer_name="Liam Chen"))
    engine.accept("me", s.id)
    engine.customer_say(s.id, "Hello? My VPN is down.")
    return s


def make_tab(qtbot: Any, engine: QueueEngine, s: Session, clock: Clock, settings: Settings | None = None) -> SessionTab:
    state = ConsoleState()
    state.apply(RepFeed("me").snapshot(engine))
    tab = SessionTab(state.adopt(s.view(chat=True)), state, clock=clock, settings=settings)
    qtbot.addWidget(tab)
    return tab


def last_line_at(engine: QueueEngine, s: Session) -> float:
    return engine.session(s.id).chat[-1].at


# ------------------------------------------------------------------ typing


def test_typing_shows_and_clears_after_five_seconds_of_silence(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    clock = Clock(last_line_at(engine, owned))
    tab = make_tab(qtbot, engine, owned, clock)
    bar = tab.presence
    assert not bar.typing
    bar.customer_typing()
    assert bar.typing and bar.typing_label.text() == "Liam is typing…"
    clock.now += TYPING_CLEAR - 0.1
    bar.refresh()
    assert bar.typing
    bar.customer_typing()  # another notice: five more seconds
    clock.now += TYPING_CLEAR - 0.1
    bar.refresh()
    assert bar.typing
    clock.now += 0.2
    bar.refresh()
    assert not bar.typing and bar.typing_label.text() == ""


def test_typing_clears_when_the_line_arrives(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    clock = Clock(last_line_at(engine, owned))
    tab = make_tab(qtbot, engine, owned, clock)
    tab.presence.customer_typing()
    line = engine.customer_say(owned.id, "Still broken.")
    tab.append_chat(line.view())
    assert not tab.presence.typing


def test_the_backends_typing_reaches_the_tab_and_the_reps_typing_reaches_the_backend(
    qtbot: Any, backend: SimulatorBackend, engine: QueueEngine, owned: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(last_line_at(engine, owned))
    tab = make_tab(qtbot, engine, owned, clock)
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.addTab(tab, tab.title)
    wiring = PresenceWiring(backend, tabs, {owned.id: tab})
    wiring.attach(tab)
    sent: list[str] = []
    monkeypatch.setattr(backend, "typing", sent.append)

    backend._deliver_typing(owned.id)
    assert tab.presence.typing
    backend._deliver_typing("S999")  # a session without a tab: nothing to show

    # The rep types: one notice per 2 s, however many keys.
    qtbot.keyClicks(tab.input_edit, "Let me")
    assert sent == [owned.id]
    clock.now += TYPING_EVERY
    qtbot.keyClicks(tab.input_edit, " check")
    assert sent == [owned.id, owned.id]
    # Reps only: the customer is not told.
    clock.now += TYPING_EVERY
    tab.input_edit.setText("")
    tab.reps_only_check.setChecked(True)
    qtbot.keyClicks(tab.input_edit, "internal")
    assert sent == [owned.id, owned.id]


def test_the_simulators_customers_type_before_they_send(qtbot: Any, engine: QueueEngine) -> None:
    clock = Clock(1_800_000_000.0)
    backend = SimulatorBackend(tick=0, population=0, seed=3, rate=0, clock=clock)
    engine = backend.engine
    typing: list[tuple[str, float]] = []
    backend.add_typing_listener(lambda sid: typing.append((sid, clock.now)))
    s = engine.start_with_issue("vpn", Intake(customer_name="Liam Chen"))
    engine.accept("me", s.id)  # the customer's hello follows in 1-3 s
    said_at = None
    for _ in range(40):
        clock.now += 0.1
        backend.simulation.step()
        if said_at is None and len(engine.session(s.id).chat) > 1:
            said_at = clock.now
    assert said_at is not None and typing
    assert typing[0][0] == s.id and typing[0][1] < said_at


def test_the_queue_row_shows_the_customer_typing_until_five_seconds_pass_or_the_line_comes(qtbot: Any, aloop: Any, tmp_path: Path) -> None:
    c = open_console(qtbot, tmp_path / "settings")
    try:
        w = c.window
        clock = Clock(1000.0)
        w.presence.clock = clock
        sid = first_waiting(c, "team:network")
        column = w.model.column_index("customer")
        index = w.model.index_for(sid, column)
        assert w.model.data(index, Qt.ItemDataRole.DecorationRole) is None
        with qtbot.waitSignal(w.model.dataChanged, timeout=1000):
            c.backend._deliver_typing(sid)
        index = w.model.index_for(sid, column)
        assert isinstance(w.model.data(index, Qt.ItemDataRole.DecorationRole), QIcon)
        assert w.model.data(index, Qt.ItemDataRole.AccessibleDescriptionRole).endswith(", typing")
        w.table.grab().save(str(tmp_path / "queue_typing.png"))
        clock.now += TYPING_CLEAR - 0.1
        w.presence.expire()
        assert sid in w.model.typing
        clock.now += 0.1
        w.presence.expire()
        assert w.model.data(w.model.index_for(sid, column), Qt.ItemDataRole.DecorationRole) is None
        # The customer's line clears it at once (a session of the rep's: its lines reach the console).
        c.double_click_row(sid)
        c.wait_tab(sid)
        c.settle()
        c.backend._deliver_typing(sid)
        assert sid in w.model.typing and w.session_tabs[sid].presence.typing
        c.engine.customer_say(sid, "Hello?")
        c.settle()
        qtbot.waitUntil(lambda: sid not in w.model.typing, timeout=2000)
        assert not w.session_tabs[sid].presence.typing
    finally:
        c.close()


# ------------------------------------------------------------------ nudge and silence


def test_still_there_sends_the_check_in_as_a_normal_line(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned, Clock(last_line_at(engine, owned)))
    assert tab.presence.nudge_button.isEnabled()
    with qtbot.waitSignal(tab.sendRequested, timeout=1000) as blocker:
        tab.presence.nudge_button.click()
    assert blocker.args == [NUDGE_TEXT, False]  # the customer sees it
    assert NUDGE_TEXT in tab.chat_view.toPlainText()  # shown at once, pending


def test_a_silent_customer_is_flagged_in_the_tab_until_they_write(
    qtbot: Any, backend: SimulatorBackend, engine: QueueEngine, owned: Session, tmp_path: Any
) -> None:
    settings = Settings(tmp_path)
    clock = Clock(last_line_at(engine, owned))
    tab = make_tab(qtbot, engine, owned, clock, settings)
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.addTab(tab, tab.title)
    PresenceWiring(backend, tabs, {owned.id: tab}).attach(tab)
    bar = tab.presence
    assert settings.preferences.chat.silent_after_minutes == 3

    clock.now += 3 * 60 - 1
    bar.refresh()
    assert not bar.silent and bar.silent_label.isHidden() and tabs.tabIcon(0).isNull()
    with qtbot.waitSignal(bar.silentChanged, timeout=1000) as blocker:
        clock.now += 2
        bar.refresh()
    assert blocker.args == [True]
    assert not bar.silent_label.isHidden() and bar.silent_label.text() == "Silent for 3 min"
    assert bar.silent_label.accessibleName() == "Liam has not written for 3 minutes"
    assert not tabs.tabIcon(0).isNull()
    assert tabs.tabBar().accessibleTabName(0).endswith(", silent")
    assert "Liam has not written for 3 minutes" in tabs.tabToolTip(0)

    # The customer writes: the flag goes.
    line = engine.customer_say(owned.id, "Sorry, I was rebooting.")
    with qtbot.waitSignal(bar.silentChanged, timeout=1000) as blocker:
        tab.append_chat(msg_at(line.view(), clock.now))
    assert blocker.args == [False]
    assert bar.silent_label.isHidden() and tabs.tabIcon(0).isNull()
    assert not tabs.tabBar().accessibleTabName(0).endswith(", silent")

    # The preference is read when checked: 0 turns the flag off.
    settings.preferences.chat.silent_after_minutes = 0
    clock.now += 3600
    bar.refresh()
    assert not bar.silent


def msg_at(line: Any, at: float) -> Any:
    """``line`` as said at ``at`` on the test's clock (the engine's runs on its own)."""
    import msgspec

    return msgspec.structs.replace(line, at=at)


def test_first_name() -> None:
    assert first_name("Liam Chen") == "Liam"
    assert first_name("  ") == "The customer"
