"""Immutable records that cross the backend interfaces.

Backends build these from their storage and the user-facing objects wrap them;
nothing else crosses the boundary. They are plain attrs classes so they print
well, compare by value, and can be built in tests without a store.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from typing import Any

import attrs


class RunStatus(enum.StrEnum):
    """Lifecycle of a run. A run ends exactly once."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


@attrs.frozen
class Metric:
    """One point of a metric's history."""

    key: str
    value: float
    step: int
    timestamp: float


@attrs.frozen
class ExperimentInfo:
    """An experiment as stored: a named group of runs."""

    id: str
    name: str
    created_at: float
    tags: Mapping[str, str] = attrs.field(factory=dict, eq=False, hash=False)


@attrs.frozen
class ArtifactEntry:
    """A file logged to a run: its path inside the run, size, and content digest."""

    path: str
    size: int
    digest: str


@attrs.frozen(hash=False)
class RunRecord:
    """Everything a store knows about one run, metrics reduced to their latest value."""

    id: str
    experiment_id: str
    name: str
    status: RunStatus
    start_time: float
    end_time: float | None = None
    parent_id: str | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict)
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    tags: Mapping[str, str] = attrs.field(factory=dict)
    context: Mapping[str, Any] = attrs.field(factory=dict)
    error: str | None = None


@attrs.frozen(hash=False)
class VersionRecord:
    """One immutable version of a dataset or a model, as the tracking store keeps it.

    ``kind`` is ``"dataset"`` or ``"model"``; ``version`` counts 1, 2, … per
    (kind, name); ``id`` is the content id (sha256 of the manifest). ``meta``
    holds what the kind needs (file count and size, DVC source, flavor,
    signature…); ``run_id`` is the run that produced it, if any.
    """

    kind: str
    name: str
    version: int
    id: str
    created_at: float
    message: str = ""
    tags: Mapping[str, str] = attrs.field(factory=dict)
    meta: Mapping[str, Any] = attrs.field(factory=dict)
    run_id: str | None = None


@attrs.frozen
class LineageEdge:
    """A run used (``role="input"``) or produced (``role="output"``) a version."""

    run_id: str
    kind: str
    name: str
    version: int
    role: str
    created_at: float


@attrs.frozen
class AliasEvent:
    """An alias was pointed at ``version`` (None: removed) at ``set_at``."""

    kind: str
    name: str
    alias: str
    version: int | None
    set_at: float


@attrs.frozen
class MetricWrite:
    """A metric point addressed to a run, as queued by the background writer."""

    run_id: str
    key: str
    value: float
    step: int
    timestamp: float


@attrs.define
class WriteBatch:
    """Writes for one or more runs that a store applies in one transaction.

    ``metrics`` are ``(run_id, key, value, step, timestamp)`` tuples; ``params``
    and ``tags`` are ``(run_id, key, value)``. Plain tuples keep the hot path
    cheap: the writer builds thousands of them per second.
    """

    metrics: list[tuple[str, str, float, int, float]] = attrs.field(factory=list)
    params: list[tuple[str, str, Any]] = attrs.field(factory=list)
    tags: list[tuple[str, str, str]] = attrs.field(factory=list)
    # Identifies this batch to the store, so that writing the same batch again (a retry
    # after a connection lost during COMMIT) does not append its metric points twice.
    token: str = attrs.field(factory=lambda: os.urandom(16).hex(), eq=False, repr=False)

    def __len__(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)
