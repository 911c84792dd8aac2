"""Run filter and order-by expressions: parsing and a reference evaluator.

Pure functions over plain data, so hypothesis can test them directly; the SQL
stores compile the same tree to SQL and are checked against :func:`matches`.

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := atom ("and" atom)*
    atom       := "(" expr ")" | comparison
    comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
    field      := ("metrics" | "params" | "tags" | "attributes") "." key | attribute
    op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "like" | "ilike"
    value      := number | 'text' | "text"

Keys with spaces or operators go in backticks or quotes: ``metrics.`val loss` < 1``.
Attributes: ``id``, ``name``, ``status``, ``start_time``, ``end_time``,
``experiment_id``, ``parent_id``. A comparison on a metric, param or tag the
run does not have is false, as is any comparison with NaN.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from mlops_sdk.errors import InvalidFilter

FIELDS = {
    "metrics": "metrics", "metric": "metrics",
    "params": "params", "param": "params",
    "tags": "tags", "tag": "tags",
    "attributes": "attributes", "attribute": "attributes", "attr": "attributes", "run": "attributes",
}
ATTRIBUTE_ALIASES = {
    "id": "id", "run_id": "id", "name": "name", "run_name": "name", "status": "status",
    "start_time": "start_time", "end_time": "end_time", "experiment_id": "experiment_id",
    "parent_id": "parent_id",
}
NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time"})
COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")
TEXT_OPS = ("like", "ilike")
LIST_OPS = ("in", "not in")

Value = float | str


@attrs.frozen
class Comparison:
    """``field.key op value``; ``value`` is a tuple for ``in`` / ``not in``."""

    field: str
    key: str
    op: str
    value: Value | tuple[Value, ...]


@attrs.frozen
class And:
    items: tuple[Expr, ...]


@attrs.frozen
class Or:
    items: tuple[Expr, ...]


Expr = Comparison | And | Or


@attrs.frozen
class OrderKey:
    """Sort by ``field.key``; missing values always sort last."""

    field: str
    key: str
    descending: bool = False


# -- tokenizer -----------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<backtick>`[^`]*`)
  | (?P<ident>[A-Za-z_][\w\-./:]*)
    """,
    re.VERBOSE,
)


def _unquote(text: str) -> str:
    quote = text[0]
    body = text[1:-1]
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise InvalidFilter(f"cannot read the filter at position {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "ws":
            continue
        tokens.append((kind, m.group()))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise InvalidFilter(f"filter ends too early: {self.text!r}")
        self.pos += 1
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "ident" and tok[1].lower() in words:
            self.pos += 1
            return True
        return False

    def parse(self) -> Expr:
        expr = self.or_expr()
        if self.peek() is not None:
            raise InvalidFilter(f"unexpected {self.peek()[1]!r} in filter {self.text!r}")  # type: ignore[index]
        return expr

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.atom()]
        while self.keyword("and"):
            items.append(self.atom())
        return items[0] if len(items) == 1 else And(tuple(items))

    def atom(self) -> Expr:
        tok = self.peek()
        if tok == ("punct", "("):
            self.pos += 1
            expr = self.or_expr()
            if self.next() != ("punct", ")"):
                raise InvalidFilter(f"missing ')' in filter {self.text!r}")
            return expr
        return self.comparison()

    def field(self) -> tuple[str, str]:
        kind, text = self.next()
        if kind in ("backtick", "string"):
            return _field_of(None, _unquote(text), self.text)
        if kind != "ident":
            raise InvalidFilter(f"expected a field such as metrics.acc, got {text!r} in {self.text!r}")
        prefix, dot, rest = text.partition(".")
        if dot and not rest:  # metrics.`a key`
            qkind, qtext = self.next()
            if qkind not in ("backtick", "string"):
                raise InvalidFilter(f"expected a key after {text!r} in {self.text!r}")
            return _field_of(prefix, _unquote(qtext), self.text)
        if not dot:
            return _field_of(None, text, self.text)
        return _field_of(prefix, rest, self.text)

    def value(self) -> Value:
        kind, text = self.next()
        if kind == "number":
            return float(text)
        if kind == "string":
            return _unquote(text)
        if kind == "ident" and text.lower() in ("nan", "inf", "infinity"):
            return float(text)
        raise InvalidFilter(f"expected a number or a quoted string, got {text!r} in {self.text!r}")

    def comparison(self) -> Comparison:
        field, key = self.field()
        negate = self.keyword("not")
        if self.keyword("in"):
            if self.next() != ("punct", "("):
                raise InvalidFilter(f"expected '(' after IN in {self.text!r}")
            values = [self.value()]
            while self.peek() == ("punct", ","):
                self.pos += 1
                values.append(self.value())
            if self.next() != ("punct", ")"):
                raise InvalidFilter(f"missing ')' after IN list in {self.text!r}")
            return _checked(Comparison(field, key, "not in" if negate else "in", tuple(values)), self.text)
        if negate:
            raise InvalidFilter(f"'not' must be followed by 'in' in {self.text!r}")
        tok = self.next()
        if tok[0] == "op":
            op = {"==": "=", "<>": "!="}.get(tok[1], tok[1])
        elif tok[0] == "ident" and tok[1].lower() in TEXT_OPS:
            op = tok[1].lower()
        else:
            raise InvalidFilter(f"expected an operator after {field}.{key}, got {tok[1]!r} in {self.text!r}")
        return _checked(Comparison(field, key, op, self.value()), self.text)


def _field_of(prefix: str | None, key: str, text: str) -> tuple[str, str]:
    if prefix is None:
        attr = ATTRIBUTE_ALIASES.get(key.lower())
        if attr is None:
            raise InvalidFilter(
                f"unknown field {key!r} in {text!r}: use metrics.KEY, params.KEY, tags.KEY "
                f"or an attribute ({', '.join(sorted(set(ATTRIBUTE_ALIASES.values())))})"
            )
        return "attributes", attr
    field = FIELDS.get(prefix.lower())
    if field is None:
        raise InvalidFilter(f"unknown field type {prefix!r} in {text!r}: use metrics, params, tags or attributes")
    if not key:
        raise InvalidFilter(f"empty key after {prefix!r} in {text!r}")
    if field == "attributes":
        attr = ATTRIBUTE_ALIASES.get(key.lower())
        if attr is None:
            raise InvalidFilter(f"unknown attribute {key!r} in {text!r}")
        return field, attr
    return field, key


def _checked(cmp: Comparison, text: str) -> Comparison:
    values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    numeric_field = cmp.field == "metrics" or (cmp.field == "attributes" and cmp.key in NUMERIC_ATTRIBUTES)
    text_field = cmp.field in ("tags",) or (cmp.field == "attributes" and cmp.key not in NUMERIC_ATTRIBUTES)
    if numeric_field and any(isinstance(v, str) for v in values):
        raise InvalidFilter(f"{cmp.field}.{cmp.key} is numeric; compare it with a number in {text!r}")
    if text_field and any(not isinstance(v, str) for v in values):
        raise InvalidFilter(f"{cmp.field}.{cmp.key} is text; quote the value in {text!r}")
    if cmp.op in TEXT_OPS and not isinstance(cmp.value, str):
        raise InvalidFilter(f"{cmp.op.upper()} needs a quoted pattern in {text!r}")
    if cmp.op in TEXT_OPS and numeric_field:
        raise InvalidFilter(f"{cmp.op.upper()} does not apply to numeric {cmp.field}.{cmp.key} in {text!r}")
    return cmp


def parse_filter(text: str | None) -> Expr | None:
    """Parse a filter string; None or blank means no filter.

    >>> parse_filter("metrics.acc > 0.8 and params.n = 100")
    And(items=(Comparison(field='metrics', key='acc', op='>', value=0.8), Comparison(field='params', key='n', op='=', value=100.0)))
    """
    if text is None or not str(text).strip():
        return None
    if not isinstance(text, str):
        raise InvalidFilter(f"a filter must be a string, got {type(text).__name__}")
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise InvalidFilter(f"filter is nested too deeply: {text[:40]!r}…") from None


def parse_order_by(items: str | Iterable[str] | None) -> list[OrderKey]:
    """Parse ``["-metrics.acc", "params.n ASC", "start_time desc"]``."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    keys: list[OrderKey] = []
    for raw in items:
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidFilter(f"order_by items must be non-empty strings, got {raw!r}")
        text = raw.strip()
        descending = False
        if text.startswith("-"):
            descending, text = True, text[1:].strip()
        elif text.startswith("+"):
            text = text[1:].strip()
        lowered = text.lower()
        if lowered.endswith(" desc"):
            descending, text = True, text[:-5].strip()
        elif lowered.endswith(" asc"):
            text = text[:-4].strip()
        parser = _Parser(text)
        field, key = parser.field()
        if parser.peek() is not None:
            raise InvalidFilter(f"cannot read order_by item {raw!r}")
        keys.append(OrderKey(field, key, descending))
    return keys


# -- reference semantics ---------------------------------------------------------
def param_number(value: Any) -> float | None:
    """The numeric reading of a param: numbers, and strings that hold one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range has no numeric reading
            return None
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def param_text(value: Any) -> str:
    """The text reading of a param: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def like_to_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """SQL LIKE (``%`` any run, ``_`` one character) as an anchored regex."""
    out = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{out}$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _compare(left: Any, op: str, right: Any) -> bool:
    if left is None:
        return False
    if isinstance(left, float) and math.isnan(left):
        return False
    if isinstance(right, float) and math.isnan(right):
        return False
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "ilike":  # lower() on both sides, Unicode-aware, as SQL's lower(x) LIKE lower(pattern)
        return bool(like_to_regex(str(right).lower(), ignore_case=False).match(str(left).lower()))
    if op == "like":
        return bool(like_to_regex(str(right), ignore_case=False).match(str(left)))
    raise InvalidFilter(f"unknown operator {op!r}")


def field_value(record: Any, field: str, key: str, want_text: bool) -> Any:
    """The value a comparison sees for ``record`` (a RunRecord), or None when absent."""
    if field == "metrics":
        return record.metrics.get(key)
    if field == "tags":
        return record.tags.get(key)
    if field == "params":
        if key not in record.params:
            return None
        value = record.params[key]
        return param_text(value) if want_text else param_number(value)
    value = getattr(record, key)
    return str(value) if key == "status" and value is not None else value


def matches(expr: Expr | None, record: Any) -> bool:
    """Whether ``record`` satisfies ``expr``: the semantics every store must follow."""
    if expr is None:
        return True
    if isinstance(expr, And):
        return all(matches(item, record) for item in expr.items)
    if isinstance(expr, Or):
        return any(matches(item, record) for item in expr.items)
    values: Sequence[Value] = expr.value if isinstance(expr.value, tuple) else (expr.value,)
    want_text = isinstance(values[0], str)
    left = field_value(record, expr.field, expr.key, want_text)
    if expr.op in LIST_OPS:
        if left is None or (isinstance(left, float) and math.isnan(left)):
            return False
        hit = any(_compare(left, "=", v) for v in values)
        return hit if expr.op == "in" else not hit
    return _compare(left, expr.op, values[0])


def _sort_values(record: Any, key: OrderKey) -> list[Any]:
    if key.field == "metrics":
        value = record.metrics.get(key.key)
        return [None if value is None or math.isnan(value) else value]
    if key.field == "params":
        if key.key not in record.params:
            return [None, None]
        value = record.params[key.key]
        return [param_number(value), param_text(value)]
    if key.field == "tags":
        return [record.tags.get(key.key)]
    value = getattr(record, key.key)
    return [str(value) if key.key == "status" and value is not None else value]


def sort_records(records: Sequence[Any], order_by: Sequence[OrderKey]) -> list[Any]:
    """``records`` (RunRecords) in search order: the order every store must follow.

    Each key in turn (params: numeric reading, then text; missing and NaN last,
    whatever the direction), then newest first, then by id.
    """

    def compare(a: Any, b: Any) -> int:
        for key in order_by:
            for x, y in zip(_sort_values(a, key), _sort_values(b, key), strict=True):
                if x == y:
                    continue
                if x is None:
                    return 1
                if y is None:
                    return -1
                result = -1 if x < y else 1
                return -result if key.descending else result
        if a.start_time != b.start_time:
            return -1 if a.start_time > b.start_time else 1
        return -1 if a.id < b.id else (1 if a.id > b.id else 0)

    return sorted(records, key=functools.cmp_to_key(compare))
