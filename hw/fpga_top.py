"""The board-level top of a synthesis without a board: the accelerator behind a byte-wide input
stream and a class-index output, so that any network fits a package's pins, and its
placeholder constraints (the family's file, nextpnr placing the ports)."""

from __future__ import annotations

import math

from bnncore import __version__

from .design import RtlDesign
from .families import Device

#: Bits of the board-level input stream (bytes of an image beat, LSB first).
IO_BITS = 8


#: Bits of the board top's beat register per registered copy of its shift enable.
BEAT_SELECT_BITS = 64


def fpga_top_verilog(rtl, reset_buffer: str = "") -> str:
    """``bnn_fpga``: bnn_top behind a byte-wide input stream and a class-index output.

    Each beat of ``in_width`` bits is sent as ceil(in_width / 8) bytes, least significant byte
    first (the last byte's high bits are ignored), and takes two cycles more than its bytes;
    the output is the class index. The pins
    are a placeholder: no board is assumed (see the constraints file written beside it).
    ``reset_buffer``: Verilog that drives the core's reset ``rst_g`` from the registered reset
    pin ``rst_q`` through a global buffer (``Device.reset_buffer``; default: a wire).
    """
    rtl = RtlDesign.from_json(rtl)
    width, cbits = rtl.in_width, rtl.class_bits
    nbytes = math.ceil(width / IO_BITS)
    bits = nbytes * IO_BITS
    cnt = max(1, (nbytes - 1).bit_length())
    files = "".join(f'    parameter {m.parameter} = "{m.file}",\n' for m in rtl.memories.values())
    shifted = f"{{byte_q, beat[{bits - 1}:{IO_BITS}]}}" if nbytes > 1 else "byte_q"
    overrides = ", ".join(f'.{m.parameter}({m.parameter})' for m in rtl.memories.values())
    # the shift of the beat register takes a cycle after the byte, under one registered copy
    # of its enable per BEAT_SELECT_BITS bits: the enable decoded from in_valid and `full` must
    # not reach every flip-flop of a wide beat in one route
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
    wire [{rtl.out_width - 1}:0] result;
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


def _pins(device: Device, rtl) -> tuple:
    """(file name, text) of a placeholder constraints file: the ports, no locations but what
    the family needs (the ECP5 clock's)."""
    cbits = RtlDesign.from_json(rtl).class_bits
    ports = ["clk", "rst", *[f"in_data[{i}]" for i in range(IO_BITS)], "in_valid", "in_ready",
             *[f"out_class[{i}]" for i in range(cbits)], "out_valid", "out_ready"]
    fam = device.fpga_family
    return f"bnn_fpga.{fam.constraints}", fam.placeholder_pins(device, ports)
