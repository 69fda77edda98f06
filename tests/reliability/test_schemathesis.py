"""Schemathesis against the running server's own OpenAPI document, every operation.

Valid and invalid data (positive and negative generation). Each case gets the kind of token
its operation asks for, freshly made, so a case that logs out or revokes does not spoil the
next; cases meant to lack a valid token keep lacking it. No response may be a 5xx or break the
schema it documents. Then the stateful phase: sequences that follow the document's links (a
created account to its reset, unlock and history; a session list to a revocation; a page to the
next one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import hypothesis
import pyotp
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from tfa_server.admin import Actor, Admin
from tfa_server.app import Application, open_core

from ..conftest import PASSWORD, FakeClock, RunningServer, start_server
from .figures import record, scaled

T = TypeVar("T")
EXAMPLES = scaled(6, 60)
SCENARIOS = scaled(10, 150)
FIXED = (
    "'before' with 19 digits (up to the documented 2^62) was refused → accepted; whole numbers"
    " written 7.0 were refused though JSON Schema calls them integers → accepted; the username"
    " pattern and new-password length were missing from the document → documented; an empty"
    " '?before=' was read as no value → refused (400); 'Transfer-Encoding: Ib' got 501 though"
    " RFC 9112 demands 400 and close when chunked is not the last coding → 400 and close"
)


class ServerThread:
    """The real server on its own loop and thread, because schemathesis calls it blocking."""

    def __init__(self) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="tfa-schemathesis-")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clock = FakeClock()
        self.server: RunningServer = self.run(start_server(Path(self.folder.name), self.clock))
        self.start_copy = Path(self.folder.name) / "start.sqlite3"
        self.cases = 0
        self.statuses: dict[int, int] = {}
        self.steps = 0
        self.followed: dict[str, int] = {}

    def keep_as_start(self) -> None:
        """Remember the database as it is now, for `restart_from_start`."""
        self._copy(self.server.settings.db_path, self.start_copy)

    def restart_from_start(self) -> None:
        """The server restarted on the same port over the remembered database: every scenario of
        the stateful phase meets the same accounts, history and throttles, so a replayed scenario
        gets the same answers (hypothesis stops with FlakyStrategyDefinition otherwise)."""
        port = self.server.app.port
        self.run(self.server.app.stop())
        self._copy(self.start_copy, self.server.settings.db_path)
        app = Application(open_core(self.server.settings, self.clock))
        self.run(app.start("127.0.0.1", port))
        self.server = dataclasses.replace(self.server, app=app)

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        with (
            contextlib.closing(sqlite3.connect(source)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=60)

    def stop(self) -> None:
        self.run(self.server.app.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
        self.folder.cleanup()


@pytest.fixture(scope="module")
def world() -> Iterator[ServerThread]:
    running = ServerThread()
    server = running.server
    running.run(server.add_user("root", admin=True))
    running.run(server.add_user("bob"))
    running.run(server.add_user("carol"))
    with httpx.Client(base_url=server.base_url) as http:
        token = http.post("/api/v1/login", json={"username": "carol", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['token']}"}
        secret = http.post("/api/v1/me/totp/setup", headers=auth).json()["secret"]
        code = pyotp.TOTP(secret).at(running.clock.now())
        assert http.post("/api/v1/me/totp/confirm", headers=auth, json={"code": code}).is_success
    running.keep_as_start()
    yield running
    running.stop()
    statuses = dict(sorted(running.statuses.items()))
    if running.cases:
        record(
            "Outside tools",
            "schemathesis 4.32.5: every operation of /api/v1/openapi.json, positive and negative"
            f" data, fresh tokens per case (statuses seen: {statuses})",
            running.cases,
            "no 5xx, every response matched its documented schema, status and content type",
            fixed=FIXED,
        )
    if running.steps:
        record(
            "Outside tools",
            "schemathesis stateful phase: sequences of calls following the document's OpenAPI"
            f" links (links followed: {dict(sorted(running.followed.items()))})",
            running.steps,
            "no 5xx, every response matched its documented schema, status and content type",
        )


@pytest.fixture(scope="module")
def api_schema(world: ServerThread) -> Any:
    loaded = schemathesis.openapi.from_url(f"{world.server.base_url}/api/v1/openapi.json")
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES,
        deterministic=True,
        database="none",
    )

    @loaded.auth(refresh_interval=None)
    class FreshToken:
        """Schemathesis's own auth hook, so it knows which header is the credential: negative
        cases that drop or break it stay that way (and must get 401), the rest get a real one."""

        def get(self, case: Case, context: Any) -> str | None:
            return token_for(world, token_kind(world, case))

        def set(self, case: Case, token: str | None, context: Any) -> None:
            if token:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


def token_for(world: ServerThread, auth: str) -> str | None:
    """A fresh token of the kind the operation needs; None for public operations."""
    user = {"none": None, "challenge": "carol", "admin": "root"}.get(auth, "bob")
    if user is None:
        return None
    with httpx.Client(base_url=world.server.base_url) as http:
        answer = http.post("/api/v1/login", json={"username": user, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])


def fresh_start(world: ServerThread) -> None:
    """Wrong passwords and codes from earlier cases must not lock the fixture accounts or the
    address, and a case may have forced 2FA: start each case from a clean state."""
    world.clock.advance(16 * 60)
    world.run(Admin(world.server.core).set_policy(Actor("test", None), False, 0))


def token_kind(world: ServerThread, case: Case) -> str:
    # Negative data includes other methods on the same path (405 expected): same token kind.
    routes = world.server.app.api.routes
    return next(route.auth for route in routes if route.path == case.operation.path)


@schema.parametrize()
def test_every_operation_keeps_its_contract(case: Any, world: ServerThread) -> None:
    fresh_start(world)
    response = case.call_and_validate()
    world.cases += 1
    world.statuses[response.status_code] = world.statuses.get(response.status_code, 0) + 1
    assert response.status_code < 500


def test_sequences_along_the_links_keep_the_contract(api_schema: Any, world: ServerThread) -> None:
    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            world.restart_from_start()
            fresh_start(world)

        def step(self, input: StepInput) -> StepOutput:
            if input.transition is not None and input.applied_parameters:
                # "GET /api/v1/me/history -> [200] NextPage -> ..." to "GET /me/history: NextPage"
                source, name, _ = input.transition.id.split(" -> ")
                link = f"{source.replace('/api/v1', '')}: {name.split()[-1]}"
                world.followed[link] = world.followed.get(link, 0) + 1
            return super().step(input)

        def after_call(self, response: Response, case: Case) -> None:
            world.steps += 1
            assert response.status_code < 500, (case.operation.label, response.content)

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=SCENARIOS,
            stateful_step_count=6,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    assert world.steps > 0
