"""The verbs that talk to a board over its serial link: run, load."""

from __future__ import annotations

from pathlib import Path

from .. import defaults
from .options import DATA_DIR_HELP, _bar, _count, _dataset, _seconds, _split_inputs, _verb


def cmd_load(args):
    import time

    from ..exports import load
    from ..hw.design import load_rtl
    from ..link import Link, open_serial
    info = load_rtl(args.rtl, verify=False)
    net = load(args.net)
    t = open_serial(args.port, args.baud)
    link = Link(t, timeout=args.timeout)
    total = sum(m.depth for m in info.memories.values())
    t0 = time.perf_counter()
    with _bar(total, "load", "word") as update:
        words = link.load(net, info, progress=update)
    dev = link.info()
    print(f"loaded {net.spec} ({dev.network}) into the board: {words:,} words in {time.perf_counter() - t0:.1f} s; "
          f"bnn run --port {args.port} --baud {args.baud} {args.net} checks it")


def cmd_run(args):
    from ..exports import load
    from ..link import Link, open_serial
    net = load(args.net)
    _, values, labels = _split_inputs(args, net)
    t = open_serial(args.port, args.baud)
    r = run_on_board(Link(t, timeout=args.timeout), net, values, labels, args.net, progress_bar=_bar)
    print(r["table"])


def run_on_board(link, net, values, labels, net_name, progress_bar=None) -> dict:
    """Classify ``values`` on the board behind ``link``, compare with the golden model; the
    measurements and a table (``bnn run``)."""
    import time as _time

    import numpy as np

    from ..golden import infer
    from ..link import LinkError
    dev = link.info()
    if dev.network == "0" * 16:      # a writable design while it loads, or with SPRAM before it is loaded
        raise LinkError(f"the board ({dev.spec}) holds no network yet: load {net_name} into it first "
                        "(bnn load RTL NET, RTL the folder its bitstream was built from)")
    if dev.network != net.digest()[:16]:
        raise LinkError(f"the board holds network {dev.network} ({dev.spec}), not {net_name}'s "
                        f"{net.digest()[:16]} ({net.spec}): build the bitstream for it (bnn rtl, bnn synth --board)")
    t0 = _time.perf_counter()
    if progress_bar:
        with progress_bar(len(values), "board", "image") as update:
            classes, scores = link.classify(values, progress=update)
    else:
        classes, scores = link.classify(values)
    seconds = _time.perf_counter() - t0
    gold = infer(net, values, return_layers=True)
    same = (classes == gold.classes) & np.all(scores == gold.scores, axis=1)
    link_rate = 1 / dev.seconds_per_image()
    acc_rate = dev.accelerator_images_per_second()
    r = {"images": len(values), "accuracy": float(np.mean(classes == labels)), "golden_agree": int(same.sum()),
         "seconds": seconds, "images_per_second": len(values) / seconds, "link_bound": link_rate,
         "accelerator_bound": acc_rate, "baud": dev.baud, "clock_hz": dev.clock_hz, "spec": dev.spec}
    bound = "the link" if link_rate < acc_rate else "the accelerator"
    r["table"] = "\n".join([
        "| images | accuracy | agree with the golden model | images/s | link bound | accelerator bound |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {len(values):,} | {100 * r['accuracy']:.2f}% | {r['golden_agree']:,} of {len(values):,} | "
        f"{r['images_per_second']:,.0f} | {link_rate:,.0f} | {acc_rate:,.0f} |",
        "",
        f"{dev.spec} at {dev.clock_hz / 1e6:g} MHz, {dev.baud:,} baud: an image's frame takes "
        f"{1e6 * dev.seconds_per_image():.0f} µs on the wire; {bound} limits the rate."])
    if r["golden_agree"] != len(values):
        first = int(np.flatnonzero(~same)[0])
        raise LinkError(f"{len(values) - r['golden_agree']} of {len(values)} images differ from the golden model, "
                        f"the first image {first}: class {classes[first]}, scores {scores[first].tolist()}; "
                        f"the golden model's class {gold.classes[first]}, scores {gold.scores[first].tolist()}\n"
                        + r["table"])
    return r


def add_run(sub):
    p = _verb(sub, "run", help="classify test images on a board over its serial link (a bitstream of "
                       "`bnn synth --board`): accuracy, agreement with the golden model, images/s")
    p.add_argument("net", type=Path, help="the export directory of the network the bitstream holds")
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB1 (iCEBreaker)")
    p.add_argument("--baud", type=_count(1), default=defaults.BAUD,
                   help="the rate the bitstream was built for (bnn synth --board prints it)")
    p.add_argument("--dataset", type=_dataset, metavar="DATASET", help="default: the network's (its manifest)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which images")
    p.add_argument("--images", type=_count(1), help="how many (default: all of the split)")
    p.add_argument("--timeout", type=_seconds, default=defaults.LINK_TIMEOUT_S,
                   help=f"seconds an answer may take, however many stray bytes come first (default: {defaults.LINK_TIMEOUT_S:g})")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.set_defaults(func=cmd_run)


def add_load(sub):
    p = _verb(sub, "load", help="write a network's weights and thresholds into a running board over its serial "
                       "link (a bitstream of `bnn synth --board --writable` for the same topology and folding)")
    p.add_argument("rtl", type=Path, help="the `bnn rtl` directory the board's bitstream was built from")
    p.add_argument("net", type=Path, help="the export directory of the network to load")
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB1 (iCEBreaker)")
    p.add_argument("--baud", type=_count(1), default=defaults.BAUD,
                   help="the rate the bitstream was built for (bnn synth --board prints it)")
    p.add_argument("--timeout", type=_seconds, default=defaults.LINK_TIMEOUT_S,
                   help=f"seconds an answer may take, however many stray bytes come first (default: {defaults.LINK_TIMEOUT_S:g})")
    p.set_defaults(func=cmd_load)
