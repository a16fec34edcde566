"""Golden-model throughput beside torch's float eval of the same network, on the same cores.

    python bench/golden_speed.py [--topology 784-1024-1024-1024-10 ...] [--images 4096] [--threads N]

Each topology (MLP or CNN) is run on random weights and inputs (throughput does not depend on
the values): the golden model (bit-packed XOR-popcount, batches on N threads) and the float
baseline of the same topology in torch eval mode with N torch threads. The popcount bound is
what one core could reach at one 64-bit popcount per cycle: clock / (XNOR ops per image / 64),
times N; the clock is read from /proc/cpuinfo (a nominal figure on VMs).
"""

import argparse
import re
import time

import numpy as np
import torch

from bnncore.golden import default_threads, infer
from bnncore.model import FloatNet, ModelConfig
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, OutputHead, PoolLayer, summary
from bnncore.topology import Conv, Pool, parse

TOPOLOGIES = ["784-1024-1024-1024-10", "1x28x28-32c3p1-mp2-64c3p1-mp2-256-10"]


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


def random_network(topology, rng) -> FoldedNetwork:
    t = parse(topology)
    layers = []
    for l in t.layers:
        if isinstance(l, Conv):
            layers.append(ConvLayer(rng.integers(0, 2, (l.channels, l.kernel, l.kernel, l.in_shape[0])),
                                    rng.integers(0, l.fan_in + 2, l.channels), l.in_shape, l.padding))
        elif isinstance(l, Pool):
            layers.append(PoolLayer(l.in_shape, np.zeros(l.in_shape[0], np.uint8), l.size))
        else:
            layers.append(DenseLayer(rng.integers(0, 2, (l.n_out, l.n_in)), rng.integers(0, l.n_in + 2, l.n_out)))
    head = OutputHead(rng.integers(0, 2, (t.head.n_out, t.head.n_in)), np.zeros(t.head.n_out, np.int64))
    return FoldedNetwork(tuple(layers), head)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topology", action="append", help=f"(repeatable; default: {', '.join(TOPOLOGIES)})")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=default_threads(), help="cores for both (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    mhz = cpu_mhz()
    print(f"\n{args.threads} thread(s), {args.images} images, clock {mhz} MHz\n")
    print("| network | XNOR ops/image | golden images/s | torch float images/s | golden / torch | vs popcount bound |")
    print("|---|---|---|---|---|---|")
    for topo in args.topology or TOPOLOGIES:
        net = random_network(topo, rng)
        bits = rng.integers(0, 2, (args.images, net.n_inputs)).astype(np.uint8)
        golden = timed(lambda: infer(net, bits, threads=args.threads), args.images)
        model = FloatNet(ModelConfig(topology=topo, binary=False)).eval()
        x = torch.as_tensor(bits).float()

        def torch_eval():
            with torch.no_grad():
                for i in range(0, len(x), 256):
                    model(x[i:i + 256])
        torch_float = timed(torch_eval, args.images)
        ops = summary(net)["total"]["macs_per_image"]
        bound = args.threads * mhz * 1e6 / (ops / 64) if mhz else float("nan")
        print(f"| {topo} | {ops:,} | {golden:,.0f} | {torch_float:,.0f} | {golden / torch_float:.2f}x | "
              f"{golden / bound:.1%} |")


if __name__ == "__main__":
    main()
