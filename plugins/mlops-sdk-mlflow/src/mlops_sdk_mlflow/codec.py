"""How mlops-sdk values are written as MLflow params, tags and metrics, and read back.

Pure functions over plain data (no MLflow import), so they are tested directly.

* **Params.** MLflow stores every param as a string. Strings are stored as
  they are; any other value (numbers, booleans, None, lists, dicts) is stored
  as its JSON text, the same text :func:`mlops_sdk.query.param_text` gives, so
  a filter such as ``params.n = '100'`` means the same on both sides. Which
  keys hold JSON is recorded in tags named ``mlops.param_json.<suffix>``, each
  a JSON list of keys (one such tag per write, so concurrent writers never
  overwrite each other's list), written *before* the params they describe, so
  no reader ever sees a typed param without its type. Reading decodes exactly
  those keys.
* **Tags.** MLflow's own ``mlflow.*`` tags (run name, parent, source, user…)
  and this plugin's bookkeeping tags (``mlops.param_json.*``,
  ``mlops.error``) are hidden when runs are read back; only the tag
  ``mlflow.source_run_id`` written by ``mlops import-mlflow`` stays visible.
* **Metrics.** MLflow's SQL stores keep ``±inf`` as ``±1.7976931348623157e308``
  (the largest double); that value is read back as ``±inf``. Timestamps are
  whole milliseconds on MLflow's side.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from mlops_sdk.errors import InvalidName, InvalidValue
from mlops_sdk.query import param_text

#: Limits of MLflow's tracking API (``mlflow.utils.validation``).
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_BYTES = 900_000  # MLflow refuses log_batch requests over 1e6 bytes; keep a margin

PARAM_JSON_TAG = "mlops.param_json"
ERROR_TAG = "mlops.error"
SOURCE_RUN_TAG = "mlflow.source_run_id"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
MLFLOW_PREFIX = "mlflow."
VISIBLE_MLFLOW_TAGS = frozenset({SOURCE_RUN_TAG})

DBL_MAX = 1.7976931348623157e308

_KEY = re.compile(r"^[/\w.\- :]*$")


def check_key(kind: str, key: str) -> str:
    """Refuse keys MLflow would refuse, before anything is sent.

    MLflow allows letters, digits, ``_ - . / :`` and spaces, at most 250
    characters, and no ``.``/``..`` path tricks.
    """
    if not isinstance(key, str) or not key:
        raise InvalidName(f"{kind} must be a non-empty string for MLflow, got {key!r}")
    if len(key) > MAX_KEY:
        raise InvalidName(
            f"{kind} {key[:40]!r}… is longer than MLflow's limit of {MAX_KEY} characters"
        )
    if not _KEY.match(key):
        raise InvalidName(
            f"{kind} {key!r} is not allowed by MLflow: names may only contain letters, digits, "
            "underscores, dashes, periods, spaces, colons and slashes"
        )
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise InvalidName(
            f"{kind} {key!r} is not allowed by MLflow: it must be a normalised relative path"
        )
    return key


def encode_param(key: str, value: Any) -> tuple[str, bool]:
    """``(text, is_json)``: the string MLflow stores for ``value``."""
    check_key("param key", key)
    is_json = not isinstance(value, str)
    try:
        text = param_text(value)
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"param {key!r}: {value!r} cannot be stored in MLflow ({exc})") from exc
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidValue(
            f"param {key!r} is {len(text)} characters long as text; MLflow stores at most "
            f"{MAX_PARAM_VALUE}. Log it as an artifact instead."
        )
    return text, is_json


def check_tag(key: str, value: str) -> str:
    check_key("tag key", key)
    if not isinstance(value, str):
        raise InvalidValue(f"tag {key!r} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TAG_VALUE:
        raise InvalidValue(
            f"tag {key!r} is {len(value)} characters long; MLflow stores at most {MAX_TAG_VALUE}"
        )
    return value


def param_json_tags(keys: Iterable[str]) -> list[tuple[str, str]]:
    """Bookkeeping tags recording that ``keys`` hold JSON-encoded params (each within MLflow's limit).

    Each tag gets a fresh name, so writers never overwrite each other's lists.
    """
    tags: list[tuple[str, str]] = []
    chunk: list[str] = []
    for key in sorted(set(keys)):
        if chunk and len(json.dumps([*chunk, key], ensure_ascii=False)) > MAX_TAG_VALUE:
            tags.append(
                (f"{PARAM_JSON_TAG}.{uuid.uuid4().hex[:12]}", json.dumps(chunk, ensure_ascii=False))
            )
            chunk = []
        chunk.append(key)
    if chunk:
        tags.append(
            (f"{PARAM_JSON_TAG}.{uuid.uuid4().hex[:12]}", json.dumps(chunk, ensure_ascii=False))
        )
    return tags


def json_param_keys(tags: Mapping[str, str]) -> set[str]:
    """Keys whose params are JSON, from every ``mlops.param_json.*`` tag."""
    keys: set[str] = set()
    for tag, value in tags.items():
        if tag == PARAM_JSON_TAG or tag.startswith(PARAM_JSON_TAG + "."):
            try:
                listed = json.loads(value)
            except ValueError:
                continue
            if isinstance(listed, list):
                keys.update(k for k in listed if isinstance(k, str))
    return keys


def decode_params(params: Mapping[str, str], tags: Mapping[str, str]) -> dict[str, Any]:
    """Params as they were logged: JSON-typed keys decoded, every other value a string."""
    typed = json_param_keys(tags)
    out: dict[str, Any] = {}
    for key, text in params.items():
        if key in typed:
            try:
                out[key] = json.loads(text)
                continue
            except ValueError:  # written by someone else, or truncated: keep the text
                pass
        out[key] = text
    return out


def is_internal_tag(key: str) -> bool:
    """MLflow system tags and this plugin's bookkeeping, hidden from users."""
    if key.startswith(MLFLOW_PREFIX):
        return key not in VISIBLE_MLFLOW_TAGS
    return key in (ERROR_TAG, PARAM_JSON_TAG) or key.startswith(PARAM_JSON_TAG + ".")


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not is_internal_tag(k)}


def metric_from_mlflow(value: float) -> float:
    """MLflow's SQL stores keep ±inf as ±DBL_MAX: read those back as ±inf."""
    if value == DBL_MAX:
        return math.inf
    if value == -DBL_MAX:
        return -math.inf
    return float(value)


def to_millis(seconds: float) -> int:
    return round(seconds * 1000)


def from_millis(millis: int | None) -> float | None:
    return None if millis is None else millis / 1000


def error_tail(error: str) -> str:
    """An error text that fits one MLflow tag: the end of a traceback says the most."""
    if len(error) <= MAX_TAG_VALUE:
        return error
    marker = "…(truncated)\n"
    return marker + error[-(MAX_TAG_VALUE - len(marker)) :]


def context_tags(context: Mapping[str, Any]) -> dict[str, str]:
    """MLflow's ``mlflow.source.*`` tags for what a run's context says, where they map."""
    tags: dict[str, str] = {"mlflow.source.type": "LOCAL"}
    git = context.get("git")
    if isinstance(git, Mapping):
        for field, tag in (
            ("commit", "mlflow.source.git.commit"),
            ("branch", "mlflow.source.git.branch"),
            ("remote", "mlflow.source.git.repoURL"),
        ):
            value = git.get(field)
            if isinstance(value, str) and value:
                tags[tag] = value
    command = context.get("command")
    if isinstance(command, Mapping):
        argv = command.get("argv")
        if isinstance(argv, list) and argv and isinstance(argv[0], str) and argv[0]:
            tags["mlflow.source.name"] = argv[0]
    return {k: v[:MAX_TAG_VALUE] for k, v in tags.items()}


def context_from_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    """What can be said of a run's context from MLflow's tags (runs not created by mlops-sdk)."""
    git = {
        field: tags[tag]
        for field, tag in (
            ("commit", "mlflow.source.git.commit"),
            ("branch", "mlflow.source.git.branch"),
            ("remote", "mlflow.source.git.repoURL"),
        )
        if tags.get(tag)
    }
    out: dict[str, Any] = {}
    if git:
        out["git"] = git
    if tags.get("mlflow.source.name"):
        out["command"] = {"argv": [tags["mlflow.source.name"]]}
    return out
