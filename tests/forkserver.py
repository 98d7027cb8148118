"""A warm Python the tests' `python -m mlp_lm.<command>` runs are forked from (conftest.run_cli).

Most of the suite's time went into starting Python and importing numpy for each of about 250 commands a
test runs as a user would (about 0.2 s each, before any work). This server starts once per test worker,
imports what every command imports before its own code, compiles mlp_lm's modules (_compile_once), and for
each command forks a child that becomes that command, as `python -m` would have started it:

- its stdout and stderr are the pipes the test reads (sent over a Unix socket), its stdin the server's,
  which is the test worker's, as a child of subprocess.run's would have had;
- its working directory, sys.argv, sys.orig_argv and sys.path[0] are the command's own, and the module is
  run by runpy's own -m code (_run_module_as_main) in a fresh __main__ module, so that the package mlp_lm
  is imported in the child, for the first time, seeing itself started as a command;
- its exit is Python's: SystemExit's code, a traceback and 1 for any other exception, an uncaught
  KeyboardInterrupt ends it by SIGINT, atexit runs, threads are waited for, and the standard streams are
  flushed (120 when stdout cannot take what is left);
- the environment is the one the server started with (but for pytest's PYTEST_CURRENT_TEST, the test's
  own); a command asked for under another one (a test that changed os.environ) is refused here, and
  run_cli starts a real process instead.

What it does not give, a test that needs it starts a real process itself: the start of Python (signals
during it, interpreter options, the environment variables read only at start-up), a hash seed of its own
(every child has the server's: PYTHONHASHSEED is read at start-up), and commands run side by side (a test
worker's run one after another). What the test worker changes in its own process after the server started
(its umask, resource limits, CPU affinity, priority, ignored or blocked signals) a real process would inherit:
forkclient then starts one. tests/test_forkserver.py
holds programs that end in every way, and a set of commands, run both ways to the same output and exit code.

Protocol, over the socket: a request is a 4-byte length and a JSON object (module, args, cwd, env), sent
with the command's stdout and stderr write ends; the reply is JSON lines, {"pid": n} when forked and then
{"status": waitstatus}, or {"refused": why}.
"""
import importlib
import json
import os
import signal
import socket
import struct
import sys

# What `python -m mlp_lm` sets before numpy loads OpenBLAS (mlp_lm/__init__.py; tests/test_forkserver.py
# holds the two to be the same); the server imports numpy, so it sets it first, by the same rule.
BLAS_SPIN_VARIABLE, BLAS_SPIN_DEFAULT = "OPENBLAS_THREAD_TIMEOUT", "18"
PER_TEST = "PYTEST_CURRENT_TEST"  # pytest's name of the test running: the child is given the test's own


def _prepare():
    """Import what every command imports before its own code (numpy, most of a command's start-up time;
    scipy's optimize and sparse, which evaluate's mixture and the folded layer import late, and slowly).
    Returns the environment a command must be asked for under to be forked: the server's own as it
    started, but for PER_TEST."""
    env = {k: v for k, v in os.environ.items() if k != PER_TEST}
    if not os.environ.get(BLAS_SPIN_VARIABLE):
        os.environ[BLAS_SPIN_VARIABLE] = BLAS_SPIN_DEFAULT
    for name in ("numpy", "threadpoolctl", "scipy.optimize", "scipy.sparse"):
        importlib.import_module(name)
    _compile_once()
    # What the imports set (threadpoolctl sets KMP_DUPLICATE_LIB_OK, which mlp_lm's runtime takes back from a
    # command's environment after its own import; here it would look like the user's) goes: a command starts
    # with the environment a fresh Python would have, and the BLAS variable the package sets.
    for k in set(os.environ) - set(env) - {BLAS_SPIN_VARIABLE}:
        del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if os.environ.get(k) != v and k != BLAS_SPIN_VARIABLE})
    return env


def _compile_once():
    """Where Python writes no bytecode (PYTHONDONTWRITEBYTECODE, and a fresh clone has none), each forked command
    compiled mlp_lm's modules from source again as it imported them, about 40 ms a command. The server compiles
    them once; a child given a source unchanged to the byte takes its code, and compiles any other as Python
    would (compile is deterministic: the same code either way)."""
    from importlib import machinery
    from pathlib import Path
    compile_source, compiled = machinery.SourceFileLoader.source_to_code, {}

    def source_to_code(self, data, path, *, _optimize=-1):
        key = (path, bytes(data), _optimize)
        if key not in compiled:
            compiled[key] = compile_source(self, data, path, _optimize=_optimize)
        return compiled[key]
    machinery.SourceFileLoader.source_to_code = source_to_code
    for source in (Path(__file__).resolve().parent.parent / "mlp_lm").glob("[!.]*.py"):  # not an editor's .#x.py
        try:
            machinery.SourceFileLoader("mlp_lm", str(source)).source_to_code(source.read_bytes(), str(source))
        except Exception:  # unreadable, or not Python (a file no command imports): it is the import's to say so
            continue


def _read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _receive(sock):
    """One request and its two descriptors, or None when the test worker has gone."""
    head, fds, _, _ = socket.recv_fds(sock, 4, 2)
    if not head:
        return None, []
    head += _read_exactly(sock, 4 - len(head)) or b""
    (n,) = struct.unpack("!I", head)
    body = _read_exactly(sock, n)
    return (json.loads(body) if body else None), fds


def _reply(sock, **message):
    sock.sendall(json.dumps(message).encode() + b"\n")


def _become(module, args, cwd, out, err):
    """In the forked child: be `python -m module args` run in cwd, writing to out and err; never returns."""
    import atexit
    import random
    import runpy
    import threading
    import traceback
    import types

    import numpy

    random.seed()  # the generators a fresh Python seeds from the system, not the server's, as every child would share
    numpy.random.seed()

    os.dup2(out, 1)
    os.dup2(err, 2)
    os.close(out)
    os.close(err)
    code = 1
    try:
        os.chdir(cwd)
        sys.path[0] = os.getcwd()  # -m puts the working directory first
        sys.argv = ["-m", *args]  # as -m has it while the module's packages are imported
        sys.orig_argv = [sys.executable, "-m", module, *args]
        sys.modules["__main__"] = types.ModuleType("__main__")  # the server's names are not the command's
        runpy._run_module_as_main(module)
        code = 0
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException as e:  # the traceback from the frame Python would start it at, runpy's, not this one's
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        code = -signal.SIGINT if isinstance(e, KeyboardInterrupt) else 1
    try:
        threading._shutdown()  # the interpreter waits for threads that are not daemons before it exits
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    for stream, status in ((sys.stdout, 120), (sys.stderr, None)):
        try:
            stream.flush()
        except Exception as e:
            if status is not None:
                print(f"Exception ignored in: {stream!r}\n{type(e).__name__}: {e}", file=sys.__stderr__)
                code = status if code == 0 else code
    if code == -signal.SIGINT:  # Python ends an uncaught KeyboardInterrupt by SIGINT itself
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF)


def serve(sock, env_at_start):
    while True:
        request, fds = _receive(sock)
        if request is None:
            return
        out, err = fds
        per_test = request["env"].pop(PER_TEST, None)
        if request["env"] != env_at_start:
            os.close(out)
            os.close(err)
            _reply(sock, refused="another environment")
            continue
        pid = os.fork()
        if pid == 0:
            sock.close()
            if per_test is None:
                os.environ.pop(PER_TEST, None)
            else:
                os.environ[PER_TEST] = per_test
            _become(request["module"], request["args"], request["cwd"], out, err)
        os.close(out)
        os.close(err)
        _reply(sock, pid=pid)
        _, status = os.waitpid(pid, 0)
        _reply(sock, status=status)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])), _prepare())
