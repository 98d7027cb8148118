"""The runs of docs/results.md's table: which runs it holds (CONFIGS), each run's metrics.json read and
checked (against its model.npz too), and the steps they were trained for; results_markdown.py writes the
table itself. results.py, the command, trains the runs and calls these."""
import functools
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

from . import checkpoint, model, shell
from .atomic import CheckpointError
from .cli import UsageError
from .data import SPLIT_SEED, load_splits
from .params import param_count
from .resume import stopped_beside
from .runs import files_in_the_way, kept_apart, resume_command
from .train_flags import parse_args
from .config import PRESETS, Config
from .wordfile import DEFAULT_DATA, digest, in_checkout

# name -> (what it shows, train flags). The order is the table's.
CONFIGS = {
    "lecture": ("part 2 as in the lecture: plain normal init", ["--init", "lecture"]),
    "scaled": ("the default: the part 3 init fix", []),
    "bigram-context": ("one character of context (T=1), as the bigram sees", ["--block-size", "1"]),
    "embd2": ("2-D embeddings, for the picture", ["--n-embd", "2", "--n-hidden", "100"]),
    "wider": ("more context and bigger embeddings", ["--block-size", "4", "--n-embd", "16", "--n-hidden", "300"]),
    "direct": ("the paper's direct connections", ["--direct"]),
    "decay": ("the paper's weight decay", ["--weight-decay", "1e-4"]),
    "paper": ("direct connections, weight decay and the paper's 1/(1 + r t) schedule",
              ["--direct", "--weight-decay", "1e-4", "--schedule", "inverse", "--decay-rate", "4.5e-5"]),
    "best": ("the strongest recipe we found (docs/best.md)", ["--preset", "best"]),
}
MIX_ORDER = 6  # the n-gram they are mixed with: Kneser-Ney's best order on names


def standard_steps(name):
    """The steps the run `name` trains for with its flags alone: its preset's, else train's default
    (no run in CONFIGS sets --steps itself)."""
    flags = CONFIGS[name][1]
    preset = flags[flags.index("--preset") + 1] if "--preset" in flags else "lecture"
    return PRESETS[preset].get("steps", Config.steps)


def trained_steps(rows):
    """None when every run trained the steps its flags give (the documented budget); else the one
    number of steps they all trained, or {name: steps} when they differ."""
    done = {name: m.get("steps", m["config"].get("steps")) for name, _, m in rows}
    done = {name: s for name, s in done.items() if json_int(s)}  # older metrics.json: no count, trust it
    if all(s == standard_steps(name) for name, s in done.items()):
        return None
    return done.popitem()[1] if len(set(done.values())) == 1 else done


# The file is compared by its bytes, the table states each run's steps, and eval_every only adds dev losses to the log
NOT_COMPARED = ("data", "steps", "eval_every")


def run_problem(name, m, data_sha256):
    """Why the finished run `m` (its metrics) is not the table's run `name`, or None: trained on other
    data than `data_sha256` (the default word list's), or with settings other than CONFIGS gives it.
    Its steps may differ (--steps): the table says what each run was trained for."""
    config = m["config"]
    if "data_sha256" not in config:
        return "does not record which data it was trained on"
    if config["data_sha256"] != data_sha256:
        return f"was trained on other data than the default {DEFAULT_DATA}"
    wanted = asdict(parse_args(CONFIGS[name][1]).cfg)
    for key, value in wanted.items():
        # a setting a run does not record is one added since it was trained: it ran as the default does
        got = config.get(key, getattr(Config, key))
        if key not in NOT_COMPARED and got != value:
            said = f"was trained with {key} {got!r}" if key in config else \
                f"does not record its {key}, so it was trained with the default {got!r}"
            return f"{said}, where the table's run {name} has {value!r}"
    sizes = [config.get(k) for k in ("vocab_size", "block_size", "n_embd", "n_hidden")]
    if all(json_int(v) and v >= 1 for v in sizes) and json_int(m.get("params")):  # before its model is read
        count = param_count(*sizes, direct=config.get("direct") is True)
        if m["params"] != count:
            return f"records {m['params']:,} parameters, where its configuration has {count:,}"
    return None


def stranger(name, out):
    """Why the run in the folder `out` is not one results could have trained as the table's run `name`
    (one trained there by hand, say), or None; from its metrics.json, which every save writes."""
    try:
        m = json.loads((Path(out) / "metrics.json").read_text())
    except (OSError, ValueError, RecursionError):  # none there, or not JSON (or nested past Python's depth)
        m = None
    if not (isinstance(m, dict) and isinstance(m.get("config"), dict)):
        return "has no metrics.json of a run"
    return run_problem(name, m, digest(in_checkout(DEFAULT_DATA)))


def check_replaceable(name, out):
    """UsageError if retraining the table's run `name` in the folder `out` would remove what results did not
    put there: the files of a run that is not a results run (a user's loss.csv, a run trained there by hand),
    or a run in a side folder (interrupted/, unconverged-2/, ...: aside.set_aside moves them with the earlier
    run), which only a training by hand leaves there, finished or not: results' own retraining starts in an
    emptied folder."""
    held = files_in_the_way(out)
    if held and (problem := stranger(name, out)):
        raise UsageError(f"{out} holds {', '.join(held)}, and not a run this command trained there (it {problem}); "
                         f"retraining {name} would remove them: move them away, or pass another --runs")
    sides = sorted(side for side in (Path(out).iterdir() if Path(out).is_dir() else ())
                   if kept_apart(side.name) and side.is_dir() and not side.is_symlink()
                   and os.path.lexists(side / "model.npz"))
    if sides:
        resumable = stopped_beside(out)  # said first: the one a user is likeliest to want back
        side = resumable if resumable in sides else sides[0]
        raise UsageError(f"{side} holds a run trained there by hand, which retraining {name} would remove with the "
                         f"earlier run: move it out of {out} first" + (
                             " (it is stopped part-way: python -m mlp_lm.train --resume --out, given the folder "
                             "where you move it, finishes it)" if side == resumable else ""))


def stopped(path, done, planned):
    """The refusal of the metrics.json at `path` of a run stopped at step `done` of `planned` (either not a
    count: a run stopped part-way): it says how to finish the run."""
    at = f"at step {done:,} of {planned:,}" if json_int(done) and json_int(planned) else "part-way"
    return UsageError(f"{path} is of a run stopped {at}: finish it with {resume_command(path.parent)}, or retrain it")


def read_metrics(path):
    """A finished, evaluated run's metrics.json, or a one-line error saying why it is not one."""
    path = Path(path)
    if path.is_symlink() and not path.exists():  # not "never trained there": the run's other files may be
        raise UsageError(f"{path} is a link to nothing (a missing file, or links in a loop); put back the file it "
                         f"links to, or retrain that run")
    try:
        if path.exists() and not path.is_file():  # a FIFO (or a link to one) would block the read forever
            raise UsageError(f"{path} is not a regular file; retrain that run")
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path} is missing: the run {path.parent.name} was never trained there; train it with "
                         f"python -m mlp_lm.results --only {path.parent.name} (with this command's --runs and "
                         f"--steps, if any)") from None
    except (OSError, ValueError, RecursionError) as e:
        raise UsageError(f"cannot read {path} ({type(e).__name__}); retrain that run") from None
    numbers = ("dev_loss", "test_loss", "train_loss", "train_seconds")
    missing = [k for k in ("config", *numbers, "params") if not isinstance(m, dict) or k not in m]
    if missing:
        if isinstance(m, dict) and m.get("interrupted") is True:  # stopped, unevaluated: finished, not thrown away
            raise stopped(path, m.get("steps"), (m.get("config") if isinstance(m.get("config"), dict) else {}).get("steps"))
        raise UsageError(f"{path} is not a finished, evaluated run (no {', '.join(missing)}); retrain that run")
    config_keys = ("block_size", "n_embd", "n_hidden")
    wrong = [k for k in numbers if not _is_number(m[k])] + [k for k in ("params",) if not json_int(m[k])]
    if not isinstance(m["config"], dict) or any(not json_int(m["config"].get(k)) for k in config_keys) \
            or not isinstance(m["config"].get("data"), str):
        wrong.append("config")
    wrong += [k for k in ("diverged", "evaluated", "interrupted") if k in m and not isinstance(m[k], bool)]
    wrong += [k for k in ("steps_per_second",) if m.get(k) is not None and not _is_number(m[k])]  # or null: untimed
    if wrong:
        raise UsageError(f"{path} has {', '.join(wrong)} of the wrong type; retrain that run")
    impossible = [k for k in (*numbers, "steps_per_second") if (m.get(k) or 0) < 0] + (["params"] if m["params"] < 1 else [])
    if impossible:  # a negative log likelihood (or time) is no run's: an edited or damaged file
        raise UsageError(f"{path} has {', '.join(impossible)} below {'1' if impossible == ['params'] else '0'}, "
                         f"which no run gives; retrain that run")
    done, planned = m.get("steps"), m["config"].get("steps")
    if m.get("diverged") is True:  # what train kept of a run that blew up: --resume would replay the blow-up
        step = f" (its step {done:,})" if json_int(done) else ""
        raise UsageError(f"{path} is what was kept of a run that diverged{step}; retrain that run")
    if "steps" in m and not (json_int(done) and done >= 0):
        raise UsageError(f"{path} has steps of the wrong type; retrain that run")
    since = m.get("train_seconds_from_step")  # a run resumed from a state that did not keep its time
    if since is not None and not (json_int(since) and since >= 2 and (not json_int(done) or since <= done + 1)):
        raise UsageError(f"{path} has a train_seconds_from_step that is not a step after the first of its run; "
                         f"retrain that run")
    rate, seconds = m.get("steps_per_second"), m["train_seconds"]  # of the last stretch trained: at most `done`
    if json_int(done) and _is_number(rate) and rate * seconds > done + 0.05 * seconds + 0.001 * rate + 1:  # + rounding
        raise UsageError(f"{path} says the run trained {rate:,.6g} steps a second for {seconds:,.4g} s, more "
                         f"than the {done:,} steps it took; retrain that run")
    if json_int(done) and json_int(planned) and done > planned:  # no run takes more steps than it plans
        raise UsageError(f"{path} says the run took {done:,} steps of the {planned:,} it was to take, which no run "
                         f"does; retrain that run")
    if json_int(done) and json_int(planned) and done < planned:  # stopped early, then evaluated
        raise stopped(path, done, planned)
    if m.get("evaluated") is False:  # its losses are not its model's: train writes none for such a run
        raise UsageError(f"{path} says the run was not evaluated, yet has losses; retrain that run")
    return m


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def json_int(v):  # a whole number, and one a run could have written: 10**400 is no count of steps or parameters
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63


def diverged(out):
    """Whether the run saved in `out` is what train keeps of a run that diverged (its metrics say so)."""
    return _saved_metrics(out).get("diverged") is True


def complete(out):
    """Whether the run saved in `out` finished all its steps and was evaluated (its metrics say so)."""
    m = _saved_metrics(out)
    return m.get("evaluated") is True and m.get("interrupted") is False


def _saved_metrics(out):
    """The metrics.json in `out` as a dict, or {} when there is none that reads as one."""
    try:
        m = json.loads((Path(out) / "metrics.json").read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return m if isinstance(m, dict) else {}


def read_run(name, runs, data_sha256, *, evaluate=True):
    """The metrics of the table's run `name` in `runs`, checked to be that run (results_table.run_problem)
    and (unless evaluate=False) the numbers of the model.npz beside them: the same configuration and
    parameter count, and its train, dev and test losses, evaluated again on the default word list (its
    sha256 is the run's)."""
    path = runs / name / "metrics.json"
    m = read_metrics(path)
    problem = run_problem(name, m, data_sha256)
    if not problem and evaluate:
        problem = model_problem(path.parent / "model.npz", m)
    if problem:
        raise UsageError(f"the run in {path.parent} {problem}; retrain it with python -m mlp_lm.results --only "
                         f"{name} (with this command's --runs and --steps, if any)")
    return m


def model_problem(path, m):
    """Why the model at `path` is not the run whose metrics are `m`, or None."""
    try:
        params, _, config = checkpoint.load(path)
    except CheckpointError:
        return (f"has no model.npz that loads beside its metrics.json (python -m mlp_lm.evaluate --checkpoint "
                f"{shell.path(path)} says why)")
    if {k: v for k, v in config.items() if k != "format"} != {k: v for k, v in m["config"].items() if k != "format"} \
            or model.num_params(params) != m["params"]:
        return "has a model.npz of another run than its metrics.json (another configuration or size)"
    return loss_problem(params, config, m)


def loss_problem(params, config, m):
    """Why the losses in metrics `m` are not those of `params` (a model of `config`), or None."""
    splits = _splits(config["block_size"], config.get("split_seed", SPLIT_SEED))
    for split in ("train", "dev", "test"):
        loss = model.split_loss(params, *getattr(splits, split))
        if not math.isclose(loss, m[f"{split}_loss"], rel_tol=model.REEVALUATION_TOLERANCE):
            return (f"has a model.npz whose {split} loss is {loss:.4f}, not the {m[f'{split}_loss']:.6g} of its "
                    f"metrics.json: the two are not of one run")
    return None


@functools.lru_cache(maxsize=4)
def _splits(block_size, split_seed):
    """The default word list's splits (every run of the table is of it, by its sha256), read once per context."""
    return load_splits(in_checkout(DEFAULT_DATA), block_size, split_seed)


def check_read_back(names, runs, data_sha256):
    """Before any training: every run the table reads back rather than retrains is there, finished,
    and the table's; the missing ones are named together. Returns their metrics, {name: metrics}."""
    missing = [n for n in names if not os.path.lexists(runs / n / "metrics.json")]  # a link to nothing: read_run
    if missing:
        quick = Path(in_checkout("runs/results-quick"))  # where a run with --steps put them, if that was the last
        elsewhere = (f" (a quick run's are in {quick}: --runs {shell.path(quick)} reads them)"
                     if runs == Path(in_checkout("runs/results")) and any((quick / n / "metrics.json").is_file()
                                                                        for n in missing) else "")
        raise UsageError(f"{runs} has no {', '.join(missing)} run{'s' if len(missing) > 1 else ''} (never trained "
                         f"there){elsewhere}; train {'them' if len(missing) > 1 else 'it'} with python -m mlp_lm.results "
                         f"--only {','.join(missing)} (with this command's --runs and --steps, if any), or leave out "
                         f"--only and --no-train to train every run")
    for name in names:  # the quick checks of every run first: a damaged metrics.json waits for no evaluation
        read_run(name, runs, data_sha256, evaluate=False)
    return {name: read_run(name, runs, data_sha256) for name in names}
