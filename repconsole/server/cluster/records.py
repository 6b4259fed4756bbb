"""What every process must know besides the engine: typed records carried by the log.

A console signs in on one process and may resume on any other; a retried
request id must get the same answer wherever it lands; after a failover the
new leader must know both.  So the leader's step carries, beside its events
and engine changes (:mod:`.entry`), the records of what it wrote to its own
SQLite that is not engine state:

- :class:`LoginRecord`: a login session (its token's hash, never the token);
- :class:`LogoutRecord`: a login session ended (its answers go with it);
- :class:`AnswerRecord`: a command's stored answer, by (login, request key),
  with the digest of the command it answered (idempotency, ``id_reused``);
- :class:`CustomerRecord`: a customer's token (its hash) and the session it opens;
- :class:`SnippetRecord`: a team snippet made, edited or deleted in the console
  (:mod:`repconsole.server.snippets`);
- :class:`ReloadAsk` and :class:`ReloadRecord`: a coordinated configuration
  reload (:mod:`.reconfig`): every process is asked to read its file, then
  the leader's step that applied it.  Neither is kept in the snapshot.

Typed records rather than SQL: a follower turns each into its own store's
rows (:func:`rows_of`) and into its in-memory indexes, and the format does
not depend on the schema.  The snapshot in Redis carries the live ones
(:func:`encode_side`: unexpired logins and customer tokens, answers within the
resume window, snippets), so that a process starting after the log was trimmed
knows every live login.  Password hashes are not records: they live in a
Redis hash of the organisation's (:mod:`.passwords`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

import msgspec

from repconsole.server.auth import LoginSession
from repconsole.server.store import Statement, Store

__all__ = [
    "AnswerRecord", "CustomerRecord", "LoginRecord", "LogoutRecord", "Record", "ReloadAsk", "ReloadRecord", "SnippetRecord",
    "decode_side", "encode_side", "login_of", "rows_of",
]  # fmt: skip


class LoginRecord(msgspec.Struct, tag="login", array_like=True, frozen=True):
    id: int
    token_hash: bytes
    rep: str
    created_at: float
    expires_at: float

    @classmethod
    def of(cls, login: LoginSession) -> LoginRecord:
        return cls(login.id, login.token_hash, login.rep, login.created_at, login.expires_at)


class LogoutRecord(msgspec.Struct, tag="logout", array_like=True, frozen=True):
    id: int


class AnswerRecord(msgspec.Struct, tag="answer", array_like=True, frozen=True):
    login: int
    request: str
    at: float
    reply: bytes
    command: bytes


class CustomerRecord(msgspec.Struct, tag="customer", array_like=True, frozen=True):
    token_hash: bytes
    session: str
    expires_at: float


class SnippetRecord(msgspec.Struct, tag="snippet", array_like=True, frozen=True):
    id: str
    team: str
    name: str
    text: str
    at: float
    by: str
    deleted: bool = False


class ReloadAsk(msgspec.Struct, tag="reload_ask", array_like=True, frozen=True):
    """The leader asks every process to read its configuration file for reload ``round``."""

    round: str
    digest: str  # the leader's file's


class ReloadRecord(msgspec.Struct, tag="reload", array_like=True, frozen=True):
    """The step that applied reload ``round`` (its engine part is the entry's changes)."""

    round: str
    digest: str


Record = LoginRecord | LogoutRecord | AnswerRecord | CustomerRecord | SnippetRecord | ReloadAsk | ReloadRecord

_encoder = msgspec.msgpack.Encoder()
_side = msgspec.msgpack.Decoder(list[Record])


_SNIPPET_ROW = (
    "INSERT INTO snippets VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(id) DO UPDATE SET name = excluded.name, text = excluded.text, updated_by = excluded.updated_by"
)


def login_of(record: LoginRecord) -> LoginSession:
    return LoginSession(record.id, record.token_hash, record.rep, record.created_at, record.expires_at)


def rows_of(records: Iterable[Record]) -> list[Statement]:
    """The store rows that say what ``records`` say (``INSERT OR REPLACE``: taking one twice is harmless)."""
    rows: list[Statement] = []
    for r in records:
        match r:
            case LoginRecord():
                sql, params = Store.login_row(login_of(r))
                rows.append((sql.replace("INSERT INTO", "INSERT OR REPLACE INTO"), params))
            case LogoutRecord(id=login_id):
                rows.extend(Store.logout_rows(login_id))
            case AnswerRecord():
                rows.append(Store.answer_row(r.login, r.request, r.at, r.reply, r.command))
            case CustomerRecord():
                rows.append(Store.customer_row(r.token_hash, r.session, r.expires_at))
            case SnippetRecord(deleted=True):
                rows.append(("DELETE FROM snippets WHERE id = ?", (r.id,)))
            case SnippetRecord():
                # An edit keeps the snippet's place (updated_at), as the leader's UPDATE does.
                rows.append((_SNIPPET_ROW, (r.id, r.team, r.name, r.text, r.at, r.by)))
    return rows


def encode_side(db: sqlite3.Connection, now: float, answers_after: float) -> bytes:
    """The snapshot's side part: the live logins, answers, customer tokens and team snippets of ``db`` (a
    :meth:`Store.reader <repconsole.server.store.Store.reader>`: one read transaction, so they are the
    store's at one step; :meth:`Store.live_rows <repconsole.server.store.Store.live_rows>` says which).
    Runs in a thread: it touches nothing but ``db``."""
    rows = Store.live_rows(db, now, answers_after)
    records: list[Record] = [LoginRecord.of(login) for login in rows.logins]
    records += [AnswerRecord(*row) for row in rows.answers]
    records += [CustomerRecord(*row) for row in rows.customers]
    records += [SnippetRecord(*row) for row in rows.snippets]
    return _encoder.encode(records)


def decode_side(data: bytes) -> Sequence[Record]:
    return _side.decode(data) if data else []
