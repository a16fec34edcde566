"""The mismatch diagnosis names the first layer, and the pixel or neuron, where a design departs
from the golden model: faults planted in one ROM at a time must be found where they are."""

from dataclasses import replace

import numpy as np
import pytest

from bnncore.golden import infer
from bnncore.hw.diagnose import describe, first_difference, read_rom_files
from bnncore.hw.generate import rom_images
from bnncore.hw.plan import plan_for
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, OutputHead, PoolLayer


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(5)
    c0 = ConvLayer(rng.integers(0, 2, (4, 3, 3, 2)), rng.integers(5, 14, 4), (2, 6, 5), 1, 1)
    p0 = PoolLayer(c0.out_shape, [1, 0, 0, 1])
    n = int(np.prod(p0.out_shape))
    d = DenseLayer(rng.integers(0, 2, (5, n)), rng.integers(n // 3, 2 * n // 3, 5))
    net = FoldedNetwork((c0, p0, d), OutputHead(rng.integers(0, 2, (3, 5)), rng.integers(-2, 3, 3)))
    plan = plan_for(net, [(3, 1), (2, 4), (2, 5)], pipelined=False)
    image = rng.integers(0, 2, net.n_inputs).astype(np.uint8)
    return net, plan, image, infer(net, image[None], return_layers=True, backend="numpy")


def test_a_faithful_design_has_no_difference(case):
    net, plan, image, _ = case
    assert first_difference(plan, net, image) is None
    assert "not in the design's logic" in describe(7, None)


def test_a_wrong_conv_threshold_is_found_at_its_first_pixel(case):
    net, plan, image, gold = case
    c0 = net.layers[0]
    act = gold.activations[0][0].reshape(6, 5, 4)          # (y, x, channel)
    ch = int(np.argmax([(act[..., c] == 0).sum() for c in range(4)]))   # a channel that does not always fire
    t = c0.thresholds.copy()
    t[ch] = 0                                     # now it always fires
    bad = replace(net, layers=(replace(c0, thresholds=t),) + net.layers[1:])
    diff = first_difference(plan, net, image, contents={"t0": rom_images(bad, plan)["t0"][1]})
    y, x = np.argwhere(act[..., ch] == 0)[0]
    assert (diff["layer"], diff["pixel"]) == (0, (y, x))
    assert f"channels {ch} are 1, the golden model's 0" in diff["what"]
    assert describe(3, diff).startswith("image 3 departs from the golden model first at layer 0 (conv, output 4x6x5)")


def test_a_wrong_dense_weight_row_is_found_at_its_neuron(case):
    net, plan, image, gold = case
    d = net.layers[2]
    x = gold.activations[1][0].reshape(-1)        # the pooled map in the (y, x, channel) order the dense layer reads
    sums = (d.weights == x).sum(1)
    # a neuron whose output flips when all its weights do (its sum becomes n - sum)
    j = next(j for j in range(5) if (sums[j] >= d.thresholds[j]) != (len(x) - sums[j] >= d.thresholds[j]))
    w = d.weights.copy()
    w[j] ^= 1
    bad = replace(net, layers=net.layers[:2] + (replace(d, weights=w),))
    diff = first_difference(plan, net, image, contents={"w1": rom_images(bad, plan)["w1"][1]})
    # a dense layer behind a map reads it as one window: its output is one pixel of neurons
    assert (diff["layer"], diff["pixel"]) == (2, None)
    e = int(gold.activations[2][0][j])
    assert diff["what"] == f"neurons {j} are {1 - e}, the golden model's {e}"


def test_a_wrong_bias_is_found_in_the_output_head(case):
    net, plan, image, gold = case
    b = net.head.bias.copy()
    b[1] += 3
    bad = replace(net, head=replace(net.head, bias=b))
    diff = first_difference(plan, net, image, contents={"t2": rom_images(bad, plan)["t2"][1]})
    assert diff["layer"] == 3 and diff["what"] == (f"class 1 is {int(gold.scores[0][1]) + 3}, "
                                                    f"the golden model's {int(gold.scores[0][1])}")


def test_rom_files_are_read_as_the_simulators_read_them(tmp_path):
    from bnncore.hw.generate import describe
    from bnncore.hw.plan import make_plan
    info = describe(make_plan((4, 2, 2), [(1, 4), (1, 2)]))
    files = {m["file"]: "0101\n1110\n" for m in info["memories"].values()}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert read_rom_files(info, tmp_path) == {n: [5, 14] for n in info["memories"]}
    (tmp_path / "bnn_w0.mem").write_text("0101\n11x0\n")
    with pytest.raises(ValueError, match=r"bnn_w0\.mem: line 2 is not a binary word: '11x0'$"):
        read_rom_files(info, tmp_path)
