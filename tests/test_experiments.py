"""`bnn experiment`: plans, end-to-end tiny runs of every experiment, resume."""

import json

import pytest

from bnncore import experiment_reports, experiments
from bnncore.cli import main
from bnncore.experiments import EXPERIMENTS, run_experiment
from bnncore.training import TrainConfig

from .sampling import rotate


@pytest.mark.parametrize("mode", ["quick", "full", "tiny"])
def test_every_run_is_a_valid_config(mode):
    for exp in EXPERIMENTS.values():
        runs = exp.plan(exp.epochs[mode], exp.seeds[mode])
        assert len({r.key for r in runs}) == len(runs), f"{exp.name}: duplicate run keys"
        for r in runs:
            cfg = TrainConfig(**r.config)
            assert cfg.epochs == exp.epochs[mode]


def test_plans_match_the_seeds():
    bvf = EXPERIMENTS["binary-vs-float"].plan(50, 3)
    assert sorted(r.group for r in bvf) == ["binary"] * 3 + ["float"] * 3
    assert {r.config["topology"] for r in bvf} == {"784-500-1024-1024-10"}
    sizes = [r.config["batch_size"] for r in EXPERIMENTS["batch-size"].plan(1, 1)]
    assert sizes == [10, 50, 100, 150, 200, 500, 1000]
    fashion = EXPERIMENTS["fashion"].plan(1, 1)
    assert {r.config["dataset"] for r in fashion} == {"fashion-mnist"}
    assert {r.config["topology"] for r in fashion} == {"784-128-10", "784-1024-10"}
    assert sum(r.config.get("stochastic", False) for r in fashion) == 2
    sgd = [r for r in EXPERIMENTS["learning-rate"].plan(1, 1) if r.config["optimizer"] == "sgd"]
    assert 1.5 in {r.config["lr"] for r in sgd} and {r.config["schedule"] for r in sgd} == {"const"}


def test_unknown_experiment_and_mode(tmp_path):
    with pytest.raises(ValueError, match=r"unknown experiment 'nope'; expected one of input-binarization"):
        run_experiment("nope", out_root=tmp_path)
    with pytest.raises(ValueError, match=r"mode must be one of quick, full, tiny, not 'huge'"):
        run_experiment("batchnorm", mode="huge", out_root=tmp_path)


def test_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "batchnorm").mkdir()
    (tmp_path / "batchnorm" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"batchnorm: exists, is not empty and was not written by bnn experiment"):
        run_experiment("batchnorm", mode="tiny", out_root=tmp_path)
    assert [p.name for p in (tmp_path / "batchnorm").iterdir()] == ["notes.txt"]


def test_stat():
    assert experiment_reports._stat([1.0]) == "1.00"
    assert experiment_reports._stat([1.0, 3.0]) == "2.00 ± 1.41 (n=2)"
    assert experiment_reports._stat([None]) == "n/a"


@pytest.mark.slow
@pytest.mark.parametrize("name", rotate(list(EXPERIMENTS), ids=list(EXPERIMENTS), per_day=3))
def test_tiny_end_to_end_then_resume(name, mnist_dir, fashion, tmp_path, monkeypatch, capsys):
    """Each experiment in its tiny configuration through the CLI: table, JSON, plots; every
    binary run folded with 0 mismatches; a second call redoes nothing."""
    data = mnist_dir.parent
    assert main(["experiment", name, "--mode", "tiny", "--data-dir", str(data), "-o", str(tmp_path)]) == 0
    out = tmp_path / name
    summary = json.loads((out / "results.json").read_text())
    exp = EXPERIMENTS[name]
    assert len(summary["runs"]) == len(experiments._plan(exp, "tiny", str(data)))
    table = (out / "results.md").read_text()
    for r in summary["runs"]:
        # one row per configuration (the batch-size table names its rows by the size)
        assert r["group"] in table or (name == "batch-size" and f"| {r['config']['batch_size']} |" in table)
        assert len(r["epochs"]) == 1 and r["config"]["limit"] == 1000
        if r["config"]["binary"] and r["config"]["input"] != "none":
            assert r["fold_mismatches"] == 0 and r["folded_acc"] == r["test_acc"]
        else:
            assert r["folded_acc"] is None
    assert (out / "curves.png").stat().st_size > 0
    assert "bnn experiment " + name in table
    # resume: every run is done, nothing is trained again
    monkeypatch.setattr(experiments, "_execute", lambda *a: pytest.fail("a finished run was redone"))
    again = run_experiment(name, mode="tiny", out_root=tmp_path, data_dir=str(data))
    assert [r["test_acc"] for r in again["runs"]] == [r["test_acc"] for r in summary["runs"]]
