"""A training is never lost to what happens around it: a reader that leaves, closed streams,
an interrupted --force, a disk too small or filling up, a folder that is not empty."""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from mlp_lm import atomic, checkpoint, cli, latest, model, runlock, runs, runtime, snapshot, space, train, train_flags, train_run
from mlp_lm.wordfile import CHECKOUT

from .conftest import ROOT, SMALL, run_cli, stop_training_at


def test_a_reader_of_the_progress_that_leaves_costs_the_messages_not_the_run(tmp_path):
    # `python -m mlp_lm.train 2>&1 | head -1`: the pipe breaks at the next progress line.
    proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.train", "--steps", "4000", "--eval-every", "0",
                             "--out", str(tmp_path)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr.readline().startswith(b"step ")
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 4000
    checkpoint.load(tmp_path / "model.npz")


def test_closed_streams_are_taken_for_dev_null(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(f"'{sys.executable}' -m mlp_lm.train --steps 200 --eval-every 0 --out '{out}' >&- 2>&-",
                          shell=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and json.loads((out / "metrics.json").read_text())["steps"] == 200
    # the samples would be lost: refused, as `cat >&-` fails (a hostile pass: exit 0, the summary said 2 samples)
    for command in ("sample --checkpoint '{out}/model.npz' -n 2", "evaluate --checkpoint '{out}/model.npz'",
                    "ngram --n 2 --smoothing kn"):
        proc = subprocess.run(f"'{sys.executable}' -m mlp_lm.{command.format(out=out)} >&-",
                              shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.splitlines() == [
            f"python -m mlp_lm.{command.split()[0]}: error: standard output is closed (>&-), so what this command "
            f"prints would be lost; send it to a file, or to /dev/null to drop it"], proc.stderr
    # a --json file is work enough (a second hostile pass)
    proc = subprocess.run(f"'{sys.executable}' -m mlp_lm.ngram --n 2 --smoothing kn --json '{tmp_path}/n.json' >&-",
                          shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads((tmp_path / "n.json").read_text())["n"] == 2, proc.stderr
    # a bad flag is said first (a second hostile pass), and draw's work is its pictures, which need no stdout
    proc = subprocess.run(f"'{sys.executable}' -m mlp_lm.sample --bogus >&-; '{sys.executable}' -m mlp_lm.draw "
                          f"'{out}' >&-", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.splitlines()
    assert lines[0] == "python -m mlp_lm.sample: error: unrecognized arguments: --bogus (see --help)", lines
    assert len(lines) == 1 if proc.returncode == 0 else "matplotlib is not installed" in lines[1], lines


def test_an_interrupted_forced_run_does_not_replace_the_model_it_was_to_replace(tmp_path, monkeypatch, capsys):
    assert train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "model.npz").read_bytes()
    stop_training_at(monkeypatch, 20)

    assert train.main([*SMALL, "--steps", "100", "--eval-every", "0", "--out", str(tmp_path), "--force"]) == 130
    assert (tmp_path / "model.npz").read_bytes() == before
    assert json.loads((tmp_path / "interrupted" / "metrics.json").read_text())["steps"] == 20
    err = capsys.readouterr().err
    assert f"the model already in {tmp_path} stays" in err
    assert f"--resume --out {tmp_path / 'interrupted'}" in err


def test_a_second_interrupted_forced_run_keeps_the_first_and_any_folder_another_training_holds(
        tmp_path, monkeypatch, capsys):
    assert train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    stop_training_at(monkeypatch, 20, every=True)
    assert train.main([*SMALL, "--steps", "100", "--eval-every", "0", "--out", str(tmp_path), "--force"]) == 130
    first = (tmp_path / "interrupted" / "model.npz").read_bytes()
    (tmp_path / "interrupted-2").mkdir()
    with runlock.RunLock(tmp_path / "interrupted-2"):  # another training writing there (started with that --out)
        assert train.main([*SMALL, "--steps", "100", "--eval-every", "0", "--out", str(tmp_path), "--force"]) == 130
    assert (tmp_path / "interrupted" / "model.npz").read_bytes() == first
    assert not (tmp_path / "interrupted-2" / "model.npz").exists()
    assert json.loads((tmp_path / "interrupted-3" / "metrics.json").read_text())["steps"] == 19
    assert not (tmp_path / "interrupted-3" / runlock.LOCK).exists()  # let go once saved
    assert f"--resume --out {tmp_path / 'interrupted-3'}" in capsys.readouterr().err
    assert latest.newest(tmp_path.parent) == tmp_path / "model.npz"


def test_a_sweep_the_disk_cannot_hold_is_refused_before_it_starts(tmp_path, monkeypatch, capsys):
    # From a hostile review: on a full disk the sweep ran all its steps, then failed writing its table.
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    swept = []
    monkeypatch.setattr(train_run, "sweep_into", lambda *a: swept.append(a))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--lr-sweep", "--out", str(tmp_path / "sweep")]), "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and not swept
    assert re.search(r"has 1,000 bytes free, and the sweep's table and picture need about \d+\.\d KiB; free", err[0])
    assert "another --out" in err[0]
    assert [runtime.gib(n, 1) for n in (1, 1000, 56 * 1024, 92 * 1024 + 100, 3 * 2**20 // 2, 2**20 - 1, 2**31)] == [
        "1 byte", "1,000 bytes", "56.0 KiB", "92.1 KiB", "1.5 MiB", "1.0 MiB", "2.0 GiB"]  # "0.1 MB free ... need about 0.1 MB" before


def test_a_run_the_disk_cannot_hold_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "100000", "--out", str(tmp_path / "new")]), "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    assert re.search(r"has 1,000 bytes free, and this run's files need about \d+\.\d [KM]iB; free", err[0])
    assert "another --out" in err[0]
    assert not (tmp_path / "new").exists()  # the folder it made for the run is gone with the run
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "100000", "--out", str(tmp_path)]), "train")
    assert e.value.code == 2 and tmp_path.is_dir() and not list(tmp_path.iterdir())  # one it was given stays


def test_the_space_estimate_holds_the_files_written(tmp_path):
    # (A hostile pass: with --eval-every 1 the dev losses, 16 bytes each in model.npz and a column of loss.csv,
    # were left out, and a run passed the check of ulimit -f, trained, and could not be saved.)
    for i, flags in enumerate(([*SMALL, "--steps", "300", "--eval-every", "0"], [*SMALL, "--steps", "300", "--eval-every",
                               "0", "--optimizer", "adamw", "--lr", "1e-3", "--ema", "0.9"],
                               [*SMALL, "--steps", "500", "--eval-every", "1"])):
        out = tmp_path / str(i)
        assert train.main([*flags, "--out", str(out)]) == 0
        written = sum(f.stat().st_size for f in out.iterdir())
        cfg = train_flags.parse_args([*flags]).cfg
        n_params = model.num_params(checkpoint.load(out / "model.npz")[0])
        estimate = space.bytes_to_save(cfg, n_params)
        assert written <= estimate < 2 * written + 2**16, (written, estimate)
        largest = max(f.stat().st_size for f in out.iterdir())  # what a file size limit is checked against
        assert largest <= max(space.file_sizes(cfg, n_params)), (largest, space.file_sizes(cfg, n_params))
        sizes = [(out / name).stat().st_size for name in ("model.npz", "loss.csv")]
        assert all(size <= bound for size, bound in zip(sizes, space.file_sizes(cfg, n_params))), sizes


def test_a_save_that_fails_after_training_is_rescued_elsewhere(tmp_path, monkeypatch, capsys):
    out, rescue = tmp_path / "run", tmp_path / "rescued"
    real_save = runs.save_run

    def fail_in_out(folder, *a, **k):
        if folder == out:
            raise checkpoint.CheckpointError(f"cannot write {out}/model.npz: No space left on device")
        return real_save(folder, *a, **k)

    monkeypatch.setattr(runs, "save_run", fail_in_out)
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(rescue.mkdir() or rescue))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(out)]), "train")
    out_text, err = capsys.readouterr()
    err = err.strip().splitlines()
    assert e.value.code == 2 and f"the run is saved in {rescue} instead" in err[-1]
    saved = json.loads((rescue / "metrics.json").read_text())
    assert saved["steps"] == 40
    checkpoint.load(rescue / "model.npz")
    # From a hostile review: the run was evaluated, and its losses never shown (nor, a later one found, its time)
    assert f"dev loss   {saved['dev_loss']:.4f} nats" in out_text and "test loss " in out_text
    assert re.search(r"^trained 40 steps in [\d.]+ ?m?s \([\d,]+ steps/s\)$", out_text, re.M), out_text


def test_a_save_short_of_memory_is_rescued_or_said_lost_with_advice_on_memory(tmp_path, monkeypatch, capsys):
    # A hostile tester's: a training stopped for want of memory ran out of it again writing its files (numpy copies
    # each array in pieces); the MemoryError skipped the rescue and the run was lost under "use smaller ones"
    out, rescue = tmp_path / "run", tmp_path / "rescued"
    real_save = runs.save_run

    def short_in_out(folder, *a, **k):
        if folder == out:
            raise MemoryError
        return real_save(folder, *a, **k)

    monkeypatch.setattr(runs, "save_run", short_in_out)
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(rescue.mkdir() or rescue))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(out)]), "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and err[-1].endswith(
        f"error: there was not enough memory to write the run in {out}; the run is saved in {rescue} instead: move "
        f"that folder where you want it")
    assert json.loads((rescue / "metrics.json").read_text())["steps"] == 40

    def no_memory(*a, **k):
        raise MemoryError
    monkeypatch.setattr(runs, "save_run", no_memory)
    monkeypatch.setattr(runs.atomic, "write_atomic", no_memory)  # not even the model alone
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(tmp_path / "r2")]),
                "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "not enough memory to write the run in" in err[-1]
    assert err[-1].endswith("so this run is lost: give this process more memory (free some, or raise ulimit -v) "
                            "before training again")
    # no room where asked, then no memory elsewhere: both said (a reviewer's)
    def no_room_then_no_memory(folder, *a, **k):
        if folder == tmp_path / "r3":
            raise checkpoint.CheckpointError(f"cannot write {folder}/model.npz: No space left on device")
        raise MemoryError
    monkeypatch.setattr(runs, "save_run", no_room_then_no_memory)
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(tmp_path / "r3")]),
                "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "No space left on device" in err[-1] and err[-1].endswith(
        "so this run is lost: free some space, and give this process more memory (free some, or raise ulimit -v) "
        "before training again") or space.file_size_limit() is not None


def test_a_run_that_fits_nowhere_whole_keeps_its_model_alone(tmp_path, monkeypatch, capsys):
    # From a hostile pass: --out and the temporary directory on one disk with 900 KB free, the run's files 1.6 MB
    # (loss.csv 949 KB), its parameters 48 KB: the run was "lost" where its model would have fitted.
    def no_space(folder, *a, **k):
        raise checkpoint.CheckpointError(f"cannot write {folder}/model.npz: No space left on device")
    monkeypatch.setattr(runs, "save_run", no_space)
    alone = tmp_path / "alone"
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(alone.mkdir() or alone))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(tmp_path / "run")]), "train")
    out_text, err = capsys.readouterr()
    err = err.strip().splitlines()
    assert e.value.code == 2 and "nor could the whole run be saved" in err[-1]
    # what the model learned is reported all the same (a hostile tester: neither line was)
    assert re.search(r"^trained 40 steps in .*\n(train|dev|test) loss .*\n.*\ntest loss ", out_text, re.M), out_text
    assert f"but its model is, alone (without the training state or the loss history, so it cannot be resumed): " \
           f"python -m mlp_lm.sample --checkpoint {alone / 'model.npz'} samples from it; free some space" in err[-1]
    assert sorted(p.name for p in alone.iterdir()) == ["model.npz"]
    params, vocab, config = checkpoint.load(alone / "model.npz")
    assert config["steps"] == 40 and not checkpoint.load_state(alone / "model.npz")
    assert run_cli("mlp_lm.sample", "--checkpoint", alone / "model.npz", "-n", "3").returncode == 0


def test_a_run_that_cannot_be_saved_anywhere_says_it_is_lost(tmp_path, monkeypatch, capsys):
    def no_space(folder, *a, **k):
        raise checkpoint.CheckpointError(f"cannot write {folder}/model.npz: No space left on device")
    monkeypatch.setattr(runs, "save_run", no_space)
    monkeypatch.setattr(runs.atomic, "write_atomic", lambda files: no_space(files[0][0]))  # not even the model alone
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(tmp_path / "run")]), "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "No space left on device" in err[-1] and "so this run is lost" in err[-1]
    assert not list(Path(tempfile.gettempdir()).glob("mlp_lm-rescued-*/model.npz.*"))
    assert err[-1].endswith("free some space before training again") or space.file_size_limit() is not None


def test_a_file_size_limit_is_refused_before_training_and_named_when_a_save_meets_it(tmp_path, monkeypatch, capsys):
    # From a hostile pass: under `ulimit -f 500` a run trained, could not write its model.npz anywhere
    # ("File too large"), and said to free some space: the run was lost to a limit the disk's free
    # space does not show. The limit is checked beside the space now, for a run and for a sweep.
    import resource

    def limited(kb):
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (kb * 1024, hard))
    for flags, what in ((["--steps", "60000", "--eval-every", "10000"], "this run's largest file"),
                        (["--lr-sweep", "--steps", "1000"], "the sweep's table and picture")):
        out = tmp_path / flags[0].strip("-")
        proc = subprocess.run([sys.executable, "-m", "mlp_lm.train", *SMALL, *flags, "--out", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, preexec_fn=limited(8))
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1, proc.stderr
        assert f"may write files of at most 8.0 KiB (ulimit -f), and {what} needs about" in err[0]
        assert "raise the limit (ulimit -f unlimited)" in err[0] and not out.exists()

    def too_large(folder, *a, **k):  # the limit met in the save all the same (an estimate short of the file)
        raise checkpoint.CheckpointError(f"cannot write {folder}/model.npz: File too large")
    monkeypatch.setattr(runs, "save_run", too_large)
    monkeypatch.setattr("mlp_lm.rescue.file_size_limit", lambda: 10**6)  # (what the rescue advises)
    alone = tmp_path / "alone"
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(alone.mkdir(exist_ok=True) or alone))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(tmp_path / "run")]),
                "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and err[-1].endswith("samples from it; raise this process's file size limit "
                                                  "(ulimit -f) before training again")


def test_a_new_default_folder_is_never_one_that_holds_something(tmp_path):
    stem = f"claim-test-{uuid.uuid4().hex[:8]}"  # a name no real run has
    base = CHECKOUT / "runs" / stem
    try:
        base.mkdir(parents=True)
        (base / "lr_sweep.csv").write_text("lr,loss\n")  # what `train --lr-sweep` leaves
        out, lock = runs.claim_default_out(tmp_path / f"{stem}.txt")
        lock.__exit__()
        assert out.resolve() == base.with_name(f"{stem}-2") and (base / "lr_sweep.csv").exists()
        (out / runlock.LOCK).write_text("")  # a lock file alone (a killed run's) does not count
        again, lock = runs.claim_default_out(tmp_path / f"{stem}.txt")
        lock.__exit__()
        assert again.resolve() == out.resolve()
    finally:
        for d in base.parent.glob(f"{stem}*"):
            shutil.rmtree(d)


def test_a_model_that_learned_its_training_items_by_heart_is_told_so(tmp_path):
    r = random.Random(0)  # random letters: nothing in them carries over from train to dev
    words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(6, 10))) for _ in range(60)]
    (tmp_path / "random.txt").write_text("\n".join(words))
    proc = run_cli("mlp_lm.train", "--data", tmp_path / "random.txt", "--steps", 2000, "--eval-every", 0,
                   "--out", tmp_path / "run")
    assert proc.returncode == 0
    assert "learned its training items by heart" in proc.stderr and "more data" in proc.stderr
    assert "larger --lr" not in proc.stderr


def test_ctrl_c_while_a_command_is_still_starting_is_one_line():
    # As `python -m mlp_lm.<command>` imports the package: sys.argv[0] is "-m" until the module runs (and
    # sys.orig_argv holds the command line, whose -m names the module).
    code = ("import sys; sys.argv[0] = '-m'; sys.orig_argv = [sys.executable, '-m', 'mlp_lm.train']; "
            "import mlp_lm, os, signal, time; "
            "os.kill(os.getpid(), signal.SIGINT); time.sleep(5)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130
    assert proc.stderr.strip().splitlines() == ["python -m mlp_lm.train: interrupted (SIGINT) while starting; nothing was done"]
    # Imported by a program, the package leaves Ctrl-C to the program.
    code = "import signal, mlp_lm; assert signal.getsignal(signal.SIGINT) is signal.default_int_handler"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_sigint_while_starting_under_a_memory_limit_names_openblas_as_a_possible_sender():
    # From a hostile tester: under `ulimit -v` OpenBLAS, unable to start its threads as numpy loads it, raises
    # SIGINT itself, and the line said "interrupted (SIGINT)" of a Ctrl-C no one pressed. A limit far above what
    # the command needs, so that nothing else changes; and SIGTERM, which OpenBLAS never sends, is told as before.
    import resource
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    limit = 2**40 if hard == resource.RLIM_INFINITY else hard  # (a hard limit of the machine's own is limit enough)
    code = ("import sys; sys.argv[0] = '-m'; sys.orig_argv = [sys.executable, '-m', 'mlp_lm.train']; "
            "import mlp_lm, os, signal, time; os.kill(os.getpid(), signal.{}); time.sleep(5)")
    for name, returncode, hint in (("SIGINT", 130, True), ("SIGTERM", 143, False)):
        proc = subprocess.run([sys.executable, "-c", code.format(name)], capture_output=True, text=True, timeout=60,
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, hard)))
        assert proc.returncode == returncode
        said = f"python -m mlp_lm.train: interrupted ({name}) while starting; nothing was done"
        if hint:
            said += ("; if no one pressed Ctrl-C, OpenBLAS sent it on finding no memory to start its threads under "
                     "this process's limit (ulimit -v): raise the limit, or set OPENBLAS_NUM_THREADS=1")
        assert proc.stderr.strip().splitlines() == [said]


def test_a_signal_sent_before_python_itself_has_started_waits_for_the_handlers(tmp_path):
    # From a hostile tester: results passed a Ctrl-C on to a train it had just started, still importing site,
    # and the user saw "Fatal Python error: init_import_site" and a traceback. results now starts it with the
    # stop signals blocked; the package unblocks them once its handlers are in place. Twice: the second
    # signal (a terminal's Ctrl-C reaches both processes) once printed the line again, inside the first.
    import signal
    stops = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # a child inherits it
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.train", "--steps", "300", "--eval-every", "0",
                                 "--out", str(tmp_path / "run")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    proc.send_signal(signal.SIGINT)  # long before Python has imported anything of ours
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (130, "")
    assert err.strip().splitlines() == ["python -m mlp_lm.train: interrupted (SIGINT) while starting; nothing was done"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_while_starting_ends_the_command_even_where_an_exception_would_be_swallowed(name, code):
    # A signal handled inside a __del__ (or a C extension's import) cannot end the program by raising.
    program = ("import sys; sys.argv[:] = ['-m']; sys.orig_argv = [sys.executable, '-m', 'mlp_lm.sample']\n"
               "import os, signal, time, mlp_lm\n"
               f"class Dropped:\n    def __del__(self):\n        os.kill(os.getpid(), signal.{name})\n"
               "        sum(range(10**5))\nDropped()\ntime.sleep(5)\nprint('went on')")
    proc = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (code, "")
    assert proc.stderr.strip().splitlines() == [f"python -m mlp_lm.sample: interrupted ({name}) while starting; nothing was done"]


def test_a_model_interrupted_in_its_evaluation_is_saved_even_if_it_cannot_sample(tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    def overflows(*a, **k):
        raise FloatingPointError("its logits reach 1e+38")

    monkeypatch.setattr(train_run.model, "split_loss", interrupted)  # Ctrl-C in the final evaluation
    monkeypatch.setattr(snapshot, "generate", overflows)  # where the saved files are made
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path)]) == 130
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["evaluated"] is False and metrics["samples"] == []


def test_the_progress_header_shows_settings_unrounded():
    from mlp_lm.config import Config, describe_training
    assert describe_training(Config(ema=0.999999999, emb_dropout=0.08)).endswith("emb-dropout 0.08, ema 0.999999999")


def test_messages_to_a_full_disk_cost_the_messages_not_the_run(tmp_path):
    proc = subprocess.run(f"'{sys.executable}' -m mlp_lm.train --steps 300 --eval-every 0 --out '{tmp_path}' "
                          f"2>/dev/full", shell=True, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0 and json.loads((tmp_path / "metrics.json").read_text())["steps"] == 300


def test_an_interrupted_forced_run_on_a_full_disk_is_rescued(tmp_path, monkeypatch, capsys):
    out, rescue = tmp_path / "run", tmp_path / "rescued"
    assert train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(out)]) == 0
    stop_training_at(monkeypatch, 20)

    def disk_full(*a, **k):  # the side folder cannot be made: the disk filled during training
        raise cli.UsageError(f"cannot write to output directory {out / 'interrupted'}: No space left on device")
    monkeypatch.setattr(train_run, "claim_fresh", disk_full)
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(rescue.mkdir() or rescue))
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "100", "--eval-every", "0", "--out", str(out), "--force"]), "train")
    err = capsys.readouterr().err.strip().splitlines()
    # the stop signal's exit code, as for a run saved where it was asked (it was 2: a review of a later change)
    assert e.value.code == 130 and "No space left on device" in err[-1] and f"saved in {rescue}" in err[-1]
    assert err[-1].endswith(f"to continue it: python -m mlp_lm.train --resume --out {rescue}")
    assert json.loads((rescue / "metrics.json").read_text())["steps"] == 20


def test_a_model_asked_for_while_its_training_has_saved_none_says_so(tmp_path):
    # From a hostile pass: sample during a training's first minutes said to train a model.
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoint not found: .*\(train one with"):
        checkpoint.load(tmp_path / "model.npz")
    with runlock.RunLock(tmp_path):
        with pytest.raises(checkpoint.CheckpointError, match=r"a training is writing to that folder and has saved "
                                                              r"no model yet; .* wait for it\)$"):
            checkpoint.load(tmp_path / "model.npz")


def test_a_lock_whose_pid_cannot_be_written_still_locks(tmp_path, monkeypatch):
    def no_space(*a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(runs.os, "pwrite", no_space)
    with runlock.RunLock(tmp_path):
        with pytest.raises(runlock.LockBusy):
            runlock.RunLock(tmp_path).__enter__()


def test_a_folder_where_a_run_file_goes_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "metrics.json").mkdir()
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(tmp_path)]), "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "metrics.json is a folder, in the way of saving" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_save_whose_files_cannot_be_moved_into_place_says_so(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    with pytest.raises(checkpoint.CheckpointError, match="a is a folder"):
        atomic.write_atomic([(tmp_path / "a", lambda f: f.write(b"new"))])
    monkeypatch.setattr(atomic, "recover", lambda folder: None)  # the renames after the commit fail
    with pytest.raises(checkpoint.CheckpointError, match="cannot move the new files into place"):
        atomic.write_atomic([(tmp_path / "b", lambda f: f.write(b"new"))])
    assert not (tmp_path / "b").exists()


def test_a_side_folder_that_is_a_link_is_not_used(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "interrupted").symlink_to(tmp_path / "elsewhere")  # an empty folder, seen through a link
    out, lock = runs.claim_fresh(tmp_path / "run" / "interrupted")
    lock.__exit__()
    assert out == tmp_path / "run" / "interrupted-2"


def test_a_lock_in_a_folder_turned_read_only_lets_go_quietly(tmp_path, monkeypatch):
    lock = runlock.RunLock(tmp_path).__enter__()

    def read_only(self, missing_ok=False):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(runs.Path, "unlink", read_only)
    lock.__exit__()  # no error: the one that matters (where the run went) is not to be replaced by this one
    monkeypatch.undo()
    with runlock.RunLock(tmp_path):  # and the lock is free
        pass


def test_a_rescued_side_folder_run_leaves_no_empty_side_folder(tmp_path, monkeypatch, capsys):
    out, rescue = tmp_path / "run", tmp_path / "rescued"
    assert train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(out)]) == 0
    stop_training_at(monkeypatch, 20)
    real_save = runs.save_run

    def full_in_out(folder, *a, **k):
        if folder != rescue:
            raise checkpoint.CheckpointError(f"cannot write {folder}/model.npz: No space left on device")
        return real_save(folder, *a, **k)
    monkeypatch.setattr(runs, "save_run", full_in_out)
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(rescue.mkdir() or rescue))
    with pytest.raises(cli.UsageError, match="saved in"):
        train.main([*SMALL, "--steps", "100", "--eval-every", "0", "--out", str(out), "--force"])
    assert not (out / "interrupted").exists() and (rescue / "model.npz").is_file()


def test_a_folder_named_like_the_sweeps_table_does_not_fail_a_saved_run(tmp_path):
    (tmp_path / "lr_sweep.csv").mkdir()
    assert train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 50
    with pytest.raises(cli.CheckpointError, match="lr_sweep.csv is a folder"):  # found before the sweep, not after
        train.main(["--lr-sweep", "--steps", "24", "--out", str(tmp_path)])
    (tmp_path / "other" / "model.npz").mkdir(parents=True)
    assert train.main(["--lr-sweep", "--steps", "24", "--out", str(tmp_path / "other")]) == 0  # it writes no model


def test_a_picture_that_cannot_be_drawn_is_a_warning_once_the_run_is_saved(tmp_path, monkeypatch, capsys):
    (tmp_path / "embedding.png").write_text("an earlier run's picture")  # never left beside another run
    (tmp_path / "lr_sweep.png").write_text("an earlier sweep's picture")

    def no_room(plt, losses, devs, path, kept=None):
        raise IsADirectoryError(21, "Is a directory")

    def drawn(plt, C, vocab, path):
        path.write_text("picture")
    monkeypatch.setattr(train_run.plots, "try_pyplot", lambda: (object(), None))  # as if matplotlib were installed
    monkeypatch.setattr(train_run.plots, "plot_loss", no_room)
    monkeypatch.setattr(train_run.plots, "plot_embedding", drawn)
    assert train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(tmp_path), "--force"]) == 0
    out, err = capsys.readouterr()
    assert f"warning: could not draw {tmp_path / 'loss.png'} (Is a directory); the run is saved without it" in err
    assert f"wrote model.npz, metrics.json, loss.csv, embedding.png to {tmp_path}" in out
    assert (tmp_path / "embedding.png").read_text() == "picture"  # this run's, drawn anew
    assert (tmp_path / "lr_sweep.png").read_text() == "an earlier sweep's picture"  # a sweep's is not a run's
    checkpoint.load(tmp_path / "model.npz")


def test_the_commands_it_suggests_quote_a_path_with_a_space(tmp_path, monkeypatch, capsys):
    out = tmp_path / "my runs"
    stop_training_at(monkeypatch, 20)
    assert train.main([*SMALL, "--steps", "100", "--eval-every", "0", "--out", str(out)]) == 130
    stdout, err = capsys.readouterr()
    assert f"to continue: python -m mlp_lm.train --resume --out '{out}'" in err
    assert f"sample more: python -m mlp_lm.sample --checkpoint '{out / 'model.npz'}'" in stdout


def test_an_empty_side_folder_that_cannot_be_written_is_passed_over(tmp_path, monkeypatch):
    (tmp_path / "interrupted").mkdir()  # empty, but (say) immutable
    real = runs.prepare_out

    def refuse_the_first(folder, **kwargs):
        if Path(folder).name == "interrupted" or Path(folder).name.startswith("never"):
            raise cli.UsageError(f"cannot write to output directory {folder}: Operation not permitted")
        return real(folder, **kwargs)
    monkeypatch.setattr(runs, "prepare_out", refuse_the_first)
    out, lock = runs.claim_fresh(tmp_path / "interrupted")
    lock.__exit__()
    assert out == tmp_path / "interrupted-2"
    with pytest.raises(cli.UsageError, match="cannot write"):  # one it could not even make: no endless search
        runs.claim_fresh(tmp_path / "never")


def test_a_picture_is_written_whole_or_not_at_all(tmp_path):
    from mlp_lm import cli, plots
    (tmp_path / "loss.png").write_bytes(b"the earlier picture")

    class Plt:
        closed = []

        def close(self, fig):
            self.closed.append(fig)

    class Fig:  # matplotlib's savefig, stopped by Ctrl-C half-way through the PNG
        def savefig(self, f, **kw):
            f.write(b"\x89PNG half")
            raise cli.Interrupted()
    with pytest.raises(cli.Interrupted):
        plots._save(Plt(), Fig(), tmp_path / "loss.png")  # matplotlib wrote straight to the file: half a PNG
    assert (tmp_path / "loss.png").read_bytes() == b"the earlier picture" and Plt.closed
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]


def test_a_reader_that_read_an_older_journal_never_loses_a_later_save(tmp_path, monkeypatch):
    # From a hostile pass (1 save in 4,335 under stress): a reader's recover() read journal N and stalled; the
    # writer finished N and committed N + 1; the reader then unlinked N + 1 unread, and write_atomic returned with
    # the new files still under hidden names, to be removed by the next save.
    files = [(tmp_path / "a.txt", lambda f: f.write(b"old a")), (tmp_path / "b.txt", lambda f: f.write(b"old b"))]
    atomic.write_atomic(files)
    real, calls = atomic.recover, {"n": 0}

    def stale_reader_then_recover(folder):
        calls["n"] += 1
        if calls["n"] == 2:  # just after the commit: the stalled reader drops the journal it did not read
            (Path(folder) / atomic.JOURNAL).unlink()
        return real(folder)
    monkeypatch.setattr(atomic, "recover", stale_reader_then_recover)
    atomic.write_atomic([(tmp_path / "a.txt", lambda f: f.write(b"new a")), (tmp_path / "b.txt", lambda f: f.write(b"new b"))])
    assert [(tmp_path / n).read_bytes() for n in ("a.txt", "b.txt")] == [b"new a", b"new b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # no temporaries, no journal
    monkeypatch.setattr(atomic, "recover", real)

    # and recover() itself leaves a journal that replaced the one it read (a writer's next save) in place
    (tmp_path / ".a.txt.x.tmp").write_bytes(b"next a")
    (tmp_path / atomic.JOURNAL).write_text(json.dumps([[".a.txt.x.tmp", "a.txt"]]))
    real_loads = atomic.json.loads

    def journal_replaced_after_reading(text):
        (tmp_path / ".a.txt.y.tmp").write_bytes(b"later a")
        (tmp_path / ".j").write_text(json.dumps([[".a.txt.y.tmp", "a.txt"]]))
        os.replace(tmp_path / ".j", tmp_path / atomic.JOURNAL)  # the writer's commit, between read and unlink
        return real_loads(text)
    monkeypatch.setattr(atomic.json, "loads", journal_replaced_after_reading)
    atomic.recover(tmp_path)
    monkeypatch.setattr(atomic.json, "loads", real_loads)
    assert (tmp_path / "a.txt").read_bytes() == b"next a" and (tmp_path / atomic.JOURNAL).exists()
    atomic.recover(tmp_path)  # the writer's own recover finds its journal, and finishes it
    assert (tmp_path / "a.txt").read_bytes() == b"later a" and not (tmp_path / atomic.JOURNAL).exists()


def test_resuming_a_complete_run_points_at_a_forced_run_stopped_beside_it(tmp_path, monkeypatch, capsys):
    # From a hostile pass: a --force run stopped goes to OUT/interrupted; --resume --out OUT said only that the
    # run there was complete.
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    stop_training_at(monkeypatch, 10)
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--force", "--out", str(tmp_path)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"the run in {tmp_path} is complete (20 of 20 steps): nothing to resume (a run stopped beside it is in "
        f"{tmp_path / 'interrupted'}: python -m mlp_lm.train --resume --out {tmp_path / 'interrupted'} continues it)")
    assert train.main(["--resume", "--out", str(tmp_path / "interrupted")]) == 0
    # finished, it is no longer pointed at; another stopped --force run is (a review: the first by name was named)
    stop_training_at(monkeypatch, 10)
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--force", "--out", str(tmp_path)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"stopped beside it is in {tmp_path / 'interrupted-2'}: python -m "
                                                    f"mlp_lm.train --resume --out {tmp_path / 'interrupted-2'} continues it)")
    # a link of that name to another stopped run is not one of the run's own side folders
    assert train.main(["--resume", "--out", str(tmp_path / "interrupted-2")]) == 0
    stop_training_at(monkeypatch, 10)
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(tmp_path.parent / "elsewhere")]) == 130
    monkeypatch.undo()
    (tmp_path / "interrupted-7").symlink_to(tmp_path.parent / "elsewhere")
    capsys.readouterr()
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("nothing to resume")
    # nor a folder of a name train never gives one (interrupted-1, interrupted-02: a user's), which results would
    # not move aside either (runs.kept_apart)
    (tmp_path / "interrupted-7").unlink()
    for name in ("interrupted-1", "interrupted-02"):
        (tmp_path.parent / "elsewhere").rename(tmp_path / name)
        assert train.main(["--resume", "--out", str(tmp_path)]) == 0
        assert capsys.readouterr().out.strip().endswith("nothing to resume")
        (tmp_path / name).rename(tmp_path.parent / "elsewhere")


def test_the_space_check_counts_what_a_killed_save_left_as_free(tmp_path, monkeypatch):
    # From a hostile pass: a save killed before its commit left 640 KB of hidden temporaries on a small disk, and
    # the next run was refused for want of space that its own save would have freed first.
    left = [tmp_path / ".model.npz.k1l2m3n4.tmp", tmp_path / ".loss.csv.abcd1234.tmp", tmp_path / "..commit.json.x.tmp"]
    for path in left:
        path.write_bytes(b"0" * 1000)
    (tmp_path / ".notes.txt.tmp").write_text("the user's own")
    cfg = train_flags.parse_args(["--steps", "100"]).cfg
    free = {"bytes": space.bytes_to_save(cfg, 11897) + 2999}  # enough only once the 3,000 bytes are back

    def usage(path):
        return shutil._ntuple_diskusage(10**9, 0, free["bytes"] + sum(1000 for p in left if not p.exists()) - 3000)
    monkeypatch.setattr(runs.shutil, "disk_usage", usage)
    runs.check_space(tmp_path, cfg, 11897)
    assert not any(p.exists() for p in left) and (tmp_path / ".notes.txt.tmp").exists()
