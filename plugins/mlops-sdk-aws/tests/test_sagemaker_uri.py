"""The sagemaker:// URI, names and requests, checked without any server call."""

from __future__ import annotations

import json

import pytest
from aws_testutil import IMAGE, ROLE
from hypothesis import given
from hypothesis import strategies as st
from mlops_sdk.compute.base import JobState
from mlops_sdk.errors import ConfigError, InvalidValue

from mlops_sdk_aws.common import parse_uri, sm_name, validate_name
from mlops_sdk_aws.compute import hyperparameters, map_state
from mlops_sdk_aws.deployer import owned_pattern, resource_name

BUCKET = "s3://my-bucket/team/ml"


def test_a_full_uri_parses() -> None:
    t = parse_uri(
        f"sagemaker://eu-west-1?role={ROLE}&bucket={BUCKET}/&image={IMAGE}&instance_type=ml.g5.xlarge"
        "&instance_count=2&max_runtime=7200&volume_size=50&timeout=900&variant=blue&poll=2"
    )
    assert (t.region, t.role, t.bucket, t.image) == ("eu-west-1", ROLE, BUCKET, IMAGE)
    assert (t.instance_type, t.instance_count, t.max_runtime, t.volume_size) == ("ml.g5.xlarge", 2, 7200, 50)
    assert (t.timeout, t.variant, t.poll) == (900.0, "blue", 2.0)
    assert t.s3_url("sagemaker/x/model.tar.gz") == f"{BUCKET}/sagemaker/x/model.tar.gz"
    assert parse_uri("sagemaker://").region is None  # region from the AWS chain


@pytest.mark.parametrize(
    ("uri", "error", "words"),
    [
        ("s3://bucket", ConfigError, "not a SageMaker URI"),
        ("sagemaker://AKIA:secret@us-east-1", ConfigError, "must not carry credentials"),
        ("sagemaker://us-east-1?aws_secret_access_key=x", ConfigError, "looks like a secret"),
        ("sagemaker://us-east-1?session_token=x", ConfigError, "looks like a secret"),
        ("sagemaker://us-east-1?colour=red", ConfigError, "unknown option"),
        ("sagemaker://us-east-1?role=a&role=b", ConfigError, "given twice"),
        ("sagemaker://us-east-1/path", ConfigError, "no path"),
        ("sagemaker://mars-1", InvalidValue, "not an AWS region"),
        ("sagemaker://us-east-1?role=admin", InvalidValue, "IAM role ARN"),
        ("sagemaker://us-east-1?bucket=my-bucket", InvalidValue, "s3://BUCKET"),
        ("sagemaker://us-east-1?bucket=s3://B_ad", InvalidValue, "s3://BUCKET"),
        ("sagemaker://us-east-1?instance_type=m5.large", InvalidValue, "instance type"),
        ("sagemaker://us-east-1?instance_count=0", InvalidValue, "instance_count"),
        ("sagemaker://us-east-1?max_runtime=soon", InvalidValue, "whole number"),
        ("sagemaker://us-east-1?variant=blue_green", InvalidValue, "SageMaker name"),
        ("sagemaker://us-east-1?image=bad image", InvalidValue, "image reference"),
    ],
)
def test_bad_uris_are_refused(uri: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        parse_uri(uri)


def test_missing_role_and_bucket_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="missing role, bucket"):
        parse_uri("sagemaker://us-east-1").require("sagemaker deployer", "role", "bucket")


@given(st.text(max_size=120))
def test_sm_name_always_gives_a_valid_name(text: str) -> None:
    assert validate_name("name", sm_name(text)) == sm_name(text)


@given(st.from_regex(r"[A-Za-z0-9](-?[A-Za-z0-9]){0,19}", fullmatch=True), st.integers(1, 10**6))
def test_release_names_are_valid_and_owned_only_by_their_deployment(name: str, version: int) -> None:
    release = resource_name(name, version)
    assert validate_name("release", release) == release
    assert owned_pattern(name).fullmatch(release)
    assert not owned_pattern(name + "x").fullmatch(release)


@given(st.dictionaries(st.text(min_size=1, max_size=20).filter(lambda k: not k.startswith("mlops.")),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                    lambda inner: st.lists(inner, max_size=3), max_leaves=5),
                       max_size=10))
def test_hyperparameters_round_trip_as_json_text(params: dict[str, object]) -> None:
    hp = hyperparameters(params, {"mlops.job": "j"})
    assert all(isinstance(v, str) for v in hp.values())
    assert {k: json.loads(v) for k, v in hp.items() if k != "mlops.job"} == params


def test_hyperparameter_limits() -> None:
    with pytest.raises(InvalidValue, match="at most 2500"):
        hyperparameters({"big": "x" * 3000}, {})
    with pytest.raises(InvalidValue, match="not mlops"):
        hyperparameters({"mlops.spec": 1}, {})


def test_state_mapping() -> None:
    assert [map_state(s) for s in ("InProgress", "Completed", "Failed", "Stopping", "Stopped", "Starting")] == [
        JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.CANCELLED, JobState.PENDING,
    ]


def test_plugin_registers_without_importing_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlops_sdk.plugins as p; r = p.get_plugin_manager().registry;"
        "print(r.lookup('compute', 'sagemaker://us-east-1').scheme, r.lookup('deployer', 'sagemaker://x').scheme,"
        " 'boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "MLOPS_PLUGINS": "aws"})
    assert out.stdout.split() == ["sagemaker", "sagemaker", "False"]
