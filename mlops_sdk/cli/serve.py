"""``mlops serve NAME@V``: serve a registered model version over HTTP (see docs/serving.md).

Starlette and uvicorn are imported only when the command runs, so the rest of
the ``mlops`` command stays fast.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any

import click

from mlops_sdk.cli.models import resolve_version, split_ref
from mlops_sdk.cli.state import get_workspace

_SIZE = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|k|m|g)?\s*")
_UNITS = {
    None: 1, "b": 1,
    "k": 1024, "kb": 1024, "kib": 1024,
    "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1024**3, "gib": 1024**3,
}


def parse_size(text: str) -> int:
    """``"10MB"`` → 10485760 (units are powers of 1024; a bare number is bytes)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a size; write e.g. 10MB, 512KB or 1048576")
    value = int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower() or None])
    if value < 1:
        raise ValueError(f"{text!r}: the size must be at least 1 byte")
    return value


class SizeType(click.ParamType):  # type: ignore[type-arg]
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _exit_cleanly(signum: int, frame: Any) -> None:
    sys.exit(0)


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@click.command("serve")
@click.argument("ref", metavar="NAME@VERSION")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 exposes the server to the network.")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--token-env", metavar="VAR",
              help="Require 'Authorization: Bearer <token>', the token read from environment variable VAR.")
@click.option("--max-body", type=SizeType(), default="10MB", show_default=True,
              help="Largest request body accepted (larger gets HTTP 413).")
@click.option("--batching/--no-batching", default=True, show_default=True,
              help="Adaptive micro-batching: a request goes straight to an idle model; requests that "
                   "arrive while it is busy are stacked into its next predict call.")
@click.option("--max-batch", type=click.IntRange(1, 100_000), default=64, show_default=True,
              help="With --batching: most rows per predict call.")
@click.option("--max-wait-ms", type=click.FloatRange(0, 1000), default=0.0, show_default=True,
              help="With --batching: how long a batch that is not full may wait for more rows.")
@click.option("--allow-nan", is_flag=True, help="Pass NaN / missing values to the model instead of HTTP 422.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes sharing the port (each loads the model).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True)
def serve_cmd(
    ref: str, host: str, port: int, token_env: str | None, max_body: int, batching: bool,
    max_batch: int, max_wait_ms: float, allow_nan: bool, workers: int, log_level: str,
) -> None:
    """Serve a registered model version over HTTP until Ctrl-C / SIGTERM.

    NAME@VERSION is a version number (churn@3), "latest", an alias
    (churn@production) or an id prefix. Endpoints: POST /invocations (MLflow
    request formats), GET /health, /metadata, /metrics.
    """
    name, version_ref = split_ref(ref)
    token = None
    if token_env:
        token = os.environ.get(token_env, "")
        if not token.strip():
            raise click.UsageError(f"--token-env {token_env}: the environment variable {token_env} is not set or empty")
    ws = get_workspace()
    mv = resolve_version(ws.model(name), version_ref)

    from mlops_sdk.serving.app import Batching
    from mlops_sdk.serving.server import serve

    if host not in _LOOPBACK and token is None:
        click.echo(f"warning: serving on {host} without authentication (see --token-env)", err=True)

    def ready(url: str) -> None:
        click.echo(f"mlops: serving {mv.name}@{mv.version} (id {mv.id[:12]}) at {url}", err=True)

    # uvicorn shuts down gracefully on SIGINT / SIGTERM, then re-raises the signal: exit 0 on it
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    serve(
        mv, host=host, port=port, workers=workers, auth_token=token, max_body_bytes=max_body,
        batching=Batching(max_batch=max_batch, max_wait_ms=max_wait_ms) if batching else None,
        allow_nan=allow_nan, log_level=log_level, on_ready=ready,
    )


__all__ = ["parse_size", "serve_cmd"]
