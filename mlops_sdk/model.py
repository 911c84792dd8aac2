"""Models: named series of immutable, registered model versions.

>>> mv = run.log_model(clf, "churn-clf", input_example=X[:5])       # doctest: +SKIP
>>> m = ws.model("churn-clf")                                        # doctest: +SKIP
>>> m.version(3).set_alias("production")                             # doctest: +SKIP
>>> m.alias("production").predict(X)                                 # doctest: +SKIP

A version is the manifest of the files its flavor wrote (path, size, sha256
of each); its ``id`` is the manifest's sha256. The files live in the
workspace's content-addressed object store; the version record (flavor,
signature, metrics, requirements, card text) and its lineage live in the
tracking store. Numbers are 1, 2, … per model name, allocated atomically by
the store, so processes registering at once never share a number.

Loading is verified. A version's files are copied out of the object store
into a per-version cache folder, ``<workspace>/.mlops/cache/models/<id>/``,
and each file's sha256 is checked against the manifest on the way
(:class:`~mlops_sdk.errors.IntegrityError` when a stored object was tampered
with). The folder's files are then made read-only and their stat (size,
mtime, ctime, inode) is written next to them; later loads, in any process,
trust the folder while every file's stat still matches, without hashing
again. Any change to a file (even one that restores its mtime: the ctime
moves) means that file is hashed again; a mismatch, a missing file or an
extra one throws the folder away and rebuilds it from the verified store.
``log_model`` fills the cache from the files it has just hashed, so loading
right after saving reads no object twice. The stat check guards against
corruption and edits, not against someone who can write the workspace
folder: they could rewrite the stamp, but equally the registry itself. A
store shared by many machines (S3, a network folder) is always read
through the hash check; delete the cache (:func:`clear_cache`) to re-verify.
"""

from __future__ import annotations

import contextlib
import gc
import html
import json
import os
import platform
import re
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from mlops_sdk.errors import (
    AliasNotFound,
    BackendError,
    FlavorError,
    IntegrityError,
    InvalidName,
    InvalidValue,
    MlopsError,
    ModelNotFound,
    ObjectNotFound,
    RunNotFound,
    UnsafeModel,
    VersionNotFound,
)
from mlops_sdk.manifest import FileEntry, Manifest
from mlops_sdk.records import VersionRecord
from mlops_sdk.validation import (
    to_metric_value,
    to_tag_value,
    validate_key,
    validate_name,
    validate_relpath,
)

if TYPE_CHECKING:
    from mlops_sdk.dataset import DatasetVersion
    from mlops_sdk.flavors.base import Flavor
    from mlops_sdk.run import Run
    from mlops_sdk.signature import Signature
    from mlops_sdk.workspace import Workspace

KIND = "model"
#: serialization formats that run arbitrary code when loaded
PICKLE_FORMATS = frozenset({"pickle", "cloudpickle"})
MAX_EXAMPLE_ROWS = 5
MAX_EXAMPLE_BYTES = 64 * 1024
MAX_TEXT = 64 * 1024
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_RESERVED_ALIAS = re.compile(r"(?i)latest|v\d+")


def validate_model_name(name: object) -> str:
    """A model name: a valid entity name (it may become a folder) without ``@`` (``NAME@VERSION``)."""
    text = validate_name("model name", name)
    if "@" in text:
        raise InvalidName(f"model name must not contain '@' (it separates NAME@VERSION): {text!r}")
    return text


def validate_alias(alias: object) -> str:
    """An alias: a letter or ``_``, then up to 63 letters, digits, ``_``, ``.`` or ``-``.

    ``latest`` and ``v<number>`` are refused: they already mean a version.

    >>> validate_alias("production")
    'production'
    """
    if not isinstance(alias, str):
        raise InvalidName(f"alias must be a string, got {type(alias).__name__}: {alias!r}")
    if not _ALIAS.fullmatch(alias):
        raise InvalidName(
            f"alias {alias!r} is not allowed: use a letter or '_' then up to 63 letters, digits, '_', '.' or '-'"
        )
    if _RESERVED_ALIAS.fullmatch(alias):
        raise InvalidName(f"alias {alias!r} is reserved: it already names a version")
    return alias


def _text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise InvalidValue(f"{what} is longer than {MAX_TEXT} characters")
    if "\x00" in value:
        raise InvalidValue(f"{what} contains a NUL character")
    return value


def _tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidValue(f"tags must be a mapping of name to text, got {type(tags).__name__}")
    return {validate_key("tag key", k): to_tag_value(k, v) for k, v in tags.items()}


def _metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise InvalidValue(f"metrics must be a mapping of name to number, got {type(metrics).__name__}")
    return {validate_key("metric key", k): to_metric_value(k, v) for k, v in metrics.items()}


def _fairness(fairness: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """Group → {metric: value}; a bare number per group is stored as ``{"value": x}``."""
    if fairness is None:
        return {}
    if not isinstance(fairness, Mapping):
        raise InvalidValue(
            f"fairness must map group names to metric values ({{'female': {{'recall': 0.9}}}}), "
            f"got {type(fairness).__name__}"
        )
    out: dict[str, dict[str, float]] = {}
    for group, values in fairness.items():
        group = validate_key("fairness group", group)
        if isinstance(values, Mapping):
            out[group] = {validate_key("fairness metric", k): to_metric_value(k, v) for k, v in values.items()}
        else:
            out[group] = {"value": to_metric_value(group, values)}
    return out


def _signature(signature: Any, input_example: Any) -> Signature | None:
    from mlops_sdk.signature import Signature, infer_signature

    if signature is None:
        return infer_signature(input_example) if input_example is not None else None
    if isinstance(signature, Signature):
        return signature
    if isinstance(signature, Mapping):
        return Signature.from_dict(signature)
    raise InvalidValue(f"signature must be a Signature (or its to_dict() form), got {type(signature).__name__}")


def example_json(example: Any) -> Any:
    """A small JSON-able sample of an input example (first rows), or None when there is none.

    DataFrames become ``{"columns": [...], "data": [[...], ...]}``; arrays and
    tensors nested lists; lists and dicts are kept (lists cut to 5 rows).
    """
    if example is None:
        return None
    try:
        sample: Any
        module = type(example).__module__.split(".")[0]
        if module == "pandas" and hasattr(example, "to_json"):
            sample = json.loads(example.head(MAX_EXAMPLE_ROWS).to_json(orient="split", index=False))
        elif module == "torch" and hasattr(example, "detach"):
            sample = example[:MAX_EXAMPLE_ROWS].detach().cpu().tolist()
        elif module == "numpy" and hasattr(example, "tolist"):
            sample = example[:MAX_EXAMPLE_ROWS].tolist() if getattr(example, "ndim", 0) else example.tolist()
        elif isinstance(example, (list, tuple)):
            sample = list(example[:MAX_EXAMPLE_ROWS])
        elif isinstance(example, Mapping):
            sample = {
                str(k): (list(v[:MAX_EXAMPLE_ROWS]) if isinstance(v, (list, tuple)) else v) for k, v in example.items()
            }
        else:
            return None
        text = json.dumps(sample, allow_nan=False, default=_plain_json)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError):
        return None  # an example that cannot be written as JSON is simply not kept
    if len(text) > MAX_EXAMPLE_BYTES:
        return None
    return json.loads(text)


def _plain_json(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


# -- the model (a name) --------------------------------------------------------------------
class Model:
    """A registered model: every version logged under one name. ``ws.model("churn-clf")``."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace = workspace
        self.name = validate_model_name(name)

    def _records(self) -> list[VersionRecord]:
        return self.workspace.tracking.list_versions(KIND, self.name)

    def _not_found(self) -> ModelNotFound:
        names = self.workspace.tracking.version_names(KIND)
        known = f"; registered models: {', '.join(names[:20])}" if names else "; no model is registered yet"
        return ModelNotFound(f"no model called {self.name!r}{known}. Register one with run.log_model(obj, name)")

    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first (empty for a name with no versions)."""
        return [ModelVersion(self.workspace, r) for r in self._records()]

    @property
    def latest(self) -> ModelVersion:
        """The newest version; :class:`~mlops_sdk.errors.ModelNotFound` when there is none."""
        records = self._records()
        if not records:
            raise self._not_found()
        return ModelVersion(self.workspace, records[-1])

    def version(self, ref: int | str) -> ModelVersion:
        """A version by number (``3``, ``"3"``, ``"v3"``), ``"latest"``, ``"@alias"``, or id prefix (6+ hex digits).

        Unknown references raise :class:`~mlops_sdk.errors.VersionNotFound`
        (:class:`~mlops_sdk.errors.AliasNotFound` for ``"@alias"``).
        """
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise InvalidValue(f"a version is a number, 'latest', '@alias' or an id prefix, got {ref!r}")
        tracking = self.workspace.tracking
        if isinstance(ref, int):
            return ModelVersion(self.workspace, self._get(ref))
        text = ref.strip()
        if text == "latest":
            return self.latest
        if text.startswith("@"):
            return self.alias(text[1:])
        if text[:1] in ("v", "V") and text[1:].isdigit():
            return ModelVersion(self.workspace, self._get(int(text[1:])))
        if text.isdigit() and len(text) < 6:
            return ModelVersion(self.workspace, self._get(int(text)))
        found = tracking.find_version(KIND, self.name, text.lower())
        if found is None and text.isdigit():
            return ModelVersion(self.workspace, self._get(int(text)))
        if found is None:
            if not self._records():
                raise self._not_found()
            raise VersionNotFound(
                f"model {self.name!r} has no version {ref!r} (not a number, 'latest', '@alias' or a unique id prefix)"
            )
        return ModelVersion(self.workspace, found)

    def _get(self, number: int) -> VersionRecord:
        if number < 1:
            raise VersionNotFound(f"model {self.name!r} has no version {number}: versions count from 1")
        try:
            return self.workspace.tracking.get_version(KIND, self.name, number)
        except ModelNotFound:
            raise self._not_found() from None
        except VersionNotFound as exc:
            records = self._records()
            last = f"; the latest is v{records[-1].version}" if records else ""
            raise VersionNotFound(f"model {self.name!r} has no version {number}{last}") from exc

    def alias(self, alias: str) -> ModelVersion:
        """The version ``alias`` points at; :class:`~mlops_sdk.errors.AliasNotFound` when it points nowhere."""
        validate_alias(alias)
        current = self.workspace.tracking.aliases(KIND, self.name)
        if alias not in current:
            if not current and not self._records():
                raise self._not_found()
            known = ", ".join(sorted(current)) or "none"
            raise AliasNotFound(f"model {self.name!r} has no alias {alias!r} (aliases: {known})")
        return ModelVersion(self.workspace, self._get(current[alias]))

    def aliases(self) -> dict[str, int]:
        """Where each alias points now: ``{"production": 3, "staging": 4}``."""
        return dict(sorted(self.workspace.tracking.aliases(KIND, self.name).items()))

    def alias_history(self, alias: str) -> list[tuple[int | None, float]]:
        """Every move of ``alias``, oldest first: ``(version or None when removed, time)``."""
        validate_alias(alias)
        return [(e.version, e.set_at) for e in self.workspace.tracking.alias_history(KIND, self.name, alias)]

    def rollback(self, alias: str) -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before its latest move; returns that version.

        Rolling back twice undoes the rollback (like ``kubectl rollout undo``).
        :class:`~mlops_sdk.errors.AliasNotFound` when the alias was never set,
        :class:`~mlops_sdk.errors.VersionNotFound` when it has no earlier version.
        """
        validate_alias(alias)
        tracking = self.workspace.tracking
        history = tracking.alias_history(KIND, self.name, alias)
        if not history:
            if not self._records():
                raise self._not_found()
            raise AliasNotFound(f"model {self.name!r} has no alias {alias!r}; nothing to roll back")
        current = history[-1].version
        previous = next((e.version for e in reversed(history[:-1]) if e.version != current), None)
        if previous is None:
            where = f"v{current}" if current is not None else "nowhere"
            raise VersionNotFound(
                f"alias {alias!r} of model {self.name!r} points at {where} and pointed at no other version "
                "before; nothing to roll back to"
            )
        record = self._get(previous)
        tracking.set_alias(KIND, self.name, alias, previous)
        return ModelVersion(self.workspace, record)

    def __repr__(self) -> str:
        return f"<Model {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.name == self.name and other.workspace is self.workspace

    def __hash__(self) -> int:
        return hash(("model", self.name))

    def _repr_html_(self) -> str:
        from mlops_sdk.display import fmt_time, html_table

        by_version: dict[int, list[str]] = {}
        for alias, number in self.aliases().items():
            by_version.setdefault(number, []).append(alias)
        rows = [
            (
                f"v{mv.version}",
                mv.id[:12],
                mv.flavor,
                fmt_time(mv.created_at),
                ", ".join(by_version.get(mv.version, [])),
                ", ".join(f"{k}={v:.4g}" for k, v in list(mv.metrics.items())[:4]),
                mv.description,
            )
            for mv in self.versions()
        ]
        return html_table(
            ["version", "id", "flavor", "created", "aliases", "metrics", "description"],
            rows,
            caption=f"Model {self.name}",
        )


# -- lineage ------------------------------------------------------------------------------------
@attrs.frozen(hash=False)
class ModelLineage:
    """Where a version came from: the run that logged it, that run's git commit, the data it read."""

    run: Run | None
    git_commit: str | None
    datasets: list[DatasetVersion]
    git_branch: str | None = None
    git_dirty: bool = False
    experiment: str | None = None


# -- one version -----------------------------------------------------------------------------------
class ModelVersion:
    """One immutable registered version of a model."""

    def __init__(self, workspace: Workspace, record: VersionRecord, manifest: Manifest | None = None) -> None:
        self.workspace = workspace
        self._record = record
        if manifest is not None:
            self.__dict__["manifest"] = manifest
        self._model: Any = None
        self._model_loaded = False

    # -- identity ---------------------------------------------------------------------
    @property
    def record(self) -> VersionRecord:
        return self._record

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def version(self) -> int:
        """1, 2, … within the model name."""
        return self._record.version

    @property
    def id(self) -> str:
        """The content id: sha256 of the manifest of the saved files."""
        return self._record.id

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def run_id(self) -> str | None:
        return self._record.run_id

    @property
    def created_at(self) -> float:
        return self._record.created_at

    @property
    def description(self) -> str:
        return self._record.message

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._record.tags)

    @property
    def meta(self) -> dict[str, Any]:
        """Everything recorded at save time (flavor, signature, metrics, python, libraries…)."""
        return dict(self._record.meta)

    @property
    def flavor(self) -> str:
        return str(self._record.meta.get("flavor", ""))

    @property
    def flavor_meta(self) -> dict[str, Any]:
        return dict(self._record.meta.get("flavor_meta") or {})

    @property
    def metrics(self) -> dict[str, float]:
        return {str(k): float(v) for k, v in (self._record.meta.get("metrics") or {}).items()}

    @cached_property
    def signature(self) -> Signature | None:
        """The input signature checked by :meth:`predict`, or None when none was recorded."""
        data = self._record.meta.get("signature")
        if not data:
            return None
        from mlops_sdk.signature import Signature

        return Signature.from_dict(data)

    @property
    def requirements(self) -> list[str]:
        """pip requirement lines needed to load the model (``scikit-learn==1.9.1``)."""
        return [str(r) for r in self._record.meta.get("requirements") or []]

    @property
    def libraries(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self._record.meta.get("libraries") or {}).items()}

    @property
    def python_version(self) -> str:
        return str(self._record.meta.get("python", ""))

    @property
    def input_example(self) -> Any:
        """The small JSON sample of the input example recorded at save time, or None."""
        return self._record.meta.get("input_example")

    @property
    def intended_use(self) -> str:
        return str(self._record.meta.get("intended_use") or "")

    @property
    def limitations(self) -> str:
        return str(self._record.meta.get("limitations") or "")

    @property
    def fairness(self) -> dict[str, dict[str, float]]:
        return {str(g): dict(v) for g, v in (self._record.meta.get("fairness") or {}).items()}

    @property
    def aliases(self) -> list[str]:
        """The aliases that point at this version now."""
        current = self.workspace.tracking.aliases(KIND, self.name)
        return sorted(a for a, v in current.items() if v == self.version)

    @cached_property
    def manifest(self) -> Manifest:
        """The saved files (path, size, sha256), verified against the version id."""
        data = self.workspace.tracking.get_manifest(KIND, self.name, self.version)
        return Manifest.from_bytes(data, expected_id=self.id)

    def files(self) -> list[FileEntry]:
        return list(self.manifest.entries)

    # -- changes (metadata only; the content never changes) ------------------------------
    def refresh(self) -> ModelVersion:
        """Read the record again (tags and description may have changed elsewhere)."""
        self._record = self.workspace.tracking.get_version(KIND, self.name, self.version)
        return self

    def set_alias(self, alias: str) -> ModelVersion:
        """Point ``alias`` (``production``…) at this version; the move is kept so it can be rolled back."""
        validate_alias(alias)
        tracking = self.workspace.tracking
        if tracking.aliases(KIND, self.name).get(alias) != self.version:
            tracking.set_alias(KIND, self.name, alias, self.version)
        return self

    def remove_alias(self, alias: str) -> None:
        """Remove ``alias`` if it points at this version (kept in its history)."""
        validate_alias(alias)
        tracking = self.workspace.tracking
        if tracking.aliases(KIND, self.name).get(alias) != self.version:
            raise AliasNotFound(f"alias {alias!r} does not point at {self.label}")
        tracking.set_alias(KIND, self.name, alias, None)

    def set_tag(self, key: str, value: str) -> None:
        """Set one tag (tags can change; the content cannot)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        checked = _tags(tags)
        if checked:
            self._record = self.workspace.tracking.update_version(KIND, self.name, self.version, tags=checked)

    def set_description(self, description: str) -> None:
        """Replace the description (what the model does, for the model card)."""
        text = _text("description", description)
        self._record = self.workspace.tracking.update_version(KIND, self.name, self.version, message=text)

    # -- loading and predicting ----------------------------------------------------------
    def _flavor(self) -> Flavor:
        from mlops_sdk.flavors import get_flavor

        if not self.flavor:
            raise FlavorError(f"{self.label} records no flavor; it cannot be loaded")
        return get_flavor(self.flavor)

    def local_path(self) -> Path:
        """The verified, read-only local folder holding this version's files (see the module doc)."""
        return materialize(self.workspace, self.manifest, self.label)

    def load(self, allow_pickle: bool = False) -> Any:
        """The native model object (a scikit-learn estimator, a torch module, …).

        Never unpickles unless ``allow_pickle=True``: a version saved with
        pickle raises :class:`~mlops_sdk.errors.UnsafeModel` by default.
        """
        flavor_meta = self.flavor_meta
        if not allow_pickle and flavor_meta.get("format") in PICKLE_FORMATS:
            raise UnsafeModel(
                f"{self.label} was saved with {flavor_meta['format']}, which can run arbitrary code when "
                "loaded; load it with allow_pickle=True only if you trust whoever saved it"
            )
        flavor = self._flavor()
        path = self.local_path()
        # Deserializers allocate hundreds of thousands of objects; with torch/sklearn imported
        # the collector would run full passes over everything alive meanwhile (~20-30% of a
        # cold load). Nothing cyclic is freed by pausing it for the duration of one load.
        collecting = gc.isenabled()
        gc.disable()
        try:
            model = flavor.load(path, flavor_meta, allow_pickle=allow_pickle)
        except MlopsError:
            raise
        except Exception as exc:
            raise FlavorError(f"flavor {flavor.name!r} could not load {self.label}: {exc}") from exc
        finally:
            if collecting:
                gc.enable()
        self._model, self._model_loaded = model, True
        return model

    def predict(self, X: Any) -> Any:
        """Check ``X`` against the signature, then predict with the (once) loaded model.

        Data that does not fit raises :class:`~mlops_sdk.errors.SignatureMismatch`
        naming the column or shape, before the model is even loaded. Lists of
        row dicts and nested lists are turned into what the model takes.
        """
        signature = self.signature
        data = X
        if signature is not None:
            from mlops_sdk.signature import coerce

            data = coerce(signature, X)
        if not self._model_loaded:
            self.load()
        flavor = self._flavor()
        try:
            return flavor.predict(self._model, data)
        except MlopsError:
            raise
        except Exception as exc:
            raise FlavorError(f"{self.label} ({flavor.name}) failed to predict: {exc}") from exc

    def predict_batch(
        self,
        dsv: DatasetVersion,
        output_name: str | None = None,
        *,
        chunk_rows: int = 10_000,
        columns: list[str] | None = None,
        progress: Any = None,
    ) -> DatasetVersion:
        """Predict every row of ``dsv``'s tabular files, ``chunk_rows`` at a time; returns a new
        dataset version (default name ``<model>-predictions``) of the rows with their predictions,
        recorded as a run of the ``batch-inference`` experiment (see :mod:`mlops_sdk.batch`)."""
        from mlops_sdk.batch import predict_batch

        return predict_batch(
            self, dsv, output_name, chunk_rows=chunk_rows, columns=columns, progress=progress
        )

    # -- lineage and card ------------------------------------------------------------------
    def lineage(self) -> ModelLineage:
        """The run that logged this version, its git commit and branch, and the dataset versions it used."""
        if self.run_id is None:
            return ModelLineage(None, None, [])
        ws = self.workspace
        try:
            run = ws.get_run(self.run_id)
        except RunNotFound:
            return ModelLineage(None, None, [])
        git = run.context.get("git") or {}
        experiment: str | None = None
        with contextlib.suppress(MlopsError):
            experiment = ws.tracking.get_experiment(run.experiment_id).name
        return ModelLineage(
            run,
            git.get("commit"),
            run.datasets(),
            git_branch=git.get("branch"),
            git_dirty=bool(git.get("dirty", False)),
            experiment=experiment,
        )

    def card(self, format: str = "markdown") -> str:
        """A model card for non-technical readers: ``"markdown"`` (default) or ``"html"``."""
        from mlops_sdk.card import render

        return render(self, format)

    # -- display ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<ModelVersion {self.name!r} v{self.version} flavor={self.flavor} id={self.id[:12]}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelVersion) and (self.name, self.version, self.id) == (
            other.name,
            other.version,
            other.id,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.id))

    def _repr_html_(self) -> str:
        from mlops_sdk.display import fmt_time, html_table

        rows: list[tuple[str, Any]] = [
            ("model", self.name),
            ("version", self.version),
            ("id", self.id[:12]),
            ("flavor", self.flavor),
            ("created", fmt_time(self.created_at)),
            ("run", self.run_id or ""),
            ("description", self.description),
        ]
        rows += [(f"metrics.{k}", v) for k, v in self.metrics.items()]
        rows += [(f"tags.{k}", v) for k, v in self.tags.items()]
        return html_table(["field", "value"], rows, caption=f"Model {self.name} v{self.version}") + (
            f"<p>{html.escape(', '.join(self.requirements))}</p>" if self.requirements else ""
        )


# -- saving -------------------------------------------------------------------------------------------
def log_model(
    run: Run,
    obj: Any,
    name: str,
    input_example: Any = None,
    signature: Any = None,
    metrics: Mapping[str, float] | None = None,
    *,
    flavor: str | None = None,
    allow_pickle: bool = False,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    intended_use: str = "",
    limitations: str = "",
    fairness: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Save ``obj`` with its flavor and register it as the next version of ``name`` (see ``Run.log_model``).

    Everything is checked, and the files are saved and stored, before the
    version is recorded: a failure leaves the registry unchanged.
    """
    from mlops_sdk.flavors import flavor_for

    run._check_active()
    ws = run.workspace
    name = validate_model_name(name)
    if not isinstance(allow_pickle, bool):
        raise InvalidValue(f"allow_pickle must be True or False, got {allow_pickle!r}")
    description = _text("description", description)
    intended_use = _text("intended_use", intended_use)
    limitations = _text("limitations", limitations)
    checked_tags = _tags(tags)
    checked_fairness = _fairness(fairness)
    sig = _signature(signature, input_example)
    checked_metrics = _metrics(metrics) if metrics is not None else dict(run.metrics)  # run.metrics flushes first
    chosen = flavor_for(obj, flavor)

    staging = _staging_dir(ws)
    try:
        folder = staging / "files"
        folder.mkdir()
        try:
            flavor_meta = chosen.save(obj, folder, input_example=input_example, allow_pickle=allow_pickle)
        except MlopsError:
            raise
        except Exception as exc:
            raise FlavorError(f"flavor {chosen.name!r} could not save {type(obj).__name__}: {exc}") from exc
        if not isinstance(flavor_meta, Mapping):
            raise FlavorError(f"flavor {chosen.name!r} returned {type(flavor_meta).__name__} from save, not a dict")
        flavor_meta = dict(flavor_meta)
        try:
            json.dumps(flavor_meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise FlavorError(f"flavor {chosen.name!r} returned metadata that is not JSON: {exc}") from exc
        entries = []
        for rel, path in _files(folder, chosen.name):
            digest, size = ws.objects.put_file(path)
            entries.append(FileEntry(rel, size, digest))
        manifest = Manifest(entries)
        requirements = chosen.requirements(flavor_meta)
        meta: dict[str, Any] = {
            "flavor": chosen.name,
            "flavor_meta": flavor_meta,
            "signature": sig.to_dict() if sig is not None else None,
            "metrics": checked_metrics,
            "python": platform.python_version(),
            "libraries": dict(flavor_meta.get("libraries") or {}),
            "requirements": list(requirements),
            "input_example": example_json(input_example),
            "intended_use": intended_use,
            "limitations": limitations,
            "fairness": checked_fairness,
        }
        record, _ = ws.tracking.create_version(
            KIND,
            name,
            id=manifest.id,
            manifest=manifest.to_bytes(),
            message=description,
            tags=checked_tags,
            meta=meta,
            run_id=run.id,
            created_at=time.time(),
        )
        ws.tracking.add_lineage(run.id, KIND, name, record.version, "output")
        # the files were hashed by put_file a moment ago: they become the verified cache
        _adopt(ws, staging, manifest)
    finally:
        _remove_tree(staging)
    run.set_tag(f"mlops.model.{name}", f"v{record.version}")
    return ModelVersion(ws, record, manifest)


def _files(folder: Path, flavor: str) -> list[tuple[str, Path]]:
    """Every file a flavor wrote, as (relative POSIX path, path); links and special files are refused."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise FlavorError(f"flavor {flavor!r} wrote {path.relative_to(folder)}, which is not a regular file")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            try:
                validate_relpath("model file path", rel)
            except InvalidName as exc:
                raise FlavorError(f"flavor {flavor!r} wrote a file with a name that cannot be stored: {exc}") from exc
            out.append((rel, path))
    return sorted(out)  # may be empty: a pyfunc saved by reference is all metadata


# -- the verified local cache -------------------------------------------------------------------
STAMP = "verified.json"
FILES = "files"


def cache_root(ws: Workspace) -> Path:
    return ws.state_dir / "models"


def _staging_dir(ws: Workspace) -> Path:
    """A private folder next to the cache (so its files can be moved in), else in the temp folder."""
    root = cache_root(ws)
    try:
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    except OSError:
        return Path(tempfile.mkdtemp(prefix="mlops-model-"))


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _seal(folder: Path, manifest: Manifest) -> None:
    """Make the files read-only and record their stat: the promise that they were verified."""
    files = folder / FILES
    stats: dict[str, list[int]] = {}
    for e in manifest:
        path = files / e.path
        os.chmod(path, 0o444)
        stats[e.path] = _stat_key(os.stat(path))
    _write_stamp(folder, manifest.id, stats)


def _write_stamp(folder: Path, manifest_id: str, stats: dict[str, list[int]]) -> None:
    tmp = folder / f".{STAMP}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps({"id": manifest_id, "files": stats}))
    os.replace(tmp, folder / STAMP)


def _trusted(folder: Path, manifest: Manifest) -> bool:
    """Whether ``folder`` holds exactly the manifest's files, verified (re-hashing only files touched since)."""
    from mlops_sdk.storage.objects import file_digest

    try:
        stamp = json.loads((folder / STAMP).read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("id") != manifest.id or not isinstance(stamp.get("files"), dict):
        return False
    recorded: dict[str, Any] = stamp["files"]
    files = folder / FILES
    touched: list[tuple[FileEntry, Path]] = []
    stats: dict[str, list[int]] = {}
    for e in manifest:
        path = files / e.path
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != e.size:
            return False
        stats[e.path] = _stat_key(st)
        if recorded.get(e.path) != stats[e.path] or st.st_mode & 0o222:
            touched.append((e, path))
    if len(recorded) != len(manifest) or _count_files(files) != len(manifest):
        return False  # a file was added (or the stamp is from elsewhere)
    if touched:
        for e, path in touched:  # touched since it was verified: hash it again, once
            try:
                if file_digest(path) != e.digest:
                    return False
                os.chmod(path, 0o444)
                stats[e.path] = _stat_key(os.stat(path))
            except OSError:
                return False
        with contextlib.suppress(OSError):
            _write_stamp(folder, manifest.id, stats)
    return True


def _count_files(folder: Path) -> int:
    count = 0
    for _dirpath, _dirnames, filenames in os.walk(folder):
        count += len(filenames)
    return count


def _adopt(ws: Workspace, staging: Path, manifest: Manifest) -> None:
    """Turn a staging folder whose files were just hashed into the version's cache folder (best effort)."""
    if staging.parent != cache_root(ws):
        return
    try:
        _seal(staging, manifest)
        _install(staging, cache_root(ws) / manifest.id, manifest)
    except OSError:
        pass  # the cache is only an optimisation: loading fills it from the store


def _install(staging: Path, final: Path, manifest: Manifest) -> None:
    """Move a sealed folder into place; a trusted folder already there (another process) wins."""
    for _ in range(5):
        try:
            os.rename(staging, final)
            return
        except OSError:
            if not final.exists():
                raise
        if _trusted(final, manifest):
            return
        aside = final.with_name(f".stale-{final.name}-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(final, aside)
        _remove_tree(aside)
    raise OSError(f"could not install the model cache folder {final}")


def materialize(ws: Workspace, manifest: Manifest, label: str = "model") -> Path:
    """A local folder holding exactly the manifest's files, each verified by hash (see the module doc)."""
    root = cache_root(ws)
    final = root / manifest.id
    if _trusted(final, manifest):
        return final / FILES
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    except OSError as exc:
        raise BackendError(f"{label}: cannot write the model cache folder {root}: {exc}") from exc
    try:
        for e in manifest:
            try:
                ws.objects.get_file(e.digest, staging / FILES / e.path)  # verified before it appears
            except IntegrityError as exc:
                raise IntegrityError(f"{label}: file {e.path!r} is corrupted in the store: {exc}") from exc
            except ObjectNotFound as exc:
                raise IntegrityError(
                    f"{label}: file {e.path!r} (object {e.digest[:12]}) is missing from the store {ws.storage.uri}"
                ) from exc
        (staging / FILES).mkdir(exist_ok=True)
        _seal(staging, manifest)
        _install(staging, final, manifest)
    except OSError as exc:
        raise BackendError(f"{label}: cannot write the model cache folder {final}: {exc}") from exc
    finally:
        _remove_tree(staging)
    return final / FILES


def _remove_tree(path: Path) -> None:
    # only files are made read-only, and a writable folder's read-only files can be removed
    shutil.rmtree(path, ignore_errors=True)


def clear_cache(ws: Workspace) -> int:
    """Remove every cached model folder (they are rebuilt, verified, on the next load); returns how many."""
    root = cache_root(ws)
    if not root.is_dir():
        return 0
    count = 0
    for child in root.iterdir():
        _remove_tree(child)
        count += 1
    return count


__all__ = ["Model", "ModelLineage", "ModelVersion", "log_model", "materialize", "validate_alias"]
