"""Read the console as a screen reader does: the AT-SPI tree and events, keys only.

Runs with the system Python (``/usr/bin/python3``: pyatspi comes from the
distribution, ``python3-pyatspi``), inside ``dbus-run-session`` under Xvfb,
so the accessibility bus is its own.  It starts the console
(``tests/atspi_console.py``, with the project's Python, given as
arguments), tells it what to do on its stdin, presses keys through AT-SPI
(XTest underneath) and prints one JSON object of findings on stdout.
``test_atspi`` judges them.

    atspi_walker.py PYTHON tests/atspi_console.py SETTINGS_DIR
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time

import pyatspi
from gi.repository import GLib

INTERACTIVE = {
    pyatspi.ROLE_PUSH_BUTTON, pyatspi.ROLE_CHECK_BOX, pyatspi.ROLE_RADIO_BUTTON, pyatspi.ROLE_COMBO_BOX,
    pyatspi.ROLE_TEXT, pyatspi.ROLE_ENTRY, pyatspi.ROLE_SPIN_BUTTON, pyatspi.ROLE_LIST, pyatspi.ROLE_TABLE,
    pyatspi.ROLE_PAGE_TAB, pyatspi.ROLE_TOGGLE_BUTTON, pyatspi.ROLE_SLIDER, pyatspi.ROLE_LIST_ITEM,
    pyatspi.ROLE_MENU_ITEM, pyatspi.ROLE_MENU, pyatspi.ROLE_PAGE_TAB_LIST, pyatspi.ROLE_SCROLL_PANE,
}  # fmt: skip
# What focus lands on inside a control: the control is what a Tab cycle reaches.
INSIDE = {pyatspi.ROLE_LIST_ITEM, pyatspi.ROLE_TABLE_CELL, pyatspi.ROLE_TABLE_ROW_HEADER, pyatspi.ROLE_PAGE_TAB}
TAB = 0xFF09

events: list[tuple] = []  # (type, text or path, detail1, source name[, parent path])
lines: queue.Queue[str] = queue.Queue()


def on_event(event) -> None:  # type: ignore[no-untyped-def]
    try:
        name = event.source.name if event.source is not None else ""
    except Exception:  # an object gone by now
        name = ""
    if event.type.startswith("object:announcement"):
        events.append(("announcement", str(event.any_data), int(event.detail1), name))
    elif event.type.startswith("object:state-changed:focused") and event.detail1:
        parent = event.source.parent if event.source is not None else None
        events.append(("focus", path_of(event.source), 0, name, path_of(parent) if parent is not None else ""))


def path_of(obj) -> str:  # type: ignore[no-untyped-def]
    try:
        return str(obj.path)
    except Exception:
        return ""


def pump(seconds: float) -> None:
    context = GLib.MainContext.default()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        while context.pending():
            context.iteration(False)
        time.sleep(0.01)


def command(proc: subprocess.Popen[str], text: str, timeout: float = 20.0) -> None:
    proc.stdin.write(text + "\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]
    wait_for(f"ok {text}", timeout)


def wait_for(answer: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pump(0.05)
        try:
            line = lines.get_nowait()
        except queue.Empty:
            continue
        if line.strip() == answer:
            pump(0.3)
            return
    raise SystemExit(f"the console never answered {answer!r}")


def find_app(name: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        desktop = pyatspi.Registry.getDesktop(0)
        for app in desktop:
            if app is not None and app.name == name and app.childCount:
                return app
        pump(0.2)
    raise SystemExit(f"no application {name!r} on the accessibility bus")


def walk(obj, out: list, depth: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Every showing object under ``obj`` (tables: their visible cells only, as a screen reader reads them)."""
    try:
        states = obj.getState()
        if not states.contains(pyatspi.STATE_SHOWING) and depth > 0:
            return
        out.append(obj)
        count = obj.childCount
    except Exception:
        return
    if obj.getRole() == pyatspi.ROLE_TABLE:
        count = min(count, 400)  # the visible rows come first: enough to judge
    for i in range(count):
        try:
            child = obj.getChildAtIndex(i)
        except Exception:
            continue
        if child is not None:
            walk(child, out, depth + 1)


def describe(obj) -> dict:  # type: ignore[no-untyped-def]
    states = obj.getState()
    return {
        "role": obj.getRoleName(),
        "name": obj.name or "",
        "description": obj.description or "",
        "path": path_of(obj),
        "focusable": states.contains(pyatspi.STATE_FOCUSABLE),
        "focused": states.contains(pyatspi.STATE_FOCUSED),
        "enabled": states.contains(pyatspi.STATE_ENABLED),
        "interactive": obj.getRole() in INTERACTIVE,
        "inside": obj.getRole() in INSIDE,
        "parent": path_of(obj.parent) if obj.parent is not None else "",
        "parent_role": obj.parent.getRoleName() if obj.parent is not None else "",
        "parent_name": obj.parent.name if obj.parent is not None else "",
        "children": obj.childCount,
    }


def snapshot(app) -> list[dict]:  # type: ignore[no-untyped-def]
    found: list = []
    walk(app, found)
    out = []
    for obj in found:
        try:
            out.append(describe(obj))
        except Exception:
            continue
    return out


def table_facts(app) -> dict:  # type: ignore[no-untyped-def]
    """What the Table interface of the queue table says: rows, columns, a row's name, a cell's description."""
    found: list = []
    walk(app, found)
    table = next(o for o in found if o.getRole() == pyatspi.ROLE_TABLE)
    t = table.queryTable()
    header = t.getRowHeader(0)
    cell = t.getAccessibleAt(0, 0)
    return {
        "name": table.name, "description": table.description, "rows": t.nRows, "columns": t.nColumns,
        "row_description": t.getRowDescription(0), "row_header": header.name if header is not None else None,
        "cell": cell.name if cell is not None else None, "cell_description": cell.description if cell is not None else None,
        "column_names": [t.getColumnDescription(c) for c in range(t.nColumns)],
        "column_headers": [h.name if (h := t.getColumnHeader(c)) is not None else None for c in range(t.nColumns)],
        "first_row": [c.name if (c := t.getAccessibleAt(0, n)) is not None else None for n in range(t.nColumns)],
    }  # fmt: skip


def tab_cycle(limit: int = 60) -> list[dict]:
    """Press Tab until focus comes back where it started; every object that took the focus, in order.

    Each press waits for its focus event (a loaded machine is slow), so no
    stop is missed or credited to the next press.
    """
    reached: list[dict] = []
    seen = len(events)
    for _ in range(limit):
        pyatspi.Registry.generateKeyboardEvent(TAB, None, pyatspi.KEY_SYM)
        end = time.monotonic() + 5.0
        while time.monotonic() < end and not any(e[0] == "focus" for e in events[seen:]):
            pump(0.05)
        pump(0.15)
        for e in events[seen:]:
            if e[0] == "focus" and (not reached or reached[-1]["path"] != e[1]):
                reached.append({"path": e[1], "name": e[3], "parent": e[4]})
        seen = len(events)
        if len(reached) > 1 and reached[-1]["path"] == reached[0]["path"]:
            break
    return reached


def main() -> None:
    python, script, settings = sys.argv[1:4]
    registry = pyatspi.Registry
    registry.registerEventListener(on_event, "object:announcement")
    registry.registerEventListener(on_event, "object:state-changed:focused")
    proc = subprocess.Popen([python, script, settings], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    result: dict = {}
    try:
        wait_for("ok started", 60)
        app = find_app("repconsole")
        pump(1.0)
        command(proc, "queues")
        result["queues_tree"] = snapshot(app)
        result["table"] = table_facts(app)
        result["queues_cycle"] = tab_cycle()
        command(proc, "table")
        result["table_focus_tree"] = snapshot(app)
        command(proc, "arrange")
        result["table_arranged"] = table_facts(app)
        command(proc, "search")
        result["search_focus_tree"] = snapshot(app)
        result["table_searching"] = table_facts(app)
        command(proc, "unsearch")
        result["table_unsearched"] = table_facts(app)
        mark = len(events)
        command(proc, "arrive")
        pump(0.5)
        result["arrival_events"] = [e for e in events[mark:] if e[0] == "announcement"]
        command(proc, "accept")
        pump(1.0)
        command(proc, "session")
        pump(0.5)
        result["session_first_focus"] = next((e[3] for e in reversed(events) if e[0] == "focus"), "")
        result["session_tree"] = snapshot(app)
        result["session_cycle"] = tab_cycle()
        mark = len(events)
        command(proc, "say")
        pump(0.5)
        result["chat_events"] = [e for e in events[mark:] if e[0] == "announcement"]
    finally:
        with contextlib.suppress(SystemExit):
            command(proc, "quit", timeout=5)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
