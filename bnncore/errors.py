"""What bnncore raises when what it was given is wrong, and nothing else.

Every error a user can cause (a file, an option, a missing tool, a board's answer) is a
``BnnError``: its message names the input and the field, says what was expected and what to do
next, and the CLI prints it as one line. Any other exception that reaches the CLI is a bug in
bnncore, shown with its traceback and a request to report it. Each stage's error class derives
from one of these, and from the built-in class it always was (``ValueError`` or
``RuntimeError``), so that callers catching those keep working.
"""

from __future__ import annotations

__all__ = ["BnnError", "UsageError", "SetupError", "VerificationError", "ExportError", "DataError", "GenerateError"]


class BnnError(Exception):
    """Something a user gave bnncore, or the environment it runs in, is not as expected."""


class UsageError(BnnError, ValueError):
    """An argument, option or input value is outside what the function or verb accepts."""


class SetupError(BnnError, RuntimeError):
    """A tool, package, device or service the work needs is missing or does not answer."""


class VerificationError(BnnError, RuntimeError):
    """Two models that must agree exactly (torch and the folded network, qonnx's executor and
    the import) do not; nothing was written."""


class ExportError(BnnError, ValueError):
    """An export directory is missing, inconsistent, corrupt or of an unknown format."""


class DataError(BnnError, ValueError):
    """A data file or directory is missing, corrupt or not what was expected."""


class GenerateError(BnnError, RuntimeError):
    """A tool needed to generate the RTL is missing or failed."""
