"""Where the bytes of dataset versions live: the dataset-store interface.

A :class:`~mlops_sdk.storage.base.Storage` answers ``dataset_store()`` with one
of these. The default is :class:`mlops_sdk.storage.cas.CasDatasetStore`:
sha256-addressed objects in the storage itself (local folder, S3, Azure…).
The DVC plugin answers with a store that tracks versions with DVC in a Git
repository instead. Either way the core keeps the version records (manifest,
message, tags, lineage) in the tracking store, and the store keeps the bytes.

Contract (checked by :class:`mlops_sdk.testing.dataset_store_conformance.DatasetStoreConformance`):

* :meth:`DatasetStore.add` stores every file's content and returns the
  manifest; it fails with a typed error, recording nothing, when a file
  changed while it was being added.
* :meth:`DatasetStore.materialize` writes each file atomically (a reader sees
  the old file or the whole new one) and only after checking its digest;
  corrupted content raises :class:`~mlops_sdk.errors.IntegrityError` naming
  the object and is never written to the destination.
* :meth:`DatasetStore.open` returns verified bytes only.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from mlops_sdk.manifest import FileEntry, Manifest

Progress = Callable[[int, int], None]
"""Called as ``progress(done_bytes, done_files)`` increments while long work proceeds."""

LINK_MODES = ("auto", "reflink", "hardlink", "symlink", "copy")


def no_progress(_bytes: int, _files: int) -> None:
    return None


@attrs.frozen
class SourceFile:
    """A local file about to be added: where it is, its path in the version, and its stat."""

    local: Path
    path: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, local: Path, path: str, st: os.stat_result | None = None) -> SourceFile:
        st = st if st is not None else os.stat(local)
        return cls(local, path, st.st_size, st.st_mtime_ns, st.st_ino)


@attrs.frozen
class AddResult:
    """What :meth:`DatasetStore.add` did: the manifest, where it lives, and what it cost."""

    manifest: Manifest
    source: dict[str, Any] | None = None  # backend details kept with the version (DVC: repo, rev, path, md5)
    hashed_files: int = 0  # files whose content was read (the rest came from the stat cache)
    stored_files: int = 0  # objects newly written (the rest were already stored)
    stored_bytes: int = 0


class DatasetReader(abc.ABC):
    """Reads the files of dataset versions (verified)."""

    #: the hash algorithm of the digests in this reader's manifests
    algorithm: str = "sha256"
    #: a short description for listings and errors
    uri: str = ""

    @abc.abstractmethod
    def open(self, manifest: Manifest, entry: FileEntry, *, source: dict[str, Any] | None = None) -> BinaryIO:
        """One file's content, verified against its digest."""

    @abc.abstractmethod
    def materialize(
        self,
        manifest: Manifest,
        entries: Sequence[FileEntry],
        dest: Path,
        *,
        link: str = "auto",
        source: dict[str, Any] | None = None,
        progress: Progress = no_progress,
    ) -> None:
        """Write each entry to ``dest / entry.path``, verified, each file atomically.

        A file already at ``dest / entry.path`` is replaced atomically (write a
        temporary file beside it, then ``os.replace``); parent folders may need
        creating.
        """

    @abc.abstractmethod
    def missing(self, manifest: Manifest, *, source: dict[str, Any] | None = None) -> list[FileEntry]:
        """Entries whose content this reader cannot provide (for ``mlops verify``)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class DatasetSource(DatasetReader):
    """Data versioned by another tool, read in place (registered with ``register.source``).

    ``Dataset.from_dvc(...)`` resolves a location to a manifest through the
    ``dvc`` source; versions whose ``source["type"]`` names a source scheme are
    read through that source, on any machine that has the plugin.
    """

    @abc.abstractmethod
    def resolve(self, location: str, path: str, *, rev: str | None = None) -> tuple[Manifest, dict[str, Any]]:
        """The manifest of ``path`` in ``location`` at ``rev``, and the ``source`` dict that finds it again.

        The source dict is JSON, has ``"type"`` set to the scheme this source
        is registered under, and pins everything needed to read the same bytes
        later (a commit, not a branch name).
        """


class DatasetStore(DatasetReader):
    """Stores and restores the files of dataset versions."""

    @abc.abstractmethod
    def add(
        self,
        name: str,
        files: Sequence[SourceFile],
        *,
        previous: Manifest | None = None,
        message: str = "",
        progress: Progress = no_progress,
    ) -> AddResult:
        """Store the files of a new version of dataset ``name`` and return its manifest.

        ``previous`` is the dataset's latest manifest, when there is one: a
        store may skip content it already holds for it.
        """
