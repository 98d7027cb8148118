"""mlp_lm: a character-level MLP language model (Bengio et al. 2003) in numpy, backward passes by hand."""
import os
import signal
import sys

__version__ = "0.1.0"


def _interrupted_while_starting(signum, frame):
    try:
        print(f"mlp_lm: interrupted ({signal.Signals(signum).name}) while starting; nothing was done",
              file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # stderr closed or gone: the exit code says it
        pass
    # Not SystemExit: raised inside numpy's import of a C extension, or in a callback, it would
    # come out as an ImportError traceback or be swallowed. Nothing was written yet: just end.
    os._exit(128 + signum)


# `python -m mlp_lm.<command>` imports this package first, with sys.argv[0] still "-m" (see the
# docs of -m), then numpy and the rest for a good part of a second. Ctrl-C in that time would be
# a traceback; the command's own handlers (cli.run) take over once it starts. An import from a
# program or a notebook leaves its handlers alone.
if sys.argv[:1] == ["-m"]:
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    signal.signal(signal.SIGTERM, _interrupted_while_starting)  # else a silent death
