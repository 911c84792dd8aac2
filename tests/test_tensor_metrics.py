"""Logging torch tensors as metrics: read in the background, checked up front.

A tensor on a device other than the CPU is snapshotted when logged and read by
the writer thread. The ``meta`` device (which holds no values) exercises that
path on any machine; the CUDA tests run where a GPU is present.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlops_sdk as mlops
from mlops_sdk.errors import InvalidValue
from mlops_sdk.records import RunStatus
from mlops_sdk.tracking.writer import BatchWriter

torch = pytest.importorskip("torch")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cpu_tensors_of_every_real_dtype_are_stored_as_their_values(
    workspace: mlops.Workspace,
) -> None:
    values = {
        "f32": torch.tensor(0.25),
        "f64": torch.tensor([1 / 3], dtype=torch.float64),
        "bf16": torch.tensor(1.5, dtype=torch.bfloat16),
        "i64": torch.tensor(7),
        "flag": torch.tensor(True),
        "grad": torch.tensor(2.0, requires_grad=True) * 3,
    }
    with workspace.experiment("tensors").start_run() as run:
        for key, value in values.items():
            run.log_metric(key, value)
    stored = workspace.get_run(run.id).metrics
    assert stored == {"f32": 0.25, "f64": 1 / 3, "bf16": 1.5, "i64": 7.0, "flag": 1.0, "grad": 6.0}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (torch.zeros(3), r"single number, got a tensor of shape \(3,\)"),
        (torch.zeros(0), r"single number, got a tensor of shape \(0,\)"),
        (torch.tensor(1 + 2j), "real number"),
        (torch.zeros(2, device="meta"), r"shape \(2,\)"),
    ],
)
def test_a_tensor_that_is_not_one_real_number_is_refused_and_nothing_is_logged(
    workspace: mlops.Workspace, value: object, problem: str
) -> None:
    with workspace.experiment("tensors").start_run() as run:
        run.log_metric("ok", 1.0)
        with pytest.raises(InvalidValue, match=problem):
            run.log_metric("bad", value)  # type: ignore[arg-type]
    stored = workspace.get_run(run.id)
    assert stored.metrics == {"ok": 1.0}
    assert stored.metric_history("bad") == []


def test_a_device_tensor_that_cannot_be_read_is_reported_and_the_rest_is_stored(
    workspace: mlops.Workspace,
) -> None:
    run = workspace.experiment("tensors").start_run()
    for step in range(5):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metric("acc", torch.tensor(step / 10), step=step)
    run.log_metric("ghost", torch.tensor(0.5, device="meta"), step=3)  # holds no value to read
    with pytest.raises(
        InvalidValue, match=r"'ghost' of run .* at step 3: could not read the tensor"
    ):
        run.end()
    stored = workspace.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert "ghost" in (stored.error or "")
    assert [m.value for m in stored.metric_history("loss")] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert [m.value for m in stored.metric_history("acc")] == pytest.approx(
        [0.0, 0.1, 0.2, 0.3, 0.4]
    )
    assert stored.metric_history("ghost") == []


_reals = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(_reals, st.sampled_from(["float", "tensor64", "tensor32"])),
        min_size=1,
        max_size=60,
    )
)
def test_the_writer_reads_queued_tensors_in_order_and_exactly(
    tmp_path_factory: pytest.TempPathFactory, points: list[tuple[float, str]]
) -> None:
    """Floats and tensors of two dtypes, interleaved in one batch, come out in order with their values."""
    from mlops_sdk.tracking.sql import SqlTrackingStore

    root: Path = tmp_path_factory.mktemp("writer")
    store = SqlTrackingStore("sqlite:///t.db", root=root)
    ws = mlops.Workspace.open(root)
    ws.tracking = store
    run = ws.experiment("w").start_run()
    writer = BatchWriter(
        store, flush_interval=60
    )  # only flush() drains: one batch holds everything
    expected = []
    for step, (value, kind) in enumerate(points):
        if kind == "float":
            logged, want = value, value
        elif kind == "tensor64":
            logged, want = torch.tensor(value, dtype=torch.float64), value
        else:
            logged = torch.tensor(value, dtype=torch.float32)
            want = float(logged)
        writer.metric(run.id, "m", logged, step, 1.0)  # type: ignore[arg-type]
        expected.append(want)
    writer.flush()
    writer.close()
    got = [m.value for m in ws.get_run(run.id).metric_history("m")]
    assert len(got) == len(expected)
    for g, w in zip(got, expected, strict=True):
        assert (math.isnan(g) and math.isnan(w)) or g == w
    run.end()
    ws.close()


@needs_cuda
def test_a_cuda_tensor_is_logged_as_it_was_when_logged(workspace: mlops.Workspace) -> None:
    """Changing the tensor in place after logging it does not change what was logged."""
    total = torch.zeros((), device="cuda")
    with workspace.experiment("gpu").start_run() as run:
        for step in range(200):
            total += 1  # queued on the GPU after the snapshot of the previous step
            run.log_metric("total", total, step=step)
            run.log_metric("half", (total / 2).to(torch.bfloat16), step=step)
    history = workspace.get_run(run.id).metric_history("total")
    assert [m.value for m in history] == [float(i + 1) for i in range(200)]
    halves = workspace.get_run(run.id).metric_history("half")
    assert [m.value for m in halves] == [
        float(torch.tensor((i + 1) / 2).to(torch.bfloat16)) for i in range(200)
    ]


@needs_cuda
def test_a_model_trained_on_a_gpu_is_saved_for_any_machine(workspace: mlops.Workspace) -> None:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    x = torch.tensor((X - X.mean(0)) / X.std(0), dtype=torch.float32, device="cuda")
    target = torch.tensor(y, dtype=torch.float32, device="cuda")
    model = torch.nn.Sequential(
        torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
    ).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), target)
        loss.backward()
        opt.step()
    with workspace.experiment("gpu").start_run() as run:
        run.log_metric("loss", loss)
        mv = run.log_model(model, "gpu-net", input_example=x[:5])
    assert next(model.parameters()).device.type == "cuda"  # the caller's model stays on the GPU
    loaded = mv.load()
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    rows = ((X - X.mean(0)) / X.std(0))[:50].astype("float32")
    with torch.no_grad():
        want = model(torch.tensor(rows, device="cuda")).cpu().numpy()
        assert mv.predict(rows) == pytest.approx(want, abs=1e-4)
        on_gpu = loaded.to("cuda")(torch.tensor(rows, device="cuda"))
        assert on_gpu.device.type == "cuda"
        assert on_gpu.cpu().numpy() == pytest.approx(want, abs=1e-4)
