from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .conftest import RunningServer, bearer, enable_totp, login, sign_in_with_totp, start_server


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


async def test_stopping_twice_is_harmless(tmp_path: Path, database_url: str | None) -> None:
    running = await start_server(tmp_path, db_url=database_url)
    await running.app.stop()
    await running.app.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"{running.base_url}/healthz")
