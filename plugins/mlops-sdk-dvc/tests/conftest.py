"""Fixtures: real Git repositories with real DVC projects and a local-folder DVC remote.

A template project is made once per test session (per xdist worker) with the
real ``git`` and ``dvc`` programs: ``git init``, ``dvc init``, ``dvc remote add
-d`` of a sibling folder, committed. Each test gets a copy of it, so tests are
independent and do not pay for DVC's start-up each time. The remote is named
by a relative path (``../../remote`` from ``.dvc/``), so a ``git clone``
placed next to the repository uses the same remote folder.

Only the built-in plugins and this one are loaded (``MLOPS_PLUGINS=dvc``),
and Git and DVC read no user or system configuration.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dvc_testutil import Project, quiet_tools, run, write_tree
from mlops_sdk.testing.isolation import isolated

SLOW = {"test_random_trees_round_trip"}  # hypothesis: many adds, each a DVC add + push + git commit


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here and getattr(item, "originalname", "") in SLOW:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Built-ins and this plugin only; no user Git/DVC configuration; no analytics."""
    quiet_tools(monkeypatch, tmp_path_factory.getbasetemp())
    with isolated(monkeypatch, plugins="dvc"):
        yield


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``git init`` + ``dvc init`` + ``dvc remote add -d``, committed: made once, copied per test."""
    base = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as mp:
        quiet_tools(mp, tmp_path_factory.getbasetemp())
        repo, remote = base / "repo", base / "remote"
        repo.mkdir()
        remote.mkdir()
        run(repo, "git", "init", "-q")
        run(repo, "git", "config", "user.name", "Test")
        run(repo, "git", "config", "user.email", "test@example.com")
        run(repo, "dvc", "init", "-q")
        run(repo, "dvc", "config", "core.check_update", "false")
        run(repo, "dvc", "remote", "add", "-d", "storage", "../remote")  # DVC keeps it relative to .dvc/
        (repo / "README.md").write_text("a project\n")
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-q", "-m", "init: git + dvc, local remote")
    return base


@pytest.fixture
def project(_template: Path, tmp_path: Path) -> Project:
    """A fresh copy of the template: a Git repository with a DVC project and an empty remote."""
    base = tmp_path / "p"
    shutil.copytree(_template, base, symlinks=True)
    return Project(base / "repo", base / "remote")


@pytest.fixture
def bare_project(tmp_path: Path) -> Project:
    """``git init`` + ``dvc init`` with no remote and no commit yet (what a new user has)."""
    repo = tmp_path / "fresh"
    repo.mkdir()
    run(repo, "git", "init", "-q")
    run(repo, "git", "config", "user.name", "Test")
    run(repo, "git", "config", "user.email", "test@example.com")
    run(repo, "dvc", "init", "-q")
    return Project(repo, tmp_path / "no-remote")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A folder of files to add: text, binary, empty, nested, a name with a space."""
    return write_tree(
        tmp_path / "data",
        {
            "train.csv": b"id,x\n1,0.5\n2,0.25\n",
            "images/cat.bin": os.urandom(70_000),
            "images/nested/deep.bin": bytes(range(256)) * 40,
            "empty.txt": b"",
            "with space.txt": b"spaces are fine\n",
        },
    )
