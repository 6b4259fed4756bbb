"""Small status glyphs drawn with QPainter: star, chat bubble, person.

Drawn rather than loaded because they are tinted per state and must stay
crisp at any device pixel ratio; the app icon proper lives in resources/.
"""

from __future__ import annotations

import math
from functools import cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap, QPolygonF

__all__ = ["GOLD", "ORANGE", "bubble_icon", "person_icon", "star_icon"]

ORANGE = QColor("#f08c00")
GOLD = QColor("#f5b400")
_GREY = QColor("#9aa3ad")
_SIZE = 32  # drawn large, scaled down by Qt: crisp on high-DPI screens


def _canvas() -> tuple[QPixmap, QPainter]:
    pixmap = QPixmap(_SIZE, _SIZE)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    return pixmap, painter


@cache
def star_icon(filled: bool) -> QIcon:
    pixmap, p = _canvas()
    c, outer, inner = _SIZE / 2, _SIZE * 0.46, _SIZE * 0.2
    points = [
        QPointF(c + r * math.sin(i * math.pi / 5), c + 1.5 - r * math.cos(i * math.pi / 5))
        for i, r in enumerate([outer, inner] * 5)
    ]
    p.setPen(QPen(GOLD.darker(120) if filled else _GREY, 2))
    p.setBrush(QBrush(GOLD) if filled else Qt.BrushStyle.NoBrush)
    p.drawPolygon(QPolygonF(points))
    p.end()
    return QIcon(pixmap)


@cache
def bubble_icon() -> QIcon:
    pixmap, p = _canvas()
    path = QPainterPath()
    path.addRoundedRect(QRectF(2, 4, 28, 19), 7, 7)
    tail = QPolygonF([QPointF(8, 21), QPointF(7, 29), QPointF(15, 22)])
    path.addPolygon(tail)
    p.setPen(QPen(ORANGE.darker(130), 1.5))
    p.setBrush(ORANGE)
    p.drawPath(path.simplified())
    p.setBrush(QColor("white"))
    p.setPen(Qt.PenStyle.NoPen)
    for x in (10, 16, 22):
        p.drawEllipse(QPointF(x, 13.5), 2.2, 2.2)
    p.end()
    return QIcon(pixmap)


@cache
def person_icon() -> QIcon:
    pixmap, p = _canvas()
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#3b6ea5"))
    p.drawEllipse(QPointF(16, 10), 6.5, 6.5)
    p.drawRoundedRect(QRectF(5, 18, 22, 12), 6, 6)
    p.end()
    return QIcon(pixmap)
