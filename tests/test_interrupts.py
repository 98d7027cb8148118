"""Ctrl-C and SIGTERM, sent as real signals to real processes: one line, the right exit code, nothing lost."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mlp_lm import checkpoint, train

from .conftest import ROOT


def start_training(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "mlp_lm.train", "--steps", "200000", "--eval-every", "0",
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


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_training_saves_the_model(sig, code, tmp_path):
    proc = start_training(tmp_path)
    wait_for_training(proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "interrupted after" in err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["evaluated"] is True and 0 < metrics["steps"] < 200000
    checkpoint.load(tmp_path / "model.npz")


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
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train.model, "split_loss", interrupted)
    assert train.main(["--steps", "50", "--eval-every", "0", "--out", str(tmp_path)]) == 130
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["evaluated"] is False and metrics["steps"] == 50 and "dev_loss" not in metrics
    checkpoint.load(tmp_path / "model.npz")
    assert "not evaluated" in capsys.readouterr().err


def test_a_second_ctrl_c_during_the_save_waits_for_it(tmp_path, monkeypatch):
    real_save = checkpoint.save

    def save_interrupted_halfway(path, *a, **k):
        os.kill(os.getpid(), signal.SIGINT)  # arrives mid-save: it must be held until the files are written
        time.sleep(0.05)
        real_save(path, *a, **k)

    monkeypatch.setattr(train.checkpoint, "save", save_interrupted_halfway)
    assert train.main(["--steps", "30", "--eval-every", "0", "--out", str(tmp_path)]) == 130
    params, _, _ = checkpoint.load(tmp_path / "model.npz")
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 30
    assert len((tmp_path / "loss.csv").read_text().splitlines()) == 31
    assert all(np.all(np.isfinite(p)) for p in params.values())


def test_a_full_disk_is_one_line_and_keeps_the_previous_run(tmp_path, monkeypatch, capsys):
    import errno
    import hashlib

    from mlp_lm import cli
    assert train.main(["--steps", "20", "--eval-every", "0", "--out", str(tmp_path)]) == 0
    before = {f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in ("model.npz", "metrics.json", "loss.csv")}

    def full_disk(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.np, "savez", full_disk)
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: train.main(["--steps", "30", "--eval-every", "0", "--out", str(tmp_path), "--force"]), "train")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "No space left on device" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert hashlib.sha256((tmp_path / "model.npz").read_bytes()).hexdigest() == before["model.npz"]
    assert not list(tmp_path.glob("*.tmp"))  # no half-written leftovers
