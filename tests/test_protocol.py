"""The wire types of tfa_protocol (issue 12) against the real server: every kind of answer the
server gives today decodes strictly (unknown fields refused) into its type, and encodes back to
the same JSON. This holds the types to the wire before the server and the client switch to them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgspec
import pytest

from tfa_protocol import types as wire

from .conftest import PASSWORD, RunningServer, bearer, enable_totp, login, sign_in_with_totp


def same_after_a_round_trip(response: httpx.Response, kind: Any) -> Any:
    """Decode strictly, then encode again: the same JSON, so nothing was lost or reshaped."""
    decoded = msgspec.json.decode(response.content, type=kind)
    assert json.loads(msgspec.json.encode(decoded)) == response.json()
    return decoded


async def test_every_answer_reads_into_its_type(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    await server.add_user("root", admin=True)
    await server.add_user("alice")
    root = (await login(client, "root"))["token"]
    first = await client.post("/api/v1/login", json={"username": "alice", "password": PASSWORD})
    signed_in = same_after_a_round_trip(first, wire.SignInResult)
    assert isinstance(signed_in, wire.Authenticated)
    token = signed_in.token

    same_after_a_round_trip(await client.get("/healthz"), wire.Health)
    me = same_after_a_round_trip(await client.get("/api/v1/me", headers=bearer(token)), wire.Me)
    assert me.totp_enabled is False
    assert me.enrollment_deadline is None
    setup = await client.post("/api/v1/me/totp/setup", headers=bearer(token))
    same_after_a_round_trip(setup, wire.TotpSetup)
    secret, _ = await enable_totp(client, token, server.clock)
    await client.post("/api/v1/login", json={"username": "alice", "password": "wrong one"})
    challenge = await client.post("/api/v1/login", json={"username": "alice", "password": PASSWORD})
    assert isinstance(same_after_a_round_trip(challenge, wire.SignInResult), wire.TotpRequired)
    full = (await sign_in_with_totp(client, "alice", secret, server.clock))["token"]

    for path, kind in [
        ("/api/v1/me/history", wire.HistoryPage),
        ("/api/v1/me/history?limit=1", wire.HistoryPage),
        ("/api/v1/me/sessions", wire.SessionList),
    ]:
        same_after_a_round_trip(await client.get(path, headers=bearer(full)), kind)
    for path, kind in [
        ("/api/v1/admin/policy", wire.Policy),
        ("/api/v1/admin/users", wire.UserList),
        ("/api/v1/admin/history", wire.AdminHistoryPage),
        ("/api/v1/admin/audit", wire.AuditPage),
    ]:
        same_after_a_round_trip(await client.get(path, headers=bearer(root)), kind)
    same_after_a_round_trip(
        await client.post("/api/v1/admin/users/alice/unlock", headers=bearer(root)),
        wire.AdminUser,
    )
    refused = await client.get("/api/v1/me", headers=bearer("not-a-token"))
    assert same_after_a_round_trip(refused, wire.Error).error == "unauthorized"


@pytest.mark.parametrize(
    ("body", "kind", "where"),
    [
        (b'{"username":"a","password":"p","extra":1}', wire.LoginRequest, "extra"),
        (b'{"username":"a"}', wire.LoginRequest, "password"),
        (b'{"force_2fa":true,"grace_period_days":366}', wire.PolicyRequest, "grace_period_days"),
        (b'{"force_2fa":"true","grace_period_days":1}', wire.PolicyRequest, "force_2fa"),
        (b'{"username":"-x","password":"long enough"}', wire.CreateUserRequest, "username"),
        (b'{"username":"x","password":"short"}', wire.CreateUserRequest, "password"),
    ],
)
def test_requests_out_of_shape_are_refused_naming_the_field(
    body: bytes, kind: Any, where: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match=where):
        msgspec.json.decode(body, type=kind)
