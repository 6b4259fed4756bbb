"""The customer's live page in a browser-sharing session: rrweb's replayer in QtWebEngine.

:class:`CobrowseView` shows the page the customer's browser records, as it
changes.  The window hands it the backend's co-browse updates for its
session (:meth:`CobrowseView.add_batch`, :meth:`CobrowseView.set_status`);
it never talks to the backend itself.

* **Python → JavaScript**: batches wait in Python and go to the replayer
  page once per frame, in one ``runJavaScript`` call (``cobrowse.add``), as
  the texts they arrived as; the page parses them.
* **JavaScript → Python**: a click on the replica comes back over
  QWebChannel as a place on the customer's page (``pointRequested``).
* The replayer page (``resources/cobrowse/replayer.html``, with the vendored
  rrweb replayer inlined) is loaded with ``setHtml``: nothing of it comes
  from the network, and its content policy lets the replica fetch nothing
  either (images and fonts of the customer's site stay blank).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable

import msgspec
from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWebChannel import QWebChannel
from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineSettings
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from repconsole.backend.cobrowse import PageBatch, PageState, PageStatus
from repconsole.resources import read_bytes
from repconsole.ui import theme
from repconsole.ui.theme import Role
from repconsole.ui.widgets import badge_style, rule

__all__ = ["CobrowseView", "replayer_html"]

log = logging.getLogger(__name__)

_REPLAYER = "cobrowse/replayer.html"
# The replayer page's links to the vendored rrweb files, and what replaces each.
_INLINED = {
    '<link rel="stylesheet" href="../rrweb/replay.min.css">': ("rrweb/replay.min.css", "style"),
    '<script src="../rrweb/replay.min.js"></script>': ("rrweb/replay.min.js", "script"),
}
# The page's address for what it loads by absolute address (qwebchannel.js, from Qt's resources).
_BASE_URL = QUrl("qrc:///repconsole/cobrowse/")
_FRAME_MS = 16
# Delays (s) from which the delay shows amber, then red.
_SLOW, _LATE = 1.0, 5.0

# What the rep reads for each state: (the bar's badge, the line over the page).
_STATES: dict[PageState, tuple[str, str]] = {
    PageState.WAITING: ("Waiting", "Waiting for the customer's page…"),
    PageState.LIVE: ("Live", ""),
    PageState.RESYNC: ("Resyncing…", "Resyncing…"),
    PageState.RECONNECTING: ("Reconnecting…", "Reconnecting…"),
    PageState.STOPPED: ("Stopped sharing", "The customer stopped sharing."),
    PageState.ENDED: ("Ended", "The session has ended."),
}
# The badge's theme roles: (background, text).
_BADGE_COLOURS: dict[PageState, tuple[Role, Role]] = {
    PageState.LIVE: (Role.LIVE_BADGE, Role.LIVE_BADGE_TEXT),
    PageState.RESYNC: (Role.AMBER_BADGE, Role.AMBER_BADGE_TEXT),
    PageState.RECONNECTING: (Role.AMBER_BADGE, Role.AMBER_BADGE_TEXT),
}
_QUIET_BADGE = (Role.QUIET_BADGE, Role.QUIET_BADGE_TEXT)


def sandbox_refusal() -> str | None:
    """Why QtWebEngine cannot run here, or None.

    Chromium's sandbox will not start as root, and QtWebEngine then takes
    the whole process down.  The console keeps the sandbox (the page it
    renders is a stranger's): as root it shows this sentence instead of
    the page.  Only the tests turn the sandbox off (tests/conftest.py).
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    if "QTWEBENGINE_DISABLE_SANDBOX" in os.environ or "--no-sandbox" in os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", ""):
        return None
    return "The customer's page cannot be shown while repconsole runs as root: the web engine's sandbox refuses to. Run repconsole as a normal user."


@functools.cache
def replayer_html() -> str:
    """The replayer page, with the vendored rrweb replayer and its stylesheet inlined."""
    page = read_bytes(_REPLAYER).decode("utf-8")
    for link, (name, tag) in _INLINED.items():
        if link not in page:
            raise RuntimeError(f"{_REPLAYER} no longer links {name} as {link!r}")
        page = page.replace(link, f"<{tag}>{read_bytes(name).decode('utf-8')}</{tag}>")
    return page


class _Bridge(QObject):
    """What the replayer page calls, over QWebChannel."""

    pointed = Signal(float, float)
    snapshotRendered = Signal(int)
    channelReady = Signal()

    @Slot(float, float)
    def point(self, x: float, y: float) -> None:
        self.pointed.emit(x, y)

    @Slot(int)
    def rendered(self, count: int) -> None:
        self.snapshotRendered.emit(count)

    @Slot()
    def ready(self) -> None:
        self.channelReady.emit()


class _ReplayerPage(QWebEnginePage):
    """The replayer page: it never navigates, and its console goes to the log, not to Qt's."""

    def acceptNavigationRequest(self, url: QUrl | str, type: QWebEnginePage.NavigationType, isMainFrame: bool) -> bool:
        # setHtml's own load (a data: address) and the replica's blank frames; nothing else.
        scheme = QUrl(url).scheme()
        return scheme == "data" if isMainFrame else scheme == "about"

    def javaScriptConsoleMessage(self, level: QWebEnginePage.JavaScriptConsoleMessageLevel, message: str, line: int, source: str) -> None:
        log.info("replayer: %s (line %d)", message, line)


class CobrowseView(QWidget):
    """The customer's page, live and view-only, with where they are and how fresh it is.

    The bar says where the customer is ("Customer is on: URL", the page's
    title), how the stream stands, and how late the last change came (now
    minus when the server received it).  The replica is scaled to fit.  A
    click on it points there for the customer (a ring shows where); nothing
    else the rep does reaches the page.

    Signals:
        pointRequested(float, float): the rep clicked the page: where, in
            CSS pixels from the top left of the customer's document.
        openRequested(): the rep asked to open the live view in a web browser.
        snapshotRendered(int): the replica rebuilt a full snapshot (the
            count so far): the page shows.

    Attributes:
        web: the QtWebEngine view running the replayer (None where it cannot
            run: see :func:`sandbox_refusal`).
        url_label, title_label, state_label, delay_label: the bar.
        open_button: "Open in browser".
        state: the stream's state, None before the first status.
        delay: seconds the last change came after the server got it, None before one.
    """

    pointRequested = Signal(float, float)
    openRequested = Signal()
    snapshotRendered = Signal(int)

    def __init__(self, *, clock: Callable[[], float] = time.time, page_url: str = "", parent: QWidget | None = None) -> None:
        """``clock`` tells the time on the backend's clock, which batches are stamped with."""
        super().__init__(parent)
        self._clock = clock
        self.state: PageState | None = None
        self.delay: float | None = None
        self._pending: list[str] = []
        self._page: QWebEnginePage | None = None
        self._newest = 0.0  # when the server got the newest live batch pending
        self._loaded = False
        self._veil = _STATES[PageState.WAITING][1]

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._build_bar())
        layout.addWidget(rule())
        layout.addWidget(self._build_web(), 1)

        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(_FRAME_MS)
        self._flush_timer.timeout.connect(self._on_flush_timer_timeout)
        self._show_place(page_url, "")
        self._show_state()

    # ------------------------------------------------------------ public API

    def focus_chain(self) -> list[QWidget]:
        """Its controls in Tab order (the page itself takes no focus: it is view-only)."""
        return [self.open_button]

    def add_batch(self, batch: PageBatch) -> None:
        """Queue a batch of the page's events for the replica; it goes there within a frame."""
        if self._page is None:
            return
        self._pending.append(batch.events)
        if not batch.buffered:
            self._newest = max(self._newest, batch.at)
        if self._loaded and not self._flush_timer.isActive():
            self._flush_timer.start()

    def set_status(self, status: PageStatus) -> None:
        """Show where the stream stands and where the customer is (an empty address or title keeps the last)."""
        self._show_place(status.url, status.title)
        self.state = status.state
        self.state_label.setToolTip(status.detail)
        self._show_state()

    # -------------------------------------------------------------- building

    def _build_bar(self) -> QWidget:
        bar = QWidget()
        bar.setAutoFillBackground(True)
        bar.setBackgroundRole(QPalette.ColorRole.AlternateBase)  # a role: it follows a change of scheme
        layout = QVBoxLayout(bar)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)

        top = QHBoxLayout()
        top.setSpacing(8)
        heading = QLabel("Customer's page")
        bold = QFont(self.font())
        bold.setBold(True)
        heading.setFont(bold)
        self.state_label = QLabel()
        self.delay_label = QLabel()
        self.delay_label.setToolTip("How long the last change took to reach you after the server received it")
        self.open_button = QPushButton("Open in &browser")
        self.open_button.setToolTip("Open the customer's live page in your web browser (view-only)")
        self.open_button.setAutoDefault(False)
        self.open_button.clicked.connect(self._on_open_button_clicked)
        top.addWidget(heading)
        top.addWidget(self.state_label)
        top.addWidget(self.delay_label)
        top.addStretch(1)
        top.addWidget(self.open_button)
        layout.addLayout(top)

        self.url_label = QLabel()
        self.title_label = QLabel()
        for label in (self.url_label, self.title_label):
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title_label.setStyleSheet("color: palette(placeholder-text);")
        layout.addWidget(self.url_label)
        layout.addWidget(self.title_label)
        return bar

    def _build_web(self) -> QWidget:
        self.web: QWebEngineView | None = None
        refusal = sandbox_refusal()
        if refusal is not None:
            log.error("%s", refusal)
            label = QLabel(refusal)
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setMargin(24)
            return label
        self.web = QWebEngineView()
        self.web.setAccessibleName("Customer's page")
        self.web.setMinimumWidth(240)
        # View-only: no focus (so no keys), no menu (no Reload, Back…), no drops.
        self.web.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.web.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.web.setAcceptDrops(False)
        page = _ReplayerPage(self.web)
        settings = page.settings()
        for attribute, on in (
            (QWebEngineSettings.WebAttribute.LocalContentCanAccessRemoteUrls, False),
            (QWebEngineSettings.WebAttribute.JavascriptCanOpenWindows, False),
            (QWebEngineSettings.WebAttribute.PluginsEnabled, False),
            (QWebEngineSettings.WebAttribute.ErrorPageEnabled, False),
            (QWebEngineSettings.WebAttribute.FocusOnNavigationEnabled, False),
        ):
            settings.setAttribute(attribute, on)
        self._bridge = _Bridge(self)
        self._bridge.pointed.connect(self._on_bridge_pointed)
        self._bridge.snapshotRendered.connect(self.snapshotRendered)
        channel = QWebChannel(page)
        channel.registerObject("bridge", self._bridge)
        page.setWebChannel(channel)
        page.loadFinished.connect(self._on_page_loadFinished)
        self.web.setPage(page)
        page.setHtml(replayer_html(), _BASE_URL)
        self._page = page
        return self.web

    # ------------------------------------------------------------ refreshing

    def _show_place(self, url: str, title: str) -> None:
        if url:
            self.url_label.setText(f"Customer is on: {url}")
            self.url_label.setToolTip(url)
        elif not self.url_label.text():
            self.url_label.setText("Customer is on: (no address reported yet)")
        if title:
            self.title_label.setText(title)
            self.title_label.setToolTip(title)
        self.title_label.setVisible(bool(self.title_label.text()))

    def _show_state(self) -> None:
        state = self.state or PageState.WAITING
        badge, veil = _STATES[state]
        background, colour = _BADGE_COLOURS.get(state, _QUIET_BADGE)
        self.state_label.setText(badge)
        theme.set_style(self.state_label, badge_style(background, colour))
        self.delay_label.setVisible(state is PageState.LIVE and self.delay is not None)
        self._set_veil(veil)

    def _show_delay(self) -> None:
        delay = self.delay
        if delay is None:
            return
        colour = Role.SUCCESS_TEXT if delay < _SLOW else Role.WARNING_TEXT if delay < _LATE else Role.DANGER_TEXT
        self.delay_label.setText(f"{delay:.1f} s behind")
        theme.set_style(self.delay_label, f"color: ${colour.value};")
        self.delay_label.setVisible(self.state is PageState.LIVE)

    def _set_veil(self, text: str) -> None:
        self._veil = text
        if self._page is not None and self._loaded:
            self._page.runJavaScript(f"cobrowse.veil({_json(text)})")

    # ----------------------------------------------------------------- slots

    def _on_page_loadFinished(self, ok: bool) -> None:
        if not ok:
            log.error("the replayer page did not load")
            return
        self._loaded = True
        self._set_veil(self._veil)
        if self._pending:
            self._flush_timer.start()

    def _on_flush_timer_timeout(self) -> None:
        if self._page is None or not self._pending:
            return
        texts, self._pending = self._pending, []
        self._page.runJavaScript(f"cobrowse.add({_json(texts)})")
        if self._newest:
            self.delay = max(0.0, self._clock() - self._newest)
            self._newest = 0.0
            self._show_delay()

    def _on_bridge_pointed(self, x: float, y: float) -> None:
        self.pointRequested.emit(x, y)

    def _on_open_button_clicked(self) -> None:
        self.openRequested.emit()


def _json(value: object) -> str:
    """``value`` as a JavaScript literal (JSON is one)."""
    return msgspec.json.encode(value).decode("utf-8")
