"""The flag types the commands share (argparse types): whole numbers and finite numbers in a range,
fractions, and a thread count capped at the cores this process may use. A value outside its range is
argparse's one-line error, exit code 2 (cli.ArgumentParser)."""
import argparse
import math

from .runtime import available_cores


def int_at_least(low, what, high=None):
    """An argparse type: a whole number >= low (and <= high, if given)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_int = int_at_least(1, "a positive whole number")
non_negative_int = int_at_least(0, "a whole number >= 0")
MAX_THREADS = 1024  # more than any machine this runs on; a larger count cannot even be passed to the BLAS
_any_thread_count = int_at_least(1, f"a number of threads from 1 to {MAX_THREADS}", MAX_THREADS)


class FewerThreads(int):
    """The threads a --threads N past the cores gets, which remembers the N asked for (.asked), so that
    the count shown can say why it is smaller."""

    def __new__(cls, n, asked):
        threads = super().__new__(cls, n)
        threads.asked = asked
        return threads

    def __getnewargs__(self):  # copy and pickle make it again from both numbers
        return int(self), self.asked

    def why(self):
        return f"--threads {self.asked} asked for more than the {self} core{'s' if self > 1 else ''} this process may use"


def thread_count(text):
    """An argparse type: --threads N, from 1 to MAX_THREADS, used as at most the cores this process
    may run on (a FewerThreads, then). More threads than cores only wait for each other, and OpenBLAS's
    spin while they wait: on 2 cores, --threads 64 at batch 1024 ran about 1 step a second instead of
    hundreds."""
    asked, cores = _any_thread_count(text), available_cores()
    return asked if asked <= cores else FewerThreads(cores, asked)


def float_where(accept, what):
    """An argparse type: a finite number for which accept(value) holds."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_float = float_where(lambda v: v > 0, "a positive finite number")
non_negative_float = float_where(lambda v: v >= 0, "a finite number >= 0")


def fraction(text):
    """An argparse type: a number in [0, 1), as a probability of dropping or a decay."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 up to (not including) 1, got {text!r}")
    return value
