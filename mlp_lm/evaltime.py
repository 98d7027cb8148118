"""How long evaluating a model on a whole split will take, on this machine, now: timed on a chunk and
scaled up, so that a long list's commands can say so before minutes of silence, and a training
stopped by a signal can save its model first (train, evaluate)."""
import time

import numpy as np

from . import layers, model

SLOW_SECONDS = 5.0  # an evaluation expected to take longer is announced (and not begun after a stop signal)


def evaluation_seconds(params, rows, refine=True):
    """About how many seconds model.split_loss takes over `rows` examples here, now: 1,024 contexts of
    padding (any cost about the same) timed and scaled up, or past a quarter of SLOW_SECONDS a chunk of
    the evaluation's size, as a small one stays in the cache, up to twice as fast a row (Intel machine:
    8 against 14 s for 12 million examples). Never more rows than the evaluation's chunks, which keep
    its memory within model.EVAL_BYTES (1,024 rows over 150,000 symbols took 3.7 GB); refine=False
    times only the small chunk (a stop signal waits for the estimate)."""
    chunk = min(rows, model.chunk_rows(params, rows))  # split_loss's chunks of these rows
    small = min(chunk, 1024)
    seconds = 0.0 if rows < 1 else _timed_chunk(params, small) * rows / small
    if refine and seconds >= SLOW_SECONDS / 4 and chunk > small:
        seconds = _timed_chunk(params, chunk) * rows / chunk
    return seconds


def _timed_chunk(params, rows):
    """Seconds to evaluate the loss on `rows` contexts of padding, the work of one chunk of split_loss:
    the faster of two, as the first pays for memory the evaluation gets once (after a training with no
    dev evaluation, 200 s was guessed for 14 s)."""
    X = np.zeros((rows, params["W1"].shape[0] // params["C"].shape[1]), dtype=np.int64)  # (rows, T)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        try:
            layers.softmax_cross_entropy_forward(model.logits(params, X).astype(np.float64), X[:, 0])
        except (FloatingPointError, MemoryError):  # an estimate never costs the run: the evaluation itself
            return 0.0  # says what overflows (model.logits raises) or what does not fit
        times.append(time.perf_counter() - t0)
    return min(times)


def slow_evaluation(rows, seconds):
    """A line saying that evaluating `rows` examples takes about `seconds` (evaluation_seconds), or None
    below SLOW_SECONDS: on millions of examples, or a vocabulary of thousands, it can be minutes."""
    return f"evaluating {rows:,} examples: about {seconds:,.0f} s" if seconds >= SLOW_SECONDS else None


def final_evaluation(rows, seconds, stopped, undone=None):
    """(whether to leave the final evaluation to --resume, the line to print first or None), for `rows`
    examples taking about `seconds` here. stopped: a stop signal ended the training, which wants the
    model saved now rather than after SLOW_SECONDS; undone: the last step, when the signal came before
    its dev evaluation (a --keep-best run's model to evaluate may be that step's: --resume makes both)."""
    if undone is not None:
        return True, f"not evaluated: the dev evaluation after step {undone} was cut short, and --resume makes both"
    if stopped and seconds >= SLOW_SECONDS:
        return True, f"not evaluated, which takes about {seconds:,.0f} s here: --resume evaluates it"
    return False, slow_evaluation(rows, seconds)
