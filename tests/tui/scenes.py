"""Every screen of the app in a fixed state: the snapshot tests and `make screenshots` use these.

A scene runs the real demo server (its own thread) with a fixed clock, fixed randomness, a
fixed port and UTC, so the same pixels come out on every machine. Run
`python -m tests.tui.scenes DIR [WIDTH HEIGHT]` to write one SVG per scene into DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, TabbedContent

from tfa_server.demo_accounts import DEMO_ACCOUNTS
from tfa_tui.api.client import TfaClient
from tfa_tui.api.errors import ApiError
from tfa_tui.app import TfaApp
from tfa_tui.demo import DemoServer
from tfa_tui.session_store import SessionStore
from tfa_tui.widgets.demo_panel import DemoPanel

from ..conftest import FAST_HASHING, START, FakeClock
from .conftest import settle

PORT = 18421  # fixed, because the Sign in screen shows the server's address
AGENT = "tfa-tui/0.1.0 (workstation; Linux 6.1)"


class TickingClock(FakeClock):
    """A fixed start that moves a millisecond per reading, so events keep their order."""

    def now(self) -> float:
        self.value += 0.001
        return self.value


@dataclass
class World:
    app: TfaApp
    pilot: Pilot[None]
    server: DemoServer
    clock: FakeClock

    async def settle(self) -> None:
        await settle(self.app, self.pilot)

    async def sign_in(self, username: str) -> None:
        account = self.server.accounts.find(username)
        assert account is not None
        await self.pilot.press(*username, "tab", *account.password, "enter")
        await self.settle()

    def code(self, username: str) -> str:
        account = self.server.accounts.find(username)
        assert account is not None
        assert account.secret is not None
        return pyotp.TOTP(account.secret).at(self.clock.now())

    async def sign_in_with_code(self, username: str) -> None:
        await self.sign_in(username)
        await self.pilot.press(*self.code(username))
        await self.settle()
        self.clock.advance(30)

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)
        await self.settle()


Steps = Callable[[World], Awaitable[None]]


@dataclass(frozen=True)
class Scene:
    name: str
    steps: Steps
    demo: bool = False
    policy: tuple[bool, int] | None = None  # (force 2FA, grace days), set before the app starts
    size: tuple[int, int] = (80, 24)  # the snapshot's terminal


async def nothing(world: World) -> None:
    return None


async def wrong_password(world: World) -> None:
    await world.pilot.press(*"bob", "tab", *"not-it", "enter")
    await world.settle()


async def second_factor(world: World) -> None:
    await world.sign_in("alice")


async def recovery_code_instead(world: World) -> None:
    await world.sign_in("alice")
    await world.press("ctrl+r")


async def setup_install(world: World) -> None:
    await world.sign_in("bob")
    await world.press("enter")


async def setup_scan(world: World) -> None:
    await setup_install(world)
    await world.press("enter")


async def setup_verify(world: World) -> None:
    await setup_scan(world)
    await world.press("enter")
    await world.press(*"000000")


async def recovery_codes(world: World) -> None:
    await setup_scan(world)
    await world.press("enter")
    key = world.app.screen.query_one("#key").visual.plain  # type: ignore[attr-defined]
    await world.press(*pyotp.TOTP(key.replace(" ", "").replace("\n", "")).at(world.clock.now()))


async def security(world: World) -> None:
    await world.sign_in_with_code("alice")


async def history(world: World) -> None:
    await security(world)
    await world.press("h")


async def sessions(world: World) -> None:
    await security(world)
    await world.press("n")


async def disconnect_warning(world: World) -> None:
    await security(world)
    await world.pilot.click("#disconnect")
    await world.pilot.pause(0.2)


async def reauthenticate(world: World) -> None:
    await security(world)
    await world.pilot.click("#regenerate")
    await world.pilot.pause(0.2)
    alice = world.server.accounts.find("alice")
    assert alice is not None
    await world.pilot.press(*alice.password)


async def forced_setup(world: World) -> None:
    await world.sign_in("bob")


async def admin(world: World) -> None:
    await world.sign_in("admin")
    await world.press("a")


def admin_section(section: str) -> Steps:
    async def steps(world: World) -> None:
        await admin(world)
        world.app.screen.query_one("#admin-tabs", TabbedContent).active = f"admin-{section}"
        await world.settle()

    return steps


async def admin_policy_confirm(world: World) -> None:
    await admin(world)
    await world.pilot.click("#admin-force")
    await world.pilot.click("#admin-save")
    await world.settle()


async def admin_add_user(world: World) -> None:
    await admin_section("users")(world)
    await world.pilot.click("#admin-add")
    await world.settle()
    await world.pilot.press(*"carol")


async def admin_services(world: World) -> None:
    """Two services: one that sshd has used (through the PAM module), one never used yet."""
    await world.sign_in("admin")
    new = await world.app.api.add_service("sshd-bastion", "SSH on the bastion host")
    await world.app.api.add_service("sudo-web1", "")
    async with httpx.AsyncClient(base_url=world.server.url) as http:
        start = await http.post(
            "/api/v1/verify/start",
            json={"username": "alice", "remote_ip": "192.0.2.10"},
            headers={"Authorization": f"Bearer {new.key}", "User-Agent": "pam_tfa/0.1"},
        )
        start.raise_for_status()
    await world.press("v")
    await world.press("r")


async def admin_service_key(world: World) -> None:
    await admin_services(world)
    await world.press("plus")
    await world.press(*"git-host", "enter", *"git over SSH", "enter")


def admin_user(name: str, *keys: str) -> Steps:
    """Admin > Users with `name` selected, then `keys` (an action on it)."""

    async def steps(world: World) -> None:
        await admin_section("users")(world)
        table = world.app.screen.query_one("#admin-users-table", DataTable)
        usernames = [str(table.get_row_at(row)[0]) for row in range(table.row_count)]
        table.move_cursor(row=usernames.index(name))
        table.focus()
        await world.settle()
        await world.press(*keys)

    return steps


async def admin_users_states(world: World) -> None:
    """One account disabled, one waiting for a new password: the State column says so."""
    await world.sign_in("admin")
    await world.app.api.disable_user("alice")
    await world.app.api.reset_password("bob", "given-by-admin-42")
    # Signed in already: the section's key (admin_section would type the sign-in again).
    await world.press("u")
    await world.press("r")


async def admin_users_filtered(world: World) -> None:
    """Admin > Users narrowed as typed: the server's answer for the names containing "a"."""
    await admin_section("users")(world)
    world.app.screen.query_one("#admin-users-filter", Input).focus()
    await world.press("a")


async def change_password(world: World) -> None:
    await world.sign_in_with_code("alice")
    await world.press("c")
    await world.press(*"alice-demo", "tab", *"a longer passphrase")


async def choose_new_password(world: World) -> None:
    """bob's administrator set a temporary password; bob signs in with it."""
    async with httpx.AsyncClient(base_url=f"{world.server.url}/api/v1") as http:
        [admin] = [account for account in DEMO_ACCOUNTS if account.is_admin]
        credentials = {"username": admin.username, "password": admin.password}
        token = (await http.post("/login", json=credentials)).json()["token"]
        reset = await http.post(
            "/admin/users/bob/password",
            json={"password": "given-by-admin-42"},
            headers={"Authorization": f"Bearer {token}"},
        )
        reset.raise_for_status()
    await world.press(*"bob", "tab", *"given-by-admin-42", "enter")


async def sign_in_activity(world: World) -> None:
    """Three weeks of sign-ins after the demo's start, on known days: alice signs in most days
    (password and code), mistypes her password on some, and today someone tries her account
    and guessed names, through sshd from two addresses and here. The app then signs in."""
    alice = world.server.accounts.find("alice")
    assert alice is not None
    assert alice.secret is not None
    day = 86_400.0
    pattern = {1: (1, 0), 2: (2, 0), 4: (1, 1), 5: (1, 0), 8: (2, 0), 9: (1, 0), 11: (1, 3)}
    pattern |= {12: (1, 0), 15: (2, 0), 16: (1, 0), 18: (1, 1), 19: (1, 0), 20: (0, 2)}
    for offset, (right, wrong) in pattern.items():
        world.clock.value = START + offset * day + 8 * 3_600
        async with TfaClient(world.server.url, agent=AGENT) as api:
            for _ in range(wrong):
                with contextlib.suppress(ApiError):
                    await api.login("alice", "alice-typo")
            for _ in range(right):
                await api.login("alice", alice.password)
                await api.login_totp(pyotp.TOTP(alice.secret).at(world.clock.now()))
                world.clock.advance(3_600)
    admin = next(account for account in DEMO_ACCOUNTS if account.is_admin)
    async with TfaClient(world.server.url, agent=AGENT) as api:
        await api.login(admin.username, admin.password)
        key = (await api.add_service("sshd-bastion", "SSH on the bastion host")).key
    world.clock.value = START + 20 * day + 10 * 3_600  # today, 22:00: after alice's day
    async with TfaClient(world.server.url, agent=AGENT) as api:
        for name in ("root", "root", "root", "oracle"):  # guessed names: no such account
            with contextlib.suppress(ApiError):
                await api.login(name, "123456")
    guesses = [("alice", "203.0.113.9")] * 4 + [("alice", "198.51.100.23")]
    async with httpx.AsyncClient(base_url=world.server.url) as http:
        for username, address in guesses:
            await http.post(
                "/api/v1/verify",
                json={"username": username, "code": "000000", "remote_ip": address},
                headers={"Authorization": f"Bearer {key}", "User-Agent": "pam_tfa/0.1"},
            )
            world.clock.advance(60)
    world.clock.advance(3_600)  # the address's lock over: the app signs in at 23:05


async def security_activity(world: World) -> None:
    await sign_in_activity(world)
    await world.sign_in_with_code("alice")


async def admin_activity(world: World) -> None:
    await sign_in_activity(world)
    await admin_section("history")(world)


async def history_row_details(world: World) -> None:
    """Enter on a refused attempt: every field of the row, the reason and client included."""
    await history(world)
    table = world.app.screen.query_one("#history-table", DataTable)
    failed = [index for index in range(table.row_count) if "failed" in str(table.get_row_at(index))]
    table.move_cursor(row=failed[0])
    await world.press("enter")


async def key_map(world: World) -> None:
    await history(world)
    await world.press("question_mark")


SCENES = [
    Scene("sign-in", nothing, demo=True),
    Scene("sign-in-error", wrong_password),
    Scene("second-factor", second_factor),
    Scene("second-factor-recovery", recovery_code_instead),
    Scene("setup-1-install", setup_install),
    Scene("setup-2-scan", setup_scan),
    Scene("setup-3-verify", setup_verify),
    Scene("setup-4-recovery-codes", recovery_codes),
    Scene("setup-forced", forced_setup, policy=(True, 0)),
    Scene("home-security", security),
    Scene("home-history", history),
    Scene("home-sessions", sessions),
    Scene("disconnect-warning", disconnect_warning, policy=(True, 0)),
    Scene("reauthenticate", reauthenticate),
    Scene("change-password", change_password),
    Scene("choose-new-password", choose_new_password),
    Scene("admin-policy", admin),
    Scene("admin-policy-confirm", admin_policy_confirm),
    Scene("admin-users", admin_section("users")),
    Scene("admin-add-user", admin_add_user),
    Scene("admin-users-states", admin_users_states),
    Scene("admin-users-filtered", admin_users_filtered),
    Scene("admin-user-detail", admin_user("alice", "enter")),
    Scene("admin-set-password", admin_user("bob", "w")),
    Scene("admin-password-shown", admin_user("bob", "w", "enter")),
    Scene("admin-delete-user", admin_user("bob", "x")),
    Scene("admin-services", admin_services),
    Scene("admin-service-key", admin_service_key),
    Scene("admin-history", admin_section("history")),
    Scene("home-security-activity", security_activity),
    Scene("admin-history-activity", admin_activity),
    Scene("admin-audit", admin_section("audit"), policy=(False, 7)),
    Scene("history-row-details", history_row_details),
    Scene("key-map", key_map),
    Scene("home-history-demo", history, demo=True),
    Scene("setup-2-scan-demo-60x20", setup_scan, demo=True, size=(60, 20)),
]


@contextmanager
def fixed_world() -> Iterator[None]:
    """Fixed randomness (secrets, codes, tokens) and time zone, restored afterwards."""
    rng = random.Random(2026)
    saved = secrets.token_bytes, secrets.choice, os.environ.get("TZ")
    secrets.token_bytes = lambda n=32: rng.randbytes(32 if n is None else n)  # type: ignore[assignment]
    secrets.choice = rng.choice  # type: ignore[assignment]
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        secrets.token_bytes, secrets.choice = saved[0], saved[1]  # type: ignore[assignment]
        if saved[2] is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved[2]
        time.tzset()


@contextmanager
def staged(scene: Scene) -> Iterator[tuple[TfaApp, Callable[[Pilot[None]], Awaitable[None]]]]:
    """The app for `scene` and what to run in it before the picture is taken."""
    clock = TickingClock(START)
    with fixed_world():
        server = DemoServer(clock=clock, port=PORT, passwords=FAST_HASHING)
        url = server.start()
        try:
            if scene.policy is not None:
                set_policy(url, *scene.policy)
            store = SessionStore()
            store.available = False  # never the real keyring
            app = TfaApp(
                TfaClient(url, agent=AGENT),
                store=store,
                demo=server.accounts if scene.demo else None,
            )

            async def run(pilot: Pilot[None]) -> None:
                world = World(app, pilot, server, clock)
                await world.settle()
                await scene.steps(world)
                for field in app.screen.query(Input):
                    field.cursor_blink = False
                for strip in app.screen.query(DemoPanel):
                    strip.tick()  # its once-a-second tick may not have seen the last advance
                await world.settle()

            yield app, run
        finally:
            server.stop()


def set_policy(url: str, force_2fa: bool, grace_period_days: int) -> None:
    """Set the policy as the demo administrator would, over the API."""
    with httpx.Client(base_url=f"{url}/api/v1", headers={"User-Agent": AGENT}) as http:
        [admin] = [account for account in DEMO_ACCOUNTS if account.is_admin]
        credentials = {"username": admin.username, "password": admin.password}
        token = http.post("/login", json=credentials)
        headers = {"Authorization": f"Bearer {token.json()['token']}"}
        body = {"force_2fa": force_2fa, "grace_period_days": grace_period_days}
        http.put("/admin/policy", headers=headers, json=body).raise_for_status()
        http.post("/logout", headers=headers)


async def save_all(folder: Path, size: tuple[int, int]) -> None:
    for scene in SCENES:
        with staged(scene) as (app, run):
            # A scene made for a size of its own keeps it.
            async with app.run_test(size=size if scene.size == (80, 24) else scene.size) as pilot:
                await run(pilot)
                app.save_screenshot(f"{scene.name}.svg", str(folder))
        print(f"{folder / scene.name}.svg")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")
    width, height = (int(arg) for arg in sys.argv[2:4]) if len(sys.argv) > 3 else (100, 30)
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(save_all(target, (width, height)))
