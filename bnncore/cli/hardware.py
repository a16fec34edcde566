"""The verbs of the hardware flow: rtl, sim, synth, sweep."""

from __future__ import annotations

import json
from pathlib import Path

from .. import defaults, settings
from .options import _FORCE_HELP, DATA_DIR_HELP, _bar, _count, _dataset, _split_inputs, _verb, add_stage, log


def cmd_rtl(args):
    import time

    from ..api import generate
    from ..hw.estimate import estimate_note
    t0 = time.perf_counter()
    out = generate(args.net, args.out, log=log.info, force=args.force, **settings.RTL.from_args(args))
    seconds = time.perf_counter() - t0
    from ..report import layer_resources_table, rtl_table
    info = json.loads((out / "rtl.json").read_text())
    print(rtl_table(info).markdown())
    if info.get("estimate"):
        print(layer_resources_table(info["estimate"], estimate_note(info["estimate"])).markdown())
    from ..hw.design import RtlDesign
    from ..hw.memories import kind_of, loaded, placed
    plan = RtlDesign.from_json(info).plan
    if placed(plan):
        loaded = loaded(plan)
        print("weights placed: " + ", ".join(f"{n} in {kind_of(k).title}" for n, k in placed(plan).items())
              + (f"; the bitstream cannot initialise {', '.join(loaded)}: build it for a board (bnn synth --board "
                 "NAME, writable) and load the network after each power-up (bnn load)" if loaded else ""))
    print(f"generated {out} in {seconds:.1f} s")
    if args.check:
        from ..hw.tools import check_vhdl, lint_verilog
        log.info("checking: verilator --lint-only -Wall%s ...", ", GHDL elaboration" if args.vhdl else "")
        lint_verilog(out)
        print("verilator --lint-only -Wall: clean (waivers for the generated core: bnn_lint.vlt)")
        if args.vhdl:
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
        r = simulate(args.rtl, args.net, bits, build_dir=out, labels=labels, progress=update, log=log.info,
                     force=args.force, **settings.SIM.from_args(args))
    from ..report import sim_table
    table = sim_table(r)
    table.note = f"results in {out / 'results.json'}; {table.note}"
    print(table.markdown())


def _print_synth(r: dict):
    from ..report import layer_resources_table, synth_table
    print(synth_table(r).markdown())
    layers = layer_resources_table(r)
    if layers:
        print(layers.markdown())


def cmd_synth(args):
    from ..hw.synth import synthesize
    if args.swap_weights:
        from ..hw.swap import swap_weights
        out = Path(args.out) if args.out else args.swap_weights
        r = swap_weights(args.rtl, args.swap_weights, rom_dir=args.rom_dir, out=out, log=log.info, force=args.force)
        net = (r.get("network") or {}).get("export") or args.rom_dir or args.rtl
        print(f"bitstream {out / r['files']['bitstream']} now holds the weights of {net}")
        return
    device = args.device or (None if args.board else defaults.DEVICE)
    out = Path(args.out or Path("build") / "synth" / (args.board or device))
    r = synthesize(args.rtl, device, out, force=args.force, log=log.info, **settings.SYNTH.from_args(args))
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
    out = Path(args.out or Path("build") / "sweep" / args.device)
    options = settings.SWEEP.from_args(args)
    rows = sweep(args.net, args.device, options.pop("targets"), out, **options)
    from ..report import sweep_table
    print(sweep_table(rows).markdown())
    print(f"table {out / 'sweep.csv'}, {out / 'sweep.json'}; plot {out / 'sweep.png'}")


def add_rtl(sub):
    p = _verb(sub, "rtl", help="generate the accelerator (Verilog, VHDL, ROM files, rtl.json)")
    p.add_argument("net", type=Path, help="an export directory from `bnn fold`")
    p.add_argument("-o", "--out", default="build/rtl", help="output directory (default: build/rtl)")
    add_stage(p, settings.RTL)
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
    p.add_argument("--images", type=_count(0), default=0, help="first N images of the split (default: all)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="the test set, or the validation images held out of the training set")
    p.add_argument("--dataset", type=_dataset, metavar="DATASET", help="default: the network's")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    add_stage(p, settings.SIM)
    p.add_argument("-o", "--out", help="build directory (default: build/sim/<simulator>)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(func=cmd_sim)


def add_synth(sub):
    from ..hw.families import DEVICES
    p = _verb(sub, "synth", help="synthesise, place and route the generated RTL for an FPGA (Yosys, nextpnr): "
                       "resources, Fmax, throughput, bitstream")
    p.add_argument("rtl", type=Path, help="a directory from `bnn rtl`")
    p.add_argument("--device", choices=tuple(DEVICES), help=f"the FPGA (default: {defaults.DEVICE}, or the board's)")
    add_stage(p, settings.SYNTH)
    p.add_argument("--swap-weights", type=Path, metavar="BUILT",
                   help="no synthesis: put the ROM files of RTL (or --roms) into the bitstream of BUILT, a "
                        "--swappable build of the same design (every property its logic fixes; one that differs is "
                        "named), in seconds; written into -o, a new folder, or BUILT itself (the default)")
    p.add_argument("-o", "--out", help="output directory (default: build/synth/<board or device>)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(func=cmd_synth)


def add_sweep(sub):
    from ..hw.families import DEVICES
    p = _verb(sub, "sweep", help="synthesise a network at several foldings in parallel: table and "
                       "plot of LUTs and block RAMs against throughput, with the Pareto front")
    p.add_argument("net", type=Path, help="an export directory from `bnn fold`")
    p.add_argument("--device", choices=tuple(DEVICES), default=defaults.DEVICE, help="the FPGA")
    add_stage(p, settings.SWEEP)
    p.add_argument("-o", "--out", help="output directory (default: build/sweep/<device>)")
    p.set_defaults(func=cmd_sweep)
