"""FINN's CNV topology through the accelerator flow: generated, simulated bit-exact, synthesized.

    python bench/cnv.py [--images 20] [--target-cycles 8100] [--synth ecp5-85f] [--bench native]
        [--seed 1] [--no-global-reset] [--brevitas] [--out build/bench/cnv]

CNV is 3x32x32-64c3-64c3-mp2-128c3-128c3-mp2-256c3-256c3-512-512-10 with an 8-bit input
(1.54 Mbit of weights), FINN's and BNN-PYNQ's CIFAR-10 network. CIFAR-10 is not needed to
check the hardware: the weights are random bits and the thresholds random values near the
middle of each layer's range (so that the activations are not constant), the images random
32x32x3 pixels. The network is exported, `bnn rtl` generates it, Verilator runs the images
against the golden model (every class and score; the native bench by default), and with
``--synth`` the design goes through Yosys and nextpnr. Prints a table; nothing is timed as a
test.

``--brevitas``: Brevitas' own CNV instead (``brevitas_examples.bnn_pynq``'s ``cnv_1w1a``,
unmodified, random BatchNorm statistics), exported with Brevitas' ``export_qonnx`` and brought
in by ``bnn import``'s reader (its rounding 8-bit input quantizer as a table input), proved
against qonnx's executor on the same images, then through the same flow.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bnncore import api
from bnncore.exports import export
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer

TOPOLOGY = "3x32x32-64c3-64c3-mp2-128c3-128c3-mp2-256c3-256c3-512-512-10"


def random_cnv(seed: int = 0) -> FoldedNetwork:
    rng = np.random.default_rng(seed)

    def thresholds(n_out, top):
        # near the middle of the sum's range (about half the outputs fire), a spread of a few
        # standard deviations of a random sum
        mid, spread = top / 2, max(1.0, np.sqrt(top) * (4 if top > 1000 else 1))
        return np.clip(np.rint(rng.normal(mid, spread, n_out)), 0, top + 1).astype(np.int64)

    layers, shape = [], (3, 32, 32)
    for i, part in enumerate(TOPOLOGY.split("-")[1:-1]):
        if part.startswith("mp"):
            layers.append(PoolLayer(shape, rng.integers(0, 2, shape[0]), int(part[2:])))
        elif "c" in part:
            o, k = map(int, part.split("c"))
            bits = 8 if i == 0 else 1
            n = k * k * shape[0]
            layers.append(ConvLayer(rng.integers(0, 2, (o, k, k, shape[0])), thresholds(o, n * (2**bits - 1)), shape,
                                    0, 0, in_bits=bits))
        else:
            o = int(part)
            n = int(np.prod(shape))
            layers.append(DenseLayer(rng.integers(0, 2, (o, n)), thresholds(o, n)))
        shape = layers[-1].out_shape
    n = int(np.prod(shape))
    head = OutputHead(rng.integers(0, 2, (10, n)), rng.integers(-8, 9, 10))
    return FoldedNetwork(tuple(layers), head, InputScheme("uint8"))


def brevitas_cnv(out: Path, images: np.ndarray) -> FoldedNetwork:
    """Brevitas' cnv_1w1a with random BatchNorm statistics, through QONNX, proved on ``images``."""
    from qonnx_interop import bnn_pynq     # bench/ is the script's folder

    from bnncore.qonnx_import import import_qonnx, verify_qonnx
    out.mkdir(parents=True, exist_ok=True)
    bnn_pynq("cnv_1w1a", out / "cnv_1w1a.onnx")
    imp = import_qonnx(out / "cnv_1w1a.onnx")
    check = verify_qonnx(imp, images)
    print(f"Brevitas cnv_1w1a imported in {imp.seconds:.1f} s ({imp.net.input.scheme} input); against qonnx's "
          f"executor on {check['images']} images: {check['class_mismatches']} class mismatches, "
          f"{check['hidden_bit_mismatches']} of {check['hidden_bits_compared']:,} hidden bits differ")
    assert check["class_mismatches"] == 0 and check["hidden_bit_mismatches"] == 0
    return imp.net


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--target-cycles", type=int, default=None, help="default: the fastest CNV allows")
    ap.add_argument("--synth", help="a device (ecp5-85f) to synthesize for")
    ap.add_argument("--freq", type=float, default=100.0)
    ap.add_argument("--bench", choices=("native", "cocotb"), default="native", help="bnn sim --bench")
    ap.add_argument("--seed", type=int, default=1, help="bnn synth --seed")
    ap.add_argument("--global-reset", action=argparse.BooleanOptionalAction, default=True,
                    help="bnn synth --global-reset (default: on)")
    ap.add_argument("--brevitas", action="store_true", help="Brevitas' cnv_1w1a through bnn import, not random bits")
    ap.add_argument("--out", default="build/bench/cnv")
    args = ap.parse_args()
    out = Path(args.out)
    pixels = np.random.default_rng(1).integers(0, 256, (args.images, 32 * 32 * 3)).astype(np.uint8)
    net = brevitas_cnv(out, pixels) if args.brevitas else random_cnv()
    assert net.spec == TOPOLOGY, net.spec
    net_dir = export(net, out / "net")
    t0 = time.perf_counter()
    rtl = api.generate(net_dir, out / "rtl", target_cycles=args.target_cycles, device=args.synth, vhdl=False,
                       log=lambda line: print(line, flush=True))
    generate_s = time.perf_counter() - t0
    info = json.loads((rtl / "rtl.json").read_text())
    print(f"{TOPOLOGY}: {sum(l['memory_bits']['weights'] for l in info['folding']):,} weight bits, folded to "
          f"{info['timing']['cycles_per_image']} cycles per image, generated in {generate_s:.0f} s")
    sim = api.simulate(rtl, net_dir, pixels, sim="verilator", build_dir=out / "sim", bench=args.bench,
                       log=lambda line: print(line, flush=True))
    rows = [("verilator", f"{sim['images']} random images", f"{sim['mismatches']} mismatches",
             f"interval {sim.get('ii')} cycles (model {float(info['timing']['initiation_interval']):g})",
             f"latency {sim['latency']} cycles (model {info['timing']['latency']})",
             f"build {sim['build_s']:.0f} s, run {sim['run_s']:.0f} s")]
    if args.synth:
        r = api.synthesize(rtl, args.synth, out / f"synth-{args.synth}", freq=args.freq, seed=args.seed,
                           global_reset=args.global_reset, log=lambda line: print(line, flush=True))
        res = r["resources"]
        rows.append((r["device"]["part"], f"{res['luts']:,} LUTs, {res['ffs']:,} FFs, {res['brams']} block RAMs",
                     f"{r['fmax_mhz']:.1f} MHz", f"{r['images_per_second']:,} images/s",
                     f"bandwidth bound {r['bandwidth_bound_cycles']} cycles/image"))
    for row in rows:
        print(" | ".join(map(str, row)))


if __name__ == "__main__":
    main()
