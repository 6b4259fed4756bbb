"""The server's cluster side: a follower forwards what consoles ask of the engine; the leader runs it.

:class:`ClusterDesk` sits between :class:`~repconsole.server.app.Server` and
the process's :class:`~.member.Member`.

On a follower (``Runtime.follows``):

- a **login** forwards ``connect`` with the new token's hash: the leader
  makes the login session (its number, its lifetime) in a step with
  ``rep_connected`` and logs a :class:`~.records.LoginRecord`; the reply
  carries the record, so the follower can welcome the console at once;
- a **resume** forwards ``connect`` without one (``rep_connected``);
- a **command** forwards the console's frame as sent; the leader answers it
  exactly as one of its own consoles (``Server._command``: the stored
  answer by login and request id, or a new step with its answer stored and
  logged).  **Order**: while the command is out, the connection's events
  wait in its backlog (the fan-out's ``ready`` flag, as during a snapshot);
  the follower writes the result, then releases them.  So the console gets
  the result first and the command's events in a following frame, as on
  the leader (docs/protocol.md);
- a ``snippet_*`` **command** is forwarded as any command; the leader
  answers it (:class:`~repconsole.server.snippets.SnippetBook`) and logs a
  :class:`~.records.SnippetRecord`, from which every follower updates its
  store and tells its members' consoles; the asking console, held while its
  command is out, gets its snippets after the result (on the leader: before);
- a **logout** forwards ``logout``; every process closes that login's
  connections when the :class:`~.records.LogoutRecord` reaches it.

No reply within :data:`~.member.FORWARD_TIMEOUT`: the command is answered
``internal_error`` with ``data: {"retryable": true}`` (it may have run: retry
with the same id); a login or resume is answered so and closed with 1011
(the console reconnects with backoff and resumes, docs/protocol.md).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from repconsole.protocol import SNIPPET_COMMANDS, CloseCode, Command, Error, ErrorReason, RequestId, encode, parse_rep
from repconsole.server.auth import LoginSession
from repconsole.server.cluster.forward import NoLeader, Reply, Request
from repconsole.server.cluster.passwords import ClusterPasswords, copy_local_hashes
from repconsole.server.cluster.reconfig import ClusterReload
from repconsole.server.cluster.records import LoginRecord, login_of
from repconsole.server.fanout import RepLink
from repconsole.server.reload import config_digest

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from repconsole.server.app import Server
    from repconsole.server.cluster.member import Member
    from repconsole.server.runtime import Runtime

__all__ = ["ClusterDesk", "retryable"]

log = logging.getLogger(__name__)

SERVER_ERROR = 1011


def retryable(rid: RequestId, detail: str) -> Error:
    return Error(id=rid, reason=ErrorReason.INTERNAL_ERROR, detail=detail, data={"retryable": True})


class ClusterDesk:
    def __init__(self, server: Server, runtime: Runtime, member: Member) -> None:
        self.server = server
        self.rt = runtime
        self.member = member
        member.handler = self.handle
        runtime.on_logout = self._logged_out
        self.reloads = ClusterReload(server, runtime, member)  # SIGHUP: the organisation's reload
        # The organisation's password hashes, in Redis: `passwd` and a re-hash at login reach every process.
        server.passwords.remote = ClusterPasswords(member.aio, member.log.keys)
        if server.spec.cluster.redis_url is not None and not server.spec.demo:
            copied = copy_local_hashes(member.log.client, member.log.keys, runtime.store)
            if copied:
                log.warning("password hashes of %s copied from this data directory to Redis (the organisation's now)", ", ".join(copied))
        log.info("configuration %s, digest %s", server.spec.source, config_digest(server.spec)[:12])

    # ---------------------------------------------------------- follower

    async def connect(self, ws: ServerConnection, rid: RequestId, rep: str, token_hash: bytes = b"") -> LoginSession | None:
        """Forward a console's coming (a new login if ``token_hash``).  None: refused and closed."""
        try:
            reply = await self.member.call(Request("connect", "", 0, 0.0, rep=rep, token_hash=token_hash))
        except NoLeader as exc:
            await self.server._send(ws, retryable(rid, f"{exc}: try again"))
            await ws.close(SERVER_ERROR, "no leader")
            return None
        if reply.refused:
            await self.server._send(ws, retryable(rid, f"the leader refused: {reply.refused}"))
            await ws.close(SERVER_ERROR, "refused by the leader")
            return None
        if reply.login is None:
            return LoginSession(0, b"", rep, 0.0, 0.0)  # a resume: the caller has its login
        known = self.rt.logins.get(reply.login.id)  # the log may have brought it already
        if known is None:
            known = login_of(reply.login)
            self.rt.logins.add(known)
        return known

    async def command(self, link: RepLink, msg: Command) -> None:
        """Forward ``msg``; write its answer, then the events that came meanwhile (see the module's docstring)."""
        fanout = self.rt.fanout
        held = link.ready
        link.ready = False
        try:
            try:
                reply = await self.member.call(Request("command", "", 0, 0.0, rep=link.rep, login=link.login.id, frame=encode(msg)))
                body = reply.body if not reply.refused else encode(retryable(msg.id, f"the leader failed: {reply.refused}"))
            except NoLeader as exc:
                body = encode(retryable(msg.id, f"{exc}: retry with the same id"))
            await self.server._send(link.ws, body)
            if msg.name in SNIPPET_COMMANDS and self.server.snippets is not None:
                # The change's SnippetRecord may have come while this console was held (not told): its set now.
                self.server.snippets.greet(link)
        finally:
            if held:
                fanout.ready(link)

    async def logout(self, login: LoginSession) -> None:
        try:
            await self.member.call(Request("logout", "", 0, 0.0, rep=login.rep, login=login.id))
        except NoLeader:
            log.warning("logout of login %d not confirmed by the leader", login.id)

    def _logged_out(self, login: LoginSession) -> None:
        for ws in list(login.connections):
            self.rt.loop.create_task(ws.close(CloseCode.LOGGED_OUT, "logged out"))

    # ------------------------------------------------------------ leader

    def handle(self, request: Request) -> Reply | None:
        rt = self.rt
        if request.kind in ("reload", "reload_ready"):
            return self.reloads.handle(request)
        if request.kind == "connect":
            if request.rep not in rt.engine.reps:
                return Reply(request.fid, refused="unknown rep")
            if request.token_hash:
                made = rt.login_step(request.rep, request.token_hash)
                return Reply(request.fid, login=LoginRecord.of(made))
            with rt.step():
                rt.engine.rep_connected(request.rep)
            return Reply(request.fid)
        if request.kind.startswith("customer_"):
            customers = self.server.customers
            assert customers is not None
            body, session = customers.forwarded(request.kind, request.session, request.frame, request.token_hash, request.address)
            return Reply(request.fid, body=body, session=session, seq=rt.engine.seq)
        login = rt.logins.get(request.login)
        if request.kind == "logout":
            if login is not None:
                self.server._logout(login, None)
            return Reply(request.fid)
        msg = parse_rep(request.frame.decode())
        assert isinstance(msg, Command), msg
        if login is None:
            return Reply(request.fid, body=encode(Error(id=msg.id, reason=ErrorReason.NOT_LOGGED_IN, detail="this login has ended", data={})))
        run = functools.partial(self.server.snippets.run, login.rep, msg) if msg.name in SNIPPET_COMMANDS and self.server.snippets is not None else None
        return Reply(request.fid, body=self.server._command(login, msg, run))
