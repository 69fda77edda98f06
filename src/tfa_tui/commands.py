"""Command palette entries for the main actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from collections.abc import Callable

    from tfa_tui.app import TfaApp


class TfaCommands(Provider):
    """Places and actions, each offered only where it applies; an action runs exactly what its
    button or key runs (the same method), so both behave the same."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        from tfa_tui.screens.home import HomeScreen

        app = cast("TfaApp", self.app)
        found: list[tuple[str, str, Callable[[], object]]] = []
        screen = self.screen  # the screen under the palette
        if isinstance(screen, HomeScreen):
            me = screen.me
            found += [
                (
                    "Open security",
                    "2FA status and recovery codes (s)",
                    lambda: screen.action_tab("security"),
                ),
                ("Open history", "Your sign-in history (h)", lambda: screen.action_tab("history")),
                (
                    "Open sessions",
                    "Where you are signed in (n)",
                    lambda: screen.action_tab("sessions"),
                ),
                (
                    "Change password",
                    "Your other sessions are signed out (c)",
                    screen.action_change_password,
                ),
            ]
            if me.totp_enabled:
                found.append(
                    (
                        "New recovery codes",
                        "The ones you have stop working (g)",
                        screen.action_new_codes,
                    )
                )
            else:
                found.append(
                    (
                        "Connect authenticator app",
                        "Set up two-factor authentication",
                        screen.action_connect,
                    )
                )
            if me.is_admin:
                forced = screen.policy_forced
                found += [
                    (
                        "Open admin",
                        "Policy, users, services, history, audit (a)",
                        lambda: screen.action_tab("admin"),
                    ),
                    ("Add user", "Create an account (+ in Admin, Users)", screen.action_add_user),
                    (
                        "Add service",
                        "Let a program (sshd, sudo) check codes (+ in Admin, Services)",
                        screen.action_add_service,
                    ),
                    (
                        "Force 2FA off" if forced else "Force 2FA on",
                        "Change the policy, after a confirmation",
                        lambda: screen.action_force_2fa(not forced),
                    ),
                ]
            found += [
                ("Refresh", "Load everything again (r)", screen.action_refresh),
                ("Sign out", "End this session (Ctrl+O)", screen.action_sign_out),
            ]
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
