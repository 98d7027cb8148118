"""mlp_lm: a character-level MLP language model (Bengio et al. 2003) in numpy, backward passes by hand."""
import os
import signal
import sys

__version__ = "0.1.0"

BLAS_SPIN_VARIABLE, BLAS_SPIN_DEFAULT = "OPENBLAS_THREAD_TIMEOUT", "18"  # see below

# The signals that stop a command (cli.run turns them into exceptions a training catches to save its
# model): Ctrl-C, kill (SIGTERM), a hangup (SIGHUP: the terminal or the ssh session closed) and Ctrl-\
# (SIGQUIT, whose default is to end the process at once, losing the run: a terminal's other stop key).
ALL_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
                         if hasattr(signal, name))
# Those this process started with ignored stay ignored: nohup ignores SIGHUP so that a run outlives the
# terminal, and a shell ignores SIGINT for a job it puts in the background. Read as the package is first
# imported, before anything here sets a handler.
STOP_SIGNALS = tuple(s for s in ALL_STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN)


def _interrupted_while_starting(signum, frame):
    for s in STOP_SIGNALS:  # a second signal (Ctrl-C, and results passing it on) would print the line twice
        signal.signal(s, signal.SIG_IGN)
    try:
        print(f"python -m {_command_started}: interrupted ({signal.Signals(signum).name}) while starting; nothing "
              f"was done{_openblas_hint(signum)}", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # stderr closed or gone: the exit code says it
        pass
    # Not SystemExit: raised inside numpy's import of a C extension, or in a callback, it would
    # come out as an ImportError traceback or be swallowed. Nothing was written yet: just end.
    os._exit(128 + signum)


_command_started = __name__  # the -m target, once _started_as_a_command has read it


def _openblas_hint(signum):
    """A SIGINT nobody sent: OpenBLAS raises one itself when it cannot start its threads as numpy loads it,
    which a memory limit (`ulimit -v`) makes happen (a hostile tester's). Said when there is such a limit."""
    try:
        import resource
        limited = signum == signal.SIGINT and resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
    except (ImportError, OSError, ValueError, MemoryError):  # not on Linux or macOS, or no memory to ask
        limited = False
    return ("; if no one pressed Ctrl-C, OpenBLAS sent it on finding no memory to start its threads under this "
            "process's limit (ulimit -v): raise the limit, or set OPENBLAS_NUM_THREADS=1" if limited else "")


def import_failure(prog, e):
    """The one line for a library that failed as it was imported (failed_library): missing, broken, or without
    the memory to map its files (`ulimit -v`). cli.run says it for a library imported late, _failed_to_start for
    one the command imports as it starts."""
    try:
        from .streams import printable  # (the standard library's alone: it imports whatever failed)
    except (ImportError, MemoryError):  # no memory left to import it
        def printable(text):
            return ascii(text)[1:-1]
    # numpy's message is a page of advice with the error itself at its end, after "Original error was:"
    why = str(e).rpartition("Original error was:")[2].strip() or type(e).__name__
    if not isinstance(e, ImportError):  # a library broken otherwise: what it raised
        why = f"{type(e).__name__}: {why}"
    return (f"{prog}: error: cannot import {failed_library(e)} ({printable(why)}); reinstall it (pip install -e . "
            f"installs what mlp_lm needs), or, if it is installed, give it the memory to load (free some, or raise "
            f"ulimit -v)")


def failed_library(e):
    """The library that failed as it was imported, for exception e, or None when e is no library's failure.

    A library fails as it is imported with an ImportError (missing, or its files could not be mapped under
    `ulimit -v`), with whatever its own module code raises (a RuntimeError in its __init__.py), or with what
    Python's import machinery raises loading its files (a truncated file's SyntaxError, a damaged .pyc's
    EOFError). The library is the package of the first module in e's traceback that is not ours nor the import
    machinery's, if that is running its module body (for an ImportError, whatever it runs); else the package
    of the file a SyntaxError could not compile, or of the module the import machinery was loading, or the one
    an ImportError names. None when that is one of ours, or no import at all: a bug (a name misspelt in an
    import), whose traceback is what to show."""
    loading = None  # the module Python's import machinery was loading, innermost, when it raised e itself
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        module = frame.f_globals.get("__name__") or ""  # (code run by exec in a fresh dict has none)
        if frame.f_code.co_name == "_find_and_load" and module.startswith("importlib"):
            loading = frame.f_locals.get("name") or loading
        if module and not module.startswith(("mlp_lm", "importlib", "__main__", "runpy")):
            importing = isinstance(e, ImportError) or frame.f_code.co_name == "<module>"
            return module.split(".")[0] if importing else None
        tb = tb.tb_next
    if isinstance(e, SyntaxError):
        library = _package_of(e.filename)
    elif isinstance(e, ImportError):
        library = (e.name or "").split(".")[0] or "a library"
    else:
        library = loading.split(".")[0] if isinstance(loading, str) else None
    return None if library in (None, __name__) else library


def _package_of(path):
    """The top-level package (or module) of a source file: ours for a file of this package, else by the entry of
    sys.path it lies under (the deepest, where one holds another: the current folder and a PYTHONPATH folder
    inside it); None for no file ("<string>", compile()'s)."""
    if not path or path.startswith("<") or not os.path.exists(path):
        return None
    path = os.path.abspath(path)
    if path.startswith(os.path.dirname(os.path.abspath(__file__)) + os.sep):
        return __name__
    entries = [e for e in (os.path.abspath(entry or ".") for entry in sys.path) if path.startswith(e + os.sep)]
    if not entries:
        return None
    first = path[len(max(entries, key=len)) + 1:].split(os.sep)[0]
    return first[:-3] if first.endswith(".py") else first


def _failed_to_start(kind, e, tb):
    """sys.excepthook of a command until cli.run takes over (command_started): the imports at the top of its
    module run before. A library that cannot be imported there, or memory that runs out (`ulimit -v`), is one
    line and exit code 2; anything else is Python's traceback, as a bug should be."""
    if not (issubclass(kind, MemoryError) or issubclass(kind, Exception) and failed_library(e) is not None):
        return sys.__excepthook__(kind, e, tb)
    prog = f"python -m {_command_started}"
    try:
        said = (f"{prog}: error: not enough memory to start; free some, or raise ulimit -v"
                if issubclass(kind, MemoryError) else import_failure(prog, e))
        print(said, file=sys.stderr, flush=True)
    except (OSError, ValueError, MemoryError):  # stderr closed or gone, or no memory to say it: the exit code says it
        pass
    os._exit(2)  # (the command's EXIT_BAD_INPUT, in cli.py, which may be what could not be imported)


def command_started():
    """cli.run has begun: from here on it says what fails, and Python's own hook shows what it lets through."""
    if sys.excepthook is _failed_to_start:
        sys.excepthook = sys.__excepthook__


def _started_as_a_command():
    """Whether this process is `python -m mlp_lm.<command>` (or `python -m mlp_lm`), starting: sys.argv[0]
    is "-m" while the target's packages are imported (see the docs of -m), but then for any program run
    with -m whose own package imports this one, and that program's Ctrl-C is its own. The target is
    read from the command line Python was given (orig_argv), whose short options may be grouped
    (`-Bm mlp_lm.train`); one it cannot read is taken for another's."""
    if sys.argv[:1] != ["-m"]:
        return False
    args = iter(getattr(sys, "orig_argv", [])[1:])
    for arg in args:
        if not arg.startswith("-") or arg.startswith("--"):  # a script, or a long option: no -m ahead
            return False
        for i, letter in enumerate(arg[1:], 2):  # flags, up to the first that takes a value
            if letter in "cmWX":  # -c code, -m module, -W arg, -X opt: the rest of the word, or the next
                value = arg[i:] or next(args, "")
                if letter in "cm":  # the end of Python's options: a command, or the module to run
                    global _command_started  # what its messages are headed with, as cli.run heads them
                    _command_started = value
                    return letter == "m" and value.split(".")[0] == __name__
                break
    return False


# `python -m mlp_lm.<command>` imports this package first, then numpy and the rest for a good part of a
# second. Ctrl-C in that time would be a traceback; the command's own handlers (cli.run) take over once
# it starts. An import from a program, a notebook or another package's -m target leaves its handlers alone.
if _started_as_a_command():
    sys.excepthook = _failed_to_start
    for _s in STOP_SIGNALS:
        signal.signal(_s, _interrupted_while_starting)  # SIGTERM and SIGHUP would be a silent death
    globals().pop("_s", None)  # the loop's name, not the package's
    # A command another starts (results starts train) comes with them blocked, so that one sent while its
    # Python was starting, before the handlers above, waited for them: it arrives here, not as a traceback.
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    # OpenBLAS's idle worker threads spin for 2^28 clock ticks (about a tenth of a second) before
    # they sleep, so with two BLAS threads the second core spins through all of a step's
    # single-threaded numpy work (tanh, AdamW's update) and slows it: the best preset's step took
    # 3.4 to 4.3 ms instead of 2.0 for long stretches on our 2-core machine. 2^18 ticks (about
    # 0.1 ms) keeps the workers awake between the products of one step and lets them sleep through
    # the update (docs/performance.md). OpenBLAS reads this once, as numpy loads it, so it is set
    # here, before numpy is imported (too late if something loaded numpy first: then it is left
    # alone); a non-empty value the user set is kept, and other BLAS libraries ignore it.
    if "numpy" not in sys.modules and not os.environ.get(BLAS_SPIN_VARIABLE):
        os.environ[BLAS_SPIN_VARIABLE] = BLAS_SPIN_DEFAULT
