"""Training: config, loop, metrics, self-describing checkpoints with resume.

``train(cfg, out_dir)`` writes into ``out_dir``:

- ``checkpoint.pt``: the state after the last finished epoch (model, optimizer, schedule,
  random number generators, metrics), what ``resume`` continues from;
- ``best.pt``: the model of the epoch with the best validation accuracy (what is folded);
- ``metrics.csv`` / ``metrics.json``: one row per epoch; ``curve.png``: the training curves.

On the CPU a run is deterministic: the same config and seed give bit-identical latent
weights, and a run resumed after an interruption equals one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import resource
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import __version__
from .config import CheckpointError, TrainConfig
from .data import InputBinarization, describe, load_dataset
from .errors import SetupError, UsageError, option
from .fileio import atomic_savefig, atomic_write_text, temp_file
from .model import build_model
from .topology import parse

__all__ = ["TrainConfig", "train", "evaluate", "load_checkpoint", "CheckpointError", "input_tensor"]

log = logging.getLogger("bnncore.training")

CHECKPOINT_FORMAT = "bnncore-checkpoint"
CHECKPOINT_VERSION = 1


# --- Inputs ---------------------------------------------------------------------------------

def input_tensor(images, binarization: InputBinarization, *, generator=None, device="cpu") -> torch.Tensor:
    """uint8 images (N, pixels) -> network input: +-1 floats, the pixels 0..255 as floats for
    scheme 'uint8', or pixel/255 for scheme 'none'.

    With a ``generator`` and scheme 'probability', bits are sampled (training); without one,
    the deterministic inference bits of :meth:`InputBinarization.bits` are used.
    """
    images = torch.as_tensor(np.asarray(images)).to(device)
    if binarization.scheme == "none":
        return images.float() / 255.0
    if binarization.scheme == "uint8":
        return images.float()
    if binarization.scheme == "probability" and generator is not None:
        u = torch.rand(images.shape, generator=generator, device=device)
        bits = u * 255.0 < images.float()           # P(bit = 1) = pixel / 255
    else:
        level = binarization.level if binarization.scheme == "threshold" else 128
        bits = images >= level
    return bits.float() * 2.0 - 1.0


def random_shift(images: torch.Tensor, shift: int, generator, shape=None) -> torch.Tensor:
    """Translate each uint8 image (N, pixels; flat (y, x, channel)) by its own random (dy, dx)
    in [-shift, shift], filling with 0: a random crop of the image padded by ``shift``.
    ``shape``: (channels, height, width); default: square single-channel images."""
    n, pixels = images.shape
    if shape is None:
        side = int(round(pixels ** 0.5))
        if side * side != pixels:
            raise UsageError(f"shift augmentation needs square images or a shape, not {pixels} pixels")
        shape = (1, side, side)
    c, h, w = shape
    padded = torch.nn.functional.pad(images.view(n, h, w, c), (0, 0, shift, shift, shift, shift))
    offs = torch.randint(0, 2 * shift + 1, (2, n), generator=generator, device=images.device)
    rows = (offs[0][:, None] + torch.arange(h, device=images.device))[:, :, None]
    cols = (offs[1][:, None] + torch.arange(w, device=images.device))[:, None, :]
    return padded[torch.arange(n, device=images.device)[:, None, None], rows, cols].reshape(n, pixels)


def random_flip(images: torch.Tensor, generator, shape) -> torch.Tensor:
    """Mirror each uint8 image (N, pixels; flat (y, x, channel)) left-right with probability 1/2."""
    n = len(images)
    c, h, w = shape
    x = images.view(n, h, w, c)
    flip = torch.rand(n, generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(2), x).reshape(n, -1)


# --- Checkpoints ----------------------------------------------------------------------------

def _versions() -> dict:
    return {"bnncore": __version__, "torch": str(torch.__version__), "numpy": np.__version__,
            "python": platform.python_version()}


def _atomic_save(obj, path: Path):
    fd, tmp = temp_file(path)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: not a bnncore checkpoint (torch.load failed: {why})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a bnncore checkpoint (no 'format': '{CHECKPOINT_FORMAT}' field)")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {ckpt['version']} is newer than this "
                              f"bnncore reads ({CHECKPOINT_VERSION}); upgrade bnncore")
    return ckpt


def load_checkpoint(path):
    """Load a checkpoint; return (model in eval mode, TrainConfig, checkpoint dict)."""
    ckpt = _read_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path}: field 'config' and field 'model' must be present (a checkpoint "
                              "written by bnn train)")
    try:
        cfg = TrainConfig.from_dict(ckpt["config"])
        model = build_model(cfg.model_config())
        model.load_state_dict(ckpt["model"])
    except CheckpointError as e:
        raise CheckpointError(f"{path}: field 'config': {e}") from None
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: its config and weights do not make a model ({why})") from None
    model.eval()
    return model, cfg, ckpt


# --- Loop -----------------------------------------------------------------------------------

def _loss(logits, labels, kind):
    if kind == "nll":
        return F.nll_loss(F.log_softmax(logits, dim=1), labels)
    target = F.one_hot(labels, logits.shape[1]).to(logits.dtype) * 2 - 1
    return F.relu(1 - target * logits).pow(2).mean()


def _lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """Learning-rate multiplier for ``epoch`` (0-based): lr at epoch 0, lr_end at the last."""
    if cfg.schedule == "const" or cfg.epochs == 1:
        return 1.0
    t = epoch / (cfg.epochs - 1)
    ratio = cfg.lr_end / cfg.lr
    if cfg.schedule == "exp":
        return ratio ** t
    return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * t))


def _dtype(model) -> torch.dtype:
    return next(model.parameters()).dtype


@torch.no_grad()
def evaluate(model, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000, *, loss: str | None = None):
    """(accuracy, predictions) of ``model`` in eval mode on prepared inputs; with ``loss``
    (a loss kind), (accuracy, predictions, mean loss)."""
    was_training = model.training
    model.eval()
    dtype, preds, total = _dtype(model), [], 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size].to(dtype)).float()
        preds.append(logits.argmax(dim=1))
        if loss is not None:
            total += _loss(logits, labels[i:i + batch_size], loss).item() * len(logits)
    model.train(was_training)
    preds = torch.cat(preds)
    acc = (preds == labels).sum().item() / len(labels)
    return (acc, preds) if loss is None else (acc, preds, total / len(labels))


def _peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _progress(total, desc, enabled):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, leave=False, disable=not enabled, dynamic_ncols=True)


def _run_files(d: Path):
    """A run folder of a bnncore without output markers: ours when it holds a checkpoint."""
    return set() if any((d / n).is_file() for n in ("best.pt", "checkpoint.pt")) else None


def train(cfg: TrainConfig, out_dir, *, data_dir=None, data=None, resume: bool = False, force: bool = False,
          progress: bool | None = None) -> dict:
    """Train ``cfg`` into ``out_dir``; return the final metrics (the last row plus the best).
    ``data``: a ``bnncore.data.Dataset`` to train on instead of ``cfg.dataset`` (from arrays or a
    torch Dataset: ``bnncore.data.from_arrays``, ``from_torch``); the run records its name.

    A run folder that already holds a run (``best.pt`` or ``checkpoint.pt``) is continued
    with ``resume``, replaced with ``force``, and otherwise refused: a new run would
    overwrite the earlier model. A folder that is not a run folder of ``bnn train`` is refused
    (bnncore.fileio's output rule), and one run at a time writes a folder.
    """
    from .fileio import OutputDirError, check_output, workspace
    out = Path(out_dir)
    try:
        check_output(out, "train", _run_files, in_place=True)
    except OutputDirError as e:
        raise UsageError(str(e)) from None
    earlier = [n for n in ("best.pt", "checkpoint.pt") if (out / n).exists()]
    if earlier and not force and not (resume and (out / "checkpoint.pt").exists()):
        raise UsageError(f"{out}: holds an earlier run ({', '.join(earlier)}); continue it with {option('resume')}, "
                         f"replace it with {option('force')}, or choose another run folder")
    if data is not None:
        cfg = replace(cfg, dataset=data.name)
    ds = _data_for(cfg, data_dir, data)   # read and checked before anything is written
    try:
        with workspace(out, "train", _run_files):
            return _train(cfg, Path(out_dir), ds, resume=resume, force=force, progress=progress)
    except OutputDirError as e:
        raise UsageError(str(e)) from None


def _data_for(cfg: TrainConfig, data_dir, data=None):
    """The dataset of ``cfg`` (or ``data``), checked against its topology: input shape and class
    count."""
    ds = data if data is not None else load_dataset(cfg.dataset, data_dir, val_size=cfg.val_size)
    topo = parse(cfg.topology)
    n_in = topo.n_inputs
    if len(topo.in_shape) == 3 and tuple(topo.in_shape) != tuple(ds.shape):
        raise UsageError(f"topology {cfg.topology} expects {'x'.join(map(str, topo.in_shape))} images, but "
                         f"{cfg.dataset} images are {'x'.join(map(str, ds.shape))} (channels x height x width)")
    if ds.train_images.shape[1] != n_in:
        raise UsageError(f"topology {cfg.topology} expects {n_in} inputs, but {cfg.dataset} images "
                         f"have {ds.train_images.shape[1]} pixels")
    if topo.classes != ds.n_classes:
        raise UsageError(f"topology {cfg.topology} ends in {topo.classes} classes, but {cfg.dataset} has "
                         f"{ds.n_classes}: make its last number {ds.n_classes}")
    if cfg.limit > len(ds.train_images):
        raise UsageError(f"limit {cfg.limit} is more than the {len(ds.train_images)} training images "
                         f"({cfg.dataset} with val_size {cfg.val_size})")
    return ds


def _train(cfg: TrainConfig, out: Path, ds, *, resume: bool, force: bool, progress) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise SetupError("--device cuda asked for, but torch sees no CUDA device")
    device = torch.device(cfg.device)
    if progress is None:
        progress = os.isatty(2)

    binz = cfg.binarization()
    train_images = ds.train_images[:cfg.limit] if cfg.limit else ds.train_images
    train_labels = torch.as_tensor(ds.train_labels[:len(train_images)]).long().to(device)
    raw_train = torch.as_tensor(train_images).to(device)
    fixed = binz.scheme != "probability" and not cfg.shift and not cfg.flip
    fixed_train = input_tensor(train_images, binz, device=device) if fixed else None
    val_x, test_x = (input_tensor(a, binz, device=device) for a in (ds.val_images, ds.test_images))
    val_y, test_y = (torch.as_tensor(a).long().to(device) for a in (ds.val_labels, ds.test_labels))

    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model = build_model(cfg.model_config()).to(device)
    half = getattr(torch, cfg.half)
    if cfg.precision == "fw16bw16":
        model = model.to(half)
    autocast = (lambda: torch.autocast(device.type, dtype=half)) if cfg.precision == "fw16bw32" else contextlib.nullcontext
    params = list(model.parameters())
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, fused=True)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: _lr_factor(cfg, e))

    data = describe(ds)
    atomic_write_text(out / "data.json", json.dumps(data, indent=2))
    metrics, start, best = [], 0, None
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ckpt = _read_checkpoint(ckpt_path)
        old = TrainConfig.from_dict(ckpt["config"])
        if asdict(old) != asdict(cfg):
            diff = {k: (v, getattr(cfg, k)) for k, v in asdict(old).items() if getattr(cfg, k) != v}
            raise CheckpointError(f"{ckpt_path}: cannot resume, the config differs: {diff}")
        if isinstance(ckpt.get("data"), dict) and ckpt["data"].get("digest") != data["digest"]:
            raise CheckpointError(f"{ckpt_path}: cannot resume, {cfg.dataset} is not the data the run began on "
                                  "(its content digest differs)")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        gen.set_state(ckpt["rng"]["generator"])
        metrics, start, best = ckpt["metrics"], ckpt["epoch"], ckpt.get("best")
        log.info("resuming %s after epoch %d", ckpt_path, start)

    n = len(train_labels)
    for epoch in range(start, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = _progress(binz.repeats * math.ceil(n / cfg.batch_size),
                        f"epoch {epoch + 1}/{cfg.epochs}", progress)
        for _ in range(binz.repeats if binz.scheme == "probability" else 1):
            perm = torch.randperm(n, generator=gen, device=device)
            for i in range(0, n, cfg.batch_size):
                idx = perm[i:i + cfg.batch_size]
                if fixed_train is None:
                    raw = random_shift(raw_train[idx], cfg.shift, gen, ds.shape) if cfg.shift else raw_train[idx]
                    if cfg.flip:
                        raw = random_flip(raw, gen, ds.shape)
                    x = input_tensor(raw, binz, generator=gen if binz.scheme == "probability" else None,
                                     device=device)
                else:
                    x = fixed_train[idx]
                y = train_labels[idx]
                with autocast():
                    logits = model(x.to(_dtype(model)))
                    loss = _loss(logits.float(), y, cfg.loss)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                model.clip_()
                loss_sum += loss.item() * len(idx)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(idx)
                if bar is not None:
                    bar.update()
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
        if bar is not None:
            bar.close()
        lr = opt.param_groups[0]["lr"]
        sched.step()
        seconds = time.perf_counter() - t0
        with autocast():
            val_acc = evaluate(model, val_x, val_y)[0] if len(val_y) else float("nan")
            test_acc, _, test_loss = evaluate(model, test_x, test_y, loss=cfg.loss)
        row = {"epoch": epoch + 1, "lr": lr, "loss": loss_sum / seen, "train_acc": correct / seen,
               "val_acc": val_acc, "test_acc": test_acc, "test_loss": test_loss, "seconds": seconds,
               "peak_mem_mib": _peak_memory_mib()}
        if cfg.device == "cuda":
            row["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        metrics.append(row)
        log.info("epoch %3d/%d  loss %.4f  train %.4f  val %.4f  test %.4f  lr %.2e  %.1f s",
                 epoch + 1, cfg.epochs, row["loss"], row["train_acc"], val_acc, test_acc, lr, seconds)

        state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": asdict(cfg),
                 "model": model.state_dict(), "epoch": epoch + 1, "metrics": metrics,
                 "versions": _versions(), "data": data}
        # With no validation set, the last epoch counts as the best.
        if best is None or not len(val_y) or val_acc > best["val_acc"]:
            best = dict(row)
            _atomic_save(dict(state, best=best), out / "best.pt")
        _atomic_save(dict(state, best=best, optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                          rng={"torch": torch.get_rng_state(), "generator": gen.get_state()}), ckpt_path)
        _write_metrics(out, metrics, best, cfg)
    return {"last": metrics[-1], "best": best, "out_dir": str(out)}


def _write_metrics(out: Path, metrics: list, best: dict, cfg: TrainConfig):
    cols = list(metrics[-1].keys())
    lines = [",".join(cols)] + [",".join(f"{r.get(c, '')}" for c in cols) for r in metrics]
    atomic_write_text(out / "metrics.csv", "\n".join(lines) + "\n")
    atomic_write_text(out / "metrics.json", json.dumps(
        {"config": asdict(cfg), "epochs": metrics, "best": best, "versions": _versions()}, indent=2))
    plot_curves(metrics, out / "curve.png", title=f"{cfg.dataset} {cfg.topology} "
                f"({'binary' if cfg.binary else 'float'}, {cfg.input} input)", best=best)


def plot_curves(metrics: list, path: Path, title: str = "", best: dict | None = None):
    """Accuracies and training loss per epoch; the epoch of the best validation accuracy (the
    one ``best.pt`` holds) is marked, with its test accuracy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ep = [r["epoch"] for r in metrics]
    best = best or max(metrics, key=lambda r: r["val_acc"])    # the first of equals, as train() picks
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_acc", "train"), ("val_acc", "validation"), ("test_acc", "test")):
        ax1.plot(ep, [100 * r[key] for r in metrics], marker=".", label=label)
    ax1.axvline(best["epoch"], color="0.5", ls="--", lw=1)
    right = best["epoch"] > (ep[0] + ep[-1]) / 2                 # label on the side with room
    ax1.annotate(f"best validation: epoch {best['epoch']}\ntest {100 * best['test_acc']:.2f}%",
                 (best["epoch"], 100 * best["test_acc"]), xytext=(-8 if right else 8, -36),
                 textcoords="offset points", ha="right" if right else "left", fontsize=8,
                 arrowprops=dict(arrowstyle="-", color="0.5"))
    ax1.set_xlabel("epoch"), ax1.set_ylabel("accuracy (%)"), ax1.grid(alpha=0.3), ax1.legend(loc="lower right")
    ax2.plot(ep, [r["loss"] for r in metrics], marker=".", color="C3", label="training loss")
    ax2.axvline(best["epoch"], color="0.5", ls="--", lw=1)
    ax2.set_xlabel("epoch"), ax2.set_ylabel("training loss"), ax2.grid(alpha=0.3), ax2.legend()
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(ep) == 1:
            ax.set_xlim(ep[0] - 1, ep[0] + 1)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
