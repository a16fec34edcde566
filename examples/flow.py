"""The whole flow from Python: train a small binary MLP on MNIST, fold it, generate the
accelerator, simulate 1,000 test images on Verilator against the golden model, synthesize it
for the iCE40 UP5K, and write the report page.

    .venv/bin/python examples/flow.py --data-dir ../shared/datasets [--tiny] [--out build/example]

--tiny trains on 2,000 images for one epoch and simulates 100 images (what the tests run).
"""

import argparse
from pathlib import Path

import bnncore


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", help="folder holding mnist/ (default: $BNN_DATA_DIR, the user cache, ...)")
    ap.add_argument("--out", type=Path, default=Path("build/example"))
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    out = args.out

    # 1. train: a TrainConfig holds what `bnn train` takes as options
    cfg = bnncore.TrainConfig(dataset="mnist", topology="784-100-100-10", epochs=1 if args.tiny else 10,
                              limit=2000 if args.tiny else 0)
    run = bnncore.train(cfg, out / "train", data_dir=args.data_dir, resume=True, progress=False)
    print(f"trained: test accuracy {run['best']['test_acc']:.4f} at epoch {run['best']['epoch']}")

    # 2. fold: the checkpoint carries its input scheme; verify_on checks every class and hidden
    #    bit against torch on the test set, as `bnn fold` does
    ds = bnncore.load_dataset("mnist", args.data_dir)
    net = bnncore.fold(out / "train" / "best.pt", verify_on=(ds.test_images, ds.test_labels))
    bnncore.export(net, out / "net")
    golden = bnncore.infer(net, net.input.bits(ds.test_images))
    print(f"folded: {net}; golden accuracy {(golden.classes == ds.test_labels).mean():.4f}")

    # 3. generate the accelerator, folded for the UP5K's block RAMs at 250 cycles per image
    rtl = bnncore.generate(net, out / "rtl", target_cycles=250, device="up5k", vhdl=False)

    # 4. simulate test images through the RTL; every result is compared with the golden model
    n = 100 if args.tiny else 1000
    sim = bnncore.simulate(rtl, out / "net", ds.test_images[:n], labels=ds.test_labels[:n], sim="verilator",
                           build_dir=out / "sim")
    print(f"simulated {sim['images']} images: {sim['mismatches']} mismatches, RTL accuracy {sim['accuracy']:.4f}")

    # 5. synthesize for the iCE40 UP5K (place and route; no bitstream needed here)
    report = bnncore.synthesize(rtl, "up5k", out / "synth", bitstream=False)
    print(f"UP5K: {report['resources']['luts']:,} LUTs, {report['resources']['brams']} block RAMs, "
          f"{report['fmax_mhz']:.1f} MHz, {report['images_per_second']:,} images/s")

    # 6. everything on one page
    print(f"report: {bnncore.write_report(out)}")


if __name__ == "__main__":
    main()
