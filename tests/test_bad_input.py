"""Bad input ends with one line on stderr saying what is wrong, and exit code 2: no traceback."""
import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from mlp_lm import checkpoint, cli, sample, train

from .conftest import NAMES, ROOT, SMALL, put_results_run, results_metrics, run_cli


def call(module, argv, capsys):
    prog = f"python -m {module.__name__}"
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: module.main([str(a) for a in argv]), prog)
    captured = capsys.readouterr()
    return e.value.code, captured.err


def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    def tmp(text):  # a test's folder is named after it ("..._damaged_ch0"): a word found there proves nothing
        return re.sub(r"\S*pytest-of-[^/\s]+/pytest-\d+/(popen-gw\d+/)?[^/\s]+", "TMP", text)
    for w in words:
        assert tmp(str(w)) in tmp(lines[0]), (w, lines[0])


@pytest.mark.parametrize("flags,words", [
    (["--steps", "0"], ["--steps", "positive"]),
    (["--steps", "-5"], ["--steps"]),
    (["--steps", "1.5"], ["--steps"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--block-size", "0"], ["--block-size"]),
    (["--n-embd", "-1"], ["--n-embd"]),
    (["--n-hidden", "0"], ["--n-hidden"]),
    (["--lr", "0"], ["--lr", "positive finite"]),
    (["--lr", "-0.1"], ["--lr"]),
    (["--lr", "nan"], ["--lr"]),
    (["--lr", "inf"], ["--lr"]),
    (["--lr", "fast"], ["--lr"]),
    (["--eval-every", "-1"], ["--eval-every"]),
    (["--init", "xavier"], ["--init"]),
    (["--dtype", "float16"], ["--dtype"]),
    (["--seed", "-1"], ["--seed"]),
    (["--no-such-flag"], ["unrecognized"]),
    (["--dropout", "1"], ["--dropout"]),
    (["--emb-dropout", "-0.1"], ["--emb-dropout"]),
    (["--label-smoothing", "nan"], ["--label-smoothing"]),
    (["--ema", "1.5"], ["--ema"]),
    (["--beta1", "1"], ["--beta1"]),
    (["--eps", "0"], ["--eps"]),
    (["--weight-decay", "-1"], ["--weight-decay"]),
    (["--decay-rate", "inf"], ["--decay-rate"]),
    (["--schedule", "linear"], ["--schedule"]),
    (["--optimizer", "adam"], ["--optimizer"]),
    (["--preset", "fast"], ["--preset"]),
    (["--schedule", "cosine", "--warmup", "100", "--steps", "100"], ["--warmup"]),
    (["--min-lr", "0.5"], ["--min-lr"]),
])
def test_train_rejects_nonsensical_flags(flags, words, capsys, tmp_path):
    code, err = call(train, flags + ["--out", tmp_path], capsys)
    assert_one_line_error(code, err, *words)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("content,words", [
    (None, ["not found"]),
    ("", ["no items"]),
    ("\n \n\n", ["no items"]),
    (b"anna\n\xff\xfe\n", ["not UTF-8"]),
    ("anna\nmary.jane\nbo\nal\ned\nflo\n", ["boundary symbol"]),
    ("anna\nbo\n", ["too few", "at least 6"]),
    ("anna\u2028bo\u2028al\u2028ed\u2028flo\u2028cy\u2029jo\n", ["too few", "U+2028, U+2029, which do not end a line"]),
])
def test_train_rejects_bad_data(content, words, capsys, tmp_path):
    f = tmp_path / "words.txt"
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        f.write_text(content)
    code, err = call(train, ["--data", f, "--steps", 5, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, *words)


def test_an_out_too_long_for_the_save_is_refused_before_training(tmp_path):
    # From hostile testers: an --out the write probe passed trained in full, then could not be saved
    # ("File name too long"): the save's temporary names are longer, by the absolute path, and in a side
    # folder when --out holds a model; a refusal then left the folder it had made.
    import os
    from mlp_lm import runs
    from mlp_lm.cli import UsageError
    path_max = os.pathconf(tmp_path, "PC_PATH_MAX")
    room = path_max - 1 - len(os.fsencode(str(tmp_path.resolve())))

    def out_of(length):  # a folder under tmp_path whose absolute path is `length` bytes longer
        parts, left = [], length
        while left > 0:
            part = min(200, left - 1) if left > 1 else 1
            parts.append("p" * part)
            left -= part + 1
        return tmp_path.resolve().joinpath(*parts)
    longest = "/unconverged-99/.embedding.png.12345678.tmp"  # what a run's save may write under --out
    near = out_of(room - len(longest) + 1)  # the probe's short name fits; the longest saved one does not
    assert len(os.fsencode(str(near))) + len(f"/.write-test-{os.getpid()}") < path_max
    with pytest.raises(UsageError, match="is too long a path.*name a shorter --out"):
        runs.prepare_out(near)
    assert not near.parent.exists()  # refused before anything was made
    fits = out_of(room - len(longest))
    assert runs.prepare_out(fits) == fits
    (fits / "unconverged-99").mkdir()
    (fits / longest[1:]).write_text("")  # the longest path a save writes there does fit
    assert runs.prepare_out(near, side=False) == near  # no model there yet, so no side folder to make room for
    near.rmdir()
    sweep = "/.lr_sweep.csv.12345678.tmp"  # a sweep writes its table, and no side folder
    assert runs.prepare_out(near, sweep=True) == near
    with pytest.raises(UsageError, match="the files a sweep saves there"):
        runs.prepare_out(out_of(room - len(sweep) + 1), sweep=True)


def test_a_data_file_too_large_for_memory_is_one_line_naming_it(capsys, tmp_path, monkeypatch):
    # From a hostile tester: a 2 GB file was read whole (twice its size) before any check, and a
    # memory error then blamed the model's sizes; one large enough would meet the kernel's OOM killer.
    from mlp_lm import data, runtime, wordfile
    f = tmp_path / "words.txt"
    f.write_bytes(b"ann\nbob\ncy\n" * 10_000)  # 110,000 bytes
    monkeypatch.setattr(runtime, "available_memory", lambda: 200_000)  # less than twice the file: before reading
    code, err = call(train, ["--data", f, "--steps", 5, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, f"reading data file {f} (107 KiB) needs about 215 KiB", "use a smaller file")
    monkeypatch.setattr(runtime, "available_memory", lambda: 1_000_000)  # the bytes fit, their 30,001 lines do not
    code, err = call(train, ["--data", f, "--steps", 5, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, "30,001 lines", "use a smaller file")
    monkeypatch.undo()

    def out_of_memory(*args):
        raise MemoryError()
    monkeypatch.setattr(wordfile.re, "split", out_of_memory)  # what a memory cap (ulimit -v) gives instead
    code, err = call(train, ["--data", f, "--steps", 5, "--out", tmp_path / "out"], capsys)
    # (a hostile tester's 228 KB file under `ulimit -v`: the file is not always what is too large)
    assert_one_line_error(code, err, f"data file {f} is too large to read in the memory this process may use",
                          "or give it more memory (free some, or raise ulimit -v)")
    monkeypatch.undo()
    monkeypatch.setattr(data, "build_dataset", out_of_memory)  # read, then too large to make examples of
    code, err = call(train, ["--data", f, "--steps", 5, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, f"the examples of data file {f} (a context of 3) do not fit", "--block-size",
                          "raise ulimit -v")
    assert not (tmp_path / "out").exists()


def test_train_rejects_unwritable_out(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    code, err = call(train, ["--steps", 5, "--out", blocker / "sub"], capsys)
    assert_one_line_error(code, err, "cannot write to output directory", "--out")


@pytest.mark.parametrize("name,flags", [("loss.csv", ["--force"]), ("metrics.json", ["--force"]),
                                        ("model.npz", ["--force"]), (".lock", []),
                                        ("lr_sweep.csv", ["--lr-sweep", "--steps", 50]),
                                        (".loss.csv.mywords.tmp", []), (".metrics.json.x.tmp", ["--force"])])
@pytest.mark.parametrize("linked", [False, True])
def test_a_data_file_that_the_run_would_write_over_is_refused(name, flags, linked, capsys, tmp_path):
    # a hostile tester's: `--data RUN/loss.csv --out RUN --force` trained, and its loss.csv replaced the word list
    out = tmp_path / "run"
    out.mkdir()
    words = (ROOT / "tests" / "data" / "names-small.txt").read_bytes()
    (out / name).write_bytes(words)
    data = out / name
    if linked:  # reached through a link elsewhere, the same file is lost
        data = tmp_path / "names.txt"
        data.symlink_to(out / name)
    code, err = call(train, ["--data", data, "--steps", 5, "--out", out, *flags], capsys)  # (a later --steps wins)
    assert_one_line_error(code, err, f"the data file {data} is {name} in {out}", "move the word list")
    assert (out / name).read_bytes() == words


def test_a_file_named_as_the_lock_that_is_no_lock_is_never_truncated_nor_taken_for_an_empty_folder(tmp_path):
    # a hostile tester's: a word list named .lock was truncated by the lock, removed at the end, and a folder
    # holding only it counted as empty, so that a run without --out went there (its default folder's name)
    from mlp_lm import runs
    from mlp_lm.runlock import LOCK, RunLock
    words = (ROOT / "tests" / "data" / "names-small.txt").read_bytes()
    folder = tmp_path / "lock"
    folder.mkdir()
    (folder / LOCK).write_bytes(words)
    with pytest.raises(cli.UsageError, match="holds something other than a lock of this program's"):
        with RunLock(folder):
            pass
    out, lock = runs.claim_fresh(folder)
    lock.__exit__()
    assert out == tmp_path / "lock-2" and (folder / LOCK).read_bytes() == words
    os.remove(folder / LOCK)
    os.mkfifo(folder / LOCK)  # no regular file: nobody's words, taken as it is (a reviewer's: it hung, then failed)
    out, lock = runs.claim_fresh(folder)
    lock.__exit__()
    assert out == folder
    with RunLock(folder):
        pass
    if (folder / LOCK).exists():
        os.remove(folder / LOCK)
    for left in (b"", b"12345\n"):  # a lock a killed training (or a full disk) left: taken again
        (folder / LOCK).write_bytes(left)
        with RunLock(folder):
            assert (folder / LOCK).read_bytes() == f"{os.getpid()}\n".encode()
        assert not (folder / LOCK).exists()


def test_a_data_path_with_a_trailing_slash_is_the_same_file(capsys, tmp_path):
    # Path() drops the slash, and the reader reads the file: so the run would still write over it
    out = tmp_path / "run"
    out.mkdir()
    (out / "loss.csv").write_bytes((ROOT / "tests" / "data" / "names-small.txt").read_bytes())
    code, err = call(train, ["--data", f"{out / 'loss.csv'}/", "--steps", 5, "--out", out, "--force"], capsys)
    assert_one_line_error(code, err, "is loss.csv in", "would write over or remove")


def test_a_data_file_moved_into_the_run_folder_as_it_trains_is_not_saved_over(tmp_path):
    # a hostile tester's: `mv words.txt RUN/loss.csv` while the run trained, then a stop signal, and the save
    # replaced the list; now the save refuses that folder (save_run_or_rescue then saves in the temporary one)
    import hashlib
    from mlp_lm import runs
    words = (ROOT / "tests" / "data" / "names-small.txt").read_bytes()
    out, data = tmp_path / "run", tmp_path / "mine.txt"
    out.mkdir()
    (out / "loss.csv").write_bytes(words)
    config = {"data": str(data), "data_sha256": hashlib.sha256(words).hexdigest()}
    assert runs.data_moved_in(out, config) == "loss.csv"
    with pytest.raises(checkpoint.CheckpointError, match="loss.csv now holds this run's data, moved there"):
        runs.save_run(out, None, None, config, None, None, None, None)  # (refused before anything is written)
    assert (out / "loss.csv").read_bytes() == words
    data.write_bytes(words)  # a copy, with the data still where the run read it: nothing would be lost
    assert runs.data_moved_in(out, config) is None
    data.unlink()
    (out / "loss.csv").write_bytes(b"step,train_loss,dev_loss\n")  # a run's own loss.csv: not read through
    assert runs.data_moved_in(out, config) is None


@pytest.mark.parametrize("how", ["symlink", "hard link", "beside"])
def test_a_run_file_that_only_links_to_the_data_does_not_stop_the_run(how, capsys, tmp_path):
    # the save replaces the link (a symbolic one, or a hard one: another name of the same bytes), not what it
    # points to, so the word list stays as it was; and a list in the run's folder under a name of its own trains
    out = tmp_path / "run"
    out.mkdir()
    data = (out if how == "beside" else tmp_path) / "names.txt"
    words = (ROOT / "tests" / "data" / "names-small.txt").read_bytes()
    data.write_bytes(words)
    if how == "symlink":
        (out / "loss.csv").symlink_to(data)
    elif how == "hard link":
        os.link(data, out / "loss.csv")
    code, err = call(train, ["--data", data, "--steps", 5, "--out", out, "--force", "--eval-every", 0], capsys)
    assert code == 0, err
    assert data.read_bytes() == words and not (out / "loss.csv").is_symlink()
    assert (out / "loss.csv").read_text().startswith("step,")


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    assert train.main(["--steps", "5", "--n-hidden", "8", "--eval-every", "0", "--out", str(out)]) == 0
    return out / "model.npz"


def damaged(tmp_path, good, kind):
    p = tmp_path / "model.npz"
    raw = good.read_bytes()
    if kind == "truncated":
        p.write_bytes(raw[: len(raw) // 2])
    elif kind == "text":
        p.write_text("this is not a model\n")
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "foreign":
        np.savez(p, weights=np.zeros(3))
    elif kind == "single-array":
        with open(p, "wb") as f:
            np.save(f, np.zeros(3))
    elif kind in ("bad-shape", "nan", "bad-config", "pickled", "int-params", "bad-vocab", "0-d-bias", "3-d-table"):
        with np.load(good, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        if kind == "bad-shape":
            arrays["W1"] = arrays["W1"][:-1]
        elif kind == "nan":
            arrays["b2"][0] = np.nan
        elif kind == "bad-config":
            arrays["config"] = np.array("{not json")
        elif kind == "pickled":
            arrays["config"] = np.array([{"a": 1}], dtype=object)
        elif kind == "int-params":
            arrays["b1"] = arrays["b1"].astype(np.int64)
        elif kind == "bad-vocab":
            arrays["vocab"] = np.array("abc")
        elif kind == "0-d-bias":
            arrays["b1"] = arrays["b1"][0]
        elif kind == "3-d-table":
            arrays["C"] = arrays["C"][None]
        np.savez(p, **arrays)
    elif kind == "raw-member":
        # From a hostile tester: a member without the .npy header, which numpy hands back as bytes.
        with zipfile.ZipFile(good) as z, zipfile.ZipFile(p, "w") as out:
            for name in z.namelist():
                out.writestr(name, b"garbage" if name == "C.npy" else z.read(name))
    elif kind == "flipped":
        # A corrupted byte inside a stored member: the zip's CRC check catches it.
        with zipfile.ZipFile(good) as z:
            info = z.getinfo("W1.npy")
        b = bytearray(raw)
        b[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF
        p.write_bytes(bytes(b))
    return p


@pytest.mark.parametrize("kind,words", [
    ("truncated", ["damaged"]),
    ("text", ["not a .npz archive"]),
    ("empty", ["not a .npz archive"]),
    ("flipped", ["damaged"]),
    ("raw-member", ["damaged", "C is not a stored array"]),
    ("foreign", ["not an mlp_lm checkpoint"]),
    ("single-array", ["not a .npz archive"]),
    ("bad-shape", ["W1", "shape"]),
    ("nan", ["b2", "NaN", "training never saves", "damaged"]),  # not "retrain with a smaller --lr"
    ("bad-config", ["not a valid"]),
    ("pickled", ["pickled objects"]),
    ("int-params", ["b1", "dtype"]),
    ("bad-vocab", ["not a valid", "vocabulary"]),
    ("0-d-bias", ["parameter b1 has 0 dimensions, not 1"]),
    ("3-d-table", ["parameter C has 3 dimensions, not 2"]),
])
def test_sample_rejects_damaged_checkpoints(kind, words, good_checkpoint, tmp_path, capsys):
    p = damaged(tmp_path, good_checkpoint, kind)
    code, err = call(sample, ["--checkpoint", p], capsys)
    assert_one_line_error(code, err, *words)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(p)


@pytest.mark.parametrize("flags,words", [
    (["--checkpoint", "no/such/model.npz"], ["checkpoint not found", "python -m mlp_lm.train"]),
    (["-n", "0"], ["-n"]),
    (["--temperature", "-1"], ["--temperature"]),
    (["--temperature", "nan"], ["--temperature"]),
    (["--top-k", "0"], ["--top-k"]),
    (["--max-length", "0"], ["--max-length"]),
    (["--prefix", "Zoë"], ["--prefix", "unknown symbol"]),
    (["--prefix", "a.b"], ["--prefix", "boundary"]),
])
def test_sample_rejects_bad_flags(flags, words, good_checkpoint, capsys):
    argv = flags if "--checkpoint" in flags else ["--checkpoint", good_checkpoint] + flags
    code, err = call(sample, argv, capsys)
    assert_one_line_error(code, err, *words)


@pytest.mark.parametrize("loop", [True, False])
def test_sample_checkpoint_is_a_link_to_nothing(loop, tmp_path, capsys):
    link = tmp_path / "model.npz"
    if loop:
        (tmp_path / "other.npz").symlink_to(link)
        link.symlink_to(tmp_path / "other.npz")
    else:
        link.symlink_to(tmp_path / "gone.npz")
    code, err = call(sample, ["--checkpoint", link], capsys)
    assert_one_line_error(code, err, "is a link to nothing")  # it said "not found", of a file that is there


def test_sample_checkpoint_is_a_directory(good_checkpoint, capsys):
    code, err = call(sample, ["--checkpoint", good_checkpoint.parent], capsys)
    assert_one_line_error(code, err, "directory")


def test_a_real_process_prints_no_traceback(tmp_path):
    # The same paths through `python -m`, as a user types them.
    proc = run_cli("mlp_lm.train", "--data", tmp_path / "missing.txt")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not found" in proc.stderr
    proc = run_cli("mlp_lm.sample", "--checkpoint", NAMES)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a .npz" in proc.stderr
    proc = run_cli("mlp_lm.train", "--batch-size", "0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--batch-size" in proc.stderr


def test_files_that_are_not_files_are_refused_not_read_forever(tmp_path):
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        proc = run_cli("mlp_lm.train", "--data", path, "--steps", 1, "--out", tmp_path / "o")
        assert proc.returncode == 2 and "not a regular file" in proc.stderr and "Traceback" not in proc.stderr


def test_stdout_on_a_full_device_is_one_line(tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "mlp_lm.ngram", "--n", "2", "--smoothing", "kn"], cwd=ROOT,
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["python -m mlp_lm.ngram: error: cannot write the output: "
                                                "No space left on device"]


def test_a_json_file_is_written_when_the_reader_of_stdout_leaves(tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT
    out = tmp_path / "k.json"
    proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.ngram", "--n", "2", "--smoothing", "kn", "--json", out],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # as `| head -0` would: every line the command prints finds the pipe broken
    err = proc.stderr.read()
    assert proc.wait() == 0 and "Traceback" not in err
    assert '"n": 2' in out.read_text()  # used to be lost: the broken pipe ended the command first
    out.unlink()
    with open("/dev/full", "w") as full:  # a full disk is no reader leaving: the file, and an error
        proc = subprocess.run([sys.executable, "-m", "mlp_lm.ngram", "--n", "2", "--smoothing", "kn", "--json", out],
                              cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 2 and '"n": 2' in out.read_text()
    assert proc.stderr.strip().splitlines() == ["python -m mlp_lm.ngram: error: cannot write the output: "
                                                "No space left on device"]


@pytest.mark.parametrize("command", ["train", "sample"])  # train's other output may be lost; its help may not
def test_help_that_cannot_be_written_is_an_error(command):
    import subprocess
    import sys

    from .conftest import ROOT
    with open("/dev/full", "w") as full:  # argparse's own print_help drops the error: exit 0, nothing shown
        proc = subprocess.run([sys.executable, "-m", f"mlp_lm.{command}", "--help"], cwd=ROOT,
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"python -m mlp_lm.{command}: error: cannot write the output: "
                                                "No space left on device"]


def test_temperature_zero_is_greedy_and_tiny_temperatures_are_quiet(tiny_run):
    out = tiny_run[0]
    zero = run_cli("mlp_lm.sample", "--checkpoint", out / "model.npz", "-n", 4, "--temperature", 0)
    tiny = run_cli("mlp_lm.sample", "--checkpoint", out / "model.npz", "-n", 4, "--temperature", "1e-300", "--seed", 9)
    top1 = run_cli("mlp_lm.sample", "--checkpoint", out / "model.npz", "-n", 4, "--top-k", 1)
    assert zero.returncode == tiny.returncode == 0 and "Warning" not in tiny.stderr
    assert zero.stdout == tiny.stdout == top1.stdout and len(set(zero.stdout.split())) == 1
    assert "(greedy: each of the 4 samples is the likeliest, so all are the same)" in zero.stderr + top1.stderr
    assert "greedy" not in tiny.stderr  # nearly greedy, but drawn


@pytest.mark.parametrize("flags,ignored,greedy", [
    (["--temperature", "0", "--top-k", "5"], "--top-k", "--temperature 0"),
    (["--temperature", "0", "--seed", "7"], "--seed", "--temperature 0"),
    (["--top-k", "1", "--temperature", "2"], "--temperature", "--top-k 1"),
    (["--top-k", "1", "--seed", "3"], "--seed", "--top-k 1"),
    (["--top-k", "1", "--temperature", "0"], "--top-k", "--temperature 0")])
def test_a_sampling_flag_that_greedy_sampling_would_ignore_is_refused(flags, ignored, greedy, tiny_run):
    # From a hostile pass: each of these printed the greedy samples with exit 0, the flag silently unused
    proc = run_cli("mlp_lm.sample", "--checkpoint", tiny_run[0] / "model.npz", "-n", 2, *flags)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"python -m mlp_lm.sample: error: {ignored} has no effect with {greedy}, which always takes the likeliest "
        f"symbol (every sample is the same); leave {ignored} out, or sample with "
        + ("a --temperature above 0" if greedy == "--temperature 0" else "a larger --top-k")]


def test_a_top_k_of_the_whole_vocabulary_is_said_to_restrict_nothing(tiny_run, monkeypatch, capsys):
    from mlp_lm import sample
    chosen = []
    monkeypatch.setattr(sample, "choose_threads", lambda *sizes: chosen.append(sizes) or 1)
    model = str(tiny_run[0] / "model.npz")
    for k, said in ((26, False), (27, True), (1000, True)):
        assert sample.main(["--checkpoint", model, "-n", "3", "--top-k", str(k)]) == 0
        err = capsys.readouterr().err
        assert (f"(--top-k {k} keeps all 27 of this model's symbols: the same as no --top-k)" in err) == said, err
    assert sample.main(["--checkpoint", model, "-n", "3", "--top-k", "1", "--temperature", "1", "--seed", "0"]) == 0
    # the threads are chosen for the model's sizes: the samples, T*E, the hidden layer's width, the vocabulary (a
    # review found H and V swapped)
    assert chosen == [(3, 30, 200, 27)] * 4


def test_a_vocabulary_with_a_control_character_round_trips_and_nul_is_refused(tmp_path):
    data = tmp_path / "ctl.txt"
    data.write_text("\n".join(["ab\x01", "b\x01a", "\x01\x01", "ba", "aab", "bba", "a\x01b"]) + "\n")
    proc = run_cli("mlp_lm.train", "--data", data, "--steps", 20, "--eval-every", 0, "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    params, vocab, _ = checkpoint.load(tmp_path / "o" / "model.npz")
    assert vocab.itos == ".\x01ab"
    proc = run_cli("mlp_lm.sample", "--checkpoint", tmp_path / "o" / "model.npz", "-n", 3)
    assert proc.returncode == 0, proc.stderr
    # NUL was a symbol too, until UTF-16 without its byte-order mark (NULs in its line ends, the rest often valid
    # UTF-8) was found training on letters and NULs: a file holding one is refused now
    data.write_text(data.read_text().replace("\x01", "\x00"))
    proc = run_cli("mlp_lm.train", "--data", data, "--steps", 20, "--eval-every", 0, "--out", tmp_path / "n")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "holds NUL bytes (the first at line 1)" in proc.stderr and not (tmp_path / "n").exists()


@pytest.mark.parametrize("change,words", [
    ({"data": 5}, ["data 5", "not a str"]),
    ({"split_seed": [1, 2]}, ["split_seed"]),
    ({"split_seed": "x"}, ["split_seed"]),
    ("deep", ["nests too deeply"]),
    ({"vocab_size": "27"}, ["vocab_size '27' (a str), but its parameters have 27"]),  # not "'27' ... 27"
    ({"n_embd": 11}, ["n_embd 11, but its parameters have 10"]),
])
def test_checkpoint_configs_are_checked_by_type(change, words, tiny_run, tmp_path, capsys):
    with np.load(tiny_run[0] / "model.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays["config"]))
    arrays["config"] = np.array("[" * 100000 + "]" * 100000 if change == "deep" else json.dumps({**config, **change}))
    np.savez(tmp_path / "model.npz", **arrays)
    code, err = call(sample, ["--checkpoint", tmp_path / "model.npz", "-n", 2], capsys)
    assert_one_line_error(code, err, *words)


def test_a_fifo_as_checkpoint_is_refused_not_waited_on(tmp_path, capsys):
    import os
    os.mkfifo(tmp_path / "model.npz")
    code, err = call(sample, ["--checkpoint", tmp_path / "model.npz"], capsys)
    assert_one_line_error(code, err, "not a regular file")


@pytest.mark.parametrize("module,flags,words", [
    ("mlp_lm.gradcheck", ["--n-hidden", "100000"], ["coordinates"]),
    ("mlp_lm.gradcheck", ["--vocab-size", "1"], ["--vocab-size"]),
    ("mlp_lm.train", ["--lr-sweep", "--steps", "3"], ["--lr-sweep", "at least 12"]),
    ("mlp_lm.train", ["--lr-sweep", "--optimizer", "adamw", "--dropout", "0.5", "--eval-every", "5"],
     ["--lr-sweep", "ignore --optimizer, --dropout, --eval-every"]),
    ("mlp_lm.train", ["--lr-sweep", "--preset", "best"], ["--lr-sweep", "ignore --preset best"]),
    ("mlp_lm.ngram", ["--n", "3", "--smoothing", "kn", "--data", "/dev/zero"], ["not a regular file"]),
])
def test_more_commands_refuse_in_one_line(module, flags, words, tmp_path):
    proc = run_cli(module, *flags, "--out", tmp_path) if module == "mlp_lm.train" else run_cli(module, *flags)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and all(w in proc.stderr for w in words), proc.stderr


def test_results_refuses_a_broken_metrics_file(tmp_path):
    from mlp_lm import results
    for name in results.CONFIGS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text("{}" if name == "scaled" else "not json")
    proc = run_cli("mlp_lm.results", "--no-train", "--runs", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "retrain that run" in proc.stderr


MEMORY = ["needs about", "of memory and this machine has", "available"]


@pytest.mark.parametrize("module,flags,words", [
    ("mlp_lm.train", ["--steps", "1000000000000"], ["--steps", "use fewer"]),
    ("mlp_lm.train", ["--out", ""], ["--out is empty"]),
    ("mlp_lm.train", ["--n-hidden", "1000000000", "--steps", "1"], MEMORY + ["H=1000000000", "--n-hidden"]),
    ("mlp_lm.train", ["--n-embd", "1000000000", "--steps", "1"], MEMORY + ["E=1000000000", "--n-embd"]),
    ("mlp_lm.train", ["--batch-size", "1000000000", "--steps", "1"], MEMORY + ["batch 1000000000", "--batch-size"]),
    ("mlp_lm.train", ["--block-size", "1000000000", "--steps", "1"], MEMORY + ["context of 1,000,000,000",
                                                                             "--block-size"]),
])
def test_impossible_sizes_are_one_line_before_the_work(module, flags, words, tmp_path):
    """Sizes past the machine's memory are refused before anything is allocated, with the sizes in the line."""
    out = [] if "--out" in flags else ["--out", tmp_path / "run"]
    proc = run_cli(module, *flags, *out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and all(w in proc.stderr for w in words), proc.stderr
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_sampling_a_sample_longer_than_memory_is_one_line(tiny_run):
    from functools import partial
    from mlp_lm import model, sampling
    from mlp_lm.runtime import NotEnoughMemory
    for length in (10**9, 10**15):  # 10**9 would fit in 16 GB, but no name is a billion letters long
        proc = run_cli("mlp_lm.sample", "--checkpoint", tiny_run[0] / "model.npz", "--max-length", length)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "--max-length" in proc.stderr and "100,000" in proc.stderr
    params, vocab, config = checkpoint.load(tiny_run[0] / "model.npz")
    with pytest.raises(NotEnoughMemory, match="one sample of up to"):  # the library checks memory itself
        sampling.generate(partial(model.next_probs, params), vocab, 3, 1, np.random.default_rng(0), max_length=10**15)


def test_check_fits_compares_with_what_is_available():
    from mlp_lm.runtime import NotEnoughMemory, check_fits
    check_fits(10, "ten bytes", "never", available=10)  # fits exactly
    with pytest.raises(NotEnoughMemory, match=r"eleven bytes needs about 11 bytes .* 10 bytes available; shrink it"):
        check_fits(11, "eleven bytes", "shrink it", available=10)
    with pytest.raises(NotEnoughMemory, match=r"needs about 3.0 GiB .* 2.0 GiB available"):
        check_fits(3 * 2**30, "x", "y", available=2 * 2**30)


@pytest.mark.parametrize("module,flags", [
    ("mlp_lm.evaluate", ["--checkpoint", "{model}"]),
    ("mlp_lm.ngram", ["--n", "3", "--smoothing", "kn", "--samples", "0"]),
])
def test_json_replaces_only_an_earlier_json_output(tiny_run, tmp_path, module, flags, capsys, monkeypatch):
    import hashlib
    import importlib
    import stat

    def refused(target, cwd=ROOT):  # in this process: a dozen commands' start-up is seconds
        monkeypatch.chdir(cwd)
        prog = f"python -m {module}"
        with pytest.raises(SystemExit) as e:
            cli.run(lambda: importlib.import_module(module).main([*flags, "--json", str(target)]), prog)
        out, err = capsys.readouterr()
        assert e.value.code == 2 and out == "" and len(err.strip().splitlines()) == 1, (target, out, err)
        return err
    model = tmp_path / "model.npz"
    model.write_bytes((tiny_run[0] / "model.npz").read_bytes())
    metrics = tmp_path / "metrics.json"
    metrics.write_text((tiny_run[0] / "metrics.json").read_text())  # valid JSON, but a run's, not an output's
    flags = [f.format(model=model) for f in flags]
    for target in (model, metrics, tmp_path / "empty.txt"):
        target.touch()
        before = hashlib.sha256(target.read_bytes()).hexdigest()
        assert "not a file an earlier --json wrote" in refused(target)
        assert hashlib.sha256(target.read_bytes()).hexdigest() == before  # before the work
    err = refused(tmp_path / "no such folder" / "out.json")
    assert "there is no folder" in err and "make it first" in err
    # From a hostile pass: a.json/ was written as the file a.json, and a link was said not to be ours
    assert "ends in /, as a folder's name does" in refused(f"{tmp_path / 'a.json'}/")
    assert not (tmp_path / "a.json").exists()
    (tmp_path / "link.json").symlink_to(tmp_path / "nowhere.json")
    assert "is a symbolic link, which the file written would replace" in refused(tmp_path / "link.json")
    assert (tmp_path / "link.json").is_symlink()
    # From a scripting user's review: --json - wrote a file named "-", and /dev/stdout was said to exist
    for target, said in (("-", "--json needs a file name: - (stdout) is not one, as stdout holds the table"),
                         ("/dev/stdout", "--json /dev/stdout is no file of its own (a device, a stream, a pipe or"),
                         ("/dev/null", "--json /dev/null is no file of its own"), (tmp_path, "is no file of its own")):
        assert said in refused(target, cwd=tmp_path), target
    assert not (tmp_path / "-").exists()
    # in a process of its own, whose stdout is a file: /dev/stdout is then that file, still no --json target
    with open(tmp_path / "out.txt", "w") as stdout:
        proc = subprocess.run([sys.executable, "-m", module, *flags, "--json", "/dev/stdout"], stdout=stdout,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "/dev/stdout is no file of its own" in proc.stderr
    out = tmp_path / "out.json"
    for _ in range(2):  # the second run replaces the first's output
        proc = run_cli(module, *flags, "--json", out)
        assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["written_by"] == "mlp_lm --json"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # a normal file's mode, not mkstemp's private one


def test_a_path_the_file_system_refuses_is_one_line(tmp_path):
    long = tmp_path / ("a" * 300)  # longer than any file name may be
    for module, flags in (("mlp_lm.train", ["--out", long, "--steps", "5"]),
                          ("mlp_lm.train", ["--resume", "--out", long]),
                          ("mlp_lm.sample", ["--checkpoint", long / "model.npz"]),
                          ("mlp_lm.evaluate", ["--checkpoint", long])):
        proc = run_cli(module, *flags)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "too long" in proc.stderr, proc.stderr


@pytest.mark.parametrize("module,flags,words", [
    ("mlp_lm.ngram", ["--n", "3", "--smoothing", "kn", "--samples", "100000000"], ["--samples", "100,000"]),
    ("mlp_lm.train", ["--optimizer", "adamw", "--eps", "1e-300"], ["--eps", "outside what float32 holds"]),
    ("mlp_lm.train", ["--optimizer", "adamw", "--eps", "1e300"], ["--eps", "outside what float32 holds"]),
    ("mlp_lm.train", ["--data", ""], ["data path is empty"]),
])
def test_more_bad_values_are_one_line_that_names_them(module, flags, words, tmp_path):
    proc = run_cli(module, *flags, *(["--out", tmp_path / "run"] if module == "mlp_lm.train" else []))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and all(w in proc.stderr for w in words), proc.stderr


def test_items_are_lines_as_an_editor_sees_them(tmp_path):
    from mlp_lm.wordfile import read_items
    f = tmp_path / "w.txt"
    f.write_text("ann\u2028a\r\nbo\x85b\rcy\fc\n", encoding="utf-8", newline="")
    assert read_items(f) == ["ann\u2028a", "bo\x85b", "cy\fc"]  # only \n, \r\n and \r end a line


@pytest.mark.parametrize("bad", [{"dev_loss": "x"}, {"params": None}, {"config": 5}, {"config": {}},
                                 {"train_seconds": "x"}, "nested", "fifo",
                                 # values no run has, and numbers that are not its model's (a hostile tester's)
                                 {"dev_loss": -5.0}, {"test_loss": -1e-3}, {"train_seconds": -1}, {"params": 0},
                                 {"params": 28059}, {"steps": 10**6},
                                 # a step its time counts from that is no step of the run's (were ignored)
                                 {"train_seconds_from_step": -5}, {"train_seconds_from_step": 1.5},
                                 {"train_seconds_from_step": True}, {"train_seconds_from_step": 10**9}])
def test_results_refuses_metrics_of_the_wrong_shape_in_one_line(tmp_path, bad, monkeypatch):
    import os
    from mlp_lm import results

    from .conftest import no_real_losses
    no_real_losses(monkeypatch)  # every refusal comes before any model is evaluated (no "loss is" below)
    for name in results.CONFIGS:
        put_results_run(tmp_path / name, results_metrics(name=name))
    good = json.loads((tmp_path / "scaled" / "metrics.json").read_text())
    target = tmp_path / "scaled" / "metrics.json"
    if bad == "nested":
        target.write_text("[" * 100_000)
    elif bad == "fifo":  # a link to a pipe: reading it would wait forever
        target.unlink()
        os.mkfifo(tmp_path / "pipe")
        target.symlink_to(tmp_path / "pipe")
    else:
        target.write_text(json.dumps({**good, **bad}))
    proc = run_cli("mlp_lm.results", "--no-train", "--runs", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "scaled" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "loss is" not in proc.stderr, proc.stderr


def test_a_file_where_a_numbered_run_folder_would_go_is_skipped(tmp_path, monkeypatch):
    from mlp_lm import runlock, runs
    monkeypatch.setattr(runs, "in_checkout", lambda p: tmp_path / p)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "words").write_text("a file, not a run folder")
    out, lock = runs.claim_default_out("somewhere/words.txt")
    try:
        assert out == tmp_path / "runs" / "words-2" and (out / runlock.LOCK).exists()
    finally:
        lock.__exit__()
    assert not (out / runlock.LOCK).exists()


def test_json_files_hold_null_where_a_number_is_not_finite(tmp_path):
    # A damaged model's perplexity of inf used to be written as Infinity, which JSON does not have.
    import json

    from mlp_lm import jsonout
    jsonout.write_json(tmp_path / "x.json", {"test_perplexity": float("inf"), "rows": [{"loss": float("nan")}, 1.5]})
    doc = json.loads((tmp_path / "x.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert doc["test_perplexity"] is None and doc["rows"] == [{"loss": None}, 1.5]


@pytest.mark.parametrize("module,argv,words", [
    (sample, ["--checkpoint", "no\nsuch.npz"], ["checkpoint not found: no\\nsuch.npz"]),  # was two lines
    (sample, ["--checkpoint", ""], ["checkpoint path is empty"]),  # was "a directory: ."
    (sample, ["--prefix", "a" * 12, "--max-length", "10"], ["--prefix has 12 symbols", "--max-length 10"]),
    (sample, ["--prefix", "abcd", "--max-length", "4"], ["--prefix has 4 symbols", "leaving none"]),
    (train, ["--steps", "1\n2"], ["'1\\n2'"]),
])
def test_odd_arguments_are_one_line(module, argv, words, capsys):
    code, err = call(module, argv, capsys)
    assert_one_line_error(code, err, *words)


def test_an_empty_json_path_is_one_line(capsys):
    from mlp_lm import ngram
    code, err = call(ngram, ["--n", "2", "--smoothing", "kn", "--json", ""], capsys)
    assert_one_line_error(code, err, "--json needs a file name")


def test_a_file_as_out_is_named_as_a_file(tmp_path):
    (tmp_path / "words.txt").write_text("ann\nbob\n")
    proc = run_cli("mlp_lm.train", "--steps", "20", "--out", tmp_path / "words.txt")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "is a file, not a folder" in proc.stderr and (tmp_path / "words.txt").read_text() == "ann\nbob\n"


def test_a_run_blown_up_by_heavy_dropout_names_the_dropout_too(tmp_path):
    proc = run_cli("mlp_lm.train", "--dropout", "0.999", "--emb-dropout", "0.999", "--steps", "500",
                   "--eval-every", "0", "--out", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # after the progress lines
    assert "training diverged" in last and "or less dropout (at 0.999 the units kept are scaled by 1,000)" in last
    proc = run_cli("mlp_lm.train", "--lr", "10", "--steps", "500", "--eval-every", "0", "--out", tmp_path)
    assert proc.returncode == 2 and "smaller --lr; nothing was saved" in proc.stderr  # no dropout: no word of it


def test_a_double_dash_as_a_flags_own_value_is_that_text(capsys):
    # argparse before Python 3.13 turns --out=-- into an empty list that slips past type and choices
    from mlp_lm import train_flags
    assert train_flags.parse_args(["--out=--", "--data=--"])[0].data == "--"
    for flags, words in ((["--steps=--"], ["--steps", "'--'"]), (["--preset=--"], ["--preset", "'--'"])):
        assert_one_line_error(*call(train, flags, capsys), *words)


def test_a_prefix_the_locale_could_not_decode_says_so(capsys, monkeypatch):
    # An ASCII locale without Python's UTF-8 mode: the bytes of 'é' arrive as two surrogate escapes
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "ascii")
    assert_one_line_error(*call(sample, ["--prefix", "\udcc3\udca9"], capsys), "(ascii)", "PYTHONUTF8")
    # A UTF-8 locale given Latin-1 bytes ('é' as the one byte 0xe9): the bytes are at fault, not the locale
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "utf-8")
    assert_one_line_error(*call(sample, ["--prefix", "\udce9"], capsys), "(utf-8)", "type it as UTF-8 text")


def test_output_in_an_encoding_without_the_symbols_is_escaped(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("\n".join(["zoë", "chloé", "ñandú", "😀😀"] * 30) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run([sys.executable, "-m", "mlp_lm.train", "--data", words, "--steps", "30", "--out",
                           tmp_path / "run"], capture_output=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr and b"sample more" in proc.stdout, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "mlp_lm.sample", "--checkpoint", tmp_path / "run" / "model.npz",
                           "-n", "5", "--max-length", "2", "--prefix", "ñ"], capture_output=True, env=env, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.count(b"\\xf1") == 5 and b"\\u2026" in proc.stdout  # ñ and the cut-off mark, escaped


def test_a_deleted_current_directory(tmp_path, monkeypatch, capsys):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    # Absolute paths need no current directory: the run trains (the default data's display name needed one)
    assert train.main([*SMALL, "--steps", "20", "--eval-every", "0", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()

    def lost():
        os.getcwd()  # what a relative path's lookup does, deep in a command
    with pytest.raises(SystemExit) as e:
        cli.run(lost, "prog")
    assert_one_line_error(e.value.code, capsys.readouterr().err, "current directory no longer exists")
    for flags in (["--data", "words.txt"], ["--out", "run", *SMALL]):  # relative paths: the reason is named too
        assert_one_line_error(*call(train, flags, capsys), "current directory no longer exists")


def test_a_broken_or_looping_link_as_out_is_named_as_such(tmp_path, capsys):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert_one_line_error(*call(train, ["--out", tmp_path / "dangling"], capsys), "leads to", "nowhere",
                          "does not exist")
    assert_one_line_error(*call(train, ["--out", tmp_path / "loop"], capsys), "loop of links")


@pytest.mark.parametrize("vocab, config, dtype, words", [
    ("a\nb", {"block_size": 2}, np.float32, "line break"),
    ("ba", {"block_size": 2}, np.float32, "not in the order training gives it"),
    ("ab", {"block_size": 3}, np.float32, "parameter W1 has shape (4, 2)"),
    ("ab", {}, np.float32, "its config has no block_size"),
    ("ab", {"block_size": 2}, np.float16, "float16"),
])
def test_save_refuses_what_load_would_call_damaged(vocab, config, dtype, words, tmp_path):
    # A library caller's save of mismatched pieces used to write a file that load() then called damaged.
    from mlp_lm import data, model
    v = data.Vocab("." + vocab)
    params = {k: p.astype(dtype) for k, p in model.init_params(len(v), 2, 2, 2, dtype=np.float32).items()}
    with pytest.raises(ValueError, match="would not load back") as e:
        checkpoint.save(tmp_path / "model.npz", params, v, config)
    assert words in str(e.value) and not (tmp_path / "model.npz").exists()


def test_a_config_cannot_override_the_format_mark(tmp_path):
    from mlp_lm import data, model
    v = data.Vocab(".ab")
    checkpoint.save(tmp_path / "model.npz", model.init_params(3, 2, 2, 2), v, {"block_size": 2, "format": "other"})
    assert checkpoint.load(tmp_path / "model.npz")[2]["format"] == checkpoint.FORMAT


def test_a_checkpoint_written_big_endian_loads(tmp_path):
    # np.savez on a big-endian machine writes >f4: the same float32 numbers, not a damaged file.
    from mlp_lm import data, model
    v = data.Vocab(".ab")
    params = model.init_params(3, 2, 2, 2)
    path = tmp_path / "model.npz"
    checkpoint.save(path, params, v, {"block_size": 2, "dtype": "float32"})
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(path, **{k: (a.astype(a.dtype.newbyteorder(">")) if a.dtype.kind == "f" else a) for k, a in arrays.items()})
    loaded = checkpoint.load(path)[0]
    assert all(loaded[k].dtype == np.float32 and np.array_equal(loaded[k], params[k]) for k in params)


def test_save_never_second_guesses_a_model_s_numbers_and_training_s_save_checks_nothing(monkeypatch, tmp_path):
    # A run stopped mid-way is saved whatever its parameters hold (load says what is wrong with them);
    # numpy scalars in a config (a loop over np.array sizes) are saved as the numbers they are.
    from mlp_lm import data, model
    v = data.Vocab(".ab")
    for fill in (1e38, float("nan")):
        params = model.init_params(3, 2, 2, 2)
        params["W2"][:] = fill  # logits far past what float32 resolves, or NaN
        checkpoint.save(tmp_path / "model.npz", params, v, {"block_size": 2})
        with pytest.raises(checkpoint.CheckpointError):
            checkpoint.load(tmp_path / "model.npz")
    checkpoint.save(tmp_path / "model.npz", model.init_params(3, 2, 2, 2), v, {"block_size": np.int64(2),
                                                                              "lr": np.float32(0.5)})
    assert checkpoint.load(tmp_path / "model.npz")[2]["block_size"] == 2
    # Training's own save skips the check altogether: a refusal there would lose the run.
    monkeypatch.setattr(checkpoint, "check_contents", lambda *a, **k: (_ for _ in ()).throw(AssertionError("checked")))
    assert train.main([*SMALL, "--steps", "5", "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "model.npz").exists()


def test_resume_names_what_a_library_saved_state_lacks(tmp_path):
    # A notebook saved a Trainer's state() itself: it holds state.* arrays but not the loop's step and losses.
    from dataclasses import asdict

    from mlp_lm import data, model
    from mlp_lm.config import Config
    from mlp_lm.trainer import Trainer
    splits = data.load_splits(SMALL[1], 3)
    cfg = Config(data=SMALL[1], steps=10, n_hidden=8)
    t = Trainer(cfg, model.init_params(len(splits.vocab), 3, 10, 8), *splits.train)
    t.step(0)
    checkpoint.save(tmp_path / "model.npz", t.params, splits.vocab, asdict(cfg), state=t.state())
    with pytest.raises(cli.UsageError, match="without the loop's step, losses, devs"):  # not "before resuming existed"
        train.main(["--resume", "--out", str(tmp_path)])


def test_a_json_name_too_long_for_its_temporary_is_refused_before_the_work(tmp_path):
    # From a hostile round: a legal 245-byte name failed after the work, when its temporary
    # (".NAME.xxxxxxxx.tmp", 14 bytes longer) could not be created.
    from mlp_lm import jsonout
    from mlp_lm.cli import UsageError
    with pytest.raises(UsageError, match="too long"):
        jsonout.check_json_target(tmp_path / ("x" * 240 + ".json"))
    assert jsonout.check_json_target(tmp_path / ("x" * 236 + ".json")) == tmp_path / ("x" * 236 + ".json")


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs a folder no file can be made in: Linux's /sys")
def test_a_json_folder_that_takes_no_file_is_refused_before_the_work():
    # From a hostile review: os.access lets root pass for /sys, a read-only file system or a full disk,
    # and the bench's minutes of work were done, and its table printed, before the write failed.
    proc = run_cli("mlp_lm.ngram", *SMALL, "--n", "3", "--smoothing", "kn", "--json", "/sys/kernel/x.json")
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1
    assert "--json /sys/kernel/x.json" in proc.stderr and not os.path.exists("/sys/kernel/x.json")


def test_a_json_file_that_cannot_be_written_says_what_to_do(tmp_path, monkeypatch):
    import errno

    from mlp_lm import jsonout

    def full(path, write, made=None):
        made.append(str(tmp_path / "trial"))  # as the real one does, once its file exists
        (tmp_path / "trial").write_text("")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(jsonout, "write_temporary", full)
    with pytest.raises(cli.UsageError, match=r"No space left on device; free some space there \(a trial file of 16 kB "
                                             r"did not fit before the work, or the file itself after it\), or name a file"):
        jsonout.prepare_json(tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []  # the trial file is removed
    monkeypatch.undo()
    jsonout.prepare_json(tmp_path / "out.json")  # a folder that takes it: nothing left of the trial
    assert list(tmp_path.iterdir()) == []
    # A second hostile review: an earlier --json file made read-only was found only after the work (root passes
    # os.access, so the user's view is played here).
    jsonout.write_json(tmp_path / "out.json", {"n": 1})
    monkeypatch.setattr(jsonout.os, "access", lambda path, mode: str(path) != str(tmp_path / "out.json"))
    with pytest.raises(cli.UsageError, match=r"out.json is an earlier --json file this user may not write \(read-only\); "
                                             r"make it writable \(chmod u\+w\), or name another file"):
        jsonout.prepare_json(tmp_path / "out.json")


def test_an_error_line_shows_what_a_terminal_would_act_on_escaped(tmp_path):
    # From a second hostile review: only \n and \r were escaped, so a path holding VT or ESC[2J went raw to the
    # terminal (a cleared screen, a line broken by VT)
    odd = tmp_path / "no\x0bthing\x1b[2J\u202ex"
    proc = run_cli("mlp_lm.draw", odd)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "no\\x0bthing\\x1b[2J\\u202ex does not exist" in proc.stderr
    assert not any(c in proc.stderr for c in "\x0b\x1b\u202e")
    from mlp_lm.streams import printable  # a byte that is not UTF-8 shows as the byte, as in bash's $'...'
    assert printable("e\udcffmpty \udc80\ufeff\u2028") == "e\\xffmpty \\x80\\ufeff\\u2028"
    proc = run_cli("mlp_lm.draw", os.fsdecode(bytes(tmp_path) + b"/e\xffmpty"))
    assert proc.returncode == 2 and "e\\xffmpty does not exist" in proc.stderr


def test_a_library_that_cannot_be_imported_late_is_one_line(tiny_run, tmp_path):
    # From a hostile tester: evaluate --mix-ngram under `ulimit -v` evaluated everything, then ended in a traceback
    # when scipy's libraries could not be mapped (an ImportError, not a MemoryError); a broken or missing scipy the same
    broken = tmp_path / "broken" / "scipy"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("this scipy is broken")\n')
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "sitecustomize.py").write_text("import sys\nsys.modules['scipy'] = None\n")  # as if not installed
    cut_short = tmp_path / "cut" / "scipy"  # a file cut short: broken otherwise than by an ImportError
    cut_short.mkdir(parents=True)
    (cut_short / "__init__.py").write_text("x = (\n")
    for where, said in ((broken.parent, r"this scipy is broken"), (missing, r"No module named 'scipy\.\w+'"),
                        (cut_short.parent, r"SyntaxError: '\(' was never closed \(__init__\.py, line 1\)")):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(where), str(ROOT)])}
        for args in (["mlp_lm.evaluate", "--checkpoint", str(tiny_run[0] / "model.npz"), "--mix-ngram", "3"],
                     ["mlp_lm.train", "--fold", "--steps", "5", "--out", str(tmp_path / "run"), "--force"]):
            proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=tmp_path, env=env,
                                  timeout=120)
            assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
            assert re.fullmatch(rf"python -m {args[0]}: error: cannot import scipy \({said}[^\n]*\); reinstall it "
                                r"\(pip install -e \. installs what mlp_lm needs\), or, if it is installed, give it the "
                                r"memory to load \(free some, or raise ulimit -v\)\n", proc.stderr), proc.stderr


@pytest.mark.parametrize("raised, said", [
    ('ImportError("this threadpoolctl is broken")', r"cannot import threadpoolctl \(this threadpoolctl is broken\); "
                                                   r"reinstall it .*, give it the memory to load \(free some, or raise "
                                                   r"ulimit -v\)"),
    ("MemoryError", r"not enough memory to start; free some, or raise ulimit -v"),
    ('ImportError("IMPORTANT: read this\\n\\nmuch advice\\n\\nOriginal error was: libx.so: failed to map segment")',
     r"cannot import threadpoolctl \(libx\.so: failed to map segment\); reinstall it .*"),
    # broken otherwise (a second hostile pass): what its own module code raises, or a file cut short
    ("RuntimeError('boom')", r"cannot import threadpoolctl \(RuntimeError: boom\); reinstall it .*"),
    (None, r"cannot import threadpoolctl \(SyntaxError: '\(' was never closed \(__init__\.py, line 1\)\); "
           r"reinstall it .*"),
])
def test_a_library_that_cannot_be_imported_as_a_command_starts_is_one_line(tmp_path, raised, said):
    # From a hostile tester: under `ulimit -v`, train's own imports (at the top of its module, before cli.run
    # catches anything) ended in a MemoryError or numpy's ImportError traceback; a missing threadpoolctl the same.
    # numpy's message is a page of advice: the error itself, after "Original error was:", is what is said.
    broken = tmp_path / "broken" / "threadpoolctl"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(f"raise {raised}\n" if raised else "x = (\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken.parent), str(ROOT)])}
    for command in ("mlp_lm.train", "mlp_lm.sample", "mlp_lm"):
        proc = subprocess.run([sys.executable, "-m", command, "--help"], capture_output=True, text=True, cwd=tmp_path,
                              env=env, timeout=120)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert re.fullmatch(rf"python -m {command}: error: {said}\n", proc.stderr), proc.stderr


def test_a_librarys_damaged_bytecode_is_one_line_and_our_own_broken_file_a_traceback(tmp_path):
    # A reviewer's: a truncated .pyc (the import machinery's EOFError) was a traceback; a SyntaxError in one of
    # our own files, run from a folder above the checkout, was said as "cannot import <that folder>"
    import mlp_lm
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "threadpoolctl.py").write_text("x = 1\n")
    subprocess.run([sys.executable, "-c", "import py_compile; py_compile.compile('threadpoolctl.py', "
                    "cfile='threadpoolctl.pyc')"], cwd=broken, check=True, timeout=60)
    (broken / "threadpoolctl.py").unlink()
    (broken / "threadpoolctl.pyc").write_bytes((broken / "threadpoolctl.pyc").read_bytes()[:20])  # cut short
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "mlp_lm.train", "--help"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith(
        "python -m mlp_lm.train: error: cannot import threadpoolctl (EOFError: marshal data too short); "), proc.stderr
    ours = os.path.join(os.path.dirname(mlp_lm.__file__), "advice.py")
    assert mlp_lm.failed_library(SyntaxError("invalid syntax", (ours, 3, 1, "x"))) is None
    assert mlp_lm.failed_library(SyntaxError("invalid syntax", ("<string>", 1, 1, "x"))) is None
    try:
        eval("undefined_name", {})  # code with no module of its own: no library's import either
    except NameError as e:
        assert mlp_lm.failed_library(e) is None


def test_a_ctrl_c_inside_a_librarys_import_is_an_interrupt_not_a_broken_library(capsys):
    # A reviewer's: scipy's C extensions turn a Ctrl-C during their import into ImportError("scipy
    # initialization failed"), which was said as a broken scipy, exit 2
    from mlp_lm import cli

    def importing():
        try:
            raise cli.Interrupted()
        except KeyboardInterrupt as stop:
            raise ImportError("scipy initialization failed", name="scipy") from stop
    with pytest.raises(SystemExit) as e:
        cli.run(importing, "python -m mlp_lm.evaluate")
    assert e.value.code == 130 and capsys.readouterr().err == "python -m mlp_lm.evaluate: interrupted (SIGINT)\n"


def test_an_error_at_the_start_that_is_no_librarys_import_is_a_bug_with_its_traceback():
    start = "import sys; sys.argv[0] = '-m'; sys.orig_argv = [sys.executable, '-m', 'mlp_lm.train']; import mlp_lm; "
    for code in (start + "raise RuntimeError('a bug')",  # our own code's, as a command starts
                 start + "import numpy; numpy.zeros(-1)"):  # a library's function, called wrongly: ours too
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 1 and "Traceback" in proc.stderr, proc.stderr


def test_memory_that_runs_out_where_no_size_was_given_also_says_to_give_more(capsys):
    # A hostile tester's: sample (its Novelty reads the training data) and ngram (its data warnings) under
    # `ulimit -v` were told only "use smaller ones", where the user had given no size
    from mlp_lm import cli

    def short():
        raise MemoryError
    with pytest.raises(SystemExit) as e:
        cli.run(short, "python -m mlp_lm.sample")
    assert e.value.code == 2 and capsys.readouterr().err == (
        "python -m mlp_lm.sample: error: not enough memory for these sizes; use smaller ones (python -m mlp_lm.sample "
        "--help lists them), or give this process more memory (free some, or raise ulimit -v)\n")


def test_an_import_of_ours_that_fails_is_a_bug_and_keeps_its_traceback():
    # A reviewer's: a name misspelt in one of our imports was said as "cannot import mlp_lm (...); reinstall it"
    # by the commands' start-up hook (and by cli.run), hiding the bug. As a command starts, then inside cli.run:
    start = "import sys; sys.argv[0] = '-m'; sys.orig_argv = [sys.executable, '-m', 'mlp_lm.train']; import mlp_lm; "
    for code in (start + "from mlp_lm.progress import no_such_name",
                 start + "from mlp_lm import cli\ndef main():\n    from mlp_lm.progress import no_such_name\n"
                         "cli.run(main, 'python -m mlp_lm.train')"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 1 and "Traceback" in proc.stderr, proc.stderr
        assert "ImportError: cannot import name 'no_such_name' from 'mlp_lm.progress'" in proc.stderr
    # and a program that imports the package keeps its own hook; a command gives Python's back once cli.run starts
    code = "import sys, mlp_lm; assert sys.excepthook is sys.__excepthook__"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0
    code = (start + "assert sys.excepthook is not sys.__excepthook__\nfrom mlp_lm import cli\n"
                    "cli.run(lambda: 0 if sys.excepthook is sys.__excepthook__ else 3, 'python -m mlp_lm.train')")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0


def test_a_json_file_past_the_file_size_limit_is_told_which_limit(tmp_path):
    # From a hostile tester: under `ulimit -f 10` --json said "File too large; name a file in a folder this user can
    # write to", pointing at permissions; a real process, since the limit is its own
    proc = subprocess.run(["bash", "-c", f"ulimit -f 10; exec {sys.executable} -m mlp_lm.bench --quick --no-torch "
                           f"--no-load --seconds 0.01 --items 1000 --json {tmp_path / 'b.json'}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr == (f"python -m mlp_lm.bench: error: cannot write --json {tmp_path / 'b.json'}: File too large; "
                           f"raise this shell's file size limit (ulimit -f; a trial file of 16 kB did not fit under "
                           f"it)\n")
    assert not list(tmp_path.iterdir())  # nor is its trial file left
