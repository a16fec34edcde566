import pytest
import torch

from bnncore.model import BinaryMLP, FloatMLP, ModelConfig, build_model, parse_topology


def test_parse_topology():
    assert parse_topology("784-1024-10") == (784, 1024, 10)
    assert parse_topology(" 4-2 ") == (4, 2)


@pytest.mark.parametrize("text", ["784-x-10", "784--10", "", "784,10"])
def test_topology_does_not_parse(text):
    with pytest.raises(ValueError, match=rf"^topology '{text}'(, layer 1 \('.*'\))? (does not parse|must have at least)"):
        parse_topology(text)


@pytest.mark.parametrize("text", ["784", "784-0-10", "784--5"])
def test_topology_bad_sizes(text):
    with pytest.raises(ValueError, match=rf"^topology '{text}'(, layer 1 \('.*'\))?:? (must have at least|does not parse|a layer needs)"):
        parse_topology(text)


def test_any_topology_builds():
    for topo in ["784-10", "20-7-3", "784-500-1024-1024-10", "5-1-1-1-2"]:
        m = build_model(ModelConfig(topology=topo)).eval()
        n_in = parse_topology(topo)[0]
        logits, hidden = m(torch.ones(3, n_in), return_hidden=True)
        assert logits.shape == (3, parse_topology(topo)[-1]) and len(hidden) == len(parse_topology(topo)) - 2
    assert isinstance(build_model(ModelConfig(binary=False)), FloatMLP)


def test_head_scores_are_integers_and_argmax_takes_lowest_on_ties():
    torch.manual_seed(0)
    m = BinaryMLP(ModelConfig(topology=(16, 8, 4))).eval()
    with torch.no_grad():
        m.head.bias.copy_(torch.tensor([0.4, 1.6, -2.5, 0.0]))
        m.head.linear.weight.copy_(torch.tensor([[1.0] * 8] * 4))  # all classes see the same dot
    x = torch.randint(0, 2, (50, 16)).float() * 2 - 1
    h = m(x, return_hidden=True)[1][-1]
    scores = m.head.scores(h)
    assert torch.equal(scores, scores.round())
    # bias rounds to [0, 2, -2, 0]: class 1 always wins
    assert (m(x).argmax(1) == 1).all()
    with torch.no_grad():
        m.head.bias.copy_(torch.tensor([0.4, 0.0, -2.5, 0.2]))  # rounds to [0, 0, -2, 0]: three-way tie
    assert (m(x).argmax(1) == 0).all()


def test_hidden_activations_are_pm1():
    m = BinaryMLP(ModelConfig(topology=(30, 20, 20, 5))).eval()
    _, hidden = m(torch.randn(10, 30).sign(), return_hidden=True)
    for h in hidden:
        assert set(h.unique().tolist()) <= {-1.0, 1.0}


def test_dropout_validation():
    with pytest.raises(ValueError, match=r"^dropout must be in \[0, 1\), not 1.0$"):
        ModelConfig(dropout=1.0)
