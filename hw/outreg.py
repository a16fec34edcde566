"""Move the flip-flops that register an ECP5 block RAM's read data into the block RAM.

An ECP5 block RAM (``DP16KD``) read without its output register (``REGMODE NOREG``, all Yosys
maps) is slow to its outputs: nextpnr's timing data give 5.83 ns from the clock to the data at
speed grade 6, before any routing. Each EBR has an output register of its own
(``REGMODE OUTREG``), after which the data leave the block RAM at a flip-flop's speed. Yosys
does not use it, so this pass does, on the JSON netlist Yosys writes and nextpnr reads: where
every read-data bit of a block RAM goes to exactly one flip-flop and nowhere else, and those
flip-flops are plain D flip-flops on the block RAM's read clock (always enabled, no set or
reset, initial value 0: the output register's own), the flip-flops are removed and the block
RAM's output register takes their place. The netlist's behaviour is unchanged cycle for cycle:
the data arrive one clock after the read, as before.

The core registers every ROM word once beside its block RAMs (hw/engine.py) and nothing else,
so on ECP5 every weight and threshold ROM qualifies.

    python -m bnncore.hw.outreg bnn.json          # rewrite in place
    python -m bnncore.hw.outreg in.json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from bnncore.errors import BnnError
from bnncore.fileio import atomic_write_text

__all__ = ["absorb_output_registers", "absorb_file", "NetlistError", "main"]


class NetlistError(BnnError, ValueError):
    """The JSON netlist is not one Yosys wrote (no top module, or not the expected layout)."""


def _param(cell: dict, name: str, default: str = "") -> str:
    # Yosys' JSON writes string parameters that look like bits ('1') with a trailing space.
    return str(cell["parameters"].get(name, default)).rstrip()


def _top(netlist: dict, path: str) -> dict:
    modules = netlist.get("modules")
    if not isinstance(modules, dict):
        raise NetlistError(f"{path}: no 'modules'; expected a netlist written by Yosys' write_json")
    tops = [m for m in modules.values() if str(m.get("attributes", {}).get("top", "0")).strip("0 ") not in ("", "x")]
    if len(tops) != 1:
        raise NetlistError(f"{path}: {len(tops)} modules marked top; expected 1 (run after synth_ecp5)")
    return tops[0]


def _is_plain_dff(ff: dict, clock) -> bool:
    """A flip-flop that loads D on every rising edge of ``clock``, never set or reset, starting
    at 0 (TRELLIS_FF's fields as synth_ecp5 writes them)."""
    c = ff["connections"]
    return (_param(ff, "CLKMUX", "CLK") == "CLK" and c.get("CLK") == [clock]
            and (_param(ff, "CEMUX", "CE") == "1" or c.get("CE") == ["1"])
            and _param(ff, "LSRMUX", "LSR") == "LSR" and c.get("LSR", ["0"]) == ["0"]
            and _param(ff, "GSR", "DISABLED") == "DISABLED" and _param(ff, "REGSET", "RESET") == "RESET")


def absorb_output_registers(netlist: dict, path: str = "netlist") -> dict:
    """Rewrite ``netlist`` (Yosys JSON, after synth_ecp5) in place; return what was done:
    ``{"brams": block RAMs given their output register, "ffs": flip-flops removed,
    "skipped": {block RAM: why not}}``."""
    top = _top(netlist, path)
    cells = top["cells"]
    ports = {b for p in top.get("ports", {}).values() for b in p["bits"]}
    sinks = defaultdict(list)
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "output":
                for b in bits:
                    sinks[b].append((name, port))
    done, removed, skipped = 0, 0, {}
    for name, ram in [(n, c) for n, c in cells.items() if c["type"] == "DP16KD"]:
        conn = ram["connections"]
        if _param(ram, "REGMODE_A", "NOREG") != "NOREG" or _param(ram, "REGMODE_B", "NOREG") != "NOREG":
            skipped[name] = "already registered"
            continue
        # pseudo-dual-port (a 36-bit port A): every output is read on port B's clock
        pdp = int(_param(ram, "DATA_WIDTH_A", "0"), 2) == 36
        if pdp and conn.get("CEA", ["0"]) != ["0"]:
            # a RAM the design writes (a line buffer, a window buffer): its reads are not on the
            # weight path this pass is for, and port A's clock must stay its own
            skipped[name] = "written through port A (a RAM, not a ROM)"
            continue
        moves, halves, why = [], set(), ""
        for port, bits in conn.items():
            if not port.startswith("DO") or not isinstance(bits[0], int):
                continue
            half = "B" if pdp else port[2]
            users = sinks[bits[0]]
            if not users:
                continue
            ff_name, pin = users[0]
            ff = cells[ff_name]
            clock = conn.get(f"CLK{half}", [None])[0]
            if (len(users) != 1 or bits[0] in ports or ff["type"] != "TRELLIS_FF" or pin != "DI"
                    or not isinstance(clock, int) or _param(ram, f"CLK{half}MUX", f"CLK{half}") != f"CLK{half}"
                    or conn.get(f"RST{half}", ["0"]) != ["0"] or not _is_plain_dff(ff, clock)):
                why = f"{port} goes to {ff_name}.{pin}" + ("" if len(users) == 1 else f" and {len(users) - 1} more")
                break
            moves.append((port, ff_name))
            halves.add(port[2])
        if why or not moves:
            skipped[name] = why or "no output used"
            continue
        for port, ff_name in moves:
            conn[port] = cells.pop(ff_name)["connections"]["Q"]
        removed += len(moves)
        # Both halves' output registers on, enabled, never reset: in the pseudo-dual-port mode
        # the 36-bit word comes out of both, on port B's clock; port A is given that clock too
        # (its writes stay off: CEA is 0), so either reading of the mode is the same.
        for half in ("A", "B") if pdp else sorted(halves):
            ram["parameters"][f"REGMODE_{half}"] = "OUTREG"
            conn[f"OCE{half}"] = ["1"]
        if pdp:
            conn["CLKA"] = conn["CLKB"]
            ram["parameters"]["CLKAMUX"] = "CLKA"
        done += 1
    return {"brams": done, "ffs": removed, "skipped": skipped}


def absorb_file(path, out=None, summary=None) -> dict:
    """``absorb_output_registers`` on the JSON netlist file ``path``, written back to ``out``
    (default: ``path``), what was done also to ``summary`` if given; return what was done.
    Nothing is written when the netlist is refused."""
    path = Path(path)
    try:
        netlist = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise NetlistError(f"{path}: not JSON ({e}); expected a netlist written by Yosys' write_json") from None
    result = absorb_output_registers(netlist, str(path))
    atomic_write_text(out or path, json.dumps(netlist) + "\n")
    if summary:
        atomic_write_text(summary, json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bnncore.hw.outreg", description=__doc__.split("\n\n")[0])
    p.add_argument("netlist", type=Path, help="Yosys JSON netlist after synth_ecp5")
    p.add_argument("out", type=Path, nargs="?", help="where to write the result (default: in place)")
    p.add_argument("--summary", type=Path, help="also write what was done as JSON")
    a = p.parse_args(argv)
    try:
        result = absorb_file(a.netlist, a.out, a.summary)
    except (OSError, NetlistError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{a.netlist}: {result['brams']} block RAMs given their output register, {result['ffs']} flip-flops "
          f"removed, {len(result['skipped'])} block RAMs left as they were")
    return 0


if __name__ == "__main__":
    sys.exit(main())
