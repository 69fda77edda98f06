"""The only code of the terminal client that speaks HTTP: typed calls, typed results, typed errors.

Requests are built from, and answers decoded into, the types of `tfa_protocol` that the server
and its OpenAPI document use too. Every failure leaves as an `ApiError` subclass whose message
is plain words; transport exceptions are never passed on, so no traceback or repr reaches the
screen. The token and the passwords never appear in a message.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import platform
import re
import socket
import ssl
from functools import lru_cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote

import httpx
import msgspec
from msgspec import UNSET, UnsetType

import tfa_tui
from tfa_protocol.types import (
    Activity,
    ActivityQuery,
    AdminActivity,
    AdminActivityQuery,
    AdminHistoryPage,
    AdminHistoryQuery,
    AdminUser,
    AuditPage,
    AuditQuery,
    ChangePasswordRequest,
    CodeRequest,
    CreateServiceRequest,
    CreateUserRequest,
    DisableTotpRequest,
    Health,
    HistoryPage,
    HistoryQuery,
    LoginRequest,
    Me,
    NewService,
    PasswordAndCode,
    Policy,
    PolicyRequest,
    RecoveryCodes,
    Request,
    ResetPasswordRequest,
    Service,
    ServiceList,
    Session,
    SessionList,
    SignInResult,
    TotpDisabled,
    TotpSetup,
    TotpSetupRequest,
    UpdateUserRequest,
    UserList,
    UserListQuery,
)
from tfa_tui.api.errors import (
    ProtocolError,
    Unauthorized,
    Unreachable,
    answer_error,
    error_from_response,
)

if TYPE_CHECKING:
    from typing_extensions import TypeForm

DEFAULT_SERVER = "http://127.0.0.1:8421"
API = "/api/v1"
# An idle connection is let go well before a server closes it (tfa-server after 5 s, as most
# servers and proxies): a request sent on a connection the server is closing at that instant
# gets no answer ("closed the connection without a proper answer").
KEEPALIVE_EXPIRY = 2.0

T = TypeVar("T")


def _given(value: T | None) -> T | UnsetType:
    """None (not asked for) becomes UNSET, which the encoded query or body leaves out."""
    return UNSET if value is None else value


def _ascii(text: str, limit: int) -> str:
    """Header values must be ASCII: anything else (a hostname in Unicode, say) becomes '?'."""
    cleaned = "".join(char if " " <= char <= "~" else "?" for char in text)
    return cleaned[:limit]


@lru_cache(maxsize=1)
def user_agent() -> str:
    """`tfa-tui/<version> (<hostname>; <os> <release>)`: what the server's history shows."""
    host = _ascii(socket.gethostname() or "unknown", 64)
    system = _ascii(f"{platform.system()} {platform.release()}".strip() or "unknown", 64)
    return f"tfa-tui/{tfa_tui.__version__} ({host}; {system})"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`: the hosts whose traffic never leaves this machine."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host(url: str) -> str | None:
    try:
        return httpx.URL(url).host or None
    except httpx.InvalidURL:
        return None


def normalise_server_url(url: str) -> str:
    """`host:port` gets `https://`, or `http://` when the host is this machine (loopback); a
    trailing slash goes. A path prefix (behind a proxy) stays."""
    url = url.strip()
    if "://" not in url:
        host = _host(f"http://{url}")
        url = f"{'http' if host is not None and is_loopback(host) else 'https'}://{url}"
    return url.rstrip("/")


def sends_in_clear(url: str) -> bool:
    """Plain http:// to another machine: the password and tokens cross the network readable."""
    return url.lower().startswith("http://") and not is_loopback(_host(url) or "")


# One label of a host name (RFC 1123; `_` too, which some internal names use).
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)", re.IGNORECASE)


def _is_host(raw_host: bytes) -> bool:
    """An IP address or a host name (httpx gives an international name in its xn-- form)."""
    host = raw_host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a server address, in words; None when it can."""
    # httpx would take `https://not a url` and encode the spaces into the host name.
    if any(char.isspace() for char in url):
        return "an address cannot contain spaces"
    if not url.isprintable():
        return "an address cannot contain control characters"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "this is not a valid address"
    if parsed.scheme not in ("http", "https"):
        return "the address must start with http:// or https://"
    if not parsed.host:
        return "the address has no host name"
    if not _is_host(parsed.raw_host):
        return "the host name is not valid"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return "the port must be a number from 1 to 65535"
    if parsed.userinfo:
        return "the address cannot contain a user name or password"
    if parsed.query or parsed.fragment:
        return "the address cannot contain ? or #"
    return None


def server_problem(server: str, *, insecure_http: bool) -> str | None:
    """Why `tfa` will not use this (normalised) server address, in words; None when it will."""
    problem = url_problem(server)
    if problem is None and sends_in_clear(server) and not insecure_http:
        return (
            "plain http:// to another machine sends your password unencrypted; use https://"
            " (or --insecure-http on a network you trust)"
        )
    return problem


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost OS-level error httpx wrapped (httpcore and the socket each add a layer)."""
    seen: set[int] = set()
    found = exc
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            found = current
        current = current.__cause__ or current.__context__
    return found


def _connect_reason(exc: httpx.ConnectError) -> str:
    cause = _root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return "its TLS certificate could not be verified"
    if isinstance(cause, ssl.SSLError):
        return "the secure (TLS) connection could not be set up"
    if isinstance(cause, socket.gaierror):
        return "the server name could not be found"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "the network or host is unreachable"
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
        return "the server name could not be found"
    return "the connection could not be made"


def _transport_reason(exc: httpx.TransportError, timeout: float) -> str:
    seconds = f"{timeout:g} second{'s' if timeout != 1 else ''}"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {seconds}"
    if isinstance(exc, httpx.TimeoutException):
        return f"the server did not answer within {seconds}"
    if isinstance(exc, httpx.ConnectError):
        return _connect_reason(exc)
    if isinstance(exc, httpx.ProxyError):
        return "the proxy refused the connection"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "the address must start with http:// or https://"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection without a proper answer"
    if isinstance(exc, httpx.NetworkError):
        return "the connection was interrupted"
    return "the request could not be sent"


class TfaClient:
    """One server, one (optional) bearer token. Use `async with` or call `aclose()`.

    `token` holds whichever token the last sign-in step returned: a challenge after
    `login` with `totp_required`, an enrollment session, or a full session.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        agent: str | None = None,
        insecure_http: bool = False,
    ) -> None:
        self._base_url = normalise_server_url(base_url)
        self._url_problem = url_problem(self._base_url)
        self._timeout = timeout
        self.token = token
        # The person allowed plain http:// to another machine (tfa --insecure-http): the rule
        # the sign-in screen applies to an address typed there, as the command line does.
        self.insecure_http = insecure_http
        # Made on first use, on a thread: httpx loads the system's CA certificates for it,
        # which took a tenth of `tfa`'s start (B5, bench/).
        self._http: httpx.AsyncClient | None = None
        self._making = asyncio.Lock()
        self._settings: dict[str, Any] = {
            "transport": transport,
            "timeout": timeout,
            "limits": httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
            "follow_redirects": False,
            "headers": {"User-Agent": agent or user_agent(), "Accept": "application/json"},
        }

    async def prepare(self) -> None:
        """Make the HTTP client now (the app asks once its first screen is drawn), so the
        first request does not wait for it."""
        await self._client()

    async def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            async with self._making:
                if self._http is None:
                    self._http = await asyncio.to_thread(self._make_client)
        return self._http

    def _make_client(self) -> httpx.AsyncClient:
        base_url = self._base_url if self._url_problem is None else ""
        return httpx.AsyncClient(base_url=base_url, **self._settings)

    @property
    def base_url(self) -> str:
        return self._base_url

    def use_server(self, base_url: str) -> None:
        """Talk to another server from now on (the address was corrected on the sign-in
        screen). A token belongs to the server that gave it, so it goes."""
        self._base_url = normalise_server_url(base_url)
        self._url_problem = url_problem(self._base_url)
        if self._http is not None:
            self._http.base_url = httpx.URL(self._base_url if self._url_problem is None else "")
        self.token = None

    def __repr__(self) -> str:
        signed_in = self.token is not None
        return f"TfaClient({self._base_url!r}, token={'<set>' if signed_in else None})"

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # The one place requests are made.

    def _unreachable(self, reason: str) -> Unreachable:
        return Unreachable(f"Cannot reach the server at {self._base_url}: {reason}.")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: Request | None = None,
        query: Request | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send one request; its 2xx answer, or an ApiError."""
        if self._url_problem is not None:
            raise self._unreachable(self._url_problem)
        headers = {}
        if authenticated and self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            http = await self._client()
            response = await http.request(
                method,
                path,
                content=msgspec.json.encode(body) if body is not None else None,
                params=msgspec.to_builtins(query) if query is not None else None,
                headers=headers,
            )
        except httpx.TransportError as exc:
            raise self._unreachable(_transport_reason(exc, self._timeout)) from None
        except httpx.HTTPError:
            raise ProtocolError(
                f"The server at {self._base_url} sent an answer this client cannot read."
            ) from None
        status = response.status_code
        if 300 <= status < 400:
            # Never followed (follow_redirects=False): the password or token would go along.
            raise ProtocolError(
                f"The server at {self._base_url} answered with a redirect (HTTP {status}),"
                " which tfa does not follow: it could take your password elsewhere. Use the"
                " final address of the server.",
                status=status,
            )
        if not 200 <= status < 300:
            try:
                data = msgspec.json.decode(response.content) if response.content else None
            except msgspec.DecodeError:
                data = None
            raise error_from_response(status, data, response.headers)
        return response

    def _read(self, response: httpx.Response, answer: TypeForm[T]) -> T:
        """The answer decoded into `answer`; a ProtocolError naming what is wrong, if anything.

        Raised outside the `except`, so msgspec's own error (which may quote a value the server
        sent) is not chained to it."""
        try:
            return msgspec.json.decode(response.content, type=answer)
        except msgspec.ValidationError as exc:
            error = answer_error(str(exc))
        except msgspec.DecodeError:
            error = None
        raise error or ProtocolError(
            f"The server at {self._base_url} did not answer like a tfa server"
            f" (HTTP {response.status_code}, not the expected JSON). Check the address.",
            status=response.status_code,
        )

    async def _fetch(
        self,
        answer: TypeForm[T],
        method: str,
        path: str,
        *,
        body: Request | None = None,
        query: Request | None = None,
        authenticated: bool = True,
    ) -> T:
        """A call whose answer must be a JSON object of the protocol type `answer`."""
        response = await self._send(
            method, path, body=body, query=query, authenticated=authenticated
        )
        if not response.content:
            raise ProtocolError(
                f"The server at {self._base_url} sent an empty answer where data was expected."
            )
        return self._read(response, answer)

    async def _call(self, method: str, path: str, *, body: Request | None = None) -> None:
        """A call answered with no content (204); any other answer must still be a JSON object."""
        response = await self._send(method, path, body=body)
        if response.status_code != 204 and response.content:
            self._read(response, dict[str, Any])

    # Health and sign-in.

    async def health(self) -> None:
        """Raises unless the server answers `{"status": "ok"}`."""
        await self._fetch(Health, "GET", "/healthz", authenticated=False)

    async def _sign_in(self, path: str, body: Request, *, with_token: bool) -> SignInResult:
        result = await self._fetch(SignInResult, "POST", path, body=body, authenticated=with_token)
        self.token = result.token
        return result

    async def login(self, username: str, password: str) -> SignInResult:
        """Password step. The returned token (challenge, enrollment or full) becomes `token`."""
        body = LoginRequest(username=username, password=password)
        return await self._sign_in(f"{API}/login", body, with_token=False)

    async def login_totp(self, code: str) -> SignInResult:
        """Second step with the challenge in `token`; the full session token replaces it."""
        return await self._sign_in(f"{API}/login/totp", CodeRequest(code=code), with_token=True)

    async def login_recovery(self, code: str) -> SignInResult:
        """Second step with a recovery code; `recovery_codes_left` says how many remain."""
        body = CodeRequest(code=code)
        return await self._sign_in(f"{API}/login/recovery", body, with_token=True)

    async def logout(self) -> None:
        """End the session. `token` is cleared whatever happens; a 401 (already ended) is fine."""
        if self.token is None:
            return
        try:
            await self._call("POST", f"{API}/logout")
        except Unauthorized:
            pass
        finally:
            self.token = None

    # The signed-in user.

    async def me(self) -> Me:
        return await self._fetch(Me, "GET", f"{API}/me")

    async def change_password(
        self, current: str, new: str, code: str | None = None
    ) -> SignInResult | None:
        """Every other session ends. None when done; from a temporary password's session, the
        sign-in's next step (its token replaces `token`, as after `login`)."""
        body = ChangePasswordRequest(current_password=current, new_password=new, code=_given(code))
        response = await self._send("POST", f"{API}/me/password", body=body)
        if response.status_code == 204:
            return None
        result = self._read(response, SignInResult)
        self.token = result.token
        return result

    async def totp_setup(self, password: str | None = None) -> TotpSetup:
        """Raises PasswordRequired when the session signed in too long ago to go without."""
        body = TotpSetupRequest(password=password) if password is not None else None
        return await self._fetch(TotpSetup, "POST", f"{API}/me/totp/setup", body=body)

    async def totp_confirm(self, code: str) -> list[str]:
        """Returns the recovery codes; an enrollment session becomes a full one."""
        body = CodeRequest(code=code)
        answer = await self._fetch(RecoveryCodes, "POST", f"{API}/me/totp/confirm", body=body)
        return answer.recovery_codes

    async def totp_disable(
        self, password: str, code: str, *, acknowledge_forced_policy: bool = False
    ) -> TotpDisabled:
        """Raises PolicyRequires2fa (with the warning to show) unless acknowledged under force.

        When the server signs the user out (`logged_out`), `token` is cleared.
        """
        body = DisableTotpRequest(
            password=password, code=code, acknowledge_forced_policy=acknowledge_forced_policy
        )
        result = await self._fetch(TotpDisabled, "DELETE", f"{API}/me/totp", body=body)
        if result.logged_out:
            self.token = None
        return result

    async def regenerate_recovery_codes(self, password: str, code: str) -> list[str]:
        """Needs the password and a current code; the old set stops working."""
        body = PasswordAndCode(password=password, code=code)
        answer = await self._fetch(RecoveryCodes, "POST", f"{API}/me/recovery-codes", body=body)
        return answer.recovery_codes

    async def history(
        self,
        *,
        success: bool | None = None,
        service: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> HistoryPage:
        """Newest first; `success` filters to successful (True) or failed (False) events,
        `service` to what that relying service asked (the verify API)."""
        query = HistoryQuery(
            limit=limit, before=_given(before), success=_given(success), service=_given(service)
        )
        return await self._fetch(HistoryPage, "GET", f"{API}/me/history", query=query)

    async def sessions(self) -> list[Session]:
        return (await self._fetch(SessionList, "GET", f"{API}/me/sessions")).items

    async def revoke_session(self, session_id: int) -> None:
        await self._call("DELETE", f"{API}/me/sessions/{int(session_id)}")

    async def activity(self, days: int = 30, utc_offset: int = 0) -> Activity:
        """Own sign-ins per day for the last `days` days (today last), days starting at
        midnight `utc_offset` minutes east of UTC, and the last refused attempt."""
        query = ActivityQuery(days=days, utc_offset=utc_offset)
        return await self._fetch(Activity, "GET", f"{API}/me/activity", query=query)

    # Administrators.

    async def admin_activity(
        self, days: int = 30, utc_offset: int = 0, username: str | None = None
    ) -> AdminActivity:
        """Everyone's sign-ins per day (or one account's), and the addresses and names with
        the most refused attempts in the last 24 hours and 7 days."""
        query = AdminActivityQuery(days=days, utc_offset=utc_offset, username=_given(username))
        return await self._fetch(AdminActivity, "GET", f"{API}/admin/activity", query=query)

    async def policy(self) -> Policy:
        return await self._fetch(Policy, "GET", f"{API}/admin/policy")

    async def set_policy(self, force_2fa: bool, grace_period_days: int) -> Policy:
        body = PolicyRequest(force_2fa=force_2fa, grace_period_days=grace_period_days)
        return await self._fetch(Policy, "PUT", f"{API}/admin/policy", body=body)

    async def users(self) -> list[AdminUser]:
        """Every account, a page at a time (for screens that still show them all at once)."""
        found: list[AdminUser] = []
        after: str | None = None
        while True:
            page = await self.user_page(limit=200, after=after)
            found += page.items
            if page.next_after is None:
                return found
            after = page.next_after

    async def user_page(
        self,
        q: str | None = None,
        limit: int = 50,
        after: str | None = None,
        admin: bool | None = None,
        two_factor: bool | None = None,
        locked: bool | None = None,
        disabled: bool | None = None,
    ) -> UserList:
        """Accounts in name order, narrowed on the server: `q` a case-insensitive part of the
        name, each flag True (only those) or False (only the others); pass the page's
        `next_after` as `after` for the next one."""
        query = UserListQuery(
            q=_given(q),
            limit=limit,
            after=_given(after),
            admin=_given(admin),
            two_factor=_given(two_factor),
            locked=_given(locked),
            disabled=_given(disabled),
        )
        return await self._fetch(UserList, "GET", f"{API}/admin/users", query=query)

    async def user(self, username: str) -> AdminUser:
        """One account (NotFound when there is none by that name)."""
        return await self._fetch(AdminUser, "GET", self._user_path(username))

    async def create_user(self, username: str, password: str, is_admin: bool = False) -> AdminUser:
        body = CreateUserRequest(username=username, password=password, is_admin=is_admin)
        return await self._fetch(AdminUser, "POST", f"{API}/admin/users", body=body)

    async def reset_2fa(self, username: str) -> AdminUser:
        """Removes the user's 2FA and ends their sessions."""
        return await self._fetch(AdminUser, "POST", self._user_path(username, "/reset-2fa"))

    async def unlock(self, username: str) -> AdminUser:
        """Clears the user's throttling."""
        return await self._fetch(AdminUser, "POST", self._user_path(username, "/unlock"))

    def _user_path(self, username: str, action: str = "") -> str:
        return f"{API}/admin/users/{quote(username, safe='')}{action}"

    async def reset_password(
        self, username: str, password: str, *, temporary: bool = True
    ) -> AdminUser:
        """Sets the user's password and ends their sessions; a temporary one must be changed
        at their next sign-in."""
        body = ResetPasswordRequest(password=password, temporary=temporary)
        return await self._fetch(
            AdminUser, "POST", self._user_path(username, "/password"), body=body
        )

    async def disable_user(self, username: str) -> AdminUser:
        """Ends the user's sessions at once; they cannot sign in until enabled."""
        return await self._fetch(AdminUser, "POST", self._user_path(username, "/disable"))

    async def enable_user(self, username: str) -> AdminUser:
        return await self._fetch(AdminUser, "POST", self._user_path(username, "/enable"))

    async def set_admin(self, username: str, is_admin: bool) -> AdminUser:
        body = UpdateUserRequest(is_admin=is_admin)
        return await self._fetch(AdminUser, "PUT", self._user_path(username), body=body)

    async def delete_user(self, username: str) -> None:
        """The account goes; its history stays readable to administrators."""
        await self._call("DELETE", self._user_path(username))

    async def admin_history(
        self,
        *,
        username: str | None = None,
        success: bool | None = None,
        service: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> AdminHistoryPage:
        """Everyone's events; entries carry `username` (the attempted name for unknown ones)."""
        query = AdminHistoryQuery(
            limit=limit,
            before=_given(before),
            success=_given(success),
            service=_given(service),
            username=_given(username),
        )
        return await self._fetch(AdminHistoryPage, "GET", f"{API}/admin/history", query=query)

    async def services(self) -> list[Service]:
        """The relying services that may use the verify API, without their keys."""
        return (await self._fetch(ServiceList, "GET", f"{API}/admin/services")).items

    async def add_service(self, name: str, description: str = "") -> NewService:
        """Register a service. Its key is in this answer only: the server keeps a hash."""
        body = CreateServiceRequest(name=name, description=description)
        return await self._fetch(NewService, "POST", f"{API}/admin/services", body=body)

    async def revoke_service(self, name: str) -> None:
        """The service's key stops working at once."""
        await self._call("DELETE", f"{API}/admin/services/{quote(name, safe='')}")

    async def audit(self, *, limit: int = 50, before: int | None = None) -> AuditPage:
        query = AuditQuery(limit=limit, before=_given(before))
        return await self._fetch(AuditPage, "GET", f"{API}/admin/audit", query=query)


__all__ = [
    "DEFAULT_SERVER",
    "TfaClient",
    "is_loopback",
    "normalise_server_url",
    "sends_in_clear",
    "user_agent",
]
