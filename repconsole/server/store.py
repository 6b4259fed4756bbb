"""SQLite persistence: the server's state survives a restart and a crash.

One database file in the data directory, in WAL mode with
``synchronous=NORMAL``: a committed transaction survives the process being
killed (what ``kill -9`` tests), though not a power cut in the last moments
before a checkpoint, which is the usual trade for a chat-like service.

The server writes **one transaction per engine step** (a command, a timer
tick, a customer action, a login), committed *before* the reply and the
events go out: whatever a rep or customer was told is on disk.  What a
step changed is derived from the events it emitted, the engine's promise
being that every change is announced; the values written are read from the
engine itself through :mod:`repconsole.core.persist`, so the database holds
exactly what :func:`persist.dump` would.  Chat lines are stored one row
each (a long chat is not rewritten per line); a session row holds the rest
of the session.  Ended sessions stay here, with their chat, after the
engine has let go of them: the server's memory holds what is going on, the
database the history (:meth:`Store.load_session` reads one back).

Also stored: credentials (password hashes), login sessions (token hashes),
command answers (for idempotent retries, also across a restart) and customer
tokens, both read from here when asked for and never held in memory,
the browser-sharing links an administrator made (``repconsole-server link``),
and a bounded log of encoded events, so that a console can resume across a
restart without a new snapshot.  Nothing of a co-browsed page is ever stored.

The schema has a version (``PRAGMA user_version``): opening a database
brings it up to :data:`SCHEMA_VERSION` (``_MIGRATIONS``), and a database
written by a newer server is refused.

The database is this process's alone while it serves (the data directory is
locked by the server); ``repconsole-server passwd`` and ``link`` may write
credentials and links concurrently, which SQLite's locking and the busy
timeout make safe.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repconsole.core import persist
from repconsole.core.engine import TEAM_CHAT_HISTORY, Event, QueueEngine
from repconsole.core.model import Session, SessionState
from repconsole.protocol import ChatData, KeyData, RepData, SessionData, TeamChatData, TeamReadData, decode, encode
from repconsole.server.auth import LoginSession

__all__ = ["DB_NAME", "PRUNE_BATCH", "SCHEMA_VERSION", "Cutoffs", "LinkRow", "LoggedEvent", "Statement", "Store", "StoreError"]

log = logging.getLogger(__name__)

DB_NAME = "repconsole-server.db"
SCHEMA_VERSION = 6
# Rows one housekeeping batch deletes at most, per kind (Store.prune_batch): a few milliseconds.
PRUNE_BATCH = 200
AUDIENCES_CACHED = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    num INTEGER NOT NULL,          -- arrival order
    live INTEGER NOT NULL,
    queue_pos INTEGER,             -- seq of the event that put it in its queue: queue order
    data BLOB NOT NULL             -- persist.dump_session(chat=False)
);
CREATE TABLE IF NOT EXISTS chat (
    session TEXT NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (session, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reps (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS team_chat (
    team TEXT NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (team, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS team_counts (team TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS team_read (
    team TEXT NOT NULL, rep TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (team, rep)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, at REAL NOT NULL, audience BLOB NOT NULL, gone BLOB NOT NULL,
    item BLOB NOT NULL, gone_item BLOB
);
CREATE TABLE IF NOT EXISTS credentials (username TEXT PRIMARY KEY, hash TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS logins (
    id INTEGER PRIMARY KEY, token_hash BLOB NOT NULL UNIQUE, rep TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    login INTEGER NOT NULL, request TEXT NOT NULL, at REAL NOT NULL, reply BLOB NOT NULL,
    PRIMARY KEY (login, request)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS customers (
    token_hash BLOB PRIMARY KEY, session TEXT NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
"""

# What each schema version adds to the one before (a database is brought up
# to SCHEMA_VERSION when it is opened; _SCHEMA above is version 1).
_MIGRATIONS: dict[int, str] = {
    # Browser-sharing links made by an administrator (repconsole-server link create).
    2: """
CREATE TABLE IF NOT EXISTS links (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, target TEXT NOT NULL, issue TEXT,
    origins TEXT NOT NULL,         -- a JSON array of origins
    created_at REAL NOT NULL, expires_at REAL, revoked_at REAL
);
""",
    # What each stored answer answered (a digest of the command's name and arguments), so that a
    # request id reused for another command is refused (id_reused) instead of replayed.  Answers
    # stored before have none and are replayed to any command with their id, as they were.
    3: """
ALTER TABLE answers ADD COLUMN command BLOB NOT NULL DEFAULT x''
""",
    # Indexes for what housekeeping looks rows up by (Store.prune_batch), so that forgetting
    # what aged out reads those rows only, never a whole table: at 300,000 customers a full
    # scan held the event loop for hundreds of milliseconds.  A key's expiry is inside its
    # JSON: the index is on the very expression prune_batch compares.
    4: """
CREATE INDEX IF NOT EXISTS answers_at ON answers (at);
CREATE INDEX IF NOT EXISTS logins_expires_at ON logins (expires_at);
CREATE INDEX IF NOT EXISTS customers_expires_at ON customers (expires_at);
CREATE INDEX IF NOT EXISTS keys_expires_at ON keys (json_extract(CAST(data AS TEXT), '$.expires_at'))
""",
    # Team snippets a team lead made in the console (issue 14; server/snippets.py). Those of the
    # site file are not stored: the file is their truth.
    5: """
CREATE TABLE IF NOT EXISTS snippets (
    id TEXT PRIMARY KEY, team TEXT NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL,
    updated_at REAL NOT NULL, updated_by TEXT NOT NULL
)
""",
    # Answers in the order they were given (a rowid table, appended to), their key in an index
    # of its own.  Keyed by (login, request) in the table itself, with replies of hundreds of
    # bytes, each answer landed inside its login's range ("10" sorts before "9") and split a
    # page: four pages in the write-ahead log per answer, with the index on `at`.  Appended, it
    # is two: the table's last page and the key's.  Housekeeping forgets them in rowid order
    # (prune_batch): the order they were given in, which is the order they age in.
    6: """
CREATE TABLE answers_new (
    login INTEGER NOT NULL, request TEXT NOT NULL, at REAL NOT NULL, reply BLOB NOT NULL, command BLOB NOT NULL DEFAULT x''
);
INSERT INTO answers_new (login, request, at, reply, command) SELECT login, request, at, reply, command FROM answers ORDER BY at;
DROP TABLE answers;
ALTER TABLE answers_new RENAME TO answers;
CREATE UNIQUE INDEX answers_key ON answers (login, request)
""",
}


# Rows rewritten by a step are updated in place (an upsert), not replaced: INSERT OR
# REPLACE deletes the row and inserts it again under a new rowid, which dirties the
# old row's page, the table's last page and its key's index pages (each a page in the
# write-ahead log); an update in place dirties the row's page alone.
_UPSERT_SESSION = (
    "INSERT INTO sessions VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET live = excluded.live, queue_pos = excluded.queue_pos, data = excluded.data"
)
_UPSERT_REP = "INSERT INTO reps VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data"
_UPSERT_META = "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


class StoreError(Exception):
    """The database cannot be used (a newer schema, a corrupt file)."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as fanned out and logged: encoded once, with who may see it.

    Attributes:
        item: ``{"seq","kind","data"}`` as JSON bytes, for the audience.
        gone_item: the ``session_gone`` form, for ``gone``; None when nobody lost sight.
    """

    seq: int
    at: float
    audience: frozenset[str]
    gone: frozenset[str]
    item: bytes
    gone_item: bytes | None


Statement = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class LiveRows:
    """What :meth:`Store.live_rows` read: rows as :meth:`Store.load_answers` and its siblings give them."""

    logins: list[LoginSession]
    answers: list[tuple[int, str, float, bytes, bytes]]
    customers: list[tuple[bytes, str, float]]
    snippets: list[tuple[str, str, str, str, float, str]]


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What one housekeeping pass forgets (:meth:`Store.prune_batch`): events up to a seq,
    the rest by time (answers given, logins and customer tokens expired, keys expired, before)."""

    events_through_seq: int
    answers_before: float
    logins_before: float
    customers_before: float
    keys_before: float


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A browser-sharing link an administrator made (the configuration file's links are not stored).

    ``target`` is a queue (``rep:<id>`` or ``team:<id>``); ``origins`` the
    pages that may use it besides the server's own.
    """

    id: str
    name: str
    target: str
    issue: str | None
    origins: tuple[str, ...]
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None


def _link(row: tuple[Any, ...]) -> LinkRow:
    link_id, name, target, issue, origins, created_at, expires_at, revoked_at = row
    return LinkRow(link_id, name, target, issue, tuple(decode(origins)), created_at, expires_at, revoked_at)


def _arrival(session_id: str) -> int:
    """A session's number (``S12`` -> 12), which orders sessions by arrival."""
    digits = session_id[1:]
    return int(digits) if digits.isdigit() else 0


class Store:
    """The server's SQLite database.  Use from one thread (the event loop's)."""

    def __init__(self, path: Path, *, auto_checkpoint: bool = True) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=OFF")
            if not auto_checkpoint:
                # SQLite's automatic checkpoint runs inside the commit that takes the WAL past
                # 1,000 pages: some 4 MB copied into the database and an fsync, 20-40 ms of
                # the event loop's time on a VM's disk.  The server checkpoints from a thread
                # instead (checkpoint()).  And the WAL file is never cut back: SQLite truncates it
                # inside the first COMMIT after it restarts, and freeing a few hundred MB of it
                # took that commit 120 ms on this machine (bench_server --diagnose found such
                # COMMITs stalling the loop at the start of each run).  So the file keeps its
                # largest size, reused from its start (docs/operations.md, Housekeeping).
                self._db.execute("PRAGMA wal_autocheckpoint=0")
                self._db.execute("PRAGMA journal_size_limit=-1")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{path} was written by a newer repconsole-server (schema {version}, this one reads {SCHEMA_VERSION})")
            with self._transaction():
                scripts = [_SCHEMA, *(_MIGRATIONS[v] for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1))]
                for script in scripts:
                    for statement in script.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from None
        # session id -> (queue, queue_entered_at, queue_pos): what decides queue order.
        self._slots: dict[str, tuple[str | None, float, int | None]] = {}
        # An audience as logged (its members, sorted, as JSON), per audience: the engine shares
        # one set per audience (a team's members, everyone), so a step's events mostly reuse one.
        self._audiences: dict[frozenset[str], bytes] = {}
        # The (sessions, invitations) counters as last written to the meta row (None: not known).
        self._counters: tuple[int, int] | None = None

    def _members(self, audience: frozenset[str]) -> bytes:
        encoded = self._audiences.get(audience)
        if encoded is None:
            if len(self._audiences) >= AUDIENCES_CACHED:
                self._audiences.clear()  # the engine made new sets (a reload, reps joining): start again
            encoded = self._audiences[audience] = encode(sorted(audience))
        return encoded

    @classmethod
    def open(cls, data_dir: Path, *, auto_checkpoint: bool = True) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(data_dir / DB_NAME, auto_checkpoint=auto_checkpoint)

    def close(self) -> None:
        self._db.close()

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database, through a connection of its own, so that it
        can run in a thread (``asyncio.to_thread``) while the loop's connection goes on writing:
        a PASSIVE checkpoint waits for no writer and no writer waits for it (SQLite releases the
        GIL while it works).  For a store opened with ``auto_checkpoint=False``."""
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()

    def reader(self) -> sqlite3.Connection:
        """A connection of its own, inside a read transaction on the database as it is now: the loop's
        later commits are not seen by it (WAL: the first read pins the snapshot).  A thread may read
        from it (``check_same_thread`` off); close it when done (that ends the transaction)."""
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0, check_same_thread=False)
        try:
            db.execute("BEGIN")
            db.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def live_rows(db: sqlite3.Connection, now: float, answers_after: float) -> LiveRows:
        """What a process joining a cluster needs of ``db`` (a :meth:`reader`) at time ``now``: unexpired
        logins, their answers given after ``answers_after`` (the resume window), unexpired customer tokens,
        every snippet.  Not the expired ones kept a day for a late "expired" (a joiner answers "unknown")."""
        logins = [
            LoginSession(login_id, bytes(token_hash), rep, created_at, expires_at)
            for login_id, token_hash, rep, created_at, expires_at in db.execute("SELECT * FROM logins WHERE expires_at > ?", (now,))
        ]
        answers = [
            (login, request, at, bytes(reply), bytes(command))
            for login, request, at, reply, command in db.execute(
                "SELECT a.login, a.request, a.at, a.reply, a.command FROM answers a JOIN logins l ON l.id = a.login "
                "WHERE a.at >= ? AND l.expires_at > ? ORDER BY a.at",
                (answers_after, now),
            )
        ]
        customers = [(bytes(h), sid, exp) for h, sid, exp in db.execute("SELECT * FROM customers WHERE expires_at > ?", (now,))]
        snippets = [tuple(row) for row in db.execute("SELECT * FROM snippets ORDER BY updated_at, id")]
        return LiveRows(logins, answers, customers, snippets)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------- credentials

    def password_hash(self, username: str) -> str | None:
        row = self._db.execute("SELECT hash FROM credentials WHERE username = ?", (username,)).fetchone()
        return row[0] if row else None

    def set_password_hash(self, username: str, encoded: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO credentials VALUES (?, ?, ?) ON CONFLICT (username) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
                (username, encoded, time.time()),
            )

    def any_password_hash(self) -> str | None:
        row = self._db.execute("SELECT hash FROM credentials LIMIT 1").fetchone()
        return row[0] if row else None

    def usernames_with_passwords(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT username FROM credentials")}

    # -------------------------------------------------------------- links

    def add_link(self, link: LinkRow) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO links VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (link.id, link.name, link.target, link.issue, encode(list(link.origins)).decode(), link.created_at, link.expires_at, link.revoked_at),
            )

    def link(self, link_id: str) -> LinkRow | None:
        row = self._db.execute("SELECT * FROM links WHERE id = ?", (link_id,)).fetchone()
        return _link(row) if row else None

    def links(self) -> list[LinkRow]:
        return [_link(row) for row in self._db.execute("SELECT * FROM links ORDER BY created_at, id")]

    def snippet_rows(self) -> list[tuple[str, str, str, str]]:
        """The stored team snippets (issue 14): (id, team, name, text), oldest first."""
        return [tuple(row) for row in self._db.execute("SELECT id, team, name, text FROM snippets ORDER BY updated_at, id")]

    def load_snippets(self) -> list[tuple[str, str, str, str, float, str]]:
        """Every stored snippet's row: (id, team, name, text, updated_at, updated_by), oldest first."""
        return [tuple(row) for row in self._db.execute("SELECT * FROM snippets ORDER BY updated_at, id")]

    def revoke_link(self, link_id: str, at: float) -> bool:
        """Revoke a link (once: the first time stays).  False if there is no such link."""
        with self._transaction() as db:
            cursor = db.execute("UPDATE links SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (at, link_id))
        return cursor.rowcount > 0

    # -------------------------------------------------------------- load

    def has_state(self) -> bool:
        return self._db.execute("SELECT 1 FROM meta WHERE key = 'counters'").fetchone() is not None

    def load_state(self) -> dict[str, Any] | None:
        """The stored engine state in :mod:`persist` format, or None if nothing was stored yet.

        Its ``ended`` is empty: ended sessions stay in the database (:meth:`load_session`).
        """
        row = self._db.execute("SELECT value FROM meta WHERE key = 'counters'").fetchone()
        if row is None:
            return None
        counters = decode(row[0])
        # The stored seq is the last one a step that also changed another counter wrote
        # (Store.commit); every later step logged its events, and the log always keeps
        # its newest row (prune_batch), so the last seq handed out is the larger of the two.
        (last,) = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
        if last is not None and last > counters["seq"]:
            counters["seq"] = last
        self._counters = (counters["sessions"], counters["invitations"])
        # Live sessions only: ended ones are history, read one at a time
        # (load_session) by the few who ask.  A server that ran for a year
        # starts with what is going on, not with a year of chats in memory.
        chats: dict[str, list[Any]] = {}
        lines = self._db.execute(
            "SELECT c.session, c.data FROM chat c JOIN sessions s ON s.id = c.session WHERE s.live ORDER BY c.session, c.n"
        )
        for sid, data in lines:
            chats.setdefault(sid, []).append(decode(data))
        live: list[dict[str, Any]] = []
        waiting: list[tuple[int, str, str]] = []
        for sid, pos, data in self._db.execute("SELECT id, queue_pos, data FROM sessions WHERE live ORDER BY num"):
            d = decode(data)
            d["chat"] = chats.get(sid, [])
            live.append(d)
            self._slots[sid] = (d["queue"], d["queue_entered_at"], pos)
            if d["queue"] is not None and pos is not None:
                waiting.append((pos, d["queue"], sid))
        queues: dict[str, list[str]] = {}
        for _, queue, sid in sorted(waiting):
            queues.setdefault(queue, []).append(sid)
        team_chat: dict[str, dict[str, Any]] = {}

        def team_of(team: str) -> dict[str, Any]:
            return team_chat.setdefault(team, {"count": 0, "lines": [], "last_read": {}})

        for team, count in self._db.execute("SELECT team, count FROM team_counts"):
            team_of(team)["count"] = count
        for team, data in self._db.execute("SELECT team, data FROM team_chat ORDER BY team, n"):
            team_of(team)["lines"].append(decode(data))
        for team, rep, n in self._db.execute("SELECT team, rep, n FROM team_read"):
            team_of(team)["last_read"][rep] = n
        for tc in team_chat.values():
            del tc["lines"][:-TEAM_CHAT_HISTORY]
        return {
            "format": persist.FORMAT,
            "counters": counters,
            "sessions": live,
            "waiting": queues,
            "ended": [],
            "reps": {rep: decode(data) for rep, data in self._db.execute("SELECT id, data FROM reps")},
            "keys": [decode(data) for (data,) in self._db.execute("SELECT data FROM keys")],
            "team_chat": team_chat,
        }

    def load_session(self, session_id: str) -> Session | None:
        """One session as stored, with its chat (an ended one the engine let go of); None if there is none."""
        row = self._db.execute("SELECT data FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            return None
        d = decode(row[0])
        d["chat"] = [decode(data) for (data,) in self._db.execute("SELECT data FROM chat WHERE session = ? ORDER BY n", (session_id,))]
        return persist.load_session(d)

    def answer(self, login_id: int, request: str) -> tuple[float, bytes, bytes] | None:
        """The stored answer to a login session's request: (when, the reply, the digest of the command it answered)."""
        row = self._db.execute("SELECT at, reply, command FROM answers WHERE login = ? AND request = ?", (login_id, request)).fetchone()
        return (row[0], bytes(row[1]), bytes(row[2])) if row is not None else None

    def answer_keys(self, login_id: int) -> list[str]:
        """The request keys of a login session's stored answers."""
        return [key for (key,) in self._db.execute("SELECT request FROM answers WHERE login = ?", (login_id,))]

    def customer(self, token_hash: bytes) -> tuple[str, float] | None:
        """The session a customer's token (its hash) opens, and until when."""
        row = self._db.execute("SELECT session, expires_at FROM customers WHERE token_hash = ?", (token_hash,)).fetchone()
        return (row[0], row[1]) if row is not None else None

    def load_events(self) -> list[LoggedEvent]:
        return [
            LoggedEvent(seq, at, frozenset(decode(audience)), frozenset(decode(gone)), bytes(item), bytes(gone_item) if gone_item else None)
            for seq, at, audience, gone, item, gone_item in self._db.execute("SELECT * FROM events ORDER BY seq")
        ]

    def load_logins(self) -> list[LoginSession]:
        return [
            LoginSession(login_id, bytes(token_hash), rep, created_at, expires_at)
            for login_id, token_hash, rep, created_at, expires_at in self._db.execute("SELECT * FROM logins")
        ]

    def next_login_id(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM logins").fetchone()[0])

    def load_answers(self) -> list[tuple[int, str, float, bytes, bytes]]:
        rows = self._db.execute("SELECT login, request, at, reply, command FROM answers ORDER BY at")
        return [(login, request, at, bytes(reply), bytes(command)) for login, request, at, reply, command in rows]

    def load_customers(self) -> list[tuple[bytes, str, float]]:
        return [(bytes(h), sid, exp) for h, sid, exp in self._db.execute("SELECT * FROM customers")]

    # ------------------------------------------------------------- write

    @staticmethod
    def login_row(login: LoginSession) -> Statement:
        return ("INSERT INTO logins VALUES (?, ?, ?, ?, ?)", (login.id, login.token_hash, login.rep, login.created_at, login.expires_at))

    @staticmethod
    def logout_rows(login_id: int) -> list[Statement]:
        return [("DELETE FROM logins WHERE id = ?", (login_id,)), ("DELETE FROM answers WHERE login = ?", (login_id,))]

    @staticmethod
    def answer_row(login_id: int, request: str, at: float, reply: bytes, command: bytes = b"") -> Statement:
        return (
            "INSERT OR REPLACE INTO answers (login, request, at, reply, command) VALUES (?, ?, ?, ?, ?)",
            (login_id, request, at, reply, command),
        )

    @staticmethod
    def customer_row(token_hash: bytes, session_id: str, expires_at: float) -> Statement:
        return ("INSERT OR REPLACE INTO customers VALUES (?, ?, ?)", (token_hash, session_id, expires_at))

    def execute(self, statements: Sequence[Statement]) -> None:
        """Statements that change no engine state (a logout, a stored refusal), in one transaction."""
        with self._transaction() as db:
            for sql, params in statements:
                db.execute(sql, params)

    def commit(self, engine: QueueEngine, events: Sequence[Event], logged: Sequence[LoggedEvent], extra: Sequence[Statement] = ()) -> None:
        """Persist one engine step: everything ``events`` say changed, the events themselves, and ``extra``."""
        sessions: dict[str, int] = {}
        chat: list[tuple[str, int, bytes]] = []
        team_lines: list[tuple[str, int, bytes]] = []
        team_counts: dict[str, int] = {}
        reads: dict[tuple[str, str], int] = {}
        reps: set[str] = set()
        keys: dict[str, bytes] = {}
        for e in events:
            match e.data:
                case SessionData(session=view):
                    sessions[view.id] = e.seq
                case ChatData(session=sid, line=line):
                    chat.append((sid, line.n, encode(line)))
                case TeamChatData(team=team, line=line):
                    team_lines.append((team, line.n, encode(line)))
                    team_counts[team] = line.n
                    if line.author is not None:
                        reads[(team, line.author)] = line.n  # the author has read their own line
                case TeamReadData(team=team, last_read=last_read):
                    for rep in e.audience:  # the one rep who read
                        reads[(team, rep)] = last_read
                case RepData(rep=view):
                    reps.add(view.id)
                case KeyData(key=key):
                    keys[key.key] = encode(key)
        with self._transaction() as db:
            for sid, seq in sessions.items():
                s = engine.session(sid)
                live = s.state is not SessionState.ENDED
                queue = s.queue.serialize() if s.queue is not None else None
                slot = self._slots.get(sid)
                if queue is None:
                    pos = None
                elif slot is not None and slot[0] == queue and slot[1] == s.queue_entered_at:
                    pos = slot[2]
                else:
                    pos = seq
                if live:
                    self._slots[sid] = (queue, s.queue_entered_at, pos)
                else:
                    self._slots.pop(sid, None)
                db.execute(_UPSERT_SESSION, (sid, _arrival(sid), live, pos, encode(persist.dump_session(s, chat=False))))
            if chat:
                db.executemany("INSERT OR REPLACE INTO chat VALUES (?, ?, ?)", chat)
            if team_lines:
                db.executemany("INSERT OR REPLACE INTO team_chat VALUES (?, ?, ?)", team_lines)
                db.executemany("INSERT OR REPLACE INTO team_counts VALUES (?, ?)", team_counts.items())
            if reads:
                db.executemany("INSERT OR REPLACE INTO team_read VALUES (?, ?, ?)", [(t, r, n) for (t, r), n in reads.items()])
            for rep in reps:
                db.execute(_UPSERT_REP, (rep, encode(persist.dump_rep(engine, rep))))
            if keys:
                db.executemany("INSERT OR REPLACE INTO keys VALUES (?, ?)", keys.items())
            if logged:
                db.executemany(
                    "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?)",
                    [(e.seq, e.at, self._members(e.audience), self._members(e.gone), e.item, e.gone_item) for e in logged],
                )
            # The counters row only when a counter besides seq moved (an arrival, an
            # invitation): a step's seq is in its events' rows already (see load_state).
            counters = engine.counters()
            moved = (counters.sessions, counters.invitations)
            if moved != self._counters:
                db.execute(_UPSERT_META, ("counters", encode(persist.counters(engine)).decode()))
            for sql, params in extra:
                db.execute(sql, params)
        self._counters = moved  # committed (a failed step rolled it back, and stops the server)

    def record(self, logged: Sequence[LoggedEvent], extra: Sequence[Statement] = ()) -> None:
        """A cluster follower's part of a step (the engine state is written whole at a takeover or stop):
        the leader's events, for resumes after a restart, and ``extra``, in one transaction."""
        with self._transaction() as db:
            if logged:
                db.executemany(
                    "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?)",
                    [(e.seq, e.at, self._members(e.audience), self._members(e.gone), e.item, e.gone_item) for e in logged],
                )
            for sql, params in extra:
                db.execute(sql, params)

    def save_all(self, engine: QueueEngine) -> None:
        """Write the whole engine state (the first start, or after loading repairs)."""
        state = persist.dump(engine)
        positions = {sid: i for q, sids in state["waiting"].items() for i, sid in enumerate(sids)}
        with self._transaction() as db:
            # Ended sessions the engine no longer holds stay as they are: history.
            db.execute("DELETE FROM chat WHERE session IN (SELECT id FROM sessions WHERE live)")
            db.execute("DELETE FROM sessions WHERE live")
            for table in ("reps", "keys", "team_chat", "team_counts", "team_read"):
                db.execute(f"DELETE FROM {table}")
            self._slots.clear()
            for d in state["sessions"] + state["ended"]:
                sid, live = d["id"], d["state"] != SessionState.ENDED
                # Queue order within a queue is what matters; -1 - ... keeps
                # these places before any seq handed out later.
                pos = positions[sid] - len(positions) - 1 if sid in positions else None
                if live:
                    self._slots[sid] = (d["queue"], d["queue_entered_at"], pos)
                lines = d.pop("chat")
                db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?)", (sid, _arrival(sid), live, pos, encode(d)))
                db.executemany("INSERT OR REPLACE INTO chat VALUES (?, ?, ?)", [(sid, line["n"], encode(line)) for line in lines])
            db.executemany("INSERT INTO reps VALUES (?, ?)", [(r, encode(d)) for r, d in state["reps"].items()])
            db.executemany("INSERT INTO keys VALUES (?, ?)", [(k["key"], encode(k)) for k in state["keys"]])
            for team, tc in state["team_chat"].items():
                db.execute("INSERT INTO team_counts VALUES (?, ?)", (team, tc["count"]))
                db.executemany("INSERT INTO team_chat VALUES (?, ?, ?)", [(team, line["n"], encode(line)) for line in tc["lines"]])
                db.executemany("INSERT INTO team_read VALUES (?, ?, ?)", [(team, r, n) for r, n in tc["last_read"].items()])
            db.execute("INSERT OR REPLACE INTO meta VALUES ('counters', ?)", (encode(state["counters"]).decode(),))
        self._counters = (state["counters"]["sessions"], state["counters"]["invitations"])

    # ------------------------------------------------------------- prune

    def prune(self, cutoffs: Cutoffs) -> int:
        """Forget everything that aged out, in batches, without a break (a tool, a test: nothing else
        waits).  The server runs :meth:`prune_batch` itself, with its loop's turns in between.
        Returns the rows deleted."""
        total = 0
        while deleted := self.prune_batch(cutoffs):
            total += deleted
        return total

    def prune_batch(self, cutoffs: Cutoffs, limit: int = PRUNE_BATCH) -> int:
        """Forget at most ``limit`` rows of each kind that aged out, in one short transaction.

        Returns how many rows went: 0 when nothing older than ``cutoffs`` is
        left.  Every statement finds its rows through an index (schema 4) and
        stops at ``limit``, so a batch costs a few milliseconds however big
        the tables and however much aged out at once.
        """
        with self._transaction() as db:
            n = db.execute(
                # Never the newest row: it holds the last seq handed out (see load_state).
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? "
                "AND seq < (SELECT MAX(seq) FROM events) ORDER BY seq LIMIT ?)",
                (cutoffs.events_through_seq, limit),
            ).rowcount
            # Answers age in the order they were given (schema 6, rowid order): the oldest ``limit``
            # rowids are looked at, and those of them past the window go.  (A young row among them,
            # after the wall clock went back, waits for its turn; Answers.lookup enforces the
            # window exactly.)
            n += db.execute(
                "DELETE FROM answers WHERE rowid IN (SELECT rowid FROM answers "
                "WHERE rowid < (SELECT MIN(rowid) FROM answers) + ? AND at < ?)",
                (limit, cutoffs.answers_before),
            ).rowcount
            # An expired login's answers go first; the login only once none is left.
            gone = db.execute(
                "DELETE FROM answers WHERE rowid IN (SELECT a.rowid FROM logins l "
                "JOIN answers a ON a.login = l.id WHERE l.expires_at < ? LIMIT ?)",
                (cutoffs.logins_before, limit),
            ).rowcount
            n += gone
            if gone < limit:
                n += db.execute(
                    "DELETE FROM logins WHERE id IN (SELECT id FROM logins WHERE expires_at < ? LIMIT ?)", (cutoffs.logins_before, limit)
                ).rowcount
            n += db.execute(
                "DELETE FROM customers WHERE token_hash IN (SELECT token_hash FROM customers WHERE expires_at < ? LIMIT ?)",
                (cutoffs.customers_before, limit),
            ).rowcount
            # The engine forgets keys a day after they expired (until then a
            # late customer hears "expired", not "unknown"); so does the store.
            n += db.execute(
                "DELETE FROM keys WHERE key IN (SELECT key FROM keys WHERE json_extract(CAST(data AS TEXT), '$.expires_at') < ? LIMIT ?)",
                (cutoffs.keys_before, limit),
            ).rowcount
            for team, count in db.execute("SELECT team, count FROM team_counts").fetchall():
                n += db.execute(
                    "DELETE FROM team_chat WHERE team = ? AND n IN (SELECT n FROM team_chat WHERE team = ? AND n <= ? ORDER BY n LIMIT ?)",
                    (team, team, count - TEAM_CHAT_HISTORY, limit),
                ).rowcount
        return n
