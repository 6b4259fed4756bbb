"""The console's colours, light and dark, in one place, and the switch between them.

Every colour the console draws comes from here: the Qt palette it installs
(window, text, selection, tooltip…) and a few semantic roles the palette has
no name for (overdue, badges, the transfer note, the chat's authors).  Each
exists once for light and once for dark, and ``tests/test_theme.py`` checks
every text/background pair listed in :data:`TEXT_PAIRS` for WCAG AA contrast
(4.5:1) and every icon against what it is drawn on (3:1, :data:`GRAPHIC_PAIRS`).

Why the console installs its own palettes rather than taking the desktop's:
the semantic colours are chosen and checked against these backgrounds, and
Qt's stock Fusion palette fails AA itself (white on its selection blue is
3.6:1).  Which of the two is used follows the rep's ``appearance.theme``
preference, and for "system" the desktop's colour scheme
(:meth:`QStyleHints.colorScheme`), live.

Widgets use the roles three ways:

- :func:`colour` / :func:`css` at paint or render time (models, delegates,
  icons, HTML);
- :func:`set_style`, a style sheet with ``$role`` placeholders that is
  filled in again whenever the scheme changes;
- :attr:`ThemeController.changed`, for what must be redrawn by hand (a chat
  transcript's existing lines).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from string import Template

import shiboken6
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QToolTip, QWidget

from repconsole.preferences import Theme

__all__ = [
    "GRAPHIC_PAIRS",
    "PALETTE_COLOURS",
    "ROLE_COLOURS",
    "TEXT_PAIRS",
    "Role",
    "ThemeController",
    "build_palette",
    "colour",
    "contrast",
    "controller",
    "css",
    "follow",
    "hex_of",
    "is_dark",
    "render_style",
    "set_style",
]


class Role(enum.StrEnum):
    """A semantic colour; its value is its ``$name`` in :func:`set_style` templates."""

    # Status lines and labels on the window background.
    WARNING_TEXT = "warning_text"
    ERROR_TEXT = "error_text"
    NOTICE_TEXT = "notice_text"
    SUCCESS_TEXT = "success_text"
    DANGER_TEXT = "danger_text"  # End session: a destructive button's text
    SECONDARY_TEXT = "secondary_text"  # captions, times, "no company given"
    ACCENT_TEXT = "accent_text"  # the browser-session prefix
    # The queue table.
    OVERDUE_ROW = "overdue_row"
    OVERDUE_TEXT = "overdue_text"
    HELD_TEXT = "held_text"
    INVITATION_TEXT = "invitation_text"
    # The queue list's count badge.
    COUNT_BADGE = "count_badge"
    COUNT_BADGE_TEXT = "count_badge_text"
    EMPTY_BADGE = "empty_badge"
    EMPTY_BADGE_TEXT = "empty_badge_text"
    # Small labelled badges: priority, on hold, ended, the page's state.
    QUIET_BADGE = "quiet_badge"
    QUIET_BADGE_TEXT = "quiet_badge_text"
    INFO_BADGE = "info_badge"
    INFO_BADGE_TEXT = "info_badge_text"
    AMBER_BADGE = "amber_badge"
    AMBER_BADGE_TEXT = "amber_badge_text"
    URGENT_BADGE = "urgent_badge"
    URGENT_BADGE_TEXT = "urgent_badge_text"
    HELD_BADGE = "held_badge"
    HELD_BADGE_TEXT = "held_badge_text"
    LIVE_BADGE = "live_badge"
    LIVE_BADGE_TEXT = "live_badge_text"
    # Strips in a session tab.
    ERROR_STRIP = "error_strip"
    ERROR_STRIP_BORDER = "error_strip_border"
    ERROR_STRIP_TEXT = "error_strip_text"
    NOTE = "note"
    NOTE_BORDER = "note_border"
    NOTE_ACCENT = "note_accent"
    NOTE_TEXT = "note_text"
    NOTE_CREDIT = "note_credit"
    # The chat transcript.
    CHAT_TIME = "chat_time"
    CHAT_CUSTOMER = "chat_customer"
    CHAT_ME = "chat_me"
    CHAT_REP = "chat_rep"
    CHAT_EVENT = "chat_event"
    CHAT_LINK = "chat_link"
    CHAT_DIVIDER = "chat_divider"
    CHAT_NEW = "chat_new"
    REPS_ONLY = "reps_only"  # the tint of reps-only lines and input
    REPS_TAG = "reps_tag"
    REPS_TAG_TEXT = "reps_tag_text"
    REPS_BORDER = "reps_border"  # the reps-only input's frame
    # Presence: the dot and the word beside a rep.
    STATUS_AVAILABLE = "status_available"
    STATUS_BUSY = "status_busy"
    STATUS_AWAY = "status_away"
    STATUS_OFFLINE = "status_offline"
    # Drawn icons.
    STAR = "star"
    STAR_OUTLINE = "star_outline"
    STAR_EMPTY = "star_empty"
    BUBBLE = "bubble"
    BUBBLE_OUTLINE = "bubble_outline"
    BUBBLE_DOTS = "bubble_dots"
    PERSON = "person"


_C = QPalette.ColorRole
Colour = Role | QPalette.ColorRole

# The Qt palettes (active and inactive groups; the disabled group is below).
PALETTE_COLOURS: dict[bool, dict[QPalette.ColorRole, str]] = {
    False: {
        _C.Window: "#efefef",
        _C.WindowText: "#1a1a1a",
        _C.Base: "#ffffff",
        _C.AlternateBase: "#f5f6f7",
        _C.Text: "#1a1a1a",
        _C.Button: "#efefef",
        _C.ButtonText: "#1a1a1a",
        _C.BrightText: "#ffffff",
        _C.Highlight: "#1f5f9e",
        _C.HighlightedText: "#ffffff",
        _C.ToolTipBase: "#fff6cc",
        _C.ToolTipText: "#1a1a1a",
        _C.PlaceholderText: "#5f6368",
        _C.Link: "#0b57b0",
        _C.LinkVisited: "#6b3fa0",
        _C.Accent: "#1f5f9e",
        _C.Light: "#ffffff",
        _C.Midlight: "#e3e3e3",
        _C.Mid: "#b8b8b8",
        _C.Dark: "#9f9f9f",
        _C.Shadow: "#767676",
    },
    True: {
        _C.Window: "#2b2d30",
        _C.WindowText: "#e8e8e8",
        _C.Base: "#1e1f22",
        _C.AlternateBase: "#26282b",
        _C.Text: "#e8e8e8",
        _C.Button: "#3a3d41",
        _C.ButtonText: "#e8e8e8",
        _C.BrightText: "#ffffff",
        _C.Highlight: "#2a5f9e",
        _C.HighlightedText: "#ffffff",
        _C.ToolTipBase: "#4a3f14",
        _C.ToolTipText: "#fbf1c7",
        _C.PlaceholderText: "#a3a8b0",
        _C.Link: "#79b8ff",
        _C.LinkVisited: "#c4a5f5",
        _C.Accent: "#2a5f9e",
        _C.Light: "#505358",
        _C.Midlight: "#43464b",
        _C.Mid: "#5c6066",
        _C.Dark: "#191a1c",
        _C.Shadow: "#000000",
    },
}
# Disabled controls: WCAG exempts them from contrast, but they stay legible.
_DISABLED: dict[bool, dict[QPalette.ColorRole, str]] = {
    False: {_C.WindowText: "#8c8c8c", _C.Text: "#8c8c8c", _C.ButtonText: "#8c8c8c", _C.Highlight: "#9a9a9a", _C.HighlightedText: "#ffffff",
            _C.Base: "#f5f5f5", _C.Button: "#e6e6e6", _C.PlaceholderText: "#a0a0a0"},
    True: {_C.WindowText: "#7d8187", _C.Text: "#7d8187", _C.ButtonText: "#7d8187", _C.Highlight: "#4a4d52", _C.HighlightedText: "#c8c8c8",
           _C.Base: "#232427", _C.Button: "#313337", _C.PlaceholderText: "#6b6f75"},
}

# The semantic roles: (light, dark).
_ROLES: dict[Role, tuple[str, str]] = {
    Role.WARNING_TEXT: ("#8a4b00", "#f0b072"),
    Role.ERROR_TEXT: ("#b00020", "#ff8a80"),
    Role.NOTICE_TEXT: ("#2d4a6b", "#a8cbf0"),
    Role.SUCCESS_TEXT: ("#166534", "#7ee2a8"),
    Role.DANGER_TEXT: ("#a61d12", "#ff8f87"),
    Role.SECONDARY_TEXT: ("#5f6368", "#a3a8b0"),
    Role.ACCENT_TEXT: ("#14609e", "#79b8ff"),
    Role.OVERDUE_ROW: ("#fce4e6", "#4a1f25"),
    Role.OVERDUE_TEXT: ("#a8121f", "#ffa3aa"),
    Role.HELD_TEXT: ("#5f6368", "#a3a8b0"),
    Role.INVITATION_TEXT: ("#1d4ed8", "#93bbff"),
    Role.COUNT_BADGE: ("#2f5f96", "#a8cbf0"),
    Role.COUNT_BADGE_TEXT: ("#ffffff", "#0f2236"),
    Role.EMPTY_BADGE: ("#e3e6ea", "#3a3d42"),
    Role.EMPTY_BADGE_TEXT: ("#4b5563", "#c3c7cd"),
    Role.QUIET_BADGE: ("#e5e7eb", "#3a3d42"),
    Role.QUIET_BADGE_TEXT: ("#374151", "#d3d7dd"),
    Role.INFO_BADGE: ("#e3edfd", "#1e3a66"),
    Role.INFO_BADGE_TEXT: ("#1d4ed8", "#c2d8ff"),
    Role.AMBER_BADGE: ("#fef3c7", "#4a3a10"),
    Role.AMBER_BADGE_TEXT: ("#8a3c0c", "#fcd88a"),
    Role.URGENT_BADGE: ("#fde2e1", "#5a1f1c"),
    Role.URGENT_BADGE_TEXT: ("#a61d12", "#ffc1bb"),
    Role.HELD_BADGE: ("#fde68a", "#5a4a12"),
    Role.HELD_BADGE_TEXT: ("#713f12", "#fde68a"),
    Role.LIVE_BADGE: ("#dcfce7", "#15402a"),
    Role.LIVE_BADGE_TEXT: ("#166534", "#a7f3c4"),
    Role.ERROR_STRIP: ("#fdecea", "#4a1f1c"),
    Role.ERROR_STRIP_BORDER: ("#f3b4ae", "#8a3a33"),
    Role.ERROR_STRIP_TEXT: ("#8a1c12", "#ffc9c3"),
    Role.NOTE: ("#fff6cc", "#3d3515"),
    Role.NOTE_BORDER: ("#e9cf5f", "#6b5a1f"),
    Role.NOTE_ACCENT: ("#e0b400", "#c9a227"),
    Role.NOTE_TEXT: ("#4a3b00", "#f5e7b0"),
    Role.NOTE_CREDIT: ("#6b5a10", "#d8c78a"),
    Role.CHAT_TIME: ("#61676f", "#979fa8"),
    Role.CHAT_CUSTOMER: ("#0b5cad", "#79b8ff"),
    Role.CHAT_ME: ("#1a6e36", "#7ee2a8"),
    Role.CHAT_REP: ("#8f4700", "#f0b072"),
    Role.CHAT_EVENT: ("#5c636e", "#a3abb5"),
    Role.CHAT_LINK: ("#0b5cad", "#79b8ff"),
    Role.CHAT_DIVIDER: ("#5f666f", "#979fa8"),
    Role.CHAT_NEW: ("#b3390a", "#ff9a6e"),
    Role.REPS_ONLY: ("#f3eefc", "#2d2640"),
    Role.REPS_TAG: ("#6b3fa0", "#7450b0"),
    Role.REPS_TAG_TEXT: ("#ffffff", "#ffffff"),
    Role.REPS_BORDER: ("#6b3fa0", "#a58ad6"),
    Role.STATUS_AVAILABLE: ("#1e7a3c", "#6fd69a"),
    Role.STATUS_BUSY: ("#9a4d00", "#f0b072"),
    Role.STATUS_AWAY: ("#5f6368", "#a3a8b0"),
    Role.STATUS_OFFLINE: ("#8a8f96", "#6f747b"),
    Role.STAR: ("#f5b400", "#f5b400"),
    Role.STAR_OUTLINE: ("#9a6f00", "#ffd24d"),
    Role.STAR_EMPTY: ("#767b82", "#8f959c"),
    Role.BUBBLE: ("#c45a00", "#d0680a"),
    Role.BUBBLE_OUTLINE: ("#9a4700", "#ffb056"),
    Role.BUBBLE_DOTS: ("#ffffff", "#ffffff"),
    Role.PERSON: ("#2f5f96", "#8fbbec"),
}
ROLE_COLOURS: dict[bool, dict[Role, str]] = {dark: {role: pair[int(dark)] for role, pair in _ROLES.items()} for dark in (False, True)}
_STYLE_VALUES: dict[bool, dict[str, str]] = {dark: {role.value: hex_colour for role, hex_colour in table.items()} for dark, table in ROLE_COLOURS.items()}

_BADGES = (
    (Role.QUIET_BADGE_TEXT, Role.QUIET_BADGE),
    (Role.INFO_BADGE_TEXT, Role.INFO_BADGE),
    (Role.AMBER_BADGE_TEXT, Role.AMBER_BADGE),
    (Role.URGENT_BADGE_TEXT, Role.URGENT_BADGE),
    (Role.HELD_BADGE_TEXT, Role.HELD_BADGE),
    (Role.LIVE_BADGE_TEXT, Role.LIVE_BADGE),
    (Role.COUNT_BADGE_TEXT, Role.COUNT_BADGE),
    (Role.EMPTY_BADGE_TEXT, Role.EMPTY_BADGE),
    (Role.REPS_TAG_TEXT, Role.REPS_TAG),
)
_CHAT_TEXT = (Role.CHAT_TIME, Role.CHAT_CUSTOMER, Role.CHAT_ME, Role.CHAT_REP, Role.CHAT_EVENT, Role.CHAT_LINK, Role.CHAT_DIVIDER, Role.CHAT_NEW, _C.Text)

# Every text colour with every background it is drawn on: each must reach 4.5:1.
TEXT_PAIRS: tuple[tuple[Colour, Colour], ...] = (
    # Palette roles, as Qt's styles and the console's widgets pair them.
    (_C.WindowText, _C.Window),
    (_C.WindowText, _C.AlternateBase),  # the session header and page bars (Window role on AlternateBase)
    (_C.Text, _C.Base),
    (_C.Text, _C.AlternateBase),
    (_C.ButtonText, _C.Button),
    (_C.HighlightedText, _C.Highlight),
    (_C.ToolTipText, _C.ToolTipBase),  # tooltips, the alert banner, the outage banner
    (_C.PlaceholderText, _C.Base),
    (_C.PlaceholderText, _C.Window),
    (_C.PlaceholderText, _C.AlternateBase),
    (_C.Link, _C.Base),
    (_C.Link, _C.Window),
    # Labels on the window.
    *((role, _C.Window) for role in (Role.WARNING_TEXT, Role.ERROR_TEXT, Role.NOTICE_TEXT, Role.SECONDARY_TEXT, Role.ACCENT_TEXT)),
    (Role.SECONDARY_TEXT, _C.Base),
    (Role.DANGER_TEXT, _C.Button),
    *((role, _C.AlternateBase) for role in (Role.SUCCESS_TEXT, Role.WARNING_TEXT, Role.DANGER_TEXT)),
    # The queue table: plain, alternate and overdue rows.
    *((fg, bg) for fg in (_C.Text, Role.HELD_TEXT, Role.INVITATION_TEXT) for bg in (_C.Base, _C.AlternateBase, Role.OVERDUE_ROW)),
    (Role.OVERDUE_TEXT, Role.OVERDUE_ROW),
    *_BADGES,
    (Role.ERROR_STRIP_TEXT, Role.ERROR_STRIP),
    (Role.NOTE_TEXT, Role.NOTE),
    (Role.NOTE_CREDIT, Role.NOTE),
    # The chat: every author colour on the transcript and on a reps-only line.
    *((fg, bg) for fg in _CHAT_TEXT for bg in (_C.Base, Role.REPS_ONLY)),
    *((role, _C.Base) for role in (Role.STATUS_AVAILABLE, Role.STATUS_BUSY, Role.STATUS_AWAY)),
)
# Icons and their edges against what they are drawn on: 3:1 (WCAG 1.4.11, non-text contrast).
GRAPHIC_PAIRS: tuple[tuple[Colour, Colour], ...] = (
    *((icon, bg) for icon in (Role.STAR_OUTLINE, Role.STAR_EMPTY, Role.BUBBLE_OUTLINE, Role.PERSON) for bg in (_C.Base, _C.AlternateBase)),
    (Role.BUBBLE_DOTS, Role.BUBBLE),
    (Role.STAR, _C.Highlight),
    (_C.HighlightedText, _C.Highlight),  # on a selected row: the empty star, the person and the bubble's edge
    *((dot, bg) for dot in (Role.STATUS_AVAILABLE, Role.STATUS_BUSY, Role.STATUS_AWAY, Role.STATUS_OFFLINE) for bg in (_C.Base,)),
    (Role.REPS_BORDER, _C.Base),
)


# ------------------------------------------------------------------ colours

_dark = False
_qcolours: dict[bool, dict[Role, QColor]] = {}


def hex_of(which: Colour, dark: bool) -> str:
    """The ``#rrggbb`` of a role or palette role in the light or dark scheme."""
    if isinstance(which, Role):
        return ROLE_COLOURS[dark][which]
    return PALETTE_COLOURS[dark][which]


def is_dark() -> bool:
    """Whether the console is drawn dark now."""
    return _dark


def colour(role: Role) -> QColor:
    """The current colour of ``role`` (shared: do not modify it)."""
    table = _qcolours.get(_dark)
    if table is None:
        table = _qcolours[_dark] = {r: QColor(h) for r, h in ROLE_COLOURS[_dark].items()}
    return table[role]


def css(role: Role) -> str:
    """The current colour of ``role`` for a style sheet or HTML (``#rrggbb``)."""
    return ROLE_COLOURS[_dark][role]


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    """The WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    a, b = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def build_palette(dark: bool) -> QPalette:
    """The Qt palette of the light or dark scheme."""
    palette = QPalette()
    for role, hex_colour in PALETTE_COLOURS[dark].items():
        palette.setColor(role, QColor(hex_colour))  # active and inactive alike
    for role, hex_colour in _DISABLED[dark].items():
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(hex_colour))
    return palette


# ------------------------------------------------------------- style sheets

_STYLE_PROPERTY = "themeStyle"


def render_style(template: str) -> str:
    """``template`` with its ``$role`` placeholders replaced by the current colours."""
    return Template(template).substitute(_STYLE_VALUES[_dark])


def set_style(widget: QWidget, template: str) -> None:
    """Give ``widget`` the style sheet ``template`` (``$role`` placeholders), now and after every scheme change."""
    widget.setProperty(_STYLE_PROPERTY, template)
    widget.setStyleSheet(render_style(template))


def _restyle_all() -> None:
    # A widget with a style sheet keeps the palette Qt worked out when the
    # sheet was set (even a sheet that names no colour, only a font): set
    # every sheet again so it takes the new palette, and fill in the $role
    # templates anew.
    for widget in QApplication.allWidgets():
        template = widget.property(_STYLE_PROPERTY)
        if template:
            widget.setStyleSheet(render_style(str(template)))
        elif sheet := widget.styleSheet():
            widget.setStyleSheet(sheet)


# --------------------------------------------------------------- the switch


class ThemeController(QObject):
    """Installs the light or dark palette, following the preference and the desktop.

    Signals:
        changed(bool): the scheme changed (True: dark); emitted after the
            palette and the style sheets changed.
    """

    changed = Signal(bool)

    def __init__(self, app: QApplication, preference: Callable[[], Theme], system: Callable[[], Qt.ColorScheme] | None = None) -> None:
        super().__init__(app)
        self._app = app
        self.preference = preference
        hints = app.styleHints()
        self.system = system or hints.colorScheme  # the desktop's scheme (tests replace it)
        self._applying = False
        self.dark: bool | None = None  # None: nothing installed yet
        hints.colorSchemeChanged.connect(self._on_hints_colorSchemeChanged)

    def wants_dark(self) -> bool:
        """Whether the preference, or for "system" the desktop, asks for dark."""
        theme = self.preference()
        if theme is Theme.SYSTEM:
            return self.system() == Qt.ColorScheme.Dark
        return theme is Theme.DARK

    def apply(self) -> bool:
        """Install the scheme the preference and the desktop ask for (if it changed); True if dark."""
        if self._applying:
            return bool(self.dark)
        self._applying = True
        try:
            hints = self._app.styleHints()
            theme = self.preference()
            # Tell the platform too (native title bars and dialogs), or let it
            # follow the desktop again.  Qt 6.8 added these; 6.7 does without.
            if not hasattr(hints, "unsetColorScheme"):
                pass
            elif theme is Theme.SYSTEM:
                hints.unsetColorScheme()
            else:
                hints.setColorScheme(Qt.ColorScheme.Dark if theme is Theme.DARK else Qt.ColorScheme.Light)
            dark = self.wants_dark()
            if dark == self.dark:
                return dark
            global _dark
            _dark = dark
            self.dark = dark
            palette = build_palette(dark)
            self._app.setPalette(palette)
            QToolTip.setPalette(palette)
            # Qt posts the change to the windows; deliver it now, so the style
            # sheets below resolve palette(...) against the new palette, and
            # whoever hears `changed` finds every widget's palette new.
            QApplication.sendPostedEvents(None, int(QEvent.Type.ApplicationPaletteChange.value))
            _restyle_all()
        finally:
            self._applying = False
        self.changed.emit(dark)
        return dark

    def _on_hints_colorSchemeChanged(self, scheme: Qt.ColorScheme) -> None:
        self.apply()


_controller: ThemeController | None = None


def controller() -> ThemeController:
    """The application's theme controller (made on first use; it follows "system" until :func:`follow`)."""
    global _controller
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        raise RuntimeError("the theme needs a QApplication")
    # One per application: it is the application's child, so it goes (and is made anew) with it.
    if _controller is None or not shiboken6.isValid(_controller):
        _controller = ThemeController(app, lambda: Theme.SYSTEM)
    return _controller


def follow(preference: Callable[[], Theme]) -> ThemeController:
    """Follow ``preference`` (read again at every change) and install its scheme now."""
    ctl = controller()
    ctl.preference = preference
    ctl.apply()
    return ctl
