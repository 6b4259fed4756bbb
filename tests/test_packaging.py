"""Packaging: resources, wheel, desktop integration and the PyInstaller bundle.

What these tests protect is the promise of issue 4: repconsole installs and
launches the same way from a checkout, a wheel and a bundle, with its icon,
its chime and its licence.

The bundle tests build a real PyInstaller bundle (about 15 s here, two
cores) into a temporary directory and run it.  They are marked ``slow`` and
are governed by ``REPCONSOLE_BUNDLE_TEST``:

* ``1``: run them, and fail if PyInstaller is not installed;
* ``0``: skip them;
* unset: run them when PyInstaller is importable (``make dist`` installs it
  into ``.venv``), skip them otherwise.

Nothing here writes into the real home directory: every program launched
gets ``XDG_*`` directories (and PyInstaller its config directory) in
``tmp_path``.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import shlex
import shutil
import stat
import struct
import subprocess
import sys
import tomllib
import wave
import xml.etree.ElementTree as ET
import zipfile
from array import array
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import repconsole
from repconsole import resources
from repconsole.resources import ALERT_SOUND, APP_ICON_SVG, APP_ID, ICON_SIZES

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
RESOURCES = ROOT / "resources"
DESKTOP_FILE = PACKAGING / f"{APP_ID}.desktop"
METAINFO_FILE = PACKAGING / f"{APP_ID}.metainfo.xml"
SPEC_FILE = PACKAGING / "repconsole.spec"
INSTALL_DESKTOP = PACKAGING / "install-desktop.sh"

#: What the console prints to stderr once its main window is on screen; the
#: launch tests wait for it rather than trusting an exit status alone.
WINDOW_SHOWN = "repconsole: window shown"

#: Generous: the console itself quits after one or two seconds.
LAUNCH_TIMEOUT_S = 90


# --------------------------------------------------------------- helpers


def _load_script(name: str) -> ModuleType:
    """Import one of the packaging/ scripts as a module, without running it."""
    module_name = f"_packaging_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, PACKAGING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses look their module up there.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _isolated_env(home: Path) -> dict[str, str]:
    """The environment for a launched console: headless, with throwaway XDG dirs."""
    env = dict(os.environ)
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_RUNTIME_DIR", "runtime"),
    ):
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    # Qt insists that the runtime directory is private.
    (home / "runtime").chmod(stat.S_IRWXU)
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def _launch(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, check=False
    )


def _assert_console_ran(result: subprocess.CompletedProcess[str]) -> None:
    report = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, report
    assert WINDOW_SHOWN in result.stderr, report


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _png_header(path: Path) -> tuple[int, int, int, int]:
    """Width, height, bit depth and colour type, straight from the IHDR chunk."""
    data = path.read_bytes()[:33]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR", f"{path} does not start with IHDR"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


def _resource_files() -> list[str]:
    """The data files in resources/, as names relative to it, as the wheel must ship them."""
    return sorted(
        path.relative_to(RESOURCES).as_posix()
        for path in RESOURCES.rglob("*")
        if path.is_file()
        and path.suffix not in {".py", ".pyc"}
        and "__pycache__" not in path.parts
        and not any(part.startswith(".") for part in path.relative_to(RESOURCES).parts)
    )


def _repconsole_sources() -> list[str]:
    """The Python files of repconsole/, as wheel member names."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "repconsole").rglob("*.py")
        if "__pycache__" not in path.parts
    )


# --------------------------------------------------------------- resources


def test_resources_resolve_through_importlib() -> None:
    root = resources.files()
    assert root.joinpath(APP_ICON_SVG).is_file()
    assert resources.read_bytes(APP_ICON_SVG).lstrip().startswith(b"<?xml")
    for size in ICON_SIZES:
        assert resources.read_bytes(resources.icon_png(size)).startswith(b"\x89PNG")
    with resources.as_file(ALERT_SOUND) as path:
        assert path.is_file()
        assert path.read_bytes()[:4] == b"RIFF"


def test_editable_install_maps_the_top_level_resources_directory() -> None:
    """``pip install -e .`` must serve repconsole.resources from resources/ itself.

    Otherwise editing an icon in the checkout would not show until the next
    install, and the mapping in pyproject.toml would be untested.  (From a
    checkout, ``repconsole.resources`` is importable at all only through the
    mapping: there is no ``repconsole/resources/`` directory.)
    """
    if not Path(repconsole.__file__).resolve().is_relative_to(ROOT):
        pytest.skip("repconsole is imported from an installation, not from this checkout")
    assert Path(str(resources.files())).resolve() == RESOURCES.resolve()


@pytest.mark.parametrize("name", ["", "../pyproject.toml", "/etc/hostname", "icons/../../LICENSE"])
def test_resource_names_cannot_leave_the_package(name: str) -> None:
    with pytest.raises(ValueError):
        resources.read_bytes(name)


def test_missing_resources_and_sizes_are_reported() -> None:
    with pytest.raises(FileNotFoundError):
        resources.read_bytes("no-such-file.png")
    with pytest.raises(ValueError):
        resources.icon_png(17)


def test_resources_package_does_not_import_qt() -> None:
    code = (
        "import sys, repconsole.resources as r\n"
        "r.read_bytes(r.APP_ICON_SVG)\n"
        "qt = {'PySide6', 'shiboken6', 'qasync'}\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in qt)\n"
        "sys.exit(f'imported {qt}' if qt else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------- assets


@pytest.mark.parametrize("size", ICON_SIZES)
def test_icon_png_has_its_size(size: int) -> None:
    width, height, depth, colour = _png_header(RESOURCES / resources.icon_png(size))
    assert (width, height) == (size, size)
    assert (depth, colour) == (8, 6), "expected 8-bit RGBA"


def test_icon_pngs_are_rendered_from_the_current_svg(qapp: object, tmp_path: Path) -> None:
    """Someone who edits the SVG must rerun make_icons.py; this notices if not.

    Anti-aliasing may differ by a few levels between Qt versions, so the
    comparison counts channel values that moved by more than 32 instead of
    asking for identical bytes; a real edit moves thousands of them.
    """
    from PySide6.QtGui import QImage

    make_icons = _load_script("make_icons")
    rendered = make_icons.render(RESOURCES / APP_ICON_SVG, ICON_SIZES, tmp_path)
    for fresh in rendered:
        committed = RESOURCES / "icons" / fresh.name
        a = QImage(str(committed)).convertToFormat(QImage.Format.Format_ARGB32)
        b = QImage(str(fresh)).convertToFormat(QImage.Format.Format_ARGB32)
        assert a.size() == b.size(), fresh.name
        pixels_a, pixels_b = bytes(a.constBits()), bytes(b.constBits())
        moved = sum(1 for x, y in zip(pixels_a, pixels_b, strict=True) if abs(x - y) > 32)
        assert moved <= len(pixels_a) // 200, (
            f"{committed.name} is out of date with {APP_ICON_SVG}: "
            "run QT_QPA_PLATFORM=offscreen python packaging/make_icons.py"
        )


@pytest.mark.parametrize("name", ["alert", "team", "transfer", "invitation", "overdue", "offer"])
def test_alert_sound_is_a_short_quiet_mono_chime(name: str) -> None:
    with wave.open(str(RESOURCES / f"{name}.wav"), "rb") as chime:
        assert chime.getnchannels() == 1
        assert chime.getsampwidth() == 2
        assert chime.getframerate() == 22050
        assert chime.getcomptype() == "NONE"
        duration = chime.getnframes() / chime.getframerate()
        samples = array("h", chime.readframes(chime.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    assert 0.3 <= duration <= 0.5
    peak = max(abs(s) for s in samples) / 32768
    assert 0.25 <= peak <= 0.75, "loud enough to hear, quiet enough not to startle"
    # Starts and ends at silence, so it cannot click.
    assert abs(samples[0]) < 64 and abs(samples[-1]) < 64


def test_alert_sounds_are_what_make_sounds_produces(tmp_path: Path) -> None:
    make_sounds = _load_script("make_sounds")
    assert make_sounds.SOUNDS["alert"] == make_sounds.CHIME and ALERT_SOUND == "alert.wav"
    for name, tones in make_sounds.SOUNDS.items():
        _same_sound(make_sounds, tones, tmp_path / f"{name}.wav", RESOURCES / f"{name}.wav")


def _same_sound(make_sounds: Any, tones: Any, fresh: Path, shipped: Path) -> None:
    make_sounds.write_wav(make_sounds.synthesise(tones), fresh)
    with wave.open(str(fresh)) as a, wave.open(str(shipped)) as b:
        assert a.getparams() == b.getparams()
        ours = array("h", a.readframes(a.getnframes()))
        committed = array("h", b.readframes(b.getnframes()))
    # libm may round a sine differently on another platform: one step of slack.
    assert max(abs(x - y) for x, y in zip(ours, committed, strict=True)) <= 1, (
        f"resources/{shipped.name} is out of date: run python packaging/make_sounds.py"
    )


# --------------------------------------------------------------- Qt glue


def test_app_icon_has_every_size(qapp: object) -> None:
    from PySide6.QtCore import QSize

    from repconsole.ui.resources import app_icon, app_pixmap

    icon = app_icon()
    assert not icon.isNull()
    for size in (*ICON_SIZES, 20, 96):
        pixmap = icon.pixmap(QSize(size, size))
        assert not pixmap.isNull()
        assert pixmap.size() == QSize(size, size)
    assert app_pixmap(48).size() == QSize(48, 48)


def test_about_dialog_names_version_and_licence(qtbot: object) -> None:
    from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel

    from repconsole.ui.about import AboutDialog

    dialog = AboutDialog()
    qtbot.addWidget(dialog)  # type: ignore[attr-defined]
    labels = {label.objectName(): label for label in dialog.findChildren(QLabel)}
    assert labels["aboutName"].text() == "repconsole"
    assert repconsole.__version__ in labels["aboutVersion"].text()
    assert "MIT" in labels["aboutLicence"].text()
    assert not labels["aboutIcon"].pixmap().isNull()
    licence = dialog.licence.toPlainText()
    assert licence.startswith("MIT License")
    assert "Permission is hereby granted" in licence, "the full text, from the metadata"
    assert licence == (ROOT / "LICENSE").read_text(encoding="utf-8")

    buttons = dialog.findChild(QDialogButtonBox)
    assert buttons is not None
    buttons.button(QDialogButtonBox.StandardButton.Close).click()
    assert dialog.result() == QDialog.DialogCode.Rejected


# --------------------------------------------------------------- wheel


def _setuptools_can_build_here() -> bool:
    """Whether this environment's setuptools can build the wheel without isolation.

    ``license = "MIT"`` (a PEP 639 expression) needs setuptools 77; the
    setuptools that ``python3.11 -m venv`` seeds is older, and then pip
    builds in an isolated environment with a current one from the index.
    """
    try:
        return _version_tuple(metadata.version("setuptools")) >= (77,)
    except metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel, built from a copy of the sources so the checkout stays untouched.

    (setuptools writes build/ and *.egg-info next to pyproject.toml, and
    other tests or people may be using the checkout at the same time.)
    """
    src = tmp_path_factory.mktemp("wheel-src")
    out = tmp_path_factory.mktemp("wheel-out")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "repconsole", src / "repconsole", ignore=ignore)
    shutil.copytree(RESOURCES, src / "resources", ignore=ignore)

    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
    if _setuptools_can_build_here():
        command.append("--no-build-isolation")
    result = subprocess.run(
        [*command, str(src)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("repconsole-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_wheel_ships_the_resources_package(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = {
        "repconsole/resources/__init__.py",
        f"repconsole/resources/{APP_ICON_SVG}",
        f"repconsole/resources/{ALERT_SOUND}",
        *(f"repconsole/resources/{resources.icon_png(size)}" for size in ICON_SIZES),
    }
    assert expected <= names, sorted(expected - names)
    assert not any(name.startswith("resources/") for name in names), "not as a top-level package"


def test_wheel_ships_every_resource_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = [f for f in _resource_files() if f"repconsole/resources/{f}" not in names]
    assert not missing, (
        f"{missing} are in resources/ but not in the wheel: "
        "add a pattern to [tool.setuptools.package-data] in pyproject.toml"
    )


def test_wheel_ships_every_module(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = [source for source in _repconsole_sources() if source not in names]
    packages = sorted({str(Path(m).parent).replace("/", ".") for m in missing})
    assert not missing, (
        f"{missing} are not in the wheel: add {packages} to "
        "[tool.setuptools] packages in pyproject.toml"
    )


def test_wheel_carries_the_licence(wheel: zipfile.ZipFile) -> None:
    licences = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert len(licences) == 1, wheel.namelist()
    assert wheel.read(licences[0]).decode() == (ROOT / "LICENSE").read_text(encoding="utf-8")


def test_installed_wheel_loads_resources(wheel: zipfile.ZipFile, tmp_path: Path) -> None:
    """A plain (non-editable) installation finds the resources inside repconsole/.

    A pure wheel installs by unpacking it, so it is unpacked into a
    directory and imported from there by an interpreter that sees neither
    site-packages (``-S``) nor this checkout (``-I``).
    """
    site = tmp_path / "site"
    wheel.extractall(site)
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "from pathlib import Path\n"
        "import repconsole.resources as r\n"
        f"assert Path(r.__file__).is_relative_to({str(site)!r}), r.__file__\n"
        "assert Path(str(r.files())) == Path(r.__file__).parent\n"
        "for size in r.ICON_SIZES:\n"
        "    assert r.read_bytes(r.icon_png(size)).startswith(b'\\x89PNG')\n"
        "with r.as_file(r.ALERT_SOUND) as p:\n"
        "    assert p.is_file()\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# --------------------------------------------------------------- desktop integration


def _read_desktop_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def _exec_argv(exec_value: str) -> list[str]:
    """Split an Exec value the way a launcher does, dropping field codes (%U, %f…).

    The desktop entry quoting rules are a subset of the shell's, so shlex
    splits every value install-desktop.sh writes.
    """
    return [arg for arg in shlex.split(exec_value) if not (len(arg) == 2 and arg[0] == "%")]


def test_desktop_entry_names_the_app() -> None:
    entry = _read_desktop_entry(DESKTOP_FILE)
    assert entry["Type"] == "Application"
    assert entry["Icon"] == APP_ID
    assert entry["Name"] == "repconsole"
    assert entry["Terminal"] == "false"
    assert "Network" in entry["Categories"].split(";")
    assert entry["Categories"].endswith(";")
    program, *options = _exec_argv(entry["Exec"])
    assert program == entry["TryExec"] == "repconsole"
    # From the desktop, the sign-in dialog comes first, with the simulator as a choice.
    assert options == ["--login"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert program in project["gui-scripts"], (
        "Exec must run the GUI entry point that pyproject.toml installs"
    )


def test_metainfo_matches_the_desktop_entry_and_the_version() -> None:
    component = ET.parse(METAINFO_FILE).getroot()
    assert component.tag == "component"
    assert component.get("type") == "desktop-application"
    assert component.findtext("id") == APP_ID
    assert component.findtext("project_license") == "MIT"
    assert component.findtext("metadata_license") == "CC0-1.0"
    launchable = component.find("launchable")
    assert launchable is not None and launchable.get("type") == "desktop-id"
    assert launchable.text == DESKTOP_FILE.name
    assert component.findtext("provides/binary") == "repconsole"
    assert component.findtext("description/p")
    rating = component.find("content_rating")
    assert rating is not None and rating.get("type") == "oars-1.1"
    releases = component.findall("releases/release")
    assert releases, "at least one release"
    assert releases[0].get("version") == repconsole.__version__, (
        "add a <release> for the new version to the metainfo (newest first)"
    )


@pytest.mark.parametrize(
    "validator",
    [
        ["desktop-file-validate", str(DESKTOP_FILE)],
        ["appstreamcli", "validate", "--no-net", str(METAINFO_FILE)],
    ],
    ids=["desktop-file-validate", "appstreamcli"],
)
def test_desktop_files_pass_the_freedesktop_validators(validator: list[str]) -> None:
    if shutil.which(validator[0]) is None:
        pytest.skip(f"{validator[0]} is not installed (Debian: desktop-file-utils, appstream)")
    result = subprocess.run(validator, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------- the bundle


def _bundle_gate() -> str | None:
    """Why the bundle tests must not run, or None if they should."""
    requested = os.environ.get("REPCONSOLE_BUNDLE_TEST", "")
    if requested == "0":
        return "REPCONSOLE_BUNDLE_TEST=0"
    if importlib.util.find_spec("PyInstaller") is None:
        if requested == "1":
            pytest.fail("REPCONSOLE_BUNDLE_TEST=1 but PyInstaller is not installed")
        return (
            "PyInstaller is not installed (make dist installs it; REPCONSOLE_BUNDLE_TEST=1 insists)"
        )
    return None


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the one-folder bundle with the real spec, into a temporary dist/."""
    reason = _bundle_gate()
    if reason is not None:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("bundle")
    env = dict(os.environ, PYINSTALLER_CONFIG_DIR=str(base / "pyinstaller-config"))
    command = [
        sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
        "--distpath", str(base / "dist"), "--workpath", str(base / "build"), str(SPEC_FILE),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    folder = base / "dist" / "repconsole"
    assert (folder / "repconsole").is_file()
    return folder


@pytest.mark.slow
def test_bundle_opens_the_console(bundle: Path, tmp_path: Path) -> None:
    result = _launch([str(bundle / "repconsole"), "--quit-after", "2"], _isolated_env(tmp_path))
    _assert_console_ran(result)


@pytest.mark.slow
def test_bundle_carries_resources_and_licence(bundle: Path) -> None:
    internal = bundle / "_internal"
    bundled = internal / "repconsole" / "resources"
    for name in _resource_files():
        assert (bundled / name).is_file(), name
    licences = list(internal.glob("repconsole-*.dist-info/licenses/LICENSE"))
    assert len(licences) == 1, "the About dialog reads the licence from the metadata"
    assert not list(internal.glob("*.egg-info")), "a checkout's stale egg-info was bundled"


@pytest.mark.slow
def test_bundle_leaves_out_unused_qt(bundle: Path) -> None:
    # QtWebEngine (the customer's live page) links Qt Quick and QML: their libraries, and nothing more of them.
    unwanted = ("Qt6Quick3D", "Qt6QuickControls2", "Qt6WebEngineQuick", "Qt63D", "Qt6Pdf", "qml")
    found = sorted(
        str(path.relative_to(bundle))
        for path in bundle.rglob("*")
        if any(marker in path.name for marker in unwanted)
    )
    assert not found, found


@pytest.mark.slow
def test_bundle_has_a_server_program_exactly_when_the_package_exists(bundle: Path) -> None:
    has_server_package = importlib.util.find_spec("repconsole.server") is not None
    assert (bundle / "repconsole-server").is_file() == has_server_package


@pytest.mark.slow
def test_bundled_server_serves_the_support_page(bundle: Path, tmp_path: Path) -> None:
    """The second program of the bundle runs and serves its packaged customer page."""
    import re
    import urllib.request

    server = subprocess.Popen(
        [str(bundle / "repconsole-server"), "--port", "0", "--data", str(tmp_path / "data")],
        env=_isolated_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert server.stdout is not None
        port = None
        for line in server.stdout:
            found = re.search(r"listening on ws://[^:]+:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port is not None, "the bundled server never said where it listens"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            assert reply.status == 200
            assert "<html" in reply.read().decode("utf-8").lower()
    finally:
        server.terminate()
        server.wait(10)


# --------------------------------------------------------------- launching from the menu


@pytest.mark.skipif(sys.platform == "win32", reason="a freedesktop install script")
@pytest.mark.parametrize("target", ["venv", pytest.param("bundle", marks=pytest.mark.slow)])
def test_desktop_entry_launches_the_console(
    target: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Install the desktop entry as a user would, then run what its Exec line says."""
    if target == "bundle":
        executable = request.getfixturevalue("bundle") / "repconsole"
    else:
        found = shutil.which("repconsole", path=str(Path(sys.executable).parent))
        if found is None:
            pytest.skip("no repconsole script beside this Python (repconsole is not installed)")
        executable = Path(found)

    env = _isolated_env(tmp_path)
    data = Path(env["XDG_DATA_HOME"])
    install = subprocess.run(
        ["sh", str(INSTALL_DESKTOP), "--exec", str(executable)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr

    installed = data / "applications" / DESKTOP_FILE.name
    assert (data / "metainfo" / METAINFO_FILE.name).is_file()
    assert (data / "icons/hicolor/scalable/apps" / f"{APP_ID}.svg").is_file()
    for size in ICON_SIZES:
        icon = data / f"icons/hicolor/{size}x{size}/apps/{APP_ID}.png"
        assert _png_header(icon)[:2] == (size, size)

    entry = _read_desktop_entry(installed)
    argv = _exec_argv(entry["Exec"])
    assert Path(argv[0]).resolve() == executable.resolve()
    assert entry["TryExec"] == argv[0]
    launched = _launch([*argv, "--quit-after", "1"], env)
    assert launched.returncode == 0 and "repconsole: sign-in dialog shown" in launched.stderr, launched.stderr

    uninstall = subprocess.run(
        ["sh", str(INSTALL_DESKTOP), "--uninstall"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert uninstall.returncode == 0, uninstall.stderr
    assert not installed.exists()
    assert not any((data / "icons").rglob(f"{APP_ID}.*"))
