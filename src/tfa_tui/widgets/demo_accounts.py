"""DEMO only: the demo accounts on the Sign in screen, with what the server says of each."""

from __future__ import annotations

from textual import work
from textual.content import Content
from textual.widgets import Static

from tfa_tui.demo import DemoAccounts
from tfa_tui.plain import template


def accounts_text(accounts: DemoAccounts) -> Content:
    return Content("\n").join(
        template(
            "[b]$name[/b] $password $about",
            name=f"{account.username:<6}",
            password=f"{account.password:<11}",
            about=account.description,
        )
        for account in accounts.accounts
    )


class DemoAccountsBox(Static):
    """Usernames and passwords to try, and each account's 2FA state.

    The state is read from the demo server each time the box is shown (a Sign in screen is
    new after every sign-out), since people connect and disconnect apps meanwhile.
    """

    def __init__(self, accounts: DemoAccounts) -> None:
        super().__init__(accounts_text(accounts), id="demo-accounts")
        self.accounts = accounts
        self.border_title = "Demo accounts: username, password"

    def on_mount(self) -> None:
        self.follow_the_server()

    @work(exclusive=True, exit_on_error=False, group="demo-accounts")
    async def follow_the_server(self) -> None:
        await self.accounts.refresh()  # on the server's thread: this loop only awaits
        self.update(accounts_text(self.accounts))
