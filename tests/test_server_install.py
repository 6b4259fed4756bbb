"""``pip install "repconsole[server]"`` gives a server with no Qt at all.

The server environment is built the way pip would resolve the ``[server]``
extra, but offline: the requirements of ``repconsole`` and its ``server``
extra are read from pyproject.toml, their closure is followed through each
distribution's own ``Requires-Dist``, and those distributions' installed
files (and nothing else) are copied into a fresh virtual environment with
no system site-packages, beside a copy of the package laid out as the wheel
lays it out.  PySide6 is then simply absent: any import of Qt on the way to
serving fails, and the server is started there and answers over a socket.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import tomllib
import venv
from importlib import metadata
from pathlib import Path

import pytest
from conftest import TIMEOUT_SCALE
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
QT = {"pyside6", "pyside6-essentials", "pyside6-addons", "shiboken6", "qasync"}


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _wanted(requirements: list[str], extras: set[str]) -> list[Requirement]:
    """The requirements that apply here with ``extras`` asked for."""
    out = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
            out.append(req)
    return out


def server_requirements() -> list[Requirement]:
    project = _project()
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    return _wanted([*project["dependencies"], *extras["server"]], {""})  # type: ignore[list-item]


def closure(roots: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Every distribution installing ``roots`` brings, from what is installed here."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        req = todo.pop()
        name = _name(req.name)
        if name in found:
            continue
        dist = metadata.distribution(req.name)
        assert dist.version in req.specifier or not req.specifier, f"{req} but {dist.version} is installed"
        found[name] = dist
        todo += _wanted(dist.requires or [], set(req.extras))
    return found


def test_the_server_extra_brings_no_qt() -> None:
    project = _project()
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    names = set(closure(server_requirements()))
    assert not names & QT, f"a server install would bring {names & QT}"
    # ... and the console is where Qt went: `pip install "repconsole[console]"`.
    assert {_name(Requirement(r).name) for r in extras["console"]} >= {"pyside6", "qasync"}
    assert "prometheus-client" in names


@pytest.fixture(scope="module")
def server_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a virtual environment with the server's extra and nothing else."""
    home = tmp_path_factory.mktemp("server-env")
    venv.EnvBuilder(system_site_packages=False, with_pip=False, symlinks=True).create(home)
    python = home / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60 * TIMEOUT_SCALE,
    ).stdout.strip())  # fmt: skip
    for dist in closure(server_requirements()).values():
        for file in dist.files or ():
            source = Path(str(dist.locate_file(file)))
            if ".." in file.parts or not source.is_file() or "__pycache__" in file.parts:
                continue  # scripts in bin/ and caches: not needed to import
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # The package as the wheel lays it out: resources/ is repconsole.resources.
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "repconsole", site / "repconsole", ignore=ignore)
    shutil.copytree(ROOT / "resources", site / "repconsole" / "resources", ignore=ignore)
    return python


PROBE = """
import importlib.util, sys
assert importlib.util.find_spec("PySide6") is None, "Qt is installed in the server environment"
assert not sys.flags.no_site and "site-packages" in sys.path[-1]
import repconsole.server.app, repconsole.server.cli
qt = sorted(m for m in sys.modules if m.split(".")[0] in {"PySide6", "shiboken6", "qasync"})
assert not qt, qt
print("imported", len(sys.modules), "modules, no Qt")
"""


def test_the_server_runs_in_an_environment_with_only_its_extra(server_python: Path, tmp_path: Path) -> None:
    python = server_python
    probe = subprocess.run([str(python), "-I", "-c", PROBE], capture_output=True, text=True, timeout=120 * TIMEOUT_SCALE, check=False)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "no Qt" in probe.stdout

    # And it serves: the demo site, /healthz and /metrics over a real socket.
    server = subprocess.Popen(
        [str(python), "-I", "-m", "repconsole.server", "--port", "0", "--data", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = None
        assert server.stdout is not None
        for line in server.stdout:
            if m := re.match(r"repconsole-server: listening on ws://127\.0\.0\.1:(\d+)$", line.strip()):
                port = int(m.group(1))
                break
        assert port is not None, server.stderr.read() if server.stderr else ""
        fetch = subprocess.run(
            [str(python), "-I", "-c", f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/healthz', timeout=10).read().decode())"],
            capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, check=False,
        )  # fmt: skip
        assert fetch.stdout.strip() == "ok", fetch.stderr
    finally:
        server.terminate()
        server.wait(timeout=30 * TIMEOUT_SCALE)


@pytest.mark.parametrize("argv", [["--version"], ["check-config", "docs/site.example.toml"]])
def test_the_server_commands_run_without_qt(server_python: Path, argv: list[str]) -> None:
    result = subprocess.run(
        [str(server_python), "-I", "-m", "repconsole.server", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120 * TIMEOUT_SCALE, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip()


def _instruction(text: str, name: str) -> list[str]:
    """The exec-form (JSON array) argument of the Containerfile's last ``name`` instruction, continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = re.findall(rf"^{name}\s.*?(\[.*\])\s*$", joined, re.M)
    assert found, f"no exec-form {name} in the Containerfile"
    args = json.loads(found[-1])
    assert isinstance(args, list) and all(isinstance(a, str) for a in args)
    return args


def test_the_containerfile_commands_serve_and_pass_its_healthcheck(server_python: Path, tmp_path: Path) -> None:
    """No container engine here (nor a registry to pull the base from), so the image's own commands are run in the
    environment ``pip install ".[server]"`` makes: its ENTRYPOINT plus CMD, and its HEALTHCHECK against that server.

    Only the places are mapped (``/data`` and ``/etc/repconsole`` to temporary directories, port 8765 to a free
    one); the flags are the file's.  The healthcheck must fail while nothing serves and pass once it does.
    """
    text = (ROOT / "packaging" / "server" / "Containerfile").read_text(encoding="utf-8")
    entry, cmd, check = _instruction(text, "ENTRYPOINT"), _instruction(text, "CMD"), _instruction(text, "HEALTHCHECK")
    assert entry[0] == "repconsole-server" and check[0] == "python"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    config = tmp_path / "etc" / "site.toml"
    config.parent.mkdir()
    shutil.copy(ROOT / "docs" / "site.example.toml", config)
    places = {"/data": str(tmp_path / "data"), "/etc/repconsole/site.toml": str(config), "8765": port}
    argv = [str(server_python), "-I", "-m", "repconsole.server", *(places.get(a, a) for a in entry[1:] + cmd)]
    health = [str(server_python), "-I", *(a.replace(":8765/", f":{port}/") for a in check[1:])]
    assert f":{port}/healthz" in health[-1]

    def healthy() -> bool:
        return subprocess.run(health, capture_output=True, timeout=30 * TIMEOUT_SCALE, check=False).returncode == 0

    assert not healthy()  # nothing serves yet: the check must be able to fail
    (tmp_path / "data").mkdir(mode=0o700)
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60 * TIMEOUT_SCALE
        while not healthy():
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "the healthcheck never passed"
        server.terminate()  # STOPSIGNAL SIGTERM
        assert server.wait(timeout=30 * TIMEOUT_SCALE) == 0
        out, err = server.communicate(timeout=30 * TIMEOUT_SCALE)
        assert f":{port}" in out  # the ready line, on standard output
        logged = [json.loads(line) for line in err.splitlines()]  # --log-format json: every line is an object
        assert any("serving" in entry["message"] for entry in logged), err
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
