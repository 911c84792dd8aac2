"""The ``dvc`` source: data that DVC itself tracks (``dvc add`` by the CLI), read at a pinned commit."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from dvc_testutil import Project, quiet_tools, read_tree, write_tree
from mlops_sdk.errors import (
    ConfigError,
    IntegrityError,
    InvalidValue,
    NotFound,
    ObjectNotFound,
    VersionNotFound,
)

from mlops_sdk_dvc.source import DvcSource

V1 = {"a.csv": b"x\n1\n", "sub/b.bin": os.urandom(5000), "sub/c.txt": b"c\n"}
V2 = {"a.csv": b"x\n1\n2\n", "sub/b.bin": V1["sub/b.bin"], "new.txt": b"new\n"}
MODEL = b"model weights v1"


@attrs.frozen
class Theirs:
    """A repository where DVC tracked ``data/`` (two tagged versions) and ``model.pkl``."""

    project: Project
    v1: str
    v2: str


def _their_repo(project: Project) -> Theirs:
    write_tree(project.root / "data", V1)
    (project.root / "model.pkl").write_bytes(MODEL)
    project.dvc("add", "-q", "data", "model.pkl")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "data v1")
    project.git("tag", "v1")
    project.dvc("push", "-q")
    v1 = project.head
    shutil.rmtree(project.root / "data")
    write_tree(project.root / "data", V2)
    project.dvc("add", "-q", "data")
    project.git("commit", "-q", "-am", "data v2")
    project.dvc("push", "-q")  # the remote has both versions (not --all-commits: DVC issue 10054)
    return Theirs(project, v1, project.head)


@pytest.fixture(scope="module")
def _theirs_template(_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("theirs")
    shutil.copytree(_template, base / "p", symlinks=True)
    with pytest.MonkeyPatch.context() as mp:
        quiet_tools(mp, tmp_path_factory.getbasetemp())
        _their_repo(Project(base / "p/repo", base / "p/remote"))
    return base / "p"


@pytest.fixture
def theirs(_theirs_template: Path, tmp_path: Path) -> Theirs:
    """A private copy of the repository (tests may corrupt its cache or remote)."""
    base = tmp_path / "theirs"
    shutil.copytree(_theirs_template, base, symlinks=True)
    project = Project(base / "repo", base / "remote")
    return Theirs(project, project.git("rev-parse", "v1"), project.head)


@pytest.fixture
def source() -> Iterator[DvcSource]:
    src = DvcSource()
    yield src
    src.close()


def test_resolve_a_folder_at_head(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    manifest, src = source.resolve(str(theirs.project.root), "data")
    assert manifest.algorithm == "md5"
    assert {e.path: e.size for e in manifest} == {p: len(b) for p, b in V2.items()}
    assert src["type"] == "dvc" and src["repo"] == str(theirs.project.root.resolve())
    assert src["rev"] == theirs.v2 and src["path"] == "data" and src["md5"].endswith(".dir")
    source.materialize(manifest, list(manifest), tmp_path / "out", source=src)
    assert read_tree(tmp_path / "out") == V2


def test_resolve_at_an_older_revision(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    old, old_src = source.resolve(str(theirs.project.root), "data", rev="v1")
    new, new_src = source.resolve(str(theirs.project.root), "data", rev=theirs.v2[:10])
    assert old_src["rev"] == theirs.v1 and new_src["rev"] == theirs.v2
    assert old_src["md5"] != new_src["md5"]
    assert {e.path for e in old} == set(V1)
    assert old.get("sub/b.bin") == new.get("sub/b.bin")
    source.materialize(old, list(old), tmp_path / "v1", source=old_src)
    assert read_tree(tmp_path / "v1") == V1
    with source.open(old, old.get("a.csv"), source=old_src) as f:
        assert f.read() == V1["a.csv"]
    # the working tree is not what is read: a pinned commit is
    assert read_tree(theirs.project.root / "data") == V2


def test_resolve_a_single_file_gives_one_entry_named_by_its_basename(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    manifest, src = source.resolve(str(theirs.project.root), "./model.pkl", rev="v1")
    assert [(e.path, e.size) for e in manifest] == [("model.pkl", len(MODEL))]
    assert src["path"] == "model.pkl" and not src["md5"].endswith(".dir")
    source.materialize(manifest, list(manifest), tmp_path / "out", source=src)
    assert (tmp_path / "out/model.pkl").read_bytes() == MODEL


def test_an_absolute_path_inside_a_local_repository(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    manifest, src = source.resolve(str(theirs.project.root), str(theirs.project.root / "data"), rev="v1")
    assert src["path"] == "data" and {e.path for e in manifest} == set(V1)
    with pytest.raises(InvalidValue, match="not inside"):
        source.resolve(str(theirs.project.root), str(tmp_path), rev="v1")


def test_resolve_a_folder_inside_a_tracked_folder(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    manifest, src = source.resolve(str(theirs.project.root), "data/sub", rev="v1")
    assert {e.path for e in manifest} == {"b.bin", "c.txt"}
    source.materialize(manifest, list(manifest), tmp_path / "out", source=src)
    assert read_tree(tmp_path / "out") == {"b.bin": V1["sub/b.bin"], "c.txt": V1["sub/c.txt"]}


def test_unknown_revision_and_path_are_not_found_naming_repo_path_and_rev(source: DvcSource, theirs: Theirs) -> None:
    repo = str(theirs.project.root.resolve())
    with pytest.raises(VersionNotFound) as exc:
        source.resolve(repo, "data", rev="no-such-tag")
    assert repo in str(exc.value) and "'data'" in str(exc.value) and "no-such-tag" in str(exc.value)
    with pytest.raises(ObjectNotFound) as exc2:
        source.resolve(repo, "nothing/here", rev="v1")
    assert repo in str(exc2.value) and "nothing/here" in str(exc2.value) and theirs.v1[:12] in str(exc2.value)
    assert isinstance(exc.value, NotFound) and isinstance(exc2.value, NotFound)


def test_bad_locations_and_arguments(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="tracked by Git, not DVC"):
        source.resolve(str(theirs.project.root), "README.md")
    with pytest.raises(ObjectNotFound, match="does not exist"):
        source.resolve(str(tmp_path / "nowhere"), "data")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match="not in a Git repository"):
        source.resolve(str(tmp_path / "plain"), "data")
    with pytest.raises(InvalidValue):
        source.resolve(str(theirs.project.root), ".")
    with pytest.raises(InvalidValue):
        source.resolve(str(theirs.project.root), "data", rev="")
    with pytest.raises(InvalidValue):
        source.materialize(*source.resolve(str(theirs.project.root), "data")[:1], [], tmp_path / "x", source={"type": "s3"})


def test_a_clone_without_the_data_reads_from_the_remote(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    clone = theirs.project.clone("clone-no-pull")
    assert not (clone.root / ".dvc/cache").exists()
    manifest, src = source.resolve(str(clone.root), "data", rev="v1")  # sizes come from the remote
    assert {e.path: e.size for e in manifest} == {p: len(b) for p, b in V1.items()}
    assert source.missing(manifest, source=src) == []
    source.materialize(manifest, list(manifest), tmp_path / "out", source=src)
    assert read_tree(tmp_path / "out") == V1
    with source.open(manifest, manifest.get("sub/c.txt"), source=src) as f:
        assert f.read() == V1["sub/c.txt"]

    gone = manifest.get("a.csv")
    theirs.project.remote_file(gone.digest).unlink()
    assert source.missing(manifest, source=src) == [gone]


def test_a_corrupted_cache_file_raises_naming_it(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    manifest, src = source.resolve(str(theirs.project.root), "data")
    entry = manifest.get("sub/b.bin")
    cached = theirs.project.cache_file(entry.digest)
    os.chmod(cached, 0o644)
    with open(cached, "r+b") as f:
        f.write(b"\0")
    with pytest.raises(IntegrityError, match=str(cached)):
        source.materialize(manifest, list(manifest), tmp_path / "out", source=src)
    assert not (tmp_path / "out/sub/b.bin").exists()
    with pytest.raises(IntegrityError, match=str(cached)):
        source.open(manifest, entry, source=src)


def test_a_git_url_is_cloned_and_read(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    url = theirs.project.root.resolve().as_uri()  # file:///…: read like any remote Git URL
    manifest, src = source.resolve(url, "data", rev="v1")
    assert src["repo"] == url and src["rev"] == theirs.v1
    source.materialize(manifest, list(manifest), tmp_path / "out", source=src)
    assert read_tree(tmp_path / "out") == V1


def test_a_source_whose_checkout_is_elsewhere(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    manifest, src = source.resolve(str(theirs.project.root), "data", rev="v1")
    moved = {**src, "repo": str(tmp_path / "not-on-this-machine")}
    with pytest.raises(ObjectNotFound, match="not on this machine"):
        source.materialize(manifest, list(manifest), tmp_path / "out", source=moved)
    with_url = {**moved, "url": theirs.project.root.resolve().as_uri()}
    source.materialize(manifest, list(manifest), tmp_path / "out", source=with_url)
    assert read_tree(tmp_path / "out") == V1


def test_a_commit_that_is_gone_is_version_not_found(source: DvcSource, theirs: Theirs, tmp_path: Path) -> None:
    manifest, src = source.resolve(str(theirs.project.root), "data", rev="v1")
    other = DvcSource()
    try:
        with pytest.raises(VersionNotFound, match=r"0{40}"):
            other.materialize(manifest, list(manifest), tmp_path / "out", source={**src, "rev": "0" * 40})
    finally:
        other.close()


def test_reading_is_independent_of_the_working_directory(source: DvcSource, theirs: Theirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(theirs.project.root.parent)
    manifest, src = source.resolve("repo", "data", rev="v1")
    assert src["repo"] == str(theirs.project.root.resolve())
    monkeypatch.chdir(tmp_path)
    fresh = DvcSource()
    try:
        fresh.materialize(manifest, list(manifest), tmp_path / "out", source=src)
    finally:
        fresh.close()
    assert read_tree(tmp_path / "out") == V1
