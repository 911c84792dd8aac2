"""``mlops deploy``: serve model versions at deployment targets.

``render`` prints the manifests a manifest-based deployer (``kubernetes://NS``)
would apply, without touching a cluster; ``apply`` applies them (``--dry-run``
prints them instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlops_sdk.cli.models import resolve_version, split_ref
from mlops_sdk.cli.output import json_option, note
from mlops_sdk.cli.state import get_workspace


@click.group("deploy")
def deploy_group() -> None:
    """Deploy model versions to a target (local, kubernetes://NAMESPACE, …)."""


def _deployer(target: str) -> Any:
    from mlops_sdk.plugins import create_backend

    return create_backend("deployer", target)


def _manifest_options(fn: Any) -> Any:
    options = [
        click.argument("ref", metavar="NAME@VERSION"),
        click.option("--target", "-t", required=True, metavar="URI", help="Where to deploy: kubernetes://NAMESPACE."),
        click.option("--image", required=True, metavar="IMAGE",
                     help="The model server image (from `mlops models build-context`); may hold {version}."),
        click.option("--name", "dep_name", metavar="NAME", help="Deployment name (default: from the model name)."),
        click.option("--replicas", type=click.IntRange(0, 10_000), default=1, show_default=True),
        click.option("--hpa", metavar="MIN:MAX", help="Add a HorizontalPodAutoscaler scaling on CPU between MIN and MAX."),
        click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
                     help="The port the server listens on in the container."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _render(ref: str, target: str, image: str, dep_name: str | None, replicas: int, hpa: str | None, port: int) -> tuple[Any, str, str, dict[str, Any]]:
    from mlops_sdk.errors import InvalidValue

    deployer = _deployer(target)
    if not hasattr(deployer, "render"):
        raise InvalidValue(f"the deployer for {target!r} does not render manifests")
    name, version_ref = split_ref(ref)
    mv = resolve_version(get_workspace().model(name), version_ref)
    from mlops_sdk.deploy.kubernetes import dns_name

    dep = dep_name or dns_name(mv.name)
    config: dict[str, Any] = {"image": image, "replicas": replicas, "port": port}
    if hpa:
        config["hpa"] = hpa
    model_uri = f"models:/{mv.name}/{mv.version}"
    return deployer, dep, model_uri, config


@deploy_group.command("render")
@_manifest_options
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path), metavar="FILE",
              help="Write the YAML to FILE instead of stdout.")
def deploy_render(
    ref: str, target: str, image: str, dep_name: str | None, replicas: int, hpa: str | None, port: int,
    output: Path | None,
) -> None:
    """Print the manifests (YAML) deploying NAME@VERSION at TARGET; needs no cluster."""
    deployer, dep, model_uri, config = _render(ref, target, image, dep_name, replicas, hpa, port)
    text = deployer.render(dep, model_uri, config).to_yaml()
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    note(f"wrote the manifests of {dep} to {output}")


@deploy_group.command("apply")
@_manifest_options
@click.option("--dry-run", is_flag=True, help="Print the YAML that would be applied; change nothing.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the rollout is ready.")
def deploy_apply(
    ref: str, target: str, image: str, dep_name: str | None, replicas: int, hpa: str | None, port: int,
    dry_run: bool, wait: bool,
) -> None:
    """Apply the manifests deploying NAME@VERSION at TARGET (the cluster of the current kubeconfig)."""
    deployer, dep, model_uri, config = _render(ref, target, image, dep_name, replicas, hpa, port)
    if dry_run:
        click.echo(deployer.render(dep, model_uri, config).to_yaml(), nl=False)
        return
    if not wait:
        config["timeout"] = 0
    info = deployer.deploy(dep, model_uri, config)
    click.echo(f"deployed {info.model} v{info.version} as {info.name} ({info.status}) at {info.url}")


# -- local deployments: deploy local / ls / status / update / rollback / stop -------------------
def _info_dict(info: Any) -> dict[str, Any]:
    details = dict(info.details or {})
    return {
        "name": info.name, "model": info.model, "version": info.version, "url": info.url,
        "status": info.status, "previous_versions": list(info.previous_versions), "alias": info.alias,
        "pid": details.get("pid"), "router_pid": details.get("router_pid"),
    }


def _show(info: Any, as_json: bool, verb: str) -> None:
    from mlops_sdk.cli.output import echo_json

    if as_json:
        echo_json(_info_dict(info))
    else:
        click.echo(f"{verb} {info.name}: {info.model}@{info.version} {info.status} at {info.url}")


def _local_deployment(name: str) -> Any:
    return get_workspace().get_deployment(name, target="local")


@deploy_group.command("local")
@click.argument("ref", metavar="NAME@VERSION")
@click.option("--name", "dep_name", required=True, metavar="NAME", help="Deployment name.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="The deployment's stable port on 127.0.0.1 (0 picks a free one).")
@click.option("--log-sample-rate", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Share of requests written to the inference log.")
@json_option
def deploy_local(ref: str, dep_name: str, port: int, log_sample_rate: float, as_json: bool) -> None:
    """Serve NAME@VERSION (or NAME@alias, which the deployment then follows) as local processes."""
    ws = get_workspace()
    dep = ws.deploy(ref, name=dep_name, target="local", config={"port": port, "log_sample_rate": log_sample_rate})
    _show(dep.info(), as_json, "deployed")


@deploy_group.command("ls")
@json_option
def deploy_ls(as_json: bool) -> None:
    """Local deployments and their state."""
    from mlops_sdk.cli.output import echo_json, print_table

    infos = [d.info() for d in get_workspace().deployments(target="local")]
    if as_json:
        echo_json([_info_dict(i) for i in infos])
        return
    print_table(["name", "model", "version", "status", "url"],
                [[i.name, i.model, i.version, i.status, i.url] for i in infos], title="Deployments")


@deploy_group.command("status")
@click.argument("name")
@json_option
def deploy_status(name: str, as_json: bool) -> None:
    """State of one local deployment (exit 1 when it is unknown)."""
    _show(_local_deployment(name).info(), as_json, "deployment")


@deploy_group.command("update")
@click.argument("name")
@click.argument("ref", metavar="NAME@VERSION", required=False)
@json_option
def deploy_update(name: str, ref: str | None, as_json: bool) -> None:
    """Serve another version (started and health-checked before traffic moves); no REF: follow the alias."""
    dep = _local_deployment(name)
    dep.update(ref)
    _show(dep.info(), as_json, "updated")


@deploy_group.command("rollback")
@click.argument("name")
@json_option
def deploy_rollback(name: str, as_json: bool) -> None:
    """Serve the previous version again."""
    dep = _local_deployment(name)
    dep.rollback()
    _show(dep.info(), as_json, "rolled back")


@deploy_group.command("stop")
@click.argument("name")
@json_option
def deploy_stop(name: str, as_json: bool) -> None:
    """Stop a local deployment (its inference log stays)."""
    dep = _local_deployment(name)
    dep.stop()
    _show(dep.info(), as_json, "stopped")
