"""Keeping a store healthy: ``mlops gc`` (remove what nothing references) and ``mlops verify``.

References come from the tracking store: every run artifact, and every file of
every dataset or model version kept as objects. ``gc`` removes only objects
no record refers to and older than a grace period (default one hour), so an
add still running in another process, whose version is not recorded yet,
keeps its objects. ``verify`` re-hashes every object and reports corrupted
ones by key and path, and every referenced object that is missing, by the
version or run that needs it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from mlops_sdk.manifest import Manifest
from mlops_sdk.storage.objects import ObjectStore

if TYPE_CHECKING:
    from mlops_sdk.workspace import Workspace

DEFAULT_GRACE = 3600.0


@attrs.frozen
class GcResult:
    removed: int
    removed_bytes: int
    kept: int
    young: int  # unreferenced, but inside the grace period
    dry_run: bool


@attrs.frozen
class Problem:
    """One thing ``verify`` found wrong: ``kind`` is ``corrupted`` or ``missing``."""

    kind: str
    key: str
    detail: str


@attrs.frozen
class VerifyResult:
    checked: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def referenced(ws: Workspace) -> dict[str, list[str]]:
    """Object digests the workspace's records refer to, each with who refers to it."""
    from mlops_sdk.tracking.sql_versions import KINDS

    refs: dict[str, list[str]] = defaultdict(list)
    for digest in ws.tracking.artifact_digests():
        refs[digest].append("a run artifact")
    for kind in KINDS:
        for rec in ws.tracking.list_versions(kind):
            if rec.meta.get("source"):
                continue  # kept by another tool (DVC): checked through its source plugin
            manifest = Manifest.from_bytes(ws.tracking.get_manifest(kind, rec.name, rec.version), expected_id=rec.id)
            if manifest.algorithm != "sha256":
                continue
            for e in manifest:
                refs[e.digest].append(f"{kind} {rec.name!r} v{rec.version} file {e.path!r}")
    return refs


def _stored(objects: ObjectStore) -> list[str]:
    out = []
    for key in objects.storage.list(f"{ObjectStore.PREFIX}/"):
        parts = key.split("/")
        if len(parts) == 3 and len(parts[1]) == 2:
            out.append(parts[1] + parts[2])
    return out


def gc(ws: Workspace, *, grace: float = DEFAULT_GRACE, dry_run: bool = False) -> GcResult:
    """Remove objects nothing references and older than ``grace`` seconds."""
    objects = ws.objects
    refs = referenced(ws)
    now = time.time()
    removed = removed_bytes = kept = young = 0
    for digest in _stored(objects):
        if digest in refs:
            kept += 1
            continue
        key = objects.key(digest)
        written = objects.storage.modified(key)
        if grace > 0 and (written is None or now - written < grace):
            young += 1
            continue
        size = objects.storage.size(key)
        if not dry_run:
            objects.storage.delete(key)
        removed += 1
        removed_bytes += size
    return GcResult(removed, removed_bytes, kept, young, dry_run)


def verify(ws: Workspace, *, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Re-hash every stored object; find every referenced object that is missing."""
    from mlops_sdk.dataset import KIND as DATASET
    from mlops_sdk.dataset import source_reader

    objects = ws.objects
    refs = referenced(ws)
    problems: list[Problem] = []
    stored = _stored(objects)
    for digest in stored:
        if not objects.verify(digest):
            key = objects.key(digest)
            where = objects.storage.local_path(key) or f"{objects.storage.uri}/{key}"
            problems.append(Problem("corrupted", key, f"{where}: content does not match its hash"))
        if progress is not None:
            progress(1)
    present = set(stored)
    for digest, users in sorted(refs.items()):
        if digest not in present:
            problems.append(Problem("missing", objects.key(digest), f"needed by {users[0]}" + (f" and {len(users) - 1} more" if len(users) > 1 else "")))
    checked = len(stored)
    for rec in ws.tracking.list_versions(DATASET):
        source = rec.meta.get("source")
        if not source:
            continue
        manifest = Manifest.from_bytes(ws.tracking.get_manifest(DATASET, rec.name, rec.version), expected_id=rec.id)
        reader = source_reader(source)
        for e in reader.missing(manifest, source=dict(source)):
            problems.append(Problem("missing", e.digest, f"dataset {rec.name!r} v{rec.version} file {e.path!r} (kept by {source.get('type')})"))
        checked += len(manifest)
    return VerifyResult(checked, tuple(problems))
