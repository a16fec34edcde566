"""A minimal file-driven Icarus Verilog run of the generated RTL (no cocotb).

Feeds the image beats back to back, output always ready, and reads back every result; used
by the generator's tests to prove the ROM files are read at elaboration (cocotb benches with
gaps, backpressure and every simulator live in sim/).
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

TB = """\
`timescale 1ns/1ps
module tb;
  parameter IN_FILE = "in.mem";
  parameter OUT_FILE = "out.txt";
  parameter BEATS = 1;
  parameter IMAGES = 1;
  reg clk = 0, rst = 1;
  reg [{iw}:0] beats [0:BEATS-1];
  reg [{iw}:0] payload = 0;
  reg valid = 0;
  wire ready, o_valid;
  wire [{ow}:0] o_payload;
  integer i = 0, n = 0, f, cycles = 0;
  bnn_top {params} dut (.clk(clk), .rst(rst), .i_stream__payload(payload), .i_stream__valid(valid),
    .i_stream__ready(ready), .o_stream__payload(o_payload), .o_stream__valid(o_valid), .o_stream__ready(1'b1));
  always #5 clk = ~clk;
  initial begin
    $readmemb(IN_FILE, beats);
    f = $fopen(OUT_FILE, "w");
    @(posedge clk); #1 rst = 0;
  end
  always @(posedge clk) if (!rst) begin
    cycles <= cycles + 1;
    if (valid && ready) i = i + 1;
    if (o_valid) begin $fdisplay(f, "%b", o_payload); n = n + 1; end
    if (n == IMAGES || cycles > 100000 * IMAGES) begin $fclose(f); $finish; end
  end
  always @(negedge clk) begin
    valid = !rst && i < BEATS;
    if (i < BEATS) payload = beats[i];
  end
endmodule
"""


def run_icarus(rtl_dir, bits: np.ndarray, work, *, overrides: dict | None = None):
    """Simulate bnn_top from ``rtl_dir`` on image bits (N, n_in); return (classes, scores)."""
    rtl_dir, work = Path(rtl_dir), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    info = json.loads((rtl_dir / "rtl.json").read_text())
    inp, out = info["ports"]["input"], info["ports"]["output"]
    width, nb = inp["width"], inp["beats_per_image"]
    padded = np.zeros((len(bits), width * nb), np.uint8)
    padded[:, :bits.shape[1]] = bits
    lines = ["".join(str(b) for b in reversed(padded[i, k * width:(k + 1) * width]))
             for i in range(len(bits)) for k in range(nb)]
    (work / "in.mem").write_text("\n".join(lines) + "\n")
    params = ", ".join(f'.{k}("{v}")' for k, v in (overrides or {}).items())
    (work / "tb.v").write_text(TB.format(iw=width - 1, ow=out["width"] - 1,
                                         params=f"#({params})" if params else ""))
    srcs = [str(rtl_dir / f) for f in info["files"]["verilog"]]
    subprocess.run([shutil.which("iverilog"), "-g2012", "-s", "tb", "-o", str(work / "sim.vvp"),
                    f"-Ptb.BEATS={len(lines)}", f"-Ptb.IMAGES={len(bits)}",
                    f'-Ptb.IN_FILE="{work / "in.mem"}"', f'-Ptb.OUT_FILE="{work / "out.txt"}"',
                    str(work / "tb.v"), *srcs], check=True, capture_output=True, text=True)
    subprocess.run(["vvp", "-n", str(work / "sim.vvp")], check=True, capture_output=True, text=True, cwd=rtl_dir)
    classes, scores = [], []
    cb, sb, n = out["class_bits"], out["score_bits"], info["topology"][-1]
    for line in (work / "out.txt").read_text().split():
        v = int(line, 2)
        classes.append(v & ((1 << cb) - 1))
        row = []
        for c in range(n):
            s = (v >> (cb + c * sb)) & ((1 << sb) - 1)
            row.append(s - (1 << sb) if s >> (sb - 1) else s)
        scores.append(row)
    return np.array(classes), np.array(scores)
