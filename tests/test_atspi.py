"""The console as a screen reader meets it: the AT-SPI tree, Tab by Tab, and what it hears.

Starts the real console under Xvfb with its own D-Bus session and
accessibility bus, and reads it from another process with pyatspi (the
library Orca uses), pressing keys through AT-SPI: ``tests/atspi_walker.py``
does the reading and ``tests/atspi_console.py`` the console.  This test
judges what the walker found.

Needs ``xvfb-run``, ``dbus-run-session``, ``at-spi2-core`` and the system
Python's ``pyatspi`` (``.ci/run`` installs them).  Without them it is
skipped, unless ``REPCONSOLE_REQUIRE_ATSPI=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"
# The columns the table shows by default, and as the console's "arrange" command leaves them.
SHOWN = ["Customer", "Company", "Issue", "Category", "Waiting", "Time left", "Priority", "Origin", "Status", "Owner"]
ARRANGED = ["Priority", "Customer", "Company", "Issue", "Category", "Waiting", "Time left", "Status", "Owner", "Platform"]
# What Tab should reach: controls (containers, labels and the items inside views are not stops).
CONTROLS = {
    "push button", "check box", "radio button", "combo box", "text", "entry", "spin button", "list", "table", "page tab list", "toggle button", "slider",
}  # fmt: skip
INTERACTIVE = CONTROLS | {"list item", "table cell", "page tab", "menu item", "menu", "table column header"}


def _missing() -> str | None:
    for tool in ("xvfb-run", "dbus-run-session"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/libexec/at-spi-bus-launcher").exists():
        return "at-spi2-core is not installed"
    if subprocess.run([SYSTEM_PYTHON, "-c", "import pyatspi"], capture_output=True).returncode:
        return "the system Python has no pyatspi (python3-pyatspi)"
    return None


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    why = _missing()
    if why is not None:
        if os.environ.get("REPCONSOLE_REQUIRE_ATSPI") == "1":
            pytest.fail(f"the AT-SPI check cannot run: {why}")
        pytest.skip(f"the AT-SPI check cannot run: {why}")
    home = tmp_path_factory.mktemp("atspi")
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="xcb",
        QT_LINUX_ACCESSIBILITY_ALWAYS_ON="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")])),
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_RUNTIME_DIR=str(home),
    )
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)  # its own session bus, hence its own accessibility bus
    walker = [SYSTEM_PYTHON, str(HERE / "atspi_walker.py"), sys.executable, str(HERE / "atspi_console.py"), str(home / "settings")]
    command = ["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", "dbus-run-session", "--", *walker]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"the walker failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _views(found: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    return [(view, found[f"{view}_tree"], found[f"{view}_cycle"]) for view in ("queues", "session")]


def test_no_interactive_control_is_unnamed_and_no_control_has_role_unknown(found: dict[str, Any]) -> None:
    for view, tree, _ in _views(found):
        unnamed = [(o["role"], o["parent_role"], o["parent_name"]) for o in tree if o["role"] in INTERACTIVE and not o["name"].strip()]
        assert unnamed == [], view
        assert [o for o in tree if o["focusable"] and not o["name"].strip() and o["role"] != "label"] == [], view
        # Splitter handles (Qt's Grip, AT-SPI's "unknown") are left out, like QMainWindow's separators.
        assert [(o["role"], o["parent_role"], o["parent_name"]) for o in tree if o["role"] in ("unknown", "invalid")] == [], view


def _focused(tree: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The objects that claim the focus; an item of a focused view or tab list is where the reader is in it, not a second focus.

    Left out: the current page tab, which Qt marks focused whatever has the
    focus (``QAccessibleTabButton::state``; no widget setting changes it).
    """
    focused = [o for o in tree if o["focused"]]
    tabs = [o for o in focused if o["role"] == "page tab" and o["parent_role"] == "page tab list"]
    assert len(tabs) <= 1, tabs  # the current one, at most
    return [(o["role"], o["name"]) for o in focused if o not in tabs and not (o["inside"] and any(p["path"] == o["parent"] for p in focused))]


def test_one_object_has_the_focus(found: dict[str, Any]) -> None:
    assert _focused(found["queues_tree"]) == [("list", "Queues")]
    assert _focused(found["table_focus_tree"]) == [("table", "Queue")]
    assert _focused(found["search_focus_tree"]) == [("text", "Search active sessions")]
    assert _focused(found["session_tree"]) == [("text", "Chat message")]
    # The focused table's current item is its first row's first cell.
    table = next(o for o in found["table_focus_tree"] if o["role"] == "table")
    assert [o["role"] for o in found["table_focus_tree"] if o["focused"] and o["parent"] == table["path"]] == ["table cell"]


def test_the_table_exposes_the_columns_shown_in_the_order_shown(found: dict[str, Any]) -> None:
    # Hidden columns are not there at all; the rep's order is the order a screen reader reads.
    table = found["table"]
    assert table["columns"] == len(SHOWN) and table["column_names"] == table["column_headers"] == SHOWN
    headers = [o["name"] for o in found["queues_tree"] if o["role"] == "table column header"]
    assert headers == SHOWN
    arranged = found["table_arranged"]
    assert arranged["column_names"] == arranged["column_headers"] == ARRANGED
    assert len(arranged["first_row"]) == len(ARRANGED) and "" not in arranged["first_row"]
    # The Queue column is there while searching, after the first column, and only then.
    assert found["table_searching"]["column_names"] == [ARRANGED[0], "Queue", *ARRANGED[1:]]
    assert found["table_unsearched"]["column_names"] == ARRANGED


def test_queue_list_items_read_their_state(found: dict[str, Any]) -> None:
    items = [o["name"] for o in found["queues_tree"] if o["role"] == "list item" and o["parent_name"] == "Queues"]
    assert re.fullmatch(r"Personal, \d+ waiting, \d+ in session", items[0])
    assert any(re.fullmatch(r"Networking, (favourite, )?\d+ waiting(, \d+ unread team messages?)?", item) for item in items), items


def test_the_table_says_its_sort_names_its_rows_and_reads_blank_cells_as_none(found: dict[str, Any]) -> None:
    table = found["table"]
    assert (table["name"], table["description"]) == ("Queue", "sorted by Waiting, descending")
    row = table["row_header"]
    assert row == table["row_description"] == table["cell_description"]
    assert re.fullmatch(r".+, (waiting (less than a minute|\d+ (minute|hour)s?( \d+ minutes?)?)|.+), [^,]+(, (low|high|urgent))?(, overdue)?", row), row
    assert row.startswith(table["cell"] + ", ")
    cells = [o["name"] for o in found["queues_tree"] if o["role"] == "table cell"]
    assert cells and "" not in cells and "none" in cells


def test_a_tab_cycle_on_each_view_reaches_every_control(found: dict[str, Any]) -> None:
    for view, tree, cycle in _views(found):
        assert len(cycle) > 2 and cycle[-1]["path"] == cycle[0]["path"], f"{view}: Tab never came back: {[c['name'] for c in cycle]}"
        reached = {c["path"] for c in cycle} | {c["parent"] for c in cycle}
        controls = [o for o in tree if o["role"] in CONTROLS and o["focusable"] and o["enabled"]]
        assert [(o["role"], o["name"]) for o in controls if o["path"] not in reached] == [], view
    assert found["session_first_focus"] == "Chat message"


def test_an_arrival_and_a_chat_line_are_announced_for_the_screen_reader(found: dict[str, Any]) -> None:
    # detail1 is AT-SPI's politeness: 1 polite, 2 assertive.
    arrivals = [(text, politeness) for _, text, politeness, _ in found["arrival_events"]]
    assert len(arrivals) == 1 and arrivals[0][0].startswith("New customer in your personal queue: ") and arrivals[0][1] == 2
    chat = [(text, politeness) for _, text, politeness, _ in found["chat_events"]]
    assert len(chat) == 1 and chat[0][0].endswith(": My VPN keeps dropping") and chat[0][1] == 2
