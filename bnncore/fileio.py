"""Atomic writes and the output folders the flow writes.

One rule for every verb that writes a folder (``-o``):

- The folder is missing, empty, or holds an earlier output of the same verb: its marker file
  (``.bnncore-output``: the verb and the files it wrote) or, for folders of older versions,
  the verb's own files (an export's manifest, rtl.json, a synthesis run.sh). A foreign
  folder, another verb's output, or an earlier output holding files it did not write is
  refused with the reason; ``force`` replaces an output of bnncore's whatever it holds, never
  a folder without its marker.
- A product (an export, an RTL directory, a synthesis) is written as a temporary sibling and
  swapped in (``new_output``): readers see the old folder or the new one, never a mix, and a
  failed run leaves the old one. A workspace that a verb continues (a training run, a
  simulation build, a sweep) is written in place, file by file atomically (``workspace``).
- One writer at a time: a lock file beside the folder; a second writer is refused. A writer
  killed half-way leaves its temporary or moved-aside folder, which the next writer removes or,
  when the old output is gone, puts back.

A file is written to a temporary file in the same directory and renamed into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import BnnError, UsageError, option

__all__ = ["read_json_object", "atomic_write_text", "atomic_savefig", "OutputDirError", "replace_dir",
           "temp_sibling", "sha256_file", "plain_name", "MARKER", "new_output", "workspace", "output_lock",
           "read_marker"]


class OutputDirError(BnnError, ValueError):
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
        raise UsageError(f"{where}: {name!r} is not a plain file name inside the directory "
                         "(letters, digits, '_', '.', '+', '-'" + (", '/' between folders" if subdirs else "")
                         + "; no absolute path, no '..')")
    return name


def temp_sibling(target) -> Path:
    """A new, empty directory beside ``target`` (same file system) with the usual permissions."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; outputs are ordinary directories
    return tmp


def replace_dir(new: Path, target: Path):
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first, then removed
    (call ``check_output`` first). A reader sees the old directory or the new one."""
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


# --- the output rule ------------------------------------------------------------------------

#: The marker every output folder holds: which verb wrote it, and the files it wrote.
MARKER = ".bnncore-output"
_MARKER_LIMIT = 1 << 20


def read_marker(folder) -> dict | None:
    """The marker of ``folder`` ({"verb", "files"}), or None: no marker, or not one of ours
    (a link, not a regular file, too large, not the JSON we write)."""
    path = Path(folder) / MARKER
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MARKER_LIMIT:
            return None
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if (not isinstance(value, dict) or value.get("generator") != "bnncore" or not isinstance(value.get("verb"), str)
            or not isinstance(value.get("files", []), list)):
        return None
    return value


def write_marker(folder, verb: str, files=None):
    """Mark ``folder`` as ``verb``'s output, listing ``files`` (default: the files in it now)."""
    folder = Path(folder)
    if files is None:
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if not p.is_dir() and p.name != MARKER)
    atomic_write_text(folder / MARKER, json.dumps({"generator": "bnncore", "verb": verb, "files": files}, indent=1)
                      + "\n")


#: the verbs that write each kind of output (a marker names the kind)
_WRITERS = {"export": "bnn fold, export or import", "swap": "bnn synth --swap-weights"}


def _who(kind: str) -> str:
    return _WRITERS.get(kind, f"bnn {kind}")


def _absolute(target) -> Path:
    target = Path(os.path.abspath(target))
    if not target.name:
        raise OutputDirError(f"{target}: not a folder bnncore can write into (choose a folder below it)")
    return target


@contextlib.contextmanager
def output_lock(target, verb: str = "bnn"):
    """Hold the lock of the output folder ``target`` (a file ``.NAME.lock`` beside it) for the
    block; another holder, in this process or another, makes it raise OutputDirError."""
    target = _absolute(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / f".{target.name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputDirError(f"{target}: another bnn command is writing it now; wait for it to end, or "
                                 "choose another output folder") from None
        try:   # the holder before us may have removed the file after we opened it: lock the file there now
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield target
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _leftovers(target: Path) -> tuple:
    """(moved-aside old outputs, temporary folders) that a killed writer of ``target`` left."""
    if not target.parent.is_dir():
        return [], []
    olds, temps = [], []
    for p in target.parent.iterdir():
        if p.is_symlink() or not p.is_dir():
            continue
        if re.fullmatch(rf"\.{re.escape(target.name)}\.old-[0-9]+", p.name):
            olds.append(p)
        elif re.fullmatch(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]+\.tmp", p.name):
            temps.append(p)
    return sorted(olds, key=lambda p: p.stat().st_mtime), temps


def recover(target, log=None) -> None:
    """Clean up after a writer of ``target`` that was killed: put back the old output it had
    moved aside when the new one never replaced it, remove its temporary folders. Call with
    the lock held."""
    target = _absolute(target)
    olds, temps = _leftovers(target)
    if olds and not target.exists() and not target.is_symlink():
        os.replace(olds.pop(), target)
        if log:
            log(f"{target}: put back the earlier output that an interrupted run had moved aside")
    for p in olds + temps:
        shutil.rmtree(p, ignore_errors=True)


def check_output(target, verb: str, owned_files=None, *, force: bool = False, in_place: bool = False):
    """Raise OutputDirError unless ``verb`` may write ``target`` under the output rule (module
    doc). ``owned_files(target)``: the files of an earlier output of ``verb`` written by a
    bnncore without markers, or None when it is none. ``in_place``: the verb continues the
    folder (files of the user's in it are left alone), so extra files do not matter."""
    target = Path(target)
    cmd = _who(verb)
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink() or not target.is_dir():
        raise OutputDirError(f"{target}: exists and is not a folder; choose another output folder")
    if not any(target.iterdir()):
        return
    marker = read_marker(target)
    if marker is not None:
        owner, owned = marker["verb"], set(marker.get("files", [])) | {MARKER}
    else:
        owned = owned_files(target) if owned_files else None
        owner = verb if owned is not None else None
        owned = set(owned or ())
    if owner is None:
        raise OutputDirError(f"{target}: exists, is not empty and was not written by {cmd}; refusing to write "
                             "into it (choose another output folder, or empty it yourself)")
    if owner != verb and not force:
        raise OutputDirError(f"{target}: holds the output of {_who(owner)}, not of {cmd}; choose another output "
                             f"folder (or {option('force')} to replace it)")
    if in_place or force:
        return
    present = {p.relative_to(target).as_posix() for p in target.rglob("*") if not p.is_dir()}
    extra = sorted(present - owned)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise OutputDirError(f"{target}: holds files that {cmd} did not write ({shown}); refusing to replace it "
                             f"(move them out, choose another output folder, or {option('force')} to replace it all)")


@contextlib.contextmanager
def new_output(target, verb: str, owned_files=None, *, force: bool = False, log=None):
    """Write a new output of ``verb`` into the folder the block is given, which replaces
    ``target`` when the block ends, or is removed when it fails: ``target`` is the old
    output or the complete new one (module doc)."""
    with output_lock(target) as target:
        recover(target, log)
        check_output(target, verb, owned_files, force=force)
        work = temp_sibling(target)
        try:
            yield work
            write_marker(work, verb)
            replace_dir(work, target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise


@contextlib.contextmanager
def workspace(target, verb: str, owned_files=None, *, force: bool = False):
    """Hold ``target`` as ``verb``'s workspace, written in place (module doc): created and
    marked if new, refused if it is not ``verb``'s."""
    with output_lock(target) as target:
        check_output(target, verb, owned_files, force=force, in_place=True)
        target.mkdir(parents=True, exist_ok=True)
        marker = read_marker(target)
        if marker is None or marker["verb"] != verb:
            write_marker(target, verb, files=[])     # files of a workspace are not listed: it is continued
        yield target
