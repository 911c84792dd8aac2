"""Bad input to datasets: a typed error from mlops_sdk.errors, and the store exactly as it was.

"The store" is what a user could observe: the versions of every dataset and the
object files on disk (plus no temporary file left in the store's ``.tmp``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mlops_sdk as mlops
from mlops_sdk.errors import (
    BackendError,
    DatasetNotFound,
    IntegrityError,
    InvalidName,
    InvalidValue,
    MlopsError,
    VersionNotFound,
)
from mlops_sdk.storage.cas import LARGE_FILE
from mlops_sdk.testing.dataset_store_conformance import write_tree


def store_state(ws: mlops.Workspace) -> tuple[list[tuple[str, int | None, str]], set[str], list[str]]:
    """Every version of every dataset, every object file on disk, and any temporary file left behind."""
    folder: Path = ws.storage.folder  # type: ignore[attr-defined]
    versions = [(d.name, v.version, v.id) for d in ws.datasets() for v in d.versions()]
    objects = {p.relative_to(folder).as_posix() for p in (folder / "objects").rglob("*") if p.is_file()}
    tmp = sorted(p.name for p in (folder / ".tmp").iterdir()) if (folder / ".tmp").exists() else []
    return versions, objects, tmp


@pytest.fixture
def ws(workspace: mlops.Workspace, tmp_path: Path) -> Iterator[mlops.Workspace]:
    """A workspace that already holds one version, so 'unchanged' means something."""
    workspace.dataset("existing").add(write_tree(tmp_path / "existing", {"a.txt": b"a", "b/c.txt": b"c"}))
    yield workspace


def refused(ws: mlops.Workspace, error: type[Exception], call: Callable[[], Any], match: str | None = None) -> None:
    before = store_state(ws)
    with pytest.raises(error, match=match):
        call()
    assert store_state(ws) == before


# -- paths -------------------------------------------------------------------------------------
def test_missing_path(ws: mlops.Workspace, tmp_path: Path) -> None:
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(tmp_path / "no-such-folder"), "does not exist")
    write_tree(tmp_path / "real", {"f": b"1"})
    refused(ws, InvalidValue, lambda: ws.dataset("d").add([tmp_path / "real" / "f", tmp_path / "nope"]), "does not exist")


def test_empty_folder(ws: mlops.Workspace, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(tmp_path / "empty"), "holds no files")
    (tmp_path / "only-folders" / "a" / "b").mkdir(parents=True)
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(tmp_path / "only-folders"), "holds no files")


def test_no_paths(ws: mlops.Workspace) -> None:
    refused(ws, InvalidValue, lambda: ws.dataset("d").add([]), "no paths")


@pytest.mark.parametrize("paths", [5, None, b"/tmp", [b"/tmp"], [3], {"a": 1}])
def test_paths_of_the_wrong_type(ws: mlops.Workspace, paths: Any) -> None:
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(paths))


def test_symlink_leaving_the_tree(ws: mlops.Workspace, tmp_path: Path) -> None:
    write_tree(tmp_path / "outside", {"secret.txt": b"not part of the dataset"})
    src = write_tree(tmp_path / "src", {"ok.txt": b"ok"})
    (src / "escape").symlink_to(tmp_path / "outside" / "secret.txt")
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src), "outside")
    (src / "escape").unlink()
    (src / "sub").mkdir()
    (src / "sub" / "up").symlink_to("../../outside/secret.txt")  # relative, still outside
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src), "outside")


def test_symlink_to_a_folder(ws: mlops.Workspace, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"ok.txt": b"ok", "real/x.txt": b"x"})
    (src / "alias").symlink_to(src / "real", target_is_directory=True)
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src), "links to folders")


def test_broken_symlink(ws: mlops.Workspace, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"ok.txt": b"ok"})
    (src / "dangling").symlink_to(src / "gone.txt")
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src), "broken")
    (tmp_path / "top-dangling").symlink_to(tmp_path / "nothing")
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(tmp_path / "top-dangling"), "broken")


def test_symlink_loop(ws: mlops.Workspace, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"ok.txt": b"ok"})
    (src / "one").symlink_to(src / "two")
    (src / "two").symlink_to(src / "one")
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src), "cannot be followed")


def test_symlink_into_another_workspace_store_is_leaving_the_tree(ws: mlops.Workspace, tmp_path: Path) -> None:
    """Only links into this workspace's own objects count as the version's files."""
    other = mlops.Workspace.open(tmp_path / "other")
    try:
        v = other.dataset("x").add(write_tree(tmp_path / "x", {"f.txt": b"elsewhere"}))
        v.checkout(tmp_path / "linked", link="symlink")
    finally:
        other.close()
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(tmp_path / "linked"), "outside")


def test_symlink_inside_the_tree_is_stored_as_its_content(ws: mlops.Workspace, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"real.txt": b"content"})
    (src / "alias.txt").symlink_to("real.txt")
    v = ws.dataset("d").add(src)
    assert {e.path: v.read_bytes(e.path) for e in v.files()} == {"real.txt": b"content", "alias.txt": b"content"}


def test_fifo_and_socket(ws: mlops.Workspace, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"ok.txt": b"ok"})
    os.mkfifo(src / "pipe")
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src), "not a regular file")
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src / "pipe"), "not a regular file")
    (src / "pipe").unlink()
    sock_path = tmp_path / "s"  # AF_UNIX paths are short: bind in a short folder, then move
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        os.replace(sock_path, src / "sock")
        refused(ws, InvalidValue, lambda: ws.dataset("d").add(src), "not a regular file")


def test_file_names_that_cannot_be_stored(ws: mlops.Workspace, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"ok.txt": b"ok", "line\nbreak.txt": b"x"})
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src), "control character")
    undecodable = os.fsencode(str(src)) + b"/bad-\xff-name"
    os.unlink(src / "line\nbreak.txt")
    with open(undecodable, "wb") as f:
        f.write(b"x")
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src), "Unicode")


def test_two_paths_stored_under_one_name(ws: mlops.Workspace, tmp_path: Path) -> None:
    write_tree(tmp_path / "one", {"data.csv": b"1"})
    write_tree(tmp_path / "two", {"data.csv": b"2"})
    refused(ws, InvalidValue, lambda: ws.dataset("d").add([tmp_path / "one" / "data.csv", tmp_path / "two" / "data.csv"]), "data.csv")


def test_a_file_and_a_folder_of_the_same_name_from_two_paths(ws: mlops.Workspace, tmp_path: Path) -> None:
    """``x/data`` (a file) and ``y/data/`` (a folder) would both be ``data``: refused before anything is stored."""
    write_tree(tmp_path / "x", {"data": b"a file with new content"})
    write_tree(tmp_path / "y", {"data/part.csv": b"a folder's file, new content"})
    refused(ws, InvalidValue, lambda: ws.dataset("d").add([tmp_path / "x" / "data", tmp_path / "y" / "data"]), "data")


def test_the_workspace_own_files_are_never_added_or_checked_out_over(ws: mlops.Workspace, tmp_path: Path) -> None:
    """The project root holds .mlops (records, objects): adding it, or an exact checkout into it
    (which would delete everything else there, even with force), is refused."""
    v = ws.dataset("existing").latest
    project = ws.root
    write_tree(project / "data", {"f.csv": b"1"})
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(project), "workspace's own files")
    refused(ws, InvalidValue, lambda: ws.dataset("d").add([project / "data", project / ".mlops"]), "workspace's own files")
    store = ws.storage.folder  # type: ignore[attr-defined]
    for dest in (project, project / ".mlops", store / "objects"):
        refused(ws, InvalidValue, lambda dest=dest: v.checkout(dest, force=True), "workspace's own files")  # type: ignore[misc]
    assert (project / "data" / "f.csv").read_bytes() == b"1"
    v.checkout(project / "data-copy")  # a folder beside .mlops is fine
    assert sorted(p.name for p in (project / "data-copy").rglob("*") if p.is_file()) == ["a.txt", "c.txt"]


# -- names, messages, versions -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", "a/b", "../escape", "a\\b", "", "tab\there", "x" * 201, None, 5])
def test_bad_dataset_names(ws: mlops.Workspace, name: Any) -> None:
    refused(ws, InvalidName, lambda: ws.dataset(name))


@pytest.mark.parametrize("message", [None, 5, b"bytes", ["list"]])
def test_non_string_message(ws: mlops.Workspace, tmp_path: Path, message: Any) -> None:
    src = write_tree(tmp_path / "src", {"f": b"new content"})
    refused(ws, InvalidValue, lambda: ws.dataset("d").add(src, message=message), "message")


@pytest.mark.parametrize("tags", [{"../x": "v"}, {"": "v"}, {5: "v"}])
def test_bad_tags(ws: mlops.Workspace, tmp_path: Path, tags: Any) -> None:
    src = write_tree(tmp_path / "src", {"f": b"new content"})
    refused(ws, MlopsError, lambda: ws.dataset("d").add(src, tags=tags))


def test_unknown_versions(ws: mlops.Workspace) -> None:
    existing = ws.dataset("existing")
    for ref in (2, "v7", "latest-ish", "0123456789", "ffffff"):
        refused(ws, VersionNotFound, lambda ref=ref: existing.version(ref))  # type: ignore[misc]
    refused(ws, DatasetNotFound, lambda: ws.dataset("never-added").version(1))
    refused(ws, DatasetNotFound, lambda: ws.dataset("never-added").latest)
    refused(ws, InvalidValue, lambda: existing.version(1.5))  # type: ignore[arg-type]


# -- files changing while they are added ---------------------------------------------------------
def test_a_file_changed_between_scan_and_hashing_is_refused(ws: mlops.Workspace, tmp_path: Path) -> None:
    """Deterministic: when the first file is done, the progress callback changes the second one."""
    src = write_tree(tmp_path / "src", {"1-first.csv": b"first", "2-second.csv": b"second, as scanned"})
    versions_before = store_state(ws)[0]

    def change_the_next_file(_bytes: int, _files: int) -> None:
        path = src / "2-second.csv"
        st = os.stat(path)
        path.write_bytes(b"second, changed after the scan")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))

    with pytest.raises(IntegrityError, match=r"2-second\.csv.*changed while it was being added"):
        ws.dataset("d").add(src, progress=change_the_next_file)
    assert store_state(ws)[0] == versions_before
    assert ws.dataset("d").versions() == []


def test_a_file_deleted_between_scan_and_hashing_is_refused(ws: mlops.Workspace, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"1-first.csv": b"first", "2-second.csv": b"second"})
    versions_before = store_state(ws)[0]
    with pytest.raises(InvalidValue, match=r"2-second\.csv disappeared"):
        ws.dataset("d").add(src, progress=lambda _b, _f: (src / "2-second.csv").unlink(missing_ok=True))
    assert store_state(ws)[0] == versions_before


def test_a_file_rewritten_while_it_is_hashed_is_refused(ws: mlops.Workspace, tmp_path: Path) -> None:
    """For real: a thread keeps rewriting bytes of a large file while ``add`` reads it.

    Every rewrite moves the file's mtime, so an add that overlaps one must fail;
    an add that happened to fall between rewrites (rare: hashing takes far longer
    than the gap) is allowed, and we try again, a bounded number of times.
    """
    size = 24 << 20
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    with open(big, "wb") as f:
        f.write(os.urandom(1 << 20) * (size >> 20))
    stop = threading.Event()

    def rewrite() -> None:
        fd = os.open(big, os.O_WRONLY)
        try:
            i = 0
            while not stop.is_set():
                os.pwrite(fd, bytes([i % 256]) * 4096, (i * 7919 * 4096) % (size - 4096))
                i += 1
        finally:
            os.close(fd)

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    failures = 0
    try:
        for _attempt in range(20):
            before = store_state(ws)[0]
            try:
                ws.dataset("moving").add(src)
            except IntegrityError as exc:
                assert "changed while it was being added" in str(exc)
                assert store_state(ws)[0] == before  # no version recorded
                failures += 1
                break
    finally:
        stop.set()
        writer.join(timeout=30)
    assert failures == 1, "in 20 tries, no add overlapped a rewrite"


# -- disk full --------------------------------------------------------------------------------
_FILL_DISK = textwrap.dedent(
    """
    import json, resource, signal, sys
    import mlops_sdk as mlops
    from mlops_sdk.errors import MlopsError

    root, src, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with mlops.Workspace.open(root) as ws:
        ds = ws.dataset("big")
        ws.tracking.list_versions("dataset")   # the database is open and its schema in place
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            ds.add(src)
            print(json.dumps({"error": None}))
        except MlopsError as exc:
            print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    """
)


@pytest.mark.parametrize("size", [8 << 20, LARGE_FILE + (1 << 20)], ids=["one-pass-copy", "large-file-copy"])
def test_disk_full_while_storing_leaves_no_partial_object(ws: mlops.Workspace, tmp_path: Path, size: int) -> None:
    src = tmp_path / "big-src"
    src.mkdir()
    (src / "small.txt").write_bytes(b"fits")
    with open(src / "huge.bin", "wb") as f:
        f.write(os.urandom(1 << 20))
        f.truncate(size)  # the rest reads as zeros: quick to make, still written in full when stored
    limit = 3 << 20
    db = ws.root / ".mlops" / "tracking.db"
    assert db.stat().st_size < limit
    before = store_state(ws)
    proc = subprocess.run(
        [sys.executable, "-c", _FILL_DISK, str(ws.root), str(src), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["error"] == BackendError.__name__, outcome
    assert "huge.bin" in outcome["message"] and "nothing was recorded" in outcome["message"]
    after = store_state(ws)
    assert after[0] == before[0]  # no version
    assert after[2] == []  # no temporary file left
    new_objects = after[1] - before[1]
    for key in new_objects:  # only whole objects appeared (the small file's), never a part of huge.bin
        data = (ws.storage.folder / key).read_bytes()  # type: ignore[attr-defined]
        assert data == b"fits"
