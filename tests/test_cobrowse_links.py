"""Browser-sharing links made by an administrator: the engine's rules, the config, the store, the CLI, the Origin check."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_SCALE
from engine_helpers import build_site, intake
from server_helpers import CustomerClient, RecorderClient, RepClient, ViewClient, run, server_program, serving, write_site
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from repconsole.core.errors import CommandError
from repconsole.core.model import Origin, QueueRef
from repconsole.protocol import Attached, CobrowseName, Error, Reason, Started, Via
from repconsole.server.app import Server
from repconsole.server.config import ConfigError, load_config
from repconsole.server.links import parse_lifetime, snippet, support_url
from repconsole.server.store import SCHEMA_VERSION, LinkRow, Store, StoreError
from repconsole.server.timers import VirtualClock

SHOP = "https://shop.example"
SHOP_LINK = """
[[links]]
id = "link-shop"
name = "Shop help"
target = "team:net"
issue = "vpn"
origins = ["https://shop.example/"]

[[links]]
id = "link-old"
name = "Last year's campaign"
target = "team:net"
expires_at = 2020-01-01T00:00:00Z
"""


# ------------------------------------------------------------------ engine


def test_a_revoked_or_expired_link_starts_nothing() -> None:
    site = build_site()
    e = site.engine
    e.add_link("gone", "Gone", QueueRef.team("net"), revoked=True)
    e.add_link("soon", "Soon over", QueueRef.team("net"), expires_at=site.clock.now + 60)
    with pytest.raises(CommandError) as info:
        e.start_browser("gone", intake())
    assert info.value.reason is Reason.LINK_REVOKED and info.value.detail == "That help link was withdrawn."
    assert e.start_browser("soon", intake()).origin is Origin.BROWSER_TEAM
    site.clock.advance(60)
    with pytest.raises(CommandError) as info:
        e.start_browser("soon", intake())
    assert info.value.reason is Reason.LINK_EXPIRED and info.value.detail == "That help link has expired."


def test_a_links_issue_labels_its_sessions_else_the_customers_pick_does() -> None:
    e = build_site().engine
    e.add_link("vpn-help", "VPN help", QueueRef.team("net"), issue="vpn")
    s = e.start_browser("vpn-help", intake(), issue="invoice")  # the link's issue wins
    assert (s.issue_code, s.issue, s.category, s.source) == ("vpn", "VPN won't connect", "Network", "VPN help")
    s = e.start_browser("link-bill", intake(), issue="invoice")
    assert (s.issue_code, s.queue) == ("invoice", QueueRef.team("bill"))  # a label: the link still routes
    assert e.start_browser("link-bill", intake()).issue_code is None
    with pytest.raises(CommandError) as info:
        e.start_browser("link-bill", intake(), issue="nope")
    assert info.value.reason is Reason.UNKNOWN_ISSUE
    with pytest.raises(CommandError) as info:
        e.add_link("bad", "Bad", QueueRef.team("net"), issue="nope")
    assert info.value.reason is Reason.UNKNOWN_ISSUE and "bad" not in e.links


# ----------------------------------------------------------------- config


def test_config_links_take_an_issue_an_expiry_and_origins(tmp_path: Path) -> None:
    spec = load_config(write_site(tmp_path, extra=SHOP_LINK, server=f'public_url = "{SHOP}/help/"'))
    links = {k.id: k for k in spec.links}
    assert (links["link-shop"].issue, links["link-shop"].origins) == ("vpn", (SHOP,))
    assert links["link-old"].expires_at == 1577836800.0
    assert spec.server.public_url == f"{SHOP}/help"
    assert spec.server.cobrowse_buffer == 8 * 1024 * 1024 and spec.server.cobrowse_rate == 256 * 1024


def test_config_link_mistakes_are_reported_with_their_line(tmp_path: Path) -> None:
    bad = """
[[links]]
id = "link-bad"
name = "Bad"
target = "team:net"
issue = "nope"
origins = ["null", "ftp://x"]
"""
    path = write_site(tmp_path, extra=bad, server='public_url = "support.example.com"\ncobrowse_rate = 10')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert re.search(r"site.toml:\d+: links\[2\]\.issue: unknown issue 'nope'", text)
    assert "links[2].origins[0]: 'null' is never allowed" in text and "links[2].origins[1]: 'ftp://x' is not an origin" in text
    assert "server.public_url: 'support.example.com' is not a URL" in text
    assert "server.cobrowse_rate: must be a whole number between 1024 and" in text


# ------------------------------------------------------------------ store


def test_the_store_keeps_links_and_revokes_them_once(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    row = LinkRow("lk-1", "Shop", "team:net", "vpn", (SHOP,), 100.0, 700.0)
    store.add_link(row)
    assert store.link("lk-1") == row and store.link("nope") is None
    assert store.revoke_link("lk-1", 200.0) and store.revoke_link("lk-1", 300.0)
    link = store.link("lk-1")
    assert link is not None and link.revoked_at == 200.0
    assert not store.revoke_link("nope", 1.0)
    assert store.links() == [link]
    store.close()


def test_a_version_1_database_is_migrated_and_a_newer_one_refused(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "repconsole-server.db")
    db.execute("DROP TABLE links")
    db.execute("ALTER TABLE answers DROP COLUMN command")  # version 3's
    db.execute("INSERT INTO answers VALUES (1, '7', 1.0, x'7b7d')")  # an answer of before: it answers any command
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = Store.open(tmp_path)  # brings it up to date
    store.add_link(LinkRow("lk-2", "Shop", "team:net", None, (), 1.0))
    assert store.load_answers() == [(1, "7", 1.0, b"{}", b"")]
    store.close()
    db = sqlite3.connect(tmp_path / "repconsole-server.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer repconsole-server"):
        Store.open(tmp_path)


def test_lifetimes_and_snippets() -> None:
    assert [parse_lifetime(t) for t in ("7d", "12h", "30m", "90s", "45", "1w", "never")] == [604800, 43200, 1800, 90, 45, 604800, None]
    for bad in ("", "-1d", "5x", "d", "0.0d"):
        with pytest.raises(ValueError):
            parse_lifetime(bad)
    assert snippet(SHOP, "lk-a") == f'<script src="{SHOP}/cobrowse.js" data-link="lk-a" async></script>'
    assert support_url(SHOP, "lk-a") == f"{SHOP}/support?link=lk-a"


# --------------------------------------------------------- Origin and HTTP


async def http_get(server: Server, path: str, origin: str | None = None) -> tuple[int, Any, Any]:
    def get() -> tuple[int, Any, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers={"Origin": origin} if origin else {})
        try:
            with urllib.request.urlopen(request, timeout=5 * TIMEOUT_SCALE) as r:
                return r.status, r.headers, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, json.loads(exc.read())

    return await asyncio.to_thread(get)


def test_a_links_origins_may_use_that_link_and_nothing_else(tmp_path: Path) -> None:
    async def main() -> None:
        site = write_site(tmp_path, extra=SHOP_LINK)
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            customer = await CustomerClient.open(server, origin=SHOP, query="link=link-shop")
            started = await customer.start(Via.LINK, "link-shop")
            assert isinstance(started, Started)
            assert server.runtime is not None
            assert server.runtime.engine.session(started.session).issue == "VPN won't connect"
            recorder = await RecorderClient.open(server, origin=SHOP, query="link=link-shop")
            assert started.token is not None and isinstance(await recorder.attach(started.token), Attached)

            other = await CustomerClient.open(server, origin=SHOP, query="link=link-shop")
            refused = await other.start(Via.ISSUE, "vpn")  # let in for its link: only that link
            assert isinstance(refused, Error) and refused.reason == Reason.UNKNOWN_LINK
            refused = await other.start(Via.LINK, "link-alice")
            assert isinstance(refused, Error) and refused.reason == Reason.UNKNOWN_LINK

            base = f"ws://127.0.0.1:{server.port}"
            for path in ["/customer", "/customer?link=link-alice", "/cobrowse", "/cobrowse?link=link-bill", "/customer?link=nope", "/rep?link=link-shop"]:
                with pytest.raises(InvalidStatus) as info:
                    await connect(base + path, additional_headers={"Origin": SHOP})
                assert info.value.response.status_code == 403, path
            with pytest.raises(InvalidStatus):
                await connect(base + "/customer?link=link-shop", additional_headers={"Origin": "https://evil.example"})
            # The support site's own pages may use any link, as before.
            own = await CustomerClient.open(server, origin=f"http://127.0.0.1:{server.port}")
            assert isinstance(await own.start(Via.LINK, "link-alice"), Started)

            late = await CustomerClient.open(server)
            reply = await late.start(Via.LINK, "link-old")
            assert isinstance(reply, Error) and reply.reason == Reason.LINK_EXPIRED

    run(main())


def test_the_snippet_asks_what_its_link_is_across_origins(tmp_path: Path) -> None:
    async def main() -> None:
        site = write_site(tmp_path, extra=SHOP_LINK)
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            status, headers, body = await http_get(server, "/api/link/link-shop", origin=SHOP)
            assert status == 200 and headers["Access-Control-Allow-Origin"] == SHOP and headers["Vary"] == "Origin"
            assert body == {
                "id": "link-shop", "name": "Shop help", "available": True,
                "issue": {"code": "vpn", "name": "VPN won't connect", "category": "Network"},
                "ask_name": True, "ask_issue": False, "issues": [],
            }  # fmt: skip
            status, headers, body = await http_get(server, "/api/link/link-bill", origin="https://evil.example")
            assert status == 200 and "Access-Control-Allow-Origin" not in headers
            assert body["ask_issue"] is True and {i["code"] for i in body["issues"]} == {"vpn", "invoice", "printer"}
            status, _, body = await http_get(server, "/api/link/link-old")
            assert (status, body["available"], body["reason"]) == (200, False, Reason.LINK_EXPIRED)
            status, _, body = await http_get(server, "/api/link/nope")
            assert (status, body["reason"]) == (404, Reason.UNKNOWN_LINK)
            _, _, site_info = await http_get(server, "/api/site")
            assert [k["id"] for k in site_info["links"]] == ["link-alice", "link-bill", "link-shop"]  # not the expired one

    run(main())


def test_a_ticket_uses_the_public_url(tmp_path: Path) -> None:
    async def main() -> None:
        site = write_site(tmp_path, server=f'public_url = "{SHOP}/support-desk"')
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice")
            customer = await CustomerClient.open(server)
            started = await customer.start(Via.LINK, "link-alice")
            assert isinstance(started, Started)
            await alice.ok("accept", session=started.session)
            ticket = await alice.ok(CobrowseName.TICKET, session=started.session)
            assert ticket.url.startswith(f"{SHOP}/support-desk/cobrowse/view?ticket=")
            view = await ViewClient.redeem(server, ticket.url)  # the ticket itself is what counts
            await view.until(lambda: bool(view.page.statuses))

    run(main())


# -------------------------------------------------------------------- CLI


async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *server_program(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30 * TIMEOUT_SCALE)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_links_made_listed_and_revoked_with_the_cli_count_at_once_on_a_running_server(tmp_path: Path) -> None:
    async def main() -> None:
        site = write_site(tmp_path, server=f'public_url = "{SHOP}"')
        data = tmp_path / "data"
        where = ("--config", str(site), "--data", str(data))
        code, out, err = await cli("link", "create", "--team", "net", "--issue", "vpn", "--name", "Shop help", "--lifetime", "1h",
                                   "--origin", "https://shop.example/", "--origin", "http://localhost:3000", *where)  # fmt: skip
        assert code == 0, err
        script, url = out.splitlines()
        link = re.fullmatch(rf'<script src="{SHOP}/cobrowse.js" data-link="(lk-[a-z0-9]+)" async></script>', script)
        assert link is not None, script
        link_id = link[1]
        assert url == f"{SHOP}/support?link={link_id}" and "team:net" in err
        code, out, _ = await cli("link", "list", *where)
        rows = {line.split()[0]: line for line in out.splitlines()[1:]}
        assert code == 0 and set(rows) == {link_id, "link-alice", "link-bill"}
        assert rows[link_id].split()[1:4] == ["active", "team:net", "vpn"] and "http://localhost:3000" in rows[link_id]
        assert rows["link-alice"].split()[1] == "config"

        code, _, err = await cli("link", "create", "--team", "nope", "--issue", "nope", "--origin", "null", *where)
        assert code == 2 and "no team 'nope'" in err and "no issue 'nope'" in err and "'null' is never allowed" in err
        code, out, _ = await cli("link", "create", "--rep", "alice", "--lifetime", "10m", *where)
        assert code == 0
        short_id = re.findall(r'data-link="([^"]+)"', out)[0]

        clock = VirtualClock(time.time())
        async with serving(site, data, clock=clock) as server:
            first = await CustomerClient.open(server, origin="http://localhost:3000", query=f"link={link_id}")
            started = await first.start(Via.LINK, link_id)
            assert isinstance(started, Started)
            assert server.runtime is not None
            assert server.runtime.engine.session(started.session).issue_code == "vpn"
            code, out, _ = await cli("link", "revoke", link_id, *where)  # while it runs
            assert code == 0 and "revoked" in out
            second = await CustomerClient.open(server)
            reply = await second.start(Via.LINK, link_id)
            assert isinstance(reply, Error) and reply.reason == Reason.LINK_REVOKED

            alice = await RepClient.logged_in(server, "alice")  # a link to a rep needs the rep online
            assert isinstance(await (await CustomerClient.open(server)).start(Via.LINK, short_id), Started)
            clock.advance(601)
            reply = await (await CustomerClient.open(server)).start(Via.LINK, short_id)
            assert isinstance(reply, Error) and reply.reason == Reason.LINK_EXPIRED
            await alice.close()

        code, out, _ = await cli("link", "list", *where)
        assert {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}[link_id] == "revoked"
        code, _, err = await cli("link", "revoke", "lk-nope", *where)
        assert code == 1 and "no link 'lk-nope'" in err
        code, _, err = await cli("link", "revoke", "link-alice", *where)
        assert code == 1 and "configuration file" in err

    run(main(), 120)
