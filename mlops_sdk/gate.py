"""Promotion gates: may this model version take an alias such as ``production``?

A gate is a list of requirements plus, optionally, a baseline to beat. Both
are pure functions of the facts a model version carries (its metrics and
tags), so CI can call them through ``mlops models promote`` and tests can call
them directly::

    from mlops_sdk import gate

    report = gate.evaluate(
        mv,
        requires=["metrics.accuracy >= 0.9", "tags.approved = 'yes'"],
        better_than=m.alias("production"),     # None: nothing to beat yet
    )
    report.passed; report.checks               # each: requirement, actual, passed, reason

    gate.promote(m, 3, "production", requires=[...], better_than="production")

**Requirements** use the run filter language of :mod:`mlops_sdk.query`
(``and``, ``or``, parentheses, ``in (…)``, ``like``), restricted to the fields
a model version has: ``metrics.KEY`` (numbers) and ``tags.KEY`` (quoted text).
A requirement on a metric the version does not have fails with the reason
"metric KEY was not logged"; a NaN metric fails every comparison.

**Better than a baseline.** The candidate must be *strictly* better than the
baseline version on every compared metric (a tie fails). The compared metrics
are ``metric`` when it is given, else every ``metrics.KEY`` named in the
requirements. Which way is better, for each metric:

1. ``mode`` (``"max"`` or ``"min"``) when given;
2. else the direction of the requirement that names the metric:
   ``metrics.accuracy >= 0.9`` means higher is better, ``metrics.rmse < 30``
   lower (``=``, ``!=``, ``in`` give no direction);
3. else the metric's name: lower is better when one of its words (split on
   ``_ - . / :``, spaces and camelCase) is in :data:`LOWER_IS_BETTER`
   (``loss``, ``error``, ``rmse``, ``mae``…), unless the name starts with
   ``neg`` (scikit-learn's negated scores such as ``neg_mean_squared_error``
   are higher-is-better); higher is better otherwise.

A baseline that is missing (the alias points nowhere yet) means there is
nothing to beat: the check passes and says so. So does a baseline that lacks
the metric, or has NaN for it. A candidate that *is* the baseline version
passes (promoting it again changes nothing).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from mlops_sdk.errors import GateFailed, InvalidFilter, InvalidValue
from mlops_sdk.query import And, Comparison, Expr, Or, matches, parse_filter

if TYPE_CHECKING:
    from mlops_sdk.model import Model, ModelVersion

Mode = Literal["max", "min"]
MODES: tuple[Mode, ...] = ("max", "min")

#: words that make a metric lower-is-better when no mode or requirement says otherwise
LOWER_IS_BETTER = frozenset(
    {
        "loss", "error", "err", "errors", "mse", "rmse", "mae", "mape", "smape", "msle",
        "rmsle", "logloss", "nll", "perplexity", "ppl", "wer", "cer", "ter", "brier",
        "deviance", "fpr", "fnr", "far", "frr", "eer", "latency", "regret", "cost",
        "distance", "divergence", "kl", "hamming", "miss", "misses",
    }
)
_HIGHER_OPS = (">", ">=")
_LOWER_OPS = ("<", "<=")


class Candidate(Protocol):
    """What a gate reads from a model version: its name, number, metrics and tags."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...

    @property
    def tags(self) -> Mapping[str, str]: ...


# -- requirements ------------------------------------------------------------------------------
@attrs.frozen
class Requirement:
    """One requirement such as ``metrics.accuracy >= 0.9``, parsed once."""

    text: str
    expr: Expr

    @classmethod
    def parse(cls, text: str | Requirement) -> Requirement:
        """Parse ``text``; raise :class:`~mlops_sdk.errors.InvalidFilter` saying what is wrong."""
        if isinstance(text, Requirement):
            return text
        if not isinstance(text, str):
            raise InvalidFilter(f"a requirement must be a string such as \"metrics.accuracy >= 0.9\", got {type(text).__name__}")
        if not text.strip():
            raise InvalidFilter('empty requirement: write one such as "metrics.accuracy >= 0.9"')
        try:
            expr = parse_filter(text)
        except InvalidFilter as exc:
            raise InvalidFilter(f"invalid requirement {text!r}: {exc}") from None
        assert expr is not None  # a non-blank filter always parses to an expression
        for cmp in _comparisons(expr):
            if cmp.field not in ("metrics", "tags"):
                name = cmp.key if cmp.field == "attributes" else f"{cmp.field}.{cmp.key}"
                raise InvalidFilter(
                    f"invalid requirement {text!r}: {name} is not something a model version has; "
                    "a requirement tests metrics.KEY (a number) or tags.KEY (quoted text)"
                )
        return cls(text.strip(), expr)

    @property
    def metric_keys(self) -> list[str]:
        """The metrics this requirement names, in order of appearance."""
        return _unique(c.key for c in _comparisons(self.expr) if c.field == "metrics")

    def __str__(self) -> str:
        return self.text


def parse_requirements(texts: Iterable[str | Requirement]) -> list[Requirement]:
    """Parse every requirement (the first bad one raises ``InvalidFilter``)."""
    if isinstance(texts, str):
        texts = [texts]
    return [Requirement.parse(t) for t in texts]


def _comparisons(expr: Expr) -> list[Comparison]:
    if isinstance(expr, Comparison):
        return [expr]
    return [c for item in expr.items for c in _comparisons(item)]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- the direction of a metric ------------------------------------------------------------------
def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def default_mode(metric: str) -> Mode:
    """``"min"`` when the name says loss or error (see the module docstring), else ``"max"``.

    >>> default_mode("val_loss"), default_mode("accuracy"), default_mode("neg_mean_squared_error")
    ('min', 'max', 'max')
    """
    words = _words(metric)
    if words and words[0] in ("neg", "negative"):
        return "max"
    return "min" if any(w in LOWER_IS_BETTER for w in words) else "max"


def _check_mode(mode: str | None) -> Mode | None:
    if mode is None:
        return None
    if mode not in MODES:
        raise InvalidValue(f"mode must be 'max' or 'min', got {mode!r}")
    return mode


def metric_mode(metric: str, requirements: Sequence[Requirement] = (), mode: str | None = None) -> tuple[Mode, str]:
    """Which way ``metric`` is better, and why (for the report)."""
    checked = _check_mode(mode)
    if checked is not None:
        return checked, f"{_better(checked)}: mode {checked}"
    for req in requirements:
        for cmp in _comparisons(req.expr):
            if cmp.field == "metrics" and cmp.key == metric:
                if cmp.op in _HIGHER_OPS:
                    return "max", "higher is better, per the requirement"
                if cmp.op in _LOWER_OPS:
                    return "min", "lower is better, per the requirement"
    guessed = default_mode(metric)
    return guessed, ("lower is better: the name says loss/error" if guessed == "min" else "higher is better: the default")


def _better(mode: Mode) -> str:
    return "higher is better" if mode == "max" else "lower is better"


# -- reports -----------------------------------------------------------------------------------
@attrs.frozen
class Check:
    """One line of a gate report.

    ``requirement`` is the requirement as written (or ``"metrics.X better than
    production (v2)"``), ``actual`` the candidate's value (a dict when a
    requirement names several fields; None when missing), ``expected`` the
    threshold or the baseline's value.
    """

    requirement: str
    actual: Any
    passed: bool
    reason: str
    kind: Literal["require", "better_than"] = "require"
    expected: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "requirement": self.requirement,
            "kind": self.kind,
            "actual": self.actual,
            "expected": self.expected,
            "passed": self.passed,
            "reason": self.reason,
        }


@attrs.frozen
class GateReport:
    """The outcome of a gate for one candidate version: ``passed`` when every check passed."""

    name: str
    version: int
    checks: tuple[Check, ...]
    baseline_alias: str | None = None
    baseline_version: int | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def explain(self) -> str:
        """One line: what passed, or every failed check with its reason."""
        subject = f"{self.name} v{self.version}"
        if self.passed:
            return f"{subject} passed {len(self.checks)} check(s)"
        reasons = "; ".join(f"{c.requirement}: {c.reason}" for c in self.failures)
        return f"{subject} failed {len(self.failures)} of {len(self.checks)} check(s): {reasons}"

    def raise_for_failure(self) -> None:
        """Raise :class:`~mlops_sdk.errors.GateFailed` (with :meth:`explain`) unless the gate passed."""
        if not self.passed:
            raise GateFailed(self.explain())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "passed": self.passed,
            "baseline": (
                None
                if self.baseline_alias is None
                else {"alias": self.baseline_alias, "version": self.baseline_version}
            ),
            "checks": [c.to_dict() for c in self.checks],
        }


# -- evaluation ---------------------------------------------------------------------------------
def fmt(value: Any) -> str:
    """A value as a report shows it: shortest round-trip floats, integral floats without ``.0``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt(v) for v in value) + ")"
    return str(value)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


@attrs.frozen
class _Facts:
    """What :func:`mlops_sdk.query.matches` reads, built from a candidate."""

    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    params: Mapping[str, Any] = attrs.field(factory=dict)


def _metric_value(raw: Any) -> float | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return float(raw)
    except (TypeError, ValueError, OverflowError):
        return None


def _facts(candidate: Candidate) -> _Facts:
    metrics: dict[str, float] = {}
    for key, raw in dict(candidate.metrics or {}).items():
        value = _metric_value(raw)
        if value is not None:
            metrics[str(key)] = value
    tags = {str(k): str(v) for k, v in dict(candidate.tags or {}).items()}
    return _Facts(metrics, tags)


def _leaf(cmp: Comparison, facts: _Facts) -> tuple[bool, Any, str]:
    """(passed, actual, reason) for one comparison."""
    label = f"{cmp.field}.{cmp.key}"
    want = f"{cmp.op} {fmt(cmp.value)}"
    if cmp.field == "metrics":
        actual: Any = facts.metrics.get(cmp.key)
        if actual is None:
            return False, None, f"metric {cmp.key} was not logged"
        if _is_nan(actual):
            return False, actual, f"metric {cmp.key} is NaN"
    else:
        actual = facts.tags.get(cmp.key)
        if actual is None:
            return False, None, f"tag {cmp.key} is not set"
    ok = matches(cmp, facts)
    shown = f"{label} is {fmt(actual)}"
    if ok:
        return True, actual, shown if cmp.op == "=" else f"{shown} ({want})"
    return False, actual, f"{shown}, needs {want}"


def _node(expr: Expr, facts: _Facts, actual: dict[str, Any]) -> tuple[bool, str]:
    if isinstance(expr, Comparison):
        ok, value, reason = _leaf(expr, facts)
        actual[f"{expr.field}.{expr.key}"] = value
        return ok, reason
    results = [_node(item, facts, actual) for item in expr.items]
    if isinstance(expr, And):
        failed = [r for ok, r in results if not ok]
        if failed:
            return False, "; ".join(failed)
        return True, "; ".join(r for _, r in results)
    assert isinstance(expr, Or)
    passed = [r for ok, r in results if ok]
    if passed:
        return True, passed[0]
    return False, "none holds: " + "; ".join(r for _, r in results)


def check_requirement(candidate: Candidate, requirement: str | Requirement) -> Check:
    """Evaluate one requirement against a candidate."""
    req = Requirement.parse(requirement)
    values: dict[str, Any] = {}
    ok, reason = _node(req.expr, _facts(candidate), values)
    if isinstance(req.expr, Comparison):
        actual: Any = next(iter(values.values()))
        expected: Any = req.expr.value
    else:
        actual, expected = values, None
    return Check(req.text, actual, ok, reason, "require", expected)


def compare_metric(
    candidate: Candidate,
    baseline: Candidate,
    metric: str,
    mode: Mode,
    *,
    label: str,
    why: str = "",
) -> Check:
    """Whether ``candidate`` is strictly better than ``baseline`` on ``metric``."""
    requirement = f"metrics.{metric} better than {label}"
    ours = _facts(candidate).metrics.get(metric)
    theirs = _facts(baseline).metrics.get(metric)
    sign = ">" if mode == "max" else "<"
    suffix = f" [{why}]" if why else ""
    if ours is None:
        return Check(requirement, None, False, f"metric {metric} was not logged", "better_than", theirs)
    if _is_nan(ours):
        return Check(requirement, ours, False, f"metric {metric} is NaN", "better_than", theirs)
    if theirs is None:
        return Check(
            requirement, ours, True, f"{label} has no metric {metric}: nothing to beat", "better_than", None
        )
    if _is_nan(theirs):
        return Check(requirement, ours, True, f"{label} has {metric} = NaN: nothing to beat", "better_than", theirs)
    better = ours > theirs if mode == "max" else ours < theirs
    if better:
        reason = f"{fmt(ours)} {sign} {fmt(theirs)} of {label}{suffix}"
    else:
        reason = f"{fmt(ours)} is not {'above' if mode == 'max' else 'below'} {fmt(theirs)} of {label}{suffix}"
    return Check(requirement, ours, better, reason, "better_than", theirs)


def evaluate(
    mv: Candidate,
    requires: Iterable[str | Requirement] = (),
    better_than: Candidate | None = None,
    metric: str | None = None,
    mode: str | None = None,
    *,
    alias: str | None = None,
) -> GateReport:
    """Check ``mv`` against every requirement and, optionally, a baseline version.

    ``better_than`` is the version to beat (for the CLI: the one an alias points
    at); ``alias`` names that alias in the report. ``better_than=None`` with an
    ``alias`` means the alias points nowhere yet: nothing to beat, which passes
    and is said in the report. ``metric`` and ``mode`` choose what "better"
    means (see the module docstring). Raises ``InvalidFilter`` for a
    requirement that does not parse and ``InvalidValue`` for a bad mode or a
    comparison with nothing to compare on.
    """
    reqs = parse_requirements(requires)
    checked_mode = _check_mode(mode)
    if metric is not None and (not isinstance(metric, str) or not metric.strip()):
        raise InvalidValue(f"metric must be a non-empty metric name, got {metric!r}")
    if metric is not None and metric.startswith("metrics."):
        metric = metric[len("metrics."):]
    checks = [check_requirement(mv, r) for r in reqs]
    comparing = better_than is not None or alias is not None
    baseline_version: int | None = None
    if comparing:
        keys = [metric] if metric else _unique(k for r in reqs for k in r.metric_keys)
        if not keys:
            raise InvalidValue(
                "a better-than comparison needs a metric: name one with metric=... (--metric) "
                "or require one, e.g. \"metrics.accuracy >= 0.9\""
            )
        label = alias or (f"v{better_than.version}" if better_than is not None else "baseline")
        if better_than is None:
            checks.append(
                Check(
                    f"better than {label}",
                    None,
                    True,
                    f"alias {label} points at no version yet: nothing to beat",
                    "better_than",
                )
            )
        else:
            baseline_version = int(better_than.version)
            if alias:
                label = f"{alias} (v{baseline_version})"
            if better_than.name == mv.name and baseline_version == int(mv.version):
                checks.append(
                    Check(
                        f"better than {label}",
                        None,
                        True,
                        f"v{mv.version} is the version {alias or 'the baseline'} already points at: nothing to beat",
                        "better_than",
                    )
                )
            else:
                for key in keys:
                    key_mode, why = metric_mode(key, reqs, checked_mode)
                    checks.append(compare_metric(mv, better_than, key, key_mode, label=label, why=why))
    return GateReport(
        name=str(mv.name),
        version=int(mv.version),
        checks=tuple(checks),
        baseline_alias=alias if comparing else None,
        baseline_version=baseline_version,
    )


# -- promotion ----------------------------------------------------------------------------------
@attrs.frozen
class Promotion:
    """What :func:`promote` did: the gate's report, where the alias pointed before and after, and
    whether this call moved it (``promoted``: False on a failed gate, a dry run, or when the alias
    already pointed at the version)."""

    report: GateReport
    alias: str
    previous: int | None
    current: int | None
    promoted: bool
    dry_run: bool = False

    @property
    def passed(self) -> bool:
        return self.report.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.report.to_dict(),
            "alias": self.alias,
            "previous": self.previous,
            "current": self.current,
            "promoted": self.promoted,
            "dry_run": self.dry_run,
        }


def _alias_target(model: Model, alias: str) -> ModelVersion | None:
    from mlops_sdk.errors import AliasNotFound

    try:
        return model.alias(alias)
    except AliasNotFound:
        return None


def promote(
    model: Model,
    version: int | str,
    alias: str,
    *,
    requires: Iterable[str | Requirement] = (),
    better_than: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    dry_run: bool = False,
    check: bool = True,
) -> Promotion:
    """Point ``alias`` at ``model.version(version)`` when every check passes.

    ``better_than`` names an alias whose version the candidate must beat
    (often the same alias: ``better_than="production"``). With ``dry_run``
    nothing moves. With ``check`` (the default) a failed gate raises
    :class:`~mlops_sdk.errors.GateFailed` naming every failed check; without
    it the :class:`Promotion` says ``passed=False``. The alias is unchanged
    whenever the gate fails.
    """
    reqs = parse_requirements(requires)
    mv = model.version(version)
    baseline = _alias_target(model, better_than) if better_than else None
    report = evaluate(mv, reqs, baseline, metric, mode, alias=better_than)
    before = _alias_target(model, alias)
    previous = before.version if before is not None else None
    if not report.passed:
        if check:
            report.raise_for_failure()
        return Promotion(report, alias, previous, previous, False, dry_run)
    if dry_run or previous == mv.version:
        return Promotion(report, alias, previous, previous if dry_run else mv.version, False, dry_run)
    if better_than:
        # the baseline must still be the one the gate compared against
        now = _alias_target(model, better_than)
        now_version = now.version if now is not None else None
        if now_version != report.baseline_version:
            raise GateFailed(
                f"alias {better_than} moved from {_v(report.baseline_version)} to {_v(now_version)} "
                "while the gate ran; nothing was changed, run the gate again"
            )
    mv.set_alias(alias)
    return Promotion(report, alias, previous, mv.version, True, False)


def _v(version: int | None) -> str:
    return "unset" if version is None else f"v{version}"


__all__ = [
    "LOWER_IS_BETTER",
    "MODES",
    "Candidate",
    "Check",
    "GateReport",
    "Mode",
    "Promotion",
    "Requirement",
    "check_requirement",
    "compare_metric",
    "default_mode",
    "evaluate",
    "metric_mode",
    "parse_requirements",
    "promote",
]
