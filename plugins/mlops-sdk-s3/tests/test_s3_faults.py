"""Faults clouds really have, injected by a proxy in front of the moto server, and bad input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlops_sdk.errors import (
    AuthenticationError,
    BackendError,
    ConfigError,
    MlopsError,
    ObjectNotFound,
)
from mlops_sdk.plugins import create_backend
from mlops_sdk.testing.cloud_servers import MotoServer, start_or_skip
from mlops_sdk.testing.fault_proxy import FaultProxy

from mlops_sdk_s3.storage import MULTIPART_THRESHOLD, S3Storage

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>1</RequestId></Error>"
)


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.endpoint_url) as p:
        yield p


def _storage(uri: str, **opts: str) -> S3Storage:
    query = "&".join(f"{k}={v}" for k, v in opts.items())
    st = create_backend("storage", f"{uri}?{query}" if query else uri)
    assert isinstance(st, S3Storage)
    return st


def _keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_server_stopping_mid_upload_leaves_nothing_and_the_retry_succeeds(
    tmp_path: Path, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * MULTIPART_THRESHOLD))  # a multipart upload of 3 parts
    st = _storage(f"s3://{bucket}/ws", endpoint_url=proxy.url, max_attempts="2")
    st.put_bytes("small", b"before")  # the storage works through the proxy
    proxy.cut_after(MULTIPART_THRESHOLD)  # the server goes away after about one part
    with pytest.raises(BackendError, match=f"storage s3://{bucket}/ws") as err:
        st.put_file("objects/big", big)
    assert not isinstance(err.value, ObjectNotFound)
    proxy.restore()
    assert _keys(s3, bucket) == ["ws/small"]  # no object, partial or whole
    st.put_file("objects/big", big)  # the retry, once the server is back
    assert st.get_bytes("objects/big") == big.read_bytes()
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # no parts left behind
    assert sorted(_keys(s3, bucket)) == ["ws/objects/big", "ws/small"]
    st.close()


@pytest.mark.slow
def test_throttling_is_retried(tmp_path: Path, proxy: FaultProxy, bucket: str) -> None:
    st = _storage(f"s3://{bucket}/ws", endpoint_url=proxy.url)
    st.put_bytes("k", b"v")
    proxy.throttle(3, status=503, body=SLOW_DOWN, headers={"Content-Type": "application/xml"})
    st.put_bytes("k2", b"v2")
    assert proxy.throttled == 3
    proxy.throttle(3, status=503, body=SLOW_DOWN, headers={"Content-Type": "application/xml"})
    assert st.get_bytes("k2") == b"v2"
    assert proxy.throttled == 6
    src = tmp_path / "f"
    src.write_bytes(b"x" * 1000)
    proxy.throttle(3, status=503, body=SLOW_DOWN, headers={"Content-Type": "application/xml"})
    st.put_files([(f"many/{i}", src) for i in range(20)])
    assert sorted(st.list("many/")) == sorted(f"many/{i}" for i in range(20))


def test_server_down_is_a_backend_error_naming_the_storage(proxy: FaultProxy, bucket: str) -> None:
    st = _storage(f"s3://{bucket}/ws", endpoint_url=proxy.url, max_attempts="2")
    st.put_bytes("k", b"v")
    proxy.go_down()
    for call in (lambda: st.get_bytes("k"), lambda: st.put_bytes("k2", b"v"), lambda: list(st.list())):
        with pytest.raises(BackendError, match=f"storage s3://{bucket}/ws: cannot reach S3 at {proxy.url}"):
            call()
    proxy.restore()
    assert st.get_bytes("k") == b"v"


@pytest.fixture(scope="module")
def moto_with_auth() -> Iterator[MotoServer]:
    server = start_or_skip(lambda: MotoServer.start(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}))
    yield server
    server.close()


def test_wrong_credentials_are_an_authentication_error_naming_the_storage(
    moto_with_auth: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    st = _storage("s3://team-bucket/ws", endpoint_url=moto_with_auth.endpoint_url)
    for call in (lambda: st.put_bytes("k", b"v"), lambda: st.get_bytes("k"), lambda: list(st.list())):
        with pytest.raises(AuthenticationError, match="storage s3://team-bucket/ws: the credentials were refused") as err:
            call()
        assert "wrong" not in str(err.value)  # never echo a secret


def test_a_missing_bucket_is_a_clear_error(tmp_path: Path) -> None:
    st = _storage("s3://no-such-bucket-here/ws")
    src = tmp_path / "f"
    src.write_bytes(b"x")
    for call in (
        lambda: st.put_bytes("k", b"v"),
        lambda: st.put_file("k", src),
        lambda: st.get_bytes("k"),
        lambda: st.get_file("k", tmp_path / "out"),
        lambda: list(st.list()),
        lambda: st.exists("k"),
    ):
        with pytest.raises(ConfigError, match="storage s3://no-such-bucket-here/ws: bucket 'no-such-bucket-here' does not exist"):
            call()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "uri",
    [
        "s3://AKIAEXAMPLE:secretvalue@bucket/ws",
        "s3://AKIAEXAMPLE@bucket/ws",
        "s3://bucket/ws?aws_secret_access_key=secretvalue",
        "s3://bucket/ws?session_token=secretvalue",
    ],
)
def test_credentials_in_the_uri_are_refused(uri: str) -> None:
    with pytest.raises(ConfigError, match="credentials in the URI are refused") as err:
        create_backend("storage", uri)
    assert "secretvalue" not in str(err.value)


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("s3://bucket/ws?colour=blue", "unknown option 'colour'"),
        ("s3://bucket/ws?max_attempts=0", "max_attempts='0' must be a positive integer"),
        ("s3://bucket/ws?retry_mode=sometimes", "retry_mode must be"),
        ("s3://Not_A_Bucket/ws", "not a valid S3 bucket name"),
        ("s3://bucket/a//b", "empty, '.' or '..' segments"),
    ],
)
def test_bad_uris_are_config_errors(uri: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(".", r"\.")):
        create_backend("storage", uri)


def test_endpoint_from_botocore_variables(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, bucket: str) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint_url)
    st = _storage(f"s3://{bucket}")
    assert st.endpoint_url == moto.endpoint_url
    st.put_bytes("k", b"v")
    assert list(st.list()) == ["k"]
    assert st.modified("k") is not None


def test_errors_are_typed(bucket: str) -> None:
    st = _storage(f"s3://{bucket}/ws")
    with pytest.raises(ObjectNotFound, match="'nope'"):
        st.get_bytes("nope")
    with pytest.raises(MlopsError):
        st.put_file("k", "/no/such/local/file")
