"""What the command-line tools share: one-line errors with exit code 2, flag types."""
import argparse
import math
import os
import sys

from .checkpoint import CheckpointError
from .data import DataError

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A problem with what the user asked for; the message says what to do instead."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (not usage + error) and exit code 2."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def int_at_least(low, what):
    """An argparse type: a whole number >= low."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_int = int_at_least(1, "a positive whole number")
non_negative_int = int_at_least(0, "a whole number >= 0")


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def run(main, prog):
    """Call main(); turn the errors a user can fix into one line on stderr and exit code 2."""
    try:
        code = main()
    except (DataError, CheckpointError, UsageError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. `python -m mlp_lm.sample | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # silence the flush at exit
        code = 0
    sys.exit(code)
