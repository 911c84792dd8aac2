"""End to end through the public API: a workspace on ``dvc://.``, and ``Dataset.from_dvc`` with lineage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlops_sdk as mlops
import pytest
from dvc_testutil import Project, read_tree, write_tree
from mlops_sdk.errors import VersionNotFound


@pytest.fixture
def ws(project: Project) -> Iterator[mlops.Workspace]:
    """A workspace at the repository's root whose datasets DVC keeps."""
    workspace = mlops.Workspace.open(project.root, storage="dvc://.")
    yield workspace
    workspace.close()


def test_dataset_versions_in_a_dvc_workspace(ws: mlops.Workspace, project: Project, data: Path, tmp_path: Path) -> None:
    ds = ws.dataset("customers")
    v1 = ds.add(data, message="Nov export")
    assert v1.version == 1
    assert v1.source is not None and v1.source["type"] == "dvc" and v1.source["rev"] == project.head
    assert {f.path: f.size for f in v1.files()} == {p: len(b) for p, b in read_tree(data).items()}
    assert project.git("log", "-1", "--format=%s") == "mlops: dataset customers: Nov export"
    # the workspace's own files (.mlops/) stay out of Git; the tree is clean
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""

    v1.checkout(tmp_path / "dest")
    assert read_tree(tmp_path / "dest") == read_tree(data)
    assert v1.read_bytes("images/nested/deep.bin") == (data / "images/nested/deep.bin").read_bytes()

    # the same content again is the same version; a change is a new one, with a diff
    assert ds.add(data).version == 1
    (data / "train.csv").write_bytes(b"id,x\n1,0.75\n")
    (data / "empty.txt").unlink()
    v2 = ds.add(data, message="fix")
    assert v2.version == 2 and v2.source["rev"] == project.head != v1.source["rev"]
    change = v2.diff(v1)
    assert [e.path for e in change.removed] == ["empty.txt"]
    assert [old.path for old, _new in change.modified] == ["train.csv"]

    # checking out v1 again over v2's files restores it exactly
    v2.checkout(tmp_path / "dest")
    assert read_tree(tmp_path / "dest") == read_tree(data)
    ds.version(1).checkout(tmp_path / "dest")
    assert (tmp_path / "dest/empty.txt").read_bytes() == b""
    assert (tmp_path / "dest/train.csv").read_bytes() == b"id,x\n1,0.5\n2,0.25\n"

    # a run that used the version is its lineage
    with ws.experiment("churn").start_run(name="rf") as run:
        run.use_dataset(ds.version(1))
    assert [r.id for r in ds.version(1).lineage().runs] == [run.id]


def test_from_dvc_then_use_dataset_records_lineage(project: Project, tmp_path: Path) -> None:
    # data that DVC itself tracks in the repository (added with the dvc command)
    write_tree(project.root / "raw", {"part-0.csv": b"a,b\n1,2\n", "part-1.csv": b"a,b\n3,4\n"})
    project.dvc("add", "-q", "raw")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "raw data")
    project.git("tag", "raw-v1")
    (project.root / "raw/part-1.csv").write_bytes(b"a,b\n3,5\n")
    project.dvc("add", "-q", "raw")
    project.git("commit", "-q", "-am", "raw data v2")
    project.dvc("push", "-q")

    ws = mlops.Workspace.open(tmp_path / "elsewhere")  # default storage: DVC only reads here
    try:
        dsv = mlops.Dataset.from_dvc(project.root, "raw", rev="raw-v1")
        assert dsv.version is None and dsv.name == "raw"
        assert dsv.source["rev"] == project.git("rev-parse", "raw-v1")
        assert dsv.read_bytes("part-1.csv") == b"a,b\n3,4\n"
        dsv.checkout(tmp_path / "raw-v1")
        assert read_tree(tmp_path / "raw-v1") == {"part-0.csv": b"a,b\n1,2\n", "part-1.csv": b"a,b\n3,4\n"}

        with ws.experiment("prep").start_run(name="clean") as run:
            registered = run.use_dataset(dsv)
        assert registered.version == 1 and registered.source == dsv.source
        assert [r.id for r in registered.lineage().runs] == [run.id]
        assert [d.version for d in ws.get_run(run.id).datasets()] == [1]

        # later, from the record alone: read through the dvc source at the pinned commit
        again = ws.dataset("raw").version(1)
        assert again.read_bytes("part-1.csv") == b"a,b\n3,4\n"
        latest = mlops.Dataset.from_dvc(project.root, "raw")
        assert latest.read_bytes("part-1.csv") == b"a,b\n3,5\n"
        assert latest.id != again.id

        with pytest.raises(VersionNotFound, match="no-such-rev"):
            mlops.Dataset.from_dvc(project.root, "raw", rev="no-such-rev")
    finally:
        ws.close()
