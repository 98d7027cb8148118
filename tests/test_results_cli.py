"""python -m mlp_lm.results and python -m mlp_lm.sweep as commands: reruns, conflicting flags, --docs,
an interrupted run. The n-gram and mixture work (seconds) is replaced by stand-ins where a test is
about something else, so the file stays quick."""
import json
import math
import os
import shutil
import signal
import threading
import time

import pytest

from mlp_lm import aside, checkpoint, cli, results, results_markdown, results_table, train, train_flags
from mlp_lm.cli import UsageError
from mlp_lm.results_markdown import GENERATED

from .conftest import SMALL, no_real_losses, put_results_run, results_metrics, run_cli, stop_training_at


def fill_runs(runs, steps=None, skip=()):
    """A metrics.json for every run in `runs` (each at the steps its flags give, or at `steps`)."""
    for name in results.CONFIGS:
        if name not in skip:
            m = results_metrics(steps or train_flags.parse_args(results.CONFIGS[name][1]).cfg.steps, name=name)
            put_results_run(runs / name, m)


def unchecked_losses(monkeypatch):
    """The runs' losses are not checked against their models (seconds a run: tested alone), so the runs
    made from now on need not work out their models' real losses (seconds too)."""
    monkeypatch.setattr(results_table, "loss_problem", lambda params, config, m: None)
    no_real_losses(monkeypatch)


@pytest.fixture
def no_counting(monkeypatch):
    """Skip the n-grams and the mixtures; fail a test that reaches them when it should not."""
    return no_counting_again(monkeypatch)


def no_counting_again(monkeypatch):
    """no_counting, set again after a test's monkeypatch.undo()."""
    calls = []

    def ngrams(data):
        calls.append(data)
        return {}
    monkeypatch.setattr(results, "ngram_rows", ngrams)
    monkeypatch.setattr(results, "mixture_row", lambda run_dir: None)
    unchecked_losses(monkeypatch)
    render = results.render
    monkeypatch.setattr(results, "render", lambda rows, ngrams, mixes, machine, steps=None:
                        render(rows, ngrams, {}, machine, steps))
    return calls


def refusal(argv):
    with pytest.raises(UsageError) as e:
        results.main(argv)
    assert "\n" not in str(e.value)
    return str(e.value)


# 1. A quick run into a folder that holds an earlier quick run replaces it, even when it gets nowhere.

def test_a_rerun_replaces_an_earlier_run_that_got_nowhere(tmp_path, no_counting, capfd):
    runs = tmp_path / "r"
    fill_runs(runs, steps=300, skip=("lecture",))
    argv = ["--steps", "300", "--runs", str(runs), "--only", "lecture"]
    # the earlier run: at 300 steps the lecture's init gets nowhere (dev loss above ln 27)
    first = run_cli("mlp_lm.train", "--init", "lecture", "--steps", "300", "--eval-every", "0",
                    "--out", runs / "lecture")
    assert first.returncode == 0, first.stderr
    (runs / "lecture" / "unconverged").mkdir()  # what an earlier run that got nowhere left there
    (runs / "lecture" / "unconverged" / "metrics.json").write_text("{}")
    before = (runs / "lecture" / "model.npz").stat().st_mtime_ns
    assert results.main(argv) == 0
    lecture = runs / "lecture"
    assert (lecture / "model.npz").stat().st_mtime_ns > before and not (lecture / "unconverged").exists()
    m = json.loads((lecture / "metrics.json").read_text())
    assert m["steps"] == 300 and m["dev_loss"] > math.log(27)
    table = (runs / "results.md").read_text()
    assert "300 steps each" in table
    # (the stand-in runs beside it are untrained models, at a uniform guess too)
    assert "**Got nowhere:** lecture, " in table and "the dev loss is no better than a uniform guess" in table


def test_a_rerun_the_training_refuses_keeps_the_earlier_run(tmp_path, no_counting, capfd, monkeypatch):
    # results now refuses such --steps itself, before any work; the training's own refusal (of what results
    # cannot foresee: memory, the data) is what is tested here, so results' check is left out
    monkeypatch.setattr(results, "parse_train_flags", lambda argv: None)
    runs = tmp_path / "r"
    fill_runs(runs, steps=300, skip=("lecture",))
    first = run_cli("mlp_lm.train", "--init", "lecture", "--steps", "300", "--eval-every", "0", "--out", runs / "lecture")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in (runs / "lecture").iterdir()}
    # train refuses --steps past its limit: the earlier run must not have been thrown away for it
    message = refusal(["--steps", "99999999999", "--runs", str(runs), "--only", "lecture"])
    # (a hostile review: train's advice, relayed, was to "pass another --out", a flag results has not)
    assert message == ("the run lecture did not finish (exit code 2) (the earlier run there stays); "
                       f"see its messages above (its --out is {runs / 'lecture'}, which results' --runs decides)")
    assert {p.name: p.read_bytes() for p in (runs / "lecture").iterdir()} == before
    assert sorted(p.name for p in runs.iterdir()) == sorted(results.CONFIGS)  # nothing left aside
    assert "more than this program will run" in capfd.readouterr().err


def test_the_table_says_which_runs_got_nowhere():
    rows = [("lecture", "x", results_metrics(dev=3.5)), ("scaled", "y", results_metrics(dev=2.1))]
    text = results.render(rows, {}, {}, "a test machine", 300)
    assert "**Got nowhere:** lecture: the dev loss is no better than a uniform guess (ln 27 = 3.296)" in text
    assert "Got nowhere" not in results.render(rows[1:], {}, {}, "a test machine", 300)


# 2. Flags that contradict each other are refused in one line, before any work.

@pytest.mark.parametrize("argv,words", [
    (["--no-train", "--steps", "5"], ["--no-train", "--steps", "leave it out"]),
    (["--no-train", "--only", "lecture"], ["--no-train", "--only", "leave out one"]),
    (["--steps", "5", "--docs", "somewhere"], ["--docs", "--write-docs"]),
    (["--no-train", "--docs", "somewhere"], ["--docs", "--write-docs"]),
    # a hostile tester's: train refused it in the first run, after its data and model lines, and results in a second
    (["--steps", "99999999999999999999"], ["--steps 99,999,999,999,999,999,999 is more than this program will run"]),
    (["--only", "best", "--steps", "1000000001"], ["--steps 1,000,000,001 is more than"]),
])
def test_conflicting_flags_are_refused_in_one_line(argv, words, tmp_path, no_counting, monkeypatch):
    monkeypatch.setattr(aside, "train_run", lambda flags: pytest.fail("trained despite the conflict"))
    message = refusal(argv + ["--runs", str(tmp_path)])
    assert all(w in message for w in words), message
    assert not no_counting and not any(tmp_path.iterdir())


def test_the_docs_folder_is_no_runs_folder(tmp_path, no_counting, monkeypatch):
    # From a hostile tester: --steps 50 --runs docs wrote the quick table over docs/results.md, then said
    # "docs left as it was".
    from mlp_lm import wordfile
    monkeypatch.setattr(aside, "train_run", lambda flags: pytest.fail("trained into the docs folder"))
    docs = tmp_path / "docs"  # the checkout's docs/, here
    monkeypatch.setattr(results, "in_checkout",
                        lambda relative: docs if relative == "docs" else wordfile.in_checkout(relative))
    docs.mkdir()
    (tmp_path / "link").symlink_to(docs)
    fill_runs(tmp_path / "elsewhere", steps=300)
    for argv in (["--steps", "50"], ["--no-train"], ["--no-train", "--write-docs"], [],
                 ["--no-train", "--write-docs", "--docs", str(tmp_path / "link")]):
        for runs in (docs, tmp_path / "link", docs / ".." / "docs"):
            message = refusal([*argv, "--runs", str(runs)])
            assert "is the docs folder" in message and "name another folder for the runs" in message, message
    assert not any(docs.iterdir())
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")  # Path.resolve raised RuntimeError on a loop
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    for argv in (["--no-train", "--runs", str(tmp_path / "loop1" / "sub")],
                 ["--no-train", "--write-docs", "--runs", str(tmp_path / "elsewhere"), "--docs", str(tmp_path / "loop1")],
                 ["--steps", "50", "--runs", str(tmp_path / "loop1" / "sub")]):
        refusal(argv)  # one line, as before the check
    assert results.main(["--no-train", "--runs", str(tmp_path / "elsewhere")]) == 0  # another folder is fine
    assert not any(docs.iterdir()) and (tmp_path / "elsewhere" / "results.md").exists()


def test_the_runs_table_is_no_link_to_the_documented_one(tmp_path, no_counting, monkeypatch):
    # From a hostile tester: runs/results.md made a link to docs/results.md, and --no-train (or --steps)
    # wrote the quick table through it, then said "docs left as it was".
    from mlp_lm import wordfile
    docs, runs = tmp_path / "docs", tmp_path / "runs"
    monkeypatch.setattr(results, "in_checkout",
                        lambda relative: docs if relative == "docs" else wordfile.in_checkout(relative))
    docs.mkdir()
    DOCUMENTED = f"{GENERATED}\nthe documented table\n"  # (a results.md that says it is generated, as results writes)
    (docs / "results.md").write_text(DOCUMENTED)
    fill_runs(runs, steps=300)
    (runs / "results.md").symlink_to(docs / "results.md")
    monkeypatch.setattr(aside, "train_run", lambda flags: pytest.fail("trained despite the link"))
    for argv in (["--no-train"], ["--steps", "50"], ["--only", "lecture"]):
        message = refusal([*argv, "--runs", str(runs)])
        assert message == (f"{runs / 'results.md'} is a link to {docs / 'results.md'}, the documented table, which "
                           f"this command leaves as it is; remove the link, or add --write-docs to write both")
    assert (docs / "results.md").read_text() == DOCUMENTED
    assert results.main(["--no-train", "--write-docs", "--runs", str(runs)]) == 0  # asked for: both written
    assert "300 steps each" in (docs / "results.md").read_text()
    (runs / "results.md").unlink()
    (docs / "results.md").write_text(DOCUMENTED)

    def link_made_meanwhile(data):  # while the runs trained or the n-grams counted
        (runs / "results.md").symlink_to(docs / "results.md")
        return {}
    monkeypatch.setattr(results, "ngram_rows", link_made_meanwhile)
    assert "is a link to" in refusal(["--no-train", "--runs", str(runs)])
    assert (docs / "results.md").read_text() == DOCUMENTED
    # From a second hostile pass: tables.json, written first and always, went through its link too
    (runs / "results.md").unlink()
    monkeypatch.undo()  # the n-grams counted as no_counting has them
    monkeypatch.setattr(results, "in_checkout",
                        lambda relative: docs if relative == "docs" else wordfile.in_checkout(relative))
    no_counting_again(monkeypatch)
    model = (runs / "scaled" / "model.npz").read_bytes()
    (tmp_path / "names.txt").write_text("the training data\n")
    for target in (docs / "results.md", docs / "embedding.png", runs / "results.md", runs / "scaled" / "model.npz",
                   tmp_path / "names.txt", tmp_path / "nowhere.json"):  # a third pass: any file, even none yet
        (runs / "tables.json").unlink(missing_ok=True)
        (runs / "tables.json").symlink_to(target)
        for argv in (["--no-train"], ["--no-train", "--write-docs"]):
            assert f"tables.json is a symbolic link (to {target}), which writing the table would write through" in \
                refusal([*argv, "--runs", str(runs)]), (target, argv)
    assert (docs / "results.md").read_text() == DOCUMENTED and not (docs / "embedding.png").exists()
    assert (runs / "scaled" / "model.npz").read_bytes() == model and not (tmp_path / "nowhere.json").exists()
    assert (tmp_path / "names.txt").read_text() == "the training data\n"
    (runs / "tables.json").unlink()
    (runs / "results.md").symlink_to(tmp_path / "names.txt")  # written when docs are not
    assert "results.md is a symbolic link" in refusal(["--no-train", "--runs", str(runs)])
    (runs / "results.md").unlink()
    (runs / "tables.json").mkdir()  # met by the write only after the counting, before
    assert "tables.json is not a file" in refusal(["--no-train", "--runs", str(runs)])
    (runs / "tables.json").rmdir()
    # a fourth pass: with --write-docs, a link at the docs' results.md replaced the training data
    (docs / "results.md").rename(docs / "kept.md")
    for name in ("results.md", "embedding.png"):
        (docs / name).symlink_to(tmp_path / "names.txt")
        assert f"{docs / name} is a symbolic link (to {tmp_path / 'names.txt'})" in refusal(
            ["--no-train", "--write-docs", "--runs", str(runs)])
        (docs / name).unlink()
        (docs / name).mkdir()
        assert f"{docs / name} is not a file" in refusal(["--no-train", "--write-docs", "--runs", str(runs)])
        (docs / name).rmdir()
    assert (tmp_path / "names.txt").read_text() == "the training data\n"
    (docs / "kept.md").rename(docs / "results.md")
    assert results.main(["--no-train", "--runs", str(runs)]) == 0 and (runs / "tables.json").is_file()


def test_conflicting_flags_end_the_command_with_exit_code_2(tmp_path):
    proc = run_cli("mlp_lm.results", "--no-train", "--steps", "5", "--runs", tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("python -m mlp_lm.results: error: --no-train") and not proc.stdout


# 2b. --no-train takes the steps from the runs, so a table of quick runs does not claim the full budget.

def test_no_train_tables_give_the_steps_the_runs_were_trained_for(tmp_path, no_counting):
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    fill_runs(runs, steps=300)
    docs.mkdir()
    assert results.main(["--no-train", "--runs", str(runs), "--docs", str(docs), "--write-docs"]) == 0
    assert "300 steps each; a quick look" in (docs / "results.md").read_text()


def test_the_full_budget_keeps_the_documented_caption(tmp_path, no_counting):
    fill_runs(tmp_path)
    assert results.main(["--no-train", "--runs", str(tmp_path)]) == 0
    assert "200,000 steps of batch 32" in (tmp_path / "results.md").read_text()


def test_a_run_stopped_early_is_not_tabulated_as_finished(tmp_path, no_counting):
    fill_runs(tmp_path)
    m = results_metrics(steps=200000)
    m["steps"] = 1500
    put_results_run(tmp_path / "scaled", m)
    message = refusal(["--no-train", "--runs", str(tmp_path)])
    assert "stopped at step 1,500 of 200,000" in message
    assert f"python -m mlp_lm.train --resume --out {tmp_path / 'scaled'}" in message


# 3. --docs is checked before any work, is never created, and the messages name it.

@pytest.mark.parametrize("kind", ["file", "missing"])
def test_a_bad_docs_folder_is_refused_before_any_work(kind, tmp_path, no_counting):
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    fill_runs(runs)
    if kind == "file":
        docs.write_text("not a folder")
    message = refusal(["--no-train", "--runs", str(runs), "--docs", str(docs), "--write-docs"])
    assert f"--docs {docs}" in message and ("not a folder" if kind == "file" else "does not exist") in message
    assert not no_counting  # refused before the n-grams
    assert kind == "file" or not docs.exists()


def test_the_picture_message_names_the_docs_folder_given(tmp_path, no_counting, capsys):
    runs, docs = tmp_path / "runs", tmp_path / "elsewhere"
    fill_runs(runs)
    docs.mkdir()
    assert results.main(["--no-train", "--runs", str(runs), "--docs", str(docs), "--write-docs"]) == 0
    out = capsys.readouterr().out
    assert f"{docs / 'embedding.png'} left as it was" in out and "docs/" not in out
    assert (docs / "results.md").is_file()


def test_the_picture_is_copied_whole_or_the_failure_named(tmp_path, no_counting, capsys, monkeypatch):
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    PNG = results_markdown.PNG_SIGNATURE  # pictures are PNG files: results writes only over one
    fill_runs(runs)
    docs.mkdir()
    (runs / results.PICTURE_RUN / "embedding.png").write_bytes(PNG + b"the new picture")
    (docs / "embedding.png").write_bytes(PNG + b"the old picture")
    assert results.main(["--no-train", "--runs", str(runs), "--docs", str(docs), "--write-docs"]) == 0
    assert (docs / "embedding.png").read_bytes() == PNG + b"the new picture"
    real = results.write_whole

    def full_disk(path, data):
        if path.name == "embedding.png":
            raise OSError(28, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(results, "write_whole", full_disk)
    (runs / results.PICTURE_RUN / "embedding.png").write_bytes(PNG + b"a newer picture")
    message = refusal(["--no-train", "--runs", str(runs), "--docs", str(docs), "--write-docs"])
    assert "No space left" in message and str(docs / "embedding.png") in message and "table is written" in message
    assert (docs / "embedding.png").read_bytes() == PNG + b"the new picture"  # the old one, whole


@pytest.mark.parametrize("error", [28, 13])  # ENOSPC, EACCES
def test_a_table_that_cannot_be_written_says_why_and_what_to_do(error, tmp_path, no_counting, monkeypatch):
    # From a hostile tester: a full disk (after the counting) was told to "pass writable --docs and --runs",
    # --docs even where nothing went to docs
    runs = tmp_path / "runs"
    fill_runs(runs, steps=300)

    def cannot(path, data):
        raise OSError(error, os.strerror(error), str(path))
    monkeypatch.setattr(results, "write_whole", cannot)
    message = refusal(["--no-train", "--runs", str(runs)])
    if error == 28:
        assert message == (f"cannot write the table: No space left on device ({runs / 'tables.json'}); free some "
                           f"space there, then write it from the saved runs: python -m mlp_lm.results --no-train "
                           f"--runs {runs}")
    else:
        assert message == f"cannot write the table: Permission denied ({runs / 'tables.json'}); pass a writable --runs"


# 4. python -m mlp_lm.sweep is a library module: run as a command it says where the command is.

@pytest.mark.parametrize("argv", [[], ["--help"], ["--bogus"]])
def test_sweep_is_not_a_command(argv):
    proc = run_cli("mlp_lm.sweep", *argv)
    assert proc.returncode == 2 and not proc.stdout, proc
    assert len(proc.stderr.strip().splitlines()) == 1 and "python -m mlp_lm.train --lr-sweep" in proc.stderr


# 5. A stopped results run says how to finish the results, not only the one training.

@pytest.mark.parametrize("only,then", [("lecture,embd2", "--only embd2 --steps 300"), ("lecture", "--no-train")])
def test_an_interrupted_run_says_how_to_finish_the_results(only, then, tmp_path, no_counting, monkeypatch, capsys):
    runs = tmp_path / "r"
    fill_runs(runs, steps=300)

    def stopped(flags):  # the training saved what it had where it was told, then exited as after Ctrl-C
        out = flags[flags.index("--out") + 1]
        (results.Path(out) / "model.npz").write_bytes(b"unfinished")
        return 130
    monkeypatch.setattr(aside, "train_run", stopped)
    code = results.main(["--steps", "300", "--runs", str(runs), "--only", only])
    assert code == 130 and not no_counting
    err = capsys.readouterr().err.strip().splitlines()
    # the earlier, finished run is not lost to the Ctrl-C (a hostile tester's): it stays set aside, and says where
    kept, = runs.glob(".lecture-earlier-*")
    assert json.loads((kept / "metrics.json").read_text())["steps"] == 300
    assert err == [f"results: the earlier lecture run is kept in {kept} until the stopped one is finished, when the "
                   f"next results run here removes it; to keep it instead, move its files back into "
                   f"{runs / 'lecture'} in place of the stopped one's",
                   f"results: stopped in the run lecture, saved unfinished in {runs / 'lecture'}; to finish: "
                   f"python -m mlp_lm.train --resume --out {runs / 'lecture'}, then python -m mlp_lm.results "
                   f"{then} --runs {runs}"]
    # a third pass: the next results run removed it while the stopped run was still unfinished, then refused
    # that run, so the command that took the finished run did nothing else
    stopped = {**results_metrics(300, name="lecture"), "steps": 120, "evaluated": False, "interrupted": True}
    (runs / "lecture" / "metrics.json").write_text(json.dumps(stopped))
    assert "is of a run stopped at step 120 of 300" in refusal(["--no-train", "--runs", str(runs)])
    assert "the earlier lecture run stays set aside in" in capsys.readouterr().err and kept.is_dir()
    (runs / "lecture" / "model.npz").unlink()  # as the resumed run would have: a finished run of its own
    put_results_run(runs / "lecture", {**results_metrics(300, name="lecture"), "evaluated": True, "interrupted": False})
    assert results.main(["--no-train", "--runs", str(runs)]) == 0
    assert not kept.exists()  # the next results run removed it, as said


def test_a_set_aside_run_goes_once_a_retraining_in_its_place_is_finished(tmp_path, no_counting, monkeypatch, capsys):
    # From a hostile review: after a stopped retraining, a results run that retrained the run to the end left the
    # earlier one set aside (4 MB of the preset's) until the results run after it; and --no-train, meanwhile,
    # said to retrain the stopped run, where resuming it loses nothing.
    runs = tmp_path / "r"
    fill_runs(runs, steps=300)

    def stopped(flags):  # saved what it had, unevaluated, then exited as after Ctrl-C
        out = results.Path(flags[flags.index("--out") + 1])
        (out / "model.npz").write_bytes(b"unfinished")
        m = {**results_metrics(300, name="lecture"), "steps": 120, "evaluated": False, "interrupted": True}
        for unevaluated in ("dev_loss", "test_loss", "train_loss"):
            del m[unevaluated]
        (out / "metrics.json").write_text(json.dumps(m))
        return 130
    monkeypatch.setattr(aside, "train_run", stopped)
    assert results.main(["--steps", "300", "--runs", str(runs), "--only", "lecture"]) == 130
    kept, = runs.glob(".lecture-earlier-*")
    assert refusal(["--no-train", "--runs", str(runs)]) == (
        f"{runs / 'lecture' / 'metrics.json'} is of a run stopped at step 120 of 300: finish it with python -m "
        f"mlp_lm.train --resume --out {runs / 'lecture'}, or retrain it")
    capsys.readouterr()

    def trained(flags):
        put_results_run(flags[flags.index("--out") + 1],
                        {**results_metrics(300, name="lecture"), "evaluated": True, "interrupted": False})
        return 0
    monkeypatch.setattr(aside, "train_run", trained)
    assert results.main(["--steps", "300", "--runs", str(runs), "--only", "lecture"]) == 0
    err = capsys.readouterr().err
    assert "results: removed the earlier lecture run that an unfinished results run had set aside" in err
    assert not kept.exists() and not list(runs.glob(".lecture-earlier-*"))


def test_a_stop_while_a_retrained_run_is_checked_says_how_to_finish(tmp_path, no_counting, monkeypatch, capsys):
    # From a hostile tester: Ctrl-C while results evaluated the run it had just retrained said only
    # "interrupted (SIGINT)"; the run is whole, so what is left is the rest.
    runs = tmp_path / "r"
    fill_runs(runs, steps=300)

    def trained(flags):
        put_results_run(flags[flags.index("--out") + 1],
                        {**results_metrics(300, name="lecture"), "evaluated": True, "interrupted": False})
        return 0

    def stopped(name, *args):
        raise KeyboardInterrupt
    monkeypatch.setattr(aside, "train_run", trained)
    monkeypatch.setattr(results, "read_run", stopped)
    try:
        assert results.main(["--steps", "300", "--runs", str(runs), "--only", "lecture,embd2"]) == 130
    except KeyboardInterrupt:
        pytest.fail("the stop came out of results.main as it was, with no word of how to finish")
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"results: stopped after the run lecture was complete; to finish: python -m mlp_lm.results --only embd2 "
        f"--steps 300 --runs {runs}")


def test_a_run_stopped_before_saving_anything_is_retrained(tmp_path, no_counting, monkeypatch, capsys):
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    fill_runs(runs)
    docs.mkdir()
    monkeypatch.setattr(aside, "train_run", lambda flags: 143)
    assert results.main(["--runs", str(runs), "--docs", str(docs)]) == 143
    assert json.loads((runs / "lecture" / "metrics.json").read_text())["steps"] == 200000  # the earlier run is back
    assert capsys.readouterr().err.strip() == (
        f"results: stopped before the run lecture saved anything; to finish: python -m mlp_lm.results --only "
        f"{','.join(results.CONFIGS)} --runs {runs} --write-docs --docs {docs}")


def test_a_results_run_stopped_while_counting_says_how_to_finish(tmp_path, monkeypatch, capsys):
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    unchecked_losses(monkeypatch)
    fill_runs(runs)
    docs.mkdir()

    def stopped(data):
        raise KeyboardInterrupt
    monkeypatch.setattr(results, "ngram_rows", stopped)
    assert results.main(["--no-train", "--runs", str(runs), "--write-docs", "--docs", str(docs)]) == 130
    assert capsys.readouterr().err.strip() == (
        f"results: stopped while counting the n-grams and mixing, with every run saved; to finish: "
        f"python -m mlp_lm.results --no-train --runs {runs} --write-docs --docs {docs}")
    assert not (docs / "results.md").exists()


def test_a_run_never_trained_says_how_to_train_it(tmp_path, no_counting):
    runs = tmp_path / "r"
    fill_runs(runs, steps=300, skip=("paper",))
    message = refusal(["--no-train", "--runs", str(runs)])
    assert message == (f"{runs} has no paper run (never trained there); train it with python -m mlp_lm.results "
                       f"--only paper (with this command's --runs and --steps, if any), or leave out --only and "
                       f"--no-train to train every run")
    for name in ("lecture", "best"):
        (runs / name / "metrics.json").unlink()
    message = refusal(["--only", "scaled", "--runs", str(runs)])  # every one missing, named at once
    assert "has no lecture, paper, best runs" in message and "--only lecture,paper,best " in message


@pytest.mark.parametrize("change,words", [
    ({"n_embd": 2, "n_hidden": 100}, ["n_embd 2", "has 10"]),  # the embd2 run copied into scaled's folder
    ({"data_sha256": "0" * 64}, ["other data than the default data/names.txt"]),
    ({"preset": "best", "optimizer": "adamw"}, ["optimizer 'adamw'", "has 'sgd'"]),
    ({"data_sha256": None}, ["does not record which data"]),
])
def test_a_run_in_the_wrong_folder_is_refused_not_tabulated(change, words, tmp_path, no_counting):
    fill_runs(tmp_path)
    m = results_metrics(name="scaled")
    m["config"] = {k: v for k, v in {**m["config"], **change}.items() if v is not None}  # None: not recorded
    put_results_run(tmp_path / "scaled", m)
    for argv in (["--no-train"], ["--only", "lecture"]):  # read back: refused before any training
        message = refusal([*argv, "--runs", str(tmp_path)])
        assert message.startswith(f"the run in {tmp_path / 'scaled'} ")
        assert all(w in message for w in words) and "--only scaled" in message, message


def test_a_run_read_back_may_differ_in_its_steps_and_lack_settings_added_since(tmp_path, no_counting):
    fill_runs(tmp_path)
    m = results_metrics(2000, name="scaled")  # a quick run: the table states the steps each run had
    del m["config"]["ema"]  # trained before --ema existed: it ran as the default does, as its row asks
    put_results_run(tmp_path / "scaled", m)
    assert results.main(["--no-train", "--runs", str(tmp_path)]) == 0
    m["config"]["label_smoothing"] = 0.1  # but a setting it does record must be its row's
    put_results_run(tmp_path / "scaled", m)
    assert "was trained with label_smoothing 0.1, where" in refusal(["--no-train", "--runs", str(tmp_path)])
    # and one it lacks is said to be lacking, not to have been recorded (a hostile pass: "with init 'scaled'")
    m = results_metrics(2000, name="lecture")
    del m["config"]["init"]
    put_results_run(tmp_path / "lecture", m)
    assert ("does not record its init, so it was trained with the default 'scaled', where the table's run lecture "
            "has 'lecture'") in refusal(["--no-train", "--runs", str(tmp_path)])


def test_an_earlier_run_that_cannot_all_be_moved_aside_stays_whole(tmp_path, no_counting, monkeypatch):
    runs = tmp_path / "r"
    fill_runs(runs, steps=300)
    for name in ("model.npz", "loss.csv"):
        (runs / "lecture" / name).write_text(name)
    before = {p.name: p.read_text() for p in (runs / "lecture").iterdir()}
    real, moved = results.Path.rename, []

    def rename_fails_second(self, target):
        if ".lecture-earlier-" in str(target) and moved:
            raise PermissionError(1, "Operation not permitted")
        moved.append(self)
        return real(self, target)
    monkeypatch.setattr(results.Path, "rename", rename_fails_second)
    message = refusal(["--steps", "300", "--runs", str(runs), "--only", "lecture"])
    assert "cannot move the earlier run" in message and "so it stays as it was" in message
    assert {p.name: p.read_text() for p in (runs / "lecture").iterdir()} == before
    assert sorted(p.name for p in runs.iterdir()) == sorted(results.CONFIGS)  # no hidden folder left


def test_a_run_stopped_before_saving_over_an_earlier_one_says_so_and_keeps_it(tmp_path, no_counting, monkeypatch,
                                                                              capsys):
    runs = tmp_path / "r"
    fill_runs(runs, steps=300)
    (runs / "lecture" / "model.npz").write_text("the earlier model")
    monkeypatch.setattr(aside, "train_run", lambda flags: 130)  # stopped while the training started
    assert results.main(["--steps", "300", "--runs", str(runs), "--only", "lecture"]) == 130
    assert (runs / "lecture" / "model.npz").read_text() == "the earlier model"
    assert capsys.readouterr().err.startswith("results: stopped before the run lecture saved anything")


def test_signals_while_the_training_runs_all_go_to_it(tmp_path):
    import os
    import signal
    import threading

    def two_ctrl_cs():
        deadline = time.monotonic() + 60
        while not (tmp_path / ".lock").exists() and time.monotonic() < deadline:  # the data loaded, the run began
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)  # after the 0.25 s that subprocess gives a child on its own first Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sender = threading.Thread(target=two_ctrl_cs)
    try:
        sender.start()
        code = aside.train_run(["--steps", "1000000", "--eval-every", "0", "--out", str(tmp_path)])
    finally:
        # The training may be over before the second Ctrl-C is sent: it must land here, not in a later test.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sender.join(timeout=120)
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert json.loads((tmp_path / "metrics.json").read_text())["interrupted"] is True


class FakeTraining:
    """A stand-in for the training process: exits with `code` once wait() is called. Its signals go to the main
    thread, as in results' own process, which has no other: sent to the process, one could land in a thread of
    pytest-xdist's while the main thread blocked it, and reach Python's handlers out of turn (seen once, under
    load: the worker ended by a KeyboardInterrupt)."""
    def __init__(self, code, signal_first=None):
        self.code, self.signal_first, self.sent = code, signal_first, []

    def __call__(self, argv, **kwargs):
        import signal
        self.blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the mask the training would start with
        if self.signal_first == "while starting":  # before results knows the process it started
            signal.pthread_kill(threading.main_thread().ident, 2)
            self.signal_first = None
        return self

    def wait(self):
        if self.signal_first is not None:  # a Ctrl-C reaches results while the training runs
            signal.pthread_kill(threading.main_thread().ident, self.signal_first)
        return self.code

    def send_signal(self, signum):
        self.sent.append(signum)


@pytest.mark.parametrize("code,signal_first,expected", [(-2, None, 130), (-15, None, 143), (1, 2, 130), (1, None, 1),
                                                         (2, 2, 2), (130, 2, 130), (0, 15, 143), (0, None, 0),
                                                         (130, "while starting", 130), (0, "while starting", 130)])
def test_a_training_ended_by_a_signal_is_reported_as_stopped(code, signal_first, expected, monkeypatch):
    fake = FakeTraining(code, signal_first)
    sent = [2] if signal_first == "while starting" else [signal_first] if signal_first else []
    monkeypatch.setattr(aside.subprocess, "Popen", fake)
    assert aside.train_run(["--steps", "10"]) == expected
    assert fake.sent == sent  # every signal reached the training, even one that came as it started
    # It started with the stop signals blocked: one that comes while its Python starts waits for mlp_lm's handlers.
    assert set(aside.STOP_SIGNALS) <= fake.blocked and not set(aside.STOP_SIGNALS) & signal.pthread_sigmask(
        signal.SIG_BLOCK, [])


def test_a_failed_run_that_saved_does_not_claim_the_earlier_one_stays(tmp_path, no_counting, monkeypatch):
    runs = tmp_path / "r"
    fill_runs(runs, steps=300)

    def saved_then_failed(flags):
        out = results.Path(flags[flags.index("--out") + 1])
        (out / "model.npz").write_bytes(b"new")
        (out / "metrics.json").write_text("{}")
        return 2
    monkeypatch.setattr(aside, "train_run", saved_then_failed)
    message = refusal(["--steps", "300", "--runs", str(runs), "--only", "lecture"])
    assert message == (f"the run lecture did not finish (exit code 2); see its messages above (its --out is "
                       f"{runs / 'lecture'}, which results' --runs decides)")


def test_a_run_complete_before_the_signal_reached_it_is_not_called_unfinished(tmp_path, no_counting, monkeypatch,
                                                                              capsys):
    runs = tmp_path / "r"
    fill_runs(runs, steps=300)

    def finished_then_signalled(flags):
        out = results.Path(flags[flags.index("--out") + 1])
        (out / "model.npz").write_bytes(b"new")
        (out / "metrics.json").write_text(json.dumps({**results_metrics(300), "evaluated": True, "interrupted": False}))
        return 143
    monkeypatch.setattr(aside, "train_run", finished_then_signalled)
    assert results.main(["--steps", "300", "--runs", str(runs), "--only", "lecture,embd2"]) == 143
    assert capsys.readouterr().err.strip() == (f"results: stopped after the run lecture was complete; to finish: "
                                               f"python -m mlp_lm.results --only embd2 --steps 300 --runs {runs}")


def test_a_file_where_a_run_folder_goes_is_refused_before_training(tmp_path, no_counting, monkeypatch):
    runs = tmp_path / "r"
    fill_runs(runs, steps=300, skip=("embd2",))
    (runs / "embd2").write_text("not a folder")  # the second run's place: found before the first trains
    monkeypatch.setattr(aside, "train_run", lambda flags: pytest.fail("trained"))
    assert refusal(["--steps", "300", "--runs", str(runs), "--only", "lecture,embd2"]) == (
        f"{runs / 'embd2'} is not a folder, and the run embd2 goes there; move it away or pass another --runs")
    (runs / "embd2").unlink()
    (runs / "embd2").symlink_to(tmp_path / "gone")  # a link to nothing
    assert "is not a folder" in refusal(["--steps", "300", "--runs", str(runs), "--only", "lecture,embd2"])


def test_a_runs_folder_that_cannot_be_made_is_one_line_before_any_training(tmp_path, no_counting, monkeypatch):
    (tmp_path / "a file").write_text("")
    runs = tmp_path / "a file" / "runs"  # as under a read-only mount, where root's tests cannot go
    monkeypatch.setattr(aside, "train_run", lambda flags: pytest.fail("trained"))  # each refused its --out
    assert refusal(["--steps", "20", "--runs", str(runs)]) == (
        f"cannot make the --runs folder {runs}: Not a directory; pass a --runs this program can write to")


def test_only_checks_the_runs_it_reads_back_before_training_any(tmp_path, no_counting, monkeypatch):
    runs = tmp_path / "runs"
    fill_runs(runs, skip=("scaled",))  # every run but one there to be read back
    trained = []
    monkeypatch.setattr(results, "retrain", lambda out, flags: trained.append(out) or (0, True))
    with pytest.raises(cli.UsageError, match="has no scaled run"):
        results.main(["--only", "lecture", "--steps", "20", "--runs", str(runs)])
    assert trained == []  # refused before training lecture, not after


# A results run killed outright (SIGKILL, a crash) while it retrained a run left the earlier run in a
# hidden folder beside it; the next results run finds it.

def test_an_earlier_run_left_set_aside_by_a_killed_results_run_is_put_back(tmp_path, no_counting, capsys):
    from mlp_lm import aside as aside_module
    runs = tmp_path / "runs"
    fill_runs(runs, steps=300)
    aside = aside_module.set_aside(runs / "lecture")  # where the kill left it
    assert aside.is_dir() and not (runs / "lecture" / "metrics.json").exists()
    assert results.main(["--no-train", "--runs", str(runs)]) in (0, None)  # it had said "never trained there"
    assert (runs / "lecture" / "metrics.json").is_file() and not aside.exists()
    assert "results: put back the earlier lecture run" in capsys.readouterr().err


def test_a_run_trained_by_hand_where_one_was_set_aside_does_not_cost_the_earlier_run(tmp_path, no_counting):
    from mlp_lm import aside as aside_module
    runs = tmp_path / "runs"
    fill_runs(runs, steps=300)
    out = runs / "bigram-context"
    (out / "model.npz").write_text("the earlier model")
    aside = aside_module.set_aside(out)  # where a kill left it; then the user trained into the empty folder:
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(out)]) == 0
    message = refusal(["--no-train", "--runs", str(runs)])  # the earlier run was removed, as if replaced
    assert message.startswith(f"{out} holds a run that was trained on other data than the default "
                              f"data/names.txt, not one a results run trained")
    assert str(aside) in message and (aside / "model.npz").read_text() == "the earlier model"
    (out / "metrics.json").write_text("[]")  # nor when it cannot tell whose the run is
    assert "holds a run that has no metrics.json of a run" in refusal(["--no-train", "--runs", str(runs)])
    (out / "metrics.json").write_text("[" * 100000 + "]" * 100000)  # past Python's depth: was a traceback
    assert "holds a run that has no metrics.json of a run" in refusal(["--no-train", "--runs", str(runs)])
    assert (aside / "model.npz").read_text() == "the earlier model"
    shutil.rmtree(out)  # the user moves theirs away: the earlier run goes back (and is read: no model, this one)
    message = refusal(["--no-train", "--runs", str(runs)])
    assert "has no model.npz that loads beside its metrics.json (python -m mlp_lm.evaluate --checkpoint" in message
    assert (out / "model.npz").read_text() == "the earlier model" and not aside.exists()


def test_an_earlier_run_left_set_aside_after_the_new_one_saved_is_removed(tmp_path):
    from mlp_lm import aside as aside_module
    out = tmp_path / "runs" / "lecture"
    out.mkdir(parents=True)
    (out / "model.npz").write_text("the earlier model")
    older = aside_module.set_aside(out)
    (out / "model.npz").write_text("another earlier model")
    aside = aside_module.set_aside(out)
    (out / "model.npz").write_text("the new model")  # the retraining saved before the kill
    os.utime(out / "model.npz", (1, 1))  # whatever its time says (a clock stepped back): it is not theirs
    assert "removed" in aside_module.recover_set_aside(out)
    assert (out / "model.npz").read_text() == "the new model" and not aside.exists() and not older.exists()


def test_only_the_newest_run_set_aside_is_put_back(tmp_path):
    import os
    from mlp_lm import aside as aside_module
    out = tmp_path / "runs" / "lecture"
    out.mkdir(parents=True)
    (out / "model.npz").write_text("the oldest model")
    older = aside_module.set_aside(out)
    os.utime(older, (1, 1))
    (out / "model.npz").write_text("the newer model")
    aside_module.set_aside(out)
    assert "put back" in aside_module.recover_set_aside(out)
    assert (out / "model.npz").read_text() == "the newer model" and not older.exists()


def test_a_run_set_aside_while_a_training_still_writes_there_is_left_alone_and_said(tmp_path):
    from mlp_lm import aside as aside_module
    from mlp_lm.runlock import RunLock
    out = tmp_path / "runs" / "lecture"
    out.mkdir(parents=True)
    (out / "model.npz").write_text("the earlier model")
    aside = aside_module.set_aside(out)
    with RunLock(out):  # the training a killed results run started, still running
        with pytest.raises(UsageError) as e:
            aside_module.recover_set_aside(out)
    assert "a training is writing to" in str(e.value) and "set aside" in str(e.value)  # not "never trained there"
    assert (aside / "model.npz").read_text() == "the earlier model" and not (out / "model.npz").exists()


def test_retraining_a_run_a_training_holds_names_results_flags(tmp_path):
    from mlp_lm import aside as aside_module
    from mlp_lm.runlock import RunLock
    out = tmp_path / "runs" / "lecture"
    out.mkdir(parents=True)
    (out / "model.npz").write_text("the earlier model")
    with RunLock(out), pytest.raises(UsageError) as e:
        aside_module.set_aside(out)
    assert "--runs" in str(e.value) and "--out" not in str(e.value)  # results has no --out


def test_a_runs_folder_that_is_a_link_to_nothing_says_so(tmp_path, no_counting):
    link = tmp_path / "runs"
    link.symlink_to(link)  # a loop
    assert "is a link to nothing" in refusal(["--no-train", "--runs", str(link)])  # it said "never trained there"


def test_an_earlier_run_half_put_back_is_put_back_whole_not_removed(tmp_path):
    from mlp_lm import aside as aside_module
    out = tmp_path / "runs" / "lecture"
    out.mkdir(parents=True)
    (out / "model.npz").write_text("the earlier model")
    (out / "metrics.json").write_text("the earlier metrics")
    aside = aside_module.set_aside(out)
    (aside / "model.npz").rename(out / "model.npz")  # a put_back killed half-way: the model is back, not the rest
    os.utime(out / "model.npz", (4e9, 4e9))  # and whatever its time says (a clock that was ahead)
    assert "put back" in aside_module.recover_set_aside(out)  # a model.npz there is not proof of a new run
    assert (out / "metrics.json").read_text() == "the earlier metrics" and not aside.exists()
    assert (out / "model.npz").read_text() == "the earlier model"


def test_a_second_results_run_in_the_same_runs_folder_is_refused(tmp_path, no_counting):
    from mlp_lm import aside as aside_module
    runs = tmp_path / "runs"
    fill_runs(runs, steps=300)
    with aside_module.results_lock(runs):  # another results run, working there
        message = refusal(["--no-train", "--runs", str(runs)])
    assert message.startswith(f"another results run is working in {runs}")
    assert results.main(["--no-train", "--runs", str(runs)]) == 0  # once it is done


def test_a_refusal_leaves_no_runs_folder_behind(tmp_path, no_counting):
    runs = tmp_path / "x" / "deep"
    assert "never trained there" in refusal(["--only", "lecture", "--steps", "5", "--runs", str(runs)])
    assert not (tmp_path / "x").exists()


def test_a_runs_folder_that_is_a_link_to_a_missing_folder_says_so(tmp_path, no_counting):
    link = tmp_path / "runs"
    link.symlink_to(tmp_path / "gone")
    assert "is a link to nothing" in refusal(["--no-train", "--runs", str(link)])


def test_a_retrain_that_diverges_leaves_the_earlier_run(tmp_path, capsys):
    # From a review: train now keeps the best of a run that blew up, and retrain took that for the new
    # run and deleted the earlier, finished one.
    out = tmp_path / "scaled"
    assert run_cli("mlp_lm.train", "--steps", 300, "--eval-every", 0, "--out", out).returncode == 0
    before = {n: (out / n).read_bytes() for n in ("model.npz", "metrics.json", "loss.csv")}
    code, saved = aside.retrain(out, ["--steps", "6000", "--eval-every", "500", "--schedule", "cosine",
                                        "--warmup", "5000", "--lr", "5"])
    assert code == 2 and not saved
    assert f"what train kept of the run that diverged is no run of the table: removed from {out}" in capsys.readouterr().err
    assert {n: (out / n).read_bytes() for n in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scaled"]  # nothing set aside is left behind


def test_what_was_kept_of_a_diverged_run_is_no_run_of_the_table(tmp_path):
    # It said "finish it with python -m mlp_lm.train --resume", which refuses a diverged run.
    from mlp_lm import results_table
    out = tmp_path / "d"
    proc = run_cli("mlp_lm.train", "--steps", 6000, "--eval-every", 500, "--schedule", "cosine", "--warmup", 5000,
                   "--lr", 5, "--out", out)
    assert proc.returncode == 2 and results_table.diverged(out)
    with pytest.raises(UsageError, match="is what was kept of a run that diverged \\(its step 2,500\\); retrain that run"):
        results_table.read_metrics(out / "metrics.json")


@pytest.mark.parametrize("change,words", [
    ({"diverged": True, "steps": None}, "is what was kept of a run that diverged; retrain that run"),  # was a TypeError
    ({"diverged": True, "steps": "x"}, "is what was kept of a run that diverged; retrain that run"),  # and a ValueError
    ({"steps_per_second": 10.0, "train_seconds": 1e308}, "10 steps a second for 1e+308 s, more than the 300 steps"),
    ({"steps_per_second": 1e308}, "1e+308 steps a second for 30 s, more than the 300 steps"),
    ({"steps": 10**400}, "has steps of the wrong type"),  # an OverflowError in the check above
    ({"steps": 300.0}, "has steps of the wrong type"),  # skipped every check of the steps
    ({"diverged": True, "steps": 10**400}, "is what was kept of a run that diverged; retrain"),  # not 401 digits
    # a second hostile pass: these were read as a run that had not diverged, or had no rate, and tabulated
    ({"diverged": "yes"}, "has diverged of the wrong type"),
    ({"steps_per_second": "fast"}, "has steps_per_second of the wrong type"),
    ({"steps_per_second": -5.0}, "has steps_per_second below 0, which no run gives"),
    ({"interrupted": 1}, "has interrupted of the wrong type"),
    ({"evaluated": False}, "says the run was not evaluated, yet has losses"),
])
def test_metrics_no_run_writes_are_refused_in_words(change, words, tmp_path):
    # From a hostile tester: these were tracebacks, or a training time of 1e308 s put in the table.
    m = {k: v for k, v in {**results_metrics(300, name="lecture"), **change}.items() if v is not None}
    (tmp_path / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(UsageError) as e:
        results_table.read_metrics(tmp_path / "metrics.json")
    assert words in str(e.value) and len(str(e.value)) < 300, e.value
    fine = {**results_metrics(300, name="lecture"), "steps_per_second": 300 / 0.04, "train_seconds": 0.04}
    (tmp_path / "metrics.json").write_text(json.dumps(fine))  # rounded as train rounds them: no refusal
    assert results_table.read_metrics(tmp_path / "metrics.json")["steps"] == 300


def test_a_recorded_loss_no_model_gives_is_shown_short(tmp_path):
    m = results_metrics(300, name="lecture")
    put_results_run(tmp_path, m)
    m = {**json.loads((tmp_path / "metrics.json").read_text()), "dev_loss": 1e308}
    problem = results_table.model_problem(tmp_path / "model.npz", m)
    assert "dev loss is" in problem and "not the 1e+308 of its metrics.json" in problem, problem


def test_a_runs_losses_must_be_its_models(tmp_path):
    # From hostile testers: a model.npz of the same size but another run's weights, or losses edited in
    # metrics.json, put numbers in the table that were not the model's (two dev losses for one run).
    from mlp_lm import wordfile
    put_results_run(tmp_path / "wider", results_metrics(name="wider"))
    m = json.loads((tmp_path / "wider" / "metrics.json").read_text())
    sha = wordfile.digest(wordfile.in_checkout(wordfile.DEFAULT_DATA))
    assert results_table.read_run("wider", tmp_path, sha) == m
    for split in ("train", "dev", "test"):
        edited = {**m, f"{split}_loss": m[f"{split}_loss"] * (1 + 1e-4)}  # under a ten-thousandth: the table shows it
        (tmp_path / "wider" / "metrics.json").write_text(json.dumps(edited))
        with pytest.raises(UsageError, match=f"has a model.npz whose {split} loss is {m[split + '_loss']:.4f}, not the"):
            results_table.read_run("wider", tmp_path, sha)
    rounding = {**m, "dev_loss": m["dev_loss"] * (1 + 2e-9)}  # another BLAS kernel's evaluation of the same model
    (tmp_path / "wider" / "metrics.json").write_text(json.dumps(rounding))
    assert results_table.read_run("wider", tmp_path, sha) == rounding


def test_the_mixture_row_of_a_run_whose_config_leaves_out_the_split_seed(tmp_path):
    # checkpoint.load allows a config without split_seed (only the default one is allowed at all); the
    # mixture row read config["split_seed"] and ended results --no-train in a KeyError's traceback
    put_results_run(tmp_path / "scaled", results_metrics(name="scaled"))
    assert "split_seed" not in json.loads((tmp_path / "scaled" / "metrics.json").read_text())["config"]
    row = results.mixture_row(tmp_path / "scaled", n=3)  # the default split's, as the run's model was trained on
    assert 0 < row["mix_loglinear"]["dev_loss"] < row["mlp"]["dev_loss"], row


def test_a_damaged_metrics_json_is_refused_before_any_run_is_evaluated(tmp_path, monkeypatch):
    # each run read back has its model evaluated on all of names (seconds for the best preset's): a damaged
    # metrics.json of the last run had waited for every run before it
    unchecked_losses(monkeypatch)
    fill_runs(tmp_path)
    m = json.loads((tmp_path / "best" / "metrics.json").read_text())
    (tmp_path / "best" / "metrics.json").write_text(json.dumps({**m, "dev_loss": "x"}))
    evaluated = []
    monkeypatch.setattr(results_table, "loss_problem", lambda params, config, m: evaluated.append(config))
    assert "best" in refusal(["--no-train", "--runs", str(tmp_path)]) and evaluated == []


def test_a_metrics_json_linking_to_nothing_and_a_lock_that_is_a_folder_are_named(tmp_path, no_counting):
    # From a hostile pass: a dangling link was "never trained there" (the run's model.npz beside it), and a
    # folder where the lock goes was "cannot write to" a folder that is writable
    fill_runs(tmp_path, steps=300)
    (tmp_path / "scaled" / "metrics.json").unlink()
    (tmp_path / "scaled" / "metrics.json").symlink_to(tmp_path / "nowhere.json")
    message = refusal(["--no-train", "--runs", str(tmp_path)])
    assert "scaled/metrics.json is a link to nothing" in message and "never trained" not in message, message
    (tmp_path / "scaled" / "metrics.json").unlink()
    put_results_run(tmp_path / "scaled", results_metrics(300))
    (tmp_path / ".results.lock").mkdir()
    assert refusal(["--no-train", "--runs", str(tmp_path)]) == (
        f"{tmp_path / '.results.lock'} is not a file (Is a directory), and it is where this program keeps its lock; "
        f"remove it, or use another folder")
    (tmp_path / ".results.lock").rmdir()
    assert results.main(["--no-train", "--runs", str(tmp_path)]) == 0


def test_a_word_list_named_embedding_png_in_docs_is_not_written_over(tmp_path, no_counting):
    # a hostile tester's: every embedding.png was taken for the picture results writes, a user's word list too
    runs, docs = tmp_path / "runs", tmp_path / "docsx"
    fill_runs(runs, steps=300)
    docs.mkdir()
    (docs / "embedding.png").write_text("emma\nolivia\n")
    assert refusal(["--no-train", "--write-docs", "--runs", str(runs), "--docs", str(docs)]) == (
        f"{docs / 'embedding.png'} is not a file this command wrote, and the picture would be written over it; "
        f"move it away or pass another --docs")
    assert (docs / "embedding.png").read_text() == "emma\nolivia\n"
    (docs / "embedding.png").write_bytes(results_markdown.PNG_SIGNATURE + b"a picture")  # a picture: replaceable
    assert results_markdown.written_here(docs / "embedding.png")


def test_a_users_own_files_in_the_runs_folder_are_never_written_over(tmp_path, no_counting, monkeypatch):
    # From a review: --runs naming a folder of one's own notes replaced its results.md and tables.json, and a
    # user's loss.csv in a run's folder was set aside with the earlier run, then removed
    runs = tmp_path / "notes"
    fill_runs(runs, steps=300)
    monkeypatch.setattr(aside, "train_run", lambda flags: pytest.fail("trained over a user's files"))
    for name, mine in (("results.md", "# my own results\n"), ("tables.json", '{"mine": 1}')):
        (runs / name).write_text(mine)
        for argv in (["--no-train"], ["--steps", "50", "--only", "lecture"]):
            assert refusal([*argv, "--runs", str(runs)]) == (
                f"{runs / name} is not a file this command wrote, and the table would be written over it; move it "
                f"away or pass another --runs")
        assert (runs / name).read_text() == mine
        (runs / name).unlink()
    assert results.main(["--no-train", "--runs", str(runs)]) == 0  # its own files, written again at will
    assert results.main(["--no-train", "--runs", str(runs)]) == 0
    for name in ("results.md", "tables.json"):
        assert results_markdown.written_here(runs / name)

    scaled = runs / "scaled"
    for name in ("metrics.json", "model.npz"):
        (scaled / name).unlink()
    (scaled / "loss.csv").write_text("my notes")
    assert refusal(["--steps", "50", "--only", "scaled", "--runs", str(runs)]) == (
        f"{scaled} holds loss.csv, and not a run this command trained there (it has no metrics.json of a run); "
        f"retraining scaled would remove them: move them away, or pass another --runs")
    assert (scaled / "loss.csv").read_text() == "my notes" and not list(runs.glob(".scaled-earlier-*"))


def test_a_run_stopped_by_hand_beside_a_results_run_is_not_removed_by_retraining_it(tmp_path, no_counting,
                                                                                    monkeypatch):
    # From a hostile pass: a --force training by hand into a results run's folder, killed, left its snapshot in
    # interrupted/, and retraining that run removed it with the earlier run
    runs = tmp_path / "r"
    fill_runs(runs, steps=300, skip=("lecture",))
    lecture = runs / "lecture"
    first = run_cli("mlp_lm.train", "--init", "lecture", "--steps", "300", "--eval-every", "0", "--out", lecture)
    assert first.returncode == 0, first.stderr
    stop_training_at(monkeypatch, 20)
    assert train.main([*SMALL, "--steps", "60", "--eval-every", "0", "--force", "--out", str(lecture)]) == 130
    monkeypatch.undo()
    no_counting_again(monkeypatch)
    monkeypatch.setattr(aside, "train_run", lambda flags: pytest.fail("trained over a stopped run"))
    assert refusal(["--steps", "300", "--only", "lecture", "--runs", str(runs)]) == (
        f"{lecture / 'interrupted'} holds a run trained there by hand, which retraining lecture would remove with the "
        f"earlier run: move it out of {lecture} first (it is stopped part-way: python -m mlp_lm.train --resume --out, "
        f"given the folder where you move it, finishes it)")
    assert int(checkpoint.load_state(lecture / "interrupted" / "model.npz")["step"]) == 20
    # From a second pass: finished there (as the refusal then said it could be), it was removed without a word
    assert train.main(["--resume", "--out", str(lecture / "interrupted")]) == 0
    assert refusal(["--steps", "300", "--only", "lecture", "--runs", str(runs)]) == (
        f"{lecture / 'interrupted'} holds a run trained there by hand, which retraining lecture would remove with the "
        f"earlier run: move it out of {lecture} first")
    assert json.loads((lecture / "interrupted" / "metrics.json").read_text())["steps"] == 60


def test_no_train_after_a_quick_run_says_where_its_runs_are(tmp_path, no_counting, monkeypatch):
    # From a review: --no-train after `results --steps N` said runs/results had none and offered to retrain all nine
    from mlp_lm import wordfile
    places = {"runs/results": tmp_path / "results", "runs/results-quick": tmp_path / "quick"}
    for module in (results, results_table):
        monkeypatch.setattr(module, "in_checkout", lambda relative: places.get(relative) or wordfile.in_checkout(relative))
    fill_runs(places["runs/results-quick"], steps=300)
    message = refusal(["--no-train"])
    assert message.startswith(f"{places['runs/results']} has no lecture, scaled,") and (
        f"(never trained there) (a quick run's are in {places['runs/results-quick']}: --runs "
        f"{places['runs/results-quick']} reads them); train them with") in message
    assert "a quick run's" not in refusal(["--no-train", "--runs", str(tmp_path / "elsewhere")])
    assert results.main(["--no-train", "--runs", str(places["runs/results-quick"])]) == 0
