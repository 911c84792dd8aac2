"""Faults between the plugin and the service, injected by a FaultProxy in front of Azurite.

The connection string's ``BlobEndpoint`` points at the proxy, so every request
the Azure SDK sends (through adlfs's client) crosses it: real HTTP, real
retries, real dropped connections.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure_testutil import FAST, blob_names
from mlops_sdk.errors import BackendError
from mlops_sdk.testing.cloud_servers import AzuriteServer, connection_string
from mlops_sdk.testing.fault_proxy import FaultProxy

from mlops_sdk_azure.storage import AzureBlobStorage

SERVER_BUSY = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
    b"<Message>The server is busy.</Message></Error>"
)
BUSY_HEADERS = {"x-ms-error-code": "ServerBusy", "Content-Type": "application/xml"}


@pytest.fixture
def proxy(azurite: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of Azurite; the plugin's connection string goes through it."""
    with FaultProxy(azurite.blob_endpoint) as p:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(p.url))
        yield p


def _storage(container: str, retries: int = 2) -> AzureBlobStorage:
    # 1 MiB blocks, two at a time: a 6 MiB file is a real block upload; back-off in milliseconds
    return AzureBlobStorage(f"az://{container}/faults?retries={retries}&backoff=0.01&block_size=1&concurrency=2")


def test_server_stops_mid_upload(azurite: AzuriteServer, container: str, proxy: FaultProxy, tmp_path: Path) -> None:
    st = _storage(container)
    st.put_bytes("big.bin", b"old version")
    data = os.urandom(6 * 1024 * 1024)
    source = tmp_path / "big.bin"
    source.write_bytes(data)

    proxy.cut_after(2 * 1024 * 1024 + 1000)  # the server goes away a third of the way in
    with pytest.raises(BackendError, match=f"storage az://{container}/faults: could not write 'big.bin'"):
        st.put_file("big.bin", source)
    with pytest.raises(BackendError, match=f"storage az://{container}/faults"):  # still down: a clear error too
        st.exists("big.bin")

    proxy.restore()
    assert st.get_bytes("big.bin") == b"old version"  # no partial object: the old one, whole
    assert blob_names(azurite, container) == ["faults/big.bin"]
    st.put_bytes("new.bin", b"")
    st.delete("new.bin")

    st.put_file("big.bin", source)  # the retry, once it is back, succeeds
    st.get_file("big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data
    st.close()


def test_a_new_object_cut_mid_upload_never_appears(azurite: AzuriteServer, container: str, proxy: FaultProxy, tmp_path: Path) -> None:
    st = _storage(container)
    source = tmp_path / "f"
    source.write_bytes(os.urandom(4 * 1024 * 1024))
    proxy.cut_after(1024 * 1024)
    with pytest.raises(BackendError, match="could not write 'fresh'"):
        st.put_file("fresh", source)
    proxy.restore()
    assert not st.exists("fresh")
    assert list(st.list()) == []
    assert blob_names(azurite, container) == []
    st.close()


def test_throttling_is_retried(container: str, proxy: FaultProxy, tmp_path: Path) -> None:
    st = _storage(container, retries=5)
    proxy.throttle(3, status=503, body=SERVER_BUSY, headers=BUSY_HEADERS)
    st.put_bytes("k", b"value")
    assert proxy.throttled == 3
    proxy.throttle(2, status=503, body=SERVER_BUSY, headers=BUSY_HEADERS)
    assert st.get_bytes("k") == b"value"
    proxy.throttle(2, status=500, body=b"<Error><Code>InternalError</Code></Error>", headers={"x-ms-error-code": "InternalError"})
    assert list(st.list()) == ["k"]
    assert proxy.throttled == 7
    st.close()


def test_throttling_longer_than_the_retries_is_a_clear_error(container: str, proxy: FaultProxy) -> None:
    st = _storage(container, retries=2)
    proxy.throttle(10, status=503, body=SERVER_BUSY, headers=BUSY_HEADERS)
    with pytest.raises(BackendError, match=f"storage az://{container}/faults: could not write 'k': Azure answered 503 ServerBusy"):
        st.put_bytes("k", b"value")
    assert proxy.throttled == 3  # the first try and two retries
    st.close()


def test_network_down_is_a_backend_error_naming_the_storage(container: str, proxy: FaultProxy, tmp_path: Path) -> None:
    st = _storage(container)
    st.put_bytes("k", b"v")
    proxy.go_down()
    for call in (lambda: st.get_bytes("k"), lambda: st.get_file("k", tmp_path / "k"), lambda: list(st.list())):
        with pytest.raises(BackendError, match=f"storage az://{container}/faults: could not .*unreachable"):
            call()
    assert not (tmp_path / "k").exists()
    proxy.restore()
    assert st.get_bytes("k") == b"v"
    st.close()


def test_listing_goes_page_by_page(container: str, proxy: FaultProxy) -> None:
    """Every key comes back across pages; a caller that stops early asks the service for no more pages."""
    st = AzureBlobStorage(f"az://{container}/p?{FAST}")
    st.list_page_size = 3
    keys = [f"objects/{i:02d}" for i in range(10)]
    for k in keys:
        st.put_bytes(k, k.encode())
    st.put_bytes("other/x", b"x")
    assert sorted(st.list("objects/")) == keys
    before = proxy.requests
    assert sorted(st.list("objects/")) == keys
    assert proxy.requests - before == 4  # 10 keys, 3 per page
    before = proxy.requests
    assert next(iter(st.list("objects/"))) == "objects/00"
    assert proxy.requests - before == 1  # stopping after the first key costs one request, not four
    st.close()

