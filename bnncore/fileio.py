"""Atomic writes and the output directories the flow replaces.

A file is written to a temporary file in the same directory and renamed into place; an
output directory (an export, an RTL directory) is written as a temporary sibling and swapped
in. A directory is replaced only when it is empty or an earlier output of the same kind that
holds nothing else: the flow never deletes what it did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["read_json_object", "atomic_write_text", "atomic_savefig", "OutputDirError", "check_replaceable", "replace_dir",
           "temp_sibling", "sha256_file", "plain_name"]


class OutputDirError(ValueError):
    """An output path that the flow refuses to write or replace."""


def read_json_object(path: Path, error, missing: str) -> dict:
    """The JSON object in ``path``; ``error`` (an exception class) names the file when it is
    missing (with the hint ``missing``), not UTF-8, not JSON or not an object."""
    if not path.is_file():
        raise error(f"{path}: missing; {missing}")
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise error(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def plain_name(name, where: str, *, subdirs: bool = False) -> str:
    """``name`` if it is a plain relative file name (letters, digits, ``_ . + -``; with
    ``subdirs``, '/'-separated such names), else raise ValueError naming ``where``. What a
    file written by the flow may be called: nothing absolute, no ``..``, nothing a shell or
    a tool script would read as syntax."""
    parts = name.split("/") if isinstance(name, str) and subdirs else [name]
    if not isinstance(name, str) or not all(isinstance(p, str) and _PLAIN.fullmatch(p) and p not in (".", "..")
                                            for p in parts):
        raise ValueError(f"{where}: {name!r} is not a plain file name inside the directory "
                         "(letters, digits, '_', '.', '+', '-'" + (", '/' between folders" if subdirs else "")
                         + "; no absolute path, no '..')")
    return name


def check_replaceable(target, what: str, owned_files):
    """Raise OutputDirError unless ``target`` may be replaced by a new ``what``.

    ``owned_files(target)`` returns the set of relative file paths of an earlier ``what`` in
    ``target``, or None when ``target`` is not one. A missing or empty directory may be
    replaced; an earlier ``what`` only if it holds nothing but its own files.
    """
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink() or not target.is_dir():
        raise OutputDirError(f"{target}: exists and is not a directory; refusing to replace it with {what} "
                             "(choose another output directory)")
    present = {p.relative_to(target).as_posix() for p in target.rglob("*") if not p.is_dir()}
    if not present and not any(target.iterdir()):
        return
    owned = owned_files(target)
    if owned is None:
        raise OutputDirError(f"{target}: exists and is not {what}; refusing to replace it (choose another "
                             "output directory, or remove it yourself)")
    extra = sorted(present - set(owned))
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        kind = what.split(" ", 1)[1] if what.startswith(("a ", "an ")) else what
        raise OutputDirError(f"{target}: holds files that are not part of the {kind} it contains "
                             f"({shown}); refusing to replace it (move them out, or choose another output "
                             "directory)")


def temp_sibling(target) -> Path:
    """A new, empty directory beside ``target`` (same file system) with the usual permissions."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; outputs are ordinary directories
    return tmp


def replace_dir(new: Path, target: Path):
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first, then removed
    (call ``check_replaceable`` first). A reader sees the old directory or the new one."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def temp_file(path, suffix: str = "") -> tuple:
    """``(fd, name)`` of a new file beside ``path`` (same file system, for ``os.replace``) with
    the permissions an ordinary new file gets, not mkstemp's owner-only ones."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def atomic_write_text(path, text: str):
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_savefig(fig, path, dpi: int = 110):
    """Save a matplotlib figure as PNG to ``path`` atomically, then close it."""
    import matplotlib.pyplot as plt
    path = Path(path)
    fd, tmp = temp_file(path, ".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
