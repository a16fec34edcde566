"""The shape of the code: no import circles, no branch on an FPGA family or simulator name outside
the module that registers it, no module much over 500 lines. Each check reads the sources."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (("bnncore", ROOT / "bnncore"), ("bnncore.hw", ROOT / "hw"), ("bnncore.sim", ROOT / "sim"))
MAX_LINES = 520


def modules() -> dict:
    out = {}
    for pkg, folder in PACKAGES:
        for f in sorted(folder.rglob("*.py")):
            parts = [p for p in f.relative_to(folder).with_suffix("").parts if p != "__init__"]
            out[".".join([pkg, *parts])] = f
    return out


def import_graph(mods: dict) -> dict:
    """{module: modules of the package it imports}, at module level or inside functions."""
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        base = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for n in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(n, ast.ImportFrom):
                mod = n.module or ""
                if n.level:
                    b = base
                    for _ in range(n.level - 1):
                        b = b.rsplit(".", 1)[0]
                    mod = b + ("." + mod if mod else "")
                names = [mod] + [f"{mod}.{a.name}" for a in n.names]
            elif isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            graph[m] |= {t for t in names if t in mods and t != m and not m.startswith(t + ".")}
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert cycles(import_graph(modules())) == []


def names_compared(text: str, names) -> list:
    """Lines that compare with, or index by, a quoted name (``x == "ecp5"``, ``"ghdl" in``)."""
    pattern = re.compile(r"""(==|!=|\bin\b|\[)\s*["'](%s)["']|["'](%s)["']\s*(==|!=|\bin\b)""" % (
        "|".join(names), "|".join(names)))
    return [line.strip() for line in text.splitlines() if pattern.search(line)]


def test_name_finder_finds_a_branch():
    assert names_compared('if device.family == "ecp5":\n    pass\nx = "ecp5"\n', ["ecp5"]) == [
        'if device.family == "ecp5":']


@pytest.mark.parametrize("names, home", [
    (("ice40", "ecp5"), ROOT / "hw" / "families"),
    (("verilator", "icarus", "ghdl"), ROOT / "sim" / "simulators.py"),
])
def test_no_branch_on_a_registered_name_outside_its_module(names, home):
    found = {str(f.relative_to(ROOT)): names_compared(f.read_text(), names)
             for f in modules().values() if home not in (f, *f.parents)}
    assert {f: lines for f, lines in found.items() if lines} == {}


def test_modules_are_short():
    long = {str(f.relative_to(ROOT)): n for f in modules().values()
            if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_package_is_installed():
    """pyproject.toml lists the packages by hand (hw/ and sim/ install under bnncore.): a new
    subpackage missing there works in an editable install and is absent from a wheel."""
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {m for m, f in modules().items() if f.name == "__init__.py"}
    assert found == listed
