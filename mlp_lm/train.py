"""Train the MLP language model on a word list, evaluate it, and sample from it.

    python -m mlp_lm.train                      # the lecture's model on data/names.txt
    python -m mlp_lm.train --lr-sweep           # the lecture's learning-rate search
    python -m mlp_lm.train --data words.txt --steps 50000 --out runs/words

Minibatch SGD on the mean negative log likelihood, with the lecture's schedule:
the learning rate drops tenfold after half the steps. Writes model.npz,
metrics.json and loss.csv to --out (and loss.png and embedding.png when
matplotlib is installed).
"""
import json
import math
import sys
import time
from functools import partial
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import checkpoint, model, plots
from .cli import ArgumentParser, UsageError, non_negative_int, positive_float, positive_int, run
from .data import SPLIT_SEED, load_splits
from .sampling import generate


@dataclass
class Config:
    data: str = "data/names.txt"  # one item per line
    block_size: int = 3  # T: how many previous symbols the model sees
    n_embd: int = 10  # E: size of each symbol's embedding
    n_hidden: int = 200  # H: tanh units in the hidden layer
    init: str = "scaled"  # "scaled" (part 3 fix) or "lecture" (part 2's plain normal)
    steps: int = 200000  # SGD steps
    batch_size: int = 32  # B: examples per step
    lr: float = 0.1  # learning rate for the first half; a tenth of it for the second
    seed: int = 42  # parameters and minibatches
    dtype: str = "float32"  # of parameters and arithmetic
    eval_every: int = 10000  # dev loss every this many steps (0: only at the end)


def parse_args(argv):
    ap = ArgumentParser(prog="python -m mlp_lm.train", description=__doc__.split("\n\n")[0])
    g = ap.add_argument_group("data and output")
    g.add_argument("--data", metavar="PATH", default=Config.data, help="a UTF-8 file with one item per line (default data/names.txt)")
    g.add_argument("--out", metavar="DIR", default=None, help="directory for model.npz and the rest (default runs/<data file stem>)")
    g = ap.add_argument_group("model")
    g.add_argument("--block-size", metavar="T", type=positive_int, default=Config.block_size, help="context length T (default 3)")
    g.add_argument("--n-embd", metavar="E", type=positive_int, default=Config.n_embd, help="embedding size E (default 10)")
    g.add_argument("--n-hidden", metavar="H", type=positive_int, default=Config.n_hidden, help="hidden units H (default 200)")
    g.add_argument("--init", choices=("scaled", "lecture"), default=Config.init,
                   help="scaled: initial loss ~ ln V (default); lecture: plain standard normal, as in part 2")
    g = ap.add_argument_group("optimisation")
    g.add_argument("--steps", metavar="N", type=positive_int, default=None,
                   help="SGD steps (default 200000; 1000 with --lr-sweep)")
    g.add_argument("--batch-size", metavar="B", type=positive_int, default=Config.batch_size, help="minibatch size B (default 32)")
    g.add_argument("--lr", metavar="RATE", type=positive_float, default=Config.lr,
                   help="learning rate, divided by 10 after half the steps (default 0.1)")
    g.add_argument("--seed", metavar="N", type=non_negative_int, default=Config.seed, help="random seed (default 42)")
    g.add_argument("--dtype", choices=("float32", "float64"), default=Config.dtype,
                   help="float32 (default, faster) or float64")
    g = ap.add_argument_group("evaluation")
    g.add_argument("--eval-every", metavar="N", type=non_negative_int, default=Config.eval_every,
                   help="dev loss every N steps (default 10000; 0 turns it off)")
    g.add_argument("--lr-sweep", action="store_true",
                   help="instead of training: raise the rate from 1e-3 to 1 over the run and tabulate the loss")
    return ap.parse_args(argv)


# --- the training loop -------------------------------------------------------

def learning_rate(cfg, step):
    """The lecture's schedule: lr for the first half of the steps, lr/10 after."""
    return cfg.lr if step < cfg.steps // 2 else cfg.lr / 10


class Diverged(Exception):
    """The arithmetic overflowed: the model is junk, not a result."""

    def __init__(self, cfg, where):
        super().__init__(f"training diverged {where}; the learning rate {cfg.lr:g} is too large, "
                         f"try a smaller --lr; nothing was saved")


class Progress:
    """One line updated in place on a terminal; plain periodic lines otherwise.

    The loss shown is the mean minibatch loss since the last line, which is
    steadier than any single minibatch's.
    """

    def __init__(self, total, stream=None):
        self.total, self.stream = total, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = max(1, total // 20)
        self.start = self.last_draw = time.perf_counter()
        self.loss_sum, self.loss_n = 0.0, 0

    def update(self, done, loss, dev=None):
        self.loss_sum += loss
        self.loss_n += 1
        now = time.perf_counter()
        last = done == self.total
        if self.tty:
            due = dev is not None or last or now - self.last_draw > 0.1
        else:
            due = dev is not None or last or done % self.every == 0
        if not due:
            return
        rate = done / max(now - self.start, 1e-9)
        line = f"step {done:>{len(str(self.total))}}/{self.total}  loss {self.loss_sum / self.loss_n:.4f}"
        if dev is not None:
            line += f"  dev {dev:.4f}"
        line += f"  {rate:,.0f} steps/s  ETA {(self.total - done) / rate:.0f}s"
        if self.tty:  # redraw in place; keep the line when it has a dev loss or is the last
            end = "\n" if dev is not None or last else ""
            self.stream.write("\r\033[K" + line + end)
            self.stream.flush()
        else:
            print(line, file=self.stream, flush=True)
        self.last_draw = now
        self.loss_sum, self.loss_n = 0.0, 0


def train(cfg, splits, params):
    """Minibatch SGD. Returns (losses per step, {step: dev loss}, seconds); stops early on Ctrl-C.

    Raises Diverged if the loss or any arithmetic overflows: such a model is junk, not a result.
    """
    Xtr, Ytr = splits.train
    Xdev, Ydev = splits.dev
    rng = np.random.default_rng([cfg.seed, 1])  # minibatches: a stream separate from the init
    losses = np.full(cfg.steps, np.nan)
    devs = {}
    progress = Progress(cfg.steps)
    t0 = time.perf_counter()
    done = 0  # completed steps
    try:
        with np.errstate(over="raise", invalid="raise"):  # overflow or NaN raises FloatingPointError
            for step in range(cfg.steps):
                ix = rng.integers(0, len(Ytr), size=cfg.batch_size)  # (B,)
                loss, grads = model.loss_and_grads(params, Xtr[ix], Ytr[ix])
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss {loss}")
                lr = learning_rate(cfg, step)
                for k in params:
                    params[k] -= lr * grads[k]
                losses[step] = loss
                done = step + 1
                dev = None
                if cfg.eval_every and done % cfg.eval_every == 0:
                    dev = devs[done] = model.split_loss(params, Xdev, Ydev)
                progress.update(done, loss, dev)
    except KeyboardInterrupt:
        print(f"\ninterrupted after {done} steps: saving the model as it is", file=sys.stderr)
    except FloatingPointError as e:
        raise Diverged(cfg, f"at step {done + 1} ({e})") from None
    return losses[:done], devs, time.perf_counter() - t0


def lr_sweep(cfg, splits, params):
    """The lecture's search: one step at each of `steps` rates spaced evenly in exponent from 1e-3 to 1."""
    Xtr, Ytr = splits.train
    rng = np.random.default_rng([cfg.seed, 1])
    lre = np.linspace(-3, 0, cfg.steps)  # exponents
    losses = np.full(cfg.steps, np.nan)
    with np.errstate(over="raise", invalid="raise"):
        for step, e in enumerate(lre):
            ix = rng.integers(0, len(Ytr), size=cfg.batch_size)
            try:
                loss, grads = model.loss_and_grads(params, Xtr[ix], Ytr[ix])
                if not math.isfinite(loss):
                    break
                losses[step] = loss
                for k in params:
                    params[k] -= 10**e * grads[k]
            except FloatingPointError:
                break  # the rate is past blowing up: the remaining rates stay NaN in the table
    return lre, losses


def sweep_table(lre, losses, n_bins=12):
    """Rows of (exponent range, rate at its centre, mean loss) and the suggested rate."""
    edges = np.linspace(-3, 0, n_bins + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (lre >= lo) & ((lre < hi) if hi < 0 else (lre <= hi))
        vals = losses[sel]
        mean = float(np.mean(vals)) if vals.size and np.all(np.isfinite(vals)) else math.nan
        rows.append((lo, hi, 10 ** ((lo + hi) / 2), mean))
    finite = [r for r in rows if math.isfinite(r[3])]
    best = min(finite, key=lambda r: r[3]) if finite else None
    return rows, best


# --- outputs ---------------------------------------------------------------

def write_loss_csv(path, losses, devs):
    lines = ["step,train_loss,dev_loss"]
    lines += [f"{i + 1},{loss:.6f},{devs[i + 1]:.6f}" if i + 1 in devs else f"{i + 1},{loss:.6f},"
              for i, loss in enumerate(losses)]
    Path(path).write_text("\n".join(lines) + "\n")


def prepare_out(out):
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to output directory {out}: {e.strerror}; pass a writable --out") from None
    return out


def main(argv=None):
    args = parse_args(argv)
    steps = args.steps or (1000 if args.lr_sweep else Config.steps)
    cfg = Config(data=args.data, block_size=args.block_size, n_embd=args.n_embd, n_hidden=args.n_hidden,
                 init=args.init, steps=steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                 dtype=args.dtype, eval_every=args.eval_every)
    splits = load_splits(cfg.data, cfg.block_size)
    out = prepare_out(args.out or Path("runs") / Path(cfg.data).stem)
    V = len(splits.vocab)
    params = model.init_params(V, cfg.block_size, cfg.n_embd, cfg.n_hidden,
                               seed=cfg.seed, init=cfg.init, dtype=np.dtype(cfg.dtype))
    print(f"data: {cfg.data}: {sum(len(p) for p in splits.items)} items, vocabulary of {V}, "
          f"{len(splits.train[1])}/{len(splits.dev[1])}/{len(splits.test[1])} train/dev/test examples")
    print(f"model: T={cfg.block_size} E={cfg.n_embd} H={cfg.n_hidden} init={cfg.init}: "
          f"{model.num_params(params):,} parameters")
    plt = plots.try_pyplot()

    if args.lr_sweep:
        lre, losses = lr_sweep(cfg, splits, params)
        rows, best = sweep_table(lre, losses)
        print(f"learning-rate sweep: {cfg.steps} steps, one rate each, from 1e-3 to 1")
        print(f"{'exponent':>15}  {'rate':>7}  {'mean loss':>9}")
        for lo, hi, rate, mean in rows:
            print(f"{lo:6.2f} .. {hi:5.2f}  {rate:7.4f}  {mean:9.4f}")
        if best is None:
            print("every rate diverged: check the data and the model size")
        else:
            print(f"suggested rate: {best[2]:.2g} (lowest mean loss); rates just below the point where "
                  f"the loss turns up are a safe choice")
        np.savetxt(out / "lr_sweep.csv", np.column_stack([np.arange(1, len(lre) + 1), 10**lre, losses]),
                   delimiter=",", header="step,lr,loss", comments="", fmt=["%d", "%.6g", "%.6f"])
        if plt:
            plots.plot_lr_sweep(plt, lre, losses, out / "lr_sweep.png")
            print(f"wrote {out / 'lr_sweep.csv'} and {out / 'lr_sweep.png'}")
        else:
            print(f"wrote {out / 'lr_sweep.csv'} ({plots.HINT})")
        return 0

    try:
        losses, devs, seconds = train(cfg, splits, params)
        with np.errstate(over="raise", invalid="raise"):
            result = {"train_loss": model.split_loss(params, *splits.train),
                      "dev_loss": model.split_loss(params, *splits.dev),
                      "test_loss": model.split_loss(params, *splits.test)}
    except FloatingPointError as e:
        raise UsageError(str(Diverged(cfg, f"in the final evaluation ({e})"))) from None
    except Diverged as e:
        raise UsageError(str(e)) from None
    done = len(losses)
    result["dev_perplexity"] = math.exp(min(result["dev_loss"], 700.0))  # exp(700) is near float64's max
    config = {**asdict(cfg), "data": str(Path(cfg.data).resolve()), "vocab_size": V,
              "data_sha256": splits.sha256, "split_seed": SPLIT_SEED}
    checkpoint.save(out / "model.npz", params, splits.vocab, config)
    samples = generate(partial(model.next_probs, params), splits.vocab, cfg.block_size, 10, np.random.default_rng([cfg.seed, 2]))
    metrics = {**result, "steps": done, "train_seconds": round(seconds, 3),
               "steps_per_second": round(done / seconds, 1) if seconds else None,
               "params": model.num_params(params), "interrupted": done < cfg.steps,
               "config": config, "samples": samples}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_loss_csv(out / "loss.csv", losses, devs)

    print(f"trained {done} steps in {seconds:.1f}s ({done / max(seconds, 1e-9):,.0f} steps/s)")
    print(f"train loss {result['train_loss']:.4f}  dev loss {result['dev_loss']:.4f}  "
          f"test loss {result['test_loss']:.4f}  (mean NLL, nats)")
    print(f"dev perplexity {result['dev_perplexity']:.2f} (out of {V} symbols)")
    if result["dev_loss"] > math.log(V):
        print(f"warning: the dev loss is above ln {V} = {math.log(V):.2f}, the loss of a uniform guess: "
              f"the model learned nothing useful; try a smaller --lr or more --steps", file=sys.stderr)
    print("samples:", ", ".join(samples))
    written = ["model.npz", "metrics.json", "loss.csv"]
    if plt:
        plots.plot_loss(plt, losses, devs, out / "loss.png")
        plots.plot_embedding(plt, params["C"], splits.vocab, out / "embedding.png")
        written += ["loss.png", "embedding.png"]
    print(f"wrote {', '.join(written)} to {out}{'' if plt else ' (' + plots.HINT + ')'}")
    print(f"sample more: python -m mlp_lm.sample --checkpoint {out / 'model.npz'}")
    return 130 if done < cfg.steps else 0


if __name__ == "__main__":
    run(main, "python -m mlp_lm.train")
