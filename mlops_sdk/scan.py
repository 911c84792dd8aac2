"""Finding the files to add: walk the given paths, check them, stat them once.

Everything that could make an add fail halfway is checked here, before any
byte is stored: missing paths, empty folders, links that leave the tree,
special files, names that cannot be stored. The store is untouched when this
raises.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from mlops_sdk.errors import InvalidName, InvalidValue
from mlops_sdk.storage.datasets import SourceFile
from mlops_sdk.validation import validate_relpath

PathArg = str | os.PathLike[str]


def scan(paths: PathArg | Sequence[PathArg], *, trusted: Sequence[Path] = ()) -> list[SourceFile]:
    """The files under ``paths``, with their paths inside the version.

    One folder: its files keep their paths relative to it. One file: its name.
    Several paths: each file by its name, each folder as ``<folder name>/...``.
    A link inside a folder must point at a file inside the same folder, or
    inside one of the ``trusted`` folders (the store's objects, which a
    ``link="symlink"`` checkout points at).
    """
    if isinstance(paths, str | os.PathLike):
        items = [paths]
    elif isinstance(paths, Sequence | set | frozenset) and not isinstance(paths, bytes | bytearray):
        items = list(paths)
    else:
        raise InvalidValue(f"paths to add must be a path or a list of paths, got {type(paths).__name__}")
    for item in items:
        if not isinstance(item, str | os.PathLike) or isinstance(os.fspath(item), bytes):
            raise InvalidValue(f"paths to add must be str or os.PathLike, got {type(item).__name__}: {item!r}")
    if not items:
        raise InvalidValue("nothing to add: no paths given")
    found: list[SourceFile] = []
    single_dir = len(items) == 1 and Path(items[0]).is_dir()
    for item in items:
        path = Path(item)
        if not path.exists() and not path.is_symlink():
            raise InvalidValue(f"cannot add {path}: it does not exist")
        if path.is_symlink() and not path.exists():
            raise InvalidValue(f"cannot add {path}: it is a broken symbolic link")
        if path.is_dir():
            prefix = "" if single_dir else path.resolve().name
            before = len(found)
            _walk(path, path.resolve(), prefix, found, tuple(Path(t).resolve() for t in trusted))
            if len(found) == before:
                raise InvalidValue(f"cannot add {path}: the folder holds no files")
        elif path.is_file():
            found.append(_source(path, path.name))
        else:
            raise InvalidValue(f"cannot add {path}: not a regular file or folder")
    seen: set[str] = set()
    folders: set[str] = set()
    for f in found:
        if f.path in seen:
            raise InvalidValue(f"two of the given paths would both be stored as {f.path!r}")
        seen.add(f.path)
        parts = f.path.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = seen & folders  # a file "a" from one path, a folder "a/" from another
    if clash:
        name = sorted(clash)[0]
        raise InvalidValue(f"the given paths would store {name!r} both as a file and as a folder")
    return found


def _source(local: Path, rel: str, st: os.stat_result | None = None) -> SourceFile:
    try:
        validate_relpath("file path", rel)
    except (InvalidName, InvalidValue) as exc:  # validate_relpath raises InvalidName
        raise InvalidValue(f"cannot add {local}: {exc}") from None
    return SourceFile.of(local, rel, st)


def _walk(folder: Path, real_root: Path, prefix: str, out: list[SourceFile], trusted: tuple[Path, ...] = ()) -> None:
    """Depth-first walk with os.scandir: one stat per file, links checked against the tree."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except PermissionError as exc:
        raise InvalidValue(f"cannot add {folder}: {exc.strerror}") from exc
    for entry in entries:
        local = Path(entry.path)
        rel = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_symlink():
            try:
                target = local.resolve()
            except (RuntimeError, OSError) as exc:  # a loop of links (RuntimeError before Python 3.13)
                raise InvalidValue(f"cannot add {local}: it is a link that cannot be followed ({exc})") from None
            if not (target.is_relative_to(real_root) or any(target.is_relative_to(t) for t in trusted)):
                raise InvalidValue(f"cannot add {local}: it is a link to {target}, outside {real_root}")
            if target.is_dir():
                raise InvalidValue(f"cannot add {local}: links to folders are not followed (link to {target})")
            if not target.is_file():
                raise InvalidValue(f"cannot add {local}: it is a broken link or not a regular file")
            out.append(_source(local, rel, target.stat()))
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            _walk(local, real_root, rel, out, trusted)
        elif stat.S_ISREG(st.st_mode):
            out.append(_source(local, rel, st))
        else:
            raise InvalidValue(f"cannot add {local}: not a regular file (a socket, pipe or device)")
