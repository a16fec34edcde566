"""The hardware contract without Amaranth: what a generated design's rtl.json says and how it
is read and checked (``load_rtl``, ``plan_of``), and the ROMs a folding plan has and what a
network puts in them (``rom_ports``, ``rom_images``, ``write_rom_files``). The host driver, the
benches, the swaps and the report read designs through this module, so that they run where
Amaranth is not installed; hw/generate.py writes the designs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from bnncore.errors import BnnError
from bnncore.fileio import atomic_write_text, plain_name, read_json_object, sha256_file
from bnncore.network import FoldedNetwork

from .identity import check_network
from .layout import rom_slices, slice_bits, threshold_words, weight_rom, weight_words
from .plan import Plan, address_bits

__all__ = ["RtlError", "RtlDesign", "Memory", "load_rtl", "check_rom_file", "plan_of", "rom_ports", "rom_images", "write_rom_files",
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


def _kind(v, at: str) -> str:
    """A memory kind's name as rtl.json gives it: one that a family registers (hw/memories.py)."""
    if v == "":
        return v
    from .memories import kind_of
    if not isinstance(v, str):
        raise RtlError(f"{at}.kind' must name a memory kind, found {v!r}")
    try:
        kind_of(v)
    except ValueError:
        raise RtlError(f"{at}.kind' names no memory kind bnncore knows: {v!r}; regenerate it with `bnn rtl`") from None
    return v


@dataclass(frozen=True)
class Memory:
    """One ROM of a design: its name, the file the design reads and the HDL parameter naming it."""
    name: str
    file: str
    parameter: str
    depth: int
    width: int
    slices: int = 1        # column slices, each with its own address (``plan.rom_slices``)
    kind: str = ""         # the memory kind the plan placed it in (hw/memories.py); "": a ROM Yosys maps


def _frozen(value):
    """A JSON value that cannot be changed: objects as read-only mappings, lists as tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value):
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


@dataclass(frozen=True, eq=False)
class RtlDesign:
    """What an RTL directory's rtl.json says, checked once (``RtlDesign.from_json``, and
    ``load_rtl`` for a directory): the readers use its fields, never the JSON.

    ``folding``, ``timing`` and ``network`` are the JSON's objects, read-only; ``plan`` is the
    folding plan the design was generated for; ``family`` is set in a swappable build's copy."""
    generator: str
    spec: str
    topology: tuple
    memories: Mapping               # name -> Memory, in the design's order
    verilog: tuple
    vhdl: tuple
    waivers: str
    in_width: int
    in_beats: int
    in_value_bits: int              # bits of an input value: 1, or 8 for pixels
    out_width: int
    class_bits: int
    score_bits: int
    latency: int
    cycles_per_image: int
    interval: float                 # the steady-state initiation interval, cycles
    timing: Mapping
    ports: Mapping                  # the ports' names, widths and layouts, as rtl.json gives them
    folding: tuple
    memory_bits_total: int
    banks: int
    out_depth: int
    bias_bits: int
    pipelined: bool
    pipeline_depth: int | None      # cycles from an engine's last issue to its consumer
    network: Mapping | None         # {"sha256", "export"} of the network it was generated from
    sha256: Mapping | None          # file name -> sha256
    family: str | None
    device: str | None              # the device a swappable build was made for (its copy only)
    _json: Mapping = field(repr=False)

    @classmethod
    def from_json(cls, info, where: str = "rtl.json") -> "RtlDesign":
        """The design ``info`` (rtl.json's object) describes; RtlError naming the field."""
        if isinstance(info, RtlDesign):
            return info
        if not isinstance(info, dict):
            raise RtlError(f"{where}: not a JSON object")
        if not str(info.get("generator", "")).startswith("bnncore"):
            raise RtlError(f"{where}: field 'generator' must name bnncore; not an RTL directory of `bnn rtl`")
        try:
            files, memories = info["files"], info["memories"]
            verilog, vhdl = list(files["verilog"]), list(files["vhdl"])
            for name in verilog + vhdl + [files["verilator_waivers"]]:
                plain_name(name, f"{where}: field 'files'")
            if not isinstance(memories, dict) or not memories:
                raise RtlError(f"{where}: field 'memories' must be an object of ROMs")
            mems = {}
            for rom, m in memories.items():
                at = f"{where}: field 'memories.{rom}"
                plain_name(m["file"], at + ".file'")
                if not isinstance(m["parameter"], str) or not _PARAMETER.fullmatch(m["parameter"]):
                    raise RtlError(f"{at}.parameter' must be an HDL parameter name like W0_FILE, found {m['parameter']!r}")
                mems[rom] = Memory(rom, m["file"], m["parameter"], _need_int(m["depth"], at + ".depth'", 1),
                                   _need_int(m["width"], at + ".width'", 1),
                                   _need_int(m.get("slices", 1), at + ".slices'", 1), _kind(m.get("kind", ""), at))
            t, pin, pout = info["timing"], info["ports"]["input"], info["ports"]["output"]
            for key in ("latency", "cycles_per_image"):
                _need_int(t[key], f"{where}: field 'timing.{key}'", 1)
            for key in ("width", "beats_per_image"):
                _need_int(pin[key], f"{where}: field 'ports.input.{key}'", 1)
            for key in ("width", "class_bits", "score_bits"):
                _need_int(pout[key], f"{where}: field 'ports.output.{key}'", 1)
            topology = info["topology"]
            if not isinstance(topology, list) or len(topology) < 2:
                raise RtlError(f"{where}: field 'topology' must be a list of layer sizes, found {topology!r}")
            for v in topology:
                _need_int(v, f"{where}: field 'topology'", 1)
            interval = t["initiation_interval"]
            if not isinstance(interval, (int, float)) or isinstance(interval, bool) or not interval > 0:
                raise RtlError(f"{where}: field 'timing.initiation_interval' must be a positive number, found "
                               f"{interval!r}")
            if not isinstance(info["folding"], list):
                raise RtlError(f"{where}: field 'folding' must list the layers, found {info['folding']!r}")
            for name, mem in mems.items():      # a placement is the folding's, or the logic is another
                row = info["folding"][int(name[1:])] if re.fullmatch(r"w\d+", name) and \
                    int(name[1:]) < len(info["folding"]) else {}
                want = row.get("weight_memory", "") if isinstance(row, dict) else ""
                if mem.kind != want:
                    raise RtlError(f"{where}: field 'memories.{name}.kind' is {mem.kind or 'absent'!r}, but the "
                                   f"folding places {name} in {want or 'block RAM'!r}; regenerate it with `bnn rtl`")
            network, digests = info.get("network"), info.get("sha256")
            return cls(
                generator=info["generator"], spec=info.get("spec") or "-".join(map(str, topology)),
                topology=tuple(topology), memories=MappingProxyType(mems), verilog=tuple(verilog), vhdl=tuple(vhdl),
                waivers=files["verilator_waivers"], in_width=pin["width"], in_beats=pin["beats_per_image"],
                in_value_bits=pin.get("value_bits", 1), out_width=pout["width"], class_bits=pout["class_bits"], score_bits=pout["score_bits"],
                latency=t["latency"], cycles_per_image=t["cycles_per_image"], interval=float(interval),
                timing=_frozen(t), ports=_frozen(info["ports"]), folding=_frozen(info["folding"]),
                memory_bits_total=info.get("memory_bits_total", sum(m.depth * m.width for m in mems.values())),
                banks=info.get("banks"), out_depth=info.get("out_depth"), bias_bits=info.get("bias_bits"),
                pipelined=info.get("pipelined"), pipeline_depth=info.get("pipeline_depth"), network=_frozen(network) if isinstance(network, dict) else None,
                sha256=_frozen(digests) if isinstance(digests, dict) else None, family=info.get("family"),
                device=info.get("device") if isinstance(info.get("device"), str) else None, _json=_frozen(info))
        except RtlError:
            raise
        except ValueError as e:
            raise RtlError(str(e)) from None
        except (KeyError, TypeError, AttributeError) as e:
            raise RtlError(f"{where}: missing or malformed field ({type(e).__name__}: {e}); regenerate it with "
                           "`bnn rtl`") from None

    @property
    def files(self) -> tuple:
        """Every file the design consists of: its HDL, the lint waivers and the ROM files."""
        return self.verilog + self.vhdl + (self.waivers,) + tuple(m.file for m in self.memories.values())

    @functools.cached_property
    def plan(self) -> Plan:
        """The folding plan the design was generated for."""
        return plan_of(self)

    def to_json(self) -> dict:
        """rtl.json's object, as read (a copy the caller may change)."""
        return _thawed(self._json)


def load_rtl(rtl_dir, *, rom_dir=None, verify: bool = True) -> RtlDesign:
    """Read and validate ``rtl_dir/rtl.json``; return the design.

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
    design = RtlDesign.from_json(read_json_object(path, RtlError, "generate the RTL with `bnn rtl` first"), str(path))
    digests = design.sha256
    if digests is None:
        raise RtlError(f"{path}: no field 'sha256' (the checksums of its files); it was written by an older "
                       "bnncore: regenerate it with `bnn rtl`")
    rom_files = {m.file for m in design.memories.values()}
    for name in design.files:
        if name not in digests:
            raise RtlError(f"{path}: field 'sha256' has no entry for {name}")
    if not verify:
        return design
    for name in design.files:
        if rom_dir is not None and name in rom_files:
            continue
        f = d / name
        if f.is_symlink() or not f.is_file():
            raise RtlError(f"{f}: missing or not a plain file (listed in rtl.json)")
        if sha256_file(f) != digests[name]:
            raise RtlError(f"{f}: sha256 does not match rtl.json; the file was changed after `bnn rtl`: regenerate "
                           "the RTL (other weights for the same design: bnn sim --swap-roms NET, bnn synth --roms DIR)")
    if rom_dir is not None:
        for m in design.memories.values():
            check_rom_file(Path(rom_dir) / m.file, m.depth, m.width)
    return design


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


def swap_rom_files(net: FoldedNetwork, info, out_dir) -> Path:
    """Write ``net``'s ROM files for the design ``info`` (an RtlDesign, or rtl.json's object)
    into ``out_dir``, under the file names the design's parameters default to; return ``out_dir``.
    The network must have the design's topology and biases that fit its width."""
    info = RtlDesign.from_json(info)
    plan = info.plan
    try:
        check_network(net, plan)
    except ValueError as e:
        raise RtlError(f"{e}; its weights cannot be swapped into this RTL (generate RTL for it with bnn rtl)") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (width, words) in rom_images(net, plan).items():
        atomic_write_text(out / info.memories[name].file, _mem_text(width, words))
    return out


def plan_of(info) -> Plan:
    """The folding plan an RTL directory was generated for (from its RtlDesign, or rtl.json's
    object)."""
    from .identity import plan_from_rtl
    try:
        return plan_from_rtl(info)
    except ValueError as e:
        raise RtlError(str(e)) from None


def _port_widths(plan: Plan) -> dict:
    """{ROM name: (address bits per slice, width, depth, bits per slice, slices)}."""
    return {name: (address_bits(depth), width, depth, min(slice_bits(depth), width), slices)
            for name, depth, width, slices in rom_ports(plan)}
