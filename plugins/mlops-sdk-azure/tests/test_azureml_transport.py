"""The recorded-response transport itself, and the plugin's wiring of the ``azureml`` schemes.

The transport must fail loudly: a request it has no recorded answer for, or
one to any host but ARM and the recorded storage account, raises
:class:`UnrecordedRequest` naming it, so a test can never pass on a request
nobody checked.
"""

from __future__ import annotations

import pytest
from azureml_transport import (
    NAMES,
    TARGET,
    FakeCredential,
    RecordedTransport,
    UnrecordedRequest,
    client_options,
    workspace_transport,
)
from mlops_sdk.plugins import create_backend, reset_plugin_manager

from mlops_sdk_azure import _azureml as az
from mlops_sdk_azure.azureml_compute import AzureMLCompute
from mlops_sdk_azure.azureml_deployer import AzureMLDeployer


@pytest.fixture
def transport() -> RecordedTransport:
    return workspace_transport()


def _client(transport: RecordedTransport):  # type: ignore[no-untyped-def]
    target = az.parse_uri(TARGET, "test", frozenset())
    return az.ml_client(target, FakeCredential(), client_options(transport))


def test_unrecorded_arm_request_fails_loudly(transport: RecordedTransport) -> None:
    with pytest.raises(UnrecordedRequest, match=r"GET https://management.azure.com/.*/computes/cpu-cluster"):
        _client(transport).compute.get("cpu-cluster")


def test_other_hosts_are_refused(transport: RecordedTransport) -> None:
    from azure.storage.blob import BlobClient

    blob = BlobClient("https://someoneelse.blob.core.windows.net", "c", "b", credential=FakeCredential(),
                      transport=transport)
    with pytest.raises(UnrecordedRequest, match=r"someoneelse\.blob\.core\.windows\.net"):
        blob.download_blob()


def test_the_workspace_answers_and_requests_are_recorded(transport: RecordedTransport) -> None:
    ws = _client(transport).workspaces.get(NAMES["ws"])
    assert (ws.name, ws.location) == (NAMES["ws"], "eastus")
    (request,) = transport.requests
    assert request.method == "GET" and request.api_version
    assert request.headers["has-authorization"] == "yes"
    assert "recorded-test-token" not in repr(request)  # the token itself is never kept


def test_plugin_creates_the_backends_by_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_PLUGINS", "azure")
    reset_plugin_manager()
    try:
        compute = create_backend("compute", f"{TARGET}?environment=azureml:mlops-job:1", root=".",
                                 credential=FakeCredential())
        deployer = create_backend("deployer", TARGET, root=".", env={}, credential=FakeCredential())
    finally:
        reset_plugin_manager()
    assert isinstance(compute, AzureMLCompute)
    assert compute.target.workspace == NAMES["ws"]
    assert isinstance(deployer, AzureMLDeployer)
