"""The Prometheus series of ``GET /metrics`` (docs/operations.md), on a registry of the server's own.

Imported by :mod:`~repconsole.server.admin` only when a server starts:
the command-line tools never load ``prometheus_client``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from repconsole.core.engine import Event
from repconsole.core.model import SessionState
from repconsole.protocol import SessionData, StepKind

__all__ = ["CONTENT_TYPE", "Metrics"]

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


class _Delivery(Collector):
    """The fan-out's own counters (:attr:`Fanout.delivery_cpu <repconsole.server.fanout.Fanout.delivery_cpu>`,
    ``events_delivered``), read when scraped: the hot path adds to two numbers, nothing more."""

    def __init__(self, delivery: Callable[[], tuple[float, int]]) -> None:
        self._delivery = delivery

    def collect(self) -> Iterable[Metric]:
        cpu, events = self._delivery()
        yield CounterMetricFamily(
            "repconsole_fanout_cpu_seconds",
            "CPU of the event loop's thread delivering events to consoles: each tick's grouping, framing and "
            "socket writes (and a backlog written when a console goes live); not snapshots, replays or the encoding at commit",
            value=cpu,
        )
        yield CounterMetricFamily("repconsole_fanout_events", "Events written to consoles, counted once per connection that got them", value=events)


class Metrics:
    """The server's series.  Counters are counted by the server as things
    happen (:meth:`events`, :meth:`login_failed`, :meth:`closed`,
    :meth:`delivered`); gauges, and the fan-out's counters, are read at scrape time from the callables.

    Args:
        connections: open connections per endpoint (``rep``, ``customer``, ...).
        waiting: waiting sessions per team.
        delivery: the fan-out's delivery CPU seconds and events delivered, so far.
    """

    def __init__(
        self,
        connections: Callable[[], Mapping[str, int]],
        waiting: Callable[[], Mapping[str, int]],
        delivery: Callable[[], tuple[float, int]] = lambda: (0.0, 0),
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Gauges(connections, waiting))
        self.registry.register(_Delivery(delivery))
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
