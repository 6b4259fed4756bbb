"""The layering rules of the code base, checked on every test run."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "repconsole"
QT_MODULES = ("PySide6", "shiboken6", "qasync")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_ui_package_imports_qt() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("repconsole", "ui"):
            continue
        qt = sorted(n for n in _imports(path) if n.split(".")[0] in QT_MODULES)
        if qt:
            offenders.append(f"{rel}: {', '.join(qt)}")
    assert not offenders, "Qt imported outside repconsole/ui:\n" + "\n".join(offenders)


def test_core_can_be_imported_without_qt() -> None:
    code = (
        "import sys\n"
        "import repconsole.core.engine, repconsole.core.state, repconsole.core.commands\n"
        "import repconsole.backend.simulator, repconsole.settings, repconsole.cli\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_import_linter_contracts_hold() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint).exists():
        pytest.skip("import-linter is not installed")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# A module longer than this holds more than one thing: split it by class or
# concern before it grows further.
MAX_LINES = 800


def test_no_module_is_over_the_line_limit() -> None:
    lengths = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    offenders = [f"{rel}: {n} lines" for rel, n in lengths.items() if n > MAX_LINES]
    assert not offenders, f"modules over {MAX_LINES} lines:\n" + "\n".join(offenders)


# Code that keeps the engine's state outside it must use only the engine's
# public API, so that the engine can change how it keeps that state.
ENGINE_CLIENTS = ("repconsole/core/persist.py", "repconsole/server/store.py")


def _private_reaches(source: str) -> list[str]:
    """``x._name`` for any ``x`` but ``self``/``cls``, ``getattr(x, "_name")`` and the like,
    and imports of private engine names or of the engine's parts."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "delattr", "hasattr"):
            if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and str(node.args[1].value).startswith("_"):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("repconsole.core.engine"):
            if node.module != "repconsole.core.engine":
                found.append(f"line {node.lineno}: import from {node.module}, a part of the engine")
            found += [f"line {node.lineno}: import of {a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_the_scan_for_private_engine_access_finds_it() -> None:
    offending = (
        "from repconsole.core.engine import QueueEngine, _TeamChat\n"
        "from repconsole.core.engine.queues import NOTHING\n"
        "def f(engine, e):\n"
        "    engine._sessions.clear(); e._commit(1, 2); getattr(engine, '_keys')\n"
        "    self._fine = engine.session('S1')\n"
    )
    assert len(_private_reaches(offending)) == 5


@pytest.mark.parametrize("path", ENGINE_CLIENTS)
def test_persistence_uses_only_the_engines_public_names(path: str) -> None:
    found = _private_reaches((ROOT / path).read_text(encoding="utf-8"))
    assert not found, f"{path} reaches into private state:\n" + "\n".join(found)
