import torch
from hypothesis import given, strategies as st

from bnncore.layers import BinaryActivation, BinaryLinear, RoundSTE, SignSTE, WeightSignSTE, sign


def test_sign_of_zero_is_plus_one():
    x = torch.tensor([-2.0, -1e-30, -0.0, 0.0, 1e-30, 3.0])
    assert sign(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=50))
def test_sign_matches_definition(values):
    x = torch.tensor(values, dtype=torch.float32)
    assert sign(x).tolist() == [1.0 if v >= 0 else -1.0 for v in x.tolist()]


def test_activation_ste_is_hardtanh_gradient():
    x = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.7, 1.0, 1.0001, 4.0], requires_grad=True)
    SignSTE.apply(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_weight_ste_is_identity():
    w = torch.tensor([-0.5, 0.0, 0.25], requires_grad=True)
    (WeightSignSTE.apply(w) * torch.tensor([2.0, 3.0, 4.0])).sum().backward()
    assert w.grad.tolist() == [2.0, 3.0, 4.0]


def test_round_ste():
    b = torch.tensor([0.5, 1.5, -0.49, 2.51], requires_grad=True)
    y = RoundSTE.apply(b)
    assert y.tolist() == [0.0, 2.0, -0.0, 3.0]  # half to even
    y.sum().backward()
    assert b.grad.tolist() == [1.0] * 4


def test_binary_linear_forward_is_integer_dot_product():
    torch.manual_seed(0)
    lin = BinaryLinear(37, 5)
    x = torch.randint(0, 2, (8, 37)).float() * 2 - 1
    wb = torch.where(lin.weight >= 0, 1, -1)
    expected = x.long() @ wb.T
    assert torch.equal(lin(x), expected.float())


def test_clipping_after_step():
    lin = BinaryLinear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.9, -0.9, 0.1, 0.0], [1.0, -1.0, 0.5, -0.5]]))
    opt = torch.optim.SGD(lin.parameters(), lr=1.0)
    lin(torch.ones(1, 4)).sum().backward()  # gradient 1 on every weight: w -> w - 1
    lin.weight.grad.mul_(-1)                  # push outwards instead: w -> w + 1
    opt.step()
    lin.clip_()
    assert lin.weight.max().item() == 1.0 and lin.weight.min().item() >= -1.0
    assert lin.weight.tolist()[0] == [1.0, 0.10000002384185791, 1.0, 1.0]


def test_stochastic_activation_probabilities():
    torch.manual_seed(1)
    act = BinaryActivation(stochastic=True).train()
    n = 200_000
    for x, p in ((-1.0, 0.0), (-2.0, 0.0), (1.0, 1.0), (5.0, 1.0), (0.0, 0.5), (0.5, 0.75)):
        frac = (act(torch.full((n,), x)) > 0).float().mean().item()
        assert abs(frac - p) < 0.005, (x, frac, p)
    act.eval()  # deterministic in eval mode
    assert act(torch.tensor([-0.1, 0.0, 0.1])).tolist() == [-1.0, 1.0, 1.0]


def test_stochastic_activation_gradient():
    x = torch.tensor([-2.0, -0.5, 0.5, 2.0], requires_grad=True)
    BinaryActivation(stochastic=True).train()(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
