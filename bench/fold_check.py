"""Fold trained checkpoints and check them against torch on the full test set.

    python bench/fold_check.py CHECKPOINT [CHECKPOINT ...] [--data-dir DIR]

Prints, per network: torch eval accuracy, folded (golden) accuracy, images whose class
differs and hidden activation bits that differ (both must be 0), and the fold report.
"""

import argparse

from bnncore.data import load_dataset
from bnncore.folding import fold_with_report, verify
from bnncore.training import load_checkpoint


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    rows = []
    for path in args.checkpoints:
        model, cfg, _ = load_checkpoint(path)
        net, report = fold_with_report(model, cfg.binarization())
        ds = load_dataset(cfg.dataset, args.data_dir, val_size=cfg.val_size)
        r = verify(net, model, ds.test_images, ds.test_labels)
        print(f"{path}\n{report.text()}\n")
        rows.append((cfg.dataset, cfg.topology, cfg.input, r))
    print("| dataset | topology | input | test images | torch acc | folded acc | class mismatches | hidden-bit mismatches |")
    print("|---|---|---|---|---|---|---|---|")
    for ds, topo, inp, r in rows:
        print(f"| {ds} | {topo} | {inp} | {r['images']} | {100 * r['torch_accuracy']:.2f}% | "
              f"{100 * r['folded_accuracy']:.2f}% | {r['class_mismatches']} | "
              f"{r['hidden_bit_mismatches']} of {r['hidden_bits_compared']:,} |")


if __name__ == "__main__":
    main()
