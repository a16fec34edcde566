"""Cells per layer (hw/layer_cells.py): the generator's names of each layer's units."""

from bnncore.hw.families import FAMILIES
from bnncore.hw.layer_cells import attribute, per_layer


def test_attribute_by_the_generators_names():
    assert attribute("top.core.layer12_acc0_DFFE_Q") == ("layer 12", "engine")
    assert attribute("top.rom_w3.slice[0].mem.0.0") == ("layer 3", "ROM")
    assert attribute("top.core.t0_addr_TRELLIS_FF_Q_1") == ("layer 0", "ROM")
    assert attribute("link.accelerator.core.window2_ax_DFFRE_Q") == ("layer 2", "window")
    assert attribute("top.core.pool1_0_h_DFFE_Q") == ("layer 1", "pool")
    assert attribute("top.core.pixels0_full_DFFR_Q") == ("layer 0", "pixels")
    assert attribute("top.core.best_DFFRE_Q") == ("scores and arg-max", "output")
    assert attribute("link.accelerator.core.score7_DFFRE_Q") == ("scores and arg-max", "output")
    assert attribute("link.link.idx_DFFRE_Q_2") == ("serial link", "link")
    # names that only look like a layer's: another prefix, a digit run that is no unit index
    for name in ("top.core.fifo_level_TRELLIS_FF_Q", "top.core.y6056_DFF_Q", "beat_DFFE_Q", "top.core.tx8"):
        assert attribute(name) == ("stream and control", "")


def test_rows_add_up_to_the_design():
    cells = {"top.core.layer0_a": "LUT4", "top.core.layer0_b": "DFF", "top.rom_w0.m": "SPX9", "top.core.layer1_c": "ALU",
             "top.core.best_q": "DFFE", "top.core.layer1_d": "LUT2", "in_ready_OBUF_O": "OBUF", "top.core.fifo_x": "LUT3"}
    netlist = {"modules": {"bnn_fpga": {"cells": {n: {"type": t} for n, t in cells.items()}}}}
    rows = per_layer(netlist, "bnn_fpga", FAMILIES["gowin"])
    assert [r["part"] for r in rows] == ["layer 0", "layer 1", "scores and arg-max", "stream and control"]
    assert [(r["luts"], r["ffs"], r["carries"], r["brams"]) for r in rows] == [(1, 1, 0, 1), (1, 0, 1, 0), (0, 1, 0, 0),
                                                                               (1, 0, 0, 0)]
    assert rows[0]["units"] == ["ROM", "engine"]
    assert per_layer({}, "bnn_fpga", FAMILIES["gowin"]) == []
