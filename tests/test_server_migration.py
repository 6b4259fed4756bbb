"""The store's schema moves forward, and its housekeeping never holds the loop for long.

* A schema 3 database, written by the server of that schema
  (``tests/data/store-v3.sql``, a dump of it), opens with this server: it is
  migrated to :data:`~repconsole.server.store.SCHEMA_VERSION`, keeps every
  session, chat line, key, login and answer, and its housekeeping still
  forgets what aged out.
* Every statement of a housekeeping batch finds its rows through an index
  (no full scan of a table that grows with the sessions handled), and a
  batch deletes at most its limit of each kind.
* The server's pass (:meth:`Runtime.keep_house`) gives the loop a turn
  between batches.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from pathlib import Path

import pytest
from server_helpers import write_site

from repconsole.core.engine import TEAM_CHAT_HISTORY
from repconsole.core.intake import Intake
from repconsole.core.model import SessionState
from repconsole.server.config import load_config
from repconsole.server.runtime import CUSTOMER_TOKENS_KEPT, Runtime
from repconsole.server.store import DB_NAME, SCHEMA_VERSION, Cutoffs, Store, StoreError
from repconsole.server.timers import VirtualClock

V3_DUMP = Path(__file__).parent / "data" / "store-v3.sql"
V3_TIME = 2_000_000_000.0  # the dump's clock


def _v3_database(data: Path) -> Path:
    data.mkdir(parents=True)
    path = data / DB_NAME
    db = sqlite3.connect(path)
    db.executescript(V3_DUMP.read_text(encoding="utf-8"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    db.close()
    return path


def _count(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


def test_a_schema_3_database_is_migrated_and_keeps_everything(tmp_path: Path) -> None:
    path = _v3_database(tmp_path / "data")
    spec = load_config(write_site(tmp_path))
    clock = VirtualClock(V3_TIME + 10)
    loop = asyncio.new_event_loop()
    try:
        runtime = Runtime(spec, tmp_path / "data", loop, clock=clock)
        db = runtime.store._db
        assert SCHEMA_VERSION == 6
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
        assert {"answers_key", "logins_expires_at", "customers_expires_at", "keys_expires_at"} <= indexes
        assert "answers_at" not in indexes  # schema 6: answers age in rowid order
        engine = runtime.engine
        s1, s2 = engine.session("S1"), engine.session("S2")
        assert s1.state is SessionState.ACTIVE and s1.owner == "alice" and any(line.text == "Hello Ann" for line in s1.chat)
        assert s2.state is SessionState.WAITING and s2.queue is not None and s2.queue.serialize() == "team:bill"
        assert [key.rep for key in engine.session_keys()] == ["alice"]
        assert [login.rep for login in runtime.store.load_logins()] == ["alice"]
        assert runtime.answers.get(1, "n:1") is not None
        assert runtime.store.customer(b"\x02" * 32) == ("S1", V3_TIME + 3600)
        assert runtime.fanout.replay("alice", 0) is not None  # the event log refilled the resume ring
        runtime.stop()
        runtime.store.close()

        # Two days later everything that ages out has, and the migrated indexes find it.
        clock.advance(2 * 86400)
        runtime = Runtime(spec, tmp_path / "data", loop, clock=clock)
        runtime.housekeeping()
        for table in ("answers", "logins", "customers", "keys"):
            assert _count(path, table) == 0, table
        assert _count(path, "events") == 1  # the newest stays: it holds the last seq handed out
        assert _count(path, "sessions") == 2 and _count(path, "chat") >= 2  # history stays
        runtime.stop()
        runtime.store.close()
    finally:
        loop.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = _v3_database(tmp_path / "data")
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def _fill(path: Path, rows: int, *, aged: float, fresh: float) -> None:
    """``rows`` aged rows (at ``aged``) and as many fresh ones (at ``fresh``) of every kind housekeeping forgets."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for i in range(2 * rows):
        at = aged if i < rows else fresh
        db.execute("INSERT INTO logins VALUES (?, ?, 'alice', ?, ?)", (i + 1, i.to_bytes(32, "big"), at, at))
        db.execute("INSERT INTO answers (login, request, at, reply) VALUES (?, ?, ?, x'7b7d')", (i + 1, "r", at))
        db.execute("INSERT INTO customers VALUES (?, ?, ?)", ((10**9 + i).to_bytes(32, "big"), f"S{i}", at))
        db.execute("INSERT INTO keys VALUES (?, ?)", (f"K{i}", f'{{"key":"K{i}","rep":"alice","created_at":0,"expires_at":{at},"used_by":null}}'.encode()))
        db.execute("INSERT INTO events VALUES (?, ?, x'5b5d', x'5b5d', x'7b7d', NULL)", (i + 1, at))
    # A team chat with `rows` lines past the history the store keeps.
    count = rows + TEAM_CHAT_HISTORY
    db.execute("INSERT INTO team_counts VALUES ('zz', ?)", (count,))
    db.executemany("INSERT INTO team_chat VALUES ('zz', ?, x'7b7d')", ((n,) for n in range(1, count + 1)))
    db.execute("COMMIT")
    db.close()


def test_a_batch_finds_its_rows_through_indexes_and_stops_at_its_limit(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "data")
    _fill(store.path, 300, aged=1000.0, fresh=5000.0)
    cutoffs = Cutoffs(events_through_seq=300, answers_before=2000.0, logins_before=2000.0, customers_before=2000.0, keys_before=2000.0)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # with the values bound (Python >= 3.11)
    deleted = store.prune_batch(cutoffs, 100)
    # events, answers by age, customers, keys, team chat: 100 each; answers of expired logins: 100
    # more (of the 200 left); their logins wait for a later batch, when none of their answers is left.
    assert deleted == 600
    total = deleted
    while n := store.prune_batch(cutoffs, 100):
        assert n <= 7 * 100
        total += n
    store._db.set_trace_callback(None)
    assert total == 6 * 300
    plans = {
        re.sub(r"[0-9.]+", "?", sql): " | ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for sql in statements
        if sql.lstrip().upper().startswith("DELETE")
    }
    assert len(plans) == 7, plans  # events, answers (twice), logins, customers, keys, team chat
    for sql, plan in plans.items():
        assert "SCAN" not in plan, f"{sql}: {plan}"  # a full scan is what held the loop
    assert _count(store.path, "team_chat") == TEAM_CHAT_HISTORY
    for table in ("events", "answers", "logins", "customers", "keys"):
        assert _count(store.path, table) == 300, table  # the fresh ones stay
    store.close()


def test_the_servers_pass_gives_the_loop_a_turn_between_batches(tmp_path: Path) -> None:
    spec = load_config(write_site(tmp_path))
    clock = VirtualClock(V3_TIME)
    path = tmp_path / "data" / DB_NAME

    async def main() -> list[int]:
        runtime = Runtime(spec, tmp_path / "data", asyncio.get_running_loop(), clock=clock)
        _fill(path, 1000, aged=V3_TIME - CUSTOMER_TOKENS_KEPT - 10, fresh=V3_TIME + 10)
        runtime.prune_rows = 100
        seen: list[int] = []
        done = False

        async def watch() -> None:  # what another task sees between two turns of the loop
            while not done:
                seen.append(runtime.store._db.execute("SELECT COUNT(*) FROM customers").fetchone()[0])
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        await runtime.keep_house()
        done = True
        await watcher
        runtime.stop()
        runtime.store.close()
        return seen

    seen = asyncio.run(main())
    distinct = sorted(set(seen), reverse=True)
    assert distinct[0] == 2000 and distinct[-1] == 1000
    assert len(distinct) >= 10 and all(a - b <= 100 for a, b in itertools.pairwise(distinct))


def test_the_timer_starts_one_pass_at_a_time(tmp_path: Path) -> None:
    spec = load_config(write_site(tmp_path))
    clock = VirtualClock(V3_TIME)

    async def main() -> None:
        runtime = Runtime(spec, tmp_path / "data", asyncio.get_running_loop(), clock=clock)
        runtime.start()
        clock.advance(5)
        first = runtime._house_task
        assert first is not None and not first.done()
        clock.advance(5)  # the first pass has not had a turn yet: no second one beside it
        assert runtime._house_task is first
        await first
        clock.advance(5)
        assert runtime._house_task is not first
        runtime.stop()
        runtime.store.close()

    asyncio.run(main())


def test_the_server_checkpoints_the_wal_at_housekeeping_not_in_a_commit(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint (in the commit that takes the WAL past 1,000 pages, on the
    loop: a copy and an fsync) is off in the server's store; housekeeping checkpoints in a thread."""
    spec = load_config(write_site(tmp_path))
    clock = VirtualClock(V3_TIME)
    path = tmp_path / "data" / DB_NAME

    async def main() -> None:
        runtime = Runtime(spec, tmp_path / "data", asyncio.get_running_loop(), clock=clock)
        assert runtime.store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        size = path.stat().st_size
        for first in range(0, 6000, 500):  # well over 1,000 pages of WAL
            with runtime.step():
                for i in range(first, first + 500):
                    runtime.engine.start_with_issue("vpn", Intake(f"Customer {i}", details="x" * 200))
        assert (tmp_path / "data" / f"{DB_NAME}-wal").stat().st_size > 1000 * 4096
        assert path.stat().st_size == size  # all of it still in the WAL: no commit checkpointed
        await runtime.keep_house()
        assert path.stat().st_size > size + 1000 * 4096
        # The next commit restarts the WAL from its start and does not truncate the file (SQLite
        # would, inside that commit on the loop: ~120 ms for a few hundred MB): it keeps its size.
        wal = tmp_path / "data" / f"{DB_NAME}-wal"
        grown = wal.stat().st_size
        assert runtime.store._db.execute("PRAGMA journal_size_limit").fetchone()[0] == -1
        with runtime.step():
            runtime.engine.start_with_issue("vpn", Intake("After the checkpoint"))
        assert wal.stat().st_size == grown
        runtime.stop()
        runtime.store.close()

    asyncio.run(main())
