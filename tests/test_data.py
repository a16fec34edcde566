import gzip
import http.server
import shutil
import struct
import threading
from functools import partial

import numpy as np
import pytest

from bnncore import data
from bnncore.data import DataError, InputBinarization, read_idx


def write_idx(path, array, code=0x08, gz=False, dims=None):
    dims = array.shape if dims is None else dims
    raw = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx", a, gz=gz)), a)


def test_idx_big_endian_int32(tmp_path):
    a = np.array([1, -2, 70000], dtype=">i4")
    out = read_idx(write_idx(tmp_path / "b.idx", a, code=0x0C))
    assert out.tolist() == [1, -2, 70000] and out.dtype.isnative


@pytest.mark.parametrize("mangle, message", [
    (lambda raw: b"\x01\x00" + raw[2:], r"bad magic number 0100"),
    (lambda raw: raw[:2] + b"\x42" + raw[3:], r"unknown IDX type code 0x42"),
    (lambda raw: raw[:-5], r"data truncated: dimensions \(2, 3, 4\) need 24 bytes after the header, found 19"),
    (lambda raw: raw + b"xx", r"data has trailing bytes"),
    (lambda raw: raw[:9], r"truncated header: 3 dimensions need 16 bytes, file has 9"),
    (lambda raw: raw[:3] + b"\x00", r"IDX header declares 0 dimensions"),
    (lambda raw: b"\x00", r"1 bytes is too short for an IDX header \(4 bytes\)"),
])
def test_idx_corrupt(tmp_path, mangle, message):
    path = write_idx(tmp_path / "c.idx", np.zeros((2, 3, 4), np.uint8))
    path.write_bytes(mangle(path.read_bytes()))
    with pytest.raises(DataError, match=rf"^{path}: {message}"):
        read_idx(path)


def test_idx_corrupt_gzip(tmp_path):
    path = write_idx(tmp_path / "d.idx.gz", np.zeros(100, np.uint8), gz=True)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match=rf"^{path}: corrupt gzip stream"):
        read_idx(path)


def test_load_real_mnist(mnist):
    assert mnist.train_images.shape == (50000, 784) and mnist.val_images.shape == (10000, 784)
    assert mnist.test_images.shape == (10000, 784) and mnist.train_images.dtype == np.uint8
    # the first training image of MNIST is a 5, the first test image a 7
    assert mnist.train_labels[0] == 5 and mnist.test_labels[0] == 7
    assert set(np.unique(mnist.train_labels)) == set(range(10))


def test_split_is_last_images(mnist_dir):
    a = data.load_dataset("mnist", folder=mnist_dir, val_size=10000)
    b = data.load_dataset("mnist", folder=mnist_dir, val_size=0)
    assert np.array_equal(np.concatenate([a.train_images, a.val_images]), b.train_images)
    assert len(b.val_labels) == 0
    with pytest.raises(DataError, match=r"^val_size must be in \[0, 60000\), not 60000$"):
        data.load_dataset("mnist", folder=mnist_dir, val_size=60000)


def test_verify_real_checksums(mnist_dir):
    result = data.verify("mnist", mnist_dir.parent)
    assert len(result) == 4 and set(result.values()) == {"ok"}


def _fake_tree(root, name):
    folder = root / name
    folder.mkdir(parents=True)
    for f in data.DATASETS[name].files.values():
        (folder / (f.name + ".gz")).write_bytes(b"")
    return folder


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    explicit, env, cache, = tmp_path / "explicit", tmp_path / "env", tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("BNN_DATA_DIR", raising=False)
    for base in (explicit, env, cache / "bnncore" / "datasets"):
        _fake_tree(base, "mnist")
    assert data.find_dataset_dir("mnist") == cache / "bnncore" / "datasets" / "mnist"
    monkeypatch.setenv("BNN_DATA_DIR", str(env))
    assert data.find_dataset_dir("mnist") == env / "mnist"
    assert data.find_dataset_dir("mnist", explicit) == explicit / "mnist"
    assert data.search_dirs()[-1] == data.Path("/usr/share/datasets")


def test_explicit_data_dir_must_hold_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("BNN_DATA_DIR", str(tmp_path / "env"))
    _fake_tree(tmp_path / "env", "mnist")
    with pytest.raises(DataError, match=r"^dataset 'mnist' not found. Looked in:\n  .*/nowhere/mnist: missing "
                                        r"train-images-idx3-ubyte, .*\nPoint --data-dir"):
        data.find_dataset_dir("mnist", tmp_path / "nowhere")


def test_unknown_dataset():
    with pytest.raises(DataError, match=r"^unknown dataset 'cifar', expected one of mnist, fashion-mnist, cifar-10$"):
        data.find_dataset_dir("cifar")


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_fetch_from_local_mirror(http_server, mnist_dir, tmp_path):
    root, url = http_server
    for f in mnist_dir.iterdir():
        shutil.copy(f, root / f.name)
    folder = data.fetch("mnist", tmp_path / "dest", mirrors=[url], log=lambda m: None)
    assert set(data.verify("mnist", tmp_path / "dest").values()) == {"ok"}
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in root.iterdir())
    # a second fetch keeps the verified files and downloads nothing
    for f in root.iterdir():
        f.unlink()
    data.fetch("mnist", tmp_path / "dest", mirrors=[url], log=lambda m: None)


def test_fetch_rejects_corrupt_file_and_leaves_nothing(http_server, mnist_dir, tmp_path):
    root, url = http_server
    for f in mnist_dir.iterdir():
        shutil.copy(f, root / f.name)
    labels = root / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] ^= 1  # one label changed: still a valid IDX file, but not MNIST
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"could not download t10k-labels-idx1-ubyte.gz for mnist:\n"
                                        r"  http://127.0.0.1:\d+/t10k-labels-idx1-ubyte.gz: md5 "):
        data.fetch("mnist", tmp_path / "dest", mirrors=[url], log=lambda m: None)
    left = sorted(p.name for p in (tmp_path / "dest" / "mnist").iterdir())
    assert "t10k-labels-idx1-ubyte.gz" not in left and not any(n.endswith(".part") for n in left)


def test_fetch_unreachable_mirror(tmp_path):
    with pytest.raises(DataError, match=r"could not download .* for mnist"):
        data.fetch("mnist", tmp_path, mirrors=["http://127.0.0.1:9/"], timeout=2, log=lambda m: None)
    assert not any(p.name.endswith(".part") for p in (tmp_path / "mnist").iterdir())


def test_threshold_bits():
    img = np.array([[0, 127, 128, 255]], np.uint8)
    assert InputBinarization("threshold").bits(img).tolist() == [[0, 0, 1, 1]]
    assert InputBinarization("threshold", level=100).bits(np.array([99, 100], np.uint8)).tolist() == [0, 1]
    assert InputBinarization("probability").bits(img).tolist() == [[0, 0, 1, 1]]
    with pytest.raises(ValueError, match=r"^input scheme 'none' has no bit representation$"):
        InputBinarization("none").bits(img)


@pytest.mark.parametrize("kwargs, message", [
    ({"scheme": "random"}, r"input scheme must be one of 'threshold', 'probability', 'uint8', 'none', not 'random'"),
    ({"level": 300}, r"threshold level must be an integer in \[0, 256\], not 300"),
    ({"repeats": 0}, r"repeats must be a positive integer, not 0"),
])
def test_binarization_validation(kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message}$"):
        InputBinarization(**kwargs)


# --- CIFAR-10, on files generated in its format --------------------------------------------

def _cifar_batch(n, seed):
    import pickle
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    return data, labels, pickle.dumps({b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": []})


def _make_cifar(folder, n=20, archive=False):
    import io
    import tarfile
    batches = {name: _cifar_batch(n, i) for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"])}
    if archive:
        folder.mkdir(parents=True)
        with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, (_, _, raw) in batches.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    else:
        (folder / "cifar-10-batches-py").mkdir(parents=True)
        for name, (_, _, raw) in batches.items():
            (folder / "cifar-10-batches-py" / name).write_bytes(raw)
    return batches


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_loader(tmp_path, archive):
    from bnncore.data import load_dataset
    batches = _make_cifar(tmp_path / "cifar-10", archive=archive)
    ds = load_dataset("cifar-10", tmp_path, val_size=10)
    assert ds.shape == (3, 32, 32) and ds.train_images.shape == (90, 3072) and ds.test_images.shape == (20, 3072)
    data, labels, _ = batches["data_batch_1"]
    # (channel, y, x) planes in the file; (y, x, channel) here: pixel (y=1, x=2), green
    assert ds.train_images[0, (1 * 32 + 2) * 3 + 1] == data[0, 1024 + 1 * 32 + 2]
    assert ds.train_labels[:20].tolist() == labels
    assert ds.test_labels.tolist() == batches["test_batch"][1]


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    import pickle
    from bnncore.data import DataError, load_dataset
    _make_cifar(tmp_path / "cifar-10")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (tmp_path / "cifar-10" / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match=r"data_batch_3: not a CIFAR-10 batch \(refusing to load builtins.print"):
        load_dataset("cifar-10", tmp_path)


def test_cifar10_bad_labels_and_missing(tmp_path):
    import pickle
    from bnncore.data import DataError, load_dataset
    with pytest.raises(DataError, match=r"(?s)dataset 'cifar-10' not found.*missing cifar-10-python.tar.gz"):
        load_dataset("cifar-10", tmp_path)
    _make_cifar(tmp_path / "cifar-10")
    path = tmp_path / "cifar-10" / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 10]}))
    with pytest.raises(DataError, match=r"test_batch: label 10 at index 1 is out of range"):
        load_dataset("cifar-10", tmp_path)


def test_cli_dataset_names_are_the_data_modules():
    from bnncore.cli import DATASET_NAMES
    from bnncore.data import NAMES
    assert DATASET_NAMES == NAMES


def test_cifar10_fetch_checks_the_md5(http_server, tmp_path, monkeypatch):
    import hashlib
    from bnncore.data import Cifar10, DataError, fetch, load_dataset
    root, url = http_server
    _make_cifar(root / "src", archive=True)
    (root / "src" / "cifar-10-python.tar.gz").rename(root / "cifar-10-python.tar.gz")
    good = hashlib.md5((root / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    with pytest.raises(DataError, match=rf"md5 {good} of the download, expected {Cifar10.md5}"):
        fetch("cifar-10", tmp_path / "data", mirrors=[url], log=lambda m: None)
    assert list((tmp_path / "data" / "cifar-10").iterdir()) == []          # nothing left behind
    monkeypatch.setattr(Cifar10, "md5", good)
    folder = fetch("cifar-10", tmp_path / "data", mirrors=[url], log=lambda m: None)
    assert load_dataset("cifar-10", folder=folder, val_size=10).train_images.shape == (90, 3072)
