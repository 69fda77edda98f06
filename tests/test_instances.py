"""Two `tfa-server` processes sharing one PostgreSQL database keep every guarantee one has.

Each instance runs in its own working directory with its own copy of the key file, on its
own port; nothing is shared but the database. Both trust 127.0.0.1 as their load balancer,
so each test speaks for client addresses of its own (X-Forwarded-For) and the tests do not
spend each other's per-address budget. The clock is the real one: a test uses the current
TOTP step and the next (both inside the accepted window), and recovery codes beyond that.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyotp
import pytest
import pytest_asyncio

from .conftest import PASSWORD, bearer
from .instances import Instance, Pair, two_instances
from .scale import instances_scale

pytestmark = pytest.mark.asyncio(loop_scope="module")
FREE_FAILURES = 5  # the default --lock-after
ADDRESS_LIMIT = 30  # the default --ip-max-failures


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    folder = tmp_path_factory.mktemp("instances")
    async with two_instances(folder, "--trusted-proxy", "127.0.0.1") as running:
        # With 2FA, so forcing it leaves the administrator's session whole.
        _, _, running.root = await Client(running, "198.51.100.250").with_2fa("root", admin=True)
        yield running


class Client:
    """One person at one address, who may talk to either instance."""

    def __init__(self, pair: Pair, address: str) -> None:
        self.pair = pair
        self.headers = {"X-Forwarded-For": address, "User-Agent": "tfa-tests/1.0"}

    async def call(
        self, instance: Instance, method: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(self.headers)
        if token:
            headers.update(bearer(token))
        async with instance.client() as http:
            return await http.request(method, path, headers=headers, **kw)

    async def login(
        self, instance: Instance, name: str, password: str = PASSWORD
    ) -> httpx.Response:
        body = {"username": name, "password": password}
        return await self.call(instance, "POST", "/api/v1/login", json=body)

    async def token(self, instance: Instance, name: str) -> str:
        response = await self.login(instance, name)
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    async def with_2fa(
        self, name: str, *, admin: bool = False
    ) -> tuple[pyotp.TOTP, list[str], str]:
        """Set up on A with the current step's code; (the authenticator, recovery codes, A's
        full session). The next step's code is still free for one sign-in."""
        await self.pair.add_user(name, admin=admin)
        token = await self.token(self.pair.a, name)
        setup = await self.call(self.pair.a, "POST", "/api/v1/me/totp/setup", token)
        totp = pyotp.TOTP(setup.json()["secret"])
        confirm = await self.call(
            self.pair.a, "POST", "/api/v1/me/totp/confirm", token, json={"code": totp.now()}
        )
        assert confirm.status_code == 200, confirm.text
        return totp, confirm.json()["recovery_codes"], token

    async def set_force(self, instance: Instance, force: bool) -> None:
        body = {"force_2fa": force, "grace_period_days": 0}
        root = self.pair.root
        response = await self.call(instance, "PUT", "/api/v1/admin/policy", root, json=body)
        assert response.status_code == 200, response.text


def next_code(totp: pyotp.TOTP) -> str:
    """The next step's code: accepted now (one step either side), unused so far."""
    return str(totp.at(time.time() + totp.interval))


def outcome(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    return response.status_code, body.get("error") or body.get("status", "")


async def test_a_code_accepted_by_one_instance_is_refused_by_the_other(pair: Pair) -> None:
    """TOTP's last step lives in the database: B sees that A spent it."""
    person = Client(pair, "198.51.100.1")
    totp, _, _ = await person.with_2fa("ann")
    code = next_code(totp)
    on_a = (await person.login(pair.a, "ann")).json()["token"]
    on_b = (await person.login(pair.b, "ann")).json()["token"]
    first = await person.call(pair.a, "POST", "/api/v1/login/totp", on_a, json={"code": code})
    assert outcome(first) == (200, "authenticated")
    again = await person.call(pair.b, "POST", "/api/v1/login/totp", on_b, json={"code": code})
    assert outcome(again) == (401, "code_reused")
    me = await person.call(pair.b, "GET", "/api/v1/me", first.json()["token"])
    assert me.status_code == 200  # A's session is good on B


async def test_one_recovery_code_sent_to_both_at_once_works_once(pair: Pair) -> None:
    person = Client(pair, "198.51.100.2")
    _, codes, _ = await person.with_2fa("bea")
    challenges = [
        (instance, (await person.login(instance, "bea")).json()["token"])
        for instance in (pair.a, pair.b, pair.a, pair.b)
    ]
    responses = await asyncio.gather(
        *(
            person.call(instance, "POST", "/api/v1/login/recovery", token, json={"code": codes[0]})
            for instance, token in challenges
        )
    )
    assert Counter(outcome(r) for r in responses) == {
        (200, "authenticated"): 1,
        (401, "code_reused"): 3,
    }


async def test_failures_spread_over_both_lock_the_account_on_both(pair: Pair) -> None:
    """The account's failure count is one row: five wrong passwords, alternately on A and
    B, lock it for both."""
    person = Client(pair, "198.51.100.3")
    await pair.add_user("cid")
    for attempt in range(FREE_FAILURES):
        instance = (pair.a, pair.b)[attempt % 2]
        wrong = await person.login(instance, "cid", "not the password")
        assert outcome(wrong) == (401, "invalid_credentials"), attempt
    for instance in (pair.a, pair.b):
        locked = await person.login(instance, "cid")  # even the right password waits
        assert outcome(locked) == (429, "too_many_attempts")
        assert int(locked.headers["Retry-After"]) > 0


async def test_parallel_guesses_over_both_cannot_overrun_the_account_limit(pair: Pair) -> None:
    """20 wrong passwords at once, half to each instance: the account's lease lets one
    request at a time check a password for it, wherever it arrives, so exactly the five
    free failures are evaluated and the rest are refused unevaluated."""
    person = Client(pair, "198.51.100.8")
    await pair.add_user("gus")
    responses = await asyncio.gather(
        *(person.login((pair.a, pair.b)[index % 2], "gus", f"wrong {index}") for index in range(20))
    )
    assert Counter(outcome(r) for r in responses) == {
        (401, "invalid_credentials"): FREE_FAILURES,
        (429, "too_many_attempts"): 20 - FREE_FAILURES,
    }


async def test_an_address_budget_spent_on_one_instance_is_spent_on_the_other(pair: Pair) -> None:
    """Failed attempts per client address are rows too: spent on A, B refuses at once, for
    any name."""
    person = Client(pair, "198.51.100.4")
    spent = await asyncio.gather(
        *(person.login(pair.a, f"nobody{index}", "guess") for index in range(ADDRESS_LIMIT))
    )
    assert {outcome(r) for r in spent} == {(401, "invalid_credentials")}
    await pair.add_user("dot")
    for instance in (pair.b, pair.a):
        refused = await person.login(instance, "dot")
        assert outcome(refused) == (429, "too_many_attempts")
    other = Client(pair, "198.51.100.5")  # another address is not affected
    assert (await other.login(pair.b, "dot")).status_code == 200


async def test_a_forced_policy_disconnect_on_one_ends_the_sessions_on_the_other(
    pair: Pair,
) -> None:
    person = Client(pair, "198.51.100.6")
    totp, codes, on_a = await person.with_2fa("eve")
    challenge = (await person.login(pair.b, "eve")).json()["token"]
    signed = await person.call(
        pair.b, "POST", "/api/v1/login/totp", challenge, json={"code": next_code(totp)}
    )
    on_b = signed.json()["token"]
    await person.set_force(pair.a, True)
    try:
        body = {"password": PASSWORD, "code": codes[0], "acknowledge_forced_policy": True}
        off = await person.call(pair.a, "DELETE", "/api/v1/me/totp", on_a, json=body)
        assert off.json() == {"totp_enabled": False, "logged_out": True}
        for instance, token in ((pair.b, on_b), (pair.a, on_a), (pair.b, on_a)):
            me = await person.call(instance, "GET", "/api/v1/me", token)
            assert outcome(me) == (401, "unauthorized")
        again = await person.login(pair.b, "eve")
        assert outcome(again) == (200, "enrollment_required")
    finally:
        await person.set_force(pair.a, False)


async def test_a_policy_change_on_one_applies_on_the_other_at_the_next_request(
    pair: Pair,
) -> None:
    person = Client(pair, "198.51.100.7")
    await pair.add_user("fay")
    assert outcome(await person.login(pair.b, "fay")) == (200, "authenticated")
    await person.set_force(pair.a, True)
    try:
        assert outcome(await person.login(pair.b, "fay")) == (200, "enrollment_required")
        policy = await person.call(pair.b, "GET", "/api/v1/admin/policy", pair.root)
        assert policy.json()["force_2fa"] is True
    finally:
        await person.set_force(pair.a, False)
    assert outcome(await person.login(pair.b, "fay")) == (200, "authenticated")


async def test_the_scale_out_measurement_still_runs() -> None:
    """tests/scale/instances_scale.py (run at full size by `make stress`) measures both
    setups and prints a row for each."""
    options = argparse.Namespace(accounts=3, clients=2, seconds=0.3, reads=5)
    results = await instances_scale.run(options)
    assert [result.setup for result in results] == [
        "1 instance, SQLite",
        "2 instances, PostgreSQL",
    ]
    for result in results:
        assert result.sign_ins > 0
        assert result.refused == 0
        assert 0 < result.me_p50 <= result.me_p99
    assert "| 2 instances, PostgreSQL |" in instances_scale.table(results, options)
