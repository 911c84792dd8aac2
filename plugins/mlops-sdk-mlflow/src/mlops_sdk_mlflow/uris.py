"""mlops-sdk tracking URIs (``mlflow+…``) and the MLflow tracking URIs they stand for."""

from __future__ import annotations

from mlops_sdk.errors import ConfigError

#: Our scheme → how to build MLflow's tracking URI from the rest of the URI.
SCHEMES = {
    "mlflow+http": "an MLflow tracking server: mlflow+http://host:5000",
    "mlflow+https": "an MLflow tracking server over TLS: mlflow+https://mlflow.example.com",
    "mlflow+databricks": "Databricks-hosted MLflow: mlflow+databricks or mlflow+databricks://PROFILE",
    "mlflow+azureml": "Azure ML's MLflow endpoint: mlflow+azureml://REGION.api.azureml.ms/mlflow/v1.0/… (needs azureml-mlflow)",
}


def to_mlflow_uri(uri: str) -> str:
    """``mlflow+http://h:5000`` → ``http://h:5000``; ``mlflow+databricks`` → ``databricks``.

    >>> to_mlflow_uri("mlflow+https://mlflow.example.com/")
    'https://mlflow.example.com'
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = uri.partition(":")[0], ""
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"{uri!r} is not an MLflow tracking URI this plugin understands; use one of "
            + ", ".join(f"{s}://…" for s in sorted(SCHEMES))
        )
    target = scheme.split("+", 1)[1]
    if target in ("http", "https"):
        if not rest or rest.startswith("/"):
            raise ConfigError(f"{uri!r} names no host: write {scheme}://HOST:PORT")
        return f"{target}://{rest.rstrip('/')}"
    if target == "databricks":
        return f"databricks://{rest}" if rest else "databricks"
    return f"{target}://{rest}"


def is_http(mlflow_uri: str) -> bool:
    return mlflow_uri.startswith(("http://", "https://"))
