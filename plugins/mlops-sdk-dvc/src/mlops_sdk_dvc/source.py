"""The ``dvc`` dataset source: data tracked by DVC in any Git repository, read in place.

``Dataset.from_dvc(repo, path, rev=...)`` calls :meth:`DvcSource.resolve`,
which lists ``path`` at ``rev`` through :class:`dvc.fs.DVCFileSystem` and
returns a manifest of md5 digests (DVC's own) and a ``source`` dict pinned to
the resolved commit. Reading a version (``open``/``materialize``/``missing``)
goes through DVC too: the local DVC cache first, then the project's remote,
and every byte handed out is checked against its md5 first.

DVC is imported on first use only.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import threading
import urllib.parse
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlops_sdk.errors import (
    BackendError,
    ConfigError,
    InvalidValue,
    MlopsError,
    ObjectNotFound,
    VersionNotFound,
)
from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.storage.datasets import LINK_MODES, DatasetSource, Progress, no_progress
from mlops_sdk.validation import validate_relpath

from mlops_sdk_dvc._common import (
    git_toplevel,
    is_url,
    place_verified,
    spool_verified,
    write_verified,
)

if TYPE_CHECKING:
    from dvc.fs import DVCFileSystem

SCHEME = "dvc"
_SHA = re.compile(r"[0-9a-f]{40}")
_SCHEME = re.compile(r"\w+://")
_WORKERS = min(8, 2 * (os.cpu_count() or 1))


def normalize_location(location: str | os.PathLike[str]) -> str:
    """A local repository as an absolute path; a Git URL unchanged."""
    text = os.fspath(location)
    if not isinstance(text, str) or not text:
        raise InvalidValue(f"a DVC repository location must be a path or a Git URL, got {location!r}")
    if is_url(text) and not os.path.isdir(text):
        return text
    folder = Path(text).expanduser().resolve()
    if not folder.exists():
        raise ObjectNotFound(f"no Git repository at {folder}: the folder does not exist")
    if git_toplevel(folder) is None:
        raise ConfigError(f"{folder} is not in a Git repository; DVC data is read at a Git commit")
    return str(folder)


def normalize_path(path: str | os.PathLike[str], root: str | None = None) -> str:
    """``path`` inside the repository as a clean relative POSIX path.

    An absolute path is accepted when it lies inside the local repository ``root``.
    """
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InvalidValue(f"a path inside the repository must be a string, got {path!r}")
    if root is not None and os.path.isabs(text):
        inside = os.path.relpath(os.path.realpath(text), root)
        if inside == os.pardir or inside.startswith(os.pardir + os.sep):
            raise InvalidValue(f"{text} is not inside the repository {root}")
        text = inside
    clean = posixpath.normpath(text.replace(os.sep, "/")).lstrip("/")
    if clean in ("", "."):
        raise InvalidValue("give the DVC-tracked file or folder to read, not the whole repository")
    return validate_relpath("path in the repository", clean)


def _local_folder(location: str) -> str | None:
    """The folder of a local repository (a path or a ``file://`` URL), or None for a remote one."""
    if not is_url(location):
        return location
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return urllib.parse.unquote(parsed.path)
    return None


def local_overrides(root: str) -> dict[str, Any] | None:
    """Local paths of the checkout's DVC config (remotes, cache dir), to read it at any commit.

    DVC resolves a relative local path in a committed config (``url = ../remote``)
    against the repository root only for the working tree; read at a commit it
    points somewhere else (DVC issue 10054). The checkout's own config, loaded
    from disk, has those paths resolved, so they are passed on as overrides.
    """
    dvc_dir = os.path.join(root, ".dvc")
    if not os.path.isdir(dvc_dir):
        return None
    from dvc.config import Config

    conf = Config(dvc_dir=dvc_dir)
    out: dict[str, Any] = {}
    remotes = {
        name: {"url": section["url"]}
        for name, section in conf.get("remote", {}).items()
        if isinstance(section.get("url"), str) and not _SCHEME.match(section["url"])
    }
    if remotes:
        out["remote"] = remotes
    cache_dir = conf.get("cache", {}).get("dir")
    if cache_dir:
        out["cache"] = {"dir": cache_dir}
    return out or None


def _short(rev: str | None) -> str:
    return rev[:12] if rev and len(rev) == 40 else str(rev or "HEAD")


@contextlib.contextmanager
def dvc_errors(location: str, path: str | None, rev: str | None) -> Iterator[None]:
    """Translate DVC's and scmrepo's exceptions into typed errors naming repo, path and rev."""
    from dvc.exceptions import DvcException
    from dvc.scm import CloneError, RevError

    where = f"{path!r} in {location} at {_short(rev)}" if path else f"{location} at {_short(rev)}"
    try:
        yield
    except MlopsError:
        raise
    except RevError as exc:
        raise VersionNotFound(f"no Git revision {rev!r} in {location} (reading {path!r}): {exc}") from exc
    except CloneError as exc:
        raise ObjectNotFound(f"could not clone the Git repository {location}: {exc}") from exc
    except FileNotFoundError as exc:
        raise ObjectNotFound(f"{where} does not exist") from exc
    except DvcException as exc:
        raise BackendError(f"DVC failed on {where}: {exc}") from exc


class _Reader:
    """Reads files by md5 from one repository at one revision: cache first, then the remote."""

    def __init__(self, fs: DVCFileSystem, location: str, rev: str | None) -> None:
        self.fs = fs
        self.location = location
        self.rev = rev
        self._remote: Any = None
        self._remote_known = False

    @property
    def repo(self) -> Any:
        return self.fs.repo

    def cache_path(self, md5: str) -> Path | None:
        path = Path(self.repo.cache.local.oid_to_path(md5))
        return path if path.is_file() else None

    def remote_odb(self) -> Any:
        """The default remote's object database, or None when the project has none."""
        if not self._remote_known:
            from dvc.config import NoRemoteError

            try:
                self._remote = self.repo.cloud.get_remote_odb(None, "fetch")
            except NoRemoteError:
                self._remote = None
            self._remote_known = True
        return self._remote

    def size_of(self, md5: str) -> int | None:
        cached = self.cache_path(md5)
        if cached is not None:
            return cached.stat().st_size
        odb = self.remote_odb()
        if odb is not None:
            with contextlib.suppress(FileNotFoundError):
                return int(odb.fs.size(odb.oid_to_path(md5)))
        return None

    def open_remote(self, md5: str, fs_path: str | None) -> tuple[BinaryIO, str]:
        """A stream of the content with ``md5`` that is not in the cache, and where it comes from."""
        where = f"{self.location}@{_short(self.rev)}"
        if fs_path is not None:
            with contextlib.suppress(FileNotFoundError):
                return self.fs.open(fs_path, mode="rb"), f"{where}:{fs_path} (through DVC, from its remote)"
        odb = self.remote_odb()
        if odb is not None:
            path = odb.oid_to_path(md5)
            with contextlib.suppress(FileNotFoundError):
                return odb.fs.open(path, mode="rb"), f"{path} (DVC remote)"
        hint = "no DVC remote is configured" if odb is None else "the DVC remote does not have it either"
        raise ObjectNotFound(
            f"content {md5} of {fs_path or 'a file'!r} ({where}) is not in the DVC cache and {hint}; "
            "run `dvc push` where it was added"
        )


class DvcSource(DatasetSource):
    """Dataset versions whose bytes DVC tracks, in a Git repository at a pinned commit."""

    algorithm = "md5"
    uri = "dvc"

    def __init__(self) -> None:
        self._readers: dict[tuple[str, str | None], _Reader] = {}
        self._lock = threading.RLock()
        # the core makes a source per version it reads and may never close it: DVC's
        # file systems (temporary clones of Git URLs included) go when the source does
        self._finalizer = weakref.finalize(self, _close_readers, self._readers)

    # -- DVC file systems, one per (repository, commit) ---------------------------------
    def _open(self, location: str, rev: str | None, path: str | None) -> _Reader:
        """The reader of ``location`` at ``rev``; readers are kept per resolved commit."""
        from dvc.fs import DVCFileSystem

        if rev is None and not is_url(location):
            rev = "HEAD"  # a local repository is read at a commit, never from its working tree
        with self._lock:
            if rev is not None and _SHA.fullmatch(rev) and (location, rev) in self._readers:
                return self._readers[(location, rev)]
            with dvc_errors(location, path, rev):
                local = _local_folder(location)
                overrides = local_overrides(local) if local is not None else None
                fs = DVCFileSystem(url=location, rev=rev, config=overrides)
                try:
                    resolved = fs.repo.get_rev()
                except BaseException:
                    fs.close()
                    raise
            known = self._readers.get((location, resolved))
            if known is not None:
                fs.close()
                return known
            reader = _Reader(fs, location, resolved)
            self._readers[(location, resolved)] = reader
            return reader

    def reader_for(self, source: dict[str, Any]) -> _Reader:
        location = self._readable_location(source)
        rev = source.get("rev")
        return self._open(location, rev if isinstance(rev, str) else None, source.get("path"))

    def _readable_location(self, source: dict[str, Any]) -> str:
        if not isinstance(source, dict) or source.get("type") != SCHEME:
            raise InvalidValue(f"not a dvc source: {source!r}")
        repo = source.get("repo")
        if not isinstance(repo, str) or not repo:
            raise InvalidValue(f"dvc source without a repository: {source!r}")
        if os.path.isdir(repo) or (is_url(repo) and not os.path.isabs(repo)):
            return repo
        url = source.get("url")
        if isinstance(url, str) and url:
            return url
        raise ObjectNotFound(
            f"the Git repository {repo} that holds {source.get('path')!r} (rev {_short(source.get('rev'))}) "
            "is not on this machine; clone it there (with its DVC remote) to read this version"
        )

    # -- resolve ------------------------------------------------------------------------
    def resolve(self, location: str, path: str, *, rev: str | None = None) -> tuple[Manifest, dict[str, Any]]:
        loc = normalize_location(location)
        rel = normalize_path(path, None if is_url(loc) else loc)
        if rev is not None and (not isinstance(rev, str) or not rev.strip()):
            raise InvalidValue(f"rev must be a Git revision (branch, tag or commit), got {rev!r}")
        # A local repository without rev is read at HEAD, not from its working tree:
        # the version must be pinned to a commit.
        reader = self._open(loc, rev, rel)
        fs = reader.fs
        with dvc_errors(loc, rel, reader.rev):
            info = fs.fs.info(rel)
            if info["type"] == "directory":
                found = fs.fs.find(rel, detail=True)
                files = {name.lstrip("/"): item for name, item in found.items()}
            else:
                files = {rel: info}
            top = info.get("dvc_info") or {}
            entries = [self._entry(reader, rel, name, item, single=info["type"] != "directory") for name, item in sorted(files.items())]
        source = {"type": SCHEME, "repo": loc, "rev": reader.rev, "path": rel, "md5": top.get("md5")}
        return Manifest(entries, "md5"), source

    def _entry(self, reader: _Reader, rel: str, name: str, item: dict[str, Any], *, single: bool) -> FileEntry:
        where = f"{name!r} in {reader.location} at {_short(reader.rev)}"
        dvc_info = item.get("dvc_info") or {}
        md5 = dvc_info.get("md5")
        if not md5:
            if dvc_info.get("md5-dos2unix"):
                raise InvalidValue(
                    f"{where} was added with DVC 2 (md5-dos2unix hashes); run `dvc cache migrate --dvc-files` "
                    "in that repository and commit, then read it again"
                )
            raise InvalidValue(f"{where} is tracked by Git, not DVC; Dataset.from_dvc reads DVC-tracked data only")
        size = dvc_info.get("size")
        if size is None:
            size = reader.size_of(md5)
        if size is None:
            raise ObjectNotFound(
                f"content {md5} of {where} is neither in the DVC cache nor in its remote; "
                "run `dvc push` where it was added"
            )
        entry_path = posixpath.basename(rel) if single else posixpath.relpath(name, rel)
        return FileEntry(entry_path, int(size), md5)

    # -- reading ------------------------------------------------------------------------
    @staticmethod
    def fs_path(source: dict[str, Any] | None, entry: FileEntry) -> str | None:
        """The path of ``entry`` inside the repository, as DVC's file system names it."""
        if not source or not isinstance(source.get("path"), str):
            return None
        md5 = source.get("md5")
        if isinstance(md5, str) and not md5.endswith(".dir"):  # the version is one tracked file
            return str(source["path"])
        return f"{source['path']}/{entry.path}"

    def _what(self, source: dict[str, Any] | None, entry: FileEntry) -> str:
        where = f" of {source.get('path')!r}" if source else ""
        return f"file {entry.path!r}{where}"

    def open(self, manifest: Manifest, entry: FileEntry, *, source: dict[str, Any] | None = None) -> BinaryIO:
        reader = self._require(source)
        return self.open_with(reader, source, entry)

    def open_with(self, reader: _Reader, source: dict[str, Any] | None, entry: FileEntry) -> BinaryIO:
        what = self._what(source, entry)
        with dvc_errors(reader.location, self.fs_path(source, entry), reader.rev):
            cached = reader.cache_path(entry.digest)
            if cached is not None:
                with open(cached, "rb") as f:
                    return spool_verified(f, entry.digest, what, str(cached))
            stream, origin = reader.open_remote(entry.digest, self.fs_path(source, entry))
            with stream:
                return spool_verified(stream, entry.digest, what, origin)

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
        reader = self._require(source)
        self.materialize_with(reader, source, entries, dest, link=link, progress=progress)

    def materialize_with(
        self,
        reader: _Reader,
        source: dict[str, Any] | None,
        entries: Sequence[FileEntry],
        dest: Path,
        *,
        link: str = "auto",
        progress: Progress = no_progress,
    ) -> None:
        if link not in LINK_MODES:
            raise InvalidValue(f"unknown link mode {link!r}; use one of {', '.join(LINK_MODES)}")
        dest = Path(dest)
        local: list[tuple[FileEntry, Path]] = []
        remote: list[FileEntry] = []
        with dvc_errors(reader.location, source.get("path") if source else None, reader.rev):
            for entry in entries:
                cached = reader.cache_path(entry.digest)
                if cached is None:
                    remote.append(entry)
                else:
                    local.append((entry, cached))

            def one(item: tuple[FileEntry, Path]) -> None:
                entry, cached = item
                place_verified(cached, dest / entry.path, entry.digest, link, self._what(source, entry))
                progress(entry.size, 1)

            if len(local) > 16:
                with ThreadPoolExecutor(_WORKERS) as pool:
                    list(pool.map(one, local))
            else:
                for item in local:
                    one(item)
            for entry in remote:  # DVC's file system is not shared between threads
                stream, origin = reader.open_remote(entry.digest, self.fs_path(source, entry))
                with stream:
                    write_verified(stream, dest / entry.path, entry.digest, self._what(source, entry), origin)
                progress(entry.size, 1)

    def missing(self, manifest: Manifest, *, source: dict[str, Any] | None = None) -> list[FileEntry]:
        return self.missing_with(self._require(source), manifest)

    def missing_with(self, reader: _Reader, manifest: Manifest) -> list[FileEntry]:
        with dvc_errors(reader.location, None, reader.rev):
            absent = [e for e in manifest if reader.cache_path(e.digest) is None]
            if not absent:
                return []
            odb = reader.remote_odb()
            if odb is None:
                return absent
            present = set(odb.oids_exist(sorted({e.digest for e in absent})))
            return [e for e in absent if e.digest not in present]

    def _require(self, source: dict[str, Any] | None) -> _Reader:
        if source is None:
            raise InvalidValue("the dvc source reads versions by their source record (repo, rev, path); none was given")
        return self.reader_for(source)

    def close(self) -> None:
        with self._lock:
            _close_readers(self._readers)


def _close_readers(readers: dict[tuple[str, str | None], _Reader]) -> None:
    found = list(readers.values())
    readers.clear()
    for reader in found:
        with contextlib.suppress(Exception):
            reader.fs.close()


__all__ = ["SCHEME", "DvcSource", "dvc_errors", "normalize_location", "normalize_path"]
