"""Ctrl-C and SIGTERM, sent as real signals to real processes: one line, the right exit code, nothing lost."""
import atexit
import errno
import json
import math
import os
import re
import shutil
import tempfile
import signal
import stat
import subprocess
import sys
import zipfile
import time
from pathlib import Path

import numpy as np
import pytest

from mlp_lm import atomic, checkpoint, train, train_run
from mlp_lm.cli import UsageError
from mlp_lm.wordfile import DataError

from .conftest import ROOT, SMALL, run_cli


def start_training(out, *extra):
    # 40,000 steps: the first progress line, at a twentieth of the run, comes a fifth of a second in
    return subprocess.Popen([sys.executable, "-m", "mlp_lm.train", *SMALL, "--steps", "40000", "--eval-every", "0",
                             "--out", str(out), *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_training(proc, timeout=60):
    """Block until the process prints its first progress line (it is then inside the loop)."""
    deadline = time.time() + timeout
    line = ""
    while time.time() < deadline:
        line = proc.stderr.readline()
        if line.startswith("step"):
            return
    raise AssertionError(f"no progress line within {timeout} s: {line!r}")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                      (signal.SIGQUIT, 131)])  # (Ctrl-\ ended the process at once: a hostile pass)
def test_a_signal_during_training_saves_the_model(sig, code, tmp_path):  # SIGHUP: the terminal closed
    proc = start_training(tmp_path)
    wait_for_training(proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "interrupted after" in err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["evaluated"] is True and 0 < metrics["steps"] < 40000
    checkpoint.load(tmp_path / "model.npz")


def test_another_packages_command_that_imports_mlp_lm_keeps_its_own_stop_signals(tmp_path):
    # From a scripting user's review: python -m mytool.cli, whose package imports mlp_lm, also starts
    # with sys.argv[0] == "-m", and got mlp_lm's start-up handlers: its Ctrl-C printed "mlp_lm:
    # interrupted while starting" and ended the process with no except or finally run, and
    # OPENBLAS_THREAD_TIMEOUT went to its child processes.
    (tmp_path / "mytool").mkdir()
    (tmp_path / "mytool" / "__init__.py").write_text("import mlp_lm\n")
    (tmp_path / "mytool" / "cli.py").write_text(
        "import os, signal\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,\n"
        "      [signal.getsignal(s) is signal.SIG_DFL for s in (signal.SIGTERM, signal.SIGHUP)],\n"
        "      'OPENBLAS_THREAD_TIMEOUT' in os.environ)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    env.pop("OPENBLAS_THREAD_TIMEOUT", None)
    for python_flags in ([], ["-X", "dev"]):
        proc = subprocess.run([sys.executable, *python_flags, "-m", "mytool.cli"], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=60)
        assert proc.returncode == 0 and proc.stdout == "True [True, True] False\n", proc.stderr
    # mlp_lm's own commands still get them, however the -m is written
    check = ("import sys; sys.argv = ['-m']; sys.orig_argv = [sys.executable] + {}\n"
             "import mlp_lm; print(mlp_lm._started_as_a_command())")
    for argv, started in ((["-m", "mlp_lm.train"], True), (["-X", "dev", "-mmlp_lm.sample"], True),
                          (["-m", "mlp_lm"], True), (["-m", "mytool.cli"], False), (["-m", "mlp_lmx.cli"], False),
                          (["-Bm", "mlp_lm.train"], True), (["-Bmmlp_lm.train"], True),  # grouped flags too
                          (["-W", "ignore", "-Im", "mlp_lm"], True), (["-Bm", "mytool.cli"], False),
                          (["-c", "pass", "-m", "mlp_lm"], False)):
        proc = subprocess.run([sys.executable, "-c", check.format(argv)], capture_output=True, text=True, env=env,
                              timeout=60)
        assert proc.stdout == f"{started}\n", (argv, proc.stderr)


def test_ctrl_c_while_the_data_loads_is_one_line(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("\n".join(["abcdefghij"[: 3 + i % 7] for i in range(3_000_000)]) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.train", "--data", str(big), "--out", str(tmp_path / "o")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # numpy imported, the file being read and encoded (it takes several seconds)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "python -m mlp_lm.train: interrupted (SIGINT)"
    assert not (tmp_path / "o" / "model.npz").exists()


def test_ctrl_c_during_the_final_evaluation_keeps_the_model(tmp_path, monkeypatch, capsys):
    real_split_loss = train_run.model.split_loss

    def interrupted(*a, **k):  # a real Ctrl-C in the middle of evaluating the first split
        os.kill(os.getpid(), signal.SIGINT)
        return real_split_loss(*a, **k)

    monkeypatch.setattr(train_run.model, "split_loss", interrupted)
    assert train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(tmp_path)]) == 130
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["evaluated"] is False and metrics["steps"] == 50 and "dev_loss" not in metrics
    checkpoint.load(tmp_path / "model.npz")
    assert "not evaluated" in capsys.readouterr().err


def test_ctrl_c_stops_the_final_evaluation_between_chunks_not_after_the_split(tmp_path, monkeypatch, capsys):
    # From a new user's review: on 200 MB of names the train split's evaluation took 220 s, and a Ctrl-C
    # waited for all of it (a second one too), then saved the model unevaluated anyway.
    real_split_loss, record = train_run.model.split_loss, []

    def in_chunks(params, X, Y, chunk_size=None, stop=None):
        asked = []

        def stop_and_count():
            asked.append(True)
            if len(asked) == 2:  # a real Ctrl-C once the first chunk is done: the second is not begun
                os.kill(os.getpid(), signal.SIGINT)
            return stop()
        loss = real_split_loss(params, X, Y, chunk_size=1000, stop=stop_and_count)
        record.append((len(Y), len(asked), loss))
        return loss

    monkeypatch.setattr(train_run.model, "split_loss", in_chunks)
    assert train.main([*SMALL, "--steps", "50", "--eval-every", "0", "--out", str(tmp_path)]) == 130
    assert len(record) == 1 and record[0][0] > 10_000 and record[0][1:] == (2, None)  # 1 of its 19 chunks done
    assert "interrupted during the final evaluation: saving the model, not evaluated" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["evaluated"] is False and "train_loss" not in metrics
    monkeypatch.setattr(train_run.model, "split_loss", real_split_loss)
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0  # which --resume then does, whole
    assert json.loads((tmp_path / "metrics.json").read_text())["evaluated"] is True


def test_a_ctrl_c_during_the_last_step_is_not_lost(tmp_path, monkeypatch, capsys):
    from mlp_lm import trainer as trainer_module
    real_step = trainer_module.Trainer.step

    def step(self, i):
        if i == self.cfg.steps - 1:
            os.kill(os.getpid(), signal.SIGINT)  # held while the step runs; honoured after it
        return real_step(self, i)

    monkeypatch.setattr(trainer_module.Trainer, "step", step)
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(tmp_path)]) == 130
    assert "interrupted after 40 steps" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 40 and metrics["interrupted"] is True


def test_a_run_given_threads_resumes_with_them_and_one_given_none_lets_the_machine_choose(tmp_path, monkeypatch,
                                                                                          capsys):
    # A hostile tester's: a run with --threads 1, resumed as its message said (no --threads), took two BLAS
    # threads, which round a large model's products otherwise: its loss.csv parted from the run made in one go.
    from mlp_lm import trainer as trainer_module
    real_step = trainer_module.Trainer.step

    def step(self, i):
        if i == 20:
            os.kill(os.getpid(), signal.SIGTERM)  # held while the step runs; honoured after it
        return real_step(self, i)

    args = [*SMALL, "--steps", "40", "--eval-every", "0"]
    assert train.main([*args, "--threads", "1", "--out", str(tmp_path / "one")]) == 0
    for given, header in ((["--threads", "1"], "1 BLAS thread"), ([], "2 BLAS threads")):
        out = tmp_path / ("given" if given else "none")
        monkeypatch.setattr(trainer_module.Trainer, "step", step)
        assert train.main([*args, *given, "--out", str(out)]) == 143
        monkeypatch.undo()
        monkeypatch.setattr(train, "step_threads", lambda *a, **k: 2)  # what the machine's load would choose
        capsys.readouterr()
        assert train.main(["--resume", "--out", str(out)]) == 0
        assert re.search(rf"^training: .*; {header}$", capsys.readouterr().out, re.M)
        monkeypatch.undo()
        if given:
            assert (out / "loss.csv").read_text() == (tmp_path / "one" / "loss.csv").read_text()
    # a reviewer's: a count past the cores of the machine resumed on is said, as --threads's is, and kept
    from mlp_lm import resume
    from mlp_lm.flags import FewerThreads
    cores = resume.available_cores()
    threads = resume.saved_threads(({"threads": np.array(cores + 3)},))
    assert threads == cores and isinstance(threads, FewerThreads) and threads.asked == cores + 3
    # and a damaged count is refused as any damaged part of a state is
    with np.load(tmp_path / "given" / "model.npz") as f:
        arrays = dict(f)
    for damaged in (np.array("2"), np.array(-1), np.array(2.0), np.array([2, 2])):
        np.savez(tmp_path / "given" / "model.npz", **{**arrays, "state.threads": damaged})
        with pytest.raises(UsageError, match=r"has a damaged training state or config \('threads' is .*, not a thread "
                                             r"count\); start a new run"):
            resume.resume_point(tmp_path / "given")


def test_a_stop_signal_does_not_wait_for_a_slow_final_evaluation(tmp_path, monkeypatch, capsys):
    # From a user's review at scale: a SIGTERM said "saving the model as it is", then evaluated 10 million
    # examples for a minute before saving anything (a container's stop gives ten seconds). An evaluation
    # estimated at SLOW_SECONDS or more is left to --resume.
    from mlp_lm import trainer as trainer_module
    real_step, evaluated = trainer_module.Trainer.step, []

    def step(self, i):
        if i == 20:
            os.kill(os.getpid(), signal.SIGTERM)  # held while the step runs; honoured after it
        return real_step(self, i)

    monkeypatch.setattr(trainer_module.Trainer, "step", step)
    monkeypatch.setattr(train_run.model, "split_loss", lambda *a, **k: evaluated.append(len(a[2])))
    monkeypatch.setattr(train_run.evaltime, "SLOW_SECONDS", 0.0)  # every evaluation counts as slow
    assert train.main([*SMALL, "--steps", "40", "--eval-every", "0", "--out", str(tmp_path)]) == 143
    err = capsys.readouterr().err  # (not a terminal: no line break before it, which would leave an empty line)
    assert "\ninterrupted after 21 steps: saving the model as it is\nnot evaluated, which takes about " in err
    assert "\n\n" not in err
    assert ": --resume evaluates it\n" in err and evaluated == []
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 21 and metrics["evaluated"] is False and "train_loss" not in metrics
    monkeypatch.undo()
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0  # the rest of the steps, and the evaluation
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 40 and metrics["evaluated"] is True


def test_a_final_evaluation_short_of_memory_keeps_the_trained_model(tmp_path, monkeypatch, capsys):
    # From a hostile pass: under a memory limit the evaluation's MemoryError ended a finished training with
    # "not enough memory for these sizes" and nothing saved (and an empty folder left).
    def no_memory(*a, **k):
        raise MemoryError
    monkeypatch.setattr(train_run.model, "split_loss", no_memory)
    with pytest.raises(UsageError, match=r"^not enough memory to evaluate the model; it is saved in .*, not evaluated: "
                                         r"python -m mlp_lm.evaluate --checkpoint .*model.npz evaluates it where"):
        train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--out", str(tmp_path / "run")])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["evaluated"] is False and "dev_loss" not in metrics
    checkpoint.load(tmp_path / "run" / "model.npz")
    monkeypatch.undo()
    assert train.main(["--resume", "--out", str(tmp_path / "run")]) == 0  # evaluates it
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluated"] is True


@pytest.mark.parametrize("where", ["step", "dev evaluation"])
@pytest.mark.parametrize("flags", [["--ema", "0.9"],  # (the average is state too)
                                   # a reviewer's: the masks of the step not taken were drawn all the same
                                   ["--optimizer", "adamw", "--lr", "0.01", "--dropout", "0.2", "--keep-best"]])
def test_a_training_short_of_memory_is_saved_and_resumed_to_the_run_made_in_one_go(tmp_path, monkeypatch, where,
                                                                                    flags):
    # From a hostile pass: under `ulimit -v`, a MemoryError in a step or in a dev evaluation during training ended
    # the command with "not enough memory for these sizes", and the run and its folder were gone.
    from mlp_lm import model
    args = [*SMALL, "--steps", "40", "--eval-every", "10", *flags]
    assert train.main([*args, "--out", str(tmp_path / "one")]) == 0
    name, fail_at = ("loss_and_grads", 26) if where == "step" else ("split_loss", 2)  # step 26; the dev after step 20
    real, calls = getattr(model, name), []

    def short(*a, **k):
        calls.append(1)
        if len(calls) == fail_at:
            raise MemoryError
        return real(*a, **k)

    monkeypatch.setattr(model, name, short)
    with pytest.raises(UsageError) as e:
        train.main([*args, "--out", str(tmp_path / "run")])
    done = 25 if where == "step" else 20
    assert e.value.code == 2 and re.match(
        rf"not enough memory to {'train past' if where == 'step' else 'evaluate the model on dev after'} step {done} "
        rf"at these sizes; the run is saved in .*run, unevaluated: continue it where there is more memory .* with "
        rf"python -m mlp_lm.train --resume --out .*run, or start one with smaller sizes$", str(e.value))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == done and metrics["evaluated"] is False
    monkeypatch.undo()
    assert train.main(["--resume", "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "loss.csv").read_text() == (tmp_path / "one" / "loss.csv").read_text()
    ends = [{k: v for k, v in json.loads((tmp_path / d / "metrics.json").read_text()).items() if k.endswith("_loss")}
            for d in ("run", "one")]
    assert ends[0] == ends[1] and "dev_loss" in ends[0]


def test_a_first_step_short_of_memory_saves_nothing_and_says_so(tmp_path, monkeypatch):
    # A hostile tester's: memory that ran out in the first step saved a run of no steps, which --resume then
    # refused as damaged ("step 0 of 300 with 0 losses")
    from mlp_lm import model

    def short(*a, **k):
        raise MemoryError
    monkeypatch.setattr(model, "loss_and_grads", short)
    with pytest.raises(UsageError, match=r"^not enough memory to take one training step at these sizes; nothing was "
                                         r"saved: use smaller ones, or give this process more memory \(free some, "
                                         r"or raise ulimit -v\)$") as e:
        train.main([*SMALL, "--steps", "40", "--out", str(tmp_path / "run")])
    assert e.value.code == 2 and not (tmp_path / "run").exists()


def test_a_kept_model_that_memory_cannot_copy_leaves_the_dev_loss_unrecorded_too():
    # A reviewer's: the dev loss was recorded before --keep-best's copy of the model; a MemoryError in the copy left
    # a loss better than the kept model's, and --resume refused the run as damaged.
    from types import SimpleNamespace
    from mlp_lm import loop

    class NoRoom(dict):
        def items(self):
            raise MemoryError

    trainer = SimpleNamespace(best=(10, {"C": np.zeros(2)}), evaluated=NoRoom(C=np.ones(2)))
    devs = {10: 2.5}
    with pytest.raises(MemoryError):
        loop.keep_if_best(trainer, SimpleNamespace(keep_best=True), devs, 20, 2.4)
    assert devs == {10: 2.5} and trainer.best[0] == 10


class SignalOnWrite:
    """A stderr that sends this process a signal when a line containing `text` is written: a second
    Ctrl-C that lands while the first is being handled (a terminal's Ctrl-C reaches both
    `results` and the train it runs, and results passes its own on)."""

    def __init__(self, stream, text, signum=signal.SIGINT):
        self.stream, self.text, self.signum, self.sent = stream, text, signum, 0

    def write(self, s):
        if self.text in s:
            self.sent += 1
            os.kill(os.getpid(), self.signum)
        return self.stream.write(s)

    def __getattr__(self, name):
        return getattr(self.stream, name)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_while_the_first_is_handled_still_saves_the_run(tmp_path, monkeypatch, capsys, signum):
    from mlp_lm import trainer as trainer_module
    real_step = trainer_module.Trainer.step

    def step(self, i):
        if i == 29:
            os.kill(os.getpid(), signum)  # held while the step runs; honoured after it
        return real_step(self, i)

    monkeypatch.setattr(trainer_module.Trainer, "step", step)
    stderr = SignalOnWrite(sys.stderr, "interrupted after", signum)
    monkeypatch.setattr(sys, "stderr", stderr)
    try:
        code = train.main([*SMALL, "--steps", "100", "--eval-every", "0", "--out", str(tmp_path)])
    except KeyboardInterrupt:
        pytest.fail("the second signal escaped while the first was handled: the run was lost")
    assert code == 128 + signum and stderr.sent == 1
    assert "interrupted again: saving the model, not evaluated" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "metrics.json").read_text())  # saved, not lost
    assert metrics["steps"] == 30 and metrics["interrupted"] is True and metrics["evaluated"] is False
    checkpoint.load(tmp_path / "model.npz")


SIGNAL_WHILE_REPORTING = """
import os, signal, sys
from mlp_lm import cli
from mlp_lm.cli import UsageError

class SignalOnWrite:  # a stderr that sends this process a Ctrl-C with every write
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        os.kill(os.getpid(), signal.SIGINT)
        return self.stream.write(text)
    def __getattr__(self, name):
        return getattr(self.stream, name)

class SignalOnLastReconfigure:  # a stdout that sends one when cli.run sets its error handling back, last
    errors = "strict"
    def __init__(self, stream):
        self.stream, self.calls = stream, 0
    def reconfigure(self, **kwargs):
        self.calls += 1
        if self.calls == 2:  # the first is cli.run's own, as it starts
            os.kill(os.getpid(), signal.SIGINT)
    def __getattr__(self, name):
        return getattr(self.stream, name)

how = sys.argv[1]
def main():
    if how == "interrupted":  # the first Ctrl-C; the second lands while it is being reported
        raise cli.Interrupted(signal.SIGINT)
    if how == "refused":  # a Ctrl-C while the one-line error is being printed
        raise UsageError("no such thing")
    return 0  # finished: a Ctrl-C as the command exits
if how == "finished":
    sys.stdout = SignalOnLastReconfigure(sys.stdout)
else:
    sys.stderr = SignalOnWrite(sys.stderr)
cli.run(main, "cmd")
"""


@pytest.mark.parametrize("how", ["interrupted", "refused", "finished"])
def test_a_signal_while_a_command_reports_and_exits_is_no_traceback(how):
    proc = subprocess.run([sys.executable, "-c", SIGNAL_WHILE_REPORTING, how], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert "Traceback" not in proc.stderr and "Fatal Python error" not in proc.stderr, proc.stderr
    # the command is over, so the signal ends the process as it ends any program: the shell's 130. While the
    # line saying how main() ended is written (a signal with each write here), the first is let go and the
    # second exits at once with that code, the line's text written.
    if how == "finished":
        assert proc.returncode == -signal.SIGINT, (proc.returncode, proc.stderr)
    else:
        assert proc.returncode == 128 + signal.SIGINT and proc.stderr.startswith("cmd: "), (proc.returncode, proc.stderr)


SIGNAL_WHILE_THE_HANDLERS_ARE_RESET = """
import os, signal, sys
from mlp_lm import cli
real, sent = signal.signal, []
def signal_then_set(signum, handler):  # a SIGTERM lands while cli.run puts the handlers back to their defaults
    if handler is signal.SIG_DFL and not sent:
        sent.append(signum)
        os.kill(os.getpid(), signal.SIGTERM)
    return real(signum, handler)
signal.signal = signal_then_set
cli.run(lambda: 0, "cmd")
"""


def test_a_signal_while_a_finished_command_resets_its_handlers_changes_nothing():
    proc = subprocess.run([sys.executable, "-c", SIGNAL_WHILE_THE_HANDLERS_ARE_RESET], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    # the work was done: it exits as it would have (it had said "interrupted", or printed a traceback)
    assert proc.returncode == 0 and proc.stderr == "", (proc.returncode, proc.stderr)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_ignored_from_the_start_stays_ignored(sig, tmp_path):
    # nohup ignores SIGHUP so that a run outlives the terminal; a shell ignores SIGINT for a background job
    proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.train", *SMALL, "--steps", "100000", "--eval-every", "0",
                             "--out", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(sig, signal.SIG_IGN))
    wait_for_training(proc)
    proc.send_signal(sig)
    time.sleep(0.5)  # a signal it heeds stops it within a step
    assert proc.poll() is None  # still training
    proc.send_signal(signal.SIGTERM)  # what does stop it
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err
    checkpoint.load(tmp_path / "model.npz")


def test_a_second_ctrl_c_during_the_save_waits_for_it(tmp_path, monkeypatch):
    real_write = atomic.write_atomic

    def write_interrupted_halfway(files):
        os.kill(os.getpid(), signal.SIGINT)  # arrives mid-save: it must be held until the files are written
        time.sleep(0.05)
        real_write(files)

    monkeypatch.setattr(atomic, "write_atomic", write_interrupted_halfway)
    assert train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--out", str(tmp_path)]) == 130
    params, _, _ = checkpoint.load(tmp_path / "model.npz")
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 30
    assert len((tmp_path / "loss.csv").read_text().splitlines()) == 31
    assert all(np.all(np.isfinite(p)) for p in params.values())


def test_a_full_disk_is_one_line_and_keeps_the_previous_run(tmp_path, monkeypatch, capsys):
    import errno
    import hashlib

    from mlp_lm import cli
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    before = {f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in ("model.npz", "metrics.json", "loss.csv")}

    def full_disk(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.np, "savez", full_disk)
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--out", str(tmp_path), "--force"]), "train")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "No space left on device" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
    for name, digest in before.items():  # the whole previous run, not only its model
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name
    assert not list(tmp_path.glob("*.tmp"))  # no half-written leftovers


def test_a_full_disk_when_saving_what_was_kept_of_a_diverged_run_says_it_diverged(tmp_path, monkeypatch):
    # From a review: the one line was the full disk's, and nothing said the run had blown up at its rate.
    import errno
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    real = atomic.write_temporary

    def full(path, *a, **k):
        if str(tmp_path / "out") in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, *a, **k)

    monkeypatch.setattr(atomic, "write_temporary", full)
    with pytest.raises(UsageError) as e:
        train.main(["--steps", "6000", "--eval-every", "500", "--schedule", "cosine", "--warmup", "5000", "--lr", "5",
                    "--out", str(tmp_path / "out")])
    assert str(e.value).startswith("training diverged by step 3300") and "try a smaller --lr" in str(e.value)
    assert "kept the run as it was at step 2500, but cannot write" in str(e.value) and "rescued" in str(e.value)


class Killed(BaseException):
    """Stands for SIGKILL or a power cut: nothing after it runs in the process that wrote."""


def test_a_save_cut_short_after_its_commit_is_finished_by_the_next_command(tmp_path, monkeypatch):
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):  # the journal goes in (1st rename), loss.csv moves (2nd), then death
        calls.append(dst)
        if len(calls) == 3:
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_then_die)
    with pytest.raises(Killed):
        train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--out", str(tmp_path), "--force"])
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert (tmp_path / atomic.JOURNAL).exists()  # on disk: the new loss.csv beside the old model ...
    assert len((tmp_path / "loss.csv").read_text().splitlines()) == 31
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 20
    _, _, config = checkpoint.load(tmp_path / "model.npz")  # ... until anything reads the folder
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 30
    assert int(checkpoint.load_state(tmp_path / "model.npz")["step"]) == 30
    assert not (tmp_path / atomic.JOURNAL).exists() and not list(tmp_path.glob("*.tmp"))


def test_a_folder_whose_journal_place_is_taken_is_refused_before_training(tmp_path):
    (tmp_path / atomic.JOURNAL).mkdir()
    proc = run_cli("mlp_lm.train", "--steps", "100000", "--out", str(tmp_path))
    assert proc.returncode == 2 and "in the way of saving" in proc.stderr and "step" not in proc.stderr, proc.stderr


def test_the_next_save_removes_what_a_save_killed_before_its_commit_left(tmp_path):
    (tmp_path / ".model.npz.x1.tmp").write_bytes(b"half a model")
    (tmp_path / "..commit.json.x2.tmp").write_bytes(b'[[".model.npz.x1.tmp", "model.npz"]]')  # the journal's own
    (tmp_path / ".other.txt.x1.tmp").write_bytes(b"not ours to remove")
    atomic.write_atomic([(tmp_path / "model.npz", lambda f: f.write(b"whole"))])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.txt.x1.tmp", "model.npz"]


def test_a_save_cut_short_before_its_commit_leaves_the_previous_run(tmp_path, monkeypatch):
    import hashlib
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    names = ("model.npz", "metrics.json", "loss.csv")
    before = {f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in names}
    real_replace = os.replace

    def die_at_the_commit(src, dst):
        raise Killed

    monkeypatch.setattr(atomic.os, "replace", die_at_the_commit)
    with pytest.raises(Killed):
        train.main([*SMALL, "--steps", "30", "--eval-every", "0", "--out", str(tmp_path), "--force"])
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    atomic.recover(tmp_path)
    assert {f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in names} == before
    assert not (tmp_path / atomic.JOURNAL).exists()


def test_recover_is_safe_to_repeat_and_ignores_what_is_not_a_journal(tmp_path):
    (tmp_path / ".a.1.tmp").write_text("new a")
    (tmp_path / "a").write_text("old a")
    (tmp_path / atomic.JOURNAL).write_text(json.dumps([[".a.1.tmp", "a"], [".b.2.tmp", "b"]]))
    atomic.recover(tmp_path)
    atomic.recover(tmp_path)
    assert (tmp_path / "a").read_text() == "new a" and not (tmp_path / "b").exists()
    assert not (tmp_path / atomic.JOURNAL).exists()
    (tmp_path / atomic.JOURNAL).write_text("{not json")
    atomic.recover(tmp_path)  # left alone, no error
    (tmp_path / atomic.JOURNAL).write_text("[" * 100_000)
    atomic.recover(tmp_path)
    for foreign in ([["a", "../moved"]], [["a", "b"]], [[".a.1.tmp", "/etc/x"]], [[".b.1.tmp", "a"]], {"a": "b"}):
        (tmp_path / atomic.JOURNAL).write_text(json.dumps(foreign))
        atomic.recover(tmp_path)  # a journal write_atomic would not write moves nothing
        assert (tmp_path / "a").read_text() == "new a" and not (tmp_path.parent / "moved").exists()
    atomic.recover(tmp_path / "no such folder")
    (tmp_path / atomic.JOURNAL).unlink()
    os.mkfifo(tmp_path / atomic.JOURNAL)  # a pipe would block a read forever
    atomic.recover(tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match="in the way of saving"):
        atomic.check_save_place(tmp_path)
    (tmp_path / atomic.JOURNAL).unlink()
    (tmp_path / atomic.JOURNAL).write_text(json.dumps([[".a.1.tmp", "a"]] * 10_000))  # too big to be ours
    atomic.recover(tmp_path)
    assert (tmp_path / atomic.JOURNAL).exists()
    with pytest.raises(ValueError, match="one folder"):
        atomic.write_atomic([(tmp_path / "x", None), (tmp_path / "sub" / "y", None)])


# Each long enough (in steps) for a Ctrl-C after the first progress line to land mid-run on a busy machine: 3000
# of the plain model's (about 0.4 s alone on a 2-core machine), 1500 of the folded one's (about 1 s: its sparse
# products cost more a step at these sizes).
RESUMABLE = [["--steps", "3000", "--n-hidden", "24", "--eval-every", "0"],
             ["--steps", "3000", "--n-hidden", "24", "--eval-every", "700", "--optimizer", "adamw", "--lr", "0.003",
              "--ema", "0.99", "--emb-dropout", "0.1", "--dropout", "0.1", "--direct", "--schedule", "cosine",
              "--warmup", "50"],
             ["--steps", "1500", "--n-hidden", "24", "--eval-every", "0", "--optimizer", "adamw", "--lr", "0.003",
              "--emb-dropout", "0.1", "--direct", "--fold"]]


@pytest.mark.parametrize("flags", RESUMABLE, ids=["sgd-no-eval", "adamw-ema-dropout-eval", "adamw-folded"])
def test_stopped_by_sigint_and_resumed_equals_one_go_bit_for_bit(flags, tmp_path):
    common = [*SMALL, "--dtype", "float64", *flags]
    steps = int(flags[1])
    whole = run_cli("mlp_lm.train", *common, "--out", tmp_path / "whole")  # forked: only the stopped run needs a real one
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.train", *common, "--out", str(tmp_path / "split")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_training(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume --out" in err, err
    stopped_at = json.loads((tmp_path / "split" / "metrics.json").read_text())["steps"]
    assert 0 < stopped_at < steps
    resumed = run_cli("mlp_lm.train", "--resume", "--out", tmp_path / "split")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming the run in {tmp_path / 'split'} at step {stopped_at} of {steps}" in resumed.stdout
    a, _, _ = checkpoint.load(tmp_path / "whole" / "model.npz")
    b, _, _ = checkpoint.load(tmp_path / "split" / "model.npz")
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ma = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert ma["dev_loss"] == mb["dev_loss"] and mb["steps"] == steps
    assert (tmp_path / "whole" / "loss.csv").read_text() == (tmp_path / "split" / "loss.csv").read_text()


def short_run_flags(keep_best):
    """90 steps, a dev evaluation every 30 (with --keep-best, the last step's kept model may be any of three)."""
    return [*SMALL, "--steps", "90", "--eval-every", "30", "--n-hidden", "16", "--dtype", "float64",
            *(["--keep-best"] if keep_best else [])]


def stop_in_an_evaluation(monkeypatch, nth, after_a_chunk=True):
    """From now on, the nth call of loop.model.split_loss gets a Ctrl-C: after its first chunk of 500 rows,
    or before it begins. Returns the list of the calls' row counts."""
    from mlp_lm import loop
    real, calls = loop.model.split_loss, []

    def stopped(params, X, Y, chunk_size=None, stop=None):
        calls.append(len(Y))
        if len(calls) == nth and after_a_chunk:
            return real(params, X, Y, chunk_size=500, stop=lambda: bool(os.kill(os.getpid(), signal.SIGINT)) or stop())
        if len(calls) == nth:
            os.kill(os.getpid(), signal.SIGINT)
        return real(params, X, Y, chunk_size, stop)
    monkeypatch.setattr(loop.model, "split_loss", stopped)
    return calls


def made_whole_and_stopped_at_60(tmp_path, monkeypatch, keep_best):
    """short_run_flags's run, made in one go into tmp_path/whole and stopped by a Ctrl-C in step 60's dev
    evaluation into tmp_path/split."""
    flags = short_run_flags(keep_best)
    assert train.main([*flags, "--out", str(tmp_path / "whole")]) == 0
    stop_in_an_evaluation(monkeypatch, 2)  # step 60's
    assert train.main([*flags, "--out", str(tmp_path / "split")]) == 130
    monkeypatch.undo()


def assert_the_same_as_in_one_go(whole, split):
    """The run folder `split`, stopped and resumed, holds what `whole`, made in one go, does."""
    a, b = (checkpoint.load(folder / "model.npz")[0] for folder in (whole, split))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (whole / "loss.csv").read_text() == (split / "loss.csv").read_text()
    ma, mb = (json.loads((folder / "metrics.json").read_text()) for folder in (whole, split))
    assert ma["dev_loss"] == mb["dev_loss"] and ma.get("best_step") == mb.get("best_step")


@pytest.mark.parametrize("keep_best", [False, True])
def test_stopped_in_a_dev_evaluation_and_resumed_equals_one_go(tmp_path, monkeypatch, capsys, keep_best):
    # From a hostile pass: a dev evaluation in the training held a stop signal until it was over (27 s on
    # 95,000 dev examples over 40,000 symbols). It stops between chunks now, the step saved without its
    # evaluation, which --resume makes first: the run then ends as one made in one go.
    made_whole_and_stopped_at_60(tmp_path, monkeypatch, keep_best)
    assert "interrupted after 60 steps" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert metrics["steps"] == 60 and metrics["interrupted"] is True
    assert (tmp_path / "split" / "loss.csv").read_text().splitlines()[60].endswith(",")  # step 60: no dev loss yet
    assert train.main(["--resume", "--out", str(tmp_path / "split")]) == 0
    assert_the_same_as_in_one_go(tmp_path / "whole", tmp_path / "split")


@pytest.mark.parametrize("keep_best", [False, True])
def test_stopped_before_the_last_steps_dev_evaluation_and_resumed_equals_one_go(tmp_path, monkeypatch, capsys,
                                                                                 keep_best):
    # From a pass over resuming: a --keep-best run stopped in its last step's dev evaluation was evaluated and
    # saved as complete, keeping an earlier step's model (800 of 1,000, where the run in one go keeps 1,000),
    # and --resume said there was nothing to do. The final evaluation now waits for --resume too.
    flags = short_run_flags(keep_best)
    assert train.main([*flags, "--out", str(tmp_path / "whole")]) == 0
    stop_in_an_evaluation(monkeypatch, 3, after_a_chunk=False)  # step 90's, before its first chunk
    assert train.main([*flags, "--out", str(tmp_path / "split")]) == 130
    assert "not evaluated: the dev evaluation after step 90 was cut short, and --resume makes both" in (
        capsys.readouterr().err)
    metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert metrics["steps"] == 90 and metrics["evaluated"] is False
    monkeypatch.undo()
    assert train.main(["--resume", "--out", str(tmp_path / "split")]) == 0
    assert "its dev evaluation after its last step was cut short: evaluating it" in capsys.readouterr().out
    assert_the_same_as_in_one_go(tmp_path / "whole", tmp_path / "split")
    if keep_best:  # (an earlier version's such run kept an earlier step's model: not made up here)
        return
    # a run an earlier version saved so (evaluated, the last dev loss missing) is not called complete either
    dev_loss = json.loads((tmp_path / "whole" / "metrics.json").read_text())["dev_loss"]
    with np.load(tmp_path / "whole" / "model.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["state.devs"] = arrays["state.devs"][:-1]
    np.savez(tmp_path / "whole" / "model.npz", **arrays)
    assert train.main(["--resume", "--out", str(tmp_path / "whole")]) == 0
    assert "was cut short: evaluating it" in capsys.readouterr().out
    assert json.loads((tmp_path / "whole" / "metrics.json").read_text())["dev_loss"] == dev_loss


def test_a_resumed_runs_first_evaluation_that_overflows_is_a_divergence_in_it(tmp_path, monkeypatch):
    # The dev evaluation a resumed run makes first ran before training's error handling, so an overflow in
    # it reached the final evaluation's, and was said to be in the final evaluation.
    from mlp_lm import loop
    stop_in_an_evaluation(monkeypatch, 2)  # step 60's
    assert train.main([*short_run_flags(False), "--out", str(tmp_path)]) == 130
    monkeypatch.undo()

    def overflows(*a, **k):
        raise FloatingPointError("overflow encountered in dot")
    monkeypatch.setattr(loop.model, "split_loss", overflows)
    with pytest.raises(UsageError, match=r"^training diverged in the dev evaluation after step 60 \(overflow "
                                         r"encountered in dot\); .* start a new run with a smaller --lr; nothing "
                                         r"was saved$"):
        train.main(["--resume", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 60  # the folder as it was


@pytest.mark.parametrize("keep_best", [False, True])
def test_a_resumed_runs_first_evaluation_says_so_and_stops_at_a_signal(tmp_path, monkeypatch, capsys, keep_best):
    # From a hostile pass: resumed, a run first made the dev evaluation it was stopped in, and a --keep-best
    # run checked its kept model on all of dev, both in silence and deaf to a stop signal until done
    # (minutes, on millions of dev examples). Both are announced when slow and stop between chunks now;
    # the folder stays as it was, and the next --resume still ends as the run made in one go.
    from mlp_lm import evaltime, loop
    made_whole_and_stopped_at_60(tmp_path, monkeypatch, keep_best)
    saved = (tmp_path / "split" / "loss.csv").read_bytes()
    calls = stop_in_an_evaluation(monkeypatch, 1)  # the resumed run's first
    monkeypatch.setattr(evaltime, "SLOW_SECONDS", 0.0)  # every evaluation announced, however quick
    capsys.readouterr()
    assert train.main(["--resume", "--out", str(tmp_path / "split")]) == 130
    err = capsys.readouterr().err
    first = ("checking the kept model of step 30 against its recorded dev loss" if keep_best
             else "the dev evaluation after step 60, which the run was stopped in")
    assert f"{first}: {calls[0]:,} examples, about" in err and "interrupted after 60 steps" in err, err
    assert len(calls) == 1  # stopped in the first, before any step
    metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert metrics["steps"] == 60 and metrics["interrupted"] is True
    assert (tmp_path / "split" / "loss.csv").read_bytes() == saved
    monkeypatch.undo()
    real_check = loop.kept_problem

    def slow_check(*a, **k):  # a check that takes its time: none of it is the run's training time
        time.sleep(1.0)
        return real_check(*a, **k)
    monkeypatch.setattr(loop, "kept_problem", slow_check)
    assert train.main(["--resume", "--out", str(tmp_path / "split")]) == 0
    assert_the_same_as_in_one_go(tmp_path / "whole", tmp_path / "split")
    metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert metrics["train_seconds"] < 1.0, metrics  # 90 tiny steps: a small part of a second, without the check's 1


def test_resume_refuses_what_it_cannot_do(tmp_path):
    proc = run_cli("mlp_lm.train", "--resume")
    assert proc.returncode == 2 and "--resume needs --out" in proc.stderr
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    proc = run_cli("mlp_lm.train", "--resume", "--out", str(tmp_path), "--lr", "0.5")
    assert proc.returncode == 2 and "leave out --lr" in proc.stderr
    with pytest.raises(UsageError, match="leave out --no-direct, --fold$"):  # as given: it said "--direct"
        train.main(["--resume", "--out", str(tmp_path), "--no-direct", "--fold"])
    proc = run_cli("mlp_lm.train", "--resume", "--out", str(tmp_path))
    assert proc.returncode == 0 and "complete (20 of 20 steps)" in proc.stdout
    # A checkpoint from before resuming existed still samples, but cannot be resumed.
    params, vocab, config = checkpoint.load(tmp_path / "model.npz")
    old = tmp_path / "old"
    old.mkdir()
    checkpoint.save(old / "model.npz", params, vocab, {k: v for k, v in config.items() if k != "format"})
    proc = run_cli("mlp_lm.sample", "--checkpoint", str(old / "model.npz"), "-n", "2")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2
    proc = run_cli("mlp_lm.train", "--resume", "--out", str(old))
    assert proc.returncode == 2 and "no training state" in proc.stderr
    # A folder where no run was ever saved (one stopped before training began, or a typo).
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "no-such"):
        proc = run_cli("mlp_lm.train", "--resume", "--out", str(folder))
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
        assert "nothing to resume" in proc.stderr and "without --resume" in proc.stderr
    (tmp_path / "afile").write_text("not a run\n")  # from a hostile pass: it was said to hold no run
    proc = run_cli("mlp_lm.train", "--resume", "--out", str(tmp_path / "afile"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "it is a file, not a run's folder" in proc.stderr
    # A model.npz cut short by another program: a hostile review found the advice of sample's, to "pass its
    # model.npz", where there is nothing to pass.
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "model.npz").write_bytes((tmp_path / "model.npz").read_bytes()[:2000])
    with pytest.raises(checkpoint.CheckpointError) as e:
        train.main(["--resume", "--out", str(tmp_path / "cut")])
    assert "damaged" in str(e.value) and str(e.value).endswith(
        "the run cannot be resumed from it: start a new one (--force to replace it)")
    # With its metrics.json beside it, the settings are known: a command that starts that very run over.
    (tmp_path / "cut" / "metrics.json").write_bytes((tmp_path / "metrics.json").read_bytes())
    with pytest.raises(checkpoint.CheckpointError) as e:
        train.main(["--resume", "--out", str(tmp_path / "cut")])
    command = str(e.value).split("start it over with ", 1)[1]
    import shlex
    from dataclasses import asdict

    from mlp_lm import train_flags
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "mlp_lm.train"] and argv[-3:] == ["--out", str(tmp_path / "cut"), "--force"]
    saved = json.loads((tmp_path / "metrics.json").read_text())["config"]
    again = asdict(train_flags.parse_args(argv[3:]).cfg)
    assert {k: again[k] for k in again if k != "data"} == {k: saved[k] for k in again if k != "data"}
    assert os.path.samefile(again["data"], saved["data"]) and "--steps 20" in command


def resumable_run(folder, steps=300, total=1000):
    """A run folder stopped after `steps` of `total` steps, as an interrupted run leaves it (a copy of the one
    this process trained first: the same seed trains the same run, and a test damages its own copy)."""
    made = _resumable_runs.get((steps, total))
    if made is None:
        made = _resumable_runs[steps, total] = Path(tempfile.mkdtemp(prefix="resumable-"))
        atexit.register(shutil.rmtree, made, True)
        assert train.main([*SMALL, "--steps", str(steps), "--eval-every", "0", "--out", str(made)]) == 0
        with np.load(made / "model.npz", allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        config = json.loads(str(arrays["config"]))
        config["steps"] = total
        arrays["config"] = np.array(json.dumps(config))
        np.savez(made / "model.npz", **arrays)
    shutil.copytree(made, folder, dirs_exist_ok=True)
    with np.load(folder / "model.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


_resumable_runs = {}  # (steps, total): the folder of the run resumable_run trained


@pytest.mark.parametrize("damage", ["losses", "rng", "rng-deep", "step", "step-fraction", "param", "block_pos",
                                    "block_pos-fraction", "devs-inf", "devs-fraction", "devs-nan", "devs-twice",
                                    "evaluated-array", "evaluated-text", "rng-negative", "steps-below-step",
                                    "losses-2d", "rng-fraction", "losses-negative", "losses-text", "devs-3d",
                                    "block-gone", "preset-list", "config-steps", "block-float",
                                    "config-dropout", "config-seed", "config-warmup", "config-eval-every",
                                    "losses-raw", "losses-extra", "losses-huge", "losses-ran-away", "model-not-state",
                                    "devs-off-step", "devs-missing"])
def test_resume_from_a_damaged_state_is_one_line(damage, tmp_path):
    # The last six from a hostile pass, written with valid checksums: each resumed without a word, one
    # a step off its minibatches, one with its divergence check off (a limit of 2e300).
    arrays = resumable_run(tmp_path)  # 300 of 1000 steps: something left to resume
    config = json.loads(str(arrays["config"]))
    if damage == "losses":
        del arrays["state.losses"]
    elif damage == "rng":
        arrays["state.rng"] = np.array("{not json")
    elif damage == "rng-deep":  # JSON nested past Python's recursion limit
        arrays["state.rng"] = np.array("[" * 100_000 + "]" * 100_000)
    elif damage == "step":
        arrays["state.step"] = np.array(-5)
    elif damage == "step-fraction":  # would be cut to 300 and resume as if whole
        arrays["state.step"] = np.array(300.5)
    elif damage == "block_pos-fraction":
        arrays["state.block_pos"] = np.array(arrays["state.block_pos"] + 0.5)
    elif damage == "devs-inf":
        arrays["state.devs"] = np.array([[np.inf, 2.0]])
    elif damage == "devs-fraction":
        arrays["state.devs"] = np.array([[100.5, 2.0]])
    elif damage == "devs-nan":
        arrays["state.devs"] = np.array([[100, np.nan]])
    elif damage == "devs-twice":
        arrays["state.devs"] = np.array([[100, 2.5], [100, 2.4]])
    elif damage == "evaluated-array":
        arrays["state.evaluated"] = np.array([False, True])
    elif damage == "evaluated-text":
        arrays["state.evaluated"] = np.array("False")
    elif damage == "rng-negative":  # valid JSON of the right shape, a state no generator has
        arrays["state.rng"] = np.array(json.dumps({"bit_generator": "PCG64", "state": {"state": -5, "inc": 1},
                                                   "has_uint32": 0, "uinteger": 0}))
    elif damage == "losses-negative":
        arrays["state.losses"] = -arrays["state.losses"]
    elif damage == "losses-text":
        arrays["state.losses"] = arrays["state.losses"].astype(str)
    elif damage == "devs-3d":
        arrays["state.devs"] = arrays["state.devs"].reshape(1, -1, 2)
    elif damage == "block-gone":  # the run would draw a new block: no longer the run it continues
        arrays["state.block"] = arrays["state.block"][:0]
        arrays["state.block_pos"] = np.array(10)
    elif damage == "preset-list":
        config["preset"] = ["best"]
    elif damage == "losses-2d":
        arrays["state.losses"] = np.zeros((300, 1))
    elif damage == "rng-fraction":  # numpy would take 1.5 as 1: another stream than the one saved
        rng = json.loads(str(arrays["state.rng"]))
        rng["state"]["state"] = 1.5
        arrays["state.rng"] = np.array(json.dumps(rng))
    elif damage == "steps-below-step":  # 300 steps taken of a run said to be 100 long
        config["steps"] = 100
    elif damage == "param":
        arrays["state.param.W1"] = np.zeros((2, 2), dtype=np.float32)
    elif damage == "block_pos":
        arrays["state.block_pos"] = np.array(10**6)
    elif damage == "config-steps":
        config["steps"] = "many"
    elif damage == "block-float":
        arrays["state.block"] = arrays["state.block"].astype(np.float64)
    elif damage == "config-dropout":  # of the right type, out of range: would zero every hidden unit
        config["dropout"] = 2.0
    elif damage == "config-seed":
        config["seed"] = -1
    elif damage == "config-warmup":
        config.update(schedule="cosine", warmup=5000)
    elif damage == "config-eval-every":
        config["eval_every"] = -1
    elif damage == "losses-extra":  # a loss more than the steps taken: read as 300, it resumed a step off
        arrays["state.losses"] = np.append(arrays["state.losses"], arrays["state.losses"][-1])
        arrays["state.step"] = np.array(299)
    elif damage == "losses-huge":
        arrays["state.losses"] = np.full_like(arrays["state.losses"], 1e300)
    elif damage == "losses-ran-away":  # a window past the limit training stops a run at
        arrays["state.losses"] = arrays["state.losses"] * np.repeat([1.0, 10.0, 1.0], 100)
    elif damage == "model-not-state":  # the model beside the state is not the state's parameters
        arrays["W1"] = arrays["W1"] * 1.5
    elif damage in ("devs-off-step", "devs-missing"):  # dev losses where an --eval-every 100 run makes none
        config["eval_every"] = 100
        arrays["state.devs"] = np.array([[100, 2.4], [150, 2.3], [200, 2.2], [300, 2.1]] if damage == "devs-off-step"
                                        else [[100, 2.4], [300, 2.1]])
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "model.npz", **arrays)
    if damage == "losses-raw":  # a member without its .npy header, which numpy hands back as bytes
        with zipfile.ZipFile(tmp_path / "model.npz") as z:
            members = {name: z.read(name) for name in z.namelist()}
        with zipfile.ZipFile(tmp_path / "model.npz", "w") as z:
            for name, data in members.items():
                z.writestr(name, b"garbage" if name == "state.losses.npy" else data)
    with pytest.raises((UsageError, checkpoint.CheckpointError)) as e:  # what cli.run says in one line, exit 2
        train.main(["--resume", "--out", str(tmp_path)])
    said = str(e.value).replace(str(tmp_path), "FOLDER")  # the folder's own name holds "damaged"
    expected = "without the loop's losses" if damage == "losses" else "damaged"  # or a state saved from Python
    assert "\n" not in said and expected in said, said
    assert {"losses-extra": "step 299 of 1000 with 301 losses", "losses-huge": "past any float32 model's",
            "losses-ran-away": "by step 200 average past where the run would have stopped as diverged",
            "model-not-state": "its model's W1 is not the training state's param.W1",
            "devs-off-step": "dev losses are at steps 100, 150, 200, 300, not the run's every 100 steps",
            "devs-missing": "dev losses are at steps 100, 300, not the run's every 100 steps"}.get(damage, "") in said


def test_resume_finishes_a_final_evaluation_that_was_cut_short(tmp_path, monkeypatch):
    real_split_loss = train_run.model.split_loss
    calls = []

    def interrupted_at_the_end(params, X, Y, *a, **k):
        calls.append(1)
        if len(Y) > 50_000:  # the train split: the final evaluation
            os.kill(os.getpid(), signal.SIGINT)
        return real_split_loss(params, X, Y, *a, **k)

    monkeypatch.setattr(train_run.model, "split_loss", interrupted_at_the_end)
    assert train.main(["--steps", "40", "--eval-every", "0", "--out", str(tmp_path)]) == 130
    assert json.loads((tmp_path / "metrics.json").read_text())["evaluated"] is False
    monkeypatch.setattr(train_run.model, "split_loss", real_split_loss)
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["evaluated"] is True and metrics["steps"] == 40 and metrics["dev_loss"] > 0
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0  # now complete: nothing to do


def test_two_trainings_started_together_into_one_folder_one_wins(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "mlp_lm.train", "--steps", "200", "--eval-every", "0",
                               "--out", str(tmp_path / "run")], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2, 2], results
    for code, err in results:
        if code == 2:
            assert ("another training" in err or "already holds a model" in err) and len(err.splitlines()) == 1


def test_a_resume_refused_by_the_lock_says_only_that(tmp_path):
    from mlp_lm.runlock import RunLock
    resumable_run(tmp_path)
    with RunLock(tmp_path):  # another training holds the folder
        proc = run_cli("mlp_lm.train", "--resume", "--out", str(tmp_path))
    assert proc.returncode == 2 and "another training" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert "resuming" not in proc.stdout


def test_a_stop_signal_while_the_report_prints_says_the_run_is_saved(tmp_path, monkeypatch, capsys):
    from mlp_lm.cli import Interrupted

    def stopped(samples, ended):  # SIGTERM as the samples are printed, the run written in full
        raise Interrupted(signal.SIGTERM)
    monkeypatch.setattr(train_run, "one_line", stopped)
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path)]) == 143
    err = capsys.readouterr().err  # was cli.run's bare "interrupted (SIGTERM)", the run unmentioned
    assert err.splitlines()[-1] == f"interrupted (SIGTERM) while reporting: the run is saved in full in {tmp_path}"
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["evaluated"] and not saved["interrupted"] and saved["steps"] == 20

    def drawing_stopped(plt, losses, devs, path, kept=None):
        raise Interrupted(signal.SIGINT)
    monkeypatch.setattr(train_run, "one_line", lambda samples, ended: ", ".join(samples))
    monkeypatch.setattr(train_run.plots, "try_pyplot", lambda: (object(), None))  # as if matplotlib were installed
    monkeypatch.setattr(train_run.plots, "plot_loss", drawing_stopped)
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path / "p")]) == 130
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"saved in full in {tmp_path / 'p'} (its pictures "
                                                             f"perhaps not all drawn)")


def test_a_finished_run_being_replaced_is_not_called_finished(tmp_path, capsys):
    from mlp_lm.runlock import RunLock
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    with RunLock(tmp_path):  # a --force training replacing it has the folder, and has not saved yet
        with pytest.raises(UsageError, match="another training"):
            train.main(["--resume", "--out", str(tmp_path)])  # was "complete: nothing to resume"
    assert "nothing to resume" not in capsys.readouterr().out
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0  # once it is gone: finished, and says so
    assert "nothing to resume" in capsys.readouterr().out


def test_the_lock_probe_of_resume_neither_hangs_nor_refuses_a_training(tmp_path):
    import fcntl
    import threading

    from mlp_lm.runlock import LOCK, RunLock, check_free
    (tmp_path / "empty").mkdir()
    with RunLock(tmp_path / "empty"):  # a training writing there has not saved yet
        with pytest.raises(UsageError, match="another training"):  # was "nothing to resume ...; start one"
            train.main(["--resume", "--out", str(tmp_path / "empty")])
    os.mkfifo(tmp_path / LOCK)
    check_free(tmp_path)  # a FIFO where the lock goes: a plain open blocked for ever
    (tmp_path / LOCK).unlink()
    (tmp_path / LOCK).write_text("")
    probe = os.open(tmp_path / LOCK, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH)  # check_free's shared lock, held at the moment a training starts
    threading.Timer(0.005, os.close, [probe]).start()
    with RunLock(tmp_path):  # was "another training is writing to": it tries again a moment later
        pass


def test_resume_reads_the_state_again_once_the_folder_is_its_own(tmp_path, monkeypatch, capsys):
    # Between the first look and the lock another command replaced the run (--force with other
    # settings): what was read first must not be trained on and saved over it.
    arrays = resumable_run(tmp_path)
    real_run_splits = train.run_splits

    def replaced_meanwhile(*a, **k):
        config = json.loads(str(arrays["config"]))
        config["lr"] = 0.05
        np.savez(tmp_path / "model.npz", **{**arrays, "config": np.array(json.dumps(config))})
        return real_run_splits(*a, **k)

    monkeypatch.setattr(train, "run_splits", replaced_meanwhile)
    with pytest.raises(UsageError, match="was replaced"):
        train.main(["--resume", "--out", str(tmp_path)])
    with np.load(tmp_path / "model.npz", allow_pickle=False) as f:
        assert json.loads(str(f["config"]))["lr"] == 0.05  # the other command's run, untouched
    assert "resuming" not in capsys.readouterr().out



def test_resume_says_what_to_do_when_its_data_has_moved_and_refuses_force(tmp_path, monkeypatch, capsys):
    from .conftest import stop_training_at
    words = tmp_path / "words.txt"
    words.write_bytes((ROOT / SMALL[1]).read_bytes())
    out = tmp_path / "run"
    stop_training_at(monkeypatch, 20)
    assert train.main(["--data", str(words), "--steps", "100", "--eval-every", "0", "--out", str(out)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    moved = tmp_path / "moved.txt"
    words.rename(moved)
    with pytest.raises(UsageError, match=f"trained on {words}, which is not there any more; put the file back "
                                         f"there, or pass where it is now with --data"):
        train.main(["--resume", "--out", str(out)])
    other = tmp_path / "other.txt"
    other.write_bytes(moved.read_bytes() + b"zed\n")
    with pytest.raises(UsageError, match="is not the file the run .* started on \\(other bytes\\)"):
        train.main(["--resume", "--out", str(out), "--data", str(other)])
    with pytest.raises(UsageError, match="--force would replace it; leave out one of the two"):
        train.main(["--resume", "--force", "--out", str(out), "--data", str(moved)])
    with pytest.raises(UsageError, match="--data is empty"):  # Path("") was the current folder
        train.main(["--resume", "--out", str(out), "--data", ""])
    # From a new user's review: the run's sha256 is recorded, so the moved file itself will do (it was refused)
    assert train.main(["--resume", "--out", str(out), "--data", str(moved)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 100 and metrics["config"]["data"] == str(moved)  # and it records where the data is
    one_go = tmp_path / "one-go"
    assert train.main(["--data", str(moved), "--steps", "100", "--eval-every", "0", "--out", str(one_go)]) == 0
    assert (one_go / "loss.csv").read_text() == (out / "loss.csv").read_text()  # the same run as in one go
    # Finished, it has nothing to train, but a --data given is still checked (it said "nothing to resume" to any)
    capsys.readouterr()
    with pytest.raises(UsageError, match=r"complete \(100 of 100 steps\), and --data .*other.txt is not the file "
                                         r"it was trained on \(other bytes\): nothing to resume"):
        train.main(["--resume", "--out", str(out), "--data", str(other)])
    with pytest.raises(DataError, match="not found"):
        train.main(["--resume", "--out", str(out), "--data", str(tmp_path / "gone.txt")])
    with pytest.raises(UsageError, match="--data is empty"):
        train.main(["--resume", "--out", str(out), "--data", ""])
    assert capsys.readouterr().out == ""
    assert train.main(["--resume", "--out", str(out), "--data", str(moved)]) == 0  # its own bytes: finished
    assert "is complete (100 of 100 steps): nothing to resume" in capsys.readouterr().out


def test_training_runs_off_the_main_thread():
    # A notebook may train in a background thread, where Python lets no one set a signal handler:
    # nothing is held there, and the training runs (it raised "signal only works in main thread").
    import threading

    from mlp_lm import data, loop, model
    from mlp_lm.config import Config
    splits = data.load_splits(SMALL[1], 3)
    result, before = {}, signal.getsignal(signal.SIGINT)

    def work():
        try:
            result["losses"] = loop.train(Config(steps=20, n_hidden=8, eval_every=0), splits,
                                          model.init_params(len(splits.vocab), 3, 10, 8))[1]
        except Exception as e:  # the test asserts on it below, in the main thread
            result["error"] = e

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert "error" not in result, result.get("error")
    assert len(result["losses"]) == 20 and signal.getsignal(signal.SIGINT) is before


def test_a_training_state_written_big_endian_loads_in_this_machine_s_order(tmp_path):
    from mlp_lm import data, model
    v = data.Vocab(".ab")
    path = tmp_path / "model.npz"
    checkpoint.save(path, model.init_params(3, 2, 2, 2), v, {"block_size": 2},
                    state={"param.C": np.ones((3, 2), dtype=">f4"), "block_pos": np.array(3, dtype=">i8")})
    state = checkpoint.load_state(path)
    assert state["param.C"].dtype == np.float32 and state["block_pos"].dtype == np.int64  # native: resume compares


def test_a_run_saved_before_fold_existed_resumes_as_it_was_trained(tmp_path, capsys):
    arrays = resumable_run(tmp_path)
    config = json.loads(str(arrays["config"]))
    del config["fold"]  # what a run saved before --fold existed holds
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "model.npz", **arrays)
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0
    with np.load(tmp_path / "model.npz", allow_pickle=False) as f:
        assert json.loads(str(f["config"]))["fold"] is False and int(f["state.step"]) == 1000
    del config["lr"]  # any other setting missing is still damage
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "model.npz", **arrays)
    with pytest.raises(UsageError, match=r"damaged training state or config \(it has no lr\); start a new run$"):
        train.main(["--resume", "--out", str(tmp_path)])  # was "('lr')", a bare KeyError's words


def test_a_damaged_training_state_is_named_in_words_not_in_python_s_exception_names(tmp_path):
    arrays = resumable_run(tmp_path)
    for key, value, why in (("state.rng", np.array("{not json"), "the random stream's state in rng is not JSON"),
                            ("state.ema.C", None, "it holds ema.C, which an sgd run does not save")):  # an EMA's, in a run without
        damaged = dict(arrays)
        damaged[key] = value if value is not None else arrays["state.param.C"]
        np.savez(tmp_path / "model.npz", **damaged)
        with pytest.raises(UsageError) as e:
            train.main(["--resume", "--out", str(tmp_path)])
        assert f"the training state to resume from is damaged ({why}" in str(e.value)
        assert "Error" not in str(e.value)  # was "(JSONDecodeError: ...", "(ValueError: ..."


def test_a_resumed_run_that_diverges_is_told_to_start_anew_not_to_pass_a_flag_resume_refuses(tmp_path, capsys):
    arrays = resumable_run(tmp_path)
    config = json.loads(str(arrays["config"]))
    config["lr"] = 1e4  # a learning rate no run could have trained at, edited in
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "model.npz", **arrays)
    with pytest.raises(UsageError) as e:
        train.main(["--resume", "--out", str(tmp_path)])
    assert "start a new run with a smaller --lr" in str(e.value) and "try a smaller" not in str(e.value)


def test_a_resumed_run_too_big_for_the_machine_is_not_told_to_pass_size_flags(tmp_path, monkeypatch):
    from mlp_lm import runtime
    resumable_run(tmp_path)
    monkeypatch.setattr(runtime, "available_memory", lambda: 64 << 20)  # the data fits, the evaluation chunk does not
    with pytest.raises(runtime.NotEnoughMemory) as e:
        train.main(["--resume", "--out", str(tmp_path)])
    assert "cannot be resumed here" in str(e.value) and "--batch-size" not in str(e.value)


def test_a_resumed_run_that_gets_nowhere_is_told_to_start_anew(tmp_path, capsys):
    assert train.main([*SMALL, "--steps", "200", "--lr", "1e-7", "--init", "lecture", "--eval-every", "0",
                       "--out", str(tmp_path)]) == 0
    with np.load(tmp_path / "model.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays["config"]))
    config["steps"] = 300  # as if stopped after 200 of 300
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "model.npz", **arrays)
    capsys.readouterr()
    assert train.main(["--resume", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "did not get anywhere; start a new run with a larger --lr or more --steps" in err, err


def test_a_run_stopped_with_steps_to_go_gets_no_advice_on_its_learning_rate(tmp_path, monkeypatch, capsys):
    # From a hostile tester: a run stopped at step 78 of 300 was told "the training loss went up, not
    # down; try a smaller --lr", beside the line that says how to --resume it.
    from mlp_lm import trainer as trainer_module
    real_step = trainer_module.Trainer.step

    def step(self, i):
        if i == 77:
            os.kill(os.getpid(), signal.SIGHUP)  # held while the step runs; honoured after it
        return real_step(self, i)

    monkeypatch.setattr(trainer_module.Trainer, "step", step)
    code = train.main([*SMALL, "--steps", "300", "--lr", "1e-7", "--eval-every", "0", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 129 and "--resume" in err and "no better than ln" not in err and "--lr" not in err, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 78 and metrics["dev_loss"] >= math.log(metrics["config"]["vocab_size"])  # futile, unwarned


def test_a_resumed_run_the_disk_cannot_hold_is_not_told_to_pass_another_out(tmp_path, monkeypatch):
    from collections import namedtuple
    from mlp_lm import runs
    resumable_run(tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    with pytest.raises(UsageError) as e:
        train.main(["--resume", "--out", str(tmp_path)])
    assert "free some space on that disk, then --resume again" in str(e.value) and "another --out" not in str(e.value)


def test_a_save_is_on_disk_before_it_is_reported(tmp_path, monkeypatch):
    # A kill cannot undo a rename, but a power cut can, unless the folder itself is synced: each
    # file is synced before the commit, the folder after the commit and after the renames.
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(a, b):
        events.append(f"rename {Path(b).name}")
        real_replace(a, b)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.write_atomic([(tmp_path / "a", lambda f: f.write(b"new a")), (tmp_path / "b", lambda f: f.write(b"b"))])
    assert events == ["file", "file", "file", f"rename {atomic.JOURNAL}", "folder", "rename a", "rename b", "folder"]
    assert (tmp_path / "a").read_bytes() == b"new a" and not (tmp_path / atomic.JOURNAL).exists()


def test_a_whole_file_or_the_old_one(tmp_path, monkeypatch):
    # results.md, tables.json and --json files: a full disk mid-write leaves the old file, not half a new one.
    path = tmp_path / "results.md"
    path.write_text("the old table\n")
    real = atomic.write_temporary

    def half_then_full(p, write, made=None):
        def cut(f):
            f.write(b"| half a ")
            raise OSError(28, "No space left on device")
        return real(p, cut, made)

    monkeypatch.setattr(atomic, "write_temporary", half_then_full)
    with pytest.raises(OSError, match="No space"):
        atomic.write_whole(path, b"| the new table |\n")
    assert path.read_text() == "the old table\n" and sorted(os.listdir(tmp_path)) == ["results.md"]
    monkeypatch.setattr(atomic, "write_temporary", real)
    atomic.write_whole(path, b"| the new table |\n")
    assert path.read_text() == "| the new table |\n" and sorted(os.listdir(tmp_path)) == ["results.md"]


def test_a_whole_file_is_written_as_writing_into_it_would(tmp_path, monkeypatch):
    # From a hostile round: a link was replaced by a file, a read-only file overwritten, a mode reset.
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text("old")
    link = tmp_path / "results.md"
    link.symlink_to(elsewhere)
    atomic.write_whole(link, b"new")
    assert link.is_symlink() and elsewhere.read_text() == "new"  # through the link, as write_text went
    private = tmp_path / "tables.json"
    private.write_text("old")
    private.chmod(0o600)
    atomic.write_whole(private, b"new")
    assert private.read_text() == "new" and stat.S_IMODE(private.stat().st_mode) == 0o600
    (tmp_path / ".tables.json.abcd1234.tmp").write_text("left by a killed write")
    os.utime(tmp_path / ".tables.json.abcd1234.tmp", (time.time() - 2 * 3600,) * 2)
    (tmp_path / ".tables.json.efgh5678.tmp").write_text("another writer's, being written")  # draw beside a run's
    atomic.write_whole(private, b"newer")
    assert sorted(os.listdir(tmp_path)) == [".tables.json.efgh5678.tmp", "elsewhere.md", "results.md", "tables.json"]
    (tmp_path / ".tables.json.efgh5678.tmp").unlink()
    # Through a link, as into the file; but a link to a pipe or a device is refused, never renamed over: the
    # node was replaced by a regular file (as root, a link to /dev/full made /dev/full a PNG). A pipe stands in.
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "picture.png").symlink_to(tmp_path / "fifo")
    with pytest.raises(OSError, match="a device or a pipe, not a file to replace"):
        atomic.write_whole(tmp_path / "picture.png", b"png")
    assert stat.S_ISFIFO((tmp_path / "fifo").stat().st_mode)
    (tmp_path / "picture.png").unlink()
    (tmp_path / "fifo").unlink()
    # a file this program may not write (os.access says so: root may write a read-only file, as into it)
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError) as e:
        atomic.write_whole(private, b"newest")
    assert e.value.filename == str(private) and private.read_text() == "newer"
    # on a file system mounted read-only, which os.access refuses too, that is the reason given (a hostile pass: it
    # said "Permission denied", and draw's advice was to let this user write the folder)
    monkeypatch.setattr(atomic.os, "statvfs", lambda path: os.statvfs_result((0,) * 8 + (os.ST_RDONLY, 255)))
    with pytest.raises(OSError) as e:
        atomic.write_whole(private, b"newest")
    assert e.value.errno == errno.EROFS and e.value.strerror == os.strerror(errno.EROFS) and private.read_text() == "newer"


def test_ctrl_c_during_the_final_evaluation_of_a_kept_diverged_run_exits_as_a_signal_does(monkeypatch, capsys,
                                                                                          tmp_path):
    # From a review: the run kept of a divergence, saved unevaluated after a Ctrl-C, exited 2, where the
    # README promises 130 for a Ctrl-C during the final evaluation; the error line still says what happened.
    from mlp_lm import cli, model
    real, calls = model.split_loss, {"n": 0}

    def evaluation_interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:  # the dev evaluations at 500, ..., 3000, then the final evaluation's first split
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(model, "split_loss", evaluation_interrupted)
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main(["--steps", "6000", "--eval-every", "500", "--schedule", "cosine", "--warmup",
                                    "5000", "--lr", "5", "--out", str(tmp_path)]), "train")
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 130 and last.startswith("train: error: training diverged by step 3300")
    assert "is saved in" in last and "not evaluated: python -m mlp_lm.evaluate --checkpoint" in last
    assert json.loads((tmp_path / "metrics.json").read_text())["evaluated"] is False


def test_a_sweep_stopped_before_its_table_leaves_no_empty_folder_and_says_so(tmp_path, monkeypatch, capsys):
    # From a hostile tester: an interrupted --lr-sweep (or one whose table a full disk refused) left its
    # new, empty --out behind, where a refused training removes its own; and (another pass) it said
    # only "interrupted", not that nothing was written.
    from mlp_lm import sweep

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("SIGINT")
    monkeypatch.setattr(sweep, "lr_sweep", stopped)
    with pytest.raises(KeyboardInterrupt):
        train.main([*SMALL, "--lr-sweep", "--steps", "100", "--out", str(tmp_path / "sweep")])
    assert not (tmp_path / "sweep").exists()
    assert "its table needs every one, so nothing was written" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()  # a folder that was there before stays, empty or not
    with pytest.raises(KeyboardInterrupt):
        train.main([*SMALL, "--lr-sweep", "--steps", "100", "--out", str(tmp_path / "mine")])
    assert (tmp_path / "mine").is_dir()


def test_a_second_signal_while_the_interrupted_line_is_written_lets_it_out(tmp_path):
    # From a hostile tester: a terminal's Ctrl-C reaches both results and the train it started, and results
    # passes its own on a moment later; the second came as cli.run wrote "interrupted", with the handlers
    # already reset to the default, and the training died by the signal with no line, or half of one.
    program = tmp_path / "late.py"
    program.write_text(
        "import os, signal, sys, threading, time\n"
        "from mlp_lm import cli\n"
        "class Slow:  # a stderr that takes its time: the next signal comes while the line is written\n"
        "    def __init__(self, s): self.s = s\n"
        "    def write(self, t): time.sleep(0.3); return self.s.write(t)\n"
        "    def flush(self): self.s.flush()\n"
        "    def isatty(self): return False\n"
        "sys.stderr = Slow(sys.stderr)\n"
        "def main():\n"
        "    for delay in sys.argv[1:]:\n"
        "        threading.Timer(float(delay), os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "cli.run(main, 'prog')\n")
    proc = subprocess.run([sys.executable, str(program), "0.1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (130, "prog: interrupted (SIGINT)\n")
    # a third one, more than a burst: the process ends at once, with the signal's code rather than by it
    proc = subprocess.run([sys.executable, str(program), "0.1", "0.4"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 130


def test_a_training_whose_stderr_reader_stopped_reading_still_stops_and_saves(tmp_path):
    # From a hostile tester: `python -m mlp_lm.train --eval-every 1 2>&1 | sleep 60` filled the pipe, and the
    # progress line's write waited inside the block that holds stop signals: SIGTERM, SIGINT and SIGHUP were all
    # held, the process unkillable but by SIGKILL, until the reader left.
    import fcntl
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: a small pipe, full in a moment; nobody reads it
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.train", *SMALL, "--steps", "3000", "--eval-every", "1",
                                 "--out", str(tmp_path / "run")], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=write_end)
        os.close(write_end)
        # 4 KiB is a few dozen progress lines: full in a second or two, but a loaded machine can take longer
        # to start the training (a SIGTERM before its first step rightly saves nothing: no model.npz)
        deadline = time.monotonic() + 60
        while (time.monotonic() < deadline and proc.poll() is None
               and "pipe" not in Path(f"/proc/{proc.pid}/wchan").read_text()):
            time.sleep(0.05)  # until it waits in the write, where the kernel says so
        assert proc.poll() is None, "the training ended before its pipe filled"
        assert "pipe" in Path(f"/proc/{proc.pid}/wchan").read_text(), "the training never waited on its pipe"
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("SIGTERM was held while the write waited for a reader")
    finally:
        os.close(read_end)
    assert code == 143
    state = checkpoint.load_state(tmp_path / "run" / "model.npz")  # the run is saved, to resume
    assert 0 < int(state["step"]) < 3000
