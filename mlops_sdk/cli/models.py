"""``mlops models``: list, show, card, promote (behind a gate) and roll back registered models.

``promote`` is what a CI job calls to release a model: it moves an alias
(``production``) to a version only when every requirement holds, and exits 1
with the reasons otherwise, leaving the alias where it was. The gate itself
lives in :mod:`mlops_sdk.gate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlops_sdk.cli.output import echo_json, json_option, note, print_kv, print_table
from mlops_sdk.cli.state import get_workspace

if TYPE_CHECKING:
    from mlops_sdk.gate import GateReport, Promotion
    from mlops_sdk.model import Model, ModelVersion


@click.group("models")
def models_group() -> None:
    """List, inspect, promote and roll back registered models.

    A model version is written NAME@REF, where REF is a version number (3 or v3),
    "latest", an alias (production) or a unique prefix of the version's id.
    """


# -- shared helpers -------------------------------------------------------------------
def split_ref(text: str) -> tuple[str, str | None]:
    """``"churn@3"`` → ``("churn", "3")``; ``"churn"`` → ``("churn", None)``."""
    name, at, ref = text.partition("@")
    if not at:
        return text, None
    if not name or not ref:
        raise click.BadParameter(
            f"{text!r}: write NAME or NAME@VERSION (a number, v3, latest, an alias or an id prefix)"
        )
    return name, ref


def alias_versions(model: Model) -> dict[str, int]:
    """Where each alias of ``model`` points, as version numbers, by alias."""
    return dict(sorted(model.aliases().items()))


def resolve_version(model: Model, ref: str | None) -> ModelVersion:
    """The version ``ref`` names: None or ``latest``, a number, ``v3``, ``@alias``, an alias, or an id prefix."""
    if ref is None:
        return model.latest
    if not ref.startswith("@") and ref in model.aliases():
        return model.alias(ref)
    return model.version(ref)


def alias_target(model: Model, alias: str) -> int | None:
    """The version number ``alias`` points at, or None."""
    return alias_versions(model).get(alias)


def _signature_dict(signature: Any) -> Any:
    if signature is None:
        return None
    to_dict = getattr(signature, "to_dict", None)
    return to_dict() if callable(to_dict) else signature


def _signature_rows(signature: Any) -> list[tuple[str, str, str]]:
    data = _signature_dict(signature)
    if not isinstance(data, Mapping):
        return []
    rows: list[tuple[str, str, str]] = []
    for part in ("inputs", "outputs"):
        for spec in data.get(part) or []:
            if not isinstance(spec, Mapping):
                continue
            if spec.get("type") == "tensor":
                shape = "(" + ", ".join("*" if d == -1 else str(d) for d in spec.get("shape", [])) + ")"
                rows.append((part[:-1], f"tensor {shape}", str(spec.get("dtype"))))
            else:
                rows.append((part[:-1], str(spec.get("name")), str(spec.get("dtype"))))
    return rows


def version_to_dict(mv: ModelVersion, aliases: Mapping[str, int]) -> dict[str, Any]:
    """The stable JSON shape of a model version (``models show``)."""
    return {
        "name": mv.name,
        "version": mv.version,
        "id": mv.id,
        "flavor": mv.flavor,
        "run_id": mv.run_id,
        "created_at": mv.created_at,
        "description": mv.description,
        "aliases": sorted(a for a, v in aliases.items() if v == mv.version),
        "metrics": dict(mv.metrics),
        "tags": dict(mv.tags),
        "signature": _signature_dict(mv.signature),
        "requirements": list(mv.requirements),
    }


# -- models ls ----------------------------------------------------------------------------
@models_group.command("ls")
@json_option
def models_ls(as_json: bool) -> None:
    """List registered models: versions, latest version and aliases."""
    from mlops_sdk.display import fmt_time

    ws = get_workspace()
    items: list[dict[str, Any]] = []
    for model in ws.models():
        versions = model.versions()
        if not versions:
            continue
        latest = max(versions, key=lambda v: v.version)
        items.append(
            {
                "name": model.name,
                "versions": len(versions),
                "latest": latest.version,
                "flavor": latest.flavor,
                "created_at": latest.created_at,
                "aliases": alias_versions(model),
            }
        )
    if as_json:
        echo_json(items)
        return
    if not items:
        note("no models registered (log one with run.log_model)")
        return
    rows = [
        [
            item["name"],
            item["versions"],
            f"v{item['latest']}",
            item["flavor"],
            " ".join(f"{a}=v{v}" for a, v in item["aliases"].items()) or None,
            fmt_time(item["created_at"]),
        ]
        for item in items
    ]
    print_table(
        ["name", "versions", "latest", "flavor", "aliases", "updated"], rows, no_wrap={"name", "updated"}
    )


# -- models show --------------------------------------------------------------------------
@models_group.command("show")
@click.argument("ref", metavar="NAME[@VERSION]")
@json_option
def models_show(ref: str, as_json: bool) -> None:
    """Show one model version (default: the latest): flavor, signature, metrics, tags, aliases, run.

    \b
    mlops models show churn-clf@production
    mlops models show churn-clf@3 --json
    """
    from mlops_sdk.display import fmt_time

    name, version_ref = split_ref(ref)
    model = get_workspace().model(name)
    mv = resolve_version(model, version_ref)
    aliases = alias_versions(model)
    data = version_to_dict(mv, aliases)
    if as_json:
        echo_json(data)
        return
    attributes: list[tuple[str, Any]] = [
        ("id", mv.id),
        ("flavor", mv.flavor),
        ("aliases", ", ".join(data["aliases"]) or None),
        ("run", mv.run_id),
        ("created", fmt_time(mv.created_at)),
        ("description", mv.description or None),
    ]
    print_kv(f"Model {mv.name} v{mv.version}", [(k, v) for k, v in attributes if v is not None], spaced=False)
    print_kv("Metrics", sorted(data["metrics"].items()))
    print_kv("Tags", sorted(data["tags"].items()))
    signature = _signature_rows(mv.signature)
    if signature:
        print_table(["", "name", "dtype"], signature, title="Signature", spaced=True)
    requirements = data["requirements"]
    if requirements:
        print_table(["requirement"], [[r] for r in requirements], title="Requirements", spaced=True, show_header=False)


# -- models card --------------------------------------------------------------------------
@models_group.command("card")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--html", "as_html", is_flag=True, help="HTML instead of Markdown.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="FILE",
    help="Write the card to FILE instead of stdout.",
)
def models_card(ref: str, as_html: bool, output: Path | None) -> None:
    """Print the model card of a version (default: the latest), in Markdown or HTML."""
    name, version_ref = split_ref(ref)
    mv = resolve_version(get_workspace().model(name), version_ref)
    text = mv.card(format="html" if as_html else "markdown")
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    output.write_text(text, encoding="utf-8")
    note(f"wrote the card of {mv.name} v{mv.version} to {output}")


# -- models promote -----------------------------------------------------------------------
def _report_rows(report: GateReport) -> list[list[Any]]:
    return [[c.requirement, c.actual, "PASS" if c.passed else "FAIL", c.reason] for c in report.checks]


def _was(version: int | None) -> str:
    return "unset" if version is None else f"v{version}"


def _still(alias: str, version: int | None) -> str:
    return f"{alias} is still unset" if version is None else f"{alias} still points at v{version}"


@models_group.command("promote")
@click.argument("name")
@click.argument("version", metavar="VERSION")
@click.option("--alias", "-a", required=True, metavar="ALIAS", help="The alias to move, e.g. production.")
@click.option(
    "--require",
    "-r",
    "requires",
    multiple=True,
    metavar="EXPR",
    help="A requirement such as \"metrics.accuracy >= 0.9\" or \"tags.approved = 'yes'\" (repeatable).",
)
@click.option(
    "--require-better-than",
    "better_than",
    metavar="ALIAS",
    help="The version ALIAS points at must be beaten on every required metric (or --metric). "
    "Nothing to beat when ALIAS points nowhere yet.",
)
@click.option("--metric", metavar="NAME", help="Compare on this metric only (with --require-better-than).")
@click.option(
    "--mode",
    type=click.Choice(["max", "min"]),
    help="Whether higher (max) or lower (min) is better for the compared metrics "
    "(default: the direction of the --require naming the metric, else min for names with loss/error, else max).",
)
@click.option("--dry-run", is_flag=True, help="Evaluate the gate and report; move nothing.")
@json_option
def models_promote(
    name: str,
    version: str,
    alias: str,
    requires: tuple[str, ...],
    better_than: str | None,
    metric: str | None,
    mode: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Point ALIAS at a version of NAME when every requirement holds.

    VERSION is a number, v3, latest, @ALIAS or an id prefix. Exit code 0: promoted
    (or, with --dry-run, would be); 1: a requirement failed (each check and its
    reason are printed, the alias is unchanged) or the model/version is unknown.

    \b
    mlops models promote churn-clf 3 --alias production \\
        --require "metrics.accuracy >= 0.9" --require-better-than production
    """
    from mlops_sdk.errors import GateFailed, InvalidFilter
    from mlops_sdk.gate import parse_requirements, promote

    try:
        reqs = parse_requirements(requires)
    except InvalidFilter as exc:
        raise InvalidFilter(f"invalid --require: {exc}") from exc
    if metric is not None and better_than is None:
        raise click.UsageError("--metric only applies with --require-better-than")
    model = get_workspace().model(name)
    target = resolve_version(model, version)
    result: Promotion = promote(
        model,
        target.version,
        alias,
        requires=reqs,
        better_than=better_than,
        metric=metric,
        mode=mode,
        dry_run=dry_run,
        check=False,
    )
    report = result.report
    subject = f"{report.name} v{report.version}"
    if as_json:
        echo_json(result.to_dict())
    else:
        if report.checks:
            print_table(
                ["check", "actual", "result", "reason"],
                _report_rows(report),
                title=f"Gate: {subject} -> {alias} (now {_was(result.previous)})",
                no_wrap={"result"},
            )
        else:
            note("no requirements given: the alias moves without a gate")
        if report.passed:
            if dry_run:
                click.echo(f"dry run: {subject} would be promoted to {alias} (now {_was(result.previous)}); nothing changed")
            elif result.promoted:
                click.echo(f"promoted {subject} to {alias} (was {_was(result.previous)})")
            else:
                click.echo(f"{alias} already points at {subject}; nothing changed")
    if not report.passed:
        failed = "; ".join(f"{c.requirement}: {c.reason}" for c in report.failures)
        raise GateFailed(
            f"{subject} was not promoted; {_still(alias, result.previous)}. "
            f"Failed check{'s' if len(report.failures) > 1 else ''}: {failed}"
        )


# -- models rollback ----------------------------------------------------------------------
@models_group.command("rollback")
@click.argument("name")
@click.option("--alias", "-a", required=True, metavar="ALIAS", help="The alias to move back, e.g. production.")
@json_option
def models_rollback(name: str, alias: str, as_json: bool) -> None:
    """Move ALIAS of NAME back to the version it pointed at before.

    Exit code 1 when the alias has no earlier version (nothing is changed).
    """
    model = get_workspace().model(name)
    before = alias_target(model, alias)
    mv = model.rollback(alias)
    if as_json:
        echo_json({"name": mv.name, "alias": alias, "previous": before, "current": mv.version})
        return
    click.echo(f"rolled back {alias} of {mv.name}: {_was(before)} -> v{mv.version}")


# -- models build-context ---------------------------------------------------------------
@models_group.command("build-context")
@click.argument("ref", metavar="NAME@VERSION")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--base-image", default="python:3.11-slim", show_default=True, help="The image to build FROM.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="The port the server listens on in the container.")
@click.option("--sdk-requirement", metavar="REQ|WHEEL",
              help="Install mlops-sdk from this requirement line or wheel file instead of mlops-sdk==<this version>.")
@click.option("--force", is_flag=True, help="Replace an earlier build context in DIR.")
@json_option
def models_build_context(
    ref: str, directory: Path, base_image: str, port: int, sdk_requirement: str | None, force: bool, as_json: bool
) -> None:
    """Write a Docker build context serving NAME@VERSION into DIR.

    DIR gets a Dockerfile, pinned requirements.txt and model/ (a workspace
    holding just this version); `docker build DIR` gives an image that runs
    `mlops serve` on PORT as a non-root user.
    """
    from mlops_sdk.container import build_context

    name, version_ref = split_ref(ref)
    mv = resolve_version(get_workspace().model(name), version_ref)
    ctx = build_context(
        mv, directory, base_image=base_image, port=port, sdk_requirement=sdk_requirement, force=force
    )
    if as_json:
        echo_json(
            {
                "path": str(ctx.path),
                "model": ctx.model,
                "version": ctx.version,
                "base_image": ctx.base_image,
                "port": ctx.port,
                "requirements": list(ctx.requirements),
            }
        )
        return
    click.echo(f"wrote a build context for {ctx.image_ref} to {ctx.path}")
    note(f"build it: docker build -t {ctx.model.lower()}:{ctx.version} {ctx.path}")
