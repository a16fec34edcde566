"""What bnncore raises when what it was given is wrong, and nothing else.

Every error a user can cause (a file, an option, a missing tool, a board's answer) is a
``BnnError``: its message names the input and the field, says what was expected and what to do
next, and the CLI prints it as one line. Any other exception that reaches the CLI is a bug in
bnncore, shown with its traceback and a request to report it. Each stage's error class derives
from one of these, and from the built-in class it always was (``ValueError`` or
``RuntimeError``), so that callers catching those keep working.
"""

from __future__ import annotations

import contextlib
import contextvars

__all__ = ["option", "command_line", "BnnError", "UsageError", "SetupError", "VerificationError", "ExportError", "DataError", "GenerateError"]


#: True while the ``bnn`` command runs a verb: messages then name its options, not keywords.
_COMMAND_LINE = contextvars.ContextVar("bnncore_command_line", default=False)


@contextlib.contextmanager
def command_line():
    """While ``bnn`` runs a verb: messages name its options (``option``)."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def option(name: str, value=True) -> str:
    """How a message names an option: ``--resume`` (``--target-cycles N``) while the ``bnn``
    command runs, ``resume=True`` (``target_cycles=N``) for a Python caller."""
    if _COMMAND_LINE.get():
        flag = "--" + name.replace("_", "-")
        return flag if value is True else f"{flag} {value}"
    return f"{name}={value!r}" if value is True or not isinstance(value, str) else f"{name}={value}"


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
