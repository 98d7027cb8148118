"""Optimisers, learning-rate schedules and weight averaging: how the parameters move.

Every optimiser takes `step(params, grads, lr)` and changes params in place.
Which tensors are decayed is decided by their role (params.DECAYED: the weight
matrices and the embedding table, never the biases), as in the paper, or for
another network's tensors by decayed=, the names to decay.
"""
import math

import numpy as np

from .optim_checks import check_hyperparameters, check_step, decayed_in, decayed_names

UPDATE_BLOCK = 32768  # entries of a tensor that AdamW updates at a time: 128 KB of float32


def row_blocks(p, size):
    """Slices of p's leading axis (p has at least one), each of about `size` entries and at least one row."""
    rows = max(1, size // max(p[0].size, 1))
    return [slice(i, i + rows) for i in range(0, len(p), rows)]


class SGD:
    """Minibatch stochastic gradient descent, with the paper's weight decay.

    The paper maximises the log likelihood plus a weight decay regulariser on the weights and
    the embedding table, without its formula; we read it as minus (lambda / 2) * ||theta||^2
    (derivations.md). The penalty's gradient, lambda * theta, is added to the loss's gradient
    (model.l2_penalty is the same penalty, gradient-checked):

        g_t     = grad L(theta_{t-1}) + lambda * theta_{t-1}   (decayed tensors only)
        theta_t = theta_{t-1} - lr_t * g_t
    """

    def __init__(self, weight_decay=0.0, decayed=None):
        check_hyperparameters(weight_decay=weight_decay)
        self.weight_decay, self.decayed = weight_decay, decayed_names(decayed)

    def step(self, params, grads, lr):
        decays = decayed_in(params, self.weight_decay, self.decayed)
        lr = check_step(params, grads, lr)  # a (H,) gradient would broadcast over the rows of a (T*E, H) W1
        # Every step lr * g is made before any tensor moves: memory running out part-way would leave some
        # tensors stepped and others not, a state no number of steps gives (a training saves what it has then).
        steps = {k: lr * (grads[k] + self.weight_decay * p if k in decays else grads[k]) for k, p in params.items()}
        for k, p in params.items():
            p -= steps[k]

    def state(self):
        return {}

    def load_state(self, state):
        pass


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW.

    With g_t the gradient at step t = 1, 2, ..., and every operation elementwise:

        1. theta  <- theta - lr_t * lambda * theta    (decoupled decay; decayed tensors only)
        2. m_t     = beta1 * m_{t-1} + (1 - beta1) * g_t          first moment (mean)
        3. v_t     = beta2 * v_{t-1} + (1 - beta2) * g_t^2        second moment (uncentred variance)
        4. m_hat   = m_t / (1 - beta1^t),  v_hat = v_t / (1 - beta2^t)   bias correction (m_0 = v_0 = 0)
        5. theta  <- theta - lr_t * m_hat / (sqrt(v_hat) + eps)

    The decay in step 1 is not part of the gradient, so Adam's per-coordinate
    scaling does not weaken it on coordinates with large gradients. It is lr_t * lambda
    a step, as in torch; Loshchilov & Hutter scale lambda by the schedule alone, so their
    lambda is lr * lambda here (docs/derivations.md#weight-decay).

    Unlike torch's: weight_decay is 0 unless given (torch's default is 0.01), and one step
    count t serves all the tensors, so they are stepped together every time (torch counts each
    tensor's own steps: the same numbers while every tensor is stepped at every step).
    """

    def __init__(self, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8, decayed=None):
        check_hyperparameters(weight_decay=weight_decay, beta1=beta1, beta2=beta2, eps=eps)
        self.weight_decay, self.beta1, self.beta2, self.eps = weight_decay, beta1, beta2, eps
        self.decayed = decayed_names(decayed)
        self.t = 0
        self.m, self.v = {}, {}
        self.scratch = {}  # (shape, dtype) -> two arrays for the update's intermediate values, kept between steps

    def step(self, params, grads, lr):
        decays = decayed_in(params, self.weight_decay, self.decayed)  # (before t moves: it may refuse)
        lr = check_step(params, grads, lr)
        m, v = self.m, self.v
        if not m:  # the first step: the moments start at 0 (kept once every array of the step is made)
            m = {k: np.zeros_like(p) for k, p in params.items()}
            v = {k: np.zeros_like(p) for k, p in params.items()}
        elif params.keys() != self.m.keys():  # one t for all: a tensor added later would start part-way
            raise ValueError(f"this AdamW has stepped the tensors {', '.join(map(repr, self.m))}, and is given "
                             f"{', '.join(map(repr, params))}: its step count is the same for all its tensors, so "
                             f"step it on the same ones each time (a new AdamW for others)")
        else:  # another model's under the same names: numpy would fail part-way, or keep float32 moments of float64
            other = next((k for k, p in params.items() if (p.shape, p.dtype) != (self.m[k].shape, self.m[k].dtype)), None)
            if other is not None:
                raise ValueError(f"this AdamW has stepped a {other!r} of {self.m[other].dtype} {self.m[other].shape}, "
                                 f"and is given one of {params[other].dtype} {params[other].shape}: its moments are of "
                                 f"the tensors it stepped; a new AdamW for another model")
        # The update makes 14 passes over each tensor. W1 is larger than a core's cache, so
        # each pass would fetch all of it from memory again; a block of rows at a time, the passes
        # find it in the cache (6 to 8% of the best preset's step). Elementwise, the blocks change nothing.
        blocks = [(k, rows) for k, p in params.items()
                  for rows in ([...] if p.size <= UPDATE_BLOCK else row_blocks(p, UPDATE_BLOCK))]  # ...: all of p
        for k, rows in blocks:  # every scratch array made before any tensor moves (as in SGD.step)
            self.scratch_for(params[k][rows])
        self.m, self.v = m, v
        self.t += 1
        c1, c2 = 1 - self.beta1**self.t, 1 - self.beta2**self.t  # bias corrections
        for k, rows in blocks:
            decay = 1 - lr * self.weight_decay if k in decays else None
            self.update(params[k][rows], grads[k][rows], self.m[k][rows], self.v[k][rows], lr, c1, c2, decay)

    def update(self, p, g, m, v, lr, c1, c2, decay):
        """The equations on one block of a tensor, in place: the intermediate values go into the two
        scratch arrays, not into new ones. The same operations in the same order as the arithmetic
        written plainly, m += (1 - b1) * g and so on: the same numbers, to the last bit."""
        b1, b2 = self.beta1, self.beta2
        tmp, upd = self.scratch_for(p)
        if decay is not None:
            p *= decay  # 1.
        m *= b1
        m += np.multiply(g, 1 - b1, out=tmp)  # 2.
        v *= b2
        v += np.multiply(np.multiply(g, 1 - b2, out=tmp), g, out=tmp)  # 3.
        denom = np.sqrt(np.divide(v, c2, out=tmp), out=tmp)  # 4. sqrt(v_hat) ...
        denom += self.eps
        p -= np.divide(np.multiply(m, lr / c1, out=upd), denom, out=upd)  # 5.

    def scratch_for(self, p):
        """Two scratch arrays shaped like p, made once for each shape of block the update sees."""
        scratch = self.scratch.get((p.shape, p.dtype))
        if scratch is None:
            scratch = self.scratch[p.shape, p.dtype] = np.empty_like(p), np.empty_like(p)
        return scratch

    def state(self):
        return {"t": self.t, **{f"m.{k}": a for k, a in self.m.items()}, **{f"v.{k}": a for k, a in self.v.items()}}

    def load_state(self, state):
        if not state:  # a fresh start
            return
        self.t = int(state["t"])
        self.m = {k[2:]: np.array(a) for k, a in state.items() if k.startswith("m.")}
        self.v = {k[2:]: np.array(a) for k, a in state.items() if k.startswith("v.")}


def moment_bound(beta1, beta2, t):
    """K such that m_t^2 <= K v_t holds for AdamW's moments after t steps, whatever the gradients.

    m_t = (1 - b1) sum_i b1^(t-i) g_i and v_t = (1 - b2) sum_i b2^(t-i) g_i^2, so by the
    Cauchy-Schwarz inequality, with r = b1^2 / b2,

        m_t^2 <= (1 - b1)^2 / (1 - b2) * (1 + r + ... + r^(t-1)) * v_t.

    For the defaults (0.9, 0.999) K < 52.9: |m| is at most 7.3 sqrt(v). A saved state past
    it was not left by training (a damaged checkpoint). Infinite when r >= 1 (no useful bound).
    """
    r = 0.0 if beta1 == 0 else beta1**2 / beta2 if beta2 > 0 else math.inf  # beta1 = 0: m = g, K = 1/(1-b2)
    if r >= 1:
        return math.inf
    return (1 - beta1) ** 2 / (1 - beta2) * (1 - r**t) / (1 - r)


def make_optimizer(name, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8):
    if name == "sgd":
        return SGD(weight_decay)
    if name == "adamw":
        return AdamW(weight_decay, beta1, beta2, eps)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {name!r}")


# --- learning-rate schedules -------------------------------------------------

SCHEDULES = ("step", "inverse", "cosine")


def learning_rate(schedule, lr, step, steps, *, decay_rate=0.0, warmup=0, min_lr=0.0):
    """The learning rate for step (0-based) of a run of `steps` steps.

    step:    the lecture's: lr for the first half of the steps, lr / 10 after.
    inverse: the paper's: eps_t = eps_0 / (1 + r * t), r = decay_rate.
    cosine:  linear warm-up from lr / warmup to lr over `warmup` steps, then
             half a cosine from lr down to min_lr at the last step.
    """
    if schedule == "step":
        return lr if step < steps // 2 else lr / 10
    if schedule == "inverse":
        if not decay_rate >= 0:  # a negative r makes the rate negative, then divides by zero (NaN fails too)
            raise ValueError(f"decay_rate must be 0 or more, got {decay_rate!r}")
        return lr / (1 + decay_rate * step)
    if schedule == "cosine":
        if not 0 <= min_lr <= lr:  # a floor above the peak would be a rate that rises
            raise ValueError(f"min_lr must be from 0 to lr ({lr!r}), got {min_lr!r}")
        if step < warmup:
            return lr * (step + 1) / warmup
        span = steps - 1 - warmup  # steps after the first one past warm-up
        # 0 right after warm-up, 1 at the last step; a single step after a warm-up is the last (the
        # floor), a single step with none is the whole run (the peak: a run of one step trains)
        progress = (step - warmup) / span if span > 0 else (1.0 if warmup else 0.0)
        return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def inverse_mean(decay_rate, steps):
    """The mean over the first `steps` steps (at least one) of the inverse schedule's rate as a share of lr,
    1 / (1 + r t): 1 at r = 0, and about 1 / steps at r = 1e9 (the first step's whole rate, and all but nothing
    after; advice.py's why_stuck). Summed a million steps at a time."""
    chunk = 1 << 20
    return sum(float(learning_rate("inverse", 1.0, np.arange(a, min(a + chunk, steps)), steps,
                                   decay_rate=decay_rate).sum()) for a in range(0, steps, chunk)) / steps


# --- weight averaging --------------------------------------------------------

class EMA:
    """An exponential moving average of the parameters, for evaluation.

        avg_t = decay * avg_{t-1} + (1 - decay) * theta_t,   avg_0 = theta_0

    Averaging over the last ~1 / (1 - decay) steps smooths out the minibatch
    noise of the final iterates (Polyak averaging with a forgetting factor).
    """

    def __init__(self, params, decay):
        check_hyperparameters(decay=decay)
        self.decay = float(decay)  # a numpy float64 would make float32 arithmetic float64, rounded where it lands
        self.avg = {k: p.copy() for k, p in params.items()}
        # (1 - decay) * theta_t goes here: the update then makes no array, so memory cannot run out
        # after the parameters have moved and before their average has
        self.scratch = {k: np.empty_like(p) for k, p in params.items()}

    def update(self, params):
        """Move the average toward `params`, the tensors it was made of, of the same shapes and dtypes (a (1,)
        tensor would broadcast into a (H,) average without a word)."""
        def described(tensors):
            return ", ".join(f"{k} {np.asarray(t).dtype} {np.shape(t)}" for k, t in tensors.items())
        if params.keys() != self.avg.keys() or any(  # (a KeyError is not reached: the keys are the same)
                np.shape(params[k]) != a.shape or getattr(params[k], "dtype", None) != a.dtype for k, a in self.avg.items()):
            raise ValueError(f"this average is of {described(self.avg)}; it is given {described(params)}")
        for k, p in params.items():
            a = self.avg[k]
            a *= self.decay
            a += np.multiply(p, 1 - self.decay, out=self.scratch[k])
