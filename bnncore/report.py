"""Tables of the flow's results, and one self-contained HTML page of all of them (`bnn report`).

Every stage already writes its results as JSON: a training run ``metrics.json``, an export
``manifest.json`` (with the fold report and the verification), ``bnn rtl`` ``rtl.json``, a
simulation ``results.json``, a synthesis ``report.json``, a sweep ``sweep.json``. Each table
below is built from one such file; the CLI prints it as Markdown, the report shows it as HTML,
so the two never disagree.
"""

from __future__ import annotations

import base64
import html
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import UsageError, option
from .exports import FORMAT as EXPORT_FORMAT
from .fileio import atomic_write_text

__all__ = ["Table", "training_table", "fold_table", "network_table", "rtl_table", "sim_table", "synth_table", "layer_resources_table",
           "sweep_table", "class_table", "confusion_table", "collect", "write_report"]


@dataclass
class Table:
    columns: tuple
    rows: list = field(default_factory=list)   # tuples of cells, already formatted
    note: str = ""

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(map(str, r)) + " |" for r in self.rows]
        return "\n".join(lines + ([f"({self.note})"] if self.note else []))

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in self.rows)
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


# --- one table per kind of result file ----------------------------------------------------------

def training_table(metrics: dict) -> Table:
    cfg, best, epochs = metrics["config"], metrics["best"], metrics["epochs"]
    secs = sum(r["seconds"] for r in epochs) / len(epochs)
    kind = "binary" if cfg.get("binary", True) else "float"
    return Table(("dataset", "topology", "kind", "input", "epochs", "best epoch", "validation", "test", "s/epoch"),
                 [(cfg["dataset"], cfg["topology"], kind, cfg["input"], len(epochs), best["epoch"],
                   _pct(best["val_acc"]), _pct(best["test_acc"]), f"{secs:.1f}")])


def fold_table(manifest: dict) -> Table:
    """What folding did per layer (an export from `bnn fold`), and the verification."""
    meta = manifest.get("metadata") or {}
    rows = [(l["name"], l.get("kind", "dense"), f"{l['n_in']} -> {l['n_out']}",
             f"[{l['threshold_min']}, {l['threshold_max']}]", l["positive_scale"], l["negative_scale"],
             l["zero_scale"], l["always_fire"], l["never_fire"], l["float32_ties"], l.get("and_channels", 0))
            for l in meta.get("fold_report") or []]
    v = meta.get("verification")
    note = (f"verified on {v['images']:,} test images: torch {_pct(v['torch_accuracy'])}, folded "
            f"{_pct(v['folded_accuracy'])}; {v['class_mismatches']} class mismatches, {v['hidden_bit_mismatches']} of "
            f"{v['hidden_bits_compared']:,} hidden bits differ") if v else "not verified (bnn export or bnn import)"
    return Table(("layer", "kind", "fan-in -> out", "thresholds", "scale > 0", "scale < 0 (flipped)", "scale 0",
                  "always 1", "always 0", "float32 ties", "AND-pool channels"), rows, note)


def network_table(summary: dict) -> Table:
    """`network.summary(net)` per layer."""
    def shape(s):
        return "x".join(map(str, s))
    rows = []
    for r in summary["layers"]:
        if r["kind"] == "pool":
            rows.append((r["name"], "pool", shape(r["in_shape"]), shape(r["out_shape"]), "", "",
                         f"{r['and_channels']} AND, {r['in_shape'][0] - r['and_channels']} OR", ""))
            continue
        width = r.get("threshold_bits", r.get("score_bits"))
        rows.append((r["name"], r["kind"] + (" (8-bit input)" if r.get("in_bits") == 8 else ""), shape(r["in_shape"]),
                     shape(r["out_shape"]), f"{r['weight_bits']:,}", f"{r['macs_per_image']:,}",
                     f"[{r['value_min']}, {r['value_max']}]", width))
    t = summary["total"]
    rows.append(("total", "", "", "", f"{t['weight_bits']:,}", f"{t['macs_per_image']:,}", "", ""))
    return Table(("layer", "kind", "in", "out", "weight bits", "XNOR ops/image", "threshold or bias range",
                  "threshold bits"), rows,
                 f"{t['folded_bits'] / 8 / 1024:.1f} KiB folded vs {t['float32_bits'] / 8 / 1024:.1f} KiB float32: "
                 f"{t['compression_vs_float32']:.1f}x smaller")


def rtl_table(info) -> Table:
    """The folding and the timing model of a design (its RtlDesign, or rtl.json's object)."""
    from .hw.design import RtlDesign
    d = RtlDesign.from_json(info)
    rows = [(l["layer"], l["n_in"], l["n_out"], l["pe"], l["simd"], l["nf"], l["sf"], l["cycles_per_image"],
             f"{l['memory_bits']['weights']:,}") for l in d.folding]
    head = ("layer", "in", "out", "PE", "SIMD", "NF", "SF", "cycles", "weight bits")
    note = (f"cycles per image (slowest layer) {d.cycles_per_image}, initiation interval "
            f"{d.interval:g}{'' if d.timing.get('exact', True) else ' (estimated)'}, latency {d.latency} cycles "
            f"({'pipelined' if d.pipelined else 'shallow'} engines, {d.pipeline_depth} stages)")
    if any("window" in l for l in d.folding):
        # a column saying what each engine is, and its positions: a convolution's cycles are
        # its window positions times NF * SF
        rows = [(r[0], _layer_kind(l), l.get("positions", 1)) + r[1:] for r, l in zip(rows, d.folding)]
        head = (head[0], "kind", "positions") + head[1:]
    return Table(head, rows, note)


def _layer_kind(l: dict) -> str:
    w = l.get("window")
    if w is None:
        return l["kind"] if l["kind"] == "output" else "dense"
    if w["dense"]:
        return f"{'output' if l['kind'] == 'output' else 'dense'} on {'x'.join(map(str, w['in_shape']))}"
    text = f"conv {w['kernel'][0]}x{w['kernel'][1]}" + (f" pad {w['padding']} of {w['pad_value']}" if w["padding"] else "")
    if w["value_bits"] != 1:
        text += f", {w['value_bits']}-bit in"
    return text + "".join(f" + pool {p['size']} ({len(p['and_channels'])} AND)" for p in l.get("pools", []))


def sim_table(r: dict) -> Table:
    """A simulation's results.json (sim/runner.py)."""
    topo = r.get("spec") or "-".join(map(str, r.get("topology", [])))
    ii = r.get("ii")
    note = (f"build {r['build_s']:.1f} s; latency {r['latency']:,} cycles; steady-state interval "
            + (f"{float(ii):,.2f} cycles" if isinstance(ii, (int, float)) else "not measured"))
    if r.get("waves"):
        note += "; waveform " + ", ".join(r["waves"])
    return Table(("simulator", "bench", "network", "images", "mismatches", "cycles/image", "wall s", "images/s",
                  "accuracy (RTL)", "accuracy (golden)"),
                 [(r["simulator"], r.get("bench", "cocotb"), topo, f"{r['images']:,}", r["mismatches"],
                   f"{r['cycles'] / r['images']:,.1f}", f"{r['run_s']:.1f}", f"{r['images'] / r['run_s']:,.0f}",
                   _pct(r["accuracy"]), _pct(r["golden_accuracy"]))], note)


def layer_resources_table(r: dict, note: str = "cells attributed by the names the generator gives each layer's "
                          "units (hw/layer_cells.py)") -> Table | None:
    """The cells per layer of a synthesized design (report.json's per_layer) or of the estimate
    before synthesis (rtl.json's estimate); None when it has none."""
    rows = r.get("per_layer")
    if not isinstance(rows, list) or not rows or not all(isinstance(x, dict) for x in rows):
        return None
    try:
        return Table(("part", "units", "LUT4s", "FFs", "carries", "block RAMs"),
                     [(x["part"], ", ".join(map(str, x.get("units", []))), f"{int(x['luts']):,}", f"{int(x['ffs']):,}",
                       f"{int(x['carries']):,}", int(x["brams"])) for x in rows], note)
    except (KeyError, TypeError, ValueError):
        return None


def synth_table(r: dict) -> Table:
    """A synthesis report.json (hw/synth.py)."""
    res, pct = r["resources"], r["utilization_pct"]
    note = f"target {r['freq_target_mhz']:g} MHz {'met' if r['timing_met'] else 'NOT met'}"
    b = r.get("bounds")
    try:          # a report.json of the build folder: malformed bounds are left out
        note += (f"; bound: {b['binding']}, {float(b['binding_cycles']):,.0f} cycles/image (the interval's "
                 f"{100 * float(b['efficiency']):.0f}%)")
    except (KeyError, TypeError, ValueError):
        pass
    note += (f"; the device's memories can read the weights in {r['bandwidth_bound_cycles']:g} cycles/image "
             f"({100 * r['bandwidth_efficiency']:.0f}% of the interval)")
    path = r.get("critical_path")
    try:          # a report.json of the build folder: a malformed path is left out
        note += (f"; critical path {float(path['ns']):.1f} ns ({float(path['logic_ns']):.1f} logic in "
                 f"{int(path['cells'])} cells, {float(path['routing_ns']):.1f} routing over {int(path['nets'])} "
                 f"nets) from {path['from']} to {path['to']}")
    except (KeyError, TypeError, ValueError):
        pass
    moved = r.get("bram_output_registers")
    if moved and moved["ffs"]:
        note += (f"; {moved['ffs']:,} flip-flops moved into {moved['brams']} block RAMs' output registers "
                 "(FFs counts those left)")
    luts = f"{res['luts']:,} ({pct['luts']}%)"
    cells = r.get("logic_cells")
    try:          # a report.json of the build folder: malformed placed cells are left out
        luts += f"; {int(cells['used']):,} {cells['what']} ({float(cells['pct'])}%)"
    except (KeyError, TypeError, ValueError):
        pass
    return Table(("device", "network", "LUT4s (placed)", "FFs", "carries", "block RAMs", "DSPs", "Fmax MHz",
                  "II cycles", "images/s", "latency us"),
                 [(r["device"]["part"], r.get("spec") or "-".join(map(str, r["topology"])), luts,
                   f"{res['ffs']:,} ({pct['ffs']}%)", f"{res['carries']:,}",
                   f"{res['brams']} ({pct['brams']}%)" + (f" + {res['spram']} SPRAM" if res.get("spram") else ""),
                   res["dsps"], f"{r['fmax_mhz']:.1f}", f"{r['initiation_interval']:g}", f"{r['images_per_second']:,}",
                   r["latency_us"])], note)


def sweep_table(rows: list) -> Table:
    """A sweep's rows (sweep.json)."""
    seeds = max((len(str(r.get("seeds", "1")).split()) for r in rows if not r.get("error")), default=1)
    out = []
    for r in rows:
        if r.get("error"):
            out.append((r["target_cycles"], r["folding"], "", "", "", "", "", r["error"], ""))
            continue
        fmax = f"{r['fmax_mhz']:.1f}"
        if seeds > 1:
            fmax += f" ({r['fmax_mhz_min']:.1f}-{r['fmax_mhz_max']:.1f})"
        est = f" (est. {r['luts_estimate']:,})" if isinstance(r.get("luts_estimate"), int) else ""
        out.append((r["target_cycles"], r["folding"], f"{r['initiation_interval']:g}", f"{r['luts']:,}{est}",
                    f"{r['ffs']:,}", r["brams"], fmax, f"{r['images_per_second']:,}", "yes" if r["pareto"] else ""))
    return Table(("target cycles", "folding (PE,SIMD per layer)", "II", "LUTs", "FFs", "BRAMs", "Fmax MHz",
                  "images/s", "Pareto"), out,
                 (f"Fmax and images/s of the median of {seeds} placement seeds; the range over all of them in "
                  "brackets; " if seeds > 1 else "") + "LUTs: Yosys' LUT4s (the cost model's estimate before "
                 "synthesis, hw/estimate.py)")


def class_table(matrix, names=(), note: str = "") -> Table:
    """Per-class accuracy (bnncore.metrics.per_class of a confusion matrix)."""
    from .metrics import per_class
    rows = [(r["name"], f"{r['images']:,}", f"{r['correct']:,}",
             "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%",
             f"{r['taken_for']} ({r['taken_for_images']:,})" if r["taken_for"] is not None else "-")
            for r in per_class(matrix, names)]
    return Table(("class", "images", "correct", "accuracy", "most often taken for"), rows, note)


def confusion_table(matrix, names=()) -> Table:
    """The confusion matrix (rows: true class; columns: predicted)."""
    from .metrics import class_name
    m = [list(map(int, row)) for row in matrix]
    cols = ("true \\ predicted",) + tuple(class_name(names, c) for c in range(len(m)))
    return Table(cols, [(class_name(names, c),) + tuple(f"{v:,}" for v in m[c]) for c in range(len(m))])


# --- finding the results under a build folder -----------------------------------------------------

#: the largest file the report reads: a result JSON or a plot
READ_LIMIT = 16 << 20


def read_inside(path: Path, root: Path, limit: int = READ_LIMIT) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes inside
    ``root`` through no symbolic link, else None: the report follows no link out of the build
    folder, never opens a FIFO or a device, and reads no more than it shows."""
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        return None
    here = Path(root)
    for part in rel.parts:
        here = here / part
        if here.is_symlink():
            return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
        return data if len(data) <= limit else None
    finally:
        os.close(fd)


def _json(path: Path, root: Path):
    raw = read_inside(path, root)
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


#: file name -> (section, does this JSON object belong to it?)
_KINDS = {
    "metrics.json": ("training", lambda d: "config" in d and "epochs" in d and d.get("best")),
    "manifest.json": ("networks", lambda d: d.get("format") == EXPORT_FORMAT),
    "rtl.json": ("rtl", lambda d: "folding" in d and "timing" in d),
    "results.json": ("simulation", lambda d: "simulator" in d and "images" in d),
    "report.json": ("synthesis", lambda d: "fmax_mhz" in d and "resources" in d),
    "sweep.json": ("sweeps", lambda d: "rows" in d and "device" in d),
}


def collect(build_dir) -> dict:
    """{section: [(folder, data)]} for every result file under ``build_dir``, in path order.
    The insides of a sweep (each point's RTL and synthesis) and of an experiment (its runs)
    are left to their own summaries."""
    root = Path(build_dir)
    found = {section: [] for section, _ in _KINDS.values()}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(folder)
        if "sweep.json" in files or "runs" in here.parts[len(root.parts):]:
            dirs[:] = []
        for name in sorted(files):
            kind = _KINDS.get(name)
            if kind:
                data = _json(here / name, root)
                if data is not None and kind[1](data):
                    found[kind[0]].append((here, data))
    return found


# --- the page -----------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-bottom: .3em; } code { background: #f3f3f3; padding: 0 .25em; }
table { border-collapse: collapse; margin: .4em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .2em .55em; text-align: right; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; margin: .2em 0 1em; } img { max-width: 100%; border: 1px solid #eee; }
.bar { display: flex; align-items: center; gap: .6em; margin: .15em 0; }
.bar .label { width: 13em; } .bar .track { position: relative; width: 420px; height: 14px; background: #eee; }
.bar .fill { position: absolute; left: 0; top: 0; bottom: 0; background: #4a7fb5; }
.bar .fill.over { background: #c0504d; } .bar .mark { position: absolute; top: -3px; bottom: -3px; width: 2px;
  background: #222; }
.empty { color: #888; }
"""


def _img(path: Path, alt: str, root: Path) -> str:
    raw = read_inside(path, root)
    if raw is None or not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return (f'<p class="empty">{html.escape(_rel(path, root))}: not shown (not a PNG file inside the build '
                f'folder of at most {READ_LIMIT >> 20} MiB)</p>')
    data = base64.b64encode(raw).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _bar(label: str, value: float, full: float, text: str, mark: float | None = None) -> str:
    """A horizontal bar of value / full; ``mark``: a target drawn as a tick on the same scale."""
    scale = max(full, value, mark or 0) or 1
    over = " over" if value > full else ""
    tick = f'<div class="mark" style="left:{100 * mark / scale:.1f}%"></div>' if mark else ""
    return (f'<div class="bar"><span class="label">{html.escape(label)}</span><div class="track">'
            f'<div class="fill{over}" style="width:{100 * min(value, scale) / scale:.1f}%"></div>{tick}</div>'
            f"<span>{html.escape(text)}</span></div>")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def _training(folder: Path, m: dict, root: Path) -> str:
    parts = [f"<h3><code>{html.escape(_rel(folder, root))}</code></h3>", training_table(m).html()]
    if (folder / "curve.png").exists() or (folder / "curve.png").is_symlink():
        parts.append(_img(folder / "curve.png", f"training curve of {_rel(folder, root)}", root))
    return "".join(parts)


def _network(folder: Path, manifest: dict, root: Path) -> str:
    from .exports import load
    from .network import summary
    parts = [f"<h3><code>{html.escape(_rel(folder, root))}</code></h3>"]
    try:
        s = summary(load(folder))
    except (ValueError, OSError) as e:
        return "".join(parts) + f'<p class="empty">not readable: {html.escape(str(e))}</p>'
    parts.append(f"<p>{html.escape(s['topology'])}, {html.escape(s['input'])} input</p>")
    parts.append(network_table(s).html())
    parts.append("<p>Folding, per layer:</p>" + fold_table(manifest).html())
    parts.append(_classes(manifest))
    return "".join(parts)


def _classes(manifest: dict) -> str:
    """The folded network's accuracy per class and its confusion matrix, from the fold's
    verification (its manifest), when it has them."""
    from .data import CLASS_NAMES
    from .metrics import confusion_png
    meta = manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}
    check = meta.get("verification") if isinstance(meta.get("verification"), dict) else {}
    matrix = check.get("confusion")
    if not (isinstance(matrix, list) and 0 < len(matrix) <= 1000
            and all(isinstance(r, list) and len(r) == len(matrix) and all(isinstance(v, int) and not isinstance(v, bool)
                                                                         and v >= 0 for v in r) for r in matrix)):
        return ""
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    names = data.get("class_names") or CLASS_NAMES.get(meta.get("dataset"), ())
    if not (isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names)):
        names = ()
    png = base64.b64encode(confusion_png(matrix, names, "folded network, test set")).decode("ascii")
    return ("<p>Per class, on the test set:</p>" + class_table(matrix, names).html()
            + f'<img alt="confusion matrix" src="data:image/png;base64,{png}">')


def _synthesis(folder: Path, r: dict, root: Path) -> str:
    res, pct = r["resources"], r["utilization_pct"]
    bars = [_bar(name, pct[key], 100, f"{res[key]:,} ({pct[key]}% of the device)")
            for key, name in (("luts", "LUT4s"), ("ffs", "flip-flops"), ("brams", "block RAMs")) if key in pct]
    cells = r.get("logic_cells")
    if isinstance(cells, dict) and all(isinstance(cells.get(k), (int, float)) for k in ("used", "available", "pct")):
        bars.insert(1, _bar(f"placed {cells.get('what', 'logic cells')}", cells["pct"], 100,
                            f"{cells['used']:,} of {cells['available']:,} ({cells['pct']}%)"))
    target = r["freq_target_mhz"]
    bars.append(_bar("Fmax (tick: target)", r["fmax_mhz"], max(target, r["fmax_mhz"]),
                     f"{r['fmax_mhz']:.1f} MHz, target {target:g} MHz {'met' if r['timing_met'] else 'NOT met'}",
                     mark=target))
    bound = r["fmax_mhz"] * 1e6 / r["bandwidth_bound_cycles"]
    bars.append(_bar("images/s (tick: block-RAM bound)", r["images_per_second"], bound,
                     f"{r['images_per_second']:,} of {bound:,.0f} the block RAMs' read bandwidth allows", mark=bound))
    layers = layer_resources_table(r)
    return (f"<h3><code>{html.escape(_rel(folder, root))}</code></h3>" + synth_table(r).html() + "".join(bars)
            + (layers.html() if layers else ""))


def _sweep(folder: Path, sw: dict, root: Path) -> str:
    parts = [f"<h3><code>{html.escape(_rel(folder, root))}</code>: {html.escape(sw['network'])} on "
             f"{html.escape(sw.get('part', sw['device']))}</h3>", sweep_table(sw["rows"]).html()]
    if (folder / "sweep.png").exists() or (folder / "sweep.png").is_symlink():
        parts.append(_img(folder / "sweep.png", f"sweep of {_rel(folder, root)}", root))
    return "".join(parts)


def _simulation(items: list, root: Path) -> str:
    rows, notes = [], []
    for folder, r in items:
        t = sim_table(r)
        rows += [(_rel(folder, root), *row) for row in t.rows]
        notes.append(f"{_rel(folder, root)}: {t.note}")
    table = Table(("folder", *sim_table(items[0][1]).columns), rows, "; ".join(notes))
    bad = sum(r["mismatches"] for _, r in items)
    verdict = (f"<p>Every simulated image equals the golden model ({sum(r['images'] for _, r in items):,} "
               f"images, {len(items)} runs).</p>" if not bad else
               f"<p><strong>{bad} images differ from the golden model.</strong></p>")
    return verdict + table.html()


_SECTIONS = (
    ("training", "Training", lambda items, root: "".join(_training(f, d, root) for f, d in items)),
    ("networks", "Folded networks", lambda items, root: "".join(_network(f, d, root) for f, d in items)),
    ("rtl", "Accelerators: folding and timing model",
     lambda items, root: "".join(f"<h3><code>{html.escape(_rel(f, root))}</code></h3>" + rtl_table(d).html()
                                 for f, d in items)),
    ("simulation", "Simulation against the golden model", _simulation),
    ("synthesis", "Synthesis, place and route", lambda items, root: "".join(_synthesis(f, d, root) for f, d in items)),
    ("sweeps", "Folding sweeps", lambda items, root: "".join(_sweep(f, d, root) for f, d in items)),
)


def render(build_dir, skipped: list | None = None) -> str:
    """The page of every result under ``build_dir``; a file that matches a section but lacks
    its fields is left out, with a line in the page and in ``skipped``."""
    root = Path(build_dir)
    found = collect(root)
    skipped = [] if skipped is None else skipped
    body = [f"<h1>bnncore report: <code>{html.escape(str(root))}</code></h1>",
            f'<p class="note">bnncore {__version__}, {time.strftime("%Y-%m-%d %H:%M:%S")}; every figure below '
            "is read from the JSON files the stages wrote.</p>"]
    body.append("<p>" + " · ".join(f'<a href="#{key}">{title}</a> ({len(found[key])})'
                                    for key, title, _ in _SECTIONS) + "</p>")
    for key, title, section in _SECTIONS:
        body.append(f'<h2 id="{key}">{title}</h2>')
        items, shown = found[key], []
        for folder, data in items:   # a file that matches a section but lacks its fields is skipped, and said so
            try:
                section([(folder, data)], root)
                shown.append((folder, data))
            except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as e:
                name = next(n for n, (k, _) in _KINDS.items() if k == key)
                why = f"missing field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
                skipped.append(f"{_rel(folder / name, root)}: not shown ({why})")
        body.append(section(shown, root) if shown else f'<p class="empty">none under {html.escape(str(root))}</p>')
    if skipped:
        body.append('<h2 id="skipped">Skipped files</h2><ul>' + "".join(f"<li>{html.escape(s)}</li>" for s in skipped)
                    + "</ul>")
    return (_HEAD + _GENERATOR
            + f"<title>bnncore report: {html.escape(str(root))}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


#: the first bytes of every report, how an earlier one is told from a user's file
_GENERATOR = '<meta name="generator" content="bnncore report">'
_HEAD = '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'


def _is_report(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(400).decode("utf-8", "replace")
    except OSError:
        return False
    return head.startswith(_HEAD + _GENERATOR) or head.startswith(_HEAD + "<title>bnncore report: ")


def write_report(build_dir, out=None, force: bool = False, skipped: list | None = None) -> Path:
    """Write the report of everything under ``build_dir`` to ``out`` (default:
    ``build_dir/report.html``), atomically; return its path. An existing ``out`` is replaced
    only when it is an earlier report (or with ``force``); never a folder, a link or a device.
    ``skipped``: gets a line for each file left out (``render``)."""
    root = Path(build_dir)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder (give the build folder the stages wrote into)")
    out = Path(out) if out else root / "report.html"
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise UsageError(f"{out}: exists and is not a regular file; choose another page to write (-o)")
    if out.exists() and not force and not _is_report(out):
        raise UsageError(f"{out}: exists and is not a bnncore report; refusing to replace it (choose another -o, "
                         f"or {option('force')} to replace it)")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: no such folder; create it, or choose another -o")
    atomic_write_text(out, render(root, skipped))
    return out
