"""`python -m mlp_lm`, the package itself: it lists the commands, and each one it lists is one."""
import importlib
import inspect
import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("name", [*COMMANDS, "sweep", "__main__"])
def test_a_command_run_as_a_file_says_how_to_run_it(name):
    # python mlp_lm/train.py, a common slip: Python's traceback of a relative import with no package
    proc = subprocess.run([sys.executable, f"mlp_lm/{name}.py", "--help"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    how = {"sweep": "python -m mlp_lm.train --lr-sweep", "__main__": "python -m mlp_lm"}.get(name, f"python -m mlp_lm.{name}")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"mlp_lm/{name}.py: error: this is a module of the mlp_lm package, not a script: run it as {how}\n"


def test_without_a_clone_the_default_word_list_is_said_to_come_with_it(tmp_path, monkeypatch, capsys):
    # pip install without -e: no data/names.txt comes with the package, and the default is looked for in
    # the current directory, which said only "data file not found: data/names.txt"
    from mlp_lm import ngram, results, train, wordfile
    from .test_bad_input import assert_one_line_error, call
    monkeypatch.setattr(wordfile, "CHECKOUT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    for module in (train, ngram):
        code, err = call(module, ["--n", "3", "--smoothing", "kn"] if module is ngram else ["--steps", "10"], capsys)
        assert_one_line_error(code, err, "data file not found: data/names.txt, in the current directory",
                              "installed apart from a clone", "pass --data PATH")
    code, err = call(results, ["--steps", "10"], capsys)  # it has no --data: every run of its table is of the names
    assert_one_line_error(code, err, "the results table is of runs on data/names.txt", "run this from a clone")
    assert not (tmp_path / "runs").exists()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "names.txt").write_text("ann\nbob\n")  # there after all: read, as before
    code, err = call(ngram, ["--n", "2", "--smoothing", "kn"], capsys)
    assert "data file not found" not in err


def test_the_commands_messages_print_name_any_file_as_the_shell_reads_it(tmp_path):
    # From a hostile review: --out with a byte that is not UTF-8 printed "--checkpoint '/x/bad\udcffdir/model.npz'",
    # which names no file when pasted; a line break in --data or --out split the data line and the command
    import os

    from mlp_lm import shell
    odd = ["plain", "with space", "it's", "a\nline", "tab\there", "bad\udcffbyte", "é and ✓", "back\\slash", "$HOME `x`",
           "\u2028sep", "\x7f"]
    for arg in odd:
        said = subprocess.run(["bash", "-c", f"printf %s {shell.quote(arg)}"], capture_output=True, timeout=10).stdout
        assert said == os.fsencode(arg), (arg, shell.quote(arg))
        assert "\n" not in shell.quote(arg) and shell.quote(arg).isprintable()
    assert shell.quote("runs/names") == "runs/names" and shell.quote("a b") == "'a b'"  # shlex.quote's, when it can
    assert shell.join(["python", "-m", "x", "a\nb"]) == "python -m x $'a\\nb'"
    data = tmp_path / "new\nline.txt"
    data.write_bytes((ROOT / "tests" / "data" / "names-small.txt").read_bytes())
    out = tmp_path / "run\udcffdir"
    proc = subprocess.run([sys.executable, "-m", "mlp_lm.train", "--data", data, "--steps", "20", "--eval-every", "0",
                           "--out", out], capture_output=True, text=True, errors="surrogateescape", cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout
    assert f"data: $'{tmp_path}/new\\nline.txt': 3204 items" in printed.splitlines()[0]
    command = next(line for line in printed.splitlines() if line.startswith("sample more: "))
    assert command.endswith(f"--checkpoint $'{tmp_path}/run\\xffdir/model.npz'")
    ran = subprocess.run(["bash", "-c", command.removeprefix("sample more: ").replace("python", sys.executable, 1)
                          + " -n 1"], capture_output=True, timeout=60, cwd=ROOT)
    assert ran.returncode == 0 and len(ran.stdout.splitlines()) == 1, ran.stderr


def test_a_path_that_starts_with_a_dash_is_suggested_as_no_flag(tmp_path):
    # From a second hostile review: --out=-dash printed "sample more: ... --checkpoint -dash/model.npz", which
    # argparse reads as a flag when pasted; draw's suggestion was not quoted at all
    from mlp_lm import shell
    assert shell.path("-dash/model.npz") == "./-dash/model.npz" and shell.path("/abs/-x") == "/abs/-x"
    assert shell.path("-a b") == "'./-a b'" and shell.quote("--flag") == "--flag"  # flags themselves stay flags
    proc = subprocess.run([sys.executable, "-m", "mlp_lm.train", "--data", ROOT / "tests" / "data" / "names-small.txt",
                           "--steps", "20", "--eval-every", "0", "--out=-dash"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    command = next(line for line in proc.stdout.splitlines() if line.startswith("sample more: "))
    assert command.endswith("--checkpoint ./-dash/model.npz")
    ran = subprocess.run(["bash", "-c", command.removeprefix("sample more: ").replace("python", sys.executable, 1)
                          + " -n 1"], capture_output=True, timeout=60, cwd=tmp_path)
    assert ran.returncode == 0 and len(ran.stdout.splitlines()) == 1, ran.stderr
    (tmp_path / "no run here").mkdir()
    proc = run_cli("mlp_lm.draw", tmp_path / "no run here")
    assert proc.returncode == 2 and f"(python -m mlp_lm.train --out '{tmp_path}/no run here' writes them)" in proc.stderr


def test_lines_that_name_an_odd_path_show_it_as_the_shell_reads_it(tmp_path):
    # From a third hostile review: evaluate's checkpoint and data lines and every "wrote FILE" printed a path
    # with an escape sequence and a line break raw: the terminal ran the one, the line split at the other
    odd = tmp_path / "o\x1b[2J\nx"
    words = tmp_path / "w\x1b[2J\n.txt"
    words.write_bytes((ROOT / "tests" / "data" / "names-small.txt").read_bytes())

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "\x1b" not in proc.stdout + proc.stderr, proc.stdout
        return proc.stdout.splitlines()
    run("mlp_lm.train", "--data", words, "--steps", "20", "--eval-every", "0", "--out", odd)
    lines = run("mlp_lm.evaluate", "--checkpoint", odd / "model.npz", "--json", odd / "e.json")
    assert lines[0].startswith(f"checkpoint: $'{tmp_path}/o\\x1b[2J\\nx/model.npz': T=3")
    assert lines[1].startswith(f"data: $'{tmp_path}/w\\x1b[2J\\n.txt': ")
    assert lines[-1] == f"wrote $'{tmp_path}/o\\x1b[2J\\nx/e.json'"
    assert run("mlp_lm.ngram", "--data", words, "--n", "2", "--smoothing", "kn", "--json", odd / "n.json")[-1] == \
        f"wrote $'{tmp_path}/o\\x1b[2J\\nx/n.json'"
