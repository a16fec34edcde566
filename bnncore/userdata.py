"""Datasets of your own: a ``.npz`` file in the Keras convention, or a folder of images in
torchvision's ``ImageFolder`` convention. ``bnncore.data.load_dataset`` reads a path with these,
a built-in name with its own readers.

- ``.npz``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``; images uint8 as
  ``N x H x W`` (grey), ``N x H x W x C``, or flat ``N x D`` vectors; labels integers
  ``0..K-1``, every class in both splits. Read with ``allow_pickle=False``: no code runs.
  Optional ``class_names``: K strings.
- a folder: ``train/<class>/*.png|jpg|jpeg|bmp`` and ``test/<class>/*``, the same classes in
  both, 8-bit grey or RGB images (palette and alpha images are converted, 16-bit ones refused),
  all of one size. The classes are the folder names, sorted; label k is the k-th. The training
  images are shuffled in a fixed order (seed 0): on disk they come class by class, and the
  validation set is the last of them.

Everything is checked; an error names the file, what it found and what was expected. The
dataset's ``digest`` (sha256 of its arrays, labels and class names) lets a checkpoint tell
later whether it is still the data it was trained on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["is_path", "read_arrays", "check_arrays", "digest", "IMAGE_SUFFIXES", "MAX_IMAGES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: images per split a dataset may have, and pixels per image: more is not a dataset for a binary
#: network on this kind of machine (and an archive could claim any size)
MAX_IMAGES = 2_000_000
MAX_PIXELS = 512 * 512 * 4
MAX_CLASSES = 1000


def is_path(name: str) -> bool:
    """Whether ``--dataset`` names a file or folder rather than a built-in dataset."""
    return "/" in name or name.endswith(".npz") or Path(name).exists()


def read_arrays(path) -> tuple:
    """``(arrays, shape, class_names)`` of the dataset at ``path``: arrays ``train_images``,
    ``train_labels``, ``test_images``, ``test_labels`` (images uint8, flat (N, values) in (y, x,
    channel) order), ``shape`` (channels, height, width) or (values,) for vectors."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        return _read_npz(path)
    if path.is_dir():
        return _read_folder(path)
    raise DataError(f"{path}: not a .npz file or a folder with train/ and test/ (a dataset of your own), nor a "
                    "built-in dataset name (mnist, fashion-mnist, cifar-10)")


def digest(arrays: dict, class_names: tuple) -> str:
    h = hashlib.sha256("\n".join(class_names).encode())
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        a = np.ascontiguousarray(arrays[key])
        h.update(f";{key} {a.dtype.str} {a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --- .npz ---------------------------------------------------------------------------------------

def _read_npz(path: Path) -> tuple:
    import zipfile
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in keys]
            if missing:
                raise DataError(f"{path}: arrays {', '.join(missing)} missing; a dataset .npz holds x_train, "
                                f"y_train, x_test, y_test (found {', '.join(sorted(keys)) or 'none'})")
            for k in ("x_train", "x_test"):
                header = z.zip.open(k + ".npy")
                version = np.lib.format.read_magic(header)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, _ = read(header)
                if not shape or shape[0] > MAX_IMAGES or int(np.prod(shape[1:])) > MAX_PIXELS:
                    raise DataError(f"{path}: {k} has shape {shape}; expected at most {MAX_IMAGES:,} images of at "
                                    f"most {MAX_PIXELS:,} values")
            raw = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            names = z["class_names"] if "class_names" in keys else None
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, EOFError) as e:
        raise DataError(f"{path}: not a NumPy .npz archive without pickled objects "
                        f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    return check_arrays(path, raw, names)


def check_arrays(path, raw: dict, names=None) -> tuple:
    """``read_arrays``' result for arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` in the
    .npz convention (``path``: what errors name)."""
    shape = None
    arrays = {}
    for split in ("train", "test"):
        x, y = np.asarray(raw[f"x_{split}"]), np.asarray(raw[f"y_{split}"])
        where = f"{path}: x_{split}"
        if x.dtype.kind == "f" and np.isnan(x).any():
            raise DataError(f"{where} holds NaNs; expected uint8 pixels 0..255")
        if x.dtype != np.uint8:
            raise DataError(f"{where} is {x.dtype}; expected uint8 pixels 0..255 (scale and round float images, "
                            "clip others, before saving)")
        if x.ndim not in (2, 3, 4) or len(x) == 0:
            raise DataError(f"{where} has shape {x.shape}; expected N x D vectors, N x H x W (grey) or N x H x W x C "
                            "images")
        s = (x.shape[1],) if x.ndim == 2 else (1, *x.shape[1:]) if x.ndim == 3 else (x.shape[3], *x.shape[1:3])
        if shape is not None and s != shape:
            raise DataError(f"{where} holds {'x'.join(map(str, s))} images, x_train "
                            f"{'x'.join(map(str, shape))}; both splits need one shape")
        shape = s
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: y_{split} has shape {y.shape}; expected ({len(x)},), one label per image")
        if y.dtype.kind not in "iu":
            raise DataError(f"{path}: y_{split} is {y.dtype}; expected integer labels 0..K-1")
        arrays[f"{split}_images"] = np.ascontiguousarray(x.reshape(len(x), -1))
        arrays[f"{split}_labels"] = y.astype(np.int64)
    k = int(arrays["train_labels"].max()) + 1 if arrays["train_labels"].min() >= 0 else 0
    class_names = _class_names(path, None if names is None else np.asarray(names), k)
    _check_labels(path, arrays, class_names, "y_train", "y_test")
    return arrays, shape, class_names


def _class_names(path, names, k) -> tuple:
    if names is None:
        return tuple(str(c) for c in range(k))
    if names.ndim != 1 or names.dtype.kind not in "UO" or len(names) != k:
        raise DataError(f"{path}: class_names has shape {names.shape} and type {names.dtype}; expected {k} strings, "
                        "one per class")
    return tuple(str(n) for n in names)


def _check_labels(path, arrays, class_names, train_name, test_name):
    k = len(class_names)
    if not 2 <= k <= MAX_CLASSES:
        raise DataError(f"{path}: {k} classes; a dataset needs 2 to {MAX_CLASSES}")
    for split, name in (("train", train_name), ("test", test_name)):
        y = arrays[f"{split}_labels"]
        bad = np.flatnonzero((y < 0) | (y >= k))
        if len(bad):
            raise DataError(f"{path}: {name}: label {int(y[bad[0]])} at index {int(bad[0])} is out of range; the "
                            f"training labels make classes 0..{k - 1}")
        counts = np.bincount(y, minlength=k)
        if (counts == 0).any():
            c = int(np.flatnonzero(counts == 0)[0])
            raise DataError(f"{path}: {name} has no image of class {class_names[c]!r} (label {c}); every class needs "
                            "at least one image in each split")


# --- ImageFolder ------------------------------------------------------------------------------

def _read_folder(root: Path) -> tuple:
    splits = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir() or folder.is_symlink():
            raise DataError(f"{root}: no {split}/ folder; a dataset folder holds train/<class>/ and test/<class>/ "
                            "of images")
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                         and not p.name.startswith("."))
        if not classes:
            raise DataError(f"{folder}: no class folders; expected {split}/<class>/ with the class's images")
        splits[split] = (folder, classes)
    names = tuple(splits["train"][1])
    if tuple(splits["test"][1]) != names:
        extra = sorted(set(splits["test"][1]) ^ set(names))
        raise DataError(f"{root}: train/ and test/ have different classes (only in one of them: {', '.join(extra)})")
    if len(names) > MAX_CLASSES:
        raise DataError(f"{root}: {len(names)} classes; a dataset has at most {MAX_CLASSES}")
    arrays, shape = {}, None
    for split, (folder, _) in splits.items():
        images, labels = [], []
        for label, name in enumerate(names):
            files = sorted(p for p in (folder / name).iterdir() if not p.name.startswith("."))
            if not files:
                raise DataError(f"{folder / name}: an empty class folder; every class needs at least one image in "
                                "each split")
            for f in files:
                pixels = _read_image(f)
                if shape is None:
                    shape = pixels.shape
                elif pixels.shape != shape:
                    raise DataError(f"{f}: {_size(pixels.shape)}; the first image was {_size(shape)}, and a "
                                    "dataset's images all have one size (resize them first)")
                images.append(pixels.reshape(-1))
                labels.append(label)
                if len(images) > MAX_IMAGES:
                    raise DataError(f"{folder}: more than {MAX_IMAGES:,} images")
        images, labels = np.stack(images), np.asarray(labels, np.int64)
        if split == "train":     # class by class on disk: shuffled (seed 0), so that the validation tenth mixes them
            order = np.random.default_rng(0).permutation(len(labels))
            images, labels = images[order], labels[order]
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
    h, w, c = shape
    _check_labels(root, arrays, names, "train/", "test/")
    return arrays, (c, h, w), names


def _size(shape) -> str:
    h, w, c = shape
    return f"{w}x{h} {'grey' if c == 1 else 'RGB'}"


def _read_image(path: Path) -> np.ndarray:
    """(height, width, channels) uint8 of an 8-bit grey or RGB image file."""
    from PIL import Image, UnidentifiedImageError
    if path.is_symlink() or not path.is_file():
        raise DataError(f"{path}: not a regular file; a class folder holds image files only")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: not an image file ({', '.join(IMAGE_SUFFIXES)}); a class folder holds images only")
    try:
        with Image.open(path) as im:
            if im.width * im.height * len(im.getbands()) > MAX_PIXELS:
                raise DataError(f"{path}: {im.width}x{im.height} pixels, more than a dataset image can have")
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise DataError(f"{path}: a {'16-bit' if mode.startswith('I;16') else mode} image; bnncore reads "
                                "8-bit grey or RGB images (convert it to 8 bits first)")
            if mode in ("1", "LA", "L"):
                im = im.convert("L")
            else:
                im = im.convert("RGB")
            a = np.asarray(im, np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({type(e).__name__}: {' '.join(str(e).split())[:160]})") \
            from None
    return a.reshape(a.shape[0], a.shape[1], -1)
