"""The ``mlops`` command: every command in table and --json form, exit codes, docs examples."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import mlops_sdk as mlops
from mlops_sdk.cli import cli
from mlops_sdk.plugins import plugin_registered

RUN_KEYS = {
    "id",
    "name",
    "experiment_id",
    "experiment",
    "status",
    "start_time",
    "end_time",
    "params",
    "metrics",
    "tags",
    "parent_id",
}
DOCS_CLI = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _strict_json(text: str) -> Any:
    """Parse JSON, refusing the non-standard NaN / Infinity literals."""

    def refuse(token: str) -> None:
        raise AssertionError(f"invalid JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def populated(workspace: mlops.Workspace, tmp_path: Path) -> dict[str, mlops.Run]:
    """Two experiments: churn (rf-10, rf-100, a failed run) and iris (svm, with an artifact)."""
    churn = workspace.experiment("churn")
    iris = workspace.experiment("iris")
    runs: dict[str, mlops.Run] = {}
    with churn.start_run(
        name="rf-10", params={"n": 10, "crit": "gini"}, tags={"team": "growth"}
    ) as run:
        run.log_metric("acc", 0.8)
        run.log_metric("loss", float("nan"))
    runs["rf-10"] = run
    with churn.start_run(name="rf-100", params={"n": 100, "crit": "gini"}) as run:
        run.log_metric("acc", 0.5, step=0)
        run.log_metric("acc", 0.93, step=1)
        run.log_metric("loss", float("inf"))
    runs["rf-100"] = run
    with pytest.raises(ValueError), churn.start_run(name="broken") as run:
        raise ValueError("diverged at epoch 3")
    runs["broken"] = run
    model = tmp_path / "model.txt"
    model.write_text("x" * 123)
    with iris.start_run(name="svm", params={"C": 0.5}, tags={"stage": "baseline"}) as run:
        run.log_metric("acc", 0.97)
        run.log_artifact(model)
    runs["svm"] = run
    workspace.flush()
    return runs


def invoke(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-w", str(root), *args], prog_name="mlops")


def assert_error(result: Result, *fragments: str) -> None:
    """Exit 1 with exactly one ``error: ...`` line on stderr naming the problem."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


# -- group, --version, --help ----------------------------------------------------------
def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mlops-sdk {mlops.__version__}"


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"], prog_name="mlops")
    assert result.exit_code == 0
    for command in ("runs", "experiments", "plugins", "--workspace", "--tracking", "--storage"):
        assert command in result.stdout
    runs_help = CliRunner().invoke(cli, ["runs", "--help"])
    for command in ("ls", "show", "compare"):
        assert command in runs_help.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["runz"])
    assert result.exit_code == 2
    assert "No such command" in result.stderr


def test_missing_workspace_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nope", "runs", "ls")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# -- runs ls ------------------------------------------------------------------------
def test_runs_ls_table(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    result = invoke(tmp_path, "runs", "ls")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header[:6] == ["id", "experiment", "name", "status", "start", "duration"]
    assert {"params.n", "params.crit", "params.C", "metrics.acc", "metrics.loss"} <= set(header)
    body = {line.split()[0]: line for line in lines[2:]}
    assert set(body) == {run.id[:8] for run in populated.values()}
    rf100 = body[populated["rf-100"].id[:8]]
    assert re.search(r"churn\s+rf-100\s+FINISHED", rf100)
    assert "0.93" in rf100 and "inf" in rf100 and "gini" in rf100
    assert "nan" in body[populated["rf-10"].id[:8]]
    assert re.search(r"iris\s+svm\s+FINISHED", body[populated["svm"].id[:8]])
    assert "FAILED" in body[populated["broken"].id[:8]]
    # newest first
    assert lines[2].split()[0] == populated["svm"].id[:8]


def test_runs_ls_json(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    result = invoke(tmp_path, "runs", "ls", "--json")
    assert result.exit_code == 0, result.stderr
    data = _strict_json(result.stdout)
    assert [d["name"] for d in data] == ["svm", "broken", "rf-100", "rf-10"]
    for item in data:
        assert set(item) == RUN_KEYS
    by_name = {d["name"]: d for d in data}
    rf100 = by_name["rf-100"]
    assert rf100["id"] == populated["rf-100"].id
    assert rf100["experiment"] == "churn"
    assert rf100["status"] == "FINISHED"
    assert rf100["params"] == {"n": 100, "crit": "gini"}
    assert rf100["metrics"] == {"acc": 0.93, "loss": "Infinity"}
    assert rf100["parent_id"] is None
    assert rf100["end_time"] >= rf100["start_time"] > 0
    assert by_name["rf-10"]["metrics"]["loss"] == "NaN"
    assert by_name["rf-10"]["tags"] == {"team": "growth"}
    assert by_name["broken"]["status"] == "FAILED"
    assert by_name["svm"]["experiment"] == "iris"


def test_runs_ls_experiment_filter_order_limit(
    populated: dict[str, mlops.Run], tmp_path: Path
) -> None:
    def names(*args: str) -> list[str]:
        result = invoke(tmp_path, "runs", "ls", "--json", *args)
        assert result.exit_code == 0, result.stderr
        return [d["name"] for d in _strict_json(result.stdout)]

    assert names("-e", "iris") == ["svm"]
    assert set(names("--experiment", "churn")) == {"rf-10", "rf-100", "broken"}
    assert set(names("-e", "churn", "-e", "iris")) == {"rf-10", "rf-100", "broken", "svm"}
    assert names("-f", "metrics.acc > 0.85", "-o", "-metrics.acc") == ["svm", "rf-100"]
    assert names("--filter", "params.n = 10") == ["rf-10"]
    assert names("--order-by", "metrics.acc") == ["rf-10", "rf-100", "svm", "broken"]
    assert names("-o", "-metrics.acc", "--limit", "2") == ["svm", "rf-100"]
    assert names("-o", "-metrics.acc", "--limit", "2", "--offset", "2") == ["rf-10", "broken"]
    assert len(names("--limit", "0")) == 4
    assert names("-f", "status = 'FAILED'") == ["broken"]


def test_runs_ls_says_when_more_runs_match(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    result = invoke(tmp_path, "runs", "ls", "--limit", "1")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 3  # header, rule, one run
    assert "--limit" in result.stderr
    complete = invoke(tmp_path, "runs", "ls", "--limit", "4")
    assert complete.stderr == ""


def test_runs_ls_empty_workspace(workspace: mlops.Workspace, tmp_path: Path) -> None:
    result = invoke(tmp_path, "runs", "ls")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no runs" in result.stderr
    as_json = invoke(tmp_path, "runs", "ls", "--json")
    assert as_json.exit_code == 0
    assert _strict_json(as_json.stdout) == []


def test_runs_ls_errors(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    assert_error(
        invoke(tmp_path, "runs", "ls", "-f", "metrics.acc >"), "invalid --filter", "ends too early"
    )
    assert_error(
        invoke(tmp_path, "runs", "ls", "-f", "metrics.acc >>> 1 and"), "invalid --filter", "'>'"
    )
    assert_error(invoke(tmp_path, "runs", "ls", "-e", "nope"), "no experiment named 'nope'")
    assert_error(invoke(tmp_path, "runs", "ls", "-o", "bogus.field"), "invalid --order-by", "bogus")
    assert invoke(tmp_path, "runs", "ls", "--limit", "-1").exit_code == 2
    assert invoke(tmp_path, "runs", "ls", "--limit", "many").exit_code == 2


def test_unknown_scheme_is_a_one_line_error(tmp_path: Path) -> None:
    result = invoke(tmp_path, "--tracking", "foo://x", "runs", "ls")
    assert_error(result, "'foo'", "tracking", "mlops plugins")
    assert_error(
        invoke(tmp_path, "--storage", "nope://bucket", "runs", "ls", "--json"), "'nope'", "storage"
    )


def test_tracking_and_storage_overrides(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with mlops.Workspace.open(other) as ws, ws.experiment("elsewhere").start_run(name="far"):
        pass
    uri = f"sqlite:///{other / '.mlops' / 'tracking.db'}"
    result = invoke(tmp_path, "--tracking", uri, "--storage", "memory://x", "runs", "ls", "--json")
    assert result.exit_code == 0, result.stderr
    assert [d["name"] for d in _strict_json(result.stdout)] == ["far"]


def test_markup_in_names_is_printed_verbatim(workspace: mlops.Workspace, tmp_path: Path) -> None:
    with workspace.experiment("x").start_run(name="[bold]loud[/bold]"):
        pass
    result = invoke(tmp_path, "runs", "ls")
    assert "[bold]loud[/bold]" in result.stdout


# -- runs show ---------------------------------------------------------------------------
def test_runs_show_table(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    run = populated["svm"]
    result = invoke(tmp_path, "runs", "show", run.id)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == f"Run {run.id}"
    assert re.search(r"name\s+svm", out)
    assert re.search(rf"experiment\s+iris \({run.experiment_id}\)", out)
    assert re.search(r"status\s+FINISHED", out)
    for section in ("Params", "Metrics (latest)", "Tags", "Artifacts", "Context"):
        assert f"\n{section}\n" in out
    assert re.search(r"\bC\s+0\.5\b", out)
    assert re.search(r"acc\s+0\.97", out)
    assert re.search(r"stage\s+baseline", out)
    assert re.search(r"model\.txt\s+123", out)
    assert re.search(rf"python\s+{re.escape(platform.python_version())}", out)
    assert re.search(rf"host\s+{re.escape(socket.gethostname())}", out)


def test_runs_show_json(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    run = populated["rf-100"]
    data = _strict_json(invoke(tmp_path, "runs", "show", run.id, "--json").stdout)
    assert set(data) >= RUN_KEYS
    assert data["id"] == run.id
    assert data["metrics"] == {"acc": 0.93, "loss": "Infinity"}
    assert data["params"] == {"n": 100, "crit": "gini"}
    assert data["error"] is None
    assert data["artifacts"] == []
    context = data["context"]
    assert context["python"] == platform.python_version()
    assert context["host"] == socket.gethostname()
    assert isinstance(context["command"], list) and context["command"]
    assert set(context) >= {"git", "python", "platform", "host", "command", "cwd"}
    if context["git"] is not None:
        assert set(context["git"]) == {"commit", "branch", "dirty"}

    svm = _strict_json(invoke(tmp_path, "runs", "show", populated["svm"].id, "--json").stdout)
    [artifact] = svm["artifacts"]
    assert artifact["path"] == "model.txt" and artifact["size"] == 123
    assert len(artifact["digest"]) >= 32


def test_runs_show_failed_run_shows_its_error(
    populated: dict[str, mlops.Run], tmp_path: Path
) -> None:
    run = populated["broken"]
    table = invoke(tmp_path, "runs", "show", run.id).stdout
    assert re.search(r"error\s+ValueError: diverged at epoch 3", table)
    data = _strict_json(invoke(tmp_path, "runs", "show", run.id, "--json").stdout)
    assert data["status"] == "FAILED"
    assert "Traceback" in data["error"] and "diverged at epoch 3" in data["error"]


def test_runs_show_accepts_a_unique_prefix(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    run = populated["rf-10"]
    for prefix in (run.id[:8], run.id[:4]):
        others = [r for r in populated.values() if r.id.startswith(prefix) and r is not run]
        if others:
            continue
        data = _strict_json(invoke(tmp_path, "runs", "show", prefix, "--json").stdout)
        assert data["id"] == run.id


def test_runs_show_unknown_short_and_ambiguous(
    workspace: mlops.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = iter([f"abcd{n:028x}" for n in (1, 2)] + [f"ef01{n:028x}" for n in (3,)])
    exp = workspace.experiment("prefixes")
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(hex=next(ids)))
    for name in ("a", "b", "c"):
        with exp.start_run(name=name):
            pass
    monkeypatch.undo()
    assert_error(invoke(tmp_path, "runs", "show", "abcd"), "ambiguous", "2 runs")
    assert_error(invoke(tmp_path, "runs", "show", "abc"), "'abc'", "at least 4")
    assert_error(invoke(tmp_path, "runs", "show", "ffffffff"), "'ffffffff'")
    assert_error(invoke(tmp_path, "runs", "show", "ab'; drop table runs; --"), "no run")
    assert_error(invoke(tmp_path, "runs", "show", "abcd%"), "no run")
    assert _strict_json(invoke(tmp_path, "runs", "show", "ef01", "--json").stdout)["name"] == "c"
    one = invoke(tmp_path, "runs", "show", "abcd" + "0" * 27 + "2", "--json")
    assert _strict_json(one.stdout)["name"] == "b"


# -- runs compare ---------------------------------------------------------------------
def test_runs_compare_table(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    a, b = populated["rf-10"], populated["rf-100"]
    result = invoke(tmp_path, "runs", "compare", a.id[:8], b.id)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"{a.id[:8]} rf-10" in lines[0] and f"{b.id[:8]} rf-100" in lines[0]
    key = re.compile(r"(?:params|metrics)\.\S+")
    rows = {key.search(line).group(): line for line in lines[2:-1]}  # type: ignore[union-attr]
    assert re.match(r"\s*\*\s+params\.n\s+10\s+100\s*$", rows["params.n"])
    assert re.match(r"\s*params\.crit\s+gini\s+gini\s*$", rows["params.crit"])  # same: not marked
    assert re.match(r"\s*\*\s+metrics\.acc\s+0\.8\s+0\.93\s*$", rows["metrics.acc"])
    assert re.match(r"\s*\*\s+metrics\.loss\s+nan\s+inf\s*$", rows["metrics.loss"])
    assert lines[-1] == "3 of 4 rows differ (marked *)"


def test_runs_compare_json_and_missing_values(
    populated: dict[str, mlops.Run], tmp_path: Path
) -> None:
    a, b, c = populated["rf-10"], populated["rf-100"], populated["svm"]
    data = _strict_json(invoke(tmp_path, "runs", "compare", a.id, b.id, c.id, "--json").stdout)
    assert [r["id"] for r in data["runs"]] == [a.id, b.id, c.id]
    assert [r["experiment"] for r in data["runs"]] == ["churn", "churn", "iris"]
    rows = {row["key"]: row for row in data["rows"]}
    assert list(rows) == ["params.C", "params.crit", "params.n", "metrics.acc", "metrics.loss"]
    assert rows["params.crit"] == {
        "key": "params.crit",
        "kind": "param",
        "name": "crit",
        "values": ["gini", "gini", None],
        "differs": True,
    }
    assert rows["params.C"]["values"] == [None, None, 0.5]
    assert rows["metrics.loss"]["values"] == ["NaN", "Infinity", None]
    assert rows["metrics.acc"]["values"] == [0.8, 0.93, 0.97]

    two = _strict_json(invoke(tmp_path, "runs", "compare", a.id, b.id, "--json").stdout)
    assert {row["key"]: row["differs"] for row in two["rows"]} == {
        "params.n": True,
        "params.crit": False,
        "metrics.acc": True,
        "metrics.loss": True,
    }
    diff_only = _strict_json(
        invoke(tmp_path, "runs", "compare", a.id, b.id, "--json", "--diff-only").stdout
    )
    assert [row["key"] for row in diff_only["rows"]] == ["params.n", "metrics.acc", "metrics.loss"]
    diff_table = invoke(tmp_path, "runs", "compare", a.id, b.id, "--diff-only").stdout
    assert "params.crit" not in diff_table and "params.n" in diff_table


def test_runs_compare_nan_equals_nan(workspace: mlops.Workspace, tmp_path: Path) -> None:
    exp = workspace.experiment("nan")
    ids = []
    for name in ("x", "y"):
        with exp.start_run(name=name, params={"seed": 1}) as run:
            run.log_metric("loss", float("nan"))
        ids.append(run.id)
    data = _strict_json(invoke(tmp_path, "runs", "compare", *ids, "--json").stdout)
    assert {row["key"]: row["differs"] for row in data["rows"]} == {
        "params.seed": False,
        "metrics.loss": False,
    }


def test_runs_compare_errors(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    one = invoke(tmp_path, "runs", "compare", populated["svm"].id)
    assert one.exit_code == 2
    assert "at least two" in one.stderr
    assert invoke(tmp_path, "runs", "compare").exit_code == 2
    assert_error(invoke(tmp_path, "runs", "compare", populated["svm"].id, "0" * 32), "0" * 32)


# -- experiments ls -----------------------------------------------------------------------
def test_experiments_ls(
    populated: dict[str, mlops.Run], tmp_path: Path, workspace: mlops.Workspace
) -> None:
    result = invoke(tmp_path, "experiments", "ls")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "id", "runs", "created"]
    churn = workspace.get_experiment("churn")
    assert re.match(rf"\s*churn\s+{churn.id}\s+3\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s*$", lines[2])
    assert re.match(r"\s*iris\s+\w+\s+1\s", lines[3])

    data = _strict_json(invoke(tmp_path, "experiments", "ls", "--json").stdout)
    assert [(e["name"], e["runs"]) for e in data] == [("churn", 3), ("iris", 1)]
    assert data[0]["id"] == churn.id
    assert data[0]["created_at"] == pytest.approx(churn.created_at)
    assert set(data[0]) == {"id", "name", "runs", "created_at", "tags"}


def test_experiments_ls_empty(workspace: mlops.Workspace, tmp_path: Path) -> None:
    result = invoke(tmp_path, "experiments", "ls")
    assert result.exit_code == 0 and result.stdout == "" and "no experiments" in result.stderr
    assert _strict_json(invoke(tmp_path, "experiments", "ls", "--json").stdout) == []


# -- plugins ------------------------------------------------------------------------------
class _AcmePlugin:
    """A third-party plugin whose factories point at a module that does not exist."""

    from mlops_sdk.hookspecs import hookimpl

    @hookimpl
    def mlops_register_backends(self, register: Any) -> None:
        register.storage("acme", "acme_not_installed.storage:AcmeStorage", requires="acme-sdk")
        register.deployer(
            "acme-k8s", "acme_not_installed.deploy:Deployer", description="Acme cluster"
        )


def test_plugins_lists_builtin_schemes() -> None:
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert re.search(r"local \(built-in\)\s+\S*\s*tracking\s+sqlite", out)
    for kind, scheme in (("tracking", "postgresql"), ("storage", "file"), ("storage", "memory"), ("compute", "local")):
        assert re.search(rf"^\s+{kind}\s+{scheme}\s", out, re.MULTILINE), (kind, scheme)

    data = _strict_json(CliRunner().invoke(cli, ["plugins", "--json"]).stdout)
    local = next(p for p in data if p["name"] == "local")
    assert local["builtin"] is True
    assert local["module"] == "mlops_sdk.builtin"
    assert set(local["schemes"]) == {"tracking", "storage", "compute", "deployer", "source", "flavor"}
    assert {k: local["schemes"][k] for k in ("tracking", "storage", "compute", "deployer", "source")} == {
        "tracking": ["sqlite", "postgresql"],
        "storage": ["file", "memory"],
        "compute": ["local"],
        "deployer": ["local", "kubernetes"],
        "source": [],
    }
    sqlite = local["backends"]["tracking"][0]
    assert sqlite["target"] == "mlops_sdk.tracking.sql:open_sqlite"
    assert set(sqlite) == {"scheme", "target", "requires", "description"}


def test_plugins_lists_third_party_without_importing_backends() -> None:
    with plugin_registered(_AcmePlugin(), "acme"):
        table = CliRunner().invoke(cli, ["plugins"])
        data = _strict_json(CliRunner().invoke(cli, ["plugins", "--json"]).stdout)
    assert table.exit_code == 0, table.stderr
    assert re.search(r"acme\s+storage\s+acme\s+\[needs acme-sdk\]", table.stdout)
    assert re.search(r"deployer\s+acme-k8s\s+Acme cluster", table.stdout)
    acme = next(p for p in data if p["name"] == "acme")
    assert acme["builtin"] is False
    assert acme["schemes"]["storage"] == ["acme"] and acme["schemes"]["deployer"] == ["acme-k8s"]
    assert acme["backends"]["storage"][0]["requires"] == "acme-sdk"
    assert next(p["name"] for p in data) == "local"  # built-ins first
    assert not any(name.startswith("acme_not_installed") for name in sys.modules)


def test_plugins_needs_no_workspace(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["-w", str(tmp_path), "--tracking", "foo://x", "plugins", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert not (tmp_path / ".mlops").exists()


def test_broken_plugin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        from mlops_sdk.hookspecs import hookimpl

        @hookimpl
        def mlops_register_backends(self, register: Any) -> None:
            raise RuntimeError("kaput")

    with plugin_registered(Broken(), "broken-plugin"):
        result = CliRunner().invoke(cli, ["plugins"])
    assert_error(result, "broken-plugin", "kaput")


# -- the real executable ---------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    return env


def test_python_dash_m_subprocess(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_sdk.cli",
            "-w",
            str(tmp_path),
            "runs",
            "ls",
            "--json",
            "-e",
            "iris",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    [svm] = _strict_json(proc.stdout)
    assert svm["id"] == populated["svm"].id and svm["metrics"] == {"acc": 0.97}


def test_mlops_executable_subprocess(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    exe = shutil.which("mlops") or str(Path(sys.executable).parent / "mlops")
    if not Path(exe).exists():
        pytest.skip("the mlops console script is not installed")
    ok = subprocess.run(
        [exe, "runs", "show", populated["rf-100"].id[:8]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"Run {populated['rf-100'].id}\n")  # workspace found from cwd
    bad = subprocess.run(
        [exe, "--tracking", "foo://x", "runs", "ls"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr.startswith("error: no installed plugin provides a tracking backend for 'foo'")
    assert len(bad.stderr.strip().splitlines()) == 1
    usage = subprocess.run(
        [exe, "runs", "ls", "--limit", "x"], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert usage.returncode == 2


def test_help_does_not_import_rich_or_backends() -> None:
    code = (
        "import sys\n"
        "from mlops_sdk.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('rich', 'sqlalchemy', 'mlops_sdk.workspace', 'mlops_sdk.tracking.sql') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


# -- docs/cli.md stays true ------------------------------------------------------------------
def _documented_commands() -> list[tuple[str, int]]:
    """``$ mlops …`` lines of docs/cli.md with the exit code the page shows (``$ echo $?``), else 0."""
    lines = DOCS_CLI.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("$ mlops "):
            continue
        expected = 0
        for j in range(i + 1, len(lines)):
            if lines[j].startswith("$ mlops") or lines[j].startswith("```"):
                break
            if lines[j] == "$ echo $?":
                expected = int(lines[j + 1])
                break
        out.append((line[2:].split(" | ")[0], expected))
    return out


def test_docs_commands_run(populated: dict[str, mlops.Run], tmp_path: Path) -> None:
    """Every ``$ mlops …`` line of docs/cli.md runs with the exit code the page shows.

    The page's run ids are mapped, through its own ``runs ls`` table, to the
    runs of the same name in the ``populated`` workspace.
    """
    text = DOCS_CLI.read_text()
    doc_ids = dict(re.findall(r"^ ([0-9a-f]{8}) +\S+ +(\S+) ", text, re.MULTILINE))
    assert set(doc_ids.values()) == {"rf-10", "rf-100", "svm"}

    def real(arg: str) -> str:
        for doc_id, name in doc_ids.items():
            if re.fullmatch(r"[0-9a-f]{4,32}", arg) and doc_id.startswith(arg):
                return populated[name].id[: max(len(arg), 8)]
        return arg

    commands = _documented_commands()
    assert len(commands) >= 12
    for line, expected in commands:
        argv = [real(arg) for arg in shlex.split(line)[1:]]
        result = invoke(tmp_path, *argv)
        assert result.exit_code == expected, (line, result.stdout, result.stderr)
        if "--json" in argv:
            _strict_json(result.stdout)


# -- the mlops_register_commands hook ------------------------------------------------------
def _fresh_group() -> click.Group:
    group = click.Group("mlops")
    group.add_command(click.Command("runs", callback=lambda: None))
    return group


def test_plugin_command_is_added_and_runs() -> None:
    from mlops_sdk.cli import add_plugin_commands
    from mlops_sdk.hookspecs import hookimpl
    from mlops_sdk.plugins import plugin_registered

    @click.command("greet")
    @click.argument("name")
    def greet(name: str) -> None:
        click.echo(f"hi {name}")

    class Plugin:
        @hookimpl
        def mlops_register_commands(self, cli: object) -> None:
            cli.add_command(greet)  # type: ignore[attr-defined]

    group = _fresh_group()
    with plugin_registered(Plugin(), "greeter"):
        add_plugin_commands(group)
        add_plugin_commands(group)  # a second call adds nothing twice
    result = CliRunner().invoke(group, ["greet", "ada"])
    assert result.exit_code == 0 and result.output == "hi ada\n"


def test_plugin_command_taking_an_existing_name_is_refused() -> None:
    from mlops_sdk.cli import add_plugin_commands
    from mlops_sdk.errors import PluginError
    from mlops_sdk.hookspecs import hookimpl
    from mlops_sdk.plugins import plugin_registered

    class Plugin:
        @hookimpl
        def mlops_register_commands(self, cli: object) -> None:
            cli.add_command(click.Command("runs", callback=lambda: None))  # type: ignore[attr-defined]

    group = _fresh_group()
    with plugin_registered(Plugin(), "clasher"), pytest.raises(PluginError, match=r'"clasher".*runs'):
        add_plugin_commands(group)


def test_plugin_command_hook_that_raises_is_named() -> None:
    from mlops_sdk.cli import add_plugin_commands
    from mlops_sdk.errors import PluginError
    from mlops_sdk.hookspecs import hookimpl
    from mlops_sdk.plugins import plugin_registered

    class Plugin:
        @hookimpl
        def mlops_register_commands(self, cli: object) -> None:
            raise RuntimeError("no click here")

    with plugin_registered(Plugin(), "broken-cli"), pytest.raises(PluginError, match=r'"broken-cli".*no click here'):
        add_plugin_commands(_fresh_group())
