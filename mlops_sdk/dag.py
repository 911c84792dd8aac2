"""A pipeline's DAG as plain data: order, cycle detection and drawings (text, DOT, Mermaid, SVG/PNG).

Pure functions over ``{node: (upstream, ...)}`` mappings, so hypothesis can
test them directly.

>>> edges = {"prepare": (), "train": ("prepare",), "evaluate": ("train", "prepare")}
>>> topological_order(edges)
['prepare', 'train', 'evaluate']
>>> print(to_text(edges))
prepare
├── train
│   └── evaluate
└── evaluate (see above)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlops_sdk.errors import InvalidValue, MissingDependency, PipelineError

Edges = Mapping[str, Sequence[str]]  # node -> the nodes it depends on (upstream)


def find_cycle(edges: Edges) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]`` (each depends on the next), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for up in edges.get(node, ()):
            if state.get(up) == 1:
                return [*stack[stack.index(up):], up]
            if up in edges and state.get(up) is None:
                found = visit(up)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(edges: Edges) -> list[str]:
    """Nodes with every node after all its upstream nodes; ties keep the mapping's order.

    Raises :class:`~mlops_sdk.errors.PipelineError` naming a cycle.
    """
    cycle = find_cycle(edges)
    if cycle is not None:
        raise PipelineError(f"the pipeline has a cycle: {' -> '.join(reversed(cycle))}")
    done: set[str] = set()
    order: list[str] = []
    remaining = list(edges)
    while remaining:
        for node in remaining:
            if all(up in done for up in edges[node] if up in edges):
                order.append(node)
                done.add(node)
                remaining.remove(node)
                break
    return order


def downstream(edges: Edges) -> dict[str, list[str]]:
    """node -> the nodes that depend on it directly, in topological order."""
    out: dict[str, list[str]] = {n: [] for n in edges}
    for node in topological_order(edges):
        for up in edges[node]:
            out[up].append(node)
    return out


def to_text(edges: Edges, labels: Mapping[str, str] | None = None) -> str:
    """A tree from the roots; a node with several upstream nodes is drawn once, then marked ``(see above)``."""
    labels = labels or {}
    children = downstream(edges)
    lines: list[str] = []
    shown: set[str] = set()

    def draw(node: str, prefix: str, connector: str, child_prefix: str) -> None:
        text = labels.get(node, node)
        if node in shown:
            lines.append(f"{prefix}{connector}{node} (see above)")
            return
        shown.add(node)
        lines.append(f"{prefix}{connector}{text}")
        kids = children[node]
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            draw(kid, prefix + child_prefix, "└── " if last else "├── ", "    " if last else "│   ")

    for node in topological_order(edges):
        if not [u for u in edges[node] if u in edges]:
            draw(node, "", "", "")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(edges: Edges, name: str = "pipeline", labels: Mapping[str, str] | None = None) -> str:
    """Graphviz DOT text."""
    labels = labels or {}
    lines = [f"digraph {_quote(name)} {{", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for node in topological_order(edges):
        lines.append(f"  {_quote(node)} [label={_quote(labels.get(node, node))}];")
    for node in topological_order(edges):
        for up in edges[node]:
            lines.append(f"  {_quote(up)} -> {_quote(node)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(edges: Edges, labels: Mapping[str, str] | None = None) -> str:
    """Mermaid ``flowchart`` text (renders on GitHub in a ```mermaid block)."""
    labels = labels or {}
    order = topological_order(edges)
    ids = {node: f"s{i}" for i, node in enumerate(order)}
    lines = ["flowchart LR"]
    for node in order:
        text = labels.get(node, node).replace('"', "#quot;")
        lines.append(f'    {ids[node]}["{text}"]')
    for node in order:
        for up in edges[node]:
            lines.append(f"    {ids[up]} --> {ids[node]}")
    return "\n".join(lines) + "\n"


def layers(edges: Edges) -> dict[str, int]:
    """node -> its depth (longest path from a root)."""
    depth: dict[str, int] = {}
    for node in topological_order(edges):
        depth[node] = max((depth[u] + 1 for u in edges[node] if u in depth), default=0)
    return depth


def render_image(edges: Edges, path: str | os.PathLike[str], fmt: str, labels: Mapping[str, str] | None = None) -> Path:
    """Draw the DAG to ``path`` as ``svg`` or ``png`` with matplotlib (layered, left to right)."""
    if fmt not in ("svg", "png"):
        raise InvalidValue(f"image format must be svg or png, got {fmt!r}")
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyArrowPatch
    except ImportError as exc:
        raise MissingDependency("drawing the pipeline as an image needs matplotlib: pip install matplotlib") from exc
    labels = labels or {}
    depth = layers(edges)
    columns: dict[int, list[str]] = {}
    for node in topological_order(edges):
        columns.setdefault(depth[node], []).append(node)
    pos = {}
    for x, nodes in columns.items():
        for i, node in enumerate(nodes):
            pos[node] = (x * 3.0, -(i - (len(nodes) - 1) / 2) * 1.5)
    width = max(4.0, 3.0 * len(columns))
    height = max(2.0, 1.5 * max((len(n) for n in columns.values()), default=1.0))
    fig, ax = plt.subplots(figsize=(width, height))
    try:
        for node, (px, py) in pos.items():
            ax.text(px, py, labels.get(node, node), ha="center", va="center", fontsize=10,
                    bbox={"boxstyle": "round,pad=0.4", "fc": "#e8f0fe", "ec": "#3367d6"})
        for node in edges:
            for up in edges[node]:
                ax.add_patch(FancyArrowPatch(pos[up], pos[node], arrowstyle="-|>", mutation_scale=14,
                                             shrinkA=28, shrinkB=28, color="#555555"))
        xs = [p[0] for p in pos.values()] or [0.0]
        ys = [p[1] for p in pos.values()] or [0.0]
        ax.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
        ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
        ax.axis("off")
        target = Path(path)
        fig.savefig(target, format=fmt, bbox_inches="tight")
    finally:
        plt.close(fig)
    return target
