"""A throwaway PostgreSQL server for tests: its own cluster, on 127.0.0.1, gone on close.

::

    server = PostgresServer.start(tmp_path)        # initdb + pg_ctl start on a free port
    try:
        url = server.create_database("t1")         # postgresql://mlops@127.0.0.1:PORT/t1
        ...
        server.stop()                              # simulate an outage
        server.start_again()                       # same data, same port
    finally:
        server.close()                             # stop and delete the cluster

The server programs (``initdb``, ``pg_ctl``) are looked up on ``PATH``, then in
``/usr/lib/postgresql/*/bin`` (Debian's layout). When they are missing,
:meth:`PostgresServer.start` raises :class:`PostgresUnavailable` with the reason.
``initdb`` refuses to run as root, so as root the cluster is created and run as
the ``postgres`` OS user (``runuser -u postgres --``), in a directory that user
owns. The cluster trusts connections from 127.0.0.1 only, listens on
127.0.0.1 only, and runs with ``fsync=off``: fast, and an acknowledged commit still survives the
server being killed (``stop("immediate")``), though not the machine crashing.

Roles: ``mlops`` (login, no superuser; owns every database made by
:meth:`create_database`, so it has CREATE there, as a real deployment would
need on first start) and the bootstrap superuser ``postgres``
(:meth:`admin_url`, for tests that terminate backends and the like).
Needs ``psycopg`` (the ``postgres`` extra) to create roles and databases.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["PostgresServer", "PostgresUnavailable"]

HOST = "127.0.0.1"
USER = "mlops"
SUPERUSER = "postgres"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for "/.s.PGSQL.NNNNN"


class PostgresUnavailable(Exception):
    """PostgreSQL's server programs are missing or the server could not be started."""


def _find_bin_dir() -> Path:
    found = shutil.which("initdb")
    if found:
        bin_dir = Path(found).resolve().parent
        if (bin_dir / "pg_ctl").exists():
            return bin_dir
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
        reverse=True,
    )
    for candidate in candidates:
        bin_dir = Path(candidate)
        if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists():
            return bin_dir
    raise PostgresUnavailable(
        "PostgreSQL server programs (initdb, pg_ctl) not found on PATH or in "
        "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql, "
        "or run scripts/ensure-postgres.sh)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _traversable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """Whether ``uid`` can reach ``path`` (execute permission on it and every ancestor)."""
    path = path.resolve()
    for part in [path, *path.parents]:
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in gids:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return False
    return True


def _stop_and_remove(argv_prefix: list[str], pg_ctl: str, data_dir: str, root: str) -> None:
    """Stop a cluster immediately and delete it (close(), and at interpreter exit)."""
    try:
        if os.path.isdir(data_dir):
            subprocess.run(
                [*argv_prefix, pg_ctl, "-D", data_dir, "-m", "immediate", "-w", "-t", "60", "stop"],
                capture_output=True,
                timeout=90,
                cwd=root,
                check=False,
            )
    except (OSError, subprocess.SubprocessError):
        pass
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _utf8_locale() -> str | None:
    """A UTF-8 locale for the cluster, so ``lower()`` folds any letter (not just ASCII)."""
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    names = out.split()
    for wanted in ("C.utf8", "C.UTF-8", "en_US.utf8", "en_US.UTF-8"):
        if wanted in names:
            return wanted
    for name in names:
        if name.lower().endswith((".utf8", ".utf-8")):
            return name
    return None


class PostgresServer:
    """One throwaway PostgreSQL cluster. Build it with :meth:`start`."""

    def __init__(self, base_dir: Path, root: Path, bin_dir: Path, port: int, run_as: str | None) -> None:
        self.base_dir = base_dir
        self.root = root  # holds data/, sock/ and server.log; removed by close()
        self.bin_dir = bin_dir
        self.port = port
        self.host = HOST
        self.run_as = run_as
        self.data_dir = root / "data"
        self.socket_dir = root / "sock"
        self.log_file = root / "server.log"
        self._databases: set[str] = set()
        self._closed = False
        # stop the server at interpreter exit even when nobody called close()
        prefix = ["runuser", "-u", run_as, "--"] if run_as is not None else []
        self._finalizer = weakref.finalize(
            self, _stop_and_remove, prefix, str(bin_dir / "pg_ctl"), str(self.data_dir), str(root)
        )

    # -- construction ---------------------------------------------------------------
    @classmethod
    def start(cls, base_dir: Path, port: int | None = None) -> PostgresServer:
        """Create a cluster under ``base_dir`` and start it on ``port`` (a free one by default).

        Raises :class:`PostgresUnavailable` when the programs are missing or the
        server does not come up (the reason and the end of the server log are
        in the message).
        """
        bin_dir = _find_bin_dir()
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise PostgresUnavailable(f"psycopg is not installed ({exc}): pip install mlops-sdk[postgres]") from exc
        base_dir = Path(base_dir)
        base_dir.mkdir(parents=True, exist_ok=True)
        run_as: str | None = None
        owner: tuple[int, int] | None = None
        if os.name == "posix" and os.geteuid() == 0:
            import grp
            import pwd

            try:
                pw = pwd.getpwnam(SUPERUSER)
            except KeyError as exc:
                raise PostgresUnavailable(
                    "running as root, and initdb refuses root; there is no 'postgres' OS user to run it as"
                ) from exc
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root, and initdb refuses root; runuser is not available")
            run_as = SUPERUSER
            owner = (pw.pw_uid, pw.pw_gid)
            gids = {pw.pw_gid, *(g.gr_gid for g in grp.getgrall() if SUPERUSER in g.gr_mem)}
        # the cluster directory: inside base_dir when the server's user can reach it and the
        # socket path fits, else a fresh directory in the system temp dir
        root = base_dir / "pg"
        reachable = owner is None or _traversable_by(base_dir, owner[0], gids)
        if not reachable or len(str(root / "sock")) > _SOCKET_PATH_MAX:
            root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
            with contextlib.suppress(OSError):
                (base_dir / "pg-location").write_text(str(root) + "\n")
        elif root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / "sock").mkdir(exist_ok=True)
        if owner is not None:
            for path in (root, root / "sock"):
                os.chown(path, *owner)
            os.chmod(root, 0o700)
        chosen = port if port is not None else free_port()
        server = cls(base_dir, root, bin_dir, chosen, run_as)
        try:
            server._initdb()
            attempts = 1 if port is not None else 5
            for attempt in range(attempts):
                try:
                    server._start()
                    break
                except PostgresUnavailable:
                    # another process took the port between free_port() and the bind: try another
                    if attempt + 1 == attempts or "could not bind" not in server._log_tail().lower():
                        raise
                    server.port = free_port()
                    server._write_port()
            server._bootstrap()
        except BaseException:
            server.close()
            raise
        return server

    # -- commands -----------------------------------------------------------------------
    def _cmd(self, args: Sequence[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = list(args)
        if self.run_as is not None:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresUnavailable(f"could not run {' '.join(argv)}: {exc}") from exc

    def _initdb(self) -> None:
        args = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        ]
        utf8 = _utf8_locale()
        if utf8 is not None:
            args.append(f"--locale={utf8}")
        done = self._cmd(args)
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}")
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# mlops_sdk.testing.postgres: a throwaway test cluster\n"
                f"listen_addresses = '{HOST}'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\n"
                "shared_buffers = 32MB\n"
                # fsync off: a commit reaches the kernel, not the disk. Survives the server
                # being killed (stop(mode="immediate")), not the machine crashing. Commits
                # stay synchronous, so an acknowledged commit is never lost to a server crash.
                "fsync = off\n"
                "full_page_writes = off\n"
                "logging_collector = off\n"
                "log_min_messages = warning\n"
                "include_if_exists = 'port.conf'\n"
            )
        (self.data_dir / "pg_hba.conf").write_text(
            "# local socket (inside the test's own directory) and 127.0.0.1 only\n"
            "local all all trust\n"
            f"host all all {HOST}/32 trust\n"
        )
        self._write_port()

    def _write_port(self) -> None:
        path = self.data_dir / "port.conf"
        path.write_text(f"port = {self.port}\n")
        if self.run_as is not None:
            import pwd

            pw = pwd.getpwnam(self.run_as)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _start(self) -> None:
        if self.run_as is not None and not self.log_file.exists():
            import pwd

            self.log_file.touch()
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.log_file, pw.pw_uid, pw.pw_gid)
        done = self._cmd(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60", "start"]
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"PostgreSQL did not start on {HOST}:{self.port}: {(done.stderr or done.stdout).strip()}\n"
                f"server log:\n{self._log_tail()}"
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_url("postgres"), connect_timeout=5):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"PostgreSQL on {HOST}:{self.port} does not accept connections: {exc}\n"
                        f"server log:\n{self._log_tail()}"
                    ) from exc
                time.sleep(0.1)

    def _admin(self, sql: str, params: Sequence[Any] = ()) -> None:
        import psycopg

        with psycopg.connect(self.admin_url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.encode(), params)

    def _bootstrap(self) -> None:
        self._admin(f'CREATE ROLE "{USER}" LOGIN')
        self.create_database(USER)

    # -- public API ---------------------------------------------------------------------
    def url(self, name: str = USER) -> str:
        """``postgresql://mlops@127.0.0.1:PORT/name``."""
        return f"postgresql://{USER}@{HOST}:{self.port}/{name}"

    def admin_url(self, name: str = USER) -> str:
        """A URL for the superuser ``postgres`` (terminating backends, inspecting locks)."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """Create an empty database owned by ``mlops`` and return its URL."""
        if not _NAME.match(name):
            raise ValueError(f"database name {name!r} must match {_NAME.pattern}")
        self._admin(f'CREATE DATABASE "{name}" OWNER "{USER}" TEMPLATE template0')
        self._databases.add(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        if not _NAME.match(name):
            raise ValueError(f"database name {name!r} must match {_NAME.pattern}")
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._databases.discard(name)

    @property
    def running(self) -> bool:
        """Whether the server process is up (``pg_ctl status``)."""
        if self._closed or not self.data_dir.exists():
            return False
        return self._cmd([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"]).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``smart``, ``fast`` or ``immediate``); the data stays."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"mode must be smart, fast or immediate, not {mode!r}")
        if not self.data_dir.exists() or not self.running:
            return
        done = self._cmd([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"])
        if done.returncode != 0 and self.running:
            raise PostgresUnavailable(f"pg_ctl stop failed: {(done.stderr or done.stdout).strip()}")

    def start_again(self) -> None:
        """Start the stopped server again: same data directory, same port."""
        if self._closed:
            raise PostgresUnavailable("this PostgresServer was closed")
        if self.running:
            return
        self._start()

    def restart(self, mode: str = "fast") -> None:
        """Stop (``mode``) and start again."""
        self.stop(mode)
        self.start_again()

    def close(self) -> None:
        """Stop the server (immediately) and delete its cluster. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()  # pg_ctl stop -m immediate, then delete the directory

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PostgresServer {HOST}:{self.port} {self.data_dir}>"
