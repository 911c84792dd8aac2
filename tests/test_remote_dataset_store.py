"""The dataset store's batched path for remote storages (S3, Azure…), on an in-memory fsspec storage.

The remote path hashes locally, asks the storage once what it lacks, and
uploads in batches. These tests make the storage misbehave the way a real
one can (a file rewritten by another process while its batch uploads, an
upload failing part-way) and check the store never keeps an object whose
bytes differ from its digest, and that a retry then succeeds.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import pytest

from mlops_sdk.errors import BackendError, IntegrityError
from mlops_sdk.scan import scan
from mlops_sdk.storage.cas import CasDatasetStore
from mlops_sdk.storage.fsspec_storage import FsspecStorage
from mlops_sdk.storage.objects import ObjectStore
from mlops_sdk.storage.statcache import StatCache


class MisbehavingStorage(FsspecStorage):
    """An in-memory storage whose ``put_file`` runs a callback first (another process, a network fault)."""

    def __init__(self) -> None:
        name = uuid.uuid4().hex
        super().__init__(fsspec.filesystem("memory"), f"/{name}", f"memory://{name}")
        self.before_put = lambda key, path: None
        self.puts: list[str] = []
        self.gets: list[str] = []

    def get_file(self, key: str, local_path: str | Path) -> None:
        self.gets.append(key)
        super().get_file(key, local_path)

    def put_file(self, key: str, local_path: str | Path) -> None:
        self.before_put(key, Path(local_path))
        super().put_file(key, local_path)
        self.puts.append(key)


def _store(tmp_path: Path) -> tuple[CasDatasetStore, MisbehavingStorage]:
    storage = MisbehavingStorage()
    storage.batch_concurrency = 1  # deterministic order: the callback sees the files one by one
    return CasDatasetStore(ObjectStore(storage), StatCache(tmp_path / f"state-{uuid.uuid4().hex}.db")), storage


def _tree(folder: Path, n: int) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    files = {f"f{i:02d}.csv": f"row {i}\n".encode() * (i + 1) for i in range(n)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _rewrite(path: Path, data: bytes) -> None:
    st = os.stat(path)
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def _all_objects_verify(storage: FsspecStorage) -> bool:
    objects = ObjectStore(storage)
    digests = [k.split("/")[1] + k.split("/")[2] for k in storage.list("objects/")]
    return all(objects.verify(d) for d in digests)


def test_files_rewritten_while_their_batch_uploads_leave_no_wrong_object(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = _tree(src, 6)
    store, storage = _store(tmp_path)

    def another_process_rewrites_the_rest(key: str, path: Path) -> None:
        if not storage.puts:  # during the first upload, every later file of the batch changes
            for name in sorted(original)[1:]:
                _rewrite(src / name, b"changed by someone else\n")

    storage.before_put = another_process_rewrites_the_rest
    with pytest.raises(IntegrityError, match="changed while it was being added"):
        store.add("d", scan(src))
    assert _all_objects_verify(storage)  # no object holds bytes other than its digest's

    for name, data in original.items():  # put the files back; the retry stores them all
        _rewrite(src / name, data)
    storage.before_put = lambda key, path: None
    result = store.add("d", scan(src))
    out = tmp_path / "out"
    store.materialize(result.manifest, list(result.manifest), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == original
    assert _all_objects_verify(storage)


def test_an_upload_failing_part_way_keeps_only_whole_objects_and_the_retry_succeeds(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = _tree(src, 5)
    store, storage = _store(tmp_path)

    def fail_on_the_third(key: str, path: Path) -> None:
        if len(storage.puts) == 2:
            raise BackendError(f"storage {storage.uri}: connection reset while writing {key!r}")

    storage.before_put = fail_on_the_third
    with pytest.raises(BackendError, match="connection reset"):
        store.add("d", scan(src))
    assert len(storage.puts) == 2 and _all_objects_verify(storage)

    storage.before_put = lambda key, path: None
    result = store.add("d", scan(src))
    assert result.stored_files == 3  # the two stored before the failure are not uploaded again
    assert store.missing(result.manifest) == []
    out = tmp_path / "out"
    store.materialize(result.manifest, list(result.manifest), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == original


def test_files_with_the_same_content_are_fetched_once_and_all_checked_out(tmp_path: Path) -> None:
    """Twenty files share one object: it is downloaded once, verified, and copied to each of them."""
    store, storage = _store(tmp_path)
    storage.batch_concurrency = 8
    src = tmp_path / "src"
    src.mkdir()
    same = bytes(range(256)) * 4096  # 1 MiB
    for i in range(20):
        (src / f"copy{i:02d}.bin").write_bytes(same)
    (src / "other.bin").write_bytes(b"something else")
    result = store.add(src, scan(src))
    dest = tmp_path / "dest"
    store.materialize(result.manifest, result.manifest.entries, dest, link="copy", source=result.source)
    assert sorted(storage.gets) == sorted(set(storage.gets)) and len(storage.gets) == 2
    for i in range(20):
        assert (dest / f"copy{i:02d}.bin").read_bytes() == same
    assert (dest / "other.bin").read_bytes() == b"something else"
    assert not [p for p in dest.rglob("*.part")]


def test_memory_storage_readers_do_not_share_a_position(tmp_path: Path) -> None:
    """fsspec's memory file system hands out one file object per path; ours reads copies."""
    from mlops_sdk.storage.fsspec_storage import open_memory

    storage = open_memory(f"memory://{uuid.uuid4().hex}")
    src = tmp_path / "obj"
    src.write_bytes(b"0123456789" * 1000)
    storage.put_file("objects/ab/cd", src)
    first = storage.open("objects/ab/cd")
    assert first.read(5) == b"01234"
    second = storage.open("objects/ab/cd")
    assert second.read(5) == b"01234"
    assert first.read(5) == b"56789"
    storage.get_file("objects/ab/cd", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == src.read_bytes()
    assert first.read() == src.read_bytes()[10:]
