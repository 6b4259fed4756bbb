"""Team snippets over real sockets against a real server (issue 14, canned messages).

* every console of version 4 gets its rep's team snippets after the snapshot,
  with the teams the rep leads; one of version 3 gets none;
* a lead adds, edits and deletes: every member's console is told at once, a
  rep of another team is not; a member who is not a lead is refused ``not_lead``,
  a snippet of the site file cannot be changed (``unknown_snippet``);
* a restart keeps what the leads made;
* a lead who is not a member of the team is a configuration problem.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from server_helpers import PASSWORDS, RepClient, run, serving, wire, write_site

from repconsole.backend.websocket import WebSocketBackend
from repconsole.core.errors import CommandError
from repconsole.protocol import CloseCode, Command, Error, ErrorReason, NoResult, Reason, Result, SnippetResult, Snippets, Welcome
from repconsole.server.config import ConfigError, load_config

NET = """[teams.net]
name = "Networking"
"""
NET_WITH_SNIPPETS = """[teams.net]
name = "Networking"
leads = ["alice"]

[[teams.net.snippets]]
name = "vpn-reset"
text = "Hi {customer}, please restart the VPN client."
"""


def snippet_site(tmp_path: Path, net: str = NET_WITH_SNIPPETS) -> Path:
    path = write_site(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert NET in text
    path.write_text(text.replace(NET, net, 1), encoding="utf-8")
    return path


def names(s: Snippets | None) -> list[str]:
    assert s is not None
    return [x.name for x in s.snippets]


async def call(client: RepClient, command: str, valid: bool = True, **args: object) -> Result | Error:
    """A snippet command (its ``name`` argument would collide with RepClient.call's)."""
    rid = client.next_id()
    if valid:
        await client.send(Command(rid, command, dict(args)))
    else:
        client.expect(rid, command)
        await client.send_raw(wire(Command(rid, command, dict(args))))
    return await client.reply(rid)


async def ok(client: RepClient, command: str, **args: object) -> object:
    reply = await call(client, command, **args)
    assert isinstance(reply, Result), reply
    return reply.result


async def told(client: RepClient, pred: object) -> Snippets:
    await client.until(lambda: client.snippets is not None and pred(client.snippets))  # type: ignore[operator]
    assert client.snippets is not None
    return client.snippets


def test_members_get_their_team_snippets_after_the_snapshot_and_the_lead_knows_it_leads(tmp_path: Path) -> None:
    site = snippet_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            carol = await RepClient.logged_in(server, "carol")
            a = await told(alice, lambda s: True)
            assert [(x.id, x.team, x.config) for x in a.snippets] == [("cfg-net-1", "net", True)]
            assert a.snippets[0].text == "Hi {customer}, please restart the VPN client."
            assert a.lead_of == ["net"]
            # It came after the snapshot: the console has its state when it reads them.
            kinds = [type(m).__name__ for m in alice.received]
            assert kinds.index("Snippets") > kinds.index("Snapshot")
            b = await told(bob, lambda s: True)
            assert names(b) == ["vpn-reset"] and b.lead_of == []
            c = await told(carol, lambda s: True)
            assert c.snippets == [] and c.lead_of == []

    run(main())


def test_a_lead_adds_edits_and_deletes_and_every_member_is_told_at_once(tmp_path: Path) -> None:
    site = snippet_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = (await RepClient.logged_in(server, "alice")).listen()
            bob = (await RepClient.logged_in(server, "bob")).listen()
            erin = (await RepClient.logged_in(server, "erin")).listen()  # net and bill
            carol = (await RepClient.logged_in(server, "carol")).listen()  # bill only
            await told(carol, lambda s: True)
            carol_sent = len(carol.received)

            added = await ok(alice, "snippet_add", team="net", name="wifi", text="Hi {customer}, I'm {rep}.")
            assert isinstance(added, SnippetResult) and added.snippet.team == "net" and not added.snippet.config
            sid = added.snippet.id
            for member in (alice, bob, erin):
                assert names(await told(member, lambda s: len(s.snippets) == 2)) == ["vpn-reset", "wifi"]

            edited = await ok(alice, "snippet_edit", id=sid, name="wifi-2", text="Hello {customer}")
            assert edited.snippet.name == "wifi-2"
            assert names(await told(bob, lambda s: "wifi-2" in [x.name for x in s.snippets])) == ["vpn-reset", "wifi-2"]

            assert isinstance(await ok(alice, "snippet_delete", id=sid), NoResult)
            assert names(await told(erin, lambda s: len(s.snippets) == 1)) == ["vpn-reset"]
            await carol.drain()
            assert not any(isinstance(m, Snippets) for m in carol.received[carol_sent:])  # not her team

    run(main())


def test_a_member_who_is_not_a_lead_is_refused_and_the_files_snippets_stay(tmp_path: Path) -> None:
    site = snippet_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            refused = await call(bob, "snippet_add", team="net", name="x", text="y")
            assert isinstance(refused, Error) and refused.reason == Reason.NOT_LEAD
            assert "lead" in refused.detail
            refused = await call(alice, "snippet_add", team="bill", name="x", text="y")  # not her team's lead
            assert isinstance(refused, Error) and refused.reason == Reason.NOT_LEAD
            refused = await call(alice, "snippet_edit", id="cfg-net-1", name="x", text="y")
            assert isinstance(refused, Error) and refused.reason == Reason.UNKNOWN_SNIPPET
            refused = await call(alice, "snippet_delete", id="sn-nope")
            assert isinstance(refused, Error) and refused.reason == Reason.UNKNOWN_SNIPPET
            mine = await ok(alice, "snippet_add", team="net", name="mine", text="z")
            refused = await call(bob, "snippet_delete", id=mine.snippet.id)
            assert isinstance(refused, Error) and refused.reason == Reason.NOT_LEAD
            refused = await call(alice, "snippet_add", team="net", name=" ", text="y", valid=False)
            assert isinstance(refused, Error) and refused.reason == Reason.INVALID

    run(main())


def test_a_restart_keeps_what_a_lead_made(tmp_path: Path) -> None:
    site = snippet_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            reply = await call(alice, "snippet_add", team="net", name="kept", text="Still here, {customer}?")
            assert isinstance(reply, Result)
        async with serving(site, tmp_path / "data") as server:
            bob = await RepClient.logged_in(server, "bob")
            got = await told(bob, lambda s: True)
            assert names(got) == ["vpn-reset", "kept"]
            assert got.snippets[1].text == "Still here, {customer}?"

    run(main())


def test_a_version_3_console_gets_no_snippets(tmp_path: Path) -> None:
    site = snippet_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            old = await RepClient.open(server)
            welcome = await old.login("bob", protocol=3)
            assert isinstance(welcome, Welcome) and welcome.protocol == 3
            new = await RepClient.logged_in(server, "alice")
            await told(new, lambda s: True)
            await ok(new, "snippet_add", team="net", name="n", text="t")
            await told(new, lambda s: len(s.snippets) == 2)
            await old.drain()
            assert old.snippets is None

    run(main())


def test_a_lead_must_be_a_member_of_the_team(tmp_path: Path) -> None:
    site = snippet_site(tmp_path, NET_WITH_SNIPPETS.replace('leads = ["alice"]', 'leads = ["alice", "carol"]'))
    with pytest.raises(ConfigError, match="'carol' is not a member of this team"):
        load_config(site)


def test_the_consoles_websocket_backend_hears_and_changes_team_snippets(tmp_path: Path) -> None:
    """The console's own client (WebSocketBackend, wssnippets.py) against the real server."""
    site = snippet_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            heard: list[Snippets] = []
            lead = WebSocketBackend(f"ws://127.0.0.1:{server.port}", "alice", PASSWORDS["alice"], connect_timeout=5)
            member = WebSocketBackend(f"ws://127.0.0.1:{server.port}", "bob", PASSWORDS["bob"], connect_timeout=5)
            member.add_snippet_listener(heard.append)
            try:
                await lead.start()
                await member.start()
                async with asyncio.timeout(5):
                    while lead.snippets is None or not heard:
                        await asyncio.sleep(0.01)
                assert lead.snippets.lead_of == ["net"] and heard[-1].lead_of == []
                made = await lead.snippet_add("net", "greet", "Hello {customer}")
                assert made.team == "net" and made.id.startswith("sn-")
                async with asyncio.timeout(5):
                    while len(heard[-1].snippets) != 2:
                        await asyncio.sleep(0.01)
                with pytest.raises(CommandError) as refused:
                    await member.snippet_delete(made.id)
                assert refused.value.reason is Reason.NOT_LEAD
                await lead.snippet_delete(made.id)
                async with asyncio.timeout(5):
                    while len(heard[-1].snippets) != 1:
                        await asyncio.sleep(0.01)
            finally:
                await lead.stop()
                await member.stop()

    run(main())


def test_a_retried_add_with_the_same_request_id_is_answered_again_not_run_twice(tmp_path: Path) -> None:
    site = snippet_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            first = Command("retry-1", "snippet_add", {"team": "net", "name": "once", "text": "t"})
            await alice.send(first)
            a = await alice.reply("retry-1")
            alice.replies.pop("retry-1")
            await alice.send(first)  # as the console resends after a reconnect
            b = await alice.reply("retry-1")
            assert isinstance(a, Result) and a == b
            await alice.drain()
            assert names(alice.snippets) == ["vpn-reset", "once"]

    run(main())


def test_a_request_id_reused_for_another_snippet_command_is_refused_as_for_any_command(tmp_path: Path) -> None:
    site = snippet_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            await alice.send(Command("keep-1", "snippet_add", {"team": "net", "name": "kept", "text": "t"}))
            assert isinstance(await alice.reply("keep-1"), Result)
            alice.replies.pop("keep-1")
            await alice.send(Command("keep-1", "snippet_delete", {"id": "sn-none"}))
            refused = await alice.reply("keep-1")
            assert isinstance(refused, Error) and refused.reason == ErrorReason.ID_REUSED
            await alice.drain()
            assert names(alice.snippets) == ["vpn-reset", "kept"]

    run(main())


def test_a_reload_changes_the_files_snippets_and_leads(tmp_path: Path) -> None:
    site = snippet_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            bob = await RepClient.logged_in(server, "bob")
            assert names(bob.snippets) == ["vpn-reset"] and bob.snippets.lead_of == []
            changed = NET_WITH_SNIPPETS.replace('leads = ["alice"]', 'leads = ["alice", "bob"]').replace('"vpn-reset"', '"vpn-reset-2"')
            text = site.read_text(encoding="utf-8").replace(NET_WITH_SNIPPETS, changed)
            site.write_text(text, encoding="utf-8")
            server.reload(load_config(site))
            # A team's table changed: as for any directory change, its consoles re-sync (and hear the new set).
            assert await bob.closed_with(5) == CloseCode.GOING_AWAY
            again = await RepClient.logged_in(server, "bob")
            assert names(again.snippets) == ["vpn-reset-2"] and again.snippets.lead_of == ["net"]
            made = await ok(again, "snippet_add", team="net", name="bobs", text="x")
            assert made.snippet.team == "net"

    run(main())
