"""A stat cache: the digest of a local file, trusted while its stat is unchanged.

Re-adding a folder where one file of 10,000 changed should read one file, not
10,000. Like DVC's state database, an entry is keyed on the file's absolute
path and remembers size, mtime (ns) and inode; any change to those means the
file is hashed again. It is a per-machine cache (a SQLite file under
``.mlops/cache/``): losing it costs time, never correctness.

A file modified twice within one tick of the file system's clock keeps the
same stat, so an entry is only trusted for a file whose mtime was safely in
the past when hashing began (git's "racily clean" problem): a file written
just before an add is hashed again next time, one untouched for a while is not.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

_CHUNK = 500  # well under SQLite's bound-parameter limit
RACY_NS = 100_000_000  # 0.1 s: far above a kernel's timestamp tick (1-10 ms)
RACY_COARSE_NS = 2_000_000_000  # file systems that keep whole seconds (or FAT's 2 s)


def settled(mtime_ns: int, started_ns: int) -> bool:
    """Whether a file with this mtime could not be modified again unseen after ``started_ns``."""
    window = RACY_COARSE_NS if mtime_ns % 1_000_000_000 == 0 else RACY_NS
    return mtime_ns < started_ns - window


class StatCache:
    """Digests by (path, size, mtime_ns, inode), per hash algorithm."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS state (path TEXT NOT NULL, algorithm TEXT NOT NULL, "
                    "size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, "
                    "digest TEXT NOT NULL, PRIMARY KEY (path, algorithm))"
                )
            except sqlite3.Error:
                self.path = None  # an unusable cache only costs speed
                return None
            self._db = db
        return self._db

    def lookup(self, algorithm: str, files: Sequence[tuple[str, int, int, int]]) -> dict[str, str]:
        """Digests of the ``(path, size, mtime_ns, inode)`` files whose stat matches the cache."""
        out: dict[str, str] = {}
        with self._lock:
            db = self._conn()
            if db is None or not files:
                return out
            wanted = {p: (s, m, i) for p, s, m, i in files}
            paths = list(wanted)
            try:
                for start in range(0, len(paths), _CHUNK):
                    chunk = paths[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = db.execute(
                        f"SELECT path, size, mtime_ns, inode, digest FROM state WHERE algorithm = ? AND path IN ({marks})",
                        [algorithm, *chunk],
                    )
                    for path, size, mtime_ns, inode, digest in rows:
                        if wanted[path] == (size, mtime_ns, inode):
                            out[path] = digest
            except sqlite3.Error:
                return {}
        return out

    def store(
        self, algorithm: str, rows: Iterable[tuple[str, int, int, int, str]], *, started_ns: int | None = None
    ) -> None:
        """Remember ``(path, size, mtime_ns, inode, digest)`` rows.

        ``started_ns`` is when the hashing began (``time.time_ns()``; default:
        now). Rows whose mtime is not safely before it are not kept: such a file
        could change again without its stat changing.
        """
        started = time.time_ns() if started_ns is None else started_ns
        data = [(p, algorithm, s, m, i, d) for p, s, m, i, d in rows if settled(m, started)]
        with self._lock:
            db = self._conn()
            if db is None or not data:
                return
            with contextlib.suppress(sqlite3.Error):
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?, ?)", data)
                    db.execute("COMMIT")
                except sqlite3.Error:
                    db.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
