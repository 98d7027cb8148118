"""The fork server (tests/forkserver.py) the suite runs its commands from ends a command as a Python started
for it would: the same output, the same exit code."""
import os
import subprocess
import sys

import pytest

import mlp_lm
from tests import forkclient, forkserver

from .conftest import ROOT, SMALL


def both(module, *args, cwd=ROOT):
    argv = [sys.executable, "-m", module, *map(str, args)]
    forked = forkclient.run(argv, str(cwd), timeout=60)
    real = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60)
    assert forked is not None, "the fork server did not run it"
    return forked, real


@pytest.mark.parametrize("way", ["plain", "atexit", "thread", "raise", "interrupt", "exit-text", "exit-code",
                                 "closed-stdout"])
def test_a_program_ends_as_python_ends_it(way):
    forked, real = both("tests.exits", way)
    if way == "interrupt":
        assert real.returncode == -2 and real.stderr.endswith("KeyboardInterrupt\n")
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)


@pytest.mark.parametrize("command", [
    ["mlp_lm"], ["mlp_lm.train", "--help"], ["mlp_lm.train", "--batch-size", "0"], ["mlp_lm.nosuch"],
    ["mlp_lm.sample", "--checkpoint", "nowhere/model.npz"], ["mlp_lm.train", "--out=é\n", "--steps", "-1"],
    ["mlp_lm.ngram", *SMALL, "--n", "3", "--samples", "3"], ["mlp_lm.layers"]])
def test_commands_are_what_they_are_when_python_starts_them(command, tmp_path):
    forked, real = both(*command, cwd=tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)


def test_a_trained_model_samples_the_same(tiny_run):
    forked, real = both("mlp_lm.sample", "--checkpoint", tiny_run[0] / "model.npz", "-n", 20)
    assert forked.returncode == 0 and forked.stdout.count("\n") >= 20
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)


def test_the_server_sets_what_the_package_would_before_numpy(monkeypatch):
    assert (forkserver.BLAS_SPIN_VARIABLE, forkserver.BLAS_SPIN_DEFAULT) == (mlp_lm.BLAS_SPIN_VARIABLE,
                                                                          mlp_lm.BLAS_SPIN_DEFAULT)
    monkeypatch.setenv("MLP_LM_SOMETHING", "1")  # read at start-up by a real Python: never forked
    assert forkclient.run([sys.executable, "-m", "mlp_lm"], str(ROOT), timeout=60) is None


def test_a_command_starts_as_a_fresh_python_would_or_in_one():
    # From a second hostile review: threadpoolctl's KMP_DUPLICATE_LIB_OK (set as the server imported it) reached
    # every command, every child drew the same "random" numbers, and what the test worker changed in its own
    # process after the server started (umask, limits, ignored signals) did not reach the commands.
    import signal
    forked, real = both("tests.exits", "state")
    assert forked.stdout.splitlines()[1] == real.stdout.splitlines()[1]  # the same environment
    again = forkclient.run([sys.executable, "-m", "tests.exits", "state"], str(ROOT), timeout=60)
    assert again.stdout.splitlines()[2] != forked.stdout.splitlines()[2]  # seeded afresh, as a new Python is
    umask = os.umask(0o077)
    try:
        assert forkclient.run([sys.executable, "-m", "mlp_lm"], str(ROOT), timeout=60) is None
    finally:
        os.umask(umask)
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        assert forkclient.run([sys.executable, "-m", "mlp_lm"], str(ROOT), timeout=60) is None
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert forkclient.run([sys.executable, "-m", "mlp_lm"], str(ROOT), timeout=60) is not None


def test_a_command_past_its_time_is_killed_as_subprocess_run_kills_it():
    with pytest.raises(subprocess.TimeoutExpired):
        forkclient.run([sys.executable, "-m", "tests.exits", "sleep"], str(ROOT), timeout=0.5)
    assert forkclient.run([sys.executable, "-m", "mlp_lm"], str(ROOT), timeout=60).returncode == 0  # still serving
