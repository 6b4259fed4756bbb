"""Team snippets on the server (issue 14): the site file's, and those a team lead makes in the console.

A team's snippets are those of its ``[[teams.<id>.snippets]]`` (the file is
their truth: they are not stored, a reload changes them) followed by those
its leads (``[teams.<id>] leads``) added with ``snippet_add``, which are
stored in the store's ``snippets`` table before the answer goes out, so a
restart keeps them.  A rep gets :class:`~repconsole.protocol.Snippets`, the
whole set of every team of theirs, after the snapshot or replay of each
sign-in, and again whenever a snippet of one of their teams changes: every
live console of every member, at once (docs/protocol.md, Canned messages).

The ``snippet_*`` commands are answered here, not by the engine, as the
co-browsing commands are: they change no queue state and take no ``seq``; a
retry of one (same login, same request id) is answered as the first time
from the stored answers, as any command's (``App._command`` runs :meth:`SnippetBook.run`
in its step, so the snippet's row and the answer commit together).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from websockets.asyncio.server import broadcast

from repconsole.core.errors import CommandError, Reason
from repconsole.protocol import (
    SNIPPET_COMMANDS,
    Command,
    NoResult,
    Result,
    SnippetAddArgs,
    SnippetDeleteArgs,
    SnippetEditArgs,
    SnippetResult,
    Snippets,
    SnippetView,
    encode,
)
from repconsole.server.cluster.records import Record, SnippetRecord
from repconsole.server.config import SiteSpec
from repconsole.server.runtime import Runtime
from repconsole.server.store import Statement

__all__ = ["SNIPPETS_VERSION", "TEAM_LIMIT", "SnippetBook", "config_id"]

log = logging.getLogger(__name__)

# The protocol version whose consoles decode a ``snippets`` message.
SNIPPETS_VERSION = 4
# Snippets a team may have in the console (the file's are not counted): a list a rep can scan.
TEAM_LIMIT = 200


def config_id(team: str, n: int) -> str:
    """The id of the ``n``-th (from 1) snippet of ``team`` in the site file."""
    return f"cfg-{team}-{n}"


class SnippetBook:
    """The team snippets: answers the ``snippet_*`` commands and tells the members.

    ``spec()`` is the current site (read at each use, so a reload counts at once).
    """

    def __init__(self, runtime: Runtime, spec: Callable[[], SiteSpec]) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        self.fanout = runtime.fanout
        self.store = runtime.store
        self.clock = runtime.clock
        self.spec = spec
        # The stored ones, by id, in the order they were made.
        self._stored: dict[str, SnippetView] = {
            sid: SnippetView(id=sid, team=team, name=name, text=text) for sid, team, name, text in self.store.snippet_rows()
        }
        self.sent = 0  # snippets messages written (for tests)
        # A cluster: the leader runs the commands (followers forward them) and logs a SnippetRecord for each change;
        # a follower takes it (its store from the record's rows, here its memory and its members' consoles).
        runtime.on_records.append(self._took)

    # ------------------------------------------------------------ reading

    def _config(self, team: str) -> list[SnippetView]:
        t = next((t for t in self.spec().teams if t.id == team), None)
        if t is None:
            return []
        return [SnippetView(id=config_id(team, n), team=team, name=s.name, text=s.text, config=True) for n, s in enumerate(t.snippets, 1)]

    def leads(self, team: str) -> frozenset[str]:
        t = next((t for t in self.spec().teams if t.id == team), None)
        return frozenset(t.leads) if t is not None else frozenset()

    def of_team(self, team: str) -> list[SnippetView]:
        """The team's snippets: the file's, then those made in the console."""
        return [*self._config(team), *(s for s in self._stored.values() if s.team == team)]

    def for_rep(self, rep_id: str) -> Snippets:
        rep = self.engine.reps.get(rep_id)
        teams = sorted(rep.teams) if rep is not None else []
        return Snippets([s for team in teams for s in self.of_team(team)], [t for t in teams if rep_id in self.leads(t)])

    # ------------------------------------------------------------ telling

    def greet(self, link: Any) -> None:
        """A console's snapshot or replay is written: send it its snippets (version 4 on)."""
        if link.protocol >= SNIPPETS_VERSION and not link.dropped:
            broadcast([link.ws], encode(self.for_rep(link.rep)), text=True)
            self.sent += 1

    def _tell(self, team: str) -> None:
        """A snippet of ``team`` changed: every live console of its members gets its rep's new set."""
        t = self.engine.teams.get(team)
        for rep in sorted(t.members) if t is not None else ():
            sockets = [link.ws for link in self.fanout.links_of(rep) if link.ready and not link.dropped and link.protocol >= SNIPPETS_VERSION]
            if sockets:
                broadcast(sockets, encode(self.for_rep(rep)), text=True)
                self.sent += len(sockets)

    # ------------------------------------------------------------ commands

    def run(self, rep_id: str, msg: Command) -> bytes:
        """A ``snippet_*`` command of ``rep_id``: its encoded answer (members are told before it goes)."""
        spec = SNIPPET_COMMANDS[msg.name]
        try:
            try:
                args: Any = msgspec.convert(msg.args, type=spec.args, strict=True)
            except msgspec.ValidationError as exc:
                raise CommandError(Reason.INVALID, str(exc), command=msg.name) from None
            result: SnippetResult | NoResult
            if isinstance(args, SnippetAddArgs):
                result = SnippetResult(self._add(rep_id, args))
            elif isinstance(args, SnippetEditArgs):
                result = SnippetResult(self._edit(rep_id, args))
            else:
                assert isinstance(args, SnippetDeleteArgs)
                self._delete(rep_id, args.id)
                result = NoResult()
            return encode(Result(msg.id, msgspec.Raw(encode(result))))
        except CommandError as exc:
            return encode(exc.error(msg.id))

    def _check_lead(self, rep_id: str, team: str) -> None:
        if team not in self.engine.teams:
            raise CommandError(Reason.UNKNOWN_TEAM, team=team)
        if rep_id not in self.leads(team):
            raise CommandError(Reason.NOT_LEAD, f"Only a lead of {self.engine.teams[team].name} can change its snippets.", team=team)

    def _stored_one(self, snippet_id: str) -> SnippetView:
        s = self._stored.get(snippet_id)
        if s is None:
            raise CommandError(Reason.UNKNOWN_SNIPPET, id=snippet_id)
        return s

    def _write(self, statements: list[Statement], record: SnippetRecord) -> None:
        with self.runtime.step() as rows:  # before anyone is told: a restart keeps what was answered
            rows.extend(statements)
            self.runtime.replicate(record)  # in a cluster, every process's members are told (_took)

    def _took(self, records: Sequence[Record]) -> None:
        for r in records:
            if not isinstance(r, SnippetRecord):
                continue
            if r.deleted:
                self._stored.pop(r.id, None)
            else:
                self._stored[r.id] = SnippetView(id=r.id, team=r.team, name=r.name, text=r.text)
            self._tell(r.team)

    def _add(self, rep_id: str, args: SnippetAddArgs) -> SnippetView:
        self._check_lead(rep_id, args.team)
        if sum(1 for s in self._stored.values() if s.team == args.team) >= TEAM_LIMIT:
            raise CommandError(Reason.INVALID, f"A team has at most {TEAM_LIMIT} snippets made in the console.", field="team")
        s = SnippetView(id=f"sn-{secrets.token_hex(5)}", team=args.team, name=args.name, text=args.text)
        at = self.clock.now()
        row = ("INSERT INTO snippets VALUES (?, ?, ?, ?, ?, ?)", (s.id, s.team, s.name, s.text, at, rep_id))
        self._write([row], SnippetRecord(s.id, s.team, s.name, s.text, at, rep_id))
        self._stored[s.id] = s
        self._tell(s.team)
        return s

    def _edit(self, rep_id: str, args: SnippetEditArgs) -> SnippetView:
        old = self._stored_one(args.id)
        self._check_lead(rep_id, old.team)
        s = SnippetView(id=old.id, team=old.team, name=args.name, text=args.text)
        sql = "UPDATE snippets SET name = ?, text = ?, updated_by = ? WHERE id = ?"
        self._write([(sql, (s.name, s.text, rep_id, s.id))], SnippetRecord(s.id, s.team, s.name, s.text, self.clock.now(), rep_id))
        self._stored[s.id] = s
        self._tell(s.team)
        return s

    def _delete(self, rep_id: str, snippet_id: str) -> None:
        old = self._stored_one(snippet_id)
        self._check_lead(rep_id, old.team)
        self._write([("DELETE FROM snippets WHERE id = ?", (snippet_id,))], SnippetRecord(old.id, old.team, "", "", self.clock.now(), rep_id, deleted=True))
        del self._stored[snippet_id]
        self._tell(old.team)
