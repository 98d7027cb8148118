"""The table of docs/results.md, from the runs' metrics.json: which runs it holds (CONFIGS),
each run's metrics read and checked (against its model.npz too), the steps they were trained for, and the Markdown.
results.py, the command, trains the runs and calls this."""
import functools
import json
import math
import shlex
from dataclasses import asdict
from pathlib import Path

from . import checkpoint, metrics, model
from .atomic import CheckpointError
from .cli import UsageError
from .data import SPLIT_SEED, load_splits
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
    done = {name: s for name, s in done.items() if _is_whole(s)}  # older metrics.json: no count, trust it
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
            return f"was trained with {key} {got!r}, where the table's run {name} has {value!r}"
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


def read_metrics(path):
    """A finished, evaluated run's metrics.json, or a one-line error saying why it is not one."""
    path = Path(path)
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
        raise UsageError(f"{path} is not a finished, evaluated run (no {', '.join(missing)}); retrain that run")
    config_keys = ("block_size", "n_embd", "n_hidden")
    wrong = [k for k in numbers if not _is_number(m[k])] + [k for k in ("params",) if not _is_whole(m[k])]
    if not isinstance(m["config"], dict) or any(not _is_whole(m["config"].get(k)) for k in config_keys) \
            or not isinstance(m["config"].get("data"), str):
        wrong.append("config")
    if wrong:
        raise UsageError(f"{path} has {', '.join(wrong)} of the wrong type; retrain that run")
    impossible = [k for k in numbers if m[k] < 0] + (["params"] if m["params"] < 1 else [])
    if impossible:  # a negative log likelihood (or time) is no run's: an edited or damaged file
        raise UsageError(f"{path} has {', '.join(impossible)} below {'1' if impossible == ['params'] else '0'}, "
                         f"which no run gives; retrain that run")
    done, planned = m.get("steps"), m["config"].get("steps")
    if m.get("diverged") is True:  # what train kept of a run that blew up: --resume would replay the blow-up
        step = f" (its step {done:,})" if _is_whole(done) else ""
        raise UsageError(f"{path} is what was kept of a run that diverged{step}; retrain that run")
    if "steps" in m and not (_is_whole(done) and done >= 0):
        raise UsageError(f"{path} has steps of the wrong type; retrain that run")
    since = m.get("train_seconds_from_step")  # a run resumed from a state that did not keep its time
    if since is not None and not (_is_whole(since) and since >= 2 and (not _is_whole(done) or since <= done + 1)):
        raise UsageError(f"{path} has a train_seconds_from_step that is not a step after the first of its run; "
                         f"retrain that run")
    rate, seconds = m.get("steps_per_second"), m["train_seconds"]  # of the last stretch trained: at most `done`
    if _is_whole(done) and _is_number(rate) and rate * seconds > done + 0.05 * seconds + 0.001 * rate + 1:  # + rounding
        raise UsageError(f"{path} says the run trained {rate:,.6g} steps a second for {seconds:,.4g} s, more "
                         f"than the {done:,} steps it took; retrain that run")
    if _is_whole(done) and _is_whole(planned) and done > planned:  # no run takes more steps than it plans
        raise UsageError(f"{path} says the run took {done:,} steps of the {planned:,} it was to take, which no run "
                         f"does; retrain that run")
    if _is_whole(done) and _is_whole(planned) and done < planned:  # stopped early, then evaluated
        raise UsageError(f"{path} is of a run stopped at step {done:,} of {planned:,}: finish it with "
                         f"python -m mlp_lm.train --resume --out {shlex.quote(str(path.parent))}, or retrain it")
    return m


def seconds_cell(m):
    """The training time of a run, over every command that trained it; of the steps from N on only, for one
    resumed from a state saved before states kept their time (metrics' train_seconds_from_step)."""
    since, steps = m.get("train_seconds_from_step"), m.get("steps")
    if not (_is_whole(since) and since > 1):
        return f"{m['train_seconds']:.1f}"
    if _is_whole(steps) and since > steps:  # resumed only to be evaluated: none of its steps was timed
        return "not timed"
    return f"{m['train_seconds']:.1f} (steps {since:,} on)"


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_whole(v):  # and one a run could have written: 10**400 is no count of steps or parameters
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63


def _vocab_size(m):
    V = m["config"].get("vocab_size")
    return V if _is_whole(V) and V > 1 else 27


def loss_cells(m):
    dev = m["dev_loss"]
    return (f"{m.get('train_loss', float('nan')):.4f} | {dev:.4f} | {m['test_loss']:.4f} | "
            f"{metrics.perplexity(dev):.2f} | {metrics.bits_per_char(dev):.3f}")


def render(rows, ngrams, mixes, machine, steps=None):
    """The Markdown tables: MLP runs [(name, what, metrics)], n-grams, mixtures {name: result}.
    steps: None for the documented budget, N for N steps each, or {name: steps} (trained_steps)."""
    if isinstance(steps, dict):
        budget = ("steps as trained: " + ", ".join(f"{name} {s:,}" for name, s in steps.items()) +
                  "; not the documented results")
    elif steps:
        budget = f"{steps:,} steps each (a quick look, not the documented results)"
    else:
        budget = "200,000 steps of batch 32, lr 0.1 then 0.01, seed 42, float32, unless the flags say otherwise"
    out = [
        "# Results",
        "",
        "<!-- generated by `python -m mlp_lm.results`; edit that, not this file -->",
        "",
        "Mean negative log likelihood (nats) on the lecture's split of `data/names.txt`, "
        f"each run `python -m mlp_lm.train` with the flags shown and the defaults otherwise ({budget}). "
        "Lower is better; ln 27 = 3.296 is a uniform guess. Perplexity and bits per character are of the dev loss.",
        "",
        "| run | what it shows | flags | T | E | H | params | train | dev | test | dev perplexity | dev bits/char | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, what, m in rows:
        c = m["config"]
        flags = " ".join(CONFIGS[name][1]) if name in CONFIGS else ""
        flags = f"`{flags}`" if flags else "(defaults)"
        out.append(f"| {name} | {what} | {flags} | {c['block_size']} | {c['n_embd']} | {c['n_hidden']} | "
                   f"{m['params']:,} | {loss_cells(m)} | {seconds_cell(m)} |")
    out += ["", f"Seconds are the training loop alone, on {machine}.", ""]
    futile = [(name, _vocab_size(m)) for name, _, m in rows if m["dev_loss"] >= math.log(_vocab_size(m))]
    if futile:  # a run that got nowhere is in the table as it is, and said to be so
        V = futile[0][1]
        out += [f"**Got nowhere:** {', '.join(name for name, _ in futile)}: the dev loss is no better than a "
                f"uniform guess (ln {V} = {math.log(V):.3f}); "
                f"{'these runs need' if len(futile) > 1 else 'this run needs'} more steps.", ""]
    if ngrams:
        out += ["## Counting: n-gram models", "",
                "The same examples, counted (`python -m mlp_lm.ngram --n N --smoothing kn|add-k`). "
                "Add-k's k is chosen on dev from a grid; Kneser-Ney is interpolated modified Kneser-Ney "
                "(Chen & Goodman 1998) down to a uniform distribution.", "",
                "| model | n | k | train | dev | test | dev perplexity | dev bits/char |",
                "|---|---|---|---|---|---|---|---|"]
        for (smoothing, n), m in sorted(ngrams.items(), key=lambda kv: (kv[0][0] != "add-k", kv[0][1])):
            k = f"{m['k']:.3g}" if "k" in m else ""
            out.append(f"| {smoothing} | {n} | {k} | {loss_cells(m)} |")
        out.append("")
    if mixes:
        out += [f"## Mixtures with the Kneser-Ney {MIX_ORDER}-gram", "",
                "As in the paper (`python -m mlp_lm.evaluate --checkpoint RUN/model.npz --mix-ngram 6`): lambda, the MLP's weight, is "
                "chosen on dev and the mixture is then evaluated on test. Linear: lambda p_mlp + (1 - lambda) "
                "p_ngram; log-linear: p_mlp^lambda p_ngram^(1 - lambda), renormalised.", "",
                "| run | MLP dev | MLP test | n-gram dev | n-gram test | linear lambda | linear dev | linear test "
                "| log-linear lambda | log-linear dev | log-linear test |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in mixes.items():
            out.append(f"| {name} | {r['mlp']['dev_loss']:.4f} | {r['mlp']['test_loss']:.4f} | "
                       f"{r['ngram']['dev_loss']:.4f} | {r['ngram']['test_loss']:.4f} | {r['lambda']:.3f} | "
                       f"{r['mix']['dev_loss']:.4f} | {r['mix']['test_loss']:.4f} | {r['lambda_loglinear']:.3f} | "
                       f"{r['mix_loglinear']['dev_loss']:.4f} | {r['mix_loglinear']['test_loss']:.4f} |")
        out.append("")
    return "\n".join(out)


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


def read_run(name, runs, data_sha256):
    """The metrics of the table's run `name` in `runs`, checked to be that run (results_table.run_problem)
    and the numbers of the model.npz beside them: the same configuration and parameter count, and its
    train, dev and test losses, evaluated again on the default word list (its sha256 is the run's)."""
    path = runs / name / "metrics.json"
    m = read_metrics(path)
    problem = run_problem(name, m, data_sha256)
    if not problem:
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
                f"{shlex.quote(str(path))} says why)")
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
    missing = [n for n in names if not (runs / n / "metrics.json").exists()]
    if missing:
        raise UsageError(f"{runs} has no {', '.join(missing)} run{'s' if len(missing) > 1 else ''} (never trained "
                         f"there); train {'them' if len(missing) > 1 else 'it'} with python -m mlp_lm.results --only "
                         f"{','.join(missing)} (with this command's --runs and --steps, if any), or leave out "
                         f"--only and --no-train to train every run")
    return {name: read_run(name, runs, data_sha256) for name in names}
