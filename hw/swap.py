"""New weights in a built bitstream without synthesis or place and route.

A swappable build (``synthesize(..., swappable=True)``, ``bnn synth --swappable``) keeps every
ROM in block RAM and builds with placeholder contents: random words whose bit columns, cut
into the slices a block RAM holds of one data bit (256 words on iCE40, 512 on ECP5), all
differ and are not all zero. Place and route keeps those contents where they are, so each
slice is found again by its contents in the placed design (``swap/placeholder.asc`` or
``.config``) and replaced with the same slice of any network of the same topology and
folding, as icestorm's ``icebram`` and prjtrellis' ``ecpbram`` do (``patch``; the tests
check it against them with ``patch_with_tool``). ``swap``
does that for the network the build was made for, and ``swap_weights`` for any other, in
seconds; ``decode`` reads the ROM words back out of a patched design through the
placeholder's slices, the check that every ROM bit of the new network landed where the
design reads it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from bnncore.errors import BnnError
from bnncore.fileio import atomic_write_text

from .design import RtlDesign
from .tools import SynthError, find_tool

__all__ = ["SwapError", "make_placeholders", "write_mem", "read_mem", "prepare", "swap",
           "swap_weights", "decode", "patch", "patch_with_tool"]


class SwapError(BnnError, ValueError):
    """A build cannot take new weights, or the new weights do not fit it."""


def _slices(bits: np.ndarray, words: int):
    """(column, first word, pattern) of each ``words``-word slice of each column of a (depth,
    width) 0/1 array, depth padded with zeros to whole slices (what block RAM holds past the
    last word)."""
    depth, width = bits.shape
    padded = np.zeros((-(-depth // words) * words, width), np.uint8)
    padded[:depth] = bits
    for col in range(width):
        for lo in range(0, len(padded), words):
            yield col, lo, padded[lo:lo + words, col].tobytes()


def make_placeholders(memories: dict, words: int, seed: int = 0, tries: int = 20) -> dict:
    """{name: (depth, width) 0/1 array}, for ``memories`` {name: (depth, width)}, of random ROM
    contents whose ``words``-word slices all
    differ from each other and from zero, whose columns are not constant and whose last word
    is all ones: each slice then names one place in the placed design."""
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        out, seen, ok = {}, {bytes(words)}, True
        for name, mem in memories.items():
            bits = rng.integers(0, 2, mem, dtype=np.uint8)
            # the last word all ones: a block RAM read at another width than the ROM's spreads
            # the ROM's words over fewer positions, and then reads zero there (ECP5's ecpbram
            # tries every width)
            bits[-1] = 1
            # a constant column is no memory to synthesis: it would become a constant
            ok &= len(bits) > 1 and bool(np.all(bits.min(0) != bits.max(0)))
            for _, _, pattern in _slices(bits, words):
                if pattern in seen:
                    ok = False
                seen.add(pattern)
            out[name] = bits
        if ok:
            return out
    small = min(memories, key=lambda n: memories[n][0])
    raise SwapError(f"ROM {small} has {memories[small][0]} words: too few for its {memories[small][1]} "
                    "bit columns to be told apart by their contents in the bitstream; a swappable build needs "
                    "deeper ROMs (fold that layer with fewer PEs or a smaller SIMD)")


def write_mem(path: Path, bits: np.ndarray):
    """A ROM file ($readmemb: one binary word per line, most significant bit first)."""
    atomic_write_text(path, "".join("".join("01"[b] for b in row[::-1]) + "\n" for row in bits))


def read_mem(path: Path, width: int) -> np.ndarray:
    """A ROM file as a (depth, width) 0/1 array, bit i of a word in column i."""
    if path.is_symlink() or not path.is_file():
        raise SwapError(f"{path}: ROM file missing or not a plain file")
    rows = path.read_text(errors="replace").split()
    bad = [k for k, r in enumerate(rows, 1) if len(r) != width or set(r) - {"0", "1"}]
    if bad:
        raise SwapError(f"{path}: line {bad[0]} is not a {width}-bit binary word")
    return np.array([[int(c) for c in r[::-1]] for r in rows], np.uint8).reshape(len(rows), width)


def _hex(bits: np.ndarray, words: int) -> str:
    """The tools' hex file: one word per line, padded with zero words to whole slices."""
    depth, width = bits.shape
    digits = -(-width // 4)
    values = [int("".join("01"[b] for b in row[::-1]), 2) for row in bits]
    values += [0] * (-depth % words)
    return "".join(f"{w:0{digits}x}\n" for w in values)


def _family(name: str):
    """The family module of a build (hw/families), SwapError when there is none of that name."""
    from .families import FAMILIES
    if name not in FAMILIES:
        raise SwapError(f"FPGA family {name!r} unknown; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _bram_contents(fam, text: str) -> dict:
    try:
        return fam.bram_contents(text)
    except SynthError as e:
        raise SwapError(str(e)) from None


def held_design(built: Path) -> RtlDesign:
    """The rtl.json of the design a swappable build in ``built`` holds (``swap/rtl.json``),
    validated as an RTL directory's rtl.json is, its family a registered one (hw/families)."""
    from .design import RtlError, load_rtl
    from .families import FAMILIES
    path = built / "swap" / "rtl.json"
    try:
        info = load_rtl(built / "swap", verify=False)
    except RtlError as e:
        raise SwapError(f"{e} (the design of the swappable build {built})") from None
    if info.family not in FAMILIES:
        raise SwapError(f"{path}: field 'family' must be one of {', '.join(FAMILIES)}, found {info.family!r}; "
                        f"rebuild it with bnn synth RTL --swappable -o {built}")
    _held_device(info, built)
    return info


def design_mismatch(info, held) -> str | None:
    """Why the ROM files of the design ``info`` cannot go into a build of ``held`` (both
    RtlDesigns, or rtl.json objects), or None: the logic's properties
    (``hw.identity.design_properties``) and the ROMs' shapes must be equal."""
    from .identity import describe_differences, design_differences, design_properties
    info, held = RtlDesign.from_json(info), RtlDesign.from_json(held)
    diffs = design_differences(design_properties(held.plan), design_properties(info.plan))
    if diffs:
        return describe_differences(diffs, "the build", "the RTL")
    shapes = {n: (m.depth, m.width) for n, m in info.memories.items()}
    held_shapes = {n: (m.depth, m.width) for n, m in held.memories.items()}
    if shapes != held_shapes:
        bad = next(n for n in sorted(set(shapes) | set(held_shapes)) if shapes.get(n) != held_shapes.get(n))
        return f"ROM {bad}: the build has {held_shapes.get(bad)} (words, bits), the RTL {shapes.get(bad)}"
    return None


def _held_device(info: RtlDesign, built: Path):
    """The Device a swappable build was made for, None for an older build that does not name it."""
    from .families import DEVICES
    if info.device is None:
        return None
    if info.device not in DEVICES:
        raise SwapError(f"{built / 'swap' / 'rtl.json'}: field 'device' must be one of {', '.join(DEVICES)}, found "
                        f"{info.device!r}; rebuild it with bnn synth RTL --swappable -o {built}")
    return DEVICES[info.device]


def prepare(rtl: RtlDesign, device, out: Path, seed: int = 0) -> Path:
    """Write the placeholder ROM files of a swappable build for ``device`` (a Device) into
    ``out/swap/placeholder`` (under the names rtl.json gives them) and rtl.json's copy, with
    the family and device; return the folder."""
    family = device.family
    ph = make_placeholders({n: (m.depth, m.width) for n, m in rtl.memories.items()}, _family(family).slice_words, seed)
    folder = out / "swap" / "placeholder"
    folder.mkdir(parents=True, exist_ok=True)
    for name, mem in rtl.memories.items():
        write_mem(folder / mem.file, ph[name])
    atomic_write_text(out / "swap" / "rtl.json",
                      json.dumps(dict(rtl.to_json(), family=family, device=device.name), indent=1) + "\n")
    return folder


def swap(built: Path, rom_dir: Path, out: Path | None = None, log=print) -> dict:
    """Patch the placeholder contents of the swappable build in ``built`` with the ROM files in
    ``rom_dir`` (named as the build's rtl.json names them) into the placed design's text and
    bitstream in ``out`` (default: ``built``); return {ROM name: words checked}."""
    built, out = Path(built).resolve(), Path(out or built).resolve()
    info = held_design(built)
    fam = _family(info.family)
    source = built / "swap" / f"placeholder{Path(fam.placed_text).suffix}"
    if source.is_symlink() or not source.is_file():
        raise SwapError(f"{source}: missing or not a plain file; rebuild with bnn synth RTL --swappable -o {built}")
    placeholder = source.read_text(errors="replace")
    try:
        pack = [find_tool(fam.packer, SwapError), *fam.pack_args(_held_device(info, built))]
    except SynthError as e:
        raise SwapError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    work = out / "swap" / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    new, ph = {}, {}
    for name, mem in info.memories.items():
        src = Path(rom_dir) / mem.file
        if not src.is_file():
            raise SwapError(f"{src}: ROM file missing (ROM {name}, {mem.depth} words of {mem.width} bits)")
        new[name] = read_mem(src, mem.width)
        if len(new[name]) != mem.depth:
            raise SwapError(f"{src}: {len(new[name])} words; the build's ROM {name} has {mem.depth}")
        ph[name] = read_mem(built / "swap" / "placeholder" / mem.file, mem.width)
    text = patch(info.family, placeholder, ph, new)
    got = decode(info.family, text, placeholder, ph)
    for name in new:   # every bit of every ROM, where the design reads it
        if not np.array_equal(got[name], new[name]):
            raise SwapError(f"ROM {name}: the patched design's block RAMs do not hold the new words")
    # both files or neither: the bitstream is packed from the new text before either replaces its old one
    (work / fam.placed_text).write_text(text)
    r = subprocess.run(pack, cwd=work, capture_output=True, text=True)
    if r.returncode != 0:
        raise SwapError(f"{fam.packer} failed on the patched design ({work / fam.placed_text}): {r.stderr.strip()}")
    (work / fam.placed_text).replace(out / fam.placed_text)
    (work / fam.bitstream).replace(out / fam.bitstream)
    shutil.rmtree(work)
    log(f"weights swapped into the bitstream: {len(new)} ROMs, {sum(a.size for a in new.values()):,} bits")
    return {n: int(a.shape[0]) for n, a in new.items()}


def swap_weights(rtl_dir, built, rom_dir=None, out=None, log=print, force: bool = False) -> dict:
    """``bnn synth RTL --swap-weights BUILT``: the ROM files of ``rtl_dir`` (or ``rom_dir``)
    into the swappable build ``built``, after checking that they are of the same design (every
    property the logic fixes, and the ROMs' shapes). Written under the output rule
    (bnncore.fileio): into ``out``, a new folder holding the patched design, its bitstream and
    what a further swap needs; by default ``built`` itself, replaced whole. Returns the
    build's report, updated."""
    from bnncore.fileio import MARKER, OutputDirError, new_output, read_json_object

    from .design import RtlError, load_rtl
    built = Path(built).resolve()
    report_path = built / "report.json"
    report = read_json_object(report_path, SwapError, f"build it first: bnn synth RTL --swappable -o {built}")
    files = report.get("swap")
    if not files:
        raise SwapError(f"{built}: not a swappable build (its ROMs hold their contents as synthesized); "
                        f"rebuild it with bnn synth RTL --swappable -o {built}")
    if not isinstance(files, dict) or not isinstance(report.get("files"), dict):
        raise SwapError(f"{report_path}: fields 'swap' and 'files' must be objects, found {files!r}; rebuild it "
                        f"with bnn synth RTL --swappable -o {built}")
    try:
        info = load_rtl(Path(rtl_dir).resolve(), rom_dir=Path(rom_dir).resolve() if rom_dir else None)
    except RtlError as e:
        raise SwapError(str(e)) from None
    held = held_design(built)
    why = design_mismatch(info, held)
    if why:
        raise SwapError(f"{rtl_dir}: another design than the one {built} was built for ({why}); only the weights "
                        "and thresholds of the same design swap in: generate the RTL with the build's folding "
                        "and options, or build a new bitstream with bnn synth")
    out = Path(out).resolve() if out else built
    fam = _family(held.family)
    keep = {"report.json", fam.placed_text, fam.bitstream}
    try:
        with new_output(out, "synth" if out == built else "swap", force=force or out == built, log=log) as work:
            shutil.copytree(built / "swap", work / "swap", symlinks=True)
            if out == built:   # the rest of the build stays as it is
                for p in built.iterdir():
                    if p.name not in keep | {"swap", MARKER}:
                        (shutil.copytree if p.is_dir() and not p.is_symlink() else shutil.copy2)(p, work / p.name)
            swap(built, Path(rom_dir) if rom_dir else Path(rtl_dir), work, log=log)
            report = dict(report, network=dict(info.network) if info.network is not None and rom_dir is None else None)
            if out != built:
                report["placed_design_from"] = str(built)
            atomic_write_text(work / "report.json", json.dumps(report, indent=2) + "\n")
    except OutputDirError as e:
        raise SwapError(str(e)) from None
    log(f"weights swapped into {out / fam.bitstream}")
    return report


def _locate(family: str, placeholder_text: str, placeholders: dict) -> dict:
    """{ROM name: [(column, first word, block RAM, index array)]}: where each slice of
    ``placeholders`` (a swappable build's placeholder contents) is in ``placeholder_text``.
    Raises SwapError when a slice is in no block RAM, or in more than one place."""
    fam = _family(family)
    where = {}
    for ram, bits in _bram_contents(fam, placeholder_text).items():
        for idx in fam.bram_slices():
            where.setdefault(bits[idx].tobytes(), {})[(ram, idx.tobytes())] = (ram, idx)
    out = {}
    for name, bits in placeholders.items():
        out[name] = []
        for col, lo, pattern in _slices(bits, fam.slice_words):
            places = list(where.get(pattern, {}).values())
            if len(places) != 1:
                raise SwapError(f"ROM {name}, bit {col} of words {lo}-{lo + fam.slice_words - 1}: in "
                                f"{len(places)} places of the placed design, not one")
            out[name].append((col, lo, *places[0]))
    return out


def decode(family: str, text: str, placeholder_text: str, placeholders: dict) -> dict:
    """{ROM name: (depth, width) 0/1 array} read from the block RAMs of a placed design
    (``text``, an .asc or .config) at the places where ``placeholder_text`` holds the slices of
    ``placeholders``."""
    fam, out = _family(family), {}
    rams = _bram_contents(fam, text)
    for name, places in _locate(family, placeholder_text, placeholders).items():
        depth, width = placeholders[name].shape
        got = np.zeros((-(-depth // fam.slice_words) * fam.slice_words, width), np.uint8)
        for col, lo, ram, idx in places:
            got[lo:lo + fam.slice_words, col] = rams[ram][idx]
        out[name] = got[:depth]
    return out


def patch(family: str, placeholder_text: str, placeholders: dict, new: dict) -> str:
    """``placeholder_text`` with each slice of ``placeholders`` replaced by the same slice of
    ``new`` ({ROM name: (depth, width) 0/1 array}): what icebram and ecpbram do, without their
    limit to hex files of whole digits (a ROM whose width is not a multiple of 4 gives them
    all-zero pad columns, which they refuse as the same slice twice)."""
    fam = _family(family)
    rams, changed = _bram_contents(fam, placeholder_text), {}
    for name, places in _locate(family, placeholder_text, placeholders).items():
        depth, width = new[name].shape
        padded = np.zeros((-(-depth // fam.slice_words) * fam.slice_words, width), np.uint8)
        padded[:depth] = new[name]
        for col, lo, ram, idx in places:
            rams[ram][idx] = padded[lo:lo + fam.slice_words, col]
            changed[ram] = rams[ram]
    return fam.write_bram_contents(placeholder_text, changed)


def patch_with_tool(family: str, placeholder_text: str, placeholders: dict, new: dict, work: Path) -> str:
    """``patch`` by the family's own tool (icebram, ecpbram), one run per ROM: the tests'
    independent check of ``patch`` on ROMs whose widths are multiples of 4."""
    fam, text = _family(family), placeholder_text
    tool = find_tool(fam.swap_tool, SwapError)
    for name in placeholders:
        (work / f"{name}.from.hex").write_text(_hex(placeholders[name], fam.slice_words))
        (work / f"{name}.to.hex").write_text(_hex(new[name], fam.slice_words))
        try:
            text = fam.run_swap_tool(tool, work, text, f"{name}.from.hex", f"{name}.to.hex")
        except SynthError as e:
            raise SwapError(str(e)) from None
    return text
