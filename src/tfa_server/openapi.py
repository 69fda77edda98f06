"""The OpenAPI 3.1 document: schemas from tfa_protocol's Structs; paths, security, links and
error responses from the route table. Neither can drift from what the server does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from tfa_protocol import types as wire
from tfa_server import __version__

if TYPE_CHECKING:
    from tfa_server.api import Route

JsonObject = dict[str, Any]

_STATUS_TEXT = {
    400: "Invalid request (malformed JSON, missing, unknown or mistyped fields)",
    401: "Not signed in, wrong credentials or code (the error code says which: for the verify"
    " API `unauthorized` is the service key, `invalid_code` the user's code)",
    403: "Not allowed (the error code says why: administrators only, 2FA enrollment or a new"
    " password required first, the password required again, or the account disabled)",
    404: "Not found",
    409: "Conflict with the current state or policy",
    429: "Too many failed attempts; see Retry-After",
    503: "Not available now (the database does not answer, or the server is shutting down);"
    " see Retry-After",
}


REF = "#/components/schemas/{name}"
# Answers that are not one Struct get a name of their own in the document.
NAMED: dict[Any, str] = {
    wire.SignInResult: "SignInResult",
    wire.VerifyStart: "VerifyStart",
    JsonObject: "OpenApiDocument",
}


def _ref(name: str) -> JsonObject:
    return {"$ref": REF.format(name=name)}


def _schemas(routes: list[Route]) -> tuple[JsonObject, dict[Any, JsonObject]]:
    """Components from the Structs, and each route type's schema (a $ref for answers; bodies
    and queries inline, where the document has always had them)."""
    kinds = [wire.Error] + [
        kind
        for route in routes
        for kind in (
            route.body,
            route.query,
            route.response,
            route.alternative[1] if route.alternative else None,
        )
        if kind is not None
    ]
    kinds = list(dict.fromkeys(kinds))
    refs, components = msgspec.json.schema_components(kinds, ref_template=REF)
    schemas = dict(zip(kinds, refs, strict=True))
    for kind, name in NAMED.items():
        if kind in schemas:
            components[name] = schemas[kind]
            schemas[kind] = _ref(name)
    for kind in {route.body for route in routes} | {route.query for route in routes}:
        if kind is not None:
            schemas[kind] = components.pop(kind.__name__)
    for schema in components.values():
        schema.pop("title", None)
        if schema.get("type") == "object" and "properties" in schema:
            # This server sends exactly these fields; clients still ignore what later adds.
            schema.setdefault("additionalProperties", False)
    for schema in schemas.values():
        schema.pop("title", None)
    return components, schemas


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
        "UserHistory": _link("getAdminHistory", "Its login events", **{"query.username": pointer}),
        "UserActivity": _link(
            "getAdminActivity", "Its sign-ins per day", **{"query.username": pointer}
        ),
        "GetUser": _link("getUser", "The account as it is now", username=pointer),
        "ResetUser2fa": _link("resetUser2fa", "Remove its 2FA", username=pointer),
        "UnlockUser": _link("unlockUser", "Clear its throttling", username=pointer),
        "ResetUserPassword": _link("resetUserPassword", "Set its password", username=pointer),
        "DisableUser": _link("disableUser", "Disable it", username=pointer),
        "EnableUser": _link("enableUser", "Enable it", username=pointer),
        "UpdateUser": _link("updateUser", "Grant or remove admin rights", username=pointer),
        "DeleteUser": _link("deleteUser", "Delete it", username=pointer),
    }


# operationId -> links of its success response: how a client gets from one call to the next
# (and what schemathesis follows in its stateful phase).
LINKS: dict[str, JsonObject] = {
    "createUser": _user_actions("$response.body#/username"),
    "listUsers": {
        **_user_actions("$response.body#/items/0/username"),
        "NextPage": _link(
            "listUsers",
            "The next page, in name order",
            after="$response.body#/next_after",
            **{
                name: f"$request.query.{name}"
                for name in ("q", "limit", "admin", "two_factor", "locked", "disabled")
            },
        ),
    },
    "getUser": _user_actions("$response.body#/username"),
    "resetUser2fa": _user_actions("$response.body#/username"),
    "unlockUser": _user_actions("$response.body#/username"),
    "resetUserPassword": _user_actions("$response.body#/username"),
    "disableUser": _user_actions("$response.body#/username"),
    "enableUser": _user_actions("$response.body#/username"),
    "updateUser": _user_actions("$response.body#/username"),
    "listSessions": {
        "RevokeSession": _link("revokeSession", "End that session", id="$response.body#/items/0/id")
    },
    "getHistory": {"NextPage": _next_page("getHistory", "success", "service", "limit")},
    "getAdminHistory": {
        "NextPage": _next_page("getAdminHistory", "username", "success", "service", "limit")
    },
    "getAudit": {"NextPage": _next_page("getAudit", "limit")},
    "addService": {
        "RevokeService": _link("revokeService", "Revoke it", name="$response.body#/name")
    },
}


def _json(schema: JsonObject) -> JsonObject:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(route: Route, schemas: dict[Any, JsonObject]) -> JsonObject:
    responses: JsonObject = {}
    if route.response is None:
        responses[str(route.status)] = {"description": "Done; no body"}
    else:
        responses[str(route.status)] = {"description": "Success", **_json(schemas[route.response])}
    if route.operation_id in LINKS:
        responses[str(route.status)]["links"] = LINKS[route.operation_id]
    if route.alternative is not None:
        status, kind, description = route.alternative
        responses[str(status)] = {"description": description, **_json(schemas[kind])}
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
    parameters = _query_parameters(schemas[route.query]) if route.query else []
    for name in _path_params(route.path):
        parameters.append(
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        )
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        required = not route.optional_body
        operation["requestBody"] = {"required": required, **_json(schemas[route.body])}
    if route.auth == "service":
        operation["security"] = [{"serviceKey": []}]
    elif route.auth != "none":
        operation["security"] = [{"bearer": []}]
    return operation


def _query_parameters(schema: JsonObject) -> list[JsonObject]:
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        parameters.append(
            {"name": name, "in": "query", "required": False, "schema": prop}
            | ({"description": description} if description else {})
        )
    return parameters


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def document(routes: list[Route]) -> JsonObject:
    components, schemas = _schemas(routes)
    paths: JsonObject = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
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
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "serviceKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A relying service's key (tfasvc_...), from `tfa-server"
                    " service add` or POST /api/v1/admin/services; it opens only the verify"
                    " API",
                },
            },
        },
    }
