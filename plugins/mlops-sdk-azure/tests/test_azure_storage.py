"""``az://`` / ``abfs://`` URIs, the credential chain, and what the storage does beyond the conformance suite."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure_testutil import FAST, blob_client, blob_names
from mlops_sdk.errors import AuthenticationError, BackendError, ConfigError, ObjectNotFound
from mlops_sdk.plugins import get_plugin_manager
from mlops_sdk.testing.cloud_servers import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    AzuriteServer,
    connection_string,
)

from mlops_sdk_azure.storage import AzureBlobStorage, parse_uri


# -- URIs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "container", "prefix", "display"),
    [
        ("az://data", "data", "", "az://data"),
        ("az://data/", "data", "", "az://data"),
        ("az://data/team/ml", "data", "team/ml/", "az://data/team/ml"),
        ("abfs://lake/raw/zone/", "lake", "raw/zone/", "abfs://lake/raw/zone"),
        ("az://data/p?account=acct1", "data", "p/", "az://data/p?account=acct1"),
        ("abfs://lake@acct1.dfs.core.windows.net/raw", "lake", "raw/", "abfs://lake@acct1.dfs.core.windows.net/raw"),
        ("az://data/my%20folder", "data", "my folder/", "az://data/my folder"),
    ],
)
def test_uris_parse(uri: str, container: str, prefix: str, display: str) -> None:
    parsed = parse_uri(uri)
    assert (parsed["container"], parsed["prefix"], parsed["display"]) == (container, prefix, display)


def test_the_host_form_names_the_account() -> None:
    assert parse_uri("abfs://lake@acct1.dfs.core.windows.net/raw")["host_account"] == "acct1"
    with pytest.raises(ConfigError, match="contradicts"):
        parse_uri("abfs://lake@acct1.dfs.core.windows.net/raw?account=other")


@pytest.mark.parametrize(
    ("uri", "secret"),
    [
        ("az://data/p?sv=2022-11-02&sig=S3cr3tSig%3D&sp=rw", "S3cr3tSig"),
        ("az://data/p?account_key=S3cr3tKey", "S3cr3tKey"),
        ("az://data/p?connection_string=AccountKey%3DS3cr3t", "S3cr3t"),
        ("abfs://user:S3cr3tPass@data/p", "S3cr3tPass"),
    ],
)
def test_a_uri_with_a_secret_is_refused_without_repeating_it(uri: str, secret: str) -> None:
    with pytest.raises(ConfigError, match="carries a secret") as info:
        AzureBlobStorage(uri)
    assert secret not in str(info.value)
    assert "AZURE_STORAGE" in str(info.value)  # says where credentials go instead


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("az://Data/p", "not a valid container name"),
        ("az://ab/p", "not a valid container name"),
        ("az://data/p?colour=blue", "unknown option"),
        ("az://data/a//b", "empty"),
        ("az://data/a/../b", r"'\.\.'"),
        ("az://data/p?retries=many", "whole number"),
        ("az://data/p?backoff=-1", "between 0"),
        ("az://data/p?endpoint=ftp://host", "endpoint must be"),
        ("abfs://lake@acct1.example.com/raw", "dfs.core.windows.net"),
        ("s3://data/p", "not an Azure storage URI"),
    ],
)
def test_bad_uris_get_a_clear_error(uri: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AzureBlobStorage(uri)


def test_the_plugin_registers_both_schemes_and_azure_ml() -> None:
    registry = get_plugin_manager().registry
    for scheme in ("az", "abfs", "abfss"):
        entry = registry.lookup("storage", f"{scheme}://c/p")
        assert entry.plugin == "azure" and entry.target == "mlops_sdk_azure.storage:open_azure_storage"
    assert registry.lookup("compute", "azureml://s/rg/ws").target == "mlops_sdk_azure.azureml_compute:AzureMLCompute"
    assert registry.lookup("deployer", "azureml://s/rg/ws").target == "mlops_sdk_azure.azureml_deployer:AzureMLDeployer"


def test_loading_the_plugin_imports_no_azure_library() -> None:
    code = (
        "import sys, mlops_sdk_azure.plugin, mlops_sdk.plugins as p; p.get_plugin_manager();"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('azure', 'adlfs', 'fsspec'));"
        "print(heavy); assert not heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "MLOPS_PLUGINS": "azure"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- credentials --------------------------------------------------------------------------------
def test_no_credentials_at_all_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"no Azure credentials.*AZURE_STORAGE_CONNECTION_STRING"):
        AzureBlobStorage("az://data/p")


def test_account_key_from_the_environment(azurite: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    st = AzureBlobStorage(f"az://{container}/k?endpoint={azurite.blob_endpoint}&{FAST}")
    st.put_bytes("x", b"by key")
    assert st.get_bytes("x") == b"by key" and "AZURE_STORAGE_ACCOUNT_KEY" in st.credential_source
    assert AZURITE_KEY not in st.uri and AZURITE_KEY not in repr(vars(st).get("uri"))
    st.close()
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME")  # the account named in the URI instead
    st = AzureBlobStorage(f"az://{container}/k?account={AZURITE_ACCOUNT}&endpoint={azurite.blob_endpoint}&{FAST}")
    assert st.get_bytes("x") == b"by key"
    st.close()


def _sas(container: str, **perms: bool) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        AZURITE_ACCOUNT, container, account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(**perms),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )


def test_sas_token_from_the_environment(azurite: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", _sas(container, read=True, write=True, delete=True, list=True))
    uri = f"az://{container}/sas?endpoint={azurite.blob_endpoint}&{FAST}"
    st = AzureBlobStorage(uri)
    st.put_bytes("a/b", b"by sas")
    assert list(st.list()) == ["a/b"] and st.get_bytes("a/b") == b"by sas"
    st.close()
    # a read-only SAS reads, and a write is refused with the reason and the role to ask for
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", _sas(container, read=True, list=True))
    ro = AzureBlobStorage(uri)
    assert ro.get_bytes("a/b") == b"by sas"
    with pytest.raises(AuthenticationError, match=f"storage az://{container}/sas.*could not write 'c': the SAS token .* lacks a permission") as info:
        ro.put_bytes("c", b"no")
    assert "sig=" not in str(info.value)
    assert blob_names(azurite, container) == ["sas/a/b"]
    ro.close()


def test_the_connection_string_comes_first(az_env: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", base64.b64encode(b"not the key" * 6).decode())
    st = AzureBlobStorage(f"az://{container}?{FAST}")
    st.put_bytes("k", b"v")  # the wrong key in the environment is never used
    assert "connection string" in st.credential_source
    st.close()
    with pytest.raises(ConfigError, match="names account 'other' but AZURE_STORAGE_CONNECTION_STRING is for account"):
        AzureBlobStorage(f"az://{container}?account=other")


def test_default_azure_credential_is_the_last_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "prodaccount")
    st = AzureBlobStorage("az://data/p")  # nothing is requested until the first operation
    assert st.credential_source.startswith("DefaultAzureCredential") and st.account == "prodaccount"
    st.close()
    with pytest.raises(ConfigError, match="https"):  # Entra ID tokens are only ever sent over TLS
        AzureBlobStorage("az://data/p?endpoint=http://127.0.0.1:1/prodaccount")


# -- behaviour beyond the contract ------------------------------------------------------------
def test_objects_are_blobs_under_the_prefix_with_no_temporary_keys(az_env: AzuriteServer, container: str, tmp_path: Path) -> None:
    st = AzureBlobStorage(f"az://{container}/team/proj?{FAST}&block_size=1&concurrency=3")
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 5))  # four blocks
    st.put_file("m/big.bin", big)
    st.put_bytes("small", b"s")
    assert blob_names(az_env, container) == ["team/proj/m/big.bin", "team/proj/small"]  # written in place: no copy+delete
    blocks = blob_client(az_env, container, "team/proj/m/big.bin").get_block_list("committed")[0]
    assert len(blocks) == 4
    st.get_file("m/big.bin", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == big.read_bytes()
    st.close()


def test_modified_is_the_blob_last_modified_time(az_env: AzuriteServer, container: str) -> None:
    st = AzureBlobStorage(f"az://{container}?{FAST}")
    st.put_bytes("k", b"v")
    props = blob_client(az_env, container, "k").get_blob_properties()
    assert st.modified("k") == props.last_modified.timestamp()
    assert st.modified("missing") is None
    st.close()


def test_folder_marker_blobs_are_not_objects(az_env: AzuriteServer, container: str) -> None:
    """ADLS Gen2 (and adlfs's mkdir) keep folders as empty blobs marked in metadata."""
    blob_client(az_env, container, "p/dir").upload_blob(b"", metadata={"hdi_isfolder": "true"})
    blob_client(az_env, container, "p/dir/file").upload_blob(b"data")
    st = AzureBlobStorage(f"az://{container}/p?{FAST}")
    assert list(st.list()) == ["dir/file"]
    assert not st.exists("dir")
    for call in (lambda: st.get_bytes("dir"), lambda: st.size("dir"), lambda: st.open("dir")):
        with pytest.raises(ObjectNotFound, match="'dir'"):
            call()
    st.close()


def test_open_reads_ranges_and_seeks(az_env: AzuriteServer, container: str) -> None:
    data = os.urandom(300_000)
    st = AzureBlobStorage(f"az://{container}?{FAST}")
    st.put_bytes("r", data)
    with st.open("r") as f:
        f.seek(1000)
        assert f.read(10) == data[1000:1010]
        f.seek(-5, os.SEEK_END)
        assert f.read() == data[-5:]
    st.close()


def test_a_blob_replaced_while_it_is_read_fails_instead_of_mixing_versions(az_env: AzuriteServer, container: str) -> None:
    st = AzureBlobStorage(f"az://{container}?{FAST}&block_size=1")
    st.put_bytes("v", b"1" * (3 << 20))
    with st.open("v") as f:
        assert f.read(10) == b"1" * 10
        st.put_bytes("v", b"2" * (3 << 20))
        with pytest.raises(BackendError, match="replaced while it was being read"):
            f.read()
    st.close()


def test_wrong_account_key_is_an_authentication_error_naming_the_storage(
    azurite: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = base64.b64encode(os.urandom(64)).decode()  # well-formed, but not Azurite's key
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(azurite.blob_endpoint, key=wrong))
    st = AzureBlobStorage(f"az://{container}/p?{FAST}")
    calls = (lambda: st.put_bytes("k", b"v"), lambda: st.exists("k"), lambda: st.get_bytes("k"), lambda: list(st.list()))
    for call in calls:
        with pytest.raises(AuthenticationError, match=f"storage az://{container}/p: .*refused the credentials") as info:
            call()
        assert wrong not in str(info.value)
    assert blob_names(azurite, container) == []
    st.close()


def test_a_missing_container_is_a_clear_error(az_env: AzuriteServer, tmp_path: Path) -> None:
    st = AzureBlobStorage(f"az://no-such-container/p?{FAST}")
    (tmp_path / "f").write_bytes(b"x")
    calls = (
        lambda: st.put_bytes("k", b"v"),
        lambda: st.put_file("k", tmp_path / "f"),
        lambda: st.exists("k"),
        lambda: st.get_bytes("k"),
        lambda: list(st.list()),
    )
    for call in calls:
        with pytest.raises(ConfigError, match=r"storage az://no-such-container/p: .*container 'no-such-container' does not exist .*create it"):
            call()
    st.close()


def test_many_concurrent_puts_and_gets_from_threads(az_env: AzuriteServer, container: str, tmp_path: Path) -> None:
    """Dataset add and checkout call put_file/get_file from a pool of threads, all on one event loop."""
    from concurrent.futures import ThreadPoolExecutor

    st = AzureBlobStorage(f"az://{container}/many?{FAST}")
    files = {f"objects/{i:03d}": os.urandom(1000 + i) for i in range(96)}
    for key, data in files.items():
        (tmp_path / key.replace("/", "_")).write_bytes(data)
    with ThreadPoolExecutor(24) as pool:
        list(pool.map(lambda k: st.put_file(k, tmp_path / k.replace("/", "_")), files))
        list(pool.map(lambda k: st.get_file(k, tmp_path / "back" / k), files))
    assert sorted(st.list("objects/")) == sorted(files)
    assert {k: (tmp_path / "back" / k).read_bytes() for k in files} == files
    assert not [p for p in (tmp_path / "back").rglob("*.part")]
    st.close()
