import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlp_lm import model

ROOT = Path(__file__).resolve().parent.parent
# A command a test starts in a process of its own runs this clone's code too, from any directory: with the
# package installed apart from the clone (pip install without -e), one started elsewhere imported that copy.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
NAMES = ROOT / "data" / "names.txt"
# Every tenth name (3,204): for the tests of what a command does rather than of what it learns, a
# final evaluation eight times quicker. tests/test_data.py holds it to being exactly that.
SMALL = ["--data", str(ROOT / "tests" / "data" / "names-small.txt")]


def run_cli(module, *args, cwd=None):
    """Run `python -m module args` as a user would; returns the CompletedProcess. The process is forked from a
    warm Python (tests/forkserver.py), which saves it the start of Python and numpy's import, unless
    MLP_LM_TESTS_REAL_PROCESSES is set or the test changed the environment: then it is started as a user would."""
    argv, cwd = [sys.executable, "-m", module, *map(str, args)], str(cwd or ROOT)
    if not os.environ.get("MLP_LM_TESTS_REAL_PROCESSES"):
        from tests import forkclient
        done = forkclient.run(argv, cwd, timeout=120)
        if done is not None:
            return done
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture(autouse=True)
def _environment_left_as_found(monkeypatch):
    """A test that changes os.environ for good (not through monkeypatch) changes every command the tests after it
    start, and makes the fork server start them all afresh (run_cli: it forks only under its own environment)."""
    before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    yield
    monkeypatch.undo()  # what the test patched (this is its monkeypatch too), put back now rather than after this
    after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the test left os.environ changed: {changed} (monkeypatch.setenv puts it back)"


@pytest.fixture(autouse=True)
def _stop_signal_handlers_restored():
    """cli.run leaves the stop signals ignored once its command is over (a process about to exit); a test
    that calls it in this process gets the handlers it had back for the tests after it."""
    import signal

    from mlp_lm.cli import STOP_SIGNALS
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    yield
    for s, handler in before.items():
        if handler is not None:
            signal.signal(s, handler)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A short training run on the bundled names, shared by the tests that only read its outputs."""
    out = tmp_path_factory.mktemp("run")
    proc = run_cli("mlp_lm.train", "--steps", 300, "--eval-every", 100, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def stop_training_at(monkeypatch, step, every=False):
    """Ctrl-C in step `step` + 1 of every training from now on (in every `step`-th step with every=True)."""
    real, calls = model.loss_and_grads, {"n": 0}

    def interrupted(*a, **k):
        calls["n"] += 1
        if (calls["n"] % step == 0) if every else (calls["n"] > step):
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(model, "loss_and_grads", interrupted)


def put_results_run(folder, m):
    """Write a results run into `folder`: its metrics.json (m, with its parameter count and its model's
    losses) and a model.npz of m's configuration beside it, as results checks the two against each other."""
    import json

    from mlp_lm import checkpoint, data
    c = m["config"]
    sizes = (c["vocab_size"], c["block_size"], c["n_embd"], c["n_hidden"], c["direct"])
    params = model.init_params(*sizes[:4], direct=sizes[4])
    m = {**m, "params": model.num_params(params), **_init_losses(*sizes)}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint.save(folder / "model.npz", params, data.build_vocab(["abcdefghijklmnopqrstuvwxyz"]), c)
    (folder / "metrics.json").write_text(json.dumps(m))


@functools.lru_cache(maxsize=None)
def _init_losses(V, T, E, H, direct):
    """The train, dev and test losses on names.txt of model.init_params(V, T, E, H) (seed 0)."""
    from mlp_lm import data
    params, splits = model.init_params(V, T, E, H, direct=direct), data.load_splits(NAMES, T)
    return {f"{s}_loss": model.split_loss(params, *getattr(splits, s)) for s in ("train", "dev", "test")}


def no_real_losses(monkeypatch):
    """put_results_run from now on writes made-up losses, not its model's (seconds per worker to work out), for
    a test in which no run's losses are checked against its model."""
    monkeypatch.setattr(sys.modules[__name__], "_init_losses",
                        lambda *sizes: {f"{s}_loss": 3.3 for s in ("train", "dev", "test")})


def results_metrics(steps=200000, dev=2.1, name="scaled", **config):
    """A metrics.json for the results run `name`, with its configuration as train records it."""
    import hashlib
    from dataclasses import asdict

    from mlp_lm import results_table, train_flags
    run_config = asdict(train_flags.parse_args(results_table.CONFIGS[name][1]).cfg)
    return {"config": {**run_config, "data": str(NAMES), "data_sha256": hashlib.sha256(NAMES.read_bytes()).hexdigest(),
                       "vocab_size": 27, "steps": steps, **config},
            "dev_loss": dev, "test_loss": dev, "train_loss": 2.0, "params": 11897, "train_seconds": 30.0,
            "steps": steps}
