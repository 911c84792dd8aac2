"""Datasets: named series of immutable, content-addressed versions.

>>> ds = ws.dataset("customers")                                  # doctest: +SKIP
>>> dsv = ds.add("data/customers/", message="Nov export")         # doctest: +SKIP
>>> dsv.checkout("elsewhere/")                                    # doctest: +SKIP

A version is its manifest (every file's path, size and digest); its ``id`` is
the manifest's sha256, so the same content always gets the same id and adding
it again stores nothing and creates no new version. The bytes live in the
workspace's dataset store (content-addressed objects by default, DVC with the
plugin); the version records and lineage live in the tracking store.
"""

from __future__ import annotations

import html
import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs

from mlops_sdk.errors import DatasetNotFound, InvalidValue, MissingDependency, VersionNotFound
from mlops_sdk.manifest import FileEntry, Manifest, ManifestDiff, diff
from mlops_sdk.records import VersionRecord
from mlops_sdk.scan import PathArg, scan
from mlops_sdk.storage.datasets import DatasetReader, Progress, no_progress
from mlops_sdk.validation import to_tag_value, validate_key, validate_name, validate_relpath

if TYPE_CHECKING:
    from mlops_sdk.checkout import CheckoutResult
    from mlops_sdk.run import RunList
    from mlops_sdk.workspace import Workspace

KIND = "dataset"
TABULAR = (".csv", ".tsv", ".parquet", ".json", ".jsonl")


def source_reader(source: Mapping[str, Any]) -> DatasetReader:
    """The registered source plugin that reads versions whose ``source["type"]`` names it."""
    from mlops_sdk.plugins import get_plugin_manager

    scheme = str(source.get("type", ""))
    entry = get_plugin_manager().registry.view("source").get(scheme)
    if entry is None:
        raise MissingDependency(
            f"this dataset version is kept by {scheme!r}, and no installed plugin reads {scheme!r} data"
            + (": pip install mlops-sdk-dvc" if scheme == "dvc" else "")
        )
    key = (scheme, entry.target_name)  # one reader per source per process: opening DVC repos is slow
    reader = _source_readers.get(key)
    if reader is None:
        reader = _source_readers.setdefault(key, entry.load()())
    return reader


_source_readers: dict[tuple[str, str], DatasetReader] = {}


def _own_folders(ws: Workspace) -> list[Path]:
    """Folders holding the workspace's own files (records, objects, caches): no dataset may
    include them, and no checkout may overwrite or delete them."""
    folders = [ws.root / ".mlops"]
    local = getattr(ws.storage, "folder", None)
    if isinstance(local, Path):
        folders.append(local)
    return [f.resolve() for f in folders]


def _refuse_overlap(ws: Workspace, path: str | os.PathLike[str], what: str) -> None:
    target = Path(path).resolve()
    for own in _own_folders(ws):
        if own.is_relative_to(target) or target.is_relative_to(own):
            raise InvalidValue(
                f"cannot {what} {path}: it holds the workspace's own files ({own}); use a folder of its own"
            )


class Dataset:
    """A named dataset in a workspace: ``ws.dataset("customers")``."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace = workspace
        self.name = validate_name("dataset name", name)

    def add(
        self,
        paths: PathArg | Sequence[PathArg],
        message: str = "",
        tags: Mapping[str, str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> DatasetVersion:
        """Snapshot files or a folder as a new version (or return the version with identical content).

        One folder keeps its files' relative paths; one file is stored by its
        name; several paths store each file by name and each folder under its
        name. Everything is checked before anything is stored: missing paths,
        empty folders, links leaving the tree (links into this store's own
        objects, as a ``link="symlink"`` checkout makes, are fine) and special
        files raise :class:`~mlops_sdk.errors.InvalidValue` and leave the store
        unchanged.
        """
        if not isinstance(message, str):
            raise InvalidValue(f"message must be a string, got {type(message).__name__}")
        checked_tags = {validate_key("tag key", k): to_tag_value(k, v) for k, v in (tags or {}).items()}
        ws = self.workspace
        for item in [paths] if isinstance(paths, str | os.PathLike) else paths if isinstance(paths, Sequence) else []:
            if isinstance(item, str | os.PathLike):
                _refuse_overlap(ws, item, "add")
        objects_folder = getattr(ws.dataset_store, "objects_folder", None)  # a symlinked checkout points there
        files = scan(paths, trusted=[objects_folder] if isinstance(objects_folder, Path) else [])
        previous = self._latest_record()
        previous_manifest = self._manifest(previous) if previous is not None else None
        result = ws.dataset_store.add(
            self.name, files, previous=previous_manifest, message=message, progress=progress or no_progress
        )
        manifest = result.manifest
        meta: dict[str, Any] = {"files": len(manifest), "size": manifest.total_size, "algorithm": manifest.algorithm}
        if result.source is not None:
            meta["source"] = result.source
        record, created = ws.tracking.create_version(
            KIND,
            self.name,
            id=manifest.id,
            manifest=manifest.to_bytes(),
            message=message,
            tags=checked_tags,
            meta=meta,
            created_at=time.time(),
            dedupe=True,
        )
        dsv = DatasetVersion(ws, record, manifest)
        dsv.stats = AddStats(created, result.hashed_files, result.stored_files, result.stored_bytes)
        return dsv

    def register(self, dsv: DatasetVersion) -> DatasetVersion:
        """Record a version read from elsewhere (``Dataset.from_dvc``) in this workspace; content is not copied."""
        if dsv.source is None:
            raise InvalidValue("only versions read through a source plugin (Dataset.from_dvc) can be registered")
        manifest = dsv.manifest
        meta = {"files": len(manifest), "size": manifest.total_size, "algorithm": manifest.algorithm, "source": dsv.source}
        record, _ = self.workspace.tracking.create_version(
            KIND,
            self.name,
            id=manifest.id,
            manifest=manifest.to_bytes(),
            message=dsv.message,
            meta=meta,
            created_at=time.time(),
            dedupe=True,
        )
        return DatasetVersion(self.workspace, record, manifest)

    def _latest_record(self) -> VersionRecord | None:
        records = self.workspace.tracking.list_versions(KIND, self.name)
        return records[-1] if records else None

    def _manifest(self, record: VersionRecord) -> Manifest:
        data = self.workspace.tracking.get_manifest(KIND, record.name, record.version)
        return Manifest.from_bytes(data, expected_id=record.id)

    def versions(self) -> list[DatasetVersion]:
        """Every version, oldest first."""
        return [DatasetVersion(self.workspace, r) for r in self.workspace.tracking.list_versions(KIND, self.name)]

    @property
    def latest(self) -> DatasetVersion:
        """The newest version; :class:`~mlops_sdk.errors.DatasetNotFound` when there is none."""
        record = self._latest_record()
        if record is None:
            raise DatasetNotFound(f"dataset {self.name!r} has no versions; add one with ds.add(path)")
        return DatasetVersion(self.workspace, record)

    def version(self, ref: int | str) -> DatasetVersion:
        """A version by number (``3``, ``"3"``, ``"v3"``), by id or id prefix (6+ hex digits), or ``"latest"``."""
        tracking = self.workspace.tracking
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise InvalidValue(f"a version is a number, an id or 'latest', got {ref!r}")
        if ref == "latest":
            return self.latest
        number: int | None = ref if isinstance(ref, int) else None
        if isinstance(ref, str):
            text = ref[1:] if ref[:1] in ("v", "V") and ref[1:].isdigit() else ref
            if text.isdigit() and len(text) < 6:
                number = int(text)
            else:
                found = tracking.find_version(KIND, self.name, ref.lower())
                if found is None:
                    if not tracking.list_versions(KIND, self.name):
                        raise DatasetNotFound(f"no dataset called {self.name!r}")
                    raise VersionNotFound(f"dataset {self.name!r} has no version {ref!r} (not a number or a unique id prefix)")
                return DatasetVersion(self.workspace, found)
        assert number is not None
        return DatasetVersion(self.workspace, tracking.get_version(KIND, self.name, number))

    @staticmethod
    def from_dvc(repo: str | os.PathLike[str], path: str, rev: str | None = None, *, name: str | None = None) -> DatasetVersion:
        """Data already tracked by DVC in a Git repository (a local path or URL), at ``rev``.

        Needs the ``mlops-sdk-dvc`` plugin. The version pins the commit, path
        and DVC hash; pass it to ``run.use_dataset`` to record it as lineage.
        """
        from mlops_sdk.storage.datasets import DatasetSource

        reader = source_reader({"type": "dvc"})
        assert isinstance(reader, DatasetSource)
        manifest, source = reader.resolve(os.fspath(repo), path, rev=rev)
        label = name if name is not None else (Path(path.rstrip("/")).name or "dvc")
        return DatasetVersion(None, None, manifest, source=source, name=label, reader=reader)

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{v.version}</td><td><code>{v.id[:12]}</code></td><td>{v.file_count}</td>"
            f"<td>{v.size}</td><td>{html.escape(v.message)}</td></tr>"
            for v in self.versions()
        )
        return (
            f"<b>Dataset {html.escape(self.name)}</b><table><tr><th>version</th><th>id</th><th>files</th>"
            f"<th>bytes</th><th>message</th></tr>{rows}</table>"
        )


@attrs.frozen
class AddStats:
    """What one ``add`` did: whether the version is new, files hashed, objects stored."""

    created: bool
    hashed_files: int
    stored_files: int
    stored_bytes: int


@attrs.frozen
class DatasetLineage:
    """Who used a version: the runs that read it and the model versions those runs produced."""

    runs: RunList
    models: list[Any]


class DatasetVersion:
    """One immutable version of a dataset."""

    stats: AddStats | None = None

    def __init__(
        self,
        workspace: Workspace | None,
        record: VersionRecord | None,
        manifest: Manifest | None = None,
        *,
        source: dict[str, Any] | None = None,
        name: str | None = None,
        reader: DatasetReader | None = None,
    ) -> None:
        self.workspace = workspace
        self.record = record
        if manifest is not None:
            self.__dict__["manifest"] = manifest
        self._source = source if source is not None else (dict(record.meta.get("source", {})) or None if record else None)
        self._name = record.name if record is not None else (name or "")
        self._reader = reader

    # -- identity ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | None:
        """1, 2, … within the dataset; None for a version read from elsewhere and not yet registered."""
        return self.record.version if self.record is not None else None

    @property
    def id(self) -> str:
        """The content id: sha256 of the manifest."""
        return self.record.id if self.record is not None else self.manifest.id

    @property
    def message(self) -> str:
        return self.record.message if self.record is not None else ""

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.record.tags) if self.record is not None else {}

    @property
    def created_at(self) -> float | None:
        return self.record.created_at if self.record is not None else None

    @property
    def source(self) -> dict[str, Any] | None:
        """Where the bytes live when another tool keeps them (DVC: repo, rev, path, md5)."""
        return self._source

    @property
    def file_count(self) -> int:
        if self.record is not None and "files" in self.record.meta:
            return int(self.record.meta["files"])
        return len(self.manifest)

    @property
    def size(self) -> int:
        if self.record is not None and "size" in self.record.meta:
            return int(self.record.meta["size"])
        return self.manifest.total_size

    @cached_property
    def manifest(self) -> Manifest:
        assert self.workspace is not None and self.record is not None
        data = self.workspace.tracking.get_manifest(KIND, self.record.name, self.record.version)
        return Manifest.from_bytes(data, expected_id=self.record.id)

    # -- contents --------------------------------------------------------------------
    def reader(self) -> DatasetReader:
        if self._reader is None:
            if self._source is not None and self._source.get("type"):
                self._reader = source_reader(self._source)
            else:
                assert self.workspace is not None
                self._reader = self.workspace.dataset_store
        return self._reader

    def files(self) -> list[FileEntry]:
        """Every file: ``path``, ``size`` and ``digest`` (sha256, or md5 for DVC-kept versions), by path."""
        return list(self.manifest.entries)

    def _entry(self, path: str) -> FileEntry:
        validate_relpath("file path", path)
        entry = self.manifest.get(path)
        if entry is None:
            raise VersionNotFound(f"{self.label} has no file {path!r}")
        return entry

    def open(self, path: str) -> BinaryIO:
        """One file's content, read-only and verified against its digest."""
        return self.reader().open(self.manifest, self._entry(path), source=self._source)

    def read_bytes(self, path: str) -> bytes:
        with self.open(path) as f:
            return f.read()

    def checkout(
        self,
        dest: str | os.PathLike[str],
        *,
        force: bool = False,
        link: str = "auto",
        progress: Progress | None = None,
    ) -> CheckoutResult:
        """Make ``dest`` hold exactly this version's files (see :mod:`mlops_sdk.checkout`).

        Refuses, changing nothing, when that would overwrite or delete local
        changes stored nowhere, unless ``force=True``, and always refuses a
        folder that holds the workspace's own ``.mlops`` files. ``link`` is ``auto``
        (reflink, else copy), ``copy``, ``reflink``, ``hardlink`` or ``symlink``.
        """
        from mlops_sdk.checkout import checkout
        from mlops_sdk.storage.statcache import StatCache

        if self.workspace is not None:
            _refuse_overlap(self.workspace, dest, "check out into")
        known: set[str] = set()
        if self.workspace is not None and self.record is not None:
            for other in Dataset(self.workspace, self.name).versions():
                if other.manifest.algorithm == self.manifest.algorithm:
                    known |= other.manifest.digests()
        state = StatCache(self.workspace.state_dir / "state.db") if self.workspace is not None else None
        try:
            return checkout(
                self.manifest,
                self.reader(),
                Path(dest),
                known=known,
                force=force,
                link=link,
                source=self._source,
                state=state,
                progress=progress or no_progress,
            )
        finally:
            if state is not None:
                state.close()

    def diff(self, other: DatasetVersion) -> ManifestDiff:
        """What changed from ``other`` to this version: added, removed, modified files."""
        if not isinstance(other, DatasetVersion):
            raise InvalidValue(f"can only diff against another DatasetVersion, got {type(other).__name__}")
        return diff(other.manifest, self.manifest)

    def to_pandas(self, path: str | None = None, **read_options: Any) -> Any:
        """A pandas DataFrame of one tabular file, or of every tabular file concatenated (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise MissingDependency("DatasetVersion.to_pandas needs pandas: pip install pandas") from exc
        entries = [self._entry(path)] if path is not None else [e for e in self.manifest if e.path.endswith(TABULAR)]
        if not entries:
            raise InvalidValue(f"{self.label} has no tabular files ({', '.join(TABULAR)})")
        frames = []
        for e in entries:
            data = io.BytesIO(self.read_bytes(e.path))
            reader: Callable[..., Any]
            if e.path.endswith(".parquet"):
                reader = pd.read_parquet
            elif e.path.endswith(".tsv"):
                reader = lambda f, **kw: pd.read_csv(f, sep="\t", **kw)  # noqa: E731
            elif e.path.endswith(".jsonl"):
                reader = lambda f, **kw: pd.read_json(f, lines=True, **kw)  # noqa: E731
            elif e.path.endswith(".json"):
                reader = pd.read_json
            elif e.path.endswith(".csv"):
                reader = pd.read_csv
            else:
                raise InvalidValue(f"{e.path!r} is not a tabular file ({', '.join(TABULAR)})")
            frames.append(reader(data, **read_options))
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    # -- lineage -----------------------------------------------------------------------
    def lineage(self) -> DatasetLineage:
        """The runs that used this version, and the model versions those runs produced."""
        from mlops_sdk.run import RunList

        if self.workspace is None or self.record is None:
            return DatasetLineage(RunList(), [])
        ws = self.workspace
        edges = ws.tracking.lineage(kind=KIND, name=self.name, version=self.record.version)
        run_ids = list(dict.fromkeys(e.run_id for e in edges if e.role == "input"))
        runs = RunList()
        for run_id in run_ids:
            try:
                runs.append(ws.get_run(run_id))
            except Exception:
                continue
        from mlops_sdk.model import ModelVersion

        models: list[Any] = []
        for run_id in run_ids:
            for e in ws.tracking.lineage(run_id=run_id, kind="model"):
                if e.role == "output":
                    models.append(ModelVersion(ws, ws.tracking.get_version("model", e.name, e.version)))
        return DatasetLineage(runs, models)

    # -- display -----------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"dataset {self.name!r} v{self.version}" if self.version is not None else f"dataset {self.name!r} ({self.id[:12]})"

    def __repr__(self) -> str:
        v = f" v{self.version}" if self.version is not None else ""
        return f"<DatasetVersion {self.name!r}{v} id={self.id[:12]} files={self.file_count} bytes={self.size}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatasetVersion) and (self.name, self.version, self.id) == (other.name, other.version, other.id)

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.id))

    def _repr_html_(self) -> str:
        return (
            f"<b>{html.escape(self.label)}</b> <code>{self.id[:12]}</code>: {self.file_count} files, "
            f"{self.size} bytes. {html.escape(self.message)}"
        )
