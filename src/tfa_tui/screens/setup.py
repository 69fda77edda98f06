"""Connecting an authenticator app: install, scan, verify, then the recovery codes."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, ContentSwitcher, Footer, Input, Label, Static

from tfa_tui.api import TotpSetup
from tfa_tui.api.errors import ApiError, PasswordRequired, Unauthorized
from tfa_tui.plain import plain
from tfa_tui.screens.base import TfaScreen
from tfa_tui.screens.reauth import ReauthScreen
from tfa_tui.widgets.code_input import CodeInput, is_complete
from tfa_tui.widgets.qr import QrCode
from tfa_tui.words import describe

APPS = (
    "Google Authenticator, Microsoft Authenticator, Aegis (Android), 2FAS, FreeOTP,"
    " or a password manager with one-time codes (1Password, Bitwarden, KeePassXC)."
)
# The buttons that turn the page, and the page each turns to.
PAGE_BUTTONS = {"to-scan": "scan", "to-verify": "verify", "back-to-scan": "scan"}


def grouped_secret(secret: str) -> str:
    """The key for typing into an app by hand, in groups of four: `ABCD EFGH ...`."""
    return " ".join(secret[start : start + 4] for start in range(0, len(secret), 4))


class SetupScreen(TfaScreen):
    CSS_PATH = "setup.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+k", "copy_key", "Copy key", show=False),
        # Enter on Next or Back: as a priority binding the app turns the page before it hands
        # on the keys typed after it (the code, typed at once), not after the button's message.
        Binding("enter", "turn_page", show=False, priority=True),
    ]

    def __init__(self, *, forced: bool = False) -> None:
        super().__init__()
        self.forced = forced
        self.setup: TotpSetup | None = None
        self._connecting = False

    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial="install", id="steps"):
            with Vertical(id="install", classes="step-page"):
                yield Static("Set up two-factor authentication", classes="title")
                if self.forced:
                    yield Static(
                        "Your administrator requires two-factor authentication."
                        " Set it up now to continue.",
                        id="forced",
                    )
                yield Label("Step 1 of 4 - Install an authenticator app", classes="step")
                yield Static(f"On your phone, install an authenticator app: {APPS}")
                yield Static("Already have one? Go on.", classes="muted")
                with Horizontal(classes="buttons"):
                    yield Button("Next", variant="primary", id="to-scan", compact=True)
            with Horizontal(id="scan"):
                yield QrCode(id="qr")
                with Vertical(id="scan-text"):
                    yield Label("Step 2 of 4 - Scan", classes="step")
                    yield Static("In the app, add an account and scan the code.")
                    yield Static("Can't scan? Type this key:", classes="muted")
                    yield Static("", id="key")
                    yield Static("", id="account")
                    with Horizontal(classes="buttons"):
                        yield Button("Next", variant="primary", id="to-verify", compact=True)
                        yield Button("Copy key", id="copy-key", compact=True)
            with Vertical(id="verify", classes="step-page"):
                yield Static("Set up two-factor authentication", classes="title")
                yield Label("Step 3 of 4 - Enter a code from the app", classes="step")
                yield Static("Type the 6-digit code the app shows for this account.")
                yield CodeInput(id="code")
                yield Static("", id="error", classes="hidden")
                with Horizontal(classes="buttons"):
                    yield Button("Connect", variant="primary", id="connect", compact=True)
                    yield Button("Back", id="back-to-scan", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#to-scan", Button).focus()
        self.start_setup()

    @work(exclusive=True, exit_on_error=False, group="setup")
    async def start_setup(self) -> None:
        scan = self.query_one("#scan")
        scan.loading = True
        setup: TotpSetup | None
        try:
            setup = await self.tfa.api.totp_setup()
        except PasswordRequired:
            setup = await self._setup_with_password()
        except Unauthorized as exc:
            self.tfa.session_ended(describe(exc))
            return
        except ApiError as exc:
            self.notify(describe(exc), severity="error")
            return
        finally:
            scan.loading = False
        if setup is None:
            return
        self.setup = setup
        self.query_one(QrCode).data = setup.otpauth_uri
        self.query_one("#key", Static).update(plain(grouped_secret(setup.secret)))
        self.query_one("#account", Static).update(
            Content("\n").join(
                plain(line)
                for line in (
                    f"Account  {setup.account}",
                    f"Issuer   {setup.issuer}",
                    f"{setup.digits} digits, {setup.period} s, {setup.algorithm}",
                )
            )
        )
        if self.tfa.demo is not None:
            self.tfa.demo.remember_secret(setup.account, setup.secret)

    async def _setup_with_password(self) -> TotpSetup | None:
        """The session signed in a while ago: whoever connects an app controls the account,
        so the server wants the password first. Cancelling leaves the setup."""
        setup = await self.app.push_screen_wait(
            ReauthScreen[TotpSetup](
                "Confirm it is you",
                "You signed in a while ago. Enter your password to connect an authenticator app.",
                "Continue",
                lambda answer: self.tfa.api.totp_setup(answer.password),
                with_code=False,
            )
        )
        if setup is None:
            self.action_cancel()
        return setup

    def _show(self, step: str) -> None:
        """Turn to a page: what an earlier visit to it said is gone, the focus moves at once."""
        self.query_one(ContentSwitcher).current = step
        self.query_one("#error", Static).add_class("hidden")
        focus = {"install": "#to-scan", "scan": "#to-verify", "verify": "#code"}[step]
        self.set_focus(self.query_one(focus))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "turn_page":  # otherwise Enter goes to the focused widget as usual
            return self.focused is not None and self.focused.id in PAGE_BUTTONS
        return True

    def action_turn_page(self) -> None:
        if self.focused is not None and self.focused.id in PAGE_BUTTONS:
            self._show(PAGE_BUTTONS[self.focused.id])

    @on(Button.Pressed, "#to-scan")
    def _to_scan(self) -> None:
        self._show("scan")

    @on(Button.Pressed, "#to-verify")
    def _to_verify(self) -> None:
        self._show("verify")

    @on(Button.Pressed, "#back-to-scan")
    def _back(self) -> None:
        self._show("scan")

    @on(Button.Pressed, "#copy-key")
    def action_copy_key(self) -> None:
        if self.setup is not None:
            self.app.copy_to_clipboard(self.setup.secret)
            self.notify("Key copied (if your terminal allows clipboard access).")

    @on(Input.Changed, "#code")
    def _auto_connect(self, event: Input.Changed) -> None:
        if is_complete(event.value):  # the value this change made: see SecondFactorScreen
            self._connect(event.value)

    @on(Input.Submitted, "#code")
    def _code_entered(self, event: Input.Submitted) -> None:
        self._connect(event.value)

    @on(Button.Pressed, "#connect")
    def _connect_pressed(self) -> None:
        self._connect(self.query_one("#code", CodeInput).value)

    def _connect(self, value: str) -> None:
        if not is_complete(value):
            error = self.query_one("#error", Static)
            error.update("The code has 6 digits.")
            error.remove_class("hidden")
            return
        if not self._connecting:  # once: Enter right behind the sixth digit sends nothing more
            self._connecting = True
            self.connect(value.replace(" ", ""))

    @work(exclusive=True, exit_on_error=False, group="setup", description="connect")
    async def connect(self, code: str) -> None:
        field = self.query_one("#code", CodeInput)
        error = self.query_one("#error", Static)
        verify = self.query_one("#verify")
        verify.loading = True
        try:
            codes = await self.tfa.api.totp_confirm(code)
        except Unauthorized as exc:
            self.tfa.session_ended(describe(exc))
            return
        except ApiError as exc:
            error.update(
                plain(describe(exc))
                if exc.code != "invalid_code"
                else "That code did not match. Check that the app shows this account and that"
                " your phone's clock is right, then type the code it shows now."
            )
            error.remove_class("hidden")
            field.value = ""
            field.focus()
            return
        finally:
            verify.loading = False
            self._connecting = False
        from tfa_tui.screens.recovery_codes import RecoveryCodesScreen

        self.notify("Two-factor authentication is on.")
        self.tfa.switch_screen(RecoveryCodesScreen(codes, self.tfa.username, after_setup=True))

    def action_cancel(self) -> None:
        if self.forced:
            self.tfa.sign_out()
        else:
            self.tfa.go_home()
