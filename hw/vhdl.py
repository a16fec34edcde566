"""The VHDL of a design: the core translated from the Verilog by GHDL's Yosys plugin and repaired
where the translation is wrong for simulators (one-bit functions, initial values, sign
extension), the ROM entity and the top."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bnncore import __version__
from bnncore.errors import GenerateError

from .accelerator import payload_layout
from .design import _port_widths
from .plan import Plan
from .tools import find_tool

ROM_VHD = """\
-- Synchronous ROM initialised from a text file (std.textio: one binary word per line, MSB first).
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use std.textio.all;

-- The word is read in column slices of SLICE_BITS bits (the last one narrower), slice s at
-- the address addr((s + 1) * ABITS - 1 downto s * ABITS), as bnn_rom.v.
entity bnn_rom is
  generic (
    WIDTH      : positive := 8;
    DEPTH      : positive := 2;
    ABITS      : positive := 1;
    SLICE_BITS : positive := 8;
    INIT_FILE  : string   := "rom.mem"
  );
  port (
    clk  : in  std_logic;
    addr : in  unsigned((WIDTH + SLICE_BITS - 1) / SLICE_BITS * ABITS - 1 downto 0);
    data : out unsigned(WIDTH - 1 downto 0)
  );
end entity;

architecture rtl of bnn_rom is
  type mem_t is array (0 to DEPTH - 1) of bit_vector(WIDTH - 1 downto 0);

  impure function load(path : string) return mem_t is
    file f     : text open read_mode is path;
    variable l : line;
    variable m : mem_t := (others => (others => '0'));
  begin
    for i in 0 to DEPTH - 1 loop
      exit when endfile(f);
      readline(f, l);
      read(l, m(i));
    end loop;
    return m;
  end function;

  constant MEM : mem_t := load(INIT_FILE);
begin
  slices : for s in 0 to (WIDTH + SLICE_BITS - 1) / SLICE_BITS - 1 generate
    constant LO : natural := s * SLICE_BITS;
    constant HI : natural := minimum(LO + SLICE_BITS, WIDTH) - 1;
  begin
    process (clk) is
      variable a : natural;
    begin
      if rising_edge(clk) then
        a := to_integer(addr((s + 1) * ABITS - 1 downto s * ABITS));
        if a < DEPTH then
          data(HI downto LO) <= unsigned(to_stdlogicvector(MEM(a)(HI downto LO)));
        end if;
      end if;
    end process;
  end generate;
end architecture;
"""


_ONE_BIT_FUNCTION = re.compile(r"function \[0:0\] (\w+);\n(.*?)\n(\s*)endfunction", re.S)


def _widen_one_bit_functions(verilog: str) -> str:
    """Icarus' VHDL back end (iverilog -tvhdl, 11.0) crashes in draw_lpm on a function with a
    1-bit result, which write_verilog makes of a 1-bit $pmux (a buffer of 1-bit words read
    through a one-hot select: SIMD 1). Give each such function a 2-bit result whose low bit is
    the original one; the callers' assignments to 1-bit wires keep that low bit, as Verilog
    truncates: the same logic."""
    def widen(m):
        name, body = m.group(1), m.group(2)
        body, n = re.subn(rf"^(\s*){name} = (.+);$", rf"\1{name} = {{1'b0, \2}};", body, flags=re.M)
        if not n:
            raise GenerateError(f"write_verilog's function {name}: no assignment of its result")
        return f"function [1:0] {name};\n{body}\n{m.group(3)}endfunction"
    return _ONE_BIT_FUNCTION.sub(widen, verilog)


def _core_vhdl(verilog: str, work: Path) -> str:
    """Translate the core's Verilog to VHDL with Icarus Verilog and make its names legal for
    GHDL. Icarus runs in ``work`` on relative names, so no path reaches the VHDL."""
    src, out = work / "bnn_core_vhdl.v", work / "bnn_core.vhd"
    src.write_text(_widen_one_bit_functions(verilog))
    r = subprocess.run([find_tool("iverilog", GenerateError), "-g2012", "-tvhdl", "-o", out.name, src.name],
                       capture_output=True, text=True, cwd=work)
    src.unlink()
    if r.returncode != 0 or not out.exists():
        why = f"exit status {r.returncode}" + (" (a crash)" if r.returncode < 0 or r.returncode >= 128 else "")
        raise GenerateError(f"iverilog -tvhdl failed ({why}) translating the core to VHDL:\n{r.stdout}{r.stderr}")
    text = out.read_text()
    # Icarus disambiguates with '$': out_slot$65 -> out_slot_d65
    text = re.sub(r"\b([A-Za-z][A-Za-z0-9_]*)\$([0-9]+)\b", r"\1_d\2", text)
    text = _move_initial_values(text)
    text = _fix_sign_extension(text)
    # a memory index made of a concatenation: `a & b` is ambiguous (signed or unsigned) to GHDL
    text = re.sub(r"To_Integer\(Resize\((\w+(?: & \w+)+), (\d+)\)\)", r"To_Integer(Resize(unsigned'(\1), \2))", text)
    text = re.sub(r"--\s*(Declared at|Temporary created at) [^\n]*", "", text)
    text = re.sub(r"\(from [^\n]*\)|\(\S+\.v:\d+\)", "", text)
    # and the temporary directory's path: the same core gives the same VHDL
    text = re.sub(r" at \S+\.v:\d+", "", text)
    if "$" in text:
        bad = re.search(r"\S*\$\S*", text).group(0)
        raise GenerateError(f"iverilog's VHDL still has an illegal identifier: {bad}")
    return text


_INITIAL = re.compile(r"[ \t]*-- Generated from initial process[^\n]*\n[ \t]*process is\n[ \t]*begin\n"
                      r"(?P<body>(?:[ \t]*[\w()]+ <= [^;]+;\n)+)[ \t]*wait;\n[ \t]*end process;\n")


def _move_initial_values(vhdl: str) -> str:
    """Icarus writes a Verilog register's initial value as a VHDL process that assigns it and
    waits forever: a second driver of the signal, which then resolves to X against the
    clocked process. Move each such value into the signal's declaration instead."""
    inits = {}
    for m in _INITIAL.finditer(vhdl):
        for target, value in re.findall(r"([\w()]+) <= ([^;]+);", m.group("body")):
            name, _, index = target.partition("(")
            if index:
                inits.setdefault(name, {})[int(index.rstrip(")"))] = value.strip()
            else:
                inits[name] = value.strip()
    vhdl = _INITIAL.sub("", vhdl)
    for name, value in inits.items():
        if isinstance(value, dict):  # memory: an aggregate of its words
            value = "(" + ", ".join(f"{i} => {v}" for i, v in sorted(value.items())) + ")"
        decl = re.compile(rf"(\n[ \t]*signal {re.escape(name)} : [^;:=]+?)(\s*;)")
        vhdl, n = decl.subn(lambda m: f"{m.group(1)} := {value}{m.group(2)}", vhdl, count=1)
        if n != 1:
            raise GenerateError(f"iverilog's VHDL: no declaration for the initial value of {name}")
    if re.search(r"-- Generated from initial process", vhdl):
        raise GenerateError("iverilog's VHDL has an initial process that could not be moved into declarations")
    return vhdl


def _fix_sign_extension(vhdl: str) -> str:
    """Icarus translates a Verilog operand that is sign-extended in a signed expression
    (``$signed(x)`` widened to N bits) as ``signed(Resize(x, N))``: Resize of the unsigned x
    zero-extends, then the cast reinterprets. Rewrite it as ``Resize(signed(x), N)``, the
    sign extension Verilog specifies."""
    key = "signed(Resize("
    out, i = [], 0
    while True:
        j = vhdl.find(key, i)
        if j < 0 or (j > 0 and (vhdl[j - 1].isalnum() or vhdl[j - 1] == "_")):
            if j < 0:
                out.append(vhdl[i:])
                return "".join(out)
            out.append(vhdl[i:j + len(key)])
            i = j + len(key)
            continue
        # parse Resize's arguments up to its closing parenthesis, then the cast's
        k, depth, comma = j + len(key), 1, None
        while depth:
            c = vhdl[k]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c == "," and depth == 1:
                comma = k
            k += 1
        if comma is None or vhdl[k] != ")":
            raise GenerateError(f"unexpected VHDL from iverilog near: {vhdl[j:k + 20]}")
        arg, width = vhdl[j + len(key):comma], vhdl[comma + 1:k - 1]
        out.append(vhdl[i:j] + f"Resize(signed({arg}),{width})")
        i = k + 1


def _top_vhdl(plan: Plan, prefix: str, core_ports: dict) -> str:
    """``core_ports``: {vhdl port name: width or None for std_logic} of the translated core."""
    widths = _port_widths(plan)
    lay = payload_layout(plan)
    generics = ";\n".join(f'    {n.upper()}_FILE : string := "{prefix}{n}.mem"' for n in widths)

    def vec(name):
        return "std_logic" if core_ports[name] is None else f"unsigned({core_ports[name] - 1} downto 0)"

    lines = [
        "-- Top level: the accelerator core and its ROMs, initialised from the files named by",
        "-- the *_FILE generics (override them to load other weights of the same topology).",
        f"-- Generated by bnncore {__version__}.",
        "library ieee;", "use ieee.std_logic_1164.all;", "use ieee.numeric_std.all;", "",
        "entity bnn_top is", "  generic (", generics, "  );", "  port (",
        "    clk              : in  std_logic;",
        "    rst              : in  std_logic;",
        f"    i_stream_payload : in  std_logic_vector({plan.in_width - 1} downto 0);",
        "    i_stream_valid   : in  std_logic;",
        "    i_stream_ready   : out std_logic;",
        f"    o_stream_payload : out std_logic_vector({lay.size - 1} downto 0);",
        "    o_stream_valid   : out std_logic;",
        "    o_stream_ready   : in  std_logic",
        "  );", "end entity;", "", "architecture rtl of bnn_top is",
    ]
    for n, (abits, width, depth, sbits, slices) in widths.items():
        lines += [f"  signal {n}_addr : {vec(f'{n}_addr')};",
                  f"  signal {n}_addr_u : unsigned({abits * slices - 1} downto 0);",
                  f"  signal {n}_data : unsigned({width - 1} downto 0);"]
    lines += [f"  signal i_payload : {vec('i_stream_payload')};",
              f"  signal o_payload : {vec('o_stream_payload')};",
              "  signal i_ready, o_valid : std_logic;", "begin"]
    conv_in = "i_stream_payload(0)" if core_ports["i_stream_payload"] is None else "unsigned(i_stream_payload)"
    lines.append(f"  i_payload <= {conv_in};")
    lines.append("  o_stream_payload <= " + ("(0 => o_payload)" if core_ports["o_stream_payload"] is None
                                             else "std_logic_vector(o_payload)") + ";")
    lines += ["  i_stream_ready <= i_ready;", "  o_stream_valid <= o_valid;"]
    maps = ["clk => clk", "rst => rst", "i_stream_payload => i_payload", "i_stream_valid => i_stream_valid",
            "i_stream_ready => i_ready", "o_stream_payload => o_payload", "o_stream_valid => o_valid",
            "o_stream_ready => o_stream_ready"]
    for n, (abits, width, depth, sbits, slices) in widths.items():
        if core_ports[f"{n}_addr"] is None:
            lines.append(f"  {n}_addr_u <= (0 => {n}_addr);")
        else:
            lines.append(f"  {n}_addr_u <= resize({n}_addr, {abits * slices});")
        lines += [f"  rom_{n} : entity work.bnn_rom",
                  f"    generic map (WIDTH => {width}, DEPTH => {depth}, ABITS => {abits}, SLICE_BITS => {sbits}, "
                  f"INIT_FILE => {n.upper()}_FILE)",
                  f"    port map (clk => clk, addr => {n}_addr_u, data => {n}_data);"]
        data_map = f"{n}_data(0)" if core_ports[f"{n}_data"] is None else f"{n}_data"
        maps += [f"{n}_addr => {n}_addr", f"{n}_data => {data_map}"]
    lines.append("  core : entity work.bnn_core\n    port map (\n      " + ",\n      ".join(maps) + "\n    );")
    lines.append("end architecture;")
    return "\n".join(lines) + "\n"


def _vhdl_ports(core_vhd: str) -> dict:
    """{name: width or None} of the entity's ports in Icarus' VHDL."""
    entity = core_vhd[core_vhd.index("entity bnn_core is"):core_vhd.index("end entity;")]
    ports = {}
    for name, typ in re.findall(r"^\s*(\w+)\s*:\s*(?:in|out|buffer|inout)\s+([^;\n]+?)\s*;?\s*$", entity, re.M):
        m = re.match(r"unsigned\((\d+) downto 0\)", typ)
        ports[name] = int(m.group(1)) + 1 if m else None
    return ports
