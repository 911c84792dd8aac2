"""Storing a step's output with its run, and reading it back. Never with pickle.

The output lands under the run's artifact folder ``mlops-step-output/``:
``output.json`` describes the value as a tree, and the leaves that are not
JSON live in files next to it:

============================  ============================================
value                         stored as
============================  ============================================
None, bool, int, float, str   inline JSON (numpy scalars become Python numbers)
list, tuple, dict (str keys)  a tree of the stored items (tuples stay tuples)
numpy array                   ``.npy`` (saved and loaded with ``allow_pickle=False``)
pandas DataFrame / Series     ``.parquet`` when pyarrow is installed, else ``.csv``
bytes                         a ``.bin`` file
DatasetVersion, ModelVersion  a reference: name, version and id
a model a flavor recognises   the flavor's files (skops for scikit-learn, …)
============================  ============================================

Anything else raises :class:`~mlops_sdk.errors.StepOutputError` naming the
step and the type. The output's *hash* (sha256 over the tree, with file
contents by digest) identifies it in the cache keys of the steps downstream.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_sdk.errors import ArtifactNotFound, MlopsError, StepOutputError

if TYPE_CHECKING:
    from mlops_sdk.run import Run
    from mlops_sdk.workspace import Workspace

OUTPUT_DIR = "mlops-step-output"
FORMAT = 1
_JSON_SCALARS = (type(None), bool, int, float, str)


def _module_of(value: Any) -> str:
    return type(value).__module__.split(".")[0]


class _Encoder:
    """Turns a value into a JSON tree plus files in ``folder``."""

    def __init__(self, step: str, folder: Path) -> None:
        self.step = step
        self.folder = folder
        self.count = 0

    def _path(self, suffix: str) -> str:
        self.count += 1
        return f"files/{self.count}{suffix}"

    def _refuse(self, value: Any, where: str, why: str = "") -> StepOutputError:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        return StepOutputError(
            f"step {self.step!r} returned {kind}{where}, which cannot be stored as a step output{why}. "
            "Return JSON values, numpy arrays, pandas DataFrames, bytes, a DatasetVersion or ModelVersion, "
            "a model a flavor can save, or lists/tuples/dicts of those"
        )

    def encode(self, value: Any, where: str = "") -> dict[str, Any]:
        if isinstance(value, _JSON_SCALARS):
            return {"json": value}
        if isinstance(value, tuple | list):
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return {"tuple": items} if isinstance(value, tuple) else {"list": items}
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise self._refuse(value, where, f" (dict key {k!r} is not a string)")
                out[k] = self.encode(v, f"{where}[{k!r}]")
            return {"dict": out}
        if isinstance(value, bytes):
            rel = self._path(".bin")
            self._write(rel, value)
            return {"bytes": rel}
        from mlops_sdk.dataset import DatasetVersion
        from mlops_sdk.model import ModelVersion

        if isinstance(value, DatasetVersion):
            if value.version is None or value.workspace is None:
                raise self._refuse(value, where, " (register the version in this workspace first: ws.dataset(name).add(...))")
            return {"dataset": {"name": value.name, "version": value.version, "id": value.id}}
        if isinstance(value, ModelVersion):
            return {"model_version": {"name": value.name, "version": value.version, "id": value.id}}
        np = sys.modules.get("numpy")
        if np is not None and isinstance(value, np.generic):
            return self.encode(value.item(), where)
        if np is not None and isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise self._refuse(value, where, " (an array of Python objects needs pickle)")
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=False)
            rel = self._path(".npy")
            self._write(rel, buf.getvalue())
            return {"ndarray": rel}
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(value, pd.DataFrame | pd.Series):
            return self._frame(value, pd, where)
        return self._model(value, where)

    def _frame(self, value: Any, pd: Any, where: str) -> dict[str, Any]:
        series = isinstance(value, pd.Series)
        frame = value.to_frame() if series else value
        try:
            import pyarrow  # type: ignore[import-untyped]  # noqa: F401

            rel = self._path(".parquet")
            buf = io.BytesIO()
            frame.to_parquet(buf)
        except ImportError:
            rel = self._path(".csv")
            buf = io.BytesIO(frame.to_csv().encode())
        except Exception as exc:
            raise self._refuse(value, where, f" ({exc})") from exc
        self._write(rel, buf.getvalue())
        return {"series" if series else "dataframe": rel}

    def _model(self, value: Any, where: str) -> dict[str, Any]:
        if callable(value) and not hasattr(value, "predict"):
            raise self._refuse(value, where)
        from mlops_sdk.flavors import flavor_for

        try:
            flavor = flavor_for(value)
        except MlopsError:
            raise self._refuse(value, where) from None
        if flavor.priority <= 0:  # pyfunc (by reference) is not a value
            raise self._refuse(value, where)
        rel = self._path("")
        target = self.folder / rel
        target.mkdir(parents=True)
        try:
            meta = flavor.save(value, target)
        except MlopsError:
            raise
        except Exception as exc:
            raise self._refuse(value, where, f" (flavor {flavor.name!r} could not save it: {exc})") from exc
        return {"flavor_model": rel, "flavor": flavor.name, "meta": meta}

    def _write(self, rel: str, data: bytes) -> None:
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _file_digests(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _tree_hash(tree: dict[str, Any], digests: dict[str, str]) -> str:
    from mlops_sdk.steps import canonical_json

    return hashlib.sha256(canonical_json({"tree": tree, "files": digests}).encode()).hexdigest()


def store_output(run: Run, step: str, value: Any) -> str:
    """Store ``value`` with ``run`` (artifacts under ``mlops-step-output/``); return its hash.

    The value is checked and encoded in full before anything is stored: an
    unsupported value stores nothing.
    """
    with tempfile.TemporaryDirectory(prefix="mlops-step-") as tmp:
        folder = Path(tmp) / OUTPUT_DIR
        folder.mkdir()
        tree = _Encoder(step, folder).encode(value)
        digests = _file_digests(folder)
        digest = _tree_hash(tree, digests)
        doc = {"format": FORMAT, "step": step, "value": tree, "hash": digest}
        (folder / "output.json").write_text(json.dumps(doc, allow_nan=True, ensure_ascii=False))
        run.log_artifact(folder, OUTPUT_DIR)
    return digest


class _Decoder:
    def __init__(self, run: Run, files: dict[str, str], tmp: Path) -> None:
        self.run = run
        self.ws: Workspace = run.workspace
        self.files = files  # relative path under OUTPUT_DIR -> digest
        self.tmp = tmp

    def _bytes(self, rel: str) -> bytes:
        digest = self.files.get(rel)
        if digest is None:
            raise ArtifactNotFound(f"run {self.run.id} has no step output file {rel!r}")
        return self.ws.objects.get_bytes(digest)

    def decode(self, node: dict[str, Any]) -> Any:
        kind, payload = next(iter(node.items()))
        if kind == "json":
            return payload
        if kind in ("list", "tuple"):
            items = [self.decode(n) for n in payload]
            return tuple(items) if kind == "tuple" else items
        if kind == "dict":
            return {k: self.decode(v) for k, v in payload.items()}
        if kind == "bytes":
            return self._bytes(payload)
        if kind == "ndarray":
            import numpy as np

            return np.load(io.BytesIO(self._bytes(payload)), allow_pickle=False)
        if kind in ("dataframe", "series"):
            import pandas as pd

            data = io.BytesIO(self._bytes(payload))
            frame = pd.read_parquet(data) if payload.endswith(".parquet") else pd.read_csv(data, index_col=0)
            return frame.iloc[:, 0] if kind == "series" else frame
        if kind == "dataset":
            dsv = self.ws.dataset(payload["name"]).version(int(payload["version"]))
            if dsv.id != payload["id"]:
                raise StepOutputError(f"dataset {payload['name']!r} v{payload['version']} changed its id since run {self.run.id}")
            return dsv
        if kind == "model_version":
            from mlops_sdk.model import Model

            return Model(self.ws, payload["name"]).version(int(payload["version"]))
        if kind == "flavor_model":
            from mlops_sdk.flavors import get_flavor

            target = self.tmp / payload
            prefix = payload + "/"
            for rel in self.files:
                if rel.startswith(prefix):
                    dest = target / rel[len(prefix):]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(self._bytes(rel))
            return get_flavor(node["flavor"]).load(target, node["meta"], allow_pickle=False)
        raise StepOutputError(f"run {self.run.id} holds a step output of unknown kind {kind!r}")


def load_output(run: Run) -> Any:
    """The output a step stored with ``run``."""
    prefix = OUTPUT_DIR + "/"
    files = {e.path[len(prefix):]: e.digest for e in run.artifacts() if e.path.startswith(prefix)}
    if "output.json" not in files:
        raise ArtifactNotFound(f"run {run.id} ({run.name}) stored no step output")
    doc = json.loads(run.workspace.objects.get_bytes(files["output.json"]))
    with tempfile.TemporaryDirectory(prefix="mlops-step-") as tmp:
        return _Decoder(run, files, Path(tmp)).decode(doc["value"])


def iter_datasets(value: Any) -> Iterator[Any]:
    """Every registered DatasetVersion inside ``value`` (lists, tuples and dicts are searched)."""
    from mlops_sdk.dataset import DatasetVersion

    if isinstance(value, DatasetVersion):
        if value.version is not None and value.workspace is not None:
            yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_datasets(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_datasets(item)
