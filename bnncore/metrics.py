"""Per-class accuracy and the confusion matrix: what ``bnn eval`` prints, what a fold's
verification records in the export's manifest, and what ``bnn report`` draws (its tables are
bnncore.report's ``class_table`` and ``confusion_table``)."""

from __future__ import annotations

import io

import numpy as np

__all__ = ["confusion", "per_class", "confusion_png", "class_name"]


def confusion(labels, predictions, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"{len(labels)} labels for {len(predictions)} predictions")
    for what, a in (("label", labels), ("prediction", predictions)):
        bad = np.flatnonzero((a < 0) | (a >= n_classes))
        if len(bad):
            raise ValueError(f"{what} {int(a[bad[0]])} at index {int(bad[0])} is not a class in [0, {n_classes})")
    return np.bincount(labels * n_classes + predictions, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_name(names, c: int) -> str:
    return str(names[c]) if names and c < len(names) else str(c)


def per_class(matrix, names=()) -> list:
    """One dict per class: its images, the correct ones, accuracy (None without images), and
    the class it is most often taken for (None when never wrong)."""
    m = np.asarray(matrix)
    rows = []
    for c in range(len(m)):
        wrong = m[c].copy()
        wrong[c] = 0
        n = int(m[c].sum())
        rows.append({"class": c, "name": class_name(names, c), "images": n, "correct": int(m[c, c]),
                     "accuracy": float(m[c, c] / n) if n else None,
                     "taken_for": class_name(names, int(wrong.argmax())) if wrong.any() else None,
                     "taken_for_images": int(wrong.max())})
    return rows


def confusion_png(matrix, names=(), title: str = "") -> bytes:
    """The confusion matrix drawn as a PNG: each row shaded by the share of its class's
    images, the counts written in when there are at most 20 classes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = np.asarray(matrix, np.float64)
    k = len(m)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    size = min(12.0, 2.5 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    labels = [class_name(names, c) for c in range(k)]
    if k <= 40:
        ax.set_xticks(range(k), labels, rotation=90 if max(map(len, labels)) > 2 else 0)
        ax.set_yticks(range(k), labels)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the class's images")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
