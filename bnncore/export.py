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

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .data import InputBinarization
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def export(net: FoldedNetwork, out_dir, *, metadata: dict | None = None) -> Path:
    """Write ``net`` into ``out_dir`` (replaced if it exists); return the directory."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary directory
    try:
        contents = {"weights.txt": weights_text(net),
                    "thresholds.txt": "\n".join(str(int(v)) for s in net.stages
                                                for v in (s.thresholds if isinstance(s, FoldedLayer) else s.bias)) + "\n"}
        contents.update(rom_files(net))
        files = {}
        for rel, text in contents.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            files[rel] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "bnncore_version": __version__,
            "topology": list(net.topology),
            "input": {"scheme": net.input.scheme, "level": net.input.level},
            "layers": [{"name": s.name, "kind": "hidden" if isinstance(s, FoldedLayer) else "output",
                        "n_in": s.n_in, "n_out": s.n_out} for s in net.stages],
            "conventions": CONVENTIONS,
            "files": files,
            "metadata": metadata or {},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace_dir(new: Path, target: Path):
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first, then removed."""
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


# --- Loading --------------------------------------------------------------------------------

def _read_manifest(d: Path) -> dict:
    path = d / "manifest.json"
    if not path.is_file():
        raise ExportError(f"{path}: missing; {d} is not a bnncore export directory")
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ExportError(f"{path}: field 'format' must be {FORMAT!r}, found {m.get('format') if isinstance(m, dict) else m!r}")
    version = m.get("format_version")
    if not isinstance(version, int):
        raise ExportError(f"{path}: field 'format_version' must be an integer, found {version!r}")
    if version > FORMAT_VERSION:
        raise ExportError(f"{path}: format_version {version} is newer than this bnncore reads "
                          f"({FORMAT_VERSION}); upgrade bnncore (written by bnncore {m.get('bnncore_version')})")
    for key in ("topology", "input", "layers", "files"):
        if key not in m:
            raise ExportError(f"{path}: missing field {key!r}")
    return m


def _check_file(d: Path, rel: str, manifest: dict) -> Path:
    path = d / rel
    if not path.is_file():
        raise ExportError(f"{path}: missing (listed in manifest.json)")
    entry = manifest["files"].get(rel)
    if entry is None:
        raise ExportError(f"{d / 'manifest.json'}: field 'files' has no entry for {rel}")
    digest = _sha256(path)
    if digest != entry.get("sha256"):
        raise ExportError(f"{path}: sha256 {digest} does not match manifest.json ({entry.get('sha256')}); "
                          "the file was changed after export")
    return path


def _parse_weights(path: Path, layers: list) -> list:
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
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
            raise ExportError(f"{path}: line {k + 1} ({spec['name']}), character {pos + 1}: {chr(a[pos])!r} is not "
                              f"'0' or '1' (input {pos // n_out}, neuron {pos % n_out})")
        out.append(np.ascontiguousarray((a - ord("0")).reshape(n_in, n_out).T))
    return out


def _parse_ints(path: Path, layers: list) -> list:
    lines = path.read_text().splitlines()
    total = sum(s["n_out"] for s in layers)
    if len(lines) != total:
        raise ExportError(f"{path}: {len(lines)} lines, expected {total} (one per neuron)")
    out, start = [], 0
    for spec in layers:
        values = []
        for j in range(spec["n_out"]):
            text = lines[start + j].strip()
            try:
                v = int(text)
            except ValueError:
                raise ExportError(f"{path}: line {start + j + 1} ({spec['name']}, neuron {j}): {text!r} is not "
                                  "an integer") from None
            if spec["kind"] == "hidden" and not 0 <= v <= spec["n_in"] + 1:
                raise ExportError(f"{path}: line {start + j + 1} ({spec['name']}, neuron {j}): threshold {v} "
                                  f"out of range [0, {spec['n_in'] + 1}]")
            values.append(v)
        out.append(np.array(values, np.int64))
        start += spec["n_out"]
    return out


def load(directory) -> FoldedNetwork:
    """Load and validate an export directory (checksums, sizes, characters, ranges)."""
    d = Path(directory)
    m = _read_manifest(d)
    mpath = d / "manifest.json"
    layers = m["layers"]
    topology = m["topology"]
    if (not isinstance(layers, list) or not layers or [l.get("kind") for l in layers] !=
            ["hidden"] * (len(layers) - 1) + ["output"]):
        raise ExportError(f"{mpath}: field 'layers' must list the hidden layers, then one output layer")
    if [layers[0]["n_in"]] + [l["n_out"] for l in layers] != list(topology):
        raise ExportError(f"{mpath}: field 'layers' does not match field 'topology' {topology}")
    for rel in m["files"]:
        if rel not in ("weights.txt", "thresholds.txt"):
            _check_file(d, rel, m)
    weights = _parse_weights(_check_file(d, "weights.txt", m), layers)
    ints = _parse_ints(_check_file(d, "thresholds.txt", m), layers)
    try:
        inp = InputBinarization(m["input"].get("scheme"), m["input"].get("level"))
        hidden = tuple(FoldedLayer(w, t, name=spec["name"]) for w, t, spec in zip(weights, ints, layers[:-1]))
        head = OutputHead(weights[-1], ints[-1], name=layers[-1]["name"])
        return FoldedNetwork(hidden, head, inp)
    except (NetworkError, ValueError, TypeError, AttributeError) as e:
        raise ExportError(f"{d}: {e}") from None


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
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp) / weights_path.name
        w.write_bytes(b"\n".join(lines) + b"\n")
        weights = _parse_weights(w, specs)
        t = Path(tmp) / thresholds_path.name
        t.write_text("\n".join(thresholds_path.read_text().split()) + "\n")
        try:
            ints = _parse_ints(t, specs)
        except ExportError as e:
            raise ExportError(str(e).replace(str(t), str(thresholds_path))) from None
    try:
        net = FoldedNetwork(tuple(FoldedLayer(w_, t_, name=s["name"])
                                  for w_, t_, s in zip(weights[:-1], ints[:-1], specs[:-1])),
                            OutputHead(weights[-1], ints[-1]), input)
    except (NetworkError, ValueError) as e:
        raise ExportError(f"{weights_path}: {e}") from None
    return export(net, out_dir, metadata={"dataset": dataset, "imported_from": [str(weights_path), str(thresholds_path)]})
