"""The README's first command: examples/quickstart.py runs in an empty folder and does what it says."""

from __future__ import annotations

from pathlib import Path

import mlops_sdk as mlops
from mlops_sdk.testing.quickstart import check_quickstart_results, run_quickstart

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_versions_data_tracks_three_runs_and_registers_the_best_model(tmp_path: Path) -> None:
    stdout = run_quickstart(QUICKSTART, tmp_path)
    with mlops.Workspace.open(tmp_path) as ws:
        runs = ws.experiment("quickstart").runs(order_by=["-metrics.val_acc", "metrics.val_loss"])
        assert len(runs) == 3 and all(r.status.value == "FINISHED" for r in runs)
        data = ws.dataset("breast-cancer").latest
        assert [f.path for f in data.files()] == ["breast_cancer.csv"]
        check_quickstart_results(ws)
        assert all(r.tags.get("mlops.dataset.breast-cancer") == "v1" for r in runs)
        model = ws.model("breast-cancer-clf")
        assert len(model.versions()) == 3
        production = model.alias("production")
        assert production.run_id == runs[0].id  # the best run's model
        assert f"breast-cancer-clf@production = v{production.version}" in stdout
