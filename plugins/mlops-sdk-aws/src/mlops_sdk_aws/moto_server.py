"""moto in server mode with the SageMaker calls moto 5 lacks, for tests and the docs.

>>> with SageMakerMotoServer.start() as moto:           # doctest: +SKIP
...     with environ(moto.env()): ...                    # boto3 / the plugin talk to it over HTTP

moto (5.2) implements CreateEndpoint, DescribeEndpoint, CreateTrainingJob…
but not ``UpdateEndpoint`` nor ``StopTrainingJob``, and its training jobs are
``Completed`` the moment they are created. ``python -m mlops_sdk_aws.moto_server``
runs moto's own server after adding, inside that server process only (the
plugin and boto3 are untouched and talk real HTTP to it):

* ``UpdateEndpoint``: the endpoint switches to the named (existing) endpoint
  configuration and stays ``InService``, as SageMaker's does once the new
  fleet is healthy; an unknown endpoint or configuration is a ``ValidationException``;
* ``StopTrainingJob``: an ``InProgress`` job becomes ``Stopping``, then
  ``Stopped`` on the next describe; any other job is a ``ValidationException``
  (as on AWS);
* a test knob, set with the real ``AddTags`` call: a training job tagged
  ``moto-ext:status`` (``InProgress``, ``Completed``, ``Failed``) reports that
  status, with ``moto-ext:failure-reason`` as its ``FailureReason``; a job
  created with that tag starts in that status.

Not imported by the backends; moto is imported only in the server process.
"""

from __future__ import annotations

import datetime
import sys
from typing import Any

from mlops_sdk.testing.cloud_servers import MotoServer

STATUS_TAG = "moto-ext:status"
REASON_TAG = "moto-ext:failure-reason"


class SageMakerMotoServer(MotoServer):
    """:class:`~mlops_sdk.testing.cloud_servers.MotoServer` running ``python -m mlops_sdk_aws.moto_server``."""

    @classmethod
    def start(
        cls, *, port: int | None = None, env: dict[str, str] | None = None, module: str = "mlops_sdk_aws.moto_server"
    ) -> SageMakerMotoServer:
        server = super().start(port=port, env=env, module=module)
        assert isinstance(server, SageMakerMotoServer)
        return server


def _patch() -> None:
    """Add the missing calls to moto's SageMaker (in this, the server's, process)."""
    from moto.core.responses import ActionResult, EmptyResult
    from moto.sagemaker import models, responses
    from moto.sagemaker.exceptions import ValidationError

    def _update_endpoint(self: Any) -> ActionResult:
        backend = self.sagemaker_backend
        name = self._get_param("EndpointName")
        config_name = self._get_param("EndpointConfigName")
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise ValidationError(message=f"Could not find endpoint '{name}'.")
        config = backend.endpoint_configs.get(config_name)
        if config is None:
            raise ValidationError(message=f"Could not find endpoint configuration '{config_name}'.")
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
        endpoint.endpoint_status = "InService"
        endpoint.last_modified_time = datetime.datetime.now(datetime.UTC)
        return ActionResult({"EndpointArn": endpoint.arn})


    def _stop_training_job(self: Any) -> EmptyResult:
        backend = self.sagemaker_backend
        name = self._get_param("TrainingJobName")
        job = backend.training_jobs.get(name)
        if job is None:
            raise ValidationError(message=f"Could not find training job '{name}'.")
        _apply_tags(job)
        if job.training_job_status != "InProgress":
            raise ValidationError(message=f"The training job {name} is {job.training_job_status} and cannot be stopped.")
        job._ext_status = "Stopping"
        job.training_job_status = job.secondary_status = "Stopping"
        return EmptyResult()


    def _apply_tags(job: Any) -> None:
        ext = getattr(job, "_ext_status", None)
        if ext == "Stopping":  # one describe later it has stopped
            job._ext_status = "Stopped"
            job.training_job_status = job.secondary_status = "Stopped"
            return
        if ext == "Stopped":
            return
        tags = {t["Key"]: t["Value"] for t in job.tags or []}
        if STATUS_TAG in tags:
            job.training_job_status = job.secondary_status = tags[STATUS_TAG]
            job.failure_reason = tags.get(REASON_TAG)


    _describe = models.SageMakerModelBackend.describe_training_job


    def _describe_training_job(self: Any, training_job_name: str) -> dict[str, Any]:
        job = self.training_jobs.get(training_job_name)
        if job is not None:
            _apply_tags(job)
        answer = dict(_describe(self, training_job_name))
        if job is not None and getattr(job, "failure_reason", None):
            answer["FailureReason"] = job.failure_reason
        return answer


    responses.SageMakerResponse.update_endpoint = _update_endpoint  # type: ignore[attr-defined]
    responses.SageMakerResponse.stop_training_job = _stop_training_job  # type: ignore[attr-defined]
    models.SageMakerModelBackend.describe_training_job = _describe_training_job  # type: ignore[method-assign]


if __name__ == "__main__":
    _patch()
    from moto.server import main

    main(sys.argv[1:])
