"""The ``dvc://`` storage: a DVC project in a Git repository keeps the dataset versions.

``dvc://PATH`` names the root of a Git repository holding a DVC project
(``dvc://.`` is the workspace root; relative paths are relative to it).

* Run artifacts and models are ordinary blobs in ``PATH/.mlops/store``
  (a :class:`~mlops_sdk.storage.fsspec_storage.LocalStorage`), kept out of Git.
* Dataset versions go through :class:`DvcDatasetStore`: the files of version
  N of dataset ``NAME`` become the folder ``PATH/datasets/NAME/``, tracked by
  ``dvc add`` as ``datasets/NAME.dvc``; that file (and ``datasets/.gitignore``)
  is committed to Git, so the version is a commit; the DVC cache is pushed to
  the project's default remote when one is configured. ``dvc checkout`` and
  ``dvc pull`` then work on it like on anything else DVC tracks.

DVC is imported when a dataset is added or read, never just to open the storage.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from mlops_sdk.errors import BackendError, ConfigError, IntegrityError, InvalidValue, MlopsError
from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.storage import links
from mlops_sdk.storage.datasets import AddResult, DatasetStore, Progress, SourceFile, no_progress
from mlops_sdk.storage.fsspec_storage import LocalStorage
from mlops_sdk.validation import validate_name, validate_relpath

from mlops_sdk_dvc._common import (
    SETUP_HINT,
    copy_hashing,
    find_project,
    git,
    ignore_private_folder,
    md5_of,
    remove_tree,
    walk_files,
)
from mlops_sdk_dvc.source import SCHEME, DvcSource

DATASETS = "datasets"  # dataset NAME lives at <repo>/datasets/NAME, tracked by datasets/NAME.dvc
PROJECT_FILES = (".dvc/config", ".dvc/.gitignore", ".dvcignore")  # committed with the first version if new
_WORKERS = min(8, 2 * (os.cpu_count() or 1))


def open_dvc_storage(uri: str, *, root: Path | str = ".") -> DvcStorage:
    """Factory registered for the ``dvc`` storage scheme."""
    return DvcStorage(uri, root=root)


def repo_path(uri: str, root: Path | str = ".") -> Path:
    """The folder ``dvc://PATH`` names: PATH, relative to ``root`` unless absolute."""
    rest = uri.split("://", 1)[1] if "://" in uri else uri
    if not rest:
        raise ConfigError(
            f"storage {uri!r}: give the Git repository holding the DVC project, "
            "e.g. dvc://. (the workspace root) or dvc:///abs/path/to/repo"
        )
    path = Path(rest).expanduser()
    return path if path.is_absolute() else Path(root) / path


class DvcStorage(LocalStorage):
    """Run artifacts in ``<repo>/.mlops/store``; dataset versions tracked by DVC in the repo."""

    def __init__(self, uri: str, *, root: Path | str = ".") -> None:
        self.repo_root = find_project(repo_path(uri, root), f"storage {uri!r}")
        private = ignore_private_folder(self.repo_root)
        super().__init__(str(private / "store"))
        self.uri = f"dvc://{self.repo_root}"

    def dataset_store(self, state_dir: Path) -> DvcDatasetStore:
        return DvcDatasetStore(self.repo_root, state_dir)


def refuse_dvc_special(path: str) -> None:
    """Refuse paths that DVC cannot keep inside a tracked folder (it skips or parses them)."""
    parts = path.split("/")
    name = parts[-1]
    if any(part in (".git", ".dvc") for part in parts):
        reason = "DVC skips .git and .dvc folders and files"
    elif name == ".dvcignore":
        reason = "DVC refuses a .dvcignore file inside a tracked folder"
    elif name == "dvc.yaml" or name.endswith(".dvc"):
        reason = "DVC reads files with that name as its own pipeline or tracking files"
    else:
        return
    raise InvalidValue(f"a dvc:// dataset cannot hold {path!r}: {reason}; rename it or leave it out")


def changed_while_adding(path: Path | str) -> IntegrityError:
    return IntegrityError(f"{path} changed while it was being added; nothing was recorded, try again")


def _same_stat(src: SourceFile, st: os.stat_result) -> bool:
    return st.st_size == src.size and st.st_mtime_ns == src.mtime_ns


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _restore(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(content)


class DvcDatasetStore(DatasetStore):
    """Dataset versions as DVC-tracked folders committed to Git (md5 digests, DVC's own)."""

    algorithm = "md5"

    def __init__(self, repo_root: Path, state_dir: Path | None = None) -> None:
        self.root = find_project(Path(repo_root), "dvc dataset store")
        self.uri = f"dvc://{self.root}"
        self.state_dir = state_dir
        self._private = ignore_private_folder(self.root)
        self._repo: Any = None
        self._source = DvcSource()
        self._lock = threading.Lock()

    # -- the DVC project ----------------------------------------------------------------
    def _dvc(self) -> Any:
        """The project's ``dvc.repo.Repo``, opened once per store."""
        if self._repo is None:
            from dvc.exceptions import NotDvcRepoError
            from dvc.repo import Repo

            try:
                repo = Repo(str(self.root))
            except NotDvcRepoError as exc:
                raise ConfigError(f"{self.root} is not a DVC project; {SETUP_HINT}") from exc
            repo.scm_context.quiet = True  # we commit ourselves: no "git add ..." advice on stdout
            self._repo = repo
        return self._repo

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One add at a time per repository, across threads and processes."""
        with self._lock, open(self._private / "datasets.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- adding -------------------------------------------------------------------------
    def add(
        self,
        name: str,
        files: Sequence[SourceFile],
        *,
        previous: Manifest | None = None,
        message: str = "",
        progress: Progress = no_progress,
    ) -> AddResult:
        validate_name("dataset name", name)
        files = list(files)
        seen: set[str] = set()
        for f in files:
            validate_relpath("file path", f.path)
            if f.path in seen:
                raise InvalidValue(f"the path {f.path!r} appears twice in one version")
            seen.add(f.path)
            refuse_dvc_special(f.path)
        self._check_identity()
        with self._exclusive():
            try:
                return self._add(name, files, message, progress)
            except MlopsError:
                raise
            except Exception as exc:  # DVC's errors (not all of them are DvcException)
                raise BackendError(f"DVC could not add dataset {name!r} in {self.root}: {exc}; nothing was recorded") from exc

    def _check_identity(self) -> None:
        proc = git(self.root, "var", "GIT_COMMITTER_IDENT", ok=(0, 128))
        if proc.returncode != 0:
            raise ConfigError(
                f"Git in {self.root} has no committer identity, so dataset versions cannot be committed; "
                "run `git config user.name NAME && git config user.email EMAIL` there"
            )

    def _add(self, name: str, files: list[SourceFile], message: str, progress: Progress) -> AddResult:
        repo = self._dvc()
        target = self.root / DATASETS / name
        dvcfile = target.parent / f"{name}.dvc"
        gitignore = target.parent / ".gitignore"
        saved = {p: _read_or_none(p) for p in (dvcfile, gitignore)}
        inplace = self._is_in_place(files, target)
        work = self._private / "tmp" / uuid.uuid4().hex
        staged, aside = work / "new", work / "old"
        moved_aside = placed = False
        try:
            if inplace:
                digests = self._hash_in_place(files, progress)
            else:
                staged.mkdir(parents=True)
                digests = self._stage(files, staged, progress)
            cache = repo.cache.local
            sizes = {digests[f.path]: f.size for f in files}
            new = [d for d in sizes if not cache.exists(d)]
            if not inplace:
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists() or target.is_symlink():
                    os.rename(target, aside)
                    moved_aside = True
                os.rename(staged, target)
                placed = True
            (stage,) = repo.add([str(target)])
            out = stage.outs[0]
            dir_md5 = out.hash_info.value
            self._check_tracked(out, digests, target)
            self._push(repo, target, name)
            rev = self._commit([dvcfile, gitignore], name, message)
        except BaseException:
            for path, content in saved.items():
                with contextlib.suppress(OSError):
                    _restore(path, content)
            with contextlib.suppress(OSError):
                if placed:
                    remove_tree(target)
                if moved_aside:
                    os.rename(aside, target)
            raise
        finally:
            with contextlib.suppress(OSError):
                remove_tree(work)
        source: dict[str, Any] = {
            "type": SCHEME,
            "repo": str(self.root),
            "rev": rev,
            "path": f"{DATASETS}/{name}",
            "md5": dir_md5,
        }
        url = git(self.root, "config", "--get", "remote.origin.url", ok=(0, 1)).stdout.strip()
        if url:
            source["url"] = url  # where a machine without this checkout can clone it from
        manifest = Manifest((FileEntry(f.path, f.size, digests[f.path]) for f in files), "md5")
        return AddResult(manifest, source, len(files), len(new), sum(sizes[d] for d in new))

    @staticmethod
    def _is_in_place(files: list[SourceFile], target: Path) -> bool:
        """Whether the files are exactly the content of ``target`` already (nothing to copy)."""
        if target.is_symlink() or not target.is_dir():
            return False
        folder = target.resolve()
        for f in files:
            local = Path(f.local)
            if local.parent.resolve() / local.name != folder / f.path:
                return False
        return set(walk_files(folder)) == {f.path for f in files}

    def _map(self, fn: Any, files: list[SourceFile]) -> list[Any]:
        if len(files) > 16:
            with ThreadPoolExecutor(_WORKERS) as pool:
                return list(pool.map(fn, files))
        return [fn(f) for f in files]

    def _hash_in_place(self, files: list[SourceFile], progress: Progress) -> dict[str, str]:
        def one(src: SourceFile) -> str:
            try:
                with open(src.local, "rb") as f:
                    digest = hashlib.file_digest(f, "md5").hexdigest()
                    if not _same_stat(src, os.fstat(f.fileno())):
                        raise changed_while_adding(src.local)
            except FileNotFoundError as exc:
                raise InvalidValue(f"{src.local} disappeared while it was being added; nothing was recorded") from exc
            progress(src.size, 1)
            return digest

        return dict(zip((f.path for f in files), self._map(one, files), strict=True))

    def _stage(self, files: list[SourceFile], staged: Path, progress: Progress) -> dict[str, str]:
        """Copy the files into ``staged`` (reflinks where possible), hashing what was copied."""

        def one(src: SourceFile) -> str:
            dst = staged / src.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                try:
                    links.reflink(Path(src.local), dst)
                    st = os.stat(src.local)
                    digest = md5_of(dst)
                    size = os.stat(dst).st_size
                except links.LinkUnsupported:
                    dst.unlink(missing_ok=True)
                    with open(src.local, "rb") as f:
                        digest, size = copy_hashing(f, dst)
                        st = os.fstat(f.fileno())
            except FileNotFoundError as exc:
                raise InvalidValue(f"{src.local} disappeared while it was being added; nothing was recorded") from exc
            except OSError as exc:
                raise BackendError(f"could not copy {src.local} into {self.root}: {exc.strerror or exc}; nothing was recorded") from exc
            if size != src.size or not _same_stat(src, st):
                raise changed_while_adding(src.local)
            if st.st_mode & 0o111:  # DVC records whether a file is executable
                os.chmod(dst, (st.st_mode & 0o777) | 0o200)
            progress(src.size, 1)
            return digest

        return dict(zip((f.path for f in files), self._map(one, files), strict=True))

    def _check_tracked(self, out: Any, digests: dict[str, str], target: Path) -> None:
        """DVC's tree must hold exactly the files we hashed, with the same md5s."""
        tree = out.get_obj()
        tracked = {"/".join(key): hash_info.value for key, _meta, hash_info in (tree or [])}
        left_out = sorted(digests.keys() - tracked.keys())
        if left_out:
            more = f" and {len(left_out) - 1} more" if len(left_out) > 1 else ""
            raise ConfigError(
                f"DVC did not track {left_out[0]!r}{more} in {target}: a .dvcignore pattern "
                "excludes it; change .dvcignore or the files. Nothing was recorded"
            )
        for path, md5 in tracked.items():
            if digests.get(path) != md5:
                raise changed_while_adding(target / path)

    def _push(self, repo: Any, target: Path, name: str) -> None:
        remote = repo.config["core"].get("remote")
        if not remote:
            return
        try:
            repo.push(targets=[str(target)])
        except Exception as exc:
            raise BackendError(
                f"could not push dataset {name!r} to the DVC remote {remote!r}: {exc}; nothing was recorded"
            ) from exc

    def _commit(self, paths: list[Path], name: str, message: str) -> str:
        """Commit the .dvc file and .gitignore (only them); returns the commit that holds the version."""
        rels = [p.relative_to(self.root).as_posix() for p in paths if p.exists()]
        head = git(self.root, "ls-tree", "--name-only", "HEAD", "--", *PROJECT_FILES, ok=(0, 128))
        in_head = set(head.stdout.split()) if head.returncode == 0 else set()
        rels += [p for p in PROJECT_FILES if p not in in_head and (self.root / p).exists()]
        git(self.root, "add", "--", *rels)
        if git(self.root, "status", "--porcelain", "--", *rels).stdout.strip():
            text = f"mlops: dataset {name}: {message}" if message.strip() else f"mlops: dataset {name}"
            try:
                git(self.root, "commit", "-q", "-m", text, "--", *rels)
            except BackendError:
                if head.returncode == 0:  # unstage what we staged; the caller restores the files
                    git(self.root, "reset", "-q", "--", *rels, ok=(0, 1))
                raise
        return git(self.root, "rev-parse", "HEAD").stdout.strip()

    # -- reading (through the dvc source) -----------------------------------------------
    def _reader(self, source: dict[str, Any] | None) -> Any:
        if source is not None:
            return self._source.reader_for(source)
        return self._source.reader_for({"type": SCHEME, "repo": str(self.root), "rev": None})

    def open(self, manifest: Manifest, entry: FileEntry, *, source: dict[str, Any] | None = None) -> BinaryIO:
        return self._source.open_with(self._reader(source), source, entry)

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
        self._source.materialize_with(self._reader(source), source, entries, dest, link=link, progress=progress)

    def missing(self, manifest: Manifest, *, source: dict[str, Any] | None = None) -> list[FileEntry]:
        return self._source.missing_with(self._reader(source), manifest)

    def close(self) -> None:
        self._source.close()
        if self._repo is not None:
            with contextlib.suppress(Exception):
                self._repo.close()
            self._repo = None
