"""``mlops data``: add, list, compare and check out dataset versions.

Every command takes ``--json``. Long adds and checkouts show a progress bar on
stderr, but only on a terminal and only for big work (see
:func:`progress_bar`); ``--json``, pipes and CI logs never get one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from mlops_sdk.cli.output import echo_json, json_option, note, print_table
from mlops_sdk.cli.state import get_workspace

if TYPE_CHECKING:
    from mlops_sdk.dataset import Dataset, DatasetVersion
    from mlops_sdk.storage.datasets import Progress
    from mlops_sdk.workspace import Workspace

SHORT_ID = 12
# The same modes as mlops_sdk.storage.datasets.LINK_MODES (a test keeps them equal);
# spelled out here so `mlops --help` imports nothing from the storage layer.
LINK_CHOICES = ("auto", "copy", "reflink", "hardlink", "symlink")
# Work at least this big gets a progress bar (on a terminal only).
BIG_BYTES = 64 << 20
BIG_FILES = 1000


@click.group("data")
def data_group() -> None:
    """Version datasets: add, list, diff and check out."""


# -- shared helpers -------------------------------------------------------------------
def fmt_size(n: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``12.3 MiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def version_to_dict(dsv: DatasetVersion) -> dict[str, Any]:
    """The stable JSON shape of a dataset version (``data versions`` and friends)."""
    return {
        "name": dsv.name,
        "version": dsv.version,
        "id": dsv.id,
        "message": dsv.message,
        "tags": dsv.tags,
        "created_at": dsv.created_at,
        "files": dsv.file_count,
        "size": dsv.size,
        "source": dsv.source,
    }


def existing_dataset(ws: Workspace, name: str) -> Dataset:
    """The dataset ``name``; :class:`~mlops_sdk.errors.DatasetNotFound` when it has no versions."""
    from mlops_sdk.errors import DatasetNotFound

    ds = ws.dataset(name)
    if not ds.versions():
        raise DatasetNotFound(f"no dataset called {name!r}; `mlops data ls` lists them")
    return ds


def split_ref(ws: Workspace, ref: str) -> tuple[str, str]:
    """``NAME@V`` to ``(NAME, V)``; ``NAME`` alone to ``(NAME, "latest")``.

    Dataset names may contain ``@``: a ref that names an existing dataset as a
    whole is that dataset, at its latest version.
    """
    name, at, version = ref.rpartition("@")
    if not at or not name:
        return ref, "latest"
    if _valid_name(ref) and ws.dataset(ref).versions():
        return ref, "latest"
    if not version:
        raise click.BadParameter(
            f"{ref!r} ends with '@': give a version after it (NAME@3, NAME@latest)"
        )
    return name, version


def _valid_name(name: str) -> bool:
    from mlops_sdk.errors import InvalidName
    from mlops_sdk.validation import validate_name

    try:
        validate_name("dataset name", name)
    except InvalidName:
        return False
    return True


def resolve_version(ws: Workspace, name: str, ref: str) -> DatasetVersion:
    """Version ``ref`` (``3``, ``v3``, an id prefix, ``latest``) of the dataset ``name``."""
    existing_dataset(ws, name)
    return ws.dataset(name).version(ref)


def _parse_tags(tags: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in tags:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="'--tag'")
        if key in out:
            raise click.BadParameter(f"the tag {key!r} is given twice", param_hint="'--tag'")
        out[key] = value
    return out


def watched(as_json: bool) -> bool:
    """Whether a person may be watching: stderr is a terminal and the output is not JSON."""
    return not as_json and sys.stderr.isatty()


def is_big(total_bytes: int, total_files: int) -> bool:
    """Whether work is long enough to deserve a progress bar."""
    return total_bytes >= BIG_BYTES or total_files >= BIG_FILES


@contextmanager
def progress_bar(
    description: str, total_bytes: int, total_files: int, *, enabled: bool
) -> Iterator[Progress | None]:
    """A ``progress(bytes, files)`` callback drawing a rich bar on stderr, or None when not ``enabled``.

    The callback may be called from worker threads (rich's progress is thread-safe).
    The bar disappears when the work is done; the command then prints its summary.
    """
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    bar = RichProgress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        DownloadColumn(binary_units=True),
        TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
        TimeRemainingColumn(),
        console=Console(stderr=True, highlight=False, markup=False, emoji=False),
        transient=True,
    )
    task = bar.add_task(description, total=max(total_bytes, 1), files=0, total_files=total_files)
    done = {"files": 0}

    def callback(nbytes: int, nfiles: int) -> None:
        done["files"] += nfiles
        bar.update(task, advance=nbytes, files=done["files"])

    with bar:
        yield callback


# -- data add -------------------------------------------------------------------------
@data_group.command("add")
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--message", "-m", default="", help="What this version is (kept with it).")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="A tag for the new version (repeatable).",
)
@json_option
def data_add(
    name: str, paths: tuple[str, ...], message: str, tags: tuple[str, ...], as_json: bool
) -> None:
    """Snapshot files or folders as a new version of the dataset NAME.

    One folder keeps its files' relative paths; one file is stored by its name;
    several paths store each file by its name and each folder under its name.
    Adding content identical to the latest version creates nothing and says
    which version it is.

    \b
    mlops data add customers data/customers/ -m "Nov export" --tag source=crm
    """
    checked_tags = _parse_tags(tags)
    ws = get_workspace()
    ds = ws.dataset(name)
    total_bytes = total_files = 0
    enabled = False
    if watched(as_json):
        from mlops_sdk.scan import scan

        found = scan(list(paths))  # stat only, to size the bar; add checks everything again
        total_bytes, total_files = sum(f.size for f in found), len(found)
        enabled = is_big(total_bytes, total_files)
    with progress_bar(f"adding {name}", total_bytes, total_files, enabled=enabled) as progress:
        dsv = ds.add(list(paths), message=message, tags=checked_tags, progress=progress)
    stats = dsv.stats
    assert stats is not None
    if as_json:
        data = version_to_dict(dsv)
        data.update(
            created=stats.created,
            hashed_files=stats.hashed_files,
            stored_files=stats.stored_files,
            stored_bytes=stats.stored_bytes,
        )
        echo_json(data)
        return
    what = f"{_plural(dsv.file_count, 'file')}, {fmt_size(dsv.size)}"
    if stats.created:
        click.echo(f"added {dsv.name} v{dsv.version} ({dsv.id[:SHORT_ID]}): {what}")
    else:
        click.echo(f"unchanged: same content as v{dsv.version} ({dsv.id[:SHORT_ID]}): {what}")
    click.echo(
        f"hashed {_plural(stats.hashed_files, 'file')}, "
        f"stored {stats.stored_files} new ({fmt_size(stats.stored_bytes)})"
    )


# -- data ls --------------------------------------------------------------------------
@data_group.command("ls")
@json_option
def data_ls(as_json: bool) -> None:
    """List every dataset: how many versions, the latest one, its files and size."""
    from mlops_sdk.display import fmt_time

    ws = get_workspace()
    items: list[dict[str, Any]] = []
    for ds in ws.datasets():
        versions = ds.versions()
        if not versions:
            continue
        latest = versions[-1]
        items.append(
            {
                "name": ds.name,
                "versions": len(versions),
                "latest": latest.version,
                "latest_id": latest.id,
                "files": latest.file_count,
                "size": latest.size,
                "updated_at": latest.created_at,
            }
        )
    if as_json:
        echo_json(items)
        return
    if not items:
        note("no datasets found; add one with `mlops data add NAME PATH`")
        return
    print_table(
        ["name", "versions", "latest", "files", "size", "updated"],
        [
            (
                d["name"],
                d["versions"],
                f"v{d['latest']}",
                d["files"],
                fmt_size(d["size"]),
                fmt_time(d["updated_at"]),
            )
            for d in items
        ],
        no_wrap={"latest", "size", "updated"},
    )


# -- data versions --------------------------------------------------------------------
@data_group.command("versions")
@click.argument("name")
@json_option
def data_versions(name: str, as_json: bool) -> None:
    """List the versions of the dataset NAME, oldest first."""
    from mlops_sdk.display import fmt_time

    ws = get_workspace()
    versions = existing_dataset(ws, name).versions()
    if as_json:
        echo_json([version_to_dict(v) for v in versions])
        return
    print_table(
        ["version", "id", "created", "files", "size", "message", "tags"],
        [
            (
                f"v{v.version}",
                v.id[:SHORT_ID],
                fmt_time(v.created_at),
                v.file_count,
                fmt_size(v.size),
                v.message,
                " ".join(f"{k}={val}" for k, val in sorted(v.tags.items())),
            )
            for v in versions
        ],
        no_wrap={"version", "id", "created", "size"},
    )


# -- data diff ------------------------------------------------------------------------
@data_group.command("diff")
@click.argument("name")
@click.argument("old")
@click.argument("new")
@json_option
def data_diff(name: str, old: str, new: str, as_json: bool) -> None:
    """What changed from version OLD to version NEW of the dataset NAME.

    Versions are numbers (3, v3), unique id prefixes (6+ hex digits) or
    "latest".

    \b
    mlops data diff customers v1 latest
    """
    ws = get_workspace()
    a = resolve_version(ws, name, old)
    b = resolve_version(ws, name, new)
    d = b.diff(a)
    if as_json:
        data: dict[str, Any] = {
            "name": name,
            "from": {"version": a.version, "id": a.id},
            "to": {"version": b.version, "id": b.id},
        }
        data.update(d.to_dict())
        echo_json(data)
        return
    rows: list[tuple[str, str, str]] = []
    rows += [("added", e.path, fmt_size(e.size)) for e in d.added]
    rows += [("removed", e.path, fmt_size(e.size)) for e in d.removed]
    rows += [
        ("modified", n.path, f"{fmt_size(o.size)} -> {fmt_size(n.size)}") for o, n in d.modified
    ]
    rows.sort(key=lambda r: r[1])
    title = f"{name} v{a.version} ({a.id[:SHORT_ID]}) -> v{b.version} ({b.id[:SHORT_ID]})"
    if not rows:
        click.echo(title)
        click.echo(d.summary())
        return
    print_table(["change", "path", "size"], rows, title=title, no_wrap={"change"})
    click.echo(d.summary())


# -- data checkout --------------------------------------------------------------------
@data_group.command("checkout")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("dest")
@click.option("--force", is_flag=True, help="Overwrite or delete local changes stored nowhere.")
@click.option(
    "--link",
    type=click.Choice(LINK_CHOICES),
    default="auto",
    show_default=True,
    help="How files are placed: auto (reflink, else copy), copy, reflink, hardlink, symlink.",
)
@json_option
def data_checkout(ref: str, dest: str, force: bool, link: str, as_json: bool) -> None:
    """Make the folder DEST hold exactly one version of a dataset (default: the latest).

    Missing files are written, changed ones replaced, extra ones removed,
    identical ones left alone. A file is only replaced or removed when its
    content belongs to some version of the dataset; otherwise nothing is
    changed and the command fails, unless --force. hardlink and symlink
    point into the store: do not edit such files in place.

    \b
    mlops data checkout customers@2 work/customers
    """
    ws = get_workspace()
    name, version = split_ref(ws, ref)
    dsv = resolve_version(ws, name, version)
    enabled = watched(as_json) and is_big(dsv.size, dsv.file_count)
    with progress_bar(
        f"checking out {name}", dsv.size, dsv.file_count, enabled=enabled
    ) as progress:
        result = dsv.checkout(dest, force=force, link=link, progress=progress)
    if as_json:
        echo_json(
            {
                "name": dsv.name,
                "version": dsv.version,
                "id": dsv.id,
                "dest": str(result.dest),
                "written": result.written,
                "removed": result.removed,
                "unchanged": result.unchanged,
            }
        )
        return
    click.echo(
        f"checked out {dsv.name} v{dsv.version} ({dsv.id[:SHORT_ID]}) into {result.dest}: "
        f"{result.written} written, {result.removed} removed, {result.unchanged} unchanged"
    )
