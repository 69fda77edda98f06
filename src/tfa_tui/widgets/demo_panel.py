"""DEMO only: the live codes of the demo accounts, standing in for a phone.

A strip above the footer, docked, so that the screen's content is laid out in what is left
and nothing is drawn over it (a panel docked on the right covered the tables' columns, the
Admin filter row and, at 60x20, the set-up's key and Next button). F2 hides or shows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyotp
from rich.text import Text
from textual.widgets import Static

from tfa_tui.plain import visible

if TYPE_CHECKING:
    from tfa_tui.demo import DemoAccounts


def codes_text(accounts: DemoAccounts, now: float) -> Text:
    """ " DEMO  alice 094 422  bob 123 456  new codes in 12 s": the label in reverse, the codes
    bold, so it reads without colour."""
    left = 30 - int(now) % 30
    parts: list[Text] = []
    for account in accounts.accounts:
        if account.secret:
            code = pyotp.TOTP(account.secret).at(now)
            parts.append(
                Text.assemble(
                    f"{visible(account.username):.10} ", (code[:3], "bold"), " ", (code[3:], "bold")
                )
            )
    codes = Text("   ").join(parts) if parts else Text("no account has 2FA yet")
    return Text.assemble(
        (" DEMO ", "reverse bold"),
        " phone: ",
        codes,
        f"   new codes in {left:2d} s",
    )


class DemoPanel(Static):
    DEFAULT_CSS = """
    DemoPanel {
        dock: bottom;
        height: auto;
        /* The footer's line: every full screen has a footer, and a dialog's strip lies over
           the strip of the screen under it. */
        margin-bottom: 1;
        padding: 0 1;
        background: $warning-muted;
        color: $foreground;
    }
    """

    def __init__(self, accounts: DemoAccounts) -> None:
        super().__init__(id="demo-panel")
        self.accounts = accounts

    def on_mount(self) -> None:
        self.tick()
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        self.update(codes_text(self.accounts, self.accounts.now()))
