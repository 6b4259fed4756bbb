"""SessionTab, TransferDialog and ShareDialog, driven with real engine sessions."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from typing import Any

import msgspec
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QTextCursor

from repconsole.backend.simulator import SimulatorBackend
from repconsole.core.engine import QueueEngine
from repconsole.core.feed import RepFeed
from repconsole.core.intake import Intake
from repconsole.core.model import Priority, QueueRef, Session
from repconsole.core.state import ConsoleState
from repconsole.ui.pickers import ShareDialog, TransferDialog, fold
from repconsole.ui.sessiontab import SessionTab
from repconsole.ui.widgets import clock_time

LEFT = Qt.MouseButton.LeftButton


# ---------------------------------------------------------------- helpers


@pytest.fixture
def backend() -> SimulatorBackend:
    return SimulatorBackend(tick=0, population=0, seed=1)


@pytest.fixture
def engine(backend: SimulatorBackend) -> QueueEngine:
    return backend.engine


def state_of(engine: QueueEngine, rep: str = "me") -> ConsoleState:
    state = ConsoleState()
    state.apply(RepFeed(rep).snapshot(engine))
    return state


def make_tab(qtbot: Any, engine: QueueEngine, s: Session) -> SessionTab:
    # As the window opens it after accepting: the state keeps the chat and page.
    state = state_of(engine)
    tab = SessionTab(state.adopt(s.view(chat=True)), state)
    qtbot.addWidget(tab)
    return tab


def intake(**overrides: Any) -> Intake:
    fields: dict[str, Any] = {
        "customer_name": "Ada Lovelace",
        "company": "Acme Corp",
        "company_code": "ACM",
        "details": "It worked yesterday.",
        "platform": "Windows 11",
        "locale": "en-GB",
        "external_key": "TCK-12345",
        "portal": "Partner Portal",
        "custom_fields": {"contract": "Gold", "asset tag": "AT-4242"},
        "priority": Priority.HIGH,
    }
    fields.update(overrides)
    return Intake(**fields)


@pytest.fixture
def owned(engine: QueueEngine) -> Session:
    """A VPN session "me" accepted, with customer, rep, reps-only and event lines."""
    s = engine.start_with_issue("vpn", intake())
    engine.accept("me", s.id)
    engine.customer_say(s.id, "My <b>VPN</b> & Wi-Fi are down")
    engine.say("me", s.id, "Let me have a look.")
    engine.say("me", s.id, "Probably the Frankfurt gateway", reps_only=True)
    return s


@pytest.fixture
def shared(engine: QueueEngine) -> Session:
    """Priya owns it; "me" joined as a participant."""
    s = engine.start_with_issue("vpn", intake())
    engine.accept("priya", s.id)
    inv = engine.share("priya", s.id, QueueRef.personal("me"))
    engine.accept_invitation("me", inv.id)
    return s


def block_with(tab: SessionTab, text: str) -> Any:
    doc = tab.chat_view.document()
    block = doc.begin()
    while block.isValid():
        if text in block.text():
            return block
        block = block.next()
    raise AssertionError(f"no chat block contains {text!r}")


# ------------------------------------------------------------------- send


def test_enter_sends_text_and_clears_input(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    qtbot.keyClicks(tab.input_edit, "  Please restart the client  ")
    with qtbot.waitSignal(tab.sendRequested, timeout=1000) as blocker:
        qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return)
    assert blocker.args == ["Please restart the client", False]
    assert tab.input_edit.text() == ""


def test_reps_only_send_by_button_and_ctrl_enter(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.reps_only_check.setChecked(True)
    assert "reps only" in tab.input_edit.placeholderText()
    qtbot.keyClicks(tab.input_edit, "internal")
    with qtbot.waitSignal(tab.sendRequested, timeout=1000) as blocker:
        qtbot.mouseClick(tab.send_button, LEFT)
    assert blocker.args == ["internal", True]
    assert tab.input_edit.text() == ""

    tab.reps_only_check.setChecked(False)
    qtbot.keyClicks(tab.input_edit, "to everyone")
    with qtbot.waitSignal(tab.sendRequested, timeout=1000) as blocker:
        qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == ["to everyone", False]


def test_empty_or_blank_text_is_not_sent(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    with qtbot.assertNotEmitted(tab.sendRequested):
        qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return)
        qtbot.mouseClick(tab.send_button, LEFT)
        qtbot.keyClicks(tab.input_edit, "    ")
        qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return)
    assert tab.input_edit.text() == "    "


# ------------------------------------------------------------------- chat


def test_chat_shows_authors_times_events_and_reps_only(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    text = tab.chat_view.toPlainText()
    # Event line, customer line, rep line, reps-only line, in order.
    assert text.index("Alex Morgan accepted the session.") < text.index("Ada Lovelace:")
    assert text.index("Ada Lovelace:") < text.index("Alex Morgan:  Let me have a look.")
    for line in owned.chat:
        assert clock_time(line.at) in text
    # The customer's text is shown literally, never as markup.
    assert "My <b>VPN</b> & Wi-Fi are down" in text
    assert "&lt;b&gt;VPN&lt;/b&gt;" in tab.chat_view.toHtml()

    event = block_with(tab, "accepted the session")
    cursor = QTextCursor(event)
    cursor.setPosition(event.position() + event.text().index("accepted") + 1)
    assert cursor.charFormat().fontItalic()

    secret = block_with(tab, "Frankfurt gateway")
    assert "reps only" in secret.text()
    assert secret.blockFormat().background().style() != Qt.BrushStyle.NoBrush
    normal = block_with(tab, "Let me have a look.")
    assert "reps only" not in normal.text()
    assert normal.blockFormat().background().style() == Qt.BrushStyle.NoBrush
    assert text.count("reps only") == 1


def test_append_chat_ignores_a_line_shown_before(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    before = tab.chat_view.toPlainText()
    count = tab.chat_view.line_count()
    assert tab.append_chat(owned.chat[-1].view()) is False
    assert tab.append_chat(owned.chat[0].view()) is False
    assert tab.chat_view.toPlainText() == before
    line = engine.customer_say(owned.id, "Still there?")
    assert tab.append_chat(line.view()) is True
    assert tab.append_chat(line.view()) is False
    assert tab.chat_view.line_count() == count + 1
    assert tab.chat_view.toPlainText().count("Still there?") == 1


def test_chat_follows_new_lines_unless_scrolled_back(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.resize(900, 500)
    tab.show()
    qtbot.waitExposed(tab)
    for i in range(60):
        tab.append_chat(engine.customer_say(owned.id, f"line {i}").view())
    bar = tab.chat_view.verticalScrollBar()
    assert bar.maximum() > 0
    assert bar.value() == bar.maximum()
    bar.setValue(0)
    tab.append_chat(engine.customer_say(owned.id, "while reading back").view())
    assert bar.value() == 0


def test_links_in_chat_are_clickable(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.append_chat(engine.say("me", owned.id, "See https://kb.example/vpn-reset.").view())
    assert 'href="https://kb.example/vpn-reset"' in tab.chat_view.toHtml()


# ---------------------------------------------------------------- actions


def test_transfer_to_a_team_with_note_and_stay(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    qtbot.mouseClick(tab.transfer_button, LEFT)
    dialog = tab.picker
    assert isinstance(dialog, TransferDialog)
    assert dialog.isVisible()
    assert dialog.windowModality() == Qt.WindowModality.WindowModal  # open(), not a blocking exec()
    qtbot.keyClicks(dialog.filter_edit, "netw")
    assert dialog.selected_target() == "team:network"
    dialog.note_edit.setPlainText("  Gateway restarted; customer still offline.  ")
    dialog.stay_check.setChecked(True)
    with qtbot.waitSignal(tab.transferRequested, timeout=1000) as blocker:
        qtbot.keyClick(dialog.filter_edit, Qt.Key.Key_Return)
    assert blocker.args == ["team:network", "Gateway restarted; customer still offline.", True]
    assert tab.picker is None


def test_ctrl_enter_in_the_note_confirms_the_transfer(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.transfer_button.click()
    dialog = tab.picker
    assert isinstance(dialog, TransferDialog)
    with qtbot.waitActive(dialog):
        dialog.activateWindow()
    assert dialog.select_target("rep:priya")
    dialog.note_edit.setFocus()
    qtbot.keyClicks(dialog.note_edit, "Over to you")
    qtbot.keyClick(dialog.note_edit, Qt.Key.Key_Return)  # a plain Enter is a new line in the note
    assert tab.picker is dialog
    with qtbot.waitSignal(tab.transferRequested, timeout=1000) as blocker:
        qtbot.keyClick(dialog.note_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == ["rep:priya", "Over to you", False]


def test_cancelled_transfer_emits_nothing(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.transfer_button.click()
    dialog = tab.picker
    assert dialog is not None
    with qtbot.assertNotEmitted(tab.transferRequested):
        qtbot.keyClick(dialog.filter_edit, Qt.Key.Key_Escape)
    assert tab.picker is None


def test_transfer_dialog_lists_teams_and_other_reps(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    engine.rep_disconnected("tom")
    dialog = TransferDialog(state_of(engine), owned.view(chat=True))
    qtbot.addWidget(dialog)
    targets = dialog.targets()
    assert {"team:network", "team:accounts", "team:software", "team:hardware"} <= set(targets)
    assert "rep:me" not in targets
    assert "rep:priya" in targets
    assert "rep:tom" not in targets  # listed, but greyed and not pickable
    tom = [dialog.tree.topLevelItem(1).child(i) for i in range(dialog.tree.topLevelItem(1).childCount())]
    tom_item = next(i for i in tom if i.text(0) == "Tom Becker")
    assert tom_item.text(1) == "(offline)"
    assert not tom_item.flags() & Qt.ItemFlag.ItemIsEnabled
    assert "Alex Morgan" not in [i.text(0) for i in tom]

    # Arrows in the filter box move through pickable rows, skipping Tom.
    qtbot.keyClicks(dialog.filter_edit, "e")  # Networking, Software, Kenji, Sven, Tom (offline)...
    seen = [dialog.selected_target()]
    for _ in range(10):
        qtbot.keyClick(dialog.filter_edit, Qt.Key.Key_Down)
        seen.append(dialog.selected_target())
    assert "rep:tom" not in seen
    assert seen[-1] == dialog.targets()[-1]
    qtbot.keyClick(dialog.filter_edit, Qt.Key.Key_Up)
    assert dialog.selected_target() == dialog.targets()[-2]

    dialog.filter_edit.setText("nobody-by-that-name")
    assert dialog.selected_target() is None
    assert not dialog.ok_button.isEnabled()
    assert not dialog.empty_label.isHidden()


def test_share_picks_a_rep_by_typing(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    qtbot.mouseClick(tab.share_button, LEFT)
    dialog = tab.picker
    assert isinstance(dialog, ShareDialog)
    qtbot.keyClicks(dialog.filter_edit, "lucia")  # finds "Lucía Ortega": accents do not matter
    assert dialog.selected_target() == "rep:lucia"
    dialog.filter_edit.clear()
    qtbot.keyClicks(dialog.filter_edit, "priya")
    with qtbot.waitSignal(tab.shareRequested, timeout=1000) as blocker:
        qtbot.keyClick(dialog.filter_edit, Qt.Key.Key_Return)
    assert blocker.args == ["rep:priya"]


def test_share_dialog_greys_reps_already_in_the_session(qtbot: Any, engine: QueueEngine, shared: Session) -> None:
    # Priya is the owner; "tom" joins as a second participant.
    inv = engine.share("priya", shared.id, QueueRef.personal("tom"))
    engine.accept_invitation("tom", inv.id)
    dialog = ShareDialog(state_of(engine), shared.view())
    qtbot.addWidget(dialog)
    assert "rep:priya" not in dialog.targets()
    assert "rep:tom" not in dialog.targets()
    assert "rep:sven" in dialog.targets()
    assert dialog.select_target("rep:priya") is False
    assert dialog.select_target("team:hardware") is True


def test_fold_ignores_case_and_accents() -> None:
    assert fold("Lucía ORTEGA") == "lucia ortega"


def test_hold_and_end_are_emitted_by_clicks(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    assert not tab.leave_button.isVisibleTo(tab)
    with qtbot.waitSignal(tab.holdRequested, timeout=1000):
        qtbot.mouseClick(tab.hold_button, LEFT)
    with qtbot.waitSignal(tab.endRequested, timeout=1000):
        qtbot.mouseClick(tab.end_button, LEFT)


def test_mnemonics_do_not_clash(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    expected = {
        tab.transfer_button: "Alt+T",
        tab.share_button: "Alt+S",
        tab.hold_button: "Alt+H",
        tab.resume_button: "Alt+U",
        tab.end_button: "Alt+E",
        tab.leave_button: "Alt+L",
        tab.reps_only_check: "Alt+R",
    }
    for widget, keys in expected.items():
        assert QKeySequence.mnemonic(widget.text()) == QKeySequence(keys), widget.text()


def test_alt_h_holds_from_the_keyboard(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    with qtbot.waitActive(tab):
        tab.show()
        tab.activateWindow()
    tab.input_edit.setFocus()
    with qtbot.waitSignal(tab.holdRequested, timeout=1000):
        qtbot.keyClick(tab.input_edit, Qt.Key.Key_H, Qt.KeyboardModifier.AltModifier)


def test_held_session_offers_resume(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    assert tab.held_badge.isHidden()
    engine.hold("me", owned.id)
    tab.update_session(owned.view())
    assert not tab.held_badge.isHidden()
    assert tab.hold_button.isHidden() and not tab.resume_button.isHidden()
    assert tab.transfer_button.isEnabled() and tab.end_button.isEnabled()
    with qtbot.waitSignal(tab.resumeRequested, timeout=1000):
        qtbot.mouseClick(tab.resume_button, LEFT)


def test_participant_sees_owner_actions_greyed_and_may_leave(qtbot: Any, engine: QueueEngine, shared: Session) -> None:
    tab = make_tab(qtbot, engine, shared)
    for button in (tab.transfer_button, tab.share_button, tab.hold_button, tab.end_button):
        assert button.isVisibleTo(tab), button.text()
        assert not button.isEnabled(), button.text()
        assert "Priya Raman" in button.toolTip()
    assert tab.leave_button.isVisibleTo(tab)
    assert tab.leave_button.isEnabled()
    assert "Owner: Priya Raman" in tab.people_label.text()
    assert tab.input_edit.isEnabled()  # participants chat too
    with qtbot.assertNotEmitted(tab.transferRequested):
        qtbot.mouseClick(tab.transfer_button, LEFT)
    assert tab.picker is None
    with qtbot.waitSignal(tab.leaveRequested, timeout=1000):
        qtbot.mouseClick(tab.leave_button, LEFT)


def test_losing_ownership_greys_actions_and_closes_the_picker(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.share_button.click()
    assert tab.picker is not None
    engine.transfer("me", owned.id, QueueRef.team("network"), "over to you", stay=True)
    tab.update_session(owned.view())
    assert tab.picker is None
    assert not tab.transfer_button.isEnabled()
    assert tab.leave_button.isEnabled() and tab.leave_button.isVisibleTo(tab)
    assert "waiting in Networking" in tab.people_label.text()


def test_busy_disables_actions_and_sending(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.set_busy(True)
    assert not any(b.isEnabled() for b in (tab.transfer_button, tab.share_button, tab.hold_button, tab.end_button))
    assert not tab.send_button.isEnabled()
    assert tab.input_edit.isEnabled()
    qtbot.keyClicks(tab.input_edit, "typed while busy")
    with qtbot.assertNotEmitted(tab.sendRequested):
        qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return)
    assert tab.input_edit.text() == "typed while busy"
    tab.set_busy(False)
    assert tab.transfer_button.isEnabled() and tab.send_button.isEnabled()


def test_error_is_inline_and_dismissable(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.show()  # on screen: showing the strip must not resize the window (no Qt warning)
    qtbot.waitExposed(tab)
    assert tab.error_frame.isHidden()
    tab.show_error("Tom Becker is at capacity.")
    qtbot.wait(10)
    assert not tab.error_frame.isHidden()
    assert tab.error_label.text() == "Tom Becker is at capacity."
    qtbot.keyClicks(tab.input_edit, "retry")
    qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return)
    assert tab.error_frame.isHidden()


def test_ended_session_disables_everything(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    engine.end("me", owned.id)
    tab.update_session(owned.view())
    assert not tab.ended_badge.isHidden()
    assert not any(b.isEnabled() for b in (tab.transfer_button, tab.share_button, tab.hold_button, tab.end_button))
    assert not tab.input_edit.isEnabled()
    assert "Session ended" in tab.people_label.text()


def test_update_session_refuses_another_session(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    other = engine.start_with_issue("wifi", intake())
    with pytest.raises(ValueError):
        tab.update_session(other.view())


# ------------------------------------------------------------ note, info


def test_transfer_note_is_pinned_only_when_set(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    assert tab.note_frame.isHidden()

    s = engine.start_with_issue("vpn", intake(customer_name="Grace Hopper"))
    engine.accept("priya", s.id)
    engine.transfer("priya", s.id, QueueRef.personal("me"), "Tried <reset>; needs a new profile")
    engine.accept("me", s.id)
    tab = make_tab(qtbot, engine, s)
    assert not tab.note_frame.isHidden()
    shown = tab.note_label.text()
    assert "Note from transfer:" in shown
    assert "Tried &lt;reset&gt;; needs a new profile" in shown
    assert "Priya Raman" in shown

    cleared = msgspec.structs.replace(s.view(), transfer_note="")
    tab.update_session(cleared)
    assert tab.note_frame.isHidden()


def test_header_and_info_panel_show_the_intake(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    assert tab.title == "Ada Lovelace"
    assert tab.session_id == owned.id
    assert tab.session.id == owned.id
    assert tab.name_label.text() == "Ada Lovelace"
    assert tab.company_label.text() == "Acme Corp (ACM)"
    assert "VPN won't connect" in tab.issue_label.text()
    assert "Network" in tab.issue_label.text()
    assert tab.priority_badge.text() == "High priority"
    assert "Owner: Alex Morgan (you)" in tab.people_label.text()
    labels = [w.text() for w in tab.info_panel.widget().findChildren(type(tab.name_label))]
    for expected in ("Ada Lovelace", "Acme Corp", "ACM", "Windows 11", "en-GB", "It worked yesterday.",
                     "Partner Portal", "Issue form", "vpn", "Gold", "AT-4242", "Contract", "Asset tag"):
        assert expected in labels, expected
    assert tab.external_key_edit.text() == "TCK-12345"


def test_editing_the_external_key_emits_it(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    tab.external_key_edit.selectAll()
    qtbot.keyClicks(tab.external_key_edit, "INC-777")
    with qtbot.waitSignal(tab.externalKeyEdited, timeout=1000) as blocker:
        qtbot.keyClick(tab.external_key_edit, Qt.Key.Key_Return)
    assert blocker.args == ["INC-777"]


def test_browser_session_shows_the_customers_live_page(qtbot: Any, backend: SimulatorBackend, engine: QueueEngine) -> None:
    customer = intake(customer_name="Mia Ivanova")
    s = engine.start_browser("link-me", customer, page_url="https://shop.acme.example/checkout")
    engine.accept("me", s.id)
    tab = make_tab(qtbot, engine, s)
    assert tab.title == "[Browser] Mia Ivanova"
    assert tab.name_label.text().startswith("[Browser] ")
    page = tab.cobrowse_view
    assert page is not None
    # Where the customer started, until the page's stream says more.
    assert page.url_label.text() == "Customer is on: https://shop.acme.example/checkout"
    assert page.state_label.text() == "Waiting"
    tab.update_session(s.view())
    assert tab.cobrowse_view is page


def test_non_browser_session_has_no_page(qtbot: Any, engine: QueueEngine, owned: Session) -> None:
    tab = make_tab(qtbot, engine, owned)
    assert tab.cobrowse_view is None
