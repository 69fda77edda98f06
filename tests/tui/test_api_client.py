"""The client's HTTP layer: error mapping with httpx.MockTransport, then every call against the
real server (whose answers are also checked against its OpenAPI document on the way in)."""

from __future__ import annotations

import json
import re
import secrets
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pyotp
import pytest

import tfa_protocol.types as protocol
import tfa_tui
from tfa_tui.api import (
    DEFAULT_SERVER,
    AdminHistoryPage,
    AdminUser,
    ApiError,
    Authenticated,
    ChallengeExpired,
    CodeReused,
    Conflict,
    EnrollmentRequired,
    Forbidden,
    InvalidCode,
    InvalidCredentials,
    InvalidRequest,
    Me,
    NotFound,
    PolicyRequires2fa,
    ProtocolError,
    ServerError,
    SignInResult,
    TfaClient,
    TooManyAttempts,
    TotpRequired,
    TotpSetup,
    Unauthorized,
    Unreachable,
    error_from_response,
    user_agent,
)
from tfa_tui.screens.setup import grouped_secret

from ..conftest import PASSWORD, START, RunningServer, totp_code
from ..contract import Contract

MOCK_URL = "http://tfa.test"
# Made at run time, so a traceback's source lines cannot contain them by accident.
TOKEN = "tok-" + secrets.token_urlsafe(24)
WRONG_PASSWORD = "pw-" + secrets.token_urlsafe(12)
STEP = 30.0

Handler = Callable[[httpx.Request], httpx.Response]


# Helpers

ME_JSON: dict[str, Any] = {
    "username": "alice",
    "is_admin": False,
    "password_change_required": False,
    "totp_enabled": True,
    "totp_enabled_at": "2026-11-28T12:00:00Z",
    "recovery_codes_left": 10,
    "policy": {"force_2fa": False, "grace_period_days": 0},
    "enrollment_deadline": None,
    "last_login": {"at": "2026-11-27T08:30:00Z", "ip": "127.0.0.1", "client": "curl/8"},
    "failed_attempts_since_last_login": 2,
}
SIGN_IN_JSON: dict[str, Any] = {
    "status": "authenticated",
    "token": TOKEN,
    "expires_at": "2026-11-29T00:00:00Z",
    "user": ME_JSON,
}
HISTORY_ITEM_JSON: dict[str, Any] = {
    "id": 2,
    "at": "2026-11-28T12:00:00Z",
    "event": "password",
    "success": True,
    "method": "password",
    "reason": None,
    "ip": "127.0.0.1",
    "client": "x",
    "service": None,
    "service_ip": None,
    "count": 1,
}
SESSION_JSON: dict[str, Any] = {
    "id": 1,
    "created_at": "2026-11-28T12:00:00Z",
    "last_seen_at": "2026-11-28T12:00:00Z",
    "expires_at": "2026-11-29T12:00:00Z",
    "ip": "127.0.0.1",
    "client": "x",
    "kind": "full",
    "current": True,
}
TOTP_SETUP_JSON: dict[str, Any] = {
    "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "otpauth_uri": "otpauth://totp/tfa:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=tfa",
    "issuer": "tfa",
    "account": "alice",
    "algorithm": "SHA1",
    "digits": 6,
    "period": 30,
}
# A value the server sent, which no message may repeat.
MARK = "mark-" + secrets.token_hex(6)


def mock_client(handler: Handler, **kwargs: Any) -> TfaClient:
    return TfaClient(MOCK_URL, transport=httpx.MockTransport(handler), **kwargs)


def answer(
    status: int,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if content is not None:
            return httpx.Response(status, content=content, headers=headers)
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handle


def error_body(code: str, message: str) -> dict[str, str]:
    return {"error": code, "message": message}


def raising(exc: Exception) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


def closed_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def everything_said(exc: BaseException) -> str:
    """All a person or a log could see of an exception: str, repr and the printed traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


class ContractTransport(httpx.AsyncBaseTransport):
    """A real HTTP transport that checks each answer against the server's OpenAPI document."""

    def __init__(self, contract: Contract) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._contract = contract

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        await response.aread()
        response.request = request
        self._contract.check(response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def real_client(server: RunningServer, token: str | None = None) -> TfaClient:
    return TfaClient(server.base_url, token=token, transport=ContractTransport(server.contract))


@pytest.fixture
async def api(server: RunningServer) -> AsyncIterator[TfaClient]:
    async with real_client(server) as client:
        yield client


async def connect_totp(api: TfaClient, server: RunningServer) -> tuple[str, list[str]]:
    """Set up and confirm 2FA through the client; moves the clock one step on."""
    setup = await api.totp_setup()
    codes = await api.totp_confirm(totp_code(setup.secret, server.clock))
    server.clock.advance(STEP)
    return setup.secret, codes


async def signed_in_with_totp(server: RunningServer, name: str, secret: str) -> TfaClient:
    client = real_client(server)
    first = await client.login(name, PASSWORD)
    assert isinstance(first, TotpRequired)
    await client.login_totp(totp_code(secret, server.clock))
    server.clock.advance(STEP)
    return client


# Error mapping (httpx.MockTransport)


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("status", "code", "cls"),
        [
            (400, "invalid_request", InvalidRequest),
            (401, "unauthorized", Unauthorized),
            (401, "invalid_credentials", InvalidCredentials),
            (401, "invalid_code", InvalidCode),
            (401, "code_reused", CodeReused),
            (401, "challenge_expired", ChallengeExpired),
            (403, "forbidden", Forbidden),
            (403, "enrollment_required", EnrollmentRequired),
            (404, "not_found", NotFound),
            (409, "policy_requires_2fa", PolicyRequires2fa),
            (409, "conflict", Conflict),
            (429, "too_many_attempts", TooManyAttempts),
        ],
    )
    async def test_each_server_code_becomes_its_class(
        self, status: int, code: str, cls: type[ApiError]
    ) -> None:
        message = f"Words for a person about {code}."
        async with mock_client(answer(status, error_body(code, message)), token=TOKEN) as client:
            with pytest.raises(ApiError) as caught:
                await client.me()
        assert type(caught.value) is cls
        assert (caught.value.code, caught.value.status) == (code, status)
        assert caught.value.message == message
        assert str(caught.value) == message

    @pytest.mark.parametrize(
        ("status", "code"),
        [(405, "method_not_allowed"), (413, "payload_too_large"), (415, "unsupported_media_type")],
    )
    async def test_other_4xx_codes_are_invalid_request_keeping_their_code(
        self, status: int, code: str
    ) -> None:
        async with mock_client(answer(status, error_body(code, "Nope."))) as client:
            with pytest.raises(InvalidRequest) as caught:
                await client.health()
        assert (caught.value.code, caught.value.status, caught.value.message) == (
            code,
            status,
            "Nope.",
        )

    @pytest.mark.parametrize(
        ("status", "cls"),
        [(400, InvalidRequest), (401, Unauthorized), (403, Forbidden), (404, NotFound)],
    )
    def test_unknown_code_falls_back_to_the_status(self, status: int, cls: type[ApiError]) -> None:
        error = error_from_response(status, error_body("brand_new_code", "New."), {})
        assert type(error) is cls
        assert (error.code, error.message) == ("brand_new_code", "New.")

    def test_the_code_wins_over_the_status(self) -> None:
        error = error_from_response(400, error_body("code_reused", "Used."), {})
        assert type(error) is CodeReused

    def test_missing_message_gets_plain_words(self) -> None:
        error = error_from_response(409, {"error": "conflict"}, {})
        assert isinstance(error, Conflict)
        assert error.message == "The server refused the request (conflict, HTTP 409)."

    def test_control_characters_in_server_text_are_removed(self) -> None:
        error = error_from_response(400, error_body("invalid_request", "Bad\x1b[31m\nthing"), {})
        assert error.message == "Bad [31m thing"


class TestThrottled:
    async def test_retry_after_header_gives_the_seconds(self) -> None:
        body = error_body("too_many_attempts", "Too many failed attempts.")
        handler = answer(429, body, headers={"Retry-After": "17"})
        async with mock_client(handler) as client:
            with pytest.raises(TooManyAttempts) as caught:
                await client.login("alice", PASSWORD)
        assert caught.value.retry_after == 17
        assert caught.value.message == "Too many failed attempts."

    @pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}, {"Retry-After": "-5"}])
    async def test_absent_or_garbled_retry_after_means_30_seconds(
        self, headers: dict[str, str]
    ) -> None:
        handler = answer(429, error_body("too_many_attempts", "Slow down."), headers=headers)
        async with mock_client(handler) as client:
            with pytest.raises(TooManyAttempts) as caught:
                await client.login("alice", PASSWORD)
        assert caught.value.retry_after == 30

    def test_retry_after_is_read_case_insensitively(self) -> None:
        body = error_body("too_many_attempts", "Wait.")
        error = error_from_response(429, body, {"rEtRy-AfTeR": "9"})
        assert isinstance(error, TooManyAttempts)
        assert error.retry_after == 9

    async def test_429_without_json_still_means_wait(self) -> None:
        handler = answer(429, content=b"rate limited", headers={"Retry-After": "12"})
        async with mock_client(handler) as client:
            with pytest.raises(TooManyAttempts) as caught:
                await client.login("alice", PASSWORD)
        assert caught.value.retry_after == 12
        assert caught.value.message == "Too many attempts. Try again in 12 seconds."


class TestServerErrors:
    async def test_500_keeps_the_servers_words_and_request_id(self) -> None:
        body = error_body("internal_error", "Internal server error (request id ab12).")
        handler = answer(500, body, headers={"X-Request-Id": "ab12"})
        async with mock_client(handler) as client:
            with pytest.raises(ServerError) as caught:
                await client.me()
        assert caught.value.status == 500
        assert caught.value.code == "internal_error"
        assert caught.value.message == "Internal server error (request id ab12)."

    async def test_5xx_without_json_says_so_in_words_with_the_request_id(self) -> None:
        handler = answer(
            502, content=b"<html><body>Bad Gateway</body></html>", headers={"X-Request-Id": "r-9"}
        )
        async with mock_client(handler) as client:
            with pytest.raises(ServerError) as caught:
                await client.me()
        assert caught.value.status == 502
        assert caught.value.code == "server_error"
        assert caught.value.message == (
            "The server ran into a problem (HTTP 502). Try again later. (request id r-9)"
        )

    async def test_503_is_a_server_error(self) -> None:
        handler = answer(503, error_body("service_unavailable", "The server is too busy."))
        async with mock_client(handler) as client:
            with pytest.raises(ServerError) as caught:
                await client.health()
        assert (caught.value.status, caught.value.message) == (503, "The server is too busy.")


class TestBadResponses:
    @pytest.mark.parametrize("status", [200, 404])
    async def test_html_body_is_a_protocol_error(self, status: int) -> None:
        handler = answer(
            status, content=b"<!doctype html><title>Welcome to nginx</title>", headers={}
        )
        async with mock_client(handler, token=TOKEN) as client:
            with pytest.raises(ProtocolError) as caught:
                await client.me()
        assert caught.value.code == "bad_response"
        assert caught.value.status == status
        assert "tfa server" in caught.value.message

    async def test_json_that_is_not_an_object_is_a_protocol_error(self) -> None:
        async with mock_client(answer(200, [1, 2, 3])) as client:
            with pytest.raises(ProtocolError):
                await client.me()

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"username": None}, "`username` should be text"),
            ({"is_admin": "yes"}, "`is_admin` should be true or false"),
            ({"recovery_codes_left": True}, "`recovery_codes_left` should be a whole number"),
            ({"totp_enabled_at": "2026-11-28T12:00:00"}, "`totp_enabled_at` has no time zone"),
            ({"totp_enabled_at": "yesterday"}, "`totp_enabled_at` is not an RFC 3339 time"),
            ({"policy": {"force_2fa": False}}, "`policy.grace_period_days` is missing"),
            ({"last_login": {"at": 5, "ip": None, "client": None}}, "`last_login.at` should be"),
        ],
    )
    async def test_2xx_with_a_wrong_shape_names_the_field(
        self, change: dict[str, Any], field: str
    ) -> None:
        async with mock_client(answer(200, {**ME_JSON, **change})) as client:
            with pytest.raises(ProtocolError) as caught:
                await client.me()
        assert field in caught.value.message

    async def test_missing_field_in_a_nested_list_item_is_named_with_its_index(self) -> None:
        page = {"items": [HISTORY_ITEM_JSON, {"id": 1}], "next_before": None}
        async with mock_client(answer(200, page)) as client:
            with pytest.raises(ProtocolError) as caught:
                await client.history()
        assert "`items[1].at` is missing" in caught.value.message

    async def test_extra_fields_from_a_newer_server_are_ignored(self) -> None:
        async with mock_client(answer(200, {**ME_JSON, "new_feature": 1})) as client:
            me = await client.me()
        assert me.username == "alice"
        assert me.totp_enabled_at == datetime(2026, 11, 28, 12, tzinfo=UTC)
        assert me.last_login is not None
        assert me.last_login.at.tzinfo is UTC

    async def test_redirect_is_not_followed_but_reported(self) -> None:
        handler = answer(301, headers={"Location": "https://elsewhere.test/"})
        async with mock_client(handler) as client:
            with pytest.raises(ProtocolError) as caught:
                await client.me()
        assert caught.value.status == 301
        assert "redirect" in caught.value.message

    async def test_unhealthy_answer_is_a_protocol_error(self) -> None:
        async with mock_client(answer(200, {"status": "degraded"})) as client:
            with pytest.raises(ProtocolError):
                await client.health()

    @pytest.mark.parametrize(
        ("call", "body", "said"),
        [
            (
                lambda client: client.history(),
                {"items": [{**HISTORY_ITEM_JSON, "at": MARK}], "next_before": None},
                "`items[0].at` is not an RFC 3339 time",
            ),
            (
                lambda client: client.login("alice", PASSWORD),
                {**SIGN_IN_JSON, "status": MARK},
                "`status` has a value this client does not know",
            ),
            (
                lambda client: client.sessions(),
                {"items": [SESSION_JSON, {**SESSION_JSON, "kind": MARK}]},
                "`items[1].kind` has a value this client does not know",
            ),
            (
                lambda client: client.totp_setup(),
                {**TOTP_SETUP_JSON, "algorithm": MARK},
                "`algorithm` has a value this client does not know",
            ),
            (
                lambda client: client.admin_history(),
                {"items": [{**HISTORY_ITEM_JSON, "username": MARK}], "next_before": None},
                "`items[0].known_user` is missing",
            ),
        ],
        ids=["history-time", "sign-in-status", "session-kind", "algorithm", "admin-history"],
    )
    async def test_a_nested_malformed_answer_names_the_path_never_the_value(
        self, call: Callable[[TfaClient], Awaitable[Any]], body: dict[str, Any], said: str
    ) -> None:
        """Issue 12: every answer is decoded into the shared protocol types, so a value this
        client does not know (a sign-in status, a session kind, an algorithm) or a nested field
        of the wrong shape is a ProtocolError that names the path and never repeats the value
        the server sent."""
        async with mock_client(answer(200, body), token=TOKEN) as client:
            with pytest.raises(ProtocolError) as caught:
                await call(client)
        assert caught.value.code == "bad_response"
        assert said in caught.value.message
        assert MARK not in everything_said(caught.value)
        assert caught.value.__context__ is None  # nothing chained to it holds the value either


class TestUnreachable:
    async def test_connection_refused_in_plain_words(self) -> None:
        port = closed_loopback_port()
        async with TfaClient(f"http://127.0.0.1:{port}") as client:
            with pytest.raises(Unreachable) as caught:
                await client.login("alice", PASSWORD)
        assert caught.value.message == (
            f"Cannot reach the server at http://127.0.0.1:{port}: connection refused."
        )
        assert (caught.value.code, caught.value.status) == ("unreachable", 0)
        assert "Errno" not in everything_said(caught.value)
        assert PASSWORD not in everything_said(caught.value)

    @pytest.mark.parametrize(
        ("exc", "reason"),
        [
            (httpx.ReadTimeout("timed out"), "the server did not answer within 2.5 seconds"),
            (httpx.WriteTimeout("timed out"), "the server did not answer within 2.5 seconds"),
            (httpx.ConnectTimeout("timed out"), "no connection within 2.5 seconds"),
            (
                httpx.RemoteProtocolError("Server disconnected without sending a response."),
                "the server closed the connection without a proper answer",
            ),
            (httpx.ReadError("[Errno 104] Connection reset"), "the connection was interrupted"),
        ],
    )
    async def test_transport_failures_in_plain_words(self, exc: Exception, reason: str) -> None:
        async with mock_client(raising(exc), token=TOKEN, timeout=2.5) as client:
            with pytest.raises(Unreachable) as caught:
                await client.me()
        assert caught.value.message == f"Cannot reach the server at {MOCK_URL}: {reason}."
        said = everything_said(caught.value)
        assert "httpx" not in said
        assert TOKEN not in said

    async def test_unknown_host_name(self) -> None:
        def handle(request: httpx.Request) -> httpx.Response:
            lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            raise httpx.ConnectError("[Errno -2] Name or service not known") from lookup

        async with mock_client(handle) as client:
            with pytest.raises(Unreachable) as caught:
                await client.health()
        assert caught.value.message == (
            f"Cannot reach the server at {MOCK_URL}: the server name could not be found."
        )

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("ftp://example.org", "the address must start with http:// or https://"),
            ("http://", "the address has no host name"),
        ],
    )
    async def test_an_address_that_cannot_be_a_server(self, url: str, reason: str) -> None:
        async with TfaClient(url) as client:
            with pytest.raises(Unreachable) as caught:
                await client.health()
        assert caught.value.message.endswith(f": {reason}.")


class TestRequests:
    async def test_headers_every_request_carries(self) -> None:
        seen: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=ME_JSON)

        async with mock_client(handle, token=TOKEN) as client:
            await client.me()
        assert seen[0].headers["user-agent"] == user_agent()
        assert seen[0].headers["accept"] == "application/json"
        assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"

    async def test_login_sends_no_stale_token_and_stores_the_new_one(self) -> None:
        seen: list[httpx.Request] = []
        fresh = {**SIGN_IN_JSON, "token": "fresh-token"}

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=fresh)

        async with mock_client(handle, token="stale-token") as client:
            result = await client.login("alice", PASSWORD)
            assert client.token == "fresh-token"
        assert "authorization" not in seen[0].headers
        assert json.loads(seen[0].content) == {"username": "alice", "password": PASSWORD}
        assert result.user.failed_attempts_since_last_login == 2

    def test_user_agent_names_version_host_and_system(self) -> None:
        assert re.fullmatch(
            rf"tfa-tui/{re.escape(tfa_tui.__version__)} \([ -~]+; [ -~]+\)", user_agent()
        )
        assert socket.gethostname()[:20] in user_agent() or not socket.gethostname().isascii()

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("http://127.0.0.1:8421/", "http://127.0.0.1:8421"),
            ("  127.0.0.1:9000 ", "http://127.0.0.1:9000"),
            ("tfa.example.org", "https://tfa.example.org"),  # only loopback defaults to http
            ("https://tfa.example.org/auth/", "https://tfa.example.org/auth"),
        ],
    )
    def test_base_url_is_normalised(self, given: str, expected: str) -> None:
        assert TfaClient(given).base_url == expected

    def test_default_server(self) -> None:
        assert DEFAULT_SERVER == "http://127.0.0.1:8421"

    async def test_path_prefix_and_quoted_username_and_query(self) -> None:
        seen: list[httpx.Request] = []
        user = {
            "username": "a b/c",
            "is_admin": False,
            "totp_enabled": False,
            "totp_enabled_at": None,
            "created_at": "2026-11-28T12:00:00Z",
            "last_login": None,
            "failed_attempts": 0,
            "locked_until": None,
            "disabled_at": None,
            "password_change_required": False,
            "recovery_codes_left": 0,
        }

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            if request.url.path.endswith("history"):
                return httpx.Response(200, json={"items": [], "next_before": None})
            return httpx.Response(200, json=user)

        client = TfaClient(
            "https://proxy.test/tfa/", token=TOKEN, transport=httpx.MockTransport(handle)
        )
        async with client:
            reset = await client.reset_2fa("a b/c")
            page = await client.admin_history(username="bob", success=False, limit=5, before=99)
        assert reset == msgspec.convert(user, AdminUser)
        assert page == AdminHistoryPage(items=[], next_before=None)
        assert seen[0].url.raw_path == b"/tfa/api/v1/admin/users/a%20b%2Fc/reset-2fa"
        assert seen[1].url.path == "/tfa/api/v1/admin/history"
        assert dict(seen[1].url.params) == {
            "limit": "5",
            "before": "99",
            "success": "false",
            "username": "bob",
        }

    async def test_logout_clears_the_token_even_when_the_session_is_gone(self) -> None:
        handler = answer(401, error_body("unauthorized", "Sign in first."))
        async with mock_client(handler, token=TOKEN) as client:
            await client.logout()
            assert client.token is None

    async def test_logout_clears_the_token_and_reports_an_unreachable_server(self) -> None:
        async with mock_client(raising(httpx.ConnectError("refused")), token=TOKEN) as client:
            with pytest.raises(Unreachable):
                await client.logout()
            assert client.token is None


class TestSecretsStayOut:
    async def test_wrong_password_error_never_holds_the_password(self) -> None:
        handler = answer(401, error_body("invalid_credentials", "Wrong username or password."))
        async with mock_client(handler) as client:
            with pytest.raises(InvalidCredentials) as caught:
                await client.login("alice", WRONG_PASSWORD)
        assert WRONG_PASSWORD not in everything_said(caught.value)

    def test_sign_in_result_repr_hides_the_token(self) -> None:
        result = msgspec.convert(SIGN_IN_JSON, SignInResult)
        assert result.token == TOKEN
        assert TOKEN not in repr(result)

    def test_totp_setup_repr_hides_secret_and_uri(self) -> None:
        secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        setup = msgspec.convert(
            {
                "secret": secret,
                "otpauth_uri": f"otpauth://totp/tfa:alice?secret={secret}&issuer=tfa",
                "issuer": "tfa",
                "account": "alice",
                "algorithm": "SHA1",
                "digits": 6,
                "period": 30,
            },
            TotpSetup,
        )
        assert secret not in repr(setup)
        assert grouped_secret(setup.secret) == "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"

    def test_client_repr_hides_the_token(self) -> None:
        assert TOKEN not in repr(TfaClient(MOCK_URL, token=TOKEN))


# Against the real server


class TestSignIn:
    async def test_password_only_sign_in_and_me(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("bob")
        await api.health()
        result = await api.login("bob", PASSWORD)
        assert isinstance(result, Authenticated)
        assert api.token == result.token
        assert result.expires_at > datetime.fromtimestamp(START, UTC)
        assert result.recovery_codes_left is msgspec.UNSET
        me = await api.me()
        assert (me.username, me.is_admin, me.totp_enabled) == ("bob", False, False)
        assert me.totp_enabled_at is None
        assert me.last_login is None
        assert me == result.user
        assert server.contract.checked >= 3  # the answers were checked against the OpenAPI document

    async def test_wrong_password(self, server: RunningServer, api: TfaClient) -> None:
        await server.add_user("bob")
        with pytest.raises(InvalidCredentials) as caught:
            await api.login("bob", "not the password")
        assert caught.value.status == 401
        assert caught.value.message
        assert api.token is None

    async def test_user_agent_reaches_the_history(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("bob")
        await api.login("bob", PASSWORD)
        page = await api.history()
        assert page.items
        assert {entry.client for entry in page.items} == {user_agent()}

    async def test_throttled_after_repeated_failures(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("bob")
        for _ in range(5):
            with pytest.raises(InvalidCredentials):
                await api.login("bob", "wrong")
        with pytest.raises(TooManyAttempts) as caught:
            await api.login("bob", PASSWORD)
        assert caught.value.retry_after == 30

    async def test_logout_ends_the_session(self, server: RunningServer, api: TfaClient) -> None:
        await server.add_user("bob")
        await api.login("bob", PASSWORD)
        old = api.token
        await api.logout()
        assert api.token is None
        async with real_client(server, token=old) as stale:
            with pytest.raises(Unauthorized):
                await stale.me()


class TestTwoFactor:
    async def test_setup_confirm_and_sign_in_with_a_code(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("alice")
        await api.login("alice", PASSWORD)
        setup = await api.totp_setup()
        assert (setup.issuer, setup.account, setup.algorithm) == ("tfa", "alice", "SHA1")
        assert (setup.digits, setup.period) == (6, 30)
        assert pyotp.parse_uri(setup.otpauth_uri).secret == setup.secret
        assert grouped_secret(setup.secret).replace(" ", "") == setup.secret
        right = totp_code(setup.secret, server.clock)
        with pytest.raises(InvalidCode):
            await api.totp_confirm("000000" if right != "000000" else "111111")
        codes = await api.totp_confirm(totp_code(setup.secret, server.clock))
        assert len(codes) == 10
        assert len(set(codes)) == 10
        server.clock.advance(STEP)
        assert (await api.me()).totp_enabled

        await api.logout()
        first = await api.login("alice", PASSWORD)
        assert isinstance(first, TotpRequired)
        challenge = api.token
        second = await api.login_totp(totp_code(setup.secret, server.clock))
        assert isinstance(second, Authenticated)
        assert api.token == second.token != challenge
        assert second.user.totp_enabled

    async def test_reused_and_wrong_codes(self, server: RunningServer, api: TfaClient) -> None:
        await server.add_user("alice")
        await api.login("alice", PASSWORD)
        secret, _ = await connect_totp(api, server)
        used = totp_code(secret, server.clock)
        async with real_client(server) as other:
            await other.login("alice", PASSWORD)
            await other.login_totp(used)
        await api.login("alice", PASSWORD)
        with pytest.raises(CodeReused):
            await api.login_totp(used)
        with pytest.raises(InvalidCode) as caught:
            await api.login_totp("12345")
        assert caught.value.status == 401

    async def test_challenge_expires(self, server: RunningServer, api: TfaClient) -> None:
        await server.add_user("alice")
        await api.login("alice", PASSWORD)
        secret, _ = await connect_totp(api, server)
        await api.login("alice", PASSWORD)
        server.clock.advance(6 * 60)
        with pytest.raises(ChallengeExpired):
            await api.login_totp(totp_code(secret, server.clock))

    async def test_sign_in_with_a_recovery_code_once(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("alice")
        await api.login("alice", PASSWORD)
        _, codes = await connect_totp(api, server)
        await api.login("alice", PASSWORD)
        result = await api.login_recovery(codes[0].lower().replace("-", ""))
        assert isinstance(result, Authenticated)
        assert result.recovery_codes_left == 9
        assert (await api.me()).recovery_codes_left == 9
        await api.login("alice", PASSWORD)
        with pytest.raises(CodeReused):
            await api.login_recovery(codes[0])

    async def test_regenerate_recovery_codes_voids_the_old_set(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("alice")
        await api.login("alice", PASSWORD)
        secret, old = await connect_totp(api, server)
        new = await api.regenerate_recovery_codes(PASSWORD, totp_code(secret, server.clock))
        server.clock.advance(STEP)
        assert len(new) == 10
        assert not set(new) & set(old)
        await api.login("alice", PASSWORD)
        with pytest.raises(InvalidCode):
            await api.login_recovery(old[1])

    async def test_disconnect_without_forced_policy_keeps_the_session(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("alice")
        await api.login("alice", PASSWORD)
        secret, _ = await connect_totp(api, server)
        result = await api.totp_disable(PASSWORD, totp_code(secret, server.clock))
        assert result.logged_out is False
        assert api.token is not None
        assert (await api.me()).totp_enabled is False


class TestForcedPolicy:
    async def test_enrollment_then_disconnect_under_force_signs_out(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("root", admin=True)
        await server.add_user("bob")
        async with real_client(server) as admin:
            await admin.login("root", PASSWORD)
            policy = await admin.set_policy(True, 0)
        assert policy.force_2fa is True
        assert policy.forced_since is not None

        enrolling = await api.login("bob", PASSWORD)
        assert isinstance(enrolling, protocol.EnrollmentRequired)
        assert (await api.me()).policy.force_2fa is True
        with pytest.raises(EnrollmentRequired):
            await api.history()
        secret, _ = await connect_totp(api, server)
        assert (await api.history()).items  # the same token is now a full session

        with pytest.raises(PolicyRequires2fa) as warning:
            await api.totp_disable(PASSWORD, totp_code(secret, server.clock))
        assert warning.value.status == 409
        assert warning.value.message
        assert api.token is not None
        token = api.token

        server.clock.advance(STEP)
        result = await api.totp_disable(
            PASSWORD, totp_code(secret, server.clock), acknowledge_forced_policy=True
        )
        assert result.logged_out is True
        assert api.token is None
        async with real_client(server, token=token) as stale:
            with pytest.raises(Unauthorized):
                await stale.me()
        again = await api.login("bob", PASSWORD)
        assert isinstance(again, protocol.EnrollmentRequired)


class TestHistoryAndSessions:
    async def test_history_filter_and_paging(self, server: RunningServer, api: TfaClient) -> None:
        await server.add_user("bob")
        for _ in range(3):
            with pytest.raises(InvalidCredentials):
                await api.login("bob", "wrong")
        await api.login("bob", PASSWORD)
        await api.login("bob", PASSWORD)

        everything = await api.history()
        assert len(everything.items) == 5
        assert everything.next_before is None
        ids = [entry.id for entry in everything.items]
        assert ids == sorted(ids, reverse=True)

        failed = await api.history(success=False)
        assert [entry.reason for entry in failed.items] == ["bad_password"] * 3
        assert all(not entry.success for entry in failed.items)
        succeeded = await api.history(success=True)
        assert len(succeeded.items) == 2
        assert all(entry.success for entry in succeeded.items)

        first = await api.history(limit=2)
        assert [entry.id for entry in first.items] == ids[:2]
        assert first.next_before == ids[1]
        second = await api.history(limit=2, before=first.next_before)
        assert [entry.id for entry in second.items] == ids[2:4]
        last = await api.history(limit=2, before=second.next_before)
        assert [entry.id for entry in last.items] == ids[4:]
        assert last.next_before is None

    async def test_limit_out_of_range_is_invalid_request(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("bob")
        await api.login("bob", PASSWORD)
        with pytest.raises(InvalidRequest) as caught:
            await api.history(limit=201)
        assert caught.value.status == 400

    async def test_sessions_and_revoke(self, server: RunningServer, api: TfaClient) -> None:
        await server.add_user("bob")
        await api.login("bob", PASSWORD)
        async with real_client(server) as other:
            await other.login("bob", PASSWORD)
            sessions = await api.sessions()
            assert len(sessions) == 2
            assert [session.current for session in sessions].count(True) == 1
            assert {session.client for session in sessions} == {user_agent()}
            theirs = next(session for session in sessions if not session.current)
            await api.revoke_session(theirs.id)
            with pytest.raises(Unauthorized):
                await other.me()
        remaining = await api.sessions()
        assert [session.current for session in remaining] == [True]
        with pytest.raises(NotFound):
            await api.revoke_session(theirs.id)


class TestAdmin:
    async def test_policy_users_reset_unlock_history_and_audit(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("root", admin=True)
        await api.login("root", PASSWORD)
        policy = await api.policy()
        assert (policy.force_2fa, policy.grace_period_days) == (False, 0)
        changed = await api.set_policy(False, 7)
        assert changed.grace_period_days == 7
        assert changed.updated_at is not None

        created = await api.create_user("carol", PASSWORD)
        assert (created.username, created.is_admin, created.totp_enabled) == (
            "carol",
            False,
            False,
        )
        with pytest.raises(Conflict):
            await api.create_user("carol", PASSWORD)

        async with real_client(server) as carol:
            await carol.login("carol", PASSWORD)
            await connect_totp(carol, server)
            with pytest.raises(Forbidden):
                await carol.users()
            for _ in range(5):
                with pytest.raises(InvalidCredentials):
                    await carol.login("carol", "wrong")
            with pytest.raises(TooManyAttempts):
                await carol.login("carol", PASSWORD)

        listed = {user.username: user for user in await api.users()}
        assert set(listed) == {"root", "carol"}
        assert listed["carol"].totp_enabled is True
        assert listed["carol"].locked_until is not None

        unlocked = await api.unlock("carol")
        assert unlocked.locked_until is None
        assert unlocked.failed_attempts == 0
        reset = await api.reset_2fa("carol")
        assert reset.totp_enabled is False
        with pytest.raises(NotFound):
            await api.reset_2fa("nobody")

        failures = await api.admin_history(username="carol", success=False)
        assert failures.items
        assert {entry.username for entry in failures.items} == {"carol"}
        assert not any(entry.success for entry in failures.items)

        audit = await api.audit(limit=2)
        assert [entry.action for entry in audit.items] == ["totp_reset", "user_unlocked"]
        assert audit.items[0].target == "carol"
        assert audit.items[0].actor
        assert audit.next_before == audit.items[1].id
        older = await api.audit(before=audit.next_before)
        assert {entry.action for entry in older.items} == {"user_created", "policy_changed"}

    async def test_admin_calls_need_an_administrator(
        self, server: RunningServer, api: TfaClient
    ) -> None:
        await server.add_user("bob")
        await api.login("bob", PASSWORD)
        with pytest.raises(Forbidden) as caught:
            await api.policy()
        assert caught.value.status == 403

    async def test_me_after_sign_in_is_typed(self, server: RunningServer, api: TfaClient) -> None:
        await server.add_user("root", admin=True)
        await api.login("root", PASSWORD)
        me = await api.me()
        assert isinstance(me, Me)
        assert me.is_admin is True


async def test_idle_connections_go_before_the_server_closes_them() -> None:
    """A request sent on a kept-alive connection at the instant the server closes it (idle
    for 5 s) gets no answer at all: the client lets idle connections go well before that."""
    from tfa_server.http.server import HttpLimits
    from tfa_tui.api.client import KEEPALIVE_EXPIRY

    async with TfaClient("http://127.0.0.1:8421") as client:
        http = await client._client()
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == KEEPALIVE_EXPIRY
    assert HttpLimits().keepalive_timeout / 2 >= KEEPALIVE_EXPIRY
