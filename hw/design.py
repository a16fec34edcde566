"""The hardware contract without Amaranth: what a generated design's rtl.json says and how it
is read and checked (``load_rtl``, ``plan_of``), and the ROMs a folding plan has and what a
network puts in them (``rom_ports``, ``rom_images``, ``write_rom_files``). The host driver, the
benches, the swaps and the report read designs through this module, so that they run where
Amaranth is not installed; hw/generate.py writes the designs.
"""

from __future__ import annotations

import re
from pathlib import Path

from bnncore.errors import BnnError
from bnncore.fileio import atomic_write_text, plain_name, read_json_object, sha256_file
from bnncore.network import FoldedNetwork

from .identity import check_network
from .layout import rom_slices, slice_bits, threshold_words, weight_rom, weight_words
from .plan import Plan, address_bits

__all__ = ["RtlError", "load_rtl", "check_rom_file", "plan_of", "rom_ports", "rom_images", "write_rom_files",
           "swap_rom_files"]


def _value_bits(plan: Plan, fold) -> int:
    return fold.value_bits if fold.kind == "hidden" else plan.bias_bits


def rom_ports(plan: Plan) -> list:
    """(name, depth, width, slices) of every ROM: weights w<k> and thresholds/biases t<k>.
    A ROM of ``slices`` column slices (``plan.rom_slices``) has one address per slice."""
    roms = []
    for f in plan.layers:
        rom = weight_rom(f, plan.pipelined)
        roms.append((f"w{f.index}", rom.depth, rom.width, rom.slices))
        t_width = f.pe * _value_bits(plan, f)
        roms.append((f"t{f.index}", f.nf, t_width, len(rom_slices(t_width, f.nf))))
    return roms


def rom_images(net: FoldedNetwork, plan: Plan) -> dict:
    """{rom name: (width, [words])} for every ROM of ``plan`` holding ``net``."""
    check_network(net, plan)
    images = {}
    for f, stage in zip(plan.layers, net.weight_layers):
        vb = _value_bits(plan, f)
        values = stage.bias if f.kind == "output" else stage.thresholds
        rom = weight_rom(f, plan.pipelined)
        images[f"w{f.index}"] = (rom.width, weight_words(stage.matrix, f, rom.row_words))
        images[f"t{f.index}"] = (f.pe * vb, threshold_words(values, f, vb))
    return images


def _mem_text(width: int, words: list) -> str:
    return "".join(format(w, f"0{width}b") + "\n" for w in words)


def write_rom_files(net: FoldedNetwork, plan: Plan, out_dir, prefix: str = "bnn_") -> dict:
    """Write the ROM files of ``net`` into ``out_dir``; return {rom name: path}.

    Used by ``generate`` and, for a retrained network of the same topology and folding, on
    its own: the RTL reads whatever files its parameters name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (width, words) in rom_images(net, plan).items():
        path = out / f"{prefix}{name}.mem"
        atomic_write_text(path, _mem_text(width, words))
        paths[name] = path
    return paths


class RtlError(BnnError, ValueError):
    """An RTL directory is missing, incomplete, changed since ``bnn rtl`` or not ours."""


_PARAMETER = re.compile(r"[A-Z][A-Z0-9_]*_FILE")


def _need_int(v, where: str, minimum: int = 0) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise RtlError(f"{where} must be an integer of at least {minimum}, found {v!r}")
    return v


def load_rtl(rtl_dir, *, rom_dir=None, verify: bool = True) -> dict:
    """Read and validate ``rtl_dir/rtl.json``; return it.

    Every file name must be a plain name inside the directory; with ``verify``, every file
    must have the sha256 that ``bnn rtl`` recorded. ROM files read from ``rom_dir`` instead
    (other weights for the same design) are checked for their shape: one line per word of
    the ROM's width in binary digits. Raises RtlError naming the file and the field.
    """
    d = Path(rtl_dir)
    path = d / "rtl.json"
    if not path.is_file() and not path.is_symlink():
        if (d / "manifest.json").is_file():
            raise RtlError(f"{d} is an export directory (a network), not an RTL directory: give the RTL directory "
                           f"of bnn rtl first, then the network (bnn rtl {d} -o RTL writes one)")
        if (d / "report.json").is_file() and (d / "run.sh").is_file():
            raise RtlError(f"{d} is a synthesis output of bnn synth, not an RTL directory: give the RTL directory "
                           "it was built from")
        raise RtlError(f"{path}: missing; {d} is not an RTL directory: generate the RTL with `bnn rtl NET -o {d}` first")
    info = read_json_object(path, RtlError, "generate the RTL with `bnn rtl` first")
    if not str(info.get("generator", "")).startswith("bnncore"):
        raise RtlError(f"{path}: field 'generator' must name bnncore; not an RTL directory of `bnn rtl`")
    try:
        files, memories = info["files"], info["memories"]
        verilog, vhdl = list(files["verilog"]), list(files["vhdl"])
        names = verilog + vhdl + [files["verilator_waivers"]]
        for name in names:
            plain_name(name, f"{path}: field 'files'")
        if not isinstance(memories, dict) or not memories:
            raise RtlError(f"{path}: field 'memories' must be an object of ROMs")
        for rom, m in memories.items():
            where = f"{path}: field 'memories.{rom}"
            plain_name(m["file"], where + ".file'")
            if not isinstance(m["parameter"], str) or not _PARAMETER.fullmatch(m["parameter"]):
                raise RtlError(f"{where}.parameter' must be an HDL parameter name like W0_FILE, found {m['parameter']!r}")
            _need_int(m["depth"], where + ".depth'", 1)
            _need_int(m["width"], where + ".width'", 1)
            names.append(m["file"])
        for key in ("latency", "cycles_per_image"):
            _need_int(info["timing"][key], f"{path}: field 'timing.{key}'", 1)
        for key in ("width", "beats_per_image"):
            _need_int(info["ports"]["input"][key], f"{path}: field 'ports.input.{key}'", 1)
        for key in ("width", "class_bits", "score_bits"):
            _need_int(info["ports"]["output"][key], f"{path}: field 'ports.output.{key}'", 1)
        topology = info["topology"]
        if not isinstance(topology, list) or len(topology) < 2:
            raise RtlError(f"{path}: field 'topology' must be a list of layer sizes, found {topology!r}")
        for v in topology:
            _need_int(v, f"{path}: field 'topology'", 1)
    except RtlError:
        raise
    except ValueError as e:
        raise RtlError(str(e)) from None
    except (KeyError, TypeError, AttributeError) as e:
        raise RtlError(f"{path}: missing or malformed field ({type(e).__name__}: {e}); regenerate it with "
                       "`bnn rtl`") from None
    digests = info.get("sha256")
    if not isinstance(digests, dict):
        raise RtlError(f"{path}: no field 'sha256' (the checksums of its files); it was written by an older "
                       "bnncore: regenerate it with `bnn rtl`")
    rom_files = {m["file"] for m in memories.values()}
    for name in names:
        if name not in digests:
            raise RtlError(f"{path}: field 'sha256' has no entry for {name}")
    if not verify:
        return info
    for name in names:
        if rom_dir is not None and name in rom_files:
            continue
        f = d / name
        if f.is_symlink() or not f.is_file():
            raise RtlError(f"{f}: missing or not a plain file (listed in rtl.json)")
        if sha256_file(f) != digests[name]:
            raise RtlError(f"{f}: sha256 does not match rtl.json; the file was changed after `bnn rtl`: regenerate "
                           "the RTL (other weights for the same design: bnn sim --swap-roms NET, bnn synth --roms DIR)")
    if rom_dir is not None:
        for rom, m in memories.items():
            check_rom_file(Path(rom_dir) / m["file"], m["depth"], m["width"])
    return info


def check_rom_file(path: Path, depth: int, width: int):
    """Raise RtlError unless ``path`` holds ``depth`` lines of ``width`` binary digits."""
    if path.is_symlink() or not path.is_file():
        raise RtlError(f"{path}: ROM file missing or not a plain file")
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != depth:
        raise RtlError(f"{path}: {len(lines)} lines, expected {depth} (one word per line of the ROM)")
    word = re.compile(rb"[01]{%d}" % width)
    for k, line in enumerate(lines):
        if not word.fullmatch(line):
            raise RtlError(f"{path}: line {k + 1} is not {width} binary digits")


def swap_rom_files(net: FoldedNetwork, info: dict, out_dir) -> Path:
    """Write ``net``'s ROM files for the design that ``info`` (its rtl.json) describes into
    ``out_dir``, under the file names the design's parameters default to; return ``out_dir``.
    The network must have the design's topology and biases that fit its width."""
    plan = plan_of(info)
    try:
        check_network(net, plan)
    except ValueError as e:
        raise RtlError(f"{e}; its weights cannot be swapped into this RTL (generate RTL for it with bnn rtl)") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (width, words) in rom_images(net, plan).items():
        atomic_write_text(out / info["memories"][name]["file"], _mem_text(width, words))
    return out


def plan_of(info: dict) -> Plan:
    """The folding plan an RTL directory was generated for (from its rtl.json)."""
    from .identity import plan_from_rtl
    try:
        return plan_from_rtl(info)
    except ValueError as e:
        raise RtlError(str(e)) from None


def _port_widths(plan: Plan) -> dict:
    """{ROM name: (address bits per slice, width, depth, bits per slice, slices)}."""
    return {name: (address_bits(depth), width, depth, min(slice_bits(depth), width), slices)
            for name, depth, width, slices in rom_ports(plan)}
