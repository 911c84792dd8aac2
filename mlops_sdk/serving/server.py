"""Running the model server: in the foreground (``mlops serve``), in a thread, or in a child process.

>>> serve(mv, port=5000)                                    # doctest: +SKIP  (blocks; Ctrl-C stops)
>>> with start_background(mv) as server:                    # doctest: +SKIP
...     httpx.post(server.url + "/invocations", json={"inputs": [[1, 2]]})
>>> proc = start_process("churn-clf@3", workspace=".")      # doctest: +SKIP
>>> proc.url; proc.stop()                                   # doctest: +SKIP

Every runner binds its port itself before the model is loaded, so a port
already in use raises :class:`~mlops_sdk.errors.PortInUse` before anything
starts, and hands the bound socket to uvicorn (no window in which another
process can take the port). ``port=0`` picks a free port; the URL says which.
The default host is 127.0.0.1: the server is reachable from this machine only
unless a host is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from mlops_sdk.errors import InvalidValue, PortInUse, ServerError

if TYPE_CHECKING:
    from mlops_sdk.model import ModelVersion
    from mlops_sdk.serving.app import Batching

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
_SPEC_ENV = "MLOPS_SERVE_SPEC"
_S = TypeVar("_S", bound="_StopsOnExit")
_URL_LINE = re.compile(r"^mlops: serving .* at (http://\S+)$", re.MULTILINE)


def bind_socket(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening TCP socket on ``host:port``; :class:`PortInUse` when the port is taken."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidValue(f"port must be an integer from 0 to 65535 (0 picks a free one), got {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says so; without it small responses wait ~40 ms for delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts while in TIME_WAIT
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is already in use by another process; "
                "pick another with --port (or port=0 for any free port)"
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PortInUse(f"not allowed to listen on {host}:{port} ({exc.strerror}); use a port above 1023") from exc
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _uvicorn_config(app: Any, **kwargs: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        log_level=kwargs.pop("log_level", "warning"),
        access_log=kwargs.pop("access_log", False),
        lifespan="on",
        timeout_graceful_shutdown=kwargs.pop("timeout_graceful_shutdown", 10),
        server_header=False,
        **kwargs,
    )


def serve(
    model_version: ModelVersion,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    *,
    auth_token: str | None = None,
    max_body_bytes: int | None = None,
    batching: Batching | bool | None = None,
    allow_nan: bool = False,
    log_level: str = "info",
    on_ready: Any = None,
) -> None:
    """Serve ``model_version`` until SIGINT / SIGTERM (blocks).

    ``workers`` > 1 runs that many processes sharing the socket (each loads the
    model and keeps its own ``/metrics``). ``on_ready(url)`` is called once the
    socket is bound and the model loaded. See :func:`~mlops_sdk.serving.app.create_app`
    for the other options.
    """
    import uvicorn

    from mlops_sdk.serving.app import DEFAULT_MAX_BODY, create_app

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidValue(f"workers must be a positive integer, got {workers!r}")
    options: dict[str, Any] = {
        "auth_token": auth_token,
        "max_body_bytes": max_body_bytes or DEFAULT_MAX_BODY,
        "batching": batching,
        "allow_nan": allow_nan,
    }
    sock = bind_socket(host, port)
    try:
        url = _url(sock)
        if workers == 1:
            app = create_app(model_version, **options)
            server = uvicorn.Server(_uvicorn_config(app, log_level=log_level))
            if on_ready is not None:
                on_ready(url)
            server.run(sockets=[sock])
            return
        # several processes: each child rebuilds the app from this spec (the app itself cannot be pickled)
        create_app(model_version, **options)  # load once here so a broken model fails before forking
        ws = model_version.workspace
        spec = {
            "root": str(ws.root),
            "tracking": ws.config.tracking,
            "storage": ws.config.storage,
            "name": model_version.name,
            "version": model_version.version,
            "options": {**options, "batching": _batching_dict(batching)},
        }
        os.environ[_SPEC_ENV] = json.dumps(spec)
        from uvicorn.supervisors import Multiprocess

        config = _uvicorn_config(
            "mlops_sdk.serving.server:app_from_env", factory=True, workers=workers, log_level=log_level
        )
        if on_ready is not None:
            on_ready(url)
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()


def _batching_dict(batching: Batching | bool | None) -> Any:
    if batching is None or isinstance(batching, bool):
        return batching
    import attrs

    return attrs.asdict(batching)


def app_from_env() -> Any:
    """The app a worker process of :func:`serve` builds from ``MLOPS_SERVE_SPEC``."""
    from mlops_sdk.serving.app import Batching, create_app
    from mlops_sdk.workspace import Workspace

    spec = json.loads(os.environ[_SPEC_ENV])
    ws = Workspace.open(spec["root"], tracking=spec["tracking"], storage=spec["storage"])
    options = dict(spec["options"])
    if isinstance(options.get("batching"), dict):
        options["batching"] = Batching(**options["batching"])
    return create_app(ws.model(spec["name"]).version(int(spec["version"])), **options)


# -- in a thread: for tests and notebooks -------------------------------------------------------
class _StopsOnExit:
    """``with server:`` stops it on the way out, however the block ends."""

    def stop(self, timeout: float = 10.0) -> Any:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class BackgroundServer(_StopsOnExit):
    """A model server running in a daemon thread of this process; ``stop()`` (or ``with``) ends it."""

    def __init__(self, app: Any, sock: socket.socket, timeout: float) -> None:
        import uvicorn

        self.app = app
        self.url = _url(sock)
        self.host, self.port = sock.getsockname()[:2]
        self._sock = sock
        self._server = uvicorn.Server(_uvicorn_config(app))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"mlops-serve-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                sock.close()
                raise ServerError(f"the model server at {self.url} stopped while starting: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"the model server at {self.url} did not start within {timeout:g}s")
            time.sleep(0.005)

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # recorded for the thread that waits
            self._error = exc

    @property
    def server(self) -> Any:
        """The :class:`~mlops_sdk.serving.app.ModelServer` (metrics, metadata)."""
        return self.app.state.server

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the requests in progress (up to ``timeout`` seconds) and stop; idempotent."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __repr__(self) -> str:
        return f"<BackgroundServer {self.url} {'running' if self.running else 'stopped'}>"


def start_background(
    model_version: ModelVersion,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    timeout: float = 30.0,
    **app_options: Any,
) -> BackgroundServer:
    """Serve ``model_version`` from a thread; returns once it accepts requests (``.url``, ``.stop()``).

    ``port=0`` (the default) picks a free port. ``app_options`` go to
    :func:`~mlops_sdk.serving.app.create_app`.
    """
    from mlops_sdk.serving.app import create_app

    sock = bind_socket(host, port)
    try:
        app = create_app(model_version, **app_options)
    except BaseException:
        sock.close()
        raise
    return BackgroundServer(app, sock, timeout)


# -- in a child process: what a local deployer runs -------------------------------------------------
class ServerProcess(_StopsOnExit):
    """``mlops serve`` running as a child process; ``stop()`` sends SIGTERM (then SIGKILL)."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, url: str) -> None:
        self.proc = proc
        self.log_path = log_path
        self.url = url

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def logs(self) -> str:
        """What the server has written to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int:
        """Stop gracefully (SIGTERM), killing after ``timeout`` seconds; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return int(self.proc.returncode)

    def __repr__(self) -> str:
        return f"<ServerProcess pid={self.pid} {self.url} {'running' if self.running else 'stopped'}>"


def start_process(
    ref: str,
    *,
    workspace: str | os.PathLike[str] | None = None,
    host: str = DEFAULT_HOST,
    port: int = 0,
    token_env: str | None = None,
    max_body: str | None = None,
    batching: bool = True,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> ServerProcess:
    """Run ``mlops serve REF`` in a child process; returns once ``/health`` answers.

    ``ref`` is ``NAME@VERSION`` or ``NAME@alias``. The token itself never
    appears on the command line: pass the *name* of an environment variable
    holding it (``token_env``), set in ``env`` or this process's environment.
    Raises :class:`PortInUse` when the port is taken, :class:`ServerError`
    (with the server's output) when it fails to start.
    """
    cmd = [sys.executable, "-m", "mlops_sdk.cli"]
    if workspace is not None:
        cmd += ["--workspace", os.fspath(workspace)]
    cmd += ["serve", ref, "--host", host, "--port", str(port)]
    if token_env:
        cmd += ["--token-env", token_env]
    if max_body:
        cmd += ["--max-body", max_body]
    cmd.append("--batching" if batching else "--no-batching")
    cmd += extra_args or []
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="mlops-serve-", suffix=".log")
        os.close(fd)
        log_file = Path(name)
    else:
        log_file = Path(log_path)
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        text = log_file.read_text(errors="replace")
        match = _URL_LINE.search(text)
        if match:
            url = match.group(1)
            if _healthy(url):
                return ServerProcess(proc, log_file, url)
        if proc.poll() is not None:
            text = log_file.read_text(errors="replace").strip()
            if "already in use" in text:
                raise PortInUse(text.splitlines()[-1].removeprefix("error: "))
            raise ServerError(f"`mlops serve {ref}` exited with code {proc.returncode}: {text[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise ServerError(f"`mlops serve {ref}` did not answer /health within {timeout:g}s: {log_file.read_text()[-2000:]}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


__all__ = [
    "BackgroundServer",
    "ServerProcess",
    "app_from_env",
    "bind_socket",
    "serve",
    "start_background",
    "start_process",
]
