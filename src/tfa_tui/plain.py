"""Words from the server shown as plain text: never markup, never an action, never an escape.

Usernames, clients (any User-Agent), addresses, reasons and messages come from people the reader
does not control. Parsed as markup, `[/x]` ends the app with MarkupError and `[@click=app.quit]`
becomes something to click; written to the terminal raw, `\\x1b[2J` is an instruction to it.
So every such value goes through `visible()` and reaches a widget as `Content` or a Rich `Text`,
never as a markup string.
"""

from __future__ import annotations

import unicodedata

from rich.text import Text
from textual.content import Content

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# Joiners build emoji and words in several scripts; every other format character is invisible
# (or, like the bidi overrides, reorders what follows), so it is shown as its escape.
_KEPT_FORMAT = frozenset("\u200c\u200d")
_HIDDEN = frozenset(("Cc", "Cs", "Zl", "Zp"))


def _escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _is_hidden(char: str) -> bool:
    category = unicodedata.category(char)
    return category in _HIDDEN or (category == "Cf" and char not in _KEPT_FORMAT)


def visible(text: str) -> str:
    """`text` with each control, format and separator character written as its escape (`\\x1b`,
    `\\r`, `\\u202e`): all of it shows, none of it acts on the terminal or reorders the line."""
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(_escape(char) if _is_hidden(char) else char for char in text)


def plain(text: str) -> Content:
    """A server value for a Static, a Label or a dialog: shown exactly, markup characters too."""
    return Content(visible(text))


def cell(text: str) -> Text:
    """A server value for a DataTable cell (a `str` cell would be parsed as Rich markup)."""
    return Text(visible(text), no_wrap=True, end="")


def template(markup: str, /, **values: str) -> Content:
    """Our own markup with each `$name` replaced by a server value, which stays plain text:
    `template("Signing in as [b]$name[/b].", name=username)`."""
    return Content.from_markup(markup, **{key: visible(value) for key, value in values.items()})


__all__ = ["cell", "plain", "template", "visible"]
