"""FPGA families and devices: ``FAMILIES`` (one module per family), ``DEVICES`` (devices.json).

Adding a family is a module here defining a ``Family`` subclass and its ``FAMILY``, one line in
``_MODULES``, its devices' rows in devices.json and its cell-model files (.v) beside them.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from ..tools import SynthError
from .base import FAMILIES, Device, Family, Pll

__all__ = ["FAMILIES", "DEVICES", "Family", "Device", "Pll", "family", "device", "speed_grades"]

#: The registered families, one module each.
_MODULES = ("ice40", "ecp5", "gowin")

FAMILIES.update((f.name, f) for f in (importlib.import_module(f"{__name__}.{m}").FAMILY for m in _MODULES))

_FIELDS = {"family": str, "part": str, "pnr_args": list, "luts": int, "ffs": int, "brams": int, "bram_bits": int,
           "bram_read_width": int, "dsps": int, "synth_args": list, "spram": int, "icetime": str, "speed": int}
_REQUIRED = ("family", "part", "pnr_args", "luts", "ffs", "brams", "bram_bits", "bram_read_width", "dsps")


def load_devices(path: Path) -> dict:
    """{name: Device} from a device table: each row's fields checked, its family registered."""
    rows = json.loads(Path(path).read_text())
    out = {}
    for name, row in rows.items():
        if name.startswith("_"):
            continue
        for key, value in row.items():
            if key not in _FIELDS or not isinstance(value, _FIELDS[key]):
                raise SynthError(f"{path}: device {name!r}, field {key!r}: expected "
                                 f"{_FIELDS[key].__name__ if key in _FIELDS else 'no such field'}, found {value!r}")
        missing = [k for k in _REQUIRED if k not in row]
        if missing or row["family"] not in FAMILIES:
            raise SynthError(f"{path}: device {name!r}: " + (f"fields {missing} missing" if missing else
                             f"family {row['family']!r} is not one of {', '.join(FAMILIES)}"))
        fam = FAMILIES[row["family"]]
        out[name] = Device(name=name, **dict(row, pnr_args=tuple(row["pnr_args"]), synth_args=tuple(row.get("synth_args", ()))), bram_shapes=fam.bram_shapes,
                           speed_grades=fam.speed_grades, reset_buffer=fam.reset_buffer)
    return out


DEVICES: dict = load_devices(Path(__file__).with_name("devices.json"))


def speed_grades() -> list:
    """Every speed grade a family's parts come in (bnn synth --speed)."""
    return sorted({g for f in FAMILIES.values() for g in f.speed_grades})


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise SynthError(f"unknown FPGA family {name!r}; expected one of {', '.join(FAMILIES)}") from None


def device(name) -> Device:
    """The Device named ``name`` (a Device is returned as it is)."""
    if isinstance(name, Device):
        return name
    if name not in DEVICES:
        raise SynthError(f"unknown device {name!r}; expected one of {', '.join(DEVICES)}")
    return DEVICES[name]
