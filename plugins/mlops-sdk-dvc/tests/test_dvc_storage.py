"""The ``dvc://`` storage and its dataset store, against real Git and DVC (and the ``dvc`` CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dvc_testutil import Project, read_tree, run, source_files, write_tree
from mlops_sdk.errors import ConfigError, IntegrityError, InvalidName, InvalidValue, ObjectNotFound
from mlops_sdk.plugins import create_backend, get_plugin_manager
from mlops_sdk.storage.datasets import SourceFile
from mlops_sdk.storage.fsspec_storage import LocalStorage

from mlops_sdk_dvc.storage import DvcDatasetStore, DvcStorage


@pytest.fixture
def storage(project: Project) -> DvcStorage:
    st = create_backend("storage", "dvc://repo", root=project.root.parent)
    assert isinstance(st, DvcStorage)
    return st


@pytest.fixture
def store(storage: DvcStorage, tmp_path: Path) -> Iterator[DvcDatasetStore]:
    ds = storage.dataset_store(tmp_path / "state")
    assert isinstance(ds, DvcDatasetStore)
    yield ds
    ds.close()


# -- the storage ------------------------------------------------------------------------
def test_scheme_is_registered_and_plugin_module_does_not_import_dvc() -> None:
    entries = get_plugin_manager().registry
    assert entries.view("storage")["dvc"].plugin == "dvc"
    assert entries.view("source")["dvc"].plugin == "dvc"
    code = (
        "import sys; from mlops_sdk.plugins import get_plugin_manager;"
        "r = get_plugin_manager().registry; assert 'dvc' in r.view('storage');"
        "import mlops_sdk_dvc.storage;"
        "bad = [m for m in sys.modules if m == 'dvc' or m.startswith(('dvc.', 'dvc_'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "MLOPS_PLUGINS": "dvc"})


@pytest.mark.parametrize("uri", ["dvc://.", "dvc://repo", "dvc://ABS"])
def test_uri_forms_name_the_repository(project: Project, uri: str) -> None:
    uri = uri.replace("ABS", str(project.root))
    root = project.root if uri == "dvc://." else project.root.parent
    st = create_backend("storage", uri, root=root)
    assert st.repo_root == project.root.resolve()
    assert st.uri == f"dvc://{project.root.resolve()}"


def test_run_artifacts_are_local_blobs_ignored_by_git(storage: DvcStorage, project: Project) -> None:
    assert isinstance(storage, LocalStorage)
    storage.put_bytes("runs/r1/model.bin", b"weights")
    assert storage.get_bytes("runs/r1/model.bin") == b"weights"
    assert storage.local_path("runs/r1/model.bin") == project.root.resolve() / ".mlops/store/runs/r1/model.bin"
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""


@pytest.mark.parametrize("missing", ["git", "dvc", "both", "folder"])
def test_not_a_git_dvc_repository_is_a_config_error_saying_how_to_fix(tmp_path: Path, missing: str) -> None:
    folder = tmp_path / "repo"
    if missing != "folder":
        folder.mkdir()
    if missing == "dvc":
        run(folder, "git", "init", "-q")
    if missing == "git":
        (folder / ".dvc").mkdir()
    with pytest.raises(ConfigError, match=r"git init && dvc init"):
        create_backend("storage", "dvc://repo", root=tmp_path)


def test_empty_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dvc://"):
        create_backend("storage", "dvc://", root=tmp_path)


# -- adding -----------------------------------------------------------------------------
def test_add_commits_the_dvc_file_and_materializes_identical_bytes(
    store: DvcDatasetStore, project: Project, data: Path, tmp_path: Path
) -> None:
    before = project.head
    result = store.add("customers", source_files(data), message="Nov export")
    m, source = result.manifest, result.source
    assert m.algorithm == "md5"
    assert {e.path for e in m} == set(read_tree(data))
    assert {e.path: e.size for e in m} == {p: len(b) for p, b in read_tree(data).items()}
    assert result.hashed_files == 5 and result.stored_files == 5
    assert result.stored_bytes == sum(len(b) for b in read_tree(data).values())

    # the version is a commit holding exactly the .dvc file and the .gitignore
    assert source is not None
    assert source["type"] == "dvc" and source["repo"] == str(project.root.resolve())
    assert source["path"] == "datasets/customers" and source["md5"].endswith(".dir")
    assert source["rev"] == project.head != before
    assert project.git("log", "-1", "--format=%s") == "mlops: dataset customers: Nov export"
    assert sorted(project.git("show", "--name-only", "--format=", "HEAD").split()) == [
        "datasets/.gitignore",
        "datasets/customers.dvc",
    ]
    assert project.git("status", "--porcelain") == ""
    assert read_tree(project.root / "datasets/customers") == read_tree(data)

    # DVC agrees: `dvc status` is clean, the remote has everything (pushed)
    assert json.loads(project.dvc("status", "--json").stdout) == {}
    assert json.loads(project.dvc("status", "--cloud", "--json").stdout) == {}
    assert store.missing(m, source=source) == []

    dest = tmp_path / "out"
    store.materialize(m, list(m), dest, source=source)
    assert read_tree(dest) == read_tree(data)
    with store.open(m, m.get("train.csv"), source=source) as f:
        assert f.read() == b"id,x\n1,0.5\n2,0.25\n"


def test_md5s_are_dvcs_own(store: DvcDatasetStore, project: Project, data: Path) -> None:
    from dvc.fs import DVCFileSystem

    result = store.add("d", source_files(data))
    fs = DVCFileSystem(url=str(project.root), rev=result.source["rev"])
    try:
        found = fs.fs.find("datasets/d", detail=True)
        dvc_md5s = {k.removeprefix("/").removeprefix("datasets/d/"): v["dvc_info"]["md5"] for k, v in found.items()}
        assert fs.fs.info("datasets/d")["dvc_info"]["md5"] == result.source["md5"]
    finally:
        fs.close()
    assert dvc_md5s == {e.path: e.digest for e in result.manifest}


def test_adding_identical_content_twice_gives_the_same_manifest_and_no_commit(
    store: DvcDatasetStore, project: Project, data: Path
) -> None:
    first = store.add("d", source_files(data), message="one")
    head = project.head
    second = store.add("d", source_files(data), message="two")
    assert second.manifest == first.manifest
    assert second.source == first.source
    assert project.head == head
    assert second.stored_files == 0 and second.stored_bytes == 0


def test_a_new_version_replaces_the_folder_exactly_and_the_old_one_stays_readable(
    store: DvcDatasetStore, project: Project, tmp_path: Path
) -> None:
    v1_data = write_tree(tmp_path / "v1", {"a.txt": b"a1", "gone/b.txt": b"b1"})
    v2_data = write_tree(tmp_path / "v2", {"a.txt": b"a2", "new.txt": b"n"})
    v1 = store.add("d", source_files(v1_data))
    v2 = store.add("d", source_files(v2_data))
    assert v2.source["rev"] != v1.source["rev"]
    assert read_tree(project.root / "datasets/d") == read_tree(v2_data)
    assert project.git("status", "--porcelain") == ""
    store.materialize(v1.manifest, list(v1.manifest), tmp_path / "old", source=v1.source)
    assert read_tree(tmp_path / "old") == read_tree(v1_data)
    # and `dvc checkout` at the old commit gives the old folder back
    project.git("checkout", "-q", v1.source["rev"])
    project.dvc("checkout", "-q")
    assert read_tree(project.root / "datasets/d") == read_tree(v1_data)


def test_adding_the_dataset_folder_itself_copies_nothing(store: DvcDatasetStore, project: Project, data: Path) -> None:
    first = store.add("d", source_files(data))
    folder = project.root / "datasets/d"
    (folder / "train.csv").write_bytes(b"id,x\n9,9\n")
    inode = (folder / "images/cat.bin").stat().st_ino
    second = store.add("d", source_files(folder), message="edited in place")
    assert second.manifest.get("train.csv").digest != first.manifest.get("train.csv").digest
    assert second.source["rev"] == project.head != first.source["rev"]
    assert project.git("status", "--porcelain") == ""
    assert (folder / "images/cat.bin").stat().st_ino == inode or read_tree(folder)["train.csv"] == b"id,x\n9,9\n"


def test_first_add_in_a_new_repository_commits_the_dvc_project_too(bare_project: Project, tmp_path: Path, data: Path) -> None:
    store = DvcDatasetStore(bare_project.root)
    try:
        result = store.add("d", source_files(data))
    finally:
        store.close()
    committed = set(bare_project.git("show", "--name-only", "--format=", "HEAD").split())
    assert {".dvc/config", ".dvc/.gitignore", ".dvcignore", "datasets/d.dvc", "datasets/.gitignore"} <= committed
    assert result.source["rev"] == bare_project.head
    # no remote configured: nothing pushed, the data is in the local cache
    assert not bare_project.remote.exists()
    assert store.missing(result.manifest, source=result.source) == []


def test_file_changed_while_adding_records_nothing(store: DvcDatasetStore, project: Project, data: Path) -> None:
    v1 = store.add("d", source_files(data))
    head = project.head
    dvcfile = (project.root / "datasets/d.dvc").read_bytes()
    files = source_files(data)
    time.sleep(0.01)
    (data / "train.csv").write_bytes(b"id,x\n1,changed\n")  # after it was listed, before it is added
    with pytest.raises(IntegrityError, match=r"train\.csv changed while it was being added"):
        store.add("d", files)
    assert project.head == head
    assert (project.root / "datasets/d.dvc").read_bytes() == dvcfile
    assert project.git("status", "--porcelain") == ""
    assert {e.path: e.digest for e in v1.manifest} == {
        e.path: e.digest for e in store.add("d", source_files(project.root / "datasets/d")).manifest
    }
    assert project.head == head  # the folder was left as version 1 had it
    assert not list((project.root / ".mlops/tmp").iterdir())


def test_file_changed_while_adding_a_first_version_leaves_no_trace(store: DvcDatasetStore, project: Project, data: Path) -> None:
    head = project.head
    files = source_files(data)
    (data / "images/cat.bin").write_bytes(b"different size")
    with pytest.raises(IntegrityError, match="changed while it was being added"):
        store.add("d", files)
    assert project.head == head
    assert not (project.root / "datasets").exists() or not any((project.root / "datasets").iterdir())
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""


def test_file_deleted_while_adding_is_refused(store: DvcDatasetStore, project: Project, data: Path) -> None:
    files = source_files(data)
    (data / "empty.txt").unlink()
    with pytest.raises(InvalidValue, match="disappeared"):
        store.add("d", files)
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""


def test_bad_names_and_paths_are_refused(store: DvcDatasetStore, data: Path) -> None:
    for name in ["../escape", "a/b", "", "."]:
        with pytest.raises(InvalidName):
            store.add(name, source_files(data))
    bad = SourceFile.of(data / "train.csv", "../train.csv")
    with pytest.raises(InvalidName):
        store.add("d", [bad])


@pytest.mark.parametrize("path", [".dvcignore", "a/.git/HEAD", "x/.dvc/config", "dvc.yaml", "sub/model.dvc"])
def test_names_dvc_cannot_keep_in_a_folder_are_refused_before_anything_changes(
    store: DvcDatasetStore, project: Project, tmp_path: Path, path: str
) -> None:
    folder = write_tree(tmp_path / "odd", {"ok.txt": b"ok", path: b"x"})
    head = project.head
    with pytest.raises(InvalidValue, match="cannot hold"):
        store.add("d", source_files(folder))
    assert project.head == head
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""


def test_dvcignored_files_are_a_config_error(store: DvcDatasetStore, project: Project, data: Path) -> None:
    (project.root / ".dvcignore").write_text("*.csv\n")
    project.git("commit", "-qam", "ignore csv")
    head = project.head
    with pytest.raises(ConfigError, match=r"\.dvcignore"):
        store.add("d", source_files(data))
    assert project.head == head
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""


def test_missing_git_identity_is_a_config_error(project: Project, data: Path) -> None:
    project.git("config", "--unset", "user.name")
    project.git("config", "--unset", "user.email")
    project.git("config", "user.useConfigOnly", "true")
    store = DvcDatasetStore(project.root)
    try:
        with pytest.raises(ConfigError, match=r"git config user\.name"):
            store.add("d", source_files(data))
    finally:
        store.close()


def test_failing_push_records_nothing(store: DvcDatasetStore, project: Project, data: Path) -> None:
    from mlops_sdk.errors import BackendError

    head = project.head
    project.remote.rmdir()
    project.remote.write_text("a file where the remote folder should be")
    with pytest.raises(BackendError, match="could not push"):
        store.add("d", source_files(data))
    assert project.head == head
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""


# -- reading back -------------------------------------------------------------------------
def test_corrupted_cache_file_is_never_returned(store: DvcDatasetStore, project: Project, data: Path, tmp_path: Path) -> None:
    result = store.add("d", source_files(data))
    entry = result.manifest.get("train.csv")
    cached = project.cache_file(entry.digest)
    os.chmod(cached, 0o644)
    cached.write_bytes(b"id,x\n1,0.5\n2,0.26\n")  # same size, one byte different
    dest = tmp_path / "out"
    for link in ("auto", "copy", "hardlink", "symlink"):
        with pytest.raises(IntegrityError, match=str(cached)):
            store.materialize(result.manifest, [entry], dest / link, link=link, source=result.source)
        assert not (dest / link / "train.csv").exists()
        assert not [p for p in (dest / link).rglob("*") if p.is_file()] if (dest / link).exists() else True
    with pytest.raises(IntegrityError, match=str(cached)):
        store.open(result.manifest, entry, source=result.source)


def test_content_missing_from_the_cache_comes_from_the_remote(
    store: DvcDatasetStore, project: Project, data: Path, tmp_path: Path
) -> None:
    result = store.add("d", source_files(data))
    entry = result.manifest.get("images/cat.bin")
    project.cache_file(entry.digest).unlink()
    assert store.missing(result.manifest, source=result.source) == []
    store.materialize(result.manifest, list(result.manifest), tmp_path / "out", source=result.source)
    assert read_tree(tmp_path / "out") == read_tree(data)

    # corrupted in the remote as well: refused, naming where it came from
    remote_file = project.remote_file(entry.digest)
    os.chmod(remote_file, 0o644)
    remote_file.write_bytes(b"garbage")
    with pytest.raises(IntegrityError, match=r"images/cat\.bin"):
        store.materialize(result.manifest, [entry], tmp_path / "out2", source=result.source)
    assert not (tmp_path / "out2/images/cat.bin").exists()

    remote_file.unlink()
    assert store.missing(result.manifest, source=result.source) == [entry]
    with pytest.raises(ObjectNotFound, match=entry.digest):
        store.materialize(result.manifest, [entry], tmp_path / "out3", source=result.source)


def test_link_modes(store: DvcDatasetStore, data: Path, tmp_path: Path) -> None:
    result = store.add("d", source_files(data))
    for link in ("auto", "copy", "hardlink", "symlink"):
        store.materialize(result.manifest, list(result.manifest), tmp_path / link, link=link, source=result.source)
        assert read_tree(tmp_path / link) == read_tree(data)
    with pytest.raises(InvalidValue, match="link mode"):
        store.materialize(result.manifest, list(result.manifest), tmp_path / "x", link="teleport", source=result.source)


def test_reading_without_a_source_uses_the_repository_cache(store: DvcDatasetStore, data: Path, tmp_path: Path) -> None:
    result = store.add("d", source_files(data))
    store.materialize(result.manifest, list(result.manifest), tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(data)
    assert store.missing(result.manifest) == []


# -- DVC's own commands on what the SDK added ---------------------------------------------
def test_dvc_pull_in_a_fresh_clone_and_dvc_checkout_work(store: DvcDatasetStore, project: Project, data: Path) -> None:
    store.add("customers", source_files(data), message="v1")
    clone = project.clone()
    assert not (clone.root / "datasets/customers").exists()
    clone.dvc("pull", "-q")
    assert read_tree(clone.root / "datasets/customers") == read_tree(data)

    # a version added in the clone names where the repository can be cloned from
    theirs = DvcDatasetStore(clone.root)
    try:
        result = theirs.add("customers", source_files(data), message="same data, from the clone")
    finally:
        theirs.close()
    assert result.source["url"] == str(project.root) and result.source["repo"] == str(clone.root.resolve())

    # in the original repository: delete the folder, `dvc checkout` restores it from the cache
    run(project.root, "rm", "-rf", "datasets/customers")
    project.dvc("checkout", "-q")
    assert read_tree(project.root / "datasets/customers") == read_tree(data)


def test_concurrent_adds_to_one_repository_are_serialized(project: Project, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    stores = [DvcDatasetStore(project.root) for _ in range(3)]
    folders = [write_tree(tmp_path / f"src{i}", {f"f{i}.txt": f"content {i}".encode()}) for i in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda i: stores[i].add(f"d{i}", source_files(folders[i])), range(3)))
    finally:
        for s in stores:
            s.close()
    subjects = project.git("log", "--format=%s").splitlines()
    assert sorted(subjects[:3]) == ["mlops: dataset d0", "mlops: dataset d1", "mlops: dataset d2"]
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""
    for i, result in enumerate(results):
        assert project.git("cat-file", "-e", f"{result.source['rev']}:datasets/d{i}.dvc") == ""
