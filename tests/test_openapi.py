"""The OpenAPI document: valid 3.1, true to the route table both ways, strict request bodies,
and a contract checker that really catches a response breaking its schema."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tfa_server.admin import Actor, Admin

from .conftest import PASSWORD, RunningServer, assert_error, bearer, login, sqlite_only
from .contract import Contract, ContractViolation

# The document, the router and the body decoding come before any storage: on SQLite
# alone (tests/reliability/test_schemathesis.py checks the document against both backends).
pytestmark = sqlite_only

OPENAPI = "/api/v1/openapi.json"

# operationId -> (required fields, every field) of its JSON request body.
REQUEST_BODIES: dict[str, tuple[list[str], set[str]]] = {
    "login": (["username", "password"], {"username", "password"}),
    "loginTotp": (["code"], {"code"}),
    "loginRecovery": (["code"], {"code"}),
    "confirmTotp": (["code"], {"code"}),
    "disableTotp": (["password", "code"], {"password", "code", "acknowledge_forced_policy"}),
    "regenerateRecoveryCodes": (["password", "code"], {"password", "code"}),
    "setPolicy": (["force_2fa", "grace_period_days"], {"force_2fa", "grace_period_days"}),
    "createUser": (["username", "password"], {"username", "password", "is_admin"}),
    "setupTotp": ([], {"password"}),
    "addService": (["name"], {"name", "description"}),
    "verifyStart": (["username"], {"username", "remote_ip"}),
    "verify": (["username", "code"], {"username", "code", "remote_ip", "password"}),
    "changePassword": (
        ["current_password", "new_password"],
        {"current_password", "new_password", "code"},
    ),
    "resetUserPassword": (["password"], {"password", "temporary"}),
    "updateUser": (["is_admin"], {"is_admin"}),
}
OPTIONAL_BODIES = {"setupTotp"}  # no body at all is fine too
# A body each of those would accept, so that only the field under test can make it a 400.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "login": {"username": "alice", "password": PASSWORD},
    "loginTotp": {"code": "123456"},
    "loginRecovery": {"code": "ABCD-EFGH-JKMN"},
    "confirmTotp": {"code": "123456"},
    "disableTotp": {"password": PASSWORD, "code": "123456"},
    "regenerateRecoveryCodes": {"password": PASSWORD, "code": "123456"},
    "setPolicy": {"force_2fa": False, "grace_period_days": 0},
    "createUser": {"username": "bob", "password": PASSWORD},
    "setupTotp": {"password": PASSWORD},
    "addService": {"name": "sshd-bastion"},
    "verifyStart": {"username": "root"},
    "verify": {"username": "root", "code": "123456"},
    "changePassword": {"current_password": PASSWORD, "new_password": "a new passphrase"},
    "resetUserPassword": {"password": "a temporary one"},
    "updateUser": {"is_admin": True},
}
VALID_ME = {
    "username": "alice",
    "is_admin": False,
    "password_change_required": False,
    "totp_enabled": False,
    "totp_enabled_at": None,
    "recovery_codes_left": 0,
    "policy": {"force_2fa": False, "grace_period_days": 0},
    "enrollment_deadline": None,
    "last_login": None,
    "failed_attempts_since_last_login": 0,
}


def concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "1", path)


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


class TestDocument:
    async def test_is_valid_openapi_3_1(self, client: httpx.AsyncClient) -> None:
        response = await client.get(OPENAPI)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        document = response.json()
        assert document["openapi"] == "3.1.0"
        validate(document)

    async def test_served_document_is_the_one_the_checker_uses(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        assert (await client.get(OPENAPI)).json() == server.contract.document

    def test_every_route_is_documented(self, server: RunningServer) -> None:
        documented = operations(server.contract.document)
        routes = {(route.method, route.path): route for route in server.app.api.routes}
        assert set(documented) == set(routes)
        for key, route in routes.items():
            operation = documented[key]
            assert operation["operationId"] == route.operation_id
            assert str(route.status) in operation["responses"]
            assert ("security" in operation) == (route.auth != "none")
        ids = [operation["operationId"] for operation in documented.values()]
        assert len(ids) == len(set(ids))

    async def test_every_documented_operation_is_served(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """No token and no body: the route must still be found (401 or 400), never 404/405."""
        for method, path in operations(server.contract.document):
            response = await client.request(method, concrete(path))
            assert response.status_code not in (404, 405), (method, path, response.text)
            if response.status_code >= 400:
                assert response.json()["error"] not in ("not_found", "method_not_allowed")

    def test_every_link_leads_to_a_real_parameter_of_a_real_operation(
        self, server: RunningServer
    ) -> None:
        documented = operations(server.contract.document).values()
        by_id = {operation["operationId"]: operation for operation in documented}
        links = [
            link
            for operation in documented
            for response in operation["responses"].values()
            for link in response.get("links", {}).values()
        ]
        assert len(links) >= 10
        for link in links:
            target = by_id[link["operationId"]]
            names = {param["name"] for param in target.get("parameters", [])}
            for name, expression in link["parameters"].items():
                assert name.removeprefix("query.") in names, (link, name)
                assert expression.startswith(("$response.body#/", "$request.query.")), expression

    def test_every_schema_reference_resolves(self, server: RunningServer) -> None:
        document = server.contract.document
        text = repr(document)
        names = set(re.findall(r"#/components/schemas/([A-Za-z]+)", text))
        assert names
        assert names <= set(document["components"]["schemas"])


class TestRequestBodies:
    def test_bodies_are_closed_with_the_right_required_fields(self, server: RunningServer) -> None:
        bodies = {
            operation["operationId"]: operation["requestBody"]
            for operation in operations(server.contract.document).values()
            if "requestBody" in operation
        }
        assert set(bodies) == set(REQUEST_BODIES)
        for operation_id, request_body in bodies.items():
            assert request_body["required"] is (operation_id not in OPTIONAL_BODIES)
            schema = request_body["content"]["application/json"]["schema"]
            required, fields = REQUEST_BODIES[operation_id]
            assert schema["type"] == "object"
            assert schema["additionalProperties"] is False, operation_id
            assert schema["required"] == required, operation_id
            assert set(schema["properties"]) == fields, operation_id

    async def test_server_enforces_what_the_document_says(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Bodies are checked after authentication: an administrator's session reaches them all
        (the second-factor routes check their challenge after the body), a service key the
        verify API."""
        await server.add_user("root", admin=True)
        session = bearer((await login(client, "root"))["token"])
        added = await Admin(server.core).add_service(Actor("test", None), "svc", "")
        for (method, path), operation in operations(server.contract.document).items():
            operation_id = operation["operationId"]
            if operation_id not in VALID_BODIES:
                continue
            service = operation.get("security") == [{"serviceKey": []}]
            auth = bearer(added.key) if service else session
            url = concrete(path)
            valid = VALID_BODIES[operation_id]
            extra = await client.request(method, url, json={**valid, "unexpected": 1}, headers=auth)
            assert_error(extra, 400, "invalid_request")
            for name in REQUEST_BODIES[operation_id][0]:
                missing = {key: value for key, value in valid.items() if key != name}
                response = await client.request(method, url, json=missing, headers=auth)
                assert_error(response, 400, "invalid_request")
            accepted = await client.request(method, url, json=valid, headers=auth)
            assert accepted.status_code != 400, (operation_id, accepted.text)

    async def test_routes_without_a_body_refuse_one(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        response = await client.post(
            "/api/v1/me/totp/setup", headers=bearer(token), json={"anything": 1}
        )
        assert_error(response, 400, "invalid_request")


class TestContractChecker:
    async def test_real_responses_are_checked(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        before = server.contract.checked
        await client.get("/healthz")
        await client.get("/api/v1/me")
        await client.post("/api/v1/login", json={"username": "x", "password": "y"})
        assert server.contract.checked == before + 3
        await client.get("/api/v1/no-such-thing")
        assert server.contract.checked == before + 3

    def _check(
        self,
        contract: Contract,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        **kwargs: Any,
    ) -> None:
        request = httpx.Request(method, f"http://127.0.0.1{path}")
        if body is not None:
            kwargs["json"] = body
        contract.check(httpx.Response(status, request=request, **kwargs))

    def test_valid_fabricated_responses_pass(self, server: RunningServer) -> None:
        contract = Contract(server.contract.document)
        self._check(contract, "GET", "/api/v1/me", 200, VALID_ME)
        self._check(contract, "GET", "/api/v1/me", 401, {"error": "unauthorized", "message": "m"})
        self._check(contract, "GET", "/api/v1/me/history", 200, {"items": [], "next_before": None})
        assert contract.checked == 3
        day = {"day": "2026-11-28", "succeeded": 2, "failed": 1}
        leaders = {"addresses": [], "accounts": []}
        self._check(
            contract, "GET", "/api/v1/me/activity", 200, {"days": [day], "last_failure": None}
        )
        everyone = {
            "days": [day],
            "last_failure": None,
            "last_24_hours": leaders,
            "last_7_days": leaders,
        }
        self._check(contract, "GET", "/api/v1/admin/activity", 200, everyone)
        self._check(contract, "GET", "/api/v1/admin/users", 200, {"items": [], "next_after": None})
        assert contract.checked == 6
        # A documented empty response passes too; `checked` counts validated bodies only.
        self._check(contract, "POST", "/api/v1/logout", 204)
        assert contract.checked == 6

    @pytest.mark.parametrize(
        ("method", "path", "status", "body"),
        [
            ("GET", "/api/v1/me", 200, {"username": "alice"}),
            ("GET", "/api/v1/me", 200, {**VALID_ME, "password_hash": "x"}),
            ("GET", "/api/v1/me", 200, {**VALID_ME, "is_admin": "no"}),
            ("GET", "/api/v1/me", 200, {**VALID_ME, "recovery_codes_left": -1}),
            ("GET", "/api/v1/me", 401, {"error": 401}),
            ("GET", "/api/v1/me", 418, {"teapot": True}),
            ("GET", "/healthz", 200, {"status": "fine"}),
            (
                "POST",
                "/api/v1/me/totp/confirm",
                200,
                {"recovery_codes": ["0000-1111-OOOO"]},
            ),
            (
                "DELETE",
                "/api/v1/me/totp",
                200,
                {"totp_enabled": True, "logged_out": False},
            ),
            (
                "GET",
                "/api/v1/me/sessions",
                200,
                {"items": [{"id": 1}]},
            ),
            (
                "GET",
                "/api/v1/me/activity",
                200,
                {
                    "days": [{"day": "2026-11-28", "succeeded": -1, "failed": 0}],
                    "last_failure": None,
                },
            ),
            (
                "GET",
                "/api/v1/me/activity",
                200,
                {
                    "days": [{"day": "28/11/2026", "succeeded": 1, "failed": 0}],
                    "last_failure": None,
                },
            ),
            ("GET", "/api/v1/admin/activity", 200, {"days": [], "last_failure": None}),
            ("GET", "/api/v1/admin/users", 200, {"items": []}),
            ("GET", "/api/v1/admin/users/alice", 200, {"username": "alice"}),
        ],
    )
    def test_schema_violations_are_caught(
        self, server: RunningServer, method: str, path: str, status: int, body: Any
    ) -> None:
        contract = Contract(server.contract.document)
        with pytest.raises(ContractViolation):
            self._check(contract, method, path, status, body)
        assert contract.checked == 0

    def test_body_on_a_no_content_response_is_caught(self, server: RunningServer) -> None:
        contract = Contract(server.contract.document)
        with pytest.raises(ContractViolation, match="unexpected body"):
            self._check(contract, "POST", "/api/v1/logout", 204, {"bye": True})

    def test_non_json_response_is_caught(self, server: RunningServer) -> None:
        contract = Contract(server.contract.document)
        with pytest.raises(ContractViolation, match="not JSON"):
            self._check(contract, "GET", "/api/v1/me", 200, text="<html></html>")

    def test_undocumented_status_is_caught(self) -> None:
        document = {
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/x": {"get": {"responses": {"200": {"description": "ok"}}}}},
            "components": {"schemas": {}},
        }
        contract = Contract(document)
        with pytest.raises(ContractViolation, match="does not document"):
            self._check(contract, "GET", "/x", 500)


class TestUnknownAddresses:
    @pytest.mark.parametrize(
        "path",
        [
            "/",
            "/api/v1",
            "/api/v2/me",
            "/api/v1/me/extra",
            "/api/v1/admin/users/alice/extra",
            "/api/v1/me/sessions/1/2",
            "/API/V1/ME",
        ],
    )
    async def test_unknown_path_is_404(self, client: httpx.AsyncClient, path: str) -> None:
        assert_error(await client.get(path), 404, "not_found")

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("DELETE", "/api/v1/login", "POST"),
            ("GET", "/api/v1/login/totp", "POST"),
            ("PATCH", "/api/v1/admin/policy", "GET, PUT"),
            ("DELETE", "/api/v1/admin/users", "GET, POST"),
            ("GET", "/api/v1/me/totp", "DELETE"),
            ("POST", "/healthz", "GET"),
            ("GET", "/api/v1/me/sessions/7", "DELETE"),
        ],
    )
    async def test_wrong_method_is_405_with_allow(
        self, client: httpx.AsyncClient, method: str, path: str, allow: str
    ) -> None:
        response = await client.request(method, path)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == allow
