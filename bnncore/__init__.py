"""bnncore: binarized neural networks from PyTorch training to verified FPGA accelerators.

The stages as functions, each imported on first use (``import bnncore`` stays light)::

    bnncore.load_dataset                      # a built-in dataset, or a .npz / image folder of your own
    bnncore.dataset_from_arrays, bnncore.dataset_from_torch   # your data from Python (train(..., data=))
    bnncore.TrainConfig, bnncore.train        # train a binary MLP or CNN (torch)
    bnncore.fold                              # a checkpoint or model -> FoldedNetwork
    bnncore.export, bnncore.load              # export directories
    bnncore.infer                             # the golden model
    bnncore.generate                          # the accelerator's RTL
    bnncore.simulate                          # cocotb on Verilator, Icarus or GHDL, against the golden model
    bnncore.synthesize, bnncore.sweep         # Yosys and nextpnr
    bnncore.export_qonnx, bnncore.import_qonnx  # QONNX models, ours out and Brevitas' in
    bnncore.write_report                      # one HTML page of a build folder

``bnncore.api`` has the signatures; examples/flow.py runs the whole flow.
"""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("bnncore")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+src"

#: name -> (module, attribute) of the public functions, imported when first used
_LAZY = {
    "TrainConfig": ("config", "TrainConfig"),
    "train": ("training", "train"),
    "load_checkpoint": ("training", "load_checkpoint"),
    "fold": ("api", "fold"),
    "export": ("exports", "export"),
    "load": ("exports", "load"),
    "infer": ("golden", "infer"),
    "generate": ("api", "generate"),
    "simulate": ("api", "simulate"),
    "synthesize": ("api", "synthesize"),
    "sweep": ("api", "sweep"),
    "export_qonnx": ("interop", "export_qonnx"),
    "import_qonnx": ("api", "import_qonnx"),
    "write_report": ("report", "write_report"),
    "load_dataset": ("data", "load_dataset"),
    "dataset_from_arrays": ("data", "from_arrays"),
    "dataset_from_torch": ("data", "from_torch"),
    "FoldedNetwork": ("network", "FoldedNetwork"),
    "InputBinarization": ("data", "InputBinarization"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bnncore' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
