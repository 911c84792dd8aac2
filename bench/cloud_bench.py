"""Cloud storage benchmark: dataset add and checkout on S3 and Azure Blob, mlops-sdk vs DVC and the SDKs.

Run from the repository root:

    python bench/cloud_bench.py                 # full run: 1,000 files of 100 KB, one 500 MB file, 3 repeats
    python bench/cloud_bench.py --quick         # 200 files of 100 KB, one 50 MB file, 1 repeat: a smoke test
    python bench/cloud_bench.py --only s3       # one cloud (s3 or azure)
    python bench/cloud_bench.py --out bench/results/cloud.json

The servers run on 127.0.0.1, started by this script and stopped at the end:
moto in server mode for S3 (``mlops_sdk.testing.cloud_servers.MotoServer``)
and Azurite for Azure Blob (``AzuriteServer``; ``scripts/ensure-azurite.sh``
installs it). Needs, next to the interpreter that runs it: ``moto[server]``,
``boto3``, ``azure-storage-blob``, DVC with ``dvc-s3`` and ``dvc-azure``, and
the plugins ``mlops-sdk-s3`` / ``mlops-sdk-azure`` (``nox -s bench`` installs
them all). A tool that is missing shows as ``n/a`` with the reason; one that
fails shows as ``error`` and its output is printed under the tables and stored
in the JSON.

Method
------
* Cases: ``small`` (a folder of N files of 100 KB) and ``large`` (one file of
  500 MB), each *added* (uploaded to the server) and then *checked out* (
  downloaded from the server into an empty folder, with nothing cached locally).
* Tools, each in its own fresh process per timed step, after its imports:

  - ``ours``: ``Workspace.open(root, storage="s3://BUCKET/ours")`` (or
    ``az://CONTAINER/ours``) + ``ws.dataset("bench").add(folder)`` + ``close``;
    checkout = a *new* workspace folder that shares only the tracking database
    (so its stat cache and every other local state are empty) +
    ``ws.dataset("bench").latest.checkout(dest)`` + ``close``.
  - ``dvc_cli``: ``python -m dvc add data`` + ``python -m dvc push`` in a fresh
    ``git init && dvc init`` repository whose default remote is
    ``s3://BUCKET/dvc`` (``endpointurl`` = the moto URL) or
    ``azure://CONTAINER/dvc`` (``connection_string`` in ``.dvc/config.local``);
    checkout = ``git clone`` of that repository (an empty DVC cache) +
    ``python -m dvc pull``. Wall times of the whole commands.
  - ``dvc_api``: the same through ``dvc.repo.Repo``: ``repo.add`` +
    ``repo.push()``; ``repo.pull()`` in the fresh clone.
  - ``sdk``: the provider SDK copying the files as they are, no hashing, no
    versioning: boto3 ``upload_file`` / ``download_file`` (s3transfer) on a
    pool of 16 threads for the small files, one multipart transfer with
    ``max_concurrency=10`` for the large one; ``azure-storage-blob``
    ``upload_blob`` / ``download_blob`` on a pool of 16 threads, and
    ``max_concurrency=8`` for the large blob.
  - ``aws_cli`` (S3 only, when an ``aws`` command is on PATH):
    ``aws s3 cp --recursive`` up and down. azcopy is not used (not installed).

* Every repeat of every tool gets a fresh bucket / container (created untimed,
  deleted afterwards so the servers' memory stays bounded), a fresh repository
  and a fresh DVC remote path. Repeats are interleaved, with the order of
  tools rotated; the tables show the median. ``os.sync()`` runs before every
  timed step.
* Every checkout is checked afterwards (untimed): the same file names, and
  every file's sha256 equal to the source's.
* ratio = DVC ÷ mlops-sdk: above 1 means mlops-sdk is faster. MB = 10**6 bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import (
    TIMES,
    add_worker_options,
    machine_info,
    markdown_table,
    perf_counter,
    serve_worker_mode,
    write_json,
)
from _timing import fmt_ratio as ratio

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
MB = 1_000_000

FULL: dict[str, Any] = {"files": 1_000, "file_size": 100 * 1000, "large_mb": 500, "repeats": 3, "worker_timeout_s": 900}
QUICK: dict[str, Any] = {"files": 200, "file_size": 100 * 1000, "large_mb": 50, "repeats": 1, "worker_timeout_s": 300}

CLOUDS = ("s3", "azure")
GROUPS = ("small", "large")
TOOLS = ("ours", "dvc_cli", "dvc_api", "sdk", "aws_cli")
TOOL_LABEL = {
    "ours": "mlops-sdk `ds.add` / `dsv.checkout` (in process)",
    "dvc_cli": "`dvc add` + `dvc push` / `dvc pull` (CLI)",
    "dvc_api": "DVC `Repo.add` + `Repo.push` / `Repo.pull` (in process)",
    "sdk": "provider SDK copy (boto3 s3transfer / azure-storage-blob), no hashing or versioning",
    "aws_cli": "`aws s3 cp --recursive` (awscli v1)",
}
NAME = "bench"
SMALL_THREADS = 16
S3_LARGE_CONCURRENCY = 10
AZ_LARGE_CONCURRENCY = 8


# ============================================================================= helpers (both sides)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DVC_"))}
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users import from cached bytecode
    env.update(extra or {})
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


def make_files(folder: Path, n: int, size: int, seed: int) -> None:
    """``n`` files of ``size`` random bytes, the same for a given seed."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"f{i:05d}.bin").write_bytes(rng.randbytes(size))


def make_large(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(64 << 20, left))
            f.write(chunk)
            left -= len(chunk)


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (or of ``root`` itself when it is a file)."""
    if root.is_file():
        return {root.name: sha256_of(root)}
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = sha256_of(p)
    return out


def copy_source(src: Path, dest: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    os.sync()
    t0 = perf_counter()
    out = fn(*args)
    return perf_counter() - t0, out


# ============================================================================= drivers (worker side)
#
# Every driver has ``setup(work)`` (untimed: the copy of the source, repositories,
# imports), ``add(work) -> info`` and ``checkout(work) -> folder or file to compare``.
# ``cfg["target"]`` is the relative name of what is added: "data" (a folder) or "big.bin".


class Driver:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.cloud: str = cfg["cloud"]
        self.bucket: str = cfg["bucket"]
        self.target: str = cfg["target"]
        self.src = Path(cfg["src"])

    def setup(self, work: Path) -> None:
        copy_source(self.src, work / "repo" / self.target)


class Ours(Driver):
    """mlops-sdk through its Python API, timed in this process (plugins loaded before timing)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        import mlops_sdk
        from mlops_sdk.plugins import get_plugin_manager

        get_plugin_manager()  # discover plugins (untimed); their backends load on first use
        importlib.import_module("s3fs" if self.cloud == "s3" else "adlfs")  # the library they use, untimed
        self.m = mlops_sdk
        self.storage = f"{'s3' if self.cloud == 's3' else 'az'}://{self.bucket}/ours"

    def add(self, work: Path) -> dict[str, Any]:
        root = work / "repo"
        ws = self.m.Workspace.open(root, storage=self.storage)
        try:
            s = ws.dataset(NAME).add(root / self.target).stats
        finally:
            ws.close()
        return {"created": s.created, "hashed_files": s.hashed_files, "stored_files": s.stored_files}

    def checkout(self, work: Path) -> Path:
        # A new workspace folder sharing only the tracking database: no stat cache, no local objects.
        fresh = work / "fresh"
        fresh.mkdir()
        db = work / "repo" / ".mlops" / "tracking.db"
        check(db.is_file(), f"no tracking database at {db}")
        dest = work / "restore"
        ws = self.m.Workspace.open(fresh, tracking=f"sqlite:///{db}", storage=self.storage)
        try:
            ws.dataset(NAME).latest.checkout(dest)
        finally:
            ws.close()
        return dest if self.target == "data" else dest / self.target


class DvcCli(Driver):
    """DVC through ``python -m dvc``, in a fresh git + DVC repository with a remote on the server."""

    def dvc(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dvc", *args]

    def remote(self) -> tuple[str, list[list[str]], list[list[str]]]:
        """(url, shared remote settings, local (secret) settings)."""
        if self.cloud == "s3":
            url = f"s3://{self.bucket}/dvc"
            return url, [["endpointurl", self.cfg["endpoint_url"]]], []
        url = f"azure://{self.bucket}/dvc"
        return url, [], [["connection_string", self.cfg["connection_string"]]]

    def _configure(self, repo: Path, site: Path, *, new_remote: bool) -> None:
        url, shared, local = self.remote()
        if new_remote:
            _run(self.dvc("remote", "add", "-d", "r", url), repo)
            for key, value in shared:
                _run(self.dvc("remote", "modify", "r", key, value), repo)
        for key, value in local:
            _run(self.dvc("remote", "modify", "--local", "r", key, value), repo)
        # No network here: no analytics. The site cache dir (DVC's stat cache and
        # index) goes in this repetition's folder, so each repository starts cold.
        _run(self.dvc("config", "--local", "core.site_cache_dir", str(site)), repo)

    def setup(self, work: Path) -> None:
        repo = work / "repo"
        repo.mkdir()
        _run(["git", "init", "-q"], repo)
        _run(["git", "config", "user.email", "bench@example.invalid"], repo)
        _run(["git", "config", "user.name", "bench"], repo)
        _run(self.dvc("init", "-q"), repo)
        _run(self.dvc("config", "core.analytics", "false"), repo)
        self._configure(repo, work / "dvc-site-a", new_remote=True)
        super().setup(work)

    def add(self, work: Path) -> dict[str, Any]:
        repo = work / "repo"
        _run(self.dvc("add", self.target), repo)
        _run(self.dvc("push"), repo)
        return {}

    def prepare_clone(self, work: Path) -> Path:
        """Commit the .dvc file and clone the repository: the clone has an empty DVC cache (untimed)."""
        repo = work / "repo"
        dvcfile = repo / f"{self.target}.dvc"
        check(dvcfile.is_file(), f"dvc add wrote no {dvcfile.name}")
        _run(["git", "add", "-A"], repo)
        _run(["git", "commit", "-q", "-m", "data"], repo)
        clone = work / "clone"
        _run(["git", "clone", "-q", str(repo), str(clone)], work)
        self._configure(clone, work / "dvc-site-b", new_remote=False)
        check(not (clone / ".dvc" / "cache").exists(), "the clone has a DVC cache")
        return clone

    def checkout(self, work: Path) -> Path:
        clone = work / "clone"
        _run(self.dvc("pull"), clone)
        return clone / self.target


class DvcApi(DvcCli):
    """DVC through its Python API, ``dvc.repo.Repo``, timed in this process."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        from dvc.repo import Repo

        importlib.import_module("dvc_s3" if self.cloud == "s3" else "dvc_azure")
        self.Repo = Repo

    def add(self, work: Path) -> dict[str, Any]:
        repo = work / "repo"
        os.chdir(repo)
        with self.Repo(str(repo)) as r:
            r.add(self.target)
            r.push()
        return {}

    def checkout(self, work: Path) -> Path:
        clone = work / "clone"
        os.chdir(clone)
        with self.Repo(str(clone)) as r:
            r.pull()
        return clone / self.target


class Sdk(Driver):
    """The provider's SDK copying files as they are (what a hand-written script does)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        if self.cloud == "s3":
            import boto3
            import boto3.s3.transfer

            self.boto3 = boto3
        else:
            import azure.storage.blob

            self.azblob = azure.storage.blob

    def _files(self, base: Path) -> list[str]:
        if self.target != "data":
            return [self.target]
        return sorted(p.relative_to(base).as_posix() for p in (base / "data").rglob("*") if p.is_file())

    # -- S3
    def _s3(self) -> tuple[Any, Any, Any]:
        from botocore.config import Config

        client = self.boto3.client(
            "s3", endpoint_url=self.cfg["endpoint_url"], config=Config(max_pool_connections=SMALL_THREADS + 4)
        )
        small = self.boto3.s3.transfer.TransferConfig(use_threads=False)
        large = self.boto3.s3.transfer.TransferConfig(max_concurrency=S3_LARGE_CONCURRENCY)
        return client, small, large

    # -- Azure
    def _container(self) -> Any:
        svc = self.azblob.BlobServiceClient.from_connection_string(self.cfg["connection_string"])
        return svc.get_container_client(self.bucket)

    def add(self, work: Path) -> dict[str, Any]:
        base = work / "repo"
        names = self._files(base)
        if self.cloud == "s3":
            client, small, large = self._s3()
            if self.target == "data":
                with ThreadPoolExecutor(SMALL_THREADS) as pool:
                    list(pool.map(lambda n: client.upload_file(str(base / n), self.bucket, f"sdk/{n}", Config=small), names))
            else:
                client.upload_file(str(base / names[0]), self.bucket, f"sdk/{names[0]}", Config=large)
        else:
            cont = self._container()

            def up(n: str, conc: int = 1) -> None:
                with open(base / n, "rb") as f:
                    cont.upload_blob(f"sdk/{n}", f, overwrite=True, max_concurrency=conc)

            if self.target == "data":
                with ThreadPoolExecutor(SMALL_THREADS) as pool:
                    list(pool.map(up, names))
            else:
                up(names[0], AZ_LARGE_CONCURRENCY)
        (work / "names.json").write_text(json.dumps(names))  # what checkout lists (a manifest of sorts)
        return {}

    def checkout(self, work: Path) -> Path:
        names = json.loads((work / "names.json").read_text())
        dest = work / "restore"
        for n in {str(Path(n).parent) for n in names}:
            (dest / n).mkdir(parents=True, exist_ok=True)
        if self.cloud == "s3":
            client, small, large = self._s3()
            if self.target == "data":
                with ThreadPoolExecutor(SMALL_THREADS) as pool:
                    list(pool.map(lambda n: client.download_file(self.bucket, f"sdk/{n}", str(dest / n), Config=small), names))
            else:
                client.download_file(self.bucket, f"sdk/{names[0]}", str(dest / names[0]), Config=large)
        else:
            cont = self._container()

            def down(n: str, conc: int = 1) -> None:
                with open(dest / n, "wb") as f:
                    cont.download_blob(f"sdk/{n}", max_concurrency=conc).readinto(f)

            if self.target == "data":
                with ThreadPoolExecutor(SMALL_THREADS) as pool:
                    list(pool.map(down, names))
            else:
                down(names[0], AZ_LARGE_CONCURRENCY)
        return dest / self.target


class AwsCli(Driver):
    """``aws s3 cp`` (recursive for the folder), the AWS command line."""

    def cmd(self, *args: str) -> list[str]:
        exe = shutil.which("aws")
        check(exe is not None, "no aws command on PATH")
        assert exe is not None
        return [exe, "--endpoint-url", self.cfg["endpoint_url"], "s3", "cp", "--only-show-errors", *args]

    def add(self, work: Path) -> dict[str, Any]:
        base = work / "repo"
        if self.target == "data":
            _run(self.cmd("--recursive", str(base / "data"), f"s3://{self.bucket}/cli/data"), work)
        else:
            _run(self.cmd(str(base / self.target), f"s3://{self.bucket}/cli/{self.target}"), work)
        return {}

    def checkout(self, work: Path) -> Path:
        dest = work / "restore"
        dest.mkdir()
        if self.target == "data":
            _run(self.cmd("--recursive", f"s3://{self.bucket}/cli/data", str(dest / "data")), work)
        else:
            _run(self.cmd(f"s3://{self.bucket}/cli/{self.target}", str(dest / self.target)), work)
        return dest / self.target


def make_driver(tool: str, cfg: dict[str, Any]) -> Driver:
    return {"ours": Ours, "dvc_cli": DvcCli, "dvc_api": DvcApi, "sdk": Sdk, "aws_cli": AwsCli}[tool](cfg)


def worker(tool: str, phase: str, cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    """One timed step in a fresh process: ``add`` (after an untimed setup) or ``checkout``."""
    drv = make_driver(tool, cfg)
    if phase == "add":
        drv.setup(work)
        os.sync()
        t, info = _timed(drv.add, work)
        if tool == "ours":
            n = cfg["nfiles"]
            check(info["created"] and info["stored_files"] == n, f"add stored {info}, expected {n} new files")
        return {"seconds": t, "info": info}
    if isinstance(drv, DvcCli):
        drv.prepare_clone(work)
    t, got = _timed(drv.checkout, work)
    expected = cfg["digests"]
    found = tree_digests(got)
    check(found == expected, f"checked-out {got} differs from the source: {len(found)} files vs {len(expected)}")
    return {"seconds": t, "info": {"files": len(found)}}


# ============================================================================= orchestration


class Servers:
    """The loopback servers, started once per benchmark run; buckets/containers made and removed per repeat."""

    def __init__(self, clouds: list[str]) -> None:
        self.moto: Any = None
        self.azurite: Any = None
        self.unavailable: dict[str, str] = {}
        from mlops_sdk.testing.cloud_servers import AzuriteServer, MotoServer, ServerUnavailable

        if "s3" in clouds:
            try:
                self.moto = MotoServer.start()
            except ServerUnavailable as exc:
                self.unavailable["s3"] = str(exc)
        if "azure" in clouds:
            try:  # blobs on disk (a 500 MB blob need not sit in Azurite's memory), removed on close
                self._azurite_dir = tempfile.mkdtemp(prefix="mlops-bench-azurite-")
                self.azurite = AzuriteServer.start(self._azurite_dir)
            except ServerUnavailable as exc:
                self.unavailable["azure"] = str(exc)

    def env(self, cloud: str) -> dict[str, str]:
        return dict(self.moto.env() if cloud == "s3" else self.azurite.env())

    def cfg(self, cloud: str) -> dict[str, str]:
        if cloud == "s3":
            return {"endpoint_url": self.moto.endpoint_url}
        return {"connection_string": self.azurite.connection_string}

    def create(self, cloud: str, name: str) -> None:
        """A new, empty bucket/container (names are unique per repeat). "Already exists" is fine:
        under load the SDK may retry a create whose first answer it did not wait for."""
        if cloud == "s3":
            client = self._s3()
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=name)
        else:
            from azure.core.exceptions import ResourceExistsError

            with contextlib.suppress(ResourceExistsError):
                self._az().create_container(name)

    def remove(self, cloud: str, name: str) -> None:
        if cloud == "s3":
            self.moto.reset()  # one worker at a time: forget everything, free the memory
        else:
            with contextlib.suppress(Exception):
                self._az().delete_container(name)

    def _s3(self) -> Any:
        import boto3

        with _environ(self.env("s3")):
            return boto3.client("s3", endpoint_url=self.moto.endpoint_url)

    def _az(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.azurite.connection_string)

    def close(self) -> None:
        for s in (self.moto, self.azurite):
            if s is not None:
                s.close()
        if getattr(self, "_azurite_dir", None):
            shutil.rmtree(self._azurite_dir, ignore_errors=True)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Any:
    from mlops_sdk.testing.cloud_servers import environ

    with environ(values):
        yield


def available_tools(cloud: str) -> dict[str, str | None]:
    """Tool -> None when usable for this cloud, else why not."""

    def missing(*mods: str) -> str | None:
        for m in mods:
            try:
                if importlib.util.find_spec(m) is None:
                    return f"{m} is not importable"
            except (ImportError, ValueError):
                return f"{m} is not importable"
        return None

    plugin = "mlops_sdk_s3" if cloud == "s3" else "mlops_sdk_azure"
    ours = missing("mlops_sdk", plugin)
    if ours is None:
        from mlops_sdk.plugins import get_plugin_manager

        schemes = get_plugin_manager().registry.view("storage")
        scheme = "s3" if cloud == "s3" else "az"
        if scheme not in schemes:
            ours = f"no storage plugin registers {scheme}:// (pip install -e plugins/{plugin.replace('_', '-')})"
    dvc = missing("dvc", "dvc_s3" if cloud == "s3" else "dvc_azure")
    sdk = missing("boto3") if cloud == "s3" else missing("azure.storage.blob")
    if cloud == "s3":
        aws = None if shutil.which("aws") else "no `aws` command on PATH"
    else:
        aws = "S3 only"
    return {"ours": ours, "dvc_cli": dvc, "dvc_api": dvc, "sdk": sdk, "aws_cli": aws}


def run_worker(tool: str, phase: str, cfg: dict[str, Any], work: Path, env: dict[str, str]) -> dict[str, Any]:
    result_file = work / f"result-{phase}.json"
    cmd = [
        sys.executable, str(HERE), "--worker", tool, phase,
        "--config", json.dumps(cfg), "--workdir", str(work), "--result-file", str(result_file),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, cwd=work, env=_env(env), capture_output=True, text=True,
            timeout=cfg["worker_timeout_s"], check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {"error": f"{phase}: timed out after {cfg['worker_timeout_s']} s\n{err[-4000:]}"}
    if proc.returncode != 0 or not result_file.exists():
        return {"error": f"{phase} (exit {proc.returncode}):\n" + ((proc.stderr or "")[-6000:] + (proc.stdout or "")[-2000:]).strip()}
    return dict(json.loads(result_file.read_text()))


def run_pair(
    servers: Servers, cloud: str, group: str, tool: str, rep: int, cfg: dict[str, Any], base: Path
) -> dict[str, Any]:
    """Add, then check out, one (cloud, group, tool, repeat): a fresh bucket, two worker processes."""
    bucket = f"b{rep}-{group}-{tool.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    work = base / f"{cloud}-{group}-{tool}-{rep}"
    work.mkdir()
    rcfg = dict(cfg, cloud=cloud, bucket=bucket, **servers.cfg(cloud))
    out: dict[str, Any] = {"cloud": cloud, "group": group, "tool": tool, "repeat": rep, "times": {}, "info": {}}
    print(f"  repeat {rep + 1}: {cloud:<5} {group:<5} {tool:<8}", end="", flush=True)
    t0 = perf_counter()
    try:
        servers.create(cloud, bucket)
        for phase in ("add", "checkout"):
            res = run_worker(tool, phase, rcfg, work, servers.env(cloud))
            if "error" in res:
                out["error"] = res["error"]
                break
            out["times"][phase] = res["seconds"]
            out["info"][phase] = res["info"]
    except Exception as exc:  # the servers themselves
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        servers.remove(cloud, bucket)
        shutil.rmtree(work, ignore_errors=True)
    wall = perf_counter() - t0
    if "error" in out:
        print(f" ERROR ({wall:.1f} s)")
    else:
        t = out["times"]
        print(f" ok: add {t['add']:.2f} s, checkout {t['checkout']:.2f} s ({wall:.1f} s in all)")
    return out


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    k = len(xs)
    return xs[k // 2] if k % 2 else (xs[k // 2 - 1] + xs[k // 2]) / 2


def collect(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """"cloud/group/phase/tool" -> {"median": s, "values": [...]}."""
    out: dict[str, dict[str, Any]] = {}
    for r in runs:  # a run that failed at checkout still has its add time
        for phase, t in r.get("times", {}).items():
            out.setdefault(f"{r['cloud']}/{r['group']}/{phase}/{r['tool']}", {"values": []})["values"].append(t)
    for e in out.values():
        e["median"] = median(e["values"])
    return out


def _m(stats: dict[str, Any], key: str) -> float | None:
    e = stats.get(key)
    return None if e is None else float(e["median"])


def fmt_s(s: float | None) -> str:
    return "n/a" if s is None else f"{s:.2f}"


def fmt_tp(s: float | None, nbytes: int) -> str:
    return "n/a" if not s else f"{nbytes / s / MB:.0f} MB/s"


def case_label(cfg: dict[str, Any], group: str, phase: str) -> str:
    what = f"{cfg['files']:,} {TIMES} {cfg['file_size'] // 1000} KB" if group == "small" else f"1 {TIMES} {cfg['large_mb']} MB"
    return f"{phase} {what}"


def cloud_table(stats: dict[str, Any], cfg: dict[str, Any], cloud: str, tools: list[str]) -> str:
    rows = []
    for group in GROUPS:
        nbytes = cfg["files"] * cfg["file_size"] if group == "small" else cfg["large_mb"] * MB
        for phase in ("add", "checkout"):
            key = f"{cloud}/{group}/{phase}"
            o, dc, da = (_m(stats, f"{key}/{t}") for t in ("ours", "dvc_cli", "dvc_api"))
            row = [case_label(cfg, group, phase), fmt_s(o), fmt_tp(o, nbytes), fmt_s(dc), ratio(dc, o), fmt_s(da), ratio(da, o)]
            row.append(fmt_s(_m(stats, f"{key}/sdk")))
            if cloud == "s3" and "aws_cli" in tools:
                row.append(fmt_s(_m(stats, f"{key}/aws_cli")))
            rows.append(row)
    header = ["case", "ours (s)", "ours throughput", "DVC CLI (s)", "ratio DVC CLI/ours", "DVC API (s)", "ratio DVC API/ours", "SDK copy (s)"]
    if cloud == "s3" and "aws_cli" in tools:
        header.append("`aws s3 cp` (s)")
    return markdown_table(header, rows)


def report(meta: dict[str, Any], stats: dict[str, Any], results: dict[str, Any]) -> str:
    m, cfg = meta["machine"], meta["config"]
    v = meta["versions"]
    lines = [
        f"Cloud storage benchmark — {m['date']}, {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, "
        f"Python {m['python']}, mlops-sdk {v.get('mlops-sdk')}, mlops-sdk-s3 {v.get('mlops-sdk-s3')}, "
        f"mlops-sdk-azure {v.get('mlops-sdk-azure')}, DVC {v.get('dvc')} (dvc-s3 {v.get('dvc-s3')}, "
        f"dvc-azure {v.get('dvc-azure')}), moto {v.get('moto')}, Azurite {meta.get('azurite_version')}, "
        f"boto3 {v.get('boto3')}, azure-storage-blob {v.get('azure-storage-blob')}; mode: {meta['mode']}, "
        f"median of {cfg['repeats']}; load average (1, 5, 15 min) at start {meta['loadavg_start']}, "
        f"at end {meta['loadavg_end']}",
        "",
        "ratio = DVC ÷ mlops-sdk (above 1: mlops-sdk is faster). add = ours `ds.add` (hash + upload) vs "
        "`dvc add` + `dvc push`; checkout = ours from a fresh workspace folder vs `dvc pull` in a fresh clone.",
    ]
    for cloud in meta["clouds"]:
        title = "S3 (moto server)" if cloud == "s3" else "Azure Blob (Azurite)"
        lines += ["", title, "", cloud_table(stats, cfg, cloud, meta["tools"])]
    if results["skipped"]:
        lines += ["", "Skipped:"] + [f"- {t}: {why}" for t, why in results["skipped"].items()]
    if results["errors"]:
        lines += ["", "Errors:"]
        for r in results["errors"]:
            lines += [f"--- {r['cloud']}/{r['group']}/{r['tool']} (repeat {r['repeat'] + 1}) ---", r["error"]]
    return "\n".join(lines)


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in ("mlops-sdk", "mlops-sdk-s3", "mlops-sdk-azure", "dvc", "dvc-s3", "dvc-azure", "moto", "boto3",
                 "s3fs", "adlfs", "azure-storage-blob"):  # fmt: skip
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    aws = shutil.which("aws")
    if aws:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run([aws, "--version"], capture_output=True, text=True, timeout=60, check=False)
            out["awscli"] = (done.stdout or done.stderr).split()[0] if (done.stdout or done.stderr) else None
    return out


def azurite_version() -> str | None:
    pkg = ROOT / ".cache" / "azurite" / "node_modules" / "azurite" / "package.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        return str(json.loads(pkg.read_text())["version"])
    return None


def run_all(cfg: dict[str, Any], clouds: list[str], tools: list[str], base: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"runs": [], "skipped": {}, "errors": []}
    src_small, src_large = base / "src" / "data", base / "src" / "big.bin"
    print(f"  writing {cfg['files']:,} files of {cfg['file_size']:,} bytes and one {cfg['large_mb']} MB file")
    make_files(src_small, cfg["files"], cfg["file_size"], seed=7)
    make_large(src_large, cfg["large_mb"] * MB, seed=42)
    groups = {
        "small": {"target": "data", "src": str(src_small), "nfiles": cfg["files"], "digests": tree_digests(src_small)},
        "large": {"target": "big.bin", "src": str(src_large), "nfiles": 1, "digests": tree_digests(src_large)},
    }
    servers = Servers(clouds)
    try:
        for cloud in clouds:
            if cloud in servers.unavailable:
                results["skipped"][f"{cloud} (all tools)"] = servers.unavailable[cloud]
                continue
            avail = available_tools(cloud)
            usable = []
            for t in tools:
                if avail[t] is None:
                    usable.append(t)
                elif not (t == "aws_cli" and cloud != "s3"):
                    results["skipped"][f"{cloud}/{t}"] = avail[t]
            if not usable:
                continue
            for rep in range(cfg["repeats"]):
                for group, gcfg in groups.items():
                    k = rep % len(usable)  # rotate who goes first
                    for tool in usable[k:] + usable[:k]:
                        res = run_pair(servers, cloud, group, tool, rep, dict(cfg, **gcfg), base)
                        results["runs"].append(res)
                        if "error" in res:
                            results["errors"].append(res)
    finally:
        servers.close()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="200 files, 50 MB, 1 repeat (smoke test)")
    p.add_argument("--out", help="write results as JSON to this path")
    p.add_argument("--only", choices=CLOUDS, help="one cloud only (default: both)")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of: {','.join(TOOLS)}")
    p.add_argument("--repeats", type=int, help="repeats per measurement (default 3, 1 with --quick)")
    p.add_argument("--files", type=int, help="number of 100 KB files (default 1,000; 200 with --quick)")
    p.add_argument("--large-mb", type=int, help="size of the large file in MB (default 500; 50 with --quick)")
    add_worker_options(p, ("TOOL", "PHASE"))  # internal: worker mode
    a = p.parse_args(argv)
    if serve_worker_mode(a, worker):
        return 0

    cfg = dict(QUICK if a.quick else FULL)
    for key, val in (("repeats", a.repeats), ("files", a.files), ("large_mb", a.large_mb)):
        if val is not None:
            cfg[key] = val
    check(0 < cfg["large_mb"] <= 4000 and 0 < cfg["files"] <= 20_000, "sizes out of bounds (files ≤ 20,000, large ≤ 4,000 MB)")
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    if set(tools) - set(TOOLS):
        p.error(f"unknown tool(s): {', '.join(sorted(set(tools) - set(TOOLS)))}")
    clouds = [a.only] if a.only else list(CLOUDS)

    base = Path(tempfile.mkdtemp(prefix="mlops-bench-cloud-")).resolve()
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    print(f"mlops-sdk cloud storage benchmark ({'quick' if a.quick else 'full'}) in {base}, python {sys.executable}")
    t0 = perf_counter()
    try:
        results = run_all(cfg, clouds, tools, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    elapsed = perf_counter() - t0
    stats = collect(results["runs"])
    meta = {
        "machine": machine_info(),
        "mode": "quick" if a.quick else "full",
        "config": cfg,
        "clouds": clouds,
        "tools": tools,
        "tool_labels": {t: TOOL_LABEL[t] for t in tools},
        "versions": versions(),
        "azurite_version": azurite_version(),
        "loadavg_start": loadavg_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "elapsed_s": elapsed,
    }
    print()
    print(report(meta, stats, results))
    print(f"\n(total benchmark time {elapsed:.0f} s)")
    if a.out:
        write_json(a.out, {"meta": meta, "stats": stats, "runs": results["runs"]})
        print(f"wrote {a.out}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
