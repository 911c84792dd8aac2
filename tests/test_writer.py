"""The background writer when a store refuses some items outright."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import mlops_sdk as mlops
from mlops_sdk.errors import InvalidName, InvalidValue
from mlops_sdk.records import WriteBatch
from mlops_sdk.tracking.sql import SqlTrackingStore


class PickyStore(SqlTrackingStore):
    """A store whose server refuses metric keys with '@' (as MLflow does), like a remote backend."""

    def write_batch(self, batch: WriteBatch) -> None:
        for _run, key, *_ in batch.metrics:
            if "@" in key:
                raise InvalidName(f"the server refuses metric key {key!r}")
        super().write_batch(batch)


def test_refused_items_are_reported_and_do_not_block_the_rest(tmp_path: Path) -> None:
    store = PickyStore("sqlite:///t.db", root=tmp_path)
    ws = mlops.Workspace.open(tmp_path)
    ws.tracking = store
    exp = ws.experiment("picky")
    run = exp.start_run()
    for step in range(50):
        run.log_metric("acc", step / 50, step=step)
    run.log_metric("acc@1", 0.5)
    run.log_param("lr", 0.1)
    run.set_tag("t", "v")
    started = time.monotonic()
    with pytest.raises(InvalidValue, match=r"refused 1 logged item.*acc@1"):
        run.end()
    assert time.monotonic() - started < 10  # no endless retrying of a batch that can never succeed
    stored = ws.get_run(run.id)
    assert stored.status.value == "FINISHED"
    assert "acc@1" in (stored.error or "")
    assert len(stored.metric_history("acc")) == 50
    assert stored.params == {"lr": 0.1} and stored.tags == {"t": "v"}
    # later runs in the same workspace are not blocked
    with exp.start_run() as later:
        later.log_metric("loss", 1.0)
    assert ws.get_run(later.id).metrics == {"loss": 1.0}
    ws.close()
