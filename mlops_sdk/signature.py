"""Model signatures: what input a model expects, checked before every prediction.

A signature describes one of two kinds of input:

* **tabular**: named columns, each with a dtype (:class:`ColumnSpec`). Data may
  come as a pandas DataFrame, a list of row dicts (JSON records), a dict of
  column lists, or a 2-D array / list of lists whose columns are taken in order.
* **tensor**: one array with a dtype and a shape (:class:`TensorSpec`), ``-1``
  for the batch and other variable dimensions. Data may come as a numpy array,
  a torch tensor or nested lists.

Dtypes are numpy-style names (``int64``, ``float32``, ``bool``, ``string``,
``datetime64``, ``object``…). A check allows safe numeric widening (an integer
where a float is expected) and refuses the rest (a float where an integer is
expected, text where a number is expected).

    >>> import pandas as pd
    >>> sig = infer_signature(pd.DataFrame({"age": [31, 45], "income": [1.5, 2.0]}))
    >>> check(sig, [{"age": 52, "income": 3}])          # int income: widened, accepted
    >>> check(sig, [{"age": 52.5, "income": 3.0}])      # doctest: +SKIP
    Traceback (most recent call last):
    SignatureMismatch: column 'age': expected int64, got float64 (a float cannot be passed as an integer)

Nothing here imports numpy, pandas or torch until data of that kind is handled.
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from mlops_sdk.errors import InvalidValue, MissingDependency, SignatureMismatch

#: every dtype name a spec may carry
DTYPES: frozenset[str] = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        "string",
        "bytes",
        "datetime64",
        "timedelta64",
        "object",
    }
)

# one letter per family, as numpy's dtype.kind
_KIND = {
    "bool": "b",
    **{f"int{n}": "i" for n in (8, 16, 32, 64)},
    **{f"uint{n}": "u" for n in (8, 16, 32, 64)},
    "float16": "f",
    "bfloat16": "f",
    "float32": "f",
    "float64": "f",
    "complex64": "c",
    "complex128": "c",
    "string": "U",
    "bytes": "S",
    "datetime64": "M",
    "timedelta64": "m",
    "object": "O",
}
# which families of data each expected family accepts (safe widening only)
_ACCEPTS = {
    "b": {"b"},
    "i": {"b", "i", "u"},
    "u": {"b", "i", "u"},
    "f": {"b", "i", "u", "f"},
    "c": {"b", "i", "u", "f", "c"},
    "U": {"U"},
    "S": {"S"},
    "M": {"M"},
    "m": {"m"},
}
_NUMERIC = frozenset("biufc")


def _check_dtype(_: Any, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or value not in DTYPES:
        raise InvalidValue(
            f"{attribute.name} {value!r} is not a known dtype; use one of {', '.join(sorted(DTYPES))}"
        )


def _check_column_name(_: Any, __: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"a column name must be a non-empty string, got {value!r}")


def _to_shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidValue(f"a tensor shape must be a sequence of integers, got {value!r}")
    dims = tuple(value)
    for dim in dims:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < -1:
            raise InvalidValue(
                f"tensor shape {dims!r}: each dimension must be an integer >= 0, or -1 for any size"
            )
    return dims


@attrs.frozen
class ColumnSpec:
    """One named column of tabular input: ``ColumnSpec("age", "int64")``."""

    name: str = attrs.field(validator=_check_column_name)
    dtype: str = attrs.field(validator=_check_dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "column", "name": self.name, "dtype": self.dtype}


@attrs.frozen
class TensorSpec:
    """One array input: ``TensorSpec("float32", (-1, 4))``; ``-1`` marks a dimension of any size."""

    dtype: str = attrs.field(validator=_check_dtype)
    shape: tuple[int, ...] = attrs.field(converter=_to_shape)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "tensor", "dtype": self.dtype, "shape": list(self.shape)}


Spec: TypeAlias = ColumnSpec | TensorSpec


def _to_specs(value: Any) -> tuple[Spec, ...]:
    if isinstance(value, (ColumnSpec, TensorSpec)):
        return (value,)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidValue(
            f"signature inputs/outputs must be a sequence of ColumnSpec or TensorSpec, got {value!r}"
        )
    specs = tuple(value)
    bad = [s for s in specs if not isinstance(s, (ColumnSpec, TensorSpec))]
    if bad:
        raise InvalidValue(f"signature entries must be ColumnSpec or TensorSpec, got {bad[0]!r}")
    columns = [s for s in specs if isinstance(s, ColumnSpec)]
    if columns and len(columns) != len(specs):
        raise InvalidValue("a signature is either all columns or a single tensor, not a mix")
    if not columns and len(specs) > 1:
        raise InvalidValue(f"a signature holds a single tensor spec, got {len(specs)}")
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidValue(f"duplicate column name(s) in signature: {', '.join(map(repr, dupes))}")
    return specs


def _check_inputs(_: Any, __: attrs.Attribute[tuple[Spec, ...]], value: tuple[Spec, ...]) -> None:
    if not value:
        raise InvalidValue("a signature needs at least one input spec")


@attrs.frozen
class Signature:
    """What a model takes (``inputs``) and, optionally, what it returns (``outputs``).

    >>> sig = Signature([ColumnSpec("x", "float64"), ColumnSpec("n", "int64")])
    >>> Signature.from_dict(sig.to_dict()) == sig
    True
    """

    inputs: tuple[Spec, ...] = attrs.field(converter=_to_specs, validator=_check_inputs)
    outputs: tuple[Spec, ...] = attrs.field(default=(), converter=_to_specs)

    @property
    def is_tabular(self) -> bool:
        """True for named columns, False for a single tensor."""
        return isinstance(self.inputs[0], ColumnSpec)

    @property
    def columns(self) -> tuple[ColumnSpec, ...]:
        """The input columns (empty for a tensor signature)."""
        return tuple(s for s in self.inputs if isinstance(s, ColumnSpec))

    @property
    def tensor(self) -> TensorSpec | None:
        """The input tensor spec (None for a tabular signature)."""
        first = self.inputs[0]
        return first if isinstance(first, TensorSpec) else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form; :meth:`from_dict` reads it back."""
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Rebuild a signature written by :meth:`to_dict`; malformed data raises ``InvalidValue``."""
        if not isinstance(data, Mapping) or "inputs" not in data:
            raise InvalidValue(f"a signature dict needs an 'inputs' list, got {data!r}")
        unknown = set(data) - {"inputs", "outputs"}
        if unknown:
            raise InvalidValue(f"unknown signature field(s): {', '.join(sorted(unknown))}")
        return cls(_specs_from_list(data["inputs"]), _specs_from_list(data.get("outputs", [])))


def _specs_from_list(items: Any) -> tuple[Spec, ...]:
    if not isinstance(items, list):
        raise InvalidValue(f"signature inputs/outputs must be a list, got {type(items).__name__}")
    return tuple(_spec_from_dict(item) for item in items)


def _spec_from_dict(item: Any) -> Spec:
    if not isinstance(item, Mapping):
        raise InvalidValue(f"a signature entry must be a dict, got {item!r}")
    kind = item.get("type")
    if kind == "column" and set(item) == {"type", "name", "dtype"}:
        return ColumnSpec(item["name"], item["dtype"])
    if kind == "tensor" and set(item) == {"type", "dtype", "shape"}:
        return TensorSpec(item["dtype"], item["shape"])
    raise InvalidValue(
        f"a signature entry must be {{'type': 'column', 'name', 'dtype'}} or "
        f"{{'type': 'tensor', 'dtype', 'shape'}}, got {dict(item)!r}"
    )


# -- dtype names of data -------------------------------------------------------------------
def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _scalar_family(value: Any) -> str:
    """The family of one Python or numpy scalar: bool, int, float, str, bytes, datetime or other."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, (_dt.datetime, _dt.date)):
        return "datetime"
    if "numpy" in sys.modules:
        import numpy as np

        if isinstance(value, np.bool_):
            return "bool"
        if isinstance(value, np.integer):
            return "int"
        if isinstance(value, np.floating):
            return "float"
        if isinstance(value, np.datetime64):
            return "datetime"
    return "other"


def _values_dtype(values: Iterable[Any]) -> str:
    """The dtype name of a column of Python values (missing values are ignored)."""
    seen = {_scalar_family(v) for v in values if not _is_missing(v)}
    if not seen:
        return "object"
    if seen == {"bool"}:
        return "bool"
    if seen == {"int"}:
        return "int64"
    if seen <= {"int", "float"}:
        return "float64"
    single = {"str": "string", "bytes": "bytes", "datetime": "datetime64"}
    if len(seen) == 1:
        return single.get(seen.pop(), "object")
    return "object"


def _numpy_dtype_name(dtype: Any, values: Any = None) -> str:
    kind = dtype.kind
    if kind == "b":
        return "bool"
    if kind in "iufc":
        return str(dtype.name) if dtype.name in DTYPES else "object"
    simple = {"U": "string", "S": "bytes", "M": "datetime64", "m": "timedelta64"}
    if kind in simple:
        return simple[kind]
    if kind == "O" and values is not None:
        return _values_dtype(values)
    return "object"


def _pandas_dtype_name(series: Any) -> str:
    import numpy as np
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        return _numpy_dtype_name(dtype, series.to_numpy() if dtype.kind == "O" else None)
    types = pd.api.types
    if isinstance(dtype, pd.CategoricalDtype):
        return _pandas_dtype_name(pd.Series(dtype.categories))
    if types.is_bool_dtype(dtype):
        return "bool"
    if types.is_integer_dtype(dtype) or types.is_float_dtype(dtype):
        return _numpy_dtype_name(np.dtype(dtype.numpy_dtype))
    if types.is_datetime64_any_dtype(dtype):
        return "datetime64"
    if types.is_timedelta64_dtype(dtype):
        return "timedelta64"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    return "object"


def _torch_dtype_name(dtype: Any) -> str:
    name = str(dtype).removeprefix("torch.")
    return name if name in DTYPES else "object"


def _module_of(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _is_dataframe(obj: Any) -> bool:
    return _module_of(obj) == "pandas" and type(obj).__name__ == "DataFrame"


def _is_series(obj: Any) -> bool:
    return _module_of(obj) == "pandas" and type(obj).__name__ == "Series"


def _is_ndarray(obj: Any) -> bool:
    return "numpy" in sys.modules and isinstance(obj, sys.modules["numpy"].ndarray)


def _is_tensor(obj: Any) -> bool:
    return "torch" in sys.modules and isinstance(obj, sys.modules["torch"].Tensor)


def _is_records(obj: Any) -> bool:
    return isinstance(obj, (list, tuple)) and bool(obj) and all(isinstance(r, Mapping) for r in obj)


def _describe(obj: Any) -> str:
    name = type(obj).__name__
    if isinstance(obj, (list, tuple)) and obj:
        return f"a {name} of {type(obj[0]).__name__}"
    return f"a value of type {name}"


# -- inference -----------------------------------------------------------------------------
def infer_signature(example: Any, output: Any = None) -> Signature:
    """The signature of an input example (and, if given, of the model's output on it).

    * pandas DataFrame, list of row dicts, dict of column lists → named columns;
    * numpy array, torch tensor, nested lists → one tensor, batch dimension ``-1``.

        >>> import numpy as np
        >>> infer_signature(np.zeros((5, 4), dtype="float32")).inputs
        (TensorSpec(dtype='float32', shape=(-1, 4)),)
    """
    outputs = _infer_specs(output, "output") if output is not None else ()
    return Signature(_infer_specs(example, "input example"), outputs)


def _infer_specs(example: Any, what: str) -> tuple[Spec, ...]:
    if _is_dataframe(example):
        names = [str(c) for c in example.columns]
        if len(set(names)) != len(names):
            raise InvalidValue(f"the {what} has duplicate column names: {names}")
        if not names:
            raise InvalidValue(f"the {what} has no columns")
        return tuple(
            ColumnSpec(name, _pandas_dtype_name(example.iloc[:, i])) for i, name in enumerate(names)
        )
    if _is_records(example):
        return tuple(
            ColumnSpec(name, _values_dtype(vals))
            for name, vals in _records_columns(example).items()
        )
    if isinstance(example, Mapping):
        columns = _mapping_columns(example, what, InvalidValue)
        return tuple(ColumnSpec(name, _column_dtype(vals)) for name, vals in columns.items())
    if _is_tensor(example):
        if example.ndim == 0:
            raise InvalidValue(f"the {what} is a 0-d tensor; it needs a batch dimension")
        return (TensorSpec(_torch_dtype_name(example.dtype), (-1, *example.shape[1:])),)
    if _is_series(example):
        example = example.to_numpy()
    if isinstance(example, (list, tuple)) or _is_ndarray(example):
        array = _as_array(example, InvalidValue, what)
        if array.ndim == 0 or array.shape[0] == 0:
            raise InvalidValue(
                f"the {what} is empty or has no batch dimension (shape {array.shape})"
            )
        return (TensorSpec(_numpy_dtype_name(array.dtype, array.ravel()), (-1, *array.shape[1:])),)
    raise InvalidValue(
        f"cannot infer a signature from {_describe(example)}; pass a pandas DataFrame, a list of row "
        "dicts, a dict of column lists, a numpy array, a torch tensor or a list of lists"
    )


def _records_columns(rows: Sequence[Mapping[Any, Any]]) -> dict[str, list[Any]]:
    """Column name → values of a list of row dicts (a key absent from a row reads as None)."""
    names: dict[str, None] = {}
    for row in rows:
        for key in row:
            names.setdefault(str(key), None)
    return {name: [_get(row, name) for row in rows] for name in names}


def _get(row: Mapping[Any, Any], name: str) -> Any:
    if name in row:
        return row[name]
    for key, value in row.items():  # non-string keys, matched by their str()
        if str(key) == name:
            return value
    return None


def _mapping_columns(data: Mapping[Any, Any], what: str, error: type[Exception]) -> dict[str, Any]:
    """A dict of column lists (or a single row of scalars) as name → sequence of values."""
    if not data:
        raise error(f"the {what} has no columns")
    scalar = [k for k, v in data.items() if isinstance(v, (str, bytes)) or not _is_sequence(v)]
    if len(scalar) == len(data):  # one row: {"a": 1, "b": 2}
        return {str(k): [v] for k, v in data.items()}
    if scalar:
        raise error(
            f"column {str(scalar[0])!r} of the {what} is a single value, the others are lists"
        )
    lengths = {str(k): len(v) for k, v in data.items()}
    if len(set(lengths.values())) > 1:
        raise error(f"the {what}'s columns have different lengths: {lengths}")
    return {str(k): v for k, v in data.items()}


def _is_sequence(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        or _is_ndarray(value)
        or _is_series(value)
        or _is_tensor(value)
    )


def _column_dtype(values: Any) -> str:
    if _is_series(values):
        return _pandas_dtype_name(values)
    if _is_ndarray(values):
        return _numpy_dtype_name(values.dtype, values)
    if _is_tensor(values):
        return _torch_dtype_name(values.dtype)
    return _values_dtype(values)


def _as_array(data: Any, error: type[Exception], what: str) -> Any:
    import numpy as np

    if _is_ndarray(data):
        return data
    try:
        return np.asarray(data)
    except ValueError as exc:  # ragged nested lists
        raise error(
            f"the {what} is not a regular array (rows of different lengths?): {exc}"
        ) from exc


# -- checking ------------------------------------------------------------------------------
def _accepts(expected: str, got: str) -> bool:
    if expected == got or expected == "object":
        return True
    return _KIND[got] in _ACCEPTS.get(_KIND[expected], set())


def _dtype_problem(expected: str, got: str) -> str:
    exp, gk = _KIND[expected], _KIND[got]
    if exp in "iu" and gk in "fc":
        return " (a float cannot be passed as an integer)"
    if exp in _NUMERIC and gk not in _NUMERIC:
        return " (a number is expected)"
    if exp not in _NUMERIC and gk in _NUMERIC:
        return f" ({expected} is expected, not a number)"
    return ""


def _check_dtype_of(what: str, expected: str, got: str) -> None:
    if not _accepts(expected, got):
        raise SignatureMismatch(
            f"{what}: expected {expected}, got {got}{_dtype_problem(expected, got)}"
        )


def check(signature: Signature, data: Any) -> None:
    """Raise :class:`~mlops_sdk.errors.SignatureMismatch` unless ``data`` fits ``signature``.

    The message names the missing or unexpected column, the column or tensor with
    the wrong dtype, or the expected and actual shape.

        >>> sig = Signature([TensorSpec("float32", (-1, 4))])
        >>> check(sig, [[1, 2, 3, 4]])            # ints widen to float: accepted
        >>> check(sig, [[1.0, 2.0]])              # doctest: +SKIP
        Traceback (most recent call last):
        SignatureMismatch: input shape: expected (-1, 4), got (1, 2)
    """
    _check(signature, data, parse_dates=False)


def _check(signature: Signature, data: Any, *, parse_dates: bool) -> None:
    if not isinstance(signature, Signature):
        raise InvalidValue(f"expected a Signature, got {type(signature).__name__}")
    if signature.is_tabular:
        _check_columns(
            signature.columns, _data_columns(data, signature.columns), parse_dates=parse_dates
        )
    else:
        spec = signature.tensor
        assert spec is not None
        dtype, shape = _data_tensor(data)
        _check_tensor(spec, dtype, shape)


def _check_tensor(spec: TensorSpec, dtype: str, shape: tuple[int, ...]) -> None:
    fits = len(shape) == len(spec.shape) and all(
        e in (-1, g) for e, g in zip(spec.shape, shape, strict=True)
    )
    if not fits:
        raise SignatureMismatch(
            f"input shape: expected {_shape_str(spec.shape)}, got {_shape_str(shape)}"
        )
    _check_dtype_of("input", spec.dtype, dtype)


def _shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _data_tensor(data: Any) -> tuple[str, tuple[int, ...]]:
    """dtype name and shape of array-like data."""
    if _is_tensor(data):
        return _torch_dtype_name(data.dtype), tuple(int(d) for d in data.shape)
    if _is_dataframe(data) or _is_series(data):
        data = data.to_numpy()
    if isinstance(data, Mapping) or _is_records(data):
        raise SignatureMismatch(
            f"the model takes an array, got {_describe(data)}; send a list of rows (lists of numbers)"
        )
    if not (_is_ndarray(data) or isinstance(data, (list, tuple))):
        raise SignatureMismatch(
            f"the model takes an array (numpy array, tensor or nested lists), got {_describe(data)}"
        )
    array = _as_array(data, SignatureMismatch, "input")
    return _numpy_dtype_name(array.dtype, array.ravel()), tuple(int(d) for d in array.shape)


def _data_columns(data: Any, specs: Sequence[ColumnSpec]) -> dict[str, str]:
    """Column name → dtype name of tabular data (positional data gets the signature's names)."""
    if _is_dataframe(data):
        names = [str(c) for c in data.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SignatureMismatch(
                f"duplicate column(s) in the input: {', '.join(map(repr, dupes))}"
            )
        return {name: _pandas_dtype_name(data.iloc[:, i]) for i, name in enumerate(names)}
    if _is_records(data):
        return {name: _values_dtype(vals) for name, vals in _records_columns(data).items()}
    if isinstance(data, Mapping):
        columns = _mapping_columns(data, "input", SignatureMismatch)
        return {name: _column_dtype(vals) for name, vals in columns.items()}
    if _is_tensor(data) or _is_ndarray(data) or (isinstance(data, (list, tuple)) and data):
        columns = _positional_columns(data, specs)
        return {name: _column_dtype(values) for name, values in columns.items()}
    raise SignatureMismatch(
        f"the model takes named columns ({', '.join(s.name for s in specs)}), got {_describe(data)}; "
        "send a list of row dicts, a dict of column lists or a DataFrame"
    )


def _positional_columns(data: Any, specs: Sequence[ColumnSpec]) -> dict[str, Any]:
    """Rows of values (2-D array, tensor, list of lists) as column name → values, in spec order."""
    if _is_tensor(data):
        data = data.detach().cpu().numpy()
    width = len(specs)
    names = ", ".join(s.name for s in specs)
    if _is_ndarray(data):
        if data.ndim != 2:
            raise SignatureMismatch(
                f"the model takes {width} named columns; an array input must be 2-D "
                f"(rows by {width}), got shape {_shape_str(data.shape)}"
            )
        if data.shape[1] != width:
            raise SignatureMismatch(
                f"the model takes {width} columns ({names}), got rows of {data.shape[1]} values"
            )
        return {spec.name: data[:, i] for i, spec in enumerate(specs)}
    for n, row in enumerate(data):
        if isinstance(row, (str, bytes, Mapping)) or not isinstance(row, (list, tuple)):
            raise SignatureMismatch(
                f"the model takes {width} named columns ({names}); row {n} is {_describe(row)}, "
                "not a list of values"
            )
        if len(row) != width:
            raise SignatureMismatch(
                f"the model takes {width} columns ({names}), got rows of {len(row)} values"
            )
    return {spec.name: [row[i] for row in data] for i, spec in enumerate(specs)}


def _check_columns(
    specs: Sequence[ColumnSpec], got: Mapping[str, str], *, parse_dates: bool
) -> None:
    expected = [s.name for s in specs]
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in set(expected)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(
                f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
            )
        if extra:
            parts.append(
                f"unexpected column{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}"
            )
        raise SignatureMismatch("; ".join(parts) + f" (the model takes: {', '.join(expected)})")
    for spec in specs:
        have = got[spec.name]
        if parse_dates and spec.dtype == "datetime64" and have == "string":
            continue  # coerce parses ISO strings
        _check_dtype_of(f"column {spec.name!r}", spec.dtype, have)


# -- coercion ------------------------------------------------------------------------------
def coerce(signature: Signature, data: Any) -> Any:
    """Turn request data into what the model's flavor takes, checking it on the way.

    A tabular signature gives a pandas DataFrame with the signature's columns, in
    its order and dtypes (ISO date strings are parsed for ``datetime64``
    columns); a tensor signature gives a numpy array of the spec's dtype (a torch
    tensor is passed through). Raises ``SignatureMismatch`` like :func:`check`,
    and also when a value does not fit the target dtype (a missing value in an
    integer column, 300 for ``uint8``).

        >>> sig = Signature([ColumnSpec("a", "float64"), ColumnSpec("b", "int64")])
        >>> coerce(sig, [{"b": 2, "a": 1}]).dtypes.tolist()
        [dtype('float64'), dtype('int64')]
    """
    _check(signature, data, parse_dates=True)
    if signature.is_tabular:
        return _coerce_frame(signature.columns, data)
    spec = signature.tensor
    assert spec is not None
    if _is_tensor(data):
        return data
    if _is_dataframe(data) or _is_series(data):
        data = data.to_numpy()
    return _cast_array(_as_array(data, SignatureMismatch, "input"), spec.dtype, "input")


def _require_pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingDependency("tabular model input needs pandas: pip install pandas") from exc
    return pd


def _coerce_frame(specs: Sequence[ColumnSpec], data: Any) -> Any:
    pd = _require_pandas()
    names = [s.name for s in specs]
    if _is_dataframe(data):
        frame = data.copy()
        frame.columns = [str(c) for c in frame.columns]
        frame = frame[names]
    elif _is_records(data):
        columns = _records_columns(data)
        frame = pd.DataFrame({name: columns[name] for name in names})
    elif isinstance(data, Mapping):
        columns = _mapping_columns(data, "input", SignatureMismatch)
        frame = pd.DataFrame({name: _plain(columns[name]) for name in names})
    else:
        columns = _positional_columns(data, specs)
        frame = pd.DataFrame(columns)
    for spec in specs:
        frame[spec.name] = _cast_series(frame[spec.name], spec, pd)
    return frame


def _plain(values: Any) -> Any:
    return values.detach().cpu().numpy() if _is_tensor(values) else values


def _cast_series(series: Any, spec: ColumnSpec, pd: Any) -> Any:
    what = f"column {spec.name!r}"
    if spec.dtype == "datetime64":
        try:
            return pd.to_datetime(series)
        except (ValueError, TypeError) as exc:
            raise SignatureMismatch(
                f"{what}: expected dates, got values that are not: {exc}"
            ) from exc
    if _KIND[spec.dtype] not in _NUMERIC or spec.dtype == "bfloat16":
        return series
    return pd.Series(
        _cast_array(series.to_numpy(), spec.dtype, what), index=series.index, name=series.name
    )


def _cast_array(array: Any, dtype: str, what: str) -> Any:
    """``array`` as ``dtype`` (numeric specs only), refusing values the target cannot hold."""
    import numpy as np

    kind = _KIND[dtype]
    if kind not in _NUMERIC or dtype == "bfloat16" or array.dtype.name == dtype:
        return array
    if kind in "iub" and array.dtype.kind in "fO":
        source = array.astype("float64") if array.dtype.kind == "O" else array
        if np.isnan(source).any():
            raise SignatureMismatch(f"{what}: has missing values, which {dtype} cannot hold")
    target = np.dtype(dtype)
    cast = array.astype(target)
    if kind in "iu" and not np.array_equal(cast.astype(array.dtype), array):
        info = np.iinfo(target)
        raise SignatureMismatch(f"{what}: values out of range for {dtype} ({info.min}..{info.max})")
    return cast


__all__ = [
    "DTYPES",
    "ColumnSpec",
    "Signature",
    "Spec",
    "TensorSpec",
    "check",
    "coerce",
    "infer_signature",
]
