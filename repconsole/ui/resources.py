"""Qt objects made from :mod:`repconsole.resources`.

The resources package hands out bytes and paths and knows nothing of Qt;
this module is where they become a :class:`QIcon` or a :class:`QPixmap`, so
the rest of the UI never touches file names.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon, QPixmap

from repconsole.resources import APP_ICON_SVG, ICON_SIZES, icon_png, read_bytes, resource

__all__ = ["app_icon", "app_pixmap"]


def _png(size: int) -> QPixmap:
    pixmap = QPixmap()
    if not pixmap.loadFromData(read_bytes(icon_png(size)), "PNG"):
        raise RuntimeError(f"Qt cannot decode {icon_png(size)}")
    return pixmap


@cache
def app_icon() -> QIcon:
    """Return the application icon: the SVG master plus every pre-rendered PNG.

    Adding the SVG first makes Qt pick its SVG icon engine, which draws any
    size the platform asks for (HiDPI title bars, 96px task switchers) from
    the vector master, while still returning an added PNG verbatim when the
    requested size matches one exactly.  The SVG engine reads its file
    lazily, so it gets the SVG only when the resource is a real file, as it
    is in an editable install, an installed wheel and a PyInstaller bundle;
    from a zipped installation the icon is made from the PNGs alone, which
    already cover 16 to 512 pixels.

    Cached because a QIcon is an implicitly shared handle: every window can
    use the same one, and the PNGs are decoded once.  Call it only once a
    QGuiApplication exists.
    """
    icon = QIcon()
    svg = resource(APP_ICON_SVG)
    if isinstance(svg, Path):
        icon.addFile(str(svg))
    for size in ICON_SIZES:
        icon.addPixmap(_png(size))
    if icon.isNull():
        raise RuntimeError("the application icon did not load")
    return icon


def app_pixmap(size: int) -> QPixmap:
    """Return the application icon drawn *size* device-independent pixels square."""
    return app_icon().pixmap(QSize(size, size))
