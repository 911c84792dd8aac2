"""The ``s3://bucket/prefix`` storage: Amazon S3 or any S3-compatible service, through s3fs.

Why it differs from the generic fsspec storage:

* An S3 PUT is atomic (readers see the old object or the whole new one), so
  objects are written straight to their key. The generic temp-key-and-move
  would cost a copy and a delete on S3, and leave temp keys behind on a crash.
* Large files go up as multipart uploads, parts in parallel. A failed upload
  is aborted, so no part lingers (and is billed); an abort that cannot reach
  the server is retried on the next write, or at ``close()``.
* Retries with backoff are botocore's (``standard`` mode: throttling, 5xx and
  connection errors), configurable with ``max_attempts`` and ``retry_mode``.
* Batches (``exists_many``, ``put_files``, ``get_files``) run as concurrent
  requests on s3fs's event loop, so adding or checking out thousands of small
  files costs little more than their round trips in parallel.
* Credentials come only from the standard AWS chain (environment, shared
  config/credentials files and ``profile``, SSO, container/instance roles).
  A URI with credentials in it is refused: workspace records are shared.

URI: ``s3://bucket[/prefix][?endpoint_url=URL&region=NAME&profile=NAME&max_attempts=N&retry_mode=MODE&concurrency=N]``.
Without ``endpoint_url`` botocore's own ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``
variables apply (MinIO, Ceph, moto, ...).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import io
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

from mlops_sdk.errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    MlopsError,
    ObjectNotFound,
)
from mlops_sdk.storage.fsspec_storage import FsspecStorage

T = TypeVar("T")

#: Files above this go up as multipart uploads.
MULTIPART_THRESHOLD = 16 << 20
#: Size of one part (S3 allows 10,000 parts: 16 MiB parts reach 156 GiB; larger files get larger parts).
PART_SIZE = 16 << 20
#: Parts of one upload in flight at once.
PART_CONCURRENCY = 8
#: Requests a batch keeps in flight (many small files: round trips, not bandwidth, are the cost).
DEFAULT_CONCURRENCY = 64
DEFAULT_MAX_ATTEMPTS = 5
OPTIONS = ("endpoint_url", "region", "profile", "max_attempts", "retry_mode", "concurrency")
_SECRET_OPTIONS = re.compile(r"(secret|password|token|access_key|key_id|credential|signature)", re.I)
_AUTH_CODES = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AllAccessDisabled", "AuthorizationHeaderMalformed", "InvalidClientTokenId",
    "UnrecognizedClientException", "403", "Forbidden",
}
_MISSING_BUCKET_CODES = {"NoSuchBucket"}


def _parse(uri: str) -> tuple[str, str, dict[str, str]]:
    """``s3://bucket/prefix?opts`` -> (bucket, prefix, options); refuses secrets and unknown options."""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        raise ConfigError(f"storage {uri!r}: not an s3:// URI")
    if "@" in parts.netloc:
        safe = f"s3://{parts.netloc.rsplit('@', 1)[1]}{parts.path}"
        raise ConfigError(
            f"storage {safe}: credentials in the URI are refused (workspace records are shared); "
            "use the standard AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, "
            "a profile (?profile=NAME), SSO or an instance/container role"
        )
    bucket = parts.netloc
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket or ""):
        raise ConfigError(f"storage {uri!r}: {bucket!r} is not a valid S3 bucket name")
    prefix = parts.path.strip("/")
    if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
        raise ConfigError(f"storage s3://{bucket}/{prefix}: the prefix has empty, '.' or '..' segments")
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in OPTIONS:
            if _SECRET_OPTIONS.search(name):
                raise ConfigError(
                    f"storage s3://{bucket}/{prefix}: credentials in the URI are refused ({name!r}); "
                    "use the standard AWS chain (environment, ~/.aws, profile, role)"
                )
            raise ConfigError(
                f"storage s3://{bucket}/{prefix}: unknown option {name!r}; known: {', '.join(OPTIONS)}"
            )
        options[name] = value
    return bucket, prefix, options


def _positive_int(uri: str, options: dict[str, str], name: str, default: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"storage {uri}: option {name}={raw!r} must be a positive integer")
    return value


class S3Storage(FsspecStorage):
    """Objects under ``s3://bucket/prefix``: direct atomic PUTs, multipart for large files, batched transfers."""

    def __init__(self, uri: str) -> None:
        bucket, prefix, options = _parse(uri)
        self.bucket = bucket
        self.prefix = prefix
        # the record keeps the URI without the query when no option is set, as given otherwise
        name = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.endpoint_url = (
            options.get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        retry_mode = options.get("retry_mode", "standard")
        if retry_mode not in ("standard", "adaptive", "legacy"):
            raise ConfigError(f"storage {name}: retry_mode must be standard, adaptive or legacy, not {retry_mode!r}")
        self.max_attempts = _positive_int(name, options, "max_attempts", DEFAULT_MAX_ATTEMPTS)
        concurrency = _positive_int(name, options, "concurrency", DEFAULT_CONCURRENCY)
        try:
            import s3fs  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - a dependency of this package
            raise ConfigError(f"storage {name}: s3fs is not installed: pip install mlops-sdk-s3") from exc
        client_kwargs: dict[str, Any] = {}
        if options.get("region"):
            client_kwargs["region_name"] = options["region"]
        fs = s3fs.S3FileSystem(
            anon=False,
            endpoint_url=self.endpoint_url,
            profile=options.get("profile") or None,
            client_kwargs=client_kwargs,
            config_kwargs={
                "retries": {"max_attempts": self.max_attempts, "mode": retry_mode},
                "connect_timeout": 10,
                "read_timeout": 60,
                "max_pool_connections": max(concurrency, PART_CONCURRENCY),
            },
            use_listings_cache=False,
            skip_instance_cache=True,  # this instance's retry settings are its own
        )
        fs.retries = 1  # botocore retries (with backoff); s3fs's own loop on top would multiply them
        root = f"{bucket}/{prefix}" if prefix else bucket
        super().__init__(fs, root, name)
        self.batch_concurrency = concurrency
        self._bucket_checked = False
        self._pending_aborts: list[tuple[str, str]] = []  # (key, upload id) a failed abort left behind

    # -- plumbing -------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        """The S3 object key of a storage key (validated)."""
        return str(self._path(key))[len(self.bucket) + 1 :]

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        from fsspec.asyn import sync

        return sync(self.fs.loop, fn, *args, **kwargs)  # type: ignore[no-any-return]

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await self.fs._call_s3(method, Bucket=self.bucket, **kwargs)

    def _where(self) -> str:
        return f" at {self.endpoint_url}" if self.endpoint_url else ""

    def _translate(self, exc: BaseException, action: str) -> MlopsError:
        """One exception from s3fs/botocore as a typed error naming this storage."""
        if isinstance(exc, MlopsError):
            return exc
        code, text = _error_code(exc)
        if code in _AUTH_CODES or isinstance(exc, PermissionError):
            return AuthenticationError(
                f"storage {self.uri}: the credentials were refused{self._where()} while trying to {action} "
                f"({code or type(exc).__name__}); credentials come from the standard AWS chain "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ?profile=, ~/.aws, SSO, roles)"
            )
        if code in _MISSING_BUCKET_CODES:
            return self._no_bucket()
        if code is None and _is_network(exc):
            return BackendError(f"storage {self.uri}: cannot reach S3{self._where()} to {action}: {text}")
        if code == "NoCredentialsError" or "Unable to locate credentials" in text:
            return AuthenticationError(
                f"storage {self.uri}: no AWS credentials found; set them up in the standard AWS chain "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, SSO, roles)"
            )
        return BackendError(f"storage {self.uri}: could not {action}: {text}")

    def _no_bucket(self) -> ConfigError:
        return ConfigError(
            f"storage {self.uri}: bucket {self.bucket!r} does not exist{self._where()}; create it first "
            "(aws s3 mb s3://BUCKET, or boto3 create_bucket)"
        )

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except MlopsError:
            raise
        except FileNotFoundError as exc:
            if key is not None and self._bucket_exists():
                raise self._missing(key) from exc
            raise self._translate(exc, action) from exc
        except Exception as exc:
            raise self._translate(exc, action) from exc

    def _bucket_exists(self) -> bool:
        """Whether the bucket is there (asked once per storage: a missing object then is just missing)."""
        if self._bucket_checked:
            return True
        try:
            self._run(self._call, "head_bucket")
        except FileNotFoundError as exc:
            raise self._no_bucket() from exc
        except Exception as exc:
            code, _ = _error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise self._no_bucket() from exc
            if code not in ("403", "Forbidden", "AccessDenied"):
                raise self._translate(exc, "check the bucket") from exc
            # 403: the identity may not call HeadBucket (a policy granting s3:ListBucket only under
            # the prefix), yet may use its objects. A missing bucket answers 404 whatever the
            # permissions, so go on; bad credentials fail the next call with a clear error.
        self._bucket_checked = True
        return True

    # -- writes ---------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        obj = self._key(key)
        with self._errors(f"write {key!r}"):
            self._bucket_exists()
            self._retry_aborts()
            self._run(self._put_bytes, obj, data)

    async def _put_bytes(self, obj: str, data: bytes) -> None:
        if len(data) <= MULTIPART_THRESHOLD:
            await self._call("put_object", Key=obj, Body=data)
            return
        view = memoryview(data)

        async def read(offset: int, size: int) -> bytes:
            return bytes(view[offset : offset + size])

        await self._multipart(obj, len(data), read)

    def put_file(self, key: str, local_path: str | Path) -> None:
        self.put_files([(key, local_path)])

    def put_files(self, items: Sequence[tuple[str, str | Path]]) -> None:
        """Upload many files at once: up to ``concurrency`` requests in flight, each PUT atomic."""
        pairs = [(key, self._key(key), str(path)) for key, path in items]
        if not pairs:
            return
        with self._errors(f"write {pairs[0][0]!r}" if len(pairs) == 1 else f"write {len(pairs)} objects"):
            self._bucket_exists()
            self._retry_aborts()
            self._run(self._gather, [self._put_one(key, obj, path) for key, obj, path in pairs])

    async def _put_one(self, key: str, obj: str, path: str) -> None:
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"local file {path!r} does not exist") from exc
        except IsADirectoryError as exc:
            raise ObjectNotFound(f"local path {path!r} is a folder, not a file") from exc
        try:
            size = os.fstat(f.fileno()).st_size
            if size <= MULTIPART_THRESHOLD:
                data = f.read()
                f.close()
                await self._call("put_object", Key=obj, Body=data)
                return
            with f:
                lock = asyncio.Lock()

                async def read(offset: int, n: int) -> bytes:
                    async with lock:  # parts read in turn from one handle: memory stays parts in flight x part size
                        f.seek(offset)
                        return f.read(n)

                await self._multipart(obj, size, read)
        except MlopsError:
            raise
        except Exception as exc:
            raise self._translate(exc, f"write {key!r}") from exc
        finally:
            f.close()

    async def _multipart(self, obj: str, size: int, read: Callable[[int, int], Awaitable[bytes]]) -> None:
        """A multipart upload: the object appears only when it completes; a failure aborts it."""
        part = max(PART_SIZE, -(-size // 9_999))
        upload = await self._call("create_multipart_upload", Key=obj)
        upload_id = upload["UploadId"]
        try:
            sem = asyncio.Semaphore(PART_CONCURRENCY)

            async def one(number: int, offset: int) -> dict[str, Any]:
                async with sem:
                    body = await read(offset, part)
                    out = await self._call("upload_part", Key=obj, UploadId=upload_id, PartNumber=number, Body=body)
                    return {"PartNumber": number, "ETag": out["ETag"]}

            parts = await asyncio.gather(*(one(i + 1, off) for i, off in enumerate(range(0, size, part))))
            await self._call("complete_multipart_upload", Key=obj, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                await self._call("abort_multipart_upload", Key=obj, UploadId=upload_id)
            except Exception:  # the server is unreachable: abort on the next write, or at close()
                self._pending_aborts.append((obj, upload_id))
            raise

    def _retry_aborts(self) -> None:
        """Abort multipart uploads an earlier failure could not abort (the server was down)."""
        while self._pending_aborts:
            obj, upload_id = self._pending_aborts[0]
            try:
                self._run(self._call, "abort_multipart_upload", Key=obj, UploadId=upload_id)
            except FileNotFoundError:
                pass  # NoSuchUpload: already gone
            except Exception as exc:
                if _error_code(exc)[0] != "NoSuchUpload":
                    return
            self._pending_aborts.pop(0)

    # -- reads ----------------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        obj = self._key(key)
        with self._errors(f"read {key!r}", key):
            return bytes(self._run(self._get_bytes, obj))

    async def _get_bytes(self, obj: str) -> bytes:
        resp = await self._call("get_object", Key=obj)
        body = resp["Body"]
        try:
            return bytes(await body.read())
        finally:
            body.close()

    def get_file(self, key: str, local_path: str | Path) -> None:
        self.get_files([(key, local_path)])

    def get_files(self, items: Sequence[tuple[str, str | Path]]) -> None:
        """Download many objects at once; each file is written under a temporary name and renamed."""
        pairs = [(key, self._key(key), Path(path)) for key, path in items]
        if not pairs:
            return
        for _, _, dest in pairs:
            dest.parent.mkdir(parents=True, exist_ok=True)
        self._run(self._gather, [self._get_one(key, obj, dest) for key, obj, dest in pairs])

    async def _get_one(self, key: str, obj: str, dest: Path) -> None:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    resp = await self._call("get_object", Key=obj)
                    body = resp["Body"]
                    try:
                        while chunk := await body.read(1 << 20):
                            out.write(chunk)
                    finally:
                        body.close()
                except FileNotFoundError as exc:
                    if await self._is_bucket():
                        raise self._missing(key) from exc
                    raise self._no_bucket() from exc
                except MlopsError:
                    raise
                except Exception as exc:
                    raise self._translate(exc, f"read {key!r}") from exc
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    async def _is_bucket(self) -> bool:
        if self._bucket_checked:
            return True
        try:
            await self._call("head_bucket")
        except Exception:
            return False
        self._bucket_checked = True
        return True

    def open(self, key: str) -> BinaryIO:
        """Stream the object: one GET, read in pieces as the caller reads (never whole in memory)."""
        obj = self._key(key)
        with self._errors(f"read {key!r}", key):
            resp = self._run(self._call, "get_object", Key=obj)
        return cast(BinaryIO, io.BufferedReader(_BodyReader(self, resp["Body"], key), buffer_size=1 << 20))

    def exists(self, key: str) -> bool:
        return key in self.exists_many([key])

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        """Which keys hold objects: concurrent HEAD requests (a "folder" of other keys is no object)."""
        wanted = list(dict.fromkeys(keys))
        objs = [self._key(k) for k in wanted]
        with self._errors("check for objects"):
            found: builtins.list[bool] = self._run(self._gather, [self._head(o) for o in objs])
        return {k for k, ok in zip(wanted, found, strict=True) if ok}

    async def _head(self, obj: str) -> bool:
        try:
            await self._call("head_object", Key=obj)
        except FileNotFoundError:
            if not await self._is_bucket():
                raise self._no_bucket() from None
            return False
        except Exception as exc:
            code, _ = _error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def size(self, key: str) -> int:
        obj = self._key(key)
        with self._errors(f"read {key!r}", key):
            out = self._run(self._call, "head_object", Key=obj)
        return int(out["ContentLength"])

    def modified(self, key: str) -> float | None:
        obj = self._key(key)
        try:
            out = self._run(self._call, "head_object", Key=obj)
        except Exception:
            return None
        stamp = out.get("LastModified")
        return float(stamp.timestamp()) if hasattr(stamp, "timestamp") else None

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix``: ``ListObjectsV2`` pages of up to 1,000 keys."""
        base = f"{self.prefix}/" if self.prefix else ""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Prefix": base + prefix}
            if token:
                kwargs["ContinuationToken"] = token
            with self._errors("list objects"):
                self._bucket_exists()
                page = self._run(self._call, "list_objects_v2", **kwargs)
            for item in page.get("Contents", []):
                key = item["Key"][len(base) :]
                if key and not key.endswith("/"):
                    yield key
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def delete(self, key: str) -> None:
        obj = self._key(key)
        with self._errors(f"delete {key!r}"):
            self._run(self._call, "delete_object", Key=obj)

    async def _gather(self, coros: builtins.list[Awaitable[T]]) -> builtins.list[T]:
        """Await ``coros`` with at most ``batch_concurrency`` in flight; the first error is raised
        after the rest have finished (no request is left running against a half-done batch)."""
        sem = asyncio.Semaphore(self.batch_concurrency)

        async def one(coro: Awaitable[T]) -> T:
            async with sem:
                return await coro

        results = await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results  # type: ignore[return-value]  # no exceptions left: all T

    def close(self) -> None:
        """Abort what a failed upload left, then release the connection pool (made again if used after)."""
        with contextlib.suppress(Exception):
            self._retry_aborts()
        client = getattr(self.fs, "_s3", None)
        if client is not None:
            with contextlib.suppress(Exception):
                type(self.fs).close_session(self.fs.loop, client)
            self.fs._s3 = None


class _BodyReader(io.RawIOBase):
    """A GetObject response body (async, on s3fs's loop) as a blocking raw stream."""

    def __init__(self, storage: S3Storage, body: Any, key: str) -> None:
        self._storage = storage
        self._body = body
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._storage._errors(f"read {self._key!r}"):
            data = self._storage._run(self._body.read, len(buffer))
        n = len(data)
        memoryview(buffer).cast("B")[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


def _error_code(exc: BaseException) -> tuple[str | None, str]:
    """The S3 error code of a botocore error (also when s3fs wrapped it), and a one-line text."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        response = getattr(cur, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code), str(cur)
        if type(cur).__name__ == "NoCredentialsError":
            return "NoCredentialsError", str(cur)
        cur = cur.__cause__ or cur.__context__
    return None, str(exc) or type(exc).__name__


def _is_network(exc: BaseException) -> bool:
    names = {t.__name__ for t in type(exc).__mro__}
    return bool(
        names
        & {
            "EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError", "ReadTimeoutError",
            "HTTPClientError", "ClientConnectorError", "ServerDisconnectedError", "ClientOSError",
            "ConnectionError", "TimeoutError", "ResponseStreamingError", "IncompleteReadError",
        }
    )


def open_s3_storage(uri: str, *, root: Path | str = ".") -> S3Storage:
    """Factory registered for the ``s3`` scheme (``root`` is unused: the storage is remote)."""
    return S3Storage(uri)
