"""Saving the recovery codes (F13): a new private file renamed into place, so the codes never
land in a file that existed before (a symlink's target, a world-readable file, a hard link)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tfa_tui.app import TfaApp
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.recovery_codes import RecoveryCodesScreen

from ..conftest import RunningServer, enable_totp, login
from .conftest import notices, running_app, settle

pytestmark = pytest.mark.finding("F13")

BEFORE = "kept as it was\n"


async def real_codes(server: RunningServer) -> list[str]:
    await server.add_user("bob")
    async with server.client() as http:
        token = (await login(http, "bob"))["token"]
        _, codes = await enable_totp(http, token, server.clock)
    return codes


async def save_through_the_screen(
    app: TfaApp, pilot: Pilot[None], codes: list[str], path: Path, *, replace: bool
) -> None:
    """Ctrl+S, the file name, Enter; Replace in the dialog when the file is there."""
    await app.switch_screen(RecoveryCodesScreen(codes, "bob"))
    await settle(app, pilot)
    await pilot.press("ctrl+s")
    field = app.screen.query_one("#path", Input)
    field.value = str(path)
    field.focus()
    await pilot.press("enter")
    if replace:
        for _ in range(200):
            if isinstance(app.screen, ConfirmScreen):
                break
            await pilot.pause(0.02)
        assert isinstance(app.screen, ConfirmScreen), "saving over a file did not ask first"
        await pilot.click("#confirm")
        for _ in range(200):
            if isinstance(app.screen, RecoveryCodesScreen):
                break
            await pilot.pause(0.02)
    await settle(app, pilot)
    assert any(notice.startswith("Saved to") for notice in notices(app)), notices(app)


def assert_private_file_with(path: Path, codes: list[str]) -> None:
    info = path.lstat()
    assert stat.S_ISREG(info.st_mode), "the codes are not in a regular file at the path"
    assert stat.S_IMODE(info.st_mode) == 0o600
    saved = path.read_text()
    assert all(code in saved for code in codes)


def assert_nothing_else_in(folder: Path, *names: str) -> None:
    """No temporary file is left behind."""
    assert sorted(entry.name for entry in folder.iterdir()) == sorted(names)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the codes are saved: apart from the server's database in `tmp_path`."""
    found = tmp_path / "files"
    found.mkdir()
    return found


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


async def test_a_symlink_at_the_path_is_replaced_and_its_target_untouched(
    server: RunningServer, folder: Path
) -> None:
    """The old code opened the path with O_TRUNC, which follows a symlink to its target."""
    codes = await real_codes(server)
    victim = folder / "victim.txt"
    victim.write_text(BEFORE)
    victim.chmod(0o644)
    path = folder / "codes.txt"
    path.symlink_to(victim)
    async with running_app(server) as (app, pilot):
        await save_through_the_screen(app, pilot, codes, path, replace=True)
    assert victim.read_text() == BEFORE
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert_private_file_with(path, codes)
    assert_nothing_else_in(folder, "victim.txt", "codes.txt")


async def test_a_dangling_symlink_counts_as_a_file_to_replace(
    server: RunningServer, folder: Path
) -> None:
    codes = await real_codes(server)
    path = folder / "codes.txt"
    path.symlink_to(folder / "nowhere" / "codes.txt")
    async with running_app(server) as (app, pilot):
        await save_through_the_screen(app, pilot, codes, path, replace=True)
    assert_private_file_with(path, codes)
    assert not (folder / "nowhere").exists()


async def test_replacing_a_readable_file_never_writes_the_codes_into_it(
    server: RunningServer, folder: Path
) -> None:
    """A file readable by others (a second name for it proves which inode got written): the
    codes go to a new 0600 file, so they are never readable through the old one's mode."""
    codes = await real_codes(server)
    path = folder / "codes.txt"
    path.write_text(BEFORE)
    path.chmod(0o644)
    witness = folder / "other-name.txt"
    os.link(path, witness)
    async with running_app(server) as (app, pilot):
        await save_through_the_screen(app, pilot, codes, path, replace=True)
    assert witness.read_text() == BEFORE
    assert stat.S_IMODE(witness.stat().st_mode) == 0o644
    assert_private_file_with(path, codes)
    assert_nothing_else_in(folder, "codes.txt", "other-name.txt")


@pytest.mark.parametrize("mask", [0o000, 0o277])
async def test_a_new_file_is_0600_whatever_the_umask(
    server: RunningServer, folder: Path, mask: int
) -> None:
    codes = await real_codes(server)
    path = folder / "codes.txt"
    async with running_app(server) as (app, pilot):
        with umask(mask):
            await save_through_the_screen(app, pilot, codes, path, replace=False)
    assert_private_file_with(path, codes)
    assert_nothing_else_in(folder, "codes.txt")
