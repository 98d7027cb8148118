"""The --json files the commands write: whole or not at all, JSON a strict reader takes, and never
over anything but an earlier --json file (a model, a run's metrics.json, a data file, a device)."""
import errno
import json
import math
import os
import stat
from pathlib import Path

from . import shell
from .atomic import TEMPORARY_EXTRA, write_temporary, write_whole
from .cli import UsageError
from .streams import make_stdout_lossy


NAME_MAX = 255  # bytes in a file name, on the usual file systems
JSON_MARK = {"written_by": "mlp_lm --json"}  # in every --json file, so a later --json knows it may replace it


def json_text(doc):
    """doc as indented JSON, a number that is not finite (a perplexity of inf) written as null:
    JSON has no Infinity or NaN, and strict readers refuse Python's extension for them."""
    def finite(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [finite(v) for v in x]
        return x
    return json.dumps(finite(doc), indent=2, allow_nan=False) + "\n"


def write_json(path, doc):
    """Write the --json file of a command, or say in one line why it cannot be written. It replaces
    an earlier --json file (one that carries JSON_MARK), never anything else: a model, a run's
    metrics.json, a data file, a device."""
    path = check_json_target(path)
    text = json_text({**JSON_MARK, **doc})
    try:
        write_whole(path, text.encode())
    except OSError as e:
        raise cannot_write(path, e) from None
    print(f"wrote {shell.shown(path)}")


TRIAL_BYTES = 1 << 14  # more than any --json file a command writes (the bench's, the largest, is a few kB)


def prepare_json(path):
    """Before a command's work, when it was given --json PATH: refuse a PATH that cannot be
    written (check_json_target), or whose folder takes no file of TRIAL_BYTES, 16 kB: a full disk, a read-only
    file system, a folder only its permissions keep us out of, which os.access lets pass for root.
    one is written beside it, flushed to disk, and removed. From here on a reader of stdout that
    leaves costs the table, not the file asked for (`... --json out.json | head -1` still writes it)."""
    path = check_json_target(path)
    made = []
    try:
        write_temporary(path, lambda f: f.write(b"\n" * TRIAL_BYTES), made)
    except OSError as e:
        raise cannot_write(path, e) from None
    finally:
        for trial in made:
            Path(trial).unlink(missing_ok=True)
    make_stdout_lossy()


def cannot_write(path, e):
    """The one line for an OSError writing --json path, with what to do about it."""
    fix = (f"free some space there (a trial file of {TRIAL_BYTES // 1024} kB did not fit before the work, or the "
           f"file itself after it), or name a file on another disk" if e.errno in (errno.ENOSPC, errno.EDQUOT) else
           f"raise this shell's file size limit (ulimit -f; a trial file of {TRIAL_BYTES // 1024} kB did not fit under "
           f"it)" if e.errno == errno.EFBIG else "name a file in a folder this user can write to")
    return UsageError(f"cannot write --json {shell.shown(path)}: {e.strerror or e}; {fix}")


def check_json_target(path):
    """The --json path as a Path, or UsageError when it cannot be written or names something other
    than an earlier --json file; commands call it before their work, so a bad --json costs nothing."""
    if str(path) == "":  # Path("") is "."
        raise UsageError("--json needs a file name, and was given an empty one")
    if str(path) == "-":  # it would be a file named -
        raise UsageError("--json needs a file name: - (stdout) is not one, as stdout holds the table; name a file")
    if str(path).endswith(os.sep):  # Path drops the slash: a.json/ would be written as the file a.json
        raise UsageError(f"--json {path} ends in {os.sep}, as a folder's name does; --json needs a file name")
    path = Path(path)
    if len(os.fsencode(path.name)) > NAME_MAX - TEMPORARY_EXTRA:  # it is written under a longer name first
        raise UsageError(f"--json file name {path.name[:40]}... is too long ({len(os.fsencode(path.name))} bytes); "
                         f"use one of at most {NAME_MAX - TEMPORARY_EXTRA} bytes")
    try:
        if not path.parent.exists():
            raise UsageError(f"cannot write --json {path}: there is no folder {path.parent}; make it first, or name "
                             f"a file in a folder that exists")
        if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
            raise UsageError(f"cannot write --json {path}: {path.parent} is not a folder this program can write to")
        if path.exists() and (not path.is_file() or str(path).startswith(("/dev/", "/proc/"))):  # /dev/stdout
            # and /dev/null, a pipe, a folder; /dev/stdout is the file stdout was sent to when it was one
            raise UsageError(f"--json {path} is no file of its own (a device, a stream, a pipe or a folder), and "
                             f"the JSON is written to a file; name a new one")
        if path.is_symlink():  # the file written would replace the link, not what it points to
            raise UsageError(f"--json {path} is a symbolic link, which the file written would replace; name the "
                             f"file it points to, or a new one")
        if path.exists() and not _is_our_json(path):
            raise UsageError(f"--json {path} already exists and is not a file an earlier --json wrote; "
                             f"name a new file to write to")
        if path.exists() and not os.access(path, os.W_OK):  # write_whole keeps to a file's permissions
            raise UsageError(f"--json {path} is an earlier --json file this user may not write (read-only); "
                             f"make it writable (chmod u+w), or name another file")
    except OSError as e:
        raise UsageError(f"cannot write --json {path}: {e.strerror}") from None
    return path


def _is_our_json(path):
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > 10 * 2**20:  # ours are small, plain files
            return False
        doc = json.loads(path.read_text())
    except (ValueError, RecursionError, OSError):
        return False
    return isinstance(doc, dict) and all(doc.get(k) == v for k, v in JSON_MARK.items())
