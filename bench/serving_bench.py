"""Model serving: single-row latency and throughput, `mlops serve` vs `mlflow models serve`.

For a scikit-learn LogisticRegression (iris) and a RandomForestRegressor
(diabetes, 100 trees) this script starts, one at a time on 127.0.0.1:

* ``mlops serve NAME@1`` (uvicorn + Starlette, one worker),
* ``mlops serve NAME@1 --batching`` (adaptive micro-batching),
* ``mlflow models serve -m DIR --env-manager local`` (MLflow's scoring server:
  uvicorn + FastAPI, one worker) on the same model saved with ``mlflow.sklearn``,

and drives each from a separate load-generator process (this file with
``--load``): keep-alive HTTP/1.1 connections, one thread per concurrent client,
a bounded number of requests and a time cap per level. Every request is one
row in MLflow's ``dataframe_split`` format, so both servers get the same bytes.
Only one server runs at a time. Results go to ``--out`` as JSON and to stdout
as a Markdown table (docs/performance.md).

    python bench/serving_bench.py --out bench/results/serving.json [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

LEVELS = (1, 8)


# -- the load generator (runs in its own process) ----------------------------------------------
def load(url: str, body: bytes, concurrency: int, requests: int, max_seconds: float, warmup: int) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = [0]
    headers = {"Content-Type": "application/json"}

    def worker(deadline_holder: list[float]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: list[float] = []
        try:
            while True:
                with lock:
                    if counter[0] >= requests or time.perf_counter() > deadline_holder[0]:
                        break
                    counter[0] += 1
                t0 = time.perf_counter()
                conn.request("POST", "/invocations", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                mine.append(time.perf_counter() - t0)
                if resp.status != 200:
                    with lock:
                        errors[0] += 1
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    # warm-up (not measured): connections, caches, lazy imports on the server
    warm_deadline = [time.perf_counter() + 30]
    saved = requests
    requests = warmup
    threads = [threading.Thread(target=worker, args=(warm_deadline,)) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.clear()
    errors[0] = 0
    counter[0] = 0
    requests = saved

    deadline = [time.perf_counter() + max_seconds]
    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(deadline,)) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(p / 100 * n))] * 1000 if n else float("nan")

    return {
        "concurrency": concurrency,
        "requests": n,
        "errors": errors[0],
        "seconds": elapsed,
        "throughput_rps": n / elapsed if elapsed else 0.0,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "mean_ms": statistics.fmean(latencies) * 1000 if n else float("nan"),
    }


# -- orchestration ---------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + path, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prepare(root: Path) -> dict[str, dict[str, Any]]:
    import mlflow.sklearn
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression

    import mlops_sdk as mlops

    models = {}
    ws = mlops.Workspace.open(root / "ws")
    for name, (loader, make) in {
        "logreg": (load_iris, lambda: LogisticRegression(max_iter=1000)),
        "random_forest": (load_diabetes, lambda: RandomForestRegressor(n_estimators=100, random_state=0)),
    }.items():
        X, y = loader(return_X_y=True, as_frame=True)
        model = make().fit(X, y)
        with ws.experiment("serving-bench").start_run() as run:
            run.log_model(model, name, input_example=X[:5])
        mlflow_dir = root / f"mlflow-{name}"
        trusted = ["sklearn.tree._tree.Tree"] if name == "random_forest" else None  # MLflow 3 saves with skops too
        mlflow.sklearn.save_model(model, str(mlflow_dir), input_example=X[:5], skops_trusted_types=trusted)
        row = X.iloc[[0]]
        body = json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))}).encode()
        models[name] = {"mlflow_dir": str(mlflow_dir), "body": body}
    ws.close()
    return models


def run_load(url: str, body: bytes, concurrency: int, requests: int, seconds: float, warmup: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(body)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--load", url, f.name, str(concurrency), str(requests), str(seconds), str(warmup)],
            capture_output=True, text=True, check=True, timeout=seconds + 120,
        )
    finally:
        os.unlink(f.name)
    return dict(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--load", nargs=6, metavar=("URL", "BODY", "C", "N", "SECONDS", "WARMUP"))
    args = parser.parse_args()
    if args.load:
        url, body_path, c, n, seconds, warmup = args.load
        result = load(url, Path(body_path).read_bytes(), int(c), int(n), float(seconds), int(warmup))
        print(json.dumps(result))
        return

    requests = {1: 300, 8: 600} if args.quick else {1: 2000, 8: 4000}
    seconds = 10.0 if args.quick else 30.0
    warmup = 20 if args.quick else 100
    root = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_PLUGINS"] = ""
    mlflow_bin = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    results: list[dict[str, Any]] = []
    try:
        models = prepare(root)
        for name, info in models.items():
            servers = {
                "mlops serve --no-batching": ([sys.executable, "-m", "mlops_sdk.cli", "--workspace", str(root / "ws"),
                                               "serve", f"{name}@1", "--no-batching", "--log-level", "warning",
                                               "--port"], "/health"),
                "mlops serve (default: adaptive batching)": ([sys.executable, "-m", "mlops_sdk.cli", "--workspace",
                                                              str(root / "ws"), "serve", f"{name}@1", "--log-level",
                                                              "warning", "--port"], "/health"),
                "mlflow models serve": ([mlflow_bin, "models", "serve", "-m", info["mlflow_dir"], "--env-manager",
                                         "local", "-h", "127.0.0.1", "-p"], "/ping"),
            }
            for server, (cmd, health) in servers.items():
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                proc = subprocess.Popen([*cmd, str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_healthy(url, proc, health)
                    for level in LEVELS:
                        r = run_load(url, info["body"], level, requests[level], seconds, warmup)
                        r.update(model=name, server=server)
                        results.append(r)
                        print(
                            f"{name:14} {server:24} c={level}: {r['throughput_rps']:8.0f} req/s  "
                            f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  errors {r['errors']}",
                            file=sys.stderr,
                        )
                finally:
                    stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | server | concurrency | throughput (req/s) | p50 (ms) | p99 (ms) | vs MLflow throughput |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    base = {(r["model"], r["concurrency"]): r["throughput_rps"] for r in results if r["server"] == "mlflow models serve"}
    for r in results:
        ref = base.get((r["model"], r["concurrency"]))
        ratio = f"{r['throughput_rps'] / ref:.1f}x" if ref else "-"
        lines.append(
            f"| {r['model']} | `{r['server']}` | {r['concurrency']} | {r['throughput_rps']:.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
