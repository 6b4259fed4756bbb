"""What an administrator runs the server with: metrics, health, logs, backups, systemd.

* :class:`Metrics`: the Prometheus series of ``GET /metrics`` (through
  ``prometheus-client``, on a registry of the server's own).
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from repconsole.core.engine import Event
from repconsole.core.model import SessionState
from repconsole.protocol import SessionData, StepKind
from repconsole.server.store import DB_NAME

__all__ = ["CONTENT_TYPE", "JsonFormatter", "Metrics", "backup", "sd_notify"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# From a batch's first commit to its frame handed to the sockets; the batch window is 5-20 ms.
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Gauges(Collector):
    """The gauges, read from the server's state when scraped (nothing to keep in step)."""

    def __init__(self, connections: Callable[[], Mapping[str, int]], waiting: Callable[[], Mapping[str, int]]) -> None:
        self._connections = connections
        self._waiting = waiting

    def collect(self) -> Iterable[Metric]:
        open_now = GaugeMetricFamily("repconsole_connections", "Open connections, by endpoint", labels=["endpoint"])
        for endpoint, count in sorted(self._connections().items()):
            open_now.add_metric([endpoint], count)
        yield open_now
        waiting = GaugeMetricFamily("repconsole_waiting_sessions", "Sessions waiting in a team's queue", labels=["team"])
        for team, count in sorted(self._waiting().items()):
            waiting.add_metric([team], count)
        yield waiting


class Metrics:
    """The server's series.  Counters are counted by the server as things
    happen (:meth:`events`, :meth:`login_failed`, :meth:`closed`,
    :meth:`delivered`); gauges are read at scrape time from the two callables.

    Args:
        connections: open connections per endpoint (``rep``, ``customer``, ...).
        waiting: waiting sessions per team.
    """

    def __init__(self, connections: Callable[[], Mapping[str, int]], waiting: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Gauges(connections, waiting))
        self.accepts = Counter("repconsole_accepts", "Sessions accepted by a rep", registry=self.registry)
        self.login_failures = Counter("repconsole_login_failures", "Refused rep logins (wrong password, unknown user, locked out)", registry=self.registry)
        self.closed = Counter(
            "repconsole_connections_closed",
            "Connections that ended: 'closed' with a closing handshake, 'dropped' without one (lost, killed, "
            "timed out), 'slow' closed by the server as a slow consumer (4408)",
            ["how"],
            registry=self.registry,
        )
        for how in ("closed", "dropped", "slow"):
            self.closed.labels(how)
        self.delivery = Histogram(
            "repconsole_delivery_seconds",
            "From an event's commit to its frame handed to the consoles' sockets",
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self._steps: dict[str, int] = {}  # a live session's timeline length, so that a step counts once

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def events(self, events: Sequence[Event]) -> None:
        """A committed step's events: counts the accepts among them."""
        for e in events:
            data = e.data
            if not isinstance(data, SessionData):
                continue
            view = data.session
            seen, now = self._steps.get(view.id, 0), len(view.timeline)
            if view.state is SessionState.ENDED:
                self._steps.pop(view.id, None)
            else:
                self._steps[view.id] = now
            if now > seen and any(step.kind is StepKind.ACCEPTED for step in view.timeline[seen:]):
                self.accepts.inc()

    def login_failed(self) -> None:
        self.login_failures.inc()

    def connection_closed(self, *, handshake: bool, code: int | None, slow_code: int) -> None:
        self.closed.labels("slow" if code == slow_code else "closed" if handshake else "dropped").inc()

    def delivered(self, seconds: float) -> None:
        self.delivery.observe(seconds)


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

