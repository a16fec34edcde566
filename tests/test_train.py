import json

import pytest
import torch

from bnncore.training import CheckpointError, TrainConfig, load_checkpoint, train

SMALL = dict(topology="784-64-64-10", epochs=2, limit=3000, batch_size=100, seed=3, dropout=0.1, shift=1)


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_deterministic_same_seed(tmp_path, mnist_dir):
    for run in ("a", "b"):
        train(TrainConfig(**SMALL), tmp_path / run, data_dir=mnist_dir.parent, progress=False)
    assert _same(_weights(tmp_path / "a" / "checkpoint.pt"), _weights(tmp_path / "b" / "checkpoint.pt"))
    train(TrainConfig(**dict(SMALL, seed=4)), tmp_path / "c", data_dir=mnist_dir.parent, progress=False)
    assert not _same(_weights(tmp_path / "a" / "checkpoint.pt"), _weights(tmp_path / "c" / "checkpoint.pt"))


@pytest.mark.parametrize("input", ["threshold", "probability"])
def test_resume_continues_identically(tmp_path, mnist_dir, monkeypatch, input):
    """Interrupt a run after epoch 1 (simulated by an exception), resume, compare bit for bit."""
    cfg = TrainConfig(**dict(SMALL, input=input))
    train(cfg, tmp_path / "full", data_dir=mnist_dir.parent, progress=False)

    import bnncore.training as T
    real_write = T._write_metrics

    def crash_after_first_epoch(out, metrics, best, c):
        real_write(out, metrics, best, c)
        if len(metrics) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(T, "_write_metrics", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", data_dir=mnist_dir.parent, progress=False)
    monkeypatch.setattr(T, "_write_metrics", real_write)
    result = train(cfg, tmp_path / "cut", data_dir=mnist_dir.parent, resume=True, progress=False)
    assert result["last"]["epoch"] == 2
    assert _same(_weights(tmp_path / "full" / "checkpoint.pt"), _weights(tmp_path / "cut" / "checkpoint.pt"))
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())["epochs"]
    cut = json.loads((tmp_path / "cut" / "metrics.json").read_text())["epochs"]
    assert [r["loss"] for r in full] == [r["loss"] for r in cut]


def test_resume_refuses_other_config(tmp_path, mnist_dir):
    train(TrainConfig(**dict(SMALL, epochs=1)), tmp_path, data_dir=mnist_dir.parent, progress=False)
    with pytest.raises(CheckpointError, match=r"cannot resume, the config differs: \{'lr': \(0.01, 0.5\)\}"):
        train(TrainConfig(**dict(SMALL, epochs=1, lr=0.5)), tmp_path, data_dir=mnist_dir.parent, resume=True)


def test_checkpoint_round_trip_and_outputs(tmp_path, mnist_dir, mnist):
    from bnncore.training import evaluate, input_tensor
    result = train(TrainConfig(**SMALL), tmp_path, data_dir=mnist_dir.parent, progress=False)
    for name in ("checkpoint.pt", "best.pt", "metrics.csv", "metrics.json", "curve.png"):
        assert (tmp_path / name).stat().st_size > 0
    model, cfg, ckpt = load_checkpoint(tmp_path / "best.pt")
    assert cfg == TrainConfig(**SMALL) and ckpt["versions"]["torch"] == torch.__version__
    acc, _ = evaluate(model, input_tensor(mnist.test_images, cfg.binarization()), torch.as_tensor(mnist.test_labels).long())
    assert acc == result["best"]["test_acc"]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,loss,train_acc,val_acc,test_acc,test_loss,seconds,peak_mem_mib") and len(rows) == 3


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello")
    with pytest.raises(CheckpointError, match=rf"^{junk}: not a bnncore checkpoint \(torch.load failed"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match=rf"^{other}: not a bnncore checkpoint \(no 'format'"):
        load_checkpoint(other)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "bnncore-checkpoint", "version": 99}, newer)
    with pytest.raises(CheckpointError, match=rf"^{newer}: checkpoint format version 99 is newer"):
        load_checkpoint(newer)
    with pytest.raises(CheckpointError, match=r"no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_topology_must_match_data(tmp_path, mnist_dir):
    with pytest.raises(ValueError, match=r"^topology 100-10 expects 100 inputs, but mnist images have 784 pixels$"):
        train(TrainConfig(topology="100-10", epochs=1), tmp_path, data_dir=mnist_dir.parent)
    for topology, n in (("784-5", 5), ("784-256-256", 256)):    # too few classes, or a forgotten -10
        with pytest.raises(ValueError, match=rf"^topology {topology} ends in {n} classes, but mnist has 10: make "
                                             r"its last number 10$"):
            train(TrainConfig(topology=topology, epochs=1), tmp_path, data_dir=mnist_dir.parent)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kwargs, message", [
    ({"loss": "mse"}, r"loss must be one of nll, hinge, not 'mse'"),
    ({"epochs": 0}, r"epochs must be a positive integer, not 0"),
    ({"input": "gray"}, r"input scheme must be one of 'threshold', 'probability', 'uint8', 'none', not 'gray'"),
    ({"topology": "784-x"}, r"topology '784-x', layer 1 \('x'\) does not parse"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message}"):
        TrainConfig(**kwargs)


def test_end_to_end_accuracy(tmp_path, mnist_dir):
    """A real result, kept fast: one epoch of a small binary MLP on all of MNIST."""
    cfg = TrainConfig(topology="784-256-256-10", epochs=1, seed=0)
    result = train(cfg, tmp_path, data_dir=mnist_dir.parent, progress=False)
    assert result["best"]["test_acc"] >= 0.90


def test_random_shift():
    from bnncore.training import random_shift
    img = torch.zeros(3, 16, dtype=torch.uint8)
    img[:, 5] = 255                                    # pixel (1, 1) of a 4x4 image
    g = torch.Generator().manual_seed(0)
    out = random_shift(img, 1, g)
    assert out.shape == (3, 16) and (out.sum(1) == 255).all()   # moved, not lost (1-px shift of an inner pixel)
    assert set(out.argmax(1).tolist()) <= {0, 1, 2, 4, 5, 6, 8, 9, 10}
    with pytest.raises(ValueError, match=r"^shift must be an integer number of pixels in \[0, 8\], not 9$"):
        TrainConfig(shift=9)


def test_16_bit_training_is_for_float_networks():
    with pytest.raises(ValueError, match=r"^precision fw16bw16 is for float networks \(--no-binary\)"):
        TrainConfig(topology="784-10", precision="fw16bw16")
    assert TrainConfig(topology="784-10", binary=False, input="none", precision="fw16bw32", half="bfloat16")
    with pytest.raises(ValueError, match=r"^binary_act and input_scaling choose a ResNet's activations"):
        TrainConfig(topology="784-10", binary_act=True)
    assert not TrainConfig(topology="1x28x28-resnet8-10", input="none", binary_act=True).foldable
