"""Done-when of the cloud issue: the quickstart runs unchanged with ``storage = "az://…"``.

``examples/quickstart.py`` is run as it is, in a subprocess, against Azurite's
Blob service on 127.0.0.1; only the environment differs (``MLOPS_STORAGE`` and
``AZURE_STORAGE_CONNECTION_STRING``). Afterwards the data set's and the models'
bytes are in the container, and a workspace with no local cache loads the
production model back from Blob storage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlops_sdk as mlops
import numpy as np
import pytest
from mlops_sdk.testing.cloud_servers import AzuriteServer, ServerUnavailable, environ

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart.py"
CONTAINER = "quickstart"


@pytest.fixture(scope="module")
def azurite_env() -> Iterator[dict[str, str]]:
    try:
        server = AzuriteServer.start()
    except ServerUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    with server:
        yield server.env()


def test_quickstart_runs_unchanged_on_azure_blob(azurite_env: dict[str, str], tmp_path: Path) -> None:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite_env["AZURE_STORAGE_CONNECTION_STRING"])
    container = service.create_container(CONTAINER)
    storage = f"az://{CONTAINER}/runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(azurite_env, MLOPS_STORAGE=storage)
    proc = subprocess.run(
        [sys.executable, str(QUICKSTART)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 runs in experiment 'quickstart', best first:" in proc.stdout
    assert f"in {storage}" in proc.stdout

    names = [b.name for b in container.list_blobs(name_starts_with="runs/")]
    assert any(n.startswith("runs/objects/") for n in names)
    assert not any("/.tmp/" in n for n in names)
    shutil.rmtree(tmp_path / ".mlops" / "cache", ignore_errors=True)  # nothing local: bytes must come from Azure
    with environ(azurite_env), mlops.Workspace.open(tmp_path, storage=storage) as ws:
        data = ws.dataset("breast-cancer").latest
        table = np.loadtxt(data.open("breast_cancer.csv"), delimiter=",")
        assert table.shape == (569, 31)
        production = ws.model("breast-cancer-clf").alias("production")
        predictions = production.predict(table[:20, :-1])
        assert (np.asarray(predictions) == table[:20, -1]).mean() >= 0.9
