"""Signatures: inference from real data, checks that name the problem, coercion of JSON rows.

Properties (hypothesis): ``to_dict``/``from_dict`` round-trips through JSON, and
whatever ``infer_signature`` returns accepts the very data it was inferred from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlops_sdk.errors import InvalidValue, MlopsError, SignatureMismatch
from mlops_sdk.signature import (
    DTYPES,
    ColumnSpec,
    Signature,
    TensorSpec,
    check,
    coerce,
    infer_signature,
)

PROPERTY = settings(max_examples=150, deadline=None)


@pytest.fixture(scope="module")
def iris_frame() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["species"] = frame["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    return frame.drop(columns="target")


@pytest.fixture(scope="module")
def diabetes() -> np.ndarray:
    from sklearn.datasets import load_diabetes

    X: np.ndarray = load_diabetes(return_X_y=True)[0]
    return X


# -- inference -----------------------------------------------------------------------------
def test_infer_from_a_dataframe(iris_frame: pd.DataFrame) -> None:
    frame = iris_frame.assign(
        n=np.arange(len(iris_frame)),
        big=iris_frame["petal length (cm)"] > 4,
        when=pd.Timestamp("2024-01-01"),
        kind=iris_frame["species"].astype("category"),
    )
    sig = infer_signature(frame)
    assert sig.is_tabular and sig.tensor is None
    assert dict((c.name, c.dtype) for c in sig.columns) == {
        "sepal length (cm)": "float64",
        "sepal width (cm)": "float64",
        "petal length (cm)": "float64",
        "petal width (cm)": "float64",
        "species": "string",
        "n": "int64",
        "big": "bool",
        "when": "datetime64",
        "kind": "string",
    }


def test_infer_from_arrays_and_tensors(diabetes: np.ndarray) -> None:
    import torch

    assert infer_signature(diabetes[:5]).inputs == (TensorSpec("float64", (-1, 10)),)
    assert infer_signature(diabetes[:5, 0]).inputs == (TensorSpec("float64", (-1,)),)
    assert infer_signature(np.zeros((2, 3, 4), dtype="uint8")).tensor == TensorSpec(
        "uint8", (-1, 3, 4)
    )
    assert infer_signature(torch.zeros(5, 4)).tensor == TensorSpec("float32", (-1, 4))
    assert infer_signature(torch.zeros(5, 2, dtype=torch.bfloat16)).tensor == TensorSpec(
        "bfloat16", (-1, 2)
    )
    assert infer_signature([[1, 2], [3, 4]]).tensor == TensorSpec("int64", (-1, 2))
    assert infer_signature(pd.Series([1.0, 2.0])).tensor == TensorSpec("float64", (-1,))


def test_infer_from_json_shapes() -> None:
    rows = [
        {"age": 31, "income": 1.5, "city": "Oslo"},
        {"age": 45, "income": 2, "city": None, "vip": True},
    ]
    sig = infer_signature(rows)
    assert sig.inputs == (
        ColumnSpec("age", "int64"),
        ColumnSpec("income", "float64"),  # int and float mixed → float
        ColumnSpec("city", "string"),  # a missing value does not change the type
        ColumnSpec("vip", "bool"),
    )
    assert infer_signature({"age": [31, 45], "city": ["Oslo", "Rome"]}).inputs == (
        ColumnSpec("age", "int64"),
        ColumnSpec("city", "string"),
    )
    assert infer_signature({"age": 31, "city": "Oslo"}).columns[0] == ColumnSpec(
        "age", "int64"
    )  # one row


def test_infer_with_output(diabetes: np.ndarray) -> None:
    sig = infer_signature(diabetes[:5], output=np.zeros(5))
    assert sig.outputs == (TensorSpec("float64", (-1,)),)


@pytest.mark.parametrize(
    ("example", "message"),
    [
        (42, "cannot infer a signature from a value of type int"),
        ("text", "cannot infer"),
        ([], "empty"),
        (np.float64(1.0), "cannot infer"),
        (np.zeros(()), "no batch dimension"),
        ({}, "no columns"),
        ({"a": [1, 2], "b": [1]}, "different lengths"),
        ({"a": [1, 2], "b": 3}, "single value"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column"),
    ],
)
def test_infer_refuses_what_it_cannot_describe(example: Any, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        infer_signature(example)


# -- checks --------------------------------------------------------------------------------
TABULAR = Signature(
    [ColumnSpec("age", "int64"), ColumnSpec("income", "float64"), ColumnSpec("city", "string")]
)
TENSOR = Signature([TensorSpec("float32", (-1, 4))])


@pytest.mark.parametrize(
    "data",
    [
        [{"age": 31, "income": 2, "city": "Oslo"}],  # int income widens to float
        [{"city": "Oslo", "income": 2.5, "age": 31}],  # any column order
        {"age": [31, 40], "income": [1.0, 2.0], "city": ["a", "b"]},
        pd.DataFrame({"age": [31], "income": [1.0], "city": ["a"]}),
        pd.DataFrame(
            {
                "age": np.array([31], dtype="int8"),
                "income": np.array([1], dtype="int32"),
                "city": ["a"],
            }
        ),
        [[31, 1.5, "Oslo"]],  # positional rows
    ],
)
def test_tabular_data_that_fits(data: Any) -> None:
    check(TABULAR, data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"age": 31, "income": 2.0}], "missing column 'city'"),
        ([{"age": 31, "income": 2.0, "city": "a", "zip": 1}], "unexpected column 'zip'"),
        (
            [{"age": 31.5, "income": 2.0, "city": "a"}],
            r"column 'age': expected int64, got float64 \(a float cannot be passed as an integer\)",
        ),
        (
            [{"age": 31, "income": "2.0", "city": "a"}],
            r"column 'income': expected float64, got string \(a number is expected\)",
        ),
        ([{"age": 31, "income": 2.0, "city": 7}], r"column 'city': expected string, got int64"),
        ([{"age": "31", "income": 2.0, "city": "a"}], "column 'age': expected int64, got string"),
        ([[31, 1.5]], "takes 3 columns"),
        (np.zeros(3), "must be 2-D"),
        ("age=31", "takes named columns"),
        (pd.DataFrame({"age": [1.0], "income": [1.0], "city": ["a"]}), "column 'age'"),
    ],
)
def test_tabular_data_that_does_not_fit(data: Any, message: str) -> None:
    with pytest.raises(SignatureMismatch, match=message):
        check(TABULAR, data)


def test_tensor_checks(iris_frame: pd.DataFrame) -> None:
    import torch

    X = iris_frame.iloc[:, :4].to_numpy()
    check(TENSOR, X)  # float64 → float32: any float width
    check(TENSOR, X.astype(int))  # ints widen to float
    check(TENSOR, torch.zeros(3, 4))
    check(TENSOR, X[:1].tolist())
    check(TENSOR, iris_frame.iloc[:, :4])  # a frame of the right width
    with pytest.raises(SignatureMismatch, match=r"input shape: expected \(-1, 4\), got \(150, 5\)"):
        check(TENSOR, iris_frame)
    with pytest.raises(SignatureMismatch, match=r"expected \(-1, 4\), got \(4,\)"):
        check(TENSOR, X[0])
    with pytest.raises(SignatureMismatch, match="expected float32, got string"):
        check(TENSOR, X.astype(str))
    with pytest.raises(SignatureMismatch, match="takes an array"):
        check(TENSOR, [{"a": 1}])
    with pytest.raises(SignatureMismatch, match="not a regular array"):
        check(TENSOR, [[1, 2, 3, 4], [1]])
    ints = Signature([TensorSpec("int64", (-1, 3, -1))])
    check(ints, np.zeros((2, 3, 7), dtype="int32"))
    with pytest.raises(SignatureMismatch, match="a float cannot be passed as an integer"):
        check(ints, np.zeros((2, 3, 7)))
    with pytest.raises(SignatureMismatch, match=r"expected \(-1, 3, -1\), got \(2, 4, 7\)"):
        check(ints, np.zeros((2, 4, 7), dtype="int64"))


def test_signature_mismatch_is_a_typed_value_error() -> None:
    with pytest.raises(SignatureMismatch) as err:
        check(TENSOR, [[1.0]])
    assert isinstance(err.value, MlopsError) and isinstance(err.value, ValueError)


# -- coercion ------------------------------------------------------------------------------
def test_coerce_json_rows_to_a_typed_frame() -> None:
    sig = Signature(
        [
            ColumnSpec("age", "int64"),
            ColumnSpec("income", "float32"),
            ColumnSpec("day", "datetime64"),
        ]
    )
    frame = coerce(
        sig,
        [
            {"day": "2024-05-01", "income": 3, "age": 31},
            {"day": "2024-05-02", "income": 2.5, "age": 40},
        ],
    )
    assert list(frame.columns) == ["age", "income", "day"]
    assert frame["age"].dtype == np.int64 and frame["income"].dtype == np.float32
    assert frame["day"].iloc[1] == pd.Timestamp("2024-05-02")
    with pytest.raises(SignatureMismatch, match="column 'day': expected dates"):
        coerce(sig, [{"day": "soon", "income": 3, "age": 31}])
    with pytest.raises(SignatureMismatch, match="column 'age': has missing values"):
        coerce(
            sig,
            [
                {"day": "2024-05-01", "income": 3, "age": 31},
                {"day": "2024-05-01", "income": 3, "age": None},
            ],
        )
    positional = coerce(sig, [[31, 1.0, "2024-05-01"]])
    assert positional["age"].tolist() == [31]


def test_coerce_rows_to_an_array() -> None:
    import torch

    array = coerce(TENSOR, [[1, 2, 3, 4], [5, 6, 7, 8]])
    assert array.dtype == np.float32 and array.shape == (2, 4)
    tensor = torch.ones(2, 4)
    assert coerce(TENSOR, tensor) is tensor
    small = Signature([TensorSpec("uint8", (-1, 2))])
    assert coerce(small, [[1, 255]]).dtype == np.uint8
    with pytest.raises(SignatureMismatch, match="out of range for uint8"):
        coerce(small, [[1, 300]])


def test_coerced_rows_feed_a_real_model(iris_frame: pd.DataFrame) -> None:
    from sklearn.linear_model import LogisticRegression

    X = iris_frame.drop(columns="species")
    model = LogisticRegression(max_iter=500).fit(X, iris_frame["species"])
    sig = infer_signature(X)
    rows = json.loads(X.iloc[::-1].to_json(orient="records"))  # JSON round trip, as over HTTP
    rows = [dict(reversed(list(r.items()))) for r in rows]  # keys in another order
    frame = coerce(sig, rows)
    assert list(model.predict(frame)) == list(model.predict(X.iloc[::-1]))


# -- (de)serialisation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "needs an 'inputs' list"),
        ({"inputs": "x"}, "must be a list"),
        ({"inputs": []}, "at least one input"),
        (
            {"inputs": [{"type": "column", "name": "a", "dtype": "float"}]},
            "'float' is not a known dtype",
        ),
        (
            {"inputs": [{"type": "tensor", "dtype": "float32", "shape": [-2]}]},
            "integer >= 0, or -1",
        ),
        (
            {"inputs": [{"type": "tensor", "dtype": "float32", "shape": "12"}]},
            "sequence of integers",
        ),
        ({"inputs": [{"type": "table"}]}, "a signature entry must be"),
        ({"inputs": [{"type": "column", "name": "", "dtype": "int64"}]}, "non-empty string"),
        (
            {
                "inputs": [
                    {"type": "column", "name": "a", "dtype": "int64"},
                    {"type": "column", "name": "a", "dtype": "int64"},
                ]
            },
            "duplicate column",
        ),
        (
            {
                "inputs": [
                    {"type": "column", "name": "a", "dtype": "int64"},
                    {"type": "tensor", "dtype": "int64", "shape": [-1]},
                ]
            },
            "not a mix",
        ),
        ({"inputs": [{"type": "tensor", "dtype": "int64", "shape": [-1]}] * 2}, "single tensor"),
        (
            {"inputs": [{"type": "tensor", "dtype": "int64", "shape": [-1]}], "extra": 1},
            "unknown signature field",
        ),
    ],
)
def test_from_dict_refuses_malformed_data(data: Any, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        Signature.from_dict(data)


_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_columns = st.lists(
    st.builds(ColumnSpec, _names, st.sampled_from(sorted(DTYPES))),
    min_size=1,
    max_size=8,
    unique_by=lambda c: c.name,
)
_tensor = st.builds(
    TensorSpec, st.sampled_from(sorted(DTYPES)), st.lists(st.integers(-1, 64), max_size=4)
)
_specs = st.one_of(_columns, _tensor.map(lambda t: [t]))


@PROPERTY
@given(inputs=_specs, outputs=st.one_of(st.just([]), _specs))
def test_to_dict_from_dict_round_trips_through_json(inputs: list[Any], outputs: list[Any]) -> None:
    sig = Signature(inputs, outputs)
    again = Signature.from_dict(json.loads(json.dumps(sig.to_dict())))
    assert again == sig
    assert hash(again) == hash(sig)


# -- infer → check acceptance --------------------------------------------------------------
_array_dtypes = st.sampled_from(
    ["bool", "int8", "int32", "int64", "uint8", "uint16", "float16", "float32", "float64"]
)


@PROPERTY
@given(hnp.arrays(_array_dtypes, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)))
def test_an_array_fits_the_signature_inferred_from_it(array: np.ndarray) -> None:
    sig = infer_signature(array)
    check(sig, array)
    check(sig, np.concatenate([array, array]))  # any batch size
    coerced = coerce(sig, array)
    assert coerced.dtype == array.dtype
    np.testing.assert_array_equal(coerced, array)


@PROPERTY
@given(
    hnp.arrays(
        st.sampled_from(["int8", "int64", "uint8", "bool"]),
        hnp.array_shapes(min_dims=1, max_dims=2, min_side=1),
    )
)
def test_integers_widen_to_float_but_floats_do_not_narrow(array: np.ndarray) -> None:
    float_sig = Signature([TensorSpec("float32", (-1, *array.shape[1:]))])
    check(float_sig, array)
    int_sig = Signature([TensorSpec("int64", (-1, *array.shape[1:]))])
    with pytest.raises(SignatureMismatch, match="a float cannot be passed as an integer"):
        check(int_sig, array.astype("float64"))


_cell = {
    "int": st.integers(-(2**53), 2**53),
    "float": st.floats(allow_nan=False, allow_infinity=False, width=64),
    "text": st.text(max_size=5),
    "bool": st.booleans(),
}


@st.composite
def _frames(draw: st.DrawFn) -> pd.DataFrame:
    n_rows = draw(st.integers(1, 6))
    kinds = draw(st.lists(st.sampled_from(sorted(_cell)), min_size=1, max_size=5))
    names = draw(
        st.lists(
            st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=6),
            min_size=len(kinds),
            max_size=len(kinds),
            unique=True,
        )
    )
    columns = {
        name: draw(st.lists(_cell[kind], min_size=n_rows, max_size=n_rows))
        for name, kind in zip(names, kinds, strict=True)
    }
    return pd.DataFrame(columns)


@PROPERTY
@given(_frames())
def test_a_frame_and_its_json_records_fit_the_signature_inferred_from_it(
    frame: pd.DataFrame,
) -> None:
    sig = infer_signature(frame)
    check(sig, frame)
    records = frame.to_dict(orient="records")
    check(sig, records)
    check(sig, {name: frame[name].tolist() for name in frame.columns})
    back = coerce(sig, records)
    pd.testing.assert_frame_equal(back, frame[[c.name for c in sig.columns]], check_dtype=False)
    for spec in sig.columns:
        assert infer_signature(back[[spec.name]]).columns[0].dtype == spec.dtype


# -- lean --------------------------------------------------------------------------------
def test_checking_json_rows_imports_no_numpy_or_pandas(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from mlops_sdk.signature import ColumnSpec, Signature, check
        sig = Signature.from_dict({"inputs": [{"type": "column", "name": "a", "dtype": "float64"}]})
        check(sig, [{"a": 1}, {"a": 2.5}])
        loaded = {"numpy", "pandas", "torch"} & {m.split(".")[0] for m in sys.modules}
        assert not loaded, loaded
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MLOPS_PLUGINS": ""},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
