"""``mlops monitor``: datasets or files in, a verdict out, exit 1 on a --fail-on alert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from sklearn.datasets import load_breast_cancer

import mlops_sdk as mlops
from mlops_sdk.cli import cli

FEATURES = ["mean radius", "mean texture", "mean smoothness", "worst area"]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A workspace with dataset ``cancer`` (v1: one half of the rows), and two CSV files:
    the other half as is (``same.csv``) and with ``mean radius`` shifted (``shifted.csv``)."""
    data = load_breast_cancer(as_frame=True).frame
    shuffled = data.sample(frac=1.0, random_state=2).reset_index(drop=True)
    ref, cur = shuffled.iloc[:284][[*FEATURES, "target"]], shuffled.iloc[284:][[*FEATURES, "target"]]
    (tmp_path / "ref").mkdir()
    ref.to_csv(tmp_path / "ref" / "part-0.csv", index=False)
    ws = mlops.Workspace.open(tmp_path)
    ws.dataset("cancer").add(tmp_path / "ref")
    ws.close()
    same = tmp_path / "same.csv"
    cur.to_csv(same, index=False)
    shifted = tmp_path / "shifted.csv"
    cur.assign(**{"mean radius": cur["mean radius"] + 3}).to_csv(shifted, index=False)
    return tmp_path, same, shifted


def _run(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-w", str(root), "monitor", *args], catch_exceptions=False)


def test_shift_fails_the_build_and_unshifted_passes(setup: tuple[Path, Path, Path]) -> None:
    root, same, shifted = setup
    ok = _run(root, "--reference", "cancer@1", "--current-file", str(same), "--fail-on", "drift")
    assert ok.exit_code == 0, ok.output
    assert "0 alert(s)" in ok.output
    bad = _run(root, "--reference", "cancer", "--current-file", str(shifted), "--fail-on", "drift")
    assert bad.exit_code == 1
    assert "mean radius" in bad.output and "DRIFT" in bad.output
    not_failing = _run(root, "--reference", "cancer", "--current-file", str(shifted), "--fail-on", "bias")
    assert not_failing.exit_code == 0


def test_json_and_html_outputs(setup: tuple[Path, Path, Path]) -> None:
    root, _, shifted = setup
    html = root / "report.html"
    res = _run(root, "--reference", "cancer@1", "--current-file", str(shifted), "--columns", "mean radius,mean texture",
               "--json", "--html", str(html))
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["drift"]["drifted"] == ["mean radius"]
    assert [c["column"] for c in data["drift"]["columns"]] == ["mean radius", "mean texture"]
    assert data["failed"] is False
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert not re.search(r"(src|href)\s*=|url\(|https?://", page)


def test_performance_and_bias_with_a_dataset_as_current(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, same, _ = setup
    cur = pd.read_csv(same)
    cur["pred"] = np.where(cur["mean texture"] > 21, 0, 1)  # a poor rule
    cur["group"] = np.where(cur["mean texture"] > 19, "t-high", "t-low")
    ref = cur.copy()
    ref["pred"] = ref["target"]  # a perfect reference
    for name, frame in (("scored-ref", ref), ("scored-cur", cur)):
        folder = tmp_path / name
        folder.mkdir()
        frame.to_csv(folder / "part-0.csv", index=False)
        ws = mlops.Workspace.open(root)
        ws.dataset(name).add(folder)
        ws.close()
    res = _run(root, "--reference", "scored-ref@1", "--current", "scored-cur@1", "--columns", "mean radius",
               "--target", "target", "--prediction", "pred", "--sensitive", "group",
               "--fail-on", "performance", "--json")
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert data["failed"] is True
    assert data["performance"]["reference_metrics"]["accuracy"] == 1.0
    assert {a["kind"] for a in data["alerts"]} >= {"performance"}
    assert [g["group"] for g in data["fairness"]["groups"]] == ["t-high", "t-low"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--current-file", "same.csv"], 2, "exactly one"),
        (["--reference", "cancer", "--current-file", "same.csv", "--current", "cancer"], 2, "exactly one"),
        (["--reference", "cancer", "--current-file", "same.csv", "--fail-on", "weather"], 2, "unknown kind"),
        (["--reference", "nope", "--current-file", "same.csv"], 1, "no dataset"),
        (["--reference", "cancer", "--current-file", "missing.csv"], 1, "no such file"),
        (["--reference", "cancer", "--current-file", "same.csv", "--columns", "nope"], 1, "no column"),
        (["--reference", "cancer", "--current-file", "same.csv", "--sink", "email"], 1, "unknown alert sink"),
    ],
)
def test_bad_usage_and_bad_input(setup: tuple[Path, Path, Path], args: list[str], code: int, message: str) -> None:
    root, _, _ = setup
    args = [str(root / a) if a.endswith(".csv") else a for a in args]
    res = CliRunner().invoke(cli, ["-w", str(root), "monitor", *args])
    assert res.exit_code == code, res.output
    assert message in res.output
