"""The races of test_races.py across two `tfa-server` processes on one PostgreSQL database:
half of the 50 requests go to each instance, and still exactly one wins."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pyotp

from ..conftest import PASSWORD, bearer
from ..instances import Pair, two_instances
from .figures import Figures, scaled

GROUP = "Races"
CONCURRENT = 50


def outcome(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    return response.status_code, body.get("error") or body.get("status", "")


async def challenges(clients: list[httpx.AsyncClient], name: str) -> list[tuple[int, str]]:
    """50 password steps, alternately on A and B: (which client, the challenge)."""

    async def one(index: int) -> tuple[int, str]:
        body = {"username": name, "password": PASSWORD}
        response = await clients[index % 2].post("/api/v1/login", json=body)
        assert outcome(response) == (200, "totp_required"), response.text
        return index % 2, str(response.json()["token"])

    return list(await asyncio.gather(*(one(index) for index in range(CONCURRENT))))


async def submit(
    clients: list[httpx.AsyncClient], path: str, tokens: list[tuple[int, str]], code: str
) -> Counter[tuple[int, str]]:
    async def one(which: int, token: str) -> tuple[int, str]:
        return outcome(await clients[which].post(path, headers=bearer(token), json={"code": code}))

    return Counter(await asyncio.gather(*(one(which, token) for which, token in tokens)))


async def enrolled(pair: Pair, name: str) -> tuple[pyotp.TOTP, list[str]]:
    await pair.add_user(name)
    async with pair.a.client() as http:
        body = {"username": name, "password": PASSWORD}
        token = (await http.post("/api/v1/login", json=body)).json()["token"]
        setup = await http.post("/api/v1/me/totp/setup", headers=bearer(token))
        totp = pyotp.TOTP(setup.json()["secret"])
        confirm = await http.post(
            "/api/v1/me/totp/confirm", headers=bearer(token), json={"code": totp.now()}
        )
    return totp, confirm.json()["recovery_codes"]


async def test_same_code_across_two_instances(tmp_path: Path, figures: Figures) -> None:
    """One right TOTP code, and one recovery code, each sent by 50 challenges at once, 25 to
    each instance: one sign-in each, 49 code_reused. The TOTP round uses the next step's code
    (the current one set 2FA up); the recovery rounds take fresh codes."""
    rounds = scaled(1, 9)
    async with two_instances(tmp_path) as pair, pair.a.client() as a, pair.b.client() as b:
        totp, codes = await enrolled(pair, "alice")
        tokens = await challenges([a, b], "alice")
        code = totp.at(time.time() + totp.interval)
        totp_outcomes = await submit([a, b], "/api/v1/login/totp", tokens, code)
        assert totp_outcomes == {(200, "authenticated"): 1, (401, "code_reused"): 49}
        for round_ in range(rounds):
            tokens = await challenges([a, b], "alice")
            recovery = await submit([a, b], "/api/v1/login/recovery", tokens, codes[round_])
            assert recovery == {(200, "authenticated"): 1, (401, "code_reused"): 49}, round_
    figures.record(
        GROUP,
        f"{CONCURRENT} concurrent sign-ins with one TOTP code (1 round) and with one recovery"
        f" code ({rounds} rounds), half to each of two tfa-server processes on one PostgreSQL"
        " database",
        (1 + rounds) * CONCURRENT,
        f"each round exactly 1 signed in and {CONCURRENT - 1} got 401 code_reused",
    )
