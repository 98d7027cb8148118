"""Output streams whose reader may leave: what cli.run does to stdout and stderr so that losing
the output never loses the work."""
import os
import re
import select
import sys

# What a terminal acts on rather than shows: C0 and C1 controls (ESC, NUL, ...), the line and paragraph
# separators, and the bidirectional marks, overrides and isolates (U+202E turns the rest of a line around).
# A word list may hold them, and so may what a model learned from it. And U+FEFF, a byte-order mark inside
# a line, and the word joiner and invisible operators after it (U+2060 to U+2064), which no script writes
# with. Other invisible characters (a zero-width joiner in an emoji, a zero-width non-joiner in Persian, a
# zero-width space between Khmer or Thai words) belong to the text and print as is.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
                     "\udc80-\udcff]")  # (and a byte of a file name that is not UTF-8, as Python reads it)


def printable(text):
    """Text as it is printed (a sample, or an error's line): its controls escaped as Python writes them (\\x1b,
    \\u2028), a byte of a file name that is not UTF-8 as the byte (\\xff, as bash's $'...' writes it, not
    Python's \\udcff), the rest as is."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}" if "\udc80" <= m.group() <= "\udcff"
                       else repr(m.group())[1:-1], text)


class LossyStream:
    """A text stream whose reader may leave (`2>&1 | head`, a pager quit): from the first write
    that finds the pipe broken on, the writes go nowhere and the program carries on. Messages
    are worth less than the work they report on, so losing them must not lose a training."""

    def __init__(self, stream):
        self.stream = stream
        self.error = None  # the OSError that lost the stream, if one did

    def _lose(self, error):
        self.error = self.error or error
        try:  # anything else writing to the descriptor (a C library's warning, the exit's flush) too
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        except (OSError, ValueError):
            pass
        self.stream = open(os.devnull, "w")

    def write(self, text):
        global _writing
        _writing = self
        try:
            return self.stream.write(text)
        except OSError as e:  # a reader gone (EPIPE), or a stream on a full disk (ENOSPC) or a dead device
            self._lose(e)
            return len(text)
        except WriteCut:  # a stop signal came while a stalled reader kept this write waiting (cut_if_stalled)
            self._lose(BlockingIOError("its reader stopped reading"))
            return len(text)
        finally:
            _writing = None

    def flush(self):
        try:
            self.stream.flush()
        except OSError as e:
            self._lose(e)

    def __getattr__(self, name):  # isatty, fileno, encoding, ...: the stream's own
        return getattr(self.stream, name)


class WriteCut(Exception):
    """Raised by a stop signal's handler into a write that waits on a reader who stopped reading."""


_writing = None  # the LossyStream whose write is under way, if one is


def cut_if_stalled():
    """For a handler that holds a stop signal: raise WriteCut when the signal came while a LossyStream
    write waits on a full pipe (`2>&1 | sleep 60`), which would otherwise wait with the signal held and
    the program unkillable. A write that can go on (a terminal, a file, a pipe with room) is left alone."""
    if _writing is None:
        return
    try:
        _, writable, _ = select.select([], [_writing.fileno()], [], 0)
    except (OSError, ValueError):  # no descriptor to ask (a stream of Python's own): let it be
        return
    if not writable:
        raise WriteCut()


def make_stdout_lossy():
    """A reader of stdout that leaves costs the output from here on, never the work (LossyStream)."""
    if not isinstance(sys.stdout, LossyStream):
        sys.stdout = LossyStream(sys.stdout)
