"""Datasets end to end on the embedded workspace (SQLite + a local folder): add, versions, read,
checkout, link modes, corruption, gc/verify, lineage, and many processes adding at once."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlops_sdk as mlops
from mlops_sdk.dataset import DatasetVersion
from mlops_sdk.errors import (
    CheckoutConflict,
    DatasetNotFound,
    IntegrityError,
    InvalidName,
    InvalidValue,
    VersionNotFound,
)
from mlops_sdk.maintenance import gc, verify
from mlops_sdk.testing.dataset_store_conformance import (
    SAMPLE_TREE,
    file_trees,
    read_tree,
    tree_folders,
    write_tree,
)

_PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- helpers ---------------------------------------------------------------------------------
def object_files(ws: mlops.Workspace) -> set[str]:
    """Every object file in the workspace's store, by path under objects/ (what is really on disk)."""
    root = ws.storage.folder / "objects"  # type: ignore[attr-defined]
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def object_path(ws: mlops.Workspace, digest: str) -> Path:
    path = ws.storage.local_path(ws.objects.key(digest))
    assert path is not None
    return path


def corrupt(ws: mlops.Workspace, digest: str, data: bytes = b"garbage") -> Path:
    path = object_path(ws, digest)
    os.chmod(path, 0o644)
    path.write_bytes(data)
    return path


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Content, inode and mtime of every file under ``root``: equal snapshots mean nothing was written."""
    out = {}
    for rel, data in read_tree(root).items():
        st = os.stat(root / rel)
        out[rel] = (data, st.st_ino, st.st_mtime_ns)
    return out


def settle(root: Path, age: float = 3600.0) -> Path:
    """Date every file under ``root`` ``age`` seconds back: files untouched for a while, which
    the stat cache may trust (a file written a moment ago is always hashed again)."""
    import time

    when = time.time() - age
    for path in [root] if root.is_file() else root.rglob("*"):
        if path.is_file():
            os.utime(path, (when, when))
    return root


def new_dir(tmp_path: Path, label: str) -> Path:
    return tmp_path / f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ds(workspace: mlops.Workspace) -> mlops.Dataset:
    return workspace.dataset("customers")


# -- the round trip (Done when) ---------------------------------------------------------------
@_PROPERTY
@given(files=file_trees(), link=st.sampled_from(("auto", "copy", "hardlink", "symlink")))
def test_add_then_checkout_elsewhere_gives_identical_bytes(
    workspace: mlops.Workspace, tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], link: str
) -> None:
    src = write_tree(tmp_path_factory.mktemp("src"), files)
    dsv = workspace.dataset("random").add(src)
    assert {e.path: e.size for e in dsv.files()} == {p: len(d) for p, d in files.items()}
    dest = tmp_path_factory.mktemp("dest") / "checkout"
    result = dsv.checkout(dest, link=link)
    assert read_tree(dest) == files
    assert result.written == len(files) and result.removed == 0
    expected_folders = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    assert tree_folders(dest) == expected_folders  # exactly the version: no staging or temporary leftovers
    for path, data in files.items():
        assert dsv.read_bytes(path) == data


@_PROPERTY
@given(first=file_trees(), second=file_trees())
def test_checkout_over_another_version_restores_it_exactly(
    workspace: mlops.Workspace, tmp_path_factory: pytest.TempPathFactory, first: dict[str, bytes], second: dict[str, bytes]
) -> None:
    ds = workspace.dataset("switch")
    v1 = ds.add(write_tree(tmp_path_factory.mktemp("src"), first))
    v2 = ds.add(write_tree(tmp_path_factory.mktemp("src"), second))
    dest = tmp_path_factory.mktemp("dest")
    v1.checkout(dest)
    v2.checkout(dest)  # files become folders and back, extra files go: no conflict, all content is stored
    assert read_tree(dest) == second
    expected_folders = {"/".join(p.split("/")[:i]) for p in second for i in range(1, p.count("/") + 1)}
    assert tree_folders(dest) == expected_folders
    v1.checkout(dest)
    assert read_tree(dest) == first


# -- adding: identity, dedup, proportional work ---------------------------------------------
def test_identical_content_twice_is_the_same_version_and_stores_nothing(
    workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path
) -> None:
    src = settle(write_tree(tmp_path / "src", SAMPLE_TREE))
    v1 = ds.add(src, message="first")
    assert v1.version == 1 and v1.stats is not None and v1.stats.created
    assert v1.stats.stored_files == len(set(SAMPLE_TREE.values()))  # a content under two names is stored once
    stored = object_files(workspace)
    assert len(stored) == len(set(SAMPLE_TREE.values()))
    again = ds.add(src, message="again")
    assert again.id == v1.id and again.version == 1
    assert again.stats is not None and not again.stats.created and again.stats.stored_files == 0
    assert again.stats.hashed_files == 0  # the stat cache knew every file
    copy = write_tree(tmp_path / "elsewhere", SAMPLE_TREE)  # same content, other files: hashed, not stored
    third = ds.add(copy)
    assert third.id == v1.id and third.stats is not None and third.stats.stored_files == 0
    assert third.stats.hashed_files == len(SAMPLE_TREE)
    assert [v.version for v in ds.versions()] == [1]
    assert object_files(workspace) == stored


def test_reverting_to_older_content_is_a_new_latest_version(ds: mlops.Dataset, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.csv").write_text("a\n")
    v1 = ds.add(src)
    (src / "f.csv").write_text("b\n")
    v2 = ds.add(src)
    (src / "f.csv").write_text("a\n")
    v3 = ds.add(src)
    assert (v1.version, v2.version, v3.version) == (1, 2, 3)
    assert v3.id == v1.id and v3.stats is not None and v3.stats.created and v3.stats.stored_files == 0
    assert ds.latest == v3 and ds.latest.read_bytes("f.csv") == b"a\n"


def test_content_is_stored_once_across_datasets(workspace: mlops.Workspace, tmp_path: Path) -> None:
    a = workspace.dataset("a").add(write_tree(tmp_path / "a", SAMPLE_TREE))
    stored = object_files(workspace)
    b = workspace.dataset("b").add(write_tree(tmp_path / "b", SAMPLE_TREE))
    assert b.id == a.id and b.name == "b" and b.version == 1
    assert b.stats is not None and b.stats.created and b.stats.stored_files == 0
    assert object_files(workspace) == stored
    assert [d.name for d in workspace.datasets()] == ["a", "b"]


def test_re_adding_after_one_changed_file_reads_only_that_file(
    workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path
) -> None:
    files = {f"part-{i:03d}.csv": f"row,{i}\n".encode() for i in range(60)}
    src = settle(write_tree(tmp_path / "src", files))
    v1 = ds.add(src)
    assert v1.stats is not None and v1.stats.hashed_files == 60 and v1.stats.stored_files == 60
    before = object_files(workspace)
    (src / "part-007.csv").write_bytes(b"row,7,changed and longer\n")
    settle(src / "part-007.csv", age=1800)  # changed a while ago, as a user's edit usually is
    v2 = ds.add(src)
    assert v2.version == 2 and v2.id != v1.id
    assert v2.stats is not None and (v2.stats.hashed_files, v2.stats.stored_files) == (1, 1)
    assert v2.stats.stored_bytes == len(b"row,7,changed and longer\n")
    assert len(object_files(workspace) - before) == 1
    d = v2.diff(v1)
    assert [e.path for _, e in d.modified] == ["part-007.csv"] and d.unchanged == 59
    (src / "part-060.csv").write_bytes(b"new file\n")
    v3 = ds.add(src)
    assert v3.stats is not None and (v3.stats.hashed_files, v3.stats.stored_files) == (1, 1)


def test_a_file_rewritten_without_its_stat_changing_is_hashed_again(ds: mlops.Dataset, tmp_path: Path) -> None:
    """The stat cache's blind spot: a rewrite within one tick of the file system's clock keeps
    size, inode and mtime. A file whose mtime was not safely in the past when it was hashed
    (written a moment before, or stamped by a clock ahead of ours, as here) is not trusted later."""
    import time

    src = write_tree(tmp_path / "src", {"f.csv": b"1,2\n"})
    ahead = time.time_ns() + 60 * 1_000_000_000
    os.utime(src / "f.csv", ns=(ahead, ahead))
    v1 = ds.add(src)
    with open(src / "f.csv", "r+b") as f:  # same size, same inode...
        f.write(b"3,4\n")
    os.utime(src / "f.csv", ns=(ahead, ahead))  # ...and the same mtime
    v2 = ds.add(src)
    assert v2.version == 2 and v2.id != v1.id and v2.read_bytes("f.csv") == b"3,4\n"


def test_single_file_and_several_paths(ds: mlops.Dataset, tmp_path: Path) -> None:
    write_tree(tmp_path / "one", {"data.csv": b"a\n1\n"})
    single = ds.add(tmp_path / "one" / "data.csv")
    assert [e.path for e in single.files()] == ["data.csv"]
    write_tree(tmp_path / "folder", {"x.txt": b"x", "sub/y.txt": b"y"})
    several = ds.add([tmp_path / "one" / "data.csv", tmp_path / "folder"])
    assert [e.path for e in several.files()] == ["data.csv", "folder/sub/y.txt", "folder/x.txt"]


def test_message_and_tags_are_kept(ds: mlops.Dataset, tmp_path: Path) -> None:
    v = ds.add(write_tree(tmp_path / "src", {"f": b"1"}), message="Nov export ✓", tags={"source": "crm"})
    again = ds.version(1)
    assert again.message == "Nov export ✓" and again.tags == {"source": "crm"}
    assert again.file_count == 1 and again.size == 1 and again.created_at is not None
    assert again == v and hash(again) == hash(v) and "customers" in repr(v)


# -- finding versions --------------------------------------------------------------------------
def test_versions_latest_and_lookup_by_number_name_and_id(ds: mlops.Dataset, tmp_path: Path) -> None:
    vs = [ds.add(write_tree(tmp_path / f"src{i}", {"f.txt": f"content {i}".encode()})) for i in range(3)]
    assert [v.version for v in ds.versions()] == [1, 2, 3]
    assert ds.latest == vs[2] and ds.version("latest") == vs[2]
    assert ds.version(2) == vs[1] and ds.version("2") == vs[1] and ds.version("v2") == vs[1] and ds.version("V2") == vs[1]
    assert ds.version(vs[0].id) == vs[0]
    assert ds.version(vs[0].id[:8]) == vs[0] and ds.version(vs[0].id[:8].upper()) == vs[0]
    for bad in (4, 0, -1, "v9", "zzzzzzzz", "abcdef0", ""):
        with pytest.raises(VersionNotFound):
            ds.version(bad)
    for wrong_type in (True, 1.0, None, b"1"):
        with pytest.raises(InvalidValue):
            ds.version(wrong_type)  # type: ignore[arg-type]


def test_a_dataset_without_versions(workspace: mlops.Workspace) -> None:
    empty = workspace.dataset("nothing-yet")
    assert empty.versions() == []
    with pytest.raises(DatasetNotFound):
        _ = empty.latest
    with pytest.raises(DatasetNotFound):
        empty.version(1)
    with pytest.raises(DatasetNotFound):
        empty.version("abcdef12")


# -- reading ----------------------------------------------------------------------------------------
def test_files_open_and_read_bytes(ds: mlops.Dataset, tmp_path: Path) -> None:
    import hashlib

    v = ds.add(write_tree(tmp_path / "src", SAMPLE_TREE))
    assert [e.path for e in v.files()] == sorted(SAMPLE_TREE)
    for e in v.files():
        assert e.size == len(SAMPLE_TREE[e.path]) and e.digest == hashlib.sha256(SAMPLE_TREE[e.path]).hexdigest()
        with v.open(e.path) as f:
            assert f.read() == SAMPLE_TREE[e.path]
    with pytest.raises(VersionNotFound, match="nope"):
        v.open("nope.txt")
    with pytest.raises(InvalidName):
        v.open("../escape")


def test_diff_between_versions(ds: mlops.Dataset, tmp_path: Path) -> None:
    v1 = ds.add(write_tree(tmp_path / "a", {"keep": b"k", "edit": b"1", "gone": b"g"}))
    v2 = ds.add(write_tree(tmp_path / "b", {"keep": b"k", "edit": b"22", "new": b"n"}))
    d = v2.diff(v1)
    assert [e.path for e in d.added] == ["new"] and [e.path for e in d.removed] == ["gone"]
    assert [(o.size, n.size) for o, n in d.modified] == [(1, 2)] and d.unchanged == 1
    assert v1.diff(v1).is_empty
    with pytest.raises(InvalidValue):
        v2.diff("v1")  # type: ignore[arg-type]


def test_to_pandas_reads_csv(ds: mlops.Dataset, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    v = ds.add(write_tree(tmp_path / "src", {"a.csv": b"x,y\n1,2\n3,4\n", "b.csv": b"x,y\n5,6\n", "notes.txt": b"hi"}))
    both = v.to_pandas()
    assert isinstance(both, pd.DataFrame) and both.to_dict("list") == {"x": [1, 3, 5], "y": [2, 4, 6]}
    assert v.to_pandas("b.csv").to_dict("list") == {"x": [5], "y": [6]}
    with pytest.raises(InvalidValue):
        v.to_pandas("notes.txt")
    only_text = ds.add(write_tree(tmp_path / "text", {"notes.txt": b"hi"}))
    with pytest.raises(InvalidValue, match="tabular"):
        only_text.to_pandas()


# -- checkout semantics --------------------------------------------------------------------------
def test_checkout_removes_extra_files_and_prunes_empty_folders(ds: mlops.Dataset, tmp_path: Path) -> None:
    small = ds.add(write_tree(tmp_path / "small", {"a.txt": b"a"}))
    big = ds.add(write_tree(tmp_path / "big", {"a.txt": b"a", "x/y/extra.txt": b"extra"}))
    dest = tmp_path / "dest"
    big.checkout(dest)
    (dest / "empty" / "sub").mkdir(parents=True)  # a folder of nothing
    result = small.checkout(dest)
    assert read_tree(dest) == {"a.txt": b"a"}
    assert tree_folders(dest) == set()
    assert (result.written, result.removed, result.unchanged) == (0, 1, 1)


def test_checking_out_the_same_version_again_writes_nothing(ds: mlops.Dataset, tmp_path: Path) -> None:
    v = ds.add(write_tree(tmp_path / "src", SAMPLE_TREE))
    dest = tmp_path / "dest"
    v.checkout(dest)
    before = snapshot(dest)
    folder_mtime = os.stat(dest).st_mtime_ns
    result = v.checkout(dest)
    assert (result.written, result.removed, result.unchanged) == (0, 0, len(SAMPLE_TREE))
    assert snapshot(dest) == before
    assert os.stat(dest).st_mtime_ns == folder_mtime  # not even a temporary folder came and went


def test_switching_between_versions(ds: mlops.Dataset, tmp_path: Path) -> None:
    v1 = ds.add(write_tree(tmp_path / "a", {"data.csv": b"1", "only-in-1": b"one"}))
    v2 = ds.add(write_tree(tmp_path / "b", {"data.csv": b"2", "only-in-2/x": b"two"}))
    dest = tmp_path / "dest"
    for v, expected in ((v1, {"data.csv": b"1", "only-in-1": b"one"}), (v2, {"data.csv": b"2", "only-in-2/x": b"two"})) * 2:
        v.checkout(dest)
        assert read_tree(dest) == expected


def test_checkout_refuses_to_destroy_unstored_local_changes(ds: mlops.Dataset, tmp_path: Path) -> None:
    v1 = ds.add(write_tree(tmp_path / "a", {"data.csv": b"1", "keep.txt": b"k"}))
    v2 = ds.add(write_tree(tmp_path / "b", {"data.csv": b"2"}))
    dest = tmp_path / "dest"
    v1.checkout(dest)
    (dest / "data.csv").write_bytes(b"my unsaved edit")
    (dest / "notes" / "mine.txt").parent.mkdir()
    (dest / "notes" / "mine.txt").write_bytes(b"my own file")
    before = snapshot(dest)
    for target in (v2, v1):  # another version, and the same one: both would lose the edits
        with pytest.raises(CheckoutConflict, match=r"data\.csv") as info:
            target.checkout(dest)
        assert "notes/mine.txt" in str(info.value) and "force" in str(info.value)
        assert snapshot(dest) == before
    result = v2.checkout(dest, force=True)
    assert read_tree(dest) == {"data.csv": b"2"} and tree_folders(dest) == set()
    assert result.removed == 2


def test_checkout_refuses_a_file_as_destination_and_unknown_link_modes(ds: mlops.Dataset, tmp_path: Path) -> None:
    v = ds.add(write_tree(tmp_path / "src", {"f": b"1"}))
    (tmp_path / "a-file").write_bytes(b"x")
    with pytest.raises(InvalidValue, match="not a folder"):
        v.checkout(tmp_path / "a-file")
    with pytest.raises(InvalidValue, match="link mode"):
        v.checkout(tmp_path / "dest", link="teleport")
    assert not (tmp_path / "dest").exists()


def test_progress_adds_up(ds: mlops.Dataset, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    v = ds.add(write_tree(tmp_path / "src", SAMPLE_TREE), progress=lambda b, f: calls.append((b, f)))
    assert sum(b for b, _ in calls) == v.size and sum(f for _, f in calls) == v.file_count
    calls.clear()
    v.checkout(tmp_path / "dest", progress=lambda b, f: calls.append((b, f)))
    assert sum(b for b, _ in calls) == v.size and sum(f for _, f in calls) == v.file_count


# -- link modes ---------------------------------------------------------------------------------
def test_copy_and_auto_make_independent_writable_files(
    workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path
) -> None:
    v = ds.add(write_tree(tmp_path / "src", {"f.txt": b"stored"}))
    obj = object_path(workspace, v.files()[0].digest)
    for mode in ("copy", "auto"):
        dest = new_dir(tmp_path, mode)
        v.checkout(dest, link=mode)
        out = dest / "f.txt"
        assert os.stat(out).st_ino != os.stat(obj).st_ino and not out.is_symlink()
        with open(out, "r+b") as f:
            f.write(b"EDITED")
        assert v.read_bytes("f.txt") == b"stored"


def test_hardlinks_share_the_read_only_object(workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path) -> None:
    v = ds.add(write_tree(tmp_path / "src", {"f.txt": b"stored", "g.txt": b"stored"}))
    obj = object_path(workspace, v.files()[0].digest)
    assert stat.S_IMODE(os.stat(obj).st_mode) & 0o222 == 0  # objects are read-only
    dest = tmp_path / "dest"
    v.checkout(dest, link="hardlink")
    for name in ("f.txt", "g.txt"):
        st_out = os.stat(dest / name)
        assert st_out.st_ino == os.stat(obj).st_ino and st_out.st_nlink >= 3
        assert stat.S_IMODE(st_out.st_mode) & 0o222 == 0
    # an editor's save (write a new file, rename it over) replaces the link, never the object
    tmp = dest / ".f.txt.swp"
    tmp.write_bytes(b"saved by an editor")
    os.replace(tmp, dest / "f.txt")
    assert v.read_bytes("f.txt") == b"stored" and verify(workspace).ok


def test_symlinks_point_into_the_store_and_check_out_again_cleanly(
    workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path
) -> None:
    v1 = ds.add(write_tree(tmp_path / "a", {"f.txt": b"one", "same.txt": b"same"}))
    v2 = ds.add(write_tree(tmp_path / "b", {"f.txt": b"two", "same.txt": b"same"}))
    dest = tmp_path / "dest"
    v1.checkout(dest, link="symlink")
    out = dest / "f.txt"
    assert out.is_symlink() and out.resolve() == object_path(workspace, v1.files()[0].digest)
    again = v1.checkout(dest, link="symlink")  # links to stored content are the version's files
    assert again.written == 0 and again.unchanged == 2
    switched = v2.checkout(dest, link="symlink")
    assert (switched.written, switched.unchanged) == (1, 1) and read_tree(dest) == {"f.txt": b"two", "same.txt": b"same"}


def test_a_symlinked_checkout_can_be_edited_and_added_again(
    workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path
) -> None:
    """Links into the store's own objects are the version's files, not links leaving the tree."""
    v1 = ds.add(write_tree(tmp_path / "src", {"a.csv": b"1", "sub/b.csv": b"2"}))
    work = tmp_path / "work"
    v1.checkout(work, link="symlink")
    (work / "a.csv").unlink()  # edit one file the way a symlinked checkout is edited: replace it
    (work / "a.csv").write_bytes(b"1, edited")
    stored = object_files(workspace)
    v2 = ds.add(work)
    assert v2.version == 2 and v2.stats is not None and v2.stats.stored_files == 1
    assert {e.path: v2.read_bytes(e.path) for e in v2.files()} == {"a.csv": b"1, edited", "sub/b.csv": b"2"}
    assert len(object_files(workspace) - stored) == 1


_IN_PLACE_WRITE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import mlops_sdk as mlops

    root = Path(sys.argv[1])
    src = root / "src"
    src.mkdir()
    (src / "f.txt").write_bytes(b"original")
    with mlops.Workspace.open(root / "ws") as ws:
        dsv = ws.dataset("d").add(src)
        dsv.checkout(root / "out", link="hardlink")
        try:
            with open(root / "out" / "f.txt", "r+b") as f:
                f.write(b"CLOBBER!")
            outcome = "written"
        except PermissionError:
            outcome = "PermissionError"
        print(json.dumps({"outcome": outcome, "stored": dsv.read_bytes("f.txt").decode()}))
    """
)


def _without_root_overrides() -> None:
    """In a child about to exec: drop the capabilities that let root ignore permission bits.

    Removed from the bounding set, CAP_DAC_OVERRIDE (write any file) and CAP_FOWNER
    are gone after exec, so the child is held to a read-only bit like any user.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_fowner = 24, 1, 3
    for cap in (cap_dac_override, cap_fowner):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            os._exit(97)


def test_writing_in_place_into_a_hardlinked_checkout_fails_instead_of_corrupting_the_store(tmp_path: Path) -> None:
    """Objects are read-only, so a program that opens a hard-linked file to write gets PermissionError.

    Run in a child process; as root, the child drops the capabilities that ignore the read-only bit.
    """
    root = tmp_path / "inplace"
    root.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _IN_PLACE_WRITE, str(root)],
        capture_output=True,
        text=True,
        preexec_fn=_without_root_overrides if os.geteuid() == 0 else None,
        timeout=120,
    )
    if proc.returncode == 97:
        pytest.skip("running as root without the right to drop capabilities: cannot check permission bits")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"outcome": "PermissionError", "stored": "original"}


# -- corruption --------------------------------------------------------------------------------
def test_corrupted_object_is_reported_with_its_path_and_never_written(
    workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path
) -> None:
    v1 = ds.add(write_tree(tmp_path / "a", {"good.txt": b"good", "data/bad.bin": b"about to rot"}))
    v2 = ds.add(write_tree(tmp_path / "b", {"good.txt": b"good", "data/bad.bin": b"fine in v2"}))
    dest = tmp_path / "dest"
    v2.checkout(dest)
    before = snapshot(dest)
    bad = v1.manifest.get("data/bad.bin")
    assert bad is not None
    obj = corrupt(workspace, bad.digest)
    with pytest.raises(IntegrityError, match=r"data/bad\.bin") as info:
        v1.read_bytes("data/bad.bin")
    assert str(obj) in str(info.value)
    assert v1.read_bytes("good.txt") == b"good"
    with pytest.raises(IntegrityError, match=r"data/bad\.bin"):
        v1.checkout(dest)  # switching: the destination keeps v2, whole
    assert snapshot(dest) == before and tree_folders(dest) == {"data"}
    fresh = tmp_path / "fresh"
    with pytest.raises(IntegrityError, match=r"data/bad\.bin"):
        v1.checkout(fresh)
    assert not fresh.exists()
    for mode in ("hardlink", "symlink", "copy"):
        with pytest.raises(IntegrityError):
            v1.checkout(new_dir(tmp_path, mode), link=mode)


# -- gc and verify -----------------------------------------------------------------------------
def test_gc_keeps_referenced_objects_and_young_orphans(workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path) -> None:
    v = ds.add(write_tree(tmp_path / "src", {"a.txt": b"in a version"}))
    artifact = tmp_path / "artifact.txt"
    artifact.write_bytes(b"an artifact")
    with workspace.experiment("e").start_run(name="r") as run:
        (entry,) = run.log_artifact(artifact)
    old_orphan, _ = workspace.objects.put_bytes(b"nobody needs me any more")
    young_orphan, _ = workspace.objects.put_bytes(b"an add in progress wrote me")
    two_hours_ago = os.stat(object_path(workspace, old_orphan)).st_mtime - 7200
    os.utime(object_path(workspace, old_orphan), (two_hours_ago, two_hours_ago))
    for digest in (v.files()[0].digest, entry.digest):  # referenced objects are kept however old
        os.utime(object_path(workspace, digest), (two_hours_ago, two_hours_ago))

    dry = gc(workspace, dry_run=True)
    assert (dry.removed, dry.young, dry.kept, dry.dry_run) == (1, 1, 2, True)
    assert workspace.objects.exists(old_orphan)
    result = gc(workspace)
    assert (result.removed, result.young, result.kept) == (1, 1, 2)
    assert result.removed_bytes == len(b"nobody needs me any more")
    assert not workspace.objects.exists(old_orphan) and workspace.objects.exists(young_orphan)
    assert v.read_bytes("a.txt") == b"in a version"
    assert workspace.objects.get_bytes(entry.digest) == b"an artifact"
    assert gc(workspace, grace=0).removed == 1  # no grace: the young orphan goes too
    assert not workspace.objects.exists(young_orphan) and len(object_files(workspace)) == 2


def test_re_adding_content_whose_object_is_an_old_orphan_protects_it_from_gc(
    workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path
) -> None:
    """An add that finds its content already stored marks it young, so a gc running meanwhile keeps it."""
    digest, _ = workspace.objects.put_bytes(b"content")
    path = object_path(workspace, digest)
    os.utime(path, (1_000_000, 1_000_000))
    ds.add(write_tree(tmp_path / "src", {"f.txt": b"content"}))
    assert os.stat(path).st_mtime > 1_000_000


def test_verify_finds_corrupted_and_missing_objects(workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path) -> None:
    v = ds.add(write_tree(tmp_path / "src", {"ok.txt": b"ok", "rotten.txt": b"rotten", "lost.txt": b"lost"}))
    clean = verify(workspace)
    assert clean.ok and clean.checked == 3
    by_path = {e.path: e for e in v.files()}
    corrupt(workspace, by_path["rotten.txt"].digest)
    workspace.storage.delete(workspace.objects.key(by_path["lost.txt"].digest))
    result = verify(workspace)
    assert not result.ok
    problems = {(p.kind, p.key) for p in result.problems}
    assert problems == {
        ("corrupted", workspace.objects.key(by_path["rotten.txt"].digest)),
        ("missing", workspace.objects.key(by_path["lost.txt"].digest)),
    }
    missing = next(p for p in result.problems if p.kind == "missing")
    assert "customers" in missing.detail and "lost.txt" in missing.detail


# -- lineage -------------------------------------------------------------------------------------
def test_runs_record_the_datasets_they_use(workspace: mlops.Workspace, ds: mlops.Dataset, tmp_path: Path) -> None:
    v1 = ds.add(write_tree(tmp_path / "a", {"f": b"1"}))
    v2 = ds.add(write_tree(tmp_path / "b", {"f": b"2"}))
    other = workspace.dataset("other").add(write_tree(tmp_path / "c", {"g": b"3"}))
    with workspace.experiment("e").start_run(name="train") as run:
        assert run.use_dataset(v2) == v2
        run.use_dataset(v2)  # again: still one edge
        run.use_dataset(other)
        with pytest.raises(InvalidValue):
            run.use_dataset("customers")  # type: ignore[arg-type]
    assert run.datasets() == [v2, other]
    lineage = v2.lineage()
    assert [r.id for r in lineage.runs] == [run.id]
    assert list(v1.lineage().runs) == []
    record = workspace.get_run(run.id)
    assert record.tags["mlops.dataset.customers"] == "v2" and record.tags["mlops.dataset.other"] == "v1"
    assert len(workspace.tracking.lineage(kind="dataset", name="customers", version=2)) == 1


def test_a_version_object_round_trips_through_its_record(ds: mlops.Dataset, tmp_path: Path) -> None:
    v = ds.add(write_tree(tmp_path / "src", {"f": b"1"}))
    again = DatasetVersion(v.workspace, v.record)
    assert again.manifest == v.manifest and again.id == v.manifest.id


# -- many processes at once ----------------------------------------------------------------------
_ADDER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import mlops_sdk as mlops

    root, tracking, src, go = sys.argv[1:5]
    while not os.path.exists(go):
        time.sleep(0.005)
    with mlops.Workspace.open(root, tracking=tracking or None) as ws:
        v = ws.dataset("shared").add(src, message=src)
        print(json.dumps({"version": v.version, "id": v.id, "created": v.stats.created}))
    """
)


def concurrent_adds(root: Path, tracking: str, n: int) -> list[dict[str, object]]:
    """``n`` processes add different content to one dataset at the same moment; returns what each got."""
    sources = [write_tree(root / "sources" / f"s{i}", {"data.csv": f"writer {i}\n".encode(), "same.txt": b"shared"}) for i in range(n)]
    go = root / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ADDER, str(root / "ws"), tracking, str(src), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in sources
    ]
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_processes_adding_at_once_get_distinct_numbers(tmp_path: Path) -> None:
    n = 4
    results = concurrent_adds(tmp_path, "", n)
    assert sorted(r["version"] for r in results) == list(range(1, n + 1))
    assert len({r["id"] for r in results}) == n and all(r["created"] for r in results)
    with mlops.Workspace.open(tmp_path / "ws") as ws:
        versions = ws.dataset("shared").versions()
        assert [v.version for v in versions] == list(range(1, n + 1))
        for v in versions:  # none lost, each with its own content
            i = int(Path(v.message).name[1:])
            assert v.read_bytes("data.csv") == f"writer {i}\n".encode()
        assert verify(ws).ok


def test_processes_adding_at_once_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    n = 4
    results = concurrent_adds(tmp_path, postgres_url, n)
    assert sorted(r["version"] for r in results) == list(range(1, n + 1))
    with mlops.Workspace.open(tmp_path / "ws", tracking=postgres_url) as ws:
        versions = ws.dataset("shared").versions()
        assert [v.version for v in versions] == list(range(1, n + 1))
        assert {v.read_bytes("data.csv") for v in versions} == {f"writer {i}\n".encode() for i in range(n)}
