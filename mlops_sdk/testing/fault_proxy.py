"""An HTTP/1.1 proxy on 127.0.0.1 that injects the faults clouds really have.

Put it between a client and a test server (moto, Azurite) and point the client
at ``proxy.url``::

    with FaultProxy(moto.endpoint_url) as proxy:
        proxy.throttle(3, status=503, body=b"<Error><Code>SlowDown</Code></Error>")
        ...                                    # the next 3 requests get 503, then traffic flows
        proxy.cut_after(5 << 20)               # the server "stops" once 5 MiB more went upstream
        ...                                    # the upload fails midway; new connections are refused
        proxy.restore()                        # the server is back

Requests and responses are relayed one at a time with their framing
(``Content-Length`` or chunked), so a canned response replaces exactly one
request and keep-alive connections keep working. ``requests`` counts what
reached the proxy, ``forwarded`` what reached the server.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import urllib.parse
from typing import Any

__all__ = ["FaultProxy"]

HOST = "127.0.0.1"


class _Cut(Exception):
    """The simulated outage began: drop the connection."""


def _read_head(f: Any) -> bytes | None:
    lines: list[bytes] = []
    while True:
        line = f.readline(65537)
        if not line:
            return None if not lines else b"".join(lines)
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _headers(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, _, v = line.partition(b":")
            out[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return out


class FaultProxy:
    """A threaded HTTP proxy with switchable faults (see the module docstring)."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream = (parsed.hostname or HOST, parsed.port or 80)
        self._prefix = parsed.path.rstrip("/")
        self._lock = threading.Lock()
        self._throttle: list[tuple[int, bytes, dict[str, str]]] = []
        self._cut_budget: int | None = None
        self._down = False
        self._conns: set[socket.socket] = set()
        self.requests = 0
        self.forwarded = 0
        self.throttled = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The proxy's address with the upstream's path (e.g. Azurite's ``/devstoreaccount1``)."""
        return f"http://{HOST}:{self.port}{self._prefix}"

    # -- faults ---------------------------------------------------------------------------------
    def throttle(self, count: int, *, status: int = 503, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (503/429…) instead of forwarding them."""
        with self._lock:
            self._throttle.extend([(status, body, dict(headers or {}))] * count)

    def cut_after(self, nbytes: int) -> None:
        """After ``nbytes`` more request bytes go upstream, drop every connection and refuse new ones."""
        with self._lock:
            self._cut_budget = nbytes

    def go_down(self) -> None:
        """Drop every connection now and refuse new ones until :meth:`restore`."""
        with self._lock:
            self._down = True
            self._cut_budget = None
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        """The server is back: accept and forward again."""
        with self._lock:
            self._down = False
            self._cut_budget = None

    @property
    def down(self) -> bool:
        return self._down

    # -- plumbing -------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self._down:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _spend(self, n: int) -> None:
        with self._lock:
            if self._down:
                raise _Cut()
            if self._cut_budget is not None:
                self._cut_budget -= n
                if self._cut_budget <= 0:
                    self._cut_budget = None
                    self._down = True
                    conns = list(self._conns)
                else:
                    return
            else:
                return
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        raise _Cut()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        with self._lock:
            self._conns.add(client)
        try:
            cin = client.makefile("rb")
            uin: Any = None
            while True:
                head = _read_head(cin)
                if not head:
                    return
                with self._lock:
                    self.requests += 1
                    canned = self._throttle.pop(0) if self._throttle else None
                hdrs = _headers(head)
                if hdrs.get("expect", "").lower() == "100-continue":  # answer it here; the server never sees it
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = re.sub(rb"(?im)^expect:[^\r\n]*\r\n", b"", head)
                if canned is not None:
                    self._drain_body(cin, hdrs, None)
                    status, body, extra = canned
                    lines = [f"HTTP/1.1 {status} Fault\r\n", f"Content-Length: {len(body)}\r\n"]
                    lines += [f"{k}: {v}\r\n" for k, v in extra.items()]
                    client.sendall("".join(lines).encode("latin-1") + b"\r\n" + body)
                    with self._lock:
                        self.throttled += 1
                    continue
                if upstream is None:
                    self._spend(0)
                    upstream = socket.create_connection(self._upstream, timeout=120)
                    with self._lock:
                        self._conns.add(upstream)
                    uin = upstream.makefile("rb")
                self._spend(len(head))
                upstream.sendall(head)
                self._drain_body(cin, hdrs, upstream)
                with self._lock:
                    self.forwarded += 1
                method = head.split(b" ", 1)[0].upper()
                # relay the response (skipping interim 1xx answers such as 100-continue)
                while True:
                    rhead = _read_head(uin)
                    if not rhead:
                        return
                    client.sendall(rhead)
                    code = int(rhead.split(b" ", 2)[1])
                    if code >= 200 or code == 101:
                        break
                rh = _headers(rhead)
                if method == b"HEAD" or code in (204, 304):
                    pass
                elif "content-length" in rh or "chunked" in rh.get("transfer-encoding", "").lower():
                    self._copy_body(uin, rh, client)
                else:  # until the server closes
                    while chunk := uin.read1(65536):
                        client.sendall(chunk)
                    return
                if rh.get("connection", "").lower() == "close":
                    return
        except (_Cut, OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(client)
                if upstream is not None:
                    self._conns.discard(upstream)
            for s in (client, upstream):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()

    def _drain_body(self, f: Any, hdrs: dict[str, str], out: socket.socket | None) -> None:
        """Forward (or discard, when ``out`` is None) one request body, spending the cut budget."""

        def send(data: bytes) -> None:
            if out is not None:
                self._spend(len(data))
                out.sendall(data)

        self._relay(f, hdrs, send)

    def _copy_body(self, f: Any, hdrs: dict[str, str], out: socket.socket) -> None:
        self._relay(f, hdrs, out.sendall)

    @staticmethod
    def _relay(f: Any, hdrs: dict[str, str], send: Any) -> None:
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            while True:
                size_line = f.readline(65537)
                if not size_line:
                    raise OSError("connection closed inside a chunked body")
                send(size_line)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the blank line
                        line = f.readline(65537)
                        send(line)
                        if line in (b"\r\n", b"\n", b""):
                            return
                remaining = size + 2  # the chunk and its CRLF
                while remaining:
                    data = f.read(min(remaining, 1 << 16))
                    if not data:
                        raise OSError("connection closed inside a chunk")
                    send(data)
                    remaining -= len(data)
        remaining = int(hdrs.get("content-length", "0") or 0)
        while remaining:
            data = f.read1(min(remaining, 1 << 16))
            if not data:
                raise OSError("connection closed inside a body")
            send(data)
            remaining -= len(data)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        self.go_down()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
