"""The Python API: `import bnncore` is light, every stage function is there and stays a
function whatever was imported before it, and examples/flow.py runs the whole flow."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_light_and_every_name_resolves():
    probe = ("import sys, bnncore\n"
             "light = not any(m in sys.modules for m in ('torch', 'numpy'))\n"
             "import bnncore.folding, bnncore.training, bnncore.exports  # the modules behind the names\n"
             "names = {n: callable(getattr(bnncore, n)) for n in bnncore.__all__ if n != '__version__'}\n"
             "print(light, all(names.values()), type(bnncore.fold).__name__, type(bnncore.export).__name__)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "function", "function"], out


def test_fold_of_a_model_needs_its_input_scheme():
    import bnncore
    from bnncore.model import BinaryNet, ModelConfig
    model = BinaryNet(ModelConfig(topology="16-4-2"))
    with pytest.raises(ValueError, match="give input="):
        bnncore.fold(model)
    # as bnn fold, the Python fold checks against torch unless told not to
    with pytest.raises(ValueError, match=r"give verify_on=\(images, labels\), or verify=False"):
        bnncore.fold(model, bnncore.InputBinarization())
    net = bnncore.fold(model, bnncore.InputBinarization(), verify=False)
    assert net.topology == (16, 4, 2)
    import numpy as np
    images = np.random.default_rng(0).integers(0, 256, (50, 16), dtype=np.uint8)
    assert bnncore.fold(model, bnncore.InputBinarization(), verify_on=(images, np.zeros(50, np.int64))) == net


@pytest.mark.slow
def test_the_example_runs_the_whole_flow(tmp_path, mnist_dir):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "flow.py"), "--tiny", "--data-dir",
                        str(mnist_dir.parent), "--out", str(tmp_path)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "simulated 100 images: 0 mismatches" in r.stdout and "UP5K:" in r.stdout
    assert (tmp_path / "report.html").is_file() and (tmp_path / "net" / "manifest.json").is_file()
