"""The ``local`` deployer: model servers as child processes of this machine, behind a stable port.

Each deployment is two kinds of process, both bound to 127.0.0.1 unless a
``host`` is configured:

* a **router** on the deployment's port (its URL never changes): a small TCP
  forwarder that sends each new connection to the port named in
  ``<root>/.mlops/deployments/<name>.upstream``;
* one **model server** (``mlops serve NAME@V`` on a free port, started with
  :func:`~mlops_sdk.serving.server.start_process`), recording its inference log.

``update`` starts the new version's server, waits for its ``/health``, then
rewrites the upstream file (new connections go to the new server) and stops
the old server gracefully (SIGTERM: requests in progress finish, the inference
log is flushed). If the new server fails, nothing is switched and
:class:`~mlops_sdk.errors.DeploymentError` is raised.

State lives in ``<root>/.mlops/deployments/<name>.json`` (written atomically,
under a file lock), so any process (``mlops deploy ls/status/stop``) sees and
manages the same deployments. The processes outlive the Python process that
started them; ``stop()`` ends them.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlops_sdk.deploy.base import Deployer, DeploymentInfo
from mlops_sdk.errors import (
    DeploymentError,
    DeploymentNotFound,
    InvalidValue,
    PortInUse,
    ServerError,
)
from mlops_sdk.validation import validate_name

_ROUTER_LINE = re.compile(r"^mlops: routing at (http://\S+)$", re.MULTILINE)
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/]+)/(?P<version>\d+)$")
CONFIG_KEYS = frozenset({"port", "host", "log_sample_rate", "alias", "token_env", "timeout"})


def parse_model_uri(uri: str) -> tuple[str, int]:
    """``models:/NAME/VERSION`` → (name, version)."""
    match = _MODEL_URI.match(uri)
    if not match:
        raise InvalidValue(f"a model URI looks like models:/NAME/VERSION, got {uri!r}")
    return match.group("name"), int(match.group("version"))


# -- processes ------------------------------------------------------------------------------
def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live (not zombie) process; reaps it when it is our finished child."""
    if not pid:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _ours(pid: int) -> bool:
    """Whether ``pid`` still runs mlops-sdk (guards against a pid reused by another program)."""
    try:
        return b"mlops_sdk" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid_alive(pid)  # no /proc (macOS): trust the recorded pid


def terminate(pid: int | None, timeout: float = 10.0) -> None:
    """SIGTERM ``pid`` and wait for it to go (SIGKILL after ``timeout``); no-op when it is gone."""
    if not pid or not pid_alive(pid) or not _ours(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.02)


def health(url: str | None, timeout: float = 2.0) -> bool:
    if not url:
        return False
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


# -- the deployer -------------------------------------------------------------------------------
class LocalDeployer(Deployer):
    """Runs deployments as local processes; state under ``<root>/.mlops/deployments``."""

    def __init__(self, uri: str = "local", *, root: str | os.PathLike[str] = ".",
                 env: Mapping[str, str] | None = None) -> None:
        self.uri = uri
        self.root = Path(root).resolve()
        self.env = dict(env or {})
        self.dir = self.root / ".mlops" / "deployments"

    # -- state ------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        return self.dir / f"{validate_name('deployment name', name)}.json"

    def load_state(self, name: str) -> dict[str, Any]:
        path = self._path(name)
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            known = ", ".join(sorted(p.stem for p in self.dir.glob("*.json"))) or "none"
            raise DeploymentNotFound(f"no deployment named {name!r} (deployments: {known})") from None
        except (OSError, ValueError) as exc:
            raise DeploymentError(f"deployment {name!r}: its state file {path} is unreadable: {exc}") from exc
        return state

    def _save(self, state: dict[str, Any]) -> None:
        path = self._path(state["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.dir / f"{validate_name('deployment name', name)}.lock"
        with open(lock_path, "a+") as fh:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows
                yield
                return
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _info(self, state: dict[str, Any]) -> DeploymentInfo:
        return DeploymentInfo(
            name=state["name"],
            model=state["model"],
            version=int(state["version"]),
            url=state.get("url"),
            status=self._status_of(state),
            previous_versions=tuple(int(v) for v in state.get("previous", ())),
            alias=state.get("alias"),
            details={k: state.get(k) for k in ("router_pid", "pid", "port", "backend_url", "log", "history")},
        )

    def _status_of(self, state: dict[str, Any]) -> str:
        if state.get("status") == "stopped":
            return "stopped"
        if pid_alive(state.get("router_pid")) and pid_alive(state.get("pid")) and health(state.get("url")):
            return "running"
        return "failed"

    # -- processes ------------------------------------------------------------------------------
    def _start_router(self, name: str, host: str, port: int) -> tuple[int, str]:
        upstream = self.dir / f"{name}.upstream"
        log_path = self.dir / f"{name}.router.log"
        cmd = [sys.executable, "-m", "mlops_sdk.deploy.local", "--host", host, "--port", str(port),
               "--upstream-file", str(upstream)]
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            match = _ROUTER_LINE.search(text)
            if match:
                return proc.pid, match.group(1)
            if proc.poll() is not None:
                if "already in use" in text:
                    raise PortInUse(f"deployment {name!r}: port {port} on {host} is already in use; "
                                    "pick another port (or 0 for any free port)")
                raise DeploymentError(f"deployment {name!r}: the router exited: {text.strip()[-1000:]}")
            time.sleep(0.02)
        terminate(proc.pid)
        raise DeploymentError(f"deployment {name!r}: the router did not start within 30s")

    def _start_server(self, name: str, model: str, version: int, state: Mapping[str, Any]) -> tuple[int, str, str]:
        from mlops_sdk.serving.inference_log import ENV_NAME, ENV_RATE
        from mlops_sdk.serving.server import start_process

        log_path = self.dir / f"{name}.{model}-v{version}.{int(time.time() * 1000)}.log"
        env = {**self.env, ENV_NAME: name, ENV_RATE: str(state.get("log_sample_rate", 1.0))}
        try:
            proc = start_process(
                f"{model}@{version}", workspace=self.root, host=state.get("host", "127.0.0.1"), port=0,
                token_env=state.get("token_env"), env=env, log_path=log_path,
                timeout=float(state.get("timeout", 60.0)),
            )
        except (ServerError, PortInUse) as exc:
            raise DeploymentError(f"deployment {name!r}: {model}@{version} failed to start: {exc}") from exc
        return proc.pid, proc.url, str(log_path)

    def _switch(self, name: str, backend_url: str) -> None:
        port = backend_url.rsplit(":", 1)[1]
        upstream = self.dir / f"{name}.upstream"
        tmp = upstream.with_suffix(f".upstream.{os.getpid()}.tmp")
        tmp.write_text(port)
        os.replace(tmp, upstream)

    # -- Deployer -------------------------------------------------------------------------------
    def deploy(self, name: str, model_uri: str, config: Mapping[str, Any] | None = None) -> DeploymentInfo:
        validate_name("deployment name", name)
        model, version = parse_model_uri(model_uri)
        config = dict(config or {})
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            raise InvalidValue(f"unknown local deployment config key(s) {unknown}; known: {sorted(CONFIG_KEYS)}")
        port = config.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidValue(f"port must be an integer from 0 to 65535, got {port!r}")
        from mlops_sdk.serving.inference_log import check_rate

        check_rate(config.get("log_sample_rate", 1.0))
        with self._lock(name):
            with contextlib.suppress(DeploymentNotFound):
                old = self.load_state(name)
                if old.get("status") != "stopped" and (pid_alive(old.get("router_pid")) or pid_alive(old.get("pid"))):
                    raise DeploymentError(
                        f"deployment {name!r} already exists and is running; update it, or stop it first"
                    )
            host = str(config.get("host", "127.0.0.1"))
            state: dict[str, Any] = {
                "name": name, "target": "local", "model": model, "version": version,
                "alias": config.get("alias"), "host": host,
                "log_sample_rate": float(config.get("log_sample_rate", 1.0)),
                "token_env": config.get("token_env"), "timeout": float(config.get("timeout", 60.0)),
                "previous": [], "history": [], "created": time.time(),
            }
            router_pid, url = self._start_router(name, host, port)
            try:
                pid, backend_url, log = self._start_server(name, model, version, state)
            except BaseException:
                terminate(router_pid)
                raise
            self._switch(name, backend_url)
            state.update(router_pid=router_pid, url=url, port=int(url.rsplit(":", 1)[1]), pid=pid,
                         backend_url=backend_url, log=log, status="running")
            state["history"].append({"action": "deploy", "version": version, "time": time.time()})
            self._save(state)
            return self._info(state)

    def _move(self, name: str, version: int, action: str, model: str | None = None) -> DeploymentInfo:
        with self._lock(name):
            state = self.load_state(name)
            if state.get("status") == "stopped" or not pid_alive(state.get("router_pid")):
                raise DeploymentError(f"deployment {name!r} is not running; deploy it again")
            if model is not None and model != state["model"]:
                raise DeploymentError(
                    f"deployment {name!r} serves model {state['model']!r}, not {model!r}; deploy a new one instead"
                )
            old_pid, old_version = state.get("pid"), int(state["version"])
            pid, backend_url, log = self._start_server(name, state["model"], version, state)
            if not health(state["url"]):  # pragma: no cover - the router died meanwhile
                terminate(pid)
                raise DeploymentError(f"deployment {name!r}: its router at {state['url']} stopped answering")
            self._switch(name, backend_url)
            if action == "rollback":
                state["previous"] = state["previous"][:-1]
            else:
                state["previous"] = [*state["previous"], old_version][-20:]
            state.update(version=version, pid=pid, backend_url=backend_url, log=log)
            state["history"].append({"action": action, "version": version, "from": old_version, "time": time.time()})
            self._save(state)
        terminate(old_pid)  # graceful: requests in progress finish, its inference log is flushed
        return self._info(state)

    def update(self, name: str, model_uri: str) -> DeploymentInfo:
        model, version = parse_model_uri(model_uri)
        return self._move(name, version, "update", model)

    def rollback(self, name: str) -> DeploymentInfo:
        state = self.load_state(name)
        if not state.get("previous"):
            raise DeploymentError(f"deployment {name!r} has no previous version to roll back to")
        return self._move(name, int(state["previous"][-1]), "rollback")

    def set_alias(self, name: str, alias: str | None) -> None:
        with self._lock(name):
            state = self.load_state(name)
            state["alias"] = alias
            self._save(state)

    def predict(self, name: str, rows: Sequence[Any]) -> list[Any]:
        state = self.load_state(name)
        return post_predict(state["url"], rows, name=name, token_env=state.get("token_env"))

    def status(self, name: str) -> DeploymentInfo:
        return self._info(self.load_state(name))

    def list(self) -> list[DeploymentInfo]:
        if not self.dir.is_dir():
            return []
        out = []
        for path in sorted(self.dir.glob("*.json")):
            with contextlib.suppress(DeploymentNotFound, DeploymentError, KeyError, InvalidValue):
                out.append(self._info(self.load_state(path.stem)))
        return out

    def logs(self, name: str, tail: int = 100) -> str:
        state = self.load_state(name)
        try:
            lines = Path(state["log"]).read_text(errors="replace").splitlines()
        except (OSError, KeyError):
            return ""
        return "\n".join(lines[-tail:]) if tail > 0 else ""

    def stop(self, name: str) -> None:
        with self._lock(name):
            state = self.load_state(name)
            terminate(state.get("pid"))  # the server first: it flushes its inference log
            terminate(state.get("router_pid"))
            state["status"] = "stopped"
            state["history"].append({"action": "stop", "version": state["version"], "time": time.time()})
            self._save(state)

    def pids(self, name: str) -> builtins.list[int]:
        """The process ids a deployment runs (router and model server)."""
        state = self.load_state(name)
        return [int(p) for p in (state.get("router_pid"), state.get("pid")) if p]


def payload_for(rows: Any) -> dict[str, Any]:
    """An MLflow scoring request for ``rows``: a DataFrame → ``dataframe_split``; dicts → records."""
    module = type(rows).__module__.split(".")[0]
    if module == "pandas" and type(rows).__name__ == "DataFrame":
        return {"dataframe_split": {"columns": [str(c) for c in rows.columns], "data": rows.to_numpy().tolist()}}
    tolist = getattr(rows, "tolist", None)
    if callable(tolist):
        rows = tolist()
    if isinstance(rows, Mapping):
        return {"inputs": dict(rows)}
    rows = list(rows)
    if rows and all(isinstance(r, Mapping) for r in rows):
        return {"dataframe_records": [dict(r) for r in rows]}
    return {"inputs": rows}


def post_predict(url: str, rows: Any, *, name: str = "", token_env: str | None = None,
                 timeout: float = 30.0) -> list[Any]:
    """POST ``rows`` to ``url/invocations``; the predictions, or :class:`DeploymentError` with the reason."""
    import urllib.error
    import urllib.request

    body = json.dumps(payload_for(rows)).encode()
    headers = {"Content-Type": "application/json"}
    if token_env and os.environ.get(token_env):
        headers["Authorization"] = f"Bearer {os.environ[token_env]}"
    req = urllib.request.Request(url + "/invocations", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("message", "")
        except ValueError:
            message = ""
        raise DeploymentError(f"deployment {name!r} answered HTTP {err.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeploymentError(f"deployment {name!r} at {url} is unreachable: {exc}") from None
    predictions: list[Any] = answer["predictions"]
    return predictions


# -- the router process ---------------------------------------------------------------------------
async def _pipe(reader: Any, writer: Any) -> None:
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _route(host: str, port: int, upstream_file: Path) -> None:
    import asyncio

    from mlops_sdk.serving.server import _url, bind_socket

    sock = bind_socket(host, port)
    upstream_host = "::1" if ":" in host else "127.0.0.1"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target = int(upstream_file.read_text().strip())
            up_reader, up_writer = await asyncio.open_connection(upstream_host, target)
        except (OSError, ValueError):
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"mlops: routing at {_url(sock)}", flush=True)
        await stop.wait()
        server.close()

    asyncio.run(main())


def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mlops_sdk.deploy.local")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream-file", required=True)
    args = parser.parse_args(argv)
    try:
        _route(args.host, args.port, Path(args.upstream_file))
    except PortInUse as exc:
        print(f"error: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


__all__ = ["LocalDeployer", "health", "payload_for", "pid_alive", "post_predict", "terminate"]
