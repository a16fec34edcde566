"""Datasets: IDX and CIFAR-10 readers, data-directory resolution, download, split and input
binarization.

The datasets are the standard IDX files of MNIST and Fashion-MNIST, and CIFAR-10's
python-pickle batches (read with an unpickler that accepts nothing but NumPy arrays). Where
they live is resolved in this order (first hit wins):

1. the ``data_dir`` argument (``--data-dir`` on the command line),
2. the ``BNN_DATA_DIR`` environment variable,
3. the user cache, ``$XDG_CACHE_HOME/bnncore/datasets`` (``~/.cache/bnncore/datasets``),
   which is where ``bnn data fetch`` downloads to,
4. ``/usr/share/datasets`` (Debian's ``dataset-fashion-mnist`` installs there).

Each location holds one folder per dataset (``<dir>/mnist``, ``<dir>/fashion-mnist``) with
the four files, gzipped or not, and ``<dir>/cifar-10`` with ``cifar-10-python.tar.gz`` or
its extracted ``cifar-10-batches-py/``. Images are flat uint8 arrays in (y, x, channel) order.

Input binarization turns a uint8 image into the +-1 vector the first binary layer sees. A
pixel bit of 1 means +1. The schemes:

``threshold``
    bit = pixel >= level (default level 128).
``probability``
    bit = 1 with probability pixel/255, re-sampled every time an image is used in training
    (seed 001's "probability transformation"). For inference, where the hardware needs one
    fixed bit per pixel, the most likely bit is used: pixel/255 >= 1/2, i.e. pixel >= 128.
``none``
    float input pixel/255 (comparison runs only; such a network cannot be folded to bits).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .datafiles import N_CLASSES, Cifar10, _read_bytes, read_idx
from .errors import DataError, UsageError
from .fileio import temp_file

__all__ = [
    "DATASETS", "DataError", "Dataset", "InputBinarization", "read_idx", "find_dataset_dir",
    "load_dataset", "fetch", "verify", "search_dirs",
]


# --- IDX files ------------------------------------------------------------------------------


# --- The datasets ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _File:
    name: str        # file name without .gz
    md5: str         # md5 of the decompressed content
    md5_gz: str      # md5 of the .gz as published on the mirrors
    shape: tuple


@dataclass(frozen=True)
class _Spec:
    name: str
    mirrors: tuple
    files: dict      # role -> _File


_MNIST_SHAPES = {"train_images": (60000, 28, 28), "train_labels": (60000,),
                 "test_images": (10000, 28, 28), "test_labels": (10000,)}
_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
          "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def _spec(name, mirrors, md5s):
    return _Spec(name, mirrors, {role: _File(_NAMES[role], md5, md5_gz, _MNIST_SHAPES[role])
                                 for role, (md5, md5_gz) in md5s.items()})


DATASETS = {
    "mnist": _spec("mnist", (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ), {
        "train_images": ("6bbc9ace898e44ae57da46a324031adb", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train_labels": ("a25bea736e30d166cdddb491f175f624", "d53e105ee54ea40749a09fcbcd1e9432"),
        "test_images": ("2646ac647ad5339dbf082846283269ea", "9fb629c4189551a2d022fa330f9573f3"),
        "test_labels": ("27ae3e4e09519cfbb04c329615203637", "ec29112dd5afa0611ce80d1b7f02629c"),
    }),
    "fashion-mnist": _spec("fashion-mnist", (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ), {
        "train_images": ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train_labels": ("9018921c3c673c538a1fc5bad174d6f9", "25c81989df183df01b3e8a0aad5dffbe"),
        "test_images": ("8181f5470baa50b63fa0f6fddb340f0a", "bef4ecab320f06d8554ea6380940ec79"),
        "test_labels": ("15d484375f8d13e6eb1aabb0c3f46965", "bb300cfdad3c16e7a12a480ee83cd310"),
    }),
}


#: Every dataset name, the IDX ones and CIFAR-10.
NAMES = tuple(DATASETS) + (Cifar10.name,)


def _dataset_spec(name: str) -> _Spec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}, expected one of {', '.join(NAMES)}") from None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bnncore" / "datasets"


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The base directories searched for datasets, in order."""
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if os.environ.get("BNN_DATA_DIR"):
        dirs.append(Path(os.environ["BNN_DATA_DIR"]))
    dirs += [cache_dir(), Path("/usr/share/datasets")]
    return dirs


def _file_in(folder: Path, f: _File) -> Path | None:
    for candidate in (folder / (f.name + ".gz"), folder / f.name):
        if candidate.is_file():
            return candidate
    return None


def find_dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Return the folder holding all four files of dataset ``name``.

    An explicitly given ``data_dir`` must hold the dataset: it is not silently skipped.
    """
    if name == Cifar10.name:
        missing_in = lambda folder: Cifar10.missing(folder) and [Cifar10.archive + " (or the extracted " + \
                                                                 Cifar10.folder + "/)"]
    else:
        spec = _dataset_spec(name)
        missing_in = lambda folder: [f.name for f in spec.files.values() if _file_in(folder, f) is None]
    tried = []
    for i, base in enumerate(search_dirs(data_dir)):
        folder = base / name
        missing = missing_in(folder)
        if not missing:
            return folder
        tried.append(f"  {folder}: missing {', '.join(missing)}")
        if i == 0 and data_dir is not None:
            break
    raise DataError(f"dataset {name!r} not found. Looked in:\n" + "\n".join(tried) +
                    f"\nPoint --data-dir or BNN_DATA_DIR at a folder holding {name}/, "
                    f"or download it with `bnn data fetch {name}`.")


@dataclass(frozen=True)
class Dataset:
    """A dataset split into train / validation / test, images as uint8 (N, pixels), each image
    flat in (y, x, channel) order; ``shape`` is (channels, height, width)."""
    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    shape: tuple = (1, 28, 28)
    class_names: tuple = ()
    digest: str = ""                # a dataset of your own: sha256 of its arrays (bnncore.userdata)

    @property
    def n_classes(self) -> int:
        """Classes of the dataset: its class names, else the labels' range."""
        return len(self.class_names) or int(max(self.train_labels.max(), self.test_labels.max())) + 1

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={len(self.train_labels)}, val={len(self.val_labels)}, "
                f"test={len(self.test_labels)})")


#: validation images held out of a built-in dataset's training set by default
VAL_SIZE = 10000


def load_dataset(name: str, data_dir=None, *, val_size: int | None = None, folder: Path | None = None) -> Dataset:
    """Load a dataset: a built-in one by name (found in ``data_dir``), or one of your own by its
    path (a ``.npz`` or an image folder: bnncore.userdata). The last ``val_size`` training images
    become the validation set (default: 10,000 of a built-in dataset, a tenth of your own)."""
    from . import userdata
    if name not in NAMES and userdata.is_path(str(name)):
        arrays, shape, class_names = userdata.read_arrays(name)
        return _user_split(name, arrays, shape, class_names, val_size)
    val_size = VAL_SIZE if val_size is None else val_size
    folder = folder or find_dataset_dir(name, data_dir)
    if name == Cifar10.name:
        return _split(name, Cifar10.load(folder), val_size, Cifar10.shape)
    spec = _dataset_spec(name)
    arrays = {}
    for role, f in spec.files.items():
        path = _file_in(folder, f)
        a = read_idx(path)
        if a.shape != f.shape or a.dtype != np.uint8:
            raise DataError(f"{path}: expected uint8 array of shape {f.shape}, found {a.dtype} {a.shape}")
        arrays[role] = a
    for role in ("train_labels", "test_labels"):
        bad = np.flatnonzero(arrays[role] >= N_CLASSES)
        if len(bad):
            raise DataError(f"{_file_in(folder, spec.files[role])}: label {int(arrays[role][bad[0]])} at index "
                            f"{int(bad[0])} is out of range: {name} has classes 0 to {N_CLASSES - 1}")
    return _split(name, arrays, val_size, (1, 28, 28))


#: the built-in datasets' classes, label 0 first
CLASS_NAMES = {
    "mnist": tuple("0123456789"),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "cifar-10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


def from_arrays(x_train, y_train, x_test, y_test, *, class_names=None, val_size: int | None = None,
                name: str = "arrays") -> Dataset:
    """A dataset from arrays in the .npz convention (bnncore.userdata: uint8 images ``N x H x W``,
    ``N x H x W x C`` or ``N x D``, labels ``0..K-1``), checked as a file would be; for
    ``bnncore.train(cfg, out, data=...)``."""
    from . import userdata
    arrays, shape, names = userdata.check_arrays(name, {"x_train": x_train, "y_train": y_train, "x_test": x_test,
                                                        "y_test": y_test}, class_names)
    return _user_split(name, arrays, shape, names, val_size)


def from_torch(train, test, *, class_names=None, val_size: int | None = None, name: str = "torch") -> Dataset:
    """A dataset from two torch ``Dataset``s (or any sequences) of ``(image, label)``: images
    uint8 (tensors, arrays or 8-bit PIL images; channels last, as PIL's and NumPy's), labels
    integers. A float image is refused: bnncore's inputs are pixels 0..255."""
    def stack(items, split):
        xs, ys = [], []
        for i, (x, y) in enumerate(items):
            a = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
            if a.dtype != np.uint8:
                raise DataError(f"{name}: {split} item {i}: image of {a.dtype}; expected uint8 pixels (leave "
                                "ToTensor out of the transforms, or give pixels 0..255)")
            xs.append(a)
            ys.append(int(y))
        return np.stack(xs) if xs else np.zeros((0,), np.uint8), np.asarray(ys, np.int64)
    (xt, yt), (xe, ye) = stack(train, "train"), stack(test, "test")
    return from_arrays(xt, yt, xe, ye, class_names=class_names, val_size=val_size, name=name)


def _user_split(name, arrays, shape, class_names, val_size) -> Dataset:
    from . import userdata
    n = len(arrays["train_labels"])
    if val_size is None:
        val_size = n // 10
    elif not 0 <= val_size < n:
        raise DataError(f"{name}: val_size {val_size} is not below its {n:,} training images; give fewer "
                        f"(for instance a tenth, {n // 10})")
    ds = _split(str(name), arrays, val_size, shape)
    return replace(ds, class_names=class_names, digest=userdata.digest(arrays, class_names))


def describe(ds: Dataset) -> dict:
    """What a training run records of its data (its ``data.json`` and checkpoints): enough to
    find it again and to tell whether it is still the same."""
    return {"dataset": ds.name, "shape": list(ds.shape), "class_names": list(ds.class_names), "digest": ds.digest,
            "train": int(len(ds.train_labels)), "val": int(len(ds.val_labels)), "test": int(len(ds.test_labels))}


def load_trained_on(cfg, ckpt: dict, data_dir=None, where: str = "the checkpoint") -> Dataset:
    """The dataset a checkpoint was trained on (its config's), checked against what the run
    recorded of it: a dataset of your own that changed since is refused, not silently used."""
    ds = load_dataset(cfg.dataset, data_dir, val_size=cfg.val_size)
    recorded = ckpt.get("data") if isinstance(ckpt.get("data"), dict) else {}
    want = recorded.get("digest")
    if isinstance(want, str) and want and want != ds.digest:
        raise DataError(f"{cfg.dataset}: not the data {where} was trained on (its content digest was {want[:12]}, "
                        f"it is {ds.digest[:12]} now); train again, or point --dataset at the original data")
    return ds


def _split(name, arrays, val_size, shape) -> Dataset:
    n_train = len(arrays["train_labels"])
    if not 0 <= val_size < n_train:
        raise DataError(f"val_size must be in [0, {n_train}), not {val_size}")
    cut = n_train - val_size
    ti, tl = arrays["train_images"].reshape(n_train, -1), arrays["train_labels"]
    return Dataset(name, ti[:cut], tl[:cut], ti[cut:], tl[cut:],
                   arrays["test_images"].reshape(len(arrays["test_labels"]), -1), arrays["test_labels"], shape,
                   CLASS_NAMES.get(name, ()))


def verify(name: str, data_dir=None) -> dict:
    """Check the md5 of every file's decompressed content; return {file: 'ok' | reason}."""
    folder = find_dataset_dir(name, data_dir)
    if name == Cifar10.name:
        path = folder / Cifar10.archive
        if not path.is_file():   # no published md5 for the extracted files: they must load, labels in range
            Cifar10.load(folder)
            return {f"{folder / Cifar10.folder} (extracted batches: well-formed; only the archive has an md5)": "ok"}
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        return {str(path): "ok" if digest == Cifar10.md5 else f"md5 {digest}, expected {Cifar10.md5}"}
    spec = _dataset_spec(name)
    result = {}
    for f in spec.files.values():
        path = _file_in(folder, f)
        digest = hashlib.md5(_read_bytes(path)).hexdigest()
        result[str(path)] = "ok" if digest == f.md5 else f"md5 {digest}, expected {f.md5}"
    return result


def _check_download(path: Path, f: _File):
    """Accept the published .gz (its md5), or any gzip whose content is the dataset's (a
    re-compressed mirror copy, as Debian ships); reject anything else."""
    raw = path.read_bytes()
    if hashlib.md5(raw).hexdigest() == f.md5_gz:
        return
    try:
        content_md5 = hashlib.md5(gzip.decompress(raw)).hexdigest()
    except (OSError, EOFError, zlib.error):
        content_md5 = "(not a valid gzip stream)"
    if content_md5 != f.md5:
        raise DataError(f"md5 {hashlib.md5(raw).hexdigest()} of the download, expected {f.md5_gz} "
                        f"(or decompressed content md5 {f.md5}, got {content_md5})")


#: the slowest download fetch waits for: a file of N bytes may take timeout + N / this seconds
MIN_BYTES_PER_SECOND = 50_000


def _gz_limit(f: _File) -> int:
    """The most bytes a .gz of ``f`` may have: its content (the IDX header and the values) and
    gzip's overhead on data that does not compress."""
    content = 4 * (1 + len(f.shape)) + int(np.prod(f.shape))
    return content + content // 100 + (1 << 16)


def _download(url: str, out, limit: int, timeout: float):
    """Copy ``url`` into the open file ``out``: at most ``limit`` bytes (more is refused as not
    the file), within ``timeout`` seconds per read and ``timeout + limit /
    MIN_BYTES_PER_SECOND`` in all (a mirror that trickles is given up on)."""
    deadline = time.monotonic() + timeout + limit / MIN_BYTES_PER_SECOND
    got = 0
    with urllib.request.urlopen(url, timeout=timeout) as r:
        while True:
            if time.monotonic() > deadline:
                raise DataError(f"slower than {MIN_BYTES_PER_SECOND // 1000} kB/s: gave up after "
                                f"{got:,} bytes in {timeout + limit / MIN_BYTES_PER_SECOND:.0f} s")
            block = r.read1(min(1 << 16, limit + 1 - got))   # what has come: a trickle is timed, not waited on
            if not block:
                return
            got += len(block)
            if got > limit:
                raise DataError(f"the mirror sent more than {limit:,} bytes, more than the file has; not the file")
            out.write(block)


def fetch(name: str, dest: str | os.PathLike | None = None, *, mirrors=None, timeout: float = 60,
          log=print) -> Path:
    """Download dataset ``name`` into ``dest/<name>`` (default: the user cache).

    Each file is downloaded to a temporary file, its md5 checked against the published one
    (or, for a re-compressed copy, the md5 of its content), and only then renamed into place: a corrupt or interrupted download leaves nothing behind.
    Files already present with the right content are kept.
    """
    if name == Cifar10.name:
        return _fetch_cifar10(Path(dest if dest is not None else cache_dir()) / name, mirrors, timeout, log)
    spec = _dataset_spec(name)
    folder = Path(dest if dest is not None else cache_dir()) / name
    folder.mkdir(parents=True, exist_ok=True)
    mirrors = tuple(mirrors) if mirrors else spec.mirrors
    for f in spec.files.values():
        target = folder / (f.name + ".gz")
        existing = _file_in(folder, f)
        try:
            present = existing is not None and hashlib.md5(_read_bytes(existing)).hexdigest() == f.md5
        except DataError:          # a corrupt copy: downloaded again
            present = False
        if present:
            log(f"{existing}: present, md5 ok")
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + f.name + ".gz"
            fd, tmp = temp_file(folder / f.name, ".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    _download(url, out, _gz_limit(f), timeout)
                _check_download(Path(tmp), f)
                os.replace(tmp, target)
                log(f"{target}: downloaded from {url}, md5 ok")
                break
            except (OSError, urllib.error.URLError, DataError) as e:
                errors.append(f"  {url}: {e}")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            raise DataError(f"could not download {f.name}.gz for {name}:\n" + "\n".join(errors))
    return folder


def _fetch_cifar10(folder: Path, mirrors, timeout, log) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Cifar10.archive
    if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == Cifar10.md5:
        log(f"{target}: present, md5 ok")
        return folder
    errors = []
    for mirror in tuple(mirrors) if mirrors else Cifar10.mirrors:
        url = mirror.rstrip("/") + "/" + Cifar10.archive
        fd, tmp = temp_file(folder / Cifar10.archive, ".part")
        try:
            with os.fdopen(fd, "wb") as out:
                _download(url, out, Cifar10.archive_bytes, timeout)
            digest = hashlib.md5(Path(tmp).read_bytes()).hexdigest()
            if digest != Cifar10.md5:
                raise DataError(f"md5 {digest} of the download, expected {Cifar10.md5}")
            os.replace(tmp, target)
            log(f"{target}: downloaded from {url}, md5 ok")
            return folder
        except (OSError, urllib.error.URLError, DataError) as e:
            errors.append(f"  {url}: {e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError(f"could not download {Cifar10.archive}:\n" + "\n".join(errors))


# --- Input binarization ---------------------------------------------------------------------

@dataclass(frozen=True)
class InputBinarization:
    """How uint8 pixels become the network's input, in training.

    Parameters
    ----------
    scheme : 'threshold' | 'probability' | 'uint8' | 'none'
        'uint8': the first layer sees the raw pixels 0..255 (its weights are still +-1).
    level : int
        For 'threshold': bit = pixel >= level (0..256).
    repeats : int
        For 'probability' in training: passes over the training set per epoch, each with
        freshly sampled bits (seed 001 overlapped up to 50 samples).

    :meth:`network_input` is the part a folded network keeps (``network.InputScheme``).
    """
    scheme: str = "threshold"
    level: int = 128
    repeats: int = 1

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise UsageError(f"input scheme must be one of {', '.join(map(repr, SCHEMES))}, not {self.scheme!r}")
        if not isinstance(self.level, int) or not 0 <= self.level <= 256:
            raise UsageError(f"threshold level must be an integer in [0, 256], not {self.level!r}")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise UsageError(f"repeats must be a positive integer, not {self.repeats!r}")

    @property
    def binary(self) -> bool:
        """Can a network trained on this input be folded (bits or integer pixels, not floats)?"""
        return self.scheme != "none"

    def network_input(self):
        """The folded network's input scheme (without the training-only ``repeats``)."""
        from .network import InputScheme
        if self.scheme == "none":
            raise UsageError("input scheme 'none' (float pixels) has no integer representation; "
                             "train with --input threshold, probability or uint8")
        return InputScheme(self.scheme, self.level)

    def bits(self, images: np.ndarray) -> np.ndarray:
        """Deterministic inference input (uint8: 0/1 bits, or the pixels for 'uint8') of uint8
        images; what the hardware is fed."""
        if self.scheme == "none":
            raise UsageError("input scheme 'none' has no bit representation")
        return self.network_input().bits(images)


#: Input schemes, in the order the command line lists them.
SCHEMES = ("threshold", "probability", "uint8", "none")
