"""Arguments written out as a shell reads them, for the commands our messages tell a user to run.

shlex.quote covers a path of printable characters. One holding a line break, a tab or another control
character would print across lines or invisibly, and one holding bytes that are not UTF-8 (Python reads
them as surrogate escapes, '\\udcff') would print as text that names another file. Those are written in
bash's $'...' quoting instead, each such character as the escape of its bytes, so that pasted into bash
(or zsh, ksh) the command names the very file.
"""
import os
import shlex

ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "'": "\\'", "\\": "\\\\"}


def quote(arg):
    """arg (a str or a path) as one shell word."""
    arg = str(arg)
    if arg.isprintable():  # a surrogate escape is not printable, nor is a control character
        return shlex.quote(arg)
    out = []
    for c in arg:
        if c in ESCAPES:
            out.append(ESCAPES[c])
        elif c.isprintable():
            out.append(c)
        else:  # the character's bytes in the file system's encoding: a surrogate escape is its one byte
            try:
                out.extend(f"\\x{b:02x}" for b in os.fsencode(c))
            except UnicodeEncodeError:  # a surrogate no file name decodes to (made in Python): bash's \u
                out.append(f"\\u{ord(c):04x}")
    return "$'" + "".join(out) + "'"


def not_a_flag(path):
    """path as a string no command reads as a flag: ./ before a relative one that starts with a dash."""
    path = str(path)
    return "./" + path if path.startswith("-") else path


def path(p):
    """A path as one shell word, in a command's place for a file: quote(not_a_flag(p))."""
    return quote(not_a_flag(p))


def shown(p):
    """A path in a message's prose: as it is, unless it holds what would print across lines or name
    another file (quote's cases), then as quote writes it."""
    p = str(p)
    return p if p.isprintable() else quote(p)


def join(args):
    """The words args as one command line (shlex.join, with quote's care)."""
    return " ".join(quote(a) for a in args)
