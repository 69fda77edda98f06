"""What an administrator does to one account, wherever it is chosen (Admin > Users, or the
account's own detail screen): each act asks first and says what happens, calls the server,
then says what happened. A refusal (the last administrator, your own account) is said in the
server's words and changes nothing.

The caller runs these from a worker (they wait on dialogs) and refreshes what it shows from
the `Outcome`."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from tfa_tui.api import AdminUser
from tfa_tui.api.errors import LEAVING, ApiError, NotFound
from tfa_tui.plain import visible
from tfa_tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

BUTTON_NAME = 20  # a name longer than this is cut short on a button (the question has it all)


class Outcome(Enum):
    NOTHING = "nothing"  # nothing to do, cancelled, or refused (and said)
    CHANGED = "changed"  # done: the account is to be shown again
    GONE = "gone"  # deleted here, or found deleted meanwhile
    LEFT = "left"  # the act took the app elsewhere (your own 2FA or rights)


def button_name(username: str) -> str:
    """A username for a button's label, which Textual reads as markup: short, and every `[`
    escaped (`textual.markup.escape` leaves `[$x]` and `[B]` to be read as markup)."""
    name = visible(username)
    if len(name) > BUTTON_NAME:
        name = name[: BUTTON_NAME - 1] + "…"
    return name.replace("[", "\\[")


class UserActions:
    """The acts on one account. `before_leaving` runs just before the app goes to another
    screen on its own (your own 2FA reset, your own rights removed, the session over): a
    screen pushed over Home (the detail) closes itself there, so that the app's switch
    replaces Home and not the screen above it."""

    def __init__(self, app: TfaApp, *, before_leaving: Callable[[], object] | None = None) -> None:
        self.app = app
        self._before_leaving = before_leaving

    def _leave(self) -> None:
        if self._before_leaving is not None:
            self._before_leaving()

    def failed(self, error: BaseException) -> Outcome:
        """The app's one way of saying a failure; an account gone meanwhile is GONE."""
        if isinstance(error, LEAVING):
            self._leave()
        self.app.api_failed(error)
        return Outcome.GONE if isinstance(error, NotFound) else Outcome.NOTHING

    async def _confirmed(self, question: ConfirmScreen) -> bool:
        answer: bool | None = await self.app.push_screen_wait(question)
        return bool(answer)

    async def reset_2fa(self, user: AdminUser) -> Outcome:
        if not user.totp_enabled:
            self.app.notify(f"{user.username} has no two-factor authentication to reset.")
            return Outcome.NOTHING
        myself = user.username == self.app.username
        name = visible(user.username)
        text = (
            "This removes your own two-factor authentication and signs you out everywhere,"
            " here too."
            if myself
            else f"This removes {name}'s two-factor authentication and signs them out"
            " everywhere. Their recovery codes stop working too."
        )
        if not await self._confirmed(
            ConfirmScreen(f"Reset 2FA of {name}?", text, confirm="Reset 2FA", danger=True)
        ):
            return Outcome.NOTHING
        try:
            await self.app.api.reset_2fa(user.username)
        except ApiError as exc:
            return self.failed(exc)
        if self.app.demo is not None:
            self.app.demo.remember_secret(user.username, None)
        if myself:
            self._leave()
            self.app.session_ended("You reset your own two-factor authentication. Sign in again.")
            return Outcome.LEFT
        self.app.notify(
            f"{user.username}'s two-factor authentication is removed; they are signed out."
        )
        return Outcome.CHANGED

    async def unlock(self, user: AdminUser) -> Outcome:
        if user.locked_until is None:
            self.app.notify(f"{user.username} is not locked.")
            return Outcome.NOTHING
        try:
            fresh = await self.app.api.unlock(user.username)
        except ApiError as exc:
            return self.failed(exc)
        self.app.notify(f"{fresh.username} is unlocked and can sign in again.")
        return Outcome.CHANGED

    async def reset_password(self, user: AdminUser) -> Outcome:
        """The dialog sets the password; then it is shown once, to pass on."""
        from tfa_tui.screens.password_shown import PasswordShownScreen
        from tfa_tui.screens.reset_password import ResetPasswordScreen

        if user.username == self.app.username:  # this would end this session too
            self.app.notify(
                "To change your own password, use Change password on the Security tab: it"
                " keeps you signed in here."
            )
            return Outcome.NOTHING
        done = await self.app.push_screen_wait(ResetPasswordScreen(user.username))
        if done is None:
            return Outcome.NOTHING
        self.app.push_screen(
            PasswordShownScreen(done.user.username, done.password, temporary=done.temporary)
        )
        self.app.notify(
            f"{user.username}'s password is set and their sessions ended"
            + ("; they must choose a new one at the next sign-in." if done.temporary else ".")
        )
        return Outcome.CHANGED

    async def disable(self, user: AdminUser) -> Outcome:
        if user.disabled_at is not None:
            self.app.notify(f"{user.username} is already disabled.")
            return Outcome.NOTHING
        name = visible(user.username)
        if not await self._confirmed(
            ConfirmScreen(
                f"Disable {name}?",
                f"{name}'s sessions end at once and {name} cannot sign in until an"
                " administrator enables the account again. The password, two-factor"
                " authentication and history stay as they are.",
                confirm="Disable",
                danger=True,
            )
        ):
            return Outcome.NOTHING
        try:
            await self.app.api.disable_user(user.username)
        except ApiError as exc:
            return self.failed(exc)
        self.app.notify(
            f"{user.username} is disabled: signed out everywhere, and cannot sign in until enabled."
        )
        return Outcome.CHANGED

    async def enable(self, user: AdminUser) -> Outcome:
        if user.disabled_at is None:
            self.app.notify(f"{user.username} is not disabled.")
            return Outcome.NOTHING
        name = visible(user.username)
        if not await self._confirmed(
            ConfirmScreen(
                f"Enable {name}?",
                f"{name} can sign in again, with the same password and two-factor"
                " authentication as before.",
                confirm="Enable",
            )
        ):
            return Outcome.NOTHING
        try:
            await self.app.api.enable_user(user.username)
        except ApiError as exc:
            return self.failed(exc)
        self.app.notify(f"{user.username} is enabled and can sign in again.")
        return Outcome.CHANGED

    async def disable_or_enable(self, user: AdminUser) -> Outcome:
        """The one button that switches the state: it says which it does (`toggle_label`)."""
        return await (self.disable(user) if user.disabled_at is None else self.enable(user))

    async def admin_rights(self, user: AdminUser) -> Outcome:
        """Grants the rights to a user, removes them from an administrator."""
        name = visible(user.username)
        myself = user.username == self.app.username
        if not user.is_admin:
            question = ConfirmScreen(
                f"Make {name} an administrator?",
                f"{name} will manage users (add them, set their passwords, disable and delete"
                " them), services and the 2FA policy, and read everyone's sign-in history and"
                " the audit log.",
                confirm="Make administrator",
                danger=True,
            )
        elif myself:
            question = ConfirmScreen(
                "Remove your own administrator rights?",
                "You keep your account, but the Admin tab goes away at once. Only another"
                " administrator can give the rights back.",
                confirm="Remove my rights",
                danger=True,
            )
        else:
            question = ConfirmScreen(
                f"Remove {name}'s administrator rights?",
                f"{name} keeps the account and signs in as before, but can no longer manage"
                " users, services or the policy, nor read the others' history.",
                confirm="Remove rights",
                danger=True,
            )
        if not await self._confirmed(question):
            return Outcome.NOTHING
        try:
            await self.app.api.set_admin(user.username, not user.is_admin)
        except ApiError as exc:
            return self.failed(exc)
        if myself and user.is_admin:
            self.app.notify("You are no longer an administrator.")
            self._leave()
            self.app.go_home()  # Home again, without the Admin tab
            return Outcome.LEFT
        self.app.notify(
            f"{user.username} is no longer an administrator."
            if user.is_admin
            else f"{user.username} is now an administrator."
        )
        return Outcome.CHANGED

    async def delete(self, user: AdminUser) -> Outcome:
        name = visible(user.username)
        if not await self._confirmed(
            ConfirmScreen(
                f"Delete {name}?",
                f"The account {name} goes for good, with its password, two-factor"
                f" authentication, recovery codes and sessions ({name} is signed out at once)."
                f"\n\n{name}'s sign-in history stays, for administrators: Sign-in history shows"
                f" it as {name} (deleted). The name can be used again; a new {name} does not"
                " see that history.",
                confirm=f"Delete {button_name(user.username)}",
                danger=True,
            )
        ):
            return Outcome.NOTHING
        try:
            await self.app.api.delete_user(user.username)
        except ApiError as exc:
            return self.failed(exc)
        if self.app.demo is not None:
            self.app.demo.remember_secret(user.username, None)
        self.app.notify(
            f"{user.username} is deleted; their sign-in history stays, marked (deleted)."
        )
        return Outcome.GONE


def toggle_label(user: AdminUser | None) -> str:
    return "Enable (e)" if user is not None and user.disabled_at is not None else "Disable (d)"


def rights_label(user: AdminUser | None) -> str:
    return "Remove admin (m)" if user is not None and user.is_admin else "Make admin (m)"
