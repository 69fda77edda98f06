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
        self.sync_demo_panel()

    def sync_demo_panel(self) -> None:
        """The DEMO panel follows the person from screen to screen while it is switched on."""
        from tfa_tui.widgets.demo_panel import DemoPanel

        demo = self.tfa.demo
        panels = self.query(DemoPanel)
        if demo is not None and self.tfa.demo_visible and not panels:
            self.mount(DemoPanel(demo))
        elif not self.tfa.demo_visible:
            panels.remove()
