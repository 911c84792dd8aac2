"""``mlops.seed_everything``: random, numpy and torch repeat after reseeding."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest

import mlops_sdk as mlops
from mlops_sdk.errors import InvalidValue


def _draws() -> tuple[float, list[float], list[float]]:
    import torch

    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_seed_everything_makes_random_numpy_and_torch_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    assert mlops.seed_everything(1234) == ["random", "numpy", "torch"]
    first = _draws()
    assert os.environ["PYTHONHASHSEED"] == "1234"
    mlops.seed_everything(1234)
    assert _draws() == first
    mlops.seed_everything(4321)
    assert _draws() != first


def test_seed_is_tagged_on_the_active_run(workspace: mlops.Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    from mlops_sdk.fluent import set_workspace

    set_workspace(workspace)
    with mlops.start_run() as run:
        mlops.seed_everything(7)
    assert workspace.get_run(run.id).tags["mlops.seed"] == "7"


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "7", True, None])
def test_bad_seeds_are_refused(bad: object) -> None:
    with pytest.raises(InvalidValue, match="seed must be an integer"):
        mlops.seed_everything(bad)  # type: ignore[arg-type]


def test_import_mlops_does_not_load_the_seed_or_sweep_modules() -> None:
    code = "import sys, mlops_sdk; print([m for m in ('mlops_sdk.seed', 'mlops_sdk.sweep', 'numpy') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
