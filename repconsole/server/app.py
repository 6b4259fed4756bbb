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
import logging
import re
import secrets
import ssl
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Self

import msgspec
from msgspec import UNSET
from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from repconsole import __version__
from repconsole.collector import collector_paused
from repconsole.core.commands import execute
from repconsole.core.errors import CommandError
from repconsole.protocol import (
    COBROWSE_COMMANDS,
    MAX_FRAME,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
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
    Snapshot,
    Welcome,
    encode,
    events_frame,
    parse_rep,
    request_key,
)
from repconsole.server.admin import ADMIN_PATHS, Admin
from repconsole.server.auth import (
    OWASP,
    FailureLimiter,
    LoginSession,
    ScryptParams,
    dummy_hash,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from repconsole.server.cobrowse import CobrowseDesk
from repconsole.server.config import SiteSpec, parse_origin
from repconsole.server.customers import CustomerDesk
from repconsole.server.fanout import RepLink
from repconsole.server.links import LinkBook
from repconsole.server.reload import Plan, reload_server
from repconsole.server.runtime import PersistenceFailure, Runtime
from repconsole.server.store import Store
from repconsole.server.timers import ServerClock, WallClock
from repconsole.server.web import CONTENT_TYPES, STATIC_NAME, WATCH_PATH, CobrowseWeb, response

__all__ = ["STATIC_DIR", "Server"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
LOGIN_TIMEOUT = 10.0
# Presence: websockets pings on its own (loop) clock; these are socket-level,
# not server timers, and stay on real time even when the server's clock is virtual.
PING_INTERVAL = 10.0
PING_TIMEOUT = 10.0
# When the server stops, an open connection has this long to answer the
# closing handshake (1001) before it is dropped; a connection still opening
# (a browser's idle pre-connected socket, an unfinished request) is dropped
# at once.  websockets alone would wait 10 s for either.
SHUTDOWN_GRACE = 2.0
LOGIN_FAILURES_PER_MINUTE = 5
DEMO_PASSWORD_BYTES = 9  # 72 bits, 12 characters
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
        hash_params: ScryptParams = OWASP,
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
        self.web: CobrowseWeb | None = None
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
        self.allowed_origins = frozenset(spec.server.allowed_origins)
        # A window of a minute is a duration: measured on the clock's monotonic reading.
        self._limiter = FailureLimiter(LOGIN_FAILURES_PER_MINUTE, 60.0, clock=self.clock.monotonic)
        # scrypt at OWASP cost takes 128 MiB and half a second: two at a time.
        self._hasher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="repconsole-scrypt")

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
        if self.resources is None:
            import repconsole.resources

            self.resources = repconsole.resources.files()
        self.web = CobrowseWeb(self.links, self.resources, self.static_dir, self._origin_allowed)
        self.runtime.housekeepers.append(lambda now: self._limiter.prune())
        self._ws = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._http,
            ssl=self.ssl_context,
            compression=None,  # deflate costs ~50 KiB per connection and 2-7x broadcast CPU
            max_size=MAX_FRAME,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            server_header=f"repconsole-server/{__version__}",
            create_connection=_tracked(self._connections, self.admin.connection_lost),
        )
        self.port = self._ws.sockets[0].getsockname()[1]
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
            self._hasher.shutdown(wait=False, cancel_futures=True)
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
        loop = asyncio.get_running_loop()
        passwords = {rep: secrets.token_urlsafe(DEMO_PASSWORD_BYTES) for rep in todo}
        hashes = await asyncio.gather(
            *(loop.run_in_executor(self._hasher, hash_password, pw, self.hash_params) for pw in passwords.values())
        )
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
        """Browsers send Origin; a page from elsewhere must not use our endpoints.

        Allowed: the server's own origin, ``server.allowed_origins``, and,
        for a page that names its browser-sharing link (``/customer?link=ID``,
        ``/cobrowse?link=ID``), that link's ``origins``.

        A request without Origin is not from a browser (the desktop console,
        a script); any such client could send whatever Origin it liked, so
        refusing it would protect nobody.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        try:
            origin = parse_origin(origin)
        except ValueError:
            return False  # "null" (sandboxed frames, files) and anything malformed
        if origin in self.allowed_origins or origin == self._own_origin(request):
            return True
        return link is not None and self.links is not None and origin in self.links.origins(link)

    def _own_origin(self, request: Request) -> str | None:
        host = request.headers.get("Host")
        if not host:
            return None
        try:
            return parse_origin(f"{'https' if self.ssl_context else 'http'}://{host}")
        except ValueError:
            return None

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
        try:
            if path == REP_PATH:
                await self._serve_rep(ws)
            elif path == CUSTOMER_PATH:
                await self.customers.serve(ws, only_link=only_link)
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

    async def _send(self, ws: ServerConnection, message: Welcome | Snapshot | Result | Error | bytes) -> None:
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
                elif isinstance(msg, Command):
                    await self._send(ws, self._command(link.login, msg))
                elif isinstance(msg, Logout):
                    self._logout(link.login, ws)
                    await ws.close(CloseCode.LOGGED_OUT, "logged out")
                    return
                else:
                    await self._send(ws, _refusal(msg.id, ErrorReason.ALREADY_LOGGED_IN, "this connection is logged in"))
        finally:
            self._detach(link)

    def _detach(self, link: RepLink) -> None:
        assert self.runtime is not None
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
            if isinstance(msg, Login | Resume) and not MIN_PROTOCOL_VERSION <= msg.protocol <= PROTOCOL_VERSION:
                await self._send(ws, _refusal(msg.id, ErrorReason.UNSUPPORTED_PROTOCOL, _unsupported(msg.protocol)))
                await ws.close(CloseCode.UNSUPPORTED_PROTOCOL, ErrorReason.UNSUPPORTED_PROTOCOL.value)
                return None
            if isinstance(msg, Login):
                return await self._login(ws, msg)
            if isinstance(msg, Resume):
                return await self._resume(ws, msg)
            await self._send(ws, _refusal(msg.id, ErrorReason.NOT_LOGGED_IN, "log in or resume first"))

    async def _refuse(self, ws: ServerConnection, rid: RequestId, reason: ErrorReason, detail: str) -> None:
        await self._send(ws, _refusal(rid, reason, detail))
        await ws.close(CloseCode.NOT_AUTHENTICATED, reason.value)

    def _password_hash(self, username: str) -> str | None:
        assert self.runtime is not None
        rep = self.spec.rep(username)
        if rep is None:
            return None
        # A password set with `passwd` (stored) wins over the configuration file's.
        return self.runtime.store.password_hash(username) or rep.password_hash

    def _dummy_hash(self) -> str:
        """What a login without a password hash (an unknown username) is checked against:
        a hash that matches nothing, with the scrypt parameters of a hash a known rep's
        login really checks.  Any stored hash is one (a stored hash wins over the
        configuration's); else any of the configuration's; else this server's own
        parameters, those a demo or a new password gets."""
        assert self.runtime is not None
        like = self.runtime.store.any_password_hash() or next((r.password_hash for r in self.spec.reps if r.password_hash), None)
        try:
            return dummy_hash(like, self.hash_params)
        except ValueError:
            return dummy_hash(None, self.hash_params)

    async def _login(self, ws: ServerConnection, msg: Login) -> RepLink | None:
        rt = self.runtime
        assert rt is not None
        if self._limiter.blocked(msg.username):
            self.metrics.login_failed()
            await self._refuse(ws, msg.id, ErrorReason.RATE_LIMITED, "too many failed logins; try again in a minute")
            return None
        stored = self._password_hash(msg.username)
        # An unknown username costs as much as a wrong password: timing tells nothing.
        encoded = stored or self._dummy_hash()
        try:
            ok = await asyncio.get_running_loop().run_in_executor(self._hasher, verify_password, msg.password, encoded)
        except ValueError:
            log.error("the stored password hash of %s is malformed", msg.username)
            ok = False
        if not ok or stored is None:
            self._limiter.fail(msg.username)
            self.metrics.login_failed()
            log.info("failed login for %r", msg.username)
            await self._refuse(ws, msg.id, ErrorReason.BAD_CREDENTIALS, "wrong username or password")
            return None
        self._limiter.clear(msg.username)
        token = new_token()
        login = rt.new_login(msg.username, hash_token(token))
        with rt.step() as rows:
            rows.append(Store.login_row(login))
            rt.engine.rep_connected(login.rep)
        log.info("%s logged in (login %d)", login.rep, login.id)
        return await self._start_feed(ws, login, msg.id, token, resumed=False, last_seq=None)

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
        with rt.step():
            rt.engine.rep_connected(login.rep)
        return await self._start_feed(ws, login, msg.id, msg.token, resumed=True, last_seq=msg.last_seq)

    async def _start_feed(
        self, ws: ServerConnection, login: LoginSession, rid: RequestId, token: str, *, resumed: bool, last_seq: int | None
    ) -> RepLink:
        """Welcome, then the snapshot or the replay, then live events: in that order, nothing lost."""
        rt = self.runtime
        assert rt is not None
        rep = login.rep
        # Everything committed so far goes out first, so that what follows
        # (a snapshot as of seq, or a replay up to seq) is exactly current.
        rt.fanout.flush()
        replay = rt.fanout.replay(rep, last_seq) if last_seq is not None and last_seq > self.resync_floor else None
        reason = ResumeReason.OUTSIDE_RESUME_WINDOW if last_seq is not None and replay is None else None
        welcome = Welcome(
            rid, rep, token, replay is not None, login.expires_at, self.clock.now(), rt.spec.server.resume_window,
            PROTOCOL_VERSION, reason if reason is not None else UNSET,
        )  # fmt: skip
        if replay is not None:
            items, last = replay
            first: bytes = events_frame(last_seq or 0, items)
            link = RepLink(ws, rep, login, last)
        else:
            # A busy rep's snapshot is millions of short-lived objects: built
            # with the collector paused, twice as fast (the loop waits on it).
            with collector_paused():
                first = encode(Snapshot(rt.engine.seq, rt.engine.snapshot(rep)))
            link = RepLink(ws, rep, login, rt.engine.seq)
        # Attached before the first await: events from here on wait in the
        # link's backlog until the snapshot or replay is written.
        rt.fanout.attach(link)
        login.connections.add(ws)
        try:
            await self._send(ws, welcome)
            await self._send(ws, first)
        except BaseException:
            self._detach(link)
            raise
        rt.fanout.ready(link)
        return link

    def _command(self, login: LoginSession, msg: Command) -> bytes:
        rt = self.runtime
        assert rt is not None
        key = request_key(msg.id)
        stored = rt.answers.get(login.id, key)
        if stored is not None:
            return stored  # a retry: answered already, not run again
        with rt.step() as rows:
            try:
                result = execute(rt.engine, login.rep, msg.name, msg.args)
                reply = encode(Result(msg.id, msgspec.Raw(encode(result))))
            except CommandError as exc:
                reply = encode(exc.error(msg.id))
            except Exception:
                log.exception("command %s of %s failed", msg.name, login.rep)
                reply = encode(_refusal(msg.id, ErrorReason.INTERNAL_ERROR, "the server failed; nothing was confirmed"))
            now = self.clock.now()
            rows.append(Store.answer_row(login.id, key, now, reply))
        rt.answers.put(login.id, key, now, reply)
        return reply

    def _logout(self, login: LoginSession, current: ServerConnection) -> None:
        rt = self.runtime
        assert rt is not None
        with rt.step() as rows:
            rows.extend(Store.logout_rows(login.id))
        rt.logins.remove(login)
        rt.answers.forget_login(login.id)
        if self.cobrowse is not None:
            self.cobrowse.logout(login.id)
        log.info("%s logged out (login %d)", login.rep, login.id)
        for ws in list(login.connections):
            if ws is not current:
                rt.loop.create_task(ws.close(CloseCode.LOGGED_OUT, "logged out"))

    def _presence(self, rep: str) -> None:
        """A rep whose last connection closed starts the grace period."""
        rt = self.runtime
        if rt is None or self._stopping or rt.fanout.has_links(rep):
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


def _tracked(connections: set[ServerConnection], lost: Callable[[ServerConnection], None]) -> type[ServerConnection]:
    """A ServerConnection that is in ``connections`` from the moment its TCP
    connection is accepted until it is lost (then ``lost`` is told); websockets
    itself only lists connections whose handshake is done."""

    class TrackedConnection(ServerConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            connections.add(self)

        def connection_lost(self, exc: Exception | None) -> None:
            connections.discard(self)
            super().connection_lost(exc)
            try:
                lost(self)
            except Exception:  # counting must never break a connection's end
                log.exception("counting a closed connection failed")

    return TrackedConnection


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context

