"""A configuration reload in a cluster: the whole organisation's, coordinated by its leader.

Every process of an organisation runs the same configuration file
(docs/operations.md).  A SIGHUP to **any** process (``cli._reload``, which
has read and checked the file) starts :meth:`ClusterReload.start`: a
follower forwards ``reload`` to the leader; the leader runs a **round**:

1. it reads its own file again (a mistake, or a change that needs a
   restart: refused, nothing changes) and logs a :class:`~.records.ReloadAsk`
   (a records-only entry) with its digest (:func:`~repconsole.server.reload.config_digest`);
2. every follower that takes the ask reads its own file and answers
   ``reload_ready`` with its digest (or its file's problems), keeping what
   it read for step 4;
3. the leader waits at least ``PRESENCE_EVERY`` (1 s: a process started a
   moment ago answers too) and up to :data:`RELOAD_WAIT` for every live
   follower (heard within ``PRESENCE_TTL``).  A digest that differs from its own, a
   file with problems, or a follower that did not answer: **refused**, with
   an error naming the processes, on the leader, on the process that was
   signalled, and on each process whose file differs.  Nothing is applied
   anywhere;
4. otherwise the leader applies the reload in one step
   (:func:`~repconsole.server.reload.reload_server`) whose entry carries the
   directory (``QueueEngine.changes_of``) and a :class:`~.records.ReloadRecord`;
   each follower's engine copy takes the directory with the entry
   (``apply_changes``: no engine logic runs on a follower), then the
   process takes its own settings from what it read in step 2
   (:func:`~repconsole.server.reload.take_settings`: limits, origins,
   proxies, consoles re-synced).

A follower never runs an engine step for a reload.  ``[cluster]`` itself
needs a restart of every process (``plan`` refuses a change of it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import msgspec

from repconsole.server.cluster.forward import PRESENCE_EVERY, PRESENCE_TTL, NoLeader, Reply, Request
from repconsole.server.cluster.member import FORWARD_TIMEOUT
from repconsole.server.cluster.records import Record, ReloadAsk, ReloadRecord
from repconsole.server.config import ConfigError, SiteSpec, load_config
from repconsole.server.reload import ReloadRefused, config_digest, plan, reload_server, take_settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from repconsole.server.app import Server
    from repconsole.server.cluster.member import Member
    from repconsole.server.runtime import Runtime

__all__ = ["RELOAD_WAIT", "ClusterReload", "ReloadAnswer"]

log = logging.getLogger(__name__)

RELOAD_WAIT = 3.0  # seconds the leader waits for every live process's digest
PREPARED_KEPT = 4  # rounds a follower keeps what it read for (the last few)


class ReloadAnswer(msgspec.Struct, array_like=True, frozen=True):
    """A follower's answer to a :class:`~.records.ReloadAsk` (in a ``reload_ready`` request's frame)."""

    round: str
    digest: str  # "" if its file has problems
    problems: list[str] = []


_answers = msgspec.msgpack.Decoder(ReloadAnswer)
_encoder = msgspec.msgpack.Encoder()


def short(digest: str) -> str:
    return digest[:12] or "unreadable"


class ClusterReload:
    """The reload side of one process of a cluster (made by :class:`~.desk.ClusterDesk`)."""

    def __init__(self, server: Server, runtime: Runtime, member: Member) -> None:
        self.server = server
        self.rt = runtime
        self.member = member
        self._prepared: dict[str, SiteSpec | None] = {}  # follower: round -> what it read (None: problems)
        self._rounds: dict[str, tuple[set[str], dict[str, ReloadAnswer], asyncio.Event]] = {}  # leader
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()
        runtime.on_records.append(self._took)

    # ------------------------------------------------------- any process

    def start(self, spec: SiteSpec) -> asyncio.Task[None]:
        """SIGHUP (``spec``: this process's file, read and checked): reload the whole organisation."""
        return self._spawn(self._start(spec))

    async def _start(self, spec: SiteSpec) -> None:
        try:
            await self._ask_leader(spec)
        except Exception:
            log.exception("reload failed")

    async def _ask_leader(self, spec: SiteSpec) -> None:
        digest = config_digest(spec)
        if self.member.leads:
            ok, outcome = await self.run(self.member.origin)
        else:
            try:
                reply = await self.member.call(Request("reload", "", 0, 0.0), timeout=RELOAD_WAIT + FORWARD_TIMEOUT)
            except NoLeader as exc:
                log.error("reload not done: %s", exc)
                return
            ok, outcome = not reply.refused, reply.refused or reply.body.decode()
        if ok:
            log.info("reloaded the organisation's configuration (digest %s): %s", short(digest), outcome)
        else:
            log.error("reload refused, the running configuration is kept everywhere: %s", outcome)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.rt.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ----------------------------------------------------------- leader

    def handle(self, request: Request) -> Reply | None:
        """A forwarded ``reload`` (answered when its round ends) or ``reload_ready``."""
        if request.kind == "reload_ready":
            answer = _answers.decode(request.frame)
            waiting = self._rounds.get(answer.round)
            if waiting is not None:
                expected, answers, done = waiting
                answers[request.origin] = answer
                if expected <= answers.keys():
                    done.set()
            return None

        async def finish() -> None:
            ok, outcome = await self.run(request.origin)
            reply = Reply(request.fid, body=outcome.encode()) if ok else Reply(request.fid, refused=outcome)
            if self.member.server is not None:
                await self.member.server.reply(request.origin, reply)

        self._spawn(finish())
        return None

    async def run(self, asked_by: str) -> tuple[bool, str]:
        """One round (see the module's docstring): (applied, what changed or why not)."""
        if self._busy:
            return False, "another reload is under way"
        self._busy = True
        try:
            return await self._round(asked_by)
        except ReloadRefused as exc:
            return False, "; ".join(exc.reasons)
        except Exception as exc:  # the step could not be logged (the lease lost: the server is stopping)
            log.exception("reload failed")
            return False, f"the reload failed: {exc}"
        finally:
            self._busy = False

    async def _round(self, asked_by: str) -> tuple[bool, str]:
        server, rt = self.server, self.rt
        path = server.spec.source
        assert path is not None
        try:
            spec = load_config(path)
        except ConfigError as exc:
            return False, f"the leader's {path} has {len(exc.problems)} problem(s): " + "; ".join(str(p) for p in exc.problems)
        change = plan(server.spec, spec)  # ReloadRefused: needs a restart
        digest = config_digest(spec)
        round_id = secrets.token_hex(6)
        now = time.monotonic()
        expected = {origin for origin, (_, seen) in self.member.remote.items() if now - seen < PRESENCE_TTL}
        answers: dict[str, ReloadAnswer] = {}
        done = asyncio.Event()
        self._rounds[round_id] = (expected, answers, done)
        log.info("reload %s asked by %s: reading the configuration on %d process(es)", round_id, asked_by, len(expected) + 1)
        try:
            with rt.step():
                rt.replicate(ReloadAsk(round_id, digest))
            if not expected:
                done.set()
            try:
                async with asyncio.timeout(RELOAD_WAIT):
                    # Answers for a moment at least: a process that started a moment ago, not heard yet
                    # (it tells the leader its consoles every PRESENCE_EVERY), answers too, and counts.
                    await asyncio.sleep(PRESENCE_EVERY)
                    await done.wait()
            except TimeoutError:
                pass
        finally:
            del self._rounds[round_id]
        differ = [f"{o} (digest {short(a.digest)}" + (f": {'; '.join(a.problems)})" if a.problems else ")")
                  for o, a in sorted(answers.items()) if a.digest != digest]  # fmt: skip
        differ += [f"{o} (no answer within {RELOAD_WAIT:g} s)" for o in sorted(expected - answers.keys())]
        if differ:
            why = f"the configuration differs from the leader's {path} (digest {short(digest)}) on " + ", ".join(differ)
            log.error("reload %s refused: %s", round_id, why)
            return False, why
        applied = reload_server(server, spec, ReloadRecord(round_id, digest))
        for note in applied.notes:
            log.warning("reload: %s", note)
        what = ", ".join(applied.changes) or "no change"
        log.info("reload %s applied on every process (digest %s): %s%s", round_id, short(digest), what,
                 " (consoles re-sync)" if change.directory else "")  # fmt: skip
        return True, what

    # --------------------------------------------------------- follower

    def _took(self, records: Sequence[Record]) -> None:
        for record in records:
            match record:
                case ReloadAsk():
                    self._ask(record)
                case ReloadRecord():
                    self._applied(record)

    def _read(self) -> tuple[SiteSpec | None, list[str]]:
        path = self.server.spec.source
        assert path is not None
        try:
            return load_config(path), []
        except ConfigError as exc:
            return None, [str(p) for p in exc.problems]

    def _ask(self, ask: ReloadAsk) -> None:
        spec, problems = self._read()
        digest = config_digest(spec) if spec is not None else ""
        self._prepared[ask.round] = spec
        while len(self._prepared) > PREPARED_KEPT:
            del self._prepared[next(iter(self._prepared))]
        if digest != ask.digest:
            log.error(
                "reload %s: this process's %s (digest %s) differs from the leader's (digest %s): the organisation "
                "does not reload until every process has the same file%s", ask.round, self.server.spec.source, short(digest),
                short(ask.digest), (": " + "; ".join(problems)) if problems else "",
            )  # fmt: skip
        answer = ReloadAnswer(ask.round, digest, problems)
        self._spawn(self.member.forwarder.tell(Request("reload_ready", "", 0, 0.0, frame=_encoder.encode(answer))))

    def _applied(self, record: ReloadRecord) -> None:
        """The leader applied a reload: the engine copy has its directory; now this process's settings."""
        spec = self._prepared.pop(record.round, None)
        if spec is None:  # not asked (it joined meanwhile): its file, now
            spec, _ = self._read()
        if spec is None or config_digest(spec) != record.digest:
            log.error(
                "reload %s was applied by the leader with digest %s, but this process's %s differs: its own settings "
                "are not reloaded; give it the organisation's file and restart it", record.round, short(record.digest),
                self.server.spec.source,
            )  # fmt: skip
            return
        try:
            change = plan(self.server.spec, spec)
        except ReloadRefused as exc:  # its running configuration is not the leader's (it started with another file)
            log.error("reload %s: this process cannot take it (%s): restart it", record.round, "; ".join(exc.reasons))
            return
        take_settings(self.server, spec, change)
        log.info("reloaded %s with the organisation (reload %s, digest %s): %s%s", self.server.spec.source, record.round,
                 short(record.digest), ", ".join(change.changes) or "no change",
                 " (consoles re-sync)" if change.directory else "")  # fmt: skip
