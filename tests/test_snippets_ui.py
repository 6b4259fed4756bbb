"""Canned messages in the console (issue 14): the "/" list, placeholders, "Still there?", the manage dialog.

On the real window over the simulator (whose rep leads Networking and is a
member of Accounts and Software, each with snippets of the "site file").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import timeout
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from test_console import Console, first_waiting, open_console

from repconsole.protocol import Snippets, SnippetView
from repconsole.settings import Settings
from repconsole.snippets import NUDGE_NAME, NUDGE_TEXT, Snippet, fill, matching, merged
from repconsole.ui.sessiontab import SessionTab
from repconsole.ui.snippetpopup import SnippetListModel

# ------------------------------------------------------------------ Qt-free


def test_fill_replaces_the_known_placeholders_and_names_the_unknown_ones() -> None:
    values = {"customer": "Liam Chen", "rep": "Alex Morgan", "key": "1234567"}
    assert fill("Hi {customer}, I'm {rep}; key {key}.", values) == ("Hi Liam Chen, I'm Alex Morgan; key 1234567.", [])
    text, unknown = fill("Ticket {ticket} for {customer} {ticket} {{literal}}", values)
    assert text == "Ticket {ticket} for Liam Chen {ticket} {literal}"
    assert unknown == ["{ticket}"]
    assert fill("{ customer }", values) == ("Liam Chen", [])


def test_matching_puts_name_prefixes_first_then_text_matches() -> None:
    a, b, c = Snippet("vpn-restart", "Restart it"), Snippet("router", "Your VPN router"), Snippet("bye", "Goodbye")
    assert matching([a, b, c], "") == [a, b, c]
    assert matching([b, c, a], "VPN") == [a, b]
    assert matching([a, b, c], "zzz") == []


def test_merged_says_which_team_snippets_the_rep_may_change_and_why_not() -> None:
    team = Snippets(
        [
            SnippetView(id="cfg-net-1", team="net", name="a", text="x", config=True),
            SnippetView(id="sn-1", team="net", name="b", text="y"),
            SnippetView(id="sn-2", team="bill", name="c", text="z"),
        ],
        ["net"],
    )
    out = merged([{"name": "mine", "text": "t"}], team, {"net": "Networking", "bill": "Billing"})
    assert [(s.name, s.where, s.editable) for s in out] == [
        ("mine", "Personal", True), ("a", "Networking", False), ("b", "Networking", True), ("c", "Billing", False),
    ]  # fmt: skip
    assert "site file" in out[1].why_not and "lead of Billing" in out[3].why_not


def test_the_list_model_passes_the_model_tester(qtmodeltester: Any) -> None:
    model = SnippetListModel()
    model.set_snippets([Snippet("a", "one\ntwo"), Snippet("b", "x" * 200, "net", "Networking", "sn-1")])
    qtmodeltester.check(model)
    assert model.data(model.index(1, 0)).endswith("(Networking)")
    assert model.data(model.index(0, 0), Qt.ItemDataRole.AccessibleTextRole) == "a, Personal: one\ntwo"


def test_personal_snippets_survive_a_settings_reload_and_a_bad_entry_resets_only_them(tmp_path: Path) -> None:
    s = Settings(tmp_path)
    assert s.snippets == [{"name": NUDGE_NAME, "text": NUDGE_TEXT}]  # a new rep's
    s.snippets = [{"name": "hi", "text": "Hello {customer}"}]
    s.favourites = ["network"]
    s.save()
    loaded, warning = Settings.load(tmp_path)
    assert warning is None and loaded.snippets == [{"name": "hi", "text": "Hello {customer}"}]
    with pytest.raises(ValueError):
        s.snippets = [{"name": "", "text": "x"}]
    raw = (tmp_path / "settings.json").read_text(encoding="utf-8").replace('"Hello {customer}"', "42")
    (tmp_path / "settings.json").write_text(raw, encoding="utf-8")
    loaded, warning = Settings.load(tmp_path)
    assert warning is not None and "snippet" in warning
    assert loaded.snippets == [{"name": NUDGE_NAME, "text": NUDGE_TEXT}] and loaded.favourites == ["network"]


# ------------------------------------------------------------------ in the window


@pytest.fixture
def console(qtbot, aloop, tmp_path: Path) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "settings")
    yield c
    c.close()


def open_tab(c: Console) -> SessionTab:
    row = first_waiting(c, "team:network")
    sid = c.window.model.row_by_id(row).session.id
    c.window.accept_row(row)
    tab = c.wait_tab(sid)
    c.settle()
    return tab


def type_text(c: Console, tab: SessionTab, text: str) -> None:
    tab.input_edit.setFocus()
    c.qtbot.keyClicks(tab.input_edit, text)


def key(c: Console, tab: SessionTab, k: Qt.Key) -> None:
    c.qtbot.keyClick(tab.input_edit, k)


def test_slash_opens_a_filtered_list_and_enter_inserts_with_placeholders_filled(console: Console) -> None:
    c = console
    tab = open_tab(c)
    completer = c.window.snippet_desk.completers[tab.session_id]
    type_text(c, tab, "/")
    assert completer.open
    names = [s.name for s in completer.popup.model.snippets]
    assert names[0] == NUDGE_NAME and {"vpn-restart", "router", "invoice", "reinstall"} <= set(names)
    type_text(c, tab, "r")
    assert [s.name for s in completer.popup.model.snippets][:2] == ["router", "reinstall"]  # names first
    assert "router" in tab.input_edit.accessibleDescription()  # what a screen reader hears
    key(c, tab, Qt.Key.Key_Down)
    assert completer.popup.current().name == "reinstall"
    key(c, tab, Qt.Key.Key_Up)
    key(c, tab, Qt.Key.Key_Up)  # round the top to the last
    assert completer.popup.current() == completer.popup.model.snippets[-1]
    completer.close()
    tab.input_edit.clear()
    type_text(c, tab, "/reinst")
    key(c, tab, Qt.Key.Key_Return)
    assert not completer.open
    name = tab.session.customer_name
    assert tab.input_edit.toPlainText() == f"Let's reinstall the app together, {name}. I'm Alex Morgan, I'll guide you step by step."
    assert not c.engine.session(tab.session_id).chat[-1].text.startswith("Let's")  # inserted, not sent


def test_esc_closes_the_list_until_slash_is_typed_again_and_text_after_a_space_does_not_open_it(console: Console) -> None:
    c = console
    tab = open_tab(c)
    completer = c.window.snippet_desk.completers[tab.session_id]
    type_text(c, tab, "/vp")
    assert completer.open
    key(c, tab, Qt.Key.Key_Escape)
    assert not completer.open and tab.input_edit.toPlainText() == "/vp"  # nothing lost
    type_text(c, tab, "n")
    assert not completer.open
    tab.input_edit.clear()
    type_text(c, tab, "use /vpn")
    assert not completer.open
    tab.input_edit.clear()
    type_text(c, tab, "/zzz")
    assert completer.open and "No snippet matches" in completer.popup.hint.text()
    key(c, tab, Qt.Key.Key_Return)  # nothing to insert: nothing sent either
    assert tab.input_edit.toPlainText() == "/zzz"


def test_an_unknown_placeholder_stays_visible_and_the_rep_is_told(console: Console) -> None:
    c = console
    tab = open_tab(c)
    c.window.snippet_desk.save_personal(None, "ticket", "Your ticket is {ticket}, {customer}.")
    type_text(c, tab, "/ticket")
    key(c, tab, Qt.Key.Key_Return)
    assert tab.input_edit.toPlainText() == f"Your ticket is {{ticket}}, {tab.session.customer_name}."
    assert "{ticket}" in tab.error_label.text() and "replace it before sending" in tab.error_label.text()


def test_still_there_sends_the_reps_edited_snippet_with_placeholders_filled(console: Console) -> None:
    c = console
    tab = open_tab(c)
    desk = c.window.snippet_desk
    desk.save_personal(0, NUDGE_NAME, "Still with me, {customer}? ({key})")
    with c.qtbot.waitSignal(tab.sendRequested, timeout=timeout(2)) as blocker:
        tab.presence.nudge_button.click()
    s = tab.session
    assert blocker.args == [f"Still with me, {s.customer_name}? ({s.session_key or s.id})", False]
    # One it cannot fill is not sent: it waits in the message box, and the rep is told.
    desk.save_personal(0, NUDGE_NAME, "Still there? Ref {ticket}")
    sent: list[Any] = []
    tab.sendRequested.connect(lambda *args: sent.append(args))
    tab.presence.nudge_button.click()
    assert sent == [] and tab.input_edit.toPlainText() == "Still there? Ref {ticket}"
    assert "{ticket}" in tab.error_label.text()


def test_the_manage_dialog_adds_edits_and_deletes_personal_ones_and_they_are_saved(console: Console, tmp_path: Path) -> None:
    c = console
    dialog = c.window.snippet_desk.open_manager()
    c.qtbot.waitExposed(dialog)
    dialog.start_new()
    assert dialog.where.currentData() == "" and dialog.where.isEnabled()
    dialog.name_edit.setText("thanks")
    dialog.text_edit.setPlainText("Thanks, {customer}!")
    dialog.save()
    assert dialog.selected() is not None and dialog.selected().name == "thanks"
    assert {"name": "thanks", "text": "Thanks, {customer}!"} in Settings.load(tmp_path / "settings")[0].snippets
    dialog.text_edit.setPlainText("Many thanks, {customer}!")
    dialog.save()
    assert {"name": "thanks", "text": "Many thanks, {customer}!"} in Settings.load(tmp_path / "settings")[0].snippets
    dialog.delete()
    assert all(s["name"] != "thanks" for s in Settings.load(tmp_path / "settings")[0].snippets)
    dialog.start_new()
    dialog.save()  # empty: refused, said
    assert "needs a name and a text" in dialog.error_label.text()


def test_a_lead_changes_team_snippets_and_others_are_read_only_with_the_reason(console: Console) -> None:
    c = console
    dialog = c.window.snippet_desk.open_manager()
    items = {dialog.list.item(i).data(Qt.ItemDataRole.UserRole).name: i for i in range(dialog.list.count())}
    dialog.list.setCurrentRow(items["invoice"])  # Accounts: the rep is no lead there
    assert dialog.text_edit.isReadOnly() and not dialog.save_button.isEnabled() and not dialog.delete_button.isEnabled()
    assert "site file" in dialog.reason_label.text()
    assert [dialog.where.itemText(i) for i in range(dialog.where.count())][:2] == ["Personal", "Team: Networking"]
    dialog.start_new()
    dialog.where.setCurrentIndex(1)
    dialog.reload()  # another lead's change arrives meanwhile: the new one's form keeps its team
    assert dialog.where.currentData() == "network" and dialog.where.isEnabled()
    dialog.name_edit.setText("wifi")
    dialog.text_edit.setPlainText("Is your Wi-Fi on, {customer}?")
    dialog.save()
    c.qtbot.waitUntil(lambda: dialog.selected() is not None and dialog.selected().name == "wifi", timeout=timeout(2))
    made = dialog.selected()
    assert made.team == "network" and made.editable and not made.personal
    assert any(s.name == "wifi" for s in c.backend.snippets.snippets)
    dialog.text_edit.setPlainText("Is the Wi-Fi on, {customer}?")
    dialog.save()
    c.qtbot.waitUntil(lambda: any(s.text == "Is the Wi-Fi on, {customer}?" for s in c.backend.snippets.snippets), timeout=timeout(2))
    dialog.delete()
    c.qtbot.waitUntil(lambda: all(s.name != "wifi" for s in c.backend.snippets.snippets), timeout=timeout(2))


def test_the_menu_action_opens_the_dialog_and_screenshots(console: Console) -> None:
    c = console
    tab = open_tab(c)
    type_text(c, tab, "/")
    QApplication.processEvents()
    assert c.window.snippet_desk.completers[tab.session_id].popup.isVisible()
    assert tab.grab().save("/tmp/c14-popup.png")
    c.window.menu_actions["Canned &messages…"].trigger()
    dialog = c.window.snippet_desk.dialog
    assert dialog is not None and dialog.isVisible()
    items = {dialog.list.item(i).data(Qt.ItemDataRole.UserRole).name: i for i in range(dialog.list.count())}
    dialog.list.setCurrentRow(items["invoice"])
    QApplication.processEvents()
    assert dialog.grab().save("/tmp/c14-manage.png")
    dialog.list.setCurrentRow(items["router"])  # Networking's, made by a lead: the rep leads it
    assert dialog.save_button.isEnabled() and not dialog.text_edit.isReadOnly() and dialog.reason_label.isHidden()
    QApplication.processEvents()
    assert dialog.grab().save("/tmp/c14-manage-lead.png")
