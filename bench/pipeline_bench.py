"""Pipeline benchmark: a 5-step pipeline's first run against its fully cached re-run.

Run from the repository root:

    python bench/pipeline_bench.py                 # 5 repeats of each measurement
    python bench/pipeline_bench.py --quick         # 2 repeats: a smoke test
    python bench/pipeline_bench.py --repeats 9
    python bench/pipeline_bench.py --out bench/results/pipeline.json

The pipeline (steps defined in this script, run in-process, ``compute=None``):
``load`` (scikit-learn's digits, 1,797 rows x 64 features, bundled, no download) → ``split``
(75/25, stratified) → ``scale`` (StandardScaler fitted on the training part)
→ ``fit`` (LogisticRegression) → ``evaluate`` (test accuracy, logged as a
metric). Each step's output (numpy arrays, the fitted model, a dict) is stored
by the pipeline and each step is a child run of the pipeline's run.

What is measured, each repeat in a fresh workspace in a fresh temporary folder
that is a git checkout with the step code committed (as in a real project:
every run start records the commit):

* **In-process**: ``pipe.run()`` once (every step runs: the first run), then
  again (every step is cached: a cache lookup per step, no step function
  called, no output loaded; only the pipeline's own run is recorded). Both
  calls are timed from the call to its return; the script checks each step's
  status (``ran`` then ``cached``).
* **Fresh process**: ``python pipeline_bench.py --child`` in that folder,
  twice: the first run, then the cached re-run. The wall time runs from
  spawning the process to its exit (interpreter start, ``import mlops_sdk``,
  ``Workspace.open``, ``pipe.run()``, exit); the child also reports the time of
  its ``pipe.run()`` call alone. This is what ``python my_pipeline.py`` costs
  a user when nothing changed.
* For scale, ``python -c "import mlops_sdk"`` in a new process.

Target (issue 6): a fully cached re-run of a 5-step pipeline takes under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import TIMES, fmt_seconds, fresh_dir, machine_info, markdown_table, write_json

import mlops_sdk as mlops

SCRIPT = Path(__file__).resolve()
STEPS = ["load", "split", "scale", "fit", "evaluate"]


# -- the pipeline -------------------------------------------------------------------------------
@mlops.step
def load(dataset: str = "digits") -> dict[str, Any]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return {"X": data.data, "y": data.target}


@mlops.step
def split(load: dict[str, Any], test_size: float = 0.25, seed: int = 0) -> dict[str, Any]:
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(
        load["X"], load["y"], test_size=test_size, random_state=seed, stratify=load["y"]
    )
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


@mlops.step
def scale(split: dict[str, Any]) -> dict[str, Any]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(split["X_train"])
    return {"X_train": scaler.transform(split["X_train"]), "X_test": scaler.transform(split["X_test"])}


@mlops.step
def fit(scale: dict[str, Any], split: dict[str, Any], C: float = 1.0, max_iter: int = 300) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter).fit(scale["X_train"], split["y_train"])


@mlops.step
def evaluate(fit: Any, scale: dict[str, Any], split: dict[str, Any]) -> dict[str, float]:
    accuracy = float(fit.score(scale["X_test"], split["y_test"]))
    mlops.log_metric("test_accuracy", accuracy)
    return {"test_accuracy": accuracy}


pipe = mlops.Pipeline("bench-digits", steps=[load, split, scale, fit, evaluate])


def _statuses(result: Any) -> dict[str, str]:
    return {name: r.status for name, r in result.steps.items()}


def _check(result: Any, expected: str) -> None:
    got = _statuses(result)
    if got != dict.fromkeys(STEPS, expected):
        errors = {n: r.error for n, r in result.steps.items() if r.error}
        raise RuntimeError(f"expected every step {expected}, got {got}; errors: {errors}")


# -- the child process: one pipe.run() in the current folder's workspace ---------------------------
def child() -> None:
    t0 = time.perf_counter()
    with mlops.Workspace.open(".") as ws:
        t1 = time.perf_counter()
        result = pipe.run(workspace=ws)
        t2 = time.perf_counter()
    print(json.dumps({"statuses": _statuses(result), "open_s": t1 - t0, "run_s": t2 - t1,
                      "errors": {n: r.error for n, r in result.steps.items() if r.error}}))


# -- measurements --------------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def _project(folder: Path) -> None:
    """A git checkout holding this script and its helpers (committed), the workspace git-ignored."""
    _git(folder, "init", "-q", "-b", "main")
    (folder / ".gitignore").write_text(".mlops/\n")
    for name in ("pipeline_bench.py", "_timing.py"):
        (folder / name).write_text((SCRIPT.parent / name).read_text())
    _git(folder, "add", ".")
    _git(folder, "commit", "-q", "-m", "bench pipeline")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users import from cached bytecode
    return env


def in_process(repeats: int) -> dict[str, Any]:
    first, cached, steps = [], [], []
    here = os.getcwd()
    for i in range(repeats):
        with fresh_dir(f"pipeline-{i}") as folder:
            _project(folder)
            os.chdir(folder)
            try:
                with mlops.Workspace.open(folder) as ws:
                    t0 = time.perf_counter()
                    result = pipe.run(workspace=ws)
                    first.append(time.perf_counter() - t0)
                    _check(result, "ran")
                    steps.append({n: r.duration for n, r in result.steps.items()})
                    t0 = time.perf_counter()
                    result = pipe.run(workspace=ws)
                    cached.append(time.perf_counter() - t0)
                    _check(result, "cached")
            finally:
                os.chdir(here)
    return {"first_s": first, "cached_s": cached, "first_step_s": steps}


def _spawn(folder: Path, expected: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "pipeline_bench.py", "--child"], cwd=folder, env=_env(),
                         capture_output=True, text=True, check=False, timeout=600)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"the child process failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if report["statuses"] != dict.fromkeys(STEPS, expected):
        raise RuntimeError(f"expected every step {expected}, got {report['statuses']}: {report['errors']}")
    return {"wall_s": wall, "run_s": report["run_s"], "open_s": report["open_s"]}


def fresh_process(repeats: int) -> dict[str, Any]:
    first, cached = [], []
    for i in range(repeats):
        with fresh_dir(f"pipeline-proc-{i}") as folder:
            _project(folder)
            first.append(_spawn(folder, "ran"))
            cached.append(_spawn(folder, "cached"))
    return {"first": first, "cached": cached}


def bare_import(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats + 1):  # the first writes bytecode
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mlops_sdk"], env=_env(), check=True)
        times.append(time.perf_counter() - t0)
    return times[1:]


# -- report --------------------------------------------------------------------------------------
def _med(values: list[float]) -> float:
    return statistics.median(values)


def report(data: dict[str, Any]) -> str:
    n = data["repeats"]
    ip, fp = data["in_process"], data["fresh_process"]
    ip_first, ip_cached = _med(ip["first_s"]), _med(ip["cached_s"])
    fp_first = _med([r["wall_s"] for r in fp["first"]])
    fp_cached = _med([r["wall_s"] for r in fp["cached"]])
    fp_cached_run = _med([r["run_s"] for r in fp["cached"]])
    fp_cached_open = _med([r["open_s"] for r in fp["cached"]])
    rows = [
        [f"in-process: `pipe.run()` (median of {n})", fmt_seconds(ip_first, "ms"), fmt_seconds(ip_cached, "ms"),
         f"{ip_first / ip_cached:.1f}{TIMES}"],
        [f"fresh process: `python pipeline.py`, spawn → exit (median of {n})", fmt_seconds(fp_first, "ms"),
         fmt_seconds(fp_cached, "ms"), f"{fp_first / fp_cached:.1f}{TIMES}"],
        ["fresh process: its `pipe.run()` call alone", fmt_seconds(_med([r["run_s"] for r in fp["first"]]), "ms"),
         fmt_seconds(fp_cached_run, "ms"), "—"],
        ["fresh process: its `Workspace.open()`", fmt_seconds(_med([r["open_s"] for r in fp["first"]]), "ms"),
         fmt_seconds(fp_cached_open, "ms"), "—"],
        ["for scale: `python -c 'import mlops_sdk'`", "—", fmt_seconds(_med(data["bare_import_s"]), "ms"), "—"],
    ]
    table = markdown_table(["5-step pipeline (digits: load → split → scale → fit → evaluate)", "first run",
                            "fully cached re-run", "first ÷ cached"], rows)
    per_step = ", ".join(f"{n} {fmt_seconds(_med([r[n] for r in ip['first_step_s']]), 'ms')}" for n in STEPS)
    verdict = "PASS" if max(ip_cached, fp_cached) < 1.0 else "FAIL"
    target = markdown_table(["target", "measured", "verdict"],
                            [["fully cached re-run of a 5-step pipeline < 1 s (fresh process, spawn → exit)",
                              fmt_seconds(fp_cached, "ms"), "PASS" if fp_cached < 1.0 else "FAIL"],
                             ["fully cached re-run of a 5-step pipeline < 1 s (in-process `pipe.run()`)",
                              fmt_seconds(ip_cached, "ms"), "PASS" if ip_cached < 1.0 else "FAIL"]])
    data["verdict"] = verdict
    return table + f"\n\nfirst run in-process, per step (median): {per_step}\n\n" + target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats: a smoke test")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each measurement (5)")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return
    repeats = args.repeats or (2 if args.quick else 5)
    data: dict[str, Any] = {"machine": machine_info(), "mlops_sdk": mlops.__version__, "repeats": repeats,
                            "load_average_before": os.getloadavg()}
    t0 = time.perf_counter()
    data["bare_import_s"] = bare_import(repeats)
    data["in_process"] = in_process(repeats)
    data["fresh_process"] = fresh_process(repeats)
    data["total_s"] = time.perf_counter() - t0
    data["load_average_after"] = os.getloadavg()
    print(report(data))
    print(f"load average before {data['load_average_before'][0]:.2f}, after {data['load_average_after'][0]:.2f}; "
          f"{data['total_s']:.0f} s in all")
    if args.out:
        write_json(args.out, data)


if __name__ == "__main__":
    main()
