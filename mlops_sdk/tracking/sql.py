"""The SQL tracking store: SQLite (the embedded default) and PostgreSQL (team scale).

One SQLAlchemy Core layer serves every database; dialect differences (upserts,
locking, LIKE escapes, case folding) are confined to a few helpers.

SQLite runs in WAL mode with a long busy timeout and takes the write lock at
the start of a write transaction (``BEGIN IMMEDIATE``), so many processes can
log into one file without "database is locked" errors: writers queue instead
of failing.

PostgreSQL (``postgresql://user[:password]@host[:port]/db``, driver psycopg 3)
uses a pool of connections checked before use (``pool_pre_ping``); reads run
in REPEATABLE READ so one read never mixes two batches; schema creation and
migration hold an advisory lock so many processes may start at once. Text
columns are ``COLLATE "C"`` (code point order, as SQLite's BINARY), LIKE has
no escape character (as SQLite), NaN is stored as NULL (as SQLite).

On both, transient failures (locked database, connection refused or reset,
server restarting, serialization failures, deadlocks) are retried with
jittered backoff for up to ``retry_seconds``, then raised as
:class:`~mlops_sdk.tracking.base.TransientError`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

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
from mlops_sdk.redact import REDACTED, redact_uri
from mlops_sdk.tracking import schema as S
from mlops_sdk.tracking.base import TrackingStore, TransientError
from mlops_sdk.tracking.sql_versions import VersionsMixin

T = TypeVar("T")

RETRY_SECONDS = 120.0
_IN_CHUNK = 500


def _nan_to_none(value: float) -> float | None:
    return None if value != value else value


def _none_to_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


# PostgreSQL error codes worth retrying: every connection exception (class 08),
# the server shutting down or starting up (57P01 admin_shutdown, 57P02
# crash_shutdown, 57P03 cannot_connect_now), too many connections (53300),
# serialization failures (40001) and deadlocks (40P01).
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})
_TRANSIENT_WORDS = (
    # SQLite
    "database is locked",
    "database table is locked",
    "busy",
    # PostgreSQL / libpq / psycopg, for errors that carry no SQLSTATE (raised client side)
    "could not connect",
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "connection reset",
    "connection timed out",
    "timeout expired",
    "no route to host",
    "network is unreachable",
    "could not receive data from server",
    "could not send data to server",
    "consuming input failed",
    "server conn crashed",
    "ssl syscall error",
    "no connection to the server",
    "the connection is lost",
    "the connection is closed",
    "sorry, too many clients already",
    "could not serialize access",
    "deadlock detected",
)


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _is_transient(exc: BaseException) -> bool:
    """Whether a database error is worth retrying (the same call may succeed a moment later)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    code = _sqlstate(exc)
    if code is not None and (code.startswith("08") or code in _TRANSIENT_SQLSTATES):
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, OperationalError) and any(word in text for word in _TRANSIENT_WORDS)


# -- PostgreSQL ---------------------------------------------------------------------------
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg")
# Engine settings a PostgreSQL URI may carry in its query string (removed before
# the rest reaches libpq): ?pool_size=10&max_overflow=20&pool_timeout=30&pool_recycle=1800
_POOL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "pool_size": int,
    "max_overflow": int,
    "pool_timeout": float,
    "pool_recycle": int,
}
POOL_DEFAULTS: dict[str, Any] = {"pool_size": 5, "max_overflow": 10, "pool_timeout": 30.0, "pool_recycle": 1800}
CONNECT_TIMEOUT = 10


def postgres_engine_args(uri: str) -> tuple[str, dict[str, Any]]:
    """``postgresql://…`` → the SQLAlchemy URL for psycopg 3 and the ``create_engine`` keywords.

    Pool settings in the query string (``pool_size``, ``max_overflow``,
    ``pool_timeout``, ``pool_recycle``) become engine keywords; every other
    query parameter (``sslmode``, ``connect_timeout``, ``options``…) goes to libpq.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in POSTGRES_SCHEMES:
        driver = scheme.partition("+")[2]
        raise BackendError(
            f"tracking store {redact_uri(uri)}: unsupported PostgreSQL driver {driver!r}; "
            "use postgresql:// or postgresql+psycopg:// (psycopg 3: pip install mlops-sdk[postgres])"
        )
    if not parts.path.strip("/"):
        raise BackendError(f"tracking store {redact_uri(uri)}: no database name (postgresql://user@host:port/DATABASE)")
    engine_kwargs: dict[str, Any] = dict(POOL_DEFAULTS)
    query: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _POOL_OPTIONS:
            try:
                engine_kwargs[key] = _POOL_OPTIONS[key](value)
            except ValueError as exc:
                raise BackendError(f"tracking store {redact_uri(uri)}: {key}={value!r} is not a number") from exc
        else:
            query.append((key, value))
    connect_args: dict[str, Any] = {"application_name": "mlops-sdk"}
    if not any(k == "connect_timeout" for k, _ in query):
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    url = urlunsplit(parts._replace(scheme="postgresql+psycopg", query=urlencode(query)))
    engine_kwargs.update(pool_pre_ping=True, connect_args=connect_args)
    return url, engine_kwargs


class _SecondaryErrorFilter(logging.Filter):
    """Drop psycopg's "error ignored terminating <Pipeline>" warnings.

    psycopg logs them when a connection dies inside a pipeline (``executemany``)
    while the first error is still propagating; that first error reaches the
    store, which retries it or raises it, so the warning is only noise on stderr.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


_PSYCOPG_FILTER = _SecondaryErrorFilter()


def _quiet_psycopg() -> None:
    logger = logging.getLogger("psycopg")
    if _PSYCOPG_FILTER not in logger.filters:
        logger.addFilter(_PSYCOPG_FILTER)


def _password_of(uri: str) -> str | None:
    """The password in ``uri`` (netloc or ``?password=``), to scrub from error messages."""
    try:
        parts = urlsplit(uri)
        secrets = [parts.password] + [v for k, v in parse_qsl(parts.query) if k == "password"]
    except ValueError:
        return None
    found = [s for s in secrets if s]
    return found[0] if found else None


def sqlite_url(uri: str, root: Path) -> str:
    """``sqlite:///rel.db`` is relative to the workspace root; ``sqlite:////abs.db`` is absolute."""
    rest = uri.split("://", 1)[1]
    if rest in ("", "/", "/:memory:", ":memory:"):
        return "sqlite://"
    path = rest[1:] if rest.startswith("/") else rest
    full = Path(path) if Path(path).is_absolute() else (root / path)
    full.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{full.resolve()}"


class SqlTrackingStore(VersionsMixin, TrackingStore):
    """Tracking store on SQLite or PostgreSQL, through SQLAlchemy Core."""

    def __init__(self, uri: str, *, root: Path | str = ".", engine: Engine | None = None, retry_seconds: float = RETRY_SECONDS) -> None:
        self.uri = redact_uri(uri)
        self._password = _password_of(uri)
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
        # The collation lower() folds under for ILIKE (PostgreSQL: chosen in _create_schema).
        self._fold_collation: str | None = None
        # PostgreSQL: a read runs in one snapshot, so it never sees half of a concurrent batch.
        self._read_options: dict[str, Any] = (
            {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True} if self.dialect == "postgresql" else {}
        )
        try:
            self._retry(self._create_schema)
        except BaseException:
            engine.dispose()
            raise

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
        url, kwargs = postgres_engine_args(uri)
        _quiet_psycopg()
        try:
            return sa.create_engine(url, **kwargs)
        except ImportError as exc:
            from mlops_sdk.errors import MissingDependency

            raise MissingDependency(
                f"tracking store {redact_uri(uri)} needs psycopg 3 ({exc}): pip install mlops-sdk[postgres]"
            ) from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._exclusive(), self.engine.connect().execution_options(mlops_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._exclusive(), self.engine.connect().execution_options(**self._read_options) as conn, conn.begin():
            yield conn

    def _exclusive(self) -> AbstractContextManager[Any]:
        return self._lock if self._one_connection else nullcontext()

    def _scrub(self, text: str) -> str:
        """``text`` without the connection password (drivers may echo connection strings)."""
        return text.replace(self._password, REDACTED) if self._password else text

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying transient failures with jittered backoff for up to ``retry_seconds``."""
        started = time.monotonic()
        deadline = started + self.retry_seconds
        delay = 0.02
        while True:
            try:
                return fn()
            except MlopsError:
                raise
            except DBAPIError as exc:
                transient = _is_transient(exc)
                if not transient or time.monotonic() >= deadline:
                    cause = str(exc.orig if exc.orig else exc).strip()
                    if transient:
                        cause += f" (still failing after {time.monotonic() - started:.1f}s of retries)"
                    kind = TransientError if transient else BackendError
                    raise kind(f"tracking store {self.uri}: {self._scrub(cause)}") from exc
            except sa.exc.TimeoutError as exc:  # every pooled connection busy for pool_timeout
                if time.monotonic() >= deadline:
                    raise TransientError(f"tracking store {self.uri}: {self._scrub(str(exc))}") from exc
            except SQLAlchemyError as exc:
                raise BackendError(f"tracking store {self.uri}: {self._scrub(str(exc))}") from exc
            # sleep, but not past the deadline: the last try happens right at it
            time.sleep(max(0.0, min(delay * (0.5 + random.random()), deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)

    def _create_schema(self) -> None:
        """Create or migrate the schema, once, however many processes open the store at once."""
        if self.dialect == "postgresql":
            # Fast path: a database already at this version needs no lock.
            with self._read() as conn:
                self._fold_collation = _pg_fold_collation(conn)
                if S.current_version(conn) == S.SCHEMA_VERSION:
                    return
        try:
            with self._write() as conn:
                S.lock_schema(conn)
                S.migrate(conn)
        except S.SchemaTooNew as exc:
            raise BackendError(
                f"tracking store {self.uri} has schema version {exc.version}, newer than this "
                f"mlops-sdk understands ({S.SCHEMA_VERSION}); upgrade mlops-sdk"
            ) from None
        except DBAPIError as exc:
            if _sqlstate(exc) == "42501":  # insufficient_privilege
                raise BackendError(
                    f"tracking store {self.uri}: the first start creates the tables, which needs CREATE "
                    f"on the database's schema (GRANT CREATE ON SCHEMA public TO <user>, or make the user "
                    f"the database owner): {self._scrub(str(exc.orig))}"
                ) from exc
            raise

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
        attempts = 0

        def go() -> None:
            nonlocal attempts
            attempts += 1
            with self._write() as conn:
                inserted = conn.execute(
                    self._insert(S.runs)
                    .values(
                        id=run_id,
                        experiment_id=experiment_id,
                        name=name,
                        status=RunStatus.RUNNING.value,
                        start_time=start_time,
                        parent_id=parent_id,
                        context=context_json,
                    )
                    .on_conflict_do_nothing(index_elements=["id"])
                    .execution_options(preserve_rowcount=True)  # SQLAlchemy counts UPDATE/DELETE only, unless asked
                ).rowcount
                if inserted == 0:
                    existing = conn.execute(
                        sa.select(S.runs.c.experiment_id, S.runs.c.name, S.runs.c.start_time, S.runs.c.context)
                        .where(S.runs.c.id == run_id)
                    ).first()
                    # A retry after a connection lost during COMMIT: the first attempt did commit.
                    if attempts > 1 and existing is not None and tuple(existing) == (experiment_id, name, start_time, context_json):
                        return
                    raise BackendError(f"tracking store {self.uri}: a run with id {run_id!r} already exists")
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
            return self._apply(column, expr.op, value, present=column.is_not(None))
        if expr.field == "metrics":
            t, column = S.latest_metrics, S.latest_metrics.c.value
        elif expr.field == "tags":
            t, column = S.tags, S.tags.c.value
        else:
            t = S.params
            column = t.c.value_text if isinstance(values[0], str) else t.c.value_num
        inner = self._apply(column, expr.op, value, present=column.is_not(None))
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
        values.sort(key=lambda v: (v["run_id"], v["key"]))  # one lock order for every writer: no deadlocks
        conn.execute(self._insert(S.params).on_conflict_do_nothing(index_elements=["run_id", "key"]), values)

    def _write_tags(self, conn: Connection, rows: Sequence[tuple[str, str, str]]) -> None:
        if not rows:
            return
        latest: dict[tuple[str, str], str] = {}
        for run_id, key, value in rows:
            latest[(run_id, key)] = value
        stmt = self._insert(S.tags)
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": stmt.excluded.value})
        conn.execute(stmt, [{"run_id": r, "key": k, "value": v} for (r, k), v in sorted(latest.items())])

    def _write_metrics(self, conn: Connection, rows: Sequence[tuple[str, str, float, int, float]]) -> None:
        if not rows:
            return
        # The hot write: plain tuples through the driver's executemany, without
        # SQLAlchemy's per-row parameter processing (the metric flush is most of
        # what logging costs).
        values = [(r, k, v if v == v else None, s, t) for r, k, v, s, t in rows]
        if self.dialect == "postgresql":
            # COPY streams rows in one round trip: several times faster than INSERTs.
            raw: Any = conn.connection.driver_connection
            dbapi = self.engine.dialect.loaded_dbapi
            try:
                with raw.cursor() as cur, cur.copy(self._metrics_copy_sql) as copy:
                    for row in values:
                        copy.write_row(row)
            except dbapi.Error as exc:  # as SQLAlchemy would raise it, so retries and errors work alike
                raise sa.exc.DBAPIError.instance(
                    self._metrics_copy_sql,
                    None,
                    exc,
                    dbapi.Error,
                    connection_invalidated=self.engine.dialect.is_disconnect(exc, raw, None),
                    dialect=self.engine.dialect,
                ) from exc
        else:
            conn.exec_driver_sql(self._metrics_insert_sql, values)
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
            [
                {"run_id": r, "key": k, "value": _nan_to_none(v), "step": s, "timestamp": t}
                for (r, k, v, s, t) in (newest[ident] for ident in sorted(newest))
            ],
        )

    @functools.cached_property
    def _metrics_insert_sql(self) -> str:
        dialect = self.engine.dialect
        quote = dialect.identifier_preparer.quote
        columns = ("run_id", "key", "value", "step", "timestamp")
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        return (
            f"INSERT INTO {quote(S.metrics.name)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join(mark for _ in columns)})"
        )

    @functools.cached_property
    def _metrics_copy_sql(self) -> str:
        quote = self.engine.dialect.identifier_preparer.quote
        columns = ", ".join(quote(c) for c in ("run_id", "key", "value", "step", "timestamp"))
        return f"COPY {quote(S.metrics.name)} ({columns}) FROM STDIN"

    def write_batch(self, batch: WriteBatch) -> None:
        if not len(batch):
            return

        def go() -> None:
            with self._write() as conn:
                if batch.metrics and not self._claim_batch(conn, batch.token):
                    return  # this very batch was committed before (a retry after a lost COMMIT)
                self._write_params(conn, batch.params)
                self._write_tags(conn, batch.tags)
                self._write_metrics(conn, batch.metrics)

        self._retry(go)

    def _claim_batch(self, conn: Connection, token: str) -> bool:
        """Record ``token`` as applied in this transaction; False when it already was.

        Params (first value wins) and tags (last value wins) are idempotent; metric
        points are appended, so a batch with metrics must not be applied twice when
        a retry follows a COMMIT whose answer was lost with the connection.
        """
        now = time.time()
        ab = S.applied_batches
        claimed = conn.execute(
            self._insert(ab)
            .values(token=token, applied_at=now)
            .on_conflict_do_nothing(index_elements=["token"])
            .execution_options(preserve_rowcount=True)
        ).rowcount
        if claimed and random.random() < 0.002:  # now and then, forget old tokens
            conn.execute(ab.delete().where(ab.c.applied_at < now - S.APPLIED_BATCH_RETENTION))
        return bool(claimed)

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

    def artifact_digests(self) -> set[str]:
        def go() -> set[str]:
            with self._read() as conn:
                return {r[0] for r in conn.execute(sa.select(S.artifacts.c.digest).distinct())}

        return self._retry(go)

    def list_artifacts(self, run_id: str) -> list[ArtifactEntry]:
        a = S.artifacts

        def go() -> list[ArtifactEntry]:
            with self._read() as conn:
                rows = conn.execute(sa.select(a).where(a.c.run_id == run_id).order_by(a.c.path)).all()
                return [ArtifactEntry(r.path, r.size, r.digest) for r in rows]

        return self._retry(go)


    def _apply(self, column: Any, op: str, value: Any, *, present: Any) -> Any:
        if op in ("like", "ilike"):
            # No escape character anywhere: SQLite has none by default, PostgreSQL's default
            # (backslash) is switched off, so '\\' in a pattern is a plain character on both.
            escape = "" if self.dialect == "postgresql" else None
            if op == "like":
                return column.like(value, escape=escape)
            pattern: Any = sa.literal(value, sa.Text())
            if self._fold_collation is not None:  # lower() folds per its input's collation
                column, pattern = column.collate(self._fold_collation), pattern.collate(self._fold_collation)
            return sa.func.lower(column).like(sa.func.lower(pattern), escape=escape)
        return _apply(column, op, value, present=present)


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
    if op == "in":
        return column.in_(list(value))
    if op == "not in":
        return sa.and_(present, column.not_in(list(value)))
    raise BackendError(f"unknown operator {op!r}")  # pragma: no cover - parser rejects it


def _pg_fold_collation(conn: Connection) -> str:
    """The collation ILIKE lowers text under on PostgreSQL: Unicode-aware, like Python's ``str.lower``.

    The columns are ``COLLATE "C"``, and lower() under "C" folds ASCII letters
    only. ICU's root locale folds every letter; without ICU, the database's
    default collation does (when the database's locale is a UTF-8 one).
    """
    row = conn.execute(sa.text("SELECT collname FROM pg_collation WHERE collname = 'und-x-icu'")).first()
    return "und-x-icu" if row is not None else "default"


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


def open_postgres(uri: str, *, root: Path | str = ".", retry_seconds: float = RETRY_SECONDS) -> SqlTrackingStore:
    """Factory registered for the ``postgresql`` scheme (and ``postgresql+psycopg``).

    ``postgresql://user[:password]@host[:port]/database[?sslmode=…&pool_size=…]``.
    The database must exist; the first store to open it creates the tables.
    """
    return SqlTrackingStore(uri, root=root, retry_seconds=retry_seconds)


__all__ = ["IntegrityError", "SqlTrackingStore", "open_postgres", "open_sqlite", "postgres_engine_args", "sqlite_url"]
