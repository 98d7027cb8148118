"""A slice of tests/fuzz_cli.py, so the fuzzer cannot rot; the whole run is in the issue notes."""
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("fuzz_cli", Path(__file__).with_name("fuzz_cli.py"))
fuzz_cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fuzz_cli)


def test_the_judge():
    v = fuzz_cli.verdict
    assert v("train", 0, "", "step 1/2\n")[0] == "ok"
    assert v("train", 2, "", "python -m mlp_lm.train: error: no\n")[0] == "ok"
    assert v("train", 2, "", "step 1/2\npython -m mlp_lm.train: error: diverged\n")[0] == "ok"
    assert v("train", 2, "", "python -m mlp_lm.train: error: a\npython -m mlp_lm.train: error: b\n")[0] == "FAIL"
    assert v("train", 2, "", "python -m mlp_lm.train: error: a\nmore\n")[0] == "FAIL"
    assert v("train", 1, "", "boom\n")[0] == "FAIL"
    assert v("train", 0, "", "Traceback (most recent call last):\nValueError: x\n") == ("FAIL", "ValueError: x")
    assert v("gradcheck", 1, "3 of 10 gradients within 1e-06", "")[0] == "ok"
    assert v("sample", 1, "3 of 10 gradients within 1e-06", "")[0] == "FAIL"


def test_a_slice_of_the_fuzz_finds_nothing(capsys):
    assert fuzz_cli.main(["--only", "sample:--top-k", "--limit", "60"]) == 0
    assert "14 cases: 14 ok" in capsys.readouterr().out
