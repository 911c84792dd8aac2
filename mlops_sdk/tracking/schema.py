"""Tables of the SQL tracking store, shared by SQLite and PostgreSQL, and their migrations.

Text columns compare and sort by code point on every database: SQLite's
default BINARY collation does that; on PostgreSQL the columns are declared
``COLLATE "C"`` (byte order, which for UTF-8 is code point order), whatever the
database's own locale is.

The schema carries a version (table ``mlops_schema``). :func:`migrate` brings
a database to :data:`SCHEMA_VERSION`: a fresh database gets every table at the
current version; an older one gets the :data:`MIGRATIONS` steps above its
version, in order. The caller runs it in one transaction holding the schema
lock (:func:`lock_schema`), so many processes opening one database at once
migrate it exactly once and never see a half-built schema.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SCHEMA_VERSION = 3

# The key of the PostgreSQL advisory lock taken while the schema is checked or
# migrated: b"mlopsSQL" as a signed 64-bit integer. Any constant works, as long
# as every version of mlops-sdk uses the same one.
SCHEMA_LOCK_KEY = int.from_bytes(b"mlopsSQL", "big", signed=True)

metadata = sa.MetaData()


def _text(length: int | None = None) -> sa.types.TypeEngine[str]:
    """A text column that compares by code point: BINARY on SQLite, ``COLLATE "C"`` on PostgreSQL."""
    if length is None:
        return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


_Id = _text(32)
_BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

schema_info = sa.Table(
    "mlops_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    sa.Column("name", _text(200), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column("experiment_id", _Id, primary_key=True),
    sa.Column("key", _text(250), primary_key=True),
    sa.Column("value", _text(), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    sa.Column("experiment_id", _Id, nullable=False),
    sa.Column("name", _text(250), nullable=False),
    sa.Column("status", _text(16), nullable=False),
    sa.Column("start_time", sa.Double, nullable=False),
    sa.Column("end_time", sa.Double, nullable=True),
    sa.Column("parent_id", _Id, nullable=True),
    sa.Column("context", _text(), nullable=False, default="{}"),
    sa.Column("error", _text(), nullable=True),
    sa.Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    sa.Index("ix_runs_parent", "parent_id"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", _Id, primary_key=True),
    sa.Column("key", _text(250), primary_key=True),
    sa.Column("value_json", _text(), nullable=False),
    sa.Column("value_text", _text(), nullable=False),
    sa.Column("value_num", sa.Double, nullable=True),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", _Id, primary_key=True),
    sa.Column("key", _text(250), primary_key=True),
    sa.Column("value", _text(), nullable=False),
)

# Every point of every metric. NaN is stored as NULL (SQLite cannot hold NaN).
metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", _BigInt, primary_key=True, autoincrement=True),
    sa.Column("run_id", _Id, nullable=False),
    sa.Column("key", _text(250), nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

# The latest point per (run, metric): what filters and ordering read.
latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", _Id, primary_key=True),
    sa.Column("key", _text(250), primary_key=True),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Index("ix_latest_key_value", "key", "value"),
)

# Batches of metric points already applied, by the batch's token: a batch retried
# after a connection lost during COMMIT (did it commit?) is applied once, not
# twice. Rows older than APPLIED_BATCH_RETENTION seconds are pruned. (Version 2.)
applied_batches = sa.Table(
    "applied_batches",
    metadata,
    sa.Column("token", _Id, primary_key=True),
    sa.Column("applied_at", sa.Double, nullable=False),
    sa.Index("ix_applied_batches_at", "applied_at"),
)
APPLIED_BATCH_RETENTION = 3600.0

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", _Id, primary_key=True),
    sa.Column("path", _text(1000), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("digest", _text(128), nullable=False),
)

# Versions of datasets and models (kind = "dataset" | "model"), numbered 1, 2, … per
# (kind, name). ``manifest`` is the canonical manifest JSON whose sha256 is ``id``. (Version 3.)
versions = sa.Table(
    "versions",
    metadata,
    sa.Column("kind", _text(16), primary_key=True),
    sa.Column("name", _text(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("id", _text(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("message", _text(), nullable=False, default=""),
    sa.Column("tags", _text(), nullable=False, default="{}"),
    sa.Column("meta", _text(), nullable=False, default="{}"),
    sa.Column("run_id", _Id, nullable=True),
    sa.Column("manifest", _text(), nullable=False),
    sa.Index("ix_versions_id", "kind", "name", "id"),
    sa.Index("ix_versions_run", "run_id"),
)

# Which runs used (input) or produced (output) which versions. (Version 3.)
version_lineage = sa.Table(
    "version_lineage",
    metadata,
    sa.Column("run_id", _Id, primary_key=True),
    sa.Column("kind", _text(16), primary_key=True),
    sa.Column("name", _text(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("role", _text(16), primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index("ix_lineage_version", "kind", "name", "version"),
)

# Where each alias points now, and every move it made (so it can be moved back). (Version 3.)
aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("kind", _text(16), primary_key=True),
    sa.Column("name", _text(200), primary_key=True),
    sa.Column("alias", _text(200), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("set_at", sa.Double, nullable=False),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column("id", _BigInt, primary_key=True, autoincrement=True),
    sa.Column("kind", _text(16), nullable=False),
    sa.Column("name", _text(200), nullable=False),
    sa.Column("alias", _text(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("set_at", sa.Double, nullable=False),
    sa.Index("ix_alias_history", "kind", "name", "alias"),
)


# -- migrations ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Migration:
    """One step from ``version - 1`` to ``version``: DDL and data changes on one connection."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _v2_applied_batches(conn: Connection) -> None:
    applied_batches.create(conn, checkfirst=True)


def _v3_versions(conn: Connection) -> None:
    for table in (versions, version_lineage, aliases, alias_history):
        table.create(conn, checkfirst=True)


# Steps above version 1 (a fresh database gets the tables above, created by
# create_all, at SCHEMA_VERSION directly). To change the schema: edit the tables
# above, bump SCHEMA_VERSION, and append a Migration(SCHEMA_VERSION, "what
# changed", fn) whose fn turns the previous version into the new one (with
# Table.create, sa.DDL, conn.execute…). Never edit a released step.
MIGRATIONS: list[Migration] = [
    Migration(2, "table applied_batches (retried batches are applied once)", _v2_applied_batches),
    Migration(3, "dataset and model versions, lineage and aliases", _v3_versions),
]


def _check_steps(steps: Sequence[Migration]) -> None:
    expected = list(range(2, SCHEMA_VERSION + 1))
    if [m.version for m in steps] != expected:
        raise RuntimeError(f"schema migrations must be versions {expected}, in order; got {[m.version for m in steps]}")


def lock_schema(conn: Connection) -> None:
    """Serialise schema checks and migrations across processes, until the transaction ends.

    PostgreSQL: a transaction-level advisory lock. SQLite: nothing to do, the
    caller's write transaction (``BEGIN IMMEDIATE``) already holds the database's
    write lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))


def current_version(conn: Connection) -> int | None:
    """The database's schema version, or None when it has no mlops schema yet."""
    if not sa.inspect(conn).has_table(schema_info.name):
        return None
    row = conn.execute(sa.select(schema_info.c.version).where(schema_info.c.id == 1)).first()
    return None if row is None else int(row.version)


class SchemaTooNew(Exception):
    """The database was migrated by a newer mlops-sdk than this one."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def migrate(conn: Connection, steps: Sequence[Migration] | None = None) -> list[str]:
    """Bring the schema to :data:`SCHEMA_VERSION`; return what was done (empty when nothing).

    Call inside one transaction, after :func:`lock_schema`. Raises
    :class:`SchemaTooNew` for a database newer than this code.
    """
    steps = MIGRATIONS if steps is None else steps
    _check_steps(steps)
    version = current_version(conn)
    if version == SCHEMA_VERSION:
        return []
    if version is None:
        metadata.create_all(conn, checkfirst=True)
        conn.execute(sa.delete(schema_info))
        conn.execute(schema_info.insert().values(id=1, version=SCHEMA_VERSION))
        return [f"created schema version {SCHEMA_VERSION}"]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(version)
    done = []
    for step in steps:
        if step.version <= version:
            continue
        step.apply(conn)
        conn.execute(schema_info.update().where(schema_info.c.id == 1).values(version=step.version))
        done.append(f"migrated to schema version {step.version}: {step.description}")
    return done
