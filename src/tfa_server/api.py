"""The HTTP API: one table of routes, used both to dispatch and to write the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, TypeVar

import msgspec

from tfa_protocol import types as wire
from tfa_server import sessions, views
from tfa_server.account import Account
from tfa_server.admin import Actor, Admin
from tfa_server.auth import SignedIn, SignIn
from tfa_server.clock import utc
from tfa_server.core import Core, Origin
from tfa_server.errors import (
    ApiError,
    Forbidden,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from tfa_server.http.messages import Request, Response, error_response
from tfa_server.http.router import Match, Router
from tfa_server.metrics import Metrics
from tfa_server.storage import server_key, users
from tfa_server.storage.database import storage_unavailable
from tfa_server.storage.services import ServiceRow
from tfa_server.storage.sessions import Session, SessionKind
from tfa_server.validation import decode_body, decode_query
from tfa_server.verify import Verify, end_user_origin, resolve_service

log = logging.getLogger("tfa_server")

# Who may call: nobody in particular; a sign-in's challenge; any person's session, even one
# that may only change a temporary password ("signed_in"); from an enrollment session up;
# a full session; an administrator's; a relying service's key.
Auth = Literal["none", "challenge", "signed_in", "enrollment", "full", "admin", "service"]
LEAST: dict[Auth, SessionKind] = {
    "signed_in": "password_change",
    "enrollment": "enrollment",
    "full": "full",
    "admin": "full",
}
JsonObject = dict[str, Any]
Reply = wire.Answer | JsonObject  # a Struct, or the OpenAPI document
T = TypeVar("T", bound=msgspec.Struct)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Call:
    request: Request
    origin: Origin
    params: Mapping[str, str]
    _body: msgspec.Struct | None
    _query: msgspec.Struct | None
    caller: sessions.Caller | None
    service: ServiceRow | None

    def body(self, kind: type[T]) -> T:
        """The decoded body, typed: the route table said which Struct it is."""
        assert isinstance(self._body, kind)
        return self._body

    def query(self, kind: type[T]) -> T:
        assert isinstance(self._query, kind)
        return self._query

    @property
    def own_session(self) -> Session:
        assert self.caller is not None
        return self.caller.session

    @property
    def actor(self) -> Actor:
        assert self.caller is not None
        assert self.caller.user.is_admin
        return Actor(self.caller.user.username, self.origin)

    def end_user(self, remote_ip: str | msgspec.UnsetType) -> Origin:
        """For the verify API: the person behind the service that calls."""
        assert self.service is not None
        return end_user_origin(
            self.service, _given(remote_ip), self.request.peer, self.request.user_agent
        )


Handler = Callable[[Call], Awaitable[Reply | Response | None]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    auth: Auth = "full"
    body: type[msgspec.Struct] | None = None
    optional_body: bool = False  # no body at all reads as {}
    query: type[msgspec.Struct] | None = None
    status: int = 200
    response: Any = None  # the answer's type: a Struct, a union of Structs, or a dict
    # Another success the handler may answer with (as a Response): status, type, when.
    alternative: tuple[int, Any, str] | None = None
    errors: tuple[int, ...] = field(default=())
    tag: str = "account"


def _given(value: V | msgspec.UnsetType) -> V | None:
    return None if isinstance(value, msgspec.UnsetType) else value


READY_TIMEOUT = 2.0


@dataclass(slots=True)
class _Seen:
    """What a request showed on its way, for the metrics: the service that called."""

    service: str | None = None


class Api:
    def __init__(self, core: Core, metrics: Metrics | None = None) -> None:
        self.core = core
        # Counted only where someone can read them (serve --metrics-port).
        self.metrics = metrics
        self.sign_in = SignIn(core)
        self.account = Account(core, self.sign_in)
        self.admin = Admin(core)
        self.verify = Verify(core, self.sign_in)
        self.routes = self._routes()
        # Set when the server begins to shut down: /readyz then says so, so a load balancer
        # sends no more requests while those in flight finish.
        self.draining = False
        self._router = Router(self.routes, lambda route: (route.method, route.path))

    async def handle(self, request: Request) -> Response:
        """Every failure leaves as the documented error shape; bugs go to the transport's 500."""
        started = time.perf_counter()
        route: Route | None = None
        seen = _Seen()
        try:
            found = self._router.match(request.method, request.path)
            route = found.route
            response = await self._dispatch(request, found, seen)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.headers)
        except Exception as exc:
            if not storage_unavailable(exc):
                raise
            log.error("storage unavailable (request %s): %s", request.request_id, exc)
            error = ServiceUnavailable(
                "The server cannot store data right now. Nothing was changed; try again later."
            )
            response = error_response(
                error.status, error.code, error.message, [("Retry-After", "30")]
            )
        if route is not None:
            response.route = route.path
        if self.metrics is not None:
            self.metrics.observe(
                request,
                route.path if route else None,
                route.operation_id if route else None,
                response,
                time.perf_counter() - started,
                seen.service,
            )
        return response

    async def _dispatch(self, request: Request, found: Match[Route], seen: _Seen) -> Response:
        route = found.route
        origin = Origin(request.peer, request.user_agent)
        # Who asks comes first: a stranger learns nothing about what a body should hold.
        caller, service = await self._authenticate(route, request, origin)
        seen.service = service.name if service else None
        query = decode_query(request.query, route.query)
        if route.body is not None:
            body = decode_body(request.body, route.body, optional=route.optional_body)
        elif request.body.strip():
            raise InvalidRequest("This request takes no body.")
        else:
            body = None
        result = await route.handler(
            Call(request, origin, found.params, body, query, caller, service)
        )
        return result if isinstance(result, Response) else Response(route.status, result)

    async def _authenticate(
        self, route: Route, request: Request, origin: Origin
    ) -> tuple[sessions.Caller | None, ServiceRow | None]:
        """The caller (session, user, policy), who must be an administrator on admin routes;
        for the verify API the service. A service key opens nothing else, a session no
        service call."""
        authorization = request.headers.get("authorization")
        if route.auth == "service":
            return None, await resolve_service(self.core, authorization, request.peer)
        if route.auth in ("none", "challenge"):
            return None, None
        if sessions.bearer_token(authorization).startswith(wire.SERVICE_KEY_PREFIX):
            raise Unauthorized("A service key opens only the verify API.")
        caller = await sessions.resolve(self.core, authorization, origin, least=LEAST[route.auth])
        if route.auth == "admin" and not caller.user.is_admin:
            raise Forbidden("This needs an administrator account.")
        return caller, None

    async def _signed_in(self, result: SignedIn) -> wire.SignInResult:
        expires_at = utc(result.expires_at)
        if result.status == "totp_required":
            # Before the second factor the answer holds what the code screen needs and no
            # more: the password alone must not reveal the account's last sign-in, role or codes.
            return wire.TotpRequired(result.token, expires_at, wire.Challenged(result.username))
        if result.status == "password_change_required":
            challenged = wire.Challenged(result.username)
            return wire.PasswordChangeRequired(result.token, expires_at, challenged)
        user = result.me or await self.account.user_view(result.user_id, result.session_id)
        if result.status == "enrollment_required":
            return wire.EnrollmentRequired(result.token, expires_at, user)
        left = result.recovery_codes_left
        return wire.Authenticated(
            result.token, expires_at, user, msgspec.UNSET if left is None else left
        )

    # Handlers: thin; the services hold the rules.

    async def _healthz(self, call: Call) -> wire.Health:
        return wire.Health("ok")

    async def _readyz(self, call: Call) -> wire.Ready:
        """Ready when the database answers a query within READY_TIMEOUT, with this server's
        key still the current one, and not shutting down; /healthz, the liveness check, asks
        nothing of the database."""
        if self.draining:
            raise ServiceUnavailable("The server is shutting down.", headers=[("Retry-After", "5")])
        try:
            current = await asyncio.wait_for(
                self.core.db.read(server_key.fingerprint), READY_TIMEOUT
            )
        except Exception as exc:
            log.warning("readiness check: the database did not answer (%s)", type(exc).__name__)
            raise ServiceUnavailable(
                "The database is not answering.", headers=[("Retry-After", "5")]
            ) from None
        if current != self.core.keys.fingerprint:
            log.warning("readiness check: the server key was replaced; restart with the new one")
            raise ServiceUnavailable(
                "This server's key was replaced ('tfa-server rotate-key'): it must be restarted"
                " with the new key file."
            )
        return wire.Ready("ready")

    @cached_property
    def _document(self) -> JsonObject:
        from tfa_server.openapi import document

        return document(self.routes)

    async def _openapi(self, call: Call) -> JsonObject:
        return self._document

    async def _login(self, call: Call) -> wire.SignInResult:
        body = call.body(wire.LoginRequest)
        return await self._signed_in(
            await self.sign_in.login(body.username, body.password, call.origin)
        )

    async def _login_totp(self, call: Call) -> wire.SignInResult:
        auth = call.request.headers.get("authorization")
        code = call.body(wire.CodeRequest).code
        return await self._signed_in(
            await self.sign_in.second_factor(auth, code, "totp", call.origin)
        )

    async def _login_recovery(self, call: Call) -> wire.SignInResult:
        auth = call.request.headers.get("authorization")
        code = call.body(wire.CodeRequest).code
        return await self._signed_in(
            await self.sign_in.second_factor(auth, code, "recovery_code", call.origin)
        )

    async def _logout(self, call: Call) -> None:
        await self.sign_in.logout(call.own_session, call.origin)

    async def _me(self, call: Call) -> wire.Me:
        assert call.caller is not None
        return views.me_of(call.caller.user, call.caller.session, call.caller.policy)

    async def _change_password(self, call: Call) -> Response | None:
        body = call.body(wire.ChangePasswordRequest)
        signed = await self.account.change_password(
            call.own_session,
            body.current_password,
            body.new_password,
            _given(body.code),
            call.origin,
        )
        return None if signed is None else Response(200, await self._signed_in(signed))

    async def _totp_setup(self, call: Call) -> wire.TotpSetup:
        password = _given(call.body(wire.TotpSetupRequest).password)
        return await self.account.totp_setup(call.own_session, password, call.origin)

    async def _totp_confirm(self, call: Call) -> wire.RecoveryCodes:
        code = call.body(wire.CodeRequest).code
        return await self.account.totp_confirm(call.own_session, code, call.origin)

    async def _totp_disable(self, call: Call) -> wire.TotpDisabled:
        body = call.body(wire.DisableTotpRequest)
        return await self.account.totp_disable(
            call.own_session,
            body.password,
            body.code,
            _given(body.acknowledge_forced_policy) or False,
            call.origin,
        )

    async def _recovery_codes(self, call: Call) -> wire.RecoveryCodes:
        body = call.body(wire.PasswordAndCode)
        return await self.account.regenerate_recovery_codes(
            call.own_session, body.password, body.code, call.origin
        )

    async def _history(self, call: Call) -> wire.HistoryPage:
        query = call.query(wire.HistoryQuery)
        return await self.account.history(
            call.own_session,
            _given(query.success),
            _given(query.service),
            query.limit,
            _given(query.before),
        )

    async def _sessions(self, call: Call) -> wire.SessionList:
        return await self.account.sessions(call.own_session)

    async def _revoke_session(self, call: Call) -> None:
        raw = call.params["id"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise NotFound("There is no such active session.")
        await self.account.revoke_session(call.own_session, int(raw), call.origin)

    async def _get_policy(self, call: Call) -> wire.Policy:
        return await self.admin.get_policy()

    async def _put_policy(self, call: Call) -> wire.Policy:
        body = call.body(wire.PolicyRequest)
        return await self.admin.set_policy(call.actor, body.force_2fa, body.grace_period_days)

    async def _activity(self, call: Call) -> wire.Activity:
        query = call.query(wire.ActivityQuery)
        return await self.account.activity(call.own_session, query.days, query.utc_offset)

    async def _admin_activity(self, call: Call) -> wire.AdminActivity:
        query = call.query(wire.AdminActivityQuery)
        return await self.admin.activity(_given(query.username), query.days, query.utc_offset)

    async def _list_users(self, call: Call) -> wire.UserList:
        query = call.query(wire.UserListQuery)
        where = users.UserFilter(
            contains=query.q.lower() if query.q else None,
            admin=_given(query.admin),
            two_factor=_given(query.two_factor),
            locked=_given(query.locked),
            disabled=_given(query.disabled),
        )
        return await self.admin.user_page(query.limit, _given(query.after), where)

    async def _get_user(self, call: Call) -> wire.AdminUser:
        return await self.admin.get_user(call.params["username"])

    async def _create_user(self, call: Call) -> wire.AdminUser:
        body = call.body(wire.CreateUserRequest)
        return await self.admin.create_user(call.actor, body.username, body.password, body.is_admin)

    async def _reset_2fa(self, call: Call) -> wire.AdminUser:
        return await self.admin.reset_2fa(call.actor, call.params["username"])

    async def _unlock(self, call: Call) -> wire.AdminUser:
        return await self.admin.unlock(call.actor, call.params["username"])

    async def _reset_password(self, call: Call) -> wire.AdminUser:
        body = call.body(wire.ResetPasswordRequest)
        return await self.admin.reset_password(
            call.actor, call.params["username"], body.password, body.temporary
        )

    async def _disable_user(self, call: Call) -> wire.AdminUser:
        return await self.admin.disable(call.actor, call.params["username"])

    async def _enable_user(self, call: Call) -> wire.AdminUser:
        return await self.admin.enable(call.actor, call.params["username"])

    async def _update_user(self, call: Call) -> wire.AdminUser:
        is_admin = call.body(wire.UpdateUserRequest).is_admin
        return await self.admin.set_admin(call.actor, call.params["username"], is_admin)

    async def _delete_user(self, call: Call) -> None:
        await self.admin.delete(call.actor, call.params["username"])

    async def _admin_history(self, call: Call) -> wire.AdminHistoryPage:
        query = call.query(wire.AdminHistoryQuery)
        return await self.admin.history(
            _given(query.username),
            _given(query.success),
            _given(query.service),
            query.limit,
            _given(query.before),
        )

    async def _list_services(self, call: Call) -> wire.ServiceList:
        return await self.admin.list_services()

    async def _add_service(self, call: Call) -> wire.NewService:
        body = call.body(wire.CreateServiceRequest)
        return await self.admin.add_service(call.actor, body.name, body.description)

    async def _revoke_service(self, call: Call) -> None:
        await self.admin.revoke_service(call.actor, call.params["name"])

    async def _verify_start(self, call: Call) -> wire.VerifyStart:
        body = call.body(wire.VerifyStartRequest)
        return await self.verify.start(body.username, call.end_user(body.remote_ip))

    async def _verify(self, call: Call) -> wire.Verified:
        body = call.body(wire.VerifyRequest)
        return await self.verify.verify(
            body.username, body.code, _given(body.password), call.end_user(body.remote_ip)
        )

    async def _audit(self, call: Call) -> wire.AuditPage:
        query = call.query(wire.AuditQuery)
        return await self.admin.audit_log(query.limit, _given(query.before))

    def _routes(self) -> list[Route]:
        v1 = "/api/v1"
        user_errors = (401, 403)
        return [
            Route(
                "GET",
                "/healthz",
                "health",
                "Liveness check",
                self._healthz,
                "none",
                response=wire.Health,
                tag="meta",
            ),
            Route(
                "GET",
                "/readyz",
                "ready",
                "Readiness check: 200 while the database answers, 503 when it does not or while"
                " the server shuts down",
                self._readyz,
                "none",
                response=wire.Ready,
                errors=(503,),
                tag="meta",
            ),
            Route(
                "GET",
                f"{v1}/openapi.json",
                "openapi",
                "This document",
                self._openapi,
                "none",
                response=JsonObject,
                tag="meta",
            ),
            Route(
                "POST",
                f"{v1}/login",
                "login",
                "Sign in with username and password",
                self._login,
                "none",
                body=wire.LoginRequest,
                response=wire.SignInResult,
                errors=(400, 401, 429),
                tag="sign-in",
            ),
            Route(
                "POST",
                f"{v1}/login/totp",
                "loginTotp",
                "Second step: a TOTP code, with the challenge token as Bearer",
                self._login_totp,
                "challenge",
                body=wire.CodeRequest,
                response=wire.SignInResult,
                errors=(400, 401, 429),
                tag="sign-in",
            ),
            Route(
                "POST",
                f"{v1}/login/recovery",
                "loginRecovery",
                "Second step: a recovery code, with the challenge token as Bearer",
                self._login_recovery,
                "challenge",
                body=wire.CodeRequest,
                response=wire.SignInResult,
                errors=(400, 401, 429),
                tag="sign-in",
            ),
            Route(
                "POST",
                f"{v1}/logout",
                "logout",
                "End this session",
                self._logout,
                "signed_in",
                status=204,
                errors=(401,),
                tag="sign-in",
            ),
            Route(
                "GET",
                f"{v1}/me",
                "getMe",
                "The signed-in user",
                self._me,
                "signed_in",
                response=wire.Me,
                errors=(401,),
            ),
            Route(
                "POST",
                f"{v1}/me/password",
                "changePassword",
                "Change the password (the current one, and a code when 2FA is on); every other"
                " session ends. From a password_change session (a temporary password) no code"
                " is needed: that session ends and the answer (200) is the sign-in's next step",
                self._change_password,
                "signed_in",
                body=wire.ChangePasswordRequest,
                status=204,
                alternative=(
                    200,
                    wire.SignInResult,
                    "A temporary password was replaced: the sign-in goes on from here",
                ),
                errors=(400, 401, 403, 429),
            ),
            Route(
                "POST",
                f"{v1}/me/totp/setup",
                "setupTotp",
                "Start connecting an authenticator app (pending until confirmed); the"
                " password is required (403 password_required) unless this session signed in"
                " with it in the last few minutes",
                self._totp_setup,
                "enrollment",
                body=wire.TotpSetupRequest,
                optional_body=True,
                response=wire.TotpSetup,
                errors=(400, 401, 403, 409, 429),
            ),
            Route(
                "POST",
                f"{v1}/me/totp/confirm",
                "confirmTotp",
                "Confirm the pending secret with a code; 2FA is on and recovery codes issued",
                self._totp_confirm,
                "enrollment",
                body=wire.CodeRequest,
                response=wire.RecoveryCodes,
                errors=(400, 401, 409),
            ),
            Route(
                "DELETE",
                f"{v1}/me/totp",
                "disableTotp",
                "Disconnect 2FA (needs the password and a current code)",
                self._totp_disable,
                body=wire.DisableTotpRequest,
                response=wire.TotpDisabled,
                errors=(400, *user_errors, 409, 429),
            ),
            Route(
                "POST",
                f"{v1}/me/recovery-codes",
                "regenerateRecoveryCodes",
                "Replace the recovery codes (needs the password and a current code)",
                self._recovery_codes,
                body=wire.PasswordAndCode,
                response=wire.RecoveryCodes,
                errors=(400, *user_errors, 409, 429),
            ),
            Route(
                "GET",
                f"{v1}/me/history",
                "getHistory",
                "Own login history, newest first",
                self._history,
                query=wire.HistoryQuery,
                response=wire.HistoryPage,
                errors=(400, *user_errors),
            ),
            Route(
                "GET",
                f"{v1}/me/activity",
                "getActivity",
                "Own sign-ins per day (completed, refused), oldest first, every day of the range"
                " present and today last in the reader's time zone; and the last refused attempt",
                self._activity,
                query=wire.ActivityQuery,
                response=wire.Activity,
                errors=(400, *user_errors),
            ),
            Route(
                "GET",
                f"{v1}/me/sessions",
                "listSessions",
                "Own active sessions",
                self._sessions,
                response=wire.SessionList,
                errors=user_errors,
            ),
            Route(
                "DELETE",
                f"{v1}/me/sessions/{{id}}",
                "revokeSession",
                "Revoke one session",
                self._revoke_session,
                status=204,
                errors=(*user_errors, 404),
            ),
            Route(
                "GET",
                f"{v1}/admin/policy",
                "getPolicy",
                "The 2FA policy",
                self._get_policy,
                "admin",
                response=wire.Policy,
                errors=user_errors,
                tag="admin",
            ),
            Route(
                "PUT",
                f"{v1}/admin/policy",
                "setPolicy",
                "Change the 2FA policy (audited)",
                self._put_policy,
                "admin",
                body=wire.PolicyRequest,
                response=wire.Policy,
                errors=(400, *user_errors),
                tag="admin",
            ),
            Route(
                "GET",
                f"{v1}/admin/users",
                "listUsers",
                "Accounts in name order, a page at a time (`next_after` leads on), narrowed by"
                " a part of the name and by state",
                self._list_users,
                "admin",
                query=wire.UserListQuery,
                response=wire.UserList,
                errors=(400, *user_errors),
                tag="admin",
            ),
            Route(
                "GET",
                f"{v1}/admin/users/{{username}}",
                "getUser",
                "One account: 2FA, recovery codes left, lock, last sign-in",
                self._get_user,
                "admin",
                response=wire.AdminUser,
                errors=(*user_errors, 404),
                tag="admin",
            ),
            Route(
                "POST",
                f"{v1}/admin/users",
                "createUser",
                "Create an account (audited)",
                self._create_user,
                "admin",
                status=201,
                body=wire.CreateUserRequest,
                response=wire.AdminUser,
                errors=(400, *user_errors, 409),
                tag="admin",
            ),
            Route(
                "POST",
                f"{v1}/admin/users/{{username}}/reset-2fa",
                "resetUser2fa",
                "Remove a user's 2FA and end their sessions (audited); 409 without 2FA",
                self._reset_2fa,
                "admin",
                response=wire.AdminUser,
                errors=(*user_errors, 404, 409),
                tag="admin",
            ),
            Route(
                "POST",
                f"{v1}/admin/users/{{username}}/unlock",
                "unlockUser",
                "Clear a user's throttling (audited)",
                self._unlock,
                "admin",
                response=wire.AdminUser,
                errors=(*user_errors, 404),
                tag="admin",
            ),
            Route(
                "PUT",
                f"{v1}/admin/users/{{username}}",
                "updateUser",
                "Grant or remove administrator rights (audited); the last enabled"
                " administrator keeps them (409)",
                self._update_user,
                "admin",
                body=wire.UpdateUserRequest,
                response=wire.AdminUser,
                errors=(400, *user_errors, 404, 409),
                tag="admin",
            ),
            Route(
                "DELETE",
                f"{v1}/admin/users/{{username}}",
                "deleteUser",
                "Delete an account, its secrets, codes and sessions; its history stays for"
                " administrators, marked (audited). Not one's own, nor the last enabled"
                " administrator (409)",
                self._delete_user,
                "admin",
                status=204,
                errors=(*user_errors, 404, 409),
                tag="admin",
            ),
            Route(
                "POST",
                f"{v1}/admin/users/{{username}}/password",
                "resetUserPassword",
                "Set a user's password (temporary by default: it must be changed at the next"
                " sign-in); all their sessions end (audited)",
                self._reset_password,
                "admin",
                body=wire.ResetPasswordRequest,
                response=wire.AdminUser,
                errors=(400, *user_errors, 404),
                tag="admin",
            ),
            Route(
                "POST",
                f"{v1}/admin/users/{{username}}/disable",
                "disableUser",
                "Disable an account: its sessions end at once and it cannot sign in (audited)."
                " Not one's own, nor the last enabled administrator (409)",
                self._disable_user,
                "admin",
                response=wire.AdminUser,
                errors=(*user_errors, 404, 409),
                tag="admin",
            ),
            Route(
                "POST",
                f"{v1}/admin/users/{{username}}/enable",
                "enableUser",
                "Enable a disabled account (audited); 409 when it is not disabled",
                self._enable_user,
                "admin",
                response=wire.AdminUser,
                errors=(*user_errors, 404, 409),
                tag="admin",
            ),
            Route(
                "GET",
                f"{v1}/admin/history",
                "getAdminHistory",
                "Everyone's login events, filterable",
                self._admin_history,
                "admin",
                query=wire.AdminHistoryQuery,
                response=wire.AdminHistoryPage,
                errors=(400, *user_errors),
                tag="admin",
            ),
            Route(
                "GET",
                f"{v1}/admin/activity",
                "getAdminActivity",
                "Everyone's sign-ins per day (or one account's, with `username`; 404 when there"
                " is no such account), the last refused attempt, and the five addresses and"
                " names refused most in the last 24 hours and 7 days",
                self._admin_activity,
                "admin",
                query=wire.AdminActivityQuery,
                response=wire.AdminActivity,
                errors=(400, *user_errors, 404),
                tag="admin",
            ),
            Route(
                "GET",
                f"{v1}/admin/audit",
                "getAudit",
                "Administrator actions, newest first",
                self._audit,
                "admin",
                query=wire.AuditQuery,
                response=wire.AuditPage,
                errors=(400, *user_errors),
                tag="admin",
            ),
            Route(
                "GET",
                f"{v1}/admin/services",
                "listServices",
                "Relying services that may use the verify API",
                self._list_services,
                "admin",
                response=wire.ServiceList,
                errors=user_errors,
                tag="admin",
            ),
            Route(
                "POST",
                f"{v1}/admin/services",
                "addService",
                "Register a relying service; the answer holds its key, once (audited)",
                self._add_service,
                "admin",
                status=201,
                body=wire.CreateServiceRequest,
                response=wire.NewService,
                errors=(400, *user_errors, 409),
                tag="admin",
            ),
            Route(
                "DELETE",
                f"{v1}/admin/services/{{name}}",
                "revokeService",
                "Revoke a service's key, at once (audited)",
                self._revoke_service,
                "admin",
                status=204,
                errors=(*user_errors, 404),
                tag="admin",
            ),
            Route(
                "POST",
                f"{v1}/verify/start",
                "verifyStart",
                "A relying service asks what to do for this user: ask for a code, allow"
                " (no 2FA, and the policy allows it), or deny with a message to show",
                self._verify_start,
                "service",
                body=wire.VerifyStartRequest,
                response=wire.VerifyStart,
                errors=(400, 401, 404),
                tag="verify",
            ),
            Route(
                "POST",
                f"{v1}/verify",
                "verify",
                "A relying service checks a user's code (TOTP or recovery code, and the password"
                " when given) under the sign-in's rules; each call is in the user's history",
                self._verify,
                "service",
                body=wire.VerifyRequest,
                response=wire.Verified,
                errors=(400, 401, 403, 404, 409, 429),
                tag="verify",
            ),
        ]
