import json

import numpy as np
import pytest

from functools import partial

from mlp_lm import checkpoint, latest, model, runs, sampling

from .conftest import run_cli


def test_sample_prints_n_lines_and_a_novelty_summary(tiny_run):
    out, _ = tiny_run
    proc = run_cli("mlp_lm.sample", "--checkpoint", out / "model.npz", "-n", 12, "--seed", 3)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 12
    assert all(set(l) <= set("abcdefghijklmnopqrstuvwxyz") for l in lines)
    summary = proc.stderr.strip()
    assert summary.startswith("(12 samples:") and "in the training set" in summary and " new" in summary
    counts = [int(w) for w in summary.replace("(", " ").split() if w.isdigit()]
    assert counts[0] == 12 and sum(counts[1:]) == 12
    empty = lines.count("")  # the model ended at once: no name, so not "new" (this seed draws one)
    assert empty == 1 and summary.endswith(f", {empty} empty)")


def test_same_seed_same_lines_and_prefix_stable(tiny_run):
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    T = config["block_size"]
    a = sampling.generate(partial(model.next_probs, params), vocab, T, 30, np.random.default_rng(5))
    b = sampling.generate(partial(model.next_probs, params), vocab, T, 30, np.random.default_rng(5))
    c = sampling.generate(partial(model.next_probs, params), vocab, T, 30, np.random.default_rng(6))
    first = sampling.generate(partial(model.next_probs, params), vocab, T, 7, np.random.default_rng(5))
    assert a == b != c
    assert first == a[:7]  # -n 7 gives the first 7 lines of -n 30


def test_chunks_give_the_same_samples_with_bounded_memory(tiny_run):
    """Samples come a chunk at a time (so -n can be huge); the chunk size changes nothing drawn."""
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    T, f = config["block_size"], partial(model.next_probs, params)
    whole = sampling.generate(f, vocab, T, 30, np.random.default_rng(5), with_ended=True, max_length=6)
    chunks = list(sampling.generate_chunks(f, vocab, T, 30, np.random.default_rng(5), rows=7, max_length=6))
    assert [len(s) for s, _ in chunks] == [7, 7, 7, 7, 2]
    assert whole == ([s for c, _ in chunks for s in c], [e for _, c in chunks for e in c])
    assert False in whole[1] and True in whole[1]  # max_length 6 cuts some samples off, not all
    # each sample is drawn from its own uniforms, as it would be alone: the rows of the ones that ended drop out and
    # nothing shifts (here to the bit; in general up to BLAS's rounding of a lone row, see sampling.generate)
    for length in (6, 64):
        alone = sampling.generate(f, vocab, T, 30, np.random.default_rng(5), with_ended=True, max_length=length, rows=1)
        assert alone == sampling.generate(f, vocab, T, 30, np.random.default_rng(5), with_ended=True, max_length=length)
    assert sampling.samples_per_chunk(27, 3, 64) * (16 * 64 + 8 * 3 + 48 * 27) <= sampling.SAMPLE_BYTES
    assert sampling.samples_per_chunk(10**9, 3, 64) == 1  # never none


def test_the_first_chunk_is_small_and_the_chunks_double_up_to_the_budget(tiny_run, monkeypatch):
    # a user's `sample -n 1000000 | head` waited for a whole first chunk (28,000 names, 2.5 s) to see one
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    T, f = config["block_size"], partial(model.next_probs, params)
    monkeypatch.setattr(sampling, "FIRST_ROWS", 3)
    monkeypatch.setattr(sampling, "samples_per_chunk", lambda V, block_size, max_length: 10)
    chunks = list(sampling.generate_chunks(f, vocab, T, 40, np.random.default_rng(5), max_length=6))
    assert [len(s) for s, _ in chunks] == [3, 6, 10, 10, 10, 1]
    whole = sampling.generate(f, vocab, T, 40, np.random.default_rng(5), with_ended=True, max_length=6, rows=40)
    assert whole == ([s for c, _ in chunks for s in c], [e for _, c in chunks for e in c])


def test_prefix_top_k_and_temperature(tiny_run):
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    T = config["block_size"]
    with_prefix = sampling.generate(partial(model.next_probs, params), vocab, T, 20, np.random.default_rng(0), prefix="mar")
    assert all(s.startswith("mar") for s in with_prefix)
    # top-k 1 is greedy decoding: every sample is the same, whatever the seed.
    greedy = sampling.generate(partial(model.next_probs, params), vocab, T, 5, np.random.default_rng(0), top_k=1)
    assert len(set(greedy)) == 1
    assert greedy == sampling.generate(partial(model.next_probs, params), vocab, T, 5, np.random.default_rng(99), top_k=1)
    # A very low temperature is greedy too.
    assert sampling.generate(partial(model.next_probs, params), vocab, T, 5, np.random.default_rng(1), temperature=1e-3) == greedy
    # top-k 2: at each step only the two likeliest symbols can appear.
    ctx = np.zeros((1, T), dtype=np.int64)
    from mlp_lm.model import next_probs
    top2 = set(np.argsort(next_probs(params, ctx)[0])[-2:])
    firsts = {vocab.stoi[s[0]] if s else 0
              for s in sampling.generate(partial(model.next_probs, params), vocab, T, 200, np.random.default_rng(2), top_k=2)}
    assert firsts <= top2 and len(firsts) == 2


def test_sampling_follows_the_model_distribution():
    # A hand-made model whose first symbol is 'a' with p = 0.25 and 'b' with p = 0.75, then the boundary.
    from mlp_lm.data import Vocab
    vocab = Vocab(".ab")
    params = {"C": np.zeros((3, 1)), "W1": np.zeros((1, 1)), "b1": np.zeros(1), "W2": np.zeros((1, 3)),
              "b2": np.log(np.array([1e-12, 0.25, 0.75]))}
    s = sampling.generate(partial(model.next_probs, params), vocab, 1, 4000, np.random.default_rng(0), max_length=1)
    assert set(s) == {"a", "b"}
    assert s.count("a") / 4000 == pytest.approx(0.25, abs=0.025)


def test_max_length_caps_a_sample():
    from mlp_lm.data import Vocab
    vocab = Vocab(".a")
    params = {"C": np.zeros((2, 1)), "W1": np.zeros((1, 1)), "b1": np.zeros(1), "W2": np.zeros((1, 2)),
              "b2": np.array([-50.0, 0.0])}  # never ends on its own
    assert sampling.generate(partial(model.next_probs, params), vocab, 1, 2, np.random.default_rng(0), max_length=5) == ["aaaaa"] * 2


def test_summary_when_the_training_data_is_gone(tiny_run, tmp_path):
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    moved = tmp_path / "model.npz"
    checkpoint.save(moved, params, vocab, {k: v for k, v in config.items() if k != "format"}
                    | {"data": str(tmp_path / "gone.txt")})
    proc = run_cli("mlp_lm.sample", "--checkpoint", moved, "-n", 3)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3
    assert "cannot say which are new" in proc.stderr and "gone.txt" in proc.stderr
    assert f"its training data {tmp_path / 'gone.txt'} is not there any more" in proc.stderr
    assert "pass an existing file" not in proc.stderr  # a training's advice: sample takes no --data


def test_summary_when_the_training_data_is_no_longer_a_file_gives_no_advice_for_flags_sample_lacks(tiny_run, tmp_path):
    # From a hostile review: a training data file replaced by a pipe was told "save the items to a file and pass
    # that", where sample has no --data to pass it to
    import os
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    moved = tmp_path / "model.npz"
    (tmp_path / "a; b").mkdir()  # a path that holds "; " itself is not cut there (a second hostile review)
    pipe = tmp_path / "a; b" / "pipe.txt"
    os.mkfifo(pipe)
    checkpoint.save(moved, params, vocab, {k: v for k, v in config.items() if k != "format"} | {"data": str(pipe)})
    proc = run_cli("mlp_lm.sample", "--checkpoint", moved, "-n", 3)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3
    assert f"cannot say which are new: data path {pipe} is not a regular file (a pipe or a device))" in proc.stderr
    assert "pass that" not in proc.stderr


def test_newest_run_is_found(tmp_path):
    import os
    assert latest.newest(tmp_path) is None
    for i, name in enumerate(["names", "names-2", "results/best", "names/unconverged", "names-2/interrupted",
                               "names-2/interrupted-12"]):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "model.npz").write_bytes(b"")
        os.utime(tmp_path / name / "model.npz", (1000 + i, 1000 + i))
    assert latest.newest(tmp_path) == tmp_path / "results" / "best" / "model.npz"  # not the unconverged or interrupted one
    (tmp_path / "zz" / "model.npz").mkdir(parents=True)  # not a model file: passed over
    (tmp_path / "interrupted").mkdir()  # a user's own run named so (--out runs/interrupted), not a side folder
    (tmp_path / "interrupted" / "model.npz").write_bytes(b"")
    assert latest.newest(tmp_path) == tmp_path / "interrupted" / "model.npz"
    assert [runs.kept_apart(n) for n in ("interrupted-2", "unconverged-10", "interrupted-1", "interrupted-02",
                                               "interrupted2", "my-interrupted")] == [True, True] + [False] * 4


def test_a_sample_cut_off_is_marked_and_not_counted(tiny_run):
    from mlp_lm.data import Vocab
    vocab = Vocab(".a")
    params = {"C": np.zeros((2, 1)), "W1": np.zeros((1, 1)), "b1": np.zeros(1), "W2": np.zeros((1, 2)),
              "b2": np.array([-50.0, 0.0])}  # never ends on its own
    samples, ended = sampling.generate(partial(model.next_probs, params), vocab, 1, 3, np.random.default_rng(0),
                                       max_length=4, with_ended=True)
    assert samples == ["aaaa"] * 3 and ended == [False] * 3
    proc = run_cli("mlp_lm.sample", "--checkpoint", tiny_run[0] / "model.npz", "-n", 20, "--max-length", 2)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    cut = [l for l in lines if l.endswith("…")]
    assert cut and all(len(l) == 3 for l in cut)  # two symbols and the mark
    assert f"{len(cut)} cut off at --max-length 2" in proc.stderr
    counts = [int(w) for w in proc.stderr.split(";")[0].replace("(", " ").split() if w.isdigit()]
    assert counts[0] == 20 and sum(counts[1:]) == 20 - len(cut)  # only whole samples are counted


def test_a_damaged_newest_model_is_the_only_line(tmp_path, monkeypatch, capsys):
    from mlp_lm import sample
    from mlp_lm.checkpoint import CheckpointError
    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "model.npz").write_bytes(b"PK\x03\x04 damaged")
    monkeypatch.setattr(latest, "in_checkout", lambda p: tmp_path / p)
    with pytest.raises(CheckpointError, match=r"model.npz: damaged \("):
        sample.main([])
    assert capsys.readouterr().err == ""  # no "(sampling from ...)" before the error line


def test_novelty_is_not_counted_against_data_the_checkpoint_does_not_vouch_for(tiny_run, tmp_path):
    # A notebook's checkpoint, saved with Config's default data path but trained on its own words and
    # without data_sha256, was counted against names.txt.
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    moved = tmp_path / "model.npz"
    checkpoint.save(moved, params, vocab, {k: v for k, v in config.items() if k not in ("format", "data_sha256")})
    proc = run_cli("mlp_lm.sample", "--checkpoint", moved, "-n", 3)
    assert proc.returncode == 0 and "cannot say which are new" in proc.stderr and "data_sha256" in proc.stderr


def test_the_newest_model_is_said_to_be_a_kept_diverged_run_when_it_is_one(tmp_path, monkeypatch, capsys):
    # From a review: after "training diverged ... is saved in runs/names-2", sample without --checkpoint
    # took that run as "the newest model" without a word of what it is.
    from mlp_lm import sample
    run = tmp_path / "d"
    proc = run_cli("mlp_lm.train", "--steps", 6000, "--eval-every", 500, "--schedule", "cosine", "--warmup", 5000,
                   "--lr", 5, "--out", run)
    assert proc.returncode == 2
    monkeypatch.setattr(latest, "newest", lambda folder, names: run / "model.npz")
    assert sample.main(["-n", "1"]) == 0
    assert "the newest model: what was kept of a run that diverged after step 3300)" in capsys.readouterr().err


def test_the_newest_model_is_said_to_be_a_stopped_run_when_it_is_one(tmp_path, monkeypatch, capsys):
    # From a hostile pass: a run stopped by a second Ctrl-C, saved unevaluated, was "the newest model" unremarked
    from mlp_lm import sample, train
    from .conftest import SMALL, stop_training_at
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--n-hidden", "8", "--out", str(whole)]) == 0
    stop_training_at(monkeypatch, 25)
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--n-hidden", "8", "--out", str(stopped)]) == 130
    monkeypatch.undo()
    for run, said in ((stopped, f"the newest model: a run stopped at step 25 of 40, which python -m mlp_lm.train "
                                f"--resume --out {stopped} finishes)"), (whole, "the newest model)")):
        monkeypatch.setattr(latest, "newest", lambda folder, names: run / "model.npz")
        capsys.readouterr()
        assert sample.main(["-n", "1"]) == 0
        assert f"(sampling from {run / 'model.npz'}, {said}" in capsys.readouterr().err
    # a snapshot of a run still training (its lock held) is not a stopped run: resuming it would be refused (a
    # second hostile pass)
    from mlp_lm.runlock import RunLock
    monkeypatch.setattr(latest, "newest", lambda folder, names: stopped / "model.npz")
    with RunLock(stopped):
        assert sample.main(["-n", "1"]) == 0
    assert (f"(sampling from {stopped / 'model.npz'}, the newest model: a snapshot, at step 25 of 40, of a run still "
            f"training)") in capsys.readouterr().err


def test_controls_a_model_learned_from_its_data_are_printed_escaped(tmp_path):
    # From a hostile tester: a word list holding ESC (and NUL, U+2028) had train and sample write them raw
    # to the terminal, which acts on an escape sequence instead of showing it; error messages escaped them.
    words = tmp_path / "words.txt"
    words.write_text("".join(f"a\x1bb{c}\nb\u2028{c}\n" for c in "cdefghij"), encoding="utf-8")
    proc = run_cli("mlp_lm.train", "--data", words, "--steps", 300, "--n-hidden", 16, "--eval-every", 0, "--out",
                   tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("samples"))
    assert "\\x1b" in line or "\\u2028" in line, line
    proc = run_cli("mlp_lm.sample", "--checkpoint", tmp_path / "run" / "model.npz", "-n", 30)
    assert proc.returncode == 0 and "\\x1b" in proc.stdout and "\\u2028" in proc.stdout, proc.stdout
    for out in (line, proc.stdout):
        assert "\x1b" not in out and "\u2028" not in out
    assert sampling.printable("zoë\u00a0ann\u200d") == "zoë\u00a0ann\u200d"  # what prints is left as it is
    assert sampling.printable("ab\u202ecd\u2066") == "ab\\u202ecd\\u2066"  # a terminal would turn the line around
    assert sampling.printable("d\ufeffe") == "d\\ufeffe"  # a byte-order mark inside an item: shown, not hidden
    # a new user's review: a word joiner (U+FEFF's successor) and the bidi marks printed as nothing at all
    assert sampling.printable("a\u2060b\u200ec\u200f") == "a\\u2060b\\u200ec\\u200f"
    assert sampling.printable("\u1780\u200b\u1781") == "\u1780\u200b\u1781"  # a Khmer word break: its text


def test_samples_on_one_line_are_quoted_when_a_comma_or_a_space_would_blur_them():
    # From a user's review: "samples (...): Dover, NY, Jackson, IL, ..." could not say where a sample ended; and from
    # hostile ones, quotes and backslashes inside quoted samples: each is then a Python string literal.
    assert sampling.one_line(["ann", "bo"], [True, True]) == "ann, bo"
    assert sampling.one_line(["ab", ""], [False, True]) == "ab…, (empty)"
    assert sampling.one_line(["Dover, NY", "bo"], [True, True]) == "'Dover, NY', 'bo'"
    assert sampling.one_line(["Troisav ", "bo"], [True, True]) == "'Troisav ', 'bo'"
    assert sampling.one_line(["a,\u00a0b", "", "cd"], [True, True, False]) == "'a,\u00a0b', '', 'cd'…"
    samples = ['Ann, "Bo"', "O'Brien", "x\\", " y", "a\x1bb", "sa\u200clyn"]  # ZWNJ prints as is, as unquoted
    line = sampling.one_line(samples, [True] * 6)
    assert line == """'Ann, "Bo"', 'O\\'Brien', 'x\\\\', ' y', 'a\\x1bb', 'sa\u200clyn'""" and "\x1b" not in line
    assert sampling.one_line(["'a'", "b"], [True, True]) == "'\\'a\\'', 'b'"  # not the same line as ["a", "b"] quoted
    import ast
    assert list(ast.literal_eval(f"({line},)")) == samples  # read back, every sample whole


def test_a_vocabulary_its_own_training_data_does_not_give_is_a_damaged_checkpoint(tiny_run, tmp_path):
    # From a hostile tester: "z" rewritten as "{" in the vocabulary (the data's sha256 kept) sampled names
    # like "a{elia" with a normal summary, where evaluate called the checkpoint damaged.
    from mlp_lm import data, sample
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    edited = tmp_path / "model.npz"
    config = {k: v for k, v in config.items() if k != "format"}
    checkpoint.save(edited, params, data.Vocab(vocab.itos.replace("z", "{")), config)
    with pytest.raises(checkpoint.CheckpointError, match=f"{edited}: its vocabulary is not that of .*, the very file "
                                                         f"it was trained on, so the checkpoint is damaged; retrain"):
        sample.main(["--checkpoint", str(edited), "-n", "3"])
    checkpoint.save(edited, params, vocab, config)  # the same, with its own vocabulary: samples as before
    assert sample.main(["--checkpoint", str(edited), "-n", "3"]) == 0


def test_one_sample_is_one_sample(tiny_run):
    proc = run_cli("mlp_lm.sample", "--checkpoint", tiny_run[0] / "model.npz", "-n", 1)
    assert proc.returncode == 0 and proc.stderr.startswith("(1 sample: "), proc.stderr  # was "(1 samples: "


@pytest.mark.parametrize("symbols,typed", [("abe\u0301", "\u00e9a"), ("ab\u00e9", "e\u0301a")])
def test_a_prefix_is_written_the_way_the_models_symbols_write_its_accents(symbols, typed, tiny_run, tmp_path, capsys):
    # From a new user's review: a model of decomposed Vietnamese refused --prefix 'hà' as typed, and said to
    # pass 'ha\u0300' instead, which no shell user can type
    import unicodedata

    from mlp_lm import data, sample
    vocab = data.Vocab(data.BOUNDARY + "".join(sorted(symbols)))
    _, _, config = checkpoint.load(tiny_run[0] / "model.npz")
    config = {k: v for k, v in config.items() if k not in ("format", "data", "data_sha256")} | {
        "vocab_size": len(vocab)}
    params = model.init_params(len(vocab), config["block_size"], config["n_embd"], config["n_hidden"], seed=0)
    checkpoint.save(tmp_path / "model.npz", params, vocab, config)
    capsys.readouterr()
    assert sample.main(["--checkpoint", str(tmp_path / "model.npz"), "-n", "4", "--prefix", typed]) == 0
    out, err = capsys.readouterr()
    form = "NFD" if "\u0301" in symbols else "NFC"
    assert all(line.startswith(unicodedata.normalize(form, typed)) for line in out.splitlines()), out
    assert err.startswith(f"(--prefix written the way the model's symbols are: its accents "
                          f"{'decomposed' if form == 'NFD' else 'composed'}, Unicode {form})\n")
    from mlp_lm.cli import UsageError
    with pytest.raises(UsageError, match="unknown symbol"):  # a symbol no form of it gives is still refused
        sample.main(["--checkpoint", str(tmp_path / "model.npz"), "-n", "1", "--prefix", "z"])
    # a hostile pass: its length is checked as the model writes it (a traceback when decomposing made it too
    # long; refused when composing would have made it fit)
    n = len(unicodedata.normalize(form, typed))
    with pytest.raises(UsageError, match=f"--prefix has {n} symbols, leaving none of --max-length {n}"):
        sample.main(["--checkpoint", str(tmp_path / "model.npz"), "-n", "1", "--prefix", typed, "--max-length", str(n)])
    assert sample.main(["--checkpoint", str(tmp_path / "model.npz"), "-n", "1", "--prefix", typed,
                        "--max-length", str(n + 1)]) == 0


def _sampling_into_a_full_pipe(checkpoint_path):
    """sample writing a great many names into a pipe nobody reads yet, once it waits in its write."""
    import subprocess
    import sys
    import time
    from .conftest import ROOT
    proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.sample", "--checkpoint", str(checkpoint_path),
                             "-n", "10000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline and not open(f"/proc/{proc.pid}/wchan").read().endswith("pipe_write"):
        time.sleep(0.02)
    assert open(f"/proc/{proc.pid}/wchan").read().endswith("pipe_write"), "it never filled the pipe"
    return proc


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/wchan"), reason="needs Linux's /proc")
def test_a_stop_signal_never_leaves_half_a_name_in_a_pipe(tiny_run):
    # From a scripting user's review: SIGINT while the pipe was full cut print()'s write mid-name
    # (131,072 bytes ending "...\nma"): the rest of the write was lost with the exception.
    import signal
    proc = _sampling_into_a_full_pipe(tiny_run[0] / "model.npz")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out.endswith(b"\n") and len(out) >= 65536, (len(out), out[-30:], err)
    assert err.decode().splitlines()[-1] == "python -m mlp_lm.sample: interrupted (SIGINT)"
    # a reader that never reads: the first signal waits to finish its line, a second ends it at once
    proc = _sampling_into_a_full_pipe(tiny_run[0] / "model.npz")
    proc.send_signal(signal.SIGTERM)
    __import__("time").sleep(0.3)
    assert proc.poll() is None  # still finishing its line, which nobody takes
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    proc.stdout.close()
    proc.stderr.close()


def test_samples_of_a_list_of_long_items_may_grow_to_twice_the_longest(tmp_path, capsys):
    # From a new user's review: a list of paths of up to 179 symbols had most samples cut off at 64, in train's
    # samples and sample's alike
    from mlp_lm import ngram, sample, train
    assert [sampling.sample_length(n) for n in (0, 15, 90, 10**6)] == [64, 64, 180, sampling.MAX_LENGTH]
    rng = np.random.default_rng(0)
    items = ["".join(rng.choice(list("ab"), 100)) for _ in range(300)]  # 100 symbols each: 200 at most
    (tmp_path / "long.txt").write_text("\n".join(items) + "\n")
    assert train.main(["--data", str(tmp_path / "long.txt"), "--steps", "300", "--eval-every", "0",
                       "--out", str(tmp_path / "run")]) == 0
    samples = json.loads((tmp_path / "run" / "metrics.json").read_text())["samples"]
    assert max(map(len, samples)) > 64 and max(map(len, samples)) <= 200, samples
    capsys.readouterr()
    assert sample.main(["--checkpoint", str(tmp_path / "run" / "model.npz"), "-n", "20"]) == 0
    out, err = capsys.readouterr()
    lengths = [len(line.rstrip(sampling.CUT)) for line in out.splitlines()]
    assert 64 < max(lengths) <= 200, (lengths, err)
    # the same samples when the data has moved: the length is the checkpoint's (a review: it fell to 64, and the
    # draws, laid out by length, changed every sample after the first)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]["longest_item"] == 100
    (tmp_path / "long.txt").rename(tmp_path / "moved.txt")
    assert sample.main(["--checkpoint", str(tmp_path / "run" / "model.npz"), "-n", "20"]) == 0
    assert capsys.readouterr().out == out
    (tmp_path / "moved.txt").rename(tmp_path / "long.txt")
    assert sample.main(["--checkpoint", str(tmp_path / "run" / "model.npz"), "-n", "20", "--max-length", "64"]) == 0
    assert max(len(line.rstrip(sampling.CUT)) for line in capsys.readouterr().out.splitlines()) <= 64  # as asked
    assert ngram.main(["--data", str(tmp_path / "long.txt"), "--n", "3", "--smoothing", "kn", "--samples", "10"]) == 0
    assert "cut off at 64 symbols" not in capsys.readouterr().out


@pytest.mark.parametrize("bad", [-1, "100", True, 1.5])
def test_a_checkpoint_whose_longest_item_no_list_has_is_refused(tiny_run, tmp_path, bad):
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    with pytest.raises(ValueError, match="would not load back: .*longest_item"):  # save loads what it writes first
        checkpoint.save(tmp_path / "model.npz", params, vocab, {**config, "longest_item": bad})
    assert not (tmp_path / "model.npz").exists()


def test_a_sample_copied_as_printed_into_prefix_is_told_how_to_pass_its_tab(tmp_path, capsys):
    # From a hostile review: samples print a tab as \t, and --prefix 'a\tb' copied from them was refused with no
    # word of how to pass a tab
    from mlp_lm import sample, train
    from .test_bad_input import assert_one_line_error, call
    words = tmp_path / "tabs.txt"
    words.write_text("a\tb\nc\td\nab\ncd\nad\ncb\nabc\n")
    assert train.main(["--data", str(words), "--steps", "50", "--eval-every", "0", "--out", str(tmp_path / "r")]) == 0
    assert sampling.unprinted(sampling.printable("a\tb\x1b\u2028c")) == "a\tb\x1b\u2028c"
    assert sampling.unprinted("\\UFFFFFFFF\\U0001F600") == "\\UFFFFFFFF\U0001F600"  # no character past U+10FFFF
    capsys.readouterr()
    code, err = call(sample, ["--checkpoint", tmp_path / "r" / "model.npz", "--prefix", "a\\tb"], capsys)
    assert_one_line_error(code, err, "--prefix 'a\\\\tb': unknown symbol(s)", "the samples print a tab or another "
                          "control as an escape: --prefix=$'a\\tb' passes the characters themselves")
    code, err = call(sample, ["--checkpoint", tmp_path / "r" / "model.npz", "--prefix", "a\tb", "-n", "2"], capsys)
    assert code == 0, err
    code, err = call(sample, ["--checkpoint", tmp_path / "r" / "model.npz", "--prefix", "a\\xb"], capsys)
    assert code == 2 and "passes the characters" not in err  # no escape that reads back into the vocabulary
    code, err = call(sample, ["--checkpoint", tmp_path / "r" / "model.npz", "--prefix", "a\\t.b"], capsys)
    assert code == 2 and "boundary" in err and "passes the characters" not in err  # refused for its '.' either way
    # From a user's trial: where the symbols include a backslash, 'a\tb' is four of them, taken without a word,
    # and its samples print just as those of a real tab do
    (tmp_path / "slash.txt").write_text("a\tb\nc\td\nab\\t\ncd\nad\ncb\nabc\n")
    assert train.main(["--data", str(tmp_path / "slash.txt"), "--steps", "50", "--eval-every", "0", "--out",
                       str(tmp_path / "s")]) == 0
    capsys.readouterr()
    code, err = call(sample, ["--checkpoint", tmp_path / "s" / "model.npz", "--prefix", "a\\tb", "-n", "2"], capsys)
    assert code == 0 and ("(--prefix 'a\\tb' is taken as written, its backslashes too; the samples print a tab or "
                          "another control as an escape: --prefix=$'a\\tb' passes the characters themselves)") in err, err
    code, err = call(sample, ["--checkpoint", tmp_path / "s" / "model.npz", "--prefix", "a\tb", "-n", "2"], capsys)
    assert code == 0 and "taken as written" not in err  # the tab itself: nothing to say
