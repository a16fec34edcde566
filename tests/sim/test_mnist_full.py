"""A trained MNIST network on the full 10,000-image test set under Verilator."""

import json

import pytest

from bnncore.exports import export, load
from bnncore.folding import fold
from bnncore.golden import infer
from bnncore.hw.generate import generate
from bnncore.hw.autofold import auto_fold
from bnncore.training import TrainConfig, load_checkpoint, train

pytest.importorskip("cocotb_tools.runner")
from bnncore.sim.runner import simulate  # noqa: E402


@pytest.mark.slow
def test_trained_mnist_full_test_set_on_verilator(tmp_path, mnist_dir, mnist):
    train(TrainConfig(topology="784-128-64-10", epochs=1, seed=2), tmp_path / "run",
          data_dir=mnist_dir.parent, progress=False)
    model, cfg, _ = load_checkpoint(tmp_path / "run" / "best.pt")
    net = fold(model, cfg.binarization())
    export(net, tmp_path / "net")
    generate(load(tmp_path / "net"), auto_fold(net.topology, 128), tmp_path / "rtl")
    bits = net.input.bits(mnist.test_images)
    r = simulate(tmp_path / "rtl", tmp_path / "net", bits, sim="verilator", build_dir=tmp_path / "sim",
                 labels=mnist.test_labels)
    assert r["images"] == 10000 and r["mismatches"] == 0
    golden_acc = float((infer(net, bits).classes == mnist.test_labels).mean())
    assert r["accuracy"] == r["golden_accuracy"] == golden_acc > 0.9
    info = json.loads((tmp_path / "rtl" / "rtl.json").read_text())
    assert r["latency"] == info["timing"]["latency"]
