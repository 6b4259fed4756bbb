"""The customer endpoint: a support page starts a session and chats.

A customer is anonymous.  Starting a session returns a token (192 bits;
the server keeps its hash) that is the customer's only key to that one
session: with it the page can reconnect (a reload, a network switch) and
see the chat lines it missed.  A customer never sees a rep's id, an event
meant for reps, or a ``reps``-only chat line.

What the page is pushed:

* ``status``: waiting (with the position in the queue and, in a team's queue,
  the estimated wait; or on hold), active
  (with the rep's name) or ended (with why);
* ``chat``: every line of the session visible to the customer.

A position is a bisection in the engine's index (O(log queue), see
:meth:`QueueEngine.queue_position`), but anyone ahead leaving moves everyone
behind: pushing on every change would be O(queue) messages per change, so
the positions of waiting customers are refreshed at most every
``POSITION_EVERY`` seconds after a change.  A refresh goes through the pages
in slices of ``REFRESH_SLICE``, letting the event loop run between two, and
within each slice every team's estimate inputs are worked out once
(:meth:`QueueEngine.estimating`), not once per customer.

A customer whose last connection closed without ``leave`` has
``customer_grace`` seconds to come back; then the session ends as
"customer disconnected" and waiting reps stop seeing a customer who is gone.

In a cluster the leader counts every grace period, for pages on every
process: each follower tells it the sessions whose pages it holds (with its
reps' presence, on every change and every second: ``Runtime.pages_here``),
and a follower silent for ``PRESENCE_TTL`` (4 s) holds none.  A session's
grace starts when no process holds its page any more, and it ends the
session only if still no process does (:meth:`CustomerDesk.pages_moved`).

A start is idempotent by its ``retry_key`` (docs/protocol.md): a follower
answers "retryable" a start whose reply from the leader was late or lost,
though the leader may have started it; the page's retry, with the same key,
through any process and after a take-over, gets that session (a new token
for it), never a second one.  See :func:`retry_hash`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import msgspec
from msgspec import UNSET
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from repconsole.core.engine import Event, QueueEngine
from repconsole.core.errors import CommandError
from repconsole.core.intake import Intake
from repconsole.core.model import CUSTOMER, Session, SessionState, Visibility
from repconsole.core.ratelimit import RateLimiter
from repconsole.protocol import (
    Chat,
    ChatData,
    CloseCode,
    CustomerLine,
    CustomerResume,
    CustomerState,
    CustomerTyping,
    EmptyResult,
    ErrorReason,
    Leave,
    LineView,
    ProtocolError,
    Reason,
    RequestId,
    Result,
    Say,
    SayResult,
    SessionData,
    Start,
    Started,
    Status,
    Via,
    encode,
    parse_customer,
)
from repconsole.server.auth import hash_token, new_token
from repconsole.server.cluster.records import CustomerRecord
from repconsole.server.config import ServerSettings
from repconsole.server.links import LinkBook
from repconsole.server.routing import customer_estimate
from repconsole.server.runtime import CUSTOMER_TOKENS_KEPT, PersistenceFailure, Runtime
from repconsole.server.store import Store
from repconsole.server.timers import Timer
from repconsole.server.typingrelay import TypingRelay

__all__ = ["POSITION_EVERY", "REFRESH_SLICE", "RETRY_KEYS_KEPT", "CustomerDesk", "retry_hash", "waiting_status"]

log = logging.getLogger(__name__)

POSITION_EVERY = 0.5
# Customers a refresh pass goes through before it lets the event loop run what waits: 10-25 us each (their
# estimate, status and frame; bench_refresh), so a slice holds the loop 10-25 ms whatever the number of pages.
REFRESH_SLICE = 1000
RETRY_KEYS_KEPT = 600.0  # seconds a start's retry_key finds its session again (docs/protocol.md)


def retry_hash(msg: Start) -> bytes | None:
    """Where a start with a ``retry_key`` is remembered (None: it has none): the key of a row in the
    customers table, a hash of the whole start but its id and page (a retry's id differs, and a page
    that changed between two attempts of a browser-sharing start is still the same start).

    Why that table: its rows are stored in the start's own step, replicated to every process
    (:class:`CustomerRecord`), carried in the snapshot and pruned by age.  So the leader after a
    take-over, or after a restart, knows the key, and what is kept is bounded (a row per start with a
    key, for :data:`RETRY_KEYS_KEPT`, deleted a day later with the expired tokens).  blake2b with a
    personalisation of its own: no token's hash (sha256) is one, so the row never opens the session as a
    token would, and a key reused for a different start (another intake) is a different row.
    """
    if not isinstance(msg.retry_key, str):
        return None
    start = msgspec.structs.replace(msg, id=0, page_url="", page_html="")
    return hashlib.blake2b(encode(start), digest_size=32, person=b"repconsole-retry").digest()


class _Link:
    __slots__ = ("closing", "forwarded", "session", "status", "ws")

    def __init__(self, ws: ServerConnection, session: str) -> None:
        self.ws = ws
        self.session = session
        self.status: bytes = b""  # the last status sent: only changes are pushed
        self.forwarded = 0  # requests out to the leader (a follower): the session's end waits for their answers
        self.closing = False

    def close(self) -> None:
        if self.forwarded:
            self.closing = True  # once the answer is written (CustomerDesk.serve)
        else:
            asyncio.get_running_loop().create_task(self.ws.close(CloseCode.NORMAL, "session ended"))


class CustomerDesk:
    """Every customer connection, and what each is pushed.

    Its timers (grace, position refreshes, token expiry) run on the
    runtime's clock, ``runtime.clock``: one clock per server, so that the
    desk can never disagree with the engine about what time it is.
    """

    def __init__(self, runtime: Runtime, links: LinkBook | None = None) -> None:
        self.runtime = runtime
        self.links = links
        self.engine = runtime.engine
        self.clock = runtime.clock
        settings = runtime.spec.server
        self.grace = settings.customer_grace
        limit = settings.customer_starts_per_minute
        # A minute's window is a duration: the clock's monotonic reading.
        self._starts: RateLimiter[str] | None = RateLimiter(limit, 60.0, self.clock.monotonic) if limit else None
        self._links: dict[str, set[_Link]] = {}
        # Customer tokens (their hashes, the session each opens, until when) are
        # read from the store when a page resumes or a recorder attaches: kept
        # for a day after each start, they are not kept in memory.
        self._store = runtime.store
        self._away: dict[str, Timer] = {}  # session id -> its customer's grace timer
        self._positions: Timer | None = None
        self._pass: list[str] | None = None  # a refresh pass going on: the sessions it goes through, in slices
        self._pass_at = 0  # how far it got
        self._again = False  # a refresh fell due during the pass: another once it is through
        self._slice: asyncio.Handle | None = None  # the pass's next slice
        runtime.after_commit.append(self._on_events)
        self.typing = TypingRelay(runtime, self.sockets)
        runtime.housekeepers.append(self._prune)
        runtime.pages_here = self._links.keys  # a follower tells the leader (Member's presence)
        runtime.on_pages.append(self.pages_moved)
        # After a restart no customer is connected: each gets the grace period to come back.  A cluster's
        # follower runs no engine steps: it does so when it takes over (its customers were the dead leader's).
        if runtime.follows:
            runtime.on_lead.append(self._graces)
        else:
            self._graces()

    def _graces(self) -> None:
        """(Starting, or taking over) a grace period for every page no process holds.  In a cluster the
        followers' pages are not known yet: these end no session before every live follower has told
        its pages (within PRESENCE_TTL), and one a follower holds is never ended."""
        at_least = 0.0
        if self.runtime.member is not None:
            from repconsole.server.cluster.forward import PRESENCE_TTL

            at_least = PRESENCE_TTL
        for s in list(self.engine.sessions()):
            if not self._held(s.id):
                self._start_grace(s.id, at_least)

    def _held(self, session_id: str) -> bool:
        """Whether a page of ``session_id`` is connected here or (leading a cluster) to a live follower."""
        member = self.runtime.member
        return session_id in self._links or (member is not None and member.holds_page(session_id))

    def pages_moved(self, held: frozenset[str], left: frozenset[str], at_least: float = 0.0) -> None:
        """(Leading a cluster) followers now hold the pages of ``held``, and no longer those of ``left`` (their
        pages closed, or the follower went silent): a grace period for each that no process holds now, of
        ``customer_grace`` but ending no session before ``at_least`` (a live follower's presence may be
        overtaken by a request of the page it did not list yet: its next presence lists it)."""
        for session_id in held:
            handle = self._away.pop(session_id, None)
            if handle is not None:
                handle.cancel()
        for session_id in left:
            if not self._held(session_id) and _live(self.engine, session_id):
                self._start_grace(session_id, at_least)

    def reconfigure(self, settings: ServerSettings) -> None:
        """New limits (a reload): the grace of customers who leave from now on, and a new start limiter."""
        self.grace = settings.customer_grace
        limit = settings.customer_starts_per_minute
        self._starts = RateLimiter(limit, 60.0, self.clock.monotonic) if limit else None

    # ------------------------------------------------------------ serving

    def connections(self) -> int:
        return sum(len(links) for links in self._links.values())

    def sockets(self, session_id: str) -> list[ServerConnection]:
        """The connections of ``session_id``'s customer (a page open in two tabs has two)."""
        return [link.ws for link in self._links.get(session_id, ())]

    def session_of(self, token: str) -> str | None:
        """The session a customer's token opens (None: unknown or expired); the co-browsing recorder attaches with it."""
        known = self._store.customer(hash_token(token))
        if known is None or known[1] <= self.clock.now():
            return None
        return known[0]

    async def serve(self, ws: ServerConnection, *, only_link: str | None = None, address: str | None = None) -> None:
        """A customer page, until it closes.

        ``only_link``: the page was let in only because its origin is one of
        that browser-sharing link's: it may start a session with that link, nothing else.
        ``address``: the client's address for the rate limits (behind a trusted reverse
        proxy, the one it reports); by default the peer's.
        """
        if address is None:
            address = str(ws.remote_address[0]) if ws.remote_address else ""
        link: _Link | None = None
        try:
            async for frame in ws:
                try:
                    msg = parse_customer(frame)
                except ProtocolError as exc:
                    if link is not None and exc.reason is Reason.INVALID:
                        # Only a start has an intake: a second start is refused for being one,
                        # whatever its intake says (as a command before login is not_logged_in).
                        exc = ProtocolError(ErrorReason.ALREADY_STARTED, "this connection already has a session", exc.request_id)
                    await ws.send(encode(exc.reply()), text=True)
                    continue
                try:
                    if isinstance(msg, (Start, CustomerResume)):
                        if link is not None:
                            raise ProtocolError(ErrorReason.ALREADY_STARTED, "this connection already has a session", msg.id)
                        if only_link is not None and isinstance(msg, Start) and (msg.via is not Via.LINK or msg.target != only_link):
                            raise CommandError(Reason.UNKNOWN_LINK, "this page may only start a session with its own help link", link=only_link)
                        link = await (self._start(ws, msg, address) if isinstance(msg, Start) else self._resume(ws, msg))
                    elif link is None:
                        raise ProtocolError(ErrorReason.NOT_STARTED, "start or resume a session first", msg.id)
                    elif isinstance(msg, (Say, Leave)) and self.runtime.follows:
                        kind = "customer_say" if isinstance(msg, Say) else "customer_leave"
                        link.forwarded += 1
                        try:
                            await ws.send((await self._forward(kind, link.session, msg.id, frame))[0], text=True)
                        finally:
                            link.forwarded -= 1
                        if link.closing and not link.forwarded:
                            link.close()  # the entry that ended the session came before the answer
                    elif isinstance(msg, Say):
                        with self.runtime.step():
                            line = self.engine.customer_say(link.session, msg.text)
                        await ws.send(_result(msg.id, SayResult(self._line(line.view()))), text=True)
                    elif isinstance(msg, CustomerTyping):
                        self.typing.from_customer(link.session)  # a transient: never answered
                    elif isinstance(msg, Leave):
                        with self.runtime.step():
                            self.engine.customer_leave(link.session)
                        await ws.send(_result(msg.id, EmptyResult()), text=True)
                except ProtocolError as exc:
                    await ws.send(encode(exc.reply()), text=True)
                except CommandError as exc:
                    await ws.send(encode(exc.error(msg.id)), text=True)
                except _Answered as answered:
                    await ws.send(answered.body, text=True)
        except ConnectionClosed:
            pass
        finally:
            if link is not None:
                self._detach(link)

    async def _start(self, ws: ServerConnection, msg: Start, address: str) -> _Link:
        if self._starts is not None and self._starts.blocked(address):
            raise ProtocolError(ErrorReason.RATE_LIMITED, "too many sessions started from this address; try again in a minute", msg.id)
        intake = Intake.from_dict(msgspec.structs.asdict(msg.intake))
        token = new_token()
        token_hash = hash_token(token)
        expires_at = self.clock.now() + CUSTOMER_TOKENS_KEPT
        if self.runtime.follows:
            sid = await self._forward_start(msg, token_hash, address)
            s = self._session(sid)
        else:
            s = self._started(msg, intake, address, token_hash, expires_at)
        if self._starts is not None:
            self._starts.hit(address)
        if s.state is SessionState.ENDED:  # a retried start whose session ended meanwhile: as a resume of it
            return await self._goodbye(ws, Started(msg.id, s.id, token, False), s, 0)
        link = self._attach(ws, s.id)
        await ws.send(encode(Started(msg.id, s.id, token, False)), text=True)
        await self._catch_up(link, s, 0)
        return link

    def _started(self, msg: Start, intake: Intake, address: str, token_hash: bytes, expires_at: float) -> Session:
        """The session started in a step, its token stored (and, in a cluster, replicated: it resumes on any process).

        A start with the ``retry_key`` and content of one started within RETRY_KEYS_KEPT is that one
        again: its session, with the new token stored for it (the first attempt's never reached the page).
        """
        retry = retry_hash(msg)
        now = self.clock.now()
        known = self._store.customer(retry) if retry is not None else None
        with self.runtime.step() as rows:
            if known is not None and known[1] > now:
                s = self._session(known[0])
                handle = self._away.pop(s.id, None)  # its page is back (a grace may have started: nobody held it)
                if handle is not None:
                    handle.cancel()
                log.info("%s: a retried start (the same retry_key): the same session, a new token", s.id)
            else:
                s = self._begin(msg, intake, address)
                if retry is not None:
                    rows.append(Store.customer_row(retry, s.id, now + RETRY_KEYS_KEPT))
                    self.runtime.replicate(CustomerRecord(retry, s.id, now + RETRY_KEYS_KEPT))
            rows.append(Store.customer_row(token_hash, s.id, expires_at))
            self.runtime.replicate(CustomerRecord(token_hash, s.id, expires_at))
        return s

    def _begin(self, msg: Start, intake: Intake, address: str) -> Session:
        e = self.engine
        match msg.via:
            case Via.ISSUE:
                return e.start_with_issue(msg.target, intake)
            case Via.KEY:
                return e.start_with_key(msg.target, intake, source=address)
            case Via.REP:
                return e.start_with_rep(msg.target, intake)
            case Via.BUTTON:
                return e.start_with_button(msg.target, intake)
            case Via.LINK:
                if self.links is not None:
                    self.links.get(msg.target)  # as it stands now: an administrator may have revoked it
                issue = msg.issue if isinstance(msg.issue, str) else None
                return e.start_browser(msg.target, intake, page_url=msg.page_url, page_html=msg.page_html, issue=issue)
        raise AssertionError(msg.via)

    async def _resume(self, ws: ServerConnection, msg: CustomerResume) -> _Link:
        session_id = self.session_of(msg.token)
        if session_id is None:
            raise ProtocolError(ErrorReason.TOKEN_UNKNOWN, "unknown or expired token: start a new session", msg.id)
        s = self._session(session_id)
        if s.state is SessionState.ENDED:
            return await self._goodbye(ws, Started(msg.id, session_id, msg.token, True), s, msg.last_line)
        link = self._attach(ws, session_id)
        if self.runtime.follows:
            await self._forward("customer_here", session_id, msg.id)  # the leader may be counting its grace
        await ws.send(encode(Started(msg.id, session_id, msg.token, True)), text=True)
        await self._catch_up(link, s, msg.last_line)
        return link

    async def _goodbye(self, ws: ServerConnection, started: Started, s: Session, after: int) -> _Link:
        """A page of a session that is over: ``started``, its chat after line ``after`` and why it ended, then
        goodbye.  It is not one of the session's links (nothing more will be pushed to it)."""
        link = _Link(ws, s.id)
        await ws.send(encode(started), text=True)
        await self._catch_up(link, s, after)
        await ws.close(CloseCode.NORMAL, "session ended")
        return link

    def _session(self, session_id: str) -> Session:
        """The session, from the engine; one that ended is read from the store once the engine has let it go."""
        try:
            return self.engine.session(session_id)
        except CommandError:
            stored = self._store.load_session(session_id)
            if stored is None:
                raise
            return stored

    async def _catch_up(self, link: _Link, s: Session, after: int) -> None:
        for line in s.chat[after:]:
            if line.visibility is Visibility.ALL:
                await link.ws.send(self._chat(line.view()), text=True)
        self._push_status(link, s)

    # ------------------------------------------------------------- links

    def _attach(self, ws: ServerConnection, session_id: str) -> _Link:
        link = _Link(ws, session_id)
        self._links.setdefault(session_id, set()).add(link)
        handle = self._away.pop(session_id, None)
        if handle is not None:
            handle.cancel()
        return link

    def _detach(self, link: _Link) -> None:
        links = self._links.get(link.session)
        if links is None:
            return
        links.discard(link)
        if not links:
            del self._links[link.session]
            if self.runtime.follows:
                assert self.runtime.member is not None
                self.runtime.member.presence_changed()  # the leader counts the grace
            elif not self._held(link.session):
                self._start_grace(link.session)

    def _start_grace(self, session_id: str, at_least: float = 0.0) -> None:
        if self.grace <= 0 or session_id in self._away:
            return
        self._away[session_id] = self.clock.call_later(max(self.grace, at_least), partial(self._gone, session_id))

    def _gone(self, session_id: str) -> None:
        self._away.pop(session_id, None)
        if self._held(session_id) or self.runtime.follows:
            return
        try:
            s = self.engine.session(session_id)
            if s.state is not SessionState.ENDED:
                log.info("%s: the customer did not come back within %.0fs", session_id, self.grace)
                with self.runtime.step():
                    self.engine.customer_leave(session_id, disconnected=True)
        except (CommandError, PersistenceFailure):
            pass

    # ----------------------------------------------------------- cluster

    async def _forward(self, kind: str, session: str, rid: RequestId | None, frame: str | bytes = b"", **extra: Any) -> tuple[bytes, str]:
        """A customer's request to the leader (this process follows): the frame to answer the page with,
        and the session a start started ("": refused, the frame says why)."""
        from repconsole.server.cluster.desk import retryable
        from repconsole.server.cluster.forward import NoLeader, Request

        member = self.runtime.member
        assert member is not None
        raw = frame.encode() if isinstance(frame, str) else frame
        try:
            reply = await member.call(Request(kind, "", 0, 0.0, session=session, frame=raw, **extra))
            if reply.refused:
                raise NoLeader(f"the leader failed: {reply.refused}")
            if reply.session:
                await member.reach(reply.seq)  # this copy has the session before the page is told of it
        except NoLeader as exc:
            if rid is None:  # nobody to answer
                log.warning("%s of %s not confirmed by the leader (%s)", kind, session, exc)
                return b"", ""
            return encode(retryable(rid, f"{exc}: try again")), ""
        return reply.body, reply.session

    async def _forward_start(self, msg: Start, token_hash: bytes, address: str) -> str:
        body, session = await self._forward("customer_start", "", msg.id, encode(msg), token_hash=token_hash, address=address)
        if not session:
            raise _Answered(body)
        return session

    def forwarded(self, kind: str, session: str, frame: bytes, token_hash: bytes, address: str) -> tuple[bytes, str]:
        """The leader runs a customer's request from a follower: (the frame to answer the page with, the session started)."""
        if session:
            handle = self._away.pop(session, None)  # the page is on the follower (Member counts it as held there)
            if handle is not None:
                handle.cancel()
        if kind == "customer_here":
            return b"", ""
        msg = parse_customer(frame.decode())
        try:
            if isinstance(msg, Start):
                intake = Intake.from_dict(msgspec.structs.asdict(msg.intake))
                s = self._started(msg, intake, address, token_hash, self.clock.now() + CUSTOMER_TOKENS_KEPT)
                return b"", s.id
            if isinstance(msg, Say):
                with self.runtime.step():
                    line = self.engine.customer_say(session, msg.text)
                return _result(msg.id, SayResult(self._line(line.view()))), ""
            if isinstance(msg, Leave):
                with self.runtime.step():
                    self.engine.customer_leave(session)
                return _result(msg.id, EmptyResult()), ""
            raise ProtocolError(ErrorReason.NOT_STARTED, "not a request the leader runs", msg.id)
        except ProtocolError as exc:
            return encode(exc.reply()), ""
        except CommandError as exc:
            return encode(exc.error(msg.id)), ""

    # ----------------------------------------------------------- pushing

    def _on_events(self, events: Sequence[Event]) -> None:
        if not self._links:
            # No customer to tell, but the teams' estimates (to the consoles) follow the queues.
            if self._positions is None and any(isinstance(e.data, SessionData) for e in events):
                self._positions = self.clock.call_later(POSITION_EVERY, self._refresh_positions)
            return
        for e in events:
            if isinstance(e.data, SessionData):
                sid = e.data.session.id
                if sid in self._links:
                    s = self.engine.session(sid)
                    for link in list(self._links[sid]):
                        self._push_status(link, s)
                    if s.state is SessionState.ENDED:
                        for link in self._links.pop(sid):
                            link.close()
                # Anyone behind a session that moved may have moved up.
                if self._positions is None:
                    self._positions = self.clock.call_later(POSITION_EVERY, self._refresh_positions)
            elif isinstance(e.data, ChatData):
                sid, line = e.data.session, e.data.line
                if sid in self._links and line.visibility is Visibility.ALL:
                    broadcast([link.ws for link in self._links[sid]], self._chat(line), text=True)

    def _refresh_positions(self) -> None:
        self._positions = None
        if self.runtime.follows:
            return  # the leader publishes the estimates (through the log)
        if self._pass is not None:
            self._again = True  # the last pass is still going through its customers: another follows it
            return
        # Every connected customer who waits in a queue, in slices of REFRESH_SLICE (the pages connected now;
        # one that goes meanwhile is skipped): O(connected * log queue), never a walk of a queue.
        self._pass, self._pass_at = list(self._links), 0
        self._refresh_slice(first=True)

    def _refresh_slice(self, first: bool = False) -> None:
        """The pass's next REFRESH_SLICE customers; the rest after the event loop has run what waits meanwhile."""
        self._slice = None
        try:
            self._refresh_slices(first)
        except BaseException:
            self._pass = None  # a failing slice ends its pass, not every later refresh
            raise

    def _refresh_slices(self, first: bool) -> None:
        while (todo := self._pass) is not None:
            if self.runtime.follows:  # no longer leading (a cluster): the leader refreshes
                self._pass = None
                return
            # One instant per slice, and each team's estimate inputs (its members' room, the offers out, the
            # rate over up to 1,000 served times) worked out once in it, not per customer (QueueEngine.estimating).
            with self.engine.estimating():
                if first:
                    first = False
                    # The teams' estimates move with the queues: their consoles are told where they changed.
                    try:
                        with self.runtime.step():
                            self.engine.publish_estimates()
                    except PersistenceFailure:
                        self._pass = None
                        return
                end = min(self._pass_at + REFRESH_SLICE, len(todo))
                for sid in todo[self._pass_at : end]:
                    links = self._links.get(sid)
                    if links:
                        s = self.engine.session(sid)
                        if s.state is SessionState.WAITING and s.queue is not None:
                            for link in links:
                                self._push_status(link, s)
            self._pass_at = end
            if end >= len(todo):
                self._pass = None
                if self._again and self._positions is None:
                    self._positions = self.clock.call_later(POSITION_EVERY, self._refresh_positions)
                self._again = False
            elif self.runtime.loop.is_running():
                self._slice = self.runtime.loop.call_soon(self._refresh_slice)
                return
            # else nobody to yield to (a test moving a virtual clock with no loop running): the next slice now.

    def _status(self, s: Session) -> Status:
        return waiting_status(self.engine, s)

    def _push_status(self, link: _Link, s: Session) -> None:
        status = encode(self._status(s))
        if status != link.status:
            link.status = status
            broadcast([link.ws], status, text=True)

    def _line(self, line: LineView) -> CustomerLine:
        """A line as the customer sees it: the author's role and name, never a rep's id."""
        author = line.author
        if author is None:
            return CustomerLine(line.n, line.at, None, None, line.text)
        if author == CUSTOMER:
            return CustomerLine(line.n, line.at, "customer", None, line.text)
        rep = self.engine.reps.get(author)
        return CustomerLine(line.n, line.at, "rep", rep.name if rep else None, line.text)

    def _chat(self, line: LineView) -> bytes:
        return encode(Chat(self._line(line)))

    def _prune(self, now: float) -> None:
        if self._starts is not None:
            self._starts.prune()
        if self._positions is None:
            # Estimates move with time too (the recent dequeue rate ages), not only with the queue.
            self._refresh_positions()

    def shutdown(self) -> None:
        self.typing.close()
        for handle in self._away.values():
            handle.cancel()
        self._away.clear()
        if self._positions is not None:
            self._positions.cancel()
            self._positions = None
        if self._slice is not None:
            self._slice.cancel()
            self._slice = None
        self._pass = None


def waiting_status(engine: QueueEngine, s: Session) -> Status:
    """What a customer's page is told of their session: waiting (with the position and, in a team's queue, the
    estimate), on hold, active (with the rep's name) or ended (with why)."""
    if s.state is SessionState.ENDED:
        return Status(CustomerState.ENDED, detail=s.end_reason)
    if s.state is SessionState.ACTIVE:
        rep = engine.reps.get(s.owner or "")
        return Status(CustomerState.ACTIVE, rep_name=rep.name if rep else UNSET)
    if s.held or s.queue is None:
        return Status(CustomerState.WAITING, held=True if s.held else UNSET)
    position = engine.queue_position(s.id)
    assert position is not None, f"{s.id} is not waiting"
    if s.queue.is_personal:
        return Status(CustomerState.WAITING, position=position)
    return Status(CustomerState.WAITING, position=position, estimate=customer_estimate(engine, s.id, position))


class _Answered(Exception):
    """The leader refused a forwarded start: ``body`` is its answer to the page."""

    def __init__(self, body: bytes) -> None:
        super().__init__("answered")
        self.body = body


def _live(engine: QueueEngine, session_id: str) -> bool:
    try:
        return engine.session(session_id).state is not SessionState.ENDED
    except CommandError:
        return False


def _result(rid: RequestId, result: SayResult | EmptyResult) -> bytes:
    return encode(Result(rid, msgspec.Raw(encode(result))))
