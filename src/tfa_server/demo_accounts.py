"""The demo accounts: the one set that `tfa-server demo` and `tfa --demo` both seed.

The passwords are printed and shown on purpose: a demo database is thrown away when its
process ends. The README's table of demo accounts lists the same (a test compares them).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from tfa_server import sessions, totp
from tfa_server.account import Account
from tfa_server.admin import Actor, Admin
from tfa_server.auth import SignIn
from tfa_server.core import Core, Origin
from tfa_server.errors import InvalidCredentials

SEEDED_BY = Origin("127.0.0.1", "tfa-demo-seed")  # what the history shows for the seeding


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    username: str
    password: str
    is_admin: bool = False
    with_2fa: bool = False  # seeded with an authenticator app connected
    wrong_passwords: tuple[str, ...] = ()  # failed sign-ins seeded into the history

    @property
    def note(self) -> str:
        """What else was seeded, beside the role and the 2FA state."""
        return "has failed attempts" if self.wrong_passwords else ""


DEMO_ACCOUNTS = (
    DemoCredentials("admin", "admin-demo", is_admin=True),
    DemoCredentials(
        "alice", "alice-demo", with_2fa=True, wrong_passwords=("alice123", "Alice-demo")
    ),
    DemoCredentials("bob", "bob-demo1"),
)


async def seed_demo_accounts(core: Core) -> dict[str, str]:
    """Create the demo accounts, and give each its 2FA and failed sign-ins the way a person
    would (so the history reads like a real account's); the TOTP secret of each account that
    has 2FA, by username, for the demo's stand-in phone."""
    admin = Admin(core)
    actor = Actor("cli:demo", None)
    for account in DEMO_ACCOUNTS:  # one by one: the audit log keeps this order
        await admin.create_user(actor, account.username, account.password, account.is_admin)
    secrets: dict[str, str] = {}
    sign_in = SignIn(core)
    for account in DEMO_ACCOUNTS:
        if account.with_2fa:
            secrets[account.username] = await _connect_app(core, sign_in, account)
        for wrong in account.wrong_passwords:
            with contextlib.suppress(InvalidCredentials):
                await sign_in.login(account.username, wrong, SEEDED_BY)
    return secrets


async def _connect_app(core: Core, sign_in: SignIn, account: DemoCredentials) -> str:
    signed = await sign_in.login(account.username, account.password, SEEDED_BY)
    caller = await sessions.resolve(core, f"Bearer {signed.token}", SEEDED_BY, least="enrollment")
    session = caller.session
    setup = Account(core, sign_in)
    secret = (await setup.totp_setup(session, None, SEEDED_BY)).secret
    # A code from the previous step (inside the window), so the code the phone shows right
    # now is still unused.
    rules = core.settings.totp
    code = totp.code_at(secret, totp.current_step(core.now(), rules) - 1, rules)
    await setup.totp_confirm(session, code, SEEDED_BY)
    await sign_in.logout(session, SEEDED_BY)
    return secret
