"""The tracking store interface every tracking backend implements.

Contract (checked by ``mlops_sdk.testing.conformance``):

* Experiment names are unique; :meth:`get_or_create_experiment` is safe to call
  from many processes at once and returns the same experiment to all of them.
* Run ids are 32 lowercase hex characters, unique across the store.
* :meth:`write_batch` applies all its writes in one transaction or none: a
  failed call leaves the store unchanged and may be retried as a whole.
  Params are immutable: writing an existing key again keeps the first value.
  Tags are last-writer-wins. Metric points are appended; a run's latest value
  of a metric is the point with the highest step, then the latest timestamp.
  A store that retries on its own should apply one batch (``WriteBatch.token``)
  at most once, so that a retry after a lost COMMIT does not append twice.
* NaN metric values are stored and read back as NaN; ±inf likewise.
* Reads never see a half-applied batch.
* Raised errors are :class:`mlops_sdk.errors.MlopsError` subclasses
  (``RunNotFound``, ``ExperimentNotFound``, ``BackendError``…); transient
  failures the caller may retry are :class:`TransientError`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from mlops_sdk.errors import BackendError
from mlops_sdk.query import Expr, OrderKey
from mlops_sdk.records import (
    AliasEvent,
    ArtifactEntry,
    ExperimentInfo,
    LineageEdge,
    Metric,
    RunRecord,
    RunStatus,
    VersionRecord,
    WriteBatch,
)


class TransientError(BackendError):
    """A failure worth retrying (database locked or restarting, connection reset)."""


class TrackingStore(abc.ABC):
    """Stores experiments and runs. One instance may be shared by many threads."""

    uri: str

    # -- experiments -------------------------------------------------------
    @abc.abstractmethod
    def get_or_create_experiment(self, name: str) -> ExperimentInfo:
        """Return the experiment called ``name``, creating it if it does not exist."""

    @abc.abstractmethod
    def get_experiment(self, experiment_id: str) -> ExperimentInfo:
        """Return one experiment by id; raise ``ExperimentNotFound``."""

    @abc.abstractmethod
    def find_experiment(self, name: str) -> ExperimentInfo | None:
        """Return the experiment called ``name``, or None."""

    @abc.abstractmethod
    def list_experiments(self) -> list[ExperimentInfo]:
        """All experiments, oldest first."""

    @abc.abstractmethod
    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set (or replace) a tag on an experiment."""

    # -- runs --------------------------------------------------------------
    @abc.abstractmethod
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
        """Store a new RUNNING run with its initial params, tags and context.

        ``run_id`` is the id the caller proposes; a store whose server assigns
        ids itself (an MLflow server, say) may use its own. The returned
        record's ``id`` is the run's id from then on.
        """

    @abc.abstractmethod
    def end_run(self, run_id: str, status: RunStatus, end_time: float, error: str | None = None) -> None:
        """Mark a run ended. Ending an already-ended run keeps the first ending."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """Return one run (params, latest metrics, tags); raise ``RunNotFound``."""

    @abc.abstractmethod
    def search_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter: Expr | None = None,
        order_by: Sequence[OrderKey] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs of the given experiments (all when None) matching ``filter``.

        Ordered by ``order_by`` (missing values last), then newest first.
        """

    @abc.abstractmethod
    def count_runs(self, experiment_ids: Sequence[str] | None, filter: Expr | None = None) -> int:
        """How many runs :meth:`search_runs` would return without a limit."""

    @abc.abstractmethod
    def write_batch(self, batch: WriteBatch) -> None:
        """Apply metrics, params and tags for any number of runs atomically."""

    @abc.abstractmethod
    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of one metric, ordered by step, then timestamp, then insertion."""

    # -- artifacts ---------------------------------------------------------
    @abc.abstractmethod
    def add_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        """Record artifact files of a run (a path logged again is replaced)."""

    @abc.abstractmethod
    def list_artifacts(self, run_id: str) -> list[ArtifactEntry]:
        """Artifact files of a run, sorted by path."""

    def artifact_digests(self) -> set[str]:
        """The digest of every artifact of every run (what ``mlops gc`` must keep)."""
        digests: set[str] = set()
        for record in self.search_runs(None):
            digests.update(a.digest for a in self.list_artifacts(record.id))
        return digests

    # -- versions of datasets and models ----------------------------------------------
    # Not abstract: a store that keeps runs only (an MLflow server, say) inherits these,
    # which say clearly that datasets and models need a store that keeps versions.
    def _no_versions(self) -> BackendError:
        return BackendError(
            f"tracking store {self.uri} does not keep dataset or model versions; "
            "use a sqlite:// or postgresql:// tracking store for datasets and models"
        )

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
        """Record the next version of ``(kind, name)``; return it and whether it is new.

        ``number`` records the version under exactly that number instead of the
        next one (a version copied from another workspace keeps its number); it
        must be greater than every number the name has (``InvalidValue`` otherwise).

        Numbers are 1, 2, … per (kind, name), allocated atomically: processes
        registering at the same moment never get the same number. With
        ``dedupe``, when the latest version has the same ``id`` it is returned
        instead (``False``) and nothing is written; content identical to an
        older version becomes a new latest version (with that older ``id``), so
        reverting data is recorded as a change like any other.
        """
        raise self._no_versions()

    def get_version(self, kind: str, name: str, version: int) -> VersionRecord:
        """One version; raise ``VersionNotFound`` (or ``DatasetNotFound``/``ModelNotFound`` for an unknown name)."""
        raise self._no_versions()

    def find_version(self, kind: str, name: str, id: str) -> VersionRecord | None:
        """The version whose content id is ``id`` or starts with it (at least 6 characters), if unique."""
        raise self._no_versions()

    def list_versions(self, kind: str, name: str | None = None) -> list[VersionRecord]:
        """Versions of one name (all names when None), by name then version."""
        raise self._no_versions()

    def version_names(self, kind: str) -> list[str]:
        """Every name of ``kind`` that has at least one version, sorted."""
        raise self._no_versions()

    def get_manifest(self, kind: str, name: str, version: int) -> bytes:
        """The canonical manifest bytes of a version (their sha256 is its id)."""
        raise self._no_versions()

    def update_version(
        self, kind: str, name: str, version: int, *, message: str | None = None, tags: dict[str, str] | None = None
    ) -> VersionRecord:
        """Replace the message/description and merge tags; the content never changes."""
        raise self._no_versions()

    def add_lineage(self, run_id: str, kind: str, name: str, version: int, role: str) -> None:
        """Record that a run used (``input``) or produced (``output``) a version; idempotent."""
        raise self._no_versions()

    def lineage(
        self,
        *,
        run_id: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        version: int | None = None,
    ) -> list[LineageEdge]:
        """Lineage edges matching every given field, oldest first."""
        raise self._no_versions()

    def set_alias(self, kind: str, name: str, alias: str, version: int | None) -> AliasEvent:
        """Point ``alias`` at ``version`` (None removes it); the move is kept in its history."""
        raise self._no_versions()

    def aliases(self, kind: str, name: str) -> dict[str, int]:
        """Where each alias of ``name`` points now."""
        raise self._no_versions()

    def alias_history(self, kind: str, name: str, alias: str) -> list[AliasEvent]:
        """Every move of ``alias``, oldest first."""
        raise self._no_versions()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store must not be used afterwards."""
