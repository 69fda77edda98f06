"""Plain words for what went wrong, shown in the UI instead of exceptions."""

from __future__ import annotations

from datetime import datetime

from tfa_tui.api.errors import ApiError, TooManyAttempts, Unreachable


def describe(error: BaseException) -> str:
    if isinstance(error, TooManyAttempts):
        return f"Too many failed attempts. Try again in {error.retry_after} seconds."
    if isinstance(error, Unreachable):
        return error.message
    if isinstance(error, ApiError):
        return error.message
    return "Something unexpected went wrong. Please try again."


def local_time(moment: datetime | None, *, with_seconds: bool = False) -> str:
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")
