"""The queue server: the engine behind WebSocket, plus a little HTTP.

:class:`Server` serves, on one port:

* ``/rep``: representative consoles (login or resume, snapshot, events,
  commands, logout);
* ``/customer``: the customer pages (see :mod:`repconsole.server.customers`);
* ``/cobrowse`` and ``/cobrowse/watch``: co-browsing, a customer page's
  recorder and a rep's live view in a browser (see :mod:`repconsole.server.cobrowse`);
* HTTP ``GET /``, ``/support`` and the page's files from
  ``repconsole/server/static/``, ``GET /api/site`` (what the page offers)
  and ``GET /healthz`` ("ok" or "starting", nothing more); co-browsing's files,
  live view and ``GET /api/link/ID`` (see :mod:`repconsole.server.web`);
* for administrators, ``GET /metrics`` (Prometheus) and ``GET /status`` (JSON):
  on the ``[admin] listen`` address, or on the main port with the
  ``[admin] metrics_token`` (see :mod:`repconsole.server.admin`).

Everything the server knows runs on one asyncio loop: a message is parsed
(:mod:`repconsole.protocol`), authorized, run as one
:meth:`Runtime.step <repconsole.server.runtime.Runtime.step>` (committed to
SQLite), answered, and its events fanned out (:mod:`~repconsole.server.fanout`).
Only password hashing leaves the loop, for a small thread pool.

A rep may only ever see or act on what the engine's visibility rules give
them: commands go through :func:`repconsole.core.commands.execute` as that
rep, the snapshot is the rep's own, and events are projected per rep by
their audience.  A message the server cannot serve is answered with an
error naming the reason; the connection and every other one go on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
import ssl
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import msgspec
from msgspec import UNSET
from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from repconsole import __version__
from repconsole.core.commands import execute
from repconsole.core.engine import SnapshotCursor
from repconsole.core.errors import CommandError
from repconsole.protocol import (
    COBROWSE_COMMANDS,
    MAX_FRAME,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    SNIPPET_COMMANDS,
    CloseCode,
    Command,
    Error,
    ErrorReason,
    Login,
    Logout,
    ProtocolError,
    RepRequest,
    RequestId,
    Result,
    Resume,
    ResumeReason,
    Typing,
    Welcome,
    encode,
    parse_rep,
    request_key,
)
from repconsole.server.admin import ADMIN_PATHS, Admin
from repconsole.server.auth import (
    OWASP,
    HashParams,
    LoginSession,
    hash_token,
    new_token,
)
from repconsole.server.cluster.records import AnswerRecord, LogoutRecord
from repconsole.server.cobrowse import CobrowseDesk, LocalRelay
from repconsole.server.config import ServerSettings, SiteSpec
from repconsole.server.connections import tls_context, tracked
from repconsole.server.customers import CustomerDesk
from repconsole.server.fanout import RepLink, close_slow, visible_to
from repconsole.server.links import LinkBook
from repconsole.server.origins import OriginPolicy, loopback
from repconsole.server.passwords import PasswordDesk, Verdict
from repconsole.server.proxy import TrustedProxies
from repconsole.server.reload import Plan, reload_server
from repconsole.server.routing import too_old_for_offers
from repconsole.server.runtime import PersistenceFailure, Runtime, command_digest
from repconsole.server.snapshots import send_replay, send_snapshot
from repconsole.server.snippets import SnippetBook
from repconsole.server.store import Store
from repconsole.server.timers import ServerClock, WallClock
from repconsole.server.web import CONTENT_TYPES, STATIC_NAME, WATCH_PATH, CobrowseWeb, response

if TYPE_CHECKING:
    from repconsole.server.cluster.desk import ClusterDesk

__all__ = ["LISTEN_BACKLOG", "STATIC_DIR", "Server", "tls_context"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
LOGIN_TIMEOUT = 10.0
# Presence: the server pings every connection itself (Server._keepalive), every
# [server] ping_interval seconds, and gives up on one that has not answered within
# ping_timeout.  Socket-level, not server timers: on the loop's clock, real time even
# when the server's clock is virtual.  websockets' own keepalive is off: its ping
# waits for the write buffer to drain first (a frozen console under traffic was
# never timed out), and once timed out it waits close_timeout more (10 s) for a
# closing handshake a frozen peer never answers.
#
# websockets' high-water mark: a send() (a reply, a snapshot) waits while more than
# this waits unsent; the fan-out's own bound is [server] send_buffer.
WRITE_LIMIT = 64 * 1024
# When the server stops, an open connection has this long to answer the
# closing handshake (1001) before it is dropped; a connection still opening
# (a browser's idle pre-connected socket, an unfinished request) is dropped
# at once.  websockets alone would wait 10 s for either.
SHUTDOWN_GRACE = 2.0
DEMO_PASSWORD_BYTES = 9  # 72 bits, 12 characters
# Connections the kernel may hold accepted but not yet taken by the server (listen()'s
# backlog; Linux caps it at net.core.somaxconn, 4096 by default).  asyncio's default,
# 100, is overrun when a restart brings every console back at once: the kernel then
# drops the excess SYNs and those consoles retry after 1 s, 3 s, 7 s (TCP's own backoff).
LISTEN_BACKLOG = 4096
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
# WebSocket endpoints; a page's Origin is checked at the handshake of each.
REP_PATH, CUSTOMER_PATH, RECORDER_PATH = "/rep", "/customer", "/cobrowse"
_SOCKETS = frozenset((REP_PATH, CUSTOMER_PATH, RECORDER_PATH, WATCH_PATH))
_ENDPOINTS = {REP_PATH: "rep", CUSTOMER_PATH: "customer", RECORDER_PATH: "cobrowse_recorder", WATCH_PATH: "cobrowse_watch"}


class Server:
    """One site, served on one host and port.

    Use as an async context manager, or :meth:`start` and :meth:`stop`::

        async with Server(spec, data_dir, port=0) as server:
            print(server.url)
            await server.wait_closed()

    Args:
        clock: the server's clock (every timer: rules, grace periods,
            expiries, the login timeout); the wall clock by default, a
            :class:`~repconsole.server.timers.VirtualClock` in tests.
        resources: where co-browsing's files (``rrweb/``, ``cobrowse/``) are
            read from; by default the package ``repconsole.resources``.

    Attributes:
        clock: the server's clock.
        runtime: the engine, store and fan-out (after :meth:`start`).
        new_passwords: demo passwords generated by this start, to show once.
        failed: the exception that stopped the server, if one did.
    """

    def __init__(
        self,
        spec: SiteSpec,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        ssl_context: ssl.SSLContext | None = None,
        hash_params: HashParams = OWASP,
        static_dir: Path = STATIC_DIR,
        clock: ServerClock | None = None,
        resources: Traversable | None = None,
    ) -> None:
        self.spec = spec
        self.resources = resources
        self.clock: ServerClock = clock if clock is not None else WallClock()
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.hash_params = hash_params
        self.static_dir = static_dir
        self.runtime: Runtime | None = None
        self.customers: CustomerDesk | None = None
        self.links: LinkBook | None = None
        self.cobrowse: CobrowseDesk | None = None
        self.snippets: SnippetBook | None = None  # team snippets (issue 14)
        self.web: CobrowseWeb | None = None
        self.cluster: ClusterDesk | None = None
        self.new_passwords: dict[str, str] = {}
        self.failed: BaseException | None = None
        self._ws: WsServer | None = None
        # A console resuming from this seq or before gets a snapshot: the directory changed (reload).
        self.resync_floor = -1
        self.admin = Admin(self, _ENDPOINTS)
        self.metrics = self.admin.metrics
        # Every accepted TCP connection, from before its handshake: see stop().
        self._connections: set[ServerConnection] = set()
        self._stopping = False
        self._closed = asyncio.Event()
        # The feed of each logged-in /rep connection.
        self._rep_links: dict[ServerConnection, RepLink] = {}
        self.passwords = PasswordDesk(spec, self.clock, hash_params)
        self._proxies = TrustedProxies()
        self.origins = OriginPolicy()
        self.apply_settings(spec.server)

    def apply_settings(self, settings: ServerSettings) -> None:
        """Take ``[server]``'s connection settings: trusted proxies, public origins, the
        password-check budget (at once), ping interval and timeout (from each connection's
        next ping).  A reload of the configuration calls it with the new settings."""
        self._proxies = TrustedProxies(settings.trusted_proxies, settings.forwarded_header)
        self.origins = OriginPolicy(settings, tls=self.ssl_context is not None)
        self.passwords.set_budget(settings.password_work)

    # --------------------------------------------------------- lifecycle

    @property
    def scheme(self) -> str:
        return "wss" if self.ssl_context else "ws"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.runtime = Runtime(self.spec, self.data_dir, loop, clock=self.clock, on_fatal=self._fatal)
        for line in self.runtime.repairs:
            log.warning("stored state repaired: %s", line)
        if self.spec.demo:
            await self._demo_passwords()
        else:
            missing = [r.id for r in self.spec.reps if r.password_hash is None and self.runtime.store.password_hash(r.id) is None]
            if missing:
                log.warning("no password set for %s: set one with `repconsole-server passwd USERNAME`", ", ".join(missing))
        self.links = LinkBook(self.spec, self.runtime.engine, self.runtime.store)
        self.customers = CustomerDesk(self.runtime, self.links)
        self.cobrowse = CobrowseDesk(self.runtime, self.customers, base_url=self.base_url)
        self.snippets = SnippetBook(self.runtime, lambda: self.spec)
        if self.resources is None:
            import repconsole.resources

            self.resources = repconsole.resources.files()
        self.web = CobrowseWeb(self.links, self.resources, self.static_dir, self._origin_allowed)
        if self.runtime.member is not None:  # [cluster]: forward to the leader, or run what followers forward
            from repconsole.server.cluster.desk import ClusterDesk

            self.cluster = ClusterDesk(self, self.runtime, self.runtime.member)
        self.passwords.store = self.runtime.store
        self.runtime.housekeepers.append(lambda now: self.passwords.prune())
        self.runtime.fanout.on_drop = self._detach  # a console dropped as too slow is lost now
        self._ws = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._http,
            ssl=self.ssl_context,
            compression=None,  # deflate costs ~50 KiB per connection and 2-7x broadcast CPU
            max_size=MAX_FRAME,
            ping_interval=None,  # Server._keepalive
            ping_timeout=None,
            write_limit=WRITE_LIMIT,
            close_timeout=self.spec.server.ping_timeout,
            server_header=f"repconsole-server/{__version__}",
            create_connection=tracked(self._connections, self.admin.connection_lost),
            backlog=LISTEN_BACKLOG,
        )
        self.port = self._ws.sockets[0].getsockname()[1]
        if not self.spec.server.public_url and not loopback(self.host):
            log.warning(
                "[server] public_url is not set: browsers may use this server's pages only at an IP address or "
                "localhost (a page reached by a name is refused, as a DNS-rebinding attack would be); "
                "set public_url to the address browsers reach the server at"
            )
        await self.admin.start()
        self.runtime.start()
        self.admin.ready = True
        log.info("serving %s on %s", "the demo site" if self.spec.demo else self.spec.source, self.url)

    async def stop(self) -> None:
        """Close every connection (1001) and the store.  Reps keep their state:
        the next start gives each of them the grace period from then."""
        if self._stopping:
            await self._closed.wait()
            return
        self._stopping = True
        try:
            await self.admin.stop()
            if self._ws is not None:
                await self._close_connections(self._ws)
            if self.customers is not None:
                self.customers.shutdown()
            if self.cobrowse is not None:
                self.cobrowse.shutdown()
            if self.runtime is not None:
                self.runtime.stop()
                self.runtime.store.close()
            self.passwords.shutdown()
        finally:
            self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def reload(self, spec: SiteSpec) -> Plan:
        """Apply a checked new configuration (SIGHUP); ReloadRefused: it needs a restart, nothing changed."""
        return reload_server(self, spec)

    @property
    def connections(self) -> set[ServerConnection]:
        """Every open TCP connection, from before its handshake."""
        return self._connections

    @property
    def admin_address(self) -> str | None:
        return self.admin.address

    async def _close_connections(self, ws: WsServer) -> None:
        """Stop listening, close every connection, and wait for the handlers.

        Open WebSocket connections are told 1001 and get ``SHUTDOWN_GRACE``
        seconds to answer; connections still opening have no one to tell and
        are dropped now.  websockets on its own waits ``open_timeout`` (10 s)
        for a connection that never sends its request, and ``close_timeout``
        (10 s) for a client that never answers the closing handshake.
        """
        ws.close()  # stops listening, sends 1001 to the open ones, then waits for every handler
        for conn in list(self._connections):
            if conn.protocol.state is State.CONNECTING:
                conn.transport.abort()
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await ws.wait_closed()
        except TimeoutError:
            for conn in list(self._connections):
                log.info("dropping %s: no answer to the closing handshake", conn.remote_address)
                conn.transport.abort()
            await ws.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _fatal(self, exc: BaseException) -> None:
        self.failed = exc
        asyncio.get_running_loop().create_task(self.stop())

    async def _demo_passwords(self) -> None:
        """First start of the demo: a random password per rep, stored hashed, shown once."""
        assert self.runtime is not None
        store = self.runtime.store
        todo = [r.id for r in self.spec.reps if store.password_hash(r.id) is None]
        if not todo:
            return
        passwords = {rep: secrets.token_urlsafe(DEMO_PASSWORD_BYTES) for rep in todo}
        hashes = await asyncio.gather(*(self.passwords.hash(pw) for pw in passwords.values()))
        for rep, encoded in zip(passwords, hashes, strict=True):
            store.set_password_hash(rep, encoded)
        self.new_passwords = passwords

    # -------------------------------------------------------------- HTTP

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urllib.parse.urlsplit(request.path).path
        if path in _SOCKETS:
            link = _link_of(request) if path in (CUSTOMER_PATH, RECORDER_PATH) else None
            if not self._origin_allowed(request, link):
                log.info("refused %s from Origin %s", path, request.headers.get("Origin"))
                return connection.respond(HTTPStatus.FORBIDDEN, "Origin not allowed\n")
            return None  # on with the WebSocket handshake
        if path == "/healthz":
            return self.admin.healthz()
        if path in ADMIN_PATHS:
            return self.admin.on_main_port(request, path)
        if path == "/api/site":
            return self._json(self._public_site())
        assert self.web is not None
        answer = self.web.answer(request, path)
        if answer is not None:
            return answer
        name = {"/": "index.html", "/support": "support.html"}.get(path, path.removeprefix("/static/").lstrip("/"))
        if path == "/support" and not (self.static_dir / name).is_file():
            name = "index.html"
        if STATIC_NAME.match(name):
            file = self.static_dir / name
            if file.is_file():
                return response(HTTPStatus.OK, file.read_bytes(), CONTENT_TYPES[file.suffix])
        return connection.respond(HTTPStatus.NOT_FOUND, "Not found\n")

    def _json(self, data: Any) -> Response:
        return response(HTTPStatus.OK, encode(data), "application/json")

    def base_url(self, host: str | None = None) -> str:
        """The address a browser reaches this server at: ``[server] public_url``, else the
        ``Host`` a client connected with, else the address the server listens on."""
        if self.spec.server.public_url:
            return self.spec.server.public_url
        scheme = "https" if self.ssl_context else "http"
        if host and _HOST.match(host):
            return f"{scheme}://{host}"
        listen = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{listen}:{self.port}"

    def _origin_allowed(self, request: Request, link: str | None = None) -> bool:
        """Whether a browser page may use our endpoints (see :mod:`repconsole.server.origins`)."""
        link_origins = self.links.origins(link) if link is not None and self.links is not None else ()
        return self.origins.allows(request, link_origins)

    def status(self) -> dict[str, Any]:
        """What GET /status tells an administrator (never the public)."""
        rt = self.runtime
        assert rt is not None and self.customers is not None
        return {
            "status": "ok",
            "version": __version__,
            "uptime": round(self.clock.now() - rt.boot_time, 3),
            "seq": rt.engine.seq,
            "reps_online": rt.fanout.connected_reps(),
            "customers_online": self.customers.connections(),
            "waiting": rt.engine.waiting_total(),
            "cobrowse": self.cobrowse.counts() if self.cobrowse is not None else {},
        }

    def _public_site(self) -> dict[str, Any]:
        """What the public support page offers.  Only what a customer may know."""
        assert self.runtime is not None
        e = self.runtime.engine
        now = e.now()
        return {
            "issues": [{"code": i.code, "name": i.name, "category": i.category} for i in e.issues.values()],
            "reps": sorted(
                ({"id": r.id, "name": r.name} for r in e.reps.values() if r.connected), key=lambda r: r["name"].lower()
            ),
            "buttons": [
                {"id": b.id, "description": b.description}
                for b in e.buttons.values()
                if b.expires_at is None or b.expires_at > now
            ],
            "links": [{"id": link.id, "name": link.name} for link in (self.links.configured() if self.links else ())],
        }

    # --------------------------------------------------------- WebSocket

    async def _handle(self, ws: ServerConnection) -> None:
        # Only the WebSocket endpoints get here: _http answers any other path at the handshake.
        request = ws.request
        assert request is not None and self.customers is not None and self.cobrowse is not None
        path = urllib.parse.urlsplit(request.path).path
        # Let in only for a link's origins (see _origin_allowed): that link, and nothing else.
        link = _link_of(request)
        only_link = link if link is not None and not self._origin_allowed(request) else None
        keepalive = asyncio.get_running_loop().create_task(self._keepalive(ws))
        try:
            if path == REP_PATH:
                await self._serve_rep(ws)
            elif path == RECORDER_PATH and self.runtime is not None and self.runtime.follows and isinstance(self.cobrowse.backend, LocalRelay):
                # Only a relay between processes (RedisRelay, [cluster]'s default) carries a follower's recorder to the reps.
                await ws.close(1013, "this server follows its cluster's leader and relays no pages: recorders connect to the leader")
            elif path == CUSTOMER_PATH:
                await self.customers.serve(ws, only_link=only_link, address=self.client_address(ws))
            elif path == RECORDER_PATH:
                await self.cobrowse.serve_recorder(ws)
            else:
                await self.cobrowse.serve_ticket(ws, _query(request, "ticket") or "")
        except ConnectionClosed:
            pass
        except PersistenceFailure:
            await ws.close(CloseCode.SERVER_ERROR, "server error")
        except Exception:
            log.exception("connection handler failed")
            await ws.close(CloseCode.SERVER_ERROR, "server error")
        finally:
            keepalive.cancel()

    async def _keepalive(self, ws: ServerConnection) -> None:
        """Ping ``ws`` every ``ping_interval`` seconds (from one ping's due time to the
        next's); give it up if a ping has not been answered ``ping_timeout`` seconds
        after it was sent, even if it could not be written (a full buffer).

        So a console frozen at time t is lost by t + ping_interval + ping_timeout:
        the last ping it answered was sent before t, the next is due at most
        ping_interval later.  Giving up: its rep's presence is updated at once (the
        grace period starts), and the connection is closed with 4408 and dropped if
        it does not read the close frame within ping_timeout (see close_slow).
        """
        settings = self.spec.server
        loop = asyncio.get_running_loop()
        due = loop.time() + settings.ping_interval
        try:
            while True:
                await asyncio.sleep(max(0.0, due - loop.time()))
                # From its sending: a loop that was busy past `due` must not count against the client.
                async with asyncio.timeout(settings.ping_timeout):
                    pong = await ws.ping()
                    await pong
                due += settings.ping_interval
                due = max(due, loop.time())  # a late pong does not make the next ping early
        except ConnectionClosed:
            return
        except TimeoutError:
            pass
        log.info("%s did not answer a ping within %g s: closing it (4408)", ws.remote_address, settings.ping_timeout)
        link = self._rep_links.get(ws)
        if link is not None:
            self._detach(link)
        await close_slow(ws, "not responding to pings", settings.ping_timeout)

    async def _send(self, ws: ServerConnection, message: Welcome | Result | Error | bytes) -> None:
        await ws.send(message if isinstance(message, bytes) else encode(message), text=True)

    async def _serve_rep(self, ws: ServerConnection) -> None:
        link = await self._authenticate(ws)
        if link is None:
            return
        assert self.runtime is not None
        try:
            async for frame in ws:
                try:
                    msg = parse_rep(frame)
                except ProtocolError as exc:
                    await self._send(ws, exc.reply())
                    continue
                if isinstance(msg, Command) and msg.name in COBROWSE_COMMANDS:
                    # Answered by the co-browsing relay, not the engine, and never stored:
                    # a watch belongs to this connection, and a retry must start it again.
                    assert self.cobrowse is not None
                    reply, then = self.cobrowse.command(link.login, ws, msg)
                    await self._send(ws, reply)
                    if then is not None:
                        then()
                elif isinstance(msg, Command) and msg.name in SNIPPET_COMMANDS and self.snippets is not None and not self.runtime.follows:
                    # Beside the engine (no seq), its answers stored as every command's.
                    await self._send(ws, self._command(link.login, msg, run=functools.partial(self.snippets.run, link.rep, msg)))
                elif isinstance(msg, Command) and self.cluster is not None and self.runtime.follows:
                    await self.cluster.command(link, msg)  # to the leader: the result, then its events
                elif isinstance(msg, Command):
                    await self._send(ws, self._command(link.login, msg))
                elif isinstance(msg, Typing):
                    assert self.customers is not None
                    self.customers.typing.from_rep(link.rep, msg.session)  # a transient: never answered
                elif isinstance(msg, Logout):
                    if self.cluster is not None and self.runtime.follows:
                        await self.cluster.logout(link.login)
                    self._logout(link.login, ws)
                    await ws.close(CloseCode.LOGGED_OUT, "logged out")
                    return
                else:
                    await self._send(ws, _refusal(msg.id, ErrorReason.ALREADY_LOGGED_IN, "this connection is logged in"))
        finally:
            self._detach(link)

    def _detach(self, link: RepLink) -> None:
        """The server is done with ``link`` (closed, dropped as too slow, or not answering)."""
        assert self.runtime is not None
        if link.detached:
            return  # its presence was counted out already: a second disconnect would restart the grace period
        link.detached = True
        self._rep_links.pop(link.ws, None)
        self.runtime.fanout.detach(link)
        if self.cobrowse is not None:
            self.cobrowse.forget(link.ws)
        link.login.connections.discard(link.ws)
        self._presence(link.rep)

    async def _authenticate(self, ws: ServerConnection) -> RepLink | None:
        """Until a login or resume succeeds: anything else is answered, nothing is served."""
        # One deadline for the whole wait, however many messages come before the login.
        deadline = self.clock.monotonic() + LOGIN_TIMEOUT
        while True:
            try:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    raise TimeoutError  # it passed while the last message was answered
                async with self.clock.timeout(left):
                    frame = await ws.recv()
            except TimeoutError:
                await ws.close(CloseCode.NOT_AUTHENTICATED, f"no login within {LOGIN_TIMEOUT:.0f} s")
                return None
            try:
                msg: RepRequest = parse_rep(frame)
            except ProtocolError as exc:
                await self._send(ws, exc.reply())
                continue
            if isinstance(msg, Login | Resume) and (
                unsupported := _unsupported(msg.protocol) if not MIN_PROTOCOL_VERSION <= msg.protocol <= PROTOCOL_VERSION
                else too_old_for_offers(self.runtime.engine if self.runtime else None, msg.protocol)
            ):  # fmt: skip
                await self._send(ws, _refusal(msg.id, ErrorReason.UNSUPPORTED_PROTOCOL, unsupported))
                await ws.close(CloseCode.UNSUPPORTED_PROTOCOL, ErrorReason.UNSUPPORTED_PROTOCOL.value)
                return None
            if isinstance(msg, Login):
                return await self._login(ws, msg)
            if isinstance(msg, Resume):
                return await self._resume(ws, msg)
            await self._send(ws, _refusal(msg.id, ErrorReason.NOT_LOGGED_IN, "log in or resume first"))

    def client_address(self, ws: ServerConnection) -> str:
        """The address of the client at the other end of ``ws`` (for rate limits and logs):
        the peer's, or, from a ``[server] trusted_proxies`` peer, the one its
        ``forwarded_header`` names (see :mod:`repconsole.server.proxy`)."""
        peer = ws.remote_address
        address = str(peer[0]) if peer else "unknown"
        request = ws.request
        if request is None or not self._proxies.networks:
            return address
        return self._proxies.client(address, request.headers.get_all(self._proxies.header))

    async def _refuse(self, ws: ServerConnection, rid: RequestId, reason: ErrorReason, detail: str) -> None:
        await self._send(ws, _refusal(rid, reason, detail))
        await ws.close(CloseCode.NOT_AUTHENTICATED, reason.value)

    async def _login(self, ws: ServerConnection, msg: Login) -> RepLink | None:
        rt = self.runtime
        assert rt is not None
        # Failures count per (username, address): a guesser elsewhere cannot lock the rep out.
        address = self.client_address(ws)
        verdict = await self.passwords.check(msg.username, msg.password, address)
        if verdict is Verdict.LOCKED:
            self.metrics.login_failed()
            await self._refuse(ws, msg.id, ErrorReason.RATE_LIMITED, "too many failed logins; try again in a minute")
            return None
        if verdict is Verdict.BUSY:
            await self._refuse(ws, msg.id, ErrorReason.RATE_LIMITED, "the server is busy; try again in a second")
            return None
        if verdict is not Verdict.OK:
            self.metrics.login_failed()
            await self._refuse(ws, msg.id, ErrorReason.BAD_CREDENTIALS, "wrong username or password")
            return None
        token = new_token()
        if self.cluster is not None and rt.follows:
            forwarded = await self.cluster.connect(ws, msg.id, msg.username, hash_token(token))
            if forwarded is None:
                return None
            login = forwarded
        else:
            login = rt.login_step(msg.username, hash_token(token))
        log.info("%s logged in from %s (login %d)", login.rep, address, login.id)
        return await self._start_feed(ws, login, msg.id, token, resumed=False, last_seq=None, protocol=msg.protocol)

    async def _resume(self, ws: ServerConnection, msg: Resume) -> RepLink | None:
        rt = self.runtime
        assert rt is not None
        login = rt.logins.find(msg.token)
        if login is None or login.rep not in rt.engine.reps:
            await self._refuse(ws, msg.id, ErrorReason.TOKEN_UNKNOWN, "unknown token: log in again")
            return None
        if login.expires_at <= self.clock.now():
            await self._refuse(ws, msg.id, ErrorReason.TOKEN_EXPIRED, "the login has expired: log in again")
            return None
        if self.cluster is not None and rt.follows:
            if await self.cluster.connect(ws, msg.id, login.rep) is None:
                return None
        else:
            with rt.step():
                rt.engine.rep_connected(login.rep)
        return await self._start_feed(ws, login, msg.id, msg.token, resumed=True, last_seq=msg.last_seq, protocol=msg.protocol)

    async def _start_feed(
        self, ws: ServerConnection, login: LoginSession, rid: RequestId, token: str, *, resumed: bool, last_seq: int | None,
        protocol: int = PROTOCOL_VERSION,
    ) -> RepLink:  # fmt: skip
        """Welcome, then the snapshot or the replay, then live events: in that order, nothing lost."""
        rt = self.runtime
        assert rt is not None
        rep = login.rep
        # The snapshot or replay is as of now: it may cover events that still wait
        # for the fan-out's tick, which leaves them out of this link's frames
        # (RepLink.served) instead of being forced out early.  So a storm of
        # sign-ins shares ticks like any other traffic.
        replay = rt.fanout.replay_items(rep, last_seq) if last_seq is not None and last_seq > self.resync_floor else None
        replay = visible_to(protocol, replay) if replay is not None else None
        reason = ResumeReason.OUTSIDE_RESUME_WINDOW if last_seq is not None and replay is None else None
        welcome = Welcome(
            rid, rep, token, replay is not None, login.expires_at, self.clock.now(), rt.spec.server.resume_window,
            protocol, reason if reason is not None else UNSET,
        )  # fmt: skip
        cursor: SnapshotCursor | None = None
        if replay is not None and last_seq is not None:
            # The replay holds every event up to the fan-out's seq now; it goes out in parts
            # (repconsole.server.snapshots.send_replay), and the link's prev is its last event's.
            link = RepLink(ws, rep, login, last_seq, served=rt.fanout.seq, protocol=protocol)
        else:
            # The snapshot as of now, built and sent a part at a time (see
            # repconsole.server.snapshots): the loop serves everyone meanwhile.
            cursor = rt.engine.snapshot_cursor(rep)
            link = RepLink(ws, rep, login, cursor.seq, protocol=protocol)
        # Attached before the first await: events from here on wait in the
        # link's backlog until the snapshot or replay is written.
        rt.fanout.attach(link)
        self._rep_links[ws] = link
        login.connections.add(ws)
        try:
            await self._send(ws, welcome)
            if cursor is not None:
                await send_snapshot(ws, cursor)
            elif replay is not None and last_seq is not None:
                link.prev = await send_replay(ws, last_seq, replay)
        except BaseException:
            if cursor is not None:
                cursor.close()
            self._detach(link)
            raise
        rt.fanout.ready(link)
        if self.snippets is not None:
            self.snippets.greet(link)  # beside the feed, once the snapshot or replay is out
        return link

    def _command(self, login: LoginSession, msg: Command, run: Callable[[], bytes] | None = None) -> bytes:
        """Answer a command once per request id: the engine's, or ``run``'s (a desk beside the engine)."""
        rt = self.runtime
        assert rt is not None
        key = request_key(msg.id)
        digest = command_digest(msg.name, msg.args)
        stored = rt.answers.lookup(login.id, key, self.clock.now()) if rt.answers.may_have(login.id, msg.id) else None
        if stored is not None:
            reply, answered = stored
            if answered and answered != digest:
                # Not a retry: a client bug that must not pass for the first command's answer.
                return encode(_refusal(msg.id, ErrorReason.ID_REUSED, "this request id already answered another command"))
            return reply  # a retry: answered already, not run again
        with rt.step() as rows:
            try:
                if run is not None:
                    reply = run()
                else:
                    result = execute(rt.engine, login.rep, msg.name, msg.args)
                    reply = encode(Result(msg.id, msgspec.Raw(encode(result))))
            except CommandError as exc:
                reply = encode(exc.error(msg.id))
            except Exception:
                log.exception("command %s of %s failed", msg.name, login.rep)
                reply = encode(_refusal(msg.id, ErrorReason.INTERNAL_ERROR, "the server failed; nothing was confirmed"))
            rows.append(Store.answer_row(login.id, key, at := self.clock.now(), reply, digest))  # one time for both
            rt.replicate(AnswerRecord(login.id, key, at, reply, digest))
        rt.answers.stored(login.id, msg.id)
        return reply

    def _logout(self, login: LoginSession, current: ServerConnection | None) -> None:
        rt = self.runtime
        assert rt is not None
        with rt.step() as rows:
            rows.extend(Store.logout_rows(login.id))
            rt.replicate(LogoutRecord(login.id))
        rt.logins.remove(login)  # its answers went with its row (Store.logout_rows)
        rt.answers.forget(login.id)
        if self.cobrowse is not None:
            self.cobrowse.logout(login.id)
        log.info("%s logged out (login %d)", login.rep, login.id)
        for ws in list(login.connections):
            if ws is not current:
                rt.loop.create_task(ws.close(CloseCode.LOGGED_OUT, "logged out"))

    def _presence(self, rep: str) -> None:
        """A rep whose last connection closed starts the grace period."""
        rt = self.runtime
        if rt is None or self._stopping or rt.held(rep):
            return
        if self.cluster is not None and rt.follows:
            self.cluster.member.presence_changed()  # the leader decides, knowing every process's consoles
            return
        try:
            with rt.step():
                rt.engine.rep_disconnected(rep)
        except PersistenceFailure:
            pass


def _query(request: Request, name: str) -> str | None:
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query).get(name)
    return values[0] if values else None


def _link_of(request: Request) -> str | None:
    """The browser-sharing link a page names (``?link=ID``)."""
    link = _query(request, "link")
    return link if link and len(link) <= 64 else None


def _refusal(rid: RequestId, reason: ErrorReason, detail: str) -> Error:
    return Error(id=rid, reason=reason, detail=detail, data={})


def _unsupported(version: int) -> str:
    versions = f"version {PROTOCOL_VERSION}" if MIN_PROTOCOL_VERSION == PROTOCOL_VERSION else f"versions {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
    return f"this server speaks protocol {versions}, the console speaks version {version}: update the console"
