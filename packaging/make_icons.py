"""Render the application icon PNGs from the hand-drawn SVG master.

Usage::

    QT_QPA_PLATFORM=offscreen python packaging/make_icons.py

It reads ``resources/repconsole.svg`` and writes
``resources/icons/repconsole-<size>.png`` for every size in
:data:`repconsole.resources.ICON_SIZES`.  The PNGs are committed, so neither
installing nor bundling repconsole needs an SVG renderer: Windows and macOS
icon converters, the freedesktop icon theme and ``QIcon`` all take PNGs.

Qt's own SVG renderer draws them (``PySide6.QtSvg`` is part of
PySide6-Essentials, which repconsole already depends on), so they match what
``QIcon`` shows when it scales the SVG itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from repconsole.resources import ICON_SIZES

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "repconsole.svg"
OUT_DIR = ROOT / "resources" / "icons"


def render(svg: Path, sizes: tuple[int, ...], out_dir: Path) -> list[Path]:
    """Render *svg* as a square PNG at each of *sizes* into *out_dir*."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    # QPainter needs a QGuiApplication for font and colour-space set-up even
    # when it only paints into an image.
    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: Qt cannot parse this SVG")

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(0)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        target = out_dir / f"repconsole-{size}.png"
        # Converting to straight ARGB32 stores exact colours at the
        # semi-transparent anti-aliased edges.
        if not image.convertToFormat(QImage.Format.Format_ARGB32).save(str(target)):
            raise SystemExit(f"{target}: Qt could not write the PNG")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--svg", type=Path, default=SVG, help=f"master SVG (default {SVG})")
    parser.add_argument(
        "--out-dir", type=Path, default=OUT_DIR, help=f"where the PNGs go (default {OUT_DIR})"
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(ICON_SIZES),
        metavar="PX",
        help="sizes to render (default: the committed set); "
        "e.g. --sizes 1024 --out-dir build/icons for a macOS iconset",
    )
    args = parser.parse_args(argv)
    for path in render(args.svg, tuple(args.sizes), args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
