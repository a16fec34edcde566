"""Export a FoldedNetwork to text files and load it back; see docs/formats.md.

An export directory holds:

``weights.txt``
    Seed 001's format: '0'/'1' characters, 1 meaning +1. One line per layer with weights
    (dense, convolution, output; pools have none), no separators inside a line. Inside a
    layer, the seed's order: for each input i, for each neuron j of the layer, the bit of the
    edge i -> j. A convolution's inputs are its window positions (ky, kx, channel) and its
    neurons the output channels. The bits are the *folded* ones (rows of neurons with
    negative BatchNorm scale are already flipped).
``thresholds.txt``
    One decimal integer per line, layer after layer: for each hidden neuron (or channel) its
    threshold T (fires when sum(x, w) >= T), then for each output class its integer bias
    (score = 2 * popcount - n + bias).
``rom/layer<k>.weights.mem``, ``rom/layer<k>.thresholds.mem``
    The same for ``$readmemb``/``$readmemh``, for the k-th layer with weights: one line per
    neuron, n_in binary digits with input 0 as the rightmost (least significant) digit;
    thresholds (or output biases, as 32-bit two's complement) one hexadecimal word per line.
``manifest.json``
    The topology string, the input scheme, each layer's kind and shapes (format_version 2;
    version 1, which had dense networks only, is still read), conventions, and the sha256 of
    every file above.

Writes are atomic: everything goes to a temporary sibling directory that is renamed into
place at the end, so a failed export leaves no half-written directory behind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ExportError
from .fileio import OutputDirError, new_output, read_json_object, sha256_file
from .kinds import BUILTIN, kind_named, kind_of, layer_kind, names
from .kinds.base import entry_shape
from .network import DenseLayer, FoldedNetwork, InputScheme, NetworkError

__all__ = ["export", "load", "import_files", "ExportError", "FORMAT", "FORMAT_VERSION", "weights_text", "rom_files"]

FORMAT = "bnncore-folded-network"
FORMAT_VERSION = 2

CONVENTIONS = {
    "bit": "1 means +1, 0 means -1",
    "sign": "sign(0) = +1",
    "popcount": "popcount(xnor(x, w)) = number of inputs where x and w agree; dot = 2 * popcount - n",
    "hidden": "a dense neuron or conv channel outputs 1 exactly when sum(x, w) >= threshold; sum = popcount(xnor(x, w)) "
              "for 1-bit inputs, sum of (w ? x : 255 - x) for 8-bit inputs",
    "conv": "stride 1; weights [out channel][ky][kx][in channel]; 'padding' positions of 'pad_value' around the input",
    "pool": "size x size windows, stride size, trailing rows/columns dropped; modes[c] 'O': OR of the window, 'A': AND",
    "feature maps": "(y, x, channel), channels innermost; a dense layer after a conv sees them flattened in that order",
    "output": "score_c = 2 * popcount(xnor(x, w_c)) - n + bias_c; the class is the lowest index with the highest score",
    "weights.txt": "one line per layer with weights; within a line, for each input i, for each neuron j: bit of edge i -> j",
    "thresholds.txt": "one integer per line: thresholds of each hidden layer's neurons, then the output biases",
    "rom weights": "one line per neuron, n_in binary digits, input 0 is the rightmost digit",
    "rom thresholds": "one hexadecimal word per neuron (output biases as 32-bit two's complement)",
}


def _values(s) -> np.ndarray:
    return layer_kind(s).values(s)


def weights_text(net: FoldedNetwork) -> str:
    """The content of weights.txt."""
    lines = [(np.ascontiguousarray(s.matrix.T) + ord("0")).astype(np.uint8).tobytes().decode("ascii")
             for s in net.weight_layers]
    return "\n".join(lines) + "\n"


def thresholds_text(net: FoldedNetwork) -> str:
    """The content of thresholds.txt."""
    return "\n".join(str(int(v)) for s in net.weight_layers for v in _values(s)) + "\n"


def _rom_weight_lines(weights: np.ndarray) -> str:
    # reversed columns: input 0 becomes the rightmost (least significant) digit
    rows = (weights[:, ::-1] + ord("0")).astype(np.uint8)
    return "\n".join(r.tobytes().decode("ascii") for r in rows) + "\n"


def _rom_int_lines(values: np.ndarray) -> str:
    return "\n".join(f"{int(v) & 0xFFFFFFFF:08x}" for v in values) + "\n"


def rom_files(net: FoldedNetwork) -> dict:
    """{relative path: content} of the $readmemb/$readmemh files, one pair per layer with weights."""
    files = {}
    for k, s in enumerate(net.weight_layers):
        files[f"rom/layer{k}.weights.mem"] = _rom_weight_lines(s.matrix)
        files[f"rom/layer{k}.thresholds.mem"] = _rom_int_lines(_values(s))
    return files


def _expected_files(n_weight_layers: int) -> set:
    return {"weights.txt", "thresholds.txt"} | {f"rom/layer{k}.{kind}.mem" for k in range(n_weight_layers)
                                                for kind in ("weights", "thresholds")}


# --- Layer kinds: one handler each, for the manifest entry and for rebuilding the layer -------


class _Registered:
    """The handler of a kind registered with bnncore.kinds (a weightless map layer)."""

    def __init__(self, kind):
        self.kind, self.layer = kind, kind.layer

    def entry(self, l):
        return {"in_shape": list(l.in_shape), "out_shape": list(l.out_shape), **self.kind.entry(l)}

    def check(self, path, f, e):
        entry_shape(path, f + ".in_shape", e.get("in_shape"))
        return None

    def build(self, e, w, t):
        return self.kind.build(e, e["name"], tuple(e["in_shape"]))


#: Manifest layer kinds (format_version 2); version 1's 'hidden' is a 1-bit dense layer.
KINDS = dict(BUILTIN)
_BY_CLASS = {h.layer: name for name, h in KINDS.items()}


def _handler(name: str):
    """The manifest handler of the kind ``name``: a built-in one, or a registered kind's."""
    return KINDS.get(name) or (_Registered(kind_named(name)) if kind_named(name) else None)


def _layer_entry(s) -> dict:
    kind = _BY_CLASS.get(type(s)) or kind_of(s).name
    return {"name": s.name, "kind": kind, **_handler(kind).entry(s)}


# --- Writing --------------------------------------------------------------------------------

def _export_files(d: Path):
    """The files of an earlier export in ``d`` (its manifest and what the manifest lists), or
    None if ``d`` holds no bnncore export."""
    try:
        m = json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("files"), dict):
        return None
    return {"manifest.json"} | {f for f in m["files"] if isinstance(f, str)}


def _manifest_v1(net: FoldedNetwork) -> dict:
    if not net.is_mlp:
        raise ExportError(f"format_version 1 holds dense networks with 1-bit input only, not {net.spec}")
    return {"topology": list(net.topology),
            "layers": [{"name": s.name, "kind": "hidden" if isinstance(s, DenseLayer) else "output",
                        "n_in": s.n_in, "n_out": s.n_out} for s in net.stages]}


def export(net: FoldedNetwork, out_dir, *, metadata: dict | None = None, format_version: int = FORMAT_VERSION,
           force: bool = False) -> Path:
    """Write ``net`` into ``out_dir``; return the directory.

    ``out_dir`` may be missing, empty or an earlier export holding nothing but its own files,
    which it then replaces atomically; anything else is refused (ExportError, nothing written)
    unless ``force`` (an earlier output of bnncore's with other files: fileio's output rule).
    ``format_version=1`` writes the older format (dense networks only) for older readers.
    """
    if format_version not in (1, 2):
        raise ExportError(f"format_version must be 1 or 2, not {format_version!r}")
    if format_version == 1 and not net.is_chain:
        raise ExportError("format_version 1 holds a chain of dense layers; write a graph with format_version 2")
    shape = _manifest_v1(net) if format_version == 1 else {
        "topology": net.spec, "layers": [_layer_entry(s) for s in net.stages]}
    if not net.is_chain:        # each stage names what it reads; a chain's entries stay as they were
        for entry, srcs in zip(shape["layers"], net.graph):
            entry["inputs"] = list(srcs)
    out = Path(out_dir)
    try:
        with new_output(out, "export", _export_files, force=force) as tmp:
            contents = {"weights.txt": weights_text(net), "thresholds.txt": thresholds_text(net)}
            contents.update(rom_files(net))
            files = {}
            for rel, text in contents.items():
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            manifest = {
                "format": FORMAT, "format_version": format_version, "bnncore_version": __version__,
                "topology": shape["topology"],
                "input": dict({"scheme": net.input.scheme, "level": net.input.level},
                              **({"table": list(net.input.table)} if net.input.table else {})),
                "layers": shape["layers"],
                "network_sha256": net.digest(),
                "conventions": CONVENTIONS,
                "files": files,
                "metadata": metadata or {},
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    except OutputDirError as e:
        raise ExportError(str(e)) from None
    return out


# --- Loading --------------------------------------------------------------------------------

def not_an_export(d: Path) -> str:
    """Why ``d`` is not an export directory, with the step that makes one."""
    d = Path(d)
    if d.is_file() and d.suffix == ".pt":
        return f"{d} is a checkpoint, not an export directory: fold it first (bnn fold {d} -o NET), then give NET"
    if d.is_file() and d.suffix == ".onnx":
        return f"{d} is an ONNX model, not an export directory: import it first (bnn import {d} -o NET), then give NET"
    if d.is_dir() and (d / "rtl.json").is_file():
        return (f"{d} is an RTL directory of bnn rtl, not an export directory: give the export directory the RTL "
                "was generated from (the order is RTL, then NET)")
    return (f"{d / 'manifest.json'}: missing; {d} is not a bnncore export directory (bnn fold, bnn import or "
            "bnn export -o write one)")


def _read_manifest(d: Path) -> dict:
    path = d / "manifest.json"
    if not path.is_file() and not path.is_symlink():
        raise ExportError(not_an_export(d))
    m = read_json_object(path, ExportError, f"{d} is not a bnncore export directory")
    if m.get("format") != FORMAT:
        raise ExportError(f"{path}: field 'format' must be {FORMAT!r}, found {m.get('format')!r}")
    version = m.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExportError(f"{path}: field 'format_version' must be a positive integer, found {version!r}")
    if version > FORMAT_VERSION:
        raise ExportError(f"{path}: format_version {version} is newer than this bnncore reads "
                          f"({FORMAT_VERSION}); upgrade bnncore (written by bnncore {m.get('bnncore_version')})")
    for key in ("topology", "input", "layers", "files"):
        if key not in m:
            raise ExportError(f"{path}: missing field {key!r}")
    m["_specs"] = _check_layers_v1(path, m) if version == 1 else _check_layers(path, m)
    if not isinstance(m["input"], dict):
        raise ExportError(f"{path}: field 'input' must be an object with 'scheme' (and 'level' for a threshold "
                          f"input), found {m['input']!r}")
    if not isinstance(m["files"], dict):
        raise ExportError(f"{path}: field 'files' must be an object {{file name: {{'sha256': ...}}}}, "
                          f"found {type(m['files']).__name__}")
    n_weights = sum(1 for spec in m["_specs"] if spec["matrix"] is not None)
    expected = _expected_files(n_weights)
    for rel, entry in m["files"].items():
        if rel not in expected:
            raise ExportError(f"{path}: field 'files' names {rel!r}, which is not a file of an export with "
                              f"{n_weights} layers with weights (expected {', '.join(sorted(expected))})")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise ExportError(f"{path}: field 'files.{rel}' must be an object with a 'sha256' string, found {entry!r}")
    missing = sorted(expected - set(m["files"]))
    if missing:
        raise ExportError(f"{path}: field 'files' has no entry for {', '.join(missing)}")
    return m


def _layer_list(path: Path, m: dict) -> list:
    layers = m["layers"]
    if not isinstance(layers, list) or not layers:
        raise ExportError(f"{path}: field 'layers' must list the hidden layers, then one output layer")
    for k, spec in enumerate(layers):
        if not isinstance(spec, dict):
            raise ExportError(f"{path}: field 'layers[{k}]' must be an object, found {spec!r}")
        if not isinstance(spec.get("name"), str):
            raise ExportError(f"{path}: field 'layers[{k}].name' must be a string, found {spec.get('name')!r}")
    return layers


def _check_layers(path: Path, m: dict) -> list:
    """Version 2: each layer entry checked by its kind's handler; returns, per layer, its
    entry, handler and weight matrix shape (or None)."""
    if not isinstance(m["topology"], str):
        raise ExportError(f"{path}: field 'topology' must be a topology string like '1x28x28-32c3-mp2-10', "
                          f"found {m['topology']!r}")
    layers, specs = _layer_list(path, m), []
    for k, e in enumerate(layers):
        kind = e.get("kind")
        if _handler(kind) is None:
            raise ExportError(f"{path}: field 'layers[{k}].kind' must be one of {', '.join(KINDS | dict.fromkeys(names()))}"
                              f", found {kind!r}" + ("; a kind of another package must be registered (bnncore.kinds) "
                                                     "before its networks load" if isinstance(kind, str) else ""))
        if (kind == "output") != (k == len(layers) - 1):
            raise ExportError(f"{path}: field 'layers' must list the hidden layers, then one output layer "
                              f"(kind 'output'), found kind {kind!r} at layers[{k}]")
        handler = _handler(kind)
        srcs = e.get("inputs")
        if srcs is not None and (not isinstance(srcs, list) or not srcs
                                 or not all(isinstance(j, int) and not isinstance(j, bool) for j in srcs)):
            raise ExportError(f"{path}: field 'layers[{k}].inputs' must be a list of layer indices (-1: the network's "
                              f"input), found {srcs!r}")
        matrix = handler.check(path, f"layers[{k}]", e)
        specs.append({"entry": e, "kind": kind, "handler": handler, "matrix": matrix, "name": e["name"]})
    return specs


def _check_layers_v1(path: Path, m: dict) -> list:
    topology = m["topology"]
    if not isinstance(topology, list) or len(topology) < 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in topology):
        raise ExportError(f"{path}: field 'topology' must be a list of at least 2 positive integers, found {topology!r}")
    layers = _layer_list(path, m)
    for k, spec in enumerate(layers):
        for key in ("n_in", "n_out"):
            v = spec.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ExportError(f"{path}: field 'layers[{k}].{key}' must be a positive integer, found {v!r}")
    if [l.get("kind") for l in layers] != ["hidden"] * (len(layers) - 1) + ["output"]:
        raise ExportError(f"{path}: field 'layers' must list the hidden layers (kind 'hidden'), then one "
                          "output layer (kind 'output')")
    if [layers[0]["n_in"]] + [l["n_out"] for l in layers] != list(topology):
        raise ExportError(f"{path}: field 'layers' does not match field 'topology' {topology}")
    return [{"entry": e, "kind": e["kind"], "handler": BUILTIN["output"] if e["kind"] == "output" else BUILTIN["dense"],
             "matrix": (e["n_in"], e["n_out"], 1), "name": e["name"]} for e in layers]


def _check_file(d: Path, rel: str, manifest: dict) -> Path:
    path = d / rel
    if path.is_symlink() or not path.is_file():
        raise ExportError(f"{path}: missing or not a plain file (listed in manifest.json)")
    entry = manifest["files"][rel]
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ExportError(f"{path}: sha256 {digest} does not match manifest.json ({entry['sha256']}); "
                          "the file was changed after export")
    return path


def _parse_weights(path: Path, lines: list, specs: list) -> list:
    """Weight matrices from one line of '0'/'1' characters per layer with weights (``lines``:
    bytes; ``specs``: dicts with 'name' and 'matrix' (n_in, n_out, in_bits))."""
    if len(lines) != len(specs):
        raise ExportError(f"{path}: {len(lines)} lines, expected {len(specs)} (one per layer with weights)")
    out = []
    for k, (line, spec) in enumerate(zip(lines, specs)):
        n_in, n_out = spec["matrix"][:2]
        line = line.rstrip(b"\r")
        if len(line) != n_in * n_out:
            raise ExportError(f"{path}: line {k + 1} ({spec['name']}) has {len(line)} characters, expected "
                              f"{n_in * n_out} ({n_in} inputs x {n_out} neurons)")
        a = np.frombuffer(line, np.uint8)
        bad = np.flatnonzero((a != ord("0")) & (a != ord("1")))
        if len(bad):
            pos = int(bad[0])
            raise ExportError(f"{path}: line {k + 1} ({spec['name']}), character {pos + 1}: byte {bytes([a[pos]])!r} "
                              f"is not '0' or '1' (input {pos // n_out}, neuron {pos % n_out})")
        out.append(np.ascontiguousarray((a - ord("0")).reshape(n_in, n_out).T))
    return out


def _lines(path: Path) -> list:
    raw = path.read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    return raw


#: A decimal integer as thresholds.txt writes it: ASCII digits, an optional minus sign, no
#: '+', no '_' (Python's int() takes '1_0', '+5' and non-ASCII digits: not ours).
_INT = re.compile(rb"-?[0-9]+")
#: Larger than any threshold or bias a FoldedNetwork accepts (|bias| < 2**31).
_INT_DIGITS = 12


def _parse_ints(path: Path, lines: list, specs: list) -> list:
    """Thresholds and biases, one decimal integer per line (``lines``: bytes)."""
    total = sum(s["matrix"][1] for s in specs)
    if len(lines) != total:
        raise ExportError(f"{path}: {len(lines)} lines, expected {total} (one per neuron)")
    out, start = [], 0
    for spec in specs:
        n_in, n_out, in_bits = spec["matrix"]
        top = n_in * (2**in_bits - 1) + 1
        values = []
        for j in range(n_out):
            text = lines[start + j].strip(b" \t\r")
            where = f"{path}: line {start + j + 1} ({spec['name']}, neuron {j})"
            if not _INT.fullmatch(text):
                raise ExportError(f"{where}: '{text.decode('utf-8', 'backslashreplace')}' is not a decimal integer "
                                  "(ASCII digits with an optional '-')")
            if len(text.lstrip(b"-")) > _INT_DIGITS:
                raise ExportError(f"{where}: {text.decode()} is out of range (thresholds are in [0, n_in + 1], "
                                  "biases below 2**31)")
            v = int(text)
            if spec["kind"] != "output" and not 0 <= v <= top:
                raise ExportError(f"{where}: threshold {v} out of range [0, {top}]")
            values.append(v)
        out.append(np.array(values, np.int64))
        start += n_out
    return out


def load(directory) -> FoldedNetwork:
    """Load and validate an export directory (checksums, sizes, characters, ranges; the ROM
    files must equal what ``weights.txt`` and ``thresholds.txt`` give). Reads format versions
    1 and 2."""
    d = Path(directory)
    m = _read_manifest(d)
    specs = m["_specs"]
    weighted = [s for s in specs if s["matrix"] is not None]
    paths = {rel: _check_file(d, rel, m) for rel in m["files"]}
    weights = _parse_weights(paths["weights.txt"], _lines(paths["weights.txt"]), weighted)
    ints = _parse_ints(paths["thresholds.txt"], _lines(paths["thresholds.txt"]), weighted)
    net = _network(d / "manifest.json", m["input"], weights, ints, specs)
    if m["format_version"] >= 2:
        _check_shapes(d / "manifest.json", m, net)
    for rel, text in rom_files(net).items():
        if paths[rel].read_bytes() != text.encode():
            raise ExportError(f"{paths[rel]}: does not hold the network of weights.txt and thresholds.txt "
                              "(its checksum matches manifest.json, so the export was written inconsistent)")
    digest = m.get("network_sha256")
    if digest is not None and digest != net.digest():
        raise ExportError(f"{d / 'manifest.json'}: field 'network_sha256' {digest} is not the digest of the "
                          f"network its files hold ({net.digest()})")
    return net


def _check_shapes(path: Path, m: dict, net: FoldedNetwork):
    """The fields a version-2 manifest states redundantly (for readers) agree with the network."""
    if m["topology"] != net.spec:
        raise ExportError(f"{path}: field 'topology' {m['topology']!r} does not match its layers, which make "
                          f"{net.spec!r}")
    for k, (e, s) in enumerate(zip(m["layers"], net.stages)):
        if "out_shape" in e and tuple(e["out_shape"]) != tuple(s.out_shape):
            raise ExportError(f"{path}: field 'layers[{k}].out_shape' {e['out_shape']} does not match the layer's "
                              f"input and kernel, which give {list(s.out_shape)}")


def _network(where, inp: dict, weights, ints, specs) -> FoldedNetwork:
    try:
        # the level matters to a threshold input only; the others may leave it out
        table = inp.get("table", ()) if inp.get("scheme") == "table" else ()
        if not isinstance(table, (list, tuple)):
            raise NetworkError(f"input: table must be a list of 256 integers in [0, 255], found {type(table).__name__}")
        scheme = InputScheme(inp.get("scheme"), inp.get("level") if inp.get("scheme") == "threshold"
                             else inp.get("level", 128), tuple(table))
        it = iter(zip(weights, ints))
        stages = []
        for spec in specs:
            w, t = next(it) if spec["matrix"] is not None else (None, None)
            stages.append(spec["handler"].build(spec["entry"], w, t))
        graph = [s["entry"].get("inputs") for s in specs] if any("inputs" in s["entry"] for s in specs) else None
        if graph is not None and None in graph:
            k = graph.index(None)
            raise ExportError(f"{where}: field 'layers[{k}].inputs' missing; a graph's layers each name their inputs")
        return FoldedNetwork(tuple(stages[:-1]), stages[-1], scheme, tuple(map(tuple, graph)) if graph else ())
    except (NetworkError, ValueError, TypeError) as e:
        raise ExportError(f"{where}: {e}") from None


def _topology_specs(topology, in_bits: int, pad_value: int) -> list:
    """Manifest-style layer entries for a topology string (pools OR, the given pad value)."""
    from .topology import Conv, Pool, parse
    t = parse(topology)
    specs, k = [], 0
    for i, l in enumerate(t.layers + (t.head,)):
        last = i == len(t.layers)
        bits = in_bits if i == 0 else 1
        name = "output" if last else f"layer {i}"
        if isinstance(l, Conv):
            e = {"kind": "conv", "in_shape": list(l.in_shape), "channels": l.channels, "kernel": l.kernel,
                 "padding": l.padding, "pad_value": 0 if bits == 8 else pad_value, "in_bits": bits}
            matrix = (l.fan_in, l.channels, bits)
        elif isinstance(l, Pool):
            e = {"kind": "pool", "in_shape": list(l.in_shape), "size": l.size, "modes": "O" * l.in_shape[0]}
            matrix = None
        else:
            e = {"kind": "output" if last else "dense", "in_bits": bits}
            matrix = (l.n_in, l.n_out, bits)
        e["name"] = name
        handler = KINDS[e["kind"]]
        specs.append({"entry": e, "kind": e["kind"], "handler": handler, "matrix": matrix, "name": name})
    return specs


def import_files(weights_path, thresholds_path, topology, input, out_dir, *,
                 dataset: str | None = None, pad_value: int = 1, force: bool = False) -> Path:
    """Build an export directory from seed-format files that have no manifest.

    ``weights_path``: '0'/'1' characters in the weights.txt order, layer after layer; line
    breaks and other white space are ignored (seed 001 wrote the layers back to back).
    ``thresholds_path``: white-space separated integers, as in thresholds.txt.
    ``topology``: an MLP or CNN topology string; pools are taken as OR pools (pooling after
    the sign), padding with ``pad_value`` (a bit; 8-bit inputs pad with pixel 0).
    """
    from .network import _as_input
    try:
        scheme = _as_input(input)
        specs = _topology_specs(topology, scheme.value_bits, pad_value)
    except (ValueError, NetworkError) as e:
        raise ExportError(str(e)) from None
    weights_path, thresholds_path = Path(weights_path), Path(thresholds_path)
    for path in (weights_path, thresholds_path):
        if not path.is_file():
            raise ExportError(f"{path}: no such file")
    weighted = [s for s in specs if s["matrix"] is not None]
    text = b"".join(weights_path.read_bytes().split())
    need = sum(s["matrix"][0] * s["matrix"][1] for s in weighted)
    if len(text) != need:
        raise ExportError(f"{weights_path}: {len(text)} weight characters, expected {need} for topology {topology}")
    lines, pos = [], 0
    for s in weighted:
        n = s["matrix"][0] * s["matrix"][1]
        lines.append(text[pos:pos + n])
        pos += n
    weights = _parse_weights(weights_path, lines, weighted)
    ints = _parse_ints(thresholds_path, thresholds_path.read_bytes().split(), weighted)
    net = _network(weights_path, {"scheme": scheme.scheme, "level": scheme.level}, weights, ints, specs)
    return export(net, out_dir, metadata={"dataset": dataset, "imported_from": [str(weights_path), str(thresholds_path)]},
                  force=force)
