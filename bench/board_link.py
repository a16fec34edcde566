"""What the serial link costs on each board: a design synthesized with `bnn synth --board`,
read-only and writable, beside the same design's placeholder top (no link).

    python bench/board_link.py --rtl build/rtl [--boards icebreaker ulx3s-25f] [--out build/bench/boards]

Prints LUTs, block RAMs, Fmax against the board's clock, and the link's bound in images/s.
Nothing is timed as a test.
"""

import argparse
from pathlib import Path

from bnncore.hw.boards import BOARDS
from bnncore.hw.synth import synthesize


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtl", required=True, help="a directory from `bnn rtl`")
    ap.add_argument("--boards", nargs="+", default=["icebreaker", "ulx3s-25f"], choices=tuple(BOARDS))
    ap.add_argument("--out", default="build/bench/boards")
    args = ap.parse_args()
    rows = []
    for name in args.boards:
        board = BOARDS[name]
        plain = synthesize(args.rtl, board.device, Path(args.out) / f"{name}-plain", freq=board.clock_hz / 1e6,
                           bitstream=False, log=lambda s: None)
        rows.append((name, "no link (placeholder top)", plain, None))
        for writable in (False, True):
            r = synthesize(args.rtl, None, Path(args.out) / f"{name}-{'writable' if writable else 'rom'}",
                           board=name, writable=writable, log=lambda s: None)
            rows.append((name, "link, writable" if writable else "link, read-only", r, r["board"]))
    print("| board | top | LUTs | block RAMs | Fmax (MHz) | clock (MHz) | link bound (images/s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, top, r, b in rows:
        print(f"| {name} | {top} | {r['resources']['luts']:,} | {r['resources']['brams']} | {r['fmax_mhz']:.1f} | "
              f"{r['freq_target_mhz']:g} | {b['link_bound_images_per_second']:,.0f} |" if b else
              f"| {name} | {top} | {r['resources']['luts']:,} | {r['resources']['brams']} | {r['fmax_mhz']:.1f} | "
              f"{r['freq_target_mhz']:g} | - |")


if __name__ == "__main__":
    main()
