"""Golden-model throughput beside torch's float eval of the same network, on the same cores.

    python bench/golden_speed.py [--topology 784-1024-1024-1024-10 ...] [--uint8 TOPOLOGY ...]
                                 [--images 4096] [--threads N]

Each topology (MLP or CNN) is run on random weights and inputs (throughput does not depend on
the values): the golden model (bit-packed XOR-popcount, batches on N threads) with each of its
backends that runs here (compiled ``numba``, plain ``numpy``), and the float baseline of the
same topology in torch eval mode with N torch threads. The popcount bound (1-bit inputs) is
what one core could reach at one 64-bit popcount per cycle: clock / (XNOR ops per image / 64),
times N; the clock is read from /proc/cpuinfo (a nominal figure on VMs).
"""

import argparse
import re
import time

import numpy as np
import torch

from bnncore.golden import backend_names, default_threads, infer
from bnncore.model import FloatNet, ModelConfig
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer, summary
from bnncore.topology import Conv, Pool, parse

TOPOLOGIES = ["784-1024-1024-1024-10", "1x28x28-32c3p1-mp2-64c3p1-mp2-256-10"]
UINT8 = ["1x28x28-32c3p1-mp2-64c3p1-mp2-256-10"]     # first layer on 8-bit pixels


def cpu_mhz():
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None
    m = re.search(r"cpu MHz\s*:\s*([\d.]+)", text)
    return float(m.group(1)) if m else None


def timed(fn, n_images, repeats=3):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_images / best


def random_network(topology, rng, in_bits=1) -> FoldedNetwork:
    t = parse(topology)
    layers = []
    for l in t.layers:
        bits, top = (in_bits, 2**in_bits - 1) if not layers else (1, 1)
        if isinstance(l, Conv):
            layers.append(ConvLayer(rng.integers(0, 2, (l.channels, l.kernel, l.kernel, l.in_shape[0])),
                                    rng.integers(0, top * l.fan_in + 2, l.channels), l.in_shape, l.padding,
                                    pad_value=top, in_bits=bits))
        elif isinstance(l, Pool):
            layers.append(PoolLayer(l.in_shape, np.zeros(l.in_shape[0], np.uint8), l.size))
        else:
            layers.append(DenseLayer(rng.integers(0, 2, (l.n_out, l.n_in)), rng.integers(0, top * l.n_in + 2, l.n_out),
                                     in_bits=bits))
    head = OutputHead(rng.integers(0, 2, (t.head.n_out, t.head.n_in)), np.zeros(t.head.n_out, np.int64))
    return FoldedNetwork(tuple(layers), head, InputScheme("uint8" if in_bits == 8 else "threshold"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topology", action="append", help=f"(repeatable; default: {', '.join(TOPOLOGIES)})")
    ap.add_argument("--uint8", action="append", metavar="TOPOLOGY",
                    help=f"(repeatable) a topology whose first layer reads 8-bit pixels (default: {', '.join(UINT8)})")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=default_threads(), help="cores for both (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    mhz = cpu_mhz()
    print(f"\n{args.threads} thread(s), {args.images} images, clock {mhz} MHz\n")
    backends = backend_names()
    print("| network | XNOR ops/image | " + " | ".join(f"golden {b} images/s" for b in backends)
          + " | torch float images/s | golden / torch | vs popcount bound |")
    print("|---|---|" + "---|" * len(backends) + "---|---|---|")
    runs = [(t, 1) for t in args.topology or TOPOLOGIES] + [(t, 8) for t in args.uint8 or UINT8]
    for topo, in_bits in runs:
        net = random_network(topo, rng, in_bits)
        bits = rng.integers(0, 2**in_bits, (args.images, net.n_inputs)).astype(np.uint8)
        speeds = [timed(lambda: infer(net, bits, threads=args.threads, backend=b), args.images) for b in backends]
        golden = speeds[0]
        model = FloatNet(ModelConfig(topology=topo, binary=False)).eval()
        x = torch.as_tensor(bits).float()

        def torch_eval():
            with torch.no_grad():
                for i in range(0, len(x), 256):
                    model(x[i:i + 256])
        torch_float = timed(torch_eval, args.images)
        ops = summary(net)["total"]["macs_per_image"]
        bound = args.threads * mhz * 1e6 / (ops / 64) if mhz and in_bits == 1 else float("nan")
        name = topo + (", 8-bit input" if in_bits == 8 else "")
        print(f"| {name} | {ops:,} | " + " | ".join(f"{v:,.0f}" for v in speeds) + f" | {torch_float:,.0f} | "
              f"{golden / torch_float:.2f}x | "
              + (f"{golden / bound:.1%} |" if bound == bound else "- |"))


if __name__ == "__main__":
    main()
