"""The conformance suite every :class:`~mlops_sdk.storage.datasets.DatasetStore` runs.

Subclass :class:`DatasetStoreConformance` in a test module (the subclass name
must start with ``Test``) and provide a ``dataset_store`` fixture that yields a
fresh, empty store::

    class TestCasDatasetStore(DatasetStoreConformance):
        link_modes = ("auto", "copy", "hardlink", "symlink")

        @pytest.fixture
        def dataset_store(self, tmp_path):
            store = CasDatasetStore(ObjectStore(LocalStorage(f"file://{tmp_path / 'store'}")))
            yield store
            store.close()

        def corrupt(self, store, entry):       # optional: enables the corruption checks
            ...

Each test checks one clause of the contract in the docstring of
:mod:`mlops_sdk.storage.datasets`. Two checks need to reach into the store's
own storage: override :meth:`DatasetStoreConformance.corrupt` and
:meth:`DatasetStoreConformance.remove` to enable them (they skip otherwise).

The module also offers helpers to build source trees for any dataset test:
:func:`write_tree`, :func:`read_tree`, :func:`source_files` and the hypothesis
strategy :func:`file_trees`.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_sdk.errors import IntegrityError, InvalidValue, MlopsError
from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.storage.datasets import AddResult, DatasetStore, SourceFile

__all__ = [
    "SAMPLE_TREE",
    "DatasetStoreConformance",
    "file_trees",
    "read_tree",
    "source_files",
    "tree_folders",
    "write_tree",
]

#: Hypothesis examples per property (MLOPS_CONFORMANCE_EXAMPLES searches harder).
EXAMPLES = int(os.environ.get("MLOPS_CONFORMANCE_EXAMPLES", "15"))

#: A small tree with the cases that matter: nesting, an empty file, binary and
#: unicode, the same content under two names, a hidden file.
SAMPLE_TREE: dict[str, bytes] = {
    "a.csv": b"x,y\n1,2\n3,4\n",
    "empty.txt": b"",
    "nested/deeper/data.bin": bytes(range(256)) * 4,
    "nested/same-as-a.csv": b"x,y\n1,2\n3,4\n",
    "ünïcødé/データ ✓.txt": "données\n".encode(),
    ".hidden": b"dot file",
}


# -- building and reading trees ------------------------------------------------------------
def write_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` (relative POSIX path -> content) under ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (links followed) by relative POSIX path, with its content."""
    out: dict[str, bytes] = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def tree_folders(root: Path) -> set[str]:
    """Every folder under ``root`` (not ``root`` itself), by relative POSIX path."""
    return {
        (Path(dirpath) / d).relative_to(root).as_posix()
        for dirpath, dirnames, _ in os.walk(root)
        for d in dirnames
    }


def source_files(root: Path) -> list[SourceFile]:
    """The files under ``root`` as :meth:`DatasetStore.add` takes them (through the core's scan)."""
    from mlops_sdk.scan import scan

    return scan(root)


def no_clash(paths: list[str]) -> list[str]:
    """Drop paths that would be both a file and a folder (``a`` and ``a/b``): keep the first seen."""
    kept: list[str] = []
    files: set[str] = set()
    folders: set[str] = set()
    for p in paths:
        parts = p.split("/")
        parents = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if p in files or p in folders or parents & files:
            continue
        kept.append(p)
        files.add(p)
        folders |= parents
    return kept


_segments = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/\\"),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", "..") and not s.startswith(".mlops"))
_contents = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    st.sampled_from((b"shared content\n", b"\x00\xff" * 100, b"x,y\n1,2\n")),  # the same bytes under several names
)


@st.composite
def file_trees(draw: st.DrawFn, min_files: int = 1, max_files: int = 8) -> dict[str, bytes]:
    """Random trees: nested unicode paths, empty files, binary content, repeated content."""
    paths = draw(
        st.lists(st.lists(_segments, min_size=1, max_size=3).map("/".join), min_size=min_files, max_size=max_files, unique=True)
    )
    kept = no_clash(paths)
    return {p: draw(_contents) for p in kept}


class DatasetStoreConformance:
    """The dataset store contract. Subclass as ``Test…`` and provide a ``dataset_store`` fixture.

    ``link_modes`` lists the link modes the store supports on the test machine
    (each is checked); ``copy`` must always work.
    """

    link_modes: tuple[str, ...] = ("copy",)

    @pytest.fixture
    def dataset_store(self) -> DatasetStore:
        raise NotImplementedError(
            f"{type(self).__name__} must provide a `dataset_store` fixture returning a fresh, empty DatasetStore"
        )

    # -- hooks a subclass may override --------------------------------------------------
    def corrupt(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        """Change the stored content of ``entry`` in place (to check it is never served)."""
        pytest.skip(f"{type(self).__name__} does not say how to corrupt a stored file")

    def remove(self, store: DatasetStore, manifest: Manifest, entry: FileEntry) -> None:
        """Delete the stored content of ``entry`` (to check ``missing()``)."""
        pytest.skip(f"{type(self).__name__} does not say how to delete a stored file")

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def fresh_dir(tmp_path: Path, label: str) -> Path:
        path = tmp_path / f"{label}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def add_tree(self, store: DatasetStore, tmp_path: Path, files: Mapping[str, bytes], name: str = "ds") -> AddResult:
        root = write_tree(self.fresh_dir(tmp_path, "src"), files)
        return store.add(name, source_files(root))

    @staticmethod
    def digest(store: DatasetStore, data: bytes) -> str:
        return hashlib.new(store.algorithm, data).hexdigest()

    # -- add -------------------------------------------------------------------------------
    def test_manifest_describes_every_file(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, SAMPLE_TREE)
        m = result.manifest
        assert m.algorithm == dataset_store.algorithm
        assert {e.path: (e.size, e.digest) for e in m} == {
            p: (len(d), self.digest(dataset_store, d)) for p, d in SAMPLE_TREE.items()
        }

    def test_adding_the_same_files_again_gives_the_same_manifest(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        first = self.add_tree(dataset_store, tmp_path, SAMPLE_TREE)
        again = self.add_tree(dataset_store, tmp_path, SAMPLE_TREE)  # other local paths, same content
        assert again.manifest == first.manifest and again.manifest.id == first.manifest.id
        root = write_tree(self.fresh_dir(tmp_path, "src"), SAMPLE_TREE)
        with_previous = dataset_store.add("ds", source_files(root), previous=first.manifest)
        assert with_previous.manifest == first.manifest

    def test_progress_never_reports_more_than_the_work(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        done = [0, 0]

        def progress(nbytes: int, nfiles: int) -> None:
            assert nbytes >= 0 and nfiles >= 0
            done[0] += nbytes
            done[1] += nfiles

        root = write_tree(self.fresh_dir(tmp_path, "src"), SAMPLE_TREE)
        result = dataset_store.add("ds", source_files(root), progress=progress)
        assert done[0] <= result.manifest.total_size and done[1] <= len(result.manifest)

    # -- add -> materialize ------------------------------------------------------------------
    def test_add_then_materialize_round_trips(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, SAMPLE_TREE)
        dest = tmp_path / "out" / "deeper"  # the destination and its parents need not exist
        dataset_store.materialize(result.manifest, result.manifest.entries, dest, link="copy", source=result.source)
        assert read_tree(dest) == SAMPLE_TREE

    @given(files=file_trees())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors, HealthCheck.too_slow],
    )
    def test_random_trees_round_trip(self, dataset_store: DatasetStore, tmp_path: Path, files: dict[str, bytes]) -> None:
        result = self.add_tree(dataset_store, tmp_path, files)
        dest = self.fresh_dir(tmp_path, "dest")
        dataset_store.materialize(result.manifest, result.manifest.entries, dest, link="copy", source=result.source)
        assert read_tree(dest) == files
        for e in result.manifest:
            with dataset_store.open(result.manifest, e, source=result.source) as f:
                assert f.read() == files[e.path]

    def test_materialize_writes_only_the_given_entries(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, SAMPLE_TREE)
        some = [e for e in result.manifest if e.path.startswith("nested/")]
        dest = self.fresh_dir(tmp_path, "dest")
        dataset_store.materialize(result.manifest, some, dest, source=result.source)
        assert read_tree(dest) == {e.path: SAMPLE_TREE[e.path] for e in some}
        dataset_store.materialize(result.manifest, [], dest, source=result.source)
        assert read_tree(dest) == {e.path: SAMPLE_TREE[e.path] for e in some}

    def test_materialize_replaces_an_existing_file_atomically(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        """The old file is replaced by a new one (rename), never rewritten in place."""
        result = self.add_tree(dataset_store, tmp_path, {"f.txt": b"new content"})
        dest = self.fresh_dir(tmp_path, "dest")
        target = dest / "f.txt"
        target.write_bytes(b"old content, longer than the new one")
        twin = tmp_path / f"twin-{uuid.uuid4().hex[:8]}"
        os.link(target, twin)  # a second name for the old file: an in-place write would show through it
        before = os.stat(target)
        with open(target, "rb") as reader:
            dataset_store.materialize(result.manifest, result.manifest.entries, dest, source=result.source)
            assert reader.read() == b"old content, longer than the new one"  # an open reader keeps the old file whole
        assert target.read_bytes() == b"new content"
        assert twin.read_bytes() == b"old content, longer than the new one"
        assert os.stat(target).st_ino != before.st_ino
        assert sorted(p.name for p in dest.iterdir()) == ["f.txt"]  # no temporary file left beside it

    def test_materialize_replaces_a_read_only_file(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, {"f.txt": b"new"})
        dest = self.fresh_dir(tmp_path, "dest")
        (dest / "f.txt").write_bytes(b"old")
        os.chmod(dest / "f.txt", 0o444)
        dataset_store.materialize(result.manifest, result.manifest.entries, dest, source=result.source)
        assert (dest / "f.txt").read_bytes() == b"new"

    def test_copies_are_independent_of_the_store(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, {"f.txt": b"stored"})
        dest = self.fresh_dir(tmp_path, "dest")
        dataset_store.materialize(result.manifest, result.manifest.entries, dest, link="copy", source=result.source)
        with open(dest / "f.txt", "r+b") as f:  # a copy is the user's to edit in place
            f.write(b"EDITED")
        (entry,) = result.manifest.entries
        with dataset_store.open(result.manifest, entry, source=result.source) as f:
            assert f.read() == b"stored"

    def test_every_supported_link_mode_gives_the_content(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        assert "copy" in self.link_modes
        result = self.add_tree(dataset_store, tmp_path, SAMPLE_TREE)
        for mode in self.link_modes:
            dest = self.fresh_dir(tmp_path, f"dest-{mode}")
            dataset_store.materialize(result.manifest, result.manifest.entries, dest, link=mode, source=result.source)
            assert read_tree(dest) == SAMPLE_TREE, mode

    def test_unknown_link_mode_is_refused(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, {"f": b"x"})
        dest = self.fresh_dir(tmp_path, "dest")
        with pytest.raises(InvalidValue, match="link mode"):
            dataset_store.materialize(result.manifest, result.manifest.entries, dest, link="teleport", source=result.source)
        assert read_tree(dest) == {}

    # -- open ------------------------------------------------------------------------------
    def test_open_gives_the_bytes_in_pieces(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, SAMPLE_TREE)
        entry = result.manifest.get("nested/deeper/data.bin")
        assert entry is not None
        with dataset_store.open(result.manifest, entry, source=result.source) as f:
            assert f.read(10) == SAMPLE_TREE[entry.path][:10]
            assert f.read() == SAMPLE_TREE[entry.path][10:]

    # -- missing -----------------------------------------------------------------------------
    def test_missing_lists_what_the_store_cannot_provide(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, SAMPLE_TREE)
        assert dataset_store.missing(result.manifest, source=result.source) == []
        never = FileEntry("never-added.bin", 5, self.digest(dataset_store, uuid.uuid4().bytes))
        with_unknown = Manifest([*result.manifest.entries, never], result.manifest.algorithm)
        assert dataset_store.missing(with_unknown, source=result.source) == [never]

    def test_removed_content_is_missing_and_never_materialized(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, {"keep.txt": b"keep", "gone.txt": b"will be removed"})
        gone = result.manifest.get("gone.txt")
        assert gone is not None
        self.remove(dataset_store, result.manifest, gone)
        assert dataset_store.missing(result.manifest, source=result.source) == [gone]
        dest = self.fresh_dir(tmp_path, "dest")
        with pytest.raises(MlopsError, match=r"gone\.txt"):
            dataset_store.materialize(result.manifest, [gone], dest, source=result.source)
        assert read_tree(dest) == {}

    # -- changed while adding -------------------------------------------------------------------
    def test_a_file_changed_after_the_scan_is_refused(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        root = write_tree(self.fresh_dir(tmp_path, "src"), {"stable.txt": b"stable", "moving.txt": b"version one"})
        files = source_files(root)
        (root / "moving.txt").write_bytes(b"version two, longer")
        with pytest.raises(IntegrityError, match="changed"):
            dataset_store.add("ds", files)

    def test_a_file_rewritten_at_the_same_size_is_refused(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        root = write_tree(self.fresh_dir(tmp_path, "src"), {"moving.txt": b"AAAA"})
        files = source_files(root)
        path = root / "moving.txt"
        st_before = os.stat(path)
        path.write_bytes(b"BBBB")
        # a later modification time, whatever the file system's timestamp granularity
        os.utime(path, ns=(st_before.st_atime_ns, st_before.st_mtime_ns + 2_000_000_000))
        with pytest.raises(IntegrityError, match="changed"):
            dataset_store.add("ds", files)

    def test_a_file_removed_after_the_scan_is_a_typed_error(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        root = write_tree(self.fresh_dir(tmp_path, "src"), {"here.txt": b"here", "gone.txt": b"gone"})
        files = source_files(root)
        (root / "gone.txt").unlink()
        with pytest.raises(MlopsError, match=r"gone\.txt"):
            dataset_store.add("ds", files)

    # -- corruption --------------------------------------------------------------------------
    def test_corrupted_content_is_never_returned_or_written(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        result = self.add_tree(dataset_store, tmp_path, {"good.txt": b"good", "bad.txt": b"soon corrupted"})
        bad = result.manifest.get("bad.txt")
        assert bad is not None
        self.corrupt(dataset_store, result.manifest, bad)
        with pytest.raises(IntegrityError, match=r"bad\.txt"), dataset_store.open(result.manifest, bad, source=result.source) as f:
            f.read()
        dest = self.fresh_dir(tmp_path, "dest")
        (dest / "bad.txt").write_bytes(b"what was there before")
        with pytest.raises(IntegrityError, match=r"bad\.txt"):
            dataset_store.materialize(result.manifest, [bad], dest, source=result.source)
        assert read_tree(dest) == {"bad.txt": b"what was there before"}  # unchanged, no temporary file left
