"""Run filters and ordering for the MLflow backend: what MLflow can do, and the rest.

mlops-sdk's filter language (:mod:`mlops_sdk.query`) is richer than MLflow's
(OR, IN on any field, numeric readings of params, Unicode-aware ILIKE…), and
some MLflow semantics differ in corners (the SQL collation of a server's
database, how a NaN metric sorts). So the backend never trusts MLflow with the
final answer:

1. :func:`to_mlflow_filter` turns the conjuncts of a pure AND that MLflow can
   evaluate into an MLflow filter string that selects a **superset** of the
   matching runs (an OR, or a comparison MLflow cannot express, is simply left
   out: fewer conditions select more runs).
2. Every run MLflow returns is checked again with
   :func:`mlops_sdk.query.matches`, the reference semantics.
3. Runs are ordered with :func:`order_records` (the contract's order: each key,
   numbers before text for params, missing values last, then newest first, then
   id). Only when the order is newest-first (optionally by ``start_time``) is
   MLflow's own order the same, and paging stops as soon as ``offset + limit``
   runs have matched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlops_sdk.query import And, Comparison, Expr, Or, OrderKey, sort_records
from mlops_sdk.records import RunRecord

from mlops_sdk_mlflow.codec import DBL_MAX, PARENT_TAG

_TERMINAL = ("FINISHED", "FAILED", "KILLED")


def _conjuncts(expr: Expr) -> list[Expr]:
    if isinstance(expr, And):
        return [c for item in expr.items for c in _conjuncts(item)]
    return [expr]


def _text(value: object) -> str | None:
    """A quoted MLflow string literal, or None when the text cannot be quoted safely."""
    if not isinstance(value, str) or "'" in value or "\\" in value or "`" in value:
        return None
    return f"'{value}'"


def _key(entity: str, key: str) -> str | None:
    if "`" in key:
        return None
    return f"{entity}.`{key}`"


def _number(value: object) -> str | None:
    if not isinstance(value, float) or not math.isfinite(value) or abs(value) >= DBL_MAX:
        return None
    text = repr(value)
    if "e" in text and value < 0:  # MLflow's parser cannot read "-1e+300"
        return None
    return text


def _comparison(cmp: Comparison) -> list[str]:
    """MLflow clauses that together select a superset of the runs ``cmp`` matches."""
    op, value = cmp.op, cmp.value
    if cmp.field == "metrics":
        number = _number(value)
        key = _key("metrics", cmp.key)
        if number is None or key is None or op not in ("=", "!=", "<", "<=", ">", ">="):
            return []
        return [f"{key} {op} {number}"]
    if cmp.field in ("params", "tags") or (
        cmp.field == "attributes" and cmp.key in ("name", "parent_id")
    ):
        # Only text readings: a numeric reading of a param (params.n > 5) has no MLflow equivalent.
        if op not in ("=", "!=", "like"):
            return []
        literal = _text(value)
        if cmp.field == "attributes":
            left = "attributes.run_name" if cmp.key == "name" else _key("tags", PARENT_TAG)
        else:
            left = _key(cmp.field, cmp.key)
        if literal is None or left is None:
            return []
        return [f"{left} {op.upper()} {literal}"]
    if cmp.field != "attributes":
        return []
    if cmp.key == "id":
        if op == "=" and (literal := _text(value)) is not None:
            return [f"attributes.run_id = {literal}"]
        if op == "in" and isinstance(value, tuple):
            literals = [_text(v) for v in value if isinstance(v, str)]
            if literals and all(lit is not None for lit in literals):
                return [f"attributes.run_id IN ({', '.join(lit for lit in literals if lit)})"]
        return []
    if cmp.key == "status":
        if op == "=" and value in _TERMINAL:
            return [f"attributes.status = '{value}'"]
        return []
    if cmp.key in ("start_time", "end_time"):
        if not isinstance(value, float) or not math.isfinite(value) or abs(value) > 1e12:
            return []
        millis = value * 1000
        low, high = math.floor(millis) - 1, math.ceil(millis) + 1
        attr = f"attributes.{cmp.key}"
        if op in (">", ">="):
            return [f"{attr} >= {low}"]
        if op in ("<", "<="):
            return [f"{attr} <= {high}"]
        if op == "=":
            return [f"{attr} >= {low}", f"{attr} <= {high}"]
    return []


def to_mlflow_filter(expr: Expr | None) -> str:
    """An MLflow filter string selecting a superset of the runs ``expr`` matches ('' for all)."""
    if expr is None or isinstance(expr, Or):
        return ""
    clauses: list[str] = []
    for item in _conjuncts(expr):
        if isinstance(item, Comparison):
            clauses.extend(_comparison(item))
    return " and ".join(dict.fromkeys(clauses))


def mlflow_order(order_by: Sequence[OrderKey]) -> list[str] | None:
    """MLflow's ``order_by`` when its order is exactly the contract's, else None.

    MLflow always breaks ties by start time (newest first), then run id, as the
    contract does; it orders NaN metrics apart from missing ones and text by the
    server database's collation, so only ``start_time`` keys are handed over.
    """
    out: list[str] = []
    for key in order_by:
        if key.field != "attributes" or key.key != "start_time":
            return None
        out.append(f"attributes.start_time {'DESC' if key.descending else 'ASC'}")
    return out[:1]


def order_records(records: Sequence[RunRecord], order_by: Sequence[OrderKey]) -> list[RunRecord]:
    """``records`` in the contract's search order (core's reference ordering)."""
    return sort_records(records, order_by)
