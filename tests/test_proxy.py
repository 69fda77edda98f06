"""Behind a reverse proxy: whose address the history, the throttles and the access log see.

The header rules are pure functions, tested directly; the rest goes through the real server on
127.0.0.1, which plays both the proxy (the TCP peer) and, through the headers, its clients.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest

from tfa_server.app import Application, initialise, open_core
from tfa_server.cli import build_parser
from tfa_server.config import ThrottleRules
from tfa_server.http.forwarded import (
    TrustedProxies,
    forwarded_for,
    node_address,
    parse_networks,
    x_forwarded_for,
)
from tfa_server.openapi import document as openapi_document

from .conftest import PASSWORD, FakeClock, RunningServer, bearer, login, make_settings
from .contract import Contract

LOGIN = "/api/v1/login"
WRONG_PASSWORD = "not the password"
# Three failures per address, so the address throttle is quick to reach; accounts lock later.
RULES = ThrottleRules(ip_max_failures=3)


# The header rules


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("203.0.113.5", "203.0.113.5"),
        (" 203.0.113.5 ", "203.0.113.5"),
        ("203.0.113.5:4711", "203.0.113.5"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("203.0.113", None),
        ("203.0.113.5:", None),
        ("203.0.113.5:port", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("[203.0.113.5]:80:80", None),
        ("example.org", None),
        ("1.2.3.4 5.6.7.8", None),
    ],
)
def test_a_node_is_an_address_or_nothing(text: str, address: str | None) -> None:
    assert node_address(text) == address


def test_x_forwarded_for_lists_every_hop_in_order() -> None:
    assert x_forwarded_for("198.51.100.1, 203.0.113.5,10.0.0.2") == [
        "198.51.100.1",
        "203.0.113.5",
        "10.0.0.2",
    ]
    assert x_forwarded_for("junk, 203.0.113.5") == [None, "203.0.113.5"]
    assert x_forwarded_for("") == [None]


def test_forwarded_reads_the_for_parameter_of_each_element() -> None:
    """RFC 7239 4: elements separated by commas, pairs by semicolons, quoted values unquoted."""
    value = (
        'for=198.51.100.1;proto=https, For="[2001:db8::7]:4711";by=10.0.0.1,'
        ' proto=http;for="203.0.113.5", for=unknown, by=10.0.0.1'
    )
    assert forwarded_for(value) == ["198.51.100.1", "2001:db8::7", "203.0.113.5", None, None]
    # A comma or semicolon inside a quoted value does not split it.
    assert forwarded_for('for="203.0.113.5";x="a,b;c", for=203.0.113.6') == [
        "203.0.113.5",
        "203.0.113.6",
    ]
    assert forwarded_for('for="203.0.113.5') == [None]  # the quote never ends
    assert forwarded_for("for=203.0.113.5;for=203.0.113.6") == [None]  # twice in one element
    assert forwarded_for("for") == [None]


TRUST = TrustedProxies(parse_networks("127.0.0.1, 10.0.0.0/8, 2001:db8:aa::/48"))


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        # The right-most entry is what the trusted proxy saw; anything left of it is the
        # client's own say and is not believed.
        ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("127.0.0.1", "198.51.100.66, 203.0.113.5", "203.0.113.5"),
        ("127.0.0.1", "garbage, 203.0.113.5", "203.0.113.5"),
        # Trusted hops are skipped: a chain of our own proxies.
        ("127.0.0.1", "198.51.100.66, 203.0.113.5, 10.1.2.3", "203.0.113.5"),
        ("127.0.0.1", "203.0.113.5, 2001:db8:aa::9", "203.0.113.5"),
        ("::ffff:127.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("10.9.9.9", "2001:db8:1::5", "2001:db8:1::5"),
        # Every hop trusted: the farthest one.
        ("127.0.0.1", "10.0.0.5, 10.0.0.6", "10.0.0.5"),
        # Malformed where the answer should be: the peer.
        ("127.0.0.1", "203.0.113.5, garbage", "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1"),
        # Not a trusted peer: the header changes nothing.
        ("127.0.0.2", "203.0.113.5", "127.0.0.2"),
        ("192.0.2.1", "203.0.113.5", "192.0.2.1"),
        ("::1", "203.0.113.5", "::1"),
    ],
)
def test_the_client_is_the_right_most_untrusted_hop(
    peer: str, header: str | None, client: str
) -> None:
    headers = {} if header is None else {"x-forwarded-for": header}
    assert TRUST.client(peer, headers) == client


def test_only_the_configured_header_is_read() -> None:
    """A proxy rewrites one header and passes the other through as the client wrote it."""
    both = {"x-forwarded-for": "203.0.113.5", "forwarded": "for=198.51.100.66"}
    assert TRUST.client("127.0.0.1", both) == "203.0.113.5"
    assert TRUST.client("127.0.0.1", {"forwarded": "for=198.51.100.66"}) == "127.0.0.1"
    rfc = TrustedProxies(TRUST.networks, header="forwarded")
    assert rfc.client("127.0.0.1", both) == "198.51.100.66"
    assert rfc.client("127.0.0.1", {"x-forwarded-for": "203.0.113.5"}) == "127.0.0.1"


def test_no_proxy_is_trusted_by_default() -> None:
    assert TrustedProxies().client("127.0.0.1", {"x-forwarded-for": "203.0.113.5"}) == "127.0.0.1"


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert parse_networks("127.0.0.1, 10.0.0.0/8,,::1 ,2001:db8::/32") == (
        ip_network("127.0.0.1/32"),
        ip_network("10.0.0.0/8"),
        ip_network("::1/128"),
        ip_network("2001:db8::/32"),
    )
    assert parse_networks("") == ()
    for bad in ("proxy.example.org", "10.0.0.1/33", "10.0.0.1/8"):
        with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
            parse_networks(f"127.0.0.1,{bad}")
    with pytest.raises(ValueError, match="header"):
        TrustedProxies((), header="x-real-ip")


def test_serve_takes_the_proxy_and_connection_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(
        ["serve", "--trusted-proxy", "10.0.0.1,2001:db8::/32", "--proxy-header", "Forwarded"]
    )
    assert args.trusted_proxy == (ip_network("10.0.0.1/32"), ip_network("2001:db8::/32"))
    assert args.proxy_header == "forwarded"
    assert args.max_connections_per_address == 64
    monkeypatch.setenv("TFA_TRUSTED_PROXY", "192.0.2.0/24")
    monkeypatch.setenv("TFA_MAX_CONNECTIONS_PER_ADDRESS", "8")
    args = build_parser().parse_args(["serve"])
    assert args.trusted_proxy == (ip_network("192.0.2.0/24"),)
    assert args.proxy_header == "x-forwarded-for"
    assert args.max_connections_per_address == 8


@pytest.mark.parametrize(
    "argv",
    [
        ["--trusted-proxy", "proxy.example.org"],
        ["--proxy-header", "x-real-ip"],
        ["--max-connections-per-address", "0"],
    ],
)
def test_serve_refuses_bad_proxy_settings(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", *argv])
    assert exit_info.value.code == 2
    assert argv[1] in capsys.readouterr().err


# Through the real server


async def start(folder: Path, proxies: TrustedProxies | None) -> RunningServer:
    settings = make_settings(folder, throttle=RULES)
    initialise(settings)
    clock = FakeClock()
    app = Application(open_core(settings, clock), proxies=proxies)
    await app.start("127.0.0.1", 0)
    contract = Contract(openapi_document(app.api.routes))
    return RunningServer(app, clock, settings, f"http://127.0.0.1:{app.port}", contract)


@pytest.fixture
async def behind_proxy(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start(tmp_path, TrustedProxies(parse_networks("127.0.0.1")))
    yield running
    await running.app.stop()


async def attempt(
    client: httpx.AsyncClient, name: str, headers: dict[str, str], password: str = WRONG_PASSWORD
) -> httpx.Response:
    return await client.post(LOGIN, json={"username": name, "password": password}, headers=headers)


async def addresses_in_history(server: RunningServer, client: httpx.AsyncClient) -> list[Any]:
    """The address of every history row, oldest first (root signs in from the proxy itself)."""
    root = (await login(client, "root"))["token"]
    history = await client.get("/api/v1/admin/history", headers=bearer(root))
    assert history.status_code == 200, history.text
    return [item["ip"] for item in reversed(history.json()["items"])][:-1]


@pytest.mark.finding("F10")
async def test_behind_a_trusted_proxy_the_forwarded_client_is_throttled_and_recorded(
    behind_proxy: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tfa_server.access")
    server = behind_proxy
    for name in ("alice", "bob"):
        await server.add_user(name)
    await server.add_user("root", admin=True)
    # What a proxy adds to a client's own (spoofed) header: the address it saw, on the right.
    mallory = {"X-Forwarded-For": "198.51.100.66, 203.0.113.5"}
    carol = {"X-Forwarded-For": "203.0.113.6"}
    async with server.client() as client:
        for n in range(RULES.ip_max_failures):
            assert (await attempt(client, f"nobody{n}", mallory)).status_code == 401
        locked = await attempt(client, "alice", mallory, PASSWORD)
        assert locked.status_code == 429, locked.text  # the address throttle: this client only
        ok = await attempt(client, "bob", carol, PASSWORD)
        assert ok.status_code == 200, ok.text  # another client behind the same proxy
        assert (await login(client, "alice"))["status"] == "authenticated"  # and the proxy
        addresses = await addresses_in_history(server, client)
    # The failures and the refusal are the client's; the proxy's own sign-in is the proxy's.
    assert addresses[: RULES.ip_max_failures] == ["203.0.113.5"] * RULES.ip_max_failures
    assert [ip for ip in addresses if ip != "203.0.113.5"] == ["203.0.113.6", "127.0.0.1"]
    access = [r.getMessage() for r in caplog.records if r.name == "tfa_server.access"]
    assert access[0].startswith("203.0.113.5 POST /api/v1/login 401")
    assert any(line.startswith("203.0.113.6 POST /api/v1/login 200") for line in access)
    assert not any("198.51.100.66" in line for line in access)


SPOOFED = (
    {"X-Forwarded-For": "203.0.113.5"},
    {"Forwarded": "for=203.0.113.6"},
    {"X-Forwarded-For": "203.0.113.7", "Forwarded": 'for="[2001:db8::8]"'},
)


@pytest.mark.finding("F10")
@pytest.mark.parametrize("trusted", [None, "10.0.0.0/8, ::1"], ids=["no-proxy", "other-proxy"])
async def test_forwarding_headers_from_an_untrusted_peer_change_nothing(
    tmp_path: Path, trusted: str | None
) -> None:
    proxies = TrustedProxies(parse_networks(trusted)) if trusted else None
    server = await start(tmp_path, proxies)
    try:
        await server.add_user("root", admin=True)
        async with server.client() as client:
            for headers in SPOOFED:  # a new address each time would escape the throttle
                assert (await attempt(client, "nobody", headers)).status_code == 401
            locked = await attempt(client, "root", {"X-Forwarded-For": "203.0.113.9"}, PASSWORD)
            assert locked.status_code == 429, locked.text
            server.clock.advance(RULES.ip_window + 1)
            addresses = await addresses_in_history(server, client)
    finally:
        await server.app.stop()
    assert set(addresses) == {"127.0.0.1"}
    assert len(addresses) >= len(SPOOFED)
