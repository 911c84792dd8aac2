"""Shared by the S3 tests (a module of its own: several plugins' ``conftest`` modules share one name)."""

from __future__ import annotations

import os

import pytest
from mlops_sdk.testing.cloud_servers import MotoServer, ServerUnavailable


def start_moto(env: dict[str, str] | None = None) -> MotoServer:
    try:
        return MotoServer.start(env=env)
    except ServerUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"moto server unavailable: {exc}")
