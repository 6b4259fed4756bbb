"""Workspace restore (issue 11, B9): after a restart or a crash the rep's session tabs come back.

Against the real queue server (the fixtures of ``test_console_server``): the
rep accepts customers, the console goes away (closed, or "crashed": its
connection drops without the window saving anything), and a new console on
the same settings directory signs in within the grace period.  The tabs of
the sessions the rep still owns reopen, in the order they had, with the one
that was in front in front again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import timeout
from test_console_server import ME, Console, console, prepared, run, server  # noqa: F401 - fixtures by name

from repconsole.backend.base import BackendState
from repconsole.backend.websocket import WebSocketBackend
from repconsole.settings import Settings
from repconsole.ui.app import build_window
from repconsole.ui.mainwindow import MainWindow
from repconsole.ui.sessiontab import SessionTab


def _accept_three(c: Console) -> list[str]:
    """Three customers accepted in an order unlike their arrival's: C, A, B; A in front."""
    a, b, cc = (c.customer(name) for name in ("Ada Restore", "Bo Restore", "Cy Restore"))
    for customer in (cc, a, b):
        run(c.qtbot, c.window.accept_and_open(c.backend.accept(customer.session)))
        c.wait_tab(customer.session)
    c.window.tabs.setCurrentWidget(c.window.session_tabs[a.session])
    return [cc.session, a.session, b.session]


def _tab_order(window: MainWindow) -> list[str]:
    tabs = [window.tabs.widget(i) for i in range(1, window.tabs.count())]
    return [t.session_id for t in tabs if isinstance(t, SessionTab)]


def _second_console(c: Console, settings: Path) -> MainWindow:
    backend = WebSocketBackend(c.server.url, ME, c.server.passwords[ME], backoff=(0.1, 0.2, 0.5))
    window = build_window(backend, settings)
    c.qtbot.addWidget(window)
    window.show()
    window.start_soon()
    c.qtbot.waitUntil(lambda: backend.state is BackendState.LIVE and window.state.seq >= 0, timeout=timeout(10))
    return window


@pytest.mark.parametrize("how", ["closed", "crashed"])
def test_the_tabs_of_my_sessions_reopen_in_order_after_a_restart(console: Console, tmp_path: Path, how: str) -> None:
    order = _accept_three(console)
    first = console.window
    settings = first.settings.directory
    assert _tab_order(first) == order
    if how == "closed":
        first.quit_guard.close_now()  # quitting (the rep said yes): saves the settings
        run(console.qtbot, first.shutdown())
    else:
        # A crash: the connection drops and nothing is saved at the end.  What
        # was saved as the tabs opened is all the next console has.
        first.closing = True  # the window saves nothing from here on
        run(console.qtbot, first.shutdown())
        first.hide()
    saved = Settings.load(settings)[0].window
    assert saved["tabs"] == order
    window = _second_console(console, settings)
    try:
        console.qtbot.waitUntil(lambda: len(window.session_tabs) == 3, timeout=timeout(5))
        assert _tab_order(window) == order  # not the arrival order (A, B, C)
        current = window.tabs.currentWidget()
        if how == "closed":
            assert isinstance(current, SessionTab) and current.session_id == order[1]
        assert all(window.state.sessions[sid].owner == window.state.rep_id for sid in order)
    finally:
        window.quit_guard.close_now()
        run(console.qtbot, window.shutdown())
