"""Save and load a trained model as one .npz file, with no pickled objects.

model.npz holds each parameter under its name (C, W1, b1, W2, b2, and Wd for a model with
the paper's direct connections), `vocab` (a 0-d string array: the symbols in index order,
boundary first) and `config` (a 0-d string array: the run's configuration as JSON). It loads with
np.load(path, allow_pickle=False). Loading checks everything it can, so a
damaged or foreign file is reported, not used: its form, its config against its arrays (shapes,
dtype, split seed), and its numbers against what a training can leave (finite, and within
bounds.magnitude_problem's bounds: 1e38 is finite in float32, but no model).
"""
import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .atomic import CheckpointError, recover, write_atomic
from .data import SPLIT_SEED, Vocab
from .bounds import magnitude_problem
from .params import OPTIONAL_PARAMS, PARAM_NAMES, check_params, param_shapes
from .runtime import gib
from .wordfile import DataError

FORMAT = "mlp_lm/1"
DTYPES = ("float32", "float64")  # what a training computes in (config.Config.dtype)
# A model's arrays may take this much more memory than the file on disk, or EXPANDED_MAX whatever the file:
# np.savez stores them as they are (no more than their size), and compressed weights shrink little, where
# compressed zeros shrink a thousandfold (a 1.5 MB file read into 1.3 GB before its shapes were checked).
EXPANSION_MAX, EXPANDED_MAX = 4, 64 * 2**20


def save(path, params, vocab, config, state=None):
    """Write atomically: a crash mid-write leaves any previous file at `path` whole.

    state: the training state to resume from (trainer.Trainer.state() and the loop's
    step and history), stored under "state." names that loading for sampling ignores.
    Raises ValueError, before writing, for pieces that would not load back (see writer).
    """
    write_atomic([(path, writer(params, vocab, config, state))])


def _json_value(value):
    """A numpy scalar in a config (Config(seed=np.int64(3)), a loop over np.array sizes) as the Python number."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a config value of type {type(value).__name__} cannot be saved")


def writer(params, vocab, config, state=None, check=True):
    """A function that writes the checkpoint's .npz to an open binary file (for write_atomic).

    check: refuse (ValueError, before anything is written) pieces that load() would call damaged,
    such as a vocabulary out of training's order or parameters of the wrong shapes. A training's
    own save passes False: its pieces agree by construction, and a refusal there would lose the run.
    """
    if not isinstance(config, Mapping):  # a config.Config itself was "'Config' object is not a mapping"
        raise TypeError(f"config must be a dict of the run's settings, such as dataclasses.asdict(cfg), got "
                        f"{type(config).__name__}")
    if check:
        try:  # a misspelt "wd" would be left out of the file in silence
            check_params(params)
        except ValueError as e:
            raise ValueError(f"refusing to write a checkpoint that would not load back: {e}") from None
    arrays = {k: np.asarray(params[k]) for k in (*PARAM_NAMES, *OPTIONAL_PARAMS) if k in params}
    arrays.update({f"state.{k}": np.asarray(v) for k, v in (state or {}).items()})
    pickled = [k for k, a in arrays.items() if a.dtype.hasobject]  # np.savez would pickle them
    if pickled:
        raise ValueError(f"{', '.join(pickled)} would be saved as pickled objects, which a checkpoint never holds")
    arrays["vocab"] = np.array(vocab.itos)  # readable, but numpy drops a trailing NUL from a string ...
    arrays["vocab_codes"] = np.array([ord(c) for c in vocab.itos], dtype=np.int32)  # ... so also exactly
    arrays["config"] = np.array(json.dumps({**config, "format": FORMAT}, sort_keys=True, default=_json_value))
    try:  # what load() would refuse is refused here, before anything is written (the numbers are the run's own)
        if check:
            check_contents("the checkpoint to save", {k: a for k, a in arrays.items() if not k.startswith("state.")},
                           "save parameters, vocabulary and config that agree", numbers=False)
    except CheckpointError as e:
        raise ValueError(f"refusing to write a checkpoint that would not load back: {e}") from None
    return lambda f: np.savez(f, **arrays)


def overflowed(path, e):
    """The CheckpointError for a loaded model whose arithmetic overflowed in use (model.logits raised
    FloatingPointError `e`): load() vouches for what it can, and this is what it could not see."""
    return CheckpointError(f"{path}: the model's arithmetic overflows or loses all precision ({e}), so the checkpoint is damaged or "
                           f"not a trained model; train one with `python -m mlp_lm.train` and pass its model.npz")


def _native(a):
    """a in this machine's byte order: a file written on a big-endian machine holds >f4, the same float32."""
    return a.astype(a.dtype.newbyteorder("="), copy=False) if a.dtype.kind in "fiu" else a


def _not_stored(arrays):
    """The first name whose member numpy handed back as its bytes (it has no .npy header), or None."""
    return next((k for k, a in arrays.items() if not isinstance(a, np.ndarray)), None)


def load_state(path):
    """The training state saved with the checkpoint at `path` ({name: array}), or None if it has none."""
    try:
        with np.load(path, allow_pickle=False) as f:
            names = [k for k in f.files if k.startswith("state.")]
            check_expansion(f, names, path, "start a new run")
            state = {k[len("state."):]: f[k] for k in names}
    except CheckpointError:
        raise
    except Exception as e:  # load() has already vouched for the file; this is a second read failing
        raise CheckpointError(f"cannot read the training state in {path}: {e}; it is damaged: start a new run") from None
    raw = _not_stored(state)
    if raw:
        raise CheckpointError(f"{path} has a damaged training state (state.{raw} is not a stored array); "
                              f"start a new run")
    return {k: _native(a) for k, a in state.items()} or None  # in this machine's byte order, as load() gives them


def check_expansion(f, names, path, hint):
    """CheckpointError if the arrays `names` of the open .npz `f` (from `path`) would take far more memory
    than they take in the file (a few MB of compressed zeros, GB once read), by the sizes its directory records."""
    members = [i for i in f.zip.infolist() if i.filename[:-4] in names]  # "C.npy" for C
    expanded, stored = sum(i.file_size for i in members), sum(i.compress_size for i in members)
    if expanded > max(EXPANDED_MAX, EXPANSION_MAX * stored):
        raise CheckpointError(f"{path}: its arrays would take {gib(expanded)} in memory, from {gib(stored)} in the "
                              f"file; training stores them uncompressed, so the file is damaged or not ours; {hint}")


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


def load(path, hint="train one with `python -m mlp_lm.train` and pass its model.npz"):
    """Return (params, vocab, config), or raise CheckpointError saying what is wrong, and then `hint`:
    what to do about a file that is damaged or not a checkpoint."""
    if str(path) == "":  # Path("") is ".", which would be "a directory"
        raise CheckpointError("the checkpoint path is empty; pass a model.npz")
    path = Path(path)
    recover(path.parent)  # a save cut short after its commit is finished first
    if not path.exists():
        if path.is_symlink():  # there is a link, but following it leads nowhere
            raise CheckpointError(f"checkpoint {path} is a link to nothing (a missing file, or links in a loop); "
                                  f"pass the model.npz itself")
        from .runlock import held  # here: runlock's cli imports this module
        if held(path.parent):  # a run under way, its first save to come
            hint = ("a training is writing to that folder and has saved no model yet; it saves one when it ends or "
                    "is stopped, and as it trains (every few minutes): wait for it")
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
            names = [k for k in f.files if k in (*PARAM_NAMES, *OPTIONAL_PARAMS, "vocab", "vocab_codes", "config")]
            check_expansion(f, names, path, hint)
            contents = {k: f[k] for k in names}
    except CheckpointError:
        raise
    except ValueError as e:
        if "pickle" in str(e):  # numpy's own message suggests unsafe loading: don't pass that on
            raise CheckpointError(f"{path} holds pickled objects, which an mlp_lm checkpoint never does; "
                                  f"it is damaged or not ours; {hint}") from None
        raise CheckpointError(f"cannot read checkpoint {path}: damaged ({e}); {hint}") from None
    except Exception as e:  # zipfile, zlib, OSError, EOFError: all mean a damaged file to the user
        raise CheckpointError(f"cannot read checkpoint {path}: damaged ({type(e).__name__}: {e}); {hint}") from None
    raw = _not_stored(contents)
    if raw:
        raise CheckpointError(f"cannot read checkpoint {path}: damaged ({raw} is not a stored array); {hint}")
    return check_contents(path, contents, hint)


def check_contents(path, contents, hint, numbers=True):
    """load()'s checks of a checkpoint's arrays ({name: array}; path names them in messages):
    (params, vocab, config), or CheckpointError. numbers=False leaves out the checks of the
    parameters' values (finite, magnitude_problem), which save() does not second-guess: a
    model a training reached is saved whatever its numbers, and load says what is wrong."""
    missing = [k for k in (*PARAM_NAMES, "vocab", "config") if k not in contents]
    if missing:
        raise CheckpointError(f"{path} is not an mlp_lm checkpoint: it has no {', '.join(missing)}; {hint}")
    try:
        try:
            config = json.loads(str(contents["config"]))
        except ValueError as e:
            raise ValueError(f"its config is not JSON ({e})") from None
        vocab = Vocab(vocab_text(contents))
        if "\n" in vocab.itos or "\r" in vocab.itos:  # wordfile.read_items ends lines there: no item holds one
            raise ValueError("its vocabulary holds a line break, which no line of a data file can")
        if len(vocab.itos) < 2:  # data.build_vocab adds the boundary to an item's symbols, and no list is all empty items
            raise ValueError(f"its vocabulary holds only the boundary {vocab.itos!r}, no symbol an item could hold")
        if vocab.itos[1:] != "".join(sorted(vocab.itos[1:])):  # data.build_vocab sorts them; rows of C follow
            raise ValueError("its vocabulary is not in the order training gives it (sorted after the boundary), "
                             "so the rows of its parameters would belong to other symbols")
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ValueError(f"its config does not say format {FORMAT!r}")
        T = config["block_size"]
        if not isinstance(T, int) or isinstance(T, bool) or T < 1:
            raise ValueError(f"block_size {T!r} in its config is not a positive integer")
        for key, kind in (("data", str), ("split_seed", int), ("data_sha256", str), ("longest_item", int)):
            if key in config and (not isinstance(config[key], kind) or isinstance(config[key], bool)):
                raise ValueError(f"{key} {config[key]!r} in its config is not {'an int' if kind is int else 'a str'}")
        if not re.fullmatch(r"[0-9a-f]{64}", config.get("data_sha256", "0" * 64)):  # hashlib's hexdigest
            raise ValueError(f"data_sha256 {json.dumps(config['data_sha256'])} in its config is not a SHA-256 digest, "
                             f"as training writes them (64 hex digits)")
        if not isinstance(config.get("direct", False), bool):
            raise ValueError(f"direct {json.dumps(config['direct'])} in its config is not true or false")
        if config.get("longest_item", 0) < 0:
            raise ValueError(f"longest_item {config['longest_item']} in its config is below 0, which no item is")
        if config.get("split_seed", SPLIT_SEED) != SPLIT_SEED:  # evaluating would read another split as dev/test
            raise ValueError(f"split_seed {config['split_seed']} in its config is not the seed every mlp_lm "
                             f"training splits its data with ({SPLIT_SEED}), so the file is damaged")
        if config.get("dtype", "float32") not in DTYPES:
            raise ValueError(f"dtype {config['dtype']!r} in its config is not one of {', '.join(DTYPES)}; "
                             f"the file is damaged")
    except (ValueError, KeyError, DataError, RecursionError) as e:
        what = ("its config nests too deeply" if isinstance(e, RecursionError) else
                f"its config has no {e.args[0]}" if isinstance(e, KeyError) else e)
        raise CheckpointError(f"{path} is not a valid mlp_lm checkpoint: {what}; {hint}") from None

    direct = config.get("direct", False)
    if not isinstance(direct, bool) or direct != ("Wd" in contents):
        raise CheckpointError(f"{path}: its config says direct={direct!r} but the file "
                              f"{'has' if 'Wd' in contents else 'has no'} Wd; the file is damaged or not from mlp_lm; {hint}")
    params = {k: _native(contents[k]) for k in (*PARAM_NAMES, *OPTIONAL_PARAMS) if k in contents}
    for k, p in params.items():
        if p.dtype.kind != "f":
            raise CheckpointError(f"{path}: parameter {k} has dtype {p.dtype}, not floating point; the file is damaged; "
                                  f"{hint}")
        if numbers and not np.all(np.isfinite(p)):
            raise CheckpointError(f"{path}: parameter {k} holds NaN or infinite values, which training never saves; "
                                  f"the file is damaged; {hint}")
    dtypes, want = sorted({str(p.dtype) for p in params.values()}), config.get("dtype")
    if len(dtypes) > 1 or dtypes[0] not in DTYPES or dtypes[0] != (want or dtypes[0]):  # the run computed in want
        why = f"its config says dtype {want}" if want else f"mlp_lm keeps them all in one of {' or '.join(DTYPES)}"
        raise CheckpointError(f"{path}: its parameters are {' and '.join(dtypes)}, but {why}; the file is damaged "
                              f"or not from mlp_lm; {hint}")
    V = len(vocab)
    for k, p in params.items():  # the biases are vectors, the rest matrices
        if p.ndim != (1 if k.startswith("b") else 2):
            raise CheckpointError(f"{path}: parameter {k} has {p.ndim} dimensions, not {1 if k[0] == 'b' else 2}; "
                                  f"the file is damaged or not from mlp_lm; {hint}")
    E, H = params["C"].shape[1], params["b1"].shape[0]
    for k, shape in param_shapes(V, T, E, H, direct=True).items():
        if k in params and params[k].shape != shape:
            raise CheckpointError(
                f"{path}: parameter {k} has shape {params[k].shape}, but the vocabulary ({V} symbols) "
                f"and block size ({T}) need {shape}; the file is damaged or not from mlp_lm; {hint}"
            )
    if E == 0 or H == 0:  # training makes both at least 1
        raise CheckpointError(f"{path}: its embedding size is {E} and its hidden size {H}; the file is damaged; {hint}")
    for key, size in (("vocab_size", V), ("n_embd", E), ("n_hidden", H)):
        if key in config and config[key] != size:  # the shapes agree with each other, not with it
            # ("27", a string, is not the number it would look like in the message without its type)
            kind = type(config[key])
            said = repr(config[key]) + ("" if kind in (int, float) else f" (a {kind.__name__})")
            raise CheckpointError(f"{path}: its config says {key} {said}, but its parameters have {size}; "
                                  f"the file is damaged; {hint}")
    problem = magnitude_problem(params) if numbers else None  # finite is not enough: 1e38 in float32 is too
    if problem:
        raise CheckpointError(f"{path}: {problem}; no trained model has parameters this large, so the file "
                              f"is damaged; {hint}")
    return params, vocab, config
