"""packaging/server/: the systemd unit passes ``systemd-analyze verify``; the Containerfile is what docs/operations.md says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TIMEOUT_SCALE

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "packaging" / "server" / "repconsole-server.service"
CONTAINERFILE = ROOT / "packaging" / "server" / "Containerfile"
INSTALLED = "/opt/repconsole/bin/repconsole-server"


def _settings(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines (continuations joined), every value of each key."""
    out: dict[str, list[str]] = {}
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE, check=False
    )


@pytest.fixture
def verifiable(tmp_path: Path) -> Path:
    """The unit with its ExecStart program at a path that exists here (verify checks that it is executable).

    Everything else is the file as shipped; the installed path is checked apart.
    """
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (.ci/run installs the systemd package)")
    text = UNIT.read_text(encoding="utf-8")
    assert f"ExecStart={INSTALLED} " in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(f"ExecStart={INSTALLED} ", f"ExecStart={Path(sys.executable).resolve()} "), encoding="utf-8")
    probe = _verify(unit)
    if "Failed to initialize manager" in probe.stderr or "Failed to setup" in probe.stderr:  # no usable systemd here at all
        pytest.skip(f"systemd-analyze cannot run in this container: {probe.stderr.strip()}")
    return unit


def test_the_unit_passes_systemd_analyze_verify(verifiable: Path) -> None:
    result = _verify(verifiable)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result.stdout + result.stderr


def test_verify_catches_a_mistake_in_the_unit(verifiable: Path) -> None:
    verifiable.write_text(verifiable.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    result = _verify(verifiable)
    assert "Unknown key" in result.stderr and "ProtectSytem" in result.stderr


def test_the_unit_is_hardened_and_notifies() -> None:
    s = _settings(UNIT.read_text(encoding="utf-8"))
    for key, value in {
        "Type": "notify",
        "DynamicUser": "yes",
        "StateDirectory": "repconsole",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }.items():
        assert s.get(key) == [value], (key, s.get(key))
    (start,) = s["ExecStart"]
    assert start.split()[0] == INSTALLED
    assert "--data /var/lib/repconsole" in start  # the StateDirectory: the only writable place
    assert "--config /etc/repconsole/site.toml" in start


def test_the_containerfile_runs_the_server_extra_as_a_user_with_a_volume_and_a_healthcheck() -> None:
    text = CONTAINERFILE.read_text(encoding="utf-8")
    (base,) = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert re.fullmatch(r"(docker\.io/library/)?python:3\.1[1-9]-slim(-\w+)?", base), base
    assert re.search(r'pip install "\.\[server\]"', text)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^VOLUME \["/data"\]', text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD .*/healthz", text, re.M)
    assert re.search(r'^ENTRYPOINT \["repconsole-server".*"--data", "/data"', text, re.M)
