"""The PostgreSQL tracking store: the shared conformance suite, plus what only a server has.

Every test gets a fresh database on the session's throwaway server
(``postgres_server`` / ``postgres_url`` in conftest.py); without PostgreSQL's
programs the tests skip, except on CI, where they fail.
"""

from __future__ import annotations

import math
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from mlops_sdk.errors import BackendError, MlopsError
from mlops_sdk.query import parse_filter
from mlops_sdk.records import RunStatus, WriteBatch
from mlops_sdk.testing.postgres import PostgresServer
from mlops_sdk.testing.tracking_conformance import TrackingStoreConformance
from mlops_sdk.tracking import schema as S
from mlops_sdk.tracking.base import TrackingStore, TransientError
from mlops_sdk.tracking.sql import SqlTrackingStore, _is_transient, postgres_engine_args


def _with_password(url: str, password: str) -> str:
    return url.replace("mlops@", f"mlops:{password}@", 1)


class TestPostgresTracking(TrackingStoreConformance):
    @pytest.fixture
    def tracking_store(self, postgres_url: str) -> Iterator[TrackingStore]:
        store = SqlTrackingStore(postgres_url)
        yield store
        store.close()


# -- opening through the registry -----------------------------------------------------
@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg"])
def test_scheme_opens_through_the_registry(postgres_url: str, scheme: str) -> None:
    from mlops_sdk.plugins import create_backend

    uri = postgres_url.replace("postgresql", scheme, 1)
    store = create_backend("tracking", uri)
    try:
        assert isinstance(store, SqlTrackingStore) and store.dialect == "postgresql"
        assert store.engine.dialect.driver == "psycopg"
        assert store.uri == uri
        exp = store.get_or_create_experiment("e")
        assert store.find_experiment("e") == exp
    finally:
        store.close()


def test_workspace_on_postgres_records_no_password(postgres_url: str, tmp_path: Any) -> None:
    import mlops_sdk as mlops

    secret = "s3cr3t-" + uuid.uuid4().hex[:8]
    uri = _with_password(postgres_url, secret)
    ws = mlops.Workspace.open(tmp_path, tracking=uri)
    try:
        with ws.experiment("e").start_run(name="r", params={"n": 1}) as run:
            run.log_metric("loss", 0.5)
        record = ws.get_run(run.id)
        assert record.metrics["loss"] == 0.5
        assert secret not in repr(ws) and secret not in ws.tracking.uri
        assert secret not in repr(record.context) and secret not in repr(record.params)
    finally:
        ws.close()


def test_other_drivers_are_refused_clearly(postgres_url: str) -> None:
    with pytest.raises(BackendError, match="psycopg"):
        SqlTrackingStore(postgres_url.replace("postgresql", "postgresql+psycopg2", 1))


def test_pool_settings_from_the_query_string() -> None:
    url, kwargs = postgres_engine_args("postgresql://u:pw@h:5433/db?pool_size=7&max_overflow=3&sslmode=disable")
    assert url == "postgresql+psycopg://u:pw@h:5433/db?sslmode=disable"
    assert kwargs["pool_size"] == 7 and kwargs["max_overflow"] == 3 and kwargs["pool_pre_ping"] is True
    assert kwargs["connect_args"]["connect_timeout"] > 0
    with pytest.raises(BackendError, match="database name"):
        postgres_engine_args("postgresql://u@h:5433/")


# -- passwords --------------------------------------------------------------------------
def test_password_is_hidden_in_uri_and_errors(postgres_url: str, postgres_server: PostgresServer) -> None:
    secret = "hunter2-" + uuid.uuid4().hex[:8]
    # the test server trusts 127.0.0.1, so any password connects
    store = SqlTrackingStore(_with_password(postgres_url, secret))
    try:
        assert secret not in store.uri and "***" in store.uri
        store.get_or_create_experiment("e")
        with pytest.raises(MlopsError) as info:
            store.create_run(store.get_or_create_experiment("e").id, run_id="x" * 32, name="r", start_time=1.0)
            store.create_run(store.get_or_create_experiment("e").id, run_id="x" * 32, name="r", start_time=1.0)
        assert secret not in str(info.value)
    finally:
        store.close()
    # a database that does not exist: the error names the store, never the password
    missing = _with_password(postgres_server.url("no_such_db"), secret)
    with pytest.raises(BackendError) as info:
        SqlTrackingStore(missing, retry_seconds=0.5)
    message = str(info.value)
    assert secret not in message and "no_such_db" in message and "postgresql://" in message
    # ... and in ?password= form too
    with pytest.raises(BackendError) as info:
        SqlTrackingStore(postgres_server.url("no_such_db") + f"?password={secret}", retry_seconds=0.5)
    assert secret not in str(info.value)


# -- dialect parity details ---------------------------------------------------------------
def test_text_is_compared_and_sorted_by_code_point(postgres_url: str) -> None:
    store = SqlTrackingStore(postgres_url)
    try:
        exp = store.get_or_create_experiment("e").id
        names = ["b", "B", "a", "A", "é", "É", "_", "a b", "ab", "Z"]
        ids = {}
        for i, name in enumerate(names):
            ids[name] = store.create_run(exp, run_id=uuid.uuid4().hex, name=name, start_time=float(i), tags={"t": name}).id
        from mlops_sdk.query import OrderKey

        found = [r.name for r in store.search_runs([exp], None, [OrderKey("tags", "t")])]
        assert found == sorted(names)
        assert {r.name for r in store.search_runs([exp], parse_filter("tags.t < 'a'"))} == {n for n in names if n < "a"}
        assert {r.name for r in store.search_runs([exp], parse_filter("name like 'a_'"))} == {"ab"}
        # backslash is a plain character in LIKE patterns, as on SQLite
        store.create_run(exp, run_id=uuid.uuid4().hex, name="x\\_y", start_time=99.0)
        assert [r.name for r in store.search_runs([exp], parse_filter("name like 'x\\\\_y'"))] == ["x\\_y"]
        assert [r.name for r in store.search_runs([exp], parse_filter("name ilike 'X\\\\_Y'"))] == ["x\\_y"]
    finally:
        store.close()


def test_nan_inf_and_big_steps_round_trip(postgres_url: str) -> None:
    store = SqlTrackingStore(postgres_url)
    try:
        exp = store.get_or_create_experiment("e").id
        run = store.create_run(exp, run_id=uuid.uuid4().hex, name="r", start_time=1.0)
        store.write_batch(
            WriteBatch(metrics=[(run.id, "a", math.inf, 2**62, 1.0), (run.id, "b", -math.inf, 0, 1.0), (run.id, "c", math.nan, 0, 1.0)])
        )
        metrics = store.get_run(run.id).metrics
        assert metrics["a"] == math.inf and metrics["b"] == -math.inf and math.isnan(metrics["c"])
        assert store.metric_history(run.id, "a")[0].step == 2**62
        with store.engine.connect() as conn:  # NaN is stored as NULL, as on SQLite
            assert conn.execute(sa.select(S.metrics.c.value).where(S.metrics.c.key == "c")).scalar_one() is None
    finally:
        store.close()


def test_transient_sqlstates() -> None:
    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__("boom")
            self.sqlstate = sqlstate

    for code, transient in [("08006", True), ("08001", True), ("57P01", True), ("57P03", True), ("40001", True), ("40P01", True), ("23505", False), ("42P01", False)]:
        exc = sa.exc.DBAPIError("stmt", None, Orig(code))
        assert _is_transient(exc) is transient, code


# -- schema creation under concurrency ----------------------------------------------------
def _open_store(url: str, barrier: Any, queue: Any) -> None:
    try:
        barrier.wait(timeout=60)
        store = SqlTrackingStore(url, retry_seconds=30)
        exp = store.get_or_create_experiment("shared")
        store.close()
        queue.put(("ok", exp.id))
    except BaseException as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def test_many_processes_create_the_schema_at_once(postgres_url: str) -> None:
    n = 8
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_open_store, args=(postgres_url, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [msg for kind, msg in results if kind == "error"]
    assert not errors, errors
    assert len({msg for _, msg in results}) == 1  # one experiment, seen by all
    store = SqlTrackingStore(postgres_url)
    try:
        with store.engine.connect() as conn:
            assert S.current_version(conn) == S.SCHEMA_VERSION
            assert conn.execute(sa.select(sa.func.count()).select_from(S.schema_info)).scalar_one() == 1
    finally:
        store.close()


def test_threads_opening_stores_at_once(postgres_url: str) -> None:
    import threading

    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            SqlTrackingStore(postgres_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_uri(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh database of either kind (the migration and batch checks run on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}".replace("sqlite:///", "sqlite:////", 1)
    return str(request.getfixturevalue("postgres_url"))


def test_version_1_database_is_migrated(sql_uri: str) -> None:
    """A database made by the first release (schema 1) is brought to the current version on open."""
    SqlTrackingStore(sql_uri).close()
    store = SqlTrackingStore(sql_uri)
    with store.engine.begin() as conn:  # turn it back into version 1
        for table in (S.applied_batches, S.versions, S.version_lineage, S.aliases, S.alias_history):
            table.drop(conn)
        conn.execute(S.schema_info.update().values(version=1))
    store.close()
    store = SqlTrackingStore(sql_uri)
    try:
        with store.engine.connect() as conn:
            assert S.current_version(conn) == S.SCHEMA_VERSION == 3
            for table in ("applied_batches", "versions", "version_lineage", "aliases", "alias_history"):
                assert sa.inspect(conn).has_table(table), table
        exp = store.get_or_create_experiment("e").id
        run = store.create_run(exp, run_id=uuid.uuid4().hex, name="r", start_time=1.0)
        store.write_batch(WriteBatch(metrics=[(run.id, "m", 1.0, 0, 1.0)]))
        assert store.get_run(run.id).metrics == {"m": 1.0}
    finally:
        store.close()


_V3_TABLES = (S.alias_history, S.aliases, S.version_lineage, S.versions)


def test_version_2_database_is_migrated_keeping_its_runs(sql_uri: str) -> None:
    """A schema-2 database (runs, no versions) gets the version tables on open; its runs stay as they were."""
    store = SqlTrackingStore(sql_uri)
    exp = store.get_or_create_experiment("before-v3").id
    run = store.create_run(exp, run_id=uuid.uuid4().hex, name="old run", start_time=1.0, params={"n": 100}, tags={"t": "x"})
    store.write_batch(WriteBatch(metrics=[(run.id, "loss", 0.5, 0, 1.0), (run.id, "loss", 0.25, 1, 2.0)]))
    store.end_run(run.id, RunStatus.FINISHED, 3.0)
    before = store.get_run(run.id)
    with store.engine.begin() as conn:  # schema 2: everything but the tables version 3 added
        for table in _V3_TABLES:
            table.drop(conn)
        conn.execute(S.schema_info.update().values(version=2))
        assert not sa.inspect(conn).has_table("versions")
    store.close()
    store = SqlTrackingStore(sql_uri)
    try:
        with store.engine.connect() as conn:
            assert S.current_version(conn) == 3
            assert all(sa.inspect(conn).has_table(t.name) for t in _V3_TABLES)
        assert store.get_run(run.id) == before
        assert [m.value for m in store.metric_history(run.id, "loss")] == [0.5, 0.25]
        record, created = store.create_version("dataset", "d", id="a" * 64, manifest=b"{}", created_at=4.0, run_id=run.id)
        assert created and record.version == 1
        store.add_lineage(run.id, "dataset", "d", 1, "input")
        assert [e.run_id for e in store.lineage(kind="dataset", name="d")] == [run.id]
        with store.engine.begin() as conn:  # at the current version: nothing more to do
            S.lock_schema(conn)
            assert S.migrate(conn) == []
    finally:
        store.close()


def test_write_batch_applies_a_batch_once(sql_uri: str) -> None:
    """The same batch written again (a retry after a lost COMMIT) is not appended twice."""
    store = SqlTrackingStore(sql_uri)
    try:
        exp = store.get_or_create_experiment("e").id
        run = store.create_run(exp, run_id=uuid.uuid4().hex, name="r", start_time=1.0)
        batch = WriteBatch(metrics=[(run.id, "m", 1.0, 0, 1.0)], tags=[(run.id, "t", "a")])
        store.write_batch(batch)
        store.write_batch(WriteBatch(tags=[(run.id, "t", "b")]))
        store.write_batch(batch)  # again: nothing changes
        assert [m.value for m in store.metric_history(run.id, "m")] == [1.0]
        assert store.get_run(run.id).tags == {"t": "b"}
        store.write_batch(WriteBatch(metrics=[(run.id, "m", 1.0, 0, 1.0)]))  # an equal, new batch is appended
        assert [m.value for m in store.metric_history(run.id, "m")] == [1.0, 1.0]
    finally:
        store.close()


def test_a_commit_lost_with_the_connection_is_not_applied_twice(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection dies right after COMMIT went out: the retry finds the batch applied."""
    store = SqlTrackingStore(postgres_url, retry_seconds=30)
    try:
        exp = store.get_or_create_experiment("e").id
        run = store.create_run(exp, run_id=uuid.uuid4().hex, name="r", start_time=1.0)
        fail = {"left": 1}

        @sa.event.listens_for(store.engine, "commit")
        def _lose_answer(conn: sa.Connection) -> None:
            if fail["left"] and conn.get_execution_options().get("mlops_write"):
                fail["left"] -= 1
                conn.connection.dbapi_connection.commit()  # type: ignore[union-attr]  # really commit...
                raise sa.exc.OperationalError("COMMIT", None, Exception("server closed the connection unexpectedly"))

        store.write_batch(WriteBatch(metrics=[(run.id, "m", 1.0, 0, 1.0)]))
        assert fail["left"] == 0
        assert [m.value for m in store.metric_history(run.id, "m")] == [1.0]
        retried_run = uuid.uuid4().hex
        fail["left"] = 1
        store.create_run(exp, run_id=retried_run, name="r2", start_time=2.0)  # create_run likewise
        assert store.get_run(retried_run).name == "r2"
    finally:
        store.close()


def test_newer_schema_is_refused(postgres_url: str) -> None:
    SqlTrackingStore(postgres_url).close()
    engine = sa.create_engine(postgres_engine_args(postgres_url)[0])
    with engine.begin() as conn:
        conn.execute(S.schema_info.update().values(version=S.SCHEMA_VERSION + 1))
    engine.dispose()
    with pytest.raises(BackendError, match="newer"):
        SqlTrackingStore(postgres_url)


def test_migration_steps_run_once_in_order(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner applies the steps above the stored version, under the lock, and records the version."""
    SqlTrackingStore(postgres_url).close()
    engine = sa.create_engine(postgres_engine_args(postgres_url)[0])
    with engine.begin() as conn:
        conn.execute(S.schema_info.update().values(version=1))
    calls: list[int] = []

    def step(version: int) -> S.Migration:
        def apply(conn: sa.Connection) -> None:
            calls.append(version)
            conn.execute(sa.text(f"CREATE TABLE mig_{version} (x int)"))

        return S.Migration(version, f"table mig_{version}", apply)

    monkeypatch.setattr(S, "SCHEMA_VERSION", 3)  # pretend two releases came after version 1
    try:
        with engine.begin() as conn:
            S.lock_schema(conn)
            done = S.migrate(conn, [step(2), step(3)])
        assert calls == [2, 3] and len(done) == 2
        with engine.begin() as conn:
            S.lock_schema(conn)
            assert S.migrate(conn, [step(2), step(3)]) == []
            assert S.current_version(conn) == 3
        assert calls == [2, 3]
    finally:
        engine.dispose()


# -- the server going away and coming back ---------------------------------------------------
def test_server_down_gives_a_clear_error_then_recovers(postgres_url: str, postgres_server: PostgresServer) -> None:
    store = SqlTrackingStore(postgres_url, retry_seconds=1.0)
    try:
        exp = store.get_or_create_experiment("e").id
        run = store.create_run(exp, run_id=uuid.uuid4().hex, name="r", start_time=1.0)
        postgres_server.stop()
        started = time.monotonic()
        with pytest.raises(BackendError) as info:
            store.get_run(run.id)
        assert time.monotonic() - started < 30
        assert isinstance(info.value, TransientError)
        message = str(info.value)
        assert "tracking store postgresql://" in message and "retries" in message
        with pytest.raises(TransientError):
            store.write_batch(WriteBatch(metrics=[(run.id, "m", 1.0, 0, 1.0)]))
        postgres_server.start_again()
        # the pool's dead connections are replaced (pool_pre_ping); nothing was half-written
        store.write_batch(WriteBatch(metrics=[(run.id, "m", 2.0, 1, 2.0)]))
        assert [m.value for m in store.metric_history(run.id, "m")] == [2.0]
        store.end_run(run.id, RunStatus.FINISHED, 3.0)
        assert store.get_run(run.id).status is RunStatus.FINISHED
    finally:
        if not postgres_server.running:
            postgres_server.start_again()
        store.close()


def test_calls_ride_out_a_restart(postgres_url: str, postgres_server: PostgresServer) -> None:
    """With the default patience, a call made while the server restarts waits for it."""
    import threading

    store = SqlTrackingStore(postgres_url, retry_seconds=60)
    try:
        exp = store.get_or_create_experiment("e").id
        run = store.create_run(exp, run_id=uuid.uuid4().hex, name="r", start_time=1.0)
        postgres_server.stop(mode="immediate")
        timer = threading.Timer(1.0, postgres_server.start_again)
        timer.start()
        store.write_batch(WriteBatch(metrics=[(run.id, "m", 1.0, 0, 1.0)]))  # retried until the server is back
        timer.join()
        assert store.get_run(run.id).metrics == {"m": 1.0}
    finally:
        if not postgres_server.running:
            postgres_server.start_again()
        store.close()


def test_terminated_backends_are_replaced(postgres_url: str, postgres_server: PostgresServer) -> None:
    """An administrator killing the store's connections (57P01) costs a retry, not an error."""
    store = SqlTrackingStore(postgres_url, retry_seconds=30)
    try:
        exp = store.get_or_create_experiment("e").id
        db = postgres_url.rsplit("/", 1)[1]
        admin = sa.create_engine(postgres_engine_args(postgres_server.admin_url(db))[0])
        with admin.begin() as conn:
            killed = conn.execute(
                sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                {"d": db},
            ).scalar_one()
        admin.dispose()
        assert killed >= 1
        assert store.get_experiment(exp).name == "e"
    finally:
        store.close()


# -- permissions ---------------------------------------------------------------------------
def test_first_start_needs_create_then_plain_rights_suffice(postgres_url: str, postgres_server: PostgresServer) -> None:
    db = postgres_url.rsplit("/", 1)[1]
    role = f"user_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_engine_args(postgres_server.admin_url(db))[0])
    limited = postgres_url.replace("mlops@", f"{role}@", 1)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
            conn.execute(sa.text(f'REVOKE CREATE ON SCHEMA public FROM "{role}", PUBLIC'))
        with pytest.raises(BackendError, match="needs CREATE"):
            SqlTrackingStore(limited, retry_seconds=1)
        SqlTrackingStore(postgres_url).close()  # the owner creates the tables
        with admin.begin() as conn:
            conn.execute(sa.text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'))
            conn.execute(sa.text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
        store = SqlTrackingStore(limited, retry_seconds=1)
        try:
            exp = store.get_or_create_experiment("e").id
            store.set_experiment_tag(exp, "k", "v")
            run = store.create_run(exp, run_id=uuid.uuid4().hex, name="r", start_time=1.0, params={"p": 1}, tags={"t": "x"})
            store.write_batch(WriteBatch(metrics=[(run.id, "m", 1.0, 0, 1.0)], tags=[(run.id, "t", "y")]))
            store.end_run(run.id, RunStatus.FINISHED, 2.0)
            assert [r.id for r in store.search_runs([exp], parse_filter("metrics.m = 1"))] == [run.id]
        finally:
            store.close()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_psycopg_secondary_pipeline_warnings_are_dropped(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A connection lost inside executemany makes psycopg warn on stderr; the store handles the error itself."""
    import logging

    SqlTrackingStore(postgres_url).close()
    logger = logging.getLogger("psycopg")
    with caplog.at_level(logging.WARNING, logger="psycopg"):
        logger.warning("error ignored terminating %r: %s", "<psycopg.Pipeline [BAD]>", "the connection is lost")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records if r.name == "psycopg"] == ["something else"]
