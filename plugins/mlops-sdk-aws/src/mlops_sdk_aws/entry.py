"""The training container's command: ``python -m mlops_sdk_aws.entry [--base-dir /opt/ml]``.

SageMaker starts it (``ContainerEntrypoint``) with its usual layout under
``/opt/ml`` (``--base-dir`` or ``$SM_BASE_DIR`` for another folder, as the
tests use):

* ``input/config/hyperparameters.json``: the job params as JSON text, plus
  ``mlops.spec`` (the spec's ``s3://`` URL), ``mlops.storage`` (the bucket
  prefix) and ``mlops.job`` (the training job name);
* ``input/data/mlops/spec.json``: the job spec, downloaded by SageMaker from
  the ``mlops`` channel (read from ``mlops.spec`` through the storage when
  the channel folder is missing).

It runs the spec with :func:`mlops_sdk.compute.worker.execute_spec` (params
from the hyperparameters win, so hyperparameter tuning jobs work), reports
the run id to ``.../JOB/state.json`` as soon as the run starts, and writes
the outcome to ``.../JOB/result.json`` (through the ``s3://`` storage) and to
``model/result.json``. On failure it writes ``output/failure``, which
SageMaker shows as the job's ``FailureReason``, and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mlops_sdk_aws.compute import HP_JOB, HP_SPEC, HP_STORAGE, SPEC_CHANNEL, job_key

FAILURE_LIMIT = 1024  # SageMaker keeps the first 1 KiB of output/failure


def _storage(uri: str) -> Any:
    from mlops_sdk.plugins import create_backend

    return create_backend("storage", uri)


def _spec_key(spec_url: str, storage_uri: str) -> str:
    prefix = storage_uri.rstrip("/") + "/"
    if not spec_url.startswith(prefix):
        raise ValueError(f"hyperparameter {HP_SPEC}={spec_url!r} is not under {HP_STORAGE}={storage_uri!r}")
    return spec_url[len(prefix):]


def load_spec(base: Path, hp: dict[str, str], storage: Any) -> dict[str, Any]:
    """The job spec, with params taken from the hyperparameters (they may have been tuned)."""
    local = base / "input" / "data" / SPEC_CHANNEL / "spec.json"
    if local.is_file():
        spec: dict[str, Any] = json.loads(local.read_text())
    else:
        spec = json.loads(storage.get_bytes(_spec_key(hp[HP_SPEC], hp[HP_STORAGE])))
    params = dict(spec.get("params") or {})
    for key, text in hp.items():
        if key.startswith("mlops."):
            continue
        try:
            params[key] = json.loads(text)
        except (TypeError, ValueError):
            params[key] = text  # set by hand in the console: keep the text
    spec["params"] = params
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_sdk_aws.entry", description=__doc__.splitlines()[0])
    parser.add_argument("--base-dir", default=os.environ.get("SM_BASE_DIR", "/opt/ml"),
                        help="SageMaker's folder (default $SM_BASE_DIR or /opt/ml)")
    args = parser.parse_args(argv)
    base = Path(args.base_dir)
    failure = base / "output" / "failure"

    def fail(message: str) -> int:
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(message[:FAILURE_LIMIT])
        print(message, file=sys.stderr)
        return 1

    try:
        hp = json.loads((base / "input" / "config" / "hyperparameters.json").read_text())
        storage = _storage(hp[HP_STORAGE])
        name = hp[HP_JOB]
        spec = load_spec(base, hp, storage)
    except Exception as exc:
        return fail(f"mlops_sdk_aws.entry could not read the job: {type(exc).__name__}: {exc}")

    from mlops_sdk.compute.worker import execute_spec

    state: dict[str, Any] = {}

    def report(**values: Any) -> None:
        state.update(values)
        data = json.dumps(state).encode()
        leaf = "state.json" if values.get("state") == "RUNNING" else "result.json"
        storage.put_bytes(job_key(name, leaf), data)
        if leaf == "result.json":
            (base / "model").mkdir(parents=True, exist_ok=True)
            (base / "model" / "result.json").write_bytes(data)

    cwd = spec.get("cwd")
    if cwd and os.path.isdir(cwd):  # the submitter's folder exists when the container mounts it (or in tests)
        os.chdir(cwd)
    try:
        code = execute_spec(spec, report)
    finally:
        storage.close()
    if code != 0:
        return fail(str(state.get("error") or "the job failed"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
