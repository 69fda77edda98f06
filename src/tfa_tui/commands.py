"""Command palette entries for the main actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from collections.abc import Callable

    from tfa_tui.app import TfaApp


class TfaCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        from tfa_tui.screens.home import HomeScreen

        app = cast("TfaApp", self.app)
        found: list[tuple[str, str, Callable[[], object]]] = []
        screen = self.screen  # the screen under the palette
        if isinstance(screen, HomeScreen):
            found += [
                (
                    "Open security",
                    "2FA status and recovery codes",
                    lambda: screen.action_tab("security"),
                ),
                ("Open history", "Your sign-in history", lambda: screen.action_tab("history")),
                ("Open sessions", "Where you are signed in", lambda: screen.action_tab("sessions")),
                ("Sign out", "End this session", app.sign_out),
            ]
            if screen.me.is_admin:
                found.append(
                    (
                        "Open admin",
                        "Policy, users, history, audit",
                        lambda: screen.action_tab("admin"),
                    )
                )
        if app.demo is not None:
            found.append(
                ("Toggle DEMO codes", "Show or hide the demo authenticator", app.action_toggle_demo)
            )
        return found

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
