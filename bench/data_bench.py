"""Dataset benchmark: adding and checking out files, mlops-sdk vs DVC.

Run from the repository root:

    python bench/data_bench.py                 # full run: 10,000 files of 1 KiB, one 1 GiB file, 3 repeats
    python bench/data_bench.py --quick         # 2,000 files, 200 MiB, 1 repeat: a smoke test
    python bench/data_bench.py --out bench/results/data.json

Both tools must be usable from the interpreter that runs this script: ``dvc``
next to it (or on PATH) for the CLI, ``import dvc`` for its Python API
(``nox -s bench`` installs DVC into the bench session only). A tool that is not
installed shows as ``n/a``; one that fails shows as ``error`` and its output is
printed under the tables and stored in the JSON.

Method
------
* Cases: add a folder of N small files to a fresh store (cold stat cache);
  re-add it unchanged, then after rewriting one file; check the version out
  into an empty folder; add one large file of random bytes; re-add it with the
  stat cache cleared while its object is already stored (so only hashing is
  left to do); check it out.
* Four ways of running them, each repeat in its own fresh process and its own
  fresh folder under the system temp dir (one file system for everything):
  ``ours`` times ``Workspace.open(root)`` + ``ds.add(path)`` / ``dsv.checkout(dest)``
  + ``ws.close()`` in the process; ``ours_cli`` times the
  ``mlops data add bench data --json`` / ``mlops data checkout bench DEST --json``
  command; ``dvc_cli`` times the ``dvc add data`` / ``dvc checkout`` command
  (what DVC users run); ``dvc_api`` times
  ``with Repo(root) as repo: repo.add(path)`` / ``repo.checkout()``.
* DVC runs in a fresh ``git init && dvc init`` repository with analytics off
  (the machine has no network) and its site cache dir (the stat cache, the
  index) inside the repetition's temp folder, so each repeat starts cold. Its
  checkout case moves the workspace folder out of the repository (as good as
  deleting it, for DVC) and runs ``dvc checkout``.
* Repeats are interleaved (repeat 1 of every tool, then repeat 2, ...) and the
  tables show the median. Before every timed step the script calls
  ``sync()`` so no tool pays for another's write-back. Small-file trees are
  deleted only at the end: ext4 slows inode allocation for minutes after a mass
  delete, which would bill one tool for another's clean-up.
* Every timed step is checked afterwards (untimed): file counts, what mlops-sdk
  says it hashed and stored, the ``.dvc`` file, and checked-out trees compared
  byte for byte with what was added.
* ratio = DVC ÷ mlops-sdk: above 1 means mlops-sdk is faster. GiB = 2**30 bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
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
GIB = 1 << 30
MIB = 1 << 20

FULL: dict[str, Any] = {
    "files": 10_000,
    "file_size": 1024,
    "large_mib": 1024,
    "repeats": 3,
    "worker_timeout_s": 900,
}
QUICK: dict[str, Any] = {
    "files": 2_000,
    "file_size": 1024,
    "large_mib": 200,
    "repeats": 1,
    "worker_timeout_s": 300,
}

TOOLS = ("ours", "ours_cli", "dvc_cli", "dvc_api")
GROUPS = ("small", "large", "hashlib", "startup")
CASES = {
    "small": ("add", "readd_same", "readd_one", "checkout"),
    "large": ("add", "rehash", "checkout"),
    "startup": ("start",),
}
TOOL_LABEL = {
    "ours": "mlops-sdk `ds.add` / `dsv.checkout` (in process)",
    "ours_cli": "`mlops data add` / `mlops data checkout` (CLI)",
    "dvc_cli": "`dvc add` / `dvc checkout` (CLI)",
    "dvc_api": "DVC `Repo.add` / `Repo.checkout` (in process)",
}
NAME = "bench"


# ============================================================================= helpers (both sides)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DVC_"))}
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users import from cached bytecode
    return env


def dvc_exe() -> str | None:
    cand = Path(sys.executable).parent / "dvc"
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    return shutil.which("dvc")


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def make_files(folder: Path, n: int, size: int, seed: int) -> None:
    """``n`` files of ``size`` random bytes, the same for a given seed."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"f{i:05d}.bin").write_bytes(rng.randbytes(size))


def make_large(path: Path, size: int, seed: int) -> str:
    """One file of ``size`` random bytes; returns its sha256."""
    rng = random.Random(seed)
    h = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(64 * MIB, left))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def rewrite_one(path: Path, seed: int) -> None:
    """New random content of the same size, written in place; the stat must change."""
    before = path.stat()
    data = random.Random(seed).randbytes(before.st_size)
    for _ in range(100):
        with open(path, "r+b") as f:
            f.write(data)
        st = path.stat()
        if (st.st_mtime_ns, st.st_size, st.st_ino) != (
            before.st_mtime_ns,
            before.st_size,
            before.st_ino,
        ):
            return
        time.sleep(0.01)
    raise RuntimeError(f"could not change the stat of {path}")


def tree_files(root: Path) -> dict[str, Path]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = p
    return out


def check_same_tree(expected: Path, got: Path) -> None:
    a, b = tree_files(expected), tree_files(got)
    if set(a) != set(b):
        missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise AssertionError(
            f"checkout of {len(a)} files differs: missing {missing[:5]}, extra {extra[:5]}"
        )
    for rel, p in a.items():
        if p.read_bytes() != b[rel].read_bytes():
            raise AssertionError(f"checked-out {rel} differs from what was added")


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


# ============================================================================= drivers (worker side)


class Ours:
    """mlops-sdk through its Python API, timed in this process."""

    def __init__(self) -> None:
        import mlops_sdk

        self.m = mlops_sdk

    def setup(self, root: Path, work: Path) -> None:
        root.mkdir(parents=True)

    def add(self, root: Path, target: str) -> dict[str, Any]:
        ws = self.m.Workspace.open(root)
        try:
            s = ws.dataset(NAME).add(root / target).stats
        finally:
            ws.close()
        return {
            "created": s.created,
            "hashed_files": s.hashed_files,
            "stored_files": s.stored_files,
        }

    def checkout(self, root: Path, target: str, dest: Path) -> Path:
        ws = self.m.Workspace.open(root)
        try:
            ws.dataset(NAME).latest.checkout(dest)
        finally:
            ws.close()
        return dest

    def clear_state(self, root: Path, work: Path) -> None:
        cache = root / ".mlops" / "cache"
        found = list(cache.glob("state.db*"))
        check(bool(found), f"no stat cache under {cache}")
        for p in found:
            p.unlink()


def mlops_exe() -> str | None:
    cand = Path(sys.executable).parent / "mlops"
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    return shutil.which("mlops")


class OursCli(Ours):
    """mlops-sdk through its ``mlops data`` command (a whole process: start-up and imports included)."""

    def __init__(self) -> None:  # the worker itself does not import mlops_sdk
        exe = mlops_exe()
        if exe is None:
            raise RuntimeError("no mlops executable")
        self.exe = exe

    def add(self, root: Path, target: str) -> dict[str, Any]:
        proc = _run([self.exe, "-w", str(root), "data", "add", NAME, target, "--json"], root)
        out = json.loads(proc.stdout)
        return {k: out[k] for k in ("created", "hashed_files", "stored_files")}

    def checkout(self, root: Path, target: str, dest: Path) -> Path:
        _run([self.exe, "-w", str(root), "data", "checkout", NAME, str(dest), "--json"], root)
        return dest

    def start(self, work: Path) -> None:
        _run([self.exe, "--version"], work)


class DvcCli:
    """DVC through the ``dvc`` command, in a fresh git + DVC repository."""

    def __init__(self) -> None:
        exe = dvc_exe()
        if exe is None:
            raise RuntimeError("no dvc executable")
        self.exe = exe

    def setup(self, root: Path, work: Path) -> None:
        root.mkdir(parents=True)
        _run(["git", "init", "-q"], root)
        _run([self.exe, "init", "-q"], root)
        # No network here: no analytics. The site cache dir (DVC's stat cache
        # and index) goes in this repetition's folder, so it starts cold and is cleaned up.
        config = root / ".dvc" / "config"
        config.write_text(
            config.read_text()
            + f"[core]\n    analytics = false\n    site_cache_dir = {work / 'dvc-site'}\n"
        )

    def add(self, root: Path, target: str) -> dict[str, Any]:
        _run([self.exe, "add", target], root)
        return {}

    def checkout(self, root: Path, target: str, dest: Path) -> Path:
        _run([self.exe, "checkout"], root)
        return root / target

    def clear_state(self, root: Path, work: Path) -> None:
        site = work / "dvc-site"
        check(site.is_dir(), f"no DVC site cache dir at {site}")
        shutil.rmtree(site)

    def start(self, work: Path) -> None:
        _run([self.exe, "--version"], work)


class DvcApi(DvcCli):
    """DVC through its Python API, ``dvc.repo.Repo``, timed in this process."""

    def __init__(self) -> None:
        super().__init__()  # setup uses the CLI (untimed)
        from dvc.repo import Repo

        self.Repo = Repo

    def add(self, root: Path, target: str) -> dict[str, Any]:
        os.chdir(root)
        with self.Repo(str(root)) as repo:
            repo.add(target)
        return {}

    def checkout(self, root: Path, target: str, dest: Path) -> Path:
        os.chdir(root)
        with self.Repo(str(root)) as repo:
            repo.checkout()
        return root / target


def dvc_file_text(root: Path, target: str) -> str:
    p = root / f"{target}.dvc"
    check(p.is_file(), f"dvc add wrote no {p.name}")
    return p.read_text()


def settle() -> None:
    """Let freshly written files age past mlops-sdk's racily-clean window (0.1 s) before
    anything is timed, as files being added usually are; untimed, for every tool alike."""
    os.sync()
    time.sleep(0.25)


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    os.sync()
    t0 = perf_counter()
    out = fn(*args)
    return perf_counter() - t0, out


def worker_small(drv: Any, tool: str, cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    n, seed = cfg["files"], cfg["seed"]
    root = work / "repo"
    drv.setup(root, work)
    data = root / "data"
    make_files(data, n, cfg["file_size"], seed)
    settle()
    ours = tool.startswith("ours")
    times: dict[str, float] = {}
    info: dict[str, Any] = {}

    times["add"], st = _timed(drv.add, root, "data")
    if ours:
        check(
            st["created"] and st["hashed_files"] == n and st["stored_files"] == n,
            f"first add: {st}",
        )
        info["add"] = st
    else:
        before = dvc_file_text(root, "data")
        check(f"nfiles: {n}" in before, f"data.dvc does not list {n} files:\n{before}")

    times["readd_same"], st = _timed(drv.add, root, "data")
    if ours:
        check(
            not st["created"] and st["hashed_files"] == 0 and st["stored_files"] == 0,
            f"unchanged re-add: {st}",
        )
        info["readd_same"] = st
    else:
        check(dvc_file_text(root, "data") == before, "data.dvc changed on an unchanged re-add")

    rewrite_one(data / f"f{n // 2:05d}.bin", seed + 7919)
    times["readd_one"], st = _timed(drv.add, root, "data")
    if ours:
        check(
            st["created"] and st["hashed_files"] == 1 and st["stored_files"] == 1,
            f"one-file re-add: {st}",
        )
        info["readd_one"] = st
    else:
        check(
            dvc_file_text(root, "data") != before, "data.dvc did not change after a one-file change"
        )

    if ours:
        expected, dest = data, root / "restore"
        dest.mkdir()
    else:
        expected, dest = work / "moved-data", root / "data"
        os.rename(data, expected)  # as good as deleting it for DVC, without freeing 10,000 inodes
    times["checkout"], got = _timed(drv.checkout, root, "data", dest)
    check_same_tree(expected, got)
    return {"times": times, "info": info}


def worker_large(drv: Any, tool: str, cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    src = Path(cfg["large_src"])
    root = work / "repo"
    drv.setup(root, work)
    shutil.copyfile(src, root / "big.bin")
    settle()
    ours = tool.startswith("ours")
    times: dict[str, float] = {}
    info: dict[str, Any] = {}

    times["add"], st = _timed(drv.add, root, "big.bin")
    if ours:
        check(
            st["created"] and st["hashed_files"] == 1 and st["stored_files"] == 1,
            f"first add: {st}",
        )
        info["add"] = st
    else:
        text = dvc_file_text(root, "big.bin")
        check(
            f"size: {cfg['large_bytes']}" in text,
            f"big.bin.dvc does not have the right size:\n{text}",
        )

    drv.clear_state(root, work)
    times["rehash"], st = _timed(drv.add, root, "big.bin")
    if ours:
        check(
            not st["created"] and st["hashed_files"] == 1 and st["stored_files"] == 0,
            f"re-hash: {st}",
        )
        info["rehash"] = st

    if ours:
        dest = root / "restore"
        dest.mkdir()
    else:
        dest = root
        os.rename(root / "big.bin", work / "moved.bin")
    times["checkout"], got = _timed(drv.checkout, root, "big.bin", dest)
    out = got / "big.bin" if ours else got
    check(
        out.is_file() and sha256_of(out) == cfg["large_sha256"],
        "checked-out big.bin differs from what was added",
    )
    return {"times": times, "info": info}


def worker_startup(drv: Any, tool: str, cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    t, _ = _timed(drv.start, work)
    return {"times": {"start": t}, "info": {}}


def worker_hashlib(cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    """Raw hashlib throughput on this CPU: in memory, and hashlib.file_digest from page cache."""
    size = 256 * MIB
    rng = random.Random(cfg["seed"])
    buf = memoryview(b"".join(rng.randbytes(MIB) for _ in range(size // MIB)))
    src = Path(cfg["large_src"])
    sha256_of(src)  # into the page cache
    out: dict[str, Any] = {}
    for algo in ("sha256", "md5"):
        t0 = perf_counter()
        h = hashlib.new(algo)
        for i in range(0, size, MIB):
            h.update(buf[i : i + MIB])
        h.hexdigest()
        out[f"{algo}_memory"] = perf_counter() - t0
        t0 = perf_counter()
        with open(src, "rb") as f:
            hashlib.file_digest(f, algo)
        out[f"{algo}_file"] = perf_counter() - t0
    return {"times": out, "info": {"memory_bytes": size, "file_bytes": src.stat().st_size}}


def make_driver(tool: str) -> Any:
    return {"ours": Ours, "ours_cli": OursCli, "dvc_cli": DvcCli, "dvc_api": DvcApi}[tool]()


def tool_version(tool: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlops-sdk" if tool.startswith("ours") else "dvc")
    except PackageNotFoundError:
        return None


def worker(tool: str, group: str, cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    if group == "hashlib":
        res = worker_hashlib(cfg, work)
    else:
        drv = make_driver(tool)
        fn = {"small": worker_small, "large": worker_large, "startup": worker_startup}[group]
        res = fn(drv, tool, cfg, work)
    res.update(tool=tool, group=group, version=None if tool == "python" else tool_version(tool))
    return res


# ============================================================================= orchestration


def available_tools() -> dict[str, str | None]:
    """Tool -> None when usable, else why not."""
    ours = None if importlib.util.find_spec("mlops_sdk") else "mlops_sdk is not importable"
    exe = dvc_exe()
    cli = None if exe else "no `dvc` executable next to this interpreter or on PATH"
    try:
        api = None if importlib.util.find_spec("dvc") else "dvc is not importable"
    except (ImportError, ValueError):
        api = "dvc is not importable"
    ours_cli = ours or (
        None if mlops_exe() else "no `mlops` executable next to this interpreter or on PATH"
    )
    return {
        "ours": ours,
        "ours_cli": ours_cli,
        "dvc_cli": cli,
        "dvc_api": api or cli,
        "python": None,
    }


def run_worker(tool: str, group: str, cfg: dict[str, Any], base: Path, rep: int) -> dict[str, Any]:
    work = base / f"{group}-{tool}-{rep}"
    work.mkdir()
    result_file = work / "result.json"
    cmd = [
        sys.executable,
        str(HERE),
        "--worker",
        tool,
        group,
        "--config",
        json.dumps(cfg),
        "--workdir",
        str(work),
        "--result-file",
        str(result_file),
    ]
    print(f"  repeat {rep + 1}: {group:<8} {tool:<10}", end="", flush=True)
    t0 = perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=work,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=cfg["worker_timeout_s"],
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        print(" TIMEOUT")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {
            "tool": tool,
            "group": group,
            "error": f"timed out after {cfg['worker_timeout_s']} s\n{err[-4000:]}",
        }
    finally:
        # A few big files: free them now (small trees wait for the end, see the docstring).
        if group != "small":
            shutil.rmtree(work / "repo", ignore_errors=True)
            for p in (work / "moved.bin",):
                p.unlink(missing_ok=True)
    wall = perf_counter() - t0
    if proc.returncode != 0 or not result_file.exists():
        print(f" ERROR (exit {proc.returncode}, {wall:.1f} s)")
        return {
            "tool": tool,
            "group": group,
            "error": ((proc.stderr or "")[-6000:] + (proc.stdout or "")[-2000:]).strip(),
        }
    print(f" ok ({wall:.1f} s)")
    return dict(json.loads(result_file.read_text()))


def fs_type(path: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "-PT", str(path)], capture_output=True, text=True, check=True
        ).stdout
        return out.splitlines()[1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def source_info() -> dict[str, Any]:
    """Which mlops-sdk was measured: the commit, uncommitted changes, and the files on the hot path."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=False
            )
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    spec = importlib.util.find_spec("mlops_sdk")
    pkg = Path(spec.origin).parent if spec and spec.origin else None
    hot = {}
    if pkg is not None:
        for rel in (
            "dataset.py",
            "scan.py",
            "checkout.py",
            "storage/cas.py",
            "storage/statcache.py",
        ):
            with_path = pkg / rel
            if with_path.is_file():
                hot[rel] = hashlib.sha256(with_path.read_bytes()).hexdigest()[:12]
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "mlops_sdk").splitlines(),
        "mlops_sdk_path": str(pkg),
        "hot_files_sha256": hot,
    }


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    k = len(xs)
    return xs[k // 2] if k % 2 else (xs[k // 2 - 1] + xs[k // 2]) / 2


def run_all(cfg: dict[str, Any], groups: list[str], tools: list[str], base: Path) -> dict[str, Any]:
    avail = available_tools()
    results: dict[str, Any] = {"runs": [], "skipped": {}, "errors": []}
    for t in tools:
        if avail[t] is not None:
            results["skipped"][t] = avail[t]
    usable = [t for t in tools if avail[t] is None]
    for rep in range(cfg["repeats"]):
        for group in groups:
            if group == "hashlib":
                group_tools = ["python"]
            elif group == "startup":
                group_tools = [t for t in usable if t in ("ours_cli", "dvc_cli")]
            else:
                group_tools = usable
            # Rotate who goes first, so that no tool always runs first or last.
            k = rep % len(group_tools)
            for tool in group_tools[k:] + group_tools[:k]:
                rcfg = dict(cfg, seed=1000 + rep)
                res = run_worker(tool, group, rcfg, base, rep)
                res["repeat"] = rep
                results["runs"].append(res)
                if "error" in res:
                    results["errors"].append(res)
    return results


def collect(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """(group/case/tool) -> {"median": s, "values": [...], "info": [...]}."""
    out: dict[str, dict[str, Any]] = {}
    for r in results["runs"]:
        if "error" in r:
            continue
        for case, t in r["times"].items():
            e = out.setdefault(f"{r['group']}/{case}/{r['tool']}", {"values": [], "info": []})
            e["values"].append(t)
            if case in r.get("info", {}):
                e["info"].append(r["info"][case])
            elif r["group"] == "hashlib":
                e["info"].append(r["info"])
    for e in out.values():
        e["median"] = median(e["values"])
    return out


def _m(stats: dict[str, Any], key: str) -> float | None:
    e = stats.get(key)
    return e["median"] if e else None


def fmt_s(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def fmt_tp(v: float | None, cfg: dict[str, Any], kind: str) -> str:
    if v is None or v <= 0:
        return "n/a"
    if kind == "files":
        return f"{cfg['files'] / v:,.0f} files/s"
    return f"{cfg['large_bytes'] / v / GIB:.2f} GiB/s"


def case_rows(cfg: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(key prefix, label, throughput kind, note)."""
    n, kib, mib = cfg["files"], cfg["file_size"] // 1024, cfg["large_mib"]
    big = f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"
    return [
        ("small/add", f"add {n:,} files of {kib} KiB (fresh store, cold stat cache)", "files", ""),
        ("small/readd_same", f"re-add the {n:,} files, unchanged", "files", ""),
        ("small/readd_one", f"re-add the {n:,} files after changing 1", "files", ""),
        ("small/checkout", f"check out the {n:,} files into an empty folder", "files", ""),
        ("large/add", f"add one {big} file (fresh store)", "bytes", ""),
        (
            "large/rehash",
            f"re-add the {big} file, stat cache cleared, object present (hashing only)",
            "bytes",
            "",
        ),
        ("large/checkout", f"check out the {big} file", "bytes", ""),
    ]


def main_table(stats: dict[str, Any], cfg: dict[str, Any]) -> str:
    rows = []
    for key, label, kind, _ in case_rows(cfg):
        o, d = _m(stats, f"{key}/ours"), _m(stats, f"{key}/dvc_cli")
        rows.append(
            (label, fmt_s(o), fmt_s(d), ratio(d, o), fmt_tp(o, cfg, kind), fmt_tp(d, cfg, kind))
        )
    header = [
        "case",
        "ours (s)",
        "DVC CLI (s)",
        "ratio DVC/ours",
        "ours throughput",
        "DVC throughput",
    ]
    return markdown_table(header, rows)


def like_table(stats: dict[str, Any], cfg: dict[str, Any]) -> str:
    rows = []
    keys = [
        *case_rows(cfg),
        (
            "startup/start",
            "process start: `mlops --version` vs `dvc --version`",
            "",
            "",
        ),
    ]
    for key, label, _kind, _ in keys:
        op, dc = _m(stats, f"{key}/ours_cli"), _m(stats, f"{key}/dvc_cli")
        oa, da = _m(stats, f"{key}/ours"), _m(stats, f"{key}/dvc_api")
        rows.append(
            (label, fmt_s(op), fmt_s(dc), ratio(dc, op), fmt_s(oa), fmt_s(da), ratio(da, oa))
        )
    header = [
        "case",
        "`mlops data` CLI (s)",
        "`dvc` CLI (s)",
        "ratio",
        "ours, API (s)",
        "DVC `Repo` API (s)",
        "ratio",
    ]
    return markdown_table(header, rows)


def hash_table(stats: dict[str, Any]) -> str:
    rows = []
    for algo in ("sha256", "md5"):
        cells = [f"hashlib {algo}"]
        for where in ("memory", "file"):
            e = stats.get(f"hashlib/{algo}_{where}/python")
            if e is None:
                cells.append("n/a")
                continue
            size = e["info"][0]["memory_bytes" if where == "memory" else "file_bytes"]
            cells.append(f"{size / e['median'] / GIB:.2f} GiB/s")
        rows.append(tuple(cells))
    return markdown_table(
        ["algorithm", "in memory (1 MiB updates)", "`hashlib.file_digest`, file in page cache"],
        rows,
    )


def targets(stats: dict[str, Any], cfg: dict[str, Any]) -> list[tuple[str, str, str]]:
    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")

    out = []
    n = cfg["files"]
    for label, theirs, ours in (
        (
            f"add {n:,} files ≥ 3{TIMES} faster than `dvc add` (as briefed: `dvc add` ÷ `ds.add`)",
            "dvc_cli",
            "ours",
        ),
        ("  same, like for like: `dvc add` ÷ `mlops data add` (CLI vs CLI)", "dvc_cli", "ours_cli"),
        ("  same, like for like: DVC `Repo.add` ÷ `ds.add`", "dvc_api", "ours"),
    ):
        d, o = _m(stats, f"small/add/{theirs}"), _m(stats, f"small/add/{ours}")
        r = d / o if d and o else None
        out.append((label, ratio(d, o), verdict(None if r is None else r >= 3)))
    rh = _m(stats, "large/rehash/ours")
    gibs = cfg["large_bytes"] / rh / GIB if rh else None
    out.append(
        (
            "large-file hashing ≥ 1 GiB/s from page cache (whole re-add call, stat cache cleared)",
            f"{gibs:.2f} GiB/s" if gibs else "n/a",
            verdict(None if gibs is None else gibs >= 1.0),
        )
    )
    one, same, add = (_m(stats, f"small/{c}/ours") for c in ("readd_one", "readd_same", "add"))
    infos = stats.get("small/readd_one/ours", {}).get("info", [])
    hashed = sorted({i["hashed_files"] for i in infos})
    ok = None
    measured = "n/a"
    if one is not None and same is not None and add is not None and hashed:
        ok = hashed == [1] and one <= 1.2 * same + 0.05
        measured = (
            f"hashed {'/'.join(map(str, hashed))} of {n:,} files; {one:.3f} s vs {same:.3f} s unchanged "
            f"(+{(one - same) * 1000:.0f} ms), first add {add:.3f} s"
        )
    label = f"re-add after a 1-file change ∝ the change (hashes 1 file; ≤ unchanged re-add {TIMES} 1.2 + 50 ms)"
    out.append((label, measured, verdict(ok)))
    return out


def report(meta: dict[str, Any], stats: dict[str, Any], results: dict[str, Any]) -> str:
    m, cfg = meta["machine"], meta["config"]
    lines = [
        f"Dataset benchmark — {m['date']}, {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, "
        f"{meta['fs_type']} temp dir ({meta['tmp']}), Python {m['python']}, {meta['openssl']}, "
        f"mlops-sdk {meta['versions'].get('ours') or 'n/a'}, DVC {meta['versions'].get('dvc') or 'n/a'}, "
        f"mode: {meta['mode']}, median of {cfg['repeats']}; load average (1, 5, 15 min) at start "
        f"{meta['loadavg_start']}, at end {meta['loadavg_end']}; source: commit {meta['source']['commit']}"
        f"{' + uncommitted changes' if meta['source']['uncommitted'] else ''}",
        "",
        "ratio = DVC ÷ mlops-sdk (above 1: mlops-sdk is faster). ours = Workspace.open + ds.add / dsv.checkout + close, "
        "timed in a fresh process after imports; DVC = the `dvc` command's wall time (nothing subtracted).",
        "",
        main_table(stats, cfg),
        "",
        "Like for like: CLI vs CLI (whole processes, start-up and imports included), Python API vs Python API",
        "",
        like_table(stats, cfg),
        "",
        "Raw hashing speed on this CPU"
        + (" (SHA extensions: sha_ni)" if "sha_ni" in meta["cpu_flags"] else ""),
        "",
        hash_table(stats),
        "",
        markdown_table(["target", "measured", "verdict"], targets(stats, cfg)),
    ]
    if results["skipped"]:
        lines += ["", "Skipped:"] + [f"- {t}: {why}" for t, why in results["skipped"].items()]
    if results["errors"]:
        lines += ["", "Errors:"]
        for r in results["errors"]:
            lines += [f"--- {r['group']}/{r['tool']} ---", r["error"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="2,000 files, 200 MiB, 1 repeat (smoke test)"
    )
    p.add_argument("--out", help="write results as JSON to this path")
    p.add_argument(
        "--only", default=",".join(GROUPS), help=f"comma-separated subset of: {','.join(GROUPS)}"
    )
    p.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated subset of: {','.join(TOOLS)}"
    )
    p.add_argument(
        "--repeats", type=int, help="repeats per measurement (default 3, 1 with --quick)"
    )
    p.add_argument(
        "--files", type=int, help="number of small files (default 10,000; 2,000 with --quick)"
    )
    p.add_argument(
        "--large-mib",
        type=int,
        help="size of the large file in MiB (default 1024; 200 with --quick)",
    )
    add_worker_options(p, ("TOOL", "GROUP"))  # internal: worker mode
    a = p.parse_args(argv)
    if serve_worker_mode(a, worker):
        return 0

    cfg = dict(QUICK if a.quick else FULL)
    for key, val in (("repeats", a.repeats), ("files", a.files), ("large_mib", a.large_mib)):
        if val is not None:
            cfg[key] = val
    groups = [g.strip() for g in a.only.split(",") if g.strip()]
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    if set(groups) - set(GROUPS):
        p.error(f"unknown group(s): {', '.join(sorted(set(groups) - set(GROUPS)))}")
    if set(tools) - set(TOOLS):
        p.error(f"unknown tool(s): {', '.join(sorted(set(tools) - set(TOOLS)))}")

    base = Path(tempfile.mkdtemp(prefix="mlops-bench-data-")).resolve()
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    print(
        f"mlops-sdk dataset benchmark ({'quick' if a.quick else 'full'}) in {base}, python {sys.executable}"
    )
    t0 = perf_counter()
    try:
        cfg["large_bytes"] = cfg["large_mib"] * MIB
        if {"large", "hashlib"} & set(groups):
            print(f"  writing a {cfg['large_mib']} MiB file of random bytes")
            cfg["large_src"] = str(base / "src" / "big.bin")
            cfg["large_sha256"] = make_large(Path(cfg["large_src"]), cfg["large_bytes"], seed=42)
        results = run_all(cfg, groups, tools, base)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    print("  removing the temporary folders")
    shutil.rmtree(base, ignore_errors=True)
    elapsed = perf_counter() - t0
    stats = collect(results)
    versions = {"ours": tool_version("ours"), "dvc": tool_version("dvc_cli")}
    meta = {
        "machine": machine_info(),
        "fs_type": fs_type(Path(tempfile.gettempdir())),
        "tmp": tempfile.gettempdir(),
        "openssl": ssl.OPENSSL_VERSION,
        "cpu_flags": sorted(cpu_flags() & {"sha_ni", "avx2", "avx512f"}),
        "mode": "quick" if a.quick else "full",
        "config": {k: v for k, v in cfg.items() if k not in ("large_src",)},
        "tools": {t: TOOL_LABEL[t] for t in tools},
        "versions": versions,
        "source": source_info(),
        "loadavg_start": loadavg_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "elapsed_s": elapsed,
    }
    print()
    print(report(meta, stats, results))
    print(f"\n(total benchmark time {elapsed:.0f} s)")
    if a.out:
        write_json(
            a.out,
            {"meta": meta, "stats": stats, "targets": targets(stats, cfg), "runs": results["runs"]},
        )
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
