"""Run the quickstart example unchanged on a storage, and check what it left there.

The core's and the cloud plugins' tests share this: the example runs in a
subprocess whose environment differs only by what a user's shell would carry
(``MLOPS_STORAGE`` and the provider's variables), then a workspace reads its
data set and production model back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["check_quickstart_results", "run_quickstart"]


def run_quickstart(script: Path, folder: Path, env: Mapping[str, str] | None = None) -> str:
    """Run ``script`` in ``folder`` with the caller's environment, minus ``MLOPS_*``, plus ``env``; return its stdout.

    Raises ``AssertionError`` (with the script's stderr) when it fails or does
    not print its summary.
    """
    full = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    full.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=folder, env=full, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 runs in experiment 'quickstart', best first:" in proc.stdout, proc.stdout
    return proc.stdout


def check_quickstart_results(ws: Any) -> None:
    """The quickstart's data set reads back whole, and its production model predicts it well."""
    import numpy as np

    data = ws.dataset("breast-cancer").latest
    table = np.loadtxt(data.open("breast_cancer.csv"), delimiter=",")
    assert table.shape == (569, 31)
    production = ws.model("breast-cancer-clf").alias("production")
    predictions = production.predict(table[:20, :-1])
    assert (np.asarray(predictions) == table[:20, -1]).mean() >= 0.9
