"""``mlops plugins``: installed plugins and the backend schemes they register.

Nothing is instantiated: the registry holds factories (usually import paths),
so listing them imports no backend.
"""

from __future__ import annotations

from typing import Any

import click

from mlops_sdk.cli.output import echo_json, json_option, print_table


def plugin_listing() -> list[dict[str, Any]]:
    """Every loaded plugin with its schemes per backend kind (the JSON shape)."""
    from mlops_sdk.plugins import KINDS, get_plugin_manager

    manager = get_plugin_manager()
    by_plugin = manager.schemes_by_plugin()
    out: list[dict[str, Any]] = []
    for name in sorted(by_plugin, key=lambda n: (not _builtin(manager.infos.get(n)), n)):
        info = manager.infos.get(name)
        entries = by_plugin[name]
        backends: dict[str, list[dict[str, str]]] = {kind: [] for kind in KINDS}
        for entry in entries:
            backends.setdefault(entry.kind, []).append(
                {
                    "scheme": entry.scheme,
                    "target": entry.target_name,
                    "requires": entry.requires,
                    "description": entry.description,
                }
            )
        out.append(
            {
                "name": name,
                "module": info.module if info else None,
                "distribution": info.distribution if info else None,
                "version": info.version if info else None,
                "builtin": info.builtin if info else False,
                "schemes": {kind: [b["scheme"] for b in items] for kind, items in backends.items()},
                "backends": backends,
            }
        )
    return out


def _builtin(info: Any) -> bool:
    return bool(info is not None and info.builtin)


@click.command("plugins")
@json_option
def plugins_cmd(as_json: bool) -> None:
    """List installed plugins and the tracking, storage, compute and deployer schemes they provide."""
    listing = plugin_listing()
    if as_json:
        echo_json(listing)
        return
    rows: list[tuple[str, str, str, str, str]] = []
    for plugin in listing:
        label = plugin["name"] + (" (built-in)" if plugin["builtin"] else "")
        version = plugin["version"] or ""
        provided = [(kind, b) for kind, items in plugin["backends"].items() for b in items]
        if not provided:
            rows.append((label, version, "", "", "(registers no backends)"))
        for kind, backend in provided:
            detail = backend["description"]
            if backend["requires"]:
                detail = f"{detail} [needs {backend['requires']}]".strip()
            rows.append((label, version, kind, backend["scheme"], detail))
            label = version = ""
    print_table(["plugin", "version", "kind", "scheme", "description"], rows)
