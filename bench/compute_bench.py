"""Compute benchmark: what a job costs on top of the function, and what max_parallel buys a sweep.

Run from the repository root:

    python bench/compute_bench.py                 # 20 jobs, a 16-trial sweep at max_parallel 1 and 2
    python bench/compute_bench.py --quick         # 5 jobs, 4 trials of 0.25 s: a smoke test
    python bench/compute_bench.py --ray           # also the job overhead on ray://local (mlops-sdk-ray)
    python bench/compute_bench.py --out bench/results/compute.json

What is measured, each part in a fresh workspace in a fresh temporary folder:

* **Job overhead** (``N`` jobs whose function does nothing and returns None):
  - *one at a time*: ``ws.submit(noop)`` then ``job.result``, ``N`` times;
    the median per job is what one job costs end to end: a worker process
    starts, imports mlops-sdk, loads the function, records a run (start,
    end, context capture), reports back;
  - *all at once*: ``N`` submits, then every ``job.result``; total ÷ ``N`` is
    the cost per job when the backend runs as many as it has CPU slots;
  - *submit call*: the time ``ws.submit`` itself takes to return;
  - for scale, a bare ``python -c "import mlops_sdk"`` (interpreter start plus
    our import), the floor of any process-per-job design.
* **Sweep speed-up**: ``exp.sweep`` over a 16-point grid of a CPU-bound
  function (a pure-Python loop calibrated in this process to take about
  ``--trial-seconds``), at ``max_parallel=1`` then ``2``, alternated
  ``--repeats`` times so a burst of other load hits both; the median wall time
  from the call to the returned result, and the speed-up ``t1 / t2``. The
  ideal is ``min(2, free cores)``; the gap is per-trial process start (which
  also runs in parallel) and the loop's polling. The CPU seconds the trial
  processes used are reported too: if they are the same at both settings
  while the wall time is not lower, the cores were busy with something else.
* With ``--ray`` and the mlops-sdk-ray plugin installed, the job overhead is
  measured again with ``compute="ray://local"`` (a local Ray instance started
  by the plugin; its start-up is reported separately). Without the plugin the
  Ray rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import TIMES, fmt_seconds, fresh_dir, machine_info, markdown_table, write_json


# -- the functions the jobs run (loaded by the worker from this script, by reference) ----------
def noop() -> None:
    return None


def burn(trial: int, iterations: int) -> dict[str, float]:
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return {"score": float((trial * 7919) % 16), "checksum": float(total % 1000)}


# -- measurements ------------------------------------------------------------------------------
def calibrate(seconds: float) -> int:
    """Iterations of ``burn`` that take about ``seconds`` here."""
    n = 200_000
    while True:
        t0 = time.perf_counter()
        burn(0, n)
        took = time.perf_counter() - t0
        if took > 0.1:
            return max(1, int(n * seconds / took))
        n *= 2


def bare_import(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mlops_sdk"], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def job_overhead(n: int, compute: str | None = None) -> dict[str, Any]:
    import mlops_sdk as mlops

    with fresh_dir("compute") as root:
        os.chdir(root)
        t0 = time.perf_counter()
        ws = mlops.Workspace.open(root, compute=compute) if compute else mlops.Workspace.open(root)
        ws.compute  # noqa: B018 - start the backend (a Ray instance) outside the timings
        startup = time.perf_counter() - t0
        warm = ws.submit(noop)  # the first job pays one-off costs (the experiment row, a Ray worker)
        warm.result  # noqa: B018
        sequential = []
        for _ in range(n):
            t1 = time.perf_counter()
            ws.submit(noop).result  # noqa: B018
            sequential.append(time.perf_counter() - t1)
        submit_calls = []
        t2 = time.perf_counter()
        jobs = []
        for _ in range(n):
            t3 = time.perf_counter()
            jobs.append(ws.submit(noop))
            submit_calls.append(time.perf_counter() - t3)
        for job in jobs:
            job.result  # noqa: B018
        concurrent = time.perf_counter() - t2
        states = {str(j.status) for j in jobs}
        ws.close()
    return {
        "backend": compute or "local",
        "n": n,
        "backend_startup_s": startup,
        "sequential_median_s": statistics.median(sequential),
        "sequential_p90_s": sorted(sequential)[int(0.9 * (len(sequential) - 1))],
        "concurrent_per_job_s": concurrent / n,
        "submit_call_median_s": statistics.median(submit_calls),
        "states": sorted(states),
    }


def one_sweep(trials: int, iterations: int, parallel: int) -> tuple[float, float]:
    """Wall seconds of one sweep, and the CPU seconds its trial processes used."""
    import mlops_sdk as mlops

    with fresh_dir("sweep") as root:
        os.chdir(root)
        ws = mlops.Workspace.open(root)
        before = os.times()
        t0 = time.perf_counter()
        result = ws.experiment("bench").sweep(
            burn, grid={"trial": list(range(trials)), "iterations": iterations},
            max_parallel=parallel, metric="score", mode="min",
        )
        wall = time.perf_counter() - t0
        after = os.times()
        assert len(result) == trials and not result.failed, result.to_records()
        ws.close()
    return wall, (after.children_user + after.children_system) - (before.children_user + before.children_system)


def sweep_speedup(trials: int, iterations: int, repeats: int) -> dict[str, Any]:
    """Sweeps at max_parallel 1 and 2, alternated ``repeats`` times (so a burst of load hits both); medians."""
    out: dict[str, Any] = {"trials": trials, "iterations": iterations, "repeats": repeats}
    t0 = time.perf_counter()
    burn(0, iterations)
    out["trial_compute_s"] = time.perf_counter() - t0
    walls: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for parallel in (1, 2):
            wall, used = one_sweep(trials, iterations, parallel)
            walls[parallel].append(wall)
            cpu[parallel].append(used)
    for parallel in (1, 2):
        out[f"wall_s_parallel_{parallel}"] = statistics.median(walls[parallel])
        out[f"all_wall_s_parallel_{parallel}"] = walls[parallel]
        out[f"trial_cpu_s_parallel_{parallel}"] = statistics.median(cpu[parallel])
    out["speedup"] = out["wall_s_parallel_1"] / out["wall_s_parallel_2"]
    return out


def ray_available() -> bool:
    from mlops_sdk.errors import MlopsError
    from mlops_sdk.plugins import get_plugin_manager

    try:
        get_plugin_manager().registry.lookup("compute", "ray://local")
    except MlopsError:
        return False
    return True


def report(data: dict[str, Any]) -> str:
    rows = []
    for o in data["jobs"]:
        b = o["backend"]
        rows += [
            [f"{b}: one job at a time, submit → result (median of {o['n']})", fmt_seconds(o["sequential_median_s"], "ms")],
            [f"{b}: one job at a time, p90", fmt_seconds(o["sequential_p90_s"], "ms")],
            [f"{b}: {o['n']} jobs at once, wall ÷ {o['n']}", fmt_seconds(o["concurrent_per_job_s"], "ms")],
            [f"{b}: the `ws.submit` call itself (median)", fmt_seconds(o["submit_call_median_s"], "ms")],
        ]
        if b != "local":
            rows.append([f"{b}: backend start-up (once)", fmt_seconds(o["backend_startup_s"], "ms")])
    rows.append(["for scale: `python -c 'import mlops_sdk'` in a new process", fmt_seconds(data["bare_import_s"], "ms")])
    jobs_table = markdown_table(["job overhead (function does nothing)", "time"], rows)
    s = data["sweep"]
    ideal = min(2, data["machine"]["cpus"] or 1)
    sweep_table = markdown_table(
        ["sweep", "value"],
        [
            ["trials, and the work of one (timed in this process)", f"{s['trials']}, {fmt_seconds(s['trial_compute_s'], 'ms')}"],
            [f"wall time, max_parallel=1 (median of {s['repeats']})", fmt_seconds(s["wall_s_parallel_1"], "s")],
            [f"wall time, max_parallel=2 (median of {s['repeats']})", fmt_seconds(s["wall_s_parallel_2"], "s")],
            ["CPU time of the trial processes, max_parallel=1 / 2",
             f"{fmt_seconds(s['trial_cpu_s_parallel_1'], 's')} / {fmt_seconds(s['trial_cpu_s_parallel_2'], 's')}"],
            ["speed-up (1 → 2)", f"{s['speedup']:.2f}{TIMES} (ideal {ideal}{TIMES})"],
            ["per-trial wall at max_parallel=1 minus its work", fmt_seconds(s["wall_s_parallel_1"] / s["trials"] - s["trial_compute_s"], "ms")],
        ],
    )
    notes = "\n".join(f"* {n}" for n in data.get("notes", []))
    return f"{jobs_table}\n\n{sweep_table}\n" + (f"\n{notes}\n" if notes else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="5 jobs, 4 trials of 0.25 s")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per overhead measurement (20)")
    parser.add_argument("--trials", type=int, default=None, help="sweep trials (16)")
    parser.add_argument("--trial-seconds", type=float, default=None, help="CPU work per trial (0.5)")
    parser.add_argument("--repeats", type=int, default=None, help="sweep pairs, alternated (2; 1 with --quick)")
    parser.add_argument("--ray", action="store_true", help="also measure ray://local (needs mlops-sdk-ray)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    n = args.jobs or (5 if args.quick else 20)
    trials = args.trials or (4 if args.quick else 16)
    seconds = args.trial_seconds or (0.25 if args.quick else 0.5)

    here = os.getcwd()
    data: dict[str, Any] = {"machine": machine_info(), "load_average_before": os.getloadavg(), "notes": []}
    t0 = time.perf_counter()
    data["bare_import_s"] = bare_import(5)
    data["jobs"] = [job_overhead(n)]
    if args.ray:
        if ray_available():
            data["jobs"].append(job_overhead(n, "ray://local"))
        else:
            data["notes"].append("--ray: skipped, the mlops-sdk-ray plugin is not installed (no ray:// compute scheme)")
    data["sweep"] = sweep_speedup(trials, calibrate(seconds), args.repeats or (1 if args.quick else 2))
    data["total_s"] = time.perf_counter() - t0
    data["load_average_after"] = os.getloadavg()
    os.chdir(here)
    print(report(data))
    print(f"load average before {data['load_average_before'][0]:.2f}, after {data['load_average_after'][0]:.2f}; "
          f"{data['total_s']:.0f} s in all")
    if args.out:
        write_json(args.out, data)


if __name__ == "__main__":
    main()
