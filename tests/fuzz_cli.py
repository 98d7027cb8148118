"""Fuzz every flag of every command with extreme values, as a hostile tester would.

    python tests/fuzz_cli.py                 # every command, every flag (about ten minutes on 2 cores)
    python tests/fuzz_cli.py --only sample   # one command, or command:--flag
    python tests/fuzz_cli.py --jobs 4
    python tests/fuzz_cli.py --only train --extra=--fold   # every train flag, each with --fold

Each case runs the command as a user would, in a fresh process with a time limit, and is judged:
    ok        exit 0; exit 2 with one error line on stderr, its last (progress lines may come before it);
              gradcheck's exit 1, a check it reports on stdout as failed
    long      still working at the time limit and showing it (progress or output): work that was asked for
    FAIL      a traceback, any other exit code, an error of more than one line, or silence at the time limit (a hang)
Prints the failures and a count of each verdict; exits 1 if anything failed. Not collected by pytest
(tests/test_fuzz_cli.py runs a slice of it).
"""
import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NUMBERS = ["0", "-1", "1", "2", "1e12", "1e-400", "1e400", "nan", "-inf", "9" * 40, "0.5", "", "x", "１"]
FRACTIONS = ["0", "1", "-0.1", "0.999999", "1e-300", "nan", "", "2"]
# Folders outside {tmp} are ones no command can write into: as root, --out / and /nonexistent/x left runs and
# pictures there.
PATHS = ["/dev/zero", "/dev/null", "/proc", "/proc/nonexistent/x", "", "\x7f", "{tmp}/fifo", "{tmp}/empty.txt",
         "{tmp}/binary.bin", "{tmp}"]


def commands(tmp, checkpoint):
    """{command: (base argv, {flag: values})}: every flag each command takes, with the values to try."""
    quick_train = ["--steps", "30", "--eval-every", "0"]
    return {
        "train": (quick_train, {
            "--block-size": NUMBERS, "--n-embd": NUMBERS, "--n-hidden": NUMBERS, "--steps": NUMBERS,
            "--batch-size": NUMBERS, "--lr": NUMBERS, "--decay-rate": NUMBERS, "--warmup": NUMBERS,
            "--min-lr": NUMBERS, "--weight-decay": NUMBERS, "--beta1": FRACTIONS, "--beta2": FRACTIONS,
            "--eps": NUMBERS, "--seed": NUMBERS, "--threads": NUMBERS, "--dropout": FRACTIONS,
            "--emb-dropout": FRACTIONS, "--label-smoothing": FRACTIONS, "--ema": FRACTIONS,
            "--eval-every": NUMBERS, "--data": PATHS, "--out": PATHS, "--preset": ["best", "none", ""],
            "--schedule": ["cosine", "inverse", "x"], "--optimizer": ["adamw", "x"], "--dtype": ["float16", "float64"],
            "--init": ["lecture", "x"], "--lr-sweep": [None], "--resume": [None], "--force": [None],
            "--direct": [None], "--fold": [None], "--no-fold": [None], "--keep-best": [None]}),
        "sample": (["--checkpoint", checkpoint], {
            "-n": NUMBERS, "--seed": NUMBERS, "--temperature": NUMBERS, "--top-k": NUMBERS,
            "--max-length": NUMBERS, "--threads": NUMBERS, "--prefix": ["", ".", "zz", "é", "a" * 10000],
            "--checkpoint": PATHS}),
        "draw": ([str(Path(checkpoint).parent)], {  # None: its one argument, the run's folder
            None: [*PATHS, checkpoint, f"{tmp}/noruns"]}),
        "evaluate": (["--checkpoint", checkpoint], {
            "--mix-ngram": NUMBERS, "--data": PATHS, "--checkpoint": PATHS, "--json": PATHS}),
        "ngram": (["--n", "3", "--smoothing", "kn", "--samples", "3"], {
            "--n": NUMBERS, "--smoothing": ["add-k", "x", ""], "--samples": NUMBERS, "--seed": NUMBERS,
            "--data": PATHS, "--json": PATHS}),
        "gradcheck": ([], {
            "--vocab-size": NUMBERS, "--block-size": NUMBERS, "--n-embd": NUMBERS, "--n-hidden": NUMBERS,
            "--batch-size": NUMBERS, "--seed": NUMBERS, "--dropout": FRACTIONS, "--label-smoothing": FRACTIONS,
            "--direct": [None], "--fold": [None]}),
        "bench": (["--quick", "--seconds", "0.01", "--no-load", "--no-torch", "--items", "1000"], {
            "--seconds": NUMBERS, "--threads": NUMBERS, "--items": NUMBERS, "--data": PATHS, "--json": PATHS}),
        "results": (["--no-train", "--runs", f"{tmp}/noruns"], {
            "--steps": NUMBERS, "--only": ["", "best", "x,y", ","], "--runs": PATHS, "--docs": PATHS}),
    }


def cases(tmp, checkpoint, only=None, extra=()):
    for command, (base, flags) in commands(tmp, checkpoint).items():
        base = [*base, *extra] if only and only.split(":")[0] == command else base
        for flag, values in flags.items():
            if only and only not in (command, f"{command}:{flag}"):
                continue
            for value in values:
                argv = [a for a in base]
                if flag is None:  # a command's positional argument, in place of the base's
                    yield command, [value.format(tmp=tmp)]
                    continue
                if flag in argv:  # replace the base's value
                    del argv[argv.index(flag):argv.index(flag) + 2]
                argv += [flag] if value is None else [flag, value.format(tmp=tmp)]
                if command == "train" and "--out" not in argv:
                    argv += ["--out", f"{tmp}/out-{abs(hash((flag, value)))}"]
                yield command, argv


def judge(command, argv, cwd, limit):
    try:
        proc = subprocess.run([sys.executable, "-m", f"mlp_lm.{command}", *argv], capture_output=True, text=True,
                              errors="replace", cwd=cwd, timeout=limit, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        shown = (e.stdout or b"") + (e.stderr or b"")
        return ("long", "") if shown.strip() else ("FAIL", f"silent for {limit} s: a hang")
    return verdict(command, proc.returncode, proc.stdout, proc.stderr)


def verdict(command, code, out, err):
    lines = err.strip().splitlines()
    if "Traceback" in err:
        return "FAIL", lines[-1]
    if code == 0 or (command == "gradcheck" and code == 1 and "gradients within" in out):
        return "ok", ""
    errors = [line for line in lines if line.startswith(f"python -m mlp_lm.{command}: error: ")]
    if code == 2 and len(errors) == 1 and lines[-1] == errors[0]:
        return "ok", ""
    return "FAIL", f"exit {code}: {err.strip()[-300:]!r}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=None, help="a command (sample) or command:--flag (sample:--top-k)")
    ap.add_argument("--extra", default="", help="flags added to every case of the --only command (--extra=--fold)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=float, default=20.0, help="seconds each case may run (default 20)")
    args = ap.parse_args(argv)
    # the commands run in folders of their own: this clone's code, not a copy installed apart from it (once: the
    # test suite runs this in its own process, where conftest put it there already)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    if args.extra and not args.only:
        ap.error("--extra adds flags to one command's cases: name it with --only")
    with tempfile.TemporaryDirectory() as tmp:
        os.mkfifo(f"{tmp}/fifo")
        Path(f"{tmp}/empty.txt").write_text("")
        Path(f"{tmp}/binary.bin").write_bytes(bytes(range(256)) * 4)
        Path(f"{tmp}/noruns").mkdir()
        out = f"{tmp}/model"
        subprocess.run([sys.executable, "-m", "mlp_lm.train", "--steps", "200", "--eval-every", "0", "--out", out],
                       check=True, capture_output=True, cwd=tmp)
        todo = list(cases(tmp, f"{out}/model.npz", args.only, args.extra.split()))
        with ThreadPoolExecutor(args.jobs) as pool:
            verdicts = list(pool.map(lambda c: (c, judge(*c, cwd=tmp, limit=args.limit)), todo))
    counts = {}
    for (command, case_argv), (verdict, why) in verdicts:
        counts[verdict] = counts.get(verdict, 0) + 1
        if verdict == "FAIL":
            print(f"FAIL python -m mlp_lm.{command} {' '.join(map(repr, case_argv))}: {why}")
    print(f"{len(verdicts)} cases: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    return 1 if counts.get("FAIL") else 0


if __name__ == "__main__":
    sys.exit(main())
