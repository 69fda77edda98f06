"""The password never crosses the network in clear by accident (F12): `https://` unless the host
is this machine, plain `http://` to another machine only when asked for and then with a warning,
and a redirect never followed (it would take the password or token along)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from textual.widgets import Input

from tfa_tui.api.client import TfaClient, normalise_server_url, sends_in_clear, server_problem
from tfa_tui.api.errors import ProtocolError
from tfa_tui.app import TfaApp
from tfa_tui.cli import build_parser, main
from tfa_tui.screens.sign_in import SignInScreen
from tfa_tui.session_store import SessionStore

from ..conftest import PASSWORD, RunningServer
from .conftest import running_app, settle, shown

pytestmark = pytest.mark.finding("F12")

REMOTE = "http://tfa.example.org"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("tfa.example.org", "https://tfa.example.org"),
        ("tfa.example.org:8421/auth/", "https://tfa.example.org:8421/auth"),
        ("10.0.0.5:8421", "https://10.0.0.5:8421"),
        ("127.0.0.1:8421", "http://127.0.0.1:8421"),
        ("127.1.2.3:9000", "http://127.1.2.3:9000"),
        ("localhost:8421", "http://localhost:8421"),
        ("[::1]:8421", "http://[::1]:8421"),
        ("http://tfa.example.org/", "http://tfa.example.org"),  # said explicitly: kept, see below
    ],
)
def test_an_address_without_a_scheme_is_https_unless_it_is_this_machine(
    given: str, expected: str
) -> None:
    assert normalise_server_url(given) == expected


@pytest.mark.parametrize(
    "server", [REMOTE, "http://10.0.0.5:8421", "HTTP://tfa.example.org", "http://127.0.0.1.nip.io"]
)
def test_plain_http_to_another_machine_is_refused_in_one_line(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--server", server]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"tfa: error: --server {server!r}: plain http://")
    assert "--insecure-http" in err


@pytest.mark.parametrize(
    "server", ["http://127.0.0.1:8421", "http://localhost:8421", "http://[::1]:8421"]
)
def test_plain_http_on_this_machine_needs_no_flag(server: str) -> None:
    assert not sends_in_clear(server)
    assert server_problem(server, insecure_http=False) is None


def test_the_flag_or_its_variable_allows_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TFA_INSECURE_HTTP", raising=False)
    assert build_parser().parse_args([]).insecure_http is False
    assert build_parser().parse_args(["--insecure-http"]).insecure_http is True
    monkeypatch.setenv("TFA_INSECURE_HTTP", "1")
    assert build_parser().parse_args([]).insecure_http is True
    assert server_problem(REMOTE, insecure_http=True) is None
    assert server_problem(REMOTE, insecure_http=False) is not None


async def test_the_sign_in_screen_warns_when_the_password_goes_in_clear() -> None:
    """Shown before anything is typed (nothing is sent: the host does not even resolve)."""
    app = TfaApp(TfaClient(REMOTE), store=SessionStore())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SignInScreen)
        warning = shown(app, "#insecure")
        assert "Not encrypted" in warning
        assert "password" in warning
        assert app.screen.query_one("#insecure").region.bottom < app.screen.region.bottom


async def test_no_warning_on_this_machine(server: RunningServer) -> None:
    async with running_app(server) as (app, _):
        assert isinstance(app.screen, SignInScreen)
        assert not app.screen.query("#insecure")


# Redirects


class Listener:
    """A loopback port that writes down every connection and what arrives on it."""

    def __init__(self, answer: bytes = b"") -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            body = await asyncio.wait_for(reader.readexactly(length), 5) if length else b""
            self.received.append(head + body)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            self.received.append(head or b"<connected>")
        if self.answer:
            writer.write(self.answer)
            await writer.drain()
        writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Listener]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self


def redirect(status: int, location: str) -> bytes:
    return (
        f"HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_an_error_and_nothing_reaches_its_target(status: int) -> None:
    async with Listener().running() as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.port}/api/v1/login"
        async with Listener(redirect(status, target)).running() as server:
            async with TfaClient(f"http://127.0.0.1:{server.port}") as client:
                with pytest.raises(ProtocolError) as caught:
                    await client.login("alice", PASSWORD)
                assert caught.value.status == status
                assert "redirect" in caught.value.message
                client.token = "a-session-token"
                with pytest.raises(ProtocolError):
                    await client.me()
            await asyncio.sleep(0.05)  # time for a follow-up connection, were one made
        assert len(server.received) == 2
        assert PASSWORD.encode() in server.received[0]
    assert elsewhere.received == []


async def test_a_redirect_is_explained_on_the_sign_in_screen() -> None:
    async with Listener().running() as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.port}/api/v1/login"
        async with Listener(redirect(307, target)).running() as server:
            app = TfaApp(TfaClient(f"http://127.0.0.1:{server.port}"), store=SessionStore())
            async with app.run_test(size=(80, 24)) as pilot:
                app.screen.query_one("#username", Input).value = "alice"
                app.screen.query_one("#password", Input).value = PASSWORD
                app.screen.query_one("#password", Input).focus()
                await pilot.press("enter")
                await settle(app, pilot)
                assert isinstance(app.screen, SignInScreen)
                assert "redirect" in shown(app, "#error")
    assert elsewhere.received == []
