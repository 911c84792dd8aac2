"""The SQL tracking store: SQLite (the embedded default), shared with PostgreSQL.

One SQLAlchemy Core layer serves every database; dialect differences (upserts,
locking) are confined to a few helpers. SQLite runs in WAL mode with a long
busy timeout and takes the write lock at the start of a write transaction
(``BEGIN IMMEDIATE``), so many processes can log into one file without
"database is locked" errors: writers queue instead of failing.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from mlops_sdk.errors import BackendError, ExperimentNotFound, MlopsError, RunNotFound
from mlops_sdk.query import And, Comparison, Expr, Or, OrderKey, param_number, param_text
from mlops_sdk.records import (
    ArtifactEntry,
    ExperimentInfo,
    Metric,
    RunRecord,
    RunStatus,
    WriteBatch,
)
from mlops_sdk.redact import redact_uri
from mlops_sdk.tracking import schema as S
from mlops_sdk.tracking.base import TrackingStore, TransientError

T = TypeVar("T")

RETRY_SECONDS = 120.0
_IN_CHUNK = 500


def _nan_to_none(value: float) -> float | None:
    return None if value != value else value


def _none_to_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, OperationalError) and any(
        word in text
        for word in (
            "database is locked",
            "database table is locked",
            "busy",
            "could not connect",
            "connection refused",
            "server closed the connection",
            "terminating connection",
            "the database system is starting up",
            "the database system is shutting down",
            "connection reset",
            "connection timed out",
        )
    )


def sqlite_url(uri: str, root: Path) -> str:
    """``sqlite:///rel.db`` is relative to the workspace root; ``sqlite:////abs.db`` is absolute."""
    rest = uri.split("://", 1)[1]
    if rest in ("", "/", "/:memory:", ":memory:"):
        return "sqlite://"
    path = rest[1:] if rest.startswith("/") else rest
    full = Path(path) if Path(path).is_absolute() else (root / path)
    full.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{full.resolve()}"


class SqlTrackingStore(TrackingStore):
    """Tracking store on any SQLAlchemy-supported database (tested: SQLite)."""

    def __init__(self, uri: str, *, root: Path | str = ".", engine: Engine | None = None, retry_seconds: float = RETRY_SECONDS) -> None:
        self.uri = redact_uri(uri)
        self.retry_seconds = retry_seconds
        root = Path(root)
        if engine is None:
            engine = self._make_engine(uri, root)
        self.engine = engine
        self.dialect = engine.dialect.name
        # Upserts are dialect-specific; both dialects share the on_conflict API.
        self._insert: Callable[[Any], Any]
        if self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            self._insert = sqlite.insert
        elif self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            self._insert = postgresql.insert
        else:  # pragma: no cover - guarded by the registry
            raise BackendError(f"unsupported database {self.dialect!r} for {self.uri}")
        self._lock = threading.Lock()
        # In-memory SQLite is one connection shared by every thread (StaticPool): one user at a time.
        self._one_connection = isinstance(engine.pool, sa.pool.StaticPool)
        self._retry(self._create_schema)

    # -- connection management ----------------------------------------------------
    @staticmethod
    def _make_engine(uri: str, root: Path) -> Engine:
        if uri.startswith("sqlite:"):
            url = sqlite_url(uri, root)
            kwargs: dict[str, Any] = {"connect_args": {"timeout": 60, "check_same_thread": False}}
            if url == "sqlite://":
                kwargs["poolclass"] = sa.pool.StaticPool
            engine = sa.create_engine(url, **kwargs)
            _configure_sqlite(engine)
            return engine
        return sa.create_engine(uri, pool_pre_ping=True, pool_size=4, max_overflow=8)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._exclusive(), self.engine.connect().execution_options(mlops_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._exclusive(), self.engine.connect() as conn, conn.begin():
            yield conn

    def _exclusive(self) -> AbstractContextManager[Any]:
        return self._lock if self._one_connection else nullcontext()

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying transient failures with jittered backoff for up to ``retry_seconds``."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.02
        while True:
            try:
                return fn()
            except MlopsError:
                raise
            except DBAPIError as exc:
                if not _is_transient(exc) or time.monotonic() >= deadline:
                    kind = TransientError if _is_transient(exc) else BackendError
                    raise kind(f"tracking store {self.uri}: {exc.orig if exc.orig else exc}") from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)

    def _create_schema(self) -> None:
        with self._write() as conn:
            S.metadata.create_all(conn, checkfirst=True)
            row = conn.execute(sa.select(S.schema_info.c.version)).first()
            if row is None:
                conn.execute(S.schema_info.insert().values(id=1, version=S.SCHEMA_VERSION))
            elif row.version > S.SCHEMA_VERSION:
                raise BackendError(
                    f"tracking store {self.uri} has schema version {row.version}, newer than this "
                    f"mlops-sdk understands ({S.SCHEMA_VERSION}); upgrade mlops-sdk"
                )

    def close(self) -> None:
        self.engine.dispose()

    def dispose_after_fork(self) -> None:
        """Drop pooled connections inherited from a parent process."""
        self.engine.dispose(close=False)

    # -- experiments ----------------------------------------------------------------
    def _experiment_tags(self, conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {i: {} for i in ids}
        t = S.experiment_tags
        for row in conn.execute(sa.select(t).where(t.c.experiment_id.in_(list(ids)))):
            out[row.experiment_id][row.key] = row.value
        return out

    def _experiments(self, where: Any = None) -> list[ExperimentInfo]:
        def go() -> list[ExperimentInfo]:
            with self._read() as conn:
                q = sa.select(S.experiments).order_by(S.experiments.c.created_at, S.experiments.c.name)
                if where is not None:
                    q = q.where(where)
                rows = conn.execute(q).all()
                tags = self._experiment_tags(conn, [r.id for r in rows])
                return [ExperimentInfo(r.id, r.name, r.created_at, tags[r.id]) for r in rows]

        return self._retry(go)

    def find_experiment(self, name: str) -> ExperimentInfo | None:
        found = self._experiments(S.experiments.c.name == name)
        return found[0] if found else None

    def get_experiment(self, experiment_id: str) -> ExperimentInfo:
        found = self._experiments(S.experiments.c.id == experiment_id)
        if not found:
            raise ExperimentNotFound(f"no experiment with id {experiment_id!r} in {self.uri}")
        return found[0]

    def list_experiments(self) -> list[ExperimentInfo]:
        return self._experiments()

    def get_or_create_experiment(self, name: str) -> ExperimentInfo:
        existing = self.find_experiment(name)
        if existing is not None:
            return existing

        def create() -> None:
            with self._write() as conn:
                stmt = self._insert(S.experiments).values(id=uuid.uuid4().hex, name=name, created_at=time.time())
                conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

        self._retry(create)
        created = self.find_experiment(name)
        assert created is not None
        return created

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.get_experiment(experiment_id)

        def go() -> None:
            with self._write() as conn:
                stmt = self._insert(S.experiment_tags).values(experiment_id=experiment_id, key=key, value=value)
                conn.execute(stmt.on_conflict_do_update(index_elements=["experiment_id", "key"], set_={"value": value}))

        self._retry(go)

    # -- runs ---------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        *,
        run_id: str,
        name: str,
        start_time: float,
        parent_id: str | None = None,
        params: dict[str, object] | None = None,
        tags: dict[str, str] | None = None,
        context: dict[str, object] | None = None,
    ) -> RunRecord:
        self.get_experiment(experiment_id)
        if parent_id is not None:
            self.get_run(parent_id)
        context_json = json.dumps(context or {}, ensure_ascii=False, default=str)

        def go() -> None:
            with self._write() as conn:
                conn.execute(
                    S.runs.insert().values(
                        id=run_id,
                        experiment_id=experiment_id,
                        name=name,
                        status=RunStatus.RUNNING.value,
                        start_time=start_time,
                        parent_id=parent_id,
                        context=context_json,
                    )
                )
                self._write_params(conn, [(run_id, k, v) for k, v in (params or {}).items()])
                self._write_tags(conn, [(run_id, k, v) for k, v in (tags or {}).items()])

        self._retry(go)
        return self.get_run(run_id)

    def end_run(self, run_id: str, status: RunStatus, end_time: float, error: str | None = None) -> None:
        def go() -> int:
            with self._write() as conn:
                result = conn.execute(
                    S.runs.update()
                    .where(S.runs.c.id == run_id, S.runs.c.status == RunStatus.RUNNING.value)
                    .values(status=RunStatus(status).value, end_time=end_time, error=error)
                )
                return int(result.rowcount)

        if self._retry(go) == 0:
            self.get_run(run_id)  # raises RunNotFound for an unknown id; else already ended

    def _records(self, conn: Connection, rows: Sequence[Any]) -> list[RunRecord]:
        ids = [r.id for r in rows]
        params: dict[str, dict[str, Any]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            for p in conn.execute(sa.select(S.params.c.run_id, S.params.c.key, S.params.c.value_json).where(S.params.c.run_id.in_(chunk))):
                params[p.run_id][p.key] = json.loads(p.value_json)
            for t in conn.execute(sa.select(S.tags).where(S.tags.c.run_id.in_(chunk))):
                tags[t.run_id][t.key] = t.value
            lm = S.latest_metrics
            for m in conn.execute(sa.select(lm.c.run_id, lm.c.key, lm.c.value).where(lm.c.run_id.in_(chunk))):
                metrics[m.run_id][m.key] = _none_to_nan(m.value)
        return [
            RunRecord(
                id=r.id,
                experiment_id=r.experiment_id,
                name=r.name,
                status=RunStatus(r.status),
                start_time=r.start_time,
                end_time=r.end_time,
                parent_id=r.parent_id,
                params=params[r.id],
                metrics=metrics[r.id],
                tags=tags[r.id],
                context=json.loads(r.context or "{}"),
                error=r.error,
            )
            for r in rows
        ]

    def get_run(self, run_id: str) -> RunRecord:
        def go() -> list[RunRecord]:
            with self._read() as conn:
                rows = conn.execute(sa.select(S.runs).where(S.runs.c.id == run_id)).all()
                return self._records(conn, rows)

        found = self._retry(go)
        if not found:
            raise RunNotFound(f"no run with id {run_id!r} in {self.uri}")
        return found[0]

    # -- search ---------------------------------------------------------------------------
    def _condition(self, expr: Expr) -> Any:
        if isinstance(expr, And):
            return sa.and_(*(self._condition(e) for e in expr.items))
        if isinstance(expr, Or):
            return sa.or_(*(self._condition(e) for e in expr.items))
        assert isinstance(expr, Comparison)
        values = expr.value if isinstance(expr.value, tuple) else (expr.value,)
        value: Any = expr.value
        if isinstance(value, tuple):
            # As in query.matches: the first value's type picks the reading (number or text);
            # list values of the other type, and NaN, can never be equal to anything.
            text = isinstance(values[0], str)
            value = tuple(v for v in values if isinstance(v, str) == text and not (isinstance(v, float) and math.isnan(v)))
        elif isinstance(value, float) and math.isnan(value):
            return sa.false()
        if expr.field == "attributes":
            column = S.runs.c[expr.key]
            return _apply(column, expr.op, value, present=column.is_not(None))
        if expr.field == "metrics":
            t, column = S.latest_metrics, S.latest_metrics.c.value
        elif expr.field == "tags":
            t, column = S.tags, S.tags.c.value
        else:
            t = S.params
            column = t.c.value_text if isinstance(values[0], str) else t.c.value_num
        inner = _apply(column, expr.op, value, present=column.is_not(None))
        return sa.exists(
            sa.select(sa.literal(1)).select_from(t).where(t.c.run_id == S.runs.c.id, t.c.key == expr.key, inner)
        )

    def _base_query(self, experiment_ids: Sequence[str] | None, filter: Expr | None) -> Any:
        q = sa.select(S.runs)
        if experiment_ids is not None:
            q = q.where(S.runs.c.experiment_id.in_(list(experiment_ids)))
        if filter is not None:
            q = q.where(self._condition(filter))
        return q

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter: Expr | None = None,
        order_by: Sequence[OrderKey] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        q = self._base_query(experiment_ids, filter)
        clauses: list[Any] = []
        for n, key in enumerate(order_by):
            if key.field == "attributes":
                cols = [S.runs.c[key.key]]
            else:
                table = {"metrics": S.latest_metrics, "params": S.params, "tags": S.tags}[key.field]
                alias = table.alias(f"o{n}")
                q = q.outerjoin(alias, sa.and_(alias.c.run_id == S.runs.c.id, alias.c.key == key.key))
                if key.field == "metrics":
                    cols = [alias.c.value]
                elif key.field == "params":
                    cols = [alias.c.value_num, alias.c.value_text]
                else:
                    cols = [alias.c.value]
            for col in cols:
                clauses.append(sa.nulls_last(col.desc() if key.descending else col.asc()))
        clauses += [S.runs.c.start_time.desc(), S.runs.c.id]
        q = q.order_by(*clauses)
        if limit is not None:
            q = q.limit(limit)
        if offset:
            q = q.offset(offset)

        def go() -> list[RunRecord]:
            with self._read() as conn:
                return self._records(conn, conn.execute(q).all())

        return self._retry(go)

    def count_runs(self, experiment_ids: Sequence[str] | None, filter: Expr | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(self._base_query(experiment_ids, filter).subquery())

        def go() -> int:
            with self._read() as conn:
                return int(conn.execute(q).scalar_one())

        return self._retry(go)

    # -- batched writes --------------------------------------------------------------
    def _write_params(self, conn: Connection, rows: Sequence[tuple[str, str, Any]]) -> None:
        if not rows:
            return
        values = [
            {
                "run_id": run_id,
                "key": key,
                "value_json": json.dumps(value, ensure_ascii=False),
                "value_text": param_text(value),
                "value_num": param_number(value),
            }
            for run_id, key, value in rows
        ]
        conn.execute(self._insert(S.params).on_conflict_do_nothing(index_elements=["run_id", "key"]), values)

    def _write_tags(self, conn: Connection, rows: Sequence[tuple[str, str, str]]) -> None:
        if not rows:
            return
        latest: dict[tuple[str, str], str] = {}
        for run_id, key, value in rows:
            latest[(run_id, key)] = value
        stmt = self._insert(S.tags)
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": stmt.excluded.value})
        conn.execute(stmt, [{"run_id": r, "key": k, "value": v} for (r, k), v in latest.items()])

    def _write_metrics(self, conn: Connection, rows: Sequence[tuple[str, str, float, int, float]]) -> None:
        if not rows:
            return
        conn.execute(
            S.metrics.insert(),
            [{"run_id": r, "key": k, "value": _nan_to_none(v), "step": s, "timestamp": t} for r, k, v, s, t in rows],
        )
        newest: dict[tuple[str, str], tuple[str, str, float, int, float]] = {}
        for row in rows:
            ident = (row[0], row[1])
            old = newest.get(ident)
            if old is None or (row[3], row[4]) >= (old[3], old[4]):
                newest[ident] = row
        lm = S.latest_metrics
        stmt = self._insert(lm)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={"value": stmt.excluded.value, "step": stmt.excluded.step, "timestamp": stmt.excluded.timestamp},
            where=sa.or_(
                stmt.excluded.step > lm.c.step,
                sa.and_(stmt.excluded.step == lm.c.step, stmt.excluded.timestamp >= lm.c.timestamp),
            ),
        )
        conn.execute(
            stmt,
            [{"run_id": r, "key": k, "value": _nan_to_none(v), "step": s, "timestamp": t} for r, k, v, s, t in newest.values()],
        )

    def write_batch(self, batch: WriteBatch) -> None:
        if not len(batch):
            return

        def go() -> None:
            with self._write() as conn:
                self._write_params(conn, batch.params)
                self._write_tags(conn, batch.tags)
                self._write_metrics(conn, batch.metrics)

        self._retry(go)

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        m = S.metrics
        q = (
            sa.select(m.c.value, m.c.step, m.c.timestamp)
            .where(m.c.run_id == run_id, m.c.key == key)
            .order_by(m.c.step, m.c.timestamp, m.c.id)
        )

        def go() -> list[Metric]:
            with self._read() as conn:
                rows = conn.execute(q).all()
                if not rows and conn.execute(sa.select(S.runs.c.id).where(S.runs.c.id == run_id)).first() is None:
                    raise RunNotFound(f"no run with id {run_id!r} in {self.uri}")
                return [Metric(key, _none_to_nan(v), s, t) for v, s, t in rows]

        return self._retry(go)

    # -- artifacts ---------------------------------------------------------------------
    def add_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        self.get_run(run_id)
        if not entries:
            return

        def go() -> None:
            with self._write() as conn:
                stmt = self._insert(S.artifacts)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["run_id", "path"],
                    set_={"size": stmt.excluded.size, "digest": stmt.excluded.digest},
                )
                conn.execute(stmt, [{"run_id": run_id, "path": e.path, "size": e.size, "digest": e.digest} for e in entries])

        self._retry(go)

    def list_artifacts(self, run_id: str) -> list[ArtifactEntry]:
        a = S.artifacts

        def go() -> list[ArtifactEntry]:
            with self._read() as conn:
                rows = conn.execute(sa.select(a).where(a.c.run_id == run_id).order_by(a.c.path)).all()
                return [ArtifactEntry(r.path, r.size, r.digest) for r in rows]

        return self._retry(go)


def _apply(column: Any, op: str, value: Any, *, present: Any) -> Any:
    if op == "=":
        return column == value
    if op == "!=":
        return sa.and_(present, column != value)
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "like":
        return column.like(value)
    if op == "ilike":
        return sa.func.lower(column).like(sa.func.lower(value))
    if op == "in":
        return column.in_(list(value))
    if op == "not in":
        return sa.and_(present, column.not_in(list(value)))
    raise BackendError(f"unknown operator {op!r}")  # pragma: no cover - parser rejects it


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a long busy timeout, case-sensitive LIKE, and BEGIN IMMEDIATE for writes."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA case_sensitive_like = ON")
        cur.close()
        # SQLite's own lower() folds ASCII only; ILIKE must fold 'É' to 'é' like query.matches does
        dbapi_conn.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("mlops_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def open_sqlite(uri: str, *, root: Path | str = ".") -> SqlTrackingStore:
    """Factory registered for the ``sqlite`` scheme."""
    return SqlTrackingStore(uri, root=root)


__all__ = ["IntegrityError", "SqlTrackingStore", "open_sqlite", "sqlite_url"]
