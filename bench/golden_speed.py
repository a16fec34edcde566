"""Golden-model throughput on one core, beside torch's float eval of the same topology.

    python bench/golden_speed.py [--topology 784-1024-1024-1024-10] [--images 4096]

Both run single-threaded on random inputs (throughput does not depend on the values). The
popcount bound is what one core could reach at one 64-bit popcount per cycle: clock /
(weight bits per image / 64). The clock is read from /proc/cpuinfo (a nominal figure on VMs).
"""

import argparse
import os
import re
import time

import numpy as np
import torch

from bnncore.golden import infer
from bnncore.model import ModelConfig, parse_topology
from bnncore.network import FoldedLayer, FoldedNetwork, OutputHead


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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topology", default="784-1024-1024-1024-10")
    ap.add_argument("--images", type=int, default=4096)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    sizes = parse_topology(args.topology)
    rng = np.random.default_rng(0)
    net = FoldedNetwork(tuple(FoldedLayer(rng.integers(0, 2, (o, i)), rng.integers(0, i + 2, o))
                              for i, o in zip(sizes[:-2], sizes[1:-1])),
                        OutputHead(rng.integers(0, 2, (sizes[-1], sizes[-2])), np.zeros(sizes[-1], np.int64)))
    bits = rng.integers(0, 2, (args.images, sizes[0])).astype(np.uint8)
    golden = timed(lambda: infer(net, bits), args.images)

    from bnncore.model import FloatMLP
    model = FloatMLP(ModelConfig(topology=sizes, binary=False)).eval()
    x = torch.as_tensor(bits).float()

    def torch_eval():
        with torch.no_grad():
            for i in range(0, len(x), 256):
                model(x[i:i + 256])
    torch_float = timed(torch_eval, args.images)

    weight_bits = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    mhz = cpu_mhz()
    bound = mhz * 1e6 / (weight_bits / 64) if mhz else float("nan")
    print(f"\n{args.topology}: {weight_bits:,} weight bits per image, 1 thread, {args.images} images, "
          f"clock {mhz} MHz\n")
    print("| model | images/s | vs torch float | vs popcount bound |")
    print("|---|---|---|---|")
    for name, ips in (("golden (NumPy, bit-packed)", golden), ("torch float eval", torch_float)):
        print(f"| {name} | {ips:,.0f} | {ips / torch_float:.2f}x | {ips / bound:.1%} |")
    print(f"| popcount bound (1 popcnt/cycle) | {bound:,.0f} | {bound / torch_float:.2f}x | 100% |")


if __name__ == "__main__":
    main()
