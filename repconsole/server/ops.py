"""What an administrator runs the server with: logs, backups, systemd (metrics: :mod:`~repconsole.server.metrics`).

* :class:`JsonFormatter`: ``--log-format json``, one JSON object a line.
* :func:`backup`: a consistent copy of the database while the server runs,
  through SQLite's online backup API.
* :func:`sd_notify`: ``READY=1``, ``RELOADING=1``, ``STOPPING=1`` to systemd
  (``Type=notify``), a datagram to ``$NOTIFY_SOCKET``; nothing when unset.

docs/operations.md says how to use each.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from repconsole.server.store import DB_NAME

__all__ = ["JsonFormatter", "backup", "monotonic_usec", "sd_notify"]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ logs


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


# ---------------------------------------------------------------- backup


def backup(data_dir: Path, dest: Path) -> Path:
    """Copy the database of ``data_dir`` to ``dest`` (a file, or a directory to put a dated file in).

    One read transaction copies every page (SQLite's online backup API in a
    single step): the copy is the database as of one commit, whatever the
    running server writes meanwhile (in WAL mode a reader blocks no writer).
    The copy is written beside its destination and renamed into place once
    checked, and is a single self-contained file (rollback journal, not WAL).
    Raises OSError or sqlite3.Error.
    """
    source = data_dir / DB_NAME
    if not source.is_file():
        raise FileNotFoundError(f"no database in {data_dir} ({DB_NAME})")
    if dest.is_dir():
        dest = dest / f"repconsole-server-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.db"
    if dest.exists():
        raise FileExistsError(f"{dest} exists: give a new name or a directory")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=10.0)
    try:
        out = sqlite3.connect(partial)
        try:
            src.backup(out, pages=-1)
            out.execute("PRAGMA journal_mode=DELETE")
            (check,) = out.execute("PRAGMA integrity_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"the copy fails its integrity check: {check}")
        finally:
            out.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    os.replace(partial, dest)
    return dest


# --------------------------------------------------------------- systemd


def sd_notify(*states: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Tell systemd ``states`` (``READY=1``, ...) when it asked (``$NOTIFY_SOCKET``).  True if sent."""
    address = environ.get("NOTIFY_SOCKET")
    if not address or not states:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def monotonic_usec() -> str:
    """``MONOTONIC_USEC=…``, which systemd wants with ``RELOADING=1`` (Type=notify-reload)."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"

