"""Experiment-tracking benchmark: mlops-sdk vs MLflow, both on a local SQLite store.

Run from the repository root:

    python bench/tracking_bench.py                 # full run (a few minutes on 2 cores)
    python bench/tracking_bench.py --quick         # smaller sizes, for a smoke test
    python bench/tracking_bench.py --out bench/results/tracking.json

Both tools must be importable from the interpreter that runs this script
(``nox -s bench`` installs MLflow into the bench session only). A tool that is
not installed shows as ``n/a``; a tool that fails shows as ``error`` and its
traceback is printed under the table and stored in the JSON.

Method
------
* Every (tool, benchmark) pair runs in its own fresh Python process, with its
  current directory and its stores in a fresh temporary directory; the two
  tools are never imported into the same process. Each repeat of a benchmark
  uses a further fresh sub-directory (new SQLite file, new blob store).
* Times are ``time.perf_counter`` wall times. Repeated measurements report
  the median.
* mlops-sdk: ``Workspace.open(tracking="sqlite:////…/tracking.db",
  storage="file:///…/store")``. MLflow: ``mlflow.set_tracking_uri("sqlite:///…")``
  with the experiment's artifact location in the same temp dir.
* Every logging benchmark reads back what it wrote (untimed) and fails if a
  point or param is missing, so a tool cannot win by dropping data.
* ``ratio`` = MLflow ÷ mlops-sdk: above 1 means mlops-sdk is faster.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import (
    TIMES,
    add_worker_options,
    fresh_dir,
    import_time,
    machine_info,
    markdown_table,
    perf_counter,
    serve_worker_mode,
    write_json,
)
from _timing import fmt_ratio as ratio
from _timing import fmt_seconds as fmt

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent

# ----------------------------------------------------------------------------- sizes

# Per-variant sizes. MLflow's synchronous path costs milliseconds per call, and
# with default settings its synchronous=False path writes one SQLite
# transaction per queued item at run end (seconds per thousand points), so
# those variants use fewer calls: the reported figures are per call, so only
# the wall time of the benchmark changes, not the comparison.
FULL: dict[str, Any] = {
    "log_metric": {
        "mlops": (20_000, 7),  # (calls, repeats)
        "mlflow": (1_000, 1),
        "mlflow_async": (2_000, 1),
        "mlflow_async_buf": (20_000, 1),
    },
    "log_param": {
        "mlops": (1_000, 5),
        "mlflow": (500, 1),
        "mlflow_async": (500, 1),
        "mlflow_async_buf": (1_000, 1),
    },
    "empty_runs": 100,
    "empty_runs_repeats": 3,
    "history_points": 100_000,
    "history_read_repeats": 3,
    "import_repeats": 7,
    "worker_timeout_s": 240,
}

QUICK: dict[str, Any] = {
    "log_metric": {
        "mlops": (2_000, 1),
        "mlflow": (200, 1),
        "mlflow_async": (200, 1),
        "mlflow_async_buf": (2_000, 1),
    },
    "log_param": {
        "mlops": (200, 1),
        "mlflow": (100, 1),
        "mlflow_async": (100, 1),
        "mlflow_async_buf": (200, 1),
    },
    "empty_runs": 20,
    "empty_runs_repeats": 1,
    "history_points": 10_000,
    "history_read_repeats": 2,
    "import_repeats": 3,
    "worker_timeout_s": 120,
}

# Variants: mlops-sdk; MLflow synchronous; MLflow synchronous=False with its
# default settings; and synchronous=False with MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1,
# which lets MLflow merge queued items into log_batch calls (its fastest async setup).
VARIANT_ENV = {"mlflow_async_buf": {"MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1"}}

TOOLS = {"mlops": "mlops_sdk", "mlflow": "mlflow"}


# ============================================================================= workers
# Everything below up to "orchestration" runs inside a worker process that
# imports exactly one of the two tools.


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


class Ours:
    """mlops-sdk driver."""

    name = "mlops"

    def __init__(self) -> None:
        import mlops_sdk

        self.m = mlops_sdk
        self.ws: Any = None
        self.exp: Any = None

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        try:
            return version("mlops-sdk")
        except Exception:  # not installed as a distribution, only importable
            import mlops_sdk

            return str(getattr(mlops_sdk, "__version__", "unknown"))

    def open(self, root: Path, experiment: str = "b") -> float:
        """Open a fresh store under ``root`` and get/create the experiment; returns seconds."""
        root.mkdir(parents=True, exist_ok=True)
        t0 = perf_counter()
        self.ws = self.m.Workspace.open(
            tracking=f"sqlite:///{root / 'tracking.db'}",
            storage=(root / "store").as_uri(),
        )
        self.exp = self.ws.experiment(experiment)
        return perf_counter() - t0

    def reopen(self, root: Path) -> None:
        self.ws = self.m.Workspace.open(
            tracking=f"sqlite:///{root / 'tracking.db'}",
            storage=(root / "store").as_uri(),
        )

    def log_metrics_run(self, n: int) -> tuple[str, float, float]:
        with self.exp.start_run() as run:
            t0 = perf_counter()
            for i in range(n):
                run.log_metric("loss", i * 1e-3, step=i)
            t1 = perf_counter()
        t2 = perf_counter()
        return run.id, t1 - t0, t2 - t1

    def log_params_run(self, n: int) -> tuple[str, float, float]:
        with self.exp.start_run() as run:
            t0 = perf_counter()
            for i in range(n):
                run.log_param(f"p{i}", i)
            t1 = perf_counter()
        t2 = perf_counter()
        return run.id, t1 - t0, t2 - t1

    def empty_runs(self, n: int) -> float:
        t0 = perf_counter()
        for _ in range(n):
            with self.exp.start_run():
                pass
        return perf_counter() - t0

    def bulk_write_history(self, n: int) -> tuple[str, float]:
        """Fastest documented way to write n points: log_metric in a loop + run end."""
        run_id, calls, end = self.log_metrics_run(n)
        return run_id, calls + end

    def read_history(self, run_id: str) -> int:
        return len(self.ws.get_run(run_id).metric_history("loss"))

    def check_history(self, run_id: str, n: int) -> None:
        hist = self.ws.get_run(run_id).metric_history("loss")
        _check(len(hist) == n, f"mlops-sdk: expected {n} points, read back {len(hist)}")
        steps = [p.step for p in hist]
        _check(steps == list(range(n)), "mlops-sdk: metric history not in step order / steps wrong")
        _check(abs(hist[-1].value - (n - 1) * 1e-3) < 1e-9, "mlops-sdk: last value wrong")

    def check_params(self, run_id: str, n: int) -> None:
        params = self.ws.get_run(run_id).params
        got = sum(1 for k in params if k.startswith("p") and k[1:].isdigit())
        _check(got == n, f"mlops-sdk: expected {n} params, read back {got}")


class MLflow:
    """MLflow driver; ``synchronous`` selects mlflow.log_metric(..., synchronous=…)."""

    name = "mlflow"

    def __init__(self, synchronous: bool = True) -> None:
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.ERROR)
        import mlflow
        from mlflow import MlflowClient

        self.mlflow = mlflow
        self.MlflowClient = MlflowClient
        self.synchronous = synchronous
        self.exp_id: str | None = None

    @staticmethod
    def version() -> str:
        import mlflow

        return str(mlflow.__version__)

    def open(self, root: Path, experiment: str = "b") -> float:
        root.mkdir(parents=True, exist_ok=True)
        t0 = perf_counter()
        self.mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        self.exp_id = self.mlflow.create_experiment(
            experiment, artifact_location=(root / "artifacts").as_uri()
        )
        self.mlflow.set_experiment(experiment_id=self.exp_id)
        return perf_counter() - t0

    def reopen(self, root: Path) -> None:
        self.mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        self.client = self.MlflowClient()

    def log_metrics_run(self, n: int) -> tuple[str, float, float]:
        mlflow, sync = self.mlflow, self.synchronous
        with mlflow.start_run() as run:
            t0 = perf_counter()
            for i in range(n):
                mlflow.log_metric("loss", i * 1e-3, step=i, synchronous=sync)
            t1 = perf_counter()
        # end_run -> set_terminated, which waits for the async queue to drain.
        t2 = perf_counter()
        return run.info.run_id, t1 - t0, t2 - t1

    def log_params_run(self, n: int) -> tuple[str, float, float]:
        mlflow, sync = self.mlflow, self.synchronous
        with mlflow.start_run() as run:
            t0 = perf_counter()
            for i in range(n):
                mlflow.log_param(f"p{i}", i, synchronous=sync)
            t1 = perf_counter()
        t2 = perf_counter()
        return run.info.run_id, t1 - t0, t2 - t1

    def empty_runs(self, n: int) -> float:
        mlflow = self.mlflow
        t0 = perf_counter()
        for _ in range(n):
            with mlflow.start_run():
                pass
        return perf_counter() - t0

    def bulk_write_history(self, n: int) -> tuple[str, float]:
        """MLflow's fastest path: log_batch with 1,000 metrics per call (its maximum)."""
        from mlflow.entities import Metric

        mlflow = self.mlflow
        client = self.MlflowClient()
        t0 = perf_counter()
        with mlflow.start_run() as run:
            rid = run.info.run_id
            ts = 1_700_000_000_000
            for start in range(0, n, 1000):
                batch = [
                    Metric("loss", i * 1e-3, ts + i, i) for i in range(start, min(n, start + 1000))
                ]
                client.log_batch(rid, metrics=batch)
        return rid, perf_counter() - t0

    def read_history(self, run_id: str) -> int:
        return len(self.client.get_metric_history(run_id, "loss"))

    def check_history(self, run_id: str, n: int) -> None:
        hist = self.MlflowClient().get_metric_history(run_id, "loss")
        _check(len(hist) == n, f"MLflow: expected {n} points, read back {len(hist)}")

    def check_params(self, run_id: str, n: int) -> None:
        params = self.MlflowClient().get_run(run_id).data.params
        got = sum(1 for k in params if k.startswith("p") and k[1:].isdigit())
        _check(got == n, f"MLflow: expected {n} params, read back {got}")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


def _driver(tool: str) -> Any:
    if tool == "mlops":
        return Ours()
    if tool == "mlflow":
        return MLflow(synchronous=True)
    if tool in ("mlflow_async", "mlflow_async_buf"):
        return MLflow(synchronous=False)
    raise ValueError(tool)


def worker(tool: str, bench: str, cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"tool": tool, "bench": bench}

    if bench == "history_write":
        d = _driver(tool)
        root = workdir / "store"
        n = cfg["history_points"]
        out["open_s"] = d.open(root)
        run_id, write_s = d.bulk_write_history(n)
        out.update(run_id=run_id, root=str(root), points=n, write_s=write_s)
        d.check_history(run_id, n)
        out["version"] = d.version()
        return out

    if bench == "history_read":
        d = _driver(tool)
        root = Path(cfg["root"])
        t0 = perf_counter()
        d.reopen(root)
        out["reopen_s"] = perf_counter() - t0
        t0 = perf_counter()
        got = d.read_history(cfg["run_id"])
        out["first_read_s"] = perf_counter() - t0
        _check(
            got == cfg["history_points"], f"{tool}: read {got} of {cfg['history_points']} points"
        )
        reads = []
        for _ in range(cfg["history_read_repeats"]):
            t0 = perf_counter()
            d.read_history(cfg["run_id"])
            reads.append(perf_counter() - t0)
        out["repeat_reads_s"] = reads
        out["repeat_read_s"] = _median(reads)
        out["version"] = d.version()
        return out

    d = _driver(tool)
    out["version"] = d.version()

    if bench == "log_metric":
        n, reps = cfg["log_metric"][tool]
        opens, calls, ends = [], [], []
        for r in range(reps):
            opens.append(d.open(workdir / f"rep{r}"))
            run_id, c, e = d.log_metrics_run(n)
            calls.append(c)
            ends.append(e)
            d.check_history(run_id, n)
        totals = [c + e for c, e in zip(calls, ends, strict=True)]
        out.update(
            n=n,
            repeats=reps,
            open_s=_median(opens),
            open_first_s=opens[0],
            calls_s=_median(calls),
            end_s=_median(ends),
            total_s=_median(totals),
            per_call_s=_median(calls) / n,
            per_point_total_s=_median(totals) / n,
            raw={"open_s": opens, "calls_s": calls, "end_s": ends},
        )
        return out

    if bench == "log_param":
        n, reps = cfg["log_param"][tool]
        calls, ends = [], []
        for r in range(reps):
            d.open(workdir / f"rep{r}")
            run_id, c, e = d.log_params_run(n)
            calls.append(c)
            ends.append(e)
            d.check_params(run_id, n)
        totals = [c + e for c, e in zip(calls, ends, strict=True)]
        out.update(
            n=n,
            repeats=reps,
            calls_s=_median(calls),
            end_s=_median(ends),
            per_call_s=_median(calls) / n,
            per_param_total_s=_median(totals) / n,
            raw={"calls_s": calls, "end_s": ends},
        )
        return out

    if bench in ("empty_runs", "empty_runs_git"):
        n = cfg["empty_runs"]
        times = []
        for r in range(cfg["empty_runs_repeats"]):
            d.open(workdir / f"rep{r}")
            times.append(d.empty_runs(n))
        out.update(n=n, total_s=_median(times), per_run_s=_median(times) / n, raw=times)
        return out

    raise ValueError(f"unknown benchmark {bench!r}")


# ============================================================================= orchestration


def tool_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def run_worker(
    tool: str, bench: str, cfg: dict[str, Any], available: dict[str, bool]
) -> dict[str, Any]:
    base = "mlflow" if tool.startswith("mlflow") else tool
    if not available[base]:
        return {"tool": tool, "bench": bench, "skipped": f"{TOOLS[base]} is not installed"}
    keep = bench == "history_write"  # the read worker needs the store
    workdir = Path(tempfile.mkdtemp(prefix=f"mlops-bench-{tool}-{bench}-")).resolve()
    cwd = workdir
    if bench == "empty_runs_git":
        try:
            cwd = make_git_checkout(workdir / "project")
        except (OSError, subprocess.CalledProcessError) as exc:
            _rmtree(workdir)
            return {"tool": tool, "bench": bench, "skipped": f"cannot create a git checkout: {exc}"}
    result_file = workdir / "result.json"
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLOPS_TRACKING", None)
    env.pop("MLOPS_STORAGE", None)
    env.pop("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", None)
    env["GIT_PYTHON_REFRESH"] = "quiet"
    env.update(VARIANT_ENV.get(tool, {}))
    cmd = [
        sys.executable,
        str(HERE),
        "--worker",
        tool,
        bench,
        "--config",
        json.dumps(cfg),
        "--workdir",
        str(workdir),
        "--result-file",
        str(result_file),
    ]
    print(f"  running {bench:<14} {tool:<13}", end="", flush=True)
    t0 = perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=cfg["worker_timeout_s"],
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        print(" TIMEOUT")
        _rmtree(workdir)
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {
            "tool": tool,
            "bench": bench,
            "error": f"timed out after {cfg['worker_timeout_s']} s\n{err[-4000:]}",
        }
    wall = perf_counter() - t0
    if proc.returncode != 0 or not result_file.exists():
        print(f" ERROR (exit {proc.returncode}, {wall:.1f} s)")
        _rmtree(workdir)
        tail = (proc.stderr or "")[-6000:] + (proc.stdout or "")[-2000:]
        return {"tool": tool, "bench": bench, "error": tail.strip()}
    res = json.loads(result_file.read_text())
    print(f" ok ({wall:.1f} s)")
    if keep:
        res["_workdir"] = str(workdir)
    else:
        _rmtree(workdir)
    return res


def make_git_checkout(path: Path) -> Path:
    """A small git checkout with one commit and one uncommitted change, like a project."""
    path.mkdir(parents=True)
    (path / "train.py").write_text("print('train')\n" * 50)
    (path / "README.md").write_text("# project\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run([*git, *args], cwd=path, check=True, capture_output=True)
    (path / "train.py").write_text("print('train v2')\n" * 50)  # a dirty tree
    return path


def _rmtree(p: Path) -> None:
    import shutil

    shutil.rmtree(p, ignore_errors=True)


def run_all(cfg: dict[str, Any], benches: list[str]) -> dict[str, Any]:
    available = {k: tool_available(v) for k, v in TOOLS.items()}
    results: dict[str, dict[str, Any]] = {}

    def put(res: dict[str, Any]) -> None:
        results[f"{res['bench']}/{res['tool']}"] = res

    for bench in ("log_metric", "log_param"):
        if bench in benches:
            for tool in ("mlops", "mlflow", "mlflow_async", "mlflow_async_buf"):
                put(run_worker(tool, bench, cfg, available))

    if "empty_runs" in benches:
        for bench in ("empty_runs", "empty_runs_git"):
            for tool in ("mlops", "mlflow"):
                put(run_worker(tool, bench, cfg, available))

    if "history" in benches:
        for tool in ("mlops", "mlflow"):
            w = run_worker(tool, "history_write", cfg, available)
            put(w)
            if "_workdir" in w:
                rcfg = dict(cfg, root=w["root"], run_id=w["run_id"])
                try:
                    put(run_worker(tool, "history_read", rcfg, available))
                finally:
                    _rmtree(Path(w.pop("_workdir")))
            elif "skipped" in w:
                put({"tool": tool, "bench": "history_read", "skipped": w["skipped"]})
            else:
                put({"tool": tool, "bench": "history_read", "error": "history_write failed"})

    if "import" in benches:
        for tool, module in TOOLS.items():
            print(f"  running {'import':<14} {tool:<13}", end="", flush=True)
            if not available[tool]:
                put({"tool": tool, "bench": "import", "skipped": f"{module} is not installed"})
                print(" skipped")
                continue
            try:
                with fresh_dir("import"):
                    r = import_time(module, repeats=cfg["import_repeats"])
                put({"tool": tool, "bench": "import", **r})
                print(" ok")
            except Exception:
                put({"tool": tool, "bench": "import", "error": traceback.format_exc()})
                print(" ERROR")
    return results


# ----------------------------------------------------------------------------- reporting


def _get(results: dict[str, Any], key: str, field: str) -> float | None:
    r = results.get(key)
    if not r:
        return None
    v = r.get(field)
    return v if isinstance(v, int | float) else None


def _cell(results: dict[str, Any], key: str, field: str, unit: str, note: str = "") -> str:
    r = results.get(key)
    if r is None:
        return "n/a"
    if "error" in r:
        return "error"
    if "skipped" in r:
        return "n/a"
    v = _get(results, key, field)
    return fmt(v, unit) + note if v is not None else "n/a"


MLFLOW_LABEL = {
    "mlflow": "MLflow synchronous",
    "mlflow_async": "MLflow synchronous=False",
    "mlflow_async_buf": "MLflow synchronous=False + buffering",
}


def build_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []

    def n_of(key: str) -> str:
        r = res.get(key) or {}
        return f"{r['n']:,}" if "n" in r else "?"

    def row(label: str, ok: str, of: str, mk: str, mf: str, unit: str, mnote: bool = False) -> None:
        note = f" (n={n_of(mk)})" if mnote and "n" in (res.get(mk) or {}) else ""
        rows.append(
            (
                label,
                _cell(res, ok, of, unit),
                _cell(res, mk, mf, unit, note),
                ratio(_get(res, mk, mf), _get(res, ok, of)),
            )
        )

    lm, lp = "log_metric", "log_param"
    if any(k.startswith(f"{lm}/") for k in res):
        n = n_of(f"{lm}/mlops")
        row(
            "open a new SQLite store + create experiment (first in a fresh process)",
            f"{lm}/mlops",
            "open_first_s",
            f"{lm}/mlflow",
            "open_first_s",
            "ms",
        )
        for v in ("mlflow", "mlflow_async", "mlflow_async_buf"):
            row(
                f"log_metric: per call (n={n}) — vs {MLFLOW_LABEL[v]}",
                f"{lm}/mlops",
                "per_call_s",
                f"{lm}/{v}",
                "per_call_s",
                "us",
                mnote=True,
            )
        row(
            f"log_metric: run end after {n} points (flush) — vs "
            f"{MLFLOW_LABEL['mlflow_async_buf']} end_run (n={n_of(f'{lm}/mlflow_async_buf')})",
            f"{lm}/mlops",
            "end_s",
            f"{lm}/mlflow_async_buf",
            "end_s",
            "ms",
        )
        for v in ("mlflow", "mlflow_async", "mlflow_async_buf"):
            row(
                f"log_metric: calls + run end, per point — vs {MLFLOW_LABEL[v]}",
                f"{lm}/mlops",
                "per_point_total_s",
                f"{lm}/{v}",
                "per_point_total_s",
                "us",
                mnote=True,
            )
    if any(k.startswith(f"{lp}/") for k in res):
        n = n_of(f"{lp}/mlops")
        for v in ("mlflow", "mlflow_async", "mlflow_async_buf"):
            row(
                f"log_param: per call (n={n}) — vs {MLFLOW_LABEL[v]}",
                f"{lp}/mlops",
                "per_call_s",
                f"{lp}/{v}",
                "per_call_s",
                "us",
                mnote=True,
            )
        for v in ("mlflow", "mlflow_async", "mlflow_async_buf"):
            row(
                f"log_param: calls + run end, per param — vs {MLFLOW_LABEL[v]}",
                f"{lp}/mlops",
                "per_param_total_s",
                f"{lp}/{v}",
                "per_param_total_s",
                "us",
                mnote=True,
            )
    if any(k.startswith("empty_runs/") for k in res):
        n = n_of("empty_runs/mlops")
        if n == "?":
            n = n_of("empty_runs/mlflow")
        row(
            f"create {n} empty runs (start + end), total — working dir not a git checkout",
            "empty_runs/mlops",
            "total_s",
            "empty_runs/mlflow",
            "total_s",
            "ms",
        )
        row(
            f"create {n} empty runs (start + end), total — working dir a dirty git checkout",
            "empty_runs_git/mlops",
            "total_s",
            "empty_runs_git/mlflow",
            "total_s",
            "ms",
        )
    if any(k.startswith("history_") for k in res):
        pts = (res.get("history_write/mlops") or {}).get("points") or (
            res.get("history_write/mlflow") or {}
        ).get("points")
        pts_s = f"{pts:,}" if pts else "?"
        row(
            f"write {pts_s}-point history (ours: log_metric loop + run end; "
            "MLflow: log_batch, 1,000 per call)",
            "history_write/mlops",
            "write_s",
            "history_write/mlflow",
            "write_s",
            "ms",
        )
        row(
            f"read {pts_s}-point history, first read in a fresh process",
            "history_read/mlops",
            "first_read_s",
            "history_read/mlflow",
            "first_read_s",
            "ms",
        )
        row(
            f"read {pts_s}-point history, repeated read (median)",
            "history_read/mlops",
            "repeat_read_s",
            "history_read/mlflow",
            "repeat_read_s",
            "ms",
        )
    if any(k.startswith("import/") for k in res):
        row(
            "`import` wall time (fresh interpreter, minus bare start-up; best of N)",
            "import/mlops",
            "wall_s",
            "import/mlflow",
            "wall_s",
            "ms",
        )
        row(
            "`import`, cumulative per `python -X importtime` (best of N)",
            "import/mlops",
            "importtime_cumulative_s",
            "import/mlflow",
            "importtime_cumulative_s",
            "ms",
        )
    return rows


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    ours = _get(res, "log_metric/mlops", "per_call_s")
    sync = _get(res, "log_metric/mlflow", "per_call_s")
    asyncs = [
        x
        for x in (
            _get(res, "log_metric/mlflow_async", "per_call_s"),
            _get(res, "log_metric/mlflow_async_buf", "per_call_s"),
        )
        if x is not None
    ]
    imp = _get(res, "import/mlops", "wall_s")

    def verdict(cond: bool | None) -> str:
        return "n/a" if cond is None else ("PASS" if cond else "FAIL")

    r = (sync / ours) if ours and sync else None
    out.append(
        (
            f"log_metric per call ≥ 100{TIMES} cheaper than MLflow synchronous",
            f"{r:,.0f}{TIMES}" if r else "n/a",
            verdict(None if r is None else r >= 100),
        )
    )
    r2 = (min(asyncs) / ours) if ours and asyncs else None
    out.append(
        (
            "log_metric per call cheaper than MLflow synchronous=False (cheapest variant)",
            f"{r2:,.0f}{TIMES}" if r2 else "n/a",
            verdict(None if r2 is None else r2 > 1),
        )
    )
    out.append(
        (
            "`import mlops_sdk` < 150 ms",
            fmt(imp, "ms") if imp is not None else "n/a",
            verdict(None if imp is None else imp < 0.150),
        )
    )
    return out


def report(meta: dict[str, Any], res: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        f"Experiment tracking benchmark — {m['date']}, {m['cpus']} CPUs ({m['cpu']}), "
        f"Python {m['python']}, SQLite {m['sqlite']}, mlops-sdk {meta['versions'].get('mlops', 'n/a')}, "
        f"MLflow {meta['versions'].get('mlflow', 'n/a')}, mode: {meta['mode']}",
        "",
        "ratio = MLflow ÷ mlops-sdk (above 1: mlops-sdk is faster)",
        "",
        markdown_table(["operation", "mlops-sdk", "MLflow", "ratio"], build_rows(res)),
        "",
        markdown_table(["target", "measured", "verdict"], targets(res)),
    ]
    problems = [(k, r["error"]) for k, r in res.items() if "error" in r]
    skipped = [(k, r["skipped"]) for k, r in res.items() if "skipped" in r]
    if skipped:
        lines += ["", "Skipped:"] + [f"- {k}: {why}" for k, why in skipped]
    if problems:
        lines += ["", "Errors:"]
        for k, err in problems:
            lines += [f"--- {k} ---", err]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--out", help="write results as JSON to this path")
    p.add_argument(
        "--only",
        default="log_metric,log_param,empty_runs,history,import",
        help="comma-separated subset of: log_metric,log_param,empty_runs,history,import",
    )
    add_worker_options(p, ("TOOL", "BENCH"))  # internal: worker mode
    a = p.parse_args(argv)
    if serve_worker_mode(a, worker):
        return 0

    cfg = dict(QUICK if a.quick else FULL)
    benches = [b.strip() for b in a.only.split(",") if b.strip()]
    unknown = set(benches) - {"log_metric", "log_param", "empty_runs", "history", "import"}
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    print(
        f"mlops-sdk tracking benchmark ({'quick' if a.quick else 'full'}), python {sys.executable}"
    )
    t0 = perf_counter()
    res = run_all(cfg, benches)
    elapsed = perf_counter() - t0
    versions: dict[str, str] = {}
    for r in res.values():
        if "version" in r:
            versions["mlflow" if r["tool"].startswith("mlflow") else r["tool"]] = r["version"]
    meta = {
        "machine": machine_info(),
        "mode": "quick" if a.quick else "full",
        "config": cfg,
        "versions": versions,
        "elapsed_s": elapsed,
    }
    print()
    print(report(meta, res))
    print(f"\n(total benchmark time {elapsed:.0f} s)")
    if a.out:
        write_json(a.out, {"meta": meta, "results": res, "targets": targets(res)})
        print(f"wrote {a.out}")
    failed = any("error" in r for r in res.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
