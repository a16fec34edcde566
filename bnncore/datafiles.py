"""The datasets' file formats, read as hostile input: IDX files (MNIST, Fashion-MNIST) and
CIFAR-10's python-pickle batches, unpickled with only the names a NumPy array needs."""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["read_idx", "Cifar10", "N_CLASSES"]


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip stream ({e})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) and return its array.

    Raises
    ------
    DataError
        If the magic number, the dimensions or the size of the data are wrong; the message
        names the file and what was expected.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header (4 bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: bad magic number {raw[:4].hex()}: an IDX file starts with two zero bytes")
    if raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{raw[2]:02x}, expected one of "
                        + ", ".join(f"0x{k:02x}" for k in _IDX_DTYPES))
    ndim = raw[3]
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize   # Python integers: absurd dimensions do not wrap
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DataError(f"{path}: data {what}: dimensions {dims} need {expected} bytes after the "
                        f"header, found {got}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


#: Classes of every dataset here (MNIST digits, Fashion-MNIST articles, CIFAR-10 objects).
N_CLASSES = 10


class _RestrictedUnpickler(pickle.Unpickler):
    """CIFAR-10's batches are Python pickles; a pickle can run any code it names. Only the
    names a NumPy array needs are allowed, so a tampered file is an error, not an exploit."""
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR-10 batch")


class Cifar10:
    """CIFAR-10 as published: the python-pickle batches (``data_batch_1`` .. ``data_batch_5``,
    ``test_batch``), extracted into ``<dir>/cifar-10/cifar-10-batches-py/`` or as the archive
    ``<dir>/cifar-10/cifar-10-python.tar.gz``. Images are returned flat in (y, x, channel)
    order, (N, 32 * 32 * 3), the order of every other stage."""
    name = "cifar-10"
    shape = (3, 32, 32)
    archive_bytes = 170_498_071      # the published archive's size
    archive = "cifar-10-python.tar.gz"
    md5 = "c58f30108f718f92721af3b95e74349a"
    mirrors = ("https://www.cs.toronto.edu/~kriz/",)
    folder = "cifar-10-batches-py"
    train = tuple(f"data_batch_{i}" for i in range(1, 6))
    test = "test_batch"

    @classmethod
    def missing(cls, folder: Path) -> list:
        return [] if (folder / cls.archive).is_file() else cls.missing_extracted(folder)

    @classmethod
    def _batches(cls, folder: Path) -> dict:
        """{batch name: (path for messages, raw bytes)}."""
        if (folder / cls.folder).is_dir() and not cls.missing_extracted(folder):
            return {n: (folder / cls.folder / n, (folder / cls.folder / n).read_bytes()) for n in cls.train + (cls.test,)}
        path = folder / cls.archive
        try:
            with tarfile.open(path, "r:gz") as tar:
                out = {}
                for n in cls.train + (cls.test,):
                    member = tar.extractfile(f"{cls.folder}/{n}")
                    if member is None:
                        raise KeyError(n)
                    out[n] = (Path(f"{path}:{cls.folder}/{n}"), member.read())
                return out
        except KeyError as e:
            raise DataError(f"{path}: has no {cls.folder}/{e.args[0]}") from None
        except (OSError, tarfile.TarError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a readable tar.gz archive ({e})") from None

    @classmethod
    def missing_extracted(cls, folder: Path) -> list:
        return [n for n in cls.train + (cls.test,) if not (folder / cls.folder / n).is_file()]

    @staticmethod
    def _batch(where: Path, raw: bytes):
        try:
            d = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
            raise DataError(f"{where}: not a CIFAR-10 batch ({e})") from None
        if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
            raise DataError(f"{where}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
        data, labels = np.asarray(d[b"data"]), np.asarray(d[b"labels"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{where}: field b'data' must be uint8 (N, 3072), found {data.dtype} {data.shape}")
        if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{where}: field b'labels' must be {len(data)} integers, found {labels.dtype} {labels.shape}")
        bad = np.flatnonzero((labels < 0) | (labels >= N_CLASSES))
        if len(bad):
            raise DataError(f"{where}: label {int(labels[bad[0]])} at index {int(bad[0])} is out of range: "
                            f"CIFAR-10 has classes 0 to {N_CLASSES - 1}")
        # stored as (N, channel, y, x) planes; every stage here reads (y, x, channel)
        hwc = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1).reshape(len(data), -1)
        return np.ascontiguousarray(hwc), labels.astype(np.uint8)

    @classmethod
    def load(cls, folder: Path) -> dict:
        batches = cls._batches(folder)
        train = [cls._batch(*batches[n]) for n in cls.train]
        test = cls._batch(*batches[cls.test])
        return {"train_images": np.concatenate([t[0] for t in train]), "train_labels": np.concatenate([t[1] for t in train]),
                "test_images": test[0], "test_labels": test[1]}
