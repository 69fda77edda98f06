"""Issue 13 in the terminal client: relying services in the Admin pane (list, add with the key
shown once, revoke) and the verify API's events in both histories, with a filter by service.

Everything runs against the real server on 127.0.0.1 (port 0) at 80x24; what a service does is
done as a service does it, over HTTP with its key as the Bearer token. Each test's docstring
names the point of the issue it covers: "Services" (the Services tab) or "Verify API" (history).
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Input, TabbedContent
from textual.widgets._data_table import default_cell_formatter

from tfa_server.admin import Actor, Admin
from tfa_tui.api import Conflict, HistoryItem, InvalidRequest, NotFound
from tfa_tui.api.client import TfaClient
from tfa_tui.app import TfaApp
from tfa_tui.screens.add_service import AddServiceScreen
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import HomeScreen, history_row
from tfa_tui.screens.service_key import ServiceKeyScreen
from tfa_tui.widgets.admin_pane import AdminPane
from tfa_tui.widgets.fit_table import FitTable
from tfa_tui.words import local_date, local_time

from ..conftest import RunningServer, bearer, enable_totp, login, totp_code
from .conftest import at_home, dialog_open, notices, running_app, settle, shown, wait_for

ROOT_PW = "root-pw-1"
KEY = re.compile(r"tfasvc_[A-Za-z0-9_-]{43}")
END_USER = "203.0.113.7"  # the address sshd saw (TEST-NET-3: never a real peer)
# A history row's fields that say what a service asked and how it went.
SHOWN = ("Event", "Result", "Method", "IP", "Client")


# The service's side: HTTP with its key, as the PAM module calls


async def verify_start(server: RunningServer, key: str, username: str) -> httpx.Response:
    async with server.client() as http:
        return await http.post(
            "/api/v1/verify/start",
            json={"username": username, "remote_ip": END_USER},
            headers=bearer(key),
        )


async def verify(server: RunningServer, key: str, username: str, code: str) -> httpx.Response:
    async with server.client() as http:
        return await http.post(
            "/api/v1/verify",
            json={"username": username, "code": code, "remote_ip": END_USER},
            headers=bearer(key),
        )


async def add_service(server: RunningServer, name: str, description: str = "") -> str:
    """Registered on the server's console, as `tfa-server service add` does: the key."""
    return (await Admin(server.core).add_service(Actor("cli:ops", None), name, description)).key


async def with_2fa(server: RunningServer, username: str) -> str:
    await server.add_user(username)
    async with server.client() as http:
        token = (await login(http, username))["token"]
        secret, _codes = await enable_totp(http, token, server.clock)
        await http.post("/api/v1/logout", headers=bearer(token))
    return secret


# The person's side


async def open_services(app: TfaApp, pilot: Pilot[None]) -> AdminPane:
    """The section's key, V, from any tab."""
    await pilot.press("v")
    await settle(app, pilot)
    pane = app.screen.query_one(AdminPane)
    assert pane.query_one("#admin-tabs", TabbedContent).active == "admin-services"
    return pane


async def back_home(app: TfaApp, pilot: Pilot[None]) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "Home again")
    await settle(app, pilot)


def drawn(cell: object) -> Text:
    """A table cell as the DataTable draws it (a `str` cell is parsed as markup)."""
    text = default_cell_formatter(cell)
    assert isinstance(text, Text)
    return text


def table_rows(screen: Screen[Any], selector: str) -> dict[str, dict[str, str]]:
    """A table's rows (plain text, each field by its column's label, shown at this width or
    not), by row key, in order."""
    table = screen.query_one(selector, FitTable)
    return {
        key: {label: value.plain for label, value in table.fields(key).items()}
        for key in table.records
    }


def on_screen(app: TfaApp, widgets: list[Widget]) -> None:
    for widget in widgets:
        assert widget.region.height > 0, widget
        assert app.screen.region.contains_region(widget.region), widget


async def add_through_the_dialog(
    app: TfaApp, pilot: Pilot[None], name: str, description: str
) -> ServiceKeyScreen:
    """+ on the Services tab, the name, Enter, the description, Enter: the key's screen."""
    await pilot.press("plus")
    dialog = await dialog_open(app, pilot, AddServiceScreen)
    assert app.focused is dialog.query_one("#name")
    await pilot.press(*name, "enter", *description, "enter")
    return await dialog_open(app, pilot, ServiceKeyScreen)


# 1. The client's calls


async def test_the_client_lists_adds_and_revokes_services(server: RunningServer) -> None:
    """Services: the client API has services(), add_service() (the key, once) and
    revoke_service(), typed and with the server's refusals as errors; both histories take a
    `service` filter."""
    await server.add_user("root", ROOT_PW, admin=True)
    async with TfaClient(server.base_url) as client:
        await client.login("root", ROOT_PW)
        new = await client.add_service("sshd-bastion", "SSH on the bastion")
        assert KEY.fullmatch(new.key)
        assert (new.name, new.description, new.last_used_at) == (
            "sshd-bastion",
            "SSH on the bastion",
            None,
        )
        assert new.key not in repr(new)  # never in a log line
        assert (await verify_start(server, new.key, "root")).status_code == 200

        [listed] = await client.services()
        assert listed.name == "sshd-bastion"
        assert listed.last_used_ip == "127.0.0.1"  # the service's own address
        assert not hasattr(listed, "key")

        with pytest.raises(Conflict, match="already a service called 'sshd-bastion'"):
            await client.add_service("sshd-bastion")
        with pytest.raises(InvalidRequest, match="Service names are"):
            await client.add_service("-bad")

        mine = await client.history(service="sshd-bastion")
        assert [(item.event, item.service, item.ip) for item in mine.items] == [
            ("verify_start", "sshd-bastion", END_USER)
        ]
        assert (await client.history(service="other")).items == []
        everyone = await client.admin_history(service="sshd-bastion", success=True)
        assert [item.username for item in everyone.items] == ["root"]

        await client.revoke_service("sshd-bastion")
        assert await client.services() == []
        with pytest.raises(NotFound):
            await client.revoke_service("sshd-bastion")
    assert (await verify_start(server, new.key, "root")).status_code == 401


# 2. The Services tab


async def test_the_services_tab_lists_each_service_and_its_last_use(
    server: RunningServer,
) -> None:
    """Services: a Services tab lists name, description, created, last used and from where.
    The description is anyone's words: shown literally, markup characters included."""
    await server.add_user("root", ROOT_PW, admin=True)
    key = await add_service(server, "sshd-bastion", "SSH [b]bastion[/b] [/x]")
    await add_service(server, "sudo-web1")
    server.clock.advance(90)
    assert (await verify_start(server, key, "root")).status_code == 200
    services = {item.name: item for item in (await Admin(server.core).list_services()).items}
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        pane = await open_services(app, pilot)
        assert app.focused is pane.query_one("#admin-services-table")
        label = home.query_one("#--content-tab-admin-services").label  # type: ignore[attr-defined]
        assert label.plain == "Services"
        rows = table_rows(home, "#admin-services-table")
        assert list(rows) == ["sshd-bastion", "sudo-web1"]
        bastion = services["sshd-bastion"]
        assert bastion.last_used_at is not None
        assert list(rows["sshd-bastion"].values()) == [
            "sshd-bastion",
            "SSH [b]bastion[/b] [/x]",
            local_date(bastion.created_at),
            local_time(bastion.last_used_at, with_seconds=True),
            "127.0.0.1",
        ]
        assert list(rows["sudo-web1"].values())[1:] == [
            "-",
            local_date(bastion.created_at),
            "never",
            "-",
        ]
        on_screen(app, list(pane.query_one("#admin-services").query("Button, DataTable")))


# 3. Adding: the key, once


async def test_a_new_key_is_shown_once_copied_and_works_for_the_verify_api(
    server: RunningServer,
) -> None:
    """Services: "add shows the key once with copy". The key on screen is the service's own
    (the verify API takes it), Ctrl+Y copies it, and once the screen is left it is nowhere."""
    await server.add_user("root", ROOT_PW, admin=True)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        await open_services(app, pilot)
        screen = await add_through_the_dialog(app, pilot, "bastion", "ssh")
        key = shown(app, "#key")
        assert KEY.fullmatch(key), key
        assert "bastion" in str(screen.query_one("#panel").border_title)
        assert "never be shown again" in shown(app, "#warning")
        on_screen(app, list(screen.query("Button, Checkbox, #key")))

        start = await verify_start(server, key, "root")
        assert (start.status_code, start.json()["next"]) == (200, "allow")

        await pilot.press("ctrl+y")
        assert app.clipboard == key
        assert app.focused is screen.query_one("#stored")
        assert not any(key in notice for notice in notices(app))

        assert screen.query_one("#done", Button).disabled
        await pilot.press("space")  # I have stored the key; Done takes the focus
        await pilot.press("enter")
        await back_home(app, pilot)
        assert app.screen is home
        rows = table_rows(home, "#admin-services-table")
        assert list(rows["bastion"].values())[:2] == ["bastion", "ssh"]
        assert not any(isinstance(screen, ServiceKeyScreen) for screen in app.screen_stack)
        assert not any(key in str(getattr(widget, "visual", "")) for widget in home.query("*"))
    [stored] = (await Admin(server.core).list_services()).items
    assert (stored.name, stored.description, stored.created_by) == ("bastion", "ssh", "root")


async def test_the_key_saves_to_a_private_file_never_silently_over_another(
    server: RunningServer, tmp_path: Path
) -> None:
    """Services: "save-to-file 0600". Ctrl+S, the file name, Enter: a new file only its owner
    reads, holding the key alone (what the PAM module's key_file wants); a file already at the
    path is replaced only when the person says so."""
    await server.add_user("root", ROOT_PW, admin=True)
    folder = tmp_path / "keys"
    folder.mkdir()
    taken = folder / "taken.key"
    taken.write_text("kept\n")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        await open_services(app, pilot)
        screen = await add_through_the_dialog(app, pilot, "bastion", "")
        key = shown(app, "#key")

        await pilot.press("ctrl+s")
        field = screen.query_one("#path", Input)
        assert app.focused is field
        assert field.value == str(Path.home() / "tfa-service-bastion.key")
        on_screen(app, [field, *screen.query("Button, Checkbox")])
        field.value = str(taken)
        await pilot.press("enter")
        question = await dialog_open(app, pilot, ConfirmScreen)
        assert shown(app, "#dialog-title") == "Replace the file?"
        await pilot.press("escape")  # no: nothing is written
        await wait_for(pilot, lambda: app.screen is screen, "the key again")
        assert question not in app.screen_stack
        assert taken.read_text() == "kept\n"

        target = folder / "bastion.key"
        field.value = str(target)
        field.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: target.exists(), "the file")
        await settle(app, pilot)
        assert any(notice.startswith(f"Saved to {target}") for notice in notices(app))
        assert field.has_class("hidden")
    info = target.lstat()
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert target.read_text() == key + "\n"
    assert sorted(path.name for path in folder.iterdir()) == ["bastion.key", "taken.key"]


async def test_leaving_the_key_unstored_asks_first(server: RunningServer) -> None:
    """Services: the key "cannot be shown again", so Escape and Ctrl+Q ask before leaving it,
    as on the recovery codes; Stay keeps it on screen; once it is stored, nothing is asked."""
    await server.add_user("root", ROOT_PW, admin=True)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        await open_services(app, pilot)
        screen = await add_through_the_dialog(app, pilot, "bastion", "")
        key = shown(app, "#key")

        for leave in ("escape", "ctrl+q"):
            await pilot.press(leave)
            await dialog_open(app, pilot, ConfirmScreen)
            assert shown(app, "#dialog-title") == "Leave without storing the key?"
            assert "never be shown again" in shown(app, "#dialog-text")
            await pilot.press("enter")  # Stay has the focus
            await wait_for(pilot, lambda: app.screen is screen, "the key again")
            assert app.return_code is None
            assert shown(app, "#key") == key

        await pilot.click("#stored")
        await pilot.press("escape")
        await back_home(app, pilot)
        assert not any(isinstance(shown, ConfirmScreen) for shown in app.screen_stack)


async def test_a_refused_name_is_said_in_the_dialog_which_stays_open(
    server: RunningServer,
) -> None:
    """Services: the server's refusals (409 the name is taken, 400 the name's rule) in words
    inside the dialog, which stays open with the focus on the name to fix it."""
    await server.add_user("root", ROOT_PW, admin=True)
    await add_service(server, "bastion")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        await open_services(app, pilot)
        await pilot.press("plus")
        dialog = await dialog_open(app, pilot, AddServiceScreen)
        await pilot.press("enter")  # nothing typed: said, and the focus stays
        assert shown(app, "#dialog-error") == "Enter a name for the service."
        assert app.focused is dialog.query_one("#name")

        await pilot.press(*"BASTION", "enter", "enter")
        await wait_for(pilot, lambda: shown(app, "#dialog-error") != "", "the server's answer")
        assert shown(app, "#dialog-error") == "There is already a service called 'bastion'."
        assert app.screen is dialog
        assert app.focused is dialog.query_one("#name")

        await pilot.press("ctrl+e", "ctrl+u", *"-x", "enter", "enter")
        await wait_for(pilot, lambda: "Service names are" in shown(app, "#dialog-error"), "rule")
        assert app.screen is dialog
        on_screen(app, list(dialog.query("Input, Button, #dialog-error")))
        await pilot.press("escape")
        await back_home(app, pilot)
    assert [item.name for item in (await Admin(server.core).list_services()).items] == ["bastion"]


# 4. Revoking


async def test_revoke_asks_naming_the_service_then_its_key_is_refused(
    server: RunningServer,
) -> None:
    """Services: "revoke with confirmation". The question names the service and says its key
    stops working at once; No changes nothing; Revoke makes the verify API refuse the key."""
    await server.add_user("root", ROOT_PW, admin=True)
    await add_service(server, "aaa-first")
    key = await add_service(server, "bastion", "SSH [b]host[/b]")
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        await open_services(app, pilot)
        await pilot.press("down")  # from aaa-first to bastion
        await pilot.press("delete")
        await dialog_open(app, pilot, ConfirmScreen)
        assert shown(app, "#dialog-title") == "Revoke the service bastion?"
        said = shown(app, "#dialog-text")
        assert "SSH [b]host[/b]" in said
        assert "Its key stops working at once" in said
        await pilot.press("escape")
        await back_home(app, pilot)
        assert (await verify_start(server, key, "root")).status_code == 200

        await pilot.click("#admin-revoke-service")
        await dialog_open(app, pilot, ConfirmScreen)
        await pilot.click("#confirm")
        await back_home(app, pilot)
        assert list(table_rows(home, "#admin-services-table")) == ["aaa-first"]
        assert "bastion is revoked: its key no longer works." in notices(app)
        audit = table_rows(home, "#admin-audit-table")
        assert list(next(iter(audit.values())).values())[1:4] == [
            "root",
            "Service revoked",
            "bastion",
        ]
    refused = await verify_start(server, key, "root")
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")


# 5. History


async def test_both_histories_show_a_service_check_with_the_service_and_the_address(
    server: RunningServer,
) -> None:
    """Verify API: every call is in the user's history "with the service's name, the end
    user's remote_ip ... and the outcome or reason"; History and the admin's history show them
    in words, the service where the client program would be, failed rows marked as failed."""
    await server.add_user("root", ROOT_PW, admin=True)
    secret = await with_2fa(server, "alice")
    key = await add_service(server, "bastion")
    assert (await verify_start(server, key, "alice")).json() == {"next": "code"}
    assert (await verify(server, key, "alice", "000000")).status_code == 401
    assert (await verify(server, key, "alice", totp_code(secret, server.clock))).status_code == 200
    server.clock.advance(30)

    expected = {
        ("Service sign-in", "✔ successful", "-", END_USER, "bastion (service)"),
        ("Service code", "✘ failed", "app code", END_USER, "bastion (service)"),
        ("Service code", "✔ successful", "app code", END_USER, "bastion (service)"),
    }
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "alice", secret=secret)
        await pilot.press("h")
        await settle(app, pilot)
        rows = list(table_rows(home, "#history-table").values())
        services = [row for row in rows if "(service)" in row["Client"]]
        assert {tuple(row[label] for label in SHOWN) for row in services} == expected
        reasons = {row["Event"]: row["Reason"] for row in services if "failed" in row["Result"]}
        assert reasons == {"Service code": "wrong code"}
        assert "tfa-tui/" in rows[0]["Client"]  # her own sign-in names the client program
        assert not {"verify", "verify_start", "bad_code", "totp_required"} & {
            cell for row in rows for cell in row.values()
        }

    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        await pilot.press("i")
        await settle(app, pilot)
        rows = list(table_rows(home, "#admin-history-table").values())
        assert {
            tuple(row[label] for label in SHOWN)
            for row in rows
            if row["User"] == "alice" and "(service)" in row["Client"]
        } == expected


async def test_the_histories_filter_by_service(server: RunningServer) -> None:
    """Verify API: "the TUI History and the admin's history show and filter them". A service
    field in each filter row (next to the username filter for the administrator); Enter
    applies it, an empty one shows everything again."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("bob")
    bastion = await add_service(server, "bastion")
    sudo = await add_service(server, "sudo-web1")
    for key, user in ((bastion, "bob"), (sudo, "bob"), (sudo, "root")):
        assert (await verify_start(server, key, user)).status_code == 200

    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "bob")
        await pilot.press("h")
        await settle(app, pilot)

        def clients() -> list[str]:
            return [row["Client"] for row in table_rows(home, "#history-table").values()]

        assert {"bastion (service)", "sudo-web1 (service)"} < set(clients())
        await pilot.click("#history-service")
        await pilot.press(*"sudo-web1", "enter")
        await settle(app, pilot)
        assert clients() == ["sudo-web1 (service)"]
        await pilot.press("ctrl+e", "ctrl+u", "enter")
        await settle(app, pilot)
        assert len(clients()) > 2
        on_screen(app, list(home.query_one("#history").query("Select, Input, Button")))

    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        await pilot.press("i")
        await settle(app, pilot)

        def users_and_clients() -> list[tuple[str, str]]:
            rows = table_rows(home, "#admin-history-table").values()
            return [(row["User"], row["Client"]) for row in rows]

        await pilot.click("#admin-service-filter")
        await pilot.press(*"sudo-web1", "enter")
        await settle(app, pilot)
        assert sorted(users_and_clients()) == [
            ("bob", "sudo-web1 (service)"),
            ("root", "sudo-web1 (service)"),
        ]
        await pilot.click("#admin-user-filter")
        await pilot.press(*"bob", "enter")
        await settle(app, pilot)
        assert users_and_clients() == [("bob", "sudo-web1 (service)")]
        on_screen(app, list(home.query_one("#admin-history").query("Select, Input, Button")))


# Layout and keys


async def test_every_services_control_fits_and_takes_the_focus(server: RunningServer) -> None:
    """Services: at 80x24 the Services tab's controls are on screen and Tab reaches each; the
    section's key is its tab's underlined letter, and + and Delete work only there."""
    await server.add_user("root", ROOT_PW, admin=True)
    await add_service(server, "bastion")
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        pane = await open_services(app, pilot)
        label = home.query_one("#--content-tab-admin-services").label  # type: ignore[attr-defined]
        letter = next(span for span in label.spans if span.style == "u")
        assert label.plain[letter.start : letter.end] == "v"
        controls = set(pane.query_one("#admin-services").query("Button, DataTable"))
        on_screen(app, list(controls))
        for _ in range(len(app.screen.focus_chain) + 1):
            await pilot.press("tab")
            controls.discard(app.focused)
            if not controls:
                break
        assert not controls, f"Tab never reaches {controls}"

        await pilot.press("u")  # on Users, + adds a user and Delete does nothing
        await settle(app, pilot)
        await pilot.press("delete")
        await pilot.pause(0.1)
        assert app.screen is home
        await pilot.press("plus")
        await wait_for(pilot, lambda: app.screen is not home, "a dialog")
        assert not isinstance(app.screen, AddServiceScreen)
        await pilot.press("escape")
        await back_home(app, pilot)


# Plain text


def test_a_service_name_from_the_server_is_a_literal_cell() -> None:
    """Verify API / plain text: a history row names the service where the client program would
    be, and a name the server sends (an older or hostile one need not keep the name rule) is
    shown as text: markup characters as typed, control characters as escapes."""
    entry = msgspec.convert(
        {
            "id": 1,
            "at": "2026-11-28T12:00:00Z",
            "event": "verify",
            "success": False,
            "method": "totp",
            "reason": "bad_code",
            "ip": END_USER,
            "client": "pam_tfa/1.0",
            "service": "[@click=app.quit]q\x1b[2J",
            "service_ip": "127.0.0.1",
            "count": 1,
        },
        HistoryItem,
    )
    cells = [drawn(cell) for cell in history_row(entry).values()]
    assert [text.plain for text in cells[1:]] == [
        "Service code",
        "✘ failed",
        "app code",
        END_USER,
        "[@click=app.quit]q\\x1b[2J (service)",
        "wrong code",
    ]
    for text in cells:
        assert not any("@click" in str(span.style) for span in text.spans)
