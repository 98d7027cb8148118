"""python -m mlp_lm.draw: a saved run's pictures drawn again from its files, with what train drew them from.
CI has no matplotlib: the pictures are recorded by a stand-in for pyplot (test_plots.Recorder)."""
import errno
import os

import numpy as np
import pytest

from mlp_lm import checkpoint, data, draw, latest, model, plots, train
from .conftest import SMALL, stop_training_at
from .test_bad_input import assert_one_line_error, call
from .test_plots import Recorder


@pytest.fixture
def recorded(monkeypatch):
    """Every call of the three picture functions, as (name, its arguments but pyplot), drawn by a Recorder."""
    calls = []
    monkeypatch.setattr(plots, "available", lambda: True)
    monkeypatch.setattr(plots, "try_pyplot", lambda: (Recorder(), None))
    for name in ("plot_loss", "plot_embedding", "plot_lr_sweep"):
        real = getattr(plots, name)

        def recording(plt, *args, _name=name, _real=real, **kw):
            calls.append((_name, args, kw))
            return _real(plt, *args, **kw)
        monkeypatch.setattr(plots, name, recording)
    return calls


def same(a, b):
    """Two recorded calls' arguments are the same: arrays by value, dicts and vocabularies by their items."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if hasattr(a, "itos"):
        return a.itos == b.itos
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b, equal_nan=True)
    return a == b


@pytest.mark.parametrize("keep_best", [False, True])
def test_a_runs_pictures_are_drawn_again_from_what_it_saved(tmp_path, recorded, capsys, keep_best):
    out = tmp_path / "run"
    flags = ["--steps", "120", "--eval-every", "40"] + (["--keep-best"] if keep_best else [])
    assert train.main([*SMALL, *flags, "--out", str(out)]) == 0
    assert {"loss.png", "embedding.png"} <= {p.name for p in out.iterdir()}
    trained = list(recorded)
    for name in ("loss.png", "embedding.png"):
        (out / name).unlink()
    recorded.clear()
    capsys.readouterr()
    code, err = call(draw, [out], capsys)
    assert code == 0, err
    assert [c[0] for c in recorded] == ["plot_loss", "plot_embedding"] == [c[0] for c in trained]
    for (_, a, _), (_, b, _) in zip(recorded, trained):  # the same numbers, and the same files written
        assert same(a, b)
    assert (out / "loss.png").read_bytes() == (out / "embedding.png").read_bytes() == b"png"
    kept = recorded[0][1][3]
    assert (kept is not None) == keep_best and (kept is None or kept in recorded[0][1][1])


def test_a_link_in_a_pictures_place_is_replaced_not_written_through(tmp_path, recorded, capsys):
    # From a hostile review: a loss.png linked to a file outside the run was overwritten with the picture
    out = tmp_path / "run"
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(out)]) == 0
    elsewhere, folder = tmp_path / "mine.txt", tmp_path / "a folder"
    elsewhere.write_text("a user's own file")
    folder.mkdir()
    (out / "loss.png").unlink()
    (out / "loss.png").symlink_to(elsewhere)
    (out / "embedding.png").unlink()
    (out / "embedding.png").symlink_to(folder)
    capsys.readouterr()
    code, err = call(draw, [out], capsys)
    assert code == 0, err
    assert elsewhere.read_text() == "a user's own file" and list(folder.iterdir()) == []
    for name in ("loss.png", "embedding.png"):
        assert not (out / name).is_symlink() and (out / name).read_bytes() == b"png"
    (out / "loss.png").unlink()
    (out / "loss.png").symlink_to(tmp_path / "nothing")  # a link to nothing is replaced too, nothing made there
    assert call(draw, [out], capsys)[0] == 0
    assert not (tmp_path / "nothing").exists() and (out / "loss.png").read_bytes() == b"png"

def test_a_sweeps_picture_is_drawn_again_from_its_table(tmp_path, recorded, capsys):
    out = tmp_path / "sweep"
    assert train.main([*SMALL, "--lr-sweep", "--steps", "300", "--out", str(out)]) == 0
    (name, (lre, losses, _, rows, suggested), _), = recorded
    recorded.clear()
    code, err = call(draw, [out / "lr_sweep.csv"], capsys)  # a path to the table names its folder
    assert code == 0, err
    (_, (lre2, losses2, path, rows2, suggested2), _), = recorded
    assert path == out / "lr_sweep.png" and path.read_bytes() == b"png"
    assert np.array_equal(lre, lre2)  # the sweep's own exponents, not the table's rounded rates
    np.testing.assert_allclose(losses2, losses, atol=5e-7)  # the table's six decimals
    assert suggested2 == suggested
    np.testing.assert_allclose(np.array(rows2, dtype=float), np.array(rows, dtype=float), atol=5e-7)


def test_a_model_saved_from_python_has_its_embedding_drawn_and_no_loss_curve(tmp_path, recorded, capsys):
    params = model.init_params(3, 2, 2, 2)
    checkpoint.save(tmp_path / "model.npz", params, data.Vocab(".ab"), {"block_size": 2})
    code, err = call(draw, [tmp_path], capsys)
    assert code == 0, err
    assert [c[0] for c in recorded] == ["plot_embedding"]
    assert np.array_equal(recorded[0][1][0], params["C"])


def test_the_default_is_the_newest_run(tmp_path, recorded, capsys, monkeypatch):
    monkeypatch.setattr(latest, "in_checkout", lambda rel: tmp_path / rel)
    code, err = call(draw, [], capsys)
    assert_one_line_error(code, err, "no trained model under", "python -m mlp_lm.train")
    from mlp_lm.runlock import RunLock
    (tmp_path / "runs" / "a").mkdir(parents=True)
    with RunLock(tmp_path / "runs" / "a"):  # a training there has saved nothing yet: said, not "train one"
        code, err = call(draw, [], capsys)
    assert_one_line_error(code, err, f"a training is writing to {tmp_path / 'runs' / 'a'} and has saved nothing",
                          "wait for it")
    (tmp_path / "runs" / "results" / "lecture").mkdir(parents=True)
    with RunLock(tmp_path / "runs" / "results" / "lecture"):  # results' runs, a level down (a reviewer's)
        code, err = call(draw, [], capsys)
    assert_one_line_error(code, err, f"a training is writing to {tmp_path / 'runs' / 'results' / 'lecture'}")
    (tmp_path / "runs" / "results" / "lecture").rmdir()
    (tmp_path / "runs" / "results").rmdir()
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path / "runs" / "a")]) == 0
    capsys.readouterr()
    code, err = call(draw, [], capsys)
    assert code == 0, err
    assert (tmp_path / "runs" / "a" / "embedding.png").exists()
    # a sweep newer than the newest model is the newest run (a hostile pass: draw drew the model's folder, not the
    # sweep just run before matplotlib came), and a model newer than it is again
    assert train.main([*SMALL, "--lr-sweep", "--steps", "24", "--out", str(tmp_path / "runs" / "sweep")]) == 0
    (tmp_path / "runs" / "sweep" / "lr_sweep.png").unlink(missing_ok=True)
    capsys.readouterr()
    assert call(draw, [], capsys)[0] == 0 and (tmp_path / "runs" / "sweep" / "lr_sweep.png").exists()
    os.utime(tmp_path / "runs" / "a" / "model.npz")
    (tmp_path / "runs" / "a" / "embedding.png").unlink()
    assert call(draw, [], capsys)[0] == 0 and (tmp_path / "runs" / "a" / "embedding.png").exists()


def test_without_matplotlib_it_says_how_to_get_it(saved, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plots, "available", lambda: False)
    code, err = call(draw, [saved], capsys)
    assert_one_line_error(code, err, "matplotlib is not installed", "pip install -e '.[plot]'", "run this again")
    # but a damaged run, or a sweep with nothing to draw, is said first (a hostile pass: it asked for matplotlib, to
    # refuse the table or draw nothing once it was installed)
    (tmp_path / "model.npz").write_bytes(b"")
    code, err = call(draw, [tmp_path], capsys)
    assert_one_line_error(code, err, "is not a .npz archive")
    (tmp_path / "model.npz").unlink()
    rows = (saved / "lr_sweep.csv").read_text().splitlines()
    (tmp_path / "lr_sweep.csv").write_text("\n".join([rows[0], *(r.rsplit(",", 1)[0] + ",nan" for r in rows[1:])]) + "\n")
    assert draw.main([str(tmp_path)]) == 0 and "diverged, so it has no picture" in capsys.readouterr().out


def good_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("drawn")
    assert train.main([*SMALL, "--steps", "30", "--eval-every", "10", "--out", str(out)]) == 0
    assert train.main([*SMALL, "--lr-sweep", "--steps", "24", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return good_run(tmp_path_factory)


def with_state(path, dst, **changes):
    """A copy of the model.npz at `path` in `dst` with its training state's arrays replaced by `changes` (None:
    taken out)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update({f"state.{k}": np.asarray(v) for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[f"state.{k}"]
    dst.mkdir(exist_ok=True)
    np.savez(dst / "model.npz", **arrays)
    return dst


@pytest.mark.parametrize("bad, words", [
    ("missing", ["does not exist", "pass a run's folder"]),
    ("empty", ["holds no run to draw", "neither a model.npz nor an lr_sweep.csv"]),
    ("a file", ["is not a folder"]),
    ("no text", ["empty text"]),
    ("damaged model", ["is not a .npz archive"]),
    ("negative loss", ["damaged training history", "losses that are not losses"]),
    ("steps beyond", ["damaged training history", "step 999 of 30"]),
    ("part of a history", ["damaged training history (it has no devs)"]),  # was taken for a model saved from Python
    ("a folder of runs", ["holds runs in folders of their own: pass one, such as", "/run/a"]),
    ("table header", ["is not a table", "step,lr,loss"]),
    ("table empty", ["is not a table", "step,lr,loss"]),
    ("table of a header", ["is not a table", "no rows of three numbers"]),
    ("table fifo", ["is not a table", "not a regular file"]),
    ("table words", ["is not a table", "ValueError"]),
    ("table rates", ["is not a table", "evenly spaced"]),
    ("table loss", ["is not a table", "negative or infinite"]),
    ("table loss after a blow-up", ["is not a table", "a loss after a NaN"]),  # a hostile pass: drawn, exit 0
    ("table columns", ["is not a table", "no rows of three numbers"]),
    ("picture is a folder", ["could not draw", "embedding.png", "Is a directory"]),
])
def test_bad_runs_are_one_line(saved, tmp_path, recorded, capsys, bad, words):
    folder = tmp_path / "run"
    folder.mkdir()
    table = (saved / "lr_sweep.csv").read_text()
    rows = table.splitlines()
    arg = folder
    if bad == "missing":
        arg = tmp_path / "nowhere"
    elif bad == "a file":
        arg = saved / "loss.csv"
    elif bad == "no text":
        arg = ""
    elif bad == "damaged model":
        (folder / "model.npz").write_bytes(b"not a zip")
    elif bad == "negative loss":
        losses = np.full(30, 2.0)
        losses[3] = -1
        with_state(saved / "model.npz", folder, losses=losses)
    elif bad == "part of a history":
        with_state(saved / "model.npz", folder, devs=None)
    elif bad == "a folder of runs":  # runs/results, say
        (folder / "a").mkdir()
        (folder / "a" / "model.npz").write_bytes((saved / "model.npz").read_bytes())
    elif bad == "steps beyond":
        with_state(saved / "model.npz", folder, step=999)
    elif bad == "table fifo":
        os.mkfifo(folder / "lr_sweep.csv")
    elif bad == "empty":
        (folder / "loss.csv").write_text("step,train_loss,dev_loss\n")  # a run's other file draws nothing
    elif bad == "picture is a folder":
        (folder / "model.npz").write_bytes((saved / "model.npz").read_bytes())
        (folder / "embedding.png").mkdir()
    else:
        edited = {"table header": ["step,rate,loss", *rows[1:]],
                  "table words": [rows[0], "1,0.001,three", *rows[2:]],
                  "table rates": [rows[0], rows[1].replace("0.001", "0.002"), *rows[2:]],
                  "table loss": [rows[0], *rows[1:-1], rows[-1].rsplit(",", 1)[0] + ",-2.5"],
                  "table loss after a blow-up": [rows[0], rows[1].rsplit(",", 1)[0] + ",nan", *rows[2:]],
                  "table columns": [rows[0], *[r.rsplit(",", 1)[0] for r in rows[1:]]], "table empty": [], "table of a header": rows[:1]}[bad]
        (folder / "lr_sweep.csv").write_text("\n".join(edited) + "\n")
    code, err = call(draw, [arg], capsys)
    assert_one_line_error(code, err, *words)
    assert bad != "picture is a folder" or err.strip().endswith(
        "; the run's own files are untouched: move what is in a picture's place away and run this again")
    # (hostile reviews: what is wrong and not what to do; then, on a full disk, the advice for a folder)
    assert draw.what_to_do([errno.ENOSPC, errno.EISDIR]) == "free some space and move what is in a picture's place away"
    assert draw.what_to_do([errno.EACCES, errno.ENOSPC, None]) == \
        "free some space and let this user write the folder and move what is in a picture's place away"
    assert draw.what_to_do([errno.EROFS]) == "copy the run to a folder on a file system mounted for writing"


def test_a_sweep_that_blew_up_is_drawn_with_its_gaps(saved, tmp_path, recorded, capsys):
    rows = (saved / "lr_sweep.csv").read_text().splitlines()
    blown = rows[:-5] + [r.rsplit(",", 1)[0] + ",nan" for r in rows[-5:]]  # as the sweep leaves the rates past it
    (tmp_path / "lr_sweep.csv").write_text("\n".join(blown) + "\n")
    code, err = call(draw, [tmp_path], capsys)
    assert code == 0, err
    (_, (lre, losses, *_), _), = recorded
    assert np.isnan(losses[-5:]).all() and np.isfinite(losses[:-5]).all()


def test_a_sweep_whose_every_rate_blew_up_has_no_picture(saved, tmp_path, recorded, capsys):
    # From a hostile pass: an empty picture, drawn with exit 0; the sweep itself says every rate diverged
    rows = (saved / "lr_sweep.csv").read_text().splitlines()
    (tmp_path / "lr_sweep.csv").write_text("\n".join([rows[0], *(r.rsplit(",", 1)[0] + ",nan" for r in rows[1:])]) + "\n")
    recorded.clear()
    capsys.readouterr()
    assert draw.main([str(tmp_path)]) == 0 and not recorded
    assert capsys.readouterr().out == f"(every rate of the sweep in {tmp_path / 'lr_sweep.csv'} diverged, so it has no picture)\n"
    from mlp_lm import sweep  # nor does the sweep draw one, or say that matplotlib would have been needed for it
    lre, losses = sweep.read_table(tmp_path / "lr_sweep.csv")
    sweep.report_sweep(lre, losses, tmp_path)
    assert not recorded and capsys.readouterr().out.splitlines()[-2:] == [
        "every rate diverged: check the data and the model size", f"wrote {tmp_path / 'lr_sweep.csv'}"]


def test_a_stopped_runs_pictures_are_of_the_steps_it_took(tmp_path, recorded, capsys, monkeypatch):
    stop_training_at(monkeypatch, 50)  # Ctrl-C in step 51 of 120: the run is saved as it was, to be resumed
    out = tmp_path / "run"
    assert train.main([*SMALL, "--steps", "120", "--eval-every", "20", "--out", str(out)]) == 130
    recorded.clear()
    capsys.readouterr()
    code, err = call(draw, [out], capsys)
    assert code == 0, err
    (_, (losses, devs, _, kept), _), _ = recorded
    assert len(losses) == 50 and sorted(devs) == [20, 40] and kept is None


def test_a_matplotlib_that_will_not_load_is_one_line_saying_how_to_see_why(saved, monkeypatch, capsys):
    monkeypatch.setattr(plots, "available", lambda: True)
    monkeypatch.setattr(plots, "try_pyplot", lambda: (None, "matplotlib did not load (ValueError: nonsense), so no pictures"))
    code, err = call(draw, [saved], capsys)
    assert_one_line_error(code, err, "matplotlib did not load (ValueError: nonsense), so no pictures: "
                                     "python -c 'import matplotlib.pyplot' shows why")
