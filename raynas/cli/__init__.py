"""The ``raynas`` command line: one module per command group, each adding its subparsers."""

from __future__ import annotations

import argparse
import os
import sys

from raynas import __version__
from raynas.cli import bench, data, demo, distance, export, predict, search, serve, zoo
from raynas.cli.output import print_json_error, start_command
from raynas.errors import RaynasError
from raynas.interrupts import finish_on_sigterm, stop_on_sigterm

COMMAND_GROUPS = (data, zoo, distance, search, predict, export, serve, bench, demo)


def common_options() -> argparse.ArgumentParser:
    """Options every command takes: ``--home`` and ``--json``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--home", default=None,
                        help="where datasets, zoo, runs and caches live (default: $RAYNAS_HOME, else ~/.raynas)")
    parent.add_argument("--json", action="store_true", help="print one machine-readable JSON answer")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raynas",
        description="Supernet transfer learning for warm-started neural architecture search, on Ray.")
    parser.add_argument("--version", action="version", version=f"raynas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parent = common_options()
    for group in COMMAND_GROUPS:
        group.add_parser(sub, parent)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; problems the user can fix are one clear message and exit code 1, never a
    traceback (``RAYNAS_DEBUG=1`` shows tracebacks of unexpected errors, which are bugs). With
    ``--json`` a failure is also one JSON object on stdout, unless the answer was already printed."""
    args = build_parser().parse_args(argv)
    start_command()
    stop_on_sigterm()
    try:
        args.run(args)
    except RaynasError as exc:
        return _fail(args, f"error: {exc}", exc.problem, exc.fix, 1)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", "interrupted", None, 130)
    except BrokenPipeError:  # the reader of stdout went away (`raynas data list --json | head`): stop quietly
        _drop_stdout()
        return 141  # as a shell reports a command ended by SIGPIPE
    except Exception as exc:  # noqa: BLE001 - the last line of defence of the command line
        if os.environ.get("RAYNAS_DEBUG"):
            raise
        fix = "this is a bug in raynas; rerun with RAYNAS_DEBUG=1 to see where it happened, and report it"
        return _fail(args, f"error: unexpected {type(exc).__name__}: {exc}\n  {fix}",
                     f"unexpected {type(exc).__name__}: {exc}", fix, 2)
    return 0


def run(argv: list[str] | None = None) -> None:
    """A process's entry point (the ``raynas`` program, the job scripts): :func:`main`, then exit
    with its code. Ray's shutdown at exit can take seconds; a SIGTERM then (a scheduler ending the
    job late) ends the process with the command's exit code, not with a stack from the shutdown."""
    code = main(argv)
    finish_on_sigterm(code)
    sys.exit(code)


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so Python's last flush at exit does not fail on the closed pipe."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _fail(args: argparse.Namespace, message: str, problem: str, fix: str | None, exit_code: int) -> int:
    print(message, file=sys.stderr)
    if getattr(args, "json", False):
        print_json_error(problem, fix, exit_code)
    return exit_code


if __name__ == "__main__":
    run()
