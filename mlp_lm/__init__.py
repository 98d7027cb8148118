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
              f"was done", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # stderr closed or gone: the exit code says it
        pass
    # Not SystemExit: raised inside numpy's import of a C extension, or in a callback, it would
    # come out as an ImportError traceback or be swallowed. Nothing was written yet: just end.
    os._exit(128 + signum)


_command_started = __name__  # the -m target, once _started_as_a_command has read it


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
