"""The background writer: logging calls queue, a daemon thread writes batches.

``run.log_metric`` appends a tuple to a deque and returns; nothing waits on
disk or network. A thread drains the queue every ``flush_interval`` seconds
(or sooner when it grows past ``max_pending``) and hands the store one
:class:`WriteBatch` per drain, so one transaction carries thousands of points.

Guarantees:

* Order is kept: a drain takes items in the order they were queued, under a
  lock, and writes them before the next drain starts.
* A failed write keeps its items; they are retried (with backoff) before
  anything newer, so nothing is dropped. :meth:`flush` raises if the store
  still refuses after its deadline, and the items stay queued.
* :meth:`flush` returns once everything queued before the call is stored.
* After SIGKILL, at most the last ``flush_interval`` of points is missing.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import weakref
from typing import Any

from mlops_sdk.errors import BackendError, InvalidName, InvalidValue
from mlops_sdk.records import WriteBatch
from mlops_sdk.tracking.base import TrackingStore

DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_MAX_PENDING = 20_000
_MAX_BATCH = 50_000

_writers: weakref.WeakSet[BatchWriter] = weakref.WeakSet()


class BatchWriter:
    """Queues metric, param and tag writes for one store and writes them in batches."""

    def __init__(
        self,
        store: TrackingStore,
        *,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._retry: WriteBatch | None = None  # a drained batch whose write failed
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.last_error: BaseException | None = None
        self.rejected: list[str] = []  # items the store refused outright, reported by flush()
        self._drained = 0  # items the last drain took from the queue
        self._thread: threading.Thread | None = None
        self._start_thread()
        _writers.add(self)

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mlops-writer", daemon=True)
        self._thread.start()

    # -- the hot path -------------------------------------------------------------
    def metric(self, run_id: str, key: str, value: float, step: int, timestamp: float) -> None:
        q = self._queue
        q.append(("m", run_id, key, value, step, timestamp))
        if len(q) >= self.max_pending:
            self._wake.set()

    def param(self, run_id: str, key: str, value: Any) -> None:
        self._queue.append(("p", run_id, key, value))

    def tag(self, run_id: str, key: str, value: str) -> None:
        self._queue.append(("t", run_id, key, value))

    @property
    def pending(self) -> int:
        retry = len(self._retry) if self._retry is not None else 0
        return len(self._queue) + retry

    # -- draining -----------------------------------------------------------------
    def _drain(self) -> WriteBatch:
        batch = WriteBatch()
        q = self._queue
        metrics, params, tags = batch.metrics, batch.params, batch.tags
        n = 0
        tensors = False
        while n < _MAX_BATCH:
            try:
                item = q.popleft()
            except IndexError:
                break
            kind = item[0]
            if kind == "m":
                metrics.append(item[1:])
                if type(item[3]) is not float:
                    tensors = True
            elif kind == "p":
                params.append(item[1:])
            else:
                tags.append(item[1:])
            n += 1
        if tensors:
            batch.metrics[:] = self._read_tensors(metrics)
        self._drained = n
        return batch

    def _read_tensors(self, metrics: list[Any]) -> list[Any]:
        """Replace logged torch scalars by their values: one stack and one read per device and dtype.

        The device is synchronised first: a value copied on another CUDA stream
        is then complete before this thread (on its own stream) reads it. If the
        stack fails (the GPU is out of memory, say), each value is read on its
        own; one that cannot be read (the GPU hit an error) is left out and
        reported through :attr:`rejected`, so ``flush`` names it.
        """
        import torch

        groups: dict[tuple[Any, Any], list[int]] = {}
        for i, m in enumerate(metrics):
            if type(m[2]) is not float:
                groups.setdefault((m[2].device, m[2].dtype), []).append(i)
        unreadable: set[int] = set()
        for (device, _), indices in groups.items():
            try:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                values = torch.stack([metrics[i][2] for i in indices]).tolist()
            except Exception:
                values = []
                for i in indices:
                    try:
                        values.append(metrics[i][2].item())
                    except Exception as exc:
                        values.append(None)
                        unreadable.add(i)
                        run_id, key, _, step, _ = metrics[i]
                        self.rejected.append(
                            f"{key!r} of run {run_id} at step {step}: could not read the tensor: {exc}"
                        )
            for i, value in zip(indices, values, strict=True):
                if i not in unreadable:
                    run_id, key, _, step, ts = metrics[i]
                    metrics[i] = (run_id, key, float(value), step, ts)
        return [m for i, m in enumerate(metrics) if i not in unreadable] if unreadable else metrics

    def _write_once(self) -> bool:
        """Write one batch (the failed one first). Returns False when nothing was left."""
        with self._write_lock:
            return self._write_once_locked()

    def _write_once_locked(self) -> bool:
        self._drained = 0
        batch = self._retry if self._retry is not None else self._drain()
        if not len(batch):
            return self._drained > 0  # items were taken but none is left to write (unreadable tensors)
        self._retry = batch
        try:
            self.store.write_batch(batch)
        except (InvalidName, InvalidValue):
            # The store refuses some item outright (a key its server does not allow,
            # say): retrying can never succeed, and must not block what comes after.
            self._write_accepted(batch)
        self._retry = None
        self.last_error = None
        return True

    def _write_accepted(self, batch: WriteBatch) -> None:
        """Write every item the store accepts; set aside, with the reason, those it refuses."""
        if len(batch) == 1:
            try:
                self.store.write_batch(batch)
            except (InvalidName, InvalidValue) as exc:
                item = (batch.metrics or batch.params or batch.tags)[0]
                self.rejected.append(f"{item[1]!r} of run {item[0]}: {exc}")
            return
        items = (
            [("m", m) for m in batch.metrics]
            + [("p", p) for p in batch.params]
            + [("t", t) for t in batch.tags]
        )
        half = len(items) // 2
        for part in (items[:half], items[half:]):
            sub = WriteBatch(
                metrics=[i for k, i in part if k == "m"],  # type: ignore[misc]
                params=[i for k, i in part if k == "p"],  # type: ignore[misc]
                tags=[i for k, i in part if k == "t"],  # type: ignore[misc]
            )
            try:
                self.store.write_batch(sub)
            except (InvalidName, InvalidValue):
                self._write_accepted(sub)

    def take_rejected(self) -> list[str]:
        """Items the store refused since the last call (each with the store's reason)."""
        with self._write_lock:  # the writer thread appends under this lock
            out, self.rejected = self.rejected, []
        return out

    def _loop(self) -> None:
        backoff = 0.0
        while not self._closed:
            self._wake.wait(self.flush_interval + backoff)
            self._wake.clear()
            try:
                while self._write_once():
                    pass
                backoff = 0.0
            except Exception as exc:  # keep the items, retry later
                self.last_error = exc
                backoff = min(max(backoff * 2, 0.1), 5.0)

    def flush(self, timeout: float | None = 120.0) -> None:
        """Write everything queued so far; raise ``BackendError`` if the store keeps refusing.

        Items that could not be written stay queued, so a later flush can still
        store them.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                # Under the write lock: a drain in progress elsewhere (the thread) may hold
                # items queued before this call; waiting for the lock waits for that write.
                # Then everything queued before the call is either stored, in _retry, or
                # among the first len(queue) items of the queue.
                with self._write_lock:
                    target = len(self._queue)
                    while self._retry is not None or target > 0:
                        before = len(self._queue)
                        if not self._write_once_locked():
                            break
                        target -= max(before - len(self._queue), 0)
                rejected = self.take_rejected()
                if rejected:
                    shown = "; ".join(rejected[:5]) + (
                        f"; and {len(rejected) - 5} more" if len(rejected) > 5 else ""
                    )
                    raise InvalidValue(
                        f"{self.store.uri} refused {len(rejected)} logged item(s): {shown}"
                    )
                return
            except InvalidValue:
                raise
            except Exception as exc:
                self.last_error = exc
                if deadline is not None and time.monotonic() >= deadline:
                    raise BackendError(
                        f"could not write {self.pending} pending metric/param/tag writes to "
                        f"{self.store.uri}: {exc}. They are still queued in this process; "
                        "call flush() again once the store is reachable."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self, timeout: float | None = 120.0) -> None:
        """Flush and stop the thread."""
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            self._wake.set()

    def after_fork(self) -> None:
        """In a forked child: the parent's queue is not ours, and the thread did not survive."""
        self._queue.clear()
        self._retry = None
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        if not self._closed:
            self._start_thread()


def flush_all(timeout: float | None = 30.0) -> None:
    """Flush every writer of this process (called at exit)."""
    for writer in list(_writers):
        with contextlib.suppress(Exception):
            writer.flush(timeout)
