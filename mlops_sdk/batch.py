"""Batch inference: predict over every tabular file of a dataset version, in bounded memory.

>>> out = mv.predict_batch(ws.dataset("customers").latest)      # doctest: +SKIP
>>> out.name, out.tags["mlops.model"]                           # doctest: +SKIP
('churn-clf-predictions', 'churn-clf')

Each tabular input file (``.csv``, ``.tsv``, ``.parquet``, ``.jsonl``,
``.json``) is read ``chunk_rows`` rows at a time (CSV/TSV/JSONL through
pandas' ``chunksize``, Parquet by record batches; a ``.json`` document can
only be read whole), each chunk is checked against the model's signature and
predicted, and the chunk, with its prediction column(s) appended, is written
to one output file per input file: Parquet when pyarrow is installed, else
CSV. Other files (a README) are ignored.

Everything is checked before the model runs (no tabular files, no rows,
columns that do not fit the signature raise typed errors), the outputs are
written to a temporary folder, and the output dataset version is added only
at the end: a failure registers nothing. The work is recorded as a run in the
``batch-inference`` experiment, named after the model, that used the input
version (lineage) and produced the output version; the output version is
tagged ``mlops.model``, ``mlops.model_version``, ``mlops.input`` and
``mlops.run``.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlops_sdk.errors import InvalidValue, MissingDependency, SignatureMismatch
from mlops_sdk.validation import validate_name

if TYPE_CHECKING:
    from mlops_sdk.dataset import DatasetVersion
    from mlops_sdk.manifest import FileEntry
    from mlops_sdk.model import ModelVersion

EXPERIMENT = "batch-inference"
PREDICTION = "prediction"
#: ``progress(done_bytes, done_files)``, like :meth:`Dataset.add`'s
Progress = Callable[[int, int], None]


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingDependency("batch inference needs pandas: pip install pandas") from exc
    return pd


def _have_pyarrow() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("pyarrow") is not None and importlib.util.find_spec("pyarrow.parquet") is not None
    except (ImportError, ValueError):
        return False


class _Counting(io.RawIOBase):
    """A read-only stream that reports the bytes read through it (for the progress bar)."""

    def __init__(self, raw: BinaryIO, report: Callable[[int], None]) -> None:
        self._raw = raw
        self._report = report

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self._report(n)
        return n

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        super().close()


class _Reader:
    """Reads one tabular file of a dataset version in chunks of rows."""

    def __init__(self, dsv: DatasetVersion, entry: FileEntry, scratch: Path, report: Callable[[int], None]) -> None:
        self.dsv = dsv
        self.entry = entry
        self.scratch = scratch
        self.report = report

    def chunks(self, rows: int) -> Generator[Any, None, None]:
        pd = _pandas()
        path = self.entry.path
        lower = path.lower()
        if lower.endswith(".parquet"):
            yield from self._parquet(rows)
            return
        stream = io.BufferedReader(_Counting(self.dsv.open(path), self.report), buffer_size=1 << 20)
        with stream:
            try:
                if lower.endswith((".csv", ".tsv")):
                    sep = "\t" if lower.endswith(".tsv") else ","
                    with pd.read_csv(stream, sep=sep, chunksize=rows) as reader:
                        yield from reader
                elif lower.endswith(".jsonl"):
                    with pd.read_json(stream, lines=True, chunksize=rows) as reader:
                        yield from reader
                else:  # .json: one document, read whole
                    frame = pd.read_json(stream)
                    for start in range(0, len(frame), rows):
                        yield frame.iloc[start : start + rows]
            except pd.errors.EmptyDataError:
                return  # a file with no header and no rows: nothing to predict
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
                raise InvalidValue(f"{self.dsv.label}: cannot read {path!r} as a table: {exc}") from exc

    def _parquet(self, rows: int) -> Generator[Any, None, None]:
        if not _have_pyarrow():
            raise MissingDependency(f"{self.entry.path!r} is Parquet: pip install pyarrow")
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        local = self.scratch / "parquet-in"
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir(parents=True)
        target = local / "data.parquet"  # a verified local copy: pyarrow needs to seek
        with self.dsv.open(self.entry.path) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        try:
            try:
                parquet = pq.ParquetFile(target)
            except Exception as exc:
                raise InvalidValue(f"{self.dsv.label}: cannot read {self.entry.path!r} as Parquet: {exc}") from exc
            total, done = max(self.entry.size, 1), 0
            count = max(parquet.metadata.num_rows, 1)
            seen = 0
            for batch in parquet.iter_batches(batch_size=rows):
                seen += batch.num_rows
                step = min(total, total * seen // count) - done
                done += step
                if step:
                    self.report(step)
                yield batch.to_pandas()
            if total - done > 0 and self.entry.size:
                self.report(total - done)
        finally:
            shutil.rmtree(local, ignore_errors=True)


class _Writer:
    """Writes one output file chunk by chunk (Parquet with pyarrow, else CSV)."""

    def __init__(self, path: Path, parquet: bool) -> None:
        self.path = path
        self.parquet = parquet
        self._pq: Any = None
        self._schema: Any = None
        self._csv: Any = None

    def write(self, frame: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._pq is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._schema = table.schema
                self._pq = pq.ParquetWriter(self.path, self._schema)
            else:
                try:
                    table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
                except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
                    raise InvalidValue(
                        f"column types changed between chunks while writing {self.path.name} ({exc}); "
                        "use a larger chunk_rows or consistent column types"
                    ) from exc
            self._pq.write_table(table)
        else:
            if self._csv is None:
                self._csv = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
                frame.to_csv(self._csv, index=False, header=True)
            else:
                frame.to_csv(self._csv, index=False, header=False)

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
        if self._csv is not None:
            self._csv.close()


def _output_path(rel: str, suffix: str, taken: set[str]) -> str:
    """``sub/part-0.csv`` → ``sub/part-0.parquet``; ``a.csv.parquet`` when ``a.parquet`` is taken."""
    stem, dot, _ext = rel.rpartition(".")
    out = f"{stem if dot else rel}{suffix}"
    if out in taken:
        out = f"{rel}{suffix}"
    taken.add(out)
    return out


def _prediction_frame(pd: Any, predictions: Any, index: Any, taken: Sequence[str]) -> Any:
    """Predictions as columns: ``prediction`` (1-D), ``prediction_0…`` (2-D), or a frame's own columns."""
    if isinstance(predictions, pd.DataFrame):
        frame = predictions.reset_index(drop=True)
        frame.columns = [f"{PREDICTION}_{c}" for c in frame.columns]
    else:
        if isinstance(predictions, pd.Series):
            predictions = predictions.to_numpy()
        tolist = getattr(predictions, "detach", None)
        if callable(tolist):  # a torch tensor
            predictions = predictions.detach().cpu().numpy()
        import numpy as np

        array = np.asarray(predictions)
        if array.ndim == 0 or array.shape[0] != len(index):
            raise InvalidValue(
                f"the model returned {array.shape[0] if array.ndim else 'a scalar'} predictions for {len(index)} rows"
            )
        if array.ndim == 1:
            frame = pd.DataFrame({PREDICTION: array})
        else:
            flat = array.reshape(array.shape[0], -1)
            frame = pd.DataFrame({f"{PREDICTION}_{i}": flat[:, i] for i in range(flat.shape[1])})
    renamed = {}
    for c in frame.columns:
        name = str(c)
        while name in taken:
            name = f"{name}_"
        renamed[c] = name
    frame = frame.rename(columns=renamed)
    frame.index = index
    return frame


def _feature_columns(mv: ModelVersion, columns: Sequence[str] | None) -> list[str] | None:
    """The columns fed to the model (None: every column of the file)."""
    signature = mv.signature
    if columns is not None:
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise InvalidValue(f"columns must be a list of column names, got {columns!r}")
        chosen = list(columns)
        if not chosen or len(set(chosen)) != len(chosen):
            raise InvalidValue(f"columns must name at least one column, each once: {chosen!r}")
        if signature is not None and signature.is_tabular:
            wanted = [c.name for c in signature.columns]
            if set(chosen) != set(wanted):
                missing = [c for c in wanted if c not in chosen]
                extra = [c for c in chosen if c not in wanted]
                raise SignatureMismatch(
                    f"columns {chosen} do not match the signature of {mv.label} ({wanted})"
                    + (f"; missing {missing}" if missing else "")
                    + (f"; not in the signature {extra}" if extra else "")
                )
        return chosen
    if signature is not None and signature.is_tabular:
        return [c.name for c in signature.columns]
    return None


def _check_header(mv: ModelVersion, label: str, path: str, header: list[str], features: list[str] | None) -> None:
    if features is not None:
        missing = [c for c in features if c not in header]
        if missing:
            raise SignatureMismatch(
                f"{label} file {path!r} lacks column(s) {missing} that {mv.label} needs (it has {header})"
            )
        width = len(features)
    else:
        width = len(header)
    signature = mv.signature
    spec = signature.tensor if signature is not None else None
    if spec is not None and len(spec.shape) == 2 and spec.shape[1] not in (-1, width):
        raise SignatureMismatch(
            f"{mv.label} takes {spec.shape[1]} columns; {label} file {path!r} gives {width} ({header}); "
            "choose them with columns=[...]"
        )


def _progress_bar(description: str, total: int, enabled: bool) -> contextlib.AbstractContextManager[Progress | None]:
    @contextlib.contextmanager
    def bar() -> Iterator[Progress | None]:
        if not enabled:
            yield None
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        rich_bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            DownloadColumn(binary_units=True),
            TextColumn("{task.fields[files]} files"),
            TimeRemainingColumn(),
            console=Console(stderr=True, highlight=False, markup=False, emoji=False),
            transient=True,
        )
        task = rich_bar.add_task(description, total=max(total, 1), files=0)
        files = [0]

        def callback(nbytes: int, nfiles: int) -> None:
            files[0] += nfiles
            rich_bar.update(task, advance=nbytes, files=files[0])

        with rich_bar:
            yield callback

    return bar()


def predict_batch(
    mv: ModelVersion,
    dsv: DatasetVersion,
    output_name: str | None = None,
    *,
    chunk_rows: int = 10_000,
    columns: Sequence[str] | None = None,
    progress: bool | Progress | None = None,
) -> DatasetVersion:
    """Predict every row of ``dsv``'s tabular files; returns the new predictions version (see the module doc).

    ``progress``: None draws a rich bar when stderr is a terminal, False
    draws nothing, True always draws it, and a callable receives
    ``progress(done_bytes, done_files)`` increments.
    """
    from mlops_sdk.dataset import TABULAR, Dataset, DatasetVersion

    if not isinstance(dsv, DatasetVersion):
        raise InvalidValue(f"predict_batch takes a DatasetVersion, got {type(dsv).__name__}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidValue(f"chunk_rows must be a whole number of rows ≥ 1, got {chunk_rows!r}")
    name = validate_name("dataset name", output_name if output_name is not None else f"{mv.name}-predictions")
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise InvalidValue(f"progress must be None, True, False or a callable, got {type(progress).__name__}")
    ws = mv.workspace
    if dsv.workspace is not None and dsv.workspace.tracking.uri != ws.tracking.uri:
        raise InvalidValue(f"{dsv.label} belongs to another workspace ({dsv.workspace.tracking.uri}) than {mv.label}")
    if name == dsv.name:
        raise InvalidValue(f"the predictions cannot be a version of the input dataset {dsv.name!r}; pick output_name")
    pd = _pandas()
    features = _feature_columns(mv, columns)
    entries = [e for e in dsv.files() if e.path.lower().endswith(TABULAR)]
    if not entries:
        raise InvalidValue(f"{dsv.label} has no tabular files ({', '.join(TABULAR)}) to predict on")
    total_bytes = sum(e.size for e in entries)

    scratch = Path(tempfile.mkdtemp(prefix="mlops-batch-"))
    try:
        # -- check every file's columns (reading a first row only) before the model runs
        nonempty: list[FileEntry] = []
        for entry in entries:
            head = _Reader(dsv, entry, scratch, lambda _n: None).chunks(1)
            try:
                first = next(head, None)
            finally:
                head.close()
            if first is None or len(first) == 0:
                continue
            _check_header(mv, dsv.label, entry.path, [str(c) for c in first.columns], features)
            nonempty.append(entry)
        if not nonempty:
            raise InvalidValue(f"{dsv.label} has no rows to predict: its tabular files are empty")

        parquet = _have_pyarrow()
        suffix = ".parquet" if parquet else ".csv"
        out_root = scratch / "out"
        out_root.mkdir()
        show = sys.stderr.isatty() if progress is None else progress is True
        callback: Progress | None = progress if callable(progress) and not isinstance(progress, bool) else None
        run_tags = {
            "mlops.model": mv.name,
            "mlops.model_version": str(mv.version),
            "mlops.input": f"{dsv.name}@v{dsv.version}" if dsv.version is not None else f"{dsv.name}@{dsv.id[:12]}",
        }
        started = time.monotonic()
        with (
            ws.experiment(EXPERIMENT).start_run(
                name=mv.name,
                params={"model": mv.label, "input": dsv.label, "chunk_rows": chunk_rows},
                tags=run_tags,
            ) as run,
            _progress_bar(f"predicting {mv.label}", total_bytes, show) as bar,
        ):
            used = run.use_dataset(dsv)
            run_tags["mlops.input"] = f"{used.name}@v{used.version}"
            run.set_tag("mlops.input", run_tags["mlops.input"])
            ws.tracking.add_lineage(run.id, "model", mv.name, mv.version, "input")

            def report(nbytes: int, nfiles: int = 0) -> None:
                if bar is not None:
                    bar(nbytes, nfiles)
                if callback is not None:
                    callback(nbytes, nfiles)

            rows = 0
            taken: set[str] = set()
            for entry in entries:
                if entry not in nonempty:
                    report(entry.size, 1)
                    continue
                writer = _Writer(out_root / _output_path(entry.path, suffix, taken), parquet)
                try:
                    for chunk in _Reader(dsv, entry, scratch, lambda n: report(n)).chunks(chunk_rows):
                        if len(chunk) == 0:
                            continue
                        chunk.columns = [str(c) for c in chunk.columns]
                        inputs = chunk[features] if features is not None else chunk
                        try:
                            predictions = mv.predict(inputs)
                        except SignatureMismatch as exc:
                            raise SignatureMismatch(f"{dsv.label} file {entry.path!r}: {exc}") from exc
                        pred = _prediction_frame(pd, predictions, chunk.index, list(chunk.columns))
                        writer.write(pd.concat([chunk, pred], axis=1))
                        rows += len(chunk)
                finally:
                    writer.close()
                report(0, 1)
            seconds = time.monotonic() - started
            out = Dataset(ws, name).add(
                out_root,
                message=f"predictions of {mv.label} on {run_tags['mlops.input']}",
                tags={**run_tags, "mlops.run": run.id},
            )
            assert out.version is not None
            ws.tracking.add_lineage(run.id, "dataset", out.name, out.version, "output")
            run.set_tag("mlops.output", f"{out.name}@v{out.version}")
            run.log_metrics({"rows": rows, "files": len(nonempty), "seconds": seconds})
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["EXPERIMENT", "predict_batch"]
