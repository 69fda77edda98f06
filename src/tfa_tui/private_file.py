"""Secrets shown once (recovery codes, a service key) saved to a file only their owner reads."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import Any

from textual.app import App

from tfa_tui.plain import visible
from tfa_tui.screens.confirm import ConfirmScreen


def write_private(path: Path, text: str, *, overwrite: bool) -> None:
    """Write a new 0600 file beside `path`, then rename it into place.

    The secret never goes into a file that existed before: not a symlink's target (a rename
    replaces the link itself), not a file others can read, not a second name of one. Without
    `overwrite`, anything at `path`, a dangling symlink included, is left alone
    (FileExistsError).
    """
    folder = path.parent
    temporary = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken the owner's bits too
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            _link_if_absent(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _link_if_absent(source: Path, path: Path) -> None:
    """A second name for `source` at `path` unless something is there, in one step; where the
    file system has no hard links (FAT on a USB stick), a check and a rename."""
    try:
        os.link(source, path, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(source, path)


async def save_private(app: App[Any], raw_path: str, text: str, what: str) -> Path | None:
    """Save `text` as a new 0600 file at `raw_path` (`~` allowed), from a worker: anything
    already at the path is replaced only when the person says so. Says how it went; returns
    the path, or None when nothing was saved. `what` names the contents in the question."""
    path = await asyncio.to_thread(lambda: Path(raw_path.strip()).expanduser())
    overwrite = False
    if await asyncio.to_thread(os.path.lexists, path):  # a symlink, even dangling, counts
        overwrite = await app.push_screen_wait(
            ConfirmScreen(
                "Replace the file?",
                f"{visible(str(path))} already exists. Replace it with {what}?",
                confirm="Replace",
                danger=True,
            )
        )
        if not overwrite:
            return None
    try:
        await asyncio.to_thread(write_private, path, text, overwrite=overwrite)
    except OSError as exc:
        app.notify(f"Could not save to {path}: {exc.strerror}.", severity="error")
        return None
    app.notify(f"Saved to {path} (readable only by you).")
    return path


__all__ = ["save_private", "write_private"]
