"""Binary networks of any topology (MLPs and CNNs), and a float baseline of the same topology.

A binary network is, layer after layer::

    dense:   x (+-1) -> BinaryLinear -> BatchNorm1d -> sign (sign(0) = +1) -> +-1
    conv:    x (+-1) -> BinaryConv2d (padded with +-1) -> BatchNorm2d -> sign -> [max-pool]
       or:   x (+-1) -> BinaryConv2d -> max-pool -> BatchNorm2d -> sign      (--pool-order before)
    output:  x (+-1) -> BinaryLinear -> + round(b) -> scores (integers) -> * exp(s) -> logits

With ``--input uint8`` the first layer sees the raw pixels 0..255 instead of +-1 (its
weights are still +-1 and its sums integers). Inputs come flat, (N, H * W * C) in
(y, x, channel) order, the order of the folded network and the hardware. Inside, feature
maps are torch's (N, C, H, W) and a dense layer after a convolution flattens them as torch
does, (channel, y, x); folding permutes that layer's weight columns to the (y, x, channel)
order of the folded network.

The output head is chosen so that folding reproduces the predicted class exactly with
integer arithmetic. The scores are integers: the +-1 dot product plus an integer (rounded,
straight-through) per-class bias. The logits are those scores times one positive learned
temperature exp(s), shared by all classes (Brevitas' and FINN's TensorNorm plays the same
role), which scales the softmax for the loss but cannot change the arg-max. So the predicted
class is ``argmax_c (2 * popcount_c - n + bias_c)`` with ties going to the lowest index, as
``torch.argmax`` does; the folded network and the hardware compute exactly that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .errors import UsageError
from .layers import WEIGHT_SCALES, BinaryActivation, BinaryConv2d, BinaryLinear, RoundSTE
from .topology import Conv, Dense, Pool, parse, parse_topology, topology_str

__all__ = ["ModelConfig", "parse_topology", "topology_str", "BinaryNet", "FloatNet", "BinaryMLP", "FloatMLP",
           "build_model", "POOL_ORDERS"]

#: Where a max-pool sits in a binary conv block: after the sign (a pool of bits, OR), or
#: before BatchNorm (FINN/BinaryNet order; an AND where the BatchNorm scale is negative).
POOL_ORDERS = ("after", "before")


@dataclass
class ModelConfig:
    topology: object = (784, 256, 256, 256, 10)  # sizes, or a topology string (CNNs)
    binary: bool = True          # False: float baseline (float weights, ReLU)
    batchnorm: bool = True       # BatchNorm after each hidden layer
    bias: bool = False           # bias in the hidden dense layers (redundant with BatchNorm)
    stochastic: bool = False     # stochastic binary activations while training (seed 002)
    dropout_in: float = 0.0      # dropout on the input while training
    dropout: float = 0.0         # dropout on hidden dense activations while training
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    weight_scale: str = "none"   # none | filter (XNOR-Net) | layer (DoReFa)
    pool_order: str = "after"    # after (conv-BN-sign-pool) | before (conv-pool-BN-sign)
    pad_value: int = 1           # +1 or -1: the constant binary convolutions pad with
    raw_input: bool = False      # the first layer sees pixels 0..255 (--input uint8)
    binary_act: bool = False     # ResNet only: binary activations (float by default there)
    input_scaling: bool = False  # ResNet with binary activations: XNOR-Net's K (does not fold)

    def __post_init__(self):
        t = parse(self.topology)
        self.topology = t.sizes if t.is_mlp else str(t)
        for name in ("dropout_in", "dropout"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise UsageError(f"{name} must be in [0, 1), not {p}")
        if self.weight_scale not in WEIGHT_SCALES:
            raise UsageError(f"weight scale must be one of {', '.join(WEIGHT_SCALES)}, not {self.weight_scale!r}")
        if self.pool_order not in POOL_ORDERS:
            raise UsageError(f"pool order must be one of {', '.join(POOL_ORDERS)}, not {self.pool_order!r}")
        if (self.binary_act or self.input_scaling) and t.resnet is None:
            raise UsageError("binary_act and input_scaling choose a ResNet's activations (topology CxHxW-resnet<d>-<classes>); "
                             "other binary networks always have binary activations")
        if self.input_scaling and not self.binary_act:
            raise UsageError("input_scaling (XNOR-Net's K) scales binary activations: it needs binary_act")
        if self.pad_value not in (-1, 1):
            raise UsageError(f"pad value must be -1 or +1, not {self.pad_value!r}: a binary layer cannot pad with 0, "
                             "which is neither +1 nor -1 (the folded network and the hardware see only bits)")

    @property
    def parsed(self):
        return parse(self.topology)


class _Block(nn.Module):
    """Dense hidden block: linear -> norm -> activation (-> dropout)."""

    def __init__(self, linear, norm, act, dropout):
        super().__init__()
        self.linear, self.norm, self.act = linear, norm, act
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def sums(self, x):
        """The integer sums of a binary layer (before scale, bias and norm)."""
        return F.linear(x, self.linear.binary_weight())

    def post(self, s):
        """sums -> pre-activation, exactly as ``forward`` computes it (folding evaluates this)."""
        z = self.linear.scaled(s)
        return self.norm(z if self.linear.bias is None else z + self.linear.bias)

    def pre_activation(self, x):
        if isinstance(self.linear, BinaryLinear):
            return self.post(self.sums(x))
        return self.norm(self.linear(x))

    def forward(self, x):
        return self.drop(self.act(self.pre_activation(x)))

    def hidden(self, x):
        """(output, [the activations of each folded layer this block becomes])."""
        y = self(x)
        return y, [y]


class _ConvBlock(nn.Module):
    """Conv hidden block: conv -> norm -> activation, with an optional max-pool after the
    activation or before the norm."""

    def __init__(self, conv, norm, act, pool: int, pool_order: str):
        super().__init__()
        self.conv, self.norm, self.act = conv, norm, act
        self.pool, self.pool_order = pool, pool_order

    def sums(self, x):
        return self.conv.integer_conv(x)

    def post(self, s):
        return self.norm(self.conv.scaled(s))

    def _pool(self, x):
        return F.max_pool2d(x, self.pool) if self.pool else x

    def forward(self, x):
        return self.hidden(x, keep=False)[0]

    def hidden(self, x, keep: bool = True):
        binary = isinstance(self.conv, BinaryConv2d)
        s = self.conv.integer_conv(x) if binary else self.conv(x)
        scaled = self.conv.scaled(s) if binary else s
        if self.pool and self.pool_order == "before":
            y = self.act(self.norm(self._pool(scaled)))
            # the folded conv layer's bits: sign(norm(.)) before the pool (eval mode: per element)
            acts = [self.act(self.norm(scaled)), y] if keep else []
            return y, acts
        y = self.act(self.norm(scaled))
        pooled = self._pool(y)
        return pooled, ([y, pooled] if self.pool else [y]) if keep else []


class BinaryOutputHead(nn.Module):
    """Integer scores (+-1 dot product + rounded bias) times a positive temperature."""

    def __init__(self, in_features: int, classes: int):
        super().__init__()
        self.linear = BinaryLinear(in_features, classes, bias=False)
        self.bias = nn.Parameter(torch.zeros(classes))
        self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(in_features)))

    def scores(self, x):
        return self.linear(x) + RoundSTE.apply(self.bias)

    def forward(self, x):
        return self.scores(x) * self.log_scale.exp()


def _norm(cfg, n, conv):
    if not cfg.batchnorm:
        return nn.Identity()
    return (nn.BatchNorm2d if conv else nn.BatchNorm1d)(n, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


class _Net(nn.Module):
    """The shared frame: input reshaping, blocks, flatten in (y, x, channel) order, head."""

    def __init__(self, cfg: ModelConfig, blocks, head):
        super().__init__()
        self.cfg = cfg
        t = cfg.parsed
        self.in_shape = t.in_shape
        self.input_drop = nn.Dropout(cfg.dropout_in) if cfg.dropout_in > 0 else nn.Identity()
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def _image(self, x):
        if len(self.in_shape) == 1:
            return x
        c, h, w = self.in_shape
        return x.reshape(len(x), h, w, c).permute(0, 3, 1, 2)

    def forward(self, x, *, return_hidden: bool = False):
        """Logits; with ``return_hidden``, also the activations of every folded hidden layer
        (a conv block with a pool gives two: the conv's and the pool's)."""
        x = self._image(self.input_drop(x))
        hidden = []
        for block in self.blocks:
            if x.dim() == 4 and isinstance(block, _Block):
                x = x.flatten(1)
            if return_hidden:
                x, acts = block.hidden(x)
                hidden.extend(acts)
            else:
                x = block(x)
        if x.dim() == 4:
            x = x.flatten(1)
        logits = self.head(x)
        return (logits, hidden) if return_hidden else logits


def _blocks(t, conv, dense) -> list:
    """One block per convolution (``conv(index, layer, pool size or 0)``, the pool that
    follows it folded in) and per dense layer (``dense(index, layer)``) of topology ``t``."""
    layers, blocks = list(t.layers), []
    for i, l in enumerate(layers):
        if isinstance(l, Conv):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            blocks.append(conv(i, l, nxt.size if isinstance(nxt, Pool) else 0))
        elif isinstance(l, Dense):
            blocks.append(dense(i, l))
    return blocks


class BinaryNet(_Net):
    """Binary MLP or CNN: +-1 weights and activations, BatchNorm, integer output head."""

    def __init__(self, cfg: ModelConfig):
        t = cfg.parsed

        def conv(i, l, pool):
            pad = 0.0 if (i == 0 and cfg.raw_input) else float(cfg.pad_value)
            c = BinaryConv2d(l.in_shape[0], l.channels, l.kernel, l.padding, pad, cfg.weight_scale)
            return _ConvBlock(c, _norm(cfg, l.channels, True), BinaryActivation(cfg.stochastic), pool, cfg.pool_order)

        def dense(i, l):
            return _Block(BinaryLinear(l.n_in, l.n_out, bias=cfg.bias, scale=cfg.weight_scale),
                          _norm(cfg, l.n_out, False), BinaryActivation(cfg.stochastic), cfg.dropout)
        blocks = _blocks(t, conv, dense)
        if cfg.raw_input and not blocks:
            raise UsageError("uint8 input needs a hidden layer: the output head sees bits")
        super().__init__(cfg, blocks, BinaryOutputHead(t.head.n_in, t.head.n_out))

    def binary_layers(self):
        return [getattr(b, "linear", None) or b.conv for b in self.blocks] + [self.head.linear]

    binary_linears = binary_layers

    def clip_(self):
        for lin in self.binary_layers():
            lin.clip_()


class FloatNet(_Net):
    """Float baseline of the same topology: Linear/Conv2d -> BatchNorm -> ReLU (-> max-pool),
    float output layer."""

    def __init__(self, cfg: ModelConfig):
        t = cfg.parsed

        def conv(i, l, pool):
            c = nn.Conv2d(l.in_shape[0], l.channels, l.kernel, padding=l.padding, bias=not cfg.batchnorm)
            return _ConvBlock(c, _norm(cfg, l.channels, True), nn.ReLU(), pool, "after")

        def dense(i, l):
            return _Block(nn.Linear(l.n_in, l.n_out, bias=cfg.bias or not cfg.batchnorm),
                          _norm(cfg, l.n_out, False), nn.ReLU(), cfg.dropout)
        blocks = _blocks(t, conv, dense)
        super().__init__(cfg, blocks, nn.Linear(t.head.n_in, t.head.n_out))

    def clip_(self):
        pass


#: The names of the binary and float networks when they were MLPs only.
BinaryMLP, FloatMLP = BinaryNet, FloatNet


def build_model(cfg: ModelConfig) -> nn.Module:
    t = cfg.parsed
    if t.resnet is not None:
        from .resnet import ResNet
        model = ResNet(t.in_shape, t.resnet.depth, t.classes, binary=cfg.binary,
                       scale=cfg.weight_scale, binary_act=cfg.binary_act, input_scaling=cfg.input_scaling)
        model.cfg = cfg
        return model
    return BinaryNet(cfg) if cfg.binary else FloatNet(cfg)
