"""Fold BatchNorm + sign into one integer threshold per neuron or channel.

For a hidden neuron (or conv channel) with n inputs, +-1 weights w, optional weight scale
alpha > 0, bias b (0 without one) and BatchNorm (gamma, beta, running mean mu, running
variance var, eps) in eval mode::

    y(dot) = gamma * (alpha * dot + b - mu) / sqrt(var + eps) + beta = a * dot + c
    a = alpha * gamma / sqrt(var + eps),  c = beta + gamma * (b - mu) / sqrt(var + eps)
    out = +1  <=>  y >= 0                          (sign(0) = +1)

so the neuron fires for dot >= tau = -c / a when a > 0, for dot <= tau when a < 0 (its
weight row is then flipped, w -> -w, which negates dot), and always or never when a = 0.
With dot = 2p - n for 1-bit inputs (p = popcount(xnor(x, w))), or dot = sum - 255 * zeros(w)
for 8-bit ones (see bnncore.network), that is ``sum >= T`` for one integer T, clipped to
[0, max + 1]. A positive alpha only rescales a, so weight scaling folds exactly.

The exact test of the rule is the torch model itself: every neuron's pre-activation is a
monotone function of its integer sum (float32 rounding is monotone), so each threshold is
found by bisection (bnncore.thresholds) on torch's own float32 evaluation of the block
(scale, bias, BatchNorm, in the order the forward pass applies them) over the integer range
of the sum. The float64
rule above is computed too; where float32 rounding puts a tie on the other side, torch wins
(the folded network must equal the torch model bit for bit) and the report counts it.

Max-pool: after the sign it is the OR of the window's bits. Before BatchNorm + sign
(conv -> pool -> BN -> sign), a channel with a > 0 fires for the window's maximum exactly
when one position fires (OR); with a < 0 the decision is decreasing, max turns into min and
the pooled bit is the AND of the positions' bits; the folded pool records which, per channel.

Output layer: score_c = dot_c + round(bias_c), exactly what the torch head computes before its
positive temperature; see bnncore.model.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .data import InputBinarization
from .errors import BnnError
from .model import BinaryNet, _Block, _ConvBlock
from .network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer
from .thresholds import FoldReport, LayerReport, fold_rule, threshold_layer, to_yxc

__all__ = ["fold", "fold_with_report", "fold_rule", "FoldReport", "LayerReport", "FoldError", "verify"]


class FoldError(BnnError, ValueError):
    """The model cannot be folded (not binary, float input, degenerate output head)."""


def _flat(t) -> np.ndarray:
    return t.detach().cpu().double().reshape(-1).numpy()


def _affine(block, channels: int):
    """float64 (a, c) per channel: pre-activation = a * dot + c (see the module docstring)."""
    layer = block.conv if isinstance(block, _ConvBlock) else block.linear
    norm = block.norm
    alpha = layer.alpha()
    alpha = np.ones(channels) if alpha is None else np.broadcast_to(_flat(alpha), (channels,))
    bias = _flat(layer.bias) if getattr(layer, "bias", None) is not None else np.zeros(channels)
    if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
        gamma = _flat(norm.weight) if norm.affine else np.ones(channels)
        beta = _flat(norm.bias) if norm.affine else np.zeros(channels)
        g = gamma / np.sqrt(_flat(norm.running_var) + norm.eps)
        return alpha * g, beta + g * (bias - _flat(norm.running_mean))
    if isinstance(norm, torch.nn.Identity):
        return alpha, bias
    raise FoldError(f"cannot fold a {type(norm).__name__}; expected BatchNorm or none")


def _probe(block, channels: int, shape: tuple):
    """decide(sums) -> bool (channels,): torch's own float32 evaluation of the block's scale,
    bias and norm at one integer sum per channel, broadcast over a tensor of the layer's
    output shape (so every position the forward pass computes is probed; all must agree)."""
    def decide(sums: np.ndarray, where: str) -> np.ndarray:
        s = torch.tensor(sums, dtype=torch.float32)
        if len(shape) == 3:
            x = s.view(1, channels, 1, 1).expand(1, *shape).contiguous()
            out = (block.post(x) >= 0).reshape(channels, -1)
        else:
            out = (block.post(s.view(1, channels).expand(8, channels).contiguous()) >= 0).T
        first = out[:, :1]
        if not bool((out == first).all()):
            bad = int((out != first).any(dim=1).nonzero()[0])
            raise FoldError(f"{where}: channel {bad}: torch's float32 evaluation of the same sum differs between "
                            "output positions; no single threshold reproduces it")
        return first[:, 0].numpy()
    return decide


@torch.no_grad()
def _fold_block(block, index: int, shape: tuple, in_bits: int):
    """A hidden block -> (folded layers, LayerReport, output shape)."""
    name = f"layer {index}"
    conv = isinstance(block, _ConvBlock)
    layer = block.conv if conv else block.linear
    w = layer.weight.detach().cpu()
    if conv:
        bits = (w >= 0).numpy().astype(np.uint8).transpose(0, 2, 3, 1)      # (out, ky, kx, in)
        channels, k = bits.shape[0], bits.shape[1]
        out_shape = (channels, shape[1] + 2 * layer.pad - k + 1, shape[2] + 2 * layer.pad - k + 1)
    else:
        bits = to_yxc((w >= 0).numpy().astype(np.uint8), shape)              # sign(0) = +1 -> bit 1
        channels = bits.shape[0]
        out_shape = (channels,)
    a, c = _affine(block, channels)
    was_training = block.training
    block.eval()
    try:
        rows, t, flip, report = threshold_layer(_probe(block, channels, out_shape), a, c, bits, in_bits, name,
                                                kind="conv" if conv else "dense")
    finally:
        block.train(was_training)
    if not conv:
        return [DenseLayer(rows, t, name=name, in_bits=in_bits)], report, out_shape
    pad_value = int(layer.pad_value > 0) if in_bits == 1 else int(layer.pad_value)
    if in_bits == 8 and layer.pad and layer.pad_value != 0:
        raise FoldError(f"{name}: an 8-bit first layer pads with pixel 0, not {layer.pad_value}")
    folded = [ConvLayer(rows, t, shape, layer.pad, pad_value, name=name, in_bits=in_bits)]
    if block.pool:
        modes = flip if block.pool_order == "before" else np.zeros(channels, bool)
        folded.append(PoolLayer(out_shape, modes.astype(np.uint8), block.pool, name=f"layer {index + 1}"))
        report.and_channels = int(modes.sum())
        out_shape = folded[-1].out_shape
    return folded, report, out_shape


@torch.no_grad()
def _fold_head(head, shape):
    w = head.linear.weight.detach().cpu()
    bits = to_yxc((w >= 0).numpy().astype(np.uint8), shape)
    bias = torch.round(head.bias.detach().cpu()).numpy().astype(np.int64)
    scale = head.log_scale.detach().exp().item()
    if not (math.isfinite(scale) and scale > 0):
        raise FoldError(f"output head: temperature exp(log_scale) = {scale} is not a positive finite "
                        "number; its arg-max is not the integer arg-max")
    if head.linear.scale != "none":
        raise FoldError(f"output head: weight scale {head.linear.scale!r} per class changes the arg-max; "
                        "the head is not scaled")
    return OutputHead(bits, bias, name="output")


def _scheme(input) -> InputScheme:
    if isinstance(input, InputScheme):
        return input
    if not input.binary:
        raise FoldError("a network trained on float input (--input none) has no bit input; "
                        "train with --input threshold, probability or uint8")
    return input.network_input()


def fold_with_report(model: BinaryNet, input):
    """Fold a binary MLP or CNN into a :class:`FoldedNetwork`; also return a :class:`FoldReport`.

    ``input``: the InputBinarization it was trained with (``TrainConfig.binarization()``, or
    the network's InputScheme). It is required: the model itself does not record it, and a
    network folded for the wrong input scheme computes something else."""
    if type(model).__name__ == "ResNet":
        raise FoldError("a residual network (bnncore.resnet) trains and evaluates in torch: its float shortcuts, "
                        "average pooling and float first and last layers do not fold to XNOR-popcount thresholds")
    if not isinstance(model, BinaryNet):
        raise FoldError(f"only binary networks fold to thresholds, got {type(model).__name__} "
                        "(a float baseline trained with --no-binary?)")
    scheme = _scheme(input)
    if model.cfg.raw_input != (scheme.scheme == "uint8"):
        raise FoldError(f"the model was built for {'uint8' if model.cfg.raw_input else '1-bit'} input, "
                        f"not {scheme.scheme!r}")
    layers, reports, shape, index = [], [], model.in_shape, 0
    for block in model.blocks:
        in_bits = scheme.value_bits if index == 0 else 1
        folded, rep, shape = _fold_block(block, index, shape, in_bits)
        layers.extend(folded)
        reports.append(rep)
        index += len(folded)
    head = _fold_head(model.head, shape)
    net = FoldedNetwork(tuple(layers), head, scheme)
    return net, FoldReport(reports, (int(head.bias.min()), int(head.bias.max())))


def fold(model: BinaryNet, input) -> FoldedNetwork:
    """Fold a binary network (in any mode; eval-mode statistics are used) into a FoldedNetwork,
    for the input scheme ``input`` it was trained with (see :func:`fold_with_report`)."""
    return fold_with_report(model, input)[0]


def _as_yxc(t: torch.Tensor) -> np.ndarray:
    """A torch activation as the golden model's: (N, n), or (N, C, H, W) -> (N, H, W, C), as bits."""
    bits = (t > 0).numpy().astype(np.uint8)
    return bits.transpose(0, 2, 3, 1) if bits.ndim == 4 else bits


@torch.no_grad()
def verify(net: FoldedNetwork, model: BinaryNet, images: np.ndarray, labels=None, batch_size: int = 1000) -> dict:
    """Compare the folded network (golden model) with the torch model in eval mode, exactly.

    Returns counts of images whose predicted class differs, of hidden activation bits that
    differ (every layer's, conv feature maps and pools included), and both accuracies when
    labels are given.
    """
    from .golden import infer
    bits = net.input.bits(images)
    was_training = model.training
    model.eval()
    preds, golds, diffs, compared = [], [], np.zeros(len(net.layers), np.int64), 0
    try:
        # chunk by chunk: a CNN's feature maps for a whole test set would not fit in memory
        for i in range(0, len(bits), batch_size):
            gold = infer(net, bits[i:i + batch_size], return_layers=True)
            chunk = torch.as_tensor(bits[i:i + batch_size]).float()
            x = chunk if net.input.value_bits == 8 else chunk * 2 - 1
            logits, hidden = model(x, return_hidden=True)
            preds.append(logits.argmax(1).numpy())
            golds.append(gold.classes)
            if len(hidden) != len(net.layers):
                raise FoldError(f"the model has {len(hidden)} hidden activations, the folded network "
                                f"{len(net.layers)} layers: not the network it was folded from")
            for j, h in enumerate(hidden):
                diffs[j] += int((_as_yxc(h) != gold.activations[j]).sum())
            compared += sum(a.size for a in gold.activations)
    finally:
        model.train(was_training)
    preds = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    classes = np.concatenate(golds) if golds else np.zeros(0, np.int64)
    result = {"images": int(len(bits)), "class_mismatches": int((preds != classes).sum()),
              "hidden_bit_mismatches": int(diffs.sum()), "hidden_bit_mismatches_per_layer": diffs.tolist(),
              "hidden_bits_compared": int(compared)}
    if labels is not None:
        labels = np.asarray(labels)
        result["torch_accuracy"] = float((preds == labels).mean())
        result["folded_accuracy"] = float((classes == labels).mean())
        if len(labels):       # the folded network's, per class (bnn report draws it)
            from .metrics import confusion
            k = max(net.head.n_out, int(labels.max()) + 1)
            result["confusion"] = confusion(labels, classes, k).tolist()
    return result
