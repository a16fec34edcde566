"""The ECP5 output-register pass (hw/outreg.py) on small hand-written netlists in Yosys' JSON
layout. That it keeps a synthesized design's behaviour is checked by the gate-level
simulation in test_synth.py (slow)."""

import copy
import json

import pytest

from bnncore.hw.outreg import NetlistError, absorb_output_registers, main

CLK, CLK2, CE, RST = 2, 3, 4, 5


def ff(d, q, **over):
    """A TRELLIS_FF as synth_ecp5 writes a plain D flip-flop (string parameters that look like
    bits carry a trailing space)."""
    params = {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR", "REGSET": "RESET"}
    conn = {"CLK": [CLK], "DI": [d], "LSR": ["0"], "Q": [q]}
    params.update(over.pop("params", {}))
    conn.update(over)
    return {"type": "TRELLIS_FF", "parameters": params, "attributes": {},
            "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "CE": "input", "Q": "output"},
            "connections": conn}


def netlist(*, pdp=True, ffs=None, extra=None):
    """One block RAM whose DOA0, DOA1 (nets 10, 11) and, when pseudo-dual-port, DOB0 (net 12)
    go to flip-flops with outputs 20, 21, 22; DOB1 (net 13) is unused."""
    width = "00000000000000000000000000100100" if pdp else "00000000000000000000000000010010"
    ram = {"type": "DP16KD", "attributes": {},
           "parameters": {"DATA_WIDTH_A": width, "DATA_WIDTH_B": width, "REGMODE_A": "NOREG",
                          "REGMODE_B": "NOREG", "CLKAMUX": "CLKA", "CLKBMUX": "CLKB"},
           "port_directions": {"CLKA": "input", "CLKB": "input", "CEA": "input", "CEB": "input", "OCEA": "input",
                               "OCEB": "input", "RSTA": "input", "RSTB": "input", "DOA0": "output",
                               "DOA1": "output", "DOB0": "output", "DOB1": "output"},
           "connections": {"CLKA": ["0"] if pdp else [CLK], "CLKB": [CLK], "CEA": ["0"], "CEB": ["1"],
                           "OCEA": ["0"], "OCEB": ["1"], "RSTA": ["0"], "RSTB": ["0"],
                           "DOA0": [10], "DOA1": [11], "DOB0": [12], "DOB1": [13]}}
    cells = {"ram": ram, "ff0": ff(10, 20), "ff1": ff(11, 21)}
    if pdp:
        cells["ff2"] = ff(12, 22)
    cells.update(ffs or {})
    cells.update(extra or {})
    return {"creator": "test", "modules": {"top": {
        "attributes": {"top": "00000000000000000000000000000001"},
        "ports": {"clk": {"direction": "input", "bits": [CLK]}, "y": {"direction": "output", "bits": [20, 21, 22]}},
        "cells": cells, "netnames": {}}}}


def cells(n):
    return n["modules"]["top"]["cells"]


def test_pseudo_dual_port_block_ram_takes_its_flip_flops():
    n = netlist()
    r = absorb_output_registers(n)
    assert r == {"brams": 1, "ffs": 3, "skipped": {}}
    ram = cells(n)["ram"]
    assert set(cells(n)) == {"ram"}
    # each output now drives what its flip-flop drove
    assert [ram["connections"][p] for p in ("DOA0", "DOA1", "DOB0", "DOB1")] == [[20], [21], [22], [13]]
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] == ["1"]
    # port A (the write port of the pseudo-dual-port mode) on the read clock, writes still off
    assert ram["connections"]["CLKA"] == [CLK] and ram["connections"]["CEA"] == ["0"]


def test_dual_port_block_ram_registers_only_the_ports_it_reads():
    n = netlist(pdp=False)
    assert absorb_output_registers(n)["ffs"] == 2
    ram = cells(n)["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG" and ram["parameters"]["REGMODE_B"] == "NOREG"
    assert ram["connections"]["OCEB"] == ["1"] and ram["connections"]["OCEA"] == ["1"]


@pytest.mark.parametrize("change, why", [
    ({"ff1": ff(11, 21, CE=[CE], params={"CEMUX": "CE"})}, "DOA1"),          # enabled
    ({"ff1": ff(11, 21, LSR=[RST])}, "DOA1"),                                # reset
    ({"ff1": ff(11, 21, params={"REGSET": "SET"})}, "DOA1"),                 # starts at 1
    ({"ff1": ff(11, 21, params={"CLKMUX": "INV"})}, "DOA1"),                 # falling edge
    ({"ff1": ff(11, 21, CLK=[CLK2])}, "DOA1"),                               # another clock
    ({"ff1": ff(11, 21, params={"GSR": "ENABLED"})}, "DOA1"),                # global set/reset
    ({"ffx": ff(11, 23)}, "and 1 more"),                                     # DOA1 read twice
    ({"lut": {"type": "LUT4", "parameters": {}, "attributes": {}, "port_directions": {"A": "input", "Z": "output"},
              "connections": {"A": [12], "Z": [30]}}}, "DOB0"),              # DOB0 also to a LUT
])
def test_block_ram_left_alone_unless_every_output_goes_to_a_plain_flip_flop(change, why):
    n = netlist(extra=change)
    before = copy.deepcopy(n)
    r = absorb_output_registers(n)
    assert r["brams"] == 0 and r["ffs"] == 0 and why in r["skipped"]["ram"]
    assert n == before


def test_output_port_and_registered_block_ram_left_alone():
    n = netlist()
    n["modules"]["top"]["ports"]["y"]["bits"].append(10)   # DOA0 is also a top-level output
    assert absorb_output_registers(n)["brams"] == 0
    n = netlist()
    cells(n)["ram"]["parameters"]["REGMODE_B"] = "OUTREG"
    assert absorb_output_registers(n)["skipped"] == {"ram": "already registered"}


def test_bad_netlists_say_what_was_expected(tmp_path):
    with pytest.raises(NetlistError, match="x.json: no 'modules'"):
        absorb_output_registers({"cells": {}}, "x.json")
    n = netlist()
    n["modules"]["top"]["attributes"] = {}
    with pytest.raises(NetlistError, match="0 modules marked top"):
        absorb_output_registers(n, "x.json")
    n = netlist()
    cells(n)["ram"]["connections"]["CEA"] = [CE]
    before = copy.deepcopy(n)
    # a RAM the design writes (a window's line buffer) keeps its flip-flops and its clocks
    assert absorb_output_registers(n, "x.json") == {"brams": 0, "ffs": 0, "skipped": {
        "ram": "written through port A (a RAM, not a ROM)"}}
    assert n == before


def test_command_line_rewrites_in_place_and_reports_errors(tmp_path, capsys):
    path = tmp_path / "bnn.json"
    path.write_text(json.dumps(netlist()))
    assert main([str(path), "--summary", str(tmp_path / "s.json")]) == 0
    assert set(cells(json.loads(path.read_text()))) == {"ram"}
    assert json.loads((tmp_path / "s.json").read_text())["ffs"] == 3
    assert "1 block RAMs given their output register, 3 flip-flops removed" in capsys.readouterr().out
    path.write_text("{not json")
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "error: " in err and f"{path}: not JSON" in err and path.read_text() == "{not json"
