"""The README's first command: examples/quickstart.py runs in an empty folder and does what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlops_sdk as mlops

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_versions_data_tracks_three_runs_and_registers_the_best_model(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    proc = subprocess.run(
        [sys.executable, str(QUICKSTART)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 runs in experiment 'quickstart', best first:" in proc.stdout
    with mlops.Workspace.open(tmp_path) as ws:
        runs = ws.experiment("quickstart").runs(order_by=["-metrics.val_acc", "metrics.val_loss"])
        assert len(runs) == 3 and all(r.status.value == "FINISHED" for r in runs)
        data = ws.dataset("breast-cancer").latest
        assert [f.path for f in data.files()] == ["breast_cancer.csv"]
        assert all(r.tags.get("mlops.dataset.breast-cancer") == "v1" for r in runs)
        model = ws.model("breast-cancer-clf")
        assert len(model.versions()) == 3
        production = model.alias("production")
        assert production.run_id == runs[0].id  # the best run's model
        assert f"breast-cancer-clf@production = v{production.version}" in proc.stdout
