"""The conformance suite every :class:`~mlops_sdk.storage.base.Storage` runs.

Subclass :class:`StorageConformance` in a test module (the subclass name must
start with ``Test``) and provide a ``storage`` fixture that yields a fresh,
empty storage::

    class TestLocalStorage(StorageConformance):
        @pytest.fixture
        def storage(self, tmp_path):
            return LocalStorage(f"file://{tmp_path / 'store'}")

Each test checks one clause of the contract in the docstring of
:mod:`mlops_sdk.storage.base`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_sdk.errors import InvalidName, MlopsError, ObjectNotFound
from mlops_sdk.storage.base import Storage

__all__ = ["BAD_KEYS", "StorageConformance"]

#: Hypothesis examples per property (MLOPS_CONFORMANCE_EXAMPLES searches harder).
EXAMPLES = int(os.environ.get("MLOPS_CONFORMANCE_EXAMPLES", "30"))

#: Keys every storage must refuse with ``InvalidName`` before touching its backend.
BAD_KEYS = (
    "",
    "..",
    "../escape",
    "a/../../escape",
    "a/..",
    "/etc/passwd",
    "a//b",
    "a/./b",
    ".",
    "a/",
    "a\\b",
    "nul\x00byte",
    "line\nbreak",
)

_key_segments = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/\\"
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", "..") and not s.startswith(".tmp"))
_keys = st.lists(_key_segments, min_size=1, max_size=3).map("/".join)


class StorageConformance:
    """The storage contract. Subclass as ``Test…`` and provide a ``storage`` fixture."""

    @pytest.fixture
    def storage(self) -> Storage:
        raise NotImplementedError(
            f"{type(self).__name__} must provide a `storage` fixture returning a fresh, empty Storage"
        )

    # -- put / get ---------------------------------------------------------------------
    def test_put_and_get_bytes(self, storage: Storage) -> None:
        data = bytes(range(256)) * 3
        storage.put_bytes("a/b/c.bin", data)
        assert storage.get_bytes("a/b/c.bin") == data
        assert storage.exists("a/b/c.bin")
        assert storage.size("a/b/c.bin") == len(data)

    def test_empty_object(self, storage: Storage) -> None:
        storage.put_bytes("empty", b"")
        assert storage.get_bytes("empty") == b""
        assert storage.exists("empty")
        assert storage.size("empty") == 0
        assert list(storage.list()) == ["empty"]

    def test_large_object(self, storage: Storage, tmp_path: Path) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        source = tmp_path / "big.bin"
        source.write_bytes(data)
        storage.put_file("big", source)
        assert storage.size("big") == len(data)
        with storage.open("big") as f:
            chunks = []
            while chunk := f.read(1 << 20):
                chunks.append(chunk)
        assert b"".join(chunks) == data

    def test_put_file_and_get_file(self, storage: Storage, tmp_path: Path) -> None:
        source = tmp_path / "in.txt"
        source.write_bytes(b"hello\nworld\n")
        storage.put_file("docs/in.txt", source)
        storage.put_file("docs/as-str.txt", str(source))
        dest = tmp_path / "out" / "deeper" / "copy.txt"  # parent folders are created
        storage.get_file("docs/in.txt", dest)
        assert dest.read_bytes() == b"hello\nworld\n"
        storage.get_file("docs/as-str.txt", str(tmp_path / "copy2.txt"))
        assert (tmp_path / "copy2.txt").read_bytes() == b"hello\nworld\n"

    def test_get_file_replaces_an_existing_file(self, storage: Storage, tmp_path: Path) -> None:
        storage.put_bytes("k", b"new")
        dest = tmp_path / "dest.txt"
        dest.write_bytes(b"old content that is longer")
        storage.get_file("k", dest)
        assert dest.read_bytes() == b"new"

    def test_open_streams(self, storage: Storage) -> None:
        storage.put_bytes("s", b"0123456789")
        with storage.open("s") as f:
            assert f.read(3) == b"012"
            assert f.read() == b"3456789"

    def test_put_replaces(self, storage: Storage, tmp_path: Path) -> None:
        storage.put_bytes("k", b"first version, long")
        storage.put_bytes("k", b"second")
        assert storage.get_bytes("k") == b"second"
        source = tmp_path / "third"
        source.write_bytes(b"third")
        storage.put_file("k", source)
        assert storage.get_bytes("k") == b"third"
        assert storage.size("k") == 5
        assert list(storage.list()) == ["k"]

    def test_unicode_and_space_keys(self, storage: Storage) -> None:
        keys = ["with space/ünïcode ✓.txt", "日本/データ", "a-b_c.d~e(f)", "x/.hidden"]
        for i, key in enumerate(keys):
            storage.put_bytes(key, str(i).encode())
        for i, key in enumerate(keys):
            assert storage.get_bytes(key) == str(i).encode()
        assert sorted(storage.list()) == sorted(keys)

    @given(data=st.dictionaries(_keys, st.binary(max_size=64), min_size=1, max_size=5))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    def test_random_keys_and_bytes_round_trip(
        self, storage: Storage, data: dict[str, bytes]
    ) -> None:
        for key in list(storage.list()):  # the fixture is not reset between examples
            storage.delete(key)
        written: dict[str, bytes] = {}
        for key, value in data.items():
            if any(
                other != key and (other.startswith(key + "/") or key.startswith(other + "/"))
                for other in written
            ):
                continue  # a key that is also a folder of other keys: not portable
            storage.put_bytes(key, value)
            written[key] = value
        for key, value in written.items():
            assert storage.get_bytes(key) == value
            assert storage.size(key) == len(value)
        assert sorted(storage.list()) == sorted(written)

    # -- missing keys ---------------------------------------------------------------------
    def test_missing_key_raises_object_not_found_naming_it(
        self, storage: Storage, tmp_path: Path
    ) -> None:
        storage.put_bytes("present", b"x")
        calls: list[Any] = [
            lambda: storage.get_bytes("no/such-key"),
            lambda: storage.open("no/such-key"),
            lambda: storage.size("no/such-key"),
            lambda: storage.get_file("no/such-key", tmp_path / "dest" / "f"),
        ]
        for call in calls:
            with pytest.raises(ObjectNotFound, match="no/such-key"):
                call()
        assert not storage.exists("no/such-key")
        assert not (tmp_path / "dest" / "f").exists()

    def test_failed_get_file_leaves_no_partial_file(self, storage: Storage, tmp_path: Path) -> None:
        dest_dir = tmp_path / "dest"
        dest_dir.mkdir()
        (dest_dir / "keep.txt").write_bytes(b"keep")
        with pytest.raises(ObjectNotFound):
            storage.get_file("missing", dest_dir / "f")
        assert sorted(p.name for p in dest_dir.iterdir()) == ["keep.txt"]
        existing = dest_dir / "keep.txt"
        with pytest.raises(ObjectNotFound):
            storage.get_file("missing", existing)
        assert existing.read_bytes() == b"keep"

    def test_a_folder_is_not_an_object(self, storage: Storage, tmp_path: Path) -> None:
        storage.put_bytes("folder/inner", b"x")
        assert not storage.exists("folder")
        for call in (
            lambda: storage.get_bytes("folder"),
            lambda: storage.open("folder"),
            lambda: storage.size("folder"),
            lambda: storage.get_file("folder", tmp_path / "f"),
        ):
            with pytest.raises(ObjectNotFound):
                call()
        storage.delete("folder")  # a missing key: nothing happens, the folder's objects stay
        assert storage.get_bytes("folder/inner") == b"x"

    def test_a_key_is_free_again_once_its_folder_is_emptied(self, storage: Storage) -> None:
        storage.put_bytes("a/b/c", b"deep")
        storage.delete("a/b/c")
        storage.put_bytes("a", b"flat")  # no folder left in the way
        assert storage.get_bytes("a") == b"flat"
        assert list(storage.list()) == ["a"]
        storage.delete("a")
        storage.put_bytes("a/b", b"deep again")
        assert list(storage.list()) == ["a/b"]

    def test_key_and_folder_conflicts_fail_cleanly(self, storage: Storage) -> None:
        """A key that is also a folder of other keys may be refused, but only with an MlopsError."""
        storage.put_bytes("a/b", b"file")
        storage.put_bytes("c", b"file")
        expected = {"a/b": b"file", "c": b"file"}
        for key in ("a", "c/d"):
            try:
                storage.put_bytes(key, b"new")
            except MlopsError:
                continue
            expected[key] = b"new"
        assert sorted(storage.list()) == sorted(expected)
        for key, value in expected.items():
            assert storage.get_bytes(key) == value

    # -- exists / list / delete ---------------------------------------------------------
    def test_exists(self, storage: Storage) -> None:
        assert not storage.exists("k")
        storage.put_bytes("k", b"v")
        assert storage.exists("k")
        assert not storage.exists("k2")

    def test_list_prefixes(self, storage: Storage) -> None:
        keys = ["a/1", "a/2", "a/b/3", "ab", "b/1", "top"]
        for key in keys:
            storage.put_bytes(key, key.encode())
        assert sorted(storage.list()) == keys
        assert sorted(storage.list("")) == keys
        assert sorted(storage.list("a/")) == ["a/1", "a/2", "a/b/3"]
        assert sorted(storage.list("a")) == ["a/1", "a/2", "a/b/3", "ab"]
        assert sorted(storage.list("a/b/")) == ["a/b/3"]
        assert list(storage.list("nothing/")) == []

    def test_list_of_empty_storage(self, storage: Storage) -> None:
        assert list(storage.list()) == []

    def test_delete(self, storage: Storage) -> None:
        storage.put_bytes("dir/a", b"1")
        storage.put_bytes("dir/b", b"2")
        storage.delete("dir/a")
        assert not storage.exists("dir/a")
        assert sorted(storage.list()) == ["dir/b"]
        with pytest.raises(ObjectNotFound):
            storage.get_bytes("dir/a")
        storage.delete("dir/a")  # deleting a missing key is not an error
        storage.delete("never/existed")
        assert storage.get_bytes("dir/b") == b"2"

    # -- names ---------------------------------------------------------------------------
    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_bad_keys_are_refused(self, storage: Storage, tmp_path: Path, key: str) -> None:
        source = tmp_path / "src"
        source.write_bytes(b"x")
        for call in (
            lambda: storage.put_bytes(key, b"x"),
            lambda: storage.put_file(key, source),
            lambda: storage.get_bytes(key),
            lambda: storage.get_file(key, tmp_path / "dest"),
            lambda: storage.open(key),
            lambda: storage.exists(key),
            lambda: storage.size(key),
            lambda: storage.delete(key),
        ):
            with pytest.raises(InvalidName):
                call()
        assert list(storage.list()) == []
        assert not (tmp_path.parent / "escape").exists()

    # -- atomicity -----------------------------------------------------------------------
    def test_failed_put_leaves_the_old_object(self, storage: Storage, tmp_path: Path) -> None:
        storage.put_bytes("k", b"old")
        with pytest.raises(MlopsError):
            storage.put_file("k", tmp_path / "does-not-exist")
        assert storage.get_bytes("k") == b"old"
        assert list(storage.list()) == ["k"]
        with pytest.raises(MlopsError):
            storage.put_file("new", tmp_path / "does-not-exist")
        assert not storage.exists("new")
        assert list(storage.list()) == ["k"]

    def test_list_never_shows_temporary_files(self, storage: Storage, tmp_path: Path) -> None:
        source = tmp_path / "f"
        source.write_bytes(b"data")
        expected = set()
        for i in range(10):
            storage.put_bytes(f"b/{i}", b"x" * i)
            storage.put_file(f"f/{i}", source)
            expected |= {f"b/{i}", f"f/{i}"}
            with pytest.raises(MlopsError):
                storage.put_file(f"failed/{i}", tmp_path / "missing")
        assert set(storage.list()) == expected
        assert len(list(storage.list())) == len(expected)

    def test_concurrent_puts_are_never_seen_half_written(self, storage: Storage) -> None:
        size = 256 * 1024
        versions = [bytes([i]) * size for i in range(1, 4)]
        storage.put_bytes("hot", versions[0])
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer(data: bytes) -> None:
            try:
                for _ in range(10):
                    storage.put_bytes("hot", data)
            except BaseException as exc:
                errors.append(exc)

        seen: list[bytes] = []

        def reader() -> None:
            try:
                while not stop.is_set():
                    seen.append(storage.get_bytes("hot"))
            except BaseException as exc:
                errors.append(exc)

        readers = [threading.Thread(target=reader) for _ in range(2)]
        writers = [threading.Thread(target=writer, args=(v,)) for v in versions]
        for t in readers + writers:
            t.start()
        for t in writers:
            t.join(timeout=120)
        stop.set()
        for t in readers:
            t.join(timeout=120)
        assert not errors, errors
        assert seen
        assert all(data in versions for data in seen)
        assert storage.get_bytes("hot") in versions
        assert list(storage.list()) == ["hot"]
