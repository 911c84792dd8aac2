"""Alerts that monitoring raises, and their delivery.

An :class:`Alert` is plain data: what kind of problem (``drift``,
``performance`` or ``bias``), about what (a column, a metric, a sensitive
attribute), the measured value and the threshold it crossed.

Delivery is the only I/O here. :func:`deliver` sends each alert to the
built-in sinks named by the caller and then to every plugin that implements
the ``mlops_alert(alert)`` hook:

- ``"log"``: a ``WARNING`` record on the ``mlops_sdk.monitor`` logger;
- ``"webhook:https://host/path"``: an HTTP POST of the alert as JSON
  (``Content-Type: application/json``), with a timeout.

>>> from mlops_sdk.monitor import Alert
>>> a = Alert("drift", "age", "age drifted (wasserstein 0.31 > 0.1)", 0.31, 0.1)
>>> a.to_dict()["kind"]
'drift'
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import attrs

from mlops_sdk.errors import AlertDeliveryError, InvalidValue, MlopsError

KINDS = ("drift", "performance", "bias")
AlertKind = Literal["drift", "performance", "bias"]
logger = logging.getLogger("mlops_sdk.monitor")
WEBHOOK_TIMEOUT_S = 10.0


def _check_kind(_instance: Any, _attribute: Any, value: str) -> None:
    if value not in KINDS:
        raise InvalidValue(f"alert kind must be one of {', '.join(KINDS)}, not {value!r}")


@attrs.frozen
class Alert:
    """One threshold crossed.

    ``kind`` is ``drift``, ``performance`` or ``bias``; ``subject`` names the
    column, metric or attribute; ``value`` is what was measured and
    ``threshold`` the limit it crossed (``None`` where not a single number).
    """

    kind: str = attrs.field(validator=_check_kind)
    subject: str
    message: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become ``None``)."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "value": _finite(self.value),
            "threshold": _finite(self.threshold),
        }


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def parse_sink(spec: str) -> tuple[str, str]:
    """``"log"`` to ``("log", "")``; ``"webhook:URL"`` to ``("webhook", URL)`` (http/https only)."""
    if spec == "log":
        return "log", ""
    kind, sep, target = spec.partition(":")
    if kind == "webhook" and sep:
        if not target.startswith(("http://", "https://")):
            raise InvalidValue(f"webhook sink needs an http:// or https:// URL, got {target!r}")
        return "webhook", target
    raise InvalidValue(f"unknown alert sink {spec!r}: use 'log' or 'webhook:https://…'")


def send_log(alert: Alert) -> None:
    """The ``log`` sink: one WARNING record on the ``mlops_sdk.monitor`` logger."""
    logger.warning("[%s] %s: %s", alert.kind, alert.subject, alert.message)


def send_webhook(alert: Alert, url: str, *, timeout: float = WEBHOOK_TIMEOUT_S) -> None:
    """The ``webhook`` sink: POST the alert as JSON; a non-2xx answer or no answer is an error."""
    body = json.dumps(alert.to_dict()).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked in parse_sink
            status = response.status
    except urllib.error.HTTPError as exc:
        raise AlertDeliveryError(f"webhook {url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise AlertDeliveryError(f"webhook {url} failed: {exc}") from exc
    if not 200 <= status < 300:
        raise AlertDeliveryError(f"webhook {url} answered HTTP {status}")


def deliver(
    alerts: Iterable[Alert],
    sinks: Sequence[str] = (),
    *,
    plugins: bool = True,
    timeout: float = WEBHOOK_TIMEOUT_S,
) -> None:
    """Send every alert to each sink in ``sinks`` and (``plugins=True``) to the ``mlops_alert`` hook.

    A failing sink does not stop the others; after every alert was tried, the
    first failure is raised as :class:`AlertDeliveryError` (plugin failures as
    :class:`~mlops_sdk.errors.PluginError`).

    >>> deliver([Alert("drift", "age", "age drifted", 0.3, 0.1)], ["log"], plugins=False)
    """
    parsed = [parse_sink(s) for s in sinks]  # bad specs fail before anything is sent
    alerts = list(alerts)
    if not alerts:
        return
    manager = None
    if plugins:
        from mlops_sdk.plugins import get_plugin_manager

        manager = get_plugin_manager()
    failures: list[MlopsError] = []
    for alert in alerts:
        for kind, target in parsed:
            try:
                if kind == "log":
                    send_log(alert)
                else:
                    send_webhook(alert, target, timeout=timeout)
            except AlertDeliveryError as exc:
                failures.append(exc)
        if manager is not None:
            try:
                manager.call("mlops_alert", alert=alert)
            except MlopsError as exc:
                failures.append(exc)
    if failures:
        raise failures[0]


__all__ = ["KINDS", "Alert", "AlertDeliveryError", "deliver", "parse_sink", "send_log", "send_webhook"]
