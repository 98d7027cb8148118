"""A run saves itself as it trains (snapshot.Snapshots), so a kill no program can catch loses minutes,
not the run: SIGKILL part-way, then --resume, gives the run made in one go."""
import json
import re
import multiprocessing
import os
import signal
import tempfile
import time

import numpy as np
import pytest

from mlp_lm import checkpoint, runs, snapshot, space, train, train_flags, train_run
from mlp_lm.cli import UsageError

from .conftest import SMALL, stop_training_at

RUN = [*SMALL, "--steps", "3000", "--eval-every", "1000"]


def killed_part_way(out, argv, monkeypatch, seconds=0.05, watch=None):
    """Start `train argv --out out` in a forked process that snapshots every `seconds`, and SIGKILL it once
    a snapshot is in `watch` (default `out`)."""
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", seconds)
    child = multiprocessing.get_context("fork").Process(target=lambda: os._exit(train.main([*argv, "--out", str(out)])))
    child.start()
    start = time.monotonic()
    while time.monotonic() < start + 60 and child.is_alive() and not ((watch or out) / "model.npz").exists():
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL, "the run ended before it was killed"


def test_a_run_killed_outright_resumes_from_its_snapshot_as_if_made_in_one_go(tmp_path, monkeypatch, capsys):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    killed_part_way(killed, RUN, monkeypatch)
    steps = int(checkpoint.load_state(killed / "model.npz")["step"])
    assert 0 < steps < 3000
    saved = json.loads((killed / "metrics.json").read_text())
    assert saved["steps"] == steps and saved["interrupted"] and not saved["evaluated"]
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 1e9)
    assert train.main(["--resume", "--out", str(killed)]) == 0
    assert f"resuming the run in {killed} at step {steps} of 3000" in capsys.readouterr().out
    assert train.main([*RUN, "--out", str(whole)]) == 0
    assert (killed / "loss.csv").read_text() == (whole / "loss.csv").read_text()
    one, two = (json.loads((d / "metrics.json").read_text()) for d in (killed, whole))
    assert [one[k] for k in ("train_loss", "dev_loss", "test_loss")] == [two[k] for k in ("train_loss", "dev_loss",
                                                                                         "test_loss")]


def test_a_force_runs_snapshots_go_to_a_side_folder_and_the_earlier_model_is_replaced_only_whole(tmp_path, monkeypatch,
                                                                                                capsys):
    # A --force run over an earlier model replaces it only when whole; it kept no snapshots for that reason, so a
    # kill -9 after hours lost it. Its snapshots now go to out/interrupted, which goes once the run is saved whole.
    out = tmp_path / "run"
    assert train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(out)]) == 0
    earlier = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)  # every step
    saved = []
    real = runs.save_run
    monkeypatch.setattr(runs, "save_run", lambda to, *a: saved.append((to, (out / "model.npz").read_bytes())) or real(to, *a))
    assert train.main([*SMALL, "--steps", "100", "--eval-every", "0", "--force", "--out", str(out)]) == 0
    assert [to for to, _ in saved] == [out / "interrupted"] * 99 + [out]  # a snapshot a step but the last, then the run
    assert {model for _, model in saved} == {earlier["model.npz"]}  # the earlier run in place until the new one was whole
    assert sorted(p.name for p in out.iterdir()) == sorted(earlier)  # and the side folder gone
    assert (out / "model.npz").read_bytes() != earlier["model.npz"]

    # killed part-way, it leaves the earlier run as it was, and its snapshot beside it, to resume as if in one go
    monkeypatch.setattr(runs, "save_run", real)
    earlier = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    long = [*SMALL, "--steps", "1500", "--eval-every", "500"]
    killed_part_way(out, [*long, "--force"], monkeypatch, watch=out / "interrupted")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"} == earlier
    steps = int(checkpoint.load_state(out / "interrupted" / "model.npz")["step"])
    assert 0 < steps < 1500
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 1e9)
    capsys.readouterr()
    assert train.main(["--resume", "--out", str(out)]) == 0  # the run there is complete: it points at the one beside it
    assert f"python -m mlp_lm.train --resume --out {out / 'interrupted'} continues it" in capsys.readouterr().out
    assert train.main(["--resume", "--out", str(out / "interrupted")]) == 0
    assert f"resuming the run in {out / 'interrupted'} at step {steps} of 1500" in capsys.readouterr().out
    whole = tmp_path / "whole"
    assert train.main([*long, "--out", str(whole)]) == 0
    assert (out / "interrupted" / "loss.csv").read_text() == (whole / "loss.csv").read_text()
    assert (out / "interrupted" / "metrics.json").read_text().count('"dev_loss"') == 1
    one, two = (json.loads((d / "metrics.json").read_text()) for d in (out / "interrupted", whole))
    assert [one[k] for k in ("train_loss", "dev_loss", "test_loss")] == [two[k] for k in ("train_loss", "dev_loss",
                                                                                         "test_loss")]


def test_a_force_run_stopped_after_its_snapshots_saves_in_their_side_folder(tmp_path, monkeypatch, capsys):
    # Ctrl-C's save of a --force run went to a side folder of its own: with its snapshots in out/interrupted,
    # it goes there (not to interrupted-2), and an earlier stopped run's interrupted/ is never taken
    out = tmp_path / "run"
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(out)]) == 0
    stop_training_at(monkeypatch, 10)
    assert train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--force", "--out", str(out)]) == 130
    first = (out / "interrupted" / "model.npz").read_bytes()  # (no snapshot: none was due)
    monkeypatch.undo()
    old = (out / "model.npz").read_bytes()
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    stop_training_at(monkeypatch, 25)
    saved, real = [], runs.save_run
    monkeypatch.setattr(runs, "save_run", lambda to, *a: saved.append(to) or real(to, *a))
    capsys.readouterr()
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--seed", "5", "--force", "--out", str(out)]) == 130
    assert saved == [out / "interrupted-2"] * 26  # a snapshot after each of the 25 steps, then the stop's save
    err = capsys.readouterr().err
    assert f"the model already in {out} stays: this interrupted run went to {out / 'interrupted-2'}" in err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["interrupted", "interrupted-2"]
    assert (out / "model.npz").read_bytes() == old and (out / "interrupted" / "model.npz").read_bytes() == first
    state = checkpoint.load_state(out / "interrupted-2" / "model.npz")
    assert int(state["step"]) == 25 and json.loads((out / "interrupted-2" / "metrics.json").read_text())["interrupted"]
    assert not (out / "interrupted-2" / ".lock").exists()


def test_a_force_run_that_diverges_or_cannot_claim_a_side_folder_leaves_no_snapshot(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(out)]) == 0
    earlier = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    with pytest.raises(UsageError, match="nothing was saved"):
        train.main([*SMALL, "--steps", "3000", "--lr", "30", "--eval-every", "0", "--force", "--out", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier  # no side folder left, nor a lock
    # a side folder it cannot make (a file where it would go, and every numbered name after it taken likewise):
    # said once, and the run goes on and is saved whole
    monkeypatch.setattr(runs, "claim_fresh", lambda base: (_ for _ in ()).throw(UsageError(f"cannot make {base}")))
    capsys.readouterr()
    assert train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--seed", "3", "--force", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count(f"cannot save a snapshot of the run in {out} (cannot make {out / 'interrupted'})") == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(earlier)
    assert json.loads((out / "metrics.json").read_text())["steps"] == 30

def test_a_snapshot_that_cannot_be_written_is_said_once_and_training_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    tries = []

    def full_disk(out, *a):
        tries.append(out)
        raise checkpoint.CheckpointError(f"cannot write {out / 'model.npz'}: No space left on device")
    monkeypatch.setattr(runs, "save_run", full_disk)
    monkeypatch.setattr(train_run, "save_run_or_rescue", lambda out, *a, **k: None)  # the end's save: not this test's
    assert train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert len(tries) == 29 and err.count("cannot save a snapshot") == 1  # every step but the last, said once
    assert (f"warning: cannot save a snapshot of the run in {tmp_path} (cannot write {tmp_path / 'model.npz'}: No "
            f"space left on device); training goes on, and the run is saved when it ends") in err


def test_a_run_that_diverges_with_nothing_to_keep_leaves_no_snapshot(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    with pytest.raises(UsageError, match="diverged|blew up|smaller --lr"):
        train.main([*SMALL, "--steps", "3000", "--lr", "30", "--eval-every", "0", "--out", str(tmp_path)])
    assert not (tmp_path / "model.npz").exists() and not (tmp_path / "metrics.json").exists()


def test_a_resumed_run_that_diverges_says_which_snapshot_its_folder_keeps(tmp_path, monkeypatch):
    # From a pass over resuming: a resumed run keeps the snapshots it took on its way to a blow-up (the
    # state it resumed from is gone), yet said "nothing was saved"; each --resume then took a step and blew up.
    assert train.main([*SMALL, "--steps", "300", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    with np.load(tmp_path / "model.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays["config"]))
    config.update(steps=1000, lr=30.0)  # a rate it blows up at, which no flag can give a resumed run
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "model.npz", **arrays)
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    with pytest.raises(UsageError) as e:
        train.main(["--resume", "--out", str(tmp_path)])
    step = json.loads((tmp_path / "metrics.json").read_text())["steps"]
    assert 300 < step and str(e.value).endswith(f"start a new run with a smaller --lr; nothing was saved but its "
                                                f"snapshot of step {step:,}, from which it would go the same way")


def test_no_snapshots_over_a_users_files_or_without_room_for_two_saves(tmp_path, monkeypatch, capsys):
    # A hostile pass: snapshots over a user's loss.csv and metrics.json (--force, no model) took them, and a
    # run that diverged then said "nothing was saved"; on a disk with room for one save, the last snapshot
    # left no room for the final files, which went to the temporary directory
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    saved = []
    monkeypatch.setattr(runs, "save_run", lambda out, *a, real=runs.save_run: saved.append(out) or real(out, *a))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "loss.csv").write_text("my notes")
    with pytest.raises(UsageError, match="nothing was saved"):
        train.main([*SMALL, "--steps", "300", "--lr", "30", "--eval-every", "0", "--force", "--out", str(mine)])
    assert set(saved) == {mine / "interrupted"}  # beside the user's files, never over them, and taken back
    assert sorted(p.name for p in mine.iterdir()) == ["loss.csv"] and (mine / "loss.csv").read_text() == "my notes"
    need = space.bytes_to_save(train_flags.parse_args([*SMALL, "--steps", "30"]).cfg, 11897)
    for free, snapshots in ((2 * need - 1, False), (2 * need, True)):
        monkeypatch.setattr(runs.shutil, "disk_usage", lambda path, free=free: type("U", (), {"free": free}))
        saved.clear()
        out = tmp_path / f"free{free}"
        assert train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--out", str(out)]) == 0
        assert len(saved) == (30 if snapshots else 1)  # a snapshot a step but the last, then the run
        err = capsys.readouterr().err
        assert ("has room for this run's files but not for its snapshots as well" in err) != snapshots


def test_a_run_that_cannot_be_saved_anywhere_says_where_its_last_snapshot_is(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    real = runs.save_run

    def full_at_the_end(out, params, vocab, config, state, summary, *a):
        if summary["evaluated"]:  # the final save, here or in the temporary directory
            raise checkpoint.CheckpointError(f"cannot write {out / 'model.npz'}: No space left on device")
        real(out, params, vocab, config, state, summary, *a)
    monkeypatch.setattr(runs, "save_run", full_at_the_end)
    alone = tmp_path / "alone"
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(alone.mkdir(exist_ok=True) or alone))
    with pytest.raises(checkpoint.CheckpointError, match=rf"but its model is, alone .* samples from it; free some "
                                                         rf"space before training again; but its snapshot of step 29 "
                                                         rf"is in {tmp_path}: python -m mlp_lm.train --resume --out "
                                                         rf"{tmp_path} goes on"):
        train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--out", str(tmp_path)])
    monkeypatch.setattr(runs, "save_run", real)
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0


def with_timing(path, **changes):
    """Rewrite the model.npz at `path` with its state's time set as `changes` say (None: taken out)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for k, v in changes.items():
        arrays.pop(f"state.{k}")
        if v is not None:
            arrays[f"state.{k}"] = np.array(v)
    np.savez(path, **arrays)


@pytest.mark.parametrize("earlier", ["kept", "not kept", "damaged", "from before the run", "centuries"])
def test_a_resumed_runs_training_time_is_that_of_every_command_that_trained_it(tmp_path, monkeypatch, earlier):
    # metrics.json's train_seconds was the last command's alone: a run resumed for its final evaluation said
    # 0.0 steps a second, and the results table showed a resumed run's last stretch as its training time.
    stop_training_at(monkeypatch, 50)
    assert train.main([*SMALL, "--steps", "120", "--eval-every", "0", "--out", str(tmp_path)]) == 130
    first = json.loads((tmp_path / "metrics.json").read_text())
    state = checkpoint.load_state(tmp_path / "model.npz")
    assert state["timed_from"] == 0 and abs(state["seconds"] - first["train_seconds"]) < 1e-3 < first["train_seconds"]
    assert first["steps_per_second"] == round(50 / float(state["seconds"]), 1)
    with_timing(tmp_path / "model.npz", **{"kept": {"seconds": 1000.0}, "not kept": {"seconds": None, "timed_from": None},
                                           "damaged": {"seconds": -1.0}, "from before the run": {"timed_from": -1},
                                           "centuries": {"seconds": 1e300}}[earlier])
    monkeypatch.undo()
    refused = {"damaged": "its training time -1.0 is not a time", "centuries": "its training time 1e+300 is not a time",
               # a negative step was taken, and steps_per_second counted 8,001 steps of an 8,000-step run
               "from before the run": "its training time counts from step -1, not a step of the 50 it took"}
    if earlier in refused:
        with pytest.raises(UsageError, match=re.escape(f"damaged training state or config ({refused[earlier]}")):
            train.main(["--resume", "--out", str(tmp_path)])
        return
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    state = checkpoint.load_state(tmp_path / "model.npz")
    assert m["train_seconds"] == round(float(state["seconds"]), 3)
    if earlier == "kept":  # the 1,000 s before, and this command's
        assert 1000 < m["train_seconds"] < 1000 + 60 and "train_seconds_from_step" not in m
        assert state["timed_from"] == 0 and m["steps_per_second"] == round(120 / float(state["seconds"]), 1)
    else:  # a state from before states kept their time: what is known, and from which step
        assert m["train_seconds"] < 60 and m["train_seconds_from_step"] == 51
        assert state["timed_from"] == 50 and m["steps_per_second"] == round(70 / float(state["seconds"]), 1)


def test_a_run_resumed_only_for_its_evaluation_from_a_state_without_its_time_is_not_timed(tmp_path, capsys):
    # it said steps_per_second 0.0, and the results table "0.0 (steps 31 on)" of a 30-step run
    assert train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    with_timing(tmp_path / "model.npz", seconds=None, timed_from=None, evaluated=False)  # stopped in its evaluation
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0
    assert "trained all 30 steps but its final evaluation was cut short" in capsys.readouterr().out
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["steps_per_second"] is None and m["train_seconds_from_step"] == 31
    from mlp_lm.results_markdown import seconds_cell
    assert seconds_cell(m) == "not timed"


def test_a_run_whose_folder_is_replaced_while_it_trains_never_writes_over_the_new_one(tmp_path, monkeypatch, capsys):
    # From a hostile pass: run A's folder removed while it trained, run B trained into the same path, and A then
    # saved over B's model (exit 0, no --force). The lock's file tells a run its folder is still its own.
    from mlp_lm import cli, model
    out, moved, rescue = tmp_path / "run", tmp_path / "moved", tmp_path / "rescued"
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)  # a snapshot after every step
    real, calls = model.loss_and_grads, {"n": 0}

    def folder_replaced_at_step_20(*a, **k):
        calls["n"] += 1
        if calls["n"] == 20:
            out.rename(moved)  # mv, or rm -rf: then another run takes the path
            out.mkdir()
            (out / "model.npz").write_bytes(b"run B's model")
            (out / ".lock").write_text("99999\n")
        return real(*a, **k)
    monkeypatch.setattr(model, "loss_and_grads", folder_replaced_at_step_20)
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(rescue.mkdir() or rescue))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(out)]), "train")
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{out} is not this run's folder any more" in err.splitlines()[-1]
    assert f"the run is saved in {rescue} instead" in err.splitlines()[-1] and "removed, moved or replaced" in err
    assert err.count("cannot save a snapshot") == 1  # said once, and training went on
    assert sorted(p.name for p in out.iterdir()) == [".lock", "model.npz"]
    assert (out / "model.npz").read_bytes() == b"run B's model"
    assert json.loads((rescue / "metrics.json").read_text())["steps"] == 40
    assert 0 < int(checkpoint.load_state(moved / "model.npz")["step"]) < 20  # its snapshots stayed where they went


def test_a_run_whose_lock_file_alone_is_removed_still_saves_in_its_folder(tmp_path, monkeypatch, capsys):
    # From a review of the fix above: a clean-up of /tmp that removed only .lock sent a healthy run to the
    # temporary directory, said its folder was gone, and left a stale snapshot behind.
    from mlp_lm import model
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    real, calls = model.loss_and_grads, {"n": 0}

    def lock_removed_at_step_20(*a, **k):
        calls["n"] += 1
        if calls["n"] == 20:
            (tmp_path / ".lock").unlink()
        return real(*a, **k)
    monkeypatch.setattr(model, "loss_and_grads", lock_removed_at_step_20)
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    assert "not this run's folder" not in capsys.readouterr().err
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 40


def test_a_second_ctrl_backslash_ends_the_process_at_once():
    # Ctrl-\ stops and saves like Ctrl-C; a second one is still the terminal's way out of a save that hangs.
    import subprocess
    import sys
    # One key press that reaches the process twice (the terminal's, and results passing its own on) is one.
    code = ("import os, signal, time\n"
            "from mlp_lm import cli\n"
            "with cli.signals_held() as held:\n"
            "    os.kill(os.getpid(), signal.SIGQUIT)\n"
            "    os.kill(os.getpid(), signal.SIGQUIT)\n"
            "    time.sleep(0.05)\n"
            "    os.kill(os.getpid(), signal.SIGQUIT)\n"
            "    print(len(held), flush=True)\n"
            "    time.sleep(cli.QUIT_AGAIN_SECONDS + 0.1)\n"
            "    os.kill(os.getpid(), signal.SIGQUIT)\n"
            "    print('not reached', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGQUIT and proc.stdout in ("1\n", "2\n", "3\n"), proc


@pytest.mark.parametrize("what", ["another run saved there", "a stale lock", "a new empty folder"])
def test_what_a_run_finds_in_its_folder_when_it_saves(what, tmp_path, monkeypatch, capsys):
    # From a review of the fixes above. (1) Its lock file removed, a second training took the folder, finished and
    # left: the first then saved over the second's run without a word. (2) A lock file no training holds (left by
    # a run killed outright) was "another training holds it now". (3) Its folder replaced by an empty one, the run
    # saved elsewhere, then removed the new folder as "a folder it made".
    from mlp_lm import cli, model
    out = tmp_path / "run"
    real, calls = model.loss_and_grads, {"n": 0}

    def meanwhile(*a, **k):
        calls["n"] += 1
        if calls["n"] == 20:
            if what == "another run saved there":
                (out / ".lock").unlink()
                (out / "model.npz").write_bytes(b"run B's model")  # (its own save, written and renamed into place)
            elif what == "a stale lock":
                (out / ".lock").unlink()
                (out / ".lock").write_text("12345\n")
            else:
                out.rename(tmp_path / "moved")
                out.mkdir()
        return real(*a, **k)
    monkeypatch.setattr(model, "loss_and_grads", meanwhile)
    rescue = tmp_path / "rescued"
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(rescue.mkdir() or rescue))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(out)]), "train")
    err = capsys.readouterr().err.strip().splitlines()
    if what == "a stale lock":  # no other training: the run is saved where it was asked
        assert e.value.code == 0 and json.loads((out / "metrics.json").read_text())["steps"] == 40
        return
    assert e.value.code == 2 and f"{out} is not this run's folder any more" in err[-1] and str(rescue) in err[-1]
    if what == "another run saved there":
        assert "another run saved its model there meanwhile" in err[-1]
        assert (out / "model.npz").read_bytes() == b"run B's model"
    else:
        assert out.is_dir() and not list(out.iterdir())  # the new folder stays, empty as it was made


def test_a_force_run_over_a_users_files_stopped_or_killed_leaves_them_and_is_pointed_at(tmp_path, monkeypatch, capsys):
    # From a hostile pass over the side folder: a stop signal saved a --force run over a user's loss.csv (no model
    # there) into the folder itself, replacing it with a part of a run; and --resume on such a folder said "no run
    # was saved there", with the run's snapshot beside it
    out = tmp_path / "mine"
    out.mkdir()
    (out / "loss.csv").write_text("my notes")
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    stop_training_at(monkeypatch, 25)
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--force", "--out", str(out)]) == 130
    assert f"the loss.csv already in {out} stays: this interrupted run went to {out / 'interrupted'}" in \
        capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["interrupted", "loss.csv"]
    assert (out / "loss.csv").read_text() == "my notes"
    assert int(checkpoint.load_state(out / "interrupted" / "model.npz")["step"]) == 25
    monkeypatch.undo()
    with pytest.raises(UsageError, match=re.escape(f"nothing to resume in {out}: no run was saved there (a run is saved "
                                                   f"when it ends or is stopped, and every 5 minutes as it trains); a "
                                                   f"run stopped beside it is in {out / 'interrupted'}: python -m "
                                                   f"mlp_lm.train --resume --out {out / 'interrupted'} continues it")):
        train.main(["--resume", "--out", str(out)])


def test_resuming_a_stopped_run_names_a_newer_one_stopped_beside_it(tmp_path, monkeypatch, capsys):
    # From the same pass: --resume continued the older run in --out in silence, with the newer --force run that
    # was to replace it stopped (or killed) in out/interrupted
    out = tmp_path / "run"
    stop_training_at(monkeypatch, 30)
    assert train.main([*SMALL, "--steps", "60", "--eval-every", "0", "--out", str(out)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    stop_training_at(monkeypatch, 20)
    assert train.main([*SMALL, "--steps", "60", "--eval-every", "0", "--seed", "4", "--force", "--out", str(out)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert train.main(["--resume", "--out", str(out)]) == 0
    assert (f"resuming the run in {out} at step 30 of 60 (a newer run, stopped beside it, is in {out / 'interrupted'}: "
            f"python -m mlp_lm.train --resume --out {out / 'interrupted'} continues that one)") in capsys.readouterr().out
    assert train.main(["--resume", "--out", str(out / "interrupted")]) == 0
    assert "a newer run" not in capsys.readouterr().out


def test_a_force_run_stopped_on_a_full_disk_takes_back_its_snapshot_beside_the_earlier_run(tmp_path, monkeypatch,
                                                                                             capsys):
    # From the same pass: a stopped --force run saved whole under the temporary directory (its side folder full)
    # left its older snapshot in out/interrupted, and --resume pointed at it
    from mlp_lm import cli
    out, rescue = tmp_path / "run", tmp_path / "rescued"
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(out)]) == 0
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    stop_training_at(monkeypatch, 25)
    real, calls = runs.save_run, []

    def full_at_the_stop(to, *a):
        calls.append(to)
        if len(calls) == 26 and to == out / "interrupted":  # the stop's save, after 25 snapshots there
            raise checkpoint.CheckpointError(f"cannot write {to / 'model.npz'}: No space left on device")
        real(to, *a)
    monkeypatch.setattr(runs, "save_run", full_at_the_stop)
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(rescue.mkdir() or rescue))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--force", "--out", str(out)]), "train")
    assert e.value.code == 130 and f"saved in {rescue}" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier  # no side folder left, nor anything in it
    assert int(checkpoint.load_state(rescue / "model.npz")["step"]) == 25


def test_a_force_runs_side_folder_removed_while_it_trains_is_made_again(tmp_path, monkeypatch, capsys):
    # From the same pass: an rm -rf of out/interrupted stopped the run's snapshots for good, so a kill then lost it
    import shutil
    from mlp_lm import model
    out = tmp_path / "run"
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(out)]) == 0
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    real, calls = model.loss_and_grads, {"n": 0}

    def side_folder_removed_at_step_10(*a, **k):
        calls["n"] += 1
        if calls["n"] == 11:
            shutil.rmtree(out / "interrupted")
        if calls["n"] == 21:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(model, "loss_and_grads", side_folder_removed_at_step_10)
    capsys.readouterr()
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--force", "--out", str(out)]) == 130
    assert "cannot save a snapshot" not in capsys.readouterr().err
    assert int(checkpoint.load_state(out / "interrupted" / "model.npz")["step"]) == 20
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["interrupted"]


@pytest.mark.parametrize("earlier", ["diverged", "no state"])
def test_a_refusal_to_resume_names_a_run_stopped_beside_it(tmp_path, monkeypatch, earlier):
    # From a second pass over the side folder: --resume on a folder whose run diverged said only "start a new
    # run", with a --force run over it killed, and resumable, in out/interrupted
    out = tmp_path / "run"
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(out)]) == 0
    params, vocab, config = checkpoint.load(out / "model.npz")
    if earlier == "diverged":
        with np.load(out / "model.npz", allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        arrays["config"] = np.array(json.dumps({**json.loads(str(arrays["config"])), "diverged_at": 15}))
        np.savez(out / "model.npz", **arrays)
    else:
        checkpoint.save(out / "model.npz", params, vocab, {k: v for k, v in config.items() if k != "format"})
    stop_training_at(monkeypatch, 10)
    assert train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--force", "--out", str(out)]) == 130
    monkeypatch.undo()
    pointer = (f" (or continue the run stopped beside it, in {out / 'interrupted'}: python -m mlp_lm.train --resume "
               f"--out {out / 'interrupted'})")
    with pytest.raises(UsageError) as e:
        train.main(["--resume", "--out", str(out)])
    assert str(e.value).endswith(pointer) and ("diverged" in str(e.value)) == (earlier == "diverged")
    (out / "interrupted" / "model.npz").unlink()  # nothing beside it to resume: no pointer
    with pytest.raises(UsageError) as e:
        train.main(["--resume", "--out", str(out)])
    assert "stopped beside" not in str(e.value) and str(e.value).endswith("start a new run" if earlier == "no state"
                                                                          else "smaller --lr")


def test_an_empty_side_folder_of_the_users_is_used_but_never_removed(tmp_path, monkeypatch):
    # From a second pass: a user's own empty out/interrupted was claimed for the snapshots, then removed with them
    out = tmp_path / "run"
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(out)]) == 0
    (out / "interrupted").mkdir()
    monkeypatch.setattr(snapshot, "SNAPSHOT_SECONDS", 0.0)
    saved, real = [], runs.save_run
    monkeypatch.setattr(runs, "save_run", lambda to, *a: saved.append(to) or real(to, *a))
    assert train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--seed", "2", "--force", "--out", str(out)]) == 0
    assert saved == [out / "interrupted"] * 29 + [out]
    assert (out / "interrupted").is_dir() and not list((out / "interrupted").iterdir())  # as the user left it
