"""--keep-best: the model saved is that of the best dev evaluation, the run trains on to its end,
and a stopped run resumes to the same model and files as one that ran in one go."""
import json
import os
import shutil
import signal

import numpy as np
import pytest

from mlp_lm import checkpoint, config, model, plots, space, train, train_run, trainer
from mlp_lm.cli import UsageError
from mlp_lm.data import load_splits

from .conftest import NAMES, ROOT

# 300 names, 3,000 steps of the lecture's model: it learns them by heart, and dev is best early on (at step 750)
OVERFIT = ["--steps", "3000", "--eval-every", "250"]


@pytest.fixture(scope="module")
def short_list(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "short.txt"
    lines = (ROOT / "tests" / "data" / "names-small.txt").read_text().splitlines()[:300]
    path.write_text("\n".join(lines) + "\n")
    return path


def dev_losses(folder):
    """{step: dev loss} from a run's loss.csv, as the run wrote them (rounded to six decimals)."""
    rows = [line.split(",") for line in (folder / "loss.csv").read_text().splitlines()[1:]]
    return {int(step): float(dev) for step, _, dev in rows if dev}


def test_the_model_saved_is_the_best_dev_evaluation_s(short_list, tmp_path, capsys):
    assert train.main(["--data", str(short_list), *OVERFIT, "--out", str(tmp_path / "last")]) == 0
    err = capsys.readouterr().err
    assert "--keep-best saves the model of the best dev evaluation" in err, err  # the overfitting warning says so
    assert train.main(["--data", str(short_list), *OVERFIT, "--keep-best", "--out", str(tmp_path / "best")]) == 0
    out = capsys.readouterr().out
    # The same training either way: the same losses, step for step, and the same dev evaluations.
    assert (tmp_path / "last" / "loss.csv").read_text() == (tmp_path / "best" / "loss.csv").read_text()
    devs = dev_losses(tmp_path / "best")
    best = min(devs, key=devs.get)
    assert best < 3000  # the list is learned by heart: dev is best before the end
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    last = json.loads((tmp_path / "last" / "metrics.json").read_text())
    assert metrics["best_step"] == best and metrics["steps"] == last["steps"] == 3000 and "best_step" not in last
    assert abs(metrics["dev_loss"] - devs[best]) < 1e-6 < last["dev_loss"] - metrics["dev_loss"]
    assert f"kept the model of step {best:,}, the best dev evaluation ({devs[best]:.4f}; {devs[3000]:.4f} at step " \
           f"3,000, the last)" in out, out
    # model.npz holds that model: its dev loss, recomputed, is the one of that evaluation
    params, _, saved = checkpoint.load(tmp_path / "best" / "model.npz")
    splits = load_splits(short_list, 3)
    # (to the tolerance of a loss evaluated again on other BLAS threads: OpenBLAS's Haswell kernels round a row's
    # logits by how the rows are shared out, 2.5e-8 apart here between one thread in training and two in the test)
    tol = model.REEVALUATION_TOLERANCE * metrics["dev_loss"]
    assert abs(model.split_loss(params, *splits.dev) - metrics["dev_loss"]) < tol < (last["dev_loss"] - metrics["dev_loss"]) / 100
    assert saved["keep_best"] is True
    # and the training state goes on from the last step's parameters, which are not the model's
    with np.load(tmp_path / "best" / "model.npz", allow_pickle=False) as f:
        assert int(f["state.best_step"]) == best and int(f["state.step"]) == 3000
        assert not np.array_equal(f["state.param.W1"], params["W1"])
        np.testing.assert_array_equal(f["state.best.W1"], params["W1"])


def test_the_last_step_is_evaluated_too(short_list, tmp_path, capsys):
    # 1,234 steps with an evaluation every 500: the model the run ends with is a candidate as well.
    assert train.main(["--data", str(short_list), "--steps", "1234", "--eval-every", "500", "--keep-best",
                       "--n-hidden", "20", "--lr", "0.02", "--out", str(tmp_path)]) == 0
    devs = dev_losses(tmp_path)
    assert sorted(devs) == [500, 1000, 1234] and min(devs, key=devs.get) == 1234  # a slow rate: still improving
    # the run says what it kept even when it is the last step's model, which it would have saved anyway
    assert f"kept the model of step 1,234, the last, its best dev evaluation ({devs[1234]:.4f})" in capsys.readouterr().out


def test_a_run_stopped_says_which_model_it_saves(short_list, tmp_path, monkeypatch, capsys):
    real_step = trainer.Trainer.step

    def step(self, i):
        if i in (199, 849):
            os.kill(os.getpid(), signal.SIGINT)  # held while the step runs; honoured after it
        return real_step(self, i)

    monkeypatch.setattr(trainer.Trainer, "step", step)
    flags = ["--data", str(short_list), *OVERFIT, "--keep-best", "--n-hidden", "20"]
    assert train.main([*flags, "--out", str(tmp_path / "early")]) == 130  # before the first evaluation
    out, err = capsys.readouterr()
    assert "interrupted after 200 steps: saving the model as it is" in err
    assert "kept the model of step 200, where the run stopped: it had no dev evaluation yet" in out
    assert json.loads((tmp_path / "early" / "metrics.json").read_text())["best_step"] is None
    assert train.main(["--resume", "--out", str(tmp_path / "early")]) == 130  # stopped again, at step 850
    out, err = capsys.readouterr()
    best = json.loads((tmp_path / "early" / "metrics.json").read_text())["best_step"]
    devs = dev_losses(tmp_path / "early")
    assert best == min(devs, key=devs.get) and sorted(devs) == [250, 500, 750]
    assert f"interrupted after 850 steps: saving the model of step {best}, its best dev evaluation so far" in err
    assert f"kept the model of step {best:,}, the best dev evaluation ({devs[best]:.4f}; the run stopped at step " \
           f"850)" in out


def test_the_warning_for_a_kept_model_learned_by_heart_speaks_of_it(tmp_path, capsys):
    # Its losses are the kept model's, not where the run ended, and fewer --steps is what it already did.
    (tmp_path / "top250.txt").write_text("\n".join(NAMES.read_text().split()[:250]))
    assert train.main(["--data", str(tmp_path / "top250.txt"), "--steps", "4000", "--eval-every", "200", "--keep-best",
                       "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (f"warning: the kept model's training loss, {metrics['train_loss']:.4f}, is far below its dev loss, "
            f"{metrics['dev_loss']:.4f}: the model learned its training items by heart; try a weight decay, "
            f"--weight-decay 0.008 for a list of 250 items or more data\n") in err, err


def test_keep_best_needs_dev_evaluations():
    with pytest.raises(UsageError, match="--keep-best keeps the model of the best dev evaluation, and --eval-every 0 "
                                         "makes none"):
        train.main(["--steps", "10", "--eval-every", "0", "--keep-best"])
    # the default --eval-every, 10,000, makes only the last step's evaluation in 3,000 steps: nothing to choose from
    with pytest.raises(UsageError, match=r"--eval-every 10000 makes one, of the last step, in 3,000 steps; give an "
                                         r"--eval-every below --steps \(e.g. 300\)$"):
        train.main(["--steps", "3000", "--keep-best"])
    with pytest.raises(UsageError, match="--eval-every 3000 makes one"):
        train.main(["--steps", "3000", "--eval-every", "3000", "--keep-best"])
    with pytest.raises(UsageError, match=r"--eval-every 1 makes one, of the last step, in 1 step; give --steps of 2 "
                                         r"or more and an --eval-every below it$"):  # not "e.g. 1", refused again
        train.main(["--steps", "1", "--eval-every", "1", "--keep-best"])
    assert config.config_problem(config.Config(keep_best=1)) == "keep_best is 1, not True or False"


def test_the_estimates_count_the_kept_model():
    base = dict(n_hidden=100, eval_every=100)
    n_params = 27 * 10 + 30 * 100 + 100 + 100 * 27 + 27
    more = (trainer.memory_needed(config.Config(**base, keep_best=True), 27)
            - trainer.memory_needed(config.Config(**base), 27))
    assert more == 2 * n_params * 4  # the model itself, and its copy in the state kept should the run diverge
    assert (space.bytes_to_save(config.Config(**base, keep_best=True), n_params)
            - space.bytes_to_save(config.Config(**base), n_params)) == n_params * 4


@pytest.mark.parametrize("flags", [[], ["--optimizer", "adamw", "--lr", "0.01", "--ema", "0.9"]], ids=["sgd", "ema"])
def test_stopped_and_resumed_equals_one_go(flags, short_list, tmp_path, monkeypatch):
    common = ["--data", str(short_list), *OVERFIT, "--keep-best", "--n-hidden", "50", *flags]
    assert train.main([*common, "--out", str(tmp_path / "whole")]) == 0
    real_step = trainer.Trainer.step

    def step(self, i):
        if i == 1599:  # after the evaluations of steps 250 to 1,500, best among them at one
            os.kill(os.getpid(), signal.SIGINT)  # held while the step runs; honoured after it
        return real_step(self, i)

    monkeypatch.setattr(trainer.Trainer, "step", step)
    assert train.main([*common, "--out", str(tmp_path / "split")]) == 130
    monkeypatch.undo()
    stopped = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert stopped["steps"] == 1600 and stopped["best_step"] in dev_losses(tmp_path / "split")
    assert train.main(["--resume", "--out", str(tmp_path / "split")]) == 0
    a, _, _ = checkpoint.load(tmp_path / "whole" / "model.npz")
    b, _, _ = checkpoint.load(tmp_path / "split" / "model.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    whole, split = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("whole", "split"))
    assert whole["best_step"] == split["best_step"] < 3000 and whole["dev_loss"] == split["dev_loss"]
    assert (tmp_path / "whole" / "loss.csv").read_text() == (tmp_path / "split" / "loss.csv").read_text()


@pytest.fixture(scope="module")
def stopped_runs(short_list, tmp_path_factory):
    """Two runs stopped by Ctrl-C after step 1,600 of 3,000 (6 dev evaluations): kept/ with --keep-best, plain/ without."""
    folder = tmp_path_factory.mktemp("stopped")

    def stop_at_1600(self, i, real_step=trainer.Trainer.step):
        if i == 1599:
            os.kill(os.getpid(), signal.SIGINT)  # held while the step runs; honoured after it
        return real_step(self, i)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer.Trainer, "step", stop_at_1600)
        for name, keep in (("kept", ["--keep-best"]), ("plain", [])):
            assert train.main(["--data", str(short_list), *OVERFIT, *keep, "--n-hidden", "20",
                               "--out", str(folder / name)]) == 130
    return folder


@pytest.mark.parametrize("damage", ["not-a-dev-step", "not-the-best", "past-the-step", "fraction", "nan", "scaled",
                                    "scaled-both", "without-keep-best", "step-gone", "tensor-gone", "all-gone",
                                    "devs-gone", "keep-best-added"])
def test_a_damaged_kept_model_is_refused_in_one_line(damage, stopped_runs, tmp_path):
    # a run without --keep-best, then said to have had it; or one with it
    shutil.copytree(stopped_runs / ("plain" if damage == "keep-best-added" else "kept"), tmp_path, dirs_exist_ok=True)
    with np.load(tmp_path / "model.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    cfg = json.loads(str(arrays["config"]))
    devs = dev_losses(tmp_path)
    if damage == "not-a-dev-step":
        arrays["state.best_step"] = np.array(625)
    elif damage == "not-the-best":  # a later evaluation's step: later ones would be held to its dev loss
        best = min(devs, key=devs.get)
        arrays["state.best_step"] = np.array(max(devs, key=lambda step: step != best))
    elif damage == "past-the-step":
        arrays["state.best_step"] = np.array(2500)
    elif damage == "fraction":
        arrays["state.best_step"] = np.array(250.5)
    elif damage == "nan":
        arrays["state.best.W1"] = np.full_like(arrays["state.best.W1"], np.nan)
    elif damage == "scaled":  # finite, within the bounds a state is checked against: the model beside it tells
        arrays["state.best.W2"] = arrays["state.best.W2"] * 3
    elif damage == "scaled-both":  # and the model too: only its dev loss tells
        arrays["state.best.W2"] = arrays["state.best.W2"] * 3
        arrays["W2"] = arrays["W2"] * 3
    elif damage == "without-keep-best":
        cfg["keep_best"] = False
    elif damage == "step-gone":
        del arrays["state.best_step"]
    elif damage == "tensor-gone":
        del arrays["state.best.b2"]
    elif damage == "devs-gone":
        arrays["state.devs"] = np.zeros((0, 2))
    elif damage == "all-gone":
        arrays = {k: a for k, a in arrays.items() if not k.startswith("state.best")}
    else:
        cfg["keep_best"] = True
    arrays["config"] = np.array(json.dumps(cfg))
    np.savez(tmp_path / "model.npz", **arrays)
    with pytest.raises(UsageError) as e:
        train.main(["--resume", "--out", str(tmp_path)])
    message = str(e.value)
    best = min(devs, key=devs.get)
    why = {"not-a-dev-step": "its kept model is from step 625, where no dev evaluation was made",
           "not-the-best": f"its kept model is from step {max(devs, key=lambda step: step != best)}, not the best, "
                           f"step {best}",
           "all-gone": "it has dev losses from 6 evaluations but no kept model",
           "devs-gone": "its dev losses are at steps none, not the run's every 250 steps",
           "keep-best-added": "it has dev losses from 6 evaluations but no kept model",
           "past-the-step": "the step of the best dev evaluation's model is 2500, not one of the run's 1600 steps",
           "fraction": "the step of the best dev evaluation's model is 250.5",
           "nan": "best.W1 holds NaN or infinite values",
           "scaled": "its model's W2 is not the training state's best.W2",
           "scaled-both": "its kept model's dev loss is ",
           "without-keep-best": "it holds best.C, best.W1, best.W2 (6 in all), which an sgd run does not save",
           "step-gone": "it lacks best_step, which an sgd run with --keep-best saves",
           "tensor-gone": "it lacks best.b2, which an sgd run with --keep-best saves"}[damage]
    # what the file's own checks find (resume.py) names the file; what the Trainer's find, the state
    assert (message.startswith(f"the training state to resume from is damaged ({why}")
            or message.startswith(f"{tmp_path / 'model.npz'} has a damaged training state or config ({why}")), message
    assert message.endswith("; start a new run") and "\n" not in message, message
    assert damage != "scaled-both" or f"not the {devs[best]:.6g} recorded at step {best})" in message, message


class FakeAxes:
    """Just enough of matplotlib's Axes and pyplot for plots.plot_loss, recording what it draws."""

    def __init__(self):
        self.lines = []

    def plot(self, x, y, *style, **kw):
        self.lines.append((list(x), list(y), kw.get("label")))

    def __getattr__(self, name):  # set_xlabel, legend, ...: drawn nowhere
        return lambda *a, **k: None


def test_the_loss_picture_marks_the_kept_step(short_list, tmp_path, monkeypatch):
    ax, drawn = FakeAxes(), {}

    class Figure:
        def savefig(self, stream, **kw):
            stream.write(b"png")

        def tight_layout(self):
            pass

    class Pyplot:
        def subplots(self, **kw):
            return Figure(), ax

        def close(self, fig):
            pass

    real = plots.plot_loss

    def plot_loss(plt, losses, devs, path, kept=None):
        drawn["kept"] = kept
        return real(plt, losses, devs, path, kept)

    monkeypatch.setattr(train_run.plots, "try_pyplot", lambda: (Pyplot(), None))
    monkeypatch.setattr(train_run.plots, "plot_embedding", lambda *a: (tmp_path / "embedding.png").write_bytes(b"png"))
    monkeypatch.setattr(train_run.plots, "plot_loss", plot_loss)
    assert train.main(["--data", str(short_list), *OVERFIT, "--keep-best", "--out", str(tmp_path)]) == 0
    best = json.loads((tmp_path / "metrics.json").read_text())["best_step"]
    assert drawn["kept"] == best < 3000
    marks = [(x, y) for x, y, label in ax.lines if label == f"kept (step {best:,})"]
    assert marks == [([best], [pytest.approx(np.log10(dev_losses(tmp_path)[best]), abs=1e-6)])]
    assert (tmp_path / "loss.png").read_bytes() == b"png"
