"""Rendering for the ``mlops`` command: JSON for machines, rich tables for people.

JSON goes to stdout, always valid (``allow_nan=False``): NaN and infinite
floats, which JSON cannot hold, are written as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (what ``float()`` reads back), so a
diverged loss stays distinguishable from a missing metric (``null`` or an
absent key). rich is imported only when a table is printed.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlops_sdk.display import fmt_value

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

MISSING_CELL = "-"


def json_option(fn: F) -> F:
    """The ``--json`` flag every listing command takes."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print machine-readable JSON to stdout instead of a table.",
    )(fn)


def to_jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as strings, enums as their values, tuples as lists."""
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return str(value)


def dumps(data: Any) -> str:
    """Indented, valid JSON (see the module docstring for NaN and infinity)."""
    return json.dumps(to_jsonable(data), indent=2, ensure_ascii=False, allow_nan=False)


def echo_json(data: Any) -> None:
    click.echo(dumps(data))


def cell(value: Any) -> str:
    """Compact text for a table cell: 6 significant digits, JSON for lists and dicts."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(to_jsonable(value), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return fmt_value(value)


def full(value: Any) -> str:
    """Full-precision text for a single value (``runs show``)."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else fmt_value(value)
    return cell(value)


def console() -> Console:
    """A console on stdout; off a terminal (pipes, files, CI logs) wide enough never to wrap a table."""
    from rich.console import Console

    out = Console(highlight=False, emoji=False, markup=False)
    if not out.is_terminal:
        out = Console(highlight=False, emoji=False, markup=False, width=1000)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    caption: str | None = None,
    fmt: Callable[[Any], str] = cell,
    show_header: bool = True,
    spaced: bool = False,
    no_wrap: Collection[str] = (),
) -> None:
    """Print one table; numeric columns are right-aligned, text is never read as markup.

    ``title`` is printed on its own line above the table (after a blank line
    when ``spaced``). Columns named in ``no_wrap`` are never folded on a narrow
    terminal. Off a terminal, trailing spaces are stripped.
    """
    from rich import box
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    data = [list(r) for r in rows]
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        show_header=show_header,
        caption=Text(caption) if caption else None,
        caption_justify="left",
    )
    for i, header in enumerate(headers):
        column = [r[i] for r in data if r[i] is not None]
        numeric = bool(column) and all(_is_number(v) for v in column)
        table.add_column(
            Text(header),
            justify="right" if numeric else "left",
            overflow="fold",
            no_wrap=header in no_wrap,
        )
    for r in data:
        table.add_row(*(Text(MISSING_CELL if v is None else fmt(v)) for v in r))
    parts: list[RenderableType] = []
    if spaced:
        parts.append(Text(""))
    if title:
        parts.append(Text(title, style="bold"))
    parts.append(table)
    out = console()
    if out.is_terminal:
        out.print(*parts, sep="\n")
        return
    with out.capture() as captured:
        out.print(*parts, sep="\n")
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def print_kv(
    title: str,
    items: Iterable[tuple[str, Any]],
    *,
    fmt: Callable[[Any], str] = full,
    spaced: bool = True,
) -> None:
    """Print a titled key/value table (nothing when there are no items)."""
    pairs = list(items)
    if pairs:
        print_table(["key", "value"], pairs, title=title, fmt=fmt, show_header=False, spaced=spaced)


def note(message: str) -> None:
    """A hint for people, on stderr so it never mixes with data on stdout."""
    click.echo(message, err=True)
