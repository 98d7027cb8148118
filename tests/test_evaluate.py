"""python -m mlp_lm.evaluate: the numbers, the mixtures, other files, and bad input."""
import json
import math
import re

import numpy as np
import pytest

from mlp_lm import checkpoint, evaltime, layers, mixture, model, runtime
from mlp_lm.counting import KneserNey
from mlp_lm.data import load_splits

from .conftest import NAMES, SMALL, run_cli


@pytest.fixture(scope="module")
def evaluated(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--mix-ngram", 4,
                   "--json", out / "ev.json")
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads((out / "ev.json").read_text())


def test_evaluate_reproduces_the_training_losses(tiny_run, evaluated):
    proc, result = evaluated
    trained = json.loads((tiny_run[0] / "metrics.json").read_text())
    for name in ("train", "dev", "test"):
        assert result["mlp"][f"{name}_loss"] == pytest.approx(trained[f"{name}_loss"], rel=1e-5)
        assert result["mlp"][f"{name}_bpc"] == pytest.approx(result["mlp"][f"{name}_loss"] / np.log(2))
    assert "perplexity" in proc.stdout and "bits/char" in proc.stdout


def test_json_keys_and_the_ngram_matches_counting(evaluated):
    _, result = evaluated
    assert {"mlp", "ngram", "mix", "lambda"} <= set(result)
    for part in ("mlp", "ngram", "mix", "mix_loglinear"):
        assert {"dev_loss", "test_loss"} <= set(result[part])
    splits = load_splits(NAMES, 3)
    kn = KneserNey(4).fit(*splits.train, 27)
    assert result["ngram"]["dev_loss"] == pytest.approx(kn.nll(*splits.dev), rel=1e-12)


def test_the_mixtures_are_no_worse_on_dev_than_either_part(evaluated):
    _, r = evaluated
    best_part = min(r["mlp"]["dev_loss"], r["ngram"]["dev_loss"])
    assert r["mix"]["dev_loss"] <= best_part and r["mix_loglinear"]["dev_loss"] <= best_part
    assert 0 <= r["lambda"] <= 1 and 0 <= r["lambda_loglinear"] <= 1


def test_an_ngram_that_sees_further_back_than_the_mlp_mixes_with_its_last_t_symbols(tiny_run):
    # a 6-gram beside a T=3 model: the examples carry 5 symbols of context, of which the MLP must get the
    # last 3 (a mutation audit's: given the first 3, the log-linear mixture came out worse than the MLP alone,
    # and every other test mixed an n-gram of n - 1 <= T, where the two are the same). At its ends the
    # log-linear mixture is each model alone.
    params, _, _ = checkpoint.load(tiny_run[0] / "model.npz")
    wide, narrow = load_splits(NAMES, 5), load_splits(NAMES, 3)
    assert np.array_equal(wide.dev[0][:, -3:], narrow.dev[0])  # the same examples, with two more symbols
    kn = KneserNey(6).fit(*wide.train, 27)
    dists = mixture._Distributions(params, kn, wide.dev[0], 3)
    Y = wide.dev[1]
    assert mixture.loglinear_nll_chunked(1.0, dists, Y) == pytest.approx(model.split_loss(params, *narrow.dev),
                                                                         rel=1e-6)
    assert mixture.loglinear_nll_chunked(0.0, dists, Y) == pytest.approx(kn.nll(*wide.dev), rel=1e-9)


def test_lambda_is_chosen_on_dev_not_test():
    # Two made-up models whose best weights on dev and on test differ: the chosen one is dev's.
    rng = np.random.default_rng(0)
    a_dev, b_dev = rng.uniform(0.05, 1, 500), rng.uniform(0.05, 1, 500)
    lam = mixture.choose_lambda(lambda l: mixture.linear_nll(l, a_dev, b_dev))
    grid = np.linspace(0, 1, 2001)
    on_dev = grid[np.argmin([mixture.linear_nll(l, a_dev, b_dev) for l in grid])]
    assert lam == pytest.approx(on_dev, abs=1e-3)


def test_loglinear_mixture_is_normalised_and_hits_its_ends():
    rng = np.random.default_rng(1)
    za, zb = rng.standard_normal((50, 7)), rng.standard_normal((50, 7))
    la = za - np.log(np.exp(za).sum(1, keepdims=True))
    lb = zb - np.log(np.exp(zb).sum(1, keepdims=True))
    Y = rng.integers(0, 7, 50)
    assert mixture.loglinear_nll(1.0, la, lb, Y) == pytest.approx(-la[np.arange(50), Y].mean())
    assert mixture.loglinear_nll(0.0, la, lb, Y) == pytest.approx(-lb[np.arange(50), Y].mean())
    # At lambda = 0.3 the mixture, renormalised by hand, gives the same NLL.
    p = np.exp(0.3 * la + 0.7 * lb)
    p /= p.sum(1, keepdims=True)
    assert mixture.loglinear_nll(0.3, la, lb, Y) == pytest.approx(-np.log(p[np.arange(50), Y]).mean())


def _two_models(seed, N=200, V=9, sharp=1.0):
    rng = np.random.default_rng(seed)
    za, zb = sharp * rng.standard_normal((N, V)), sharp * rng.standard_normal((N, V))
    la = za - np.log(np.exp(za).sum(1, keepdims=True))
    lb = zb - np.log(np.exp(zb).sum(1, keepdims=True))
    return la, lb, rng.integers(0, V, N)


@pytest.mark.parametrize("lam", [0.0, 0.37, 0.81, 1.0])
def test_loglinear_derivatives_against_finite_differences(lam):
    from scipy.differentiate import derivative
    la, lb, Y = _two_models(4, sharp=2.0)
    nll, g, h = mixture.loglinear_derivatives(lam, la, lb, Y)
    assert nll == pytest.approx(len(Y) * mixture.loglinear_nll(lam, la, lb, Y), rel=1e-12)
    # nll' from the NLL itself, nll'' from nll' (scipy's adaptive central differences, float64)
    f = np.vectorize(lambda l: len(Y) * mixture.loglinear_nll(l, la, lb, Y))
    fprime = np.vectorize(lambda l: mixture.loglinear_derivatives(l, la, lb, Y)[1])
    num_g, num_h = derivative(f, lam), derivative(fprime, lam)
    assert num_g.success and num_h.success
    assert g == pytest.approx(num_g.df, rel=1e-8)
    assert h == pytest.approx(num_h.df, rel=1e-8) and h > 0


def test_the_mixtures_refuse_what_numpy_would_broadcast_or_wrap_around():
    rng = np.random.default_rng(0)
    la, lb = (np.log(rng.dirichlet(np.ones(6), 50)) for _ in "ab")
    Y = rng.integers(0, 6, 50)
    pa, pb = rng.uniform(0.05, 0.9, 50), rng.uniform(0.05, 0.9, 50)
    for call in (lambda: mixture.loglinear_nll(0.3, la, lb, Y[:, None]),  # was 2.090 against 2.140
                 lambda: mixture.loglinear_derivatives(0.3, la, lb, Y[:, None]),
                 lambda: mixture.linear_nll(0.3, pa, pb[:, None])):  # was 0.793 against 0.784
        with pytest.raises(ValueError, match="must be two arrays"):
            call()
    with pytest.raises(ValueError, match="outside 0..5"):
        mixture.loglinear_nll(0.3, la, lb, np.where(Y == 0, -1, Y))  # -1 was read as the last symbol
    with pytest.raises(ValueError, match=r"in \[0, 1\], got 1.05"):
        mixture.linear_nll(1.05, pa, pb)  # a mixture that is no distribution
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        mixture.linear_nll(0.3, pa * 10, pb)  # gave a negative NLL
    params, X = model.init_params(6, 3, 4, 8), rng.integers(0, 6, (50, 3))
    with pytest.raises(ValueError, match=r"Y \(N,\)"):
        mixture.mlp_target_log_probs(params, X, Y[:, None])  # was (50, 50)
    assert mixture.loglinear_nll(1.5, la, lb, Y) > 0  # renormalised, any finite exponent is a distribution
    assert mixture.linear_nll(0.3, pa, pb) == pytest.approx(-np.mean(np.log(0.3 * pa + 0.7 * pb)))


@pytest.mark.parametrize("seed", range(4))
def test_newton_lambda_finds_the_minimum_in_a_few_passes(seed):
    la, lb, Y = _two_models(seed, sharp=1.0 + seed)
    lb = 0.5 * lb + 0.5 * la - np.log(np.exp(0.5 * lb + 0.5 * la).sum(1, keepdims=True))  # related models
    passes = []

    def derivatives(lam):
        passes.append(lam)
        return mixture.loglinear_derivatives(lam, la, lb, Y)

    lam = mixture.newton_lambda(derivatives)
    searched = mixture.choose_lambda(lambda l: mixture.loglinear_nll(l, la, lb, Y))
    grid = np.linspace(0, 1, 4001)
    on_grid = grid[np.argmin([mixture.loglinear_nll(l, la, lb, Y) for l in grid])]
    assert lam == pytest.approx(on_grid, abs=5e-4) and lam == pytest.approx(searched, abs=1e-4)
    assert mixture.loglinear_nll(lam, la, lb, Y) <= mixture.loglinear_nll(searched, la, lb, Y) + 1e-12
    assert len(passes) <= 10


def test_newton_lambda_takes_an_end_when_one_model_is_better_throughout():
    la, lb, Y = _two_models(5)
    truth = np.eye(la.shape[1])[Y] * 0.9 + 0.1 / la.shape[1]  # a model that is nearly always right
    good = np.log(truth)
    assert mixture.newton_lambda(lambda l: mixture.loglinear_derivatives(l, good, la, Y)) == 1.0
    assert mixture.newton_lambda(lambda l: mixture.loglinear_derivatives(l, la, good, Y)) == 0.0


def test_newton_lambda_stops_at_an_exact_zero_slope():
    # Two mirror-image models: the slope is exactly 0 at lambda = 1/2, where the secant lands.
    la = np.log(np.array([[0.9, 0.1], [0.9, 0.1]]))
    lb, Y = la[:, ::-1].copy(), np.array([0, 1])
    passes = []
    lam = mixture.newton_lambda(lambda l: passes.append(l) or mixture.loglinear_derivatives(l, la, lb, Y))
    assert lam == 0.5 and len(passes) == 3


def test_newton_lambda_refuses_derivatives_that_are_not_finite():
    la = np.array([[np.log(0.7), np.log(0.3), -np.inf], [np.log(0.2), np.log(0.8), -np.inf]])  # p = 0: NaN
    lb, Y = np.log(np.array([[0.5, 0.25, 0.25]] * 2)), np.array([0, 1])
    with np.errstate(invalid="ignore"), pytest.raises(ValueError, match="not finite"):
        mixture.newton_lambda(lambda l: mixture.loglinear_derivatives(l, la, lb, Y))


def test_mlp_log_probs_in_chunks_match_the_model():
    params = model.init_params(27, 3, 10, 20, seed=2, dtype=np.float64)
    X = np.random.default_rng(2).integers(0, 27, (100, 3))
    lp = mixture.mlp_log_probs(params, X, chunk_size=7)
    np.testing.assert_allclose(np.exp(lp), model.next_probs(params, X), rtol=1e-12)


def test_another_file_is_evaluated_whole(tiny_run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("anna\nbob\nzoe\n")
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--data", other,
                   "--json", tmp_path / "o.json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "o.json").read_text())
    params, vocab, _ = checkpoint.load(tiny_run[0] / "model.npz")
    from mlp_lm.data import build_dataset
    X, Y = build_dataset(["anna", "bob", "zoe"], vocab, 3)
    assert len(Y) == 5 + 4 + 4  # each item gives len + 1 examples
    # was "13 all examples"; and how many of these the model trained on, its training split rebuilt
    from mlp_lm.data import load_splits
    train_items = set(load_splits(NAMES, 3).items[0])
    seen = sum(item in train_items for item in ("anna", "bob", "zoe"))
    assert f"data: {other}: 13 examples from every item; {seen} of its 3 items {'is' if seen == 1 else 'are'} in the " \
           f"model's training split\n" in proc.stdout
    assert result["mlp"]["all_loss"] == pytest.approx(model.split_loss(params, X, Y), rel=1e-5)
    assert "dev_loss" not in result["mlp"]


@pytest.mark.parametrize("content,words", [("anna\nbj\u00f6rn\n", ["never saw", "\u00f6"]),
                                           ("anna\nan.na\n", ["boundary"])])
def test_another_file_with_unknown_symbols_is_one_line(tiny_run, tmp_path, content, words):
    bad = tmp_path / "bad.txt"
    bad.write_text(content, encoding="utf-8")
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--data", bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    for w in words:
        assert w in proc.stderr


@pytest.mark.parametrize("flags", [["--mix-ngram", "0"], ["--mix-ngram", "1000000"], ["--mix-ngram", "x"]])
def test_bad_flags(tiny_run, flags):
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", *flags)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_changed_training_data_is_refused(tiny_run, tmp_path):
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    data = tmp_path / "names.txt"
    data.write_text(NAMES.read_text() + "extra\n")
    moved = tmp_path / "model.npz"
    checkpoint.save(moved, params, vocab, {k: v for k, v in config.items() if k != "format"} | {"data": str(data)})
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", moved)
    assert proc.returncode == 2 and "changed since training" in proc.stderr
    # From a user's review: it offered only another file as a whole, where a copy of the training file rebuilds the split
    assert "pass a copy of the very file it was trained on with --data to rebuild the split" in proc.stderr
    for contents in (b"ab\n", b"anna\n\xff\xfebob\n", b""):  # too few items, not UTF-8, empty: it changed
        data.write_bytes(contents)
        proc = run_cli("mlp_lm.evaluate", "--checkpoint", moved)
        assert proc.returncode == 2 and "changed since training" in proc.stderr, proc.stderr
        assert "too few" not in proc.stderr and "UTF-8" not in proc.stderr and "no items" not in proc.stderr
    other = tmp_path / "other.txt"
    other.write_text("anna\nbob\n")
    data.unlink()  # another file to evaluate on, but --mix-ngram needs the training split: --data is no way out
    for extra in (["--data", other], []):  # without --data, pointing at --data would only lead here
        proc = run_cli("mlp_lm.evaluate", "--checkpoint", moved, *extra, "--mix-ngram", 3)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1 and "leave out --mix-ngram" in err
        assert "not there any more" in err and "to evaluate on all of it" not in err
        # From a review: with --data naming another file already, "pass a copy with --data" could not be followed
        assert ("pass a copy with --data" in err) == (not extra)
        assert (f"the model's training split, of {data}: put that file back there" in err) == bool(extra)


def test_another_files_evaluation_says_whose_dev_split_chose_the_weights(tiny_run, tmp_path):
    # From a review: the --json of another file's evaluation with --mix-ngram gave dev losses under that file's
    # name, where they are the training data's dev split's (on which the weights were chosen)
    other = tmp_path / "other.txt"
    other.write_text("anna\nbob\nemma\n")
    out = tmp_path / "ev.json"
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--data", other, "--mix-ngram", 3,
                   "--json", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    config = checkpoint.load(tiny_run[0] / "model.npz")[2]
    assert result["data"] == str(other) and result["dev_of"] == config["data"] and "dev_loss" in result["mix"]
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--data", other, "--json", out)
    assert proc.returncode == 0 and "dev_of" not in json.loads(out.read_text())  # no dev numbers, nothing to say
    other.write_text("zzzzzzzzq\n")  # one item, not the model's: "0 of its 1 item is", not "items are"
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--data", other)
    assert proc.returncode == 0 and "0 of its 1 item is in the model's training split" in proc.stdout
    other.write_text("anna\nb.b\n")
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--data", other)
    assert proc.returncode == 2 and proc.stderr.strip().endswith("every item; remove it from the file")


def test_mixtures_in_bounded_memory_equal_the_kept_distributions(monkeypatch):
    # A budget too small to keep whole distributions: the chunked path must give the same numbers.
    rng = np.random.default_rng(3)
    V, T = 40, 3
    params = model.init_params(V, T, 4, 16, seed=3, dtype=np.float64)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
    sets = {name: (rng.integers(1, V, (300, T)), rng.integers(0, V, 300)) for name in ("dev", "test")}
    train = (rng.integers(1, V, (2000, T)), rng.integers(0, V, 2000))
    kept = mixture.evaluate(params, sets, train, 3)
    monkeypatch.setattr(model, "EVAL_BYTES", 2 * 9 * 8 * 40 * 7)  # 7 rows a chunk,
    monkeypatch.setattr(runtime, "available_memory", lambda: None)  # and nothing kept
    chunked = mixture.evaluate(params, sets, train, 3)
    assert chunked["lambda_loglinear"] == pytest.approx(kept["lambda_loglinear"], abs=1e-6)
    for part in ("mlp", "ngram", "mix", "mix_loglinear"):
        for key in ("dev_loss", "test_loss"):
            assert chunked[part][key] == pytest.approx(kept[part][key], rel=1e-9), (part, key)


def test_a_copy_of_training_data_that_has_moved_gives_the_training_split(tiny_run, tmp_path):
    """The checkpoint records a path that no longer exists; --data names a byte-identical copy."""
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    moved = tmp_path / "model.npz"
    checkpoint.save(moved, params, vocab, {k: v for k, v in config.items() if k != "format"}
                    | {"data": str(tmp_path / "gone" / "names.txt")})
    copy = tmp_path / "copy.txt"
    copy.write_bytes(NAMES.read_bytes())
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", moved, "--data", copy, "--json", tmp_path / "ev.json")
    assert proc.returncode == 0, proc.stderr
    trained = json.loads((tiny_run[0] / "metrics.json").read_text())
    result = json.loads((tmp_path / "ev.json").read_text())
    assert result["data"] == str(copy)
    for name in ("train", "dev", "test"):  # the split, not the whole file as one set
        assert result["mlp"][f"{name}_loss"] == pytest.approx(trained[f"{name}_loss"], rel=1e-5)
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", moved)  # without --data: one line saying what to do
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "pass a copy of the very file it was trained on with --data to rebuild the split" in proc.stderr


def test_a_vocabulary_unlike_its_unchanged_training_data_is_the_checkpoints_fault(tiny_run, tmp_path):
    from mlp_lm.data import Vocab
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    odd = tmp_path / "model.npz"  # 'z' became 'é': still sorted, still 27 symbols, but not what names.txt gives
    checkpoint.save(odd, params, Vocab(vocab.itos.replace("z", "é")), {k: v for k, v in config.items() if k != "format"})
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", odd)
    assert proc.returncode == 2 and "checkpoint is damaged" in proc.stderr and "has changed" not in proc.stderr


def test_logsumexp_matches_scipy_and_never_overflows():
    from scipy.special import logsumexp as scipy_logsumexp
    rng = np.random.default_rng(5)
    s = rng.standard_normal((64, 40)) * 30
    s[0] += 1000.0  # exp(1000) overflows; shifted by the row's max it does not
    s[1, :5] = -np.inf  # some probabilities exactly 0
    s[2] = -np.inf  # all of them: log 0, not NaN
    ours, theirs = mixture.logsumexp(s), scipy_logsumexp(s, axis=1)
    assert np.isneginf(ours[2]) and np.all(np.isfinite(np.delete(ours, 2)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=0)


def test_an_evaluation_says_how_long_it_takes_when_it_takes_a_while(monkeypatch):
    # From a user's review at scale: a V of 27 on 12 million examples took 14 to 48 s, silent, where the
    # notice counted only the probabilities (rows times V); it is now timed on a chunk and scaled up.
    assert evaltime.slow_evaluation(22_655, 0.3) is None  # names: a fraction of a second
    assert evaltime.slow_evaluation(12_200_000, 14.6) == "evaluating 12,200,000 examples: about 15 s"
    params = model.init_params(27, 3, 10, 20, seed=0)
    timed = []
    real = layers.softmax_cross_entropy_forward

    def traced(z, y, *a):
        timed.append(z.shape)
        return real(z, y, *a)
    monkeypatch.setattr(layers, "softmax_cross_entropy_forward", traced)
    seconds = evaltime.evaluation_seconds(params, 10**9)  # a small chunk, then one as large as the evaluation's,
    assert timed == [(1024, 27)] * 2 + [(model.rows_per_chunk(params), 27)] * 2  # each timed twice
    assert 0 < seconds < math.inf
    timed.clear()
    assert evaltime.evaluation_seconds(params, 3) > 0 and timed == [(3, 27)] * 2  # never more rows than asked about
    timed.clear()
    assert evaltime.evaluation_seconds(params, 0) == 0.0 and timed == []
    assert evaltime.evaluation_seconds(params, 10**9, refine=False) > 0 and timed == [(1024, 27)] * 2  # a stop's
    timed.clear()
    # From a hostile pass: over 150,000 symbols the 1,024 rows took 3.7 GB where the evaluation's chunks keep to
    # model.EVAL_BYTES, and under a memory limit a finished run was lost to the estimate's MemoryError
    wide = model.init_params(20_000, 3, 10, 20, seed=0)
    assert evaltime.evaluation_seconds(wide, 10**9) > 0
    assert timed == [(model.rows_per_chunk(wide), 20_000)] * 2 and model.rows_per_chunk(wide) < 1024
    monkeypatch.setattr(layers, "softmax_cross_entropy_forward", lambda *a: (_ for _ in ()).throw(MemoryError))
    assert evaltime.evaluation_seconds(params, 10**9) == 0.0  # no estimate, and the run goes on
    monkeypatch.setattr(layers, "softmax_cross_entropy_forward", traced)
    timed.clear()
    monkeypatch.setattr(evaltime, "SLOW_SECONDS", math.inf)  # far from slow: the small chunk's guess is enough
    assert evaltime.evaluation_seconds(params, 10**9) > 0 and timed == [(1024, 27)] * 2


def test_train_and_evaluate_say_so_before_a_slow_evaluation(monkeypatch, capsys, tmp_path):
    from mlp_lm import evaluate, train
    monkeypatch.setattr(evaltime, "SLOW_SECONDS", 0.0)  # every evaluation counts as slow
    assert train.main(["--data", str(NAMES.parent.parent / "tests" / "data" / "names-small.txt"), "--steps", "5",
                       "--eval-every", "0", "--out", str(tmp_path / "run")]) == 0
    assert re.search(r"evaluating [\d,]+ examples: about \d+ s\n", capsys.readouterr().err)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluated"] is True
    assert evaluate.main(["--checkpoint", str(tmp_path / "run" / "model.npz"), "--mix-ngram", "2"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"evaluating [\d,]+ examples: about \d+ s, then the mixtures, which can take 5 to 8 times as "
                     r"long\n", err)
    # and each part of the mixtures as it begins (from a user's review: 347 s of silence on 6,000 symbols)
    assert ("  the MLP on train, dev, test ...\n  the Kneser-Ney 2-gram, fitted on 18,216 training examples, and the "
            "linear mixture ...\n  the log-linear mixture's weight, on dev ...\n  the log-linear mixture on train ...\n"
            "  the log-linear mixture on dev ...\n  the log-linear mixture on test ...\n") in err
    monkeypatch.setattr(evaltime, "SLOW_SECONDS", math.inf)
    assert evaluate.main(["--checkpoint", str(tmp_path / "run" / "model.npz"), "--mix-ngram", "2"]) == 0
    assert capsys.readouterr().err == ""  # a quick one says nothing
    with pytest.raises(TypeError, match="say must be a function that takes a line, or None, got str"):
        mixture.evaluate(model.init_params(27, 3, 2, 4), {"dev": (np.zeros((2, 3), int), np.zeros(2, int))}, say="x")


def test_another_file_says_how_many_of_its_items_the_model_trained_on(tmp_path):
    # From a new user's review: the training file re-saved by an editor (a byte-order mark, other line
    # ends) is another file byte for byte, and evaluating on it gave one number, 80% of it training items.
    from mlp_lm.wordfile import read_items
    data = tmp_path / "words.txt"
    items = read_items(NAMES)[:300]
    data.write_text("\n".join(items) + "\n")
    out = tmp_path / "run"
    assert run_cli("mlp_lm.train", "--data", data, "--steps", 50, "--eval-every", 0, "--out", out).returncode == 0
    resaved = tmp_path / "resaved.txt"
    resaved.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(items).encode())
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", out / "model.npz", "--data", resaved)
    assert proc.returncode == 0, proc.stderr
    assert "; 240 of its 300 items are in the model's training split\n" in proc.stdout  # 80% of them
    data.unlink()
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", out / "model.npz", "--data", resaved)
    assert proc.returncode == 0 and "which of its items the model trained on cannot be told" in proc.stdout


def test_symbols_unknown_only_by_how_the_text_is_written_are_named_as_such(tmp_path):
    # From a new user's review: a file with its accents decomposed (NFD), against a model trained on
    # composed ones (NFC), was told only that "\u0301" is unknown, though both show "é"; case likewise.
    import unicodedata
    from mlp_lm.data import Vocab
    words = ["josé", "renée", "zoë", "anna", "bob", "chloé"]
    vocab = Vocab("." + "".join(sorted(set("".join(words)))))
    ckpt = tmp_path / "model.npz"
    checkpoint.save(ckpt, model.init_params(len(vocab), 3, 4, 8), vocab, {"block_size": 3})
    for name, text, words_said in (
            ("nfd.txt", unicodedata.normalize("NFD", "josé\nrenée\n"), 'normalise it to Unicode NFC'),
            ("upper.txt", "ANNA\nBOB\n", "the model's symbols are lower-case"),
            ("digit.txt", "ann4\n", "remove them or train on this file")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        proc = run_cli("mlp_lm.evaluate", "--checkpoint", ckpt, "--data", tmp_path / name)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and words_said in proc.stderr, proc.stderr
    # a model of both cases: lower-casing ANNA would give items it never saw either, so no such advice
    vocab = Vocab(".ABabno")
    checkpoint.save(ckpt, model.init_params(len(vocab), 3, 4, 8), vocab, {"block_size": 3})
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", ckpt, "--data", tmp_path / "upper.txt")
    assert proc.returncode == 2 and "remove them or train on this file" in proc.stderr


def test_a_copy_of_a_training_file_this_version_refuses_gets_the_same_advice(tiny_run, tmp_path):
    # From a fourth hostile review: plain evaluate said what to do about a training file an earlier version read and
    # this one refuses (a NUL byte), but --data with a copy of it, which the advice itself suggests, said only that
    # the copy holds NUL bytes.
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    nul = tmp_path / "nul.txt"
    nul.write_bytes(NAMES.read_bytes().replace(b"\nemma\n", b"\nem\x00ma\n", 1))
    from mlp_lm import wordfile
    moved = tmp_path / "model.npz"
    checkpoint.save(moved, params, vocab, {k: v for k, v in config.items() if k != "format"}
                    | {"data": str(nul), "data_sha256": wordfile.digest(nul)})
    copy = tmp_path / "copy.txt"
    copy.write_bytes(nul.read_bytes())
    for extra in ([], ["--data", copy]):
        proc = run_cli("mlp_lm.evaluate", "--checkpoint", moved, *extra)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1, err
        assert "NUL bytes (the first at line" in err and "it is the very file the model was trained on" in err


def test_a_mixture_of_no_targets_and_a_trainer_of_lists_are_refused_by_name():
    # the mean NLL of nothing was NaN with numpy's "Mean of empty slice"; a Trainer of a dict of lists said
    # "'list' object has no attribute 'shape'"
    from mlp_lm import config, trainer
    with pytest.raises(ValueError, match=r"no targets to mix the probabilities of \(N = 0\)"):
        mixture.linear_nll(0.5, np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="the mixture's weight must be in \\[0, 1\\], got True"):  # taken for 1
        mixture.linear_nll(True, np.full(3, 0.5), np.full(3, 0.5))
    with pytest.raises(ValueError, match="the mixture's weight must be in \\[0, 1\\], got '0.5'"):
        mixture.linear_nll("0.5", np.full(3, 0.5), np.full(3, 0.5))
    P = model.init_params(7, 3, 10, 200)
    with pytest.raises(ValueError, match="the parameters must all be float32 or all float64 numpy arrays, got C list"):
        trainer.Trainer(config.Config(), {k: p.tolist() for k, p in P.items()}, np.zeros((4, 3), int), np.zeros(4, int))


def test_out_of_memory_names_what_evaluate_and_ngram_can_make_smaller(tiny_run, monkeypatch, capsys):
    # From a user's review at scale: a 6-gram of 16 million examples under a memory limit ended with "not
    # enough memory for these sizes; use smaller ones (--help lists them)": ngram's one size is --n, and
    # evaluate has none; what grows is the list.
    from mlp_lm import cli, evaluate, ngram

    def no_memory(*a, **k):
        raise MemoryError
    monkeypatch.setattr(ngram.KneserNey, "fit", no_memory)
    with pytest.raises(SystemExit) as exit_:
        cli.run(lambda: ngram.main(["--n", "4", "--smoothing", "kn", "--samples", "0"]), "python -m mlp_lm.ngram")
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("python -m mlp_lm.ngram: error: not enough memory to count the 4-grams of "
                                       "182,625 training examples; use a smaller --n or a shorter list\n")
    monkeypatch.setattr(mixture, "evaluate", no_memory)
    for extra, said in (([], "evaluate 228,146 examples; evaluate on a shorter list (--data)"),
                        (["--mix-ngram", "3"], "evaluate and mix a 3-gram over 228,146 examples; use a smaller "
                                               "--mix-ngram, or evaluate on a shorter list (--data)")):
        with pytest.raises(SystemExit) as exit_:
            cli.run(lambda: evaluate.main(["--checkpoint", str(tiny_run[0] / "model.npz"), *extra]),
                    "python -m mlp_lm.evaluate")
        assert exit_.value.code == 2 and capsys.readouterr().err.endswith(f"not enough memory to {said}\n")
    # another file's examples that do not fit (a hostile pass: 3.2 million items under a memory cap) name the file
    # (the generic line spoke of sizes to make smaller, which evaluate has none of)
    monkeypatch.setattr(evaluate, "build_dataset", no_memory)
    with pytest.raises(SystemExit) as exit_:
        cli.run(lambda: evaluate.main(["--checkpoint", str(tiny_run[0] / "model.npz"), "--data", SMALL[1]]),
                "python -m mlp_lm.evaluate")
    assert exit_.value.code == 2 and capsys.readouterr().err.endswith(
        f"error: the examples of {SMALL[1]} (3,204 items, a context of 3) do not fit in the memory this process "
        f"may use; evaluate on a shorter list, or give it more memory (free some, or raise ulimit -v)\n")


def test_the_table_stays_aligned_for_losses_of_a_thousand_and_more(tiny_run, tmp_path, capsys):
    # From a hostile pass: W2 and b2 times 3,000 gave "mlp  3145.3342  3146.0659", out from under the headers
    from mlp_lm import evaluate
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    params = {**params, "W2": params["W2"] * 3000, "b2": params["b2"] * 3000}
    checkpoint.save(tmp_path / "model.npz", params, vocab, config)
    assert evaluate.main(["--checkpoint", str(tmp_path / "model.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.endswith("(mean NLL, nats)"))
    ends = [m.end() for m in re.finditer(r"\S+", lines[header].split("   (mean")[0])]
    assert [m.end() for m in re.finditer(r"\S+", lines[header + 1])][1:] == ends, lines[header:header + 2]
    assert float(lines[header + 1].split()[1]) > 1000  # the case asked for


def test_evaluate_repeats_what_train_warned_of_about_the_list_and_a_weight_chosen_on_few_examples(tmp_path, capsys):
    # From a hostile pass: on a list of one name repeated, train warned that dev and test were in train; evaluate
    # then showed train = dev = test with no caveat, and a six-item list's mixture weight, chosen on 5 examples
    from mlp_lm import evaluate, train
    repeated, six = tmp_path / "emma.txt", tmp_path / "six.txt"
    repeated.write_text("emma\n" * 300)
    six.write_text("anna\nbob\ncarl\ndave\neve\nfred\n")
    for data in (repeated, six):
        assert train.main(["--data", str(data), "--steps", "30", "--eval-every", "0", "--n-hidden", "8",
                           "--out", str(tmp_path / data.stem)]) == 0
    capsys.readouterr()
    assert evaluate.main(["--checkpoint", str(tmp_path / "emma" / "model.npz")]) == 0
    err = capsys.readouterr().err
    assert "warning: 30 of 30 dev items and 30 of 30 test items are also in train" in err and "mixtures" not in err
    assert evaluate.main(["--checkpoint", str(tmp_path / "six" / "model.npz"), "--mix-ngram", "2"]) == 0
    err = capsys.readouterr().err
    assert ("warning: the mixtures' weights are chosen on only 5 dev examples, too few to choose them well, so the "
            "mixtures' losses say little (and on dev flatter them)\n") in err and "in no training item" in err
    # another file: its every item is evaluated, and the training list's warnings are not about it
    (tmp_path / "other.txt").write_text("mae\nema\n")
    assert evaluate.main(["--checkpoint", str(tmp_path / "emma" / "model.npz"), "--data", str(tmp_path / "other.txt")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_another_file_weighed_down_by_one_long_item_is_warned_of(tiny_run, tmp_path):
    # From a hostile tester: 500 names and a line of 200,000 a's, 98% of the examples, evaluated with no word
    names = NAMES.read_text().split()[:500]
    path = tmp_path / "dev"  # a file named like a split is still a file (a reviewer: "of the dev split's examples")
    path.write_text("\n".join(names + ["a" * 200_000]) + "\n")
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--data", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (f"warning: one item, of 200,000 symbols (the list's median is 6), gives 98.3% of {path}'s "
                           f"examples; if it is no item of the list (a paragraph or a file pasted in), take it out\n")
    path.write_text("\n".join(names) + "\n")  # the names alone: nothing to say
    proc = run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--data", path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
