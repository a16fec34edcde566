"""ResNet-(6n+2) for CIFAR-style images with binary weights (seed 004), for experiments.

He et al.'s CIFAR ResNet: a 3x3 convolution of 16 channels, then three stages of n basic
blocks (two 3x3 convolutions each, 16, 32 and 64 channels, the last two stages starting with
stride 2), parameter-free shortcuts (identity; subsampled and zero-padded where the shape
changes, "option A"), global average pooling and a linear classifier: 6n + 2 layers.

Binarization (``bnn train --topology 3x32x32-resnet20-10``):

- weights: the 6n inner convolutions have +-1 weights times alpha, per output channel
  (``--weight-scale filter``, XNOR-Net) or one per layer (``layer``, DoReFa); the first
  convolution and the classifier stay float, as in XNOR-Net and DoReFa;
- activations: float (ReLU) by default; with ``binary_act`` the inner convolutions see
  sign(x) (straight-through estimator), optionally times XNOR-Net's input scaling
  K = mean |x| over each window (``input_scaling``).

A residual network with float shortcuts, average pooling and, with it, K is not an
XNOR-popcount network: it trains and evaluates in torch and does not fold (bnncore.folding says so).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .errors import UsageError
from .layers import SignSTE, WeightSignSTE, weight_scale

__all__ = ["ResNet", "depth_blocks"]


def depth_blocks(depth: int) -> int:
    """n for a ResNet-(6n+2)."""
    if depth < 8 or (depth - 2) % 6:
        raise UsageError(f"a CIFAR ResNet has 6n + 2 layers (8, 14, 20, 32, 110, ...), not {depth}")
    return (depth - 2) // 6


class _Conv(nn.Module):
    """3x3 convolution, float or binary weights (+ alpha), float or binary inputs (+ K)."""

    def __init__(self, c_in, c_out, stride, binary, scale, binary_act, input_scaling):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in, 3, 3))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.stride, self.binary, self.scale = stride, binary, scale
        self.binary_act, self.input_scaling = binary_act, input_scaling

    def forward(self, x):
        w = self.weight
        if self.binary:
            a = weight_scale(w, self.scale)
            w = WeightSignSTE.apply(w)
            if a is not None:
                w = w * (a.view(-1, 1, 1, 1) if a.dim() else a)
        k = None
        if self.binary_act:
            if self.input_scaling:   # K: mean |x| over the channels, then over each 3x3 window
                k = F.avg_pool2d(x.abs().mean(dim=1, keepdim=True), 3, self.stride, padding=1)
            x = SignSTE.apply(x)
        out = F.conv2d(x, w, stride=self.stride, padding=1)
        return out if k is None else out * k

    @torch.no_grad()
    def clip_(self):
        if self.binary:
            self.weight.clamp_(-1.0, 1.0)


class _Block(nn.Module):
    def __init__(self, c_in, c_out, stride, conv):
        super().__init__()
        self.conv1, self.bn1 = conv(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = conv(c_out, c_out, 1), nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def shortcut(self, x):
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-(6n+2); inputs flat (N, H * W * C) in (y, x, channel) order, as every model here."""

    def __init__(self, in_shape, depth: int, classes: int, *, binary: bool = True, scale: str = "filter",
                 binary_act: bool = False, input_scaling: bool = False):
        super().__init__()
        n = depth_blocks(depth)
        self.in_shape = tuple(in_shape)
        conv = lambda a, b, s: _Conv(a, b, s, binary, scale, binary_act, input_scaling)
        self.stem = nn.Conv2d(in_shape[0], 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, c = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(_Block(c, width, 2 if stage and i == 0 else 1, conv))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x, *, return_hidden: bool = False):
        c, h, w = self.in_shape
        x = x.reshape(len(x), h, w, c).permute(0, 3, 1, 2)
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        logits = self.fc(x.mean(dim=(2, 3)))
        return (logits, []) if return_hidden else logits

    def clip_(self):
        for m in self.modules():
            if isinstance(m, _Conv):
                m.clip_()
