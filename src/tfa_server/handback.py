"""Work on a thread pool whose results reach the event loop in batches.

`loop.run_in_executor` wakes the loop once per finished call (a write to its self-pipe, a
trip through the selector). Under load the database threads finish many calls per loop
iteration, and B3 (bench/) measured those wake-ups as a large part of an authenticated read.
Here a finished call queues its outcome and wakes the loop only when no wake-up is already on
its way, so the loop takes every outcome that is ready in one go.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")

_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


class _Inbox:
    """Outcomes waiting for one loop, and whether a wake-up is already on its way."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.outcomes: list[_Outcome] = []
        self.lock = threading.Lock()
        self.wake_pending = False

    def put(self, outcome: _Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)
            if self.wake_pending:
                return
            self.wake_pending = True
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            self.loop.call_soon_threadsafe(self.deliver)

    def deliver(self) -> None:
        with self.lock:
            self.wake_pending = False
            ready, self.outcomes = self.outcomes, []
        for future, result, exc in ready:
            if future.done():  # cancelled while the call ran
                continue
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)


class HandBack:
    """Runs calls on `executor` and hands their outcomes back to the awaiting loop in
    batches; otherwise what `loop.run_in_executor(executor, work)` does."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        inbox = self._inboxes.get(loop)
        if inbox is None:
            inbox = self._inboxes[loop] = _Inbox(loop)
        future: asyncio.Future[T] = loop.create_future()
        self._executor.submit(_call, inbox, future, work)
        return await future


def _call(inbox: _Inbox, future: asyncio.Future[Any], work: Callable[[], Any]) -> None:
    try:
        outcome: _Outcome = (future, work(), None)
    except BaseException as exc:  # handed to the awaiting coroutine, as run_in_executor does
        outcome = (future, None, exc)
    inbox.put(outcome)
