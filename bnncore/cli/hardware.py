"""The verbs of the hardware flow: rtl, sim, synth, sweep."""

from __future__ import annotations

import json
from pathlib import Path

from .. import defaults
from .options import (_FORCE_HELP, DATA_DIR_HELP, DATASET_NAMES, _add_speed_option, _banks, _bar, _count, _int_list,
                      _jobs, _megahertz, _out_depth, _parse_folds, _probability, _seed, _split_inputs, _verb, log)


def cmd_rtl(args):
    import time

    from ..api import generate
    t0 = time.perf_counter()
    out = generate(args.net, args.out, vhdl=not args.no_vhdl, log=log.info, fold=_parse_folds(args.fold) if args.fold
                   else None, target_cycles=args.target_cycles, device=args.device, banks=args.banks,
                   out_depth=args.out_depth, pipelined=not args.shallow, force=args.force)
    seconds = time.perf_counter() - t0
    from ..report import rtl_table
    print(rtl_table(json.loads((out / "rtl.json").read_text())).markdown())
    print(f"generated {out} in {seconds:.1f} s")
    if args.check:
        from ..hw.tools import check_vhdl, lint_verilog
        log.info("checking: verilator --lint-only -Wall%s ...", "" if args.no_vhdl else ", GHDL elaboration")
        lint_verilog(out)
        print("verilator --lint-only -Wall: clean (waivers for the generated core: bnn_lint.vlt)")
        if not args.no_vhdl:
            check_vhdl(out)
            print("ghdl: VHDL analysed and elaborated")



def cmd_sim(args):
    from ..exports import load
    from ..sim.runner import simulate
    net = load(args.net)
    dataset, bits, labels = _split_inputs(args, net)
    n = len(bits)
    out = Path(args.out or Path("build") / "sim" / args.sim)
    log.info("simulating %d %s %s images on %s in %s", n, dataset, args.split, args.sim, out)
    with _bar(n, f"{args.sim}", "image") as update:
        r = simulate(args.rtl, args.net, bits, sim=args.sim, build_dir=out, labels=labels,
                     gap=args.gap, stall=args.stall, seed=args.seed, waves=args.waves, swap_roms=args.swap_roms,
                     bench=args.bench, jobs=args.jobs, pgo=args.pgo, progress=update, log=log.info, force=args.force)
    from ..report import sim_table
    table = sim_table(r)
    table.note = f"results in {out / 'results.json'}; {table.note}"
    print(table.markdown())


def _print_synth(r: dict):
    from ..report import synth_table
    print(synth_table(r).markdown())


def cmd_synth(args):
    from ..hw.synth import synthesize
    if args.swap_weights:
        from ..hw.swap import swap_weights
        out = Path(args.out) if args.out else args.swap_weights
        r = swap_weights(args.rtl, args.swap_weights, rom_dir=args.roms, out=out, log=log.info, force=args.force)
        net = (r.get("network") or {}).get("export") or args.roms or args.rtl
        print(f"bitstream {out / r['files']['bitstream']} now holds the weights of {net}")
        return
    device = args.device or (None if args.board else defaults.DEVICE)
    out = Path(args.out or Path("build") / "synth" / (args.board or device))
    r = synthesize(args.rtl, device, out, freq=args.freq, seed=args.seed, rom_dir=args.roms, router=args.router,
                   bitstream=not args.no_bitstream, speed=args.speed, bram_outreg=not args.no_bram_outreg,
                   board=args.board, baud=args.baud, writable=args.writable, swappable=args.swappable,
                   global_reset=args.global_reset, force=args.force, log=log.info)
    _print_synth(r)
    if r["files"]["bitstream"]:
        print(f"bitstream {out / r['files']['bitstream']}; report {out / 'report.json'}; rerun by hand: {out / 'run.sh'}")
    if r.get("board"):
        b = r["board"]
        print(f"{b['name']}: {b['clock_mhz']:g} MHz, UART at {b['baud']:,} baud (at most "
              f"{b['link_bound_images_per_second']:,} images/s over it); then: bnn run --port PORT "
              f"--baud {b['baud']} NET" + (f"; bnn load --port PORT --baud {b['baud']} {args.rtl} NET"
                                           if b["writable"] else ""))


def cmd_sweep(args):
    from ..hw.sweep import sweep
    targets = _int_list("--targets", args.targets, 1, "positive cycles per image", 10**9)
    seeds = _int_list("--seeds", args.seeds, 0, "placement seeds (integers of at least 0)")
    out = Path(args.out or Path("build") / "sweep" / args.device)
    rows = sweep(args.net, args.device, targets, out, jobs=args.jobs, freq=args.freq, banks=args.banks,
                 speed=args.speed, seeds=seeds, ray=args.ray)
    from ..report import sweep_table
    print(sweep_table(rows).markdown())
    print(f"table {out / 'sweep.csv'}, {out / 'sweep.json'}; plot {out / 'sweep.png'}")


def add_rtl(sub):
    from ..hw.families import DEVICES
    p = _verb(sub, "rtl", help="generate the accelerator (Verilog, VHDL, ROM files, rtl.json)")
    p.add_argument("net", type=Path, help="an export directory from `bnn fold`")
    p.add_argument("-o", "--out", default="build/rtl", help="output directory (default: build/rtl)")
    p.add_argument("--fold", help="PE,SIMD per layer, ';'-separated, e.g. '16,49;16,64;16,64;10,64' "
                   "(default: chosen for --target-cycles)")
    p.add_argument("--target-cycles", type=_count(1),
                   help=f"cycles per image the automatic folding aims for (default: {defaults.MLP_TARGET_CYCLES} for an MLP; for a CNN "
                   "the fewest its layers allow: a window's word is at most one pixel's channels)")
    p.add_argument("--device", choices=tuple(DEVICES),
                   help="automatic folding: take the fewest block RAMs of this device first, then the "
                        "least logic (default: the least logic)")
    p.add_argument("--banks", type=_banks, default=defaults.BANKS,
                   help=f"image buffers between layers (default: {defaults.BANKS})")
    p.add_argument("--out-depth", type=_out_depth, default=defaults.OUT_DEPTH,
                   help=f"output FIFO depth (default: {defaults.OUT_DEPTH})")
    p.add_argument("--shallow", action="store_true",
                   help="4-stage engines: no register behind the block RAMs, one-cycle popcount "
                        "(fewer flip-flops, a lower clock; default: 9-stage pipelined engines)")
    p.add_argument("--no-vhdl", action="store_true", help="Verilog only")
    p.add_argument("--check", action="store_true", help="run verilator --lint-only -Wall and GHDL elaboration")
    p.add_argument("--force", action="store_true",
                   help="generate a design that will not fit --device, or whose size makes its generation "
                        "likely to run out of this machine's memory (default: refuse, with the estimate); "
                        "and " + _FORCE_HELP)
    p.set_defaults(func=cmd_rtl)


def add_sim(sub):
    p = _verb(sub, "sim", help="co-simulate the generated RTL with cocotb against the golden model")
    p.add_argument("rtl", type=Path, help="a directory from `bnn rtl`")
    p.add_argument("net", type=Path, help="the export directory the RTL was generated from (another one of the "
                   "same topology with --swap-roms)")
    from ..sim.simulators import names as simulators
    p.add_argument("--sim", choices=simulators(), default=defaults.SIMULATOR,
                   help="the simulator (GHDL runs the VHDL, the others the Verilog)")
    p.add_argument("--images", type=_count(0), default=0, help="first N images of the split (default: all)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="the test set, or the validation images held out of the training set")
    p.add_argument("--dataset", choices=DATASET_NAMES, help="default: the network's")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--gap", type=_probability, default=0.0, help="probability of an idle input cycle, in [0, 1)")
    p.add_argument("--stall", type=_probability, default=0.0,
                   help="probability of output backpressure per cycle, in [0, 1)")
    p.add_argument("--swap-roms", action="store_true",
                   help="NET is not the network the RTL was generated from: simulate NET's weights in this RTL, "
                        "written as ROM files for its folding and passed through the ROM file parameters "
                        "(same topology and folding; default: refuse a different network)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the random idle and stall cycles")
    p.add_argument("--waves", action="store_true", help="write a waveform (VCD/FST/GHW) in the build directory")
    p.add_argument("--bench", choices=("cocotb", "native"), default=defaults.BENCH,
                   help="cocotb's bench (every simulator), or a C++ driver compiled into the Verilator model: the "
                        "same checks against the golden model, about three times faster, Verilator only, no "
                        "--waves (default: cocotb)")
    p.add_argument("--jobs", type=_jobs, default=1,
                   help="with --bench native: split the images into this many shards, simulated at once, each from "
                        "reset (default: 1)")
    p.add_argument("--pgo", action="store_true",
                   help="with --bench native: compile it profile-guided (built twice, with a profile of the first "
                        "images between): about a quarter faster to run, twice as long to build")
    p.add_argument("-o", "--out", help="build directory (default: build/sim/<simulator>)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(func=cmd_sim)


def add_synth(sub):
    from ..hw.families import DEVICES
    p = _verb(sub, "synth", help="synthesise, place and route the generated RTL for an FPGA (Yosys, nextpnr): "
                       "resources, Fmax, throughput, bitstream")
    p.add_argument("rtl", type=Path, help="a directory from `bnn rtl`")
    p.add_argument("--device", choices=tuple(DEVICES), help=f"the FPGA (default: {defaults.DEVICE}, or the board's)")
    from ..hw.boards import BOARDS
    p.add_argument("--board", choices=tuple(BOARDS),
                   help="build for a board: the accelerator behind a UART on its pins, clocked by its oscillator "
                        "(docs/link.md); without it the top is a byte stream on placeholder pins")
    p.add_argument("--baud", type=_count(1),
                   help="with --board: the UART's rate (default: the fastest standard rate the clock gives)")
    p.add_argument("--writable", action="store_true",
                   help="with --board: the weight and threshold memories can be written over the link "
                        "(bnn load), so that another network of the same topology and folding runs without "
                        "a new bitstream")
    p.add_argument("--freq", type=_megahertz, help="clock target in MHz (default: 25 on iCE40, 100 on ECP5); "
                   "with --board, the board's oscillator unless given (another frequency through a PLL); "
                   "missing it is reported, not an error")
    p.add_argument("--seed", type=_seed, default=1, help="nextpnr placement seed")
    p.add_argument("--router", choices=("router1", "router2"),
                   help="nextpnr router (default: router2 on ECP5, where router1 stalls on large designs; "
                        "router1 on iCE40)")
    _add_speed_option(p)
    p.add_argument("--roms", type=Path, help="directory of the ROM files to build in (default: the RTL's)")
    p.add_argument("--no-bitstream", action="store_true", help="stop after place and route")
    p.add_argument("--swappable", action="store_true",
                   help="every ROM in block RAM, placed with placeholder contents, so that other weights "
                        "of the same design go into the bitstream later with --swap-weights (costs block RAM "
                        "for ROMs that would otherwise be logic)")
    p.add_argument("--swap-weights", type=Path, metavar="BUILT",
                   help="no synthesis: put the ROM files of RTL (or --roms) into the bitstream of BUILT, a "
                        "--swappable build of the same design (every property its logic fixes; one that differs is "
                        "named), in seconds; written into -o, a new folder, or BUILT itself (the default)")
    p.add_argument("--no-bram-outreg", action="store_true",
                   help="ECP5: leave the block RAMs' read data in flip-flops outside them (by default those "
                        "flip-flops become the block RAMs' output registers, which shortens the paths from "
                        "the block RAMs)")
    p.add_argument("--global-reset", action="store_true",
                   help="ECP5: the registered reset reaches the design through a global buffer (DCCA), not the "
                        "fabric, where it can be the critical path of a large design; nextpnr can fail to route "
                        "the buffer's input (try another --seed)")
    p.add_argument("-o", "--out", help="output directory (default: build/synth/<board or device>)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(func=cmd_synth)


def add_sweep(sub):
    from ..hw.families import DEVICES
    p = _verb(sub, "sweep", help="synthesise a network at several foldings in parallel: table and "
                       "plot of LUTs and block RAMs against throughput, with the Pareto front")
    p.add_argument("net", type=Path, help="an export directory from `bnn fold`")
    p.add_argument("--device", choices=tuple(DEVICES), default=defaults.DEVICE, help="the FPGA")
    p.add_argument("--targets", default=",".join(map(str, defaults.SWEEP_TARGETS)),
                   help=f"cycles per image to fold for, comma-separated (default: "
                        f"{','.join(map(str, defaults.SWEEP_TARGETS))})")
    p.add_argument("--seeds", default="1",
                   help="nextpnr placement seeds, comma-separated: each point is placed and routed with each, "
                        "and reported at the median seed's Fmax with the range over all")
    p.add_argument("--jobs", type=_jobs, help="parallel runs (default: the number of cores)")
    p.add_argument("--ray", metavar="ADDRESS", help="run each folding as a task of the Ray cluster at ADDRESS (host:port, or auto: the cluster this machine "
                        "belongs to), with its CPU and memory request; needs bnncore[cluster] and the paths on a file "
                        "system every node mounts (default: local processes)")
    p.add_argument("--freq", type=_megahertz, help="clock target in MHz (default: per family)")
    p.add_argument("--banks", type=_banks, default=defaults.BANKS,
                   help=f"image buffers between layers (default: {defaults.BANKS})")
    _add_speed_option(p)
    p.add_argument("-o", "--out", help="output directory (default: build/sweep/<device>)")
    p.set_defaults(func=cmd_sweep)
