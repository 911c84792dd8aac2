"""A cached, tracked pipeline: prepare → train → evaluate → register.

    python examples/pipeline_example.py                  # steps run in this process
    python examples/pipeline_example.py --compute local  # each step a job in its own process
    python examples/pipeline_example.py --C 0.5          # only train, evaluate and register run again
    mlops pipeline run examples/pipeline_example.py:pipe --param C=0.5
    mlops pipeline dag examples/pipeline_example.py:pipe

Run it twice: the second run is fully cached. Each step is a child run of a
pipeline run; the registered model's lineage names the dataset version.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import mlops_sdk as mlops

TARGET = "target"


@mlops.step
def prepare(dataset: str = "iris", test_size: float = 0.25, seed: int = 0) -> Any:
    """Load a scikit-learn data set and snapshot a train/test split as a DatasetVersion of CSV files."""
    from sklearn.datasets import load_breast_cancer, load_iris
    from sklearn.model_selection import train_test_split

    loaders = {"iris": load_iris, "breast_cancer": load_breast_cancer}
    frame = loaders[dataset](as_frame=True).frame
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame[TARGET])
    run = mlops.active_run()
    assert run is not None
    with tempfile.TemporaryDirectory() as tmp:
        train.to_csv(Path(tmp) / "train.csv", index=False)
        test.to_csv(Path(tmp) / "test.csv", index=False)
        return run.workspace.dataset(dataset).add(tmp, message=f"{dataset}, test_size={test_size}, seed={seed}")


@mlops.step
def train(prepare: Any, C: float = 1.0, max_iter: int = 1000) -> Any:
    """Fit a logistic regression on the training split; returns the fitted model."""
    from sklearn.linear_model import LogisticRegression

    data = prepare.to_pandas("train.csv")
    X, y = data.drop(columns=[TARGET]), data[TARGET]
    model = LogisticRegression(C=C, max_iter=max_iter).fit(X, y)
    mlops.log_metric("train_accuracy", float(model.score(X, y)))
    return model


@mlops.step
def evaluate(train: Any, prepare: Any) -> dict[str, float]:
    """Accuracy of the model on the held-out split."""
    data = prepare.to_pandas("test.csv")
    accuracy = float(train.score(data.drop(columns=[TARGET]), data[TARGET]))
    mlops.log_metric("test_accuracy", accuracy)
    print(f"test accuracy: {accuracy:.4f}")
    return {"test_accuracy": accuracy}


@mlops.step
def register(train: Any, evaluate: dict[str, float], prepare: Any, model_name: str = "iris-clf") -> Any:
    """Register the model (with its evaluation metrics) through the step's own run."""
    run = mlops.active_run()
    assert run is not None
    example = prepare.to_pandas("test.csv").drop(columns=[TARGET]).head(5)
    return run.log_model(train, model_name, input_example=example, metrics=evaluate)


pipe = mlops.Pipeline("iris-pipeline", steps=[prepare, train, evaluate, register])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default=None, help="workspace folder (default: found from here)")
    parser.add_argument("--compute", default=None, help="run each step as a job on this compute backend")
    parser.add_argument("--C", type=float, default=None, help="inverse regularisation strength")
    parser.add_argument("--force", action="store_true", help="run every step, cached or not")
    args = parser.parse_args(argv)
    params = {"C": args.C} if args.C is not None else {}
    with mlops.Workspace.open(args.workspace) as ws:
        result = pipe.run(params=params, compute=args.compute, force=args.force, workspace=ws)
        for name, step in result.steps.items():
            print(f"{name:10} {step.status:8} {step.run_id or '-'}")
        result.raise_for_status()
        mv = result.steps["register"].output
        print(f"registered {mv.name} v{mv.version}: {mv.metrics}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
