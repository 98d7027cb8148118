"""What the command-line tools share: one-line errors with exit code 2, and Ctrl-C, SIGTERM, SIGHUP
and SIGQUIT held or turned into exceptions. (Output streams whose reader may leave are streams.py;
the training's progress line is progress.py; the flag types are flags.py.)"""
import argparse
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

from . import ALL_STOP_SIGNALS, STOP_SIGNALS, command_started, failed_library, import_failure
from .checkpoint import CheckpointError
from .streams import LossyStream, cut_if_stalled, make_stdout_lossy, printable
from .runtime import NotEnoughMemory, keep_freed_memory
from .wordfile import DataError

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A problem with what the user asked for; the message says what to do instead. code: the exit
    code, EXIT_BAD_INPUT unless a stop signal's is owed too (train: a run that diverged, then Ctrl-C)."""

    def __init__(self, message="", code=EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


def one_line(message):
    """A message as one line: a line break inside it (a file name can hold one) is shown escaped, as is any
    other character a terminal would act on rather than show (streams.printable: an escape sequence, a
    right-to-left override)."""
    return printable(str(message))


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (not usage + error) and exit code 2. Flags are
    taken whole, never abbreviated: a value that starts with -- (--batch-size --l) is then a missing value
    for its flag, not an ambiguous abbreviation, and no abbreviation changes meaning as flags are added."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {one_line(message)} (see --help)\n")

    def _get_values(self, action, arg_strings):
        # argparse before Python 3.13 drops a '--' that is a flag's own value (--out=--) and gives the
        # flag an empty list, past its type and its choices; here '--' is text like any other value.
        if arg_strings == ["--"] and action.nargs is None:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        # run()'s check, made once the flags are known good; a --json file is work enough without stdout
        if _command.get("stdout_closed") and getattr(parsed, "json", None) is None:
            raise UsageError("standard output is closed (>&-), so what this command prints would be lost; "
                             "send it to a file, or to /dev/null to drop it")
        return parsed

    def print_help(self, file=None):
        # The help is all that --help does, so a stdout that cannot take it (a full disk) is an
        # error that run() reports, even where a command's other output may be lost; argparse's
        # own print_help drops write errors.
        out = file or sys.stdout
        out = out.stream if isinstance(out, LossyStream) else out
        out.write(self.format_help())
        out.flush()


# STOP_SIGNALS (from the package, which reads them first): Ctrl-C, SIGTERM, SIGHUP and SIGQUIT, less any the
# process was started with ignored (nohup's SIGHUP), each raised as an Interrupted exception.
STOP_CODES = tuple(128 + int(s) for s in ALL_STOP_SIGNALS)  # the exit codes they end a command with: 130, 143, 129, 131


class Interrupted(KeyboardInterrupt):
    """A stop signal (STOP_SIGNALS) as an exception; .code is the exit status a shell expects, 128 + signal."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + int(signum)


_command = {"over": False, "late": 0, "quit_at": None}  # over: set by run() the moment its command's main() has returned or raised


QUIT_AGAIN_SECONDS = 0.5  # a second Ctrl-\ sooner than this is the first one twice (results passes its own on)


def _second_quit(signum):
    """Ctrl-\\ (SIGQUIT) twice ends the process at once, as its default would: the first stops and saves like
    Ctrl-C, and a second, pressed after it, is the way out of a save or a stop that takes too long (a save cut
    short leaves the previous files, atomic.py). One that comes within QUIT_AGAIN_SECONDS of the first is the
    same key press reaching this process twice (the terminal's, and results passing its own on)."""
    if signum == getattr(signal, "SIGQUIT", None):
        now = time.monotonic()
        if _command["quit_at"] is not None and now - _command["quit_at"] >= QUIT_AGAIN_SECONDS:
            os._exit(128 + signum)
        if _command["quit_at"] is None:
            _command["quit_at"] = now


def _raise_interrupted(signum, frame):
    _second_quit(signum)
    if _command["over"]:  # only the report of how main() ended and the exit are left
        # A signal that comes with the one that ended main() (a terminal's Ctrl-C reaches both results and
        # the training it started, and results passes its own on) is let go, so that the report's line gets
        # out whole; one more ends the process at once, as the signal's default would.
        _command["late"] += 1
        if _command["late"] > 1:
            os._exit(128 + signum)
        return
    if isinstance(sys.exc_info()[1], KeyboardInterrupt):
        # One is being handled (its except clause, or a finally or with block on the way there,
        # is running): a second one would cut that handling short with a traceback. The first
        # already decides how the command ends.
        return
    raise Interrupted(signum)


def exit_code(interrupt):
    """130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP, 131 for SIGQUIT (Ctrl-\\); an interrupt's own code
    otherwise (a training out of memory, stops.OutOfMemory: 2)."""
    return getattr(interrupt, "code", 128 + signal.SIGINT)


@contextmanager
def signals_held():
    """Hold the stop signals (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT) until the block is done, so a save is never cut
    in half (but a second SIGQUIT ends the process at once: _second_quit).

    Yields a list; a signal that arrives meanwhile is recorded there as an
    Interrupted exception instead of being raised. (Python runs signal handlers
    in the main thread whichever thread received the signal, so swapping the
    handler is what holds it, where blocking the signal in one thread would not.)
    Off the main thread (a notebook training in the background), where Python lets
    no one set a handler, nothing is held and the list stays empty.
    """
    held = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum, frame):
        _second_quit(signum)
        held.append(Interrupted(signum))
        cut_if_stalled()  # a message stuck on a reader who stopped reading is not worth the wait

    previous = {s: signal.signal(s, hold) for s in STOP_SIGNALS}
    try:
        yield held
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(main, prog, keep_going_without_stdout=False, needs_stdout=True):
    """Call main(); turn the errors a user can fix into one line on stderr and exit code 2.

    Ctrl-C, SIGTERM, SIGHUP and SIGQUIT become Interrupted exceptions, which a command may catch to
    save its work; anywhere else they end the command with one line and 130, 143, 129 or 131.
    Once main() is over, returned or raised, the command only reports and exits, and a stop
    signal from then on ends the process as it ends any program (the signal's default), where
    an exception could only have turned the report or the exit into a traceback; only while the
    line saying how main() ended is written, the first one is let go and a second exits at once
    (_raise_interrupted). (So a caller in the same process, a test, must set its own handlers
    again afterwards.)

    A reader of stderr that leaves costs the messages, never the work (LossyStream); so does
    one of stdout with keep_going_without_stdout (train: the model is the work, not the
    report). Otherwise a reader of stdout that leaves ends the command quietly, as
    `python -m mlp_lm.sample | head` expects. A stdout closed from the start (`>&-`) is refused
    once the flags are parsed (ArgumentParser.parse_args), before any work, since what the command
    prints would be lost (`cat >&-` fails too); a command whose work is files (needs_stdout=False:
    draw's pictures, results' table; or given a --json file) or that keeps going without stdout
    (train) takes it for /dev/null, as every command takes a closed stderr.
    """
    command_started()  # from here on, what fails is said below (or is a bug's traceback)
    streams = sys.stdout, sys.stderr  # put back before returning, for a caller in the same process
    closed = sys.stdout is None  # Python's, where file descriptor 1 was closed when it started
    sys.stdout = sys.stdout or open(os.devnull, "w")
    errors = getattr(sys.stdout, "errors", None)
    try:  # a symbol the encoding lacks is shown escaped, as on stderr, not a UnicodeEncodeError
        if errors is not None and hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(errors="backslashreplace")
    except (OSError, ValueError):  # a stream that cannot take it (closed, detached): the writes will say so
        errors = None
    if not isinstance(sys.stderr, LossyStream):
        sys.stderr = LossyStream(sys.stderr or open(os.devnull, "w"))
    if keep_going_without_stdout:
        make_stdout_lossy()
    _command.update(over=False, late=0, quit_at=None,
                    stdout_closed=closed and needs_stdout and not keep_going_without_stdout)
    try:
        try:
            for s in STOP_SIGNALS:  # inside the try: a signal between two of these is already one line
                signal.signal(s, _raise_interrupted)
            keep_freed_memory()  # a command owns its process: let malloc reuse the step's big blocks
            code = main()
        finally:  # the work is done or given up: nothing is left for a signal to interrupt
            _command["over"] = True  # first, before any call in which a pending handler could run
        _default_stop_signals()  # the flush may wait for stdout's reader: a signal ends it as any program
        sys.stdout.flush()  # inside the try: a full disk under stdout is reported like any error
        lost = getattr(sys.stdout, "error", None)
        if lost is not None and not keep_going_without_stdout and not isinstance(lost, BrokenPipeError):
            raise lost  # the work is done (a --json file written), but the output asked for is not
    except KeyboardInterrupt as e:
        print(f"{line_break()}{prog}: interrupted ({getattr(e, 'args', ['SIGINT'])[0] or 'SIGINT'})", file=sys.stderr)
        code = exit_code(e)
    except (DataError, CheckpointError, UsageError) as e:
        print(f"{prog}: error: {one_line(e)}{_GONE_HINT if current_directory_gone() else ''}", file=sys.stderr)
        code = e.code if isinstance(e, UsageError) else EXIT_BAD_INPUT
    except NotEnoughMemory as e:  # found before the work started, with the sizes in the message
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except MemoryError:  # sizes the machine cannot hold, found when allocating: say so, not a traceback
        print(f"{prog}: error: not enough memory for these sizes; use smaller ones ({prog} --help lists them), or give "
              f"this process more memory (free some, or raise ulimit -v)", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. `python -m mlp_lm.sample | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # silence the flush at exit
        code = 0
    except OSError as e:  # a path the file system refuses (too long, a loop), or stdout on a full disk
        gone = current_directory_gone()
        if e.filename is not None:  # a file the command was given or makes: name it
            print(f"{prog}: error: {one_line(f'cannot use {e.filename}: {e.strerror or e}')}"
                  f"{_GONE_HINT if gone else ''}", file=sys.stderr)
        elif gone and isinstance(e, FileNotFoundError):  # looking up where we are failed, not the output
            print(f"{prog}: error: the current directory no longer exists; cd to an existing folder and run it "
                  f"again", file=sys.stderr)
        else:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            print(f"{prog}: error: cannot write the output: {e.strerror or e}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except Exception as e:  # a library imported late, where the work needs it (scipy): missing, broken (a truncated
        # file's SyntaxError), or with no memory left to map its files (a hostile tester's `ulimit -v`); those the
        # command imports as it starts are the package's start-up hook's (mlp_lm/__init__.py)
        if failed_library(e) is None:  # anything else, one of our own imports among it, is a bug: its traceback
            raise
        stop = _interrupt_behind(e)
        if stop is not None:  # a Ctrl-C inside a library's import, which scipy's turns into an ImportError
            print(f"{line_break()}{prog}: interrupted ({stop.args[0] if stop.args else 'SIGINT'})", file=sys.stderr)
            code = exit_code(stop)
        else:
            print(import_failure(prog, e), file=sys.stderr)
            code = EXIT_BAD_INPUT
    _default_stop_signals()  # the report is out
    _command["stdout_closed"] = False  # for a caller in the same process, whose parsers are its own
    sys.stdout, sys.stderr = streams
    if errors is not None and hasattr(sys.stdout, "reconfigure"):
        try:
            sys.stdout.reconfigure(errors=errors)
        except (OSError, ValueError):  # a stream closed or lost meanwhile: nothing to put back
            pass
    sys.exit(code)


def _interrupt_behind(e):
    """The stop signal (KeyboardInterrupt) that e was raised from, if any: its cause or context, or theirs."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def line_break():
    """A line end to start a message with on a terminal, where a progress line may be open; nothing in a
    log file or a pipe, whose progress lines are whole (an empty line there would be noise)."""
    return "\n" if sys.stderr.isatty() else ""


def _default_stop_signals():
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_DFL)


_GONE_HINT = " (the current directory no longer exists, so relative paths lead nowhere: cd to an existing folder)"


def current_directory_gone():
    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    except OSError:
        pass
    return False
