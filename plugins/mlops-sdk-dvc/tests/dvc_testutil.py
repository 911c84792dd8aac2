"""Helpers for the DVC plugin's tests: a Git + DVC project, running git and dvc, file trees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from mlops_sdk.storage.datasets import SourceFile


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a program (``git ...`` or ``dvc ...``, DVC from this interpreter)."""
    command = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else list(args)
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed in {cwd} ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@attrs.frozen
class Project:
    """A Git repository with a DVC project (``root``) and its DVC remote folder (``remote``)."""

    root: Path
    remote: Path

    def git(self, *args: str, check: bool = True) -> str:
        return run(self.root, "git", *args, check=check).stdout.strip()

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(self.root, "dvc", *args, check=check)

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def clone(self, name: str = "clone") -> Project:
        """``git clone`` next to the repository (same DVC remote)."""
        dest = self.root.parent / name
        run(self.root.parent, "git", "clone", "-q", str(self.root), str(dest))
        run(dest, "git", "config", "user.name", "Test")
        run(dest, "git", "config", "user.email", "test@example.com")
        return Project(dest, self.remote)

    def cache_file(self, md5: str) -> Path:
        return self.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    def remote_file(self, md5: str) -> Path:
        return self.remote / "files" / "md5" / md5[:2] / md5[2:]


def write_tree(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def read_tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def source_files(folder: Path) -> list[SourceFile]:
    return [SourceFile.of(p, p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*")) if p.is_file()]


def quiet_tools(monkeypatch: pytest.MonkeyPatch, base: Path) -> None:
    """No user or system Git/DVC configuration, no analytics; branch ``main``."""
    config = base / "tool-config"
    (config / "dvc-global").mkdir(parents=True, exist_ok=True)
    (config / "dvc-system").mkdir(parents=True, exist_ok=True)
    gitconfig = config / "gitconfig"
    gitconfig.write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(config / "dvc-global"))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(config / "dvc-system"))
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(config / "dvc-site-cache"))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "1")
