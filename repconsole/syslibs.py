"""The system libraries Qt needs on Linux, checked before Qt is loaded.

PySide6's wheels bundle Qt but not the X11/xcb, GL, font and sound
libraries of the desktop.  When one of the xcb platform plugin's
libraries is missing, Qt prints "Could not load the Qt platform plugin
"xcb"" (naming ``xcb-cursor0`` whatever is really missing) and aborts the
process with a core dump.  :func:`check` runs first, from the command
line, and says which Debian/Ubuntu packages to install instead.

The list was made with ``readelf -d`` (``NEEDED``) on PySide6 6.11's
``plugins/platforms/libqxcb.so``, ``lib/libQt6XcbQpa.so.6``,
``lib/libQt6Gui.so.6``, ``lib/libQt6WebEngineCore.so.6``,
``lib/libQt6Multimedia.so.6``, ``plugins/multimedia/libffmpegmediaplugin.so``
and the bundled FFmpeg, keeping what the wheel does not bundle and a
Debian 12 desktop may lack.  README's ``apt-get install`` line and
``.ci/run`` install exactly :data:`ALL_PACKAGES`;
``tests/test_syslibs.py`` keeps the three in step.

Qt-free on purpose (the command line imports it before any window).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

__all__ = [
    "ALL_PACKAGES",
    "MULTIMEDIA",
    "WEBENGINE",
    "XCB_PLATFORM",
    "Missing",
    "check",
    "missing_libraries",
    "report",
    "uses_xcb",
]

# soname -> Debian package.  On Debian 13 and Ubuntu 24.04 a few packages
# were renamed for 64-bit time (libglib2.0-0t64, libasound2t64); apt-get
# picks the new name for the old one by itself.

#: What the xcb platform plugin loads: without any of these Qt aborts at start.
XCB_PLATFORM: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    # QtGui itself (every platform, offscreen too).
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    # The GLX integration plugin: without it Qt warns and draws without GL.
    "libxcb-glx.so.0": "libxcb-glx0",
}

#: QtWebEngine (a browser-sharing tab's live page); imported with the window.
WEBENGINE: dict[str, str] = {
    "libnss3.so": "libnss3",
    "libnspr4.so": "libnspr4",
    "libgbm.so.1": "libgbm1",
    "libxcb-dri3.so.0": "libxcb-dri3-0",
    "libXcomposite.so.1": "libxcomposite1",
    "libXdamage.so.1": "libxdamage1",
    "libXext.so.6": "libxext6",
    "libXfixes.so.3": "libxfixes3",
    "libXrandr.so.2": "libxrandr2",
    "libXtst.so.6": "libxtst6",
    "libxkbfile.so.1": "libxkbfile1",
    "libexpat.so.1": "libexpat1",
    "libudev.so.1": "libudev1",
    "libasound.so.2": "libasound2",
}

#: QtMultimedia (alert sounds) and the FFmpeg it bundles.
MULTIMEDIA: dict[str, str] = {
    "libpulse.so.0": "libpulse0",
    "libdrm.so.2": "libdrm2",
    "libbz2.so.1": "libbz2-1.0",
}

#: Every package above, sorted: README's apt-get line and .ci/run install exactly these.
ALL_PACKAGES: tuple[str, ...] = tuple(sorted({*XCB_PLATFORM.values(), *WEBENGINE.values(), *MULTIMEDIA.values()}))


class Missing(NamedTuple):
    """A library that could not be loaded, and the package that has it."""

    soname: str
    package: str
    error: str


def _dlopen(soname: str) -> None:
    # dlopen finds libraries exactly as Qt's loader will (LD_LIBRARY_PATH,
    # the ld.so cache, the default paths), which `ldconfig -p` alone would not.
    # Imported here: the check runs before the first frame, and only xcb needs it.
    import ctypes

    ctypes.CDLL(soname, mode=getattr(os, "RTLD_LAZY", 1) | getattr(ctypes, "RTLD_LOCAL", 0))


def missing_libraries(table: Mapping[str, str], load: Callable[[str], None] = _dlopen) -> list[Missing]:
    """The libraries of ``table`` (soname -> package) that ``load`` cannot load."""
    missing = []
    for soname, package in table.items():
        try:
            load(soname)
        except OSError as exc:
            missing.append(Missing(soname, package, str(exc)))
    return missing


def uses_xcb(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt will start its xcb platform (Linux, and no other platform asked for).

    ``QT_QPA_PLATFORM`` names the platform (or a ``;``-separated list tried
    in order); unset, Qt 6 takes Wayland in a Wayland session and xcb
    otherwise.
    """
    if not platform.startswith("linux"):
        return False
    wanted = environ.get("QT_QPA_PLATFORM", "").strip()
    if wanted:
        first = wanted.split(";", 1)[0].split(":", 1)[0].strip()
        return first == "xcb"
    return not (environ.get("XDG_SESSION_TYPE") == "wayland" and environ.get("WAYLAND_DISPLAY"))


def report(missing: Iterable[Missing]) -> str:
    """What to tell the person starting the console."""
    missing = list(missing)
    packages = sorted({m.package for m in missing})
    lines = [
        "repconsole: Qt's xcb platform (the X11 window system) cannot start: these system libraries are missing:",
        *(f"  {m.soname} (package {m.package})" for m in missing),
        "Install them (Debian, Ubuntu) with:",
        f"  sudo apt-get install {' '.join(packages)}",
        "or everything the console uses at once (README, 'First start'):",
        f"  sudo apt-get install {' '.join(ALL_PACKAGES)}",
    ]
    return "\n".join(lines)


def check(
    environ: Mapping[str, str] = os.environ,
    platform: str = sys.platform,
    load: Callable[[str], None] = _dlopen,
    tables: Iterable[Mapping[str, str]] = (XCB_PLATFORM, WEBENGINE, MULTIMEDIA),
) -> str | None:
    """The message to print and exit on, or None when the console can start.

    Only the xcb platform is checked: offscreen, Wayland, Windows and macOS
    bring what they need or fail politely.  The console imports QtWebEngine
    and QtMultimedia with its window, so their libraries are checked too.
    """
    if not uses_xcb(environ, platform):
        return None
    missing = [m for table in tables for m in missing_libraries(table, load)]
    return report(missing) if missing else None


def main(argv: list[str] | None = None) -> int:
    """``python3 repconsole/syslibs.py``: print the packages of every library that does not load.

    Used by ``.ci/run`` with the system Python, before any virtualenv
    exists (this module needs nothing but the standard library).
    """
    missing = [m for table in (XCB_PLATFORM, WEBENGINE, MULTIMEDIA) for m in missing_libraries(table)]
    print(" ".join(sorted({m.package for m in missing})))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
