"""A job module whose import hangs inside a Ray task (a stuck import or unreachable service), never in the driver."""

from __future__ import annotations

import time

import ray

if ray.is_initialized() and ray.get_runtime_context().get_task_id() is not None:
    time.sleep(300)


def quick() -> int:
    return 1
