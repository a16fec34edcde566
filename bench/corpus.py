"""The proof that a restructure changed nothing: a corpus of designs, recorded and checked.

    python bench/corpus.py record [--synth] [--data-dir DIR] [--only NAME,...] [--out build/corpus]
    python bench/corpus.py check  [--synth] [--data-dir DIR] [--only NAME,...] [--out build/corpus]

Each entry is a network built from a seed (random weight bits, thresholds near the middle of
each layer's range, pools of OR and AND channels) and the options of ``bnn rtl``: MLPs and
CNNs, threshold and 8-bit inputs, both pad values, foldings that divide the layers and foldings
that pad them, shallow engines, three banks, Verilog with and without VHDL. ``record`` writes,
for every entry, the sha256 of each generated file (Verilog, VHDL, ROM files, rtl.json) and of
the golden model's classes and scores on 1,000 images (MNIST's test images for a 28x28 network
when the dataset is found, else seeded random pixels) into ``bench/corpus.json``; with
``--synth``, the entries marked for it are synthesized at placement seed 1 for both families
and their resources and Fmax recorded too. ``check`` does the same again and compares: a table
of every difference, exit status 1 if there is one. rtl.json's ``generator`` field (the
version) is left out of its digest; nothing else is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from bnncore import api
from bnncore.exports import export
from bnncore.golden import infer
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer

REFERENCE = Path(__file__).with_name("corpus.json")

#: name -> (topology, input scheme, pad value, pools ("mixed", "or", "and"), bnn rtl options, synthesize)
CORPUS = {
    "mlp-tiny": ("37-11-6-5", "threshold", 1, "mixed", {"fold": [(4, 8), (3, 4), (2, 3)]}, True),
    "mlp-dividing": ("784-64-32-10", "threshold", 1, "mixed", {"fold": [(16, 49), (8, 16), (10, 8)]}, False),
    "mlp-padded": ("784-50-30-10", "threshold", 1, "mixed", {"fold": [(7, 40), (4, 9), (3, 7)]}, False),
    "mlp-auto": ("784-256-256-10", "threshold", 1, "mixed", {"target_cycles": 256}, False),
    "mlp-auto-64": ("784-128-10", "threshold", 1, "mixed", {"target_cycles": 64}, False),
    "mlp-shallow": ("784-64-10", "threshold", 1, "mixed", {"fold": [(8, 56), (10, 16)], "pipelined": False}, False),
    "mlp-banks3": ("100-40-20-4", "threshold", 1, "mixed", {"fold": [(8, 20), (5, 8), (4, 5)], "banks": 3}, True),
    "mlp-uint8": ("100-16-4", "uint8", 1, "mixed", {"fold": [(4, 10), (4, 4)]}, False),
    "mlp-verilog-only": ("64-16-4", "threshold", 1, "mixed", {"fold": [(4, 16), (4, 4)], "vhdl": False}, False),
    "mlp-outdepth": ("64-16-4", "threshold", 1, "mixed", {"fold": [(4, 16), (4, 4)], "out_depth": 4}, False),
    "cnn-or": ("1x12x12-4c3-mp2-8-3", "threshold", 1, "or", {}, True),
    "cnn-and": ("1x12x12-4c3-mp2-8-3", "threshold", 1, "and", {}, False),
    "cnn-pad-plus": ("2x9x9-5c3p1-mp2-7-3", "threshold", 1, "mixed", {"fold": [(5, 2), (7, 5), (3, 7)]}, False),
    "cnn-pad-minus": ("2x9x9-5c3p1-mp2-7-3", "threshold", 0, "mixed", {"fold": [(5, 2), (7, 5), (3, 7)]}, False),
    "cnn-padded-pe": ("2x9x9-5c3p1-mp2-7-3", "threshold", 1, "mixed", {"fold": [(2, 1), (3, 5), (2, 7)]}, False),
    "cnn-uint8": ("1x10x10-4c3-mp2-6-4", "uint8", 1, "mixed", {}, True),
    "cnn-two-conv": ("1x14x14-4c3p1-mp2-6c3-mp2-10", "threshold", 1, "mixed", {}, False),
    "cnn-dense-dense": ("1x8x8-3c3-mp2-6-5-3", "threshold", 1, "mixed", {"fold": [(3, 1), (6, 3), (5, 6), (3, 5)]},
                        False),
    "cnn-shallow": ("1x12x12-4c3-mp2-8-3", "threshold", 1, "mixed", {"pipelined": False}, False),
    "cnn-kernel5": ("3x11x11-4c5p2-mp3-6-4", "threshold", 0, "mixed", {}, False),
    "cnn-mnist": ("1x28x28-8c3p1-mp2-16c3p1-mp2-32-10", "threshold", 1, "mixed", {"target_cycles": 14112}, False),
    "cnn-uint8-banks3": ("1x10x10-4c3-mp2-6-4", "uint8", 1, "mixed", {"banks": 3}, False),
}
SYNTH_DEVICES = ("up5k", "ecp5-25f")


def random_network(topology: str, seed: int, scheme: str, pad_value: int, pools: str) -> FoldedNetwork:
    """A network of ``topology`` with random weights and thresholds near the middle of each
    layer's range (so that activations vary), the same for the same arguments."""
    rng = np.random.default_rng(seed)

    def thresholds(n_out, top):
        mid, spread = top / 2, max(1.0, np.sqrt(top))
        return np.clip(np.rint(rng.normal(mid, spread, n_out)), 0, top + 1).astype(np.int64)

    parts = topology.split("-")
    layers = []
    if "x" in parts[0]:
        shape = tuple(int(v) for v in parts[0].split("x"))
    else:
        shape = (int(parts[0]),)
    for i, part in enumerate(parts[1:-1]):
        bits = 8 if scheme == "uint8" and i == 0 else 1
        if part.startswith("mp"):
            modes = {"or": np.zeros(shape[0]), "and": np.ones(shape[0])}.get(pools, rng.integers(0, 2, shape[0]))
            layers.append(PoolLayer(shape, modes.astype(np.uint8), int(part[2:])))
        elif "c" in part:
            o, rest = part.split("c")
            k, _, p = rest.partition("p")
            k, p = int(k), int(p or 0)
            n = k * k * shape[0]
            layers.append(ConvLayer(rng.integers(0, 2, (int(o), k, k, shape[0])), thresholds(int(o), n * (2**bits - 1)),
                                    shape, p, 0 if bits == 8 else pad_value, in_bits=bits))
        else:
            n = int(np.prod(shape))
            layers.append(DenseLayer(rng.integers(0, 2, (int(part), n)), thresholds(int(part), n * (2**bits - 1)),
                                     in_bits=bits))
        shape = layers[-1].out_shape
    n = int(np.prod(shape))
    classes = int(parts[-1])
    head = OutputHead(rng.integers(0, 2, (classes, n)), rng.integers(-8, 9, classes))
    return FoldedNetwork(tuple(layers), head, InputScheme(scheme))


def _images(net: FoldedNetwork, data_dir) -> tuple:
    """(1,000 images of uint8, where they come from)."""
    if net.n_inputs == 784 and data_dir is not None:
        from bnncore.data import DataError, load_dataset
        try:
            return load_dataset("mnist", data_dir).test_images[:1000], "mnist test images 0-999"
        except (DataError, OSError, ValueError):
            pass
    return np.random.default_rng(7).integers(0, 256, (1000, net.n_inputs), dtype=np.uint8), "random pixels, seed 7"


def _digest(path: Path) -> str:
    data = path.read_bytes()
    if path.name == "rtl.json":     # the version of bnncore that wrote it is not the design
        info = json.loads(data)
        info.pop("generator", None)
        info.get("network", {}).pop("export", None)
        data = json.dumps(info, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()


def measure(name: str, out: Path, data_dir, synth: bool, log) -> dict:
    topology, scheme, pad, pools, options, synthesize = CORPUS[name]
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    net = random_network(topology, seed, scheme, pad, pools)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    net_dir = export(net, folder / "net", force=True)
    options = dict(options)
    vhdl = options.pop("vhdl", True)
    t0 = time.perf_counter()
    rtl = api.generate(net_dir, folder / "rtl", vhdl=vhdl, force=True, **options)
    files = {p.name: _digest(p) for p in sorted(rtl.iterdir()) if p.is_file() and not p.name.startswith(".")}
    images, source = _images(net, data_dir)
    gold = infer(net, net.input.bits(images), return_scores=True)
    golden = hashlib.sha256(np.ascontiguousarray(gold.classes, np.int64).tobytes()
                            + np.ascontiguousarray(gold.scores, np.int64).tobytes()).hexdigest()
    entry = {"topology": topology, "files": files, "golden": golden, "images": source}
    log(f"{name}: {len(files)} files in {time.perf_counter() - t0:.1f} s")
    if synth and synthesize:
        entry["synthesis"] = {}
        for device in SYNTH_DEVICES:
            r = api.synthesize(rtl, device, folder / f"synth-{device}", seed=1, bitstream=False, force=True)
            entry["synthesis"][device] = {"resources": r["resources"], "fmax_mhz": r["fmax_mhz"]}
            log(f"{name}: {device} {r['resources']}, {r['fmax_mhz']} MHz")
    return entry


def compare(want: dict, got: dict) -> list:
    """[(entry, what, recorded, now)] for every difference."""
    diffs = []
    for name in sorted(set(want) | set(got)):
        a, b = want.get(name), got.get(name)
        if a is None or b is None:
            diffs.append((name, "entry", "present" if a else "absent", "present" if b else "absent"))
            continue
        for f in sorted(set(a["files"]) | set(b["files"])):
            if a["files"].get(f) != b["files"].get(f):
                diffs.append((name, f, (a["files"].get(f) or "absent")[:12], (b["files"].get(f) or "absent")[:12]))
        if a["golden"] != b["golden"]:
            diffs.append((name, "golden outputs", a["golden"][:12], b["golden"][:12]))
        for device, r in (b.get("synthesis") or {}).items():
            old = (a.get("synthesis") or {}).get(device)
            if old is not None and old != r:
                diffs.append((name, f"synthesis {device}", json.dumps(old), json.dumps(r)))
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("record", "check"))
    ap.add_argument("--synth", action="store_true", help="synthesize the entries marked for it (minutes)")
    ap.add_argument("--data-dir", help="where mnist/ is (default: random images for every entry)")
    ap.add_argument("--only", help="comma-separated entry names (default: all)")
    ap.add_argument("--out", default="build/corpus", help="where the designs are built")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(CORPUS)
    unknown = [n for n in names if n not in CORPUS]
    if unknown:
        ap.error(f"unknown entries {unknown}; expected some of {', '.join(CORPUS)}")
    out = Path(args.out)
    got = {n: measure(n, out, args.data_dir, args.synth, lambda line: print(line, file=sys.stderr)) for n in names}
    recorded = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {}
    if args.action == "record":
        for n, entry in got.items():   # synthesis results are kept when this run did not synthesize
            if "synthesis" not in entry and "synthesis" in recorded.get(n, {}):
                entry["synthesis"] = recorded[n]["synthesis"]
        recorded.update(got)
        REFERENCE.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(got)} entries into {REFERENCE}")
        return 0
    want = {n: recorded[n] for n in names if n in recorded}
    missing = [n for n in names if n not in recorded]
    diffs = compare(want, {n: got[n] for n in names if n in recorded})
    print("| entry | what | recorded | now |\n| --- | --- | --- | --- |")
    for row in diffs:
        print("| " + " | ".join(map(str, row)) + " |")
    print(f"\n{len(want)} entries compared, {len(diffs)} differences"
          + (f"; not recorded: {', '.join(missing)}" if missing else ""))
    return 1 if diffs or missing else 0


if __name__ == "__main__":
    sys.exit(main())
