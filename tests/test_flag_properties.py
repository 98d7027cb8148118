"""Property tests of the commands' flag checks: any text given to a flag is either a value in its
documented range or one line on stderr and exit code 2, never a traceback and never a value out of range.

The parsers are called in-process (no training runs): each command's parse step is what is tested.
"""
import contextlib
import io
import math

import pytest
from hypothesis import example, given, settings, strategies as st

from mlp_lm import config, evaluate, sample, train_flags
from mlp_lm.cli import UsageError
from mlp_lm.flags import MAX_THREADS

# Text a user might type for a number: numbers of every kind, written every way, and junk.
NUMBERS = st.one_of(
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-1e3, 1e3).map(lambda v: f"{v:e}"),
    st.sampled_from(["", " ", "1e12", "1e-400", "1e400", "-0", "0x10", "1_000", "١٢", "nan", "-inf", "1/2", "2.",
                     ".5", "1e", "e3", "0.9999999999999999999", "3 ", " 3", "+7", "true", "\x00"]),
    st.text(max_size=8),
)


def is_whole(v):
    return isinstance(v, int) and not isinstance(v, bool)


# flag -> (the Config field it sets, the values it may take)
TRAIN = {
    "--block-size": ("block_size", lambda v: is_whole(v) and v >= 1),
    "--n-embd": ("n_embd", lambda v: is_whole(v) and v >= 1),
    "--n-hidden": ("n_hidden", lambda v: is_whole(v) and v >= 1),
    "--steps": ("steps", lambda v: is_whole(v) and 1 <= v <= config.MAX_STEPS),
    "--batch-size": ("batch_size", lambda v: is_whole(v) and v >= 1),
    "--lr": ("lr", lambda v: math.isfinite(v) and v > 0),
    "--decay-rate": ("decay_rate", lambda v: math.isfinite(v) and v >= 0),
    "--warmup": ("warmup", lambda v: is_whole(v) and 0 <= v < 200000),  # below the default --steps
    "--min-lr": ("min_lr", lambda v: math.isfinite(v) and 0 <= v <= 0.1),  # at most the default --lr
    "--weight-decay": ("weight_decay", lambda v: math.isfinite(v) and v >= 0),
    "--beta1": ("beta1", lambda v: 0 <= v < 1),
    "--beta2": ("beta2", lambda v: 0 <= v < 1),
    "--eps": ("eps", lambda v: math.isfinite(v) and v > 0),
    "--seed": ("seed", lambda v: is_whole(v) and v >= 0),
    "--dropout": ("dropout", lambda v: 0 <= v < 1),
    "--emb-dropout": ("emb_dropout", lambda v: 0 <= v < 1),
    "--label-smoothing": ("label_smoothing", lambda v: 0 <= v < 1),
    "--ema": ("ema", lambda v: 0 <= v < 1),
    "--eval-every": ("eval_every", lambda v: is_whole(v) and v >= 0),
}


def parse(parse_args, argv):
    """(result, None) or (None, the one stderr line) for a refusal; anything else propagates and fails."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parse_args(argv), None
    except SystemExit as e:
        assert e.code == 2, (argv, e.code)
        return None, err.getvalue()
    except UsageError as e:
        return None, f"error: {e}\n"


def assert_one_line(message, flag):
    assert message.endswith("\n") and message.count("\n") == 1, message
    assert flag in message or "expected" in message, message  # names the flag or what was expected


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(TRAIN)), NUMBERS)
@example("--batch-size", "--l")  # found in CI: argparse read it as an ambiguous abbreviation (--lr, --lr-sweep, ...)
def test_train_flags_give_a_value_in_range_or_one_line(flag, text):
    field = TRAIN[flag][0]
    needs = list(train_flags.ONLY_WITH.get(field, ()))  # e.g. --warmup is read only by --schedule cosine
    opts, message = parse(train_flags.parse_args, (["--" + needs[0], needs[1]] if needs else []) + [flag, text])
    field, allowed = TRAIN[flag]
    if opts is None:
        assert_one_line(message, flag)
    else:
        assert allowed(getattr(opts.cfg, field)), (flag, text, getattr(opts.cfg, field))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(TRAIN)), NUMBERS), min_size=2, max_size=5))
def test_train_flags_together_keep_the_schedule_consistent(pairs):
    argv = [part for pair in pairs for part in pair]
    opts, message = parse(train_flags.parse_args, argv)
    if opts is None:
        assert message.count("\n") == 1, message
        return
    cfg = opts.cfg
    assert cfg.min_lr <= cfg.lr and (cfg.schedule != "cosine" or cfg.warmup < cfg.steps)
    for field, (setting, needed) in train_flags.ONLY_WITH.items():  # no flag is silently ignored
        assert getattr(cfg, setting) == needed or getattr(cfg, field) == getattr(config.Config, field), field
    for flag, (field, allowed) in TRAIN.items():
        if field not in ("warmup", "min_lr"):  # these two are bounded by other flags, checked above
            assert allowed(getattr(cfg, field)), (argv, field, getattr(cfg, field))


SAMPLE = {
    "-n": ("num_samples", lambda v: is_whole(v) and v >= 1),
    "--seed": ("seed", lambda v: is_whole(v) and v >= 0),
    "--temperature": ("temperature", lambda v: math.isfinite(v) and v >= 0),
    "--top-k": ("top_k", lambda v: is_whole(v) and v >= 1),
    "--max-length": ("max_length", lambda v: is_whole(v) and 1 <= v <= sample.MAX_LENGTH),
    "--threads": ("threads", lambda v: is_whole(v) and 1 <= v <= MAX_THREADS),
}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SAMPLE)), NUMBERS)
def test_sample_flags_give_a_value_in_range_or_one_line(flag, text):
    args, message = parse(sample.parse_args, ["--checkpoint", "x.npz", flag, text])
    field, allowed = SAMPLE[flag]
    if args is None:
        assert_one_line(message, flag)
    else:
        assert allowed(getattr(args, field)), (flag, text, getattr(args, field))


@settings(max_examples=100, deadline=None)
@given(NUMBERS)
def test_evaluate_mix_ngram_is_an_order_in_range_or_one_line(text):
    args, message = parse(evaluate.parse_args, ["--checkpoint", "x.npz", "--mix-ngram", text])
    if args is None:
        assert_one_line(message, "--mix-ngram")
    else:
        assert is_whole(args.mix_ngram) and 1 <= args.mix_ngram <= evaluate.MAX_ORDER


@pytest.mark.parametrize("argv", [["--warmup", "100"], ["--min-lr", "0.01"], ["--decay-rate", "0.1"],
                                  ["--beta1", "0.8"], ["--beta2", "0.99"], ["--eps", "1e-6"],
                                  ["--schedule", "cosine", "--decay-rate", "1"], ["--preset", "best", "--warmup", "0",
                                                                                 "--schedule", "step", "--warmup", "5"]])
def test_a_flag_the_run_would_ignore_is_refused(argv):
    opts, message = parse(train_flags.parse_args, argv)
    assert opts is None and "applies only to" in message and message.count("\n") == 1, message


def test_flags_that_apply_are_accepted():
    opts, _ = parse(train_flags.parse_args, ["--preset", "best", "--warmup", "100", "--beta2", "0.99"])
    assert (opts.cfg.warmup, opts.cfg.beta2, opts.cfg.schedule) == (100, 0.99, "cosine")
    opts, _ = parse(train_flags.parse_args, ["--schedule", "step", "--warmup", "0"])  # the default: nothing is lost
    assert opts.cfg.warmup == 0


@pytest.mark.parametrize("text", ["1e3", "3.0", "nan", "-1", "0", "inf", "", "2**3"])
def test_a_whole_number_flag_refuses_what_is_not_one(text):
    """The property above, pinned for the texts users most often type (so a regression names its case)."""
    assert parse(train_flags.parse_args, ["--n-hidden", text])[0] is None
