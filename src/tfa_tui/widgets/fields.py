"""A text field that keeps up with keys typed faster than the app handles them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Input

# How long Enter waits for the field to take the keys typed before it. Milliseconds in
# practice; the bound only matters for a field being removed while the key was on its way.
CATCH_UP_SECONDS = 1.0


async def caught_up(widget: Widget) -> None:
    """Return once `widget` has handled every message queued before this call (the keys typed
    before the one being handled), or after CATCH_UP_SECONDS."""
    handled = asyncio.Event()
    if widget.call_later(handled.set):
        with contextlib.suppress(TimeoutError):  # never hang on a field being removed
            async with asyncio.timeout(CATCH_UP_SECONDS):
                await handled.wait()


class Field(Input):
    """An Input where keys that arrive in one burst (tmux, a slow SSH link, a password manager's
    auto-type) give what the same keys typed one by one give.

    The app hands each key to the focused field's message queue. Textual's Input inserts a
    printable key when it reads it there, but runs an editing key (Backspace, Delete, the
    arrows, Enter) as a binding only after the key has bubbled back up to the app, by which
    time the keys behind it may already be in the field: `12`, Backspace, Backspace, `000000`
    became `12000`. So:

    - the field runs its own editing bindings when it reads the key, in the order typed;
    - Enter is a priority binding, run by the app before it hands on the next key. It waits
      until the field has taken the keys before it, posts `Submitted` with that value, then
      moves the focus to `enter_moves_to` at once (not through a message, which would come
      after the next keys), so the keys typed after Enter land in the next field.

    With `required`, Enter in an empty field stays there: the screen gets `Submitted` with the
    empty value to say what is missing.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "enter", "Submit", show=False, priority=True)
    ]

    def __init__(
        self, *args: Any, enter_moves_to: str | None = None, required: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.enter_moves_to = enter_moves_to
        self.required = required

    async def action_enter(self) -> None:
        await caught_up(self)
        await self.action_submit()

    async def action_submit(self) -> None:
        await super().action_submit()
        if self.enter_moves_to is None or (self.required and not self.value.strip()):
            return
        target = self.screen.query_one(self.enter_moves_to)
        self.screen.set_focus(target)  # now: widget.focus() would wait behind the next keys

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            return  # Input inserts it
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            # Priority bindings were the app's to run; it only sends them on if they declined.
            if not binding.priority and await self.app.run_action(binding.action, self):
                event.stop()  # handled here, in turn: not again by the app
                return
