"""`python -m mlp_lm`, the package itself: it lists the commands, and each one it lists is one."""
import importlib
import inspect
import subprocess
import sys

from mlp_lm.__main__ import COMMANDS

from .conftest import ROOT, run_cli


def test_the_package_lists_its_commands_and_each_is_a_command():
    proc = run_cli("mlp_lm")
    assert proc.returncode == 0 and proc.stderr == ""  # it was "No module named mlp_lm.__main__"
    for name in COMMANDS:
        assert f"python -m mlp_lm.{name} " in proc.stdout
        module = importlib.import_module(f"mlp_lm.{name}")
        assert callable(module.main) and 'if __name__ == "__main__":' in inspect.getsource(module)


def test_a_command_spelled_as_an_argument_or_no_command_is_one_line():
    for args, words in ((["train", "--steps", "3"], "spelled python -m mlp_lm.train --steps 3"),
                        (["trian"], "'trian' is not a command")):
        proc = run_cli("mlp_lm", *args)
        assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.splitlines()) == 1
        assert proc.stdout == ""


def test_a_list_that_cannot_be_written_is_one_line():
    with open("/dev/full", "w") as full:  # was a traceback and exit code 1
        proc = subprocess.run([sys.executable, "-m", "mlp_lm"], stdout=full, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == ("python -m mlp_lm: error: cannot write the output: "
                                                            "No space left on device")
