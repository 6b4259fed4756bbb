"""Small status glyphs drawn with QPainter: star, chat bubble, person.

Drawn rather than loaded because they are tinted per state and must stay
crisp at any device pixel ratio; the app icon proper lives in resources/.
Their colours are theme roles, so each is drawn once for light and once for
dark (and once more for a selected row, where the edge takes the selection's
text colour so the glyph stands out from the highlight).
"""

from __future__ import annotations

import math
from functools import cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPalette, QPen, QPixmap, QPolygonF

from repconsole.ui import theme
from repconsole.ui.theme import Role

__all__ = ["bubble_icon", "person_icon", "star_icon"]

_SIZE = 32  # drawn large, scaled down by Qt: crisp on high-DPI screens


def _canvas() -> tuple[QPixmap, QPainter]:
    pixmap = QPixmap(_SIZE, _SIZE)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    return pixmap, painter


def _on_selection(dark: bool) -> QColor:
    return QColor(theme.hex_of(QPalette.ColorRole.HighlightedText, dark))


def star_icon(filled: bool, selected: bool = False) -> QIcon:
    """The favourite star: gold when ``filled``, an outline otherwise."""
    return _star(filled, selected, theme.is_dark())


def bubble_icon(selected: bool = False) -> QIcon:
    """The unread team chat bubble."""
    return _bubble(selected, theme.is_dark())


def person_icon(selected: bool = False) -> QIcon:
    """The personal queue."""
    return _person(selected, theme.is_dark())


def _role(role: Role, dark: bool) -> QColor:
    return QColor(theme.ROLE_COLOURS[dark][role])


@cache
def _star(filled: bool, selected: bool, dark: bool) -> QIcon:
    pixmap, p = _canvas()
    c, outer, inner = _SIZE / 2, _SIZE * 0.46, _SIZE * 0.2
    points = [
        QPointF(c + r * math.sin(i * math.pi / 5), c + 1.5 - r * math.cos(i * math.pi / 5))
        for i, r in enumerate([outer, inner] * 5)
    ]
    if filled:
        edge = _role(Role.STAR_OUTLINE, dark)
    else:
        edge = _on_selection(dark) if selected else _role(Role.STAR_EMPTY, dark)
    p.setPen(QPen(edge, 2))
    p.setBrush(QBrush(_role(Role.STAR, dark)) if filled else Qt.BrushStyle.NoBrush)
    p.drawPolygon(QPolygonF(points))
    p.end()
    return QIcon(pixmap)


@cache
def _bubble(selected: bool, dark: bool) -> QIcon:
    pixmap, p = _canvas()
    path = QPainterPath()
    path.addRoundedRect(QRectF(2, 4, 28, 19), 7, 7)
    tail = QPolygonF([QPointF(8, 21), QPointF(7, 29), QPointF(15, 22)])
    path.addPolygon(tail)
    p.setPen(QPen(_on_selection(dark) if selected else _role(Role.BUBBLE_OUTLINE, dark), 1.5))
    p.setBrush(_role(Role.BUBBLE, dark))
    p.drawPath(path.simplified())
    p.setBrush(_role(Role.BUBBLE_DOTS, dark))
    p.setPen(Qt.PenStyle.NoPen)
    for x in (10, 16, 22):
        p.drawEllipse(QPointF(x, 13.5), 2.2, 2.2)
    p.end()
    return QIcon(pixmap)


@cache
def _person(selected: bool, dark: bool) -> QIcon:
    pixmap, p = _canvas()
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(_on_selection(dark) if selected else _role(Role.PERSON, dark))
    p.drawEllipse(QPointF(16, 10), 6.5, 6.5)
    p.drawRoundedRect(QRectF(5, 18, 22, 12), 6, 6)
    p.end()
    return QIcon(pixmap)
