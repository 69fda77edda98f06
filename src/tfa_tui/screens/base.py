"""What every full screen of the app shares: access to the app, and the DEMO panel."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp


class TfaScreen(Screen[None]):
    @property
    def tfa(self) -> TfaApp:
        return cast("TfaApp", self.app)

    def on_screen_resume(self) -> None:
        self.tfa.sync_demo_panel(self)
