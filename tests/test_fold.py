from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

from bnncore.data import InputBinarization
from bnncore.folding import FoldError, fold, fold_rule, fold_with_report, verify
from bnncore.golden import infer
from bnncore.model import BinaryMLP, FloatMLP, ModelConfig
from bnncore.training import TrainConfig, train, load_checkpoint


def exact_decisions(a: float, c: float, n: int):
    """Fires at popcount p (exact rational arithmetic): a * (2p - n) + c >= 0."""
    fa, fc = Fraction(a), Fraction(c)
    return [fa * (2 * p - n) + fc >= 0 for p in range(n + 1)]


def rule_decisions(t, flip, n):
    return [((n - p) if flip else p) >= t for p in range(n + 1)]


@given(n=st.integers(1, 300), k=st.integers(-60, 60), sign=st.sampled_from([1, -1]),
       tie=st.integers(-320, 320))
def test_rule_exact_ties(n, k, sign, tie):
    """Thresholds landing exactly on integers: a = +-2^k, tie at dot = tie (exact in float64)."""
    a = sign * 2.0 ** k
    c = -a * tie
    t, flip = fold_rule(np.array([a]), np.array([c]), n)
    assert rule_decisions(int(t[0]), bool(flip[0]), n) == exact_decisions(a, c, n)
    assert 0 <= t[0] <= n + 1


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@given(n=st.integers(1, 300), a=st.one_of(finite, st.sampled_from([0.0, -0.0, 1e-300, -1e-300, 5e-324])), c=finite)
def test_rule_matches_exact_arithmetic(n, a, c):
    if a != 0:  # away from float64 rounding at a tie (the grid check handles those)
        tau = -c / a
        for target in (tau, tau + n):
            assume(not np.isfinite(target) or abs(target - round(target)) > 1e-6 * max(1.0, abs(target)))
    t, flip = fold_rule(np.array([a]), np.array([c]), n)
    assert rule_decisions(int(t[0]), bool(flip[0]), n) == exact_decisions(a, c, n)


def exhaustive_inputs(weights_pm1: torch.Tensor):
    """For each neuron j and each popcount p in 0..n: an input whose xnor-popcount with
    neuron j's weights is p. Returns (inputs (n_out * (n + 1), n), neuron index, p)."""
    n_out, n = weights_pm1.shape
    rows, neuron, pop = [], [], []
    for j in range(n_out):
        for p in range(n + 1):
            x = weights_pm1[j].clone()
            x[p:] *= -1                      # agree on the first p inputs, disagree on the rest
            rows.append(x)
            neuron.append(j)
            pop.append(p)
    return torch.stack(rows), np.array(neuron), np.array(pop)


@st.composite
def hidden_layers(draw):
    n_in = draw(st.integers(1, 24))
    n_out = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    bias = draw(st.booleans())
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = BinaryMLP(ModelConfig(topology=(n_in, n_out, 2), bias=bias))
    bn = model.blocks[0].norm
    with torch.no_grad():
        w = torch.tensor(rng.uniform(-1, 1, (n_out, n_in)), dtype=torch.float32)
        w[torch.tensor(rng.random((n_out, n_in)) < 0.1)] = 0.0      # sign(0) = +1 in the mix
        model.blocks[0].linear.weight.copy_(w)
        kinds = rng.integers(0, 5, n_out)
        gamma = rng.normal(0, 1, n_out)
        gamma[kinds == 1] = 0.0                                          # zero scale
        gamma[kinds == 2] = rng.choice([1e-30, -1e-30, 1e-8], (kinds == 2).sum())  # tiny scale
        gamma[kinds == 3] = -np.abs(gamma[kinds == 3])                  # negative scale
        mean = rng.normal(0, n_in ** 0.5, n_out)
        beta = rng.normal(0, 1, n_out)
        ties = kinds == 4                                                # tie: y = 0 at an integer dot
        mean[ties] = rng.integers(-n_in, n_in + 1, ties.sum())
        beta[ties] = 0.0
        bn.weight.copy_(torch.tensor(gamma)); bn.bias.copy_(torch.tensor(beta))
        bn.running_mean.copy_(torch.tensor(mean)); bn.running_var.copy_(torch.tensor(rng.uniform(0.01, 50, n_out)))
        if bias:
            model.blocks[0].linear.bias.copy_(torch.tensor(rng.normal(0, 3 * n_in, n_out)))  # large biases
    return model.eval()


@settings(max_examples=80, deadline=None)
@given(hidden_layers())
def test_fold_is_exact_at_every_popcount(model):
    net = fold(model, InputBinarization())
    lin = model.blocks[0].linear
    wpm1 = torch.where(lin.weight >= 0, 1.0, -1.0)
    x, neuron, pop = exhaustive_inputs(wpm1)
    with torch.no_grad():
        _, hidden = model(x, return_hidden=True)
    torch_bits = (hidden[0] > 0).numpy()[np.arange(len(neuron)), neuron]
    gold = infer(net, (x.numpy() > 0).astype(np.uint8), return_layers=True).activations[0]
    gold_bits = gold[np.arange(len(neuron)), neuron]
    assert np.array_equal(torch_bits, gold_bits)


def test_negative_scale_flips_row_and_zero_scale_is_constant():
    model = BinaryMLP(ModelConfig(topology=(4, 3, 2))).eval()
    with torch.no_grad():
        model.blocks[0].linear.weight.copy_(torch.tensor([[1.0, -1, 1, -1]] * 3))
        bn = model.blocks[0].norm
        bn.weight.copy_(torch.tensor([1.0, -1.0, 0.0])); bn.bias.copy_(torch.tensor([0.0, 0.0, -0.5]))
        bn.running_mean.copy_(torch.tensor([0.0, 2.0, 0.0])); bn.running_var.fill_(1 - bn.eps)
    net, report = fold_with_report(model, InputBinarization())
    layer = net.layers[0]
    # neuron 0: dot >= 0 <=> p >= 2; neuron 1: -(dot - 2) >= 0 <=> dot <= 2 <=> flipped p' >= 1;
    # neuron 2: constant -0.5 < 0: never fires
    assert layer.thresholds.tolist() == [2, 1, 5]
    assert layer.weights.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]]
    r = report.layers[0]
    assert (r.positive_scale, r.negative_scale, r.zero_scale, r.never_fire) == (1, 1, 1, 1)


def test_fold_errors():
    with pytest.raises(FoldError, match=r"^only binary networks fold to thresholds, got FloatNet"):
        fold(FloatMLP(ModelConfig(topology=(4, 3, 2), binary=False)), InputBinarization())
    with pytest.raises(FoldError, match=r"^a network trained on float input \(--input none\) has no bit input"):
        fold(BinaryMLP(ModelConfig(topology=(4, 3, 2))), InputBinarization("none"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    """Small networks of two topologies, trained for real on MNIST and Fashion-MNIST."""
    runs = {}
    for dataset, topo, extra in (("mnist", "784-128-64-10", {}),
                                 ("fashion-mnist", "784-256-256-10", {"bias": True, "input": "probability"})):
        out = tmp_path_factory.mktemp(dataset)
        train(TrainConfig(dataset=dataset, topology=topo, epochs=1, seed=1, **extra), out,
              data_dir=mnist_dir.parent, progress=False)
        runs[dataset] = out / "best.pt"
    return runs


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_fold_equals_torch_on_full_test_set(trained, dataset, mnist, fashion):
    ds = {"mnist": mnist, "fashion-mnist": fashion}[dataset]
    model, cfg, ckpt = load_checkpoint(trained[dataset])
    net = fold(model, cfg.binarization())
    r = verify(net, model, ds.test_images, ds.test_labels)
    assert r["images"] == 10000
    assert r["class_mismatches"] == 0 and r["hidden_bit_mismatches"] == 0
    assert r["folded_accuracy"] == r["torch_accuracy"] == ckpt["best"]["test_acc"]
    assert r["torch_accuracy"] > (0.9 if dataset == "mnist" else 0.75)


def test_fold_negated_and_zeroed_batchnorm_on_real_data(trained, mnist):
    """Negative and zero BatchNorm scales in a trained network, checked on all 10,000 images."""
    model, cfg, _ = load_checkpoint(trained["mnist"])
    with torch.no_grad():
        for block in model.blocks:
            bn = block.norm
            idx = torch.arange(0, bn.num_features, 3)
            bn.weight[idx] *= -1          # negative scale: the neuron computes the opposite function
            bn.weight[idx + 1 if idx[-1] + 1 < bn.num_features else idx[:-1] + 1] = 0.0
    net, report = fold_with_report(model, cfg.binarization())
    assert report.layers[0].negative_scale > 0 and report.layers[0].zero_scale > 0
    r = verify(net, model, mnist.test_images, mnist.test_labels)
    assert r["class_mismatches"] == 0 and r["hidden_bit_mismatches"] == 0
