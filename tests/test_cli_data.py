"""``mlops data``, ``mlops gc`` and ``mlops verify`` over real folders and a real store."""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import mlops_sdk as mlops
from mlops_sdk.cli import cli
from mlops_sdk.cli.data import BIG_FILES, LINK_CHOICES, fmt_size

DOCS = Path(__file__).resolve().parent.parent / "docs"
VERSION_KEYS = {"name", "version", "id", "message", "tags", "created_at", "files", "size", "source"}


def _strict_json(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"invalid JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def invoke(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-w", str(root), *args], prog_name="mlops")


def ok(root: Path, *args: str) -> Result:
    result = invoke(root, *args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def ok_json(root: Path, *args: str) -> Any:
    return _strict_json(ok(root, *args, "--json").stdout)


def assert_error(result: Result, *fragments: str) -> None:
    """Exit 1, nothing on stdout, one ``error: ...`` line on stderr naming the problem."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""


def write(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path, with its text."""
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def snapshot(folder: Path) -> dict[str, tuple[str, bytes, int, int]]:
    """Everything under ``folder``: kind, content, mtime and inode of each entry."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        kind = "dir" if p.is_dir() else "link" if p.is_symlink() else "file"
        data = p.read_bytes() if kind == "file" else b""
        out[p.relative_to(folder).as_posix()] = (kind, data, st.st_mtime_ns, st.st_ino)
    return out


V1 = {"a.csv": "id,x\n1,2\n", "sub/b.txt": "hello\n", "same.txt": "same\n"}
V2 = {"a.csv": "id,x\n1,2\n3,4\n", "c.txt": "new\n", "same.txt": "same\n"}
SIZE1 = sum(len(text) for text in V1.values())  # 20 bytes
SIZE2 = sum(len(text) for text in V2.values())  # 22 bytes


@pytest.fixture
def two_versions(workspace: mlops.Workspace, tmp_path: Path) -> Path:
    """``customers`` v1 (V1) and v2 (V2), added through the CLI from tmp_path/src."""
    src = write(tmp_path / "src", V1)
    ok(tmp_path, "data", "add", "customers", str(src), "-m", "Nov export", "--tag", "team=growth")
    shutil.rmtree(src)
    write(src, V2)
    ok(tmp_path, "data", "add", "customers", str(src), "-m", "Dec export")
    return src


# -- add ---------------------------------------------------------------------------------
def test_add_prints_version_and_what_it_stored(workspace: mlops.Workspace, tmp_path: Path) -> None:
    src = write(tmp_path / "src", V1)
    for path in src.rglob("*"):  # written an hour ago: the stat cache trusts only files not just written
        if path.is_file():
            os.utime(path, (path.stat().st_mtime - 3600,) * 2)
    first = ok(
        tmp_path, "data", "add", "customers", str(src), "-m", "Nov export"
    ).stdout.splitlines()
    dsv = workspace.dataset("customers").latest
    assert first[0] == f"added customers v1 ({dsv.id[:12]}): 3 files, {SIZE1} B"
    assert first[1] == f"hashed 3 files, stored 3 new ({SIZE1} B)"

    again = ok(tmp_path, "data", "add", "customers", str(src)).stdout.splitlines()
    assert again[0] == f"unchanged: same content as v1 ({dsv.id[:12]}): 3 files, {SIZE1} B"
    assert again[1] == "hashed 0 files, stored 0 new (0 B)"  # the stat cache knew every file

    (src / "a.csv").write_text("id,x\n9,9\n")
    third = ok(tmp_path, "data", "add", "customers", str(src)).stdout.splitlines()
    assert third[0].startswith("added customers v2 (")
    assert third[1] == "hashed 1 file, stored 1 new (9 B)"
    assert [v.version for v in workspace.dataset("customers").versions()] == [1, 2]


def test_add_json_tags_message_and_several_paths(
    workspace: mlops.Workspace, tmp_path: Path
) -> None:
    write(tmp_path / "src", {"train.csv": "a\n", "images/1.png": "png"})
    data = ok_json(
        tmp_path,
        "data", "add", "mixed",
        str(tmp_path / "src" / "train.csv"), str(tmp_path / "src" / "images"),
        "-m", "two paths", "--tag", "source=crm", "--tag", "note=a=b",
    )  # fmt: skip
    assert set(data) == VERSION_KEYS | {"created", "hashed_files", "stored_files", "stored_bytes"}
    assert data["name"] == "mixed" and data["version"] == 1
    assert data["message"] == "two paths"
    assert data["tags"] == {"source": "crm", "note": "a=b"}
    assert data["files"] == 2 and data["size"] == 5
    assert data["created"] is True
    assert (data["hashed_files"], data["stored_files"], data["stored_bytes"]) == (2, 2, 5)
    assert data["source"] is None
    dsv = workspace.dataset("mixed").latest
    assert data["id"] == dsv.id
    assert [f.path for f in dsv.files()] == ["images/1.png", "train.csv"]

    again = ok_json(
        tmp_path,
        "data",
        "add",
        "mixed",
        str(tmp_path / "src" / "train.csv"),
        str(tmp_path / "src" / "images"),
    )
    assert again["created"] is False and again["version"] == 1 and again["id"] == dsv.id


def test_add_bad_input(workspace: mlops.Workspace, tmp_path: Path) -> None:
    assert_error(
        invoke(tmp_path, "data", "add", "customers", str(tmp_path / "nope")), "does not exist"
    )
    (tmp_path / "empty").mkdir()
    assert_error(
        invoke(tmp_path, "data", "add", "customers", str(tmp_path / "empty")), "holds no files"
    )
    write(tmp_path / "src", V1)
    assert_error(invoke(tmp_path, "data", "add", "a/b", str(tmp_path / "src")), "path separator")
    assert_error(
        invoke(tmp_path, "data", "add", "customers", str(tmp_path / "src"), "--tag", "../x=1"),
        "tag key",
    )
    # a good path next to a missing one: checked before anything is stored
    assert_error(
        invoke(tmp_path, "data", "add", "customers", str(tmp_path / "src"), str(tmp_path / "gone")),
        "does not exist",
    )
    for bad_tag in ("novalue", "=v"):
        usage = invoke(
            tmp_path, "data", "add", "customers", str(tmp_path / "src"), "--tag", bad_tag
        )
        assert usage.exit_code == 2 and "KEY=VALUE" in usage.stderr
    twice = invoke(
        tmp_path, "data", "add", "c", str(tmp_path / "src"), "--tag", "k=1", "--tag", "k=2"
    )
    assert twice.exit_code == 2 and "twice" in twice.stderr
    assert invoke(tmp_path, "data", "add", "customers").exit_code == 2  # no path
    assert ok_json(tmp_path, "data", "ls") == []  # nothing was recorded
    assert not list((tmp_path / ".mlops").rglob("objects/*/*"))


# -- ls, versions ------------------------------------------------------------------------
def test_ls(two_versions: Path, workspace: mlops.Workspace, tmp_path: Path) -> None:
    write(tmp_path / "iris", {"iris.csv": "x" * 2048})
    ok(tmp_path, "data", "add", "iris", str(tmp_path / "iris"))
    lines = ok(tmp_path, "data", "ls").stdout.splitlines()
    assert lines[0].split() == ["name", "versions", "latest", "files", "size", "updated"]
    assert re.match(
        rf"\s*customers\s+2\s+v2\s+3\s+{SIZE2} B\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s*$", lines[2]
    )
    assert re.match(r"\s*iris\s+1\s+v1\s+1\s+2\.0 KiB\s", lines[3])

    data = ok_json(tmp_path, "data", "ls")
    assert [d["name"] for d in data] == ["customers", "iris"]
    latest = workspace.dataset("customers").latest
    assert data[0] == {
        "name": "customers",
        "versions": 2,
        "latest": 2,
        "latest_id": latest.id,
        "files": 3,
        "size": SIZE2,
        "updated_at": latest.created_at,
    }


def test_ls_empty(workspace: mlops.Workspace, tmp_path: Path) -> None:
    result = ok(tmp_path, "data", "ls")
    assert result.stdout == "" and "no datasets" in result.stderr
    assert ok_json(tmp_path, "data", "ls") == []


def test_versions(two_versions: Path, workspace: mlops.Workspace, tmp_path: Path) -> None:
    v1, v2 = workspace.dataset("customers").versions()
    lines = ok(tmp_path, "data", "versions", "customers").stdout.splitlines()
    assert lines[0].split() == ["version", "id", "created", "files", "size", "message", "tags"]
    assert re.match(
        rf"\s*v1\s+{v1.id[:12]}\s+\d{{4}}-\S+ \S+\s+3\s+{SIZE1} B\s+Nov export\s+team=growth\s*$",
        lines[2],
    )
    assert re.match(rf"\s*v2\s+{v2.id[:12]}\s+\S+ \S+\s+3\s+{SIZE2} B\s+Dec export\s*$", lines[3])

    data = ok_json(tmp_path, "data", "versions", "customers")
    assert [d["version"] for d in data] == [1, 2]
    assert all(set(d) == VERSION_KEYS for d in data)
    assert data[0]["id"] == v1.id and data[0]["tags"] == {"team": "growth"}
    assert data[0]["message"] == "Nov export" and data[0]["files"] == 3 and data[0]["size"] == SIZE1
    assert data[1]["created_at"] >= data[0]["created_at"] > 0


# -- diff --------------------------------------------------------------------------------
def test_diff(two_versions: Path, workspace: mlops.Workspace, tmp_path: Path) -> None:
    v1, v2 = workspace.dataset("customers").versions()
    out = ok(tmp_path, "data", "diff", "customers", "1", "2").stdout.splitlines()
    assert out[0] == f"customers v1 ({v1.id[:12]}) -> v2 ({v2.id[:12]})"
    rows = {line.split()[1]: line.split()[0] for line in out[3:-1]}
    assert rows == {"a.csv": "modified", "c.txt": "added", "sub/b.txt": "removed"}
    assert re.search(r"modified\s+a\.csv\s+9 B -> 13 B", "\n".join(out))
    assert out[-1] == "1 added, 1 removed, 1 modified, 1 unchanged"

    data = ok_json(tmp_path, "data", "diff", "customers", "v1", "latest")
    assert data["name"] == "customers"
    assert data["from"] == {"version": 1, "id": v1.id} and data["to"] == {"version": 2, "id": v2.id}
    assert [e["path"] for e in data["added"]] == ["c.txt"]
    assert [e["path"] for e in data["removed"]] == ["sub/b.txt"]
    [mod] = data["modified"]
    assert mod["path"] == "a.csv" and (mod["old"]["size"], mod["new"]["size"]) == (9, 13)
    assert mod["new"]["digest"] == v2.manifest.get("a.csv").digest  # type: ignore[union-attr]
    assert data["unchanged"] == 1

    backwards = ok_json(tmp_path, "data", "diff", "customers", v2.id[:8], v1.id)
    assert [e["path"] for e in backwards["added"]] == ["sub/b.txt"]
    same = ok(tmp_path, "data", "diff", "customers", "2", "2").stdout.splitlines()
    assert same[-1] == "0 added, 0 removed, 0 modified, 3 unchanged"


def test_unknown_dataset_or_version(two_versions: Path, tmp_path: Path) -> None:
    assert_error(invoke(tmp_path, "data", "versions", "nope"), "no dataset called 'nope'")
    assert_error(invoke(tmp_path, "data", "versions", "nope", "--json"), "no dataset called 'nope'")
    assert_error(invoke(tmp_path, "data", "diff", "nope", "1", "2"), "no dataset called 'nope'")
    assert_error(invoke(tmp_path, "data", "diff", "customers", "1", "9"), "has no version 9")
    assert_error(invoke(tmp_path, "data", "diff", "customers", "v0", "1"), "has no version 0")
    assert_error(invoke(tmp_path, "data", "diff", "customers", "1", "zzz"), "'zzz'")
    assert_error(invoke(tmp_path, "data", "diff", "customers", "1", "ffffff"), "'ffffff'")
    assert_error(
        invoke(tmp_path, "data", "checkout", "nope", str(tmp_path / "d")),
        "no dataset called 'nope'",
    )
    assert_error(
        invoke(tmp_path, "data", "checkout", "customers@7", str(tmp_path / "d")), "has no version 7"
    )
    assert_error(invoke(tmp_path, "data", "versions", "a/b"), "path separator")
    assert not (tmp_path / "d").exists()
    usage = invoke(tmp_path, "data", "checkout", "customers@", str(tmp_path / "d"))
    assert usage.exit_code == 2 and "give a version" in usage.stderr


# -- checkout ----------------------------------------------------------------------------
def test_checkout(two_versions: Path, workspace: mlops.Workspace, tmp_path: Path) -> None:
    v1, v2 = workspace.dataset("customers").versions()
    dest = tmp_path / "work"
    out = ok(tmp_path, "data", "checkout", "customers@1", str(dest)).stdout
    assert (
        out
        == f"checked out customers v1 ({v1.id[:12]}) into {dest}: 3 written, 0 removed, 0 unchanged\n"
    )
    assert tree(dest) == V1

    data = ok_json(tmp_path, "data", "checkout", "customers", str(dest))  # no @: the latest
    assert data == {
        "name": "customers",
        "version": 2,
        "id": v2.id,
        "dest": str(dest),
        "written": 2,
        "removed": 1,
        "unchanged": 1,
    }
    assert tree(dest) == V2
    again = ok_json(tmp_path, "data", "checkout", f"customers@{v2.id[:10]}", str(dest))
    assert (again["written"], again["removed"], again["unchanged"]) == (0, 0, 3)
    assert ok_json(tmp_path, "data", "checkout", "customers@latest", str(dest))["unchanged"] == 3


def test_checkout_conflict_changes_nothing(two_versions: Path, tmp_path: Path) -> None:
    dest = tmp_path / "work"
    ok(tmp_path, "data", "checkout", "customers@2", str(dest))
    (dest / "a.csv").write_text("edited locally\n")
    (dest / "notes.txt").write_text("mine\n")
    before = snapshot(dest)
    for args in ((), ("--json",), ("--link", "copy")):
        result = invoke(tmp_path, "data", "checkout", "customers@1", str(dest), *args)
        assert_error(result, "local changes", "a.csv", "notes.txt", "--force")
        assert snapshot(dest) == before

    forced = ok_json(tmp_path, "data", "checkout", "customers@1", str(dest), "--force")
    assert (forced["written"], forced["removed"], forced["unchanged"]) == (2, 2, 1)
    assert tree(dest) == V1


def test_checkout_link_modes(
    two_versions: Path, workspace: mlops.Workspace, tmp_path: Path
) -> None:
    from mlops_sdk.storage.datasets import LINK_MODES

    assert set(LINK_CHOICES) == set(LINK_MODES)
    for mode in ("copy", "hardlink", "symlink", "auto"):
        dest = tmp_path / f"work-{mode}"
        assert (
            ok_json(tmp_path, "data", "checkout", "customers@1", str(dest), "--link", mode)[
                "written"
            ]
            == 3
        )
        assert tree(dest) == V1
    assert (tmp_path / "work-symlink" / "a.csv").is_symlink()
    assert (tmp_path / "work-hardlink" / "a.csv").stat().st_nlink >= 2
    assert not (tmp_path / "work-copy" / "a.csv").is_symlink()
    # links into the store are the version's content, not local changes: switching needs no --force
    linked = str(tmp_path / "work-symlink")
    again = ok_json(tmp_path, "data", "checkout", "customers@1", linked, "--link", "symlink")
    assert (again["written"], again["unchanged"]) == (0, 3)
    switched = ok_json(tmp_path, "data", "checkout", "customers@2", linked, "--link", "symlink")
    assert (switched["written"], switched["removed"], switched["unchanged"]) == (2, 1, 1)
    assert tree(tmp_path / "work-symlink") == V2
    bad = invoke(
        tmp_path, "data", "checkout", "customers", str(tmp_path / "x"), "--link", "teleport"
    )
    assert bad.exit_code == 2 and "teleport" in bad.stderr


def test_checkout_into_a_file_is_an_error(two_versions: Path, tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep")
    assert_error(invoke(tmp_path, "data", "checkout", "customers", str(target)), "not a folder")
    assert target.read_text() == "keep"


def test_dataset_name_with_at_sign(workspace: mlops.Workspace, tmp_path: Path) -> None:
    write(tmp_path / "src", {"x.txt": "x"})
    ok(tmp_path, "data", "add", "team@corp", str(tmp_path / "src"))
    assert (
        ok_json(tmp_path, "data", "checkout", "team@corp", str(tmp_path / "d1"))["name"]
        == "team@corp"
    )
    assert (
        ok_json(tmp_path, "data", "checkout", "team@corp@1", str(tmp_path / "d2"))["version"] == 1
    )


# -- verify and gc -----------------------------------------------------------------------
def _object_path(ws: mlops.Workspace, digest: str) -> Path:
    path = ws.storage.local_path(ws.objects.key(digest))
    assert path is not None
    return Path(path)


def test_verify_ok(two_versions: Path, tmp_path: Path) -> None:
    out = ok(tmp_path, "verify").stdout
    assert out == "ok: 5 object(s) checked, no problems\n"
    assert ok_json(tmp_path, "verify") == {"ok": True, "checked": 5, "problems": []}


def test_verify_finds_corrupted_and_missing_objects(
    two_versions: Path, workspace: mlops.Workspace, tmp_path: Path
) -> None:
    v1, v2 = workspace.dataset("customers").versions()
    corrupted = _object_path(workspace, v2.manifest.get("c.txt").digest)  # type: ignore[union-attr]
    corrupted.chmod(stat.S_IWUSR | stat.S_IRUSR)
    corrupted.write_text("tampered\n")
    missing_digest = v1.manifest.get("sub/b.txt").digest  # type: ignore[union-attr]
    _object_path(workspace, missing_digest).unlink()

    result = invoke(tmp_path, "verify")
    assert result.exit_code == 1
    assert result.stderr == "error: 2 problem(s) found in 4 object(s) checked\n"
    table = result.stdout
    assert re.search(r"corrupted\s+objects/\S+\s+" + re.escape(str(corrupted)), table)
    assert re.search(r"missing\s+" + re.escape(workspace.objects.key(missing_digest)), table)
    assert "'customers' v1 file 'sub/b.txt'" in table

    as_json = invoke(tmp_path, "verify", "--json")
    assert as_json.exit_code == 1
    data = _strict_json(as_json.stdout)
    assert data["ok"] is False and data["checked"] == 4
    problems = {p["kind"]: p for p in data["problems"]}
    assert set(problems) == {"corrupted", "missing"}
    assert str(corrupted) in problems["corrupted"]["detail"]
    assert problems["corrupted"]["key"] == workspace.objects.key(v2.manifest.get("c.txt").digest)  # type: ignore[union-attr]
    assert problems["missing"]["key"] == workspace.objects.key(missing_digest)

    # the corrupted object is never checked out
    assert_error(
        invoke(tmp_path, "data", "checkout", "customers@2", str(tmp_path / "w")), "corrupted"
    )
    assert not (tmp_path / "w" / "c.txt").exists()


def test_gc(two_versions: Path, workspace: mlops.Workspace, tmp_path: Path) -> None:
    orphan, _ = workspace.objects.put_bytes(b"nobody refers to me")
    orphan_path = _object_path(workspace, orphan)

    young = ok_json(tmp_path, "gc")
    assert young == {
        "removed": 0,
        "removed_bytes": 0,
        "kept": 5,
        "young": 1,
        "grace": 3600.0,
        "dry_run": False,
    }
    text = ok(tmp_path, "gc").stdout.splitlines()
    assert text == [
        "removed 0 unreferenced object(s) (0 B); kept 5 referenced",
        "left 1 unreferenced object(s) younger than 3600s (lower --grace to remove them)",
    ]
    dry = ok(tmp_path, "gc", "--grace", "0", "--dry-run").stdout
    assert dry == "would remove 1 unreferenced object(s) (19 B); kept 5 referenced\n"
    assert orphan_path.exists()

    old = time.time() - 7200
    os.utime(orphan_path, (old, old))
    done = ok_json(tmp_path, "gc")  # older than the default grace now
    assert (done["removed"], done["removed_bytes"], done["young"], done["dry_run"]) == (
        1,
        19,
        0,
        False,
    )
    assert not orphan_path.exists()
    assert ok_json(tmp_path, "verify")["ok"] is True
    ok(tmp_path, "data", "checkout", "customers@1", str(tmp_path / "after-gc"))
    assert tree(tmp_path / "after-gc") == V1
    assert invoke(tmp_path, "gc", "--grace", "-1").exit_code == 2


def test_commands_are_listed_in_help() -> None:
    top = CliRunner().invoke(cli, ["--help"]).stdout
    for command in ("data", "gc", "verify"):
        assert re.search(rf"^\s+{command}\s", top, re.MULTILINE), command
    data = CliRunner().invoke(cli, ["data", "--help"]).stdout
    for command in ("add", "ls", "versions", "diff", "checkout"):
        assert re.search(rf"^\s+{command}\s", data, re.MULTILINE), command


def test_fmt_size() -> None:
    assert [fmt_size(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3.0 TiB",
    ]  # fmt: skip


# -- the real executable -----------------------------------------------------------------
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    env["COLUMNS"] = "120"
    return env


def _mlops(*args: str, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops_sdk.cli", *args],
        cwd=cwd, capture_output=True, text=True, env=_env(), timeout=120, **kwargs,
    )  # fmt: skip


def test_subprocess_add_checkout_verify_gc(tmp_path: Path) -> None:
    """The whole cycle through ``python -m mlops_sdk.cli``, workspace found from the current folder."""
    (tmp_path / "mlops.toml").write_text("")
    write(tmp_path / "data", V1)
    added = _mlops("data", "add", "customers", "data", "--json", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert added.stderr == ""  # no progress bar off a terminal
    v1 = _strict_json(added.stdout)
    assert v1["version"] == 1 and v1["created"] is True

    (tmp_path / "data" / "sub" / "b.txt").write_text("changed\n")
    v2 = _strict_json(
        _mlops("data", "add", "customers", "data", "--json", "-m", "b", cwd=tmp_path).stdout
    )
    assert v2["version"] == 2 and v2["hashed_files"] == 1

    diff = _strict_json(
        _mlops("data", "diff", "customers", "1", v2["id"][:8], "--json", cwd=tmp_path).stdout
    )
    assert [m["path"] for m in diff["modified"]] == ["sub/b.txt"] and diff["from"]["id"] == v1["id"]

    co = _mlops("data", "checkout", "customers@1", "out", cwd=tmp_path)
    assert co.returncode == 0, co.stderr
    assert co.stdout.startswith("checked out customers v1 (")
    assert tree(tmp_path / "out") == V1

    (tmp_path / "out" / "a.csv").write_text("local edit\n")
    conflict = _mlops("data", "checkout", "customers@2", "out", cwd=tmp_path)
    assert conflict.returncode == 1 and conflict.stdout == ""
    assert conflict.stderr.startswith("error: checking out into out would overwrite")
    assert (tmp_path / "out" / "a.csv").read_text() == "local edit\n"

    verified = _mlops("verify", cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout == "ok: 4 object(s) checked, no problems\n"
    missing = _mlops("data", "versions", "nope", cwd=tmp_path)
    assert (
        missing.returncode == 1
        and missing.stderr == "error: no dataset called 'nope'; `mlops data ls` lists them\n"
    )


def test_mlops_executable(two_versions: Path, tmp_path: Path) -> None:
    exe = shutil.which("mlops") or str(Path(sys.executable).parent / "mlops")
    if not Path(exe).exists():
        pytest.skip("the mlops console script is not installed")
    proc = subprocess.run(
        [exe, "-w", str(tmp_path), "data", "ls", "--json"],
        capture_output=True, text=True, env=_env(), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [d["name"] for d in _strict_json(proc.stdout)] == ["customers"]


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_progress_bar_only_on_a_terminal_and_never_with_json(tmp_path: Path) -> None:
    (tmp_path / "mlops.toml").write_text("")
    big = tmp_path / "big"
    big.mkdir()
    for i in range(BIG_FILES):
        (big / f"f{i:05d}.txt").write_text(str(i))
    write(tmp_path / "small", {"one.txt": "1"})

    def on_terminal(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
        main, side = os.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "mlops_sdk.cli", *args],
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=side, text=True, env=_env(), timeout=120,
            )  # fmt: skip
            os.close(side)
            side = -1
            seen = b""
            while select.select([main], [], [], 0.5)[0]:
                try:
                    chunk = os.read(main, 1 << 16)
                except OSError:  # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            os.close(main)
            if side >= 0:
                os.close(side)
        return proc, seen.decode(errors="replace")

    proc, terminal = on_terminal("data", "add", "big", "big")
    assert proc.returncode == 0
    assert proc.stdout.startswith("added big v1 (")
    assert "adding big" in terminal and f"/{BIG_FILES} files" in terminal

    proc, terminal = on_terminal("data", "checkout", "big", "out")
    assert proc.returncode == 0 and "checking out big" in terminal
    assert len(list((tmp_path / "out").iterdir())) == BIG_FILES

    proc, terminal = on_terminal("data", "add", "big2", "big", "--json")
    assert _strict_json(proc.stdout)["files"] == BIG_FILES and terminal == ""
    proc, terminal = on_terminal("data", "checkout", "big", "out2", "--json")
    assert _strict_json(proc.stdout)["written"] == BIG_FILES and terminal == ""
    proc, terminal = on_terminal("data", "add", "small", "small")  # small work: no bar
    assert proc.returncode == 0 and terminal == ""


def test_cli_imports_stay_lean() -> None:
    code = (
        "import sys\n"
        "from mlops_sdk.cli import main\n"
        "for argv in (['--help'], ['data', '--help'], ['data', 'checkout', '--help'], ['gc', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = ('rich', 'pandas', 'torch', 'sklearn', 'dvc', 'sqlalchemy', 'mlops_sdk.dataset',\n"
        "         'mlops_sdk.maintenance', 'mlops_sdk.storage.datasets', 'mlops_sdk.workspace')\n"
        "print('HEAVY', [m for m in heavy if m in sys.modules])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


# -- docs/datasets.md: its command-line session runs as shown ------------------------------
def _doc_session(page: Path) -> list[tuple[str, int]]:
    """The ``$ …`` lines of the console blocks of ``page``, each with the exit code shown after it.

    ``$ echo $?`` followed by a number gives the expected exit code of the
    command before it; otherwise it is 0.
    """
    lines = page.read_text().splitlines()
    out: list[tuple[str, int]] = []
    in_console = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_console = line == "```console"
            continue
        if not in_console or not line.startswith("$ ") or line == "$ echo $?":
            continue
        expected = 0
        for j in range(i + 1, len(lines)):
            if (lines[j].startswith("$ ") and lines[j] != "$ echo $?") or lines[j].startswith(
                "```"
            ):
                break
            if lines[j] == "$ echo $?":
                expected = int(lines[j + 1])
                break
        out.append((line[2:], expected))
    return out


def test_datasets_doc_session_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/datasets.md as a reader would run it: its Python blocks in order, then its shell session.

    ``mlops`` lines run in process and must exit as the page shows; other
    lines (``echo … >> file``) run in a shell.
    """
    page = DOCS / "datasets.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    for n, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)):
        script = tmp_path / f"block_{n}.py"
        script.write_text(code)
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"block {n}:\n{code}\n{proc.stderr}"
    monkeypatch.chdir(tmp_path)
    session = _doc_session(page)
    assert sum(line.startswith("mlops ") for line, _ in session) >= 10
    for line, expected in session:
        if not line.startswith("mlops "):
            subprocess.run(line, shell=True, cwd=tmp_path, check=True, timeout=60)
            continue
        result = CliRunner().invoke(cli, shlex.split(line)[1:], prog_name="mlops")
        assert result.exit_code == expected, (line, result.stdout, result.stderr)
        if "--json" in line and expected == 0:
            _strict_json(result.stdout)
