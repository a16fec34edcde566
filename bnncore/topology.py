"""Topology strings: '784-256-10' for MLPs, '1x28x28-32c3-mp2-64c3p1-mp2-256-10' for CNNs.

A convolutional topology starts with the input shape ``CxHxW``, then layers separated by ``-``:

``32c3``
    binary convolution, 32 output channels, 3x3 kernel, stride 1, no padding; ``32c3p1``
    pads 1 position on each side (with the constant pad value, see ``--pad-value``).
``mp2``
    2x2 max-pool, stride 2; a trailing row or column that does not fill a window is dropped.
``resnet20``
    (alone between the input and the classes) a CIFAR ResNet-(6n+2) body, bnncore.resnet:
    trained and evaluated in torch, not folded.
a number
    a fully connected layer (the first one after a convolution flattens the feature map in
    (y, x, channel) order); the last number is the classes.

Nothing here imports torch: the export and import stages parse topologies too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import UsageError

__all__ = ["Conv", "Pool", "Dense", "ResNetSpec", "Topology", "parse", "parse_topology", "topology_str"]


@dataclass(frozen=True)
class Conv:
    channels: int
    kernel: int
    padding: int = 0
    in_shape: tuple = ()

    @property
    def out_shape(self) -> tuple:
        c, h, w = self.in_shape
        k, p = self.kernel, self.padding
        return (self.channels, h + 2 * p - k + 1, w + 2 * p - k + 1)

    @property
    def fan_in(self) -> int:
        return self.kernel * self.kernel * self.in_shape[0]

    def token(self) -> str:
        return f"{self.channels}c{self.kernel}" + (f"p{self.padding}" if self.padding else "")


@dataclass(frozen=True)
class Pool:
    size: int
    in_shape: tuple = ()

    @property
    def out_shape(self) -> tuple:
        c, h, w = self.in_shape
        return (c, h // self.size, w // self.size)

    def token(self) -> str:
        return f"mp{self.size}"


@dataclass(frozen=True)
class Dense:
    n_out: int
    n_in: int = 0

    @property
    def out_shape(self) -> tuple:
        return (self.n_out,)

    @property
    def fan_in(self) -> int:
        return self.n_in

    def token(self) -> str:
        return str(self.n_out)


@dataclass(frozen=True)
class ResNetSpec:
    """A CIFAR ResNet-(6n+2) body (bnncore.resnet): a CxHxW input to 64 pooled features."""
    depth: int
    in_shape: tuple = ()

    @property
    def out_shape(self) -> tuple:
        return (64,)

    def token(self) -> str:
        return f"resnet{self.depth}"


@dataclass(frozen=True)
class Topology:
    """A parsed topology: the input shape, the hidden layers (Conv, Pool, Dense), and the
    output head (a Dense of ``classes``)."""
    in_shape: tuple
    layers: tuple
    head: Dense

    @property
    def resnet(self):
        """The ResNetSpec of a '3x32x32-resnet20-10' topology, else None."""
        return next((l for l in self.layers if isinstance(l, ResNetSpec)), None)

    @property
    def is_mlp(self) -> bool:
        return len(self.in_shape) == 1 and all(isinstance(l, Dense) for l in self.layers)

    @property
    def sizes(self) -> tuple:
        """(n_in, hidden..., classes) of an MLP."""
        if not self.is_mlp:
            raise UsageError(f"topology {self} is convolutional: it has no list of layer sizes")
        return self.in_shape + tuple(l.n_out for l in self.layers) + (self.head.n_out,)

    @property
    def n_inputs(self) -> int:
        return math.prod(self.in_shape)

    @property
    def classes(self) -> int:
        return self.head.n_out

    @property
    def weight_bits(self) -> int:
        """Binary weights of the folded network: fan-in times outputs of every convolution and
        dense layer, the head included (what its ROMs hold, thresholds aside)."""
        if self.resnet is not None:
            raise UsageError(f"topology {self}: a ResNet does not fold to XNOR-popcount layers")
        return sum(l.fan_in * (l.channels if isinstance(l, Conv) else l.n_out)
                   for l in (*self.layers, self.head) if not isinstance(l, Pool))

    def __str__(self):
        first = "x".join(map(str, self.in_shape))
        return "-".join([first] + [l.token() for l in self.layers] + [self.head.token()])


_CONV = re.compile(r"([0-9]+)c([0-9]+)(?:p([0-9]+))?")
_RESNET = re.compile(r"resnet([0-9]+)")
_POOL = re.compile(r"mp([0-9]+)")
_SHAPE = re.compile(r"([0-9]+)x([0-9]+)x([0-9]+)")

_EXAMPLES = "like 784-256-256-10 or 1x28x28-32c3-mp2-64c3-mp2-256-10"


def parse(text) -> Topology:
    """Parse a topology string (or a tuple/list of MLP sizes); a ValueError names the layer
    and the shape that reached it when the string does not parse or its shapes run out."""
    if isinstance(text, Topology):
        return text
    if isinstance(text, (tuple, list)):
        tokens = [str(t) for t in text]
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in text):
            raise UsageError(f"topology {text!r}: layer sizes must be positive integers, {_EXAMPLES}")
    else:
        tokens = str(text).strip().split("-")
    shown = "-".join(tokens)
    if len(tokens) < 2:
        raise UsageError(f"topology {shown!r} must have at least an input and an output, {_EXAMPLES}")
    m = _SHAPE.fullmatch(tokens[0])
    if m:
        shape = tuple(int(g) for g in m.groups())
    elif tokens[0].isdigit():
        shape = (int(tokens[0]),)
    else:
        raise UsageError(f"topology {shown!r} does not parse: the input {tokens[0]!r} is neither a size nor "
                         f"CxHxW, {_EXAMPLES}")
    if min(shape) < 1:
        raise UsageError(f"topology {shown!r}: the input {tokens[0]!r} must be positive")
    in_shape, layers = shape, []
    for i, tok in enumerate(tokens[1:], start=1):
        where = f"topology {shown!r}, layer {i} ({tok!r})"
        conv, pool, res = _CONV.fullmatch(tok), _POOL.fullmatch(tok), _RESNET.fullmatch(tok)
        reach = "x".join(map(str, shape))
        if res:
            depth = int(res[1])
            if i != 1 or len(shape) != 3 or len(tokens) != 3:
                raise UsageError(f"{where}: a ResNet is written CxHxW-resnet<depth>-<classes>, e.g. 3x32x32-resnet20-10")
            if depth < 8 or (depth - 2) % 6:
                raise UsageError(f"{where}: a CIFAR ResNet has 6n + 2 layers (8, 14, 20, 32, 110, ...), not {depth}")
            layers.append(ResNetSpec(depth, shape))
            shape = (64,)
        elif tok.isdigit():
            n = int(tok)
            if n < 1:
                raise UsageError(f"{where}: a layer needs at least one neuron")
            layers.append(Dense(n, math.prod(shape)))
            shape = (n,)
        elif conv or pool:
            if len(shape) != 3:
                raise UsageError(f"{where}: a {'convolution' if conv else 'pool'} needs a CxHxW feature map, "
                                 f"but a flat vector of {shape[0]} reaches it"
                                 + (" (an MLP input is a size; write CxHxW, e.g. 1x28x28)" if i == 1 else ""))
            if conv:
                ch, k, p = int(conv[1]), int(conv[2]), int(conv[3] or 0)
                if ch < 1 or k < 1:
                    raise UsageError(f"{where}: channels and kernel must be positive")
                if p >= k:
                    raise UsageError(f"{where}: padding {p} must be smaller than the kernel {k}")
                if shape[1] + 2 * p < k or shape[2] + 2 * p < k:
                    raise UsageError(f"{where}: a {k}x{k} kernel with padding {p} is bigger than the "
                                     f"{reach} feature map that reaches it")
                layer = Conv(ch, k, p, shape)
            else:
                s = int(pool[1])
                if s < 2:
                    raise UsageError(f"{where}: a pool needs a size of at least 2")
                if not layers or not isinstance(layers[-1], Conv):
                    raise UsageError(f"{where}: a pool must follow a convolution" + ("" if layers else ", not the input"))
                if shape[1] < s or shape[2] < s:
                    raise UsageError(f"{where}: a {s}x{s} pool does not fit the {reach} feature map that reaches it")
                layer = Pool(s, shape)
            layers.append(layer)
            shape = layer.out_shape
        else:
            raise UsageError(f"{where} does not parse: expected a size (256), a convolution (32c3, 32c3p1) "
                             f"or a max-pool (mp2), {_EXAMPLES}")
    if not isinstance(layers[-1], Dense):
        raise UsageError(f"topology {shown!r} must end with the number of classes (a size), not {tokens[-1]!r}")
    return Topology(in_shape, tuple(layers[:-1]), layers[-1])


def parse_topology(text) -> tuple:
    """An MLP topology as sizes: '784-256-256-10' -> (784, 256, 256, 10)."""
    t = parse(text)
    if not t.is_mlp:
        raise UsageError(f"topology {t} is convolutional; expected MLP layer sizes like 784-256-256-10")
    return t.sizes


def topology_str(sizes) -> str:
    return str(parse(sizes))
