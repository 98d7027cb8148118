"""A word list file: where the default one is, and its bytes read into items.

A data file holds one item per line (a name, a word), in UTF-8. read_items_and_digest
gives the items and the sha256 of the bytes they came from, so that a run can recognise
its file later (digest, differs). data.py makes a vocabulary and examples of the items.

Every problem with the file raises DataError with a message a person can act on.
"""
import codecs
import hashlib
import os
import re
import stat
from pathlib import Path

from .runtime import NotEnoughMemory, check_fits, gib

# The checkout this package sits in (when it is one: an editable install, or run from the clone).
CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = "data/names.txt"  # what the commands read without --data, found in the checkout


def has_checkout():
    """Whether this package sits in a clone of its repository (an editable install, or run from the clone),
    not installed on its own (pip install without -e), which brings no data/names.txt."""
    return (CHECKOUT / "setup.cfg").is_file() and (CHECKOUT / "mlp_lm").is_dir()


NO_CHECKOUT = ("this mlp_lm is installed apart from a clone of its repository (pip install without -e), and "
               f"{DEFAULT_DATA} comes with the repository")


def in_checkout(relative):
    """A default path: inside the checkout when the package sits in one, else relative to the
    current directory. So `python -m mlp_lm.train` reads and writes the same files from any directory."""
    if has_checkout():
        path = CHECKOUT / relative
        try:  # shown as the short relative path when run from the checkout itself
            return path.relative_to(Path.cwd())
        except (ValueError, FileNotFoundError):  # elsewhere, or in a folder deleted since (no cwd at all)
            return path
    return Path(relative)


class DataError(Exception):
    """The data file (or what it holds) cannot be used; the message says why."""


class NotAWordList(DataError):
    """The file is refused for its bytes, not its items: UTF-16 or UTF-32, NUL bytes. Earlier versions of
    the reader took some such files (UTF-16 without its mark, NULs as symbols), so a run may have trained on one."""


SLOW_READ_BYTES = 10 * 2**20  # a file this large takes seconds to read into examples (16 s for 39 MB of names)


def slow_reading(path):
    """A line saying that reading the data file at `path` into examples takes a while, or None when it does not
    (or when it cannot be read: the read says why)."""
    size = _file_size(path)
    if size is None or size < SLOW_READ_BYTES:
        return None
    return f"reading {path} ({gib(size)}) into examples: a file this large takes a while"


def read_items(path):
    """Read one item per line: UTF-8, surrounding whitespace stripped, blank lines skipped."""
    return read_items_and_digest(path)[0]


def digest(path):
    """The sha256 of a data file's bytes, as a run records it (or a DataError if it cannot be read)."""
    return hashlib.sha256(_read_bytes(path)).hexdigest()


def differs(path, sha256):
    """Whether the file at `path` now holds other bytes than those whose sha256 a run recorded,
    whatever they hold (False when nothing was recorded or the file cannot be read). For the
    error path of a read: a file that changed into something unreadable has, above all, changed."""
    now = _readable_digest(path) if sha256 else None
    return now is not None and now != sha256


def is_the_file(path, sha256):
    """Whether the file at path holds the very bytes whose sha256 a run recorded (False if it cannot be read)."""
    return bool(sha256) and _readable_digest(path) == sha256


def _readable_digest(path):  # digest(path), or None when the file cannot be read
    try:
        return digest(path)
    except DataError:
        return None


# Reading holds at its peak the bytes, the text (1 byte a character for ASCII, else up to 4), each line as a
# string and again stripped (49 bytes each, and its characters), in two lists (8 bytes a line each): for ASCII 4
# times the file and 65 bytes a line (tracemalloc: 12.2 times a file of short names; 4.0 one long stripped line).
READ_BYTES_PER_LINE = 49 + 8 + 8
# What a word list may have been packed in, by the bytes each kind of file starts with
ARCHIVES = ((b"\x1f\x8b", "a gzip file (.gz)"), (b"PK\x03\x04", "a zip archive"), (b"BZh", "a bzip2 file (.bz2)"),
            (b"\xfd7zXZ\x00", "an xz file (.xz)"), (b"\x28\xb5\x2f\xfd", "a zstd file (.zst)"),
            (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"))
# and what else a --data mistyped may be, by the same bytes: a picture, a document, a program
NOT_TEXT = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
            (b"%PDF-", "a PDF document"), (b"\x7fELF", "a program (ELF)"))


def _numpy_kind(raw):
    """What numpy file the bytes raw are, for a message, or None: an .npz (a zip archive whose first member is
    an .npy, as a saved model's is; read from the first member's header, so a file cut short is one too) or
    an .npy."""
    if raw.startswith(b"\x93NUMPY"):
        return "a numpy .npy array"
    if raw.startswith(b"PK\x03\x04") and len(raw) >= 30:
        n = int.from_bytes(raw[26:28], "little")  # the first member's name's length, then its name at byte 30
        if raw[30:30 + n].endswith(b".npy"):
            return "a numpy .npz archive (a saved model?)"
    return None


def read_items_and_digest(path):
    """The items, and the sha256 of the very bytes they were read from (to recognise the file later)."""
    size = _file_size(path)
    if size is not None:  # the bytes and the text at the least, before reading a byte
        check_fits(2 * size, f"reading data file {path} ({gib(size)})", "use a smaller file")
    try:
        raw = _read_bytes(path)
        lines = raw.count(b"\n") + raw.count(b"\r") + 1  # a bound on the lines, however they end
        check_fits(len(raw) * (1 + 3 * (1 if raw.isascii() else 4)) + READ_BYTES_PER_LINE * lines,
                   f"reading data file {path} ({gib(len(raw))}, {lines:,} lines)", "use a smaller file")
        packed = next((kind for magic, kind in ARCHIVES if raw.startswith(magic)), None)
        other = next((kind for magic, kind in NOT_TEXT if raw.startswith(magic)), None)
        if other and not _plain_utf8(raw):  # its NULs, or bytes that are no UTF-8, would be blamed on an encoding
            raise NotAWordList(f"data file {path} is {other}, not text; --data takes a word list, one item per line")
        numpy_kind = _numpy_kind(raw)
        if numpy_kind and not _plain_utf8(raw):  # --data given a model.npz, meant for --checkpoint
            raise NotAWordList(f"data file {path} is {numpy_kind}, not text; --data takes a word list, one item per "
                               f"line (sample and evaluate read a model.npz, with --checkpoint)")
        if raw.startswith(b"PK\x05\x06") and not _plain_utf8(raw):  # a zip's end record alone (np.savez() of nothing)
            raise NotAWordList(f"data file {path} is an empty zip archive, not text; --data takes a word list, one "
                               f"item per line")
        if packed and not _plain_utf8(raw):  # its NULs would be blamed on UTF-16, and taking them out advised
            raise NotAWordList(f"data file {path} is {packed}, not text; unpack it and pass the text file of words "
                               f"inside")
        if raw.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):  # (UTF-32-LE's starts as UTF-16-LE's)
            raise NotAWordList(f"data file {path} is UTF-16 or UTF-32 text (it starts with their byte-order mark); "
                               f"save it as UTF-8")
        nuls = raw.count(0)
        if nuls:  # UTF-16 or UTF-32 without a mark: each line end holds one, and much of it can be valid UTF-8
            n_lines = len(re.findall(rb"\r\n|\r|\n", raw)) + (not raw.rstrip(b"\x00").endswith((b"\n", b"\r")))
            if nuls > n_lines or _utf32_text(raw):  # surely not UTF-8 (UTF-16's own bytes can be \n: no line number)
                raise NotAWordList(f"data file {path} holds {nuls:,} NUL byte{'s' * (nuls != 1)}, as UTF-16 or UTF-32 "
                                   f"text without a byte-order mark does: save it as UTF-8 (taking the NULs out "
                                   f"would leave junk); or it is not text")
            # No byte pattern tells UTF-16 of every script (one NUL a line end, the rest often valid UTF-8) from
            # UTF-8 with a few NULs, so both are said.
            line = len(re.findall(rb"\r\n|\r|\n", raw[:raw.index(0)])) + 1
            raise NotAWordList(f"data file {path} holds NUL bytes (the first at line {line}), which no word list "
                               f"does: if it is UTF-16 text without a byte-order mark, save it as UTF-8 (taking the "
                               f"NULs out would leave junk); if it is a word list with stray NULs, remove them; "
                               f"otherwise it is not text")
        try:
            text = raw.decode("utf-8-sig")  # -sig: a byte-order mark (some Windows editors add one) is not a symbol
        except UnicodeDecodeError as e:  # e.start counts from after a byte-order mark, which -sig took off
            start = e.start + (3 if raw.startswith(codecs.BOM_UTF8) else 0)
            line = len(re.findall(rb"\r\n|\r|\n", raw[:start])) + 1
            raise DataError(f"data file {path} is not UTF-8 text (bad byte at line {line}); save it as UTF-8") from None
        # Lines end at \n, \r\n or \r, as in any editor; not at the rarer breaks str.splitlines() also
        # knows (U+2028, \x85, \f, ...), which are kept as symbols.
        items = [line.strip() for line in re.split(r"\r\n|\r|\n", text)]
        if "\ufeff" in text:  # a byte-order mark starting a line, as `cat a.txt b.txt` leaves b's, is no symbol either
            items = [item.lstrip("\ufeff").strip() for item in items]
        items = [item for item in items if item]
    except NotEnoughMemory:  # check_fits's, found before: it says what is needed
        raise
    except MemoryError:
        raise DataError(f"data file {path} is too large to read in the memory this process may use; use a smaller "
                        f"file, or give it more memory (free some, or raise ulimit -v)") from None
    if not items:
        raise DataError(f"data file {path} has no items (it is empty or only blank lines)")
    return items, hashlib.sha256(raw).hexdigest()


def refused_hint(path, sha256, what):
    """What to do when this version refuses the file at path for its bytes (NotAWordList) and it is the very
    file whose sha256 a run (or model, `what`) recorded, which an earlier version read; None for another file."""
    if not is_the_file(path, sha256):
        return None
    return (f"it is the very file the {what} was trained on, which this version refuses: retrain on it saved as "
            f"UTF-8 (or, if it is UTF-8 with a few NUL bytes, without them)")


def read_otherwise(trained, now):
    """Why the very bytes a run was trained on give other symbols now (the symbols then and now), or None.
    Until wordfile.py split from data.py, a byte-order mark starting a line inside the file was a symbol,
    U+FEFF; it is dropped since. (And a file with NUL bytes, read then, is refused now.)"""
    if "\ufeff" in trained and "\ufeff" not in now:
        return ("it is the very file the run was trained on, but this version reads it without the symbol "
                "U+FEFF (a byte-order mark starting a line), which the run has; retrain on it")
    return None


def _plain_utf8(raw):
    """Whether bytes are UTF-8 text with no NUL, as a word list starting "BZh" is, and compressed data is not."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return 0 not in raw


def _utf32_text(raw):
    """Whether bytes holding NULs read as UTF-32 text (either byte order) with no NUL in it: UTF-8 hardly ever
    does, since UTF-32 takes no code point past U+10FFFF and no surrogate."""
    for encoding in ("utf-32-le", "utf-32-be") if len(raw) % 4 == 0 else ():
        try:
            if "\x00" not in raw.decode(encoding):
                return True
        except UnicodeDecodeError:
            continue
    return False


def _file_size(path):  # None for a missing file, a folder, a pipe: _read_bytes says what is wrong
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _read_bytes(path):
    """A data file's bytes, or a DataError saying why they cannot be read."""
    if str(path) == "":
        raise DataError("the data path is empty; pass a file with one item per line")
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO, a device: may never end
            raise DataError(f"data path {path} is not a regular file (a pipe or a device); "
                            f"save the items to a file and pass that")
        raw = path.read_bytes()
    except FileNotFoundError:
        if path == Path(DEFAULT_DATA) and not has_checkout():  # the default, looked for in the current directory
            raise DataError(f"data file not found: {path}, in the current directory: {NO_CHECKOUT}; pass --data "
                            f"PATH (a clone's {DEFAULT_DATA}, or a list of your own), or run from the clone") from None
        raise DataError(f"data file not found: {path} (pass an existing file with one item per line)") from None
    except IsADirectoryError:
        raise DataError(f"data path is a directory, not a file: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read data file {path}: {e.strerror}") from None
    return raw
