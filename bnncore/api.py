"""The flow as Python functions, for notebooks and scripts: what the ``bnn`` commands do, with
the same defaults, returning the same results (the dicts the CLI's tables are made from).

    import bnncore
    result = bnncore.train(bnncore.TrainConfig(topology="784-64-10", epochs=1), "build/run")
    net = bnncore.fold("build/run/best.pt")                      # the input scheme from the checkpoint
    bnncore.export(net, "build/net")
    rtl = bnncore.generate(net, "build/rtl", target_cycles=256)
    r = bnncore.simulate(rtl, net, images[:1000], labels=labels[:1000], sim="verilator")
    s = bnncore.synthesize(rtl, "up5k")

Every function that takes a network takes a ``FoldedNetwork`` or an export directory.
``import bnncore`` imports none of this until it is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import defaults
from .errors import UsageError, VerificationError, option
from .network import FoldedNetwork

__all__ = ["fold", "import_qonnx", "plan", "generate", "simulate", "synthesize", "sweep", "network"]


def network(net) -> FoldedNetwork:
    """A ``FoldedNetwork``, or the one an export directory holds."""
    if isinstance(net, FoldedNetwork):
        return net
    from .exports import load
    return load(net)


def fold(source, input=None, *, verify: bool = True, verify_on=None, data_dir=None) -> FoldedNetwork:
    """Fold a checkpoint (a path from ``train``: its input scheme comes with it) or a
    ``BinaryNet`` (then ``input``, the ``InputBinarization`` it was trained with, is
    required), and check the folded network against torch exactly, as ``bnn fold`` does: on
    ``verify_on`` (``(images, labels)``), by default a checkpoint's test set (its dataset, found
    in ``data_dir`` as ``bnn fold --data-dir`` finds it). A difference raises
    ``VerificationError``; ``verify=False`` folds without the check."""
    from .folding import fold as fold_model
    from .folding import verify as check_fold
    if isinstance(source, (str, Path)):
        from .training import load_checkpoint
        model, cfg, ckpt = load_checkpoint(source)
        if input is not None and input != cfg.binarization():
            raise UsageError(f"{source}: trained with {cfg.binarization()}, not {input}")
        input = cfg.binarization()
    else:
        model = source
        if input is None:
            raise UsageError("fold(model): give input=, the InputBinarization the model was trained with "
                             "(a checkpoint path carries it)")
    net = fold_model(model, input)
    if verify and verify_on is None:
        if not isinstance(source, (str, Path)):
            raise UsageError("fold(model) checks the folded network against torch, as bnn fold does: give "
                             "verify_on=(images, labels), or verify=False")
        from .data import load_trained_on
        ds = load_trained_on(cfg, ckpt, data_dir, str(source))
        verify_on = (ds.test_images, ds.test_labels)
    if verify:
        images, labels = verify_on
        check = check_fold(net, model, images, labels)
        if check["class_mismatches"] or check["hidden_bit_mismatches"]:
            raise VerificationError(f"the folded network disagrees with torch: {check}")
    return net


def import_qonnx(path, *, pixel_scale: float | None = None, pixel_offset: float | None = None,
                 verify_on=None) -> FoldedNetwork:
    """``bnn import MODEL.onnx``: fold a Brevitas/QONNX W1A1 model (bnncore.qonnx_import) whose
    float input is ``pixel * pixel_scale + pixel_offset`` (default: what the model records, as
    ``bnn export --qonnx`` does; the pixels for a UINT8 input; else ``pixel / 255``). ``verify_on``: ``(images, labels)``
    (uint8, flat in (y, x, channel) order) to check the folded network against qonnx's executor
    on the model, every class and hidden bit; a difference raises ``RuntimeError``.

        net = bnncore.import_qonnx("sfc.onnx", verify_on=(ds.test_images, ds.test_labels))
    """
    from .qonnx_import import import_qonnx as read
    from .qonnx_import import verify_qonnx
    imported = read(path, pixel_scale=pixel_scale, pixel_offset=pixel_offset)
    if verify_on is not None:
        images, labels = verify_on
        check = verify_qonnx(imported, images, labels)
        if check["class_mismatches"] or check["hidden_bit_mismatches"]:
            raise VerificationError(f"the folded network disagrees with qonnx's executor on {path}: {check}")
    return imported.net


def plan(net, *, force: bool = False, **options) -> tuple:
    """The folding plan ``bnn rtl`` builds for ``net``: ``fold`` (PE, SIMD) per layer, else the
    automatic folding for ``target_cycles`` (the fewest block RAMs of ``device`` first, when
    given; default: ``defaults.MLP_TARGET_CYCLES`` for an MLP, for a CNN the fewest cycles its
    layers allow, ``fastest_cycles``). ``options``: ``bnncore.settings.PLAN``'s (``fold``,
    ``target_cycles``, ``device``, ``memory``, ``banks``, ``out_depth``, ``pipelined``), as
    ``bnn rtl``'s; ``memory`` where the weights go (hw/memories.py). Returns ``(plan,
    warnings)``; a plan that cannot be built raises ValueError (``force`` turns those refusals
    into warnings)."""
    from .settings import PLAN
    o = PLAN.resolve(options, "bnncore.plan")
    fold, target_cycles, device = o["fold"], o["target_cycles"], o["device"]
    from .hw.autofold import auto_fold, fastest_cycles, fit_findings
    from .hw.estimate import crowded, estimate
    from .hw.generate import check_buildable, device_findings
    from .hw.memories import AUTO, auto_place, kind_of, parse_memory, place_weights
    from .hw.plan import bias_bits_for, plan_for
    from .hw.synth import DEVICES
    net = network(net)
    if target_cycles is None:
        target_cycles = defaults.MLP_TARGET_CYCLES if all(l.kind == "dense" for l in net.layers) \
            else fastest_cycles(net)
    common = dict(banks=o["banks"], out_depth=o["out_depth"], pipelined=o["pipelined"], bias_bits=bias_bits_for(net))
    dev = DEVICES[device] if device else None
    memory = parse_memory(o["memory"]) if isinstance(o["memory"], str) else o["memory"]
    if memory is None:
        memory = AUTO if dev is not None else {}
    elif memory == AUTO and dev is None:
        raise UsageError(f"{option('memory', 'auto')} places weights to fit a device: give {option('device', 'NAME')}")
    elif memory != AUTO:
        for kind in memory.values():
            kind_of(kind, dev)          # UsageError: a kind the device's family does not have

    blocks = {"rom_blocks": dev.rom_blocks, "buffer_blocks": dev.buffer_blocks} if dev else {}

    def placed(q, cycles=None):     # the plan with its weights where --memory puts them
        if memory == AUTO:
            refold = None if cycles is None else \
                (lambda where: auto_fold(net, cycles, **common, **blocks, weight_memories=where))
            return auto_place(q, dev, lambda r: not device_findings(r, dev)[0], refold,
                              lambda r: not crowded(estimate(r, dev), dev))
        return place_weights(q, memory) if memory else q
    try:   # parameter errors: TypeError, as Amaranth components raise them
        if fold is not None:
            p = placed(plan_for(net, [tuple(f) for f in fold], **common))
        elif memory and memory != AUTO:
            p = place_weights(auto_fold(net, target_cycles, **common, **blocks, weight_memories=memory), memory)
        else:
            p = placed(auto_fold(net, target_cycles, **common, **blocks), target_cycles)
    except TypeError as e:
        raise UsageError(f"folding: {e}") from None
    warnings = []
    if fold is None and dev is not None:   # the cost model's check, naming the fastest folding that fits
        warnings += fit_findings(net, p, target_cycles, dev, force=force, place=placed, **common)
    warnings += check_buildable(p, dev, force=force, checked=fold is None)
    return p, warnings


def generate(net, out_dir, *, log=None, force: bool = False, **options) -> Path:
    """``bnn rtl``: the accelerator of ``net`` in ``out_dir``; return the directory.
    ``options``: ``bnncore.settings.RTL``'s (those of :func:`plan`, and ``vhdl``); the plan's
    warnings go to the ``bnncore`` logger. ``log`` gets a line per generation step."""
    import logging

    from .settings import RTL
    options = RTL.resolve(options, "bnncore.generate")
    vhdl = options.pop("vhdl")
    source = None if isinstance(net, FoldedNetwork) else str(net)
    net = network(net)
    p, warnings = plan(net, force=force, **options)
    for w in warnings:
        logging.getLogger("bnncore").warning("warning: %s", w)
    from .hw.estimate import estimate
    from .hw.generate import generate as write_rtl
    from .hw.synth import DEVICES
    est = estimate(p, DEVICES[options["device"]]) if options.get("device") else None
    return write_rtl(net, p, out_dir, vhdl=vhdl, source=source, log=log, force=force,
                     estimate=est and {"device": options["device"], **est})


def simulate(rtl_dir, net, images, *, labels=None, build_dir=None, progress=None, log=None, diagnose: bool = True,
             force: bool = False, **options) -> dict:
    """``bnn sim``: ``images`` (N, pixels) of uint8 through the RTL against the golden model;
    return the measurements (``results.json``). A ``FoldedNetwork`` is exported into the build
    directory first (the bench reads an export). ``options``: ``bnncore.settings.SIM``'s
    (``sim``, ``gap``, ``stall``, ``swap_roms``, ``seed``, ``waves``, ``bench``, ``jobs``,
    ``pgo``), as ``bnn sim``'s. ``progress(done, total)`` and ``log(line)`` follow the run;
    ``diagnose``: on a mismatch, find the first unit that differs (hw/diagnose.py)."""
    from .settings import SIM
    from .sim.runner import simulate as run
    options = SIM.resolve(options, "bnncore.simulate")
    build = Path(build_dir or Path("build") / "sim" / options["sim"])
    if isinstance(net, FoldedNetwork):
        from .exports import export
        from .fileio import workspace
        with workspace(build, "sim"):    # the export goes into the simulation's folder
            pass
        net_dir = export(net, build / "net")
        obj = net
    else:
        net_dir, obj = Path(net), network(net)
    bits = obj.input.bits(np.asarray(images))
    return run(rtl_dir, net_dir, bits, build_dir=build, labels=None if labels is None else np.asarray(labels),
               progress=progress, log=log, diagnose=diagnose, force=force, **options)


def synthesize(rtl_dir, device: str = defaults.DEVICE, out_dir=None, *, log=None, force: bool = False,
               **options) -> dict:
    """``bnn synth``: synthesis, place and route (and a bitstream) of ``rtl_dir`` for
    ``device``; return the report (``report.json``). ``options``: ``bnncore.settings.SYNTH``'s
    (``board``, ``baud``, ``writable``, ``freq``, ``seed``, ``router``, ``speed``, ``rom_dir``,
    ``bitstream``, ``swappable``, ``bram_outreg``, ``global_reset``), as ``bnn synth``'s; new
    weights into a swappable build: ``bnncore.hw.swap.swap_weights``."""
    from .hw.synth import synthesize as run
    from .settings import SYNTH
    options = SYNTH.resolve(options, "bnncore.synthesize")
    return run(rtl_dir, device, Path(out_dir or Path("build") / "synth" / device), log=log or (lambda line: None),
               force=force, **options)


def sweep(net, device: str = defaults.DEVICE, targets=defaults.SWEEP_TARGETS, out_dir=None, *, progress=False,
          **options) -> list:
    """``bnn sweep``: ``net`` at each target of cycles per image through synthesis; return the
    rows (``sweep.json``). A ``FoldedNetwork`` is exported into the output folder first.
    ``options``: ``bnncore.settings.SWEEP``'s (``seeds``, ``jobs``, ``ray``, ``freq``, ``banks``,
    ``speed``), as ``bnn sweep``'s."""
    from .hw.sweep import sweep as run
    from .settings import SWEEP
    options = SWEEP.resolve(dict(options, targets=targets), "bnncore.sweep")
    targets = options.pop("targets")
    out = Path(out_dir or Path("build") / "sweep" / device)
    if isinstance(net, FoldedNetwork):
        from .exports import export
        net = export(net, out.parent / f"{out.name}-net")
    return run(net, device, targets, out, progress=progress, **options)
