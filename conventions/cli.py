"""The command-line conventions every command shares: `run_main` (a `UserError` is one `error:` line and
exit 2, Ctrl-C or SIGTERM `error: interrupted` and 130, anything else a traceback and exit 1), `Parser`
(argparse raising `UserError`, defaults shown in `--help`), the argument types `optional`, `truthy` and
`SWITCH`, and `mask` (a URL's password as `***` in everything printed or logged)."""

import argparse
import re
import signal
import sys
from collections.abc import Callable

from conventions.errors import EXIT_INTERRUPTED, EXIT_USER, UserError


def run_main(main: Callable[..., object], *args) -> None:
    """Run a command's `main`: a `UserError` is one `error:` line on stderr and exit status 2, Ctrl-C (and
    SIGTERM, a scheduler's `kill`) is `error: interrupted` and 130; any other exception is a bug and keeps
    its traceback (exit 1)."""
    interrupt_on_sigterm()
    try:
        main(*args)
    except UserError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(EXIT_USER)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (a scheduler's `kill`) end this process as Ctrl-C does: a `KeyboardInterrupt`, so runs
    end KILLED, trials FAIL and `run_main` exits 130."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's default in `--help`, but for None ("not given": the help says what applies then)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse that raises `UserError` (one `error:` line via `run_main`) instead of printing the usage
    and exiting 2, and shows each flag's default in `--help`."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=_DefaultsShown, **kwargs)

    def error(self, message: str) -> None:
        raise UserError(message)


def optional(kind: Callable[[str], object]) -> Callable[[str], object]:
    """An argument type where "" (MLproject's "not given") means None."""
    def parse(text: str):
        return None if text.strip() == "" else kind(text)
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def truthy(text: str) -> bool:
    """An argument type for `--x true|false` ("" is false: MLproject's "not given")."""
    value = text.strip().lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")  # Parser: one `error:` line


SWITCH = {"nargs": "?", "const": True, "default": False, "type": truthy}  # `--x`, or `--x true|false`


_PASSWORD = re.compile(r"(://[^:/@]+:)([^@]*)(@)")


def mask(url: str) -> str:
    """A URL as it may be printed or logged: 'postgresql://me:secret@db/x' -> 'postgresql://me:***@db/x'."""
    return _PASSWORD.sub(r"\1***\3", url)
