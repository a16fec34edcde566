"""QONNX both ways, on the whole MNIST test set, against qonnx's executor.

    python bench/qonnx_interop.py [--data-dir DIR] [--epochs 10] [--net build/demo/net] [--random 1000]

Import: trains Brevitas' SFC topology (784-256-256-256-10, W1A1 with a 1-bit input, ±1
weights as FINN's examples quantize them) for a few epochs, exports it with Brevitas'
``export_qonnx``, imports it (``bnncore.qonnx_import``) and compares every class and hidden
bit of our golden model with qonnx's executor on the original model; the import time is the
fold alone, the verification time is qonnx's executor and ours over 10,000 images.
Round trip: with ``--net``, an export directory (the demo's by default, when it exists) goes
out as QONNX (``bnn export --qonnx``), qonnx's executor runs it against the golden model, and
it is imported back with no option. ``brevitas_examples.bnn_pynq``: every W1A1 model (TFC, SFC,
LFC, CNV; untrained, random BatchNorm statistics) is imported and proved on ``--random``
random inputs, and the MLPs on the MNIST test set. Prints a table; nothing is timed as a test.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from bnncore.data import load_dataset
from bnncore.exports import load
from bnncore.golden import infer
from bnncore.interop import export_qonnx, run_qonnx
from bnncore.qonnx_import import import_qonnx, verify_qonnx


def sfc():
    from brevitas.nn import QuantIdentity, QuantLinear
    from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    class Weights(SignedBinaryWeightPerTensorConst):
        scaling_const = 1.0

    def sign():
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)

    layers, n = [sign()], 784
    for width in (256, 256, 256):
        layers += [QuantLinear(n, width, bias=False, weight_quant=Weights), nn.BatchNorm1d(width), sign()]
        n = width
    layers.append(QuantLinear(n, 10, bias=False, weight_quant=Weights))
    body = nn.Sequential(*layers)

    class SFC(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, x):                      # x = pixel / 255, fed as 2x - 1 as in FINN's examples
            return self.body(2.0 * x.reshape(x.shape[0], -1) - 1.0)
    return SFC()


def train(model, ds, epochs):
    x = torch.tensor(ds.train_images / 255.0, dtype=torch.float32)
    y = torch.tensor(ds.train_labels).long()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * (len(x) // 100))
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x) - 99, 100):
            idx = perm[i:i + 100]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}", flush=True)
    return model.eval()


def bnn_pynq(name: str, path: Path) -> Path:
    """brevitas_examples.bnn_pynq's ``name``, unmodified and untrained, with random BatchNorm
    statistics (negative scales among them), exported with Brevitas' export_qonnx."""
    from brevitas.export import export_qonnx as brevitas_export
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    model, _ = model_with_cfg(name, pretrained=False)
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.data, m.running_var.data = torch.randn(n, generator=gen) * 3, torch.rand(n, generator=gen) + 0.5
            m.weight.data, m.bias.data = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    model.eval()
    brevitas_export(model, torch.zeros((1, 1, 28, 28) if "fc" in name else (1, 3, 32, 32)), str(path))
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--net", default="build/demo/net", help="export directory for the round trip (skipped if absent)")
    ap.add_argument("--random", type=int, default=1000, help="random inputs each bnn_pynq model is proved on")
    args = ap.parse_args()
    from brevitas.export import export_qonnx as brevitas_export
    ds = load_dataset("mnist", args.data_dir)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        torch.manual_seed(0)
        model = train(sfc(), ds, args.epochs)
        train_s = time.perf_counter() - t
        with torch.no_grad():
            torch_acc = float((model(torch.tensor(ds.test_images / 255.0, dtype=torch.float32)).argmax(1).numpy()
                               == ds.test_labels).mean())
        path = Path(tmp) / "sfc.onnx"
        brevitas_export(model, torch.rand(1, 1, 28, 28), str(path))
        imp = import_qonnx(path)
        t = time.perf_counter()
        r = verify_qonnx(imp, ds.test_images, ds.test_labels)
        verify_s = time.perf_counter() - t
        rows.append(("import: Brevitas SFC", imp.net.spec, f"{args.epochs} epochs, {train_s:.0f} s; torch {100 * torch_acc:.2f}%",
                     r, f"{imp.seconds:.2f} s fold, {verify_s:.1f} s verify"))
        print(imp.report.text())
        if Path(args.net).is_dir():
            net = load(args.net)
            onnx_path = export_qonnx(net, Path(tmp) / "net.onnx")
            t = time.perf_counter()
            scores = run_qonnx(onnx_path, ds.test_images)
            run_s = time.perf_counter() - t
            gold = infer(net, net.input.bits(ds.test_images), return_layers=True)   # with the scores
            rt = {"images": len(scores), "class_mismatches": int((scores.argmax(1) != gold.classes).sum()),
                  "hidden_bit_mismatches": None, "score_mismatches": int((scores != gold.scores).any(1).sum()),
                  "folded_accuracy": float((gold.classes == ds.test_labels).mean()),
                  "qonnx_accuracy": float((scores.argmax(1) == ds.test_labels).mean())}
            back = import_qonnx(onnx_path).net                   # no option: the model records its input
            rows.append((f"round trip: {args.net}", net.spec, "bnn export --qonnx, then bnn import: "
                         + ("the same network" if back == net else "ANOTHER NETWORK"), rt, f"{run_s:.1f} s qonnx"))
        for name in ("tfc_1w1a", "sfc_1w1a", "lfc_1w1a", "cnv_1w1a"):
            path = bnn_pynq(name, Path(tmp) / f"{name}.onnx")
            imp = import_qonnx(path)
            sets = [(f"random:{args.random}", imp.net.input.random_pixels(args.random, imp.net.n_inputs), None)]
            if "fc" in name:
                sets.append(("mnist test", ds.test_images, ds.test_labels))
            for what, images, labels in sets:
                t = time.perf_counter()
                r = verify_qonnx(imp, images, labels)
                rows.append((f"import: bnn_pynq {name} ({what})", imp.net.spec,
                             f"untrained, random BatchNorm; {imp.net.input.scheme} input", r,
                             f"{imp.seconds:.2f} s fold, {time.perf_counter() - t:.1f} s verify"))
    print("| what | topology | model | test images | qonnx acc | folded acc | class mismatches | "
          "hidden-bit / score mismatches | time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for what, spec, model_s, r, time_s in rows:
        other = (f"{r['hidden_bit_mismatches']} of {r['hidden_bits_compared']:,} bits" if r["hidden_bit_mismatches"]
                 is not None else f"{r['score_mismatches']} images' scores")
        acc = [f"{100 * r[k]:.2f}%" if k in r else "-" for k in ("qonnx_accuracy", "folded_accuracy")]
        print(f"| {what} | {spec} | {model_s} | {r['images']:,} | {acc[0]} | {acc[1]} | {r['class_mismatches']} | "
              f"{other} | {time_s} |")


if __name__ == "__main__":
    main()
