"""Azure Blob Storage and ADLS Gen2 as an mlops-sdk storage (``az://``, ``abfs://``).

::

    az://container/prefix
    az://container/prefix?account=myaccount
    abfs://container/prefix
    abfs://container@myaccount.dfs.core.windows.net/prefix
    az://container/prefix?account=devstoreaccount1&endpoint=http://127.0.0.1:10000/devstoreaccount1

The file system is adlfs's :class:`~adlfs.AzureBlobFileSystem` (``self.fs``, so
everything :class:`~mlops_sdk.storage.fsspec_storage.FsspecStorage` does
generically works here too). The operations of the storage contract call the
Blob API through adlfs's asynchronous ``BlobServiceClient`` directly, because
Blob needs none of the generic temporary-key-and-move dance: a block blob
becomes visible only when its block list is committed, so writing straight to
the key is already atomic, and a "move" on Blob would be a copy plus a delete.

Credentials never appear in the URI or the workspace record. They come, in this
order, from ``AZURE_STORAGE_CONNECTION_STRING``; an account name
(``?account=``, the ``abfs://container@ACCOUNT.dfs.core.windows.net`` host or
``AZURE_STORAGE_ACCOUNT_NAME``) with ``AZURE_STORAGE_ACCOUNT_KEY`` or
``AZURE_STORAGE_SAS_TOKEN``; else ``DefaultAzureCredential`` (managed identity,
workload identity, ``az login``…) for that account. A URI that carries a key, a
SAS or a connection string is refused.

Query options (all non-secret): ``account``, ``endpoint`` (the blob endpoint,
for emulators and sovereign clouds), ``retries`` and ``backoff`` (the retry
policy: how many retries, first back-off in seconds, doubling), ``block_size``
(MiB per uploaded block; objects up to this size go in one request) and
``concurrency`` (parallel block transfers per object).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import tempfile
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry
from fsspec.asyn import sync
from mlops_sdk.errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    InvalidValue,
    MlopsError,
    ObjectNotFound,
)
from mlops_sdk.storage.fsspec_storage import TMP_PREFIX, FsspecStorage

__all__ = ["AzureBlobStorage", "AzureRetry", "open_azure_storage"]

T = TypeVar("T")

#: Query options a storage URI may carry; none of them is a secret.
OPTIONS = ("account", "endpoint", "retries", "backoff", "block_size", "concurrency")
#: Query parameters and connection-string fields that would put a secret into the URI.
SECRET_PARAMS = frozenset(
    {
        "sig", "sv", "se", "sp", "ss", "srt", "sr", "st", "spr", "skoid", "sktid",
        "key", "account_key", "accountkey", "sas", "sas_token", "sastoken", "token",
        "connection_string", "connectionstring", "credential", "password", "secret",
        "client_secret", "sharedaccesssignature",
    }
)
_DFS_SUFFIXES = (".dfs.core.windows.net", ".blob.core.windows.net")

DEFAULT_RETRIES = 5
DEFAULT_BACKOFF = 0.5  # seconds before the first retry; doubles each time
MAX_BACKOFF = 30.0
DEFAULT_BLOCK_MIB = 8
DEFAULT_CONCURRENCY = 4


class AzureRetry(ExponentialRetry):
    """Azure Storage's retry policy (5xx, ``ServerBusy``, timeouts, dropped connections) with our back-off.

    The SDK's own exponential policy waits 15 s before the first retry, which is
    right for a busy production account but makes a test suite or a notebook
    hang; here the first wait is ``backoff`` seconds, doubling up to 30 s, with
    ±20 % jitter so that parallel uploads do not retry in lockstep.
    """

    def __init__(self, *, retries: int, backoff: float) -> None:
        super().__init__(initial_backoff=0, increment_base=2, retry_total=retries, random_jitter_range=0)
        self.backoff = backoff

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        wait: float = min(self.backoff * (2 ** int(settings["count"])), MAX_BACKOFF)
        return wait * random.uniform(0.8, 1.2)


class AzureBlobStorage(FsspecStorage):
    """An ``az://`` / ``abfs://`` storage: a container, or a folder (prefix) in one."""

    def __init__(
        self,
        uri: str,
        *,
        retries: int | None = None,
        backoff: float | None = None,
        block_size: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        parsed = parse_uri(uri)
        self.container: str = parsed["container"]
        self.prefix: str = parsed["prefix"]  # "" or "folder/sub/" (always ends with "/")
        opts: dict[str, str] = parsed["options"]
        display = parsed["display"]
        self.retries = _int_option(display, "retries", retries, opts, DEFAULT_RETRIES, minimum=0)
        self.backoff = _float_option(display, "backoff", backoff, opts, DEFAULT_BACKOFF)
        block_mib = _int_option(display, "block_size", block_size, opts, DEFAULT_BLOCK_MIB, minimum=1)
        self.block_size = block_mib * 1024 * 1024
        self.concurrency = _int_option(display, "concurrency", concurrency, opts, DEFAULT_CONCURRENCY, minimum=1)
        self._endpoint = opts.get("endpoint")
        self._account = opts.get("account") or parsed["host_account"]
        self.credential_source = ""
        fs = self._filesystem(display)
        root = f"{self.container}/{self.prefix}".rstrip("/")
        super().__init__(fs, root, display)
        self._container_client = fs.service_client.get_container_client(self.container)

    # -- connection ---------------------------------------------------------------------
    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "retry_policy": AzureRetry(retries=self.retries, backoff=self.backoff),
            "max_block_size": self.block_size,
            "max_single_put_size": self.block_size,
            "min_large_block_upload_threshold": 1,
            "max_single_get_size": self.block_size,
            "max_chunk_get_size": self.block_size,
            "connection_timeout": 20,
            "read_timeout": 120,
        }

    def _filesystem(self, display: str) -> Any:
        """adlfs's file system, its service client built from the credential chain (see module docs)."""
        from adlfs import AzureBlobFileSystem  # type: ignore[import-untyped]

        env = os.environ
        kwargs = self._client_kwargs()
        conn = env.get("AZURE_STORAGE_CONNECTION_STRING")
        account = self._account or env.get("AZURE_STORAGE_ACCOUNT_NAME")
        make: Callable[[], Any]
        fs_kwargs: dict[str, Any]
        if conn:
            fields = _connection_fields(conn)
            conn_account = fields.get("accountname")
            if self._account and conn_account and conn_account != self._account:
                raise ConfigError(
                    f"storage {display}: the URI names account {self._account!r} but "
                    f"AZURE_STORAGE_CONNECTION_STRING is for account {conn_account!r}; unset one of them"
                )
            self._account = conn_account or self._account
            self.credential_source = "the connection string in AZURE_STORAGE_CONNECTION_STRING"

            def make() -> Any:
                return BlobServiceClient.from_connection_string(conn, **kwargs)

            fs_kwargs = {"connection_string": conn}
        elif account:
            self._account = account
            url = self._endpoint or f"https://{account}.blob.core.windows.net"
            key = env.get("AZURE_STORAGE_ACCOUNT_KEY")
            sas = env.get("AZURE_STORAGE_SAS_TOKEN")
            if key:
                self.credential_source = f"the key of account {account!r} in AZURE_STORAGE_ACCOUNT_KEY"
                cred: Any = {"account_name": account, "account_key": key}
                fs_kwargs = {"account_name": account, "account_key": key}
            elif sas:
                self.credential_source = f"the SAS token for account {account!r} in AZURE_STORAGE_SAS_TOKEN"
                cred = sas.lstrip("?")
                fs_kwargs = {"account_name": account, "sas_token": cred}
            else:
                if not url.startswith("https://"):
                    raise ConfigError(
                        f"storage {display}: DefaultAzureCredential (Entra ID tokens) needs an https endpoint, "
                        f"not {url}; an emulator takes a connection string, account key or SAS token"
                    )
                from azure.identity.aio import DefaultAzureCredential

                self.credential_source = f"DefaultAzureCredential (managed identity, az login…) for account {account!r}"
                cred = DefaultAzureCredential()
                fs_kwargs = {"account_name": account, "credential": cred}

            def make() -> Any:
                return BlobServiceClient(account_url=url, credential=cred, **kwargs)

        else:
            raise ConfigError(
                f"storage {display}: no Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or name the "
                "account (?account=NAME in the URI, or AZURE_STORAGE_ACCOUNT_NAME) and set "
                "AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, or sign in for DefaultAzureCredential "
                "(az login, managed identity)"
            )

        class _BlobFileSystem(AzureBlobFileSystem):  # type: ignore[misc]
            cachable = False  # one file system (and retry policy) per storage, never fsspec's shared instance

            def do_connect(self) -> None:
                self.service_client = make()

        try:
            return _BlobFileSystem(**fs_kwargs)
        except (ValueError, AzureError) as exc:
            raise ConfigError(f"storage {display}: cannot connect with {self.credential_source}: {exc}") from exc

    @property
    def account(self) -> str | None:
        """The storage account (from the URI, the connection string or the environment)."""
        return self._account

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return sync(self.fs.loop, fn, *args, **kwargs)  # type: ignore[no-any-return]

    def _blob(self, key: str) -> str:
        self._path(key)  # validates the key (InvalidName before any request)
        return f"{self.prefix}{key}"

    # -- errors -------------------------------------------------------------------------
    def _error(self, exc: BaseException, action: str, key: str | None = None) -> MlopsError:
        """One typed error for an Azure exception, naming this storage (and the key)."""
        code = _error_code(exc)
        status = getattr(exc, "status_code", None)
        what = f"storage {self.uri}: could not {action}"
        if code == "ContainerNotFound":  # the URI names nothing: a configuration error, as a missing S3 bucket is
            return ConfigError(
                f"{what}: container {self.container!r} does not exist in storage account "
                f"{self._account or '(unknown)'}; create it first (az storage container create --name {self.container})"
            )
        if key is not None and (code == "BlobNotFound" or (isinstance(exc, ResourceNotFoundError) and code is None)):
            return self._missing(key)
        if code == "AuthorizationPermissionMismatch" and "SAS" in self.credential_source:
            return AuthenticationError(
                f"{what}: the SAS token ({self.credential_source}) lacks a permission this needs; a workspace "
                "needs read, add, create, write, delete and list (read and list to only read)"
            )
        if code == "AuthorizationPermissionMismatch" or (code == "AuthorizationFailure" and self._uses_identity()):
            return AuthenticationError(
                f"{what}: the identity used ({self.credential_source}) lacks permission; it needs the "
                "'Storage Blob Data Contributor' role on the container or account ('Storage Blob Data Reader' to read)"
            )
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            return AuthenticationError(
                f"{what}: Azure refused the credentials ({self.credential_source}): {code or status or exc}. "
                "Check the account key, SAS token (permissions, expiry) or signed-in identity"
            )
        if _is_identity_error(exc):
            return AuthenticationError(f"{what}: no usable Azure identity for {self.credential_source}: {exc}")
        if isinstance(exc, HttpResponseError):
            return BackendError(f"{what}: Azure answered {status} {code or ''}: {_first_line(exc)}")
        if isinstance(exc, AzureError):  # ServiceRequestError, ServiceResponseError: no HTTP answer at all
            return BackendError(f"{what}: {type(exc).__name__}: {_first_line(exc)} (endpoint unreachable or connection lost)")
        return BackendError(f"{what}: {type(exc).__name__}: {_first_line(exc)}")

    def _uses_identity(self) -> bool:
        return self.credential_source.startswith("DefaultAzureCredential")

    # -- writes -------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        """Upload ``data`` to ``key``: one request, or blocks committed at the end (atomic either way)."""
        blob = self._blob(key)
        self._upload(key, blob, bytes(data), len(data))

    def put_file(self, key: str, local_path: str | Path) -> None:
        """Upload a local file in blocks of ``block_size``, ``concurrency`` at a time; visible only once complete."""
        blob = self._blob(key)
        try:
            f = open(local_path, "rb")  # noqa: SIM115 - closed below, after the upload
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"local file {str(local_path)!r} does not exist") from exc
        except OSError as exc:
            raise BackendError(f"storage {self.uri}: cannot read local file {str(local_path)!r}: {exc}") from exc
        with f:
            self._upload(key, blob, f, os.fstat(f.fileno()).st_size)

    def _upload(self, key: str, blob: str, data: bytes | BinaryIO, length: int) -> None:
        async def go() -> None:
            before = asyncio.all_tasks()
            try:
                await self._container_client.get_blob_client(blob).upload_blob(
                    data, length=length, overwrite=True, max_concurrency=self.concurrency
                )
            except BaseException:
                _retrieve_stray_errors(before)
                raise

        try:
            self._run(go)
        except MlopsError:
            raise
        except Exception as exc:
            raise self._error(exc, f"write {key!r}") from exc

    def delete(self, key: str) -> None:
        blob = self._blob(key)

        async def go() -> None:
            await self._container_client.delete_blob(blob)

        try:
            self._run(go)
        except Exception as exc:
            if _error_code(exc) == "BlobNotFound" or (isinstance(exc, ResourceNotFoundError) and _error_code(exc) is None):
                return
            raise self._error(exc, f"delete {key!r}") from exc

    # -- reads --------------------------------------------------------------------------
    def _properties(self, key: str) -> Any:
        """The blob's properties, or None when there is no such object (a directory marker is none)."""
        blob = self._blob(key)

        async def go() -> Any:
            return await self._container_client.get_blob_client(blob).get_blob_properties()

        try:
            props = self._run(go)
        except Exception as exc:
            err = self._error(exc, f"read {key!r}", key)
            if isinstance(err, ObjectNotFound):
                return None
            raise err from exc
        if _is_directory_marker(props.metadata):
            return None
        return props

    def exists(self, key: str) -> bool:
        return self._properties(key) is not None

    def size(self, key: str) -> int:
        props = self._properties(key)
        if props is None:
            raise self._missing(key)
        return int(props.size)

    def modified(self, key: str) -> float | None:
        """When the blob was last written (``Last-Modified``); ``mlops gc`` spares young objects."""
        try:
            props = self._properties(key)
        except MlopsError:
            return None
        return None if props is None else float(props.last_modified.timestamp())

    def get_bytes(self, key: str) -> bytes:
        blob = self._blob(key)

        async def go() -> bytes:
            downloader = await self._container_client.get_blob_client(blob).download_blob(max_concurrency=self.concurrency)
            if _is_directory_marker(downloader.properties.metadata):
                raise self._missing(key)
            return bytes(await downloader.readall())

        try:
            return self._run(go)
        except MlopsError:
            raise
        except Exception as exc:
            raise self._error(exc, f"read {key!r}", key) from exc

    def get_file(self, key: str, local_path: str | Path) -> None:
        """Download ``key`` in parallel ranges into a temporary file, renamed into place once complete."""
        blob = self._blob(key)
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        out = os.fdopen(fd, "wb")  # owns the descriptor from here on: closed exactly once, below

        async def go() -> None:
            downloader = await self._container_client.get_blob_client(blob).download_blob(max_concurrency=self.concurrency)
            if _is_directory_marker(downloader.properties.metadata):
                raise self._missing(key)
            await downloader.readinto(out)

        try:
            with out:
                self._run(go)
            try:
                os.replace(tmp, dest)
            except OSError as exc:  # a local problem (dest is a folder…), not Azure's
                raise BackendError(f"storage {self.uri}: could not write {key!r} to {dest}: {exc}") from exc
        except MlopsError:
            raise
        except Exception as exc:
            raise self._error(exc, f"read {key!r} into {dest}", key) from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def open(self, key: str) -> BinaryIO:
        """A buffered, seekable reader that fetches ranges on demand, pinned to the blob's ETag."""
        props = self._properties(key)
        if props is None:
            raise self._missing(key)
        raw = _BlobReader(self, key, int(props.size), props.etag)
        return io.BufferedReader(raw, buffer_size=min(max(int(props.size), 1), self.block_size))

    #: names per listing request (the service's maximum is 5,000)
    list_page_size = 5000

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``, one service page at a time: a caller that stops early
        (``ObjectStore.present`` on a huge container) never lists the rest."""
        start = f"{self.prefix}{prefix}"

        async def page(token: str | None) -> tuple[list[str], str | None]:
            pages = self._container_client.list_blobs(
                name_starts_with=start or None, include=["metadata"], results_per_page=self.list_page_size
            ).by_page(continuation_token=token)
            names: list[str] = []
            async for blob_page in pages:  # only the first page: the loop returns inside
                async for item in blob_page:
                    if not _is_directory_marker(item.metadata):
                        names.append(item.name)
                return names, pages.continuation_token
            return names, None

        cut = len(self.prefix)
        token: str | None = None
        while True:
            try:
                names, token = self._run(page, token)
            except Exception as exc:
                raise self._error(exc, f"list {prefix!r}") from exc
            for name in names:
                key = name[cut:]
                if key and not key.startswith(f"{TMP_PREFIX}/"):
                    yield key
            if not token:
                return

    def close(self) -> None:
        """Close the HTTP session (and the identity's token cache, when one is used)."""
        client = self.fs.service_client
        credential = getattr(self.fs, "credential", None)

        async def go() -> None:
            await client.close()
            if credential is not None and hasattr(credential, "close"):
                await credential.close()

        with contextlib.suppress(Exception):
            self._run(go)


class _BlobReader(io.RawIOBase):
    """Ranged reads of one blob version: a blob replaced while it is read fails instead of mixing versions."""

    def __init__(self, storage: AzureBlobStorage, key: str, size: int, etag: str) -> None:
        self._storage = storage
        self._key = key
        self._blob = storage._container_client.get_blob_client(storage._blob(key))
        self._size = size
        self._etag = etag
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise InvalidValue(f"cannot seek before the start of {self._key!r}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0

        async def go() -> bytes:
            downloader = await self._blob.download_blob(
                offset=self._pos, length=want, etag=self._etag, match_condition=MatchConditions.IfNotModified
            )
            return bytes(await downloader.readall())

        try:
            data = self._storage._run(go)
        except Exception as exc:
            if getattr(exc, "status_code", None) == 412:
                raise BackendError(f"storage {self._storage.uri}: {self._key!r} was replaced while it was being read") from exc
            raise self._storage._error(exc, f"read {self._key!r}", self._key) from exc
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n


# -- URIs ---------------------------------------------------------------------------------------
def parse_uri(uri: str) -> dict[str, Any]:
    """Split a storage URI into container, prefix, account from the host form, and options.

    Refuses secrets (passwords, SAS parameters, keys) before anything else, and
    never repeats them in the error message.
    """
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("az", "abfs", "abfss"):
        raise ConfigError(f"not an Azure storage URI: {_redact(uri)!r} (expected az://container/prefix or abfs://container/prefix)")
    parts = urllib.parse.urlsplit(f"{scheme}://{rest}")
    safe = _redact(uri)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    secrets = sorted(k for k in query if k.lower() in SECRET_PARAMS)
    if parts.password is not None or secrets:
        where = f"query parameter(s) {', '.join(secrets)}" if secrets else "a password in the URI"
        raise ConfigError(
            f"storage {safe}: the URI carries a secret ({where}); credentials are never part of a storage URI "
            "(it is recorded in the workspace). Use AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY, "
            "AZURE_STORAGE_SAS_TOKEN or DefaultAzureCredential instead"
        )
    unknown = sorted(k for k in query if k not in OPTIONS)
    if unknown:
        raise ConfigError(f"storage {safe}: unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    options = {k: v[-1] for k, v in query.items()}
    host = parts.hostname or ""
    netloc = parts.netloc
    host_account = None
    if "@" in netloc:  # abfs://container@account.dfs.core.windows.net/prefix
        container = urllib.parse.unquote(netloc.split("@", 1)[0])
        for suffix in _DFS_SUFFIXES:
            if host.endswith(suffix):
                host_account = host[: -len(suffix)]
                break
        else:
            raise ConfigError(
                f"storage {safe}: expected container@ACCOUNT.dfs.core.windows.net, got host {host!r}; "
                "for other clouds and emulators use ?account=NAME&endpoint=URL"
            )
    else:
        container = urllib.parse.unquote(netloc)
    prefix = urllib.parse.unquote(parts.path).strip("/")
    _check_container(safe, container)
    if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
        raise ConfigError(f"storage {safe}: the prefix {prefix!r} has an empty, '.' or '..' segment")
    if options.get("endpoint"):
        ep = urllib.parse.urlsplit(options["endpoint"])
        if ep.scheme not in ("http", "https") or not ep.netloc or ep.query or ep.password:
            raise ConfigError(f"storage {safe}: endpoint must be an http(s) URL without query or password")
        options["endpoint"] = options["endpoint"].rstrip("/")
    account = options.get("account") or host_account
    if options.get("account") and host_account and options["account"] != host_account:
        raise ConfigError(f"storage {safe}: account {options['account']!r} contradicts the host's {host_account!r}")
    display = f"{scheme}://{container}/{prefix}".rstrip("/") if not host_account else f"{scheme}://{netloc}/{prefix}".rstrip("/")
    shown = {k: v for k, v in options.items() if k in ("account", "endpoint") and not (k == "account" and host_account)}
    if shown:
        display += "?" + urllib.parse.urlencode(shown, safe=":/")
    return {
        "container": container,
        "prefix": f"{prefix}/" if prefix else "",
        "options": options,
        "host_account": account if host_account else None,
        "display": display,
    }


def _check_container(uri: str, name: str) -> None:
    ok = (
        3 <= len(name) <= 63
        and all(c.islower() or c.isdigit() or c == "-" for c in name)
        and name.isascii()
        and name[0].isalnum()
        and name[-1].isalnum()
        and "--" not in name
    )
    if name != "$root" and not ok:
        raise ConfigError(
            f"storage {uri}: {name!r} is not a valid container name (3-63 lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit)"
        )


def _redact(uri: str) -> str:
    """The URI with its password and query values hidden: safe to show in an error."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:***@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(f"{k}=***" if k.lower() in SECRET_PARAMS else f"{k}={v}" for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _connection_fields(conn: str) -> dict[str, str]:
    fields = {}
    for part in conn.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def _int_option(uri: str, name: str, given: int | None, options: dict[str, str], default: int, *, minimum: int) -> int:
    raw: Any = given if given is not None else options.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"storage {uri}: option {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"storage {uri}: option {name}={value} must be at least {minimum}")
    return value


def _float_option(uri: str, name: str, given: float | None, options: dict[str, str], default: float) -> float:
    raw: Any = given if given is not None else options.get(name, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"storage {uri}: option {name}={raw!r} is not a number") from None
    if not 0 <= value <= MAX_BACKOFF:
        raise ConfigError(f"storage {uri}: option {name}={value} must be between 0 and {MAX_BACKOFF:g} seconds")
    return value


def _error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        code = headers.get("x-ms-error-code")
    return str(getattr(code, "value", code)) if code else None  # StorageErrorCode is an Enum


def _retrieve_stray_errors(before: set[asyncio.Task[Any]]) -> None:
    """Mark the errors of block uploads left running by a failed parallel upload as seen.

    When one block of a parallel upload fails, the Azure SDK raises at once and
    never awaits the sibling block tasks; their errors would be logged later as
    "Task exception was never retrieved" (from the garbage collector, at any
    moment). Marking an error as retrieved changes nothing for whoever awaits the
    task, so this is safe even for tasks of other uploads started meanwhile.
    """
    current = asyncio.current_task()
    for task in asyncio.all_tasks() - before:
        if task is not current:
            task.add_done_callback(_seen)


def _seen(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _is_directory_marker(metadata: dict[str, str] | None) -> bool:
    """ADLS Gen2 folders (``hdi_isfolder``) and adlfs's empty-folder blobs are not objects."""
    if not metadata:
        return False
    lowered = {k.lower(): str(v).lower() for k, v in metadata.items()}
    return lowered.get("hdi_isfolder") == "true" or lowered.get("is_directory") == "true"


def _is_identity_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("azure.identity")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_azure_storage(uri: str, *, root: Path | str = ".", **kwargs: Any) -> AzureBlobStorage:
    """Factory registered for the ``az`` and ``abfs`` schemes (``root`` is unused: the storage is remote)."""
    return AzureBlobStorage(uri, **kwargs)
