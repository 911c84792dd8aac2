"""``mlops models``: the promotion gate as a CI job calls it.

A training script, run in its own process per version (as a CI training job
would), logs four versions of an iris classifier into a workspace. Every
command under test then runs as a real ``mlops`` subprocess against a copy of
that workspace, and the tests check exit codes, stdout/stderr, and where the
aliases point afterwards (read back through the Python API).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlops_sdk as mlops

pytest.importorskip("sklearn")
pytest.importorskip("skops")

DOCS_CI_CD = Path(__file__).resolve().parent.parent / "docs" / "ci-cd.md"


def _doc_train_script() -> str:
    """The ``# train.py`` block of docs/ci-cd.md: the tests train with what the page shows."""
    for block in re.findall(r"```python\n(.*?)```", DOCS_CI_CD.read_text(), re.DOTALL):
        if block.startswith("# train.py\n"):
            return str(block)
    raise AssertionError("docs/ci-cd.md has no '# train.py' python block")


# (C, tags): v1 good (0.947), v2 poor (0.693), v3 best (0.973, approved), v4 passable (0.933)
VERSIONS = [(0.1, []), (1e-4, []), (10.0, ["approved=yes"]), (0.05, [])]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    env.pop("CI", None)  # the commands must behave the same with or without it
    return env


def _mlops_command() -> list[str]:
    exe = shutil.which("mlops") or str(Path(sys.executable).parent / "mlops")
    return [exe] if Path(exe).exists() else [sys.executable, "-m", "mlops_sdk.cli"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A workspace with iris-clf v1..v4, each logged by train.py in a process of its own."""
    root = tmp_path_factory.mktemp("trained")
    (root / "train.py").write_text(_doc_train_script())
    metrics: dict[int, dict[str, float]] = {}
    for C, tags in VERSIONS:
        argv = [sys.executable, "train.py", "--C", str(C), *(f"--tag={t}" for t in tags)]
        proc = subprocess.run(argv, cwd=root, env=_env(), capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out.pop("name") == "iris-clf"
        metrics[out.pop("version")] = out
    assert sorted(metrics) == [1, 2, 3, 4]
    acc = {v: m["accuracy"] for v, m in metrics.items()}
    assert acc[3] > acc[1] > acc[4] >= 0.9 > acc[2]  # what the tests below rely on
    return {"root": root, "metrics": metrics}


@pytest.fixture
def project(trained: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    """A private copy of the trained workspace (without the local model cache)."""
    dest = tmp_path / "project"
    shutil.copytree(trained["root"], dest, ignore=shutil.ignore_patterns("cache"))
    yield dest


def mlops_cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``mlops`` executable in ``project`` (the workspace is found from the cwd)."""
    return subprocess.run(
        [*_mlops_command(), *args], cwd=project, env=_env(), capture_output=True, text=True, timeout=120
    )


def strict_json(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"invalid JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def aliases(project: Path) -> dict[str, int]:
    with mlops.Workspace.open(project) as ws:
        return ws.model("iris-clf").aliases()


def history(project: Path, alias: str) -> list[int | None]:
    with mlops.Workspace.open(project) as ws:
        return [v for v, _ in ws.model("iris-clf").alias_history(alias)]


def assert_failed(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 1 with one ``error: ...`` line on stderr naming the problem; returns that line."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# -- the release gate, step by step, as a CI pipeline runs it ------------------------------------
GATE = ["--alias", "production", "--require", "metrics.accuracy >= 0.9", "--require-better-than", "production"]


def test_ci_release_flow(project: Path, trained: dict[str, Any]) -> None:
    acc = {v: m["accuracy"] for v, m in trained["metrics"].items()}

    # 1. first release: no production yet, so there is nothing to beat
    first = mlops_cli(project, "models", "promote", "iris-clf", "1", *GATE)
    assert first.returncode == 0, first.stderr
    assert "nothing to beat" in first.stdout
    assert "promoted iris-clf v1 to production (was unset)" in first.stdout
    assert aliases(project) == {"production": 1}

    # 2. a poor model fails the threshold: exit 1, the reason printed, the alias untouched
    poor = mlops_cli(project, "models", "promote", "iris-clf", "2", *GATE)
    line = assert_failed(poor, "iris-clf v2 was not promoted; production still points at v1. Failed checks: ")
    assert f"metrics.accuracy is {acc[2]!r}, needs >= 0.9" in line
    assert re.search(r"metrics\.accuracy >= 0\.9\s+0\.693\d*\s+FAIL", poor.stdout)
    assert aliases(project) == {"production": 1}
    assert history(project, "production") == [1]

    # 3. good enough, but not better than production: refused too
    worse = mlops_cli(project, "models", "promote", "iris-clf", "4", *GATE)
    line = assert_failed(worse, "metrics.accuracy better than production (v1)")
    assert f"{acc[4]!r} is not above {acc[1]!r} of production (v1)" in line
    assert re.search(r"metrics\.accuracy >= 0\.9\s+\S+\s+PASS", worse.stdout)
    assert aliases(project) == {"production": 1}

    # 4. a better model goes through
    better = mlops_cli(project, "models", "promote", "iris-clf", "3", *GATE)
    assert better.returncode == 0, better.stderr
    assert "promoted iris-clf v3 to production (was v1)" in better.stdout
    assert better.stderr == ""
    assert aliases(project) == {"production": 3}

    # 5. promoting it again is a no-op that still succeeds (re-run pipelines stay green)
    again = mlops_cli(project, "models", "promote", "iris-clf", "3", *GATE)
    assert again.returncode == 0, again.stderr
    assert "production already points at iris-clf v3; nothing changed" in again.stdout
    assert history(project, "production") == [1, 3]

    # 6. something broke in production: roll back
    back = mlops_cli(project, "models", "rollback", "iris-clf", "--alias", "production")
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip() == "rolled back production of iris-clf: v3 -> v1"
    assert aliases(project) == {"production": 1}
    assert history(project, "production") == [1, 3, 1]


def test_promote_json_on_success_and_failure(project: Path, trained: dict[str, Any]) -> None:
    ok = mlops_cli(project, "models", "promote", "iris-clf", "v3", *GATE, "--json")
    assert ok.returncode == 0, ok.stderr
    data = strict_json(ok.stdout)
    assert data["passed"] is True and data["promoted"] is True
    assert (data["name"], data["version"], data["alias"]) == ("iris-clf", 3, "production")
    assert (data["previous"], data["current"]) == (None, 3)
    assert data["baseline"] == {"alias": "production", "version": None}
    assert [c["kind"] for c in data["checks"]] == ["require", "better_than"]
    assert data["checks"][0]["actual"] == trained["metrics"][3]["accuracy"]

    bad = mlops_cli(project, "models", "promote", "iris-clf", "1", *GATE, "--json")
    assert_failed(bad, "was not promoted")
    data = strict_json(bad.stdout)
    assert data["passed"] is False and data["promoted"] is False
    assert (data["previous"], data["current"]) == (3, 3)
    assert data["baseline"] == {"alias": "production", "version": 3}
    [failed] = [c for c in data["checks"] if not c["passed"]]
    assert failed == {
        "requirement": "metrics.accuracy better than production (v3)",
        "kind": "better_than",
        "actual": trained["metrics"][1]["accuracy"],
        "expected": trained["metrics"][3]["accuracy"],
        "passed": False,
        "reason": failed["reason"],
    }
    assert aliases(project) == {"production": 3}


def test_dry_run_moves_nothing(project: Path) -> None:
    would = mlops_cli(project, "models", "promote", "iris-clf", "3", *GATE, "--dry-run")
    assert would.returncode == 0, would.stderr
    assert "dry run: iris-clf v3 would be promoted to production (now unset); nothing changed" in would.stdout
    wouldnt = mlops_cli(project, "models", "promote", "iris-clf", "2", *GATE, "--dry-run", "--json")
    assert_failed(wouldnt, "iris-clf v2 was not promoted; production is still unset. Failed check: ")
    assert strict_json(wouldnt.stdout)["dry_run"] is True
    assert aliases(project) == {}


def test_missing_metric_tag_requirement_and_explicit_metric(project: Path, trained: dict[str, Any]) -> None:
    missing = mlops_cli(project, "models", "promote", "iris-clf", "3", "--alias", "production", "--require", "metrics.f1 >= 0.5")
    assert_failed(missing, "metrics.f1 >= 0.5: metric f1 was not logged")

    approved = ["--alias", "production", "--require", "tags.approved = 'yes'"]
    unapproved = mlops_cli(project, "models", "promote", "iris-clf", "1", *approved)
    assert_failed(unapproved, "tag approved is not set")
    assert mlops_cli(project, "models", "promote", "iris-clf", "3", *approved).returncode == 0
    assert aliases(project) == {"production": 3}

    # --metric log_loss: lower is better by its name; v4's loss is higher than v3's
    by_loss = ["--alias", "production", "--require-better-than", "production", "--metric", "log_loss"]
    loss = trained["metrics"]
    line = assert_failed(mlops_cli(project, "models", "promote", "iris-clf", "4", *by_loss))
    assert f"{loss[4]['log_loss']!r} is not below {loss[3]['log_loss']!r} of production (v3)" in line
    assert "[lower is better: the name says loss/error]" in line
    # --mode max turns it round (an odd wish, but an explicit one)
    assert mlops_cli(project, "models", "promote", "iris-clf", "4", *by_loss, "--mode", "max").returncode == 0
    assert aliases(project) == {"production": 4}


def test_promote_by_alias_and_rollback_without_history(project: Path) -> None:
    staged = mlops_cli(project, "models", "promote", "iris-clf", "3", "--alias", "staging")
    assert staged.returncode == 0, staged.stderr
    assert "no requirements given" in staged.stderr
    # VERSION may name another alias: release what staging holds
    release = mlops_cli(project, "models", "promote", "iris-clf", "@staging", *GATE)
    assert release.returncode == 0, release.stderr
    assert aliases(project) == {"production": 3, "staging": 3}
    # staging was never anywhere else: nothing to roll back to, nothing changed
    nothing = mlops_cli(project, "models", "rollback", "iris-clf", "--alias", "staging")
    assert_failed(nothing, "nothing to roll back to")
    never = mlops_cli(project, "models", "rollback", "iris-clf", "--alias", "canary", "--json")
    assert_failed(never, "has no alias 'canary'")
    assert aliases(project) == {"production": 3, "staging": 3}
    # two moves of production, then --json rollback
    assert mlops_cli(project, "models", "promote", "iris-clf", "1", "--alias", "production").returncode == 0
    back = mlops_cli(project, "models", "rollback", "iris-clf", "--alias", "production", "--json")
    assert back.returncode == 0, back.stderr
    assert strict_json(back.stdout) == {"name": "iris-clf", "alias": "production", "previous": 1, "current": 3}


# -- bad input: typed errors, exit 1, nothing changed ---------------------------------------
@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["models", "show", "nope"], ["no model called 'nope'", "registered models: iris-clf"]),
        (["models", "show", "iris-clf@9"], ["model 'iris-clf' has no version 9", "the latest is v4"]),
        (["models", "show", "iris-clf@canary", "--json"], ["model 'iris-clf' has no version 'canary'"]),
        (["models", "show", "iris-clf@@canary"], ["has no alias 'canary'"]),
        (["models", "card", "nope@1"], ["no model called 'nope'"]),
        (["models", "promote", "nope", "1", *GATE], ["no model called 'nope'"]),
        (["models", "promote", "iris-clf", "9", *GATE], ["has no version 9"]),
        (["models", "promote", "iris-clf", "1", "--alias", "production", "--require", "metrics.accuracy >"], ["invalid --require", "ends too early"]),
        (["models", "promote", "iris-clf", "1", "--alias", "production", "--require", "params.C = 1"], ["params.C is not something a model version has"]),
        (["models", "promote", "iris-clf", "1", "--alias", "production", "--require-better-than", "production"], ["needs a metric"]),
        (["models", "promote", "iris-clf", "1", "--alias", "latest"], ["alias 'latest' is reserved"]),
        (["models", "rollback", "nope", "--alias", "production"], ["no model called 'nope'"]),
    ],
)
def test_bad_input_exits_1_with_a_clear_message(project: Path, args: list[str], fragments: list[str]) -> None:
    assert_failed(mlops_cli(project, *args), *fragments)
    assert aliases(project) == {}


@pytest.mark.parametrize(
    "args",
    [
        ["models", "promote", "iris-clf", "1"],  # --alias is required
        ["models", "promote", "iris-clf", "1", "--alias", "production", "--mode", "up"],
        ["models", "promote", "iris-clf", "1", "--alias", "production", "--metric", "accuracy"],
        ["models", "show", "iris-clf@"],
        ["models", "nope"],
    ],
)
def test_usage_errors_exit_2(project: Path, args: list[str]) -> None:
    proc = mlops_cli(project, *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""


# -- listings --------------------------------------------------------------------------------
def test_models_ls(project: Path) -> None:
    assert mlops_cli(project, "models", "promote", "iris-clf", "3", "--alias", "production").returncode == 0
    listing = mlops_cli(project, "models", "ls", "--json")
    assert listing.returncode == 0, listing.stderr
    [item] = strict_json(listing.stdout)
    assert {k: item[k] for k in ("name", "versions", "latest", "flavor", "aliases")} == {
        "name": "iris-clf",
        "versions": 4,
        "latest": 4,
        "flavor": "sklearn",
        "aliases": {"production": 3},
    }
    table = mlops_cli(project, "models", "ls")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["name", "versions", "latest", "flavor", "aliases", "updated"]
    assert re.search(r"iris-clf\s+4\s+v4\s+sklearn\s+production=v3", table.stdout)


def test_models_ls_empty(tmp_path: Path) -> None:
    mlops.Workspace.open(tmp_path).close()
    assert strict_json(mlops_cli(tmp_path, "models", "ls", "--json").stdout) == []
    empty = mlops_cli(tmp_path, "models", "ls")
    assert empty.returncode == 0 and empty.stdout == "" and "no models registered" in empty.stderr


def test_models_show(project: Path, trained: dict[str, Any]) -> None:
    import sklearn

    assert mlops_cli(project, "models", "promote", "iris-clf", "3", "--alias", "production").returncode == 0
    by_alias = mlops_cli(project, "models", "show", "iris-clf@production", "--json")
    assert by_alias.returncode == 0, by_alias.stderr
    data = strict_json(by_alias.stdout)
    assert (data["name"], data["version"], data["flavor"], data["aliases"]) == ("iris-clf", 3, "sklearn", ["production"])
    assert data["metrics"] == trained["metrics"][3]
    assert data["tags"] == {"approved": "yes"}
    assert data["run_id"] and re.fullmatch(r"[0-9a-f]{64}", data["id"])
    assert data["signature"]["inputs"] == [{"type": "tensor", "dtype": "float64", "shape": [-1, 4]}]
    assert f"scikit-learn=={sklearn.__version__}" in data["requirements"]
    # every way of naming v3 shows the same version
    for ref in ("iris-clf@3", "iris-clf@v3", f"iris-clf@{data['id'][:10]}", "iris-clf@@production"):
        assert strict_json(mlops_cli(project, "models", "show", ref, "--json").stdout)["id"] == data["id"]
    assert strict_json(mlops_cli(project, "models", "show", "iris-clf", "--json").stdout)["version"] == 4
    text = mlops_cli(project, "-w", str(project), "models", "show", "iris-clf@3")
    assert text.returncode == 0
    assert text.stdout.startswith("Model iris-clf v3\n")
    for fragment in ("flavor", "sklearn", "production", data["run_id"], "accuracy", "approved", "tensor (*, 4)", "scikit-learn=="):
        assert fragment in text.stdout


def test_models_card(project: Path) -> None:
    card = mlops_cli(project, "models", "card", "iris-clf@3")
    assert card.returncode == 0, card.stderr
    assert card.stdout.startswith("# ") and "iris-clf" in card.stdout and "accuracy" in card.stdout
    out = project / "card.html"
    html = mlops_cli(project, "models", "card", "iris-clf@3", "--html", "-o", str(out))
    assert html.returncode == 0, html.stderr
    assert html.stdout == "" and f"to {out}" in html.stderr
    page = out.read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "iris-clf" in page


# -- docs/ci-cd.md stays true ------------------------------------------------------------------
_KEY_LINES = ("promoted ", "rolled back ", "error: ", "dry run: ", "no requirements given", "production already")


def _normalized(line: str) -> str:
    """A key line with its floats rounded, so a scikit-learn upgrade does not break the page."""
    return re.sub(r"\d+\.\d{5,}", lambda m: f"{float(m.group()):.4g}", line.rstrip())


def _doc_session() -> list[tuple[str, list[str], int]]:
    """(command, the output the page shows, the exit code it shows) for each ``$`` line of ci-cd.md."""
    steps: list[tuple[str, list[str], int]] = []
    for block in re.findall(r"```console\n(.*?)```", DOCS_CI_CD.read_text(), re.DOTALL):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            command = lines[i]
            assert command.startswith("$ "), command
            output: list[str] = []
            code = 0
            i += 1
            while i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            if i < len(lines) and lines[i] == "$ echo $?":
                code = int(lines[i + 1])
                i += 2
            steps.append((command[2:], output, code))
    return steps


def test_ci_cd_page_session_replays(tmp_path: Path) -> None:
    """Every command of docs/ci-cd.md runs in order, exits as shown, and prints the key lines shown."""
    (tmp_path / "train.py").write_text(_doc_train_script())
    steps = _doc_session()
    assert len(steps) >= 12
    for command, shown, code in steps:
        argv = shlex.split(command)
        if argv[0] == "python":
            proc = subprocess.run(
                [sys.executable, *argv[1:]], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180
            )
        else:
            assert argv[0] == "mlops", command
            proc = mlops_cli(tmp_path, *argv[1:])
        assert proc.returncode == code, (command, proc.stdout, proc.stderr)
        actual = [_normalized(line) for line in (proc.stdout + proc.stderr).splitlines()]
        for line in shown:
            if line.startswith(_KEY_LINES):
                assert _normalized(line) in actual, (command, line, actual)
        if argv[0] == "python":
            assert json.loads(proc.stdout)["version"] == json.loads(shown[0])["version"]
        if "--json" in argv:
            text = "\n".join(line for line in shown if not line.startswith("error: "))
            assert strict_json(proc.stdout) == strict_json(text), command
