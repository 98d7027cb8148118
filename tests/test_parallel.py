"""A batch split between threads (parallel.BatchSplit) computes what one piece computes."""
import numpy as np
import pytest

from mlp_lm import layers, model, parallel, runtime
from mlp_lm.cli import UsageError
from mlp_lm.data import load_splits
from mlp_lm.config import Config
from mlp_lm.trainer import Trainer

from .conftest import NAMES


def problem(B=101, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = model.init_params(27, 3, 10, 50, seed=seed, dtype=dtype)
    for p in params.values():
        p += 0.3 * rng.standard_normal(p.shape).astype(dtype)  # not the init's zero biases
    X = rng.integers(0, 27, size=(400, 3))
    Y = rng.integers(0, 27, size=400)
    ix = rng.integers(0, 400, size=B)
    masks = {"embcat": layers.dropout_mask((B, 30), 0.2, rng, dtype),
             "h": layers.dropout_mask((B, 50), 0.1, rng, dtype)}
    return params, X, Y, ix, masks


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_a_split_batch_gives_the_loss_and_gradients_of_the_whole(parts):
    params, X, Y, ix, masks = problem()  # 101 rows: parts of unequal length
    loss, grads = model.loss_and_grads(params, X[ix], Y[ix], masks=masks, smoothing=0.1)
    split = parallel.BatchSplit(parts)
    try:
        split_loss, split_grads = split.loss_and_grads(params, X, Y, ix, masks=masks, smoothing=0.1)
    finally:
        split.close()
    assert split_loss == pytest.approx(loss, rel=1e-13)
    assert split_grads.keys() == grads.keys()
    for k in grads:
        assert split_grads[k].dtype == grads[k].dtype
        np.testing.assert_allclose(split_grads[k], grads[k], rtol=1e-11, atol=1e-14, err_msg=k)


def test_more_parts_than_rows_still_works():
    params, X, Y, ix, _ = problem(B=2)
    split = parallel.BatchSplit(4)
    loss, _ = split.loss_and_grads(params, X, Y, ix)
    split.close()
    assert loss == pytest.approx(model.loss_and_grads(params, X[ix], Y[ix])[0], rel=1e-13)


def test_an_overflow_in_a_worker_thread_raises_as_it_would_in_one_piece():
    # np.errstate is per thread context: the workers must run under the caller's. Only the
    # second part's rows (a worker's) hold the symbol whose embedding makes the logits overflow.
    rng = np.random.default_rng(0)
    params = model.init_params(27, 3, 10, 50, direct=True, seed=0, dtype=np.float32)
    params["C"][26] = 3e38
    params["Wd"][:] = 10.0  # the direct connections carry it to the logits: inf, then inf - inf
    X = rng.integers(0, 26, size=(400, 3))
    X[200:, 0] = 26
    Y = rng.integers(0, 27, size=400)
    ix = np.concatenate([rng.integers(0, 200, 50), rng.integers(200, 400, 50)])
    split = parallel.BatchSplit(2)
    try:
        with np.errstate(over="raise", invalid="raise"):
            model.loss_and_grads(params, X[ix[:50]], Y[ix[:50]])  # the first part alone is fine
            with pytest.raises(FloatingPointError):
                model.loss_and_grads(params, X[ix], Y[ix])
            with pytest.raises(FloatingPointError):
                split.loss_and_grads(params, X, Y, ix)
    finally:
        split.close()


def test_batches_are_split_only_when_every_part_is_long_enough():
    assert runtime.split_parts(32, 2) == 1  # the lecture's step: BLAS threads (one, in practice)
    assert runtime.split_parts(256, 2) == 1  # parts of 128 rows lose to two BLAS threads
    assert runtime.split_parts(512, 2) == 2
    assert runtime.split_parts(4096, 2) == 2
    assert runtime.split_parts(4096, 1) == 1
    assert "split in 2" in runtime.describe_threads(1024, 2) and runtime.describe_threads(32, 1) == "1 BLAS thread"


def test_training_on_two_threads_follows_training_on_one():
    # Same seed, same minibatches and masks: only the order of float additions differs.
    splits = load_splits(NAMES, 3)
    cfg = Config(batch_size=512, steps=20, dtype="float64", emb_dropout=0.1, dropout=0.1)
    runs = []
    for threads in (1, 2):
        params = model.init_params(27, 3, 10, 200, seed=1, dtype=np.float64)
        with runtime.blas_threads(2):  # the Trainer sets the BLAS's threads; this restores them after
            trainer = Trainer(cfg, params, *splits.train, threads)
            assert trainer.split.parts == threads
            losses = [trainer.step(s) for s in range(cfg.steps)]
            trainer.split.close()
        runs.append((losses, params))
    (losses1, params1), (losses2, params2) = runs
    np.testing.assert_allclose(losses2, losses1, rtol=1e-10)
    for k in params1:
        np.testing.assert_allclose(params2[k], params1[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert losses1[-1] < losses1[0]  # it trained


@pytest.mark.parametrize("threads,batch_size", [(1, 32), (2, 32), (2, 512)])
def test_training_from_python_gives_back_the_blas_threads_it_found(threads, batch_size):
    # From a scripting user's review: loop.train (or a Trainer) set the BLAS to its threads and left it
    # so, and a notebook that had trained ran every later product on one thread.
    from threadpoolctl import threadpool_info
    from mlp_lm import loop

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    splits = load_splits(NAMES, 3)
    with runtime.blas_threads(3):  # a count no Trainer sets
        found = blas()
        params = model.init_params(27, 3, 10, 20, seed=1)
        loop.train(Config(batch_size=batch_size, steps=3, eval_every=0, n_hidden=20), splits, params, threads=threads)
        assert blas() == found and 3 in found
        trainer = Trainer(Config(batch_size=batch_size, n_hidden=20), params, *splits.train, threads)
        assert blas() != found  # it sets its own while it trains ...
        trainer.close()
        assert blas() == found  # ... and gives them back when it is done
        if trainer.split.parts > 1:  # a step after that was "'NoneType' object has no attribute 'submit'"
            with pytest.raises(ValueError, match="this split of the batch is closed"):
                trainer.step(0)
        # From a hostile pass: a resume refused (a damaged state) left the BLAS at the Trainer's count
        with pytest.raises(UsageError, match="the training state to resume from is damaged"):
            loop.train(Config(batch_size=batch_size, steps=3, eval_every=0, n_hidden=20), splits, params,
                       resumed=({"bogus": np.zeros(1)}, np.array([3.0]), {}), threads=threads)
        assert blas() == found


def test_a_busy_machine_keeps_the_split_but_not_the_blas_threads(monkeypatch):
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    monkeypatch.setattr(runtime, "idle_cores", lambda interval=0.1: 1)  # another program holds a core
    assert runtime.step_threads(1024, 30, 200, 27) == 2  # split: waiting threads sleep, so it stays
    assert runtime.step_threads(256, 30, 200, 27) == 1  # BLAS threads would spin against the other program
    assert runtime.step_threads(128, 192, 1024, 27) == 1
    monkeypatch.setattr(runtime, "idle_cores", lambda interval=0.1: 2)
    assert runtime.step_threads(128, 192, 1024, 27) == 2  # the best preset's products on an idle machine
    assert runtime.step_threads(128, 192, 1024, 27, fold=True) == 1  # folded, they are small
    assert runtime.step_threads(1024, 192, 1024, 27, fold=True) == 2  # a batch long enough is still split


def test_threads_that_cannot_start_are_one_refusal_before_any_step(monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from mlp_lm.cli import UsageError
    real_submit, calls = ThreadPoolExecutor.submit, []

    def submit_fails_on_the_third(self, fn, *args, **kwargs):
        calls.append(fn)
        if len(calls) == 3:
            raise RuntimeError("can't start new thread")
        return real_submit(self, fn, *args, **kwargs)

    before = threading.active_count()
    monkeypatch.setattr(ThreadPoolExecutor, "submit", submit_fails_on_the_third)
    with pytest.raises(UsageError, match="cannot start 4 threads.*fewer --threads"):
        parallel.BatchSplit(5)
    assert threading.active_count() == before  # the two that started were let go, not left waiting
    monkeypatch.setattr(ThreadPoolExecutor, "submit", real_submit)
    split = parallel.BatchSplit(3)  # and when they can start, all of them are up before the first step
    assert threading.active_count() == before + 2
    split.close()


def test_more_threads_than_cores_are_not_asked_for(monkeypatch):
    from mlp_lm import flags
    monkeypatch.setattr(flags, "available_cores", lambda: 2)
    assert flags.thread_count("64") == 2 and flags.thread_count("2") == 2 and flags.thread_count("1") == 1
    # From a hostile review: train and bench ran 2 threads for --threads 3 without a word on why
    from mlp_lm.runtime import describe_threads
    assert describe_threads(32, flags.thread_count("3")) == (
        "2 BLAS threads (--threads 3 asked for more than the 2 cores this process may use)")
    assert describe_threads(32, flags.thread_count("2")) == "2 BLAS threads"
    import copy
    import pickle
    for again in (copy.copy(flags.thread_count("3")), pickle.loads(pickle.dumps(flags.thread_count("3")))):
        assert again == 2 and again.asked == 3  # (a second review: a TypeError, missing 'asked')
    monkeypatch.setattr(flags, "available_cores", lambda: 1)
    assert describe_threads(32, flags.thread_count("2")).endswith("more than the 1 core this process may use)")


def test_a_split_batch_refuses_row_indices_it_would_misread():
    # From a review: X.take read a bool mask as the rows 0 and 1 and a -1 as the last row, in silence;
    # an empty ix and BatchSplit(0) were IndexErrors.
    p = model.init_params(7, 3, 4, 5, dtype=np.float64)
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 7, (50, 3)), rng.integers(0, 7, 50)
    keep = np.zeros(50, dtype=bool)
    keep[[5, 7, 9]] = True
    for parts in (1, 2):
        split = parallel.BatchSplit(parts)
        try:
            for ix in (keep, np.array([-1, 2]), np.array([50]), np.array([1.0, 2.0]), np.array([], dtype=np.int64),
                       [1, 2], np.array([[1, 2]])):
                with pytest.raises(ValueError, match="ix"):
                    split.loss_and_grads(p, X, Y, ix)
            for short_X, short_Y in ((X[:40], Y), (X, Y[:40])):  # examples that do not pair up
                with pytest.raises(ValueError, match="same examples"):
                    split.loss_and_grads(p, short_X, short_Y, np.array([1, 2]))
            loss, _ = split.loss_and_grads(p, X, Y, np.flatnonzero(keep))
            assert loss == pytest.approx(model.loss_and_grads(p, X[keep], Y[keep])[0], rel=1e-12)
        finally:
            split.close()
    for parts in (0, 1.5, True):
        with pytest.raises(ValueError, match="parts must be a whole number"):
            parallel.BatchSplit(parts)
