"""Light and dark: one place for colours, WCAG contrast in both schemes, and the switch.

- No colour is written anywhere in repconsole/ui but ui/theme.py (a scan of
  the source, which is shown to catch each kind of hard-coded colour).
- Every text/background pair the theme lists reaches 4.5:1 and every icon
  3:1, light and dark; every palette role the UI draws text with is listed.
- The scheme follows appearance.theme at once (from the Preferences dialog)
  and, for "system", the desktop's colour scheme as it changes; what was
  already drawn (chat lines, style sheets, icons) takes the new colours.
- Screenshots of the main window and a session tab in both schemes:
  /tmp/light-main.png, /tmp/dark-main.png, /tmp/light-session.png,
  /tmp/dark-session.png.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import timeout
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QRadioButton
from test_console import Console, open_console

from repconsole.backend.world import ME
from repconsole.core.clock import ManualClock
from repconsole.core.model import QueueRef
from repconsole.core.state import ConsoleState
from repconsole.preferences import Theme
from repconsole.protocol import CUSTOMER, LineView, Visibility
from repconsole.ui import theme
from repconsole.ui.chatlog import ChatLog
from repconsole.ui.icons import star_icon
from repconsole.ui.resources import app_pixmap
from repconsole.ui.theme import GRAPHIC_PAIRS, PALETTE_COLOURS, TEXT_PAIRS, Role, contrast, hex_of

UI = Path(__file__).resolve().parents[1] / "repconsole" / "ui"
T = 1_800_000_000.0
_C = QPalette.ColorRole


# ------------------------------------------------------- no hard-coded colours

_HEX = re.compile(r"#(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{6}|[0-9a-fA-F]{3,4})(?![0-9a-zA-Z])")
_FUNCTION = re.compile(r"\b(?:rgba?|hsla?|hsv)\s*\(", re.IGNORECASE)
_DECLARATION = re.compile(r"\b((?:background-)?color|background|border(?:-[a-z]+)*|selection-[a-z-]+|gridline-color)\s*:\s*([^;{}\"']*)", re.IGNORECASE)
# What a style declaration may hold besides sizes: a palette role, a $role of the theme, no colour at all.
_ALLOWED_WORDS = {"transparent", "none", "solid", "dashed", "dotted", "inherit"}
_COLOUR_NAMES = {
    "white", "black", "red", "green", "blue", "yellow", "cyan", "magenta", "gray", "grey", "darkgray", "darkgrey",
    "lightgray", "lightgrey", "darkred", "darkgreen", "darkblue", "darkcyan", "darkmagenta", "darkyellow", "orange",
}


def _strings(source: str) -> Iterator[tuple[int, str]]:
    """The text of every string literal (and f-string part) with its line."""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            yield tok.start[0], tok.string


def hard_coded_colours(source: str, name: str = "<source>") -> list[str]:
    """Where ``source`` writes a colour itself rather than taking a palette or theme role."""
    found: list[str] = []
    for line, text in _strings(source):
        found += [f"{name}:{line}: {m.group(0)}" for m in _HEX.finditer(text)]
        found += [f"{name}:{line}: {m.group(0)}" for m in _FUNCTION.finditer(text)]
        for m in _DECLARATION.finditer(text):
            value = re.sub(r"palette\([a-z-]+\)|\$\{?[a-z_]+\}?|-?\d+(?:\.\d+)?(?:px|pt|em|%)?", " ", m.group(2).lower())
            words = set(re.findall(r"[a-z][a-z-]*", value)) - _ALLOWED_WORDS
            if words:
                found.append(f"{name}:{line}: {m.group(0).strip()}")
        if text.strip("'\"").lower() in _COLOUR_NAMES:
            found.append(f"{name}:{line}: {text}")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {"QColor", "QBrush"}:
            if any(isinstance(a, ast.Constant) or _is_global_colour(a) for a in node.args):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Attribute) and _is_global_colour(node):
            found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "setColor":
            found.append(f"{name}:{node.lineno}: {ast.unparse(node)} (palettes are built in ui/theme.py)")
    return found


def _is_global_colour(node: ast.AST) -> bool:
    """``Qt.GlobalColor.red`` or ``Qt.red`` (transparent is no colour)."""
    if not isinstance(node, ast.Attribute) or node.attr == "transparent":
        return False
    owner = ast.unparse(node.value)
    return owner.endswith("GlobalColor") or (owner == "Qt" and node.attr.lower() in _COLOUR_NAMES)


def test_the_scan_finds_each_kind_of_hard_coded_colour() -> None:
    bad = '''
label.setStyleSheet("color: #a15c00; font-weight: 600;")
label.setStyleSheet(f"QLabel {{ background: {x}; color: white; }}")
html = f'<span style="color:#666">{name}</span>'
html2 = '<td style="color: rgb(10, 20, 30)">'
painter.setBrush(QColor("#3b6ea5"))
painter.setPen(QColor(196, 30, 45))
pen = QColor(Qt.GlobalColor.red)
brush = Qt.GlobalColor.darkGray
pixmap.fill(Qt.white)
pal.setColor(QPalette.ColorRole.Window, other)
ink = "white"
'''
    found = hard_coded_colours(bad)
    lines = sorted({int(f.split(":")[1]) for f in found})
    assert lines == list(range(2, 13)), found
    good = '''
# a comment may say #ffffff
pixmap.fill(Qt.GlobalColor.transparent)
theme.set_style(label, "color: $warning_text; font-weight: 600;")
label.setStyleSheet("color: palette(placeholder-text);")
line.setStyleSheet("QFrame { color: palette(mid); border: 1px solid palette(mid); background: transparent; }")
painter.setBrush(theme.colour(Role.COUNT_BADGE))
html = f'<span style="color:{theme.css(Role.NOTE_CREDIT)}">x</span>'
issue = "#12"
'''
    assert hard_coded_colours(good) == []


def test_no_hard_coded_colour_in_the_ui_outside_the_theme() -> None:
    found: list[str] = []
    for path in sorted(UI.glob("*.py")):
        if path.name != "theme.py":
            found += hard_coded_colours(path.read_text(encoding="utf-8"), path.name)
    assert not found, "colours written outside repconsole/ui/theme.py (use a palette or theme role):\n" + "\n".join(found)


# --------------------------------------------------------------- contrast


def test_the_contrast_ratio_is_wcags() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffffff", "#000000") == pytest.approx(21.0)
    assert contrast("#777777", "#777777") == pytest.approx(1.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the lightest grey that passes AA on white
    assert contrast("#308cc6", "#ffffff") < 4.5  # Qt's Fusion selection: why the console has its own palettes


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_every_text_pair_reaches_aa_and_every_icon_3_to_1(dark: bool) -> None:
    weak = [f"{fg} on {bg}: {contrast(hex_of(fg, dark), hex_of(bg, dark)):.2f}"
            for fg, bg in TEXT_PAIRS if contrast(hex_of(fg, dark), hex_of(bg, dark)) < 4.5]
    weak += [f"icon {fg} on {bg}: {contrast(hex_of(fg, dark), hex_of(bg, dark)):.2f}"
             for fg, bg in GRAPHIC_PAIRS if contrast(hex_of(fg, dark), hex_of(bg, dark)) < 3.0]
    assert not weak, "\n".join(weak)


@pytest.mark.parametrize("size", [16, 22, 32])
def test_the_app_and_tray_icon_reads_on_light_and_dark_panels(qapp, size: int) -> None:  # type: ignore[no-untyped-def]
    """The tray shows the app icon on the desktop's panel, light or dark: it carries its own tile.

    Its white headset stands out from the blue tile (3:1), and against each
    panel colour one of the two does, so the icon never melts into it.
    """
    image = app_pixmap(size).toImage()
    tile: list[QColor] = []
    glyph: list[QColor] = []
    for y in range(image.height()):
        for x in range(image.width()):
            c = image.pixelColor(x, y)
            if c.alpha() == 255:
                (glyph if c.saturationF() < 0.15 and c.valueF() > 0.9 else tile).append(c)
    assert tile and glyph

    def mean(colours: list[QColor]) -> str:
        return "#" + "".join(f"{sum(getattr(c, ch)() for c in colours) // len(colours):02x}" for ch in ("red", "green", "blue"))

    assert contrast(mean(tile), mean(glyph)) >= 3.0
    for dark in (False, True):
        panel = PALETTE_COLOURS[dark][_C.Window]
        assert max(contrast(mean(tile), panel), contrast(mean(glyph), panel)) >= 3.0


# Roles that only draw lines around something already checked (a frame, a strip's edge).
_DECORATIVE = {Role.ERROR_STRIP_BORDER, Role.NOTE_BORDER, Role.NOTE_ACCENT}


def test_every_role_is_checked_and_used() -> None:
    paired = {c for pair in TEXT_PAIRS + GRAPHIC_PAIRS for c in pair}
    assert not [r for r in Role if r not in paired and r not in _DECORATIVE], "a role in no contrast pair"
    code = "\n".join(p.read_text(encoding="utf-8") for p in UI.glob("*.py") if p.name != "theme.py")
    unused = [r for r in Role if f"Role.{r.name}" not in code and f"${r.value}" not in code]
    assert not unused, f"roles nothing draws with: {unused}"


def _palette_roles_used() -> tuple[set[str], set[str]]:
    """(text roles, background roles) the UI names: palette(x) in style sheets, set*Role(...) in code."""
    code = "\n".join(p.read_text(encoding="utf-8") for p in UI.glob("*.py") if p.name != "theme.py")
    text = {m.group(1) for m in re.finditer(r"color:\s*palette\(([a-z-]+)\)", code)}
    text |= set(re.findall(r"setForegroundRole\(QPalette\.ColorRole\.(\w+)\)", code))
    back = {m.group(1) for m in re.finditer(r"background(?:-color)?:\s*palette\(([a-z-]+)\)", code)}
    back |= set(re.findall(r"setBackgroundRole\(QPalette\.ColorRole\.(\w+)\)", code))
    camel = {"placeholder-text": "PlaceholderText", "window": "Window", "base": "Base", "mid": "Mid", "window-text": "WindowText",
             "text": "Text", "alternate-base": "AlternateBase", "highlight": "Highlight", "highlighted-text": "HighlightedText"}
    return {camel.get(n, n) for n in text}, {camel.get(n, n) for n in back}


# Palette roles that only draw separator lines (decoration, not text or a control's edge).
_SEPARATORS = {"Mid"}


def test_the_palette_roles_the_ui_draws_with_are_in_checked_pairs() -> None:
    text, back = _palette_roles_used()
    text -= _SEPARATORS
    assert {"PlaceholderText", "ToolTipText"} <= text and {"ToolTipBase", "AlternateBase"} <= back  # the scan sees them
    fgs = {fg.name for fg, _ in TEXT_PAIRS if isinstance(fg, QPalette.ColorRole)}
    bgs = {bg.name for _, bg in TEXT_PAIRS if isinstance(bg, QPalette.ColorRole)}
    assert text <= fgs, f"text roles in no checked pair: {text - fgs}"
    assert back <= bgs, f"background roles in no checked pair: {back - bgs}"
    for dark in (False, True):
        assert {QPalette.ColorRole[n] for n in text | back} <= set(PALETTE_COLOURS[dark])


# -------------------------------------------------------------- the switch


class Desktop:
    """The desktop's colour scheme, as the theme controller reads it."""

    def __init__(self) -> None:
        self.scheme = Qt.ColorScheme.Light

    def __call__(self) -> Qt.ColorScheme:
        return self.scheme

    def change(self, scheme: Qt.ColorScheme) -> None:
        self.scheme = scheme
        QApplication.styleHints().colorSchemeChanged.emit(scheme)


@pytest.fixture
def desktop(qapp) -> Iterator[Desktop]:  # type: ignore[no-untyped-def]
    d = Desktop()
    ctl = theme.controller()
    before = ctl.system
    ctl.system = d
    yield d
    # Later tests start light, following a light desktop, as the console does here.
    d.scheme = Qt.ColorScheme.Light
    theme.follow(lambda: Theme.SYSTEM)
    ctl.system = before
    assert not theme.is_dark()


def window_colour(widget: QLabel | None = None) -> str:
    palette = widget.palette() if widget is not None else QApplication.palette()
    return palette.color(_C.Window).name()


def test_follow_installs_the_preferred_scheme_and_system_follows_the_desktop(desktop: Desktop, qtbot) -> None:  # type: ignore[no-untyped-def]
    preference = [Theme.DARK]
    ctl = theme.follow(lambda: preference[0])
    assert theme.is_dark() and window_colour() == PALETTE_COLOURS[True][_C.Window]
    assert theme.colour(Role.OVERDUE_ROW).name() == hex_of(Role.OVERDUE_ROW, True)
    # "system": the desktop decides, and a change there applies at once.
    preference[0] = Theme.SYSTEM
    with qtbot.waitSignal(ctl.changed) as changed:
        ctl.apply()
    assert changed.args == [False] and window_colour() == PALETTE_COLOURS[False][_C.Window]
    with qtbot.waitSignal(ctl.changed) as changed:
        desktop.change(Qt.ColorScheme.Dark)
    assert changed.args == [True] and theme.is_dark()
    # An explicit choice wins over the desktop.
    preference[0] = Theme.LIGHT
    ctl.apply()
    desktop.change(Qt.ColorScheme.Dark)
    assert not theme.is_dark() and window_colour() == PALETTE_COLOURS[False][_C.Window]


def test_style_sheets_icons_and_chat_lines_take_the_new_colours(desktop: Desktop, qtbot) -> None:  # type: ignore[no-untyped-def]
    preference = [Theme.LIGHT]
    theme.follow(lambda: preference[0])
    warning = QLabel("stale")
    theme.set_style(warning, "color: $warning_text; font-weight: 600;")
    quiet = QLabel("—")
    quiet.setStyleSheet("color: palette(placeholder-text);")
    state = ConsoleState()
    chat = ChatLog(state)
    for widget in (warning, quiet, chat):
        qtbot.addWidget(widget)
        widget.show()  # a style sheet reaches the palette when the widget is polished
    chat.customer_name = "Sam"
    chat.add_line(LineView(n=1, at=T, author=CUSTOMER, text="hello https://example.com", visibility=Visibility.ALL))
    chat.add_line(LineView(n=2, at=T, author="priya", text="checking", visibility=Visibility.REPS))
    light_star = star_icon(False).pixmap(32).toImage()

    def colours_in_chat() -> set[str]:
        found = set()
        block = chat.document().firstBlock()
        while block.isValid():
            found.add(block.blockFormat().background().color().name())
            item = block.begin()
            while not item.atEnd():
                fmt = item.fragment().charFormat()
                found |= {fmt.foreground().color().name(), fmt.background().color().name()}
                item += 1
            block = block.next()
        return found

    light_chat = colours_in_chat()
    assert {hex_of(Role.CHAT_CUSTOMER, False), hex_of(Role.REPS_ONLY, False), hex_of(Role.CHAT_LINK, False)} <= light_chat
    preference[0] = Theme.DARK
    theme.controller().apply()
    assert warning.palette().color(_C.WindowText).name() == hex_of(Role.WARNING_TEXT, True)
    assert quiet.palette().color(_C.WindowText).name() == hex_of(_C.PlaceholderText, True)
    dark_chat = colours_in_chat()
    assert {hex_of(Role.CHAT_CUSTOMER, True), hex_of(Role.CHAT_REP, True), hex_of(Role.REPS_ONLY, True), hex_of(Role.REPS_TAG, True),
            hex_of(Role.CHAT_TIME, True), hex_of(Role.CHAT_LINK, True)} <= dark_chat
    used = (Role.CHAT_CUSTOMER, Role.CHAT_REP, Role.REPS_ONLY, Role.REPS_TAG, Role.CHAT_TIME, Role.CHAT_LINK, Role.CHAT_DIVIDER)
    assert not ({hex_of(r, False) for r in used} & dark_chat)  # no light colour left
    assert star_icon(False).pixmap(32).toImage() != light_star


# ------------------------------------------------------------ the window


def _scene(c: Console, clock: ManualClock) -> str:
    """Queue rows with an overdue one, a favourite, unread team chat, the banner and a session tab; the session's id."""
    engine, world = c.engine, c.backend.simulation.world
    w = c.window
    # An overdue customer in Software (its rule marks them after 240 s) and a few fresh ones.
    engine.start_with_issue("install", world.intake())
    clock.advance(240)
    c.backend.pump()
    for _ in range(3):
        engine.start_with_issue("install", world.intake())
    # A session transferred to me with a note, on hold after a reps-only word.
    s = engine.start_with_issue("install", world.intake())
    engine.accept("priya", s.id)
    engine.customer_say(s.id, "My installer stops at 80% — see https://example.com/log")
    engine.say("priya", s.id, "Looks like the proxy again.", reps_only=True)
    engine.transfer("priya", s.id, QueueRef.parse(f"rep:{ME}"), "Customer is on a locked-down laptop; try the offline installer.")
    c.settle()
    w.accept_row(s.id)
    tab = c.wait_tab(s.id)
    engine.say(ME, s.id, "Hello, I'm taking over from Priya.")
    c.settle()
    tab.show_error("Could not put the session on hold: the customer left the page.")
    # A favourite team, unread team chat, and a personal arrival for the banner.
    w.queue_list.favouriteToggled.emit("software", True)
    engine.team_say("tom", "network", "Anyone free for a VPN caller?")
    w.tabs.setCurrentIndex(0)
    c.show_queue("team:software")
    engine.start_with_rep(ME, world.intake())
    c.settle()
    c.qtbot.waitUntil(lambda: w.banner.isVisible(), timeout=timeout(2))
    c.qtbot.waitUntil(lambda: any(e.unread for e in w.queue_list.entries.values()), timeout=timeout(2))
    overdue = [w.model.row_at(i) for i in range(w.model.rowCount()) if w.model.row_at(i).session.overdue]
    assert overdue, "no overdue row to look at"
    w.table.selectRow(w.model.rowCount() - 1)
    return s.id


def _shoot(c: Console, session_id: str, name: str) -> None:
    w = c.window
    w.tabs.setCurrentIndex(0)
    QApplication.processEvents()
    # With the details pane open the table is narrow: the banner and its buttons still fit in it.
    assert w.details.isVisible() and w.banner.isVisible()
    c.qtbot.waitUntil(lambda: w.table.viewport().geometry().contains(w.banner.geometry()), timeout=timeout(1))
    assert w.grab().save(f"/tmp/{name}-main.png")
    w.tabs.setCurrentWidget(w.session_tabs[session_id])
    QApplication.processEvents()
    assert w.grab().save(f"/tmp/{name}-session.png")
    w.tabs.setCurrentIndex(0)


def test_the_window_in_light_and_dark_from_the_preferences_dialog(qtbot, aloop, tmp_path: Path, desktop: Desktop) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T)
    c = open_console(qtbot, tmp_path / "settings", clock=clock)
    try:
        w = c.window
        assert not theme.is_dark()
        sid = _scene(c, clock)
        tab = w.session_tabs[sid]
        _shoot(c, sid, "light")
        light_end = tab.end_button.palette().color(QPalette.ColorRole.ButtonText).name()

        # The rep picks Dark in Preferences and presses Apply: the window turns dark at once.
        dialog = w.open_preferences()
        qtbot.addWidget(dialog)
        radio = next(b for b in dialog.findChildren(QRadioButton) if b.text() == "Dark")
        radio.setChecked(True)
        with qtbot.waitSignal(theme.controller().changed):
            dialog.apply()
        assert dialog.palette().color(_C.Window).name() == PALETTE_COLOURS[True][_C.Window]
        assert dialog.grab().save("/tmp/dark-preferences.png")
        dialog.close()
        assert w.settings.preferences.appearance.theme is Theme.DARK and theme.is_dark()
        assert w.palette().color(_C.Window).name() == PALETTE_COLOURS[True][_C.Window]
        assert w.table.palette().color(_C.Base).name() == PALETTE_COLOURS[True][_C.Base]
        assert w.queue_title.palette().color(_C.WindowText).name() == PALETTE_COLOURS[True][_C.WindowText]  # a font-only style sheet
        overdue = next(i for i in range(w.model.rowCount()) if w.model.row_at(i).session.overdue)
        assert w.model.index(overdue, 0).data(Qt.ItemDataRole.BackgroundRole).name() == hex_of(Role.OVERDUE_ROW, True)
        assert tab.end_button.palette().color(QPalette.ColorRole.ButtonText).name() != light_end
        assert tab.priority_badge.palette().color(_C.WindowText).name() in {hex_of(r, True) for r in Role}
        _shoot(c, sid, "dark")

        # Back to following the (light) desktop.
        dialog = w.open_preferences()
        qtbot.addWidget(dialog)
        next(b for b in dialog.findChildren(QRadioButton) if b.text() == "Follow the system").setChecked(True)
        dialog.apply()
        dialog.close()
        assert not theme.is_dark()
        desktop.change(Qt.ColorScheme.Dark)
        assert theme.is_dark() and w.palette().color(_C.Window).name() == PALETTE_COLOURS[True][_C.Window]
    finally:
        c.close()
