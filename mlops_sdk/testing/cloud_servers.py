"""Real cloud API servers on 127.0.0.1 for tests: moto (S3, SageMaker…) and Azurite (Blob).

::

    with MotoServer.start() as moto:          # python -m moto.server on a free port
        moto.endpoint_url                       # http://127.0.0.1:PORT
        moto.env()                              # AWS_* variables for boto3 / s3fs / DVC

    with AzuriteServer.start(tmp_path) as az:   # the npm package's azurite-blob on a free port
        az.connection_string                    # the well-known development account

Both are separate processes speaking real HTTP (no in-process patching), bound
to 127.0.0.1 only, and stopped on ``close()``. ``moto`` comes from PyPI (the
plugins' ``test`` extras); Azurite from npm, installed by
``scripts/ensure-azurite.sh`` into ``.cache/azurite`` (or found on ``PATH``, or
at ``$MLOPS_AZURITE``). When a server program is missing, ``start`` raises
:class:`ServerUnavailable` with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "AzuriteServer",
    "MotoServer",
    "ServerUnavailable",
    "free_port",
    "start_or_skip",
]

HOST = "127.0.0.1"
#: Azurite's well-known development account and key (public, documented by Microsoft; not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_REPO = Path(__file__).resolve().parents[2]


_S = TypeVar("_S")


class ServerUnavailable(Exception):
    """The server program is missing or did not start."""


def start_or_skip(start: Callable[[], _S]) -> _S:
    """``start()`` a server for a test; when it is unavailable, skip the test, or fail it under ``CI=true``.

    On a developer's machine a missing emulator skips the tests that need it,
    with the reason; CI installs every emulator, so there a missing one is a
    broken build, never a silent skip.
    """
    try:
        return start()
    except ServerUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        import pytest

        pytest.skip(f"server unavailable: {exc}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerUnavailable(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:  # any HTTP answer means it is up
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise ServerUnavailable(f"server did not answer {url} within {timeout:.0f} s: {log.read_text(errors='replace')[-2000:]}")


class _Process:
    """A server child process with a log file; stopped on close (also at interpreter exit via context use)."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path, workdir: Path | None) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self._workdir = workdir

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Azurite ignores SIGTERM but closes at once on SIGINT
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MotoServer(_Process):
    """``moto`` in server mode: every AWS service it emulates, at one endpoint."""

    REGION = "us-east-1"

    @classmethod
    def start(
        cls, *, port: int | None = None, env: dict[str, str] | None = None, module: str = "moto.server"
    ) -> MotoServer:
        """Start moto's server; ``module`` is what ``python -m`` runs (a wrapper that extends moto, say)."""
        try:
            import moto.server  # noqa: F401
        except ImportError as exc:
            raise ServerUnavailable(f"moto is not installed ({exc}); pip install 'moto[server]'") from exc
        port = port or free_port()
        workdir = Path(tempfile.mkdtemp(prefix="mlops-moto-"))
        log = workdir / "moto.log"
        child_env = {**os.environ, **(env or {})}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, "-H", HOST, "-p", str(port)],
                stdout=out, stderr=subprocess.STDOUT, env=child_env, start_new_session=True,
            )
        server = cls(proc, port, log, workdir)
        try:
            _wait_http(f"http://{HOST}:{port}/moto-api/", proc, log)
        except BaseException:
            server.close()
            raise
        return server

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        """Variables that point boto3, s3fs and DVC at this server with test credentials."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.REGION,
            "AWS_REGION": self.REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def reset(self) -> None:
        """Forget every bucket, job and endpoint (moto's reset API)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()


def find_azurite() -> Path:
    """The ``azurite-blob`` program: ``$MLOPS_AZURITE``, ``.cache/azurite`` of this repo, or ``PATH``."""
    candidates = []
    if os.environ.get("MLOPS_AZURITE"):
        candidates.append(Path(os.environ["MLOPS_AZURITE"]))
    candidates.append(_REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob")
    on_path = shutil.which("azurite-blob")
    if on_path:
        candidates.append(Path(on_path))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise ServerUnavailable(
        "Azurite is not installed: run scripts/ensure-azurite.sh (npm install azurite into .cache/azurite), "
        "or set MLOPS_AZURITE to the azurite-blob program"
    )


class AzuriteServer(_Process):
    """Azurite's Blob service, data in a temporary folder."""

    @classmethod
    def start(cls, location: str | Path | None = None, *, port: int | None = None) -> AzuriteServer:
        """Start Azurite's Blob service; data in memory, or in ``location`` when given (kept on close)."""
        program = find_azurite()
        if shutil.which("node") is None:
            raise ServerUnavailable("Azurite needs Node.js ('node' is not on PATH)")
        port = port or free_port()
        workdir = Path(tempfile.mkdtemp(prefix="mlops-azurite-"))
        if location is not None:
            Path(location).mkdir(parents=True, exist_ok=True)
            persistence = ["--location", str(location)]
        else:
            persistence = ["--inMemoryPersistence"]  # Azurite refuses it together with --location
        log = workdir / "azurite.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    str(program), "--blobHost", HOST, "--blobPort", str(port), *persistence,
                    "--skipApiVersionCheck", "--disableProductStyleUrl",
                ],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        server = cls(proc, port, log, workdir)
        try:
            _wait_http(f"http://{HOST}:{port}/{AZURITE_ACCOUNT}?comp=list", proc, log)
        except BaseException:
            server.close()
            raise
        return server

    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_endpoint)

    def env(self) -> dict[str, str]:
        """``AZURE_STORAGE_CONNECTION_STRING`` for adlfs and the Azure SDK."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}


def connection_string(blob_endpoint: str, key: str = AZURITE_KEY, account: str = AZURITE_ACCOUNT) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};BlobEndpoint={blob_endpoint};"
    )


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Any:
    """Set environment variables for the duration of a ``with`` block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
