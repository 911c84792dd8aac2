"""Done-when of the cloud issue: the quickstart runs unchanged with ``storage = "s3://…"``.

``examples/quickstart.py`` is run as it is, in a subprocess, against moto's S3
in server mode on 127.0.0.1; only the environment differs (``MLOPS_STORAGE``
and the AWS variables a user's shell would carry). Afterwards the data set's
and the models' bytes are in the bucket, and a workspace with no local cache
loads the production model back from S3.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlops_sdk as mlops
from mlops_sdk.testing.cloud_servers import MotoServer, environ
from mlops_sdk.testing.quickstart import check_quickstart_results, run_quickstart

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart.py"
BUCKET = "quickstart-bucket"


def test_quickstart_runs_unchanged_on_s3(moto: MotoServer, tmp_path: Path) -> None:
    moto_env = moto.env()
    import boto3

    with environ(moto_env):
        boto3.client("s3").create_bucket(Bucket=BUCKET)
    storage = f"s3://{BUCKET}/quickstart"
    stdout = run_quickstart(QUICKSTART, tmp_path, {**moto_env, "MLOPS_STORAGE": storage})
    assert f"in {storage}" in stdout

    with environ(moto_env):
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="quickstart/")["Contents"]]
        assert any(k.startswith("quickstart/objects/") for k in keys)
        assert not any("/.tmp/" in k for k in keys)
        shutil.rmtree(tmp_path / ".mlops" / "cache", ignore_errors=True)  # nothing local: bytes must come from S3
        with mlops.Workspace.open(tmp_path, storage=storage) as ws:
            check_quickstart_results(ws)
