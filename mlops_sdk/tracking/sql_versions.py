"""Dataset and model versions, lineage and aliases in the SQL tracking store.

A mixin of :class:`mlops_sdk.tracking.sql.SqlTrackingStore`, kept apart
because it is a second idea: the registry of immutable versions, next to the
runs. Version numbers are allocated inside the inserting transaction, under a
lock that covers one (kind, name): SQLite's write lock (``BEGIN IMMEDIATE``),
or a transaction-level advisory lock on PostgreSQL, so two processes
registering at once get 4 and 5, never 4 twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlops_sdk.errors import DatasetNotFound, InvalidValue, ModelNotFound, VersionNotFound
from mlops_sdk.records import AliasEvent, LineageEdge, VersionRecord
from mlops_sdk.tracking import schema as S

T = TypeVar("T")
KINDS = ("dataset", "model")
ROLES = ("input", "output")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidValue(f"unknown version kind {kind!r}; expected one of {', '.join(KINDS)}")


def _record(row: Any) -> VersionRecord:
    return VersionRecord(
        kind=row.kind,
        name=row.name,
        version=int(row.version),
        id=row.id,
        created_at=float(row.created_at),
        message=row.message or "",
        tags=json.loads(row.tags or "{}"),
        meta=json.loads(row.meta or "{}"),
        run_id=row.run_id,
    )


_V = S.versions
_COLUMNS = [c for c in _V.c if c.name != "manifest"]  # listings never load manifests


class VersionsMixin:
    """Registry methods; needs ``_write``, ``_read``, ``_retry``, ``_insert`` and ``dialect``."""

    dialect: str
    _write: Callable[[], AbstractContextManager[Connection]]
    _read: Callable[[], AbstractContextManager[Connection]]
    _retry: Callable[[Callable[[], Any]], Any]
    _insert: Callable[[Any], Any]

    def _lock_name(self, conn: Connection, kind: str, name: str) -> None:
        if self.dialect == "postgresql":
            key = sa.func.hashtextextended(sa.literal(f"mlops:{kind}:{name}"), 0)
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    def _not_found(self, kind: str, name: str) -> Exception:
        what = DatasetNotFound if kind == "dataset" else ModelNotFound
        return what(f"no {kind} called {name!r}")

    def create_version(
        self,
        kind: str,
        name: str,
        *,
        id: str,
        manifest: bytes,
        message: str = "",
        tags: dict[str, str] | None = None,
        meta: dict[str, object] | None = None,
        run_id: str | None = None,
        created_at: float,
        dedupe: bool = False,
        number: int | None = None,
    ) -> tuple[VersionRecord, bool]:
        _check_kind(kind)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 1):
            raise InvalidValue(f"a version number is a whole number ≥ 1, got {number!r}")
        manifest_text = manifest.decode()
        tags_json = json.dumps(tags or {}, ensure_ascii=False, sort_keys=True)
        meta_json = json.dumps(meta or {}, ensure_ascii=False, sort_keys=True, default=str)

        def go() -> tuple[VersionRecord, bool]:
            with self._write() as conn:
                self._lock_name(conn, kind, name)
                where = sa.and_(_V.c.kind == kind, _V.c.name == name)
                if dedupe:  # the same content as the latest version: that version, nothing written
                    row = conn.execute(sa.select(*_COLUMNS).where(where).order_by(_V.c.version.desc()).limit(1)).first()
                    if row is not None and row.id == id:
                        return _record(row), False
                last = conn.execute(sa.select(sa.func.max(_V.c.version)).where(where)).scalar()
                if number is not None and number <= int(last or 0):
                    raise InvalidValue(f"{kind} {name!r} already has version {last}; cannot record v{number} after it")
                values = dict(
                    kind=kind,
                    name=name,
                    version=number if number is not None else int(last or 0) + 1,
                    id=id,
                    created_at=created_at,
                    message=message,
                    tags=tags_json,
                    meta=meta_json,
                    run_id=run_id,
                    manifest=manifest_text,
                )
                conn.execute(_V.insert().values(**values))
                values.pop("manifest")
                return _record(_Obj(values)), True

        result: tuple[VersionRecord, bool] = self._retry(go)
        return result

    def _one(self, conn: Connection, kind: str, name: str, version: int) -> Any:
        row = conn.execute(
            sa.select(*_COLUMNS).where(_V.c.kind == kind, _V.c.name == name, _V.c.version == version)
        ).first()
        if row is None:
            exists = conn.execute(sa.select(_V.c.version).where(_V.c.kind == kind, _V.c.name == name).limit(1)).first()
            if exists is None:
                raise self._not_found(kind, name)
            raise VersionNotFound(f"{kind} {name!r} has no version {version}")
        return row

    def get_version(self, kind: str, name: str, version: int) -> VersionRecord:
        _check_kind(kind)

        def go() -> VersionRecord:
            with self._read() as conn:
                return _record(self._one(conn, kind, name, version))

        result: VersionRecord = self._retry(go)
        return result

    def find_version(self, kind: str, name: str, id: str) -> VersionRecord | None:
        _check_kind(kind)
        if len(id) < 6 or any(c not in "0123456789abcdef" for c in id):
            return None

        def go() -> list[Any]:
            with self._read() as conn:
                stmt = sa.select(*_COLUMNS).where(_V.c.kind == kind, _V.c.name == name)
                if len(id) == 64:
                    stmt = stmt.where(_V.c.id == id)
                else:
                    stmt = stmt.where(_V.c.id >= id, _V.c.id < id + "g")  # a prefix range, index-friendly
                return list(conn.execute(stmt.order_by(_V.c.version)).all())

        rows: list[Any] = self._retry(go)
        ids = {r.id for r in rows}
        if len(ids) != 1:
            return None
        return _record(rows[0])

    def list_versions(self, kind: str, name: str | None = None) -> list[VersionRecord]:
        _check_kind(kind)

        def go() -> list[VersionRecord]:
            with self._read() as conn:
                stmt = sa.select(*_COLUMNS).where(_V.c.kind == kind)
                if name is not None:
                    stmt = stmt.where(_V.c.name == name)
                return [_record(r) for r in conn.execute(stmt.order_by(_V.c.name, _V.c.version))]

        result: list[VersionRecord] = self._retry(go)
        return result

    def version_names(self, kind: str) -> list[str]:
        _check_kind(kind)

        def go() -> list[str]:
            with self._read() as conn:
                stmt = sa.select(_V.c.name).where(_V.c.kind == kind).distinct().order_by(_V.c.name)
                return [r[0] for r in conn.execute(stmt)]

        result: list[str] = self._retry(go)
        return result

    def get_manifest(self, kind: str, name: str, version: int) -> bytes:
        _check_kind(kind)

        def go() -> bytes:
            with self._read() as conn:
                self._one(conn, kind, name, version)
                text = conn.execute(
                    sa.select(_V.c.manifest).where(_V.c.kind == kind, _V.c.name == name, _V.c.version == version)
                ).scalar_one()
                return str(text).encode()

        result: bytes = self._retry(go)
        return result

    def update_version(
        self, kind: str, name: str, version: int, *, message: str | None = None, tags: dict[str, str] | None = None
    ) -> VersionRecord:
        _check_kind(kind)

        def go() -> None:
            with self._write() as conn:
                row = self._one(conn, kind, name, version)
                values: dict[str, Any] = {}
                if message is not None:
                    values["message"] = message
                if tags:
                    merged = {**json.loads(row.tags or "{}"), **tags}
                    values["tags"] = json.dumps(merged, ensure_ascii=False, sort_keys=True)
                if values:
                    conn.execute(
                        _V.update().where(_V.c.kind == kind, _V.c.name == name, _V.c.version == version).values(**values)
                    )

        self._retry(go)
        return self.get_version(kind, name, version)

    # -- lineage ----------------------------------------------------------------------
    def add_lineage(self, run_id: str, kind: str, name: str, version: int, role: str) -> None:
        _check_kind(kind)
        if role not in ROLES:
            raise InvalidValue(f"unknown lineage role {role!r}; expected input or output")
        L = S.version_lineage

        def go() -> None:
            with self._write() as conn:
                self._one(conn, kind, name, version)
                stmt = self._insert(L).values(
                    run_id=run_id, kind=kind, name=name, version=version, role=role, created_at=time.time()
                )
                conn.execute(stmt.on_conflict_do_nothing())

        self._retry(go)

    def lineage(
        self,
        *,
        run_id: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        version: int | None = None,
    ) -> list[LineageEdge]:
        L = S.version_lineage

        def go() -> list[LineageEdge]:
            with self._read() as conn:
                stmt = sa.select(L)
                for column, value in ((L.c.run_id, run_id), (L.c.kind, kind), (L.c.name, name), (L.c.version, version)):
                    if value is not None:
                        stmt = stmt.where(column == value)
                rows = conn.execute(stmt.order_by(L.c.created_at, L.c.run_id))
                return [LineageEdge(r.run_id, r.kind, r.name, int(r.version), r.role, float(r.created_at)) for r in rows]

        result: list[LineageEdge] = self._retry(go)
        return result

    # -- aliases ----------------------------------------------------------------------
    def set_alias(self, kind: str, name: str, alias: str, version: int | None) -> AliasEvent:
        _check_kind(kind)
        A, H = S.aliases, S.alias_history
        now = time.time()

        def go() -> None:
            with self._write() as conn:
                self._lock_name(conn, kind, name)
                if version is not None:
                    self._one(conn, kind, name, version)
                    stmt = self._insert(A).values(kind=kind, name=name, alias=alias, version=version, set_at=now)
                    conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["kind", "name", "alias"], set_={"version": version, "set_at": now}
                        )
                    )
                else:
                    known = conn.execute(sa.select(_V.c.version).where(_V.c.kind == kind, _V.c.name == name).limit(1))
                    if known.first() is None:  # no history for names that do not exist
                        raise self._not_found(kind, name)
                    conn.execute(A.delete().where(A.c.kind == kind, A.c.name == name, A.c.alias == alias))
                conn.execute(H.insert().values(kind=kind, name=name, alias=alias, version=version, set_at=now))

        self._retry(go)
        return AliasEvent(kind, name, alias, version, now)

    def aliases(self, kind: str, name: str) -> dict[str, int]:
        A = S.aliases

        def go() -> dict[str, int]:
            with self._read() as conn:
                rows = conn.execute(sa.select(A.c.alias, A.c.version).where(A.c.kind == kind, A.c.name == name))
                return {r.alias: int(r.version) for r in rows}

        result: dict[str, int] = self._retry(go)
        return result

    def alias_history(self, kind: str, name: str, alias: str) -> list[AliasEvent]:
        H = S.alias_history

        def go() -> list[AliasEvent]:
            with self._read() as conn:
                rows = conn.execute(
                    sa.select(H).where(H.c.kind == kind, H.c.name == name, H.c.alias == alias).order_by(H.c.id)
                )
                return [
                    AliasEvent(kind, name, alias, None if r.version is None else int(r.version), float(r.set_at))
                    for r in rows
                ]

        result: list[AliasEvent] = self._retry(go)
        return result


class _Obj:
    """Attribute access over a dict, to build a record from the values just inserted."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def iter_manifests(store: Any) -> Iterator[tuple[VersionRecord, bytes]]:
    """Every version with its manifest (for ``mlops gc`` and ``mlops verify``)."""
    for kind in KINDS:
        for rec in store.list_versions(kind):
            yield rec, store.get_manifest(kind, rec.name, rec.version)
