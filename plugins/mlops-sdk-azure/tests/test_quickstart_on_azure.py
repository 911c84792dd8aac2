"""Done-when of the cloud issue: the quickstart runs unchanged with ``storage = "az://…"``.

``examples/quickstart.py`` is run as it is, in a subprocess, against Azurite's
Blob service on 127.0.0.1; only the environment differs (``MLOPS_STORAGE`` and
``AZURE_STORAGE_CONNECTION_STRING``). Afterwards the data set's and the models'
bytes are in the container, and a workspace with no local cache loads the
production model back from Blob storage.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlops_sdk as mlops
from mlops_sdk.testing.cloud_servers import AzuriteServer, environ
from mlops_sdk.testing.quickstart import check_quickstart_results, run_quickstart

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart.py"
CONTAINER = "quickstart"


def test_quickstart_runs_unchanged_on_azure_blob(azurite: AzuriteServer, tmp_path: Path) -> None:
    azurite_env = azurite.env()
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite_env["AZURE_STORAGE_CONNECTION_STRING"])
    container = service.create_container(CONTAINER)
    storage = f"az://{CONTAINER}/runs"
    stdout = run_quickstart(QUICKSTART, tmp_path, {**azurite_env, "MLOPS_STORAGE": storage})
    assert f"in {storage}" in stdout

    names = [b.name for b in container.list_blobs(name_starts_with="runs/")]
    assert any(n.startswith("runs/objects/") for n in names)
    assert not any("/.tmp/" in n for n in names)
    shutil.rmtree(tmp_path / ".mlops" / "cache", ignore_errors=True)  # nothing local: bytes must come from Azure
    with environ(azurite_env), mlops.Workspace.open(tmp_path, storage=storage) as ws:
        check_quickstart_results(ws)
