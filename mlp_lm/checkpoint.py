"""Save and load a trained model as one .npz file, with no pickled objects.

model.npz holds each parameter under its name (C, W1, b1, W2, b2, and Wd for a model with
the paper's direct connections), `vocab` (a 0-d string array: the symbols in index order,
boundary first) and `config` (a 0-d string array: the run's configuration as JSON). It loads with
np.load(path, allow_pickle=False). Loading checks everything it can, so a
damaged or foreign file is reported, not used: its form, its config against its arrays (shapes,
dtype, split seed), and its numbers against what a training can leave (finite, and within
model.magnitude_problem's bounds: 1e38 is finite in float32, but no model).
"""
import glob
import json
import os
import stat
import tempfile
from pathlib import Path

import numpy as np

from .data import SPLIT_SEED, DataError, Vocab
from .model import OPTIONAL_PARAMS, PARAM_NAMES, magnitude_problem

FORMAT = "mlp_lm/1"
DTYPES = ("float32", "float64")  # what a training computes in (trainer.Config.dtype)


class CheckpointError(Exception):
    """The checkpoint cannot be used; the message says why."""


def save(path, params, vocab, config, state=None):
    """Write atomically: a crash mid-write leaves any previous file at `path` whole.

    state: the training state to resume from (trainer.Trainer.state() and the loop's
    step and history), stored under "state." names that loading for sampling ignores.
    """
    write_atomic([(path, writer(params, vocab, config, state))])


def writer(params, vocab, config, state=None):
    """A function that writes the checkpoint's .npz to an open binary file (for write_atomic)."""
    arrays = {k: np.asarray(params[k]) for k in (*PARAM_NAMES, *OPTIONAL_PARAMS) if k in params}
    arrays.update({f"state.{k}": np.asarray(v) for k, v in (state or {}).items()})
    arrays["vocab"] = np.array(vocab.itos)  # readable, but numpy drops a trailing NUL from a string ...
    arrays["vocab_codes"] = np.array([ord(c) for c in vocab.itos], dtype=np.int32)  # ... so also exactly
    arrays["config"] = np.array(json.dumps({"format": FORMAT, **config}, sort_keys=True))
    return lambda f: np.savez(f, **arrays)


JOURNAL = ".commit.json"  # in a folder being written by write_atomic: the renames that complete it
JOURNAL_MAX_BYTES = 1 << 16  # ours lists a few renames; anything bigger is not ours


def check_save_place(folder, names=()):
    """Raise CheckpointError if something sits where write_atomic would put its journal (anything
    but a file) or one of the files `names` (a folder: no file can be renamed over one). Train asks
    before it starts, so that the run is not found unsaveable only at its end; write_atomic asks again."""
    journal = Path(folder) / JOURNAL
    if journal.is_symlink() or (journal.exists() and not journal.is_file()):
        raise CheckpointError(f"{journal} is in the way of saving (it is not a file mlp_lm wrote); remove it")
    for name in names:
        path = Path(folder) / name
        if path.is_dir() and not path.is_symlink():
            raise CheckpointError(f"{path} is a folder, in the way of saving the file {name} there; "
                                  f"move it away or pass another --out")


def write_atomic(files):
    """Write several files of one folder as one: [(path, write(binary file))]. Afterwards the
    folder holds all the new files or, whenever the writing is cut short, all the old ones.

    1. Each file is written in full to a temporary name beside it and flushed to disk.
       A full disk or any error here removes the temporaries and changes nothing (an
       OSError becomes a CheckpointError saying so).
    2. A journal (JOURNAL) listing the renames still to do is put in place with one rename:
       this is the moment the new files count as written.
    3. The temporaries are renamed over the old files, and the journal is removed.

    A kill or a crash between 2 and 3 leaves a journal, and recover(folder), which every
    command runs before it reads or writes a run folder, finishes the renames. A kill before
    2 leaves temporaries, which the next write of the same files removes. The caller must be
    the folder's only writer (train holds runs.RunLock).
    """
    folder = {Path(path).parent for path, _ in files}
    if len(folder) != 1:
        raise ValueError(f"write_atomic writes the files of one folder, got {sorted(map(str, folder))}")
    folder = folder.pop()
    recover(folder)
    check_save_place(folder, [Path(path).name for path, _ in files])
    for path, _ in files:  # temporaries of an earlier write of these files that was killed before its commit
        for stale in folder.glob(f".{glob.escape(Path(path).name)}.*.tmp"):
            stale.unlink(missing_ok=True)
    temps = []
    try:
        for path, write in files:
            path = Path(path)
            write_temporary(path, write, temps)  # on disk before the journal can point at it
        moves = [[Path(tmp).name, Path(path).name] for (path, _), tmp in zip(files, temps)]
        path = folder / JOURNAL  # what a failure from here on is about
        journal = write_temporary(path, lambda f: f.write(json.dumps(moves).encode()), temps)
        os.replace(journal, folder / JOURNAL)  # the commit
    except BaseException as e:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise CheckpointError(f"cannot write {path}: {e.strerror or e}; the previous files there, "
                                  f"if any, are unchanged") from None
        raise
    recover(folder)
    if (folder / JOURNAL).exists():  # committed, but the renames failed: the files are not in place
        raise CheckpointError(f"cannot move the new files into place in {folder} (they wait there under "
                              f"hidden names, listed in {JOURNAL}); the files in their place are the previous ones")


def write_temporary(path, write, made=None):
    """Write a file in full under a hidden temporary name beside `path` (".NAME.xxxx.tmp"), with a
    normal file's mode, flushed to disk, and return that name; the caller renames it into place.
    The name goes into `made` (a list) as soon as the file exists, so a caller can remove it if
    the writing fails."""
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".tmp")
    if made is not None:
        made.append(tmp)
    with os.fdopen(fd, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it a normal file's mode
    return tmp


def _is_journal(moves):
    """Whether `moves` is what write_atomic writes: [[".NAME.xxxx.tmp", "NAME"], ...], plain names
    in the folder itself, each temporary named after the file it replaces."""
    return isinstance(moves, list) and all(
        isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m)
        and "/" not in m[0] + m[1] and "\\" not in m[0] + m[1] and m[1] not in ("", ".", "..", JOURNAL)
        and m[0].startswith(f".{m[1]}.") and m[0].endswith(".tmp") for m in moves)


def recover(folder):
    """Finish a write_atomic that was cut short after its commit: rename what its journal lists
    (a temporary that is gone was renamed already), then drop the journal. Safe to run at any
    time and more than once; does nothing in a folder without a journal or that cannot be written."""
    journal = Path(folder) / JOURNAL
    try:
        st = journal.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > JOURNAL_MAX_BYTES:  # a pipe, a device, a link: not ours
            return
        moves = json.loads(journal.read_text())
    except (OSError, ValueError, RecursionError):  # none, or unreadable: leave it alone
        return
    if not _is_journal(moves):  # not one write_atomic wrote: never let it move files
        return
    try:
        for tmp, name in moves:
            try:
                os.replace(Path(folder) / tmp, Path(folder) / name)
            except FileNotFoundError:  # renamed already, by us before a crash or by another reader
                pass
        journal.unlink(missing_ok=True)
    except (OSError, TypeError, ValueError):  # a read-only folder, or a journal that is not ours
        pass


def overflowed(path, e):
    """The CheckpointError for a loaded model whose arithmetic overflowed in use (model.logits raised
    FloatingPointError `e`): load() vouches for what it can, and this is what it could not see."""
    return CheckpointError(f"{path}: the model's arithmetic overflows or loses all precision ({e}), so the checkpoint is damaged or "
                           f"not a trained model; train one with `python -m mlp_lm.train` and pass its model.npz")


def load_state(path):
    """The training state saved with the checkpoint at `path` ({name: array}), or None if it has none."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k[len("state."):]: f[k] for k in f.files if k.startswith("state.")} or None
    except Exception as e:  # load() has already vouched for the file; this is a second read failing
        raise CheckpointError(f"cannot read the training state in {path}: {e}") from None


def vocab_text(contents):
    """The vocabulary, from its code points when the file has them (any symbol, NUL included)."""
    text = str(contents["vocab"])
    codes = contents.get("vocab_codes")
    if codes is None:  # a checkpoint from before code points were stored
        return text
    if (codes.ndim != 1 or codes.dtype.kind not in "iu" or codes.size == 0 or codes.min() < 0
            or codes.max() > 0x10FFFF or np.any((codes >= 0xD800) & (codes <= 0xDFFF))):
        raise ValueError("its vocabulary code points are not a list of Unicode characters")
    exact = "".join(map(chr, codes.tolist()))
    if exact.rstrip("\0") != text.rstrip("\0"):  # numpy drops trailing NULs from the string copy only
        raise ValueError("its two copies of the vocabulary disagree")
    return exact


def load(path):
    """Return (params, vocab, config), or raise CheckpointError saying what is wrong."""
    if str(path) == "":  # Path("") is ".", which would be "a directory"
        raise CheckpointError("the checkpoint path is empty; pass a model.npz")
    path = Path(path)
    recover(path.parent)  # a save cut short after its commit is finished first
    hint = "train one with `python -m mlp_lm.train` and pass its model.npz"
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} ({hint})")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path is a directory: {path} (pass the model.npz inside it)")
    if not path.is_file():  # a FIFO or a device: reading it could block forever
        raise CheckpointError(f"checkpoint path {path} is not a regular file; {hint}")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    if magic != b"PK\x03\x04":  # every .npz is a zip archive
        raise CheckpointError(f"{path} is not a .npz archive: damaged or not an mlp_lm checkpoint; {hint}")
    try:
        with np.load(path, allow_pickle=False) as f:
            # only what a model is made of: another array (a training state's, or one added to
            # the file) is never read, so it costs no memory
            contents = {k: f[k] for k in f.files if k in (*PARAM_NAMES, *OPTIONAL_PARAMS, "vocab", "vocab_codes", "config")}
    except ValueError as e:
        if "pickle" in str(e):  # numpy's own message suggests unsafe loading: don't pass that on
            raise CheckpointError(f"{path} holds pickled objects, which an mlp_lm checkpoint never does; "
                                  f"it is damaged or not ours; {hint}") from None
        raise CheckpointError(f"cannot read checkpoint {path}: damaged ({e}); {hint}") from None
    except Exception as e:  # zipfile, zlib, OSError, EOFError: all mean a damaged file to the user
        raise CheckpointError(f"cannot read checkpoint {path}: damaged ({type(e).__name__}: {e}); {hint}") from None

    missing = [k for k in (*PARAM_NAMES, "vocab", "config") if k not in contents]
    if missing:
        raise CheckpointError(f"{path} is not an mlp_lm checkpoint: it has no {', '.join(missing)}; {hint}")
    try:
        try:
            config = json.loads(str(contents["config"]))
        except ValueError as e:
            raise ValueError(f"its config is not JSON ({e})") from None
        vocab = Vocab(vocab_text(contents))
        if "\n" in vocab.itos or "\r" in vocab.itos:  # data.read_items ends lines there: no item holds one
            raise ValueError("its vocabulary holds a line break, which no line of a data file can")
        if vocab.itos[1:] != "".join(sorted(vocab.itos[1:])):  # data.build_vocab sorts them; rows of C follow
            raise ValueError("its vocabulary is not in the order training gives it (sorted after the boundary), "
                             "so the rows of its parameters would belong to other symbols")
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ValueError(f"its config does not say format {FORMAT!r}")
        T = config["block_size"]
        if not isinstance(T, int) or isinstance(T, bool) or T < 1:
            raise ValueError(f"block_size {T!r} in its config is not a positive integer")
        for key, kind in (("data", str), ("split_seed", int), ("data_sha256", str)):
            if key in config and (not isinstance(config[key], kind) or isinstance(config[key], bool)):
                raise ValueError(f"{key} {config[key]!r} in its config is not a {kind.__name__}")
        if config.get("split_seed", SPLIT_SEED) != SPLIT_SEED:  # evaluating would read another split as dev/test
            raise ValueError(f"split_seed {config['split_seed']} in its config is not the seed every mlp_lm "
                             f"training splits its data with ({SPLIT_SEED}), so the file is damaged; retrain it "
                             f"with `python -m mlp_lm.train`")
        if config.get("dtype", "float32") not in DTYPES:
            raise ValueError(f"dtype {config['dtype']!r} in its config is not one of {', '.join(DTYPES)}; "
                             f"the file is damaged")
    except (ValueError, KeyError, DataError, RecursionError) as e:
        what = "its config nests too deeply" if isinstance(e, RecursionError) else e
        raise CheckpointError(f"{path} is not a valid mlp_lm checkpoint: {what}") from None

    direct = config.get("direct", False)
    if not isinstance(direct, bool) or direct != ("Wd" in contents):
        raise CheckpointError(f"{path}: its config says direct={direct!r} but the file "
                              f"{'has' if 'Wd' in contents else 'has no'} Wd; the file is damaged or not from mlp_lm")
    params = {k: contents[k] for k in (*PARAM_NAMES, *OPTIONAL_PARAMS) if k in contents}
    for k, p in params.items():
        if p.dtype.kind != "f":
            raise CheckpointError(f"{path}: parameter {k} has dtype {p.dtype}, not floating point; the file is damaged")
        if not np.all(np.isfinite(p)):
            raise CheckpointError(f"{path}: parameter {k} holds NaN or infinite values; retrain with a smaller --lr")
    dtypes, want = sorted({str(p.dtype) for p in params.values()}), config.get("dtype")
    if len(dtypes) > 1 or dtypes[0] not in DTYPES or dtypes[0] != (want or dtypes[0]):  # the run computed in want
        why = f"its config says dtype {want}" if want else f"mlp_lm keeps them all in one of {' or '.join(DTYPES)}"
        raise CheckpointError(f"{path}: its parameters are {' and '.join(dtypes)}, but {why}; the file is damaged "
                              f"or not from mlp_lm; {hint}")
    V = len(vocab)
    for k, p in params.items():  # the biases are vectors, the rest matrices
        if p.ndim != (1 if k.startswith("b") else 2):
            raise CheckpointError(f"{path}: parameter {k} has {p.ndim} dimensions, not {1 if k[0] == 'b' else 2}; "
                                  f"the file is damaged or not from mlp_lm")
    E, H = params["C"].shape[1], params["b1"].shape[0]
    expected = {"C": (V, E), "W1": (T * E, H), "b1": (H,), "W2": (H, V), "b2": (V,), "Wd": (T * E, V)}
    for k, shape in expected.items():
        if k in params and params[k].shape != shape:
            raise CheckpointError(
                f"{path}: parameter {k} has shape {params[k].shape}, but the vocabulary ({V} symbols) "
                f"and block size ({T}) need {shape}; the file is damaged or not from mlp_lm"
            )
    if E == 0 or H == 0:  # training makes both at least 1
        raise CheckpointError(f"{path}: its embedding size is {E} and its hidden size {H}; the file is damaged")
    for key, size in (("vocab_size", V), ("n_embd", E), ("n_hidden", H)):
        if key in config and config[key] != size:  # the shapes agree with each other, not with it
            raise CheckpointError(f"{path}: its config says {key} {config[key]!r}, but its parameters have {size}; "
                                  f"the file is damaged")
    problem = magnitude_problem(params)  # finite is not enough: 1e38 in float32 is finite too
    if problem:
        raise CheckpointError(f"{path}: {problem}; no trained model has parameters this large, so the file "
                              f"is damaged; {hint}")
    return params, vocab, config
