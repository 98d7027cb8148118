"""The pictures, which CI draws without matplotlib: what they are given to draw, and what a run does when
matplotlib will not load or a picture will not draw (from a review with matplotlib installed)."""
import contextlib
import os
import signal
import sys
import time
import types

import numpy as np
import pytest

from mlp_lm import plots, space, train, train_flags
from .conftest import SMALL


class Recorder:
    """Just enough of pyplot, a figure and its axes for plots.py, recording what is drawn."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):  # scatter, text, set_title, ...: recorded, drawn nowhere
        return lambda *a, **k: self.calls.append((name, a, k))

    def subplots(self, **kw):
        return self, self

    def savefig(self, stream, **kw):
        stream.write(b"png")

    def drawn(self, name):
        return [a for n, a, _ in self.calls if n == name]


class Vocab:
    def __init__(self, itos):
        self.itos = itos


def test_labels_are_escaped_as_samples_are_and_marks_and_spaces_are_seen():
    # A raw ESC went to the terminal in matplotlib's warning, U+202E turned the labels after it round,
    # and a space or a lone combining accent was an unlabelled dot.
    # (And a soft hyphen or a zero-width joiner, which samples print as they are, left a dot unlabelled.)
    assert [plots.label(s) for s in ("a", "é", "\x1b", "\u202e", "\t", " ", "\u0301", "\xad", "\u200d")] == \
        ["a", "é", "\\x1b", "\\u202e", "\\t", "\u2423", "\u25cc\u0301", "\\xad", "\\u200d"]


@pytest.mark.parametrize("V, labelled", [(27, True), (plots.LABELLED_MAX, True), (plots.LABELLED_MAX + 1, False)])
def test_the_embedding_picture_labels_a_vocabulary_it_can_show(tmp_path, V, labelled):
    # 10,001 CJK symbols made a black blot of labels, and 28 s of drawing.
    plt = Recorder()
    itos = "." + "".join(chr(0x4E00 + i) for i in range(V - 1))
    plots.plot_embedding(plt, np.random.default_rng(0).standard_normal((V, 2)), Vocab(itos), tmp_path / "e.png")
    texts = plt.drawn("text")
    assert len(texts) == (V if labelled else 0)
    titles = [a[0] for a in plt.drawn("set_title")]
    assert titles == ([] if labelled else [f"the embedding: {V:,} symbols, too many to label"])
    assert (tmp_path / "e.png").read_bytes() == b"png"


def test_a_one_dimensional_embedding_has_no_second_axis_to_name(tmp_path):
    plt = Recorder()
    plots.plot_embedding(plt, np.ones((3, 1)), Vocab(".ab"), tmp_path / "e.png")
    assert plt.drawn("set_ylabel") == [] and plt.drawn("set_yticks") == [([],)]
    assert [a[0] for a in plt.drawn("set_title")] == ["the one embedding dimension"]


def test_the_sweep_picture_marks_the_table_and_the_suggested_rate(tmp_path):
    plt = Recorder()
    lre, losses = np.linspace(-3, 0, 120), np.linspace(3, 2, 120)
    rows = [(-3, -1.5, 10**-2.25, 2.8), (-1.5, 0, 10**-0.75, 2.3)]
    plots.plot_lr_sweep(plt, lre, losses, tmp_path / "s.png", rows, 10**-0.75)
    assert plt.drawn("plot")[1][:2] == ([-2.25, -0.75], [2.8, 2.3])
    assert plt.drawn("axvline") == [(pytest.approx(-0.75),)]
    assert any(k.get("label") == "suggested: 0.18" for n, _, k in plt.calls if n == "axvline")


def test_a_short_run_draws_no_mean_of_one_step(tmp_path):
    plt = Recorder()
    plots.plot_loss(plt, np.linspace(3, 2, 150), {}, tmp_path / "l.png")
    assert [k.get("label") for n, _, k in plt.calls if n == "plot"] == ["minibatch"]  # was also "mean of 1 steps"


def test_matplotlib_that_will_not_load_is_a_note_not_a_traceback(tmp_path, monkeypatch, capsys):
    # MPLBACKEND=nonsense: import matplotlib raises ValueError, which try_pyplot let through before training.
    broken = types.ModuleType("matplotlib")

    def use(backend):
        raise ValueError("Key backend: 'nonsense' is not a valid value for backend; supported values are [...]")
    broken.use = use
    monkeypatch.setitem(sys.modules, "matplotlib", broken)
    monkeypatch.setattr(plots, "available", lambda: True)
    assert plots.try_pyplot() == (None, "matplotlib did not load (ValueError: Key backend: 'nonsense' is not a "
                                        "valid value for backend; supported values are [...]), so no pictures")
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path / "run")]) == 0
    assert "wrote model.npz, metrics.json, loss.csv to" in capsys.readouterr().out
    assert train.main([*SMALL, "--lr-sweep", "--steps", "24", "--out", str(tmp_path / "sweep")]) == 0
    assert "lr_sweep.csv (matplotlib did not load (ValueError" in capsys.readouterr().out


def test_a_picture_that_fails_in_matplotlib_itself_is_a_warning(tmp_path, monkeypatch, capsys):
    # text.usetex without LaTeX: a RuntimeError after the save, a traceback, and no "wrote" line.
    def no_latex(*a, **k):
        raise RuntimeError("Failed to process string with tex because latex could not be found\nmore of it")
    monkeypatch.setattr(plots, "try_pyplot", lambda: (Recorder(), None))
    monkeypatch.setattr(plots, "plot_loss", no_latex)
    monkeypatch.setattr(plots, "plot_lr_sweep", no_latex)
    out = tmp_path / "run"
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(out)]) == 0
    std = capsys.readouterr()
    assert (f"warning: could not draw {out / 'loss.png'} (RuntimeError: Failed to process string with tex because "
            f"latex could not be found); the run is saved without it") in std.err
    assert f"wrote model.npz, metrics.json, loss.csv, embedding.png to {out}\n" in std.out
    # the sweep's: its table was written, and the sweep ended in exit code 2 saying nothing of it
    (tmp_path / "sweep" / "lr_sweep.png").mkdir(parents=True)
    assert train.main([*SMALL, "--lr-sweep", "--steps", "24", "--out", str(tmp_path / "sweep")]) == 0
    std = capsys.readouterr()
    assert f"warning: could not draw {tmp_path / 'sweep' / 'lr_sweep.png'} (RuntimeError: Failed to" in std.err
    assert std.out.splitlines()[-1] == f"wrote {tmp_path / 'sweep' / 'lr_sweep.csv'}"


def test_the_space_a_run_needs_counts_its_pictures_when_it_will_draw_them(monkeypatch):
    # With matplotlib installed a run wrote 288,800 bytes against an estimate of 233,148.
    cfg = train_flags.parse_args(["--steps", "300"]).cfg
    monkeypatch.setattr(plots, "available", lambda: False)
    without = space.bytes_to_save(cfg, 11897)
    monkeypatch.setattr(plots, "available", lambda: True)
    assert space.bytes_to_save(cfg, 11897) == without + plots.PICTURE_BYTES


@pytest.mark.parametrize("sweep", [False, True])
def test_a_stop_signal_while_matplotlib_loads_is_not_taken_for_a_picture_that_failed(tmp_path, monkeypatch, capsys,
                                                                                        sweep):
    # From a hostile review: matplotlib's C extensions turn the exception a signal raises inside their import
    # into "ImportError: initialization failed", which passed for a matplotlib that did not load: the run
    # ended 0 and the SIGTERM was never mentioned. Signals are now held while it loads and draws.
    def loading():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs here
        except KeyboardInterrupt:
            return None, "matplotlib did not load (ImportError: initialization failed), so no pictures"
        return Recorder(), None
    monkeypatch.setattr(plots, "try_pyplot", loading)
    flags = ["--lr-sweep", "--steps", "24"] if sweep else ["--steps", "20", "--eval-every", "0"]
    with pytest.raises(KeyboardInterrupt) if sweep else contextlib.nullcontext():
        code = train.main([*SMALL, *flags, "--out", str(tmp_path)])
    std = capsys.readouterr()
    assert "did not load" not in std.out
    if sweep:  # cli.run says "interrupted (SIGTERM)" of it; the table and its picture are written
        assert std.out.splitlines()[-1] == f"wrote {tmp_path / 'lr_sweep.csv'} and {tmp_path / 'lr_sweep.png'}"
    else:
        assert code == 143
        assert std.err.splitlines()[-1] == f"interrupted (SIGTERM) while reporting: the run is saved in full in {tmp_path}"
        assert (tmp_path / "loss.png").read_bytes() == b"png"


def test_without_a_clone_the_hint_is_matplotlib_itself(monkeypatch, tmp_path):
    # pip install -e '.[plot]' means the clone's extra: elsewhere, after pip install without -e, pip refused it
    from mlp_lm import wordfile
    assert plots.hint() == plots.HINT and "'.[plot]'" in plots.HINT
    # from another folder, '.[plot]' is that folder's: the clone's own path is given (a hostile pass)
    monkeypatch.chdir(tmp_path)
    assert plots.hint() == (f"matplotlib is not installed, so no pictures: pip install -e "
                            f"'{wordfile.CHECKOUT}[plot]' to get them")
    monkeypatch.setattr(wordfile, "CHECKOUT", tmp_path)
    assert plots.hint() == "matplotlib is not installed, so no pictures: pip install matplotlib to get them"


def test_losses_of_zero_are_said_to_be_off_the_scale_not_warned_of(tmp_path):
    # a list of two names learned by heart: float32 losses of exactly 0 printed four RuntimeWarnings
    import warnings
    plt, losses = Recorder(), np.r_[np.linspace(3, 0.1, 50), np.zeros(950)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.plot_loss(plt, losses, {500: 0.0, 1000: 0.5}, tmp_path / "l.png")
    assert [a[0] for a in plt.drawn("set_title")] == ["950 of 1,000 minibatch losses are 0, below the log scale: not drawn"]
