"""The benchmark runs in its tiny mode, so it cannot rot. Its numbers are never asserted on."""
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlp_lm import bench, runtime, scale

from .conftest import ROOT, run_cli


def test_quick_bench_runs_and_writes_its_table(tmp_path):
    proc = run_cli("mlp_lm.bench", "--quick", "--seconds", "0.02", "--no-torch", "--json", tmp_path / "b.json")
    assert proc.returncode == 0, proc.stderr
    assert "training step, idle machine" in proc.stdout and "busy process" in proc.stdout
    doc = json.loads((tmp_path / "b.json").read_text())
    assert [r["batch"] for r in doc["idle"]] == [32, 256] == [r["batch"] for r in doc["loaded"]]
    assert all(r["ours_seconds"] > 0 and r["torch_seconds"] is None for r in doc["idle"])
    assert doc["dev_eval_seconds"] > 0
    assert doc["products"]["batch"] == 256 and doc["products"]["ours_seconds"] > 0
    assert doc["products"]["torch_seconds"] is None
    assert "the step's six matrix products alone, batch 256, float32, one thread: numpy " in proc.stdout
    scale = doc["data_at_scale"]
    assert scale["items"] == 20_000 and "data at scale: 20,000 random items" in proc.stdout
    assert scale["seconds"] > 0 and scale["peak_rss_bytes"] > scale["example_bytes"] > 20_000 * 2 * 4 * 8


def test_flop_count():
    # 6 B (T E H + H V): forward and backward of the two products, for the lecture's sizes.
    assert bench.flops_per_step(32) == 6 * 32 * (30 * 200 + 200 * 27)


def test_thread_choice_grows_with_the_work_and_respects_a_busy_machine():
    assert runtime.choose_threads(32, 30, 200, 27, cores=2) == 1  # the lecture's step: one thread
    assert runtime.choose_threads(1024, 30, 200, 27, cores=2) == 2  # a big batch on an idle machine
    assert runtime.choose_threads(1024, 30, 200, 27, cores=1) == 1  # ... unless the other core is busy
    assert runtime.choose_threads(10**6, 30, 200, 27, cores=0) == 1
    assert 1 <= runtime.idle_cores(0.01) <= runtime.available_cores()


def test_blas_threads_limits_and_restores():
    from threadpoolctl import threadpool_info

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    with runtime.blas_threads(1):
        assert set(blas()) == {1}
    assert blas() == before


def test_keep_freed_memory_takes_effect_on_glibc():
    import platform
    took = runtime.keep_freed_memory()
    assert isinstance(took, bool)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert took


def test_the_governor_follows_the_load(monkeypatch):
    from threadpoolctl import threadpool_info

    def blas():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    cores = __import__("os").cpu_count()
    readings = iter([(0, 0, 0),
                     (200 * cores, 100 * cores, 100),  # busy machine, this process one core of it
                     (200 * cores + 100, 200 * cores, 200)])  # then only this process busy
    monkeypatch.setattr(runtime, "_cpu_ticks", lambda: next(readings))
    with runtime.blas_threads(2):
        gov = runtime.ThreadGovernor(2, every=3)
        for _ in range(3):
            gov.tick()  # only the 3rd tick looks
        if cores >= 2:
            assert gov.current == 1 and blas() == {1}
        for _ in range(3):
            gov.tick()
        assert gov.current == 2 and blas() == {2}


def test_the_governor_sees_a_real_busy_process():
    import time
    with runtime.blas_threads(2):
        gov = runtime.ThreadGovernor(2, every=1)
        with bench.BusyMachine(1):
            time.sleep(0.5)  # the busy process's CPU time shows in /proc/stat
            gov.tick()
        assert gov.current == 1


def test_a_measurement_longer_than_a_minute_is_refused_before_any_work(capsys):
    import pytest

    from mlp_lm import cli
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: bench.main(["--seconds", "1e30"]), "bench")
    err = capsys.readouterr()
    assert e.value.code == 2 and err.out == "" and "use at most 60" in err.err.strip()


def test_a_word_list_with_more_symbols_than_the_benchs_model_is_one_line(tmp_path, capsys):
    import pytest

    from mlp_lm import cli
    data = tmp_path / "cjk.txt"
    data.write_text("\n".join(chr(0x4E00 + i) * 3 for i in range(40)) + "\n")  # 40 symbols: an IndexError
    with pytest.raises(SystemExit) as e:
        cli.run(lambda: bench.main(["--quick", "--no-load", "--no-torch", "--data", str(data)]), "bench")
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "has 40 symbols" in err and "room for 26" in err


def test_a_busy_process_stops_when_the_bench_is_killed_outright():
    # SIGKILL gives the bench no chance to stop its busy processes: they notice it is gone.
    import os
    import signal
    import subprocess
    import sys
    import time

    from .conftest import ROOT
    script = ("import time; from mlp_lm.bench import BusyMachine; b = BusyMachine(1).__enter__(); "
              "print(b.procs[0].pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    pid = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def state():  # R running, Z ended (a zombie, until whoever adopted it reaps it), or gone
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return "gone"
    try:
        deadline = time.monotonic() + 10
        while state() not in ("Z", "X", "gone") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state() in ("Z", "X", "gone")
    finally:
        if state() not in ("Z", "X", "gone"):
            os.kill(pid, signal.SIGKILL)


def _spin_setting(*, as_command, env_value=None, numpy_first=False):
    """OPENBLAS_THREAD_TIMEOUT as numpy's OpenBLAS would see it after importing mlp_lm, in a fresh
    process, imported the way `python -m mlp_lm.<command>` imports it (argv[0] is "-m", and the command
    line names mlp_lm's module) or not,
    and with numpy loaded before mlp_lm (too late to tell OpenBLAS anything) or after."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if env_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = env_value
    code = ("import sys\n" + ("import numpy\n" if numpy_first else "")
            + ("sys.argv[:1] = ['-m']; sys.orig_argv = [sys.executable, '-m', 'mlp_lm.train']\n" if as_command else "")
            + "import mlp_lm, os\nimport numpy\nprint(repr(os.environ.get('OPENBLAS_THREAD_TIMEOUT')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_commands_let_openblas_workers_sleep_soon_and_keep_a_users_choice():
    # The commands shorten OpenBLAS's spin before numpy loads it; a user's own value wins, and
    # importing the library from a program leaves the environment alone.
    assert _spin_setting(as_command=True) == "'18'"
    assert _spin_setting(as_command=True, env_value="25") == "'25'"
    assert _spin_setting(as_command=True, env_value="") == "'18'"  # empty is OpenBLAS's default, not a choice
    assert _spin_setting(as_command=False) == "None"
    assert _spin_setting(as_command=True, numpy_first=True) == "None"  # OpenBLAS has read it already
    proc = run_cli("mlp_lm.bench", "--quick", "--seconds", "0.01", "--no-torch", "--no-load", "--items", "1000")
    assert proc.returncode == 0, proc.stderr
    import os
    if "openblas" in proc.stdout.splitlines()[0] and "OPENBLAS_THREAD_TIMEOUT" not in os.environ:  # as given
        assert "OPENBLAS_THREAD_TIMEOUT=18" in proc.stdout.splitlines()[0]


def test_the_bench_header_names_the_kernels_the_environment_asks_openblas_for():
    # A machine of ours set OPENBLAS_CORETYPE=Haswell for every process: AVX2 kernels on an AVX-512 processor,
    # the step 15% to 25% slower, and the header said "(Haswell)" with nothing to tell why.
    import os
    import subprocess
    import sys
    code = "from mlp_lm import runtime; print(runtime.blas_description())"
    lines = {}
    for value in ("Haswell", None):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
        env.update({"OPENBLAS_CORETYPE": value} if value else {})
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        lines[value] = proc.stdout.strip()
    if not lines[None].startswith("openblas"):
        pytest.skip(f"numpy's BLAS is not OpenBLAS here: {lines[None]}")
    assert lines["Haswell"].endswith(", OPENBLAS_CORETYPE=Haswell") and "(Haswell)" in lines["Haswell"]
    assert "OPENBLAS_CORETYPE" not in lines[None]


def test_importing_any_module_leaves_a_programs_environment_as_it_was():
    # From a hostile pass: threadpoolctl, imported by runtime.py, sets KMP_DUPLICATE_LIB_OK in os.environ,
    # which every subprocess of the host program then inherits; it told Intel's OpenMP not to abort on a
    # second copy of itself. A library's import changes nothing of its host's, nor does a command's.
    import os
    import pkgutil
    import subprocess
    import sys
    import mlp_lm
    modules = sorted(m.name for m in pkgutil.iter_modules(mlp_lm.__path__) if not m.name.startswith("_"))
    assert {"runtime", "train", "data", "loop", "model"} <= set(modules)
    code = ("import importlib, os, sys\nbefore = dict(os.environ)\n"
            f"for m in {modules!r}: importlib.import_module('mlp_lm.' + m)\n"
            "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}\n"
            "print(sorted(changed))")
    env = {k: v for k, v in os.environ.items() if k != "KMP_DUPLICATE_LIB_OK"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**env, "KMP_DUPLICATE_LIB_OK": "FALSE"})  # a user's own value stays
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_cpu_description_names_the_processor_and_its_widest_vectors():
    first = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 avx512f avx512bw\n\n"
    second = "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n"
    assert runtime.cpu_description(first + second) == "AMD EPYC, AVX-512"  # the first processor's
    assert runtime.cpu_description("model name : Xeon\nflags : sse2 avx avx2 fma\n") == "Xeon, AVX2"
    assert runtime.cpu_description("flags : neon\n") == ""  # no name, no x86 vectors: nothing to say
    assert runtime.cpu_description("") == ""


def test_no_torch_does_not_even_import_it(monkeypatch, capsys):
    def imported():
        raise AssertionError("--no-torch looked for torch")
    monkeypatch.setattr(bench, "torch_available", imported)
    assert bench.main(["--quick", "--no-load", "--no-torch", "--seconds", "0.01", "--items", "1000"]) in (0, None)
    assert "training step, idle machine (--no-torch: no comparison)" in capsys.readouterr().out  # not "torch not installed"


@pytest.mark.skipif((3, 13) <= sys.version_info < (3, 13, 3), reason="CPython 3.13.0 to 3.13.2 raise SystemError for "
                    "any missing module attribute once the current directory is gone (CPython gh-130932)")
def test_a_current_directory_deleted_under_the_bench_is_one_line(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import os, runpy, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
                             "sys.argv = ['bench', '--quick', '--no-load', '--seconds', '0.01', '--items', '1000']; "
                             "runpy.run_module('mlp_lm.bench', run_name='__main__')", str(gone)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    if importlib.util.find_spec("torch") is None:  # nothing to load: the bench runs without it
        assert proc.returncode == 0 and "training step, idle machine" in out, err
        return
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err  # not torch's own fatal error
    assert "current directory no longer exists" in err and "--no-torch" in err


def test_a_stop_signal_while_the_busy_processes_start_stops_every_one(monkeypatch):
    import signal

    import pytest
    machine = bench.BusyMachine(2)
    real_start = machine.procs[0].start

    def start_then_signal():
        real_start()
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the first one is forked
    monkeypatch.setattr(machine.procs[0], "start", start_then_signal)
    with pytest.raises(KeyboardInterrupt):
        with machine:
            pytest.fail("the block ran after a stop signal")
    assert machine.procs[0].pid is not None and not any(p.is_alive() for p in machine.procs)  # none left spinning


@pytest.mark.parametrize("errno_, strerror, advice", [
    (28, "No space left on device", "free some space there, set TMPDIR to another folder, or pass fewer --items"),
    # under `ulimit -f 1` the advice was to free space or move TMPDIR, neither of which helps
    (27, "File too large", "raise this shell's file size limit (ulimit -f), or pass fewer --items"),
])
def test_a_temporary_directory_that_cannot_take_the_word_list_is_named(errno_, strerror, advice, monkeypatch):
    # From hostile testers: with TMPDIR full, the bench said "cannot write the output", blaming stdout.
    import tempfile
    from mlp_lm.cli import UsageError

    def fails(file, n, seed=0, max_len=64):
        raise OSError(errno_, strerror)
    monkeypatch.setattr(scale, "write_items", fails)
    with pytest.raises(UsageError) as e:
        scale.data_at_scale(20)
    assert f"in the temporary directory {tempfile.gettempdir()}: {strerror}; {advice}" in str(e.value)


def test_no_usable_temporary_directory_at_all_is_named_too(monkeypatch):
    # From a hostile tester: under `ulimit -f 0` no candidate folder takes tempfile's test file, and
    # TemporaryDirectory() itself failed outside the check above ("cannot write the output").
    import tempfile
    from mlp_lm.cli import UsageError

    def none_usable(*args, **kwargs):
        raise FileNotFoundError(2, "No usable temporary directory found in ['/tmp']")
    monkeypatch.setattr(tempfile, "TemporaryFile", none_usable)
    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(UsageError) as e:
        scale.data_at_scale(20)
    assert "in a temporary directory: No usable temporary directory found" in str(e.value)
    assert "set TMPDIR" in str(e.value)


def test_products_alone_leave_torchs_threads_as_they_were():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    ours, theirs = bench.product_seconds(32, 0.001, True)
    assert ours > 0 and theirs > 0 and torch.get_num_threads() == threads
    assert bench.product_seconds(32, 0.001, False)[1] is None


def test_data_at_scale_too_big_for_the_machine_is_refused_before_any_measurement(monkeypatch, capsys):
    # From a hostile pass: --items 100000000 (the most it takes) ran the whole bench, then failed in a
    # 26 GB array while writing the file, with no word of --items
    from mlp_lm import runtime
    monkeypatch.setattr(runtime, "available_memory", lambda: 1 << 30)
    with pytest.raises(runtime.NotEnoughMemory, match=r"1,000,000 generated items.*1.0 GiB available; pass fewer --items"):
        bench.main(["--quick", "--no-torch", "--no-load", "--items", "1000000"])
    assert capsys.readouterr().out == ""  # before the first measurement
    assert scale.memory_needed(1_000_000) > 1 << 30 > scale.memory_needed(100_000)


def test_the_bound_on_writing_the_generated_file_holds(tmp_path):
    import tracemalloc
    n = 30_000
    tracemalloc.start()
    try:
        scale.write_items(tmp_path / "items.txt", n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    letters = (tmp_path / "items.txt").stat().st_size - n
    assert peak <= scale.write_bytes(n, letters), (peak, scale.write_bytes(n, letters))
    assert letters <= n * 65 // 2 + 6 * 64 * int(n ** 0.5) + 64  # memory_needed's count of the letters


def _children(pid):
    """The pids of the processes whose parent is pid (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid):
    """Whether pid is a process that has not ended (a zombie has, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


LOADING_FOREVER = "print('loading', flush=True)\nimport time\ntime.sleep(60)\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_stopped_bench_stops_the_data_at_scales_process_and_leaves_no_file(monkeypatch, tmp_path):
    # From a hostile tester: after a SIGTERM the bench's loader of 3,000,000 items ran on for 11 to 21 s, at
    # 1.35 GB, and after a SIGKILL it ran on and its 32 MB file stayed in the temporary directory.
    import signal
    import tempfile

    monkeypatch.setattr(scale, "LOAD", scale.WITH_THE_BENCH + LOADING_FOREVER)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def stop(signum, frame):
        raise KeyboardInterrupt
    others = _children(os.getpid())  # this test process's own (the fork server of conftest.run_cli)
    previous = signal.signal(signal.SIGALRM, stop)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            scale.data_at_scale(20)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert _children(os.getpid()) == others and list(tmp_path.iterdir()) == []

    # Stopped outright: nothing of it can run, so the process must end by itself, and the file have no name.
    code = (f"from mlp_lm import scale\nscale.LOAD = scale.WITH_THE_BENCH + {LOADING_FOREVER!r}\n"
            f"scale.data_at_scale(20)\n")
    bench = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 30
        while not _children(bench.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        (loader,) = _children(bench.pid)
        assert list(tmp_path.iterdir()) == []
        bench.kill()
        bench.wait()
        deadline = time.monotonic() + 10
        while _running(loader) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(loader)
    finally:
        bench.kill()
        bench.wait()
