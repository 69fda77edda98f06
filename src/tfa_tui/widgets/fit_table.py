"""Tables that fit the terminal's width: the columns a person needs to judge a row always, the
rest as the width allows, and every field of the selected row one look (the details line under
the table) or one key (Enter: a dialog) away. Nothing scrolls sideways.

Cells are `rich.text.Text` for whatever came from the network (`tfa_tui.plain.cell`), or a `str`
of this client's own markup ("[red]✘ failed[/]"); `Shortened` shows a short form in the table
and the full one in the details.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Self

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.events import Resize
from textual.widgets import DataTable, Static

from tfa_tui import words

PADDING = 2  # DataTable's cell padding, one column each side
SEPARATOR = "  ·  "


@dataclass(frozen=True)
class Shortened:
    """A value shown short in the table (a time of today) and in full in the details."""

    short: str | Text
    full: str | Text


Cell = str | Text | Shortened


@dataclass(frozen=True)
class FitColumn:
    """`priority` 0: always shown (cut, with an ellipsis, down to `min_width` when the width
    is short); higher: shown as the width allows, lower numbers first. `min_width` None: never
    cut (an optional column that does not fit whole is then left out)."""

    key: str
    label: str
    priority: int = 0
    min_width: int | None = None


def when(moment: datetime | None) -> Shortened:
    """A time as the tables show it: "14:03:22" today, "2026-11-28 14:03" another day; the
    details give it in full, with seconds."""
    if moment is None:
        return Shortened("-", "-")
    local = moment.astimezone()
    today = words.utc_now().astimezone().date()
    short = local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M")
    return Shortened(short, local.strftime("%Y-%m-%d %H:%M:%S"))


def as_text(value: Cell | None, *, full: bool = False) -> Text:
    """A cell as text: server words are Text already (literal); a str is this client's markup."""
    if value is None:
        return Text("-")
    if isinstance(value, Shortened):
        value = value.full if full else value.short
    return value.copy() if isinstance(value, Text) else Text.from_markup(value)


def plan_columns(
    columns: Sequence[FitColumn], natural: Mapping[str, int], width: int | None
) -> dict[str, int]:
    """The columns to show and their widths, in the columns' order, for `width` cells (None:
    not known yet, every column whole). The key columns first: cut, the widest first, down to
    their `min_width` if they do not fit; then the others by priority, whole, until one does
    not fit: that one gets what is left if it may be cut that far, and the rest are left out
    (so a wider terminal shows a longer prefix of the priority order)."""
    if width is None:
        return {column.key: natural[column.key] for column in columns}
    widths = {column.key: natural[column.key] for column in columns if column.priority == 0}
    floors = {
        column.key: min(natural[column.key], column.min_width or natural[column.key])
        for column in columns
        if column.priority == 0
    }
    excess = sum(widths.values()) + PADDING * len(widths) - width
    while excess > 0:
        cuttable = [key for key in widths if widths[key] > floors[key]]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda key: widths[key])
        widths[widest] -= 1
        excess -= 1
    room = -excess if excess < 0 else 0
    optional = sorted((column for column in columns if column.priority > 0), key=_priority)
    for column in optional:
        need = natural[column.key] + PADDING
        if need <= room:
            widths[column.key] = natural[column.key]
            room -= need
            continue
        if column.min_width is not None and room - PADDING >= column.min_width:
            widths[column.key] = room - PADDING
        break
    return {column.key: widths[column.key] for column in columns if column.key in widths}


def _priority(column: FitColumn) -> int:
    return column.priority


class FitTable(DataTable[Text]):
    """A row-cursor DataTable of records (field key -> cell) that lays its columns out again
    whenever its width or its content changes. Enter opens the row's every field in a dialog
    (unless `details_on_enter` is False: then handle `DataTable.RowSelected`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Details", show=False)
    ]

    def __init__(
        self,
        columns: Sequence[FitColumn],
        *,
        title: str,
        id: str | None = None,
        classes: str | None = None,
        details_on_enter: bool = True,
        zebra_stripes: bool = True,
    ) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=zebra_stripes)
        self.fit_columns = tuple(columns)
        self.details_title = title
        self.details_on_enter = details_on_enter
        self.detail_line: RowDetailLine | None = None
        self._records: dict[str, Mapping[str, Cell]] = {}
        self._widths: dict[str, int] = {}

    # Content

    def set_records(self, records: Mapping[str, Mapping[str, Cell]]) -> None:
        """Replace every row, the cursor staying on its row when that is still there."""
        chosen = self.selected_key
        self._records = dict(records)
        self._layout(force=True, keep=chosen)

    def add_records(self, records: Mapping[str, Mapping[str, Cell]]) -> None:
        """Append rows (an older page): the columns are laid out again if they must be."""
        fresh = not (records.keys() & self._records.keys())
        self._records.update(records)
        if self._layout(force=not fresh, keep=self.selected_key):
            return
        for key, record in records.items():
            super().add_row(*self._cells(record), key=key)
        self._show_detail()

    def clear(self, columns: bool = False) -> Self:
        self._records = {}
        super().clear(columns=columns)
        if columns:
            self._widths = {}
        self._show_detail()
        return self

    def fields(self, key: str) -> dict[str, Text]:
        """Every field of a row by its column's label, shown or not, in full."""
        record = self._records[key]
        return {
            column.label: as_text(record.get(column.key), full=True) for column in self.fit_columns
        }

    @property
    def records(self) -> Mapping[str, Mapping[str, Cell]]:
        return self._records

    @property
    def selected_key(self) -> str | None:
        if self.row_count == 0 or not self._widths:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    @property
    def shown_columns(self) -> list[str]:
        """The keys of the columns on screen now."""
        return list(self._widths)

    # Layout

    def on_mount(self) -> None:
        self._layout(force=True)

    def on_resize(self, event: Resize) -> None:
        self._layout(keep=self.selected_key)

    def _available(self) -> int | None:
        width = self.size.width
        if width <= 0:
            return None
        if len(self._records) + 1 > self.size.height:  # rows and header: a vertical scrollbar
            width -= self.styles.scrollbar_size_vertical
        return width

    def _natural(self) -> dict[str, int]:
        natural = {column.key: Text(column.label).cell_len for column in self.fit_columns}
        for record in self._records.values():
            for key in natural:
                natural[key] = max(natural[key], as_text(record.get(key)).cell_len)
        return natural

    def _layout(self, *, force: bool = False, keep: str | None = None) -> bool:
        """Lay the columns out again when the plan changes (or `force`): True when done."""
        plan = plan_columns(self.fit_columns, self._natural(), self._available())
        if plan == self._widths and not force:
            return False
        scroll_y = self.scroll_y
        self._widths = plan
        super().clear(columns=True)
        labels = {column.key: column.label for column in self.fit_columns}
        for key, width in plan.items():
            self.add_column(Text(labels[key]), width=width, key=key)
        for key, record in self._records.items():
            super().add_row(*self._cells(record), key=key)
        if keep is not None and keep in self._records:
            self.move_cursor(row=self.get_row_index(keep), scroll=False)
            self.scroll_y = scroll_y
        self._show_detail()
        return True

    def _cells(self, record: Mapping[str, Cell]) -> list[Text]:
        cells = []
        for key, width in self._widths.items():
            text = as_text(record.get(key))
            text.no_wrap, text.overflow, text.end = True, "ellipsis", ""
            text.truncate(width, overflow="ellipsis")
            cells.append(text)
        return cells

    # The selected row's other fields

    def detail_text(self, key: str) -> Text:
        """A row's secondary fields (those that are not key columns), whether or not the width
        lets them be columns too, so the line says the same at every width; and any key field
        cut short. The most important first."""
        record = self._records[key]
        parts = []
        for column in sorted(self.fit_columns, key=_priority):
            value = as_text(record.get(column.key), full=True)
            width = self._widths.get(column.key)
            whole = width is not None and as_text(record.get(column.key)).cell_len <= width
            if column.priority == 0 and whole:
                continue  # a key column, on screen whole
            if value.plain.strip() in ("", "-"):
                continue
            parts.append(Text.assemble((f"{column.label}: ", "bold"), value))
        if not parts:  # every field is on screen: say where the rest of the row would be
            return Text("Enter: this row's details in a dialog.", style="italic")
        return Text(SEPARATOR).join(parts)

    def _show_detail(self) -> None:
        if self.detail_line is None:
            return
        key = self.selected_key
        self.detail_line.update(Text() if key is None else self.detail_text(key))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self:
            self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is not self or not self.details_on_enter:
            return
        key = event.row_key.value
        if key is None or key not in self._records:
            return
        from tfa_tui.screens.row_details import RowDetailsScreen

        self.app.push_screen(RowDetailsScreen(self.details_title, self.fields(key)))


class RowDetailLine(Static):
    """Under a FitTable: the selected row's fields that the table leaves out."""

    DEFAULT_CSS = """
    RowDetailLine {
        height: auto;
        max-height: 2;
        padding: 0 1;
    }
    """


class FitTableView(Vertical):
    """A FitTable with its details line under it: what a screen yields."""

    DEFAULT_CSS = """
    FitTableView {
        height: 1fr;
    }
    FitTableView > FitTable {
        height: 1fr;
    }
    """

    def __init__(
        self,
        columns: Sequence[FitColumn],
        *,
        table_id: str,
        title: str,
        details_on_enter: bool = True,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.table = FitTable(columns, title=title, id=table_id, details_on_enter=details_on_enter)
        self.table.detail_line = RowDetailLine(classes="row-detail")

    def compose(self) -> ComposeResult:
        yield self.table
        assert self.table.detail_line is not None
        yield self.table.detail_line


__all__ = [
    "Cell",
    "FitColumn",
    "FitTable",
    "FitTableView",
    "RowDetailLine",
    "Shortened",
    "as_text",
    "plan_columns",
    "when",
]
