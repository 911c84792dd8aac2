"""Checks applied once, at the API boundary, to everything a user passes in.

Names that can become paths are held to the strictest rules; metric, param and
tag keys may contain ``/`` (``train/loss``) because they never touch a file
system. Values are normalised here (numpy scalars to Python numbers) so the
stores only ever see plain, checked data.
"""

from __future__ import annotations

import json
import math
import operator
import re
import sys
from typing import Any

from mlops_sdk.errors import InvalidName, InvalidValue

MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 250
MAX_PARAM_BYTES = 64 * 1024
MAX_TAG_LENGTH = 64 * 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Lone surrogates (from bytes decoded with surrogateescape) cannot be stored as UTF-8 anywhere.
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_STEP = 2**63 - 1  # a signed 64-bit integer in every database


def _check_text(kind: str, name: object, limit: int) -> str:
    if not isinstance(name, str):
        raise InvalidName(f"{kind} must be a string, got {type(name).__name__}: {name!r}")
    if not name or not name.strip():
        raise InvalidName(f"{kind} must not be empty")
    if len(name) > limit:
        raise InvalidName(
            f"{kind} is {len(name)} characters long; the limit is {limit}: {name[:40]!r}…"
        )
    if _CONTROL.search(name):
        raise InvalidName(f"{kind} contains a control character: {name!r}")
    if _SURROGATE.search(name):
        raise InvalidName(f"{kind} is not valid Unicode (it holds a lone surrogate): {name!r}")
    if name != name.strip():
        raise InvalidName(f"{kind} must not start or end with white space: {name!r}")
    return name


def validate_name(kind: str, name: object) -> str:
    """Validate the name of an entity (experiment, dataset, model, deployment).

    Such names may end up as folder names, so path separators and the special
    names ``.`` and ``..`` are refused.

    >>> validate_name("experiment name", "churn v2")
    'churn v2'
    """
    text = _check_text(kind, name, MAX_NAME_LENGTH)
    if "/" in text or "\\" in text:
        raise InvalidName(f"{kind} must not contain a path separator ('/' or '\\'): {text!r}")
    if text in (".", ".."):
        raise InvalidName(f"{kind} must not be {text!r}")
    return text


def validate_key(kind: str, key: object) -> str:
    """Validate a metric, param or tag key. ``/`` is allowed, ``..`` segments are not."""
    text = _check_text(kind, key, MAX_KEY_LENGTH)
    if text.startswith("/") or text.endswith("/") or "//" in text:
        raise InvalidName(f"{kind} must not start or end with '/' or contain '//': {text!r}")
    if any(part in (".", "..") for part in text.split("/")):
        raise InvalidName(f"{kind} must not contain '.' or '..' segments: {text!r}")
    return text


def validate_relpath(kind: str, path: object) -> str:
    """Validate a relative POSIX path inside a store (artifact paths, object keys).

    Refuses absolute paths, backslashes, empty segments and ``.``/``..`` so a
    stored name can never escape its folder.
    """
    if not isinstance(path, str):
        raise InvalidName(f"{kind} must be a string, got {type(path).__name__}")
    if not path:
        raise InvalidName(f"{kind} must not be empty")
    if _CONTROL.search(path):
        raise InvalidName(f"{kind} contains a control character: {path!r}")
    if _SURROGATE.search(path):
        raise InvalidName(f"{kind} is not valid Unicode (it holds a lone surrogate): {path!r}")
    if "\\" in path:
        raise InvalidName(f"{kind} must use '/' separators, not '\\': {path!r}")
    if path.startswith("/"):
        raise InvalidName(f"{kind} must be relative, not absolute: {path!r}")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidName(f"{kind} must not contain empty, '.' or '..' segments: {path!r}")
    return path


def to_metric_value(key: str, value: object) -> float:
    """Turn a metric value into a float. NaN and ±inf are allowed and kept."""
    if type(value) is float:
        return value
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise InvalidValue(
            f"metric {key!r} must be a number, got {type(value).__name__}: {value!r}"
        )
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidValue(
            f"metric {key!r} must be a number, got {type(value).__name__}: {value!r}"
        ) from exc


def to_logged_metric(key: str, value: object) -> Any:
    """A metric value for the background writer: a float, or a snapshot of a torch scalar.

    ``float(tensor)`` on a GPU waits until the GPU has finished everything queued
    so far; done once per logged step it stalls the training loop. A torch
    tensor is therefore not read here: its one element is copied on its own
    device (queued like any kernel, so later in-place changes to the tensor do
    not reach the copy), and the writer thread reads the copies of a whole
    batch at once. The shape and dtype are checked now, without waiting. A
    tensor in CPU memory is read at once (that costs nothing).
    """
    if type(value) is float:
        return value
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        return to_metric_value(key, value)
    if value.numel() != 1:
        raise InvalidValue(
            f"metric {key!r} must be a single number, got a tensor of shape {tuple(value.shape)}; "
            "log a reduction of it, such as tensor.mean()"
        )
    if value.dtype.is_complex:
        raise InvalidValue(f"metric {key!r} must be a real number, got a {value.dtype} tensor")
    if value.is_cpu:  # reading it costs nothing: no device to wait for
        return float(value.detach() if value.requires_grad else value)
    return value.detach().clone() if value.ndim == 0 else value.detach().reshape(()).clone()


def to_step(key: str, step: object) -> int:
    """A step is a non-negative integer (numpy integers accepted, bool and float refused)."""
    if type(step) is int:
        if step < 0:
            raise InvalidValue(f"step of metric {key!r} must be >= 0, got {step}")
        if step > MAX_STEP:
            raise InvalidValue(f"step of metric {key!r} must be at most 2**63 - 1, got {step}")
        return step
    if isinstance(step, bool):
        raise InvalidValue(f"step of metric {key!r} must be an integer, got bool")
    try:
        number = operator.index(step)  # type: ignore[arg-type]
    except TypeError as exc:
        raise InvalidValue(
            f"step of metric {key!r} must be an integer, got {type(step).__name__}: {step!r}"
        ) from exc
    if number < 0:
        raise InvalidValue(f"step of metric {key!r} must be >= 0, got {number}")
    if number > MAX_STEP:
        raise InvalidValue(f"step of metric {key!r} must be at most 2**63 - 1, got {number}")
    return number


def to_timestamp(key: str, timestamp: object) -> float:
    """A timestamp is finite seconds since the epoch."""
    try:
        value = float(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidValue(
            f"timestamp of {key!r} must be seconds since the epoch: {timestamp!r}"
        ) from exc
    if not math.isfinite(value) or isinstance(timestamp, bool):
        raise InvalidValue(f"timestamp of {key!r} must be a finite number, got {timestamp!r}")
    return value


def _plain(value: Any, key: str) -> Any:
    """Convert numpy scalars/arrays and tuples to JSON-ready Python values."""
    if isinstance(value, str):
        if "\x00" in value:  # PostgreSQL text cannot hold NUL; refuse it everywhere alike
            raise InvalidValue(f"param {key!r} contains a NUL character")
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"param {key!r} must be finite, got {value!r}")
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidValue(f"param {key!r}: dict keys must be strings, got {k!r}")
            out[k] = _plain(v, key)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, key) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:  # numpy / torch scalars
        return _plain(item(), key)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _plain(tolist(), key)
    raise InvalidValue(
        f"param {key!r} must be a string, number, bool, None, or a list/dict of those; "
        f"got {type(value).__name__}"
    )


def to_param_value(key: str, value: object) -> Any:
    """Normalise a param value; it must round-trip through JSON unchanged."""
    plain = _plain(value, key)
    try:
        encoded = json.dumps(plain, ensure_ascii=False, allow_nan=False).encode()
    except ValueError as exc:  # lone surrogates; integers too long to write out
        raise InvalidValue(f"param {key!r} cannot be stored: {exc}") from exc
    if len(encoded) > MAX_PARAM_BYTES:
        raise InvalidValue(f"param {key!r} is larger than {MAX_PARAM_BYTES} bytes once encoded")
    return plain


def to_tag_value(key: str, value: object) -> str:
    """Tags are text; numbers and bools are written as text."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (bool, int, float)):
        text = str(value)
    else:
        raise InvalidValue(f"tag {key!r} must be a string, got {type(value).__name__}: {value!r}")
    if len(text) > MAX_TAG_LENGTH:
        raise InvalidValue(f"tag {key!r} is longer than {MAX_TAG_LENGTH} characters")
    if "\x00" in text:
        raise InvalidValue(f"tag {key!r} contains a NUL character")
    if _SURROGATE.search(text):
        raise InvalidValue(f"tag {key!r} is not valid Unicode (it holds a lone surrogate)")
    return text
