"""Tables of the SQL tracking store, shared by SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 1

metadata = sa.MetaData()

_Id = sa.String(32)
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
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column("experiment_id", _Id, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", _Id, primary_key=True),
    sa.Column("experiment_id", _Id, nullable=False),
    sa.Column("name", sa.String(250), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", sa.Double, nullable=False),
    sa.Column("end_time", sa.Double, nullable=True),
    sa.Column("parent_id", _Id, nullable=True),
    sa.Column("context", sa.Text, nullable=False, default="{}"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    sa.Index("ix_runs_parent", "parent_id"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", _Id, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value_json", sa.Text, nullable=False),
    sa.Column("value_text", sa.Text, nullable=False),
    sa.Column("value_num", sa.Double, nullable=True),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", _Id, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Every point of every metric. NaN is stored as NULL (SQLite cannot hold NaN).
metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", _BigInt, primary_key=True, autoincrement=True),
    sa.Column("run_id", _Id, nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
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
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Index("ix_latest_key_value", "key", "value"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", _Id, primary_key=True),
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.String(128), nullable=False),
)
