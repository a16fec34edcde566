"""The ``bnn`` command line: one subcommand per stage of the flow, grouped by module: the
software flow (flow.py), the hardware flow (hardware.py), the board link (board.py), and what
they share (options.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import traceback

from .. import __version__
from ..errors import BnnError, command_line
from . import board, flow, hardware
from .board import run_on_board
from .options import DATASET_NAMES, EXAMPLES, Interrupted

__all__ = ["main", "build_parser", "EXAMPLES", "DATASET_NAMES", "run_on_board"]

#: the verbs in the order of the flow (`bnn --help` lists them so)
VERBS = (flow.add_data, flow.add_train, flow.add_eval, flow.add_fold, flow.add_export, flow.add_import,
         flow.add_summary, hardware.add_rtl, hardware.add_sim, hardware.add_synth, board.add_run, board.add_load,
         hardware.add_sweep, flow.add_experiment, flow.add_report)


def build_parser() -> argparse.ArgumentParser:
    width = max(map(len, EXAMPLES))
    parser = argparse.ArgumentParser(
        prog="bnn", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill("bnncore: train binary MLPs and CNNs, fold them to integer thresholds, "
                                  "and turn them into verified FPGA accelerators with open tools.", 79),
        epilog="the flow, one example per command:\n" + "\n".join(
            f"  {name:{width}}  {example}" for name, example in EXAMPLES.items())
        + "\n\n`bnn COMMAND --help` describes each command's options.")
    parser.add_argument("--version", action="version", version=f"bnncore {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in VERBS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        with command_line():
            args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `bnn summary | head`: the reader has what it wanted. Point stdout at /dev/null so
        # that the interpreter's final flush does not report the closed pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141                                    # 128 + SIGPIPE, as a shell tool ends
    except MemoryError:
        if os.environ.get("BNN_DEBUG"):
            raise
        print(f"bnn {args.command}: error: out of memory; the input is larger than this machine can take "
              "(a smaller network, fewer images, or fewer jobs)", file=sys.stderr)
        return 2
    except (BnnError, OSError) as e:   # what the user gave, or the file system: one line
        if os.environ.get("BNN_DEBUG"):
            raise
        print(f"bnn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as e:
        print(f"bnn {args.command}: {str(e) or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception:
        # anything else is bnncore's fault, not the user's: show where, and ask for a report
        traceback.print_exc()
        print(f"bnn {args.command}: internal error in bnncore {__version__}: this is a bug; please report it "
              "with the command line above and this traceback", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
