"""The server's administrator pages: public ``/healthz``, and ``/metrics`` and ``/status``.

``GET /healthz`` is public and says only ``ok`` (200) or ``starting`` (503).
``GET /metrics`` (Prometheus, :class:`~repconsole.server.metrics.Metrics`) and
``GET /status`` (JSON: version, uptime, seq, who is online) are served on
the ``[admin] listen`` address (a second, plain-HTTP listener for a private
address), and on the main port only with ``Authorization: Bearer`` and the
``[admin] metrics_token``; with neither configured they are not served at all.
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse
from http import HTTPStatus
from typing import TYPE_CHECKING

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.protocol import State

from repconsole import __version__
from repconsole.core.model import QueueRef
from repconsole.protocol import CloseCode, encode
from repconsole.server.config import parse_listen
from repconsole.server.metrics import CONTENT_TYPE, Metrics
from repconsole.server.web import response

if TYPE_CHECKING:
    from repconsole.server.app import Server

__all__ = ["ADMIN_PATHS", "Admin"]

log = logging.getLogger(__name__)

ADMIN_PATHS = ("/metrics", "/status")
TEXT = "text/plain; charset=utf-8"


class Admin:
    """The administrator's pages of one :class:`~repconsole.server.app.Server`, and its metrics."""

    def __init__(self, server: Server, endpoints: dict[str, str]) -> None:
        self.server = server
        self.endpoints = endpoints  # WebSocket path -> the endpoint label of repconsole_connections
        self.metrics = Metrics(self._connections, self._waiting, self._delivery)
        self.ready = False
        self._listener: WsServer | None = None

    async def start(self) -> None:
        """Count what the runtime does; open the admin listener if there is one."""
        rt = self.server.runtime
        assert rt is not None
        rt.after_commit.append(self.metrics.events)
        rt.fanout.on_delivery = self.metrics.delivered
        listen = self.server.spec.admin.listen
        if listen is not None:
            host, port = parse_listen(listen)
            self._listener = await serve(
                self._refuse_sockets, host, port, process_request=self._listener_http, server_header=f"repconsole-server/{__version__}"
            )
            log.info("admin listener (/metrics, /status) on http://%s", self.address)

    async def stop(self) -> None:
        self.ready = False
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()

    @property
    def address(self) -> str | None:
        """``host:port`` of the admin listener (the port it got), if there is one."""
        if self._listener is None:
            return None
        host, port = self._listener.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    # -------------------------------------------------------------- HTTP

    def healthz(self) -> Response:
        """Public: whether to send traffic here, and nothing an outsider could use."""
        if self.ready:
            return response(HTTPStatus.OK, b"ok\n", TEXT)
        return response(HTTPStatus.SERVICE_UNAVAILABLE, b"starting\n", TEXT)

    def on_main_port(self, request: Request, path: str) -> Response:
        """/healthz, or an admin page for whoever has the token."""
        if path not in ADMIN_PATHS:
            return self.healthz()
        token = self.server.spec.admin.metrics_token
        if token is None:
            return response(HTTPStatus.NOT_FOUND, b"Not found\n", TEXT)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            challenge = [("WWW-Authenticate", 'Bearer realm="repconsole-server"')]
            return response(HTTPStatus.UNAUTHORIZED, b"A bearer token is needed\n", TEXT, challenge)
        return self._page(path)

    def _listener_http(self, connection: ServerConnection, request: Request) -> Response:
        path = urllib.parse.urlsplit(request.path).path
        if path == "/healthz":
            return self.healthz()
        if path in ADMIN_PATHS:
            return self._page(path)
        return response(HTTPStatus.NOT_FOUND, b"Not found\n", TEXT)

    async def _refuse_sockets(self, ws: ServerConnection) -> None:  # never reached: every request is answered over HTTP
        await ws.close()

    def _page(self, path: str) -> Response:
        if not self.ready:
            return self.healthz()
        if path == "/metrics":
            return response(HTTPStatus.OK, self.metrics.render(), CONTENT_TYPE)
        return response(HTTPStatus.OK, encode(self.server.status()), "application/json")

    # ------------------------------------------------------------ gauges

    def _connections(self) -> dict[str, int]:
        counts = dict.fromkeys(self.endpoints.values(), 0)
        for conn in self.server.connections:
            if conn.protocol.state is State.OPEN and conn.request is not None:
                endpoint = self.endpoints.get(urllib.parse.urlsplit(conn.request.path).path)
                if endpoint is not None:
                    counts[endpoint] += 1
        return counts

    def _waiting(self) -> dict[str, int]:
        rt = self.server.runtime
        if rt is None:
            return {}
        e = rt.engine
        return {team: e.queue_count(QueueRef.team(team)) for team in e.teams}

    def _delivery(self) -> tuple[float, int]:
        rt = self.server.runtime
        if rt is None:
            return 0.0, 0
        return rt.fanout.delivery_cpu, rt.fanout.events_delivered

    def connection_lost(self, conn: ServerConnection) -> None:
        """A connection ended: counted by how, if it was a WebSocket."""
        if conn.response is None or conn.response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            return  # an HTTP request, or a handshake that never completed
        p = conn.protocol
        handshake = p.close_rcvd is not None and p.close_sent is not None
        self.metrics.connection_closed(handshake=handshake, code=p.close_sent.code if p.close_sent else None, slow_code=CloseCode.TOO_SLOW)
