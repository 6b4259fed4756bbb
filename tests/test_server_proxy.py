"""Behind a reverse proxy: whose address counts, and which pages may connect.

Over real sockets: the test's clients connect from 127.0.0.1 (the "proxy",
trusted) or from 127.0.0.2 (anybody else), with X-Forwarded-For or
Forwarded headers, honest or forged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from server_helpers import CustomerClient, RepClient, run, serving, write_site
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from repconsole.protocol import ErrorReason, Started
from repconsole.server.config import ConfigError, load_config
from repconsole.server.proxy import TrustedProxies

PROXY = "127.0.0.1"
ELSEWHERE = {"local_addr": ("127.0.0.2", 0)}  # not a proxy: its headers mean nothing


def xff(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


@pytest.mark.parametrize(
    ("peer", "values", "client"),
    [
        ("10.0.0.5", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.5", ["198.51.100.1, 203.0.113.9"], "203.0.113.9"),  # the client's own claim is left of the truth
        ("10.0.0.5", ["198.51.100.1", "203.0.113.9, 10.0.0.6"], "203.0.113.9"),  # two headers; a second proxy
        ("10.0.0.5", ["10.0.0.7, 10.0.0.6"], "10.0.0.7"),  # every hop a proxy: the farthest
        ("10.0.0.5", ["unknown, 203.0.113.9"], "203.0.113.9"),
        ("10.0.0.5", ["203.0.113.9, unknown"], "10.0.0.5"),  # the proxy did not know: itself
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("10.0.0.5", ["203.0.113.9:4711"], "203.0.113.9"),
        ("192.0.2.1", ["203.0.113.9"], "192.0.2.1"),  # not a trusted peer: the header is ignored
        ("::ffff:10.0.0.5", ["203.0.113.9"], "203.0.113.9"),  # an IPv4 proxy on a dual-stack socket
    ],
)
def test_x_forwarded_for_is_read_from_the_right_and_only_from_trusted_peers(peer: str, values: list[str], client: str) -> None:
    assert TrustedProxies(["10.0.0.0/24"]).client(peer, values) == client


@pytest.mark.parametrize(
    ("values", "client"),
    [
        (['for=203.0.113.9;proto=https;by=10.0.0.5'], "203.0.113.9"),
        (['for="[2001:db8:cafe::17]:4711"'], "2001:db8:cafe::17"),
        (["for=198.51.100.1, for=203.0.113.9"], "203.0.113.9"),
        (['for=203.0.113.9;host="a,b", for=10.0.0.6'], "203.0.113.9"),  # a comma inside quotes
        (["For=203.0.113.9"], "203.0.113.9"),
        (["for=_hidden"], "10.0.0.5"),
        (["proto=https"], "10.0.0.5"),
    ],
)
def test_forwarded_is_read_the_same_way(values: list[str], client: str) -> None:
    assert TrustedProxies(["10.0.0.0/24"], "forwarded").client("10.0.0.5", values) == client


def test_no_trusted_proxies_means_the_peer_always() -> None:
    assert TrustedProxies().client("10.0.0.5", ["203.0.113.9"]) == "10.0.0.5"


def test_trusted_proxies_are_checked_with_file_line_and_key(tmp_path: Path) -> None:
    site = write_site(tmp_path, server='trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "proxy.example"]\nforwarded_header = "via"')
    with pytest.raises(ConfigError) as info:
        load_config(site)
    text = str(info.value)
    assert "server.trusted_proxies[2]: 'proxy.example' is not an IP address or network" in text
    assert "server.forwarded_header" in text
    lines = site.read_text().splitlines()
    assert f"site.toml:{1 + next(i for i, line in enumerate(lines) if 'trusted_proxies' in line)}: server.trusted_proxies[2]" in text
    spec = load_config(write_site(tmp_path, server='trusted_proxies = ["10.1.2.3/8", "::1"]'))
    assert spec.server.trusted_proxies == ("10.0.0.0/8", "::1/128")


def test_a_trusted_proxys_header_names_the_client_and_forged_ones_are_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    site = write_site(tmp_path, server=f'trusted_proxies = ["{PROXY}"]')
    caplog.set_level(logging.INFO, logger="repconsole.server")

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            # A guesser behind the proxy locks bob out at its own address only.
            for _ in range(5):
                c = await RepClient.open(server, headers=xff("203.0.113.9"))
                assert (await c.login("bob", "guess")).reason == ErrorReason.BAD_CREDENTIALS
            locked = await RepClient.open(server, headers=xff("203.0.113.9"))
            assert (await locked.login("bob")).reason == ErrorReason.RATE_LIMITED
            assert (await RepClient.logged_in(server, "bob", headers=xff("198.51.100.7"))).welcome is not None
            assert any("failed login for 'bob' from 203.0.113.9" in r.getMessage() for r in caplog.records)
            assert any("bob logged in from 198.51.100.7" in r.getMessage() for r in caplog.records)
            # Anybody else who sends the header is who they are: the forgery counts against
            # themselves, and neither frees nor locks the address they name.
            for _ in range(5):
                c = await RepClient.open(server, headers=xff("198.51.100.7"), **ELSEWHERE)
                assert (await c.login("bob", "guess")).reason == ErrorReason.BAD_CREDENTIALS
            forged = await RepClient.open(server, headers=xff("203.0.113.10"), **ELSEWHERE)
            assert (await forged.login("bob")).reason == ErrorReason.RATE_LIMITED  # locked as 127.0.0.2
            assert any("failed login for 'bob' from 127.0.0.2" in r.getMessage() for r in caplog.records)
            assert (await RepClient.logged_in(server, "bob", headers=xff("198.51.100.7"))).welcome is not None

    run(main())


def test_customer_start_limits_are_per_client_behind_the_proxy(tmp_path: Path) -> None:
    site = write_site(tmp_path, server=f'trusted_proxies = ["{PROXY}"]\nforwarded_header = "forwarded"')
    text = site.read_text().replace("customer_starts_per_minute = 0", "customer_starts_per_minute = 2")
    site.write_text(text)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:

            async def start(headers: dict[str, str], **options: object) -> object:
                c = await CustomerClient.open(server, headers=headers, **options)
                return await c.start()

            ann, ben = {"Forwarded": "for=203.0.113.9"}, {"Forwarded": 'for="[2001:db8::7]"'}
            assert [isinstance(await start(ann), Started) for _ in range(3)] == [True, True, False]
            assert isinstance(await start(ben), Started)  # another customer behind the same proxy
            # X-Forwarded-For is not the header this site's proxy sets: not believed, all three are the proxy.
            starts = [isinstance(await start({"X-Forwarded-For": f"192.0.2.{50 + i}"}), Started) for i in range(3)]
            assert starts == [True, True, False]
            # From elsewhere the header is ignored: the peer's own limit.
            assert [isinstance(await start(ben, **ELSEWHERE), Started) for _ in range(3)] == [True, True, False]

    run(main())


async def rebound(port: int) -> object:
    """A page of evil.example, whose name the attacker made resolve to this server."""
    return await connect(
        "ws://evil.example:8765/customer", host="127.0.0.1", port=port, proxy=None,
        additional_headers={"Origin": "http://evil.example:8765"},
    )  # fmt: skip


def test_origins_are_the_configured_public_ones_not_whatever_host_says(tmp_path: Path) -> None:
    public = "https://support.example.com"
    site = write_site(tmp_path, server=f'public_url = "{public}/help"\nallowed_origins = ["https://help.example.com"]')

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            url = f"ws://127.0.0.1:{server.port}/customer"
            # DNS rebinding: evil.example resolves to this server; the browser's Origin and Host agree.
            with pytest.raises(InvalidStatus) as info:
                await rebound(server.port)
            assert info.value.response.status_code == 403
            # With public_url set, even the address's own origin is not the server's pages.
            with pytest.raises(InvalidStatus):
                await connect(url, additional_headers={"Origin": f"http://127.0.0.1:{server.port}"})
            for origin in (public, "https://help.example.com"):  # public_url's, allowed_origins'
                c = await CustomerClient.open(server, origin=origin)
                assert isinstance(await c.start(), Started), origin
        # Without public_url: the Host's origin counts only when it cannot be rebound.
        async with serving(write_site(tmp_path), tmp_path / "data2") as server:
            with pytest.raises(InvalidStatus):
                await rebound(server.port)
            for name in ("127.0.0.1", "localhost"):
                ws = await connect(
                    f"ws://{name}:{server.port}/customer", host="127.0.0.1", port=server.port, proxy=None,
                    additional_headers={"Origin": f"http://{name}:{server.port}"},
                )  # fmt: skip
                await ws.close()
            # Two Host headers (no browser sends them): refused, not a server error.
            with pytest.raises(InvalidStatus) as info:
                await connect(f"ws://127.0.0.1:{server.port}/customer", proxy=None,
                              additional_headers={"Origin": f"http://127.0.0.1:{server.port}", "Host": f"127.0.0.1:{server.port}"})  # fmt: skip
            assert info.value.response.status_code == 403

    run(main())
