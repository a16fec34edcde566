"""Export a FoldedNetwork to text files and load it back; see docs/formats.md.

An export directory holds:

``weights.txt``
    Seed 001's format: '0'/'1' characters, 1 meaning +1. One line per layer (hidden layers,
    then the output layer), no separators inside a line. Inside a layer, the seed's order:
    for each input (source neuron) i, for each neuron j of the layer, the bit of the edge
    i -> j. The bits are the *folded* ones (rows of neurons with negative BatchNorm scale are
    already flipped).
``thresholds.txt``
    One decimal integer per line, layer after layer: for each hidden neuron its threshold T
    (fires when popcount(xnor(x, w)) >= T), then for each output class its integer bias
    (score = 2 * popcount - n + bias).
``rom/layer<k>.weights.mem``, ``rom/layer<k>.thresholds.mem``
    The same bits for ``$readmemb``/``$readmemh``: one line per neuron, n_in binary digits
    with input 0 as the rightmost (least significant) digit; thresholds (or output biases, as
    32-bit two's complement) one hexadecimal word per line.
``manifest.json``
    Topology, input binarization, conventions, and the sha256 of every file above.

Writes are atomic: everything goes to a temporary sibling directory that is renamed into
place at the end, so a failed export leaves no half-written directory behind.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from . import __version__
from .data import InputBinarization
from .fileio import OutputDirError, check_replaceable, read_json_object, replace_dir, sha256_file, temp_sibling
from .network import FoldedLayer, FoldedNetwork, NetworkError, OutputHead

__all__ = ["export", "load", "import_files", "ExportError", "FORMAT", "FORMAT_VERSION", "weights_text", "rom_files"]

FORMAT = "bnncore-folded-network"
FORMAT_VERSION = 1

CONVENTIONS = {
    "bit": "1 means +1, 0 means -1",
    "sign": "sign(0) = +1",
    "popcount": "popcount(xnor(x, w)) = number of inputs where x and w agree; dot = 2 * popcount - n",
    "hidden": "a hidden neuron outputs 1 exactly when popcount(xnor(x, w)) >= threshold",
    "output": "score_c = 2 * popcount(xnor(x, w_c)) - n + bias_c; the class is the lowest index with the highest score",
    "weights.txt": "one line per layer; within a line, for each input i, for each neuron j: bit of edge i -> j",
    "thresholds.txt": "one integer per line: thresholds of each hidden layer's neurons, then the output biases",
    "rom weights": "one line per neuron, n_in binary digits, input 0 is the rightmost digit",
    "rom thresholds": "one hexadecimal word per neuron (output biases as 32-bit two's complement)",
}


class ExportError(ValueError):
    """An export directory is missing, inconsistent, corrupt or of an unknown format."""


def weights_text(net: FoldedNetwork) -> str:
    """The content of weights.txt."""
    lines = [(np.ascontiguousarray(s.weights.T) + ord("0")).astype(np.uint8).tobytes().decode("ascii")
             for s in net.stages]
    return "\n".join(lines) + "\n"


def _rom_weight_lines(weights: np.ndarray) -> str:
    # reversed columns: input 0 becomes the rightmost (least significant) digit
    rows = (weights[:, ::-1] + ord("0")).astype(np.uint8)
    return "\n".join(r.tobytes().decode("ascii") for r in rows) + "\n"


def _rom_int_lines(values: np.ndarray) -> str:
    return "\n".join(f"{int(v) & 0xFFFFFFFF:08x}" for v in values) + "\n"


def rom_files(net: FoldedNetwork) -> dict:
    """{relative path: content} of the $readmemb/$readmemh files."""
    files = {}
    for k, s in enumerate(net.stages):
        files[f"rom/layer{k}.weights.mem"] = _rom_weight_lines(s.weights)
        values = s.thresholds if isinstance(s, FoldedLayer) else s.bias
        files[f"rom/layer{k}.thresholds.mem"] = _rom_int_lines(values)
    return files


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


def export(net: FoldedNetwork, out_dir, *, metadata: dict | None = None) -> Path:
    """Write ``net`` into ``out_dir``; return the directory.

    ``out_dir`` may be missing, empty or an earlier export holding nothing but its own files,
    which it then replaces atomically; anything else is refused (ExportError, nothing written).
    """
    out = Path(out_dir)
    try:
        check_replaceable(out, "a bnncore export", _export_files)
    except OutputDirError as e:
        raise ExportError(str(e)) from None
    tmp = temp_sibling(out)
    try:
        contents = {"weights.txt": weights_text(net), "thresholds.txt": thresholds_text(net)}
        contents.update(rom_files(net))
        files = {}
        for rel, text in contents.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "bnncore_version": __version__,
            "topology": list(net.topology),
            "input": {"scheme": net.input.scheme, "level": net.input.level},
            "layers": [{"name": s.name, "kind": "hidden" if isinstance(s, FoldedLayer) else "output",
                        "n_in": s.n_in, "n_out": s.n_out} for s in net.stages],
            "network_sha256": net.digest(),
            "conventions": CONVENTIONS,
            "files": files,
            "metadata": metadata or {},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def thresholds_text(net: FoldedNetwork) -> str:
    """The content of thresholds.txt."""
    return "\n".join(str(int(v)) for s in net.stages
                     for v in (s.thresholds if isinstance(s, FoldedLayer) else s.bias)) + "\n"


# --- Loading --------------------------------------------------------------------------------

def _read_manifest(d: Path) -> dict:
    path = d / "manifest.json"
    m = read_json_object(path, ExportError, f"{d} is not a bnncore export directory")
    if m.get("format") != FORMAT:
        raise ExportError(f"{path}: field 'format' must be {FORMAT!r}, found {m.get('format')!r}")
    version = m.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ExportError(f"{path}: field 'format_version' must be an integer, found {version!r}")
    if version > FORMAT_VERSION:
        raise ExportError(f"{path}: format_version {version} is newer than this bnncore reads "
                          f"({FORMAT_VERSION}); upgrade bnncore (written by bnncore {m.get('bnncore_version')})")
    for key in ("topology", "input", "layers", "files"):
        if key not in m:
            raise ExportError(f"{path}: missing field {key!r}")
    _check_layers(path, m)
    if not isinstance(m["input"], dict):
        raise ExportError(f"{path}: field 'input' must be an object with 'scheme' and 'level', found {m['input']!r}")
    if not isinstance(m["files"], dict):
        raise ExportError(f"{path}: field 'files' must be an object {{file name: {{'sha256': ...}}}}, "
                          f"found {type(m['files']).__name__}")
    expected = {"weights.txt", "thresholds.txt"} | {f"rom/layer{k}.{kind}.mem" for k in range(len(m["layers"]))
                                                    for kind in ("weights", "thresholds")}
    for rel, entry in m["files"].items():
        if rel not in expected:
            raise ExportError(f"{path}: field 'files' names {rel!r}, which is not a file of a "
                              f"{len(m['layers'])}-layer export (expected {', '.join(sorted(expected))})")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise ExportError(f"{path}: field 'files.{rel}' must be an object with a 'sha256' string, found {entry!r}")
    missing = sorted(expected - set(m["files"]))
    if missing:
        raise ExportError(f"{path}: field 'files' has no entry for {', '.join(missing)}")
    return m


def _check_layers(path: Path, m: dict):
    layers, topology = m["layers"], m["topology"]
    if not isinstance(topology, list) or len(topology) < 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in topology):
        raise ExportError(f"{path}: field 'topology' must be a list of at least 2 positive integers, found {topology!r}")
    if not isinstance(layers, list) or not layers:
        raise ExportError(f"{path}: field 'layers' must list the hidden layers, then one output layer")
    for k, spec in enumerate(layers):
        if not isinstance(spec, dict):
            raise ExportError(f"{path}: field 'layers[{k}]' must be an object, found {spec!r}")
        for key in ("n_in", "n_out"):
            v = spec.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ExportError(f"{path}: field 'layers[{k}].{key}' must be a positive integer, found {v!r}")
        if not isinstance(spec.get("name"), str):
            raise ExportError(f"{path}: field 'layers[{k}].name' must be a string, found {spec.get('name')!r}")
    if [l.get("kind") for l in layers] != ["hidden"] * (len(layers) - 1) + ["output"]:
        raise ExportError(f"{path}: field 'layers' must list the hidden layers (kind 'hidden'), then one "
                          "output layer (kind 'output')")
    if [layers[0]["n_in"]] + [l["n_out"] for l in layers] != list(topology):
        raise ExportError(f"{path}: field 'layers' does not match field 'topology' {topology}")


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


def _parse_weights(path: Path, lines: list, layers: list) -> list:
    """Weight matrices from one line of '0'/'1' characters per layer (``lines``: bytes)."""
    if len(lines) != len(layers):
        raise ExportError(f"{path}: {len(lines)} lines, expected {len(layers)} (one per layer)")
    out = []
    for k, (line, spec) in enumerate(zip(lines, layers)):
        n_in, n_out = spec["n_in"], spec["n_out"]
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


def _parse_ints(path: Path, lines: list, layers: list) -> list:
    """Thresholds and biases, one decimal integer per line (``lines``: bytes)."""
    total = sum(s["n_out"] for s in layers)
    if len(lines) != total:
        raise ExportError(f"{path}: {len(lines)} lines, expected {total} (one per neuron)")
    out, start = [], 0
    for spec in layers:
        values = []
        for j in range(spec["n_out"]):
            text = lines[start + j].strip(b" \t\r")
            where = f"{path}: line {start + j + 1} ({spec['name']}, neuron {j})"
            if not _INT.fullmatch(text):
                raise ExportError(f"{where}: '{text.decode('utf-8', 'backslashreplace')}' is not a decimal integer "
                                  "(ASCII digits with an optional '-')")
            if len(text.lstrip(b"-")) > _INT_DIGITS:
                raise ExportError(f"{where}: {text.decode()} is out of range (thresholds are in [0, n_in + 1], "
                                  "biases below 2**31)")
            v = int(text)
            if spec["kind"] == "hidden" and not 0 <= v <= spec["n_in"] + 1:
                raise ExportError(f"{where}: threshold {v} out of range [0, {spec['n_in'] + 1}]")
            values.append(v)
        out.append(np.array(values, np.int64))
        start += spec["n_out"]
    return out


def load(directory) -> FoldedNetwork:
    """Load and validate an export directory (checksums, sizes, characters, ranges; the ROM
    files must equal what ``weights.txt`` and ``thresholds.txt`` give)."""
    d = Path(directory)
    m = _read_manifest(d)
    layers = m["layers"]
    paths = {rel: _check_file(d, rel, m) for rel in m["files"]}
    weights = _parse_weights(paths["weights.txt"], _lines(paths["weights.txt"]), layers)
    ints = _parse_ints(paths["thresholds.txt"], _lines(paths["thresholds.txt"]), layers)
    net = _network(d / "manifest.json", m["input"], weights, ints, layers)
    for rel, text in rom_files(net).items():
        if paths[rel].read_bytes() != text.encode():
            raise ExportError(f"{paths[rel]}: does not hold the network of weights.txt and thresholds.txt "
                              "(its checksum matches manifest.json, so the export was written inconsistent)")
    digest = m.get("network_sha256")
    if digest is not None and digest != net.digest():
        raise ExportError(f"{d / 'manifest.json'}: field 'network_sha256' {digest} is not the digest of the "
                          f"network its files hold ({net.digest()})")
    return net


def _network(where, inp: dict, weights, ints, layers) -> FoldedNetwork:
    try:
        inp = InputBinarization(inp.get("scheme"), inp.get("level"))
        hidden = tuple(FoldedLayer(w, t, name=spec["name"]) for w, t, spec in zip(weights, ints, layers[:-1]))
        head = OutputHead(weights[-1], ints[-1], name=layers[-1]["name"])
        return FoldedNetwork(hidden, head, inp)
    except (NetworkError, ValueError, TypeError) as e:
        raise ExportError(f"{where}: {e}") from None


def import_files(weights_path, thresholds_path, topology, input: InputBinarization, out_dir, *,
                 dataset: str | None = None) -> Path:
    """Build an export directory from seed-format files that have no manifest.

    ``weights_path``: '0'/'1' characters in the weights.txt order, layer after layer; line
    breaks and other white space are ignored (seed 001 wrote the layers back to back).
    ``thresholds_path``: white-space separated integers, as in thresholds.txt.
    """
    from .model import parse_topology
    sizes = parse_topology(topology)
    weights_path, thresholds_path = Path(weights_path), Path(thresholds_path)
    for path in (weights_path, thresholds_path):
        if not path.is_file():
            raise ExportError(f"{path}: no such file")
    text = b"".join(weights_path.read_bytes().split())
    need = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if len(text) != need:
        raise ExportError(f"{weights_path}: {len(text)} weight characters, expected {need} for topology "
                          f"{'-'.join(map(str, sizes))}")
    specs = [{"name": f"layer {k}" if k < len(sizes) - 2 else "output",
              "kind": "hidden" if k < len(sizes) - 2 else "output", "n_in": a, "n_out": b}
             for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    lines, pos = [], 0
    for s in specs:
        lines.append(text[pos:pos + s["n_in"] * s["n_out"]])
        pos += s["n_in"] * s["n_out"]
    weights = _parse_weights(weights_path, lines, specs)
    ints = _parse_ints(thresholds_path, thresholds_path.read_bytes().split(), specs)
    net = _network(weights_path, {"scheme": input.scheme, "level": input.level}, weights, ints, specs)
    return export(net, out_dir, metadata={"dataset": dataset, "imported_from": [str(weights_path), str(thresholds_path)]})
