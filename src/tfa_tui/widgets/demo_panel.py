"""DEMO only: the live codes of the demo accounts, standing in for a phone."""

from __future__ import annotations

import pyotp
from textual.widgets import Static

from tfa_tui.demo import DemoAccounts


def codes_text(accounts: DemoAccounts, now: float) -> str:
    left = 30 - int(now) % 30
    lines = ["phone stand-in", f"new codes in {left:2d} s", ""]
    shown = False
    for account in accounts.accounts:
        if account.secret:
            code = pyotp.TOTP(account.secret).at(now)
            lines.append(f"{account.username:<10.10} [b]{code[:3]} {code[3:]}[/b]")
            shown = True
    if not shown:
        lines.append("No account has\n2FA yet.")
    return "\n".join(lines)


class DemoPanel(Static):
    DEFAULT_CSS = """
    DemoPanel {
        dock: right;
        width: 22;
        height: auto;
        border: round $warning;
        border-title-color: $warning;
        padding: 0 1;
    }
    """

    def __init__(self, accounts: DemoAccounts) -> None:
        super().__init__(id="demo-panel")
        self.accounts = accounts
        self.border_title = "DEMO"

    def on_mount(self) -> None:
        self.tick()
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        self.update(codes_text(self.accounts, self.accounts.now()))
