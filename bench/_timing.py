"""Shared timing helpers for the benchmark scripts in ``bench/``.

Only the standard library is used here, so the helpers load the same way in
every worker process whatever tool it benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

perf_counter = time.perf_counter

TIMES = "\u00d7"  # multiplication sign, for ratios


# --------------------------------------------------------------------------- timing


@dataclass
class Sample:
    """Repeated measurements of one quantity, in seconds."""

    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def best(self) -> float:
        return min(self.values)


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    out: list[float] = []
    t0 = perf_counter()
    try:
        yield out
    finally:
        out.append(perf_counter() - t0)


def median_of(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """Call ``fn`` ``repeats`` times; return (median seconds, all seconds)."""
    times = []
    for _ in range(repeats):
        t0 = perf_counter()
        fn()
        times.append(perf_counter() - t0)
    return statistics.median(times), times


@contextlib.contextmanager
def fresh_dir(prefix: str) -> Iterator[Path]:
    """A new, empty temporary directory, removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix=f"mlops-bench-{prefix}-"))
    try:
        yield d.resolve()
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- import time


_IMPORTTIME_RE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(.*)$")


def _bytecode_env() -> dict[str, str]:
    # Users import from installed packages with cached bytecode. This
    # environment may set PYTHONDONTWRITEBYTECODE=1, which would make every
    # import of an editable/uncached package recompile its sources; drop it so
    # the warm-up run writes the .pyc files and the timed runs use them.
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _run_python(python: str, code: str, env: dict[str, str], *flags: str) -> tuple[float, str]:
    t0 = perf_counter()
    proc = subprocess.run(
        [python, *flags, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    dt = perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"`{python} -c {code!r}` failed:\n{proc.stderr.strip()}")
    return dt, proc.stderr


def import_time(module: str, *, python: str | None = None, repeats: int = 7) -> dict[str, Any]:
    """Wall-clock cost of ``import module`` in a fresh interpreter.

    Returns the best-of-``repeats`` wall time of ``python -c "import module"``
    minus the best-of-``repeats`` wall time of ``python -c "pass"`` (interpreter
    start-up), plus the cumulative time that ``python -X importtime`` reports
    for the module itself, as a cross-check.
    """
    python = python or sys.executable
    env = _bytecode_env()
    code = f"import {module}"
    _run_python(python, code, env)  # warm-up: OS file cache, .pyc files
    _run_python(python, "pass", env)
    bare = min(_run_python(python, "pass", env)[0] for _ in range(repeats))
    full = min(_run_python(python, code, env)[0] for _ in range(repeats))
    cumulative_us: list[int] = []
    for _ in range(max(3, repeats // 2)):
        _, err = _run_python(python, code, env, "-X", "importtime")
        for line in err.splitlines():
            m = _IMPORTTIME_RE.match(line)
            if m and m.group(3).strip() == module:
                cumulative_us.append(int(m.group(2)))
    return {
        "module": module,
        "wall_s": full - bare,
        "interpreter_start_s": bare,
        "wall_with_start_s": full,
        "importtime_cumulative_s": (min(cumulative_us) / 1e6) if cumulative_us else None,
        "repeats": repeats,
    }


# --------------------------------------------------------------------------- machine info


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        ncpu = os.cpu_count()
    import sqlite3

    return {
        "date": time.strftime("%Y-%m-%d"),
        "sqlite": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": ncpu,
        "memory_gib": mem_gib,
    }


# --------------------------------------------------------------------------- formatting


def fmt_seconds(seconds: float | None, unit: str) -> str:
    """Format seconds in a fixed unit: ``us``, ``ms`` or ``s``."""
    if seconds is None:
        return "n/a"
    scale = {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    label = {"us": "µs", "ms": "ms", "s": "s"}[unit]
    v = seconds * scale
    if v >= 100:
        txt = f"{v:,.0f}"
    elif v >= 10:
        txt = f"{v:.1f}"
    else:
        txt = f"{v:.2f}"
    return f"{txt} {label}"


def fmt_ratio(theirs: float | None, ours: float | None) -> str:
    """``theirs / ours``: how many times cheaper mlops-sdk is (>1 = we win)."""
    if theirs is None or ours is None or ours <= 0:
        return "n/a"
    r = theirs / ours
    if r >= 100:
        return f"{r:,.0f}{TIMES}"
    if r >= 10:
        return f"{r:.1f}{TIMES}"
    return f"{r:.2f}{TIMES}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cols = len(header)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(cols)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def add_worker_options(parser: Any, metavar: tuple[str, str]) -> None:
    """The hidden options with which a benchmark re-runs itself as a measured worker process."""
    import argparse

    parser.add_argument("--worker", nargs=2, metavar=metavar, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)


def serve_worker_mode(args: Any, worker: Callable[[str, str, dict[str, Any], Path], Any]) -> bool:
    """In worker mode, run ``worker(tool, case, config, workdir)``, write its JSON result, return True."""
    if not args.worker:
        return False
    tool, case = args.worker
    result = worker(tool, case, json.loads(args.config), Path(args.workdir))
    Path(args.result_file).write_text(json.dumps(result))
    return True

