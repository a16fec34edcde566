"""bnncore: binarized neural networks from PyTorch training to verified FPGA accelerators."""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("bnncore")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+src"
