"""What the server does per command, kept cheap without changing what it answers.

* A command with an integer request id above every id its login session has
  stored an answer under was never answered: it is run without reading the
  store first.  Retries, reused ids and lower ids still hear what they heard,
  also across a restart (the watermark is learned from the store again).
* A step's rewritten rows are updated in place (an upsert keeps the row's
  rowid: a replace deleted and re-inserted it, a write-ahead-log page more).
* A step writes only the rows it changed: the counters row only when a counter
  besides ``seq`` moved (a step's seq is in its events' rows), and a stored
  answer costs two pages of the write-ahead log, not four (schema 6: answers
  appended in the order given, their key in an index of its own).  Counted in
  statements and pages, not timed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from server_helpers import RepClient, eventually, run, serving, write_site

from repconsole.core.intake import Intake
from repconsole.protocol import Error, ErrorReason, Logout, Result, request_key
from repconsole.server.app import Server
from repconsole.server.store import DB_NAME, Cutoffs, Store


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path)


def arrive(server: Server, name: str = "Ann Lee") -> str:
    rt = server.runtime
    assert rt is not None
    with rt.step():
        s = rt.engine.start_with_issue("vpn", Intake(name))
    return s.id


class Reads:
    """Counts the store's answer reads (Store.answer)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = Store.answer

        def answer(store: Store, login_id: int, request: str) -> tuple[float, bytes, bytes] | None:
            self.count += 1
            return real(store, login_id, request)

        monkeypatch.setattr(Store, "answer", answer)


def test_integer_request_ids_above_the_watermark_skip_the_read_and_retries_still_get_their_answer(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Reads(monkeypatch)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            engine = server.runtime.engine
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            assert isinstance(await alice.call("accept", rid=10, session=sid), Result)
            before = reads.count
            first = await alice.call("say", rid=20, session=sid, text="twenty")
            assert isinstance(first, Result)
            assert reads.count == before  # 20 > 10: never answered, nothing read
            # A lower id never used is read, found missing, and run.
            assert isinstance(await alice.call("say", rid=15, session=sid, text="fifteen"), Result)
            assert reads.count == before + 1
            # A retry is read and answered as before; a reused id is refused; neither runs.
            assert await alice.call("say", rid=20, session=sid, text="twenty") == first
            reused = await alice.call("say", rid=20, session=sid, text="other")
            assert isinstance(reused, Error) and reused.reason == ErrorReason.ID_REUSED
            # String ids are always read: "21" is not 21.
            count = reads.count
            assert isinstance(await alice.call("say", rid="21", session=sid, text="a string"), Result)
            assert reads.count == count + 1
            texts = [line.text for line in engine.session(sid).chat if line.author == "alice"]
            assert texts == ["twenty", "fifteen", "a string"]
            token, seq = alice.token, alice.seq
            await alice.close()
        # After a restart the watermark is learned from the store: 20 is a retry, not new.
        async with serving(site, tmp_path / "data") as server:
            engine = server.runtime.engine
            again = await RepClient.open(server)
            assert (await again.resume(token, seq)).resumed is True
            assert await again.call("say", rid=20, session=sid, text="twenty") == first
            reused = await again.call("say", rid=20, session=sid, text="other")
            assert isinstance(reused, Error) and reused.reason == ErrorReason.ID_REUSED
            count = reads.count
            assert isinstance(await again.call("say", rid=21, session=sid, text="twenty-one"), Result)
            assert reads.count == count  # above the learned watermark (20)
            texts = [line.text for line in engine.session(sid).chat if line.author == "alice"]
            assert texts == ["twenty", "fifteen", "a string", "twenty-one"]

    run(main())


def test_a_logout_forgets_the_watermark_with_the_answers(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            rt = server.runtime
            alice = await RepClient.logged_in(server, "alice")
            assert isinstance(await alice.call("team_say", rid=7, team="net", text="hi"), Result)
            (login,) = rt.logins.of_rep("alice")
            assert rt.answers.may_have(login.id, 7) and not rt.answers.may_have(login.id, 8)
            await alice.send(Logout(8))
            await eventually(lambda: rt.logins.get(login.id) is None)
            assert login.id not in rt.answers._above

    run(main())


def test_a_steps_rows_are_updated_in_place(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            rt = server.runtime
            db = rt.store._db
            sid = arrive(server)

            def rowids() -> tuple[int, int, int]:
                session = db.execute("SELECT rowid FROM sessions WHERE id = ?", (sid,)).fetchone()[0]
                rep = db.execute("SELECT rowid FROM reps WHERE id = 'alice'").fetchone()[0]
                meta = db.execute("SELECT rowid FROM meta WHERE key = 'counters'").fetchone()[0]
                return session, rep, meta

            before = rowids()
            alice = await RepClient.logged_in(server, "alice")  # rewrites alice's row and the counters
            await alice.ok("accept", session=sid)  # rewrites the session's row
            assert rowids() == before
            num, live, data = db.execute("SELECT num, live, data FROM sessions WHERE id = ?", (sid,)).fetchone()
            assert num == int(sid[1:]) and live == 1 and b'"active"' in data

    run(main())


def test_a_commands_reply_leaves_only_after_its_step_is_committed(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What "confirmed" means (docs/protocol.md): the reply goes out after the command's
    transaction, with its answer row, is committed; never before, never without it."""
    order: list[str] = []
    real_commit, real_send = Store.commit, Server._send

    def commit(store: Store, *args: object, **kwargs: object) -> None:
        real_commit(store, *args, **kwargs)  # type: ignore[arg-type]
        order.append("committed")

    async def send(server: Server, ws: object, message: object) -> None:
        if isinstance(message, bytes) and b'"type":"result"' in message:
            order.append("reply")
        await real_send(server, ws, message)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "commit", commit)
    monkeypatch.setattr(Server, "_send", send)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            order.clear()
            for n, text in enumerate(["one", "two", "three"], start=1):
                assert isinstance(await alice.call("say" if n > 1 else "accept", rid=n, session=sid, **({"text": text} if n > 1 else {})), Result)
                login = server.runtime.logins.of_rep("alice")[0]
                assert server.runtime.store.answer(login.id, str(n)) is not None  # on disk with it
            assert order == ["committed", "reply"] * 3

    run(main())


def _writes(statements: list[str]) -> list[str]:
    """The tables a transaction's statements wrote to, in order."""
    tables = []
    for sql in statements:
        words = sql.split()
        if words and words[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            into = [w.upper() for w in words].index("INTO" if words[0].upper() == "INSERT" else "FROM" if words[0].upper() == "DELETE" else "UPDATE")
            tables.append(words[into + 1] if words[0].upper() != "UPDATE" else words[1])
    return tables


def test_a_command_step_writes_its_changes_its_events_and_its_answer_and_nothing_else(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            rt = server.runtime
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            statements: list[str] = []
            rt.store._db.set_trace_callback(statements.append)
            await alice.ok("accept", session=sid)
            accept = _writes(statements)
            statements.clear()
            await alice.ok("say", session=sid, text="hello")
            say = _writes(statements)
            statements.clear()
            arrive(server, "Bo Chan")
            arrival = _writes(statements)
            rt.store._db.set_trace_callback(None)
            # What changed (the session, its chat), the events, one answer; no counters row: only
            # seq moved, and the events' rows hold it.
            assert set(accept) == {"sessions", "chat", "events", "answers"} and accept.count("answers") == 1, accept
            assert set(say) == {"chat", "events", "answers"} and say.count("answers") == 1, say
            # A new session moves the sessions counter: that is written, once.
            assert arrival == ["sessions", "events", "meta"], arrival

    run(main())


def test_the_last_seq_survives_a_restart_without_the_counters_row_and_after_housekeeping(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            await alice.ok("accept", session=sid)
            for n in range(5):
                await alice.ok("say", session=sid, text=f"line {n}")
            seq = server.runtime.engine.seq
            stored = server.runtime.store.load_state()
            assert stored is not None and stored["counters"]["seq"] == seq
            (written,) = server.runtime.store._db.execute("SELECT value FROM meta WHERE key = 'counters'").fetchone()
            assert f'"seq":{seq},' not in written  # the row is behind: the events carry the seq
            # Housekeeping long after: every event past the window goes but the newest.
            server.runtime.store.prune(Cutoffs(seq, 0.0, 0.0, 0.0, 0.0))
            assert server.runtime.store._db.execute("SELECT seq FROM events").fetchall() == [(seq,)]
        async with serving(site, tmp_path / "data") as server:
            assert server.runtime.engine.seq == seq
            arrive(server, "Bo Chan")
            assert server.runtime.engine.seq == seq + 1  # no seq handed out twice

    run(main())


def test_a_stored_answer_costs_two_pages_of_the_write_ahead_log(tmp_path: Path) -> None:
    store = Store.open(tmp_path, auto_checkpoint=False)
    wal = tmp_path / f"{DB_NAME}-wal"

    def pages() -> int:
        size = wal.stat().st_size
        return (size - 32) // (24 + 4096) if size > 32 else 0

    reply = b"r" * 600  # a command's reply: a session's view is hundreds of bytes
    for i in range(1, 201):  # four consoles' answers, ids 1, 2, 3...: "10" sorts before "9"
        store.execute([Store.answer_row(1 + i % 4, request_key(i // 4 + 1), 1000.0 + i, reply)])
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = pages()
    for i in range(201, 501):
        store.execute([Store.answer_row(1 + i % 4, request_key(i // 4 + 1), 1000.0 + i, reply)])
    per_answer = (pages() - before) / 300
    # About 2.3 (the table's last page, the key's index page, now and then a new page); keyed in
    # the table with an index on `at` (schema 4) it was 4.3.
    assert per_answer < 3.0, per_answer
    store.close()
