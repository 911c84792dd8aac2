"""The local model server: ``create_app`` (ASGI), ``serve`` (blocking), ``start_background`` / ``start_process``.

Nothing heavy is imported until a name is used: ``import mlops_sdk.serving``
does not load Starlette or uvicorn.

>>> from mlops_sdk.serving import start_background          # doctest: +SKIP
>>> with start_background(ws.model("churn-clf").version(3)) as server:   # doctest: +SKIP
...     print(server.url)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_sdk.serving.app import DEFAULT_MAX_BODY, Batching, ModelServer, create_app
    from mlops_sdk.serving.server import (
        BackgroundServer,
        ServerProcess,
        bind_socket,
        serve,
        start_background,
        start_process,
    )

_NAMES = {
    "DEFAULT_MAX_BODY": "app",
    "Batching": "app",
    "ModelServer": "app",
    "create_app": "app",
    "BackgroundServer": "server",
    "ServerProcess": "server",
    "bind_socket": "server",
    "serve": "server",
    "start_background": "server",
    "start_process": "server",
}


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'mlops_sdk.serving' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"mlops_sdk.serving.{module}"), name)


__all__ = [
    "DEFAULT_MAX_BODY",
    "BackgroundServer",
    "Batching",
    "ModelServer",
    "ServerProcess",
    "bind_socket",
    "create_app",
    "serve",
    "start_background",
    "start_process",
]
