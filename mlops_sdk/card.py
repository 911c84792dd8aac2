"""Model cards: one page that tells a non-technical reader what a model version is.

>>> print(ws.model("churn-clf").latest.card())            # doctest: +SKIP
>>> html = mv.card(format="html")                          # doctest: +SKIP

The card is built once as plain data (sections of paragraphs, tables and
lists; :func:`build`) and written out as Markdown or as an HTML page, so the
two always say the same thing. Everything a user typed is escaped in HTML;
missing user text (intended use, limitations, fairness) is shown as "Not
provided" rather than left out, so a reader sees what is unknown.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from mlops_sdk.display import fmt_time, fmt_value
from mlops_sdk.errors import InvalidValue

if TYPE_CHECKING:
    from mlops_sdk.model import ModelVersion

FORMATS = ("markdown", "html")
NOT_PROVIDED = "Not provided."
MAX_LISTED_FILES = 5
_FLAVORS = {"sklearn": "scikit-learn", "torch": "PyTorch", "pyfunc": "plain Python"}


@attrs.frozen
class Paragraph:
    text: str


@attrs.frozen
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@attrs.frozen
class Bullets:
    items: tuple[str, ...]


Block = Paragraph | Table | Bullets


@attrs.frozen
class Section:
    title: str
    blocks: tuple[Block, ...]


@attrs.frozen
class Card:
    title: str
    sections: tuple[Section, ...]

    def section(self, title: str) -> Section:
        for s in self.sections:
            if s.title == title:
                return s
        raise KeyError(title)


def _pairs(rows: Sequence[tuple[str, Any]]) -> Table:
    return Table(("", ""), tuple((k, fmt_value(v)) for k, v in rows))


def _files_text(files: Sequence[Any]) -> str:
    names = [f.path for f in files[:MAX_LISTED_FILES]]
    more = f", and {len(files) - MAX_LISTED_FILES} more" if len(files) > MAX_LISTED_FILES else ""
    return f"{len(files)} file{'s' if len(files) != 1 else ''}: {', '.join(names)}{more}"


def _shape(shape: Sequence[int]) -> str:
    return " x ".join("any" if d == -1 else str(d) for d in shape)


def build(mv: ModelVersion) -> Card:
    """The card's content as plain data."""
    lineage = mv.lineage()
    sections: list[Section] = []

    what = mv.description.strip() or "No description was provided."
    sections.append(
        Section(
            "What this model does",
            (
                Paragraph(what),
                Paragraph(f"It is version {mv.version} of the model “{mv.name}”, a {_FLAVORS.get(mv.flavor, mv.flavor)} model."),
            ),
        )
    )

    aliases = mv.aliases
    details: list[tuple[str, Any]] = [
        ("Name", mv.name),
        ("Version", mv.version),
        ("Flavor", mv.flavor),
        ("Created", fmt_time(mv.created_at)),
        ("Content id", mv.id[:12]),
        ("Aliases", ", ".join(aliases) if aliases else "none"),
    ]
    details += [(f"Tag: {k}", v) for k, v in mv.tags.items()]
    sections.append(Section("Model details", (_pairs(details),)))

    if lineage.datasets:
        rows = tuple(
            (d.name, f"v{d.version}", d.id[:12], _files_text(d.files()), d.message) for d in lineage.datasets
        )
        data: tuple[Block, ...] = (
            Paragraph("The model was trained on these dataset versions:"),
            Table(("Dataset", "Version", "Id", "Files", "Note"), rows),
        )
    else:
        data = (Paragraph("No dataset versions were recorded for the run that produced this model."),)
    sections.append(Section("Training data", data))

    metrics = mv.metrics
    if metrics:
        perf: tuple[Block, ...] = (
            Paragraph("Measured when the model was registered:"),
            Table(("Metric", "Value"), tuple((k, fmt_value(v)) for k, v in metrics.items())),
        )
    else:
        perf = (Paragraph("No metrics were recorded."),)
    sections.append(Section("Performance", perf))

    sig = mv.signature
    if sig is None:
        inputs: tuple[Block, ...] = (
            Paragraph("No signature was recorded: inputs are not checked before a prediction."),
        )
    elif sig.is_tabular:
        inputs = (
            Paragraph("The model takes a table with these columns; requests that do not fit are refused:"),
            Table(("Column", "Type"), tuple((c.name, c.dtype) for c in sig.columns)),
        )
    else:
        spec = sig.tensor
        assert spec is not None
        inputs = (
            Paragraph("The model takes one array; requests that do not fit are refused:"),
            Table(("Type", "Shape"), ((spec.dtype, _shape(spec.shape)),)),
        )
    if sig is not None and sig.outputs:
        out_rows = tuple(
            (getattr(s, "name", "output"), s.dtype, _shape(s.shape) if hasattr(s, "shape") else "")
            for s in sig.outputs
        )
        inputs += (Paragraph("It returns:"), Table(("Output", "Type", "Shape"), out_rows))
    sections.append(Section("Inputs (signature)", inputs))

    sections.append(Section("Intended use", (Paragraph(mv.intended_use.strip() or NOT_PROVIDED),)))
    sections.append(Section("Limitations", (Paragraph(mv.limitations.strip() or NOT_PROVIDED),)))

    fairness = mv.fairness
    if fairness:
        columns: list[str] = []
        for values in fairness.values():
            columns += [k for k in values if k not in columns]
        group_rows = tuple(
            (group, *(fmt_value(values[c]) if c in values else "" for c in columns))
            for group, values in fairness.items()
        )
        fair: tuple[Block, ...] = (
            Paragraph("Metrics per group, to compare how the model treats each:"),
            Table(("Group", *columns), group_rows),
        )
    else:
        fair = (Paragraph(f"{NOT_PROVIDED} No fairness figures were recorded."),)
    sections.append(Section("Fairness", fair))

    if lineage.run is not None:
        run = lineage.run
        lin: list[tuple[str, Any]] = [("Run", f"{run.name} ({run.id})")]
        if lineage.experiment:
            lin.append(("Experiment", lineage.experiment))
        lin.append(("Git commit", lineage.git_commit or "unknown (not run from a git repository)"))
        if lineage.git_branch:
            lin.append(("Git branch", lineage.git_branch))
        if lineage.git_commit:
            lin.append(("Uncommitted changes", "yes" if lineage.git_dirty else "no"))
        origin: tuple[Block, ...] = (_pairs(lin),)
    else:
        origin = (Paragraph("No run was recorded for this version."),)
    sections.append(Section("Lineage", origin))

    reqs = [*mv.requirements]
    if mv.python_version:
        reqs.insert(0, f"Python {mv.python_version}")
    sections.append(
        Section(
            "Requirements",
            (Bullets(tuple(reqs)),) if reqs else (Paragraph("No requirements were recorded."),),
        )
    )
    return Card(f"Model card: {mv.name} v{mv.version}", tuple(sections))


# -- Markdown ------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _md_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    headers = block.headers if any(block.headers) else ("Field", "Value")
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
    return "\n".join(lines)


def to_markdown(card: Card) -> str:
    parts = [f"# {card.title}"]
    for section in card.sections:
        parts.append(f"## {section.title}")
        parts += [_md_block(b) for b in section.blocks]
    return "\n\n".join(parts) + "\n"


# -- HTML --------------------------------------------------------------------------------------------
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}"
    "th{background:#f4f4f4}h2{margin-top:1.6rem;border-bottom:1px solid #eee}"
)


def _html_text(text: str) -> str:
    paragraphs = [p for p in text.split("\n\n") if p.strip()] or [""]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return _html_text(block.text)
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>"
    head = ""
    if any(block.headers):
        head = "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in block.headers) + "</tr></thead>"
    body = "".join(
        "<tr>"
        + "".join(
            (f"<th>{html.escape(c)}</th>" if i == 0 and not any(block.headers) else f"<td>{html.escape(c)}</td>")
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in block.rows
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def to_html(card: Card) -> str:
    title = html.escape(card.title)
    body = [f"<h1>{title}</h1>"]
    for section in card.sections:
        body.append(f"<section><h2>{html.escape(section.title)}</h2>")
        body += [_html_block(b) for b in section.blocks]
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def render(mv: ModelVersion, format: str = "markdown") -> str:
    """The card of ``mv`` as ``"markdown"`` or ``"html"`` (a whole page, every user string escaped)."""
    fmt = format.lower() if isinstance(format, str) else format
    if fmt == "md":
        fmt = "markdown"
    if fmt not in FORMATS:
        raise InvalidValue(f"card format must be one of {', '.join(FORMATS)}, got {format!r}")
    card = build(mv)
    return to_markdown(card) if fmt == "markdown" else to_html(card)


__all__ = ["Card", "build", "render", "to_html", "to_markdown"]
