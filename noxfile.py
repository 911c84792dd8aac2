"""Developer and CI sessions. Each installs everything it needs into its own venv.

    nox -s quickstart   # run examples/quickstart.py in a fresh folder
    nox -s tests        # the whole test suite (what CI runs)
    nox -s tests_fast   # everything not marked slow
    nox -s lint typecheck
    nox -s bench        # benchmarks side by side with MLflow (installed here only)

torch is always installed through constraints.txt (the CPU build).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
PYTHON = "3.11"

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, *args: str) -> None:
    session.install(*CONSTRAINTS, *args)


@nox.session(python=PYTHON)
def quickstart(session: nox.Session) -> None:
    """Train a real scikit-learn model, track three runs, print the runs table."""
    _install(session, "-e", f"{ROOT}[sklearn]")
    workdir = Path(tempfile.mkdtemp(prefix="mlops-quickstart-"))
    session.chdir(workdir)
    session.run("python", str(ROOT / "examples" / "quickstart.py"))
    session.run("mlops", "runs", "ls", "--experiment", "quickstart")


def plugin_dirs() -> list[Path]:
    """Every plugin distribution under plugins/ (each has its own pyproject and tests)."""
    return sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())


def _install_for_tests(session: nox.Session) -> list[str]:
    """Core and every plugin with their test extras; returns the test folders."""
    session.run("bash", str(ROOT / "scripts" / "ensure-postgres.sh"), external=True)
    session.run("bash", str(ROOT / "scripts" / "ensure-azurite.sh"), external=True)  # Azure Blob emulator (npm)
    plugins = plugin_dirs()
    editable = [arg for p in plugins for arg in ("-e", f"{p}[test]")]
    _install(session, "-e", f"{ROOT}[test,postgres]", *editable)
    return ["tests", *(str(p.relative_to(ROOT) / "tests") for p in plugins if (p / "tests").is_dir())]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole suite, core and plugins: fast tests in parallel, then the slow ones."""
    paths = _install_for_tests(session)
    env = {"PYTHONFAULTHANDLER": "1"}
    args = session.posargs
    if args:
        session.run("pytest", *args, env=env)
        return
    workers = "2" if (os.cpu_count() or 1) >= 2 else "0"
    session.run("pytest", *paths, "-m", "not slow", "-n", workers, "-q", "-rs", env=env)
    session.run("pytest", *paths, "-m", "slow", "-q", "-rs", env=env, success_codes=[0, 5])


@nox.session(python=PYTHON)
def tests_fast(session: nox.Session) -> None:
    """Everything not marked slow."""
    paths = _install_for_tests(session)
    session.run("pytest", *paths, "-m", "not slow", "-q", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    _install(session, "ruff")
    session.run("ruff", "check", "mlops_sdk", "tests", "bench", "examples", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    _install(session, "-e", f"{ROOT}[test]", "mypy")
    session.run("mypy", "mlops_sdk")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against MLflow on the same machine, in the same run."""
    session.run("bash", str(ROOT / "scripts" / "ensure-postgres.sh"), external=True)
    _install(session, "-e", f"{ROOT}[sklearn,torch,postgres]", "mlflow")  # torch, skops, scikit-learn pinned by constraints.txt
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    session.run("python", str(ROOT / "bench" / "tracking_bench.py"), "--out", str(out / "tracking.json"), *session.posargs)
    quick = ["--quick"] if "--quick" in session.posargs else []  # the other options are tracking_bench's
    session.run("python", str(ROOT / "bench" / "tracking_load_bench.py"), "--out", str(out / "tracking_load.json"), *quick)
    session.run("python", str(ROOT / "bench" / "model_bench.py"), "--out", str(out / "models.json"), *quick)
    _install(session, "dvc>=3.50")  # the dataset benchmark's peer; like MLflow, installed here only
    session.run("python", str(ROOT / "bench" / "data_bench.py"), "--out", str(out / "data.json"), *quick)
    # Cloud storage vs DVC and the provider SDKs, on loopback servers: moto (S3) and Azurite (Azure Blob).
    # DVC's remotes (dvc-s3, dvc-azure) and the servers are installed here only; the plugins editable from plugins/.
    session.run("bash", str(ROOT / "scripts" / "ensure-azurite.sh"), external=True)  # Azure Blob emulator (npm)
    clouds = [ROOT / "plugins" / name for name in ("mlops-sdk-s3", "mlops-sdk-azure")]
    editable = [arg for p in clouds if (p / "pyproject.toml").is_file() for arg in ("-e", str(p))]
    _install(session, "dvc-s3", "dvc-azure", "moto[server]", "boto3", "azure-storage-blob", *editable)
    session.run("python", str(ROOT / "bench" / "cloud_bench.py"), "--out", str(out / "cloud.json"), *quick)
    ray = ROOT / "plugins" / "mlops-sdk-ray"  # jobs on ray://local too, when the plugin is in the tree
    ray_args = ["--ray"] if (ray / "pyproject.toml").is_file() else []
    if ray_args:
        _install(session, "-e", str(ray))
    session.run("python", str(ROOT / "bench" / "compute_bench.py"), "--out", str(out / "compute.json"), *ray_args, *quick)
    session.run("python", str(ROOT / "bench" / "serving_bench.py"), "--out", str(out / "serving.json"), *quick)
    _install(session, "evidently", "pandas<3")  # the drift benchmark's peer (evidently 0.7 needs pandas 2); here only
    session.run("python", str(ROOT / "bench" / "drift_bench.py"), "--out", str(out / "drift.json"), *quick)
    session.run("python", str(ROOT / "bench" / "pipeline_bench.py"), "--out", str(out / "pipeline.json"), *quick)
    # needs a CUDA GPU (and a CUDA build of torch); elsewhere it says so and measures nothing
    session.run("python", str(ROOT / "bench" / "gpu_logging_bench.py"), "--out", str(out / "gpu_logging.json"), *quick)
