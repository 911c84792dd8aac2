"""Team-scale tracking benchmark: many writer processes, and run search over 10,000 runs.

mlops-sdk side by side with MLflow, on SQLite and on PostgreSQL. Run from the
repository root:

    python bench/tracking_load_bench.py                  # full run (4-5 minutes on 2 quiet cores)
    python bench/tracking_load_bench.py --quick          # small sizes, a smoke test (about 2 minutes)
    python bench/tracking_load_bench.py --out bench/results/tracking_load.json
    python bench/tracking_load_bench.py --db sqlite --only throughput

Both tools must be importable from this interpreter, and PostgreSQL needs its
server programs (``initdb``, ``pg_ctl``) and ``psycopg`` (the ``postgres``
extra); without them the PostgreSQL rows show ``n/a`` with the reason.

1. Throughput. For 1, 4 and 16 writer processes, each writer logs its share of N
   points and ends its run; the wall time runs from a start barrier that all writers pass
   together until the last writer has ended its run (its data committed), and
   the store is then counted. Throughput = total points / wall time.
   mlops-sdk: ``run.log_metric`` in a loop inside ``with exp.start_run()``
   (leaving the block flushes). MLflow: ``MlflowClient.log_batch`` with 1,000
   metrics per call (its fastest synchronous path), and ``log_metric`` per
   point for reference, straight to the database and through ``mlflow server``
   (REST, ``--workers 1``) on the same kind of database.
2. Run search. 10,000 runs with 20 metrics, 4 params and 2 tags each (the same
   generated values for both tools); median and p95 of repeated queries in a
   fresh process: ``exp.runs(filter=..., order_by=...)`` vs
   ``MlflowClient.search_runs`` with the same filter and order.

Every tool and configuration gets a fresh SQLite file or a fresh PostgreSQL
database (the MLflow server: one fresh database per kind of database, one
experiment per configuration). The throwaway PostgreSQL cluster is started
with production durability settings (fsync, synchronous_commit and
full_page_writes on), bound to 127.0.0.1, and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import TIMES, machine_info, markdown_table, perf_counter, write_json

HERE = Path(__file__).resolve()

# ----------------------------------------------------------------------------- sizes

# Points per configuration, per variant, split evenly between the writers (so the
# 1-writer run is as long as the 16-writer one, and divisible by 1, 4 and 16).
# MLflow costs milliseconds per call, so its variants log fewer points;
# throughput is points per second, so only the wall time changes, not the comparison.
FULL: dict[str, Any] = {
    "writers": [1, 4, 16],
    "points": {
        "mlops": 480_000,
        "mlflow_batch": 64_000,
        "mlflow_metric": 400,
        "mlflow_http_batch": 64_000,
        "mlflow_http_metric": 400,
    },
    "keys": 10,  # metric keys per run; step advances every `keys` points
    "chunk": 1_000,  # MLflow log_batch: metrics per call (its maximum)
    "query_runs": 10_000,
    "query_metrics": 20,
    "query_repeats": 30,
    "config_timeout_s": 300,
    "server_timeout_s": 900,
}

QUICK: dict[str, Any] = {
    "writers": [1, 4, 16],
    "points": {
        "mlops": 96_000,
        "mlflow_batch": 16_000,
        "mlflow_metric": 80,
        "mlflow_http_batch": 16_000,
        "mlflow_http_metric": 80,
    },
    "keys": 10,
    "chunk": 1_000,
    "query_runs": 1_000,
    "query_metrics": 20,
    "query_repeats": 5,
    "config_timeout_s": 120,
    "server_timeout_s": 300,
}

VARIANTS = ("mlops", "mlflow_batch", "mlflow_metric", "mlflow_http_batch", "mlflow_http_metric")
DIRECT = ("mlops", "mlflow_batch", "mlflow_metric")
OVER_HTTP = ("mlflow_http_batch", "mlflow_http_metric")
LABEL = {
    "mlops": "mlops-sdk (log_metric loop)",
    "mlflow_batch": "MLflow log_batch",
    "mlflow_metric": "MLflow log_metric",
    "mlflow_http_batch": "MLflow server, log_batch",
    "mlflow_http_metric": "MLflow server, log_metric",
}
DBS = ("sqlite", "postgresql")
TOOLS = {"mlops": "mlops_sdk", "mlflow": "mlflow"}

# The two run searches (same text for both tools; MLflow spells the order "metrics.acc DESC").
QUERIES: dict[str, dict[str, Any]] = {
    "selective": {
        "filter": "metrics.acc > 0.96 and params.model = 'rf'",
        "limit": None,  # returns ~1% of the runs, all of them
        "label": "`metrics.acc > 0.96 and params.model = 'rf'` (~1%), order by acc desc, all matches",
    },
    "broad": {
        "filter": "metrics.acc > 0.5",
        "limit": 100,
        "label": "`metrics.acc > 0.5` (~50%), order by acc desc, limit 100",
    },
}


def tool_of(variant: str) -> str:
    return "mlops" if variant == "mlops" else "mlflow"


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` with the psycopg 3 driver (psycopg2 is not installed)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


# ----------------------------------------------------------------------------- shared data


def generate_runs(n: int, n_metrics: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """The runs of the search benchmark: identical values for both tools."""
    rng = random.Random(seed)
    keys = ["acc"] + [f"m{k:02d}" for k in range(1, n_metrics)]
    for i in range(n):
        metrics = {k: rng.random() for k in keys}
        params = {
            "model": rng.choice(["rf", "gbm", "lr", "mlp"]),
            "n_estimators": rng.choice([50, 100, 200, 400]),
            "lr": rng.choice([0.3, 0.1, 0.03, 0.01]),
            "seed": i,
        }
        tags = {
            "team": rng.choice(["growth", "risk", "core", "ml"]),
            "stage": rng.choice(["dev", "prod"]),
        }
        yield {"name": f"r{i:05d}", "i": i, "metrics": metrics, "params": params, "tags": tags}


def expected_results(n: int, n_metrics: int) -> dict[str, list[str]]:
    """Run names each query must return, in order (pure Python, no tool imported)."""
    runs = list(generate_runs(n, n_metrics))
    by_acc = sorted(runs, key=lambda r: -r["metrics"]["acc"])
    sel = [r["name"] for r in by_acc if r["metrics"]["acc"] > 0.96 and r["params"]["model"] == "rf"]
    broad = [r["name"] for r in by_acc if r["metrics"]["acc"] > 0.5][: QUERIES["broad"]["limit"]]
    return {"selective": sel, "broad": broad}


BASE_TIME = 1_790_000_000.0  # run i started at BASE_TIME + i seconds


# ============================================================================= tool drivers
# Everything below up to "orchestration" runs in worker processes; each worker
# process imports exactly one of the two tools.


class Ours:
    """mlops-sdk: the public API in writers; the store API to populate the search benchmark."""

    def __init__(self) -> None:
        import mlops_sdk
        import mlops_sdk.tracking.sql  # SQLAlchemy too: imported once, before forking writers

        self.m = mlops_sdk
        self.ws: Any = None
        self.exp: Any = None

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        try:
            return version("mlops-sdk")
        except Exception:
            return "unknown"

    def open(self, uri: str, workdir: Path, experiment: str) -> str:
        self.ws = self.m.Workspace.open(tracking=uri, storage=(workdir / "store").as_uri())
        self.exp = self.ws.experiment(experiment)
        return str(self.exp.id)

    def write(self, writer: int, points: int, keys: int, chunk: int) -> str:
        names = [f"m{k}" for k in range(keys)]
        with self.exp.start_run(name=f"writer-{writer}") as run:
            for j in range(points):
                run.log_metric(names[j % keys], j * 1e-3, step=j // keys)
        return str(run.id)

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()

    # -- search benchmark ----------------------------------------------------------
    def populate(self, uri: str, workdir: Path, n: int, n_metrics: int) -> dict[str, Any]:
        """Run 0 through the public API; the others with run 0's context, in bulk.

        ``store.create_run`` costs about 1 ms per run (three transactions), 10 s
        for 10,000 runs; instead the rows of the runs table are inserted in bulk
        (every column create_run and end_run write), and the params, tags and
        metrics go through ``store.write_batch``, 20,000 metric points per call.
        """
        import sqlalchemy as sa

        from mlops_sdk.records import WriteBatch
        from mlops_sdk.tracking import schema as S

        exp_id = self.open(uri, workdir, "search")
        store = self.ws.tracking
        runs = generate_runs(n, n_metrics)
        first = next(runs)
        t0 = perf_counter()
        with self.exp.start_run(
            name=first["name"], params=first["params"], tags=first["tags"]
        ) as run:
            run.log_metrics(first["metrics"], step=0)
        with store.engine.connect() as conn:
            template = dict(
                conn.execute(sa.select(S.runs).where(S.runs.c.id == run.id)).mappings().one()
            )
        rows: list[dict[str, Any]] = []
        batch = WriteBatch()

        def flush() -> None:
            nonlocal rows, batch
            with store.engine.begin() as conn:
                conn.execute(S.runs.insert(), rows)
            store.write_batch(batch)
            rows, batch = [], WriteBatch()

        for r in runs:
            rid = os.urandom(16).hex()
            start = BASE_TIME + r["i"]
            rows.append(
                dict(template, id=rid, name=r["name"], start_time=start, end_time=start + 61)
            )
            batch.params.extend((rid, k, v) for k, v in r["params"].items())
            batch.tags.extend((rid, k, v) for k, v in r["tags"].items())
            batch.metrics.extend((rid, k, v, 0, start + 60) for k, v in r["metrics"].items())
            if len(batch.metrics) >= 20_000:
                flush()
        flush()
        return {
            "experiment": exp_id,
            "populate_s": perf_counter() - t0,
            "method": "run 0 via exp.start_run; the rest: runs rows cloned from run 0's in bulk, "
            "params/tags/metrics via store.write_batch",
        }

    def query_open(self, uri: str, workdir: Path) -> None:
        self.ws = self.m.Workspace.open(tracking=uri, storage=(workdir / "store").as_uri())
        self.exp = self.ws.experiment("search")

    def query(self, name: str) -> list[str]:
        q = QUERIES[name]
        runs = self.exp.runs(filter=q["filter"], order_by=["-metrics.acc"], limit=q["limit"])
        return [r.name for r in runs]


class MLflow:
    """MLflow through ``MlflowClient``, to a database URI or a server's http:// URI."""

    def __init__(self) -> None:
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        for name in ("mlflow", "alembic", "urllib3"):
            logging.getLogger(name).setLevel(logging.ERROR)
        import mlflow

        # both stores (and SQLAlchemy, requests) imported once, before forking writers
        import mlflow.store.tracking.rest_store
        import mlflow.store.tracking.sqlalchemy_store
        from mlflow import MlflowClient

        self.mlflow = mlflow
        self.MlflowClient = MlflowClient
        self.client: Any = None
        self.exp_id: str | None = None

    @staticmethod
    def version() -> str:
        import mlflow

        return str(mlflow.__version__)

    def open(self, uri: str, workdir: Path, experiment: str) -> str:
        self.client = self.MlflowClient(tracking_uri=sqlalchemy_url(uri))
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.exp_id = self.client.create_experiment(
                experiment, artifact_location=(workdir / "artifacts").as_uri()
            )
        else:
            self.exp_id = found.experiment_id
        return str(self.exp_id)

    def write_batch(self, writer: int, points: int, keys: int, chunk: int) -> str:
        from mlflow.entities import Metric

        client = self.client
        names = [f"m{k}" for k in range(keys)]
        run_id = client.create_run(self.exp_id, run_name=f"writer-{writer}").info.run_id
        for start in range(0, points, chunk):
            ts = int(time.time() * 1000)
            batch = [
                Metric(names[j % keys], j * 1e-3, ts, j // keys)
                for j in range(start, min(points, start + chunk))
            ]
            client.log_batch(run_id, metrics=batch)
        client.set_terminated(run_id)
        return str(run_id)

    def write_metric(self, writer: int, points: int, keys: int, chunk: int) -> str:
        client = self.client
        names = [f"m{k}" for k in range(keys)]
        run_id = client.create_run(self.exp_id, run_name=f"writer-{writer}").info.run_id
        for j in range(points):
            client.log_metric(run_id, names[j % keys], j * 1e-3, step=j // keys)
        client.set_terminated(run_id)
        return str(run_id)

    def close(self) -> None:
        pass

    # -- search benchmark ----------------------------------------------------------
    def populate(self, uri: str, workdir: Path, n: int, n_metrics: int) -> dict[str, Any]:
        """Run 0 through the client; the others cloned from its rows in bulk (SQL).

        The client path costs about 15 ms per run here (create_run + log_batch +
        set_terminated), 2.5 minutes for 10,000 runs; the clones copy every
        column of run 0's rows in MLflow's own tables, with each run's values.
        """
        import sqlalchemy as sa
        from mlflow.entities import Metric, Param, RunTag

        exp_id = self.open(uri, workdir, "search")
        client = self.client
        runs = generate_runs(n, n_metrics)
        first = next(runs)
        t0 = perf_counter()
        system_tags = {
            "mlflow.user": "bench",
            "mlflow.source.name": "train.py",
            "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": "0" * 40,
        }
        start_ms = int((BASE_TIME + first["i"]) * 1000)
        rid0 = client.create_run(
            exp_id, run_name=first["name"], start_time=start_ms, tags=system_tags
        ).info.run_id
        client.log_batch(
            rid0,
            metrics=[Metric(k, v, start_ms + 60_000, 0) for k, v in first["metrics"].items()],
            params=[Param(k, str(v)) for k, v in first["params"].items()],
            tags=[RunTag(k, v) for k, v in first["tags"].items()],
        )
        client.set_terminated(rid0, end_time=start_ms + 61_000)
        client_s = perf_counter() - t0

        engine = sa.create_engine(sqlalchemy_url(uri))
        md = sa.MetaData()
        md.reflect(engine, only=["runs", "tags", "params", "metrics", "latest_metrics"])
        T = md.tables
        with engine.begin() as conn:
            run_row = dict(
                conn.execute(sa.select(T["runs"]).where(T["runs"].c.run_uuid == rid0))
                .mappings()
                .one()
            )
            tag_rows = [
                dict(r)
                for r in conn.execute(
                    sa.select(T["tags"]).where(T["tags"].c.run_uuid == rid0)
                ).mappings()
            ]
            metric_row = dict(
                conn.execute(sa.select(T["metrics"]).where(T["metrics"].c.run_uuid == rid0))
                .mappings()
                .first()
            )
            latest_row = dict(
                conn.execute(
                    sa.select(T["latest_metrics"]).where(T["latest_metrics"].c.run_uuid == rid0)
                )
                .mappings()
                .first()
            )
            param_row = dict(
                conn.execute(sa.select(T["params"]).where(T["params"].c.run_uuid == rid0))
                .mappings()
                .first()
            )
            todo: dict[str, list[dict[str, Any]]] = {
                k: [] for k in ("runs", "tags", "params", "metrics", "latest_metrics")
            }

            def flush() -> None:
                for table in ("runs", "tags", "params", "metrics", "latest_metrics"):
                    if todo[table]:
                        conn.execute(T[table].insert(), todo[table])
                        todo[table] = []

            for r in runs:
                rid = os.urandom(16).hex()
                start = int((BASE_TIME + r["i"]) * 1000)
                todo["runs"].append(
                    dict(
                        run_row,
                        run_uuid=rid,
                        name=r["name"],
                        start_time=start,
                        end_time=start + 61_000,
                        artifact_uri=run_row["artifact_uri"].replace(rid0, rid),
                    )
                )
                for t in tag_rows:
                    value = (
                        r["name"]
                        if t["key"] == "mlflow.runName"
                        else r["tags"].get(t["key"], t["value"])
                    )
                    todo["tags"].append(dict(t, run_uuid=rid, value=value))
                for k, v in r["params"].items():
                    todo["params"].append(dict(param_row, run_uuid=rid, key=k, value=str(v)))
                for k, v in r["metrics"].items():
                    todo["metrics"].append(
                        dict(metric_row, run_uuid=rid, key=k, value=v, timestamp=start + 60_000)
                    )
                    todo["latest_metrics"].append(
                        dict(latest_row, run_uuid=rid, key=k, value=v, timestamp=start + 60_000)
                    )
                if len(todo["metrics"]) >= 20_000:
                    flush()
            flush()
        engine.dispose()
        return {
            "experiment": exp_id,
            "populate_s": perf_counter() - t0,
            "client_run_s": client_s,
            "method": "run 0 via MlflowClient; the rest cloned from its rows with bulk SQL inserts",
        }

    def query_open(self, uri: str, workdir: Path) -> None:
        self.client = self.MlflowClient(tracking_uri=sqlalchemy_url(uri))
        self.exp_id = self.client.get_experiment_by_name("search").experiment_id

    def query(self, name: str) -> list[str]:
        q = QUERIES[name]
        runs = self.client.search_runs(
            [self.exp_id],
            filter_string=q["filter"],
            order_by=["metrics.acc DESC"],
            max_results=q["limit"] or 1000,
        )
        return [r.info.run_name for r in runs]


def driver(tool: str) -> Any:
    return Ours() if tool == "mlops" else MLflow()


# ----------------------------------------------------------------------------- throughput worker


def _writer_main(
    variant: str, d: Any, cfg: dict[str, Any], index: int, barrier: Any, out: Any
) -> None:
    """One writer process (forked): open the store, wait at the barrier, log, end the run."""
    res: dict[str, Any] = {"writer": index}
    try:
        d.open(cfg["uri"], Path(cfg["workdir"]), cfg["experiment"])  # connects, warms up
        barrier.wait(timeout=cfg["barrier_timeout_s"])
        t0 = perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        if variant == "mlops":
            write = d.write
        else:
            write = d.write_batch if variant.endswith("batch") else d.write_metric
        run_id = write(index, cfg["points_per_writer"], cfg["keys"], cfg["chunk"])
        res.update(start=t0, end=perf_counter(), run_id=run_id)
        d.close()
    except BaseException:
        res["error"] = traceback.format_exc()[-4000:]
        with contextlib.suppress(Exception):
            barrier.abort()
    out.put(res)


def _count_points(tool: str, url: str, exp_id: str) -> tuple[int, int]:
    """(metric points, FINISHED runs) of one experiment, counted in the tool's own tables."""
    import sqlalchemy as sa

    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            if tool == "mlops":
                pts = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM metrics WHERE run_id IN (SELECT id FROM runs WHERE experiment_id = :e)"
                    ),
                    {"e": exp_id},
                ).scalar_one()
                done = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM runs WHERE experiment_id = :e AND status = 'FINISHED'"
                    ),
                    {"e": exp_id},
                ).scalar_one()
            else:
                pts = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM metrics WHERE run_uuid IN (SELECT run_uuid FROM runs WHERE experiment_id = :e)"
                    ),
                    {"e": int(exp_id)},
                ).scalar_one()
                done = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM runs WHERE experiment_id = :e AND status = 'FINISHED'"
                    ),
                    {"e": int(exp_id)},
                ).scalar_one()
    finally:
        engine.dispose()
    return int(pts), int(done)


def _one_configuration(variant: str, d: Any, c: dict[str, Any]) -> dict[str, Any]:
    """Fork ``c["writers"]`` writers against one fresh store; time them; count the store."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    n = c["writers"]
    out: dict[str, Any] = {"variant": variant, "writers": n}

    # Create the store and the experiment in a forked child, so this process holds
    # no connection when it forks the writers.
    def setup(q: Any) -> None:
        try:
            q.put({"experiment": d.open(c["uri"], Path(c["workdir"]), c["experiment"])})
            d.close()
        except BaseException:
            q.put({"error": traceback.format_exc()[-4000:]})

    q0 = ctx.SimpleQueue()
    p0 = ctx.Process(target=setup, args=(q0,))
    t0 = perf_counter()
    p0.start()
    got = q0.get()
    p0.join()
    out["setup_s"] = perf_counter() - t0
    if "error" in got:
        raise RuntimeError(f"setup failed:\n{got['error']}")
    exp_id = got["experiment"]

    barrier = ctx.Barrier(n)
    results = ctx.SimpleQueue()
    procs = [
        ctx.Process(target=_writer_main, args=(variant, d, c, i, barrier, results))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    reports = [results.get() for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} writers failed; first error:\n{errors[0]}")
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    total = n * c["points_per_writer"]
    counted, finished = _count_points(tool_of(variant), c["verify_url"], exp_id)
    if counted != total or finished != n:
        raise AssertionError(
            f"{variant}: expected {total} points in {n} finished runs, the store has {counted} points "
            f"and {finished} finished runs"
        )
    durations = sorted(r["end"] - r["start"] for r in reports)
    out.update(
        points_per_writer=c["points_per_writer"],
        points=total,
        wall_s=wall,
        points_per_s=total / wall,
        writer_s_min=durations[0],
        writer_s_max=durations[-1],
        verified_points=counted,
    )
    return out


def throughput_worker(variant: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """One process per (database, variant): imports the tool once, runs each writer count."""
    d = driver(tool_of(variant))
    out: dict[str, Any] = {"variant": variant, "version": d.version(), "configurations": {}}
    for c in cfg["configurations"]:
        try:
            r = _one_configuration(variant, d, c)
            print(
                f"{c['writers']:>2} writers: {r['points_per_s']:,.0f} points/s",
                file=sys.stderr,
                flush=True,
            )
        except Exception:
            r = {"error": traceback.format_exc()[-5000:]}
        out["configurations"][str(c["writers"])] = r
    return out


# ----------------------------------------------------------------------------- search workers


def populate_worker(tool: str, cfg: dict[str, Any]) -> dict[str, Any]:
    d = driver(tool)
    res = d.populate(cfg["uri"], Path(cfg["workdir"]), cfg["query_runs"], cfg["query_metrics"])
    res["version"] = d.version()
    d.close()
    if cfg["uri"].startswith("postgresql"):
        # A long-lived PostgreSQL database has planner statistics (autovacuum analyzes a
        # table soon after a tenth of it changes); give both tools that steady state now
        # rather than racing autovacuum. SQLite gathers none unless asked, so none there.
        import sqlalchemy as sa

        engine = sa.create_engine(sqlalchemy_url(cfg["uri"]), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        engine.dispose()
        res["analyzed"] = True
    return res


def _p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


def query_worker(tool: str, cfg: dict[str, Any]) -> dict[str, Any]:
    d = driver(tool)
    t0 = perf_counter()
    d.query_open(cfg["uri"], Path(cfg["workdir"]))
    out: dict[str, Any] = {"tool": tool, "version": d.version(), "open_s": perf_counter() - t0}
    for name in QUERIES:
        want = cfg["expected"][name]
        t0 = perf_counter()
        got = d.query(name)
        first = perf_counter() - t0
        if got != want:
            raise AssertionError(
                f"{tool} {name}: expected {len(want)} runs starting {want[:3]}, got {len(got)} starting {got[:3]}"
            )
        times = []
        for _ in range(cfg["query_repeats"]):
            t0 = perf_counter()
            d.query(name)
            times.append(perf_counter() - t0)
        out[name] = {
            "returned": len(got),
            "first_s": first,
            "median_s": statistics.median(times),
            "p95_s": _p95(times),
            "raw_s": times,
        }
    d.close()
    return out


# ============================================================================= orchestration


def tool_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("MLFLOW_", "MLOPS_")):
            env.pop(k)
    env["GIT_PYTHON_REFRESH"] = "quiet"
    # MLflow's usage telemetry runs a background thread that edits os.environ; in the
    # forked writers it races with requests reading os.environ (KeyError), and this
    # machine has no network to send it to anyway.
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def run_worker(
    kind: str, name: str, cfg: dict[str, Any], timeout: float, label: str
) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; its result, or {"error": ...}."""
    result_file = Path(cfg["workdir"]) / f"result-{kind}-{name}.json"
    cmd = [
        sys.executable,
        str(HERE),
        "--worker",
        kind,
        name,
        "--config",
        json.dumps(cfg),
        "--result-file",
        str(result_file),
    ]
    print(f"  {label:<58}", end="", flush=True)
    t0 = perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=cfg["workdir"],
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        print(" TIMEOUT")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {"error": f"timed out after {timeout:.0f} s\n{err[-3000:]}"}
    wall = perf_counter() - t0
    if proc.returncode != 0 or not result_file.exists():
        print(f" ERROR ({wall:.1f} s)")
        return {"error": ((proc.stderr or "")[-5000:] + (proc.stdout or "")[-1000:]).strip()}
    res: dict[str, Any] = json.loads(result_file.read_text())
    lines = [x for x in (proc.stderr or "").splitlines() if x.endswith("points/s")]
    print(f" ok ({wall:.1f} s{'; ' if lines else ''}{'; '.join(lines)})")
    return res


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """The throwaway PostgreSQL cluster (mlops_sdk.testing.postgres), made durable."""

    DURABLE: ClassVar[dict[str, str]] = {
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "shared_buffers": "128MB",
    }

    def __init__(self, base: Path) -> None:
        from mlops_sdk.testing.postgres import PostgresServer

        self.server = PostgresServer.start(base)
        try:
            import psycopg

            # The test helper runs with fsync=off; a benchmark of durable writes must not.
            # ALTER SYSTEM settings (postgresql.auto.conf) override postgresql.conf.
            with psycopg.connect(self.server.admin_url("postgres"), autocommit=True) as conn:
                for k, v in self.DURABLE.items():
                    conn.execute(f"ALTER SYSTEM SET {k} = '{v}'".encode())
            self.server.restart()
            with psycopg.connect(self.server.admin_url("postgres")) as conn:
                self.settings = {
                    k: conn.execute(f"SHOW {k}".encode()).fetchone()[0]  # type: ignore[index]
                    for k in [*self.DURABLE, "server_version"]
                }
        except BaseException:
            self.server.close()
            raise
        self.n = 0

    def fresh(self, label: str) -> str:
        self.n += 1
        return self.server.create_database(f"b{self.n}_{label}")

    def close(self) -> None:
        self.server.close()


class MlflowServer:
    """``mlflow server`` on a fresh backend store, bounded by ``timeout``, stopped on close."""

    def __init__(self, backend: str, workdir: Path, limit_s: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            sqlalchemy_url(backend),
            "--default-artifact-root",
            (workdir / "server-artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        if shutil.which("timeout"):
            cmd = ["timeout", "--kill-after=10", str(limit_s), *cmd]
        env = _clean_env()
        # The server's job runner (GenAI jobs: 7 huey processes that poll) is not used by
        # tracking; on 2 cores its polling would take CPU from the benchmark, so it is off.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self.log = workdir / "mlflow-server.log"
        self._log = self.log.open("w")
        t0 = perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"mlflow server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}"
                    )
                try:
                    with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server did not come up:\n{self.log.read_text()[-3000:]}"
                    )
                time.sleep(0.2)
        except BaseException:
            self.close()
            raise
        self.start_s = perf_counter() - t0

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def _backend(db: str, pg: PgCluster | None, workdir: Path, label: str) -> str:
    if db == "sqlite":
        return f"sqlite:///{workdir / (label + '.db')}"
    assert pg is not None
    return pg.fresh(label)


def run_throughput(
    db: str,
    pg: PgCluster | None,
    cfg: dict[str, Any],
    available: dict[str, bool],
    root: Path,
    put: Any,
) -> None:
    def configurations(variant: str, uri_for: Any) -> dict[str, Any]:
        wd = root / f"tp-{db}-{variant}"
        wd.mkdir(parents=True, exist_ok=True)
        out = []
        for n in cfg["writers"]:
            uri, verify_url, experiment = uri_for(n)
            out.append(
                {
                    "uri": uri,
                    "verify_url": verify_url,
                    "experiment": experiment,
                    "workdir": str(wd),
                    "writers": n,
                    "points_per_writer": cfg["points"][variant] // n,
                    "keys": cfg["keys"],
                    "chunk": cfg["chunk"],
                    "barrier_timeout_s": cfg["config_timeout_s"],
                }
            )
        return {"configurations": out, "workdir": str(wd)}

    def run(variant: str, uri_for: Any) -> None:
        c = configurations(variant, uri_for)
        res = run_worker(
            "throughput",
            variant,
            c,
            cfg["config_timeout_s"] * len(cfg["writers"]),
            f"{db:<10} {LABEL[variant]}",
        )
        for n in cfg["writers"]:
            r = (
                res
                if "error" in res
                else dict(res["configurations"][str(n)], version=res["version"])
            )
            put(f"throughput/{db}/{variant}/{n}", r)

    for variant in DIRECT:
        if variant not in cfg["variants"]:
            continue
        if not available[tool_of(variant)]:
            for n in cfg["writers"]:
                put(
                    f"throughput/{db}/{variant}/{n}",
                    {"skipped": f"{TOOLS[tool_of(variant)]} is not installed"},
                )
            continue

        def fresh(n: int, variant: str = variant) -> tuple[str, str, str]:
            uri = _backend(db, pg, root, f"{variant}_{n}")
            return uri, uri, "load"

        run(variant, fresh)

    if not any(v in cfg["variants"] for v in OVER_HTTP):
        return
    if not available["mlflow"]:
        for variant in OVER_HTTP:
            for n in cfg["writers"]:
                put(f"throughput/{db}/{variant}/{n}", {"skipped": "mlflow is not installed"})
        return
    backend = _backend(db, pg, root, "mlflow_server")
    (root / "server").mkdir(exist_ok=True)
    print(f"  {db:<10} starting mlflow server (--workers 1)...", end="", flush=True)
    try:
        server = MlflowServer(backend, root / "server", cfg["server_timeout_s"])
    except Exception:
        print(" ERROR")
        err = traceback.format_exc()[-4000:]
        for variant in OVER_HTTP:
            for n in cfg["writers"]:
                put(f"throughput/{db}/{variant}/{n}", {"error": err})
        return
    print(f" up after {server.start_s:.1f} s")
    put(f"server/{db}", {"start_s": server.start_s})
    try:
        for variant in OVER_HTTP:
            if variant in cfg["variants"]:
                run(
                    variant, lambda n, variant=variant: (server.url, backend, f"load-{variant}-{n}")
                )
    finally:
        server.close()


def run_search(
    db: str,
    pg: PgCluster | None,
    cfg: dict[str, Any],
    available: dict[str, bool],
    root: Path,
    put: Any,
) -> None:
    expected = expected_results(cfg["query_runs"], cfg["query_metrics"])
    for tool in cfg["tools"]:
        key = f"search/{db}/{tool}"
        if not available[tool]:
            put(key, {"skipped": f"{TOOLS[tool]} is not installed"})
            continue
        wd = root / f"search-{db}-{tool}"
        wd.mkdir(parents=True, exist_ok=True)
        uri = _backend(db, pg, wd, f"search_{tool}")
        c = {
            "uri": uri,
            "workdir": str(wd),
            "query_runs": cfg["query_runs"],
            "query_metrics": cfg["query_metrics"],
        }
        pop = run_worker(
            "populate",
            tool,
            c,
            cfg["config_timeout_s"],
            f"{db:<10} populate {cfg['query_runs']:,} runs  {tool}",
        )
        if "error" in pop:
            put(key, pop)
            continue
        c.update(expected=expected, query_repeats=cfg["query_repeats"])
        res = run_worker(
            "query",
            tool,
            c,
            cfg["config_timeout_s"],
            f"{db:<10} search {cfg['query_runs']:,} runs  {tool}",
        )
        if "error" not in res:
            res["populate"] = pop
        put(key, res)


# ----------------------------------------------------------------------------- reporting


def _num(res: dict[str, Any], key: str, field: str) -> float | None:
    r = res.get(key) or {}
    v = r.get(field)
    return v if isinstance(v, int | float) else None


def _rate_cell(res: dict[str, Any], key: str) -> str:
    r = res.get(key)
    if r is None or "skipped" in r:
        return "n/a"
    if "error" in r:
        return "error"
    return f"{r['points_per_s']:,.0f}"


def best_mlflow(res: dict[str, Any], db: str, n: int) -> tuple[float | None, str]:
    best: tuple[float | None, str] = (None, "")
    for v in ("mlflow_batch", "mlflow_http_batch", "mlflow_metric", "mlflow_http_metric"):
        x = _num(res, f"throughput/{db}/{v}/{n}", "points_per_s")
        if x is not None and (best[0] is None or x > best[0]):
            best = (x, v)
    return best


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "n/a"
    r = a / b
    return f"{r:,.0f}{TIMES}" if r >= 100 else f"{r:.1f}{TIMES}"


def throughput_table(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    header = ["database", "writers", *(LABEL[v] for v in VARIANTS), "ours ÷ best MLflow"]
    rows = []
    for db in DBS:
        for n in cfg["writers"]:
            if not any(f"throughput/{db}/{v}/{n}" in res for v in VARIANTS):
                continue
            ours = _num(res, f"throughput/{db}/mlops/{n}", "points_per_s")
            best, _ = best_mlflow(res, db, n)
            rows.append(
                [
                    db,
                    str(n),
                    *(_rate_cell(res, f"throughput/{db}/{v}/{n}") for v in VARIANTS),
                    _ratio(ours, best),
                ]
            )
    return markdown_table(header, rows)


def _ms(x: float | None) -> str:
    if x is None:
        return "n/a"
    v = x * 1e3
    return f"{v:,.0f}" if v >= 100 else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def search_table(res: dict[str, Any]) -> str:
    header = [
        "database",
        "query",
        "runs returned",
        "mlops-sdk median",
        "p95",
        "first",
        "MLflow median",
        "p95",
        "first",
        "MLflow ÷ ours (median)",
    ]
    rows = []
    for db in DBS:
        for q in QUERIES:
            ours = res.get(f"search/{db}/mlops") or {}
            theirs = res.get(f"search/{db}/mlflow") or {}
            if not ours and not theirs:
                continue
            o, t = ours.get(q) or {}, theirs.get(q) or {}

            def cells(r: dict[str, Any], top: dict[str, Any]) -> list[str]:
                if "error" in top:
                    return ["error"] * 3
                return [_ms(r.get("median_s")), _ms(r.get("p95_s")), _ms(r.get("first_s"))]

            n = o.get("returned", t.get("returned", "?"))
            rows.append(
                [
                    db,
                    q,
                    f"{n:,}" if isinstance(n, int) else n,
                    *cells(o, ours),
                    *cells(t, theirs),
                    _ratio(t.get("median_s"), o.get("median_s")),
                ]
            )
    return (
        markdown_table(header, rows)
        + "\n\n(times in ms; each query repeated, after one first query in a fresh process)"
    )


def populate_table(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    rows = []
    for db in DBS:
        for tool, label in (("mlops", "mlops-sdk"), ("mlflow", "MLflow")):
            r = (res.get(f"search/{db}/{tool}") or {}).get("populate")
            if r:
                rows.append([db, label, f"{r['populate_s']:.1f} s", r["method"]])
    return markdown_table(["database", "tool", f"populate {cfg['query_runs']:,} runs", "how"], rows)


def targets(res: dict[str, Any], cfg: dict[str, Any]) -> list[list[str]]:
    out = []
    n = max(cfg["writers"])
    for db in DBS:
        ours = _num(res, f"throughput/{db}/mlops/{n}", "points_per_s")
        best, which = best_mlflow(res, db, n)
        verdict = (
            "n/a" if ours is None or best is None else ("PASS" if ours >= 10 * best else "FAIL")
        )
        out.append(
            [
                f"{db}: throughput at {n} writers ≥ 10{TIMES} MLflow's best ({LABEL.get(which, '?')})",
                _ratio(ours, best),
                verdict,
            ]
        )
    for db in DBS:
        r = res.get(f"search/{db}/mlops") or {}
        for q in QUERIES:
            p95 = (r.get(q) or {}).get("p95_s")
            verdict = "n/a" if p95 is None else ("PASS" if p95 < 0.100 else "FAIL")
            out.append(
                [
                    f"{db}: exp.runs {q} query p95 < 100 ms",
                    f"{_ms(p95)} ms" if p95 is not None else "n/a",
                    verdict,
                ]
            )
    return out


def report(meta: dict[str, Any], res: dict[str, Any], cfg: dict[str, Any]) -> str:
    m = meta["machine"]
    pts = cfg["points"]
    lines = [
        f"Team-scale tracking benchmark — {m['date']}, {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"SQLite {m['sqlite']}, PostgreSQL {meta.get('postgres', {}).get('server_version', 'n/a')}, "
        f"mlops-sdk {meta['versions'].get('mlops', 'n/a')}, MLflow {meta['versions'].get('mlflow', 'n/a')}, "
        f"mode: {meta['mode']}, load average (1, 5, 15 min) at start {meta['loadavg_start']}, "
        f"at end {meta.get('loadavg_end', 'n/a')}; source: commit {meta['source']['commit']}"
        + (
            f" + uncommitted {meta['source']['uncommitted']}"
            if meta["source"]["uncommitted"]
            else ""
        )
        + f", package at {meta['source']['mlops_sdk_path']}",
        "",
        "Throughput: metric points per second, all writers together (start barrier to last run ended, "
        "points counted in the store afterwards). Points per configuration, split evenly between the writers: "
        + ", ".join(f"{LABEL[v]} {pts[v]:,}" for v in VARIANTS)
        + ".",
        "",
        throughput_table(res, cfg),
        "",
        f"Run search over {cfg['query_runs']:,} runs ({cfg['query_metrics']} metrics, 4 params, 2 tags each), "
        f"{cfg['query_repeats']} repeats:",
        "",
        *(f"- {q}: {QUERIES[q]['label']}" for q in QUERIES),
        "",
        search_table(res),
        "",
        populate_table(res, cfg),
        "",
        markdown_table(["target", "measured", "verdict"], targets(res, cfg)),
    ]
    skipped = [(k, r["skipped"]) for k, r in res.items() if "skipped" in r]
    errors = [(k, r["error"]) for k, r in res.items() if "error" in r]
    if skipped:
        lines += ["", "Skipped:", *(f"- {k}: {why}" for k, why in skipped)]
    if errors:
        lines += ["", "Errors:"]
        for k, err in errors:
            lines += [f"--- {k} ---", err]
    return "\n".join(lines)


def source_state() -> dict[str, Any]:
    """The commit measured, and any uncommitted changes to the package (numbers depend on them)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=False
            )
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    import mlops_sdk  # where the measured package comes from (this checkout, or not)

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "mlops_sdk").splitlines(),
        "mlops_sdk_path": str(Path(mlops_sdk.__file__).parent),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--out", help="write results as JSON to this path")
    p.add_argument(
        "--db", default="sqlite,postgresql", help="comma-separated subset of: sqlite,postgresql"
    )
    p.add_argument(
        "--only", default="throughput,search", help="comma-separated subset of: throughput,search"
    )
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"throughput variants, a subset of: {','.join(VARIANTS)}",
    )
    p.add_argument("--writers", help="writer counts, e.g. 1,16 (default 1,4,16)")
    p.add_argument("--tools", default="mlops,mlflow", help="a subset of: mlops,mlflow")
    p.add_argument("--worker", nargs=2, metavar=("KIND", "NAME"), help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.worker:
        kind, name = a.worker
        wcfg = json.loads(a.config)
        fn = {"throughput": throughput_worker, "populate": populate_worker, "query": query_worker}[
            kind
        ]
        Path(a.result_file).write_text(json.dumps(fn(name, wcfg)))
        return 0

    cfg = dict(QUICK if a.quick else FULL)
    cfg["variants"] = [v.strip() for v in a.variants.split(",") if v.strip()]
    if set(cfg["variants"]) - set(VARIANTS):
        p.error(f"unknown variant in --variants; choose from {','.join(VARIANTS)}")
    if a.writers:
        cfg["writers"] = [int(x) for x in a.writers.split(",")]
    cfg["tools"] = [t.strip() for t in a.tools.split(",") if t.strip()]
    if set(cfg["tools"]) - set(TOOLS):
        p.error("unknown tool in --tools; choose from mlops,mlflow")
    cfg["variants"] = [v for v in cfg["variants"] if tool_of(v) in cfg["tools"]]
    dbs = [d.strip() for d in a.db.split(",") if d.strip()]
    parts = [x.strip() for x in a.only.split(",") if x.strip()]
    if set(dbs) - set(DBS) or set(parts) - {"throughput", "search"}:
        p.error("unknown --db or --only value")
    available = {k: tool_available(v) for k, v in TOOLS.items()}
    print(
        f"mlops-sdk team-scale tracking benchmark ({'quick' if a.quick else 'full'}), python {sys.executable}"
    )
    loadavg = [round(x, 2) for x in os.getloadavg()]
    res: dict[str, Any] = {}

    def put(key: str, value: dict[str, Any]) -> None:
        res[key] = value

    meta: dict[str, Any] = {
        "machine": machine_info(),
        "mode": "quick" if a.quick else "full",
        "config": cfg,
        "loadavg_start": loadavg,
    }
    meta["source"] = source_state()
    t_start = perf_counter()
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-load-")).resolve()
    pg: PgCluster | None = None
    # SIGTERM: unwind through the finally blocks, so the servers are stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for db in dbs:
            if db == "postgresql":
                print(
                    "  postgresql starting a throwaway cluster on 127.0.0.1...", end="", flush=True
                )
                try:
                    pg = PgCluster(root / "pgbase")
                    meta["postgres"] = pg.settings
                    print(f" up ({pg.settings})")
                except Exception as exc:
                    print(" unavailable")
                    why = f"PostgreSQL unavailable: {type(exc).__name__}: {str(exc)[:500]}"
                    for part in parts:
                        put(f"{part}/postgresql", {"skipped": why})
                    continue
            try:
                if "throughput" in parts:
                    run_throughput(db, pg, cfg, available, root, put)
                if "search" in parts:
                    run_search(db, pg, cfg, available, root, put)
            finally:
                if pg is not None:
                    pg.close()
                    pg = None
    finally:
        if pg is not None:
            pg.close()
        shutil.rmtree(root, ignore_errors=True)
    elapsed = perf_counter() - t_start
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    versions: dict[str, str] = {}
    for r in res.values():
        if "version" in r:
            versions[tool_of(r.get("variant", r.get("tool", "")))] = r["version"]
    meta.update(versions=versions, elapsed_s=elapsed)
    print()
    print(report(meta, res, cfg))
    print(f"\n(total benchmark time {elapsed:.0f} s)")
    if a.out:
        write_json(a.out, {"meta": meta, "results": res, "targets": targets(res, cfg)})
        print(f"wrote {a.out}")
    return 1 if any("error" in r for r in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
