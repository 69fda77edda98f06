"""The OpenAPI 3.1 document, built from the route table so paths and bodies cannot drift."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfa_server import __version__

if TYPE_CHECKING:
    from tfa_server.api import Route

JsonObject = dict[str, Any]

_STATUS_TEXT = {
    400: "Invalid request (malformed JSON, missing, unknown or mistyped fields)",
    401: "Not signed in, wrong credentials or code",
    403: "Not allowed (administrators only, 2FA enrollment required first, or the password"
    " required again)",
    404: "Not found",
    409: "Conflict with the current state or policy",
    429: "Too many failed attempts; see Retry-After",
}


def _nullable(kind: str, **extra: Any) -> JsonObject:
    return {"type": [kind, "null"], **extra}


def _obj(properties: JsonObject, optional: tuple[str, ...] = ()) -> JsonObject:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }


def _ref(name: str) -> JsonObject:
    return {"$ref": f"#/components/schemas/{name}"}


TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}
NULLABLE_TIME = _nullable("string", format="date-time", description="RFC 3339, UTC")
RECOVERY_CODE = {
    "type": "string",
    "pattern": "^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$",
}


def _page(item: str) -> JsonObject:
    return _obj(
        {
            "items": {"type": "array", "items": _ref(item)},
            "next_before": _nullable("integer", description="Pass as `before` for the next page"),
        }
    )


def _history_item(with_username: bool) -> JsonObject:
    properties: JsonObject = {
        "id": {"type": "integer"},
        "at": TIME,
        "event": {
            "type": "string",
            "description": "password, second_factor, reauthentication, totp_enabled,"
            " totp_disabled, recovery_codes_regenerated, logout, forced_sign_out,"
            " session_revoked, session_restricted, totp_reset_by_admin",
        },
        "success": {"type": "boolean"},
        "method": _nullable("string", description="password, totp or recovery_code"),
        "reason": _nullable(
            "string",
            description="bad_password, unknown_user, bad_code, code_reused, throttled,"
            " expired_challenge, enrollment_required, totp_required, policy_requires_2fa,"
            " session_limit",
        ),
        "ip": {"type": "string"},
        "client": {"type": "string", "description": "The request's User-Agent"},
        "count": {
            "type": "integer",
            "minimum": 1,
            "description": "How many attempts this row stands for: refusals while throttled are"
            " counted into one row per address, account and minute",
        },
    }
    if with_username:
        properties["username"] = {
            "type": "string",
            "description": "Attempted name; throttled refusals of names that match no account"
            " share the name '(unknown names)'",
        }
        properties["known_user"] = {"type": "boolean"}
    return _obj(properties)


SCHEMAS: JsonObject = {
    "Error": _obj(
        {
            "error": {"type": "string", "description": "Machine-readable code"},
            "message": {"type": "string", "description": "Text for a person"},
        }
    ),
    "Health": _obj({"status": {"const": "ok"}}),
    "OpenApiDocument": {"type": "object"},
    "LoginInfo": {
        "type": ["object", "null"],
        "additionalProperties": False,
        "required": ["at", "ip", "client"],
        "properties": {"at": TIME, "ip": _nullable("string"), "client": _nullable("string")},
    },
    "Me": _obj(
        {
            "username": {"type": "string"},
            "is_admin": {"type": "boolean"},
            "totp_enabled": {"type": "boolean"},
            "totp_enabled_at": NULLABLE_TIME,
            "recovery_codes_left": {"type": "integer", "minimum": 0},
            "policy": _obj(
                {
                    "force_2fa": {"type": "boolean"},
                    "grace_period_days": {"type": "integer", "minimum": 0},
                }
            ),
            "enrollment_deadline": NULLABLE_TIME,
            "last_login": _ref("LoginInfo"),
            "failed_attempts_since_last_login": {"type": "integer", "minimum": 0},
        }
    ),
    "SignInResult": _obj(
        {
            "status": {"enum": ["authenticated", "totp_required", "enrollment_required"]},
            "token": {
                "type": "string",
                "description": "Bearer token (challenge, enrollment or full)",
            },
            "expires_at": TIME,
            "user": {
                "description": "The signed-in user; before the second factor (totp_required)"
                " only the username",
                "oneOf": [_ref("Me"), _ref("Challenged")],
            },
            "recovery_codes_left": {"type": "integer", "minimum": 0},
        },
        optional=("recovery_codes_left",),
    ),
    "Challenged": _obj({"username": {"type": "string"}}),
    "TotpSetup": _obj(
        {
            "secret": {"type": "string", "pattern": "^[A-Z2-7]+$"},
            "otpauth_uri": {"type": "string", "pattern": "^otpauth://totp/"},
            "issuer": {"type": "string"},
            "account": {"type": "string"},
            "algorithm": {"enum": ["SHA1", "SHA256", "SHA512"]},
            "digits": {"type": "integer"},
            "period": {"type": "integer"},
        }
    ),
    "RecoveryCodes": _obj({"recovery_codes": {"type": "array", "items": RECOVERY_CODE}}),
    "TotpDisabled": _obj({"totp_enabled": {"const": False}, "logged_out": {"type": "boolean"}}),
    "HistoryItem": _history_item(with_username=False),
    "HistoryPage": _page("HistoryItem"),
    "AdminHistoryItem": _history_item(with_username=True),
    "AdminHistoryPage": _page("AdminHistoryItem"),
    "Session": _obj(
        {
            "id": {"type": "integer"},
            "created_at": TIME,
            "last_seen_at": TIME,
            "expires_at": TIME,
            "ip": {"type": "string"},
            "client": {"type": "string"},
            "kind": {"enum": ["enrollment", "full"]},
            "current": {"type": "boolean"},
        }
    ),
    "SessionList": _obj({"items": {"type": "array", "items": _ref("Session")}}),
    "Policy": _obj(
        {
            "force_2fa": {"type": "boolean"},
            "grace_period_days": {"type": "integer", "minimum": 0},
            "forced_since": NULLABLE_TIME,
            "updated_at": NULLABLE_TIME,
        }
    ),
    "AdminUser": _obj(
        {
            "username": {"type": "string"},
            "is_admin": {"type": "boolean"},
            "totp_enabled": {"type": "boolean"},
            "totp_enabled_at": NULLABLE_TIME,
            "created_at": TIME,
            "last_login": _ref("LoginInfo"),
            "failed_attempts": {"type": "integer", "minimum": 0},
            "locked_until": NULLABLE_TIME,
        }
    ),
    "UserList": _obj({"items": {"type": "array", "items": _ref("AdminUser")}}),
    "AuditItem": _obj(
        {
            "id": {"type": "integer"},
            "at": TIME,
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "target": _nullable("string"),
            "detail": {"type": "object"},
            "ip": _nullable("string"),
            "client": _nullable("string"),
        }
    ),
    "AuditPage": _page("AuditItem"),
}


def _link(operation_id: str, description: str, **parameters: str) -> JsonObject:
    return {"operationId": operation_id, "description": description, "parameters": parameters}


def _next_page(operation_id: str, *carried: str) -> JsonObject:
    """Paging on: the same query as this request, with `before` from this page."""
    carry = {name: f"$request.query.{name}" for name in carried}
    return _link(
        operation_id, "The next, older page", before="$response.body#/next_before", **carry
    )


def _user_actions(pointer: str) -> JsonObject:
    """What an administrator can do next to the account this response names."""
    return {
        "ResetUser2fa": _link("resetUser2fa", "Remove its 2FA", username=pointer),
        "UnlockUser": _link("unlockUser", "Clear its throttling", username=pointer),
        "UserHistory": _link("getAdminHistory", "Its login events", **{"query.username": pointer}),
    }


# operationId -> links of its success response: how a client gets from one call to the next
# (and what schemathesis follows in its stateful phase).
LINKS: dict[str, JsonObject] = {
    "createUser": _user_actions("$response.body#/username"),
    "listUsers": _user_actions("$response.body#/items/0/username"),
    "resetUser2fa": _user_actions("$response.body#/username"),
    "unlockUser": _user_actions("$response.body#/username"),
    "listSessions": {
        "RevokeSession": _link("revokeSession", "End that session", id="$response.body#/items/0/id")
    },
    "getHistory": {"NextPage": _next_page("getHistory", "success", "limit")},
    "getAdminHistory": {"NextPage": _next_page("getAdminHistory", "username", "success", "limit")},
    "getAudit": {"NextPage": _next_page("getAudit", "limit")},
}


def _json(schema: JsonObject) -> JsonObject:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(route: Route) -> JsonObject:
    responses: JsonObject = {}
    if route.response is None:
        responses[str(route.status)] = {"description": "Done; no body"}
    else:
        responses[str(route.status)] = {"description": "Success", **_json(_ref(route.response))}
    if route.operation_id in LINKS:
        responses[str(route.status)]["links"] = LINKS[route.operation_id]
    for status in route.errors:
        responses[str(status)] = {"description": _STATUS_TEXT[status], **_json(_ref("Error"))}
    responses["default"] = {
        "description": "Any other error, in the same shape (400, 405, 413, 415, 503, ...)",
        **_json(_ref("Error")),
    }
    operation: JsonObject = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    parameters = [param.openapi() for param in route.query]
    for name in _path_params(route.path):
        parameters.append(
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        )
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        required = not route.body.optional
        operation["requestBody"] = {"required": required, **_json(route.body.json_schema())}
    if route.auth != "none":
        operation["security"] = [{"bearer": []}]
    return operation


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def document(routes: list[Route]) -> JsonObject:
    paths: JsonObject = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tfa account server",
            "version": __version__,
            "description": "Accounts, TOTP two-factor authentication, recovery codes, login"
            " history and 2FA policy. Errors are always"
            ' {"error": "<code>", "message": "<text>"}.',
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
