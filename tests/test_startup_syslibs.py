"""First start on Debian/Ubuntu: the system libraries Qt needs, named before Qt aborts."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from repconsole import syslibs

ROOT = Path(__file__).resolve().parent.parent
QT = Path(__import__("PySide6").__file__).parent / "Qt"


def _needed(path: Path) -> list[str]:
    """The DT_NEEDED entries of an ELF64 little-endian shared object (what ``readelf -d`` shows)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path} is not ELF64 LE"
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, _entsize in sections:
        if kind != 6:  # SHT_DYNAMIC
            continue
        strtab = sections[link][4]
        names = []
        for at in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, at)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strtab + value)
                names.append(data[strtab + value : end].decode())
        return names
    return []


# The C library and the toolchain's runtime: present wherever Python is.
_BASE = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libstdc++.so.6", "ld-linux-x86-64.so.2", "libz.so.1",
         "libresolv.so.2", "libdl.so.2", "libpthread.so.0", "librt.so.1"}


def _system_needs(*relative: str) -> set[str]:
    """What the given Qt files need that PySide6 does not bundle."""
    bundled = {p.name for p in (QT / "lib").iterdir()}
    needs: set[str] = set()
    for rel in relative:
        needs.update(_needed(QT / rel))
    return {n for n in needs if n not in bundled and not n.startswith("libQt6") and n not in _BASE}


@pytest.mark.skipif(sys.platform != "linux" or not (QT / "plugins/platforms/libqxcb.so").exists(), reason="Linux wheels only")
def test_the_list_covers_what_the_xcb_plugin_and_qt_gui_load() -> None:
    needs = _system_needs("plugins/platforms/libqxcb.so", "lib/libQt6XcbQpa.so.6", "lib/libQt6Gui.so.6")
    assert needs, "the ELF reader found nothing"
    assert needs <= set(syslibs.XCB_PLATFORM), sorted(needs - set(syslibs.XCB_PLATFORM))
    # The ones the issue saw missing on a fresh Debian are there.
    for package in ("libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0"):
        assert package in syslibs.XCB_PLATFORM.values()


@pytest.mark.skipif(sys.platform != "linux" or not (QT / "lib/libQt6WebEngineCore.so.6").exists(), reason="Linux wheels only")
def test_the_list_covers_what_webengine_and_multimedia_load() -> None:
    needs = _system_needs(
        "lib/libQt6WebEngineCore.so.6",
        "lib/libQt6Multimedia.so.6",
        "plugins/multimedia/libffmpegmediaplugin.so",
        *(f"lib/{p.name}" for p in (QT / "lib").glob("libav*.so.*")),
    )
    known = {*syslibs.XCB_PLATFORM, *syslibs.WEBENGINE, *syslibs.MULTIMEDIA}
    # NSS's own companions come with libnss3.
    needs -= {"libnssutil3.so", "libsmime3.so"}
    assert needs <= known, sorted(needs - known)


def test_readme_and_ci_install_exactly_the_list() -> None:
    readme = (ROOT / "README.md").read_text()
    lines = [line for line in readme.splitlines() if line.startswith("sudo apt-get install ")]
    assert len(lines) == 1, lines
    assert lines[0].split()[3:] == list(syslibs.ALL_PACKAGES)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 repconsole/syslibs.py" in ci
    assert re.search(r"command -v Xvfb .*\|\| need_apt\+=\(xvfb\)", ci)


def test_the_ci_helper_prints_only_what_does_not_load() -> None:
    # The system python, as .ci/run runs it: no virtualenv, no PySide6 import.
    result = subprocess.run([sys.executable, "-S", str(ROOT / "repconsole" / "syslibs.py")], capture_output=True, text=True, check=True)
    missing = [m.package for t in (syslibs.XCB_PLATFORM, syslibs.WEBENGINE, syslibs.MULTIMEDIA) for m in syslibs.missing_libraries(t)]
    assert result.stdout.split() == sorted(set(missing))


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        ({}, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb;offscreen"}, "linux", True),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"QT_QPA_PLATFORM": "wayland"}, "linux", False),
        ({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({"XDG_SESSION_TYPE": "x11"}, "linux", True),
        ({}, "win32", False),
        ({}, "darwin", False),
    ],
)
def test_only_the_xcb_platform_is_checked(env: dict[str, str], platform: str, expected: bool) -> None:
    assert syslibs.uses_xcb(env, platform) is expected


def test_a_library_that_does_not_load_is_named_with_its_package() -> None:
    table = {"libc.so.6": "libc6", "libxcb-repconsole-test.so.9": "libxcb-repconsole-test9"}
    message = syslibs.check({"QT_QPA_PLATFORM": "xcb"}, "linux", tables=[table])
    assert message is not None
    assert "libxcb-repconsole-test.so.9 (package libxcb-repconsole-test9)" in message
    assert "sudo apt-get install libxcb-repconsole-test9\n" in message
    assert "libc6" not in message.split("everything")[0]
    # Everything loads: nothing to say; another platform: not even looked at.
    assert syslibs.check({"QT_QPA_PLATFORM": "xcb"}, "linux", tables=[{"libc.so.6": "libc6"}]) is None
    assert syslibs.check({"QT_QPA_PLATFORM": "offscreen"}, "linux", tables=[table]) is None


def test_the_installed_system_has_every_library() -> None:
    # The machine the suite runs on was set up by .ci/run (or README's line).
    if sys.platform != "linux":
        pytest.skip("Linux only")
    assert syslibs.check({"QT_QPA_PLATFORM": "xcb"}, "linux") is None


def _can_hide_files() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_hide_files(), reason="needs root and mount namespaces (unshare -m) to hide a library")
def test_a_missing_xcb_library_exits_1_with_the_package_before_qt_aborts(tmp_path: Path) -> None:
    # Hide libxcb-icccm.so.4 from this one process (a private mount
    # namespace, /dev/null bound over the file), as on the fresh Debian of
    # the issue.  Qt alone aborts (SIGABRT, exit 134) naming xcb-cursor0.
    candidates = ("/usr/lib/x86_64-linux-gnu/libxcb-icccm.so.4", "/lib/x86_64-linux-gnu/libxcb-icccm.so.4")
    real = Path(os.path.realpath(next(p for p in candidates if os.path.exists(p))))
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=":99", PYTHONPATH=str(ROOT))
    script = f"mount --bind /dev/null {real} && exec \"$@\""
    qt_alone = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication([])"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert qt_alone.returncode != 0 and "xcb-cursor0" in qt_alone.stderr
    console = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "repconsole", "--quit-after", "1", "--settings-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert console.returncode == 1, console.stderr
    assert "libxcb-icccm.so.4 (package libxcb-icccm4)" in console.stderr
    assert "sudo apt-get install libxcb-icccm4\n" in console.stderr
    assert "qt.qpa" not in console.stderr  # Qt was never loaded
