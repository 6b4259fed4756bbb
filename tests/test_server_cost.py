"""What the server does per command, kept cheap without changing what it answers.

* A command with an integer request id above every id its login session has
  stored an answer under was never answered: it is run without reading the
  store first.  Retries, reused ids and lower ids still hear what they heard,
  also across a restart (the watermark is learned from the store again).
* A step's rewritten rows are updated in place (an upsert keeps the row's
  rowid: a replace deleted and re-inserted it, a write-ahead-log page more).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from server_helpers import RepClient, eventually, run, serving, write_site

from repconsole.core.intake import Intake
from repconsole.protocol import Error, ErrorReason, Logout, Result
from repconsole.server.app import Server
from repconsole.server.store import Store


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
