"""Manifests: the list of files that makes up one dataset (or model) version.

Pure data and functions, no I/O, so the invariants (canonical bytes, the id,
diffs) are property-tested directly. A manifest's id is the sha256 of its
canonical JSON: identical content gives the identical id, whatever order the
files were found in and whoever added them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from mlops_sdk.errors import IntegrityError, InvalidName, InvalidValue
from mlops_sdk.validation import validate_relpath

FORMAT = 1
ALGORITHMS = ("sha256", "md5")


@attrs.frozen(order=True)
class FileEntry:
    """One file of a version: its path inside the version, size in bytes, content digest."""

    path: str
    size: int
    digest: str


_HEX = re.compile("[0-9a-f]+")


def _check_entries(entries: Sequence[FileEntry], algorithm: str) -> None:
    width = {"sha256": 64, "md5": 32}[algorithm]
    seen: set[str] = set()
    dirs: set[str] = set()
    for e in entries:
        if not isinstance(e, FileEntry):
            raise InvalidValue(f"a manifest holds FileEntry values, got {type(e).__name__}")
        validate_relpath("file path", e.path)
        if e.path in seen:
            raise InvalidValue(f"the path {e.path!r} appears twice in one version")
        seen.add(e.path)
        parts = e.path.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        if type(e.size) is not int or e.size < 0:
            raise InvalidValue(f"size of {e.path!r} must be a non-negative int, got {e.size!r}")
        if not isinstance(e.digest, str) or len(e.digest) != width or _HEX.fullmatch(e.digest) is None:
            raise InvalidValue(f"digest of {e.path!r} is not a {algorithm} hex digest: {e.digest!r}")
    clash = seen & dirs
    if clash:
        raise InvalidValue(f"{sorted(clash)[0]!r} is both a file and a folder in one version")


def _sorted_entries(entries: Iterable[FileEntry]) -> tuple[FileEntry, ...]:
    items = tuple(entries)
    for e in items:  # sorting compares fields: refuse foreign values before it does
        if not isinstance(e, FileEntry):
            raise InvalidValue(f"a manifest holds FileEntry values, got {type(e).__name__}")
        if not isinstance(e.path, str):
            raise InvalidName(f"file path must be a string, got {type(e.path).__name__}")
    return tuple(sorted(items, key=lambda e: e.path))


@attrs.frozen
class Manifest:
    """The files of a version, sorted by path, with the hash algorithm of their digests."""

    entries: tuple[FileEntry, ...] = attrs.field(converter=_sorted_entries)
    algorithm: str = attrs.field(default="sha256")

    def __attrs_post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise InvalidValue(f"unknown hash algorithm {self.algorithm!r}; known: {', '.join(ALGORITHMS)}")
        _check_entries(self.entries, self.algorithm)

    def __iter__(self) -> Iterator[FileEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.entries}

    def get(self, path: str) -> FileEntry | None:
        return self.by_path().get(path)

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted entries, no spaces, UTF-8. Same files, same bytes."""
        doc = {
            "format": FORMAT,
            "algorithm": self.algorithm,
            "files": [[e.path, e.size, e.digest] for e in self.entries],
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    @property
    def id(self) -> str:
        """sha256 of the canonical bytes: the version's content id."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes, *, expected_id: str | None = None) -> Manifest:
        """Parse canonical bytes; with ``expected_id``, refuse bytes that do not hash to it."""
        if expected_id is not None and hashlib.sha256(data).hexdigest() != expected_id:
            raise IntegrityError(f"manifest {expected_id} is corrupted: its content does not match its id")
        try:
            doc = json.loads(data)
        except ValueError as exc:  # not UTF-8, or not JSON
            raise IntegrityError(f"manifest is not valid: {exc}") from exc
        if not isinstance(doc, dict):
            raise IntegrityError(f"manifest is not valid: a JSON object was expected, got {type(doc).__name__}")
        if doc.get("format") != FORMAT:
            raise InvalidValue(f"unsupported manifest format {doc.get('format')!r}")
        files, algorithm = doc.get("files"), doc.get("algorithm")
        if not isinstance(files, list) or not isinstance(algorithm, str):
            raise IntegrityError("manifest is not valid: it needs a list of files and an algorithm")
        entries = []
        for row in files:
            # exactly [path, size, digest] with their JSON types: no silent conversions
            if not (
                isinstance(row, list)
                and len(row) == 3
                and isinstance(row[0], str)
                and type(row[1]) is int
                and isinstance(row[2], str)
            ):
                raise IntegrityError(f"manifest is not valid: a file entry must be [path, size, digest], got {row!r}")
            entries.append(FileEntry(row[0], row[1], row[2]))
        return cls(entries, algorithm)

    def digests(self) -> set[str]:
        return {e.digest for e in self.entries}


@attrs.frozen
class ManifestDiff:
    """What changed from one version (``old``) to another (``new``), by path."""

    added: tuple[FileEntry, ...]
    removed: tuple[FileEntry, ...]
    modified: tuple[tuple[FileEntry, FileEntry], ...]  # (old, new)
    unchanged: int

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.modified)

    def summary(self) -> str:
        return f"{len(self.added)} added, {len(self.removed)} removed, {len(self.modified)} modified, {self.unchanged} unchanged"

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [attrs.asdict(e) for e in self.added],
            "removed": [attrs.asdict(e) for e in self.removed],
            "modified": [{"path": o.path, "old": attrs.asdict(o), "new": attrs.asdict(n)} for o, n in self.modified],
            "unchanged": self.unchanged,
        }


def diff(old: Manifest, new: Manifest) -> ManifestDiff:
    """Compare two manifests by path. Digests of different algorithms are compared by size only when equal names."""
    a, b = old.by_path(), new.by_path()
    comparable = old.algorithm == new.algorithm
    added = tuple(b[p] for p in sorted(b.keys() - a.keys()))
    removed = tuple(a[p] for p in sorted(a.keys() - b.keys()))
    modified = []
    unchanged = 0
    for p in sorted(a.keys() & b.keys()):
        same = a[p].digest == b[p].digest if comparable else a[p].size == b[p].size
        if same and a[p].size == b[p].size:
            unchanged += 1
        else:
            modified.append((a[p], b[p]))
    return ManifestDiff(added, removed, tuple(modified), unchanged)


def apply_diff(old: Manifest, d: ManifestDiff) -> Manifest:
    """``old`` with ``d`` applied: ``apply_diff(a, diff(a, b)) == b`` (a tested invariant)."""
    files: dict[str, FileEntry] = old.by_path()
    for e in d.removed:
        files.pop(e.path, None)
    for _, new in d.modified:
        files[new.path] = new
    for e in d.added:
        files[e.path] = e
    return Manifest(files.values(), old.algorithm)


def entries_from(rows: Iterable[Mapping[str, Any]]) -> list[FileEntry]:
    return [FileEntry(str(r["path"]), int(r["size"]), str(r["digest"])) for r in rows]
