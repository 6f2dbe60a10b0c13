"""The ``match-mapper`` command line (also ``python -m explorer``): ``map``, ``explain``,
``validate``, ``compare``, ``sweep``.

Exit status: 0 ok, 2 bad input (the message names the file and the field), 1 internal error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Optional, Sequence

import archs
import mapper
from explorer import cmd_compare, cmd_explain, cmd_map, cmd_sweep, cmd_validate
from explorer.inputs import InputError

#: Exceptions that mean bad user input (exit status 2).
INPUT_ERRORS: tuple[type[BaseException], ...] = (InputError, archs.ArchError, mapper.GraphError, mapper.LayerError, FileNotFoundError,
                                                 IsADirectoryError, NotADirectoryError, PermissionError)


def _bridge_error() -> tuple[type[BaseException], ...]:
    """``tvm_bridge.BridgeError`` when a model went through the bridge (never imports TVM otherwise)."""
    bridge = sys.modules.get("tvm_bridge")
    if bridge is None:
        return ()
    try:
        return (bridge.BridgeError,)
    except (AttributeError, ImportError):
        return ()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage errors: exit 2 as well
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="match-mapper", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v: info logs, -vv: debug logs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in (cmd_map, cmd_explain, cmd_validate, cmd_compare, cmd_sweep):
        command.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 bad input, 1 internal error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except INPUT_ERRORS + _bridge_error() as exc:
        print(f"match-mapper {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - anything else is our bug: say so, with the traceback
        print(f"match-mapper {args.command}: internal error (please report it)\n{traceback.format_exc()}", file=sys.stderr)
        return 1


def console() -> None:
    """Entry point of the ``match-mapper`` console script."""
    sys.exit(main())
