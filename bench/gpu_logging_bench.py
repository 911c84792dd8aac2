"""GPU benchmark: what logging a metric every step costs a real training loop on a GPU.

Run from the repository root on a machine with a CUDA GPU (without one it says
so and exits 0):

    python bench/gpu_logging_bench.py                 # 3 repeats of each variant
    python bench/gpu_logging_bench.py --quick         # fewer steps: a smoke test
    python bench/gpu_logging_bench.py --out bench/results/gpu_logging.json

Two training loops, both with ``torch.optim.AdamW`` and a forward, backward and
optimizer step per iteration:

* **mlp-digits**: a 3-layer MLP on scikit-learn's digits (1,797 images of
  8 x 8, bundled), batches of 64: a few microseconds of GPU work per step, so
  the loop is bound by kernel launches, the case where any stall shows most.
* **transformer**: a 4-layer ``nn.TransformerEncoder`` (d_model 512, 8 heads)
  on random token batches of 32 x 128 under bf16 autocast: milliseconds of GPU
  work per step, a typical small model.

Each loop runs in these variants, timed from the first step to the moment the
logged values are stored (``run.end()``, or MLflow's ``end_run``) and the GPU
is idle, median of the repeats, after a warm-up:

* ``no logging``: the floor.
* ``loss.item() only``: reading the loss each step, no logging; what every
  tool that takes a Python float makes the loop pay.
* ``mlops log_metric(loss)``: two metrics per step (loss and accuracy) logged
  as GPU tensors; mlops-sdk reads them in its writer thread.
* ``mlops log_metric(loss.item())``: the same two metrics read first.
* ``mlflow log_metric(loss.item())``, ``synchronous=False`` too, when MLflow
  is importable (it is installed in the ``bench`` session only).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import machine_info, markdown_table, write_json

import mlops_sdk as mlops

Step = Callable[[], tuple[Any, Any]]  # one training step; returns (loss, accuracy) tensors
DEVICE = "cuda"  # --device cpu: a smoke test of this script on a machine without a GPU


def sync(torch: Any) -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def mlp_digits(torch: Any) -> Step:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    x = torch.tensor(X / 16.0, dtype=torch.float32, device=DEVICE)
    target = torch.tensor(y, device=DEVICE)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    ).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [torch.randint(0, len(y), (64,), device=DEVICE) for _ in range(64)]
    i = 0

    def step() -> tuple[Any, Any]:
        nonlocal i
        idx = batches[i % len(batches)]
        i += 1
        logits = model(x[idx])
        loss = torch.nn.functional.cross_entropy(logits, target[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc = (logits.detach().argmax(1) == target[idx]).float().mean()
        return loss.detach(), acc

    return step


def transformer(torch: Any) -> Step:
    vocab, d, seq, batch = 8192, 512, 128, 32
    layer = torch.nn.TransformerEncoderLayer(d, 8, 4 * d, batch_first=True, dropout=0.0)
    model = torch.nn.ModuleDict(
        {
            "emb": torch.nn.Embedding(vocab, d),
            "enc": torch.nn.TransformerEncoder(layer, 4),
            "head": torch.nn.Linear(d, vocab),
        }
    ).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    tokens = [
        torch.randint(0, vocab, (batch, seq + 1), device=DEVICE, generator=gen) for _ in range(8)
    ]
    i = 0

    def step() -> tuple[Any, Any]:
        nonlocal i
        t = tokens[i % len(tokens)]
        i += 1
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            logits = model["head"](model["enc"](model["emb"](t[:, :-1])))
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, vocab).float(), t[:, 1:].reshape(-1)
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc = (logits.detach().argmax(-1) == t[:, 1:]).float().mean()
        return loss.detach(), acc

    return step


@contextlib.contextmanager
def mlops_run(root: Path) -> Iterator[Any]:
    ws = mlops.Workspace.open(root)
    run = ws.experiment("gpu-bench").start_run()
    try:
        yield run
    finally:
        run.end()
        ws.close()


def time_variant(torch: Any, step: Step, steps: int, variant: str, root: Path) -> float:
    """Seconds for ``steps`` training steps with this variant's logging, until stored and idle."""
    sync(torch)
    started = time.perf_counter()
    if variant == "none":
        for _ in range(steps):
            step()
    elif variant == "item":
        for _ in range(steps):
            loss, acc = step()
            loss.item(), acc.item()
    elif variant in ("mlops-tensor", "mlops-item"):
        with mlops_run(root) as run:
            for i in range(steps):
                loss, acc = step()
                if variant == "mlops-item":
                    loss, acc = loss.item(), acc.item()
                run.log_metric("loss", loss, step=i)
                run.log_metric("acc", acc, step=i)
    else:
        import mlflow

        synchronous = variant == "mlflow-sync"
        with mlflow.start_run():
            for i in range(steps):
                loss, acc = step()
                mlflow.log_metric("loss", loss.item(), step=i, synchronous=synchronous)
                mlflow.log_metric("acc", acc.item(), step=i, synchronous=synchronous)
        if not synchronous:
            mlflow.flush_async_logging()
    sync(torch)
    return time.perf_counter() - started


VARIANTS = {
    "none": "no logging",
    "item": "loss.item() only",
    "mlops-tensor": "mlops log_metric(loss) (tensor)",
    "mlops-item": "mlops log_metric(loss.item())",
    "mlflow-sync": "mlflow log_metric(loss.item())",
    "mlflow-async": "mlflow log_metric(loss.item(), synchronous=False)",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--loops", default="mlp-digits,transformer", help="which training loops, comma-separated")
    parser.add_argument("--no-mlflow", action="store_true", help="leave the MLflow variants out")
    args = parser.parse_args()
    if args.out:
        args.out = os.path.abspath(args.out)  # the script works in a temporary folder
    import torch

    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("gpu_logging_bench: no CUDA GPU here; nothing measured")
        return 0
    variants = list(VARIANTS)
    try:
        import mlflow
    except ImportError:
        args.no_mlflow = True
    if args.no_mlflow:
        variants = [v for v in variants if not v.startswith("mlflow")]
    loops = {
        "mlp-digits": (mlp_digits, 500 if args.quick else 3000),
        "transformer": (transformer, 50 if args.quick else 300),
    }
    results: dict[str, Any] = {
        "machine": machine_info(),
        "gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
        "torch": torch.__version__,
        "loops": {},
    }
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        os.chdir(tmp)
        if any(v.startswith("mlflow") for v in variants):
            import mlflow

            mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
            mlflow.set_experiment("gpu-bench")
        for name, (make, steps) in loops.items():
            if name not in args.loops.split(","):
                continue
            torch.manual_seed(0)
            step = make(torch)
            time_variant(
                torch, step, max(steps // 10, 10), "none", Path(tmp)
            )  # warm-up: kernels, allocator
            times: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.repeats):
                for v in variants:  # interleaved, so drift in clocks touches every variant alike
                    times[v].append(
                        time_variant(torch, step, steps, v, Path(tmp) / f"ws-{name}-{v}")
                    )
            medians = {v: statistics.median(t) for v, t in times.items()}
            results["loops"][name] = {"steps": steps, "seconds": times, "median": medians}
            base = medians["none"]
            rows = [
                [
                    VARIANTS[v],
                    f"{medians[v] / steps * 1e6:,.0f} µs",
                    f"{(medians[v] - base) / base * 100:+.1f} %",
                ]
                for v in variants
            ]
            print(f"\n{name}: {steps} steps, median of {args.repeats}, on {results['gpu']}")
            print(markdown_table(["variant", "per step", "vs no logging"], rows))
    if args.out:
        write_json(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
