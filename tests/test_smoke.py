from __future__ import annotations

import httpx

from .conftest import RunningServer, bearer, enable_totp, login, sign_in_with_totp


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_full_flow(server: RunningServer, client: httpx.AsyncClient) -> None:
    await server.add_user("alice")
    first = await login(client, "alice")
    assert first["status"] == "authenticated"
    secret, codes = await enable_totp(client, first["token"], server.clock)
    assert len(codes) == 10
    signed = await sign_in_with_totp(client, "alice", secret, server.clock)
    me = await client.get("/api/v1/me", headers=bearer(signed["token"]))
    assert me.json()["totp_enabled"] is True
    assert server.contract.checked >= 5
