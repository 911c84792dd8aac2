"""Typed errors raised by mlops-sdk.

Every error the library raises on purpose derives from :class:`MlopsError`, so
callers can catch one class. Each message says what was wrong and, where it
helps, what to do about it. Errors from deep inside a backend are wrapped at
the facade (``raise BackendError(...) from exc``) so users never have to know
which database or file system library sits underneath.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base class of every error mlops-sdk raises on purpose."""


class InvalidName(MlopsError, ValueError):
    """A name (experiment, run, metric, param, tag, artifact path…) is not allowed."""


class InvalidValue(MlopsError, ValueError):
    """A value has the wrong type or is out of range (NaN/inf where not allowed…)."""


class InvalidFilter(MlopsError, ValueError):
    """A run filter or order-by expression could not be parsed."""


class ConfigError(MlopsError):
    """The workspace configuration (arguments, env, mlops.toml) is inconsistent."""


class UnknownScheme(ConfigError):
    """A backend URI uses a scheme no installed plugin provides."""


class MissingDependency(MlopsError, ImportError):
    """A feature needs an optional package that is not installed."""


class PluginError(MlopsError):
    """A plugin failed to import, register or run; the message names the plugin."""


class NotFound(MlopsError, LookupError):
    """Base class of lookups that found nothing."""


class RunNotFound(NotFound):
    """No run has the given id."""


class ExperimentNotFound(NotFound):
    """No experiment has the given name or id."""


class ArtifactNotFound(NotFound):
    """A run has no artifact at the given path."""


class ObjectNotFound(NotFound):
    """The storage backend holds no object under the given key."""


class DatasetNotFound(NotFound):
    """No dataset of that name, or it has no versions yet."""


class ModelNotFound(NotFound):
    """No registered model of that name."""


class VersionNotFound(NotFound):
    """No such version (number, id or alias) of a dataset or model."""


class AliasNotFound(VersionNotFound):
    """A model alias (such as ``production``) that points at no version."""


class CheckoutConflict(MlopsError):
    """A checkout would overwrite or delete local changes that are stored nowhere (use ``force``)."""


class FlavorError(MlopsError):
    """No model flavor recognises an object, or a flavor cannot save or load a model."""


class UnsafeModel(MlopsError):
    """Loading this model would run pickle (arbitrary code); it needs an explicit opt-in."""


class SignatureMismatch(InvalidValue):
    """Prediction input does not match the model's signature (names the column or shape)."""


class GateFailed(MlopsError):
    """A promotion requirement does not hold; the message says which and why."""


class RunNotActive(MlopsError):
    """Something was logged to a run that has already ended, or no run is active."""


class ParamConflict(MlopsError, ValueError):
    """A parameter was logged twice with different values (params are immutable)."""


class IntegrityError(MlopsError):
    """Stored bytes do not match their recorded hash (corruption or tampering)."""


class BackendError(MlopsError):
    """A backend failed; the message names the backend and the cause is chained."""


class AuthenticationError(BackendError):
    """A backend refused the credentials (wrong key, expired token, no permission); the message names the backend."""


class JobError(MlopsError):
    """A compute job failed, was cancelled, or its result cannot be read."""


class PipelineError(MlopsError):
    """A pipeline is malformed (a cycle, a missing upstream step, a duplicate step name) or cannot run."""


class StepOutputError(PipelineError, InvalidValue):
    """A pipeline step returned a value that cannot be stored (names the step and the type)."""


class StepFailed(PipelineError):
    """A pipeline step raised; ``PipelineResult.raise_for_status()`` names the step and its error."""


class PortInUse(MlopsError, OSError):
    """A model server cannot bind its port: another process already listens there."""


class ServerError(MlopsError):
    """A model server failed to start or stopped unexpectedly (the message has its output)."""


class NotReproducible(MlopsError):
    """A run cannot be re-executed from its record (no git commit, commit missing, no command…); the message says why."""


class AlertDeliveryError(MlopsError):
    """A monitoring alert sink (log, webhook) could not deliver an alert; the message names the sink."""


class DeploymentError(MlopsError):
    """A deployment could not be started, updated, rolled back or reached."""


class DeploymentNotFound(NotFound):
    """No deployment of that name."""


__all__ = [
    "AlertDeliveryError",
    "AliasNotFound",
    "ArtifactNotFound",
    "AuthenticationError",
    "BackendError",
    "CheckoutConflict",
    "ConfigError",
    "DatasetNotFound",
    "DeploymentError",
    "DeploymentNotFound",
    "ExperimentNotFound",
    "FlavorError",
    "GateFailed",
    "IntegrityError",
    "InvalidFilter",
    "InvalidName",
    "InvalidValue",
    "JobError",
    "MissingDependency",
    "MlopsError",
    "ModelNotFound",
    "NotFound",
    "NotReproducible",
    "ObjectNotFound",
    "ParamConflict",
    "PipelineError",
    "PluginError",
    "PortInUse",
    "RunNotActive",
    "RunNotFound",
    "ServerError",
    "SignatureMismatch",
    "StepFailed",
    "StepOutputError",
    "UnknownScheme",
    "UnsafeModel",
    "VersionNotFound",
]
