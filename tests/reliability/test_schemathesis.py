"""Schemathesis against the running server's own OpenAPI document, every operation.

Valid and invalid data (positive and negative generation). Each case gets the kind of token
its operation asks for, freshly made, so a case that logs out or revokes does not spoil the
next; cases meant to lack a valid token keep lacking it. No response may be a 5xx or break the
schema it documents. Then the stateful phase: sequences that follow the document's links (a
created account to its reset, unlock and history; a session list to a revocation; a page to the
next one).

The figures come from schemathesis itself: its `after_validate` hook hands over the result of
every check on every response, with the phase that generated the case, and the state machine's
own step inputs say which link each step followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import tempfile
import threading
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import hypothesis
import pyotp
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import CheckResult
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from tfa_server.admin import Actor, Admin
from tfa_server.app import Application, open_core

from .. import postgres
from ..conftest import BACKENDS, PASSWORD, FakeClock, RunningServer, start_server
from .figures import Figures, on_backend, scaled

GROUP = "Outside tools"
T = TypeVar("T")
EXAMPLES = scaled(6, 60)
# On PostgreSQL the same cases mostly meet the same code; what differs is the storage under
# it (text it refuses, types it is strict about), which fewer examples per operation reach.
POSTGRES_EXAMPLES = scaled(3, 60)
SCENARIOS = scaled(35, 150)  # per walk; see WALK_LENGTHS
# Steps per scenario of each further walk, while a kind of link is still missing.
WALK_LENGTHS = (6, 8, 10, 4, 12, 5)
FIXED = (
    "'before' with 19 digits (up to the documented 2^62) was refused → accepted; whole numbers"
    " written 7.0 were refused though JSON Schema calls them integers → accepted; the username"
    " pattern and new-password length were missing from the document → documented; an empty"
    " '?before=' was read as no value → refused (400); 'Transfer-Encoding: Ib' got 501 though"
    " RFC 9112 demands 400 and close when chunked is not the last coding → 400 and close"
)
# The kinds of link in the document; the stateful phase must follow each of them.
LINK_KINDS = {
    "ResetUser2fa",
    "UnlockUser",
    "UserHistory",
    "RevokeSession",
    "NextPage",
    "RevokeService",
    "ResetUserPassword",
    "DisableUser",
    "EnableUser",
    "UpdateUser",
    "DeleteUser",
}


class ServerThread:
    """The real server on its own loop and thread, because schemathesis calls it blocking."""

    def __init__(self, database_url: str | None) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="tfa-schemathesis-")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clock = FakeClock()
        self.database_url = database_url
        self.server: RunningServer = self.run(
            start_server(Path(self.folder.name), self.clock, db_url=database_url)
        )
        self.start_copy = Path(self.folder.name) / "start.sqlite3"
        self.start_time = self.clock.now()
        self.statuses: Counter[int] = Counter()
        # What schemathesis checked: responses per phase, and each check that failed.
        self.checked: Counter[str] = Counter()
        self.checks: set[str] = set()
        self.failures: list[tuple[str, str]] = []
        self.scenarios = 0
        self.steps = 0
        self.followed: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()  # stateful steps by operation and status
        self.service_key = ""  # for the verify API

    def note_checks(self, case: Case, results: list[CheckResult]) -> None:
        """From schemathesis' `after_validate` hook: one checked response and its results."""
        phase = case.meta.phase.name.value if case.meta is not None else "unknown"
        self.checked[phase] += 1
        self.checks.update(result.name for result in results)
        self.failures += [
            (phase, f"{case.operation.label}: {result.failure.title}")
            for result in results
            if result.failure is not None
        ]

    def failed(self, *, stateful: bool) -> list[str]:
        return sorted({what for phase, what in self.failures if (phase == "stateful") == stateful})

    def keep_as_start(self) -> None:
        """Remember the database and the time as they are now, for `restart_from_start`
        (the stateful phase, which runs on SQLite: a file copy per scenario is cheap)."""
        if self.server.settings.db_path is not None:
            self._copy(self.server.settings.db_path, self.start_copy)
        self.start_time = self.clock.now()

    def restart_from_start(self) -> None:
        """The server restarted on the same port over the remembered database, at the
        remembered time: every scenario of the stateful phase meets the same accounts, history,
        throttles and clock whatever ran before it, so a replayed scenario gets the same answers
        (hypothesis stops with FlakyStrategyDefinition otherwise) and the walk is the same on
        every run."""
        port = self.server.app.port
        assert self.server.settings.db_path is not None, "the stateful phase runs on SQLite"
        self.run(self.server.app.stop())
        self._copy(self.start_copy, self.server.settings.db_path)
        self.clock.value = self.start_time
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


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    """The server on each backend: the generated cases run against both (PostgreSQL refuses
    what SQLite stores, a NUL in text for one, so a 500 could hide on one backend alone)."""
    with contextlib.ExitStack() as stack:
        url = None
        if request.param == "postgresql":
            url = stack.enter_context(postgres.server().database())
        running = ServerThread(url)
        stack.callback(running.stop)
        yield from _populated(running)


def _populated(running: ServerThread) -> Iterator[ServerThread]:
    server = running.server
    running.run(server.add_user("root", admin=True))
    # First in the user list, so the list's links (set its password, disable, delete) reach
    # this account rather than those the cases sign in with: a walk that disabled bob would
    # leave the next cases without a session.
    running.run(server.add_user("aaron"))
    running.run(server.add_user("bob"))
    running.run(server.add_user("carol"))
    with httpx.Client(base_url=server.base_url) as http:
        token = http.post("/api/v1/login", json={"username": "carol", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['token']}"}
        secret = http.post("/api/v1/me/totp/setup", headers=auth).json()["secret"]
        code = pyotp.TOTP(secret).at(running.clock.now())
        assert http.post("/api/v1/me/totp/confirm", headers=auth, json={"code": code}).is_success
    added = running.run(Admin(server.core).add_service(Actor("test", None), "sshd", "bastion"))
    running.service_key = added.key
    running.keep_as_start()
    yield running


@pytest.fixture(scope="module")
def api_schema(world: ServerThread) -> Any:
    loaded = schemathesis.openapi.from_url(f"{world.server.base_url}/api/v1/openapi.json")
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES if world.database_url is None else POSTGRES_EXAMPLES,
        deterministic=True,
        database="none",
    )

    def after_validate(
        context: Any, case: Case, response: Response, results: list[CheckResult]
    ) -> None:
        world.note_checks(case, results)

    loaded.hooks.register_hook_with_name(after_validate, "after_validate")

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
    """A fresh token of the kind the operation needs; None for public operations; the
    service's key for the verify API."""
    if auth == "service":
        return world.service_key
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
    world.statuses[response.status_code] += 1
    assert response.status_code < 500


@pytest.mark.finding("F18")
def test_the_generated_cases_failed_no_check(world: ServerThread, figures: Figures) -> None:
    """Runs after the cases above and tallies them from schemathesis' own check results (each
    operation is also a pytest subtest of its own, which fails on the spot)."""
    phases = {phase: count for phase, count in world.checked.items() if phase != "stateful"}
    checked = sum(phases.values())
    failed = world.failed(stateful=False)
    figures.record(
        GROUP,
        f"schemathesis {schemathesis.__version__}: every operation of /api/v1/openapi.json,"
        f" positive and negative data, fresh tokens per case{on_backend(world.database_url)}"
        " (statuses seen:"
        f" {dict(sorted(world.statuses.items()))})",
        checked,
        f"{checked} responses checked by schemathesis"
        f" ({', '.join(f'{phase} phase {count}' for phase, count in sorted(phases.items()))}):"
        f" {len(world.checks)} checks each ({', '.join(sorted(world.checks))});"
        f" {len(failed)} failed a check{': ' if failed else ''}{'; '.join(failed)}",
        fixed=FIXED,
    )
    assert checked > 0, "no case ran: run this module whole"
    assert "not_a_server_error" in world.checks
    assert not failed


@pytest.mark.finding("F19")
@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_sequences_along_the_links_keep_the_contract(
    api_schema: Any, world: ServerThread, figures: Figures
) -> None:
    """The stateful phase must really walk the links: every kind of link in the document
    followed with its values filled in from the response before, and every response of every
    step through schemathesis' checks, none failed."""

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            world.scenarios += 1
            world.restart_from_start()
            fresh_start(world)

        def step(self, input: StepInput) -> StepOutput:
            if input.transition is not None and input.is_applied:
                # "GET /api/v1/me/history -> [200] NextPage -> ..." to "GET /me/history: NextPage"
                source, name, _ = input.transition.id.split(" -> ")
                link = f"{source.replace('/api/v1', '')}: {name.split()[-1]}"
                world.followed[link] += 1
            return super().step(input)

        def after_call(self, response: Response, case: Case) -> None:
            super().after_call(response, case)
            world.steps += 1
            world.answers[f"{case.operation.label} {response.status_code}"] += 1

    def kinds() -> set[str]:
        return {link.rsplit(": ", 1)[1] for link in world.followed}

    links = api_schema.statistic.transitions.total
    try:
        # Walks of other lengths when a kind of link is still missing: each walk is
        # deterministic, but which links it picks shifts with the document and with what
        # schemathesis learnt from the cases before, so one walk alone could miss one by luck.
        for steps in WALK_LENGTHS:
            Workflow.run(
                settings=hypothesis.settings(
                    max_examples=SCENARIOS,
                    stateful_step_count=steps,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    suppress_health_check=list(hypothesis.HealthCheck),
                )
            )
            if kinds() >= LINK_KINDS:
                break
    finally:
        failed = world.failed(stateful=True)
        figures.record(
            GROUP,
            f"schemathesis {schemathesis.__version__} stateful phase: {world.scenarios} scenarios"
            " of calls that follow the document's OpenAPI links (steps along each link:"
            f" {dict(sorted(world.followed.items()))})",
            world.steps,
            f"{world.checked['stateful']} responses checked by schemathesis;"
            f" {len(world.followed)} of the document's {links} links followed, on"
            f" {world.followed.total()} steps; {len(failed)} failed a check"
            f"{': ' if failed else ''}{'; '.join(failed)}",
        )
    assert not failed
    assert world.checked["stateful"] == world.steps > 0
    assert kinds() >= LINK_KINDS, (
        f"links never followed: {LINK_KINDS - kinds()}; steps: {dict(world.answers)}"
    )
