"""``mlops.seed_everything(seed)``: one call to make a training script's randomness repeatable."""

from __future__ import annotations

import importlib.util
import os
import random
import sys

from mlops_sdk.errors import InvalidValue

MAX_SEED = 2**32 - 1  # numpy's legacy global generator takes 32-bit seeds


def seed_everything(seed: int, *, deterministic: bool = False) -> list[str]:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA), if installed.

    Returns the names of what was seeded. Also sets ``PYTHONHASHSEED`` in the
    environment: it cannot change this process's ``hash()`` of strings (fixed
    at start-up) but it is inherited by every process started afterwards, jobs
    and sweep trials included; for this process start Python with
    ``PYTHONHASHSEED`` set. ``deterministic=True`` also asks torch for
    deterministic algorithms (``torch.use_deterministic_algorithms``, cuDNN
    deterministic, no benchmark mode), which can be slower. The seed is tagged
    on the active run (``mlops.seed``) when there is one.

    torch is imported here when it is installed but not yet imported, so that
    its generators are seeded before the code that uses them runs.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidValue(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    seeded = ["random"]
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "numpy" in sys.modules or importlib.util.find_spec("numpy") is not None:
        import numpy as np

        np.random.seed(seed)
        seeded.append("numpy")
    if "torch" in sys.modules or importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)  # every device, CUDA included
        if deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        seeded.append("torch")
    from mlops_sdk.fluent import active_run

    run = active_run()
    if run is not None:
        run.set_tag("mlops.seed", str(seed))
    return seeded


__all__ = ["seed_everything"]
