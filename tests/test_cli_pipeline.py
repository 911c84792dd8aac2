"""``mlops pipeline run|status|dag`` through click's CliRunner, and once as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlops_sdk.cli import cli

PIPELINE_FILE = """
import mlops_sdk as mlops


@mlops.step
def load(rows: int = 4):
    print("loading", rows)
    return [r * 1.5 for r in range(rows)]


@mlops.step
def mean(load, shift: float = 0.0):
    if shift < 0:
        raise ValueError("shift must not be negative")
    return sum(load) / len(load) + shift


@mlops.step
def report(mean, load):
    return {"mean": mean, "n": len(load)}


pipe = mlops.Pipeline("stats", steps=[load, mean, report])
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows_stats.py").write_text(PIPELINE_FILE)
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(cli, ["-w", str(project), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_run_then_everything_is_cached(project: Path) -> None:
    target = f"{project / 'flows_stats.py'}:pipe"
    code, out, _ = invoke(project, "pipeline", "run", target, "--json")
    assert code == 0
    first = json.loads(out)
    assert first["status"] == "FINISHED" and [s["status"] for s in first["steps"]] == ["ran", "ran", "ran"]
    code, out, _ = invoke(project, "pipeline", "run", target, "--json")
    again = json.loads(out)
    assert [s["status"] for s in again["steps"]] == ["cached", "cached", "cached"]
    assert [s["run_id"] for s in again["steps"]] == [s["run_id"] for s in first["steps"]]
    code, out, _ = invoke(project, "pipeline", "run", target, "-p", "shift=0.5")
    assert code == 0 and "stats: FINISHED" in out
    assert [line.split()[1] for line in out.splitlines() if line.strip().startswith(("load", "mean", "report"))] == [
        "cached", "ran", "ran"]


def test_status_says_what_would_run_and_why(project: Path) -> None:
    target = f"{project / 'flows_stats.py'}:pipe"
    code, out, _ = invoke(project, "pipeline", "status", target, "--json")
    assert code == 0
    assert [(s["state"], s["reason"]) for s in json.loads(out)["steps"]] == [
        ("stale", "never ran"), ("stale", "upstream load will run"), ("stale", "upstream mean, load will run")]
    invoke(project, "pipeline", "run", target)
    code, out, _ = invoke(project, "pipeline", "status", target, "--param", "mean.shift=2", "--json")
    steps = json.loads(out)["steps"]
    assert [s["state"] for s in steps] == ["cached", "stale", "stale"]
    assert steps[1]["reason"] == "params changed: shift" and steps[1]["last_status"] == "FINISHED"
    code, out, _ = invoke(project, "pipeline", "status", target)
    assert code == 0 and "cached" in out and "last status" in out


def test_a_failed_step_exits_1_with_its_error_and_logs(project: Path) -> None:
    target = f"{project / 'flows_stats.py'}:pipe"
    code, out, err = invoke(project, "pipeline", "run", target, "--param", "shift=-1")
    assert code == 1
    assert "skipped" in out and "failed" in out
    assert "ValueError: shift must not be negative" in err
    assert "error: step mean of pipeline 'stats' failed" in err
    code, out, err = invoke(project, "pipeline", "run", target, "--json")
    assert code == 0 and [s["status"] for s in json.loads(out)["steps"]] == ["cached", "ran", "ran"]


def test_dag_in_every_format(project: Path) -> None:
    target = f"{project / 'flows_stats.py'}:pipe"
    code, out, _ = invoke(project, "pipeline", "dag", target)
    assert code == 0
    assert out.splitlines() == ["load (rows=4)", "├── mean (shift=0.0)", "│   └── report", "└── report (see above)"]
    code, out, _ = invoke(project, "pipeline", "dag", target, "--format", "dot")
    assert out.startswith('digraph "stats"') and '"mean" -> "report";' in out
    code, out, _ = invoke(project, "pipeline", "dag", target, "-f", "mermaid")
    assert out.startswith("flowchart LR") and "s0 --> s1" in out
    for fmt, magic in (("svg", b"<svg"), ("png", b"\x89PNG")):
        dest = project / f"dag.{fmt}"
        code, _, err = invoke(project, "pipeline", "dag", target, "-f", fmt, "-o", str(dest))
        assert code == 0, err
        assert magic in dest.read_bytes()[:400]
    code, _, err = invoke(project, "pipeline", "dag", target, "-f", "png")
    assert code == 2 and "-o FILE" in err
    code, _, _ = invoke(project, "pipeline", "dag", target, "-f", "jpeg")
    assert code == 2


def test_bad_targets_are_clear_errors(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    code, _, err = invoke(project, "pipeline", "dag", "flows_stats:nope")
    assert code == 1 and "has no attribute 'nope'" in err
    code, _, err = invoke(project, "pipeline", "dag", "flows_stats:load")
    assert code == 1 and "not an mlops Pipeline" in err
    code, out, _ = invoke(project, "pipeline", "dag", "flows_stats")  # the module's only pipeline
    assert code == 0 and out.startswith("load")
    code, _, err = invoke(project, "pipeline", "run", "no_such_module_xyz:pipe")
    assert code == 1 and "could not import 'no_such_module_xyz'" in err
    code, _, err = invoke(project, "pipeline", "run", str(project / "missing.py") + ":pipe")
    assert code == 1 and "no pipeline file" in err
    code, _, err = invoke(project, "pipeline", "run", "flows_stats:pipe", "--param", "rows")
    assert code == 2 and "KEY=VALUE" in err
    code, _, err = invoke(project, "pipeline", "run", "flows_stats:pipe", "--param", "bogus=1")
    assert code == 1 and "no param 'bogus'" in err


def test_the_real_command_runs_a_module_pipeline(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    cmd = [sys.executable, "-m", "mlops_sdk.cli", "pipeline", "run", "flows_stats:pipe", "--json"]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [s["status"] for s in json.loads(proc.stdout)["steps"]] == ["ran", "ran", "ran"]  # stdout: JSON only
    assert "loading 4" in proc.stderr  # what steps print goes to stderr
    code, out, _ = invoke(project, "pipeline", "status", f"{project / 'flows_stats.py'}:pipe", "--json")
    assert code == 0 and [s["state"] for s in json.loads(out)["steps"]] == ["cached", "cached", "cached"]


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["pipeline", "--help"])
    assert result.exit_code == 0
    for name in ("run", "status", "dag"):
        assert name in result.stdout
