"""The fork server (tests/forkserver.py) the suite runs its commands from ends a command as a Python started
for it would: the same output, the same exit code."""
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
