"""Admin > Services: the relying services (sshd, sudo, ...) that check codes with tfa."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button

from tfa_tui.api import Service
from tfa_tui.api.errors import ApiError
from tfa_tui.plain import cell, visible
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.widgets.fit_table import Cell, FitColumn, FitTable, FitTableView, when
from tfa_tui.words import local_date, local_time

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

# At 80 columns: which service, when it last called and from which address (a key used from
# somewhere unexpected shows here); its description as far as the width allows.
SERVICE_COLUMNS = (
    FitColumn("name", "Name", min_width=10),
    FitColumn("description", "Description", priority=1, min_width=12),
    FitColumn("created", "Created", priority=2),
    FitColumn("used", "Last used"),
    FitColumn("ip", "From", min_width=9),
)


def service_row(service: Service) -> dict[str, Cell]:
    return {
        "name": cell(service.name),
        "description": cell(service.description or "-"),
        "created": local_date(service.created_at),
        "used": when(service.last_used_at) if service.last_used_at else "never",
        "ip": cell(service.last_used_ip or "-"),
    }


class ServicesSection(Vertical):
    """The Services tab of the Admin pane. Its keys are the pane's (they work from the
    section's tabs too); the pane passes them on here."""

    class Changed(Message):
        """A service was added or revoked here: the audit log has a new entry."""

    def __init__(self) -> None:
        super().__init__(id="admin-services-section")
        self._services: dict[str, Service] = {}

    @property
    def tfa(self) -> TfaApp:
        return cast("TfaApp", self.app)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="admin-toolbar"):
            yield Button("Add service (+)", variant="primary", id="admin-add-service", compact=True)
            yield Button("Revoke (Del)", variant="error", id="admin-revoke-service", compact=True)
        yield FitTableView(SERVICE_COLUMNS, table_id="admin-services-table", title="Service")

    def _table(self) -> FitTable:
        return self.query_one("#admin-services-table", FitTable)

    def failed(self, error: BaseException) -> None:
        self.tfa.api_failed(error)

    @work(exclusive=True, exit_on_error=False, group="services")
    async def load_services(self) -> None:
        table = self._table()
        table.loading = True
        try:
            services = await self.tfa.api.services()
        except ApiError as exc:
            self.failed(exc)
            return
        finally:
            table.loading = False
        self._services = {service.name: service for service in services}
        # The cursor stays on the service it was on.
        table.set_records({service.name: service_row(service) for service in services})

    def _selected_service(self) -> Service | None:
        key = self._table().selected_key
        if key is None:
            self.notify("There is no service to choose.", severity="warning")
            return None
        return self._services.get(key)

    @on(Button.Pressed, "#admin-add-service")
    @work(exclusive=True, exit_on_error=False, group="service-action")
    async def add_service(self) -> None:
        """The dialog, then the new key on a screen of its own, shown this once."""
        from tfa_tui.screens.add_service import AddServiceScreen
        from tfa_tui.screens.service_key import ServiceKeyScreen

        service = await self.app.push_screen_wait(AddServiceScreen())
        if service is None:
            return
        self.app.push_screen(ServiceKeyScreen(service))
        self.load_services()
        self.post_message(self.Changed())

    @on(Button.Pressed, "#admin-revoke-service")
    @work(exclusive=True, exit_on_error=False, group="service-action")
    async def revoke_service(self) -> None:
        service = self._selected_service()
        if service is None:
            return
        name = visible(service.name)
        used = (
            f"last used {local_time(service.last_used_at)}"
            + (f" from {visible(service.last_used_ip)}" if service.last_used_ip else "")
            if service.last_used_at
            else "never used"
        )
        if not await self.app.push_screen_wait(
            ConfirmScreen(
                f"Revoke the service {name}?",
                f"{name} ({visible(service.description) or 'no description'}; {used}).\n\n"
                f"Its key stops working at once: {name} can no longer check anyone's code"
                " with tfa. This cannot be undone; to use it again, add it again and give it"
                " the new key.",
                confirm="Revoke",
                danger=True,
            )
        ):
            return
        try:
            await self.tfa.api.revoke_service(service.name)
        except ApiError as exc:
            self.failed(exc)
            return
        self.notify(f"{service.name} is revoked: its key no longer works.")
        self.load_services()
        self.post_message(self.Changed())
