"""Drift benchmark: ``mlops.monitor.data_drift`` vs Evidently's ``DataDriftPreset``.

Run from the repository root:

    python bench/drift_bench.py                      # 100,000 x 20 reference and current tables
    python bench/drift_bench.py --quick              # 10,000 rows: a smoke test
    python bench/drift_bench.py --evidently-python /tmp/evvenv/bin/python   # Evidently from another venv
    python bench/drift_bench.py --out bench/results/drift.json

The tables (17 numeric columns of normal, log-normal and uniform values, 3
categorical ones) are generated once with a fixed seed and written to an
``.npz`` file that both sides read, so they compare the same data. A shift is
planted in 4 numeric columns (``x0`` mean +0.5 sd, ``x1`` sd x1.5, ``x2``
log-normal scale x1.3, ``x3`` uniform range moved by 20 %) and one categorical
column (``c0`` category shares changed); the other 15 columns are drawn from
the same distribution on both sides.

Each side turns two pandas DataFrames into per-column drift verdicts with its
default tests (both use normed Wasserstein ≥ 0.1 for numeric columns at this
size; for categorical ones we use PSI ≥ 0.1, Evidently Jensen-Shannon ≥ 0.1).
The time is the median of ``--repeats`` calls after one warm-up call (imports
done), in the same process as the data; Evidently runs in a subprocess with
``--evidently-python`` (default: this interpreter), one after the other, on
the same machine. The verdicts are compared column by column.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLANTED = ["x0", "x1", "x2", "x3", "c0"]
N_NUMERIC = 17
N_CATEGORICAL = 3


def make_tables(rows: int, path: Path, seed: int = 7) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        name = f"x{i}"
        if i % 3 == 0:
            ref[name], cur[name] = rng.normal(10, 2, rows), rng.normal(10, 2, rows)
        elif i % 3 == 1:
            ref[name], cur[name] = rng.lognormal(0, 0.5, rows), rng.lognormal(0, 0.5, rows)
        else:
            ref[name], cur[name] = rng.uniform(0, 100, rows), rng.uniform(0, 100, rows)
    cur["x0"] = rng.normal(10, 2, rows) + 1.0  # mean + 0.5 sd
    cur["x1"] = rng.lognormal(0, 0.75, rows)  # wider
    cur["x2"] = rng.uniform(0, 100, rows) * 1.3
    cur["x3"] = rng.normal(10, 2, rows) * 1.0 + 0.8  # x3 is normal(10, 2): +0.4 sd
    cats = np.array(["red", "green", "blue", "black", "white"])
    p = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    for i in range(N_CATEGORICAL):
        ref[f"c{i}"] = rng.choice(cats, rows, p=p)
        cur[f"c{i}"] = rng.choice(cats, rows, p=p)
    cur["c0"] = rng.choice(cats, rows, p=[0.1, 0.15, 0.2, 0.25, 0.3])
    np.savez(path, **{f"ref__{k}": v for k, v in ref.items()}, **{f"cur__{k}": v for k, v in cur.items()})


def load_tables(path: Path) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    data = np.load(path, allow_pickle=False)
    ref = {k[5:]: data[k] for k in data.files if k.startswith("ref__")}
    cur = {k[5:]: data[k] for k in data.files if k.startswith("cur__")}
    as_frame = lambda d: pd.DataFrame({k: (v.astype(object) if v.dtype.kind == "U" else v) for k, v in d.items()})  # noqa: E731
    return as_frame(ref), as_frame(cur)


EVIDENTLY_SIDE = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[3])
from drift_bench import load_tables
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

ref, cur = load_tables(sys.argv[1])
repeats = int(sys.argv[2])
numeric = [c for c in ref.columns if c.startswith("x")]
categorical = [c for c in ref.columns if c.startswith("c")]

def run():
    dd = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snap = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd)
    )
    return snap.dict()

run()
times = []
for _ in range(repeats):
    t0 = time.perf_counter(); out = run(); times.append(time.perf_counter() - t0)
verdicts, methods = {}, {}
for m in out["metrics"]:
    cfg = m["config"]
    if cfg.get("type", "").endswith("ValueDrift"):
        method, thr, value = cfg["method"], cfg["threshold"], m["value"]
        p_value = "p_value" in method or "test" in method.lower()
        verdicts[cfg["column"]] = bool(value < thr) if p_value else bool(value >= thr)
        methods[cfg["column"]] = method
import evidently
print(json.dumps({"times": times, "verdicts": verdicts, "methods": methods, "version": evidently.__version__}))
"""


def run_ours(path: Path, repeats: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from mlops_sdk.monitor import data_drift

    ref, cur = load_tables(path)
    report = data_drift(ref, cur)  # warm-up: scipy imported
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = data_drift(ref, cur)
        times.append(time.perf_counter() - t0)
    return {
        "times": times,
        "verdicts": {c.column: c.drifted for c in report.columns},
        "methods": {c.column: c.method for c in report.columns},
    }


def run_evidently(path: Path, repeats: int, python: str) -> dict[str, Any] | None:
    proc = subprocess.run(
        [python, "-c", EVIDENTLY_SIDE, str(path), str(repeats), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"Evidently side failed (is evidently installed for {python}?):\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 rows, 1 repeat")
    parser.add_argument("--evidently-python", default=sys.executable)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows, repeats = (10_000, 1) if args.quick else (args.rows, args.repeats)
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        path = Path(tmp) / "tables.npz"
        make_tables(rows, path)
        ours = run_ours(path, repeats)
        theirs = run_evidently(path, repeats, args.evidently_python)
    ours_s = statistics.median(ours["times"])
    print(f"drift report on {rows:,} x {N_NUMERIC + N_CATEGORICAL} (planted shift in {', '.join(PLANTED)})")
    print(f"  mlops-sdk data_drift : {ours_s:.3f} s  drifted: {sorted(k for k, v in ours['verdicts'].items() if v)}")
    result: dict[str, Any] = {"rows": rows, "columns": N_NUMERIC + N_CATEGORICAL, "planted": PLANTED, "ours": ours}
    planted_ok = all(ours["verdicts"][c] for c in PLANTED) and not any(
        v for c, v in ours["verdicts"].items() if c not in PLANTED
    )
    result["ours_finds_exactly_planted"] = planted_ok
    if theirs is not None:
        theirs_s = statistics.median(theirs["times"])
        agree = ours["verdicts"] == theirs["verdicts"]
        disagree = sorted(c for c in ours["verdicts"] if ours["verdicts"][c] != theirs["verdicts"].get(c))
        print(f"  Evidently {theirs['version']} DataDriftPreset: {theirs_s:.3f} s  drifted: "
              f"{sorted(k for k, v in theirs['verdicts'].items() if v)}")
        print(f"  speed-up: {theirs_s / ours_s:.1f}x   verdicts agree on every column: {agree} {disagree or ''}")
        result.update(evidently=theirs, speedup=theirs_s / ours_s, verdicts_agree=agree, disagree=disagree)
    print(f"  ours flags exactly the planted columns: {planted_ok}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
