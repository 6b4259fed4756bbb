"""Icons, images and sounds that ship with repconsole.

This directory is the source of the package :mod:`repconsole.resources`
(see ``[tool.setuptools] package-dir`` in ``pyproject.toml``).  Everything in
it is read through :mod:`importlib.resources`, never through a path computed
from ``__file__``, because that is the one mechanism that works unchanged in
an editable install, an installed wheel and a PyInstaller bundle.

The module is Qt-free so that code outside :mod:`repconsole.ui` (and the
packaging scripts) can use it too; :mod:`repconsole.ui.resources` turns these
bytes into Qt objects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

__all__ = [
    "ALERT_SOUND",
    "APP_ICON_SVG",
    "APP_ID",
    "ICON_SIZES",
    "as_file",
    "files",
    "icon_png",
    "read_bytes",
    "resource",
]

#: Reverse-DNS application id, shared by the desktop entry, the AppStream
#: metadata, the installed icon name and ``QGuiApplication.desktopFileName``.
APP_ID = "io.github.repconsole.RepConsole"

#: Pixel sizes of the pre-rendered application icon in ``icons/``.  They are
#: the freedesktop hicolor sizes; Windows and macOS use subsets of them.
ICON_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 128, 256, 512)

#: The hand-drawn master of the application icon; every PNG is rendered from it.
APP_ICON_SVG = "repconsole.svg"

#: The chime played when a customer joins the queue.
ALERT_SOUND = "alert.wav"


def files() -> Traversable:
    """Return the root of the resources, whatever the installation looks like."""
    return resources.files(__name__)


def icon_png(size: int) -> str:
    """Return the resource name of the application icon rendered at *size* pixels."""
    if size not in ICON_SIZES:
        raise ValueError(f"no {size}px icon; the sizes are {ICON_SIZES}")
    return f"icons/repconsole-{size}.png"


def resource(name: str) -> Traversable:
    """Return the resource called *name*, a ``/``-separated relative path.

    Names are checked rather than joined blindly: a name that climbs out of
    the package (``..``) or is absolute would read whatever happens to sit
    next to the installation, which differs between a checkout, a wheel and
    a bundle, so it is a programming error in all three.

    Raises:
        ValueError: *name* is empty, absolute or contains ``..``.
        FileNotFoundError: there is no such resource file.
    """
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise ValueError(f"not a resource name: {name!r}")
    node = files()
    # One component at a time: Traversable.joinpath takes a single child
    # on Python 3.11.
    for part in parts:
        node = node.joinpath(part)
    if not node.is_file():
        raise FileNotFoundError(f"repconsole has no resource {name!r}")
    return node


def read_bytes(name: str) -> bytes:
    """Return the contents of the resource called *name*."""
    return resource(name).read_bytes()


@contextlib.contextmanager
def as_file(name: str) -> Iterator[Path]:
    """Give the resource called *name* a real file-system path for a while.

    For consumers that only accept a path (a sound player, an external
    tool).  In every supported installation the resources already are files
    and the path is their own; only a zipped installation would get a
    temporary copy, which disappears when the ``with`` block ends, so do not
    keep the path beyond it.
    """
    with resources.as_file(resource(name)) as path:
        yield path
