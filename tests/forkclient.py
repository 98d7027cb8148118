"""The test worker's side of tests/forkserver.py: start the server once, ask it for a command, read the
command's output and exit status as subprocess.run(..., capture_output=True, text=True) would give them."""
import atexit
import ctypes
import itertools
import json
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_server = {"sock": None, "proc": None, "broken": False}
_lock = threading.Lock()


def _process_state():
    """What a process started now would inherit from this one besides its environment: umask, resource limits,
    CPU affinity, priority, ignored signals (a handler of Python's own is not inherited) and blocked ones."""
    umask = os.umask(0)
    os.umask(umask)
    limits = {name: resource.getrlimit(getattr(resource, name)) for name in dir(resource) if name.startswith("RLIMIT_")}
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    ignored = sorted(int(s) for s in signal.valid_signals() if signal.getsignal(s) is signal.SIG_IGN)
    blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
    return umask, limits, affinity, os.getpriority(os.PRIO_PROCESS, 0), ignored, blocked


def _start():
    _server["state"] = _process_state()  # the server's, and so its children's
    mine, theirs = socket.socketpair()
    proc = subprocess.Popen([sys.executable, "-m", "tests.forkserver", str(theirs.fileno())], cwd=ROOT,
                            pass_fds=[theirs.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    theirs.close()
    _server.update(sock=mine, proc=proc)
    atexit.register(_stop)


def _stop():
    if _server["sock"] is not None:
        _server["sock"].close()  # the server reads the end of its requests and exits
        _server["proc"].wait(timeout=10)
        _server["sock"] = None


def _environment():
    """The environment a process started now would get: the C library's, which os.environ mirrors only for
    what Python itself sets. (readline, once some test imports it, sets COLUMNS and LINES there, and argparse
    reads COLUMNS for the width of --help.)"""
    environ = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
    pairs = []
    for i in itertools.count():
        if environ[i] is None:
            break
        pairs.append(os.fsdecode(environ[i]).partition("="))
    return {k: v for k, _, v in pairs}


class _Replies:
    """The server's replies to one request, one JSON object a line."""

    def __init__(self, sock, deadline):
        self.sock, self.deadline, self.buffered = sock, deadline, b""

    def next(self):
        while b"\n" not in self.buffered:
            self.sock.settimeout(max(self.deadline - time.monotonic(), 0.01))
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the fork server is gone")
            self.buffered += chunk
        line, self.buffered = self.buffered.split(b"\n", 1)
        return json.loads(line)

    def waiting(self):
        """Whether a reply has come that is not read yet."""
        if self.buffered:
            return True
        self.sock.setblocking(False)
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return False
        finally:
            self.sock.setblocking(True)


def _read_both(out, err, deadline):
    """Everything written to the two pipes until both are closed (the command and whatever it started have
    ended), or None when the deadline passed first."""
    data = {out: [], err: []}
    with selectors.DefaultSelector() as sel:
        for fd in data:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            ready = sel.select(timeout=max(deadline - time.monotonic(), 0))
            if not ready:
                return None
            for key, _ in ready:
                chunk = os.read(key.fd, 1 << 16)
                if chunk:
                    data[key.fd].append(chunk)
                else:
                    sel.unregister(key.fd)
    return b"".join(data[out]), b"".join(data[err])


def _text(data):
    """As subprocess's text mode decodes what a child wrote (its encoding, universal newlines)."""
    return data.decode(subprocess._text_encoding()).replace("\r\n", "\n").replace("\r", "\n")


def run(argv, cwd, timeout):
    """A subprocess.CompletedProcess for argv (python -m module args) run in cwd, or None when the server
    cannot run it as a process started now would run (another environment or process state than the
    server's, or no server): then the caller starts a real process. One command at a time (a lock)."""
    with _lock:
        if _server["broken"]:
            return None
        if _server["sock"] is None:
            _start()
        elif _process_state() != _server["state"]:
            return None
        sock, deadline = _server["sock"], time.monotonic() + timeout
        request = json.dumps({"module": argv[2], "args": argv[3:], "cwd": cwd, "env": _environment()}).encode()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        mine = [out_r, err_r]  # the command's ends are closed here once the server has them
        try:
            try:
                socket.send_fds(sock, [struct.pack("!I", len(request)) + request], [out_w, err_w])
            finally:
                os.close(out_w)
                os.close(err_w)
            replies = _Replies(sock, deadline + 30)
            first = replies.next()
            if "refused" in first:
                return None
            output = _read_both(out_r, err_r, deadline)
            if output is None:  # as subprocess.run does on a timeout: kill the command, then say so
                if not replies.waiting():  # (else the server reaped it, and its pid may be another's by now)
                    os.kill(first["pid"], signal.SIGKILL)
                replies.next()
                raise subprocess.TimeoutExpired(argv, timeout)
            status = replies.next()["status"]
        except (OSError, ValueError):
            _server["broken"] = True
            raise
        finally:
            for fd in mine:
                os.close(fd)
    return subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(status), _text(output[0]),
                                       _text(output[1]))
